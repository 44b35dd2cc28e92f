"""Shell completion scripts for chatrepl's flags (bash, zsh, fish), made from its argument parser,
so they list exactly the flags there are."""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass

SHELLS = ("bash", "zsh", "fish")
_PATH_VALUES = {"PATH", "FILE", "PATH.gguf"}  # metavars whose values are file names


@dataclass(frozen=True)
class _Flag:
    names: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...]
    path: bool


def _flags(parser: argparse.ArgumentParser) -> list[_Flag]:
    flags = []
    for action in parser._actions:  # argparse keeps no public list of its options
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        takes_value = action.nargs != 0 and not isinstance(
            action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)
        )
        choices = tuple(getattr(action.type, "choices", ()) or action.choices or ())
        path = str(action.metavar) in _PATH_VALUES
        flags.append(_Flag(tuple(action.option_strings), _first_clause(action.help or ""), takes_value, choices, path))
    return flags


def _first_clause(help_text: str) -> str:
    """A flag's help up to its first aside: `model to use (default: …)` gives `model to use`."""
    return re.split(r";\s|\s\(|:\s", help_text, maxsplit=1)[0]


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for `shell` (one of SHELLS)."""
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](_flags(parser))


def _bash(flags: list[_Flag]) -> str:
    cases = []
    for flag in flags:
        if flag.path:
            cases.append(f'        {"|".join(flag.names)}) COMPREPLY=($(compgen -f -- "$cur")); return ;;')
        elif flag.choices:
            words = shlex.quote(" ".join(flag.choices))
            cases.append(f'        {"|".join(flag.names)}) COMPREPLY=($(compgen -W {words} -- "$cur")); return ;;')
        elif flag.takes_value:
            cases.append(f"        {'|'.join(flag.names)}) return ;;")
    names = shlex.quote(" ".join(name for flag in flags for name in flag.names))
    return "\n".join(
        [
            '# chatrepl completion for bash: eval "$(chatrepl --completion-script bash)"',
            "_chatrepl() {",
            '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
            '    case "$prev" in',
            *cases,
            "    esac",
            '    if [[ "$cur" == -* ]]; then',
            f'        COMPREPLY=($(compgen -W {names} -- "$cur"))',
            "    fi",
            "}",
            "complete -o default -F _chatrepl chatrepl",
            "",
        ]
    )


def _zsh_text(text: str) -> str:
    """Text inside a single-quoted _arguments spec: no quote, and brackets and colons escaped."""
    return text.replace("'", "").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def _zsh(flags: list[_Flag]) -> str:
    specs = []
    for flag in flags:
        value = ""
        if flag.path:
            value = ":file:_files"
        elif flag.choices:
            value = f":value:({' '.join(flag.choices)})"
        elif flag.takes_value:
            value = ":value: "
        described = f"[{_zsh_text(flag.help)}]{value}"
        if len(flag.names) == 1:
            specs.append(f"'{flag.names[0]}{described}'")
        else:
            specs.append(f"'({' '.join(flag.names)})'{{{','.join(flag.names)}}}'{described}'")
    lines = [
        "#compdef chatrepl",
        "# chatrepl completion for zsh: chatrepl --completion-script zsh > ~/.zfunc/_chatrepl",
    ]
    lines.append("_arguments -s \\")
    lines += [f"  {spec} \\" for spec in specs]
    lines.append("  '*:question: '")
    return "\n".join(lines) + "\n"


def _fish(flags: list[_Flag]) -> str:
    lines = ["# chatrepl completion for fish: chatrepl --completion-script fish | source"]
    for flag in flags:
        parts = ["complete -c chatrepl"]
        for name in flag.names:
            parts.append(f"-l {name[2:]}" if name.startswith("--") else f"-s {name[1:]}")
        if flag.path:
            parts.append("-r -F")
        elif flag.choices:
            parts.append(f"-x -a {shlex.quote(' '.join(flag.choices))}")
        elif flag.takes_value:
            parts.append("-x")
        parts.append(f"-d {shlex.quote(flag.help)}")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"
