"""Describe it, get one shell command, run it only when the user says so.

The model is told the shell, the system and the working folder's name, and to answer with one
command and nothing else.  Its answer is stripped to the bare command (a code fence, a `$ `
prompt, prose around it); an answer that is not one command can be shown, never run.  A command
that looks destructive is marked with why: a reading aid, not a sandbox.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatrepl.conversation import Turn

if TYPE_CHECKING:
    from chatrepl.output import Output
    from chatrepl.session import ChatSession
    from chatrepl.terminal import Terminal
    from chatrepl.turn import Sink

_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)\n?```", re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")
_QUOTED = re.compile(r"'[^']*'|\"(?:\\.|[^\"\\])*\"")
_PROMPT = re.compile(r"^\s*(?:\$|#|>|PS [^>]*>)\s+")
_DANGERS = (
    (re.compile(r"(?<!git )\brm\s+(.*\s)?(-\w*[rR]\w*|--recursive)\b"), "removes files and folders recursively"),
    (re.compile(r"(^|[;&|(]\s*)sudo\b"), "runs as the superuser (sudo)"),
    (re.compile(r"(^|[;&|(]\s*)dd\s"), "writes raw data (dd), possibly over a disk"),
    (re.compile(r"(^|[;&|(]\s*)mkfs(\.\w+)?\s"), "makes a file system, erasing what the device held"),
    (re.compile(r"\b(curl|wget)\b[^|]*\|\s*(sudo\s+)?(ba|z|da)?sh\b"), "runs a script straight from the network"),
    (re.compile(r"\bchmod\s+(-\w*R\w*|--recursive)\b"), "changes permissions recursively"),
    (re.compile(r"\bchown\s+(-\w*R\w*|--recursive)\b"), "changes owners recursively"),
    (re.compile(r"\bgit\s+push\b.*\s(--force\b|-f\b|--force-with-lease\b)"), "rewrites the remote's history"),
    (re.compile(r"(?<![>&\d])>(?!>|&)\s*(?!/dev/null\b)[^\s&|;]"), "overwrites a file (>)"),
    (re.compile(r"\bfind\b.*\s-delete\b"), "deletes the files it finds"),
)


def shell_name(environ: Mapping[str, str]) -> str:
    """The user's shell: $SHELL's name; on Windows, PowerShell or cmd."""
    if os.name == "nt":
        return "powershell" if environ.get("PSModulePath") else "cmd"
    return Path(environ.get("SHELL") or "/bin/sh").name


def system_name() -> str:
    """The system, with the distribution where it is known: `Linux (Debian GNU/Linux 12)`, `macOS 14.5`."""
    system = platform.system()
    if system == "Darwin":
        return f"macOS {platform.mac_ver()[0]}".strip()
    if system == "Linux":
        try:
            release = Path("/etc/os-release").read_text(encoding="utf-8")
        except OSError:
            return "Linux"
        found = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', release, re.MULTILINE)
        return f"Linux ({found.group(1)})" if found else "Linux"
    return system or "an unknown system"


def system_prompt(environ: Mapping[str, str], folder: Path) -> str:
    """What the model is told for a command: the shell, the system, the working folder's name, one command only."""
    return (
        f"You turn a description into one {shell_name(environ)} command for {system_name()}, run in a folder "
        f"named {folder.name or '/'!r}. Answer with the command alone, on one line if you can: no explanation, "
        "no alternatives, no code fence, no prompt sign. If it cannot be done with one command, say so in one line."
    )


def bare_command(answer: str) -> str | None:
    """The command in a model's answer, stripped of a code fence, `$ ` prompts and the prose around
    it; None when the answer holds no single command (prose only, or several alternatives)."""
    text = answer.strip()
    fenced = _FENCE.findall(text)
    if len(fenced) > 1:
        return None
    if fenced:
        text = fenced[0]
    lines = [_PROMPT.sub("", line).strip() for line in text.splitlines() if line.strip()]
    commands = [line for line in lines if not _is_prose(line)]
    if not commands:  # `du -sh *` in a sentence
        spans = _INLINE.findall(text)
        commands = spans if len(spans) == 1 else []
    if not commands:
        return None
    if len(commands) > 1 and not all(line.endswith(("\\", "&&", "||", "|")) for line in commands[:-1]):
        return None  # several commands, or alternatives: not one command to run
    command = "\n".join(commands)
    return command if _parses(command) else None


def _is_prose(line: str) -> bool:
    """A sentence rather than a command: a capitalised word first, and the end of a sentence last."""
    return bool(re.match(r"[A-Z][a-z']*\b", line)) and line.endswith((".", ":", "!", "?", ")"))


def _parses(command: str) -> bool:
    try:
        return bool(shlex.split(command, comments=True))
    except ValueError:
        return False


def danger(command: str) -> str | None:
    """Why the command looks destructive, or None: a reading aid, not a sandbox.  What is quoted is
    data, not shell (`awk '$3 > 100'` writes no file)."""
    unquoted = _QUOTED.sub("''", command)
    for pattern, why in _DANGERS:
        if pattern.search(unquoted):
            return why
    return None


MENU = "e execute · r revise · d describe · c copy · a abort"
EXPLAIN = "Explain briefly, in a few lines, what this command does and what each part is for."


@dataclass
class ShellTurn:
    """What came of a description: the model's answer, the command in it, and whether it ran."""

    description: str
    answer: str = ""
    command: str | None = None
    ran: bool = False
    status: int | None = None

    def record(self) -> dict[str, Any]:
        """What is saved with the turn."""
        return {"command": self.command, "ran": self.ran, "status": self.status}


class Asker(Protocol):
    """Sends one request apart from the conversation (ChatSession.ask_apart): the text of the reply,
    shown on `sink` or not at all; None when it failed (and that was said)."""

    def __call__(self, system: str, turns: list[Turn], sink: Sink | None) -> str | None: ...


def command_for(turn: ShellTurn, ask: Asker, environ: Mapping[str, str], folder: Path) -> bool:
    """Ask the model for the command; False when the request failed."""
    answer = ask(system_prompt(environ, folder), [Turn("user", turn.description)], None)
    if answer is None:
        return False
    turn.answer, turn.command = answer, bare_command(answer)
    return True


def choose(turn: ShellTurn, ask: Asker, output: Output, environ: Mapping[str, str], folder: Path) -> None:
    """On a terminal: show the command and act on one key until it runs, is copied, or is given up."""
    system = system_prompt(environ, folder)
    while True:
        if turn.command is None:
            output.warning("not one command: nothing can run from this answer")
            output.info(turn.answer)
            return
        output.command(turn.command, danger(turn.command))
        key = output.key(f"{MENU} ", "erdca")
        history = [Turn("user", turn.description), Turn("assistant", turn.answer)]
        if key == "e":
            why = danger(turn.command)
            if why and output.key(f"it {why}: are you sure? y/n ", "yn") != "y":
                continue
            turn.ran, turn.status = True, execute(turn.command, output.terminal, environ)
            return
        if key == "r":
            change = output.ask_line("what to change: ")
            if change:
                answer = ask(system, [*history, Turn("user", f"Change the command: {change}")], None)
                if answer is not None:
                    turn.answer, turn.command = answer, bare_command(answer)
        elif key == "d":
            ask(system, [*history, Turn("user", EXPLAIN)], output.reply_sink())
        elif key == "c":
            if output.clipboard(turn.command):
                output.note("copied (through the terminal, OSC 52)")
            return
        else:
            output.note("nothing ran")
            return


def execute(command: str, terminal: Terminal, environ: Mapping[str, str]) -> int:
    """Run the command in the user's shell with the terminal handed over; its exit status."""
    shell = environ.get("SHELL") or "/bin/sh"
    with terminal.handed_over():
        try:
            return subprocess.run([shell, "-c", command]).returncode
        except OSError as err:
            raise ShellError(f"cannot run {shell}: {err.strerror or err}") from None


class ShellError(Exception):
    """The shell itself cannot be started."""


def asker(session: ChatSession, output: Output) -> Asker:
    """Requests for the shell flow through the session, their errors said on the output."""
    from chatrepl.output import QuietSink

    def ask(system: str, turns: list[Turn], sink: Sink | None) -> str | None:
        outcome = session.ask_apart(system, turns, sink or QuietSink(output), output.terminal)
        if outcome.error is not None:
            output.error(outcome.error.message, outcome.error.hint, outcome.error)
            return None
        return None if outcome.interrupted else outcome.text

    return ask


def shell_turn(session: ChatSession, output: Output, description: str, interactive: bool) -> ShellTurn | None:
    """From a description to a command; on a terminal (`interactive`) the user's choice of what to do
    with it.  The turn is kept in the conversation; None when the request failed."""
    environ, folder = os.environ, Path.cwd()
    turn, ask = ShellTurn(description), asker(session, output)
    if not command_for(turn, ask, environ, folder):
        return None
    try:
        if interactive:
            choose(turn, ask, output, environ, folder)
    finally:
        session.record_shell(turn.description, turn.answer, turn.record())
    return turn
