"""The command table: name, aliases, argument, help line, handler, and details for /help NAME.

A handler gets the REPL and the text after the command word, and returns False to
leave the REPL.  Bare `new`, `quit` and `exit` work as commands too, as they always have.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatrepl import config
from chatrepl.conversation import from_json, to_json, to_markdown
from chatrepl.render import code_blocks

if TYPE_CHECKING:
    from chatrepl.repl import Repl

BARE_WORDS = {"new", "quit", "exit"}
_SLASH_COMMAND = re.compile(r"/([A-Za-z][\w-]*)(?:\s+(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    arguments: str  # how the argument is written in help, "" for none
    help: str
    handler: Callable[[Repl, str], bool]
    details: str = ""  # more for /help NAME


class UnknownCommand(Exception):
    def __init__(self, word: str) -> None:
        super().__init__(f"unknown command /{word}, try /help")
        self.word = word


def _new(repl: Repl, arg: str) -> bool:
    repl.start_new_conversation()
    repl.notices.note("new conversation")
    return True


def _quit(repl: Repl, arg: str) -> bool:
    return False


def _switch(repl: Repl, arg: str, name: str, current: bool) -> bool | None:
    """The state `/name on|off` asks for (`current` without an argument); None after reporting a bad one."""
    choice = arg.lower()
    if choice in ("on", "off", ""):
        return choice == "on" if choice else current
    repl.notices.error(f"/{name} takes on or off, not {arg!r}")
    return None


def _markdown(repl: Repl, arg: str) -> bool:
    wanted = _switch(repl, arg, "markdown", not repl.plain)
    if wanted is not None:
        repl.plain = not wanted
        repl.notices.note(f"markdown rendering is {'on' if wanted else 'off'}")
    return True


def _json(repl: Repl, arg: str) -> bool:
    wanted = _switch(repl, arg, "json", repl.settings.json)
    if wanted is None:
        return True
    repl.settings.json = wanted
    supported = repl.catalogue.lookup(repl.settings.model).json_mode
    caveat = "" if supported else f" ({repl.settings.model} has no JSON mode: only the hint is sent)"
    repl.notices.note(f"JSON mode is {'on' if repl.settings.json else 'off'}{caveat}")
    return True


def _assign(repl: Repl, key: str, value: str) -> bool:
    """Set `key` from `value` (empty: back to unset); report a bad value and return False."""
    try:
        parsed = config.OPTION_BY_KEY[key].parse(value) if value.strip() else None
    except ValueError as err:
        repl.notices.error(str(err))
        return False
    setattr(repl.settings, key, parsed)
    return True


def _mode(repl: Repl, arg: str) -> bool:
    if arg and not _assign(repl, "mode", arg):
        return True
    forced = repl.catalogue.lookup(repl.settings.model).api == "completions" and repl.settings.mode == "chat"
    note = f" ({repl.settings.model} only has the Completions API, so completion mode is used)" if forced else ""
    repl.notices.note(f"mode: {repl.settings.mode}{note}")
    return True


def _usage(repl: Repl, arg: str) -> bool:
    turns = sum(turn.role == "assistant" for turn in repl.conversation.turns)
    repl.notices.note(f"this conversation: {turns} replies · {repl.tally.summary()}")
    return True


def _sessions(repl: Repl, arg: str) -> bool:
    if repl.store is None:
        repl.notices.note("saving is off: no sessions to list")
        return True
    rows = repl.store.conversations(limit=20)
    if not rows:
        repl.notices.note("no saved conversations yet")
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.updated))
        repl.show_info(f"{row.id:>5}  {when}  {row.turns:>3} turns  {row.model:<16} {row.title}")
    return True


def _resume(repl: Repl, arg: str) -> bool:
    if not arg.isdigit():
        repl.notices.error("usage: /resume ID (the ids are in /sessions)")
    elif repl.store is None:
        repl.notices.error("saving is off: nothing to resume")
    elif not repl.resume(int(arg)):
        repl.notices.error(f"no saved conversation {arg}")
    return True


def _save(repl: Repl, arg: str) -> bool:
    if arg.lower() == "off":
        repl.stop_saving()
        repl.notices.note("this session is no longer saved")
    elif not arg:
        repl.notices.error("usage: /save FILE.md, /save FILE.json, or /save off")
    else:
        path = Path(arg).expanduser()
        formats = {".md": to_markdown, ".json": to_json}
        if path.suffix.lower() not in formats:
            repl.notices.error("/save writes .md or .json files")
            return True
        try:
            path.write_text(formats[path.suffix.lower()](repl.conversation), encoding="utf-8")
        except OSError as err:
            repl.notices.error(f"not saved: {err}")
        else:
            repl.notices.note(f"saved to {path}")
    return True


def _load(repl: Repl, arg: str) -> bool:
    if not arg:
        repl.notices.error("usage: /load FILE.json (a file written by /save)")
        return True
    try:
        conversation = from_json(Path(arg).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        repl.notices.error(f"cannot load {arg}: {err}")
        return True
    repl.load(conversation)
    return True


def _model(repl: Repl, arg: str) -> bool:
    if arg and not _assign(repl, "model", arg):
        return True
    facts = [f"model {repl.settings.model}", *repl.catalogue.lookup(repl.settings.model).facts()]
    repl.notices.note(" · ".join(facts))
    return True


def _system(repl: Repl, arg: str) -> bool:
    if arg:
        repl.settings.system = arg
        repl.conversation.system_prompt = arg
    repl.notices.note(f"system prompt: {repl.settings.system}")
    return True


def _set(repl: Repl, arg: str) -> bool:
    key, _, value = arg.partition(" ")
    key = key.lower().replace("-", "_")
    if key and key not in config.SAMPLING_KEYS:
        repl.notices.error(f"/set knows {', '.join(config.SAMPLING_KEYS)}; not {key!r}")
        return True
    if key and not _assign(repl, key, value):
        return True
    shown = config.SAMPLING_KEYS if not key else (key,)
    values = (
        f"{name} = {'(server default)' if getattr(repl.settings, name) is None else getattr(repl.settings, name)}"
        for name in shown
    )
    repl.notices.note(" · ".join(values))
    return True


def _retry(repl: Repl, arg: str) -> bool:
    if not repl.conversation.drop_reply():
        repl.notices.error("nothing to retry yet")
        return True
    repl.journal.forget(message=False)
    repl.answer(retry=True)
    return True


def _undo(repl: Repl, arg: str) -> bool:
    if not repl.conversation.undo():
        repl.notices.error("nothing to undo")
        return True
    repl.journal.forget(message=True)
    repl.notices.note("removed the last exchange")
    return True


def _history(repl: Repl, arg: str) -> bool:
    wanted = _switch(repl, arg, "history", repl.settings.history)
    if wanted is not None:
        repl.settings.history = wanted
        repl.keep_history(wanted)
        repl.notices.note(
            "input history is kept in a file" if wanted else "input history is kept for this session only"
        )
    return True


def _toolbar(repl: Repl, arg: str) -> bool:
    wanted = _switch(repl, arg, "toolbar", repl.settings.toolbar)
    if wanted is not None:
        repl.show_toolbar(wanted)
    return True


def _multiline(repl: Repl, arg: str) -> bool:
    wanted = _switch(repl, arg, "multiline", not repl.multiline)
    if wanted is not None:
        repl.multiline = wanted
        keys = "Enter adds a line, Alt-Enter sends" if wanted else "Enter sends, Alt-Enter adds a line"
        repl.notices.note(f"multi-line mode {'on' if wanted else 'off'}: {keys}")
    return True


def _edit(repl: Repl, arg: str) -> bool:
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / "message.md"
        draft.write_text(arg or repl.pending, encoding="utf-8")
        try:
            subprocess.run([*editor, str(draft)], check=True)
        except (OSError, subprocess.CalledProcessError) as err:
            repl.notices.error(f"the editor {editor[0]} did not run: {err}")
            return True
        repl.pending = draft.read_text(encoding="utf-8", errors="replace").rstrip("\n")
    return True


FILE_LIMIT = 256 * 1024  # bytes of one attached file


def _file(repl: Repl, arg: str) -> bool:
    name, _, question = arg.partition(" ")
    if not name:
        repl.notices.error("usage: /file PATH [question]")
        return True
    path = Path(name).expanduser()
    try:
        size = path.stat().st_size
        if size > FILE_LIMIT:
            raise ValueError(f"it is {size:,} bytes; the limit is {FILE_LIMIT:,}")
        data = path.read_bytes()
        if b"\0" in data:
            raise ValueError("it is a binary file")
        text = data.decode("utf-8")
    except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        reason = "it is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else str(err)
        repl.notices.error(f"cannot attach {name}: {reason}")
        return True
    repl.attachments.append(f"File {path.name}:\n\n```\n{text}\n```")
    if question.strip():
        repl.ask(question.strip())
    else:
        repl.notices.note(f"{path.name} ({size:,} bytes) goes with your next message")
    return True


def _copy(repl: Repl, arg: str) -> bool:
    replies = [turn.content for turn in repl.conversation.turns if turn.role == "assistant"]
    if not replies:
        repl.notices.error("no reply to copy yet")
        return True
    text = replies[-1]
    if arg:
        blocks = code_blocks(text)
        if not arg.isdigit() or not 1 <= int(arg) <= len(blocks):
            choice = {0: "no code blocks", 1: "one code block: /copy 1"}.get(
                len(blocks), f"{len(blocks)} code blocks: /copy 1 to /copy {len(blocks)}"
            )
            repl.notices.error(f"the last reply has {choice}")
            return True
        text = blocks[int(arg) - 1]
    if not repl.copy_to_clipboard(text):
        repl.notices.error("copying needs a terminal: the clipboard is written through it (OSC 52)")
        return True
    repl.notices.note(f"copied {len(text):,} characters (through the terminal: it must allow OSC 52; see /help copy)")
    return True


def _clear(repl: Repl, arg: str) -> bool:
    repl.console.clear()
    return True


def _help(repl: Repl, arg: str) -> bool:
    if not arg:
        repl.show_info(help_text())
        return True
    command = _BY_NAME.get(arg.lower().lstrip("/"))
    if command is None:
        repl.notices.error(f"no command /{arg.lstrip('/')}, try /help")
        return True
    aliases = "".join(f", /{alias}" for alias in command.aliases)
    details = "".join(f"\n  {line}" for line in command.details.splitlines())
    repl.show_info(f"/{command.name} {command.arguments}".rstrip() + f"{aliases}\n  {command.help}{details}")
    return True


COMMANDS = (
    Command(
        "new",
        (),
        "",
        "start a new conversation (the system prompt stays)",
        _new,
        details="Also without the slash: new. The conversation so far stays saved; /resume brings it back.",
    ),
    Command(
        "quit",
        ("exit",),
        "",
        "leave chatrepl (Ctrl-D works too)",
        _quit,
        details="Also without the slash: quit, exit. Everything is already saved.",
    ),
    Command(
        "markdown",
        (),
        "on|off",
        "render replies as markdown, or print them as they arrive",
        _markdown,
        details="off prints replies as plain text as they arrive; --plain or markdown = false start that way.",
    ),
    Command(
        "model",
        (),
        "NAME",
        "switch model (Tab completes); alone: show the model",
        _model,
        details="Tab offers the models chatrepl knows and those the server lists.\n"
        "The conversation goes on with the new model; its context window and prices are shown.",
    ),
    Command(
        "system",
        (),
        "TEXT",
        "set the system prompt; alone: show it",
        _system,
        details="It replaces the system prompt of this conversation and of those started with new.",
    ),
    Command(
        "set",
        (),
        "KEY VALUE",
        "set temperature, top_p, max_tokens, penalties, stop, seed, n; alone: show",
        _set,
        details="The same ranges as the flags: /set temperature 0.2, /set stop END,STOP.\n"
        "/set KEY alone goes back to the default (the server's own).",
    ),
    Command(
        "json",
        (),
        "on|off",
        "JSON mode: ask for a JSON object and check the reply parses",
        _json,
        details="Sends response_format json_object; a reply that is not valid JSON is reported.",
    ),
    Command(
        "mode",
        (),
        "chat|completion",
        "chat API, or the legacy Completions API for instruct models",
        _mode,
        details="In completion mode the conversation is sent as one prompt; /set n N asks for N replies.",
    ),
    Command("retry", (), "", "ask for the last reply again, replacing it", _retry),
    Command(
        "undo",
        (),
        "",
        "remove the last message and its reply",
        _undo,
        details="It is removed from the saved conversation too.",
    ),
    Command("clear", (), "", "clear the screen (the conversation stays)", _clear),
    Command(
        "file",
        (),
        "PATH [QUESTION]",
        "attach a text file to the next message (or ask QUESTION now)",
        _file,
        details=f"Tab completes paths. Text files up to {FILE_LIMIT // 1024} KiB; binary files are refused.",
    ),
    Command(
        "copy",
        (),
        "[N]",
        "copy the last reply, or its N-th code block, to the clipboard",
        _copy,
        details="Through the terminal (OSC 52), so it works over ssh. In tmux: set -g set-clipboard on.",
    ),
    Command(
        "edit",
        (),
        "[TEXT]",
        "write the message in $VISUAL or $EDITOR (Ctrl-X Ctrl-E does too)",
        _edit,
        details="Saving and quitting the editor puts the text in the input line, ready to send.",
    ),
    Command("multiline", (), "[on|off]", "Enter adds a line and Alt-Enter sends, or back", _multiline),
    Command("history", (), "on|off", "keep the input history in a file, or this session only", _history),
    Command("toolbar", (), "on|off", "show or hide the bottom toolbar", _toolbar),
    Command("usage", (), "", "tokens and cost of this conversation so far", _usage),
    Command("sessions", (), "", "list recent saved conversations", _sessions),
    Command("resume", (), "ID", "go on with a saved conversation", _resume),
    Command("save", (), "FILE|off", "export this conversation to FILE.md or FILE.json; off: stop saving it", _save),
    Command("load", (), "FILE", "go on with a conversation exported as JSON", _load),
    Command("help", (), "[NAME]", "list the commands and keys; /help NAME: one command", _help),
)
_BY_NAME = {name: command for command in COMMANDS for name in (command.name, *command.aliases)}

KEYS_HELP = (
    "Enter sends · Alt-Enter (Esc Enter) adds a new line · pasted text stays one message\n"
    "Ctrl-C stops a reply or clears the line · Ctrl-D leaves · Up/Down walk the input history\n"
    "Ctrl-R searches the history · Right takes the grey suggestion · Tab completes · Ctrl-X Ctrl-E opens $EDITOR"
)


def help_text() -> str:
    usages = {command.name: f"/{command.name} {command.arguments}".rstrip() for command in COMMANDS}
    width = max(len(usage) for usage in usages.values())
    lines = []
    for command in COMMANDS:
        aliases = ", ".join(f"/{alias}" for alias in command.aliases)
        lines.append(f"{usages[command.name]:<{width}}  {command.help}{f'  (also {aliases})' if aliases else ''}")
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
