"""The command table: name, aliases, help line, handler.

A handler gets the REPL and the text after the command word, and returns False to
leave the REPL.  Bare `new`, `quit` and `exit` work as commands too, as they always have.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatrepl.repl import Repl

BARE_WORDS = {"new", "quit", "exit"}
_SLASH_COMMAND = re.compile(r"/([A-Za-z][\w-]*)(?:\s+(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    help: str
    handler: Callable[[Repl, str], bool]


class UnknownCommand(Exception):
    def __init__(self, word: str) -> None:
        super().__init__(f"unknown command /{word}, try /help")
        self.word = word


def _new(repl: Repl, arg: str) -> bool:
    repl.start_new_conversation()
    return True


def _quit(repl: Repl, arg: str) -> bool:
    return False


def _markdown(repl: Repl, arg: str) -> bool:
    choice = arg.lower()
    if choice in ("on", "off"):
        repl.plain = choice == "off"
    elif choice:
        repl.notices.error(f"/markdown takes on or off, not {arg!r}")
        return True
    repl.notices.note(f"markdown rendering is {'off' if repl.plain else 'on'}")
    return True


def _usage(repl: Repl, arg: str) -> bool:
    turns = sum(turn.role == "assistant" for turn in repl.conversation.turns)
    repl.notices.note(f"this conversation: {turns} replies · {repl.tally.summary()}")
    return True


def _help(repl: Repl, arg: str) -> bool:
    repl.show_info(help_text())
    return True


COMMANDS = (
    Command("new", (), "start a new conversation (the system prompt stays)", _new),
    Command("quit", ("exit",), "leave chatrepl (Ctrl-D works too)", _quit),
    Command("markdown", (), "on: render replies as markdown; off: print them as they arrive", _markdown),
    Command("usage", (), "tokens and cost of this conversation so far", _usage),
    Command("help", (), "list the commands and keys", _help),
)
_BY_NAME = {name: command for command in COMMANDS for name in (command.name, *command.aliases)}

KEYS_HELP = (
    "Enter sends · Alt-Enter (Esc Enter) adds a new line · pasted text stays one message\n"
    "Ctrl-C stops a reply or clears the line · Ctrl-D leaves · Up/Down walk the input history"
)


def help_text() -> str:
    width = max(len(command.name) for command in COMMANDS) + 1
    lines = []
    for command in COMMANDS:
        aliases = "".join(f", /{alias}" for alias in command.aliases)
        lines.append(f"/{command.name:<{width}} {command.help}{f'  (also {aliases[2:]})' if aliases else ''}")
    lines.append("new, quit and exit work without the slash.")
    return "\n".join(lines) + "\n\n" + KEYS_HELP


def parse(line: str) -> tuple[Command, str] | None:
    """The command a line asks for and its argument, or None for a message to the model.

    Raises UnknownCommand for a `/word` that names no command.
    """
    stripped = line.strip()
    if stripped.lower() in BARE_WORDS:
        return _BY_NAME[stripped.lower()], ""
    match = _SLASH_COMMAND.fullmatch(stripped)
    if not match:
        return None
    word = match.group(1).lower()
    if word not in _BY_NAME:
        raise UnknownCommand(match.group(1))
    return _BY_NAME[word], (match.group(2) or "").strip()
