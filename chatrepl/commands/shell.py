"""The command that turns a description into one shell command, and the shell mode."""

from __future__ import annotations

import sys

from chatrepl.commands.base import CONTINUE, Context, Outcome
from chatrepl.shell import ShellError, shell_turn


def _shell(context: Context, text: str) -> Outcome:
    if not text.strip():
        context.screen.shell_mode = not context.screen.shell_mode
        state = "on: each message asks for one command (/shell again leaves it)" if context.screen.shell_mode else "off"
        context.output.note(f"shell mode {state}")
        return CONTINUE
    interactive = context.output.is_terminal and sys.stdin.isatty()
    try:
        turn = shell_turn(context.session, context.output, text.strip(), interactive)
    except ShellError as err:
        context.output.error(str(err))
        return CONTINUE
    if turn is not None and turn.ran:
        context.output.note(f"exit status {turn.status}")
    elif turn is not None and not interactive and turn.command is not None:
        context.output.info(turn.command)  # no terminal to choose on: shown, never run
    return CONTINUE
