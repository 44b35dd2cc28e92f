"""Commands about the screen and the input: markdown, thinking, the toolbar, multi-line input, the
input history, the editor, copying, clearing."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from chatrepl.commands.base import CONTINUE, Context, Outcome, one, parsed, switch
from chatrepl.render import code_blocks


def _markdown(context: Context, words: list[str]) -> Outcome:
    wanted = switch(context, words, "markdown", not context.output.plain)
    if wanted is not None:
        context.output.plain = not wanted
        context.output.note(f"markdown rendering is {'on' if wanted else 'off'}")
    return CONTINUE


def _think(context: Context, words: list[str]) -> Outcome:
    replies = [turn for turn in context.session.conversation.turns if turn.role == "assistant"]
    if not replies or not replies[-1].reasoning:
        context.output.error("the last reply has no thinking to show")
        return CONTINUE
    context.output.reasoning(replies[-1].reasoning)
    return CONTINUE


def _thinking(context: Context, words: list[str]) -> Outcome:
    if words:
        ok, value = parsed(context, "thinking", one(words))
        if not ok:
            return CONTINUE
        context.output.thinking = value or "collapse"
    context.output.note(f"thinking: {context.output.thinking}")
    return CONTINUE


def _toolbar(context: Context, words: list[str]) -> Outcome:
    wanted = switch(context, words, "toolbar", context.screen.toolbar_shown)
    if wanted is not None:
        context.screen.show_toolbar(wanted)
    return CONTINUE


def _multiline(context: Context, words: list[str]) -> Outcome:
    wanted = switch(context, words, "multiline", not context.screen.multiline)
    if wanted is not None:
        context.screen.multiline = wanted
        keys = "Enter adds a line, Alt-Enter sends" if wanted else "Enter sends, Alt-Enter adds a line"
        context.output.note(f"multi-line mode {'on' if wanted else 'off'}: {keys}")
    return CONTINUE


def _history(context: Context, words: list[str]) -> Outcome:
    wanted = switch(context, words, "history", context.screen.history_kept)
    if wanted is not None:
        context.screen.keep_history(wanted)
        context.output.note(
            "input history is kept in a file" if wanted else "input history is kept for this session only"
        )
    return CONTINUE


def _edit(context: Context, text: str) -> Outcome:
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / "message.md"
        draft.write_text(text or context.screen.pending, encoding="utf-8")
        try:
            with context.output.terminal.handed_over():
                subprocess.run([*editor, str(draft)], check=True)
        except (OSError, subprocess.CalledProcessError) as err:
            context.output.error(f"the editor {editor[0]} did not run: {err}")
            return CONTINUE
        context.screen.pending = draft.read_text(encoding="utf-8", errors="replace").rstrip("\n")
    return CONTINUE


def _copy(context: Context, words: list[str]) -> Outcome:
    replies = [turn.content for turn in context.session.conversation.turns if turn.role == "assistant"]
    if not replies:
        context.output.error("no reply to copy yet")
        return CONTINUE
    text = replies[-1]
    number = one(words)
    if number:
        blocks = code_blocks(text)
        if not number.isdigit() or not 1 <= int(number) <= len(blocks):
            choice = {0: "no code blocks", 1: "one code block: /copy 1"}.get(
                len(blocks), f"{len(blocks)} code blocks: /copy 1 to /copy {len(blocks)}"
            )
            context.output.error(f"the last reply has {choice}")
            return CONTINUE
        text = blocks[int(number) - 1]
    if not context.output.clipboard(text):
        context.output.error("copying needs a terminal: the clipboard is written through it (OSC 52)")
        return CONTINUE
    context.output.note(f"copied {len(text):,} characters (through the terminal: it must allow OSC 52; see /help copy)")
    return CONTINUE


def _clear(context: Context, words: list[str]) -> Outcome:
    context.output.clear()
    return CONTINUE
