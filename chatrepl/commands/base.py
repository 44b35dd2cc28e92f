"""What every command shares: the narrow Context a handler gets, the Outcome it returns, the Command
entry of the table, and the parsing of an argument."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chatrepl import options
from chatrepl.attachments import Pending

if TYPE_CHECKING:
    from chatrepl.output import Output
    from chatrepl.session import ChatSession


class Screen(Protocol):
    """The prompt's own state that commands may change."""

    multiline: bool
    shell_mode: bool  # each message asks for a shell command
    pending: str  # text for the next prompt
    attachments: Pending  # files and images that go with the next message

    def keep_history(self, keep: bool) -> None: ...

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question at the prompt; no unless the answer is yes."""

    def show_toolbar(self, show: bool) -> None: ...

    @property
    def history_kept(self) -> bool: ...

    @property
    def toolbar_shown(self) -> bool: ...


@dataclass(frozen=True)
class Context:
    session: ChatSession
    output: Output
    screen: Screen


@dataclass(frozen=True)
class Outcome:
    quit: bool = False
    send: str | None = None  # a message to send now
    retry: bool = False  # ask for the last reply again


CONTINUE = Outcome()


QUIT = Outcome(quit=True)


def text_argument(arg: str) -> str:
    return arg


def words_argument(arg: str) -> list[str]:
    """Shell-like words: quotes keep spaces; ValueError for an unclosed quote."""
    return shlex.split(arg)


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    arguments: str  # how the argument is written in help, "" for none
    help: str
    handler: Callable[[Context, Any], Outcome]
    details: str = ""  # more for /help NAME
    parse: Callable[[str], Any] = words_argument


class UnknownCommand(Exception):
    def __init__(self, word: str) -> None:
        super().__init__(f"unknown command /{word}, try /help")
        self.word = word


class BadArgument(Exception):
    """An argument that cannot be parsed; the message says how to write it."""


def one(words: list[str]) -> str:
    """The one word of an argument ("" for none); a command taking one word ignores no extra words."""
    if len(words) > 1:
        raise BadArgument(f"expected one argument, got {len(words)} (quote a path with spaces)")
    return words[0] if words else ""


def switch(context: Context, words: list[str], name: str, current: bool) -> bool | None:
    """The state `/name on|off` asks for (`current` without an argument); None after reporting a bad one."""
    choice = one(words).lower()
    if choice in ("on", "off", ""):
        return choice == "on" if choice else current
    context.output.error(f"/{name} takes on or off, not {one(words)!r}")
    return None


def parsed(context: Context, key: str, value: str) -> tuple[bool, Any]:
    """`value` parsed as setting `key` (empty: back to unset); (False, None) after reporting a bad one."""
    try:
        return True, options.OPTION_BY_KEY[key].parse(value) if value.strip() else None
    except ValueError as err:
        context.output.error(str(err))
        return False, None
