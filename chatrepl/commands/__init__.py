"""The command table: name, aliases, argument, help line, handler, and details for /help NAME.

A handler gets a narrow Context (the chat session, the output and the prompt's own
switches) and the parsed argument, and returns an Outcome: go on, leave, or send a
message.  The argument is parsed by its kind: the raw text, shell-like words (quotes
keep spaces), or paths then a question.  Bare `new`, `quit` and `exit` work as commands too.
The handlers live by topic: sessions, attachments, model (and parameters), display.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from chatrepl.attachments import split_paths
from chatrepl.commands.attachments import _attachments, _detach, _file, _image
from chatrepl.commands.base import (
    CONTINUE,
    BadArgument,
    Command,
    Context,
    Outcome,
    UnknownCommand,
    one,
    text_argument,
)
from chatrepl.commands.display import _clear, _copy, _edit, _history, _markdown, _multiline, _think, _thinking, _toolbar
from chatrepl.commands.model import _json, _mode, _model, _role, _set, _system
from chatrepl.commands.sessions import (
    _delete,
    _load,
    _new,
    _quit,
    _rename,
    _resume,
    _retry,
    _save,
    _sessions,
    _undo,
    _usage,
)
from chatrepl.commands.shell import _shell
from chatrepl.commands.tools import _mcp, _tool, _tools

BARE_WORDS = {"new", "quit", "exit"}
_SLASH_COMMAND = re.compile(r"/([A-Za-z][\w-]*)(?:\s+(.*))?", re.DOTALL)


def _help(context: Context, words: list[str]) -> Outcome:
    wanted = one(words)
    if not wanted:
        context.output.info(help_text(context.output.width))
        return CONTINUE
    command = _BY_NAME.get(wanted.lower().lstrip("/"))
    if command is None:
        context.output.error(f"no command /{wanted.lstrip('/')}, try /help")
        return CONTINUE
    aliases = "".join(f", /{alias}" for alias in command.aliases)
    room = max(context.output.width - 3, 24)
    # the details are prose: wrapped again as one paragraph
    described = [f"  {piece}" for text in (command.help, command.details) for piece in textwrap.wrap(text, room)]
    context.output.info("\n".join([f"/{command.name} {command.arguments}".rstrip() + aliases, *described]))
    return CONTINUE


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
        "switch model, PROVIDER:MODEL for a provider's (Tab completes); alone: show the model",
        _model,
        details="Tab offers the models chatrepl knows and those the server lists, and PROVIDER: prefixes;\n"
        "after one, that provider's models (asked of it once). chatrepl --providers lists them.\n"
        "The conversation goes on with the new model; its context window and prices are shown.",
    ),
    Command(
        "system",
        (),
        "TEXT",
        "set the system prompt; alone: show it",
        _system,
        parse=text_argument,
        details="It replaces the system prompt of this conversation and of those started with new.",
    ),
    Command(
        "set",
        (),
        "KEY VALUE",
        "set temperature, top_p, max_tokens, penalties, stop, seed, n, reasoning_effort; alone: show",
        _set,
        details="The same ranges as the flags: /set temperature 0.2, /set stop END,STOP.\n"
        "/set KEY alone goes back to the default (the server's own).",
    ),
    Command(
        "role",
        (),
        "[NAME]",
        "take on a role (Tab completes): its system prompt, model and parameters; alone: show it",
        _role,
        details="Roles are [roles.NAME] tables in config.toml, or files roles/NAME.md beside it (the text is\n"
        "the system prompt; TOML between +++ lines at the top sets model, parameters, examples).\n"
        "A role applies from the next message, stays across new, and is saved with the conversation.",
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
        "PATH… [QUESTION]",
        "attach text files to the next message (or ask QUESTION now)",
        _file,
        details="Globs and ~ work: /file src/*.py README.md explain the layout. Quote a path with\n"
        'spaces: /file "my notes.txt" summarize; -- ends the paths. Each file goes as a fenced block\n'
        "with its path. The files of one message are limited (file_limit, 256 KB unless set);\n"
        "binary files are refused.",
        parse=split_paths,
    ),
    Command(
        "image",
        (),
        "PATH|URL… [QUESTION]",
        "attach images to the next message for a model that sees (or ask QUESTION now)",
        _image,
        details="PNG, JPEG, WEBP or GIF, known by their first bytes; each up to image_limit (20 MB unless set).\n"
        "An http(s) address is sent as it is, not downloaded. Images are saved with the conversation,\n"
        "so /retry and /resume send them again.",
        parse=split_paths,
    ),
    Command("attachments", (), "", "list what goes with the next message", _attachments),
    Command("detach", (), "[N]", "remove attachment N, or all of them", _detach),
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
        parse=text_argument,
        details="Saving and quitting the editor puts the text in the input line, ready to send.",
    ),
    Command(
        "think",
        (),
        "",
        "show the last reply's thinking (a thinking model's reasoning)",
        _think,
        details="The reasoning is saved with the reply and never sent back to the model.",
    ),
    Command(
        "thinking",
        (),
        "collapse|show|hide",
        "how a thinking model's reasoning is shown; alone: show the mode",
        _thinking,
        details="collapse: live while the model thinks, then one line (/think shows it all).\n"
        "show: kept above the answer. hide: only a header while it thinks.",
    ),
    Command("multiline", (), "[on|off]", "Enter adds a line and Alt-Enter sends, or back", _multiline),
    Command("history", (), "on|off", "keep the input history in a file, or this session only", _history),
    Command("toolbar", (), "on|off", "show or hide the bottom toolbar", _toolbar),
    Command("usage", (), "", "tokens and cost of this conversation so far", _usage),
    Command(
        "tools",
        (),
        "",
        "list the MCP servers' tools, each with its rule (allow, ask or deny)",
        _tools,
        details="Rules: [tools] allow, ask and deny in config.toml (NAME, SERVER.NAME or SERVER.*), and\n"
        "--allow-tool PATTERN; deny beats ask, ask beats allow, and a tool no rule names is asked about.",
    ),
    Command(
        "mcp",
        (),
        "[restart NAME]",
        "list the MCP servers and how each is doing; restart one",
        _mcp,
        details="Servers are [mcp_servers.NAME] tables in config.toml, or --mcp-config FILE.json files.",
    ),
    Command("tool", (), "[N]", "list this session's tool calls; /tool N: one call's arguments and result", _tool),
    Command(
        "shell",
        (),
        "[TEXT]",
        "describe a task, get one shell command to run, revise, describe or copy; alone: shell mode",
        _shell,
        parse=text_argument,
        details="The model is told your shell, system and folder, and answers with one command; you choose\n"
        "with one key: e execute, r revise, d describe, c copy, a abort. A command that looks destructive\n"
        "is marked in red with why (a reading aid, not a sandbox). In shell mode every message asks for a\n"
        "command, until /shell again.",
    ),
    Command(
        "sessions",
        (),
        "[TEXT|N|--all]",
        "list saved conversations (page N, or all); with TEXT, those whose messages hold it",
        _sessions,
        details="A search finds every word (the last may be the start of one) in any message, and shows the\n"
        "words around the match. The same from the shell: chatrepl --sessions [TEXT].",
    ),
    Command("rename", (), "TITLE", "give this conversation a title", _rename, parse=text_argument),
    Command(
        "delete",
        (),
        "ID",
        "delete a saved conversation and its messages (asks first)",
        _delete,
        details="Deleting this conversation starts a new one. The same from the shell: chatrepl --delete ID.",
    ),
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


def help_text(columns: int) -> str:
    """The commands, each with its one-line help, and the keys, wrapped to `columns` (a description
    goes on under itself, never under the commands)."""
    usages = {command.name: f"/{command.name} {command.arguments}".rstrip() for command in COMMANDS}
    width = max(len(usage) for usage in usages.values())
    room = max(columns - width - 3, 24)  # the description's; one column spare, so no line ends at the edge
    lines = []
    for command in COMMANDS:
        aliases = ", ".join(f"/{alias}" for alias in command.aliases)
        described = textwrap.wrap(f"{command.help}{f'  (also {aliases})' if aliases else ''}", room)
        lines.append(f"{usages[command.name]:<{width}}  {described[0]}")
        lines.extend(f"{'':<{width}}  {more}" for more in described[1:])
    lines.append("new, quit and exit work without the slash.")
    return "\n".join([*lines, "", *_keys_help(columns - 1)])


def _keys_help(columns: int) -> list[str]:
    """KEYS_HELP's lines, each broken between its ` · `-separated hints where it is wider than `columns`."""
    lines = []
    for line in KEYS_HELP.splitlines():
        current = ""
        for hint in line.split(" · "):
            if current and len(current) + 3 + len(hint) > columns:
                lines.append(current)
                current = hint
            else:
                current = f"{current} · {hint}" if current else hint
        lines.append(current)
    return lines


def parse(line: str) -> tuple[Command, Any] | None:
    """The command a line asks for and its parsed argument, or None for a message to the model.

    Raises UnknownCommand for a `/word` that names no command, BadArgument for an argument
    that cannot be parsed (an unclosed quote).
    """
    stripped = line.strip()
    if stripped.lower() in BARE_WORDS:
        return _BY_NAME[stripped.lower()], []
    match = _SLASH_COMMAND.fullmatch(stripped)
    if not match:
        return None
    word = match.group(1).lower()
    if word not in _BY_NAME:
        raise UnknownCommand(match.group(1))
    command = _BY_NAME[word]
    try:
        return command, command.parse((match.group(2) or "").strip())
    except ValueError as err:
        raise BadArgument(f"/{command.name}: {str(err).lower()}") from None


def run(context: Context, command: Command, argument: Any) -> Outcome:
    """Run a parsed command; a bad argument is reported, not raised."""
    try:
        return command.handler(context, argument)
    except BadArgument as err:
        context.output.error(f"/{command.name}: {err}")
        return CONTINUE
