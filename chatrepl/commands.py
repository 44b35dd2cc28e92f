"""The command table: name, aliases, argument, help line, handler, and details for /help NAME.

A handler gets a narrow Context (the chat session, the output and the prompt's own
switches) and the parsed argument, and returns an Outcome: go on, leave, or send a
message.  The argument is parsed by its kind: the raw text, shell-like words (quotes
keep spaces), or paths then a question.  Bare `new`, `quit` and `exit` work as commands too.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatrepl import config, roles
from chatrepl.attachments import AttachError, Pending, read_files, read_images, split_paths
from chatrepl.config import SAMPLING_KEYS
from chatrepl.conversation import Conversation, from_json, to_json, to_markdown
from chatrepl.providers import MissingKey
from chatrepl.render import code_blocks
from chatrepl.store import MATCH_END, MATCH_START

if TYPE_CHECKING:
    from chatrepl.output import Output
    from chatrepl.session import ChatSession
    from chatrepl.store import ConversationRow

BARE_WORDS = {"new", "quit", "exit"}
_SLASH_COMMAND = re.compile(r"/([A-Za-z][\w-]*)(?:\s+(.*))?", re.DOTALL)


class Screen(Protocol):
    """The prompt's own state that commands may change."""

    multiline: bool
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


def _one(words: list[str]) -> str:
    """The one word of an argument ("" for none); a command taking one word ignores no extra words."""
    if len(words) > 1:
        raise BadArgument(f"expected one argument, got {len(words)} (quote a path with spaces)")
    return words[0] if words else ""


def _new(context: Context, words: list[str]) -> Outcome:
    context.session.new()
    context.output.note("new conversation")
    return CONTINUE


def _quit(context: Context, words: list[str]) -> Outcome:
    return QUIT


def _switch(context: Context, words: list[str], name: str, current: bool) -> bool | None:
    """The state `/name on|off` asks for (`current` without an argument); None after reporting a bad one."""
    choice = _one(words).lower()
    if choice in ("on", "off", ""):
        return choice == "on" if choice else current
    context.output.error(f"/{name} takes on or off, not {_one(words)!r}")
    return None


def _markdown(context: Context, words: list[str]) -> Outcome:
    wanted = _switch(context, words, "markdown", not context.output.plain)
    if wanted is not None:
        context.output.plain = not wanted
        context.output.note(f"markdown rendering is {'on' if wanted else 'off'}")
    return CONTINUE


def _json(context: Context, words: list[str]) -> Outcome:
    session = context.session
    wanted = _switch(context, words, "json", session.params.json)
    if wanted is None:
        return CONTINUE
    session.set_parameter("json", wanted)
    caveat = "" if session.rules.json_mode else f" ({session.model} has no JSON mode: only the hint is sent)"
    context.output.note(f"JSON mode is {'on' if wanted else 'off'}{caveat}")
    return CONTINUE


def _parsed(context: Context, key: str, value: str) -> tuple[bool, Any]:
    """`value` parsed as setting `key` (empty: back to unset); (False, None) after reporting a bad one."""
    try:
        return True, config.OPTION_BY_KEY[key].parse(value) if value.strip() else None
    except ValueError as err:
        context.output.error(str(err))
        return False, None


def _mode(context: Context, words: list[str]) -> Outcome:
    session = context.session
    if words:
        ok, value = _parsed(context, "mode", _one(words))
        if not ok:
            return CONTINUE
        session.set_parameter("mode", value or "chat")
    forced = session.rules.api == "completions" and session.params.mode == "chat"
    note = f" ({session.model} only has the Completions API, so completion mode is used)" if forced else ""
    context.output.note(f"mode: {session.params.mode}{note}")
    return CONTINUE


def _usage(context: Context, words: list[str]) -> Outcome:
    session = context.session
    turns = sum(turn.role == "assistant" for turn in session.conversation.turns)
    context.output.note(f"this conversation: {turns} replies · {session.tally.summary()}")
    return CONTINUE


PAGE = 20  # conversations /sessions shows at a time


def conversation_line(row: ConversationRow) -> str:
    """One saved conversation in a list: id, when, turns, model (with its provider), role, title."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.updated))
    role = f" [{row.role}]" if row.role else ""
    return f"{row.id:>5}  {when}  {row.turns:>3} turns  {row.model:<16}{role} {row.title}"


def list_sessions(session: ChatSession, output: Output, words: list[str]) -> bool:
    """/sessions and chatrepl --sessions: a page of the latest (a number: that page; --all: every one),
    or the conversations whose messages hold the words; False when there is nothing to list."""
    if session.store is None:
        output.note("saving is off: no sessions to list")
        return False
    if words and not (words == ["--all"] or (len(words) == 1 and words[0].isdigit())):
        found = session.search(" ".join(words))
        if not found:
            output.note(f"no saved conversation holds {' '.join(words)!r}")
        for row, snippet in found:
            output.info(conversation_line(row))
            output.snippet(snippet, MATCH_START, MATCH_END)
        return bool(found)
    page = max(1, int(words[0])) if words and words[0].isdigit() else 1
    size = 1_000_000_000 if words == ["--all"] else PAGE
    rows, total = session.saved_conversations(limit=size, offset=(page - 1) * size)
    if not rows:
        output.note(
            "no saved conversations yet" if not total else f"there are {total} saved conversations: no page {page}"
        )
    for row in rows:
        output.info(conversation_line(row))
    pages = -(-total // size)
    if rows and pages > 1:
        following = f"/sessions {page + 1} for the next, " if page < pages else ""
        output.note(f"page {page} of {pages} ({total} conversations): {following}/sessions --all for every one")
    return bool(rows)


def _sessions(context: Context, words: list[str]) -> Outcome:
    list_sessions(context.session, context.output, words)
    return CONTINUE


def _rename(context: Context, title: str) -> Outcome:
    title = " ".join(title.split())
    if not title:
        context.output.error("usage: /rename TITLE")
    elif not context.session.rename(title):
        context.output.error("this conversation is not saved yet: send a message first")
    else:
        context.output.note(f"this conversation is now called {title!r}")
    return CONTINUE


def deletion_question(row: ConversationRow) -> str:
    """What /delete and chatrepl --delete ask first."""
    return f"delete conversation {row.id}, {row.title!r} ({row.turns} turns)?"


def _delete(context: Context, words: list[str]) -> Outcome:
    wanted = _one(words)
    session = context.session
    row = session.saved(int(wanted)) if wanted.isdigit() else None
    if not wanted.isdigit():
        context.output.error("usage: /delete ID (the ids are in /sessions)")
    elif row is None:
        context.output.error(f"no saved conversation {wanted}")
    elif not context.screen.confirm(deletion_question(row)):
        context.output.note("nothing deleted")
    else:
        current = row.id == session.journal.conversation_id
        session.delete(row.id)
        context.output.note(f"deleted conversation {row.id}" + (": a new one begins" if current else ""))
    return CONTINUE


def _resume(context: Context, words: list[str]) -> Outcome:
    wanted = _one(words)
    if not wanted.isdigit():
        context.output.error("usage: /resume ID (the ids are in /sessions)")
    elif context.session.store is None:
        context.output.error("saving is off: nothing to resume")
    elif not resume(context, int(wanted)):
        context.output.error(f"no saved conversation {wanted}")
    return CONTINUE


def resume(context: Context, conversation_id: int) -> bool:
    """Go on with a saved conversation and show its history; False if there is none."""
    session = context.session
    row = session.resume(conversation_id)
    if row is None:
        return False
    context.output.note(f"resumed conversation {row.id}: {row.title} · {session.model}")
    context.output.history(session.conversation.turns)
    return True


def _save(context: Context, words: list[str]) -> Outcome:
    target = _one(words)
    if target.lower() == "off":
        context.session.stop_saving()
        context.output.note("this session is no longer saved")
        return CONTINUE
    if not target:
        context.output.error("usage: /save FILE.md, /save FILE.json, or /save off")
        return CONTINUE
    try:
        context.output.note(export(context.session.conversation, Path(target).expanduser()))
    except ValueError as err:
        context.output.error(str(err))
    except OSError as err:
        context.output.error(f"not saved: {err}")
    return CONTINUE


def export(conversation: Conversation, path: Path) -> str:
    """Write the conversation to FILE.md (its images beside it) or FILE.json, and say so; ValueError
    for another kind of file, OSError if it cannot be written."""
    if path.suffix.lower() == ".json":
        text, images = to_json(conversation), {}
    elif path.suffix.lower() == ".md":
        text, images = to_markdown(conversation, image_stem=path.stem)
    else:
        raise ValueError("conversations are exported to .md or .json files")
    for name, data in images.items():
        path.with_name(name).write_bytes(data)
    path.write_text(text, encoding="utf-8")
    beside = f" and {len(images)} image(s) beside it" if images else ""
    return f"saved to {path}{beside}"


def _load(context: Context, words: list[str]) -> Outcome:
    source = _one(words)
    if not source:
        context.output.error("usage: /load FILE.json (a file written by /save)")
        return CONTINUE
    try:
        conversation = from_json(Path(source).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        context.output.error(f"cannot load {source}: {err}")
        return CONTINUE
    context.session.load(conversation)
    context.output.note(f"loaded {len(conversation.turns)} messages")
    context.output.history(conversation.turns)
    return CONTINUE


def _model(context: Context, words: list[str]) -> Outcome:
    session = context.session
    if words:
        ok, value = _parsed(context, "model", _one(words))
        if not ok:
            return CONTINUE
        try:
            session.switch_model(value)
        except MissingKey as err:
            context.output.error(f"{err} (the model stays {session.model})")
            return CONTINUE
    context.output.note(" · ".join([f"model {session.model}", *session.rules.facts()]))
    unseen = len(session.conversation.images()) if session.rules.vision is False else 0
    if unseen:
        context.output.note(
            f"{session.model} cannot see images: the {unseen} image(s) in this conversation are sent by name only"
        )
    return CONTINUE


def _system(context: Context, text: str) -> Outcome:
    if text.strip():
        context.session.set_system_prompt(text.strip())
    context.output.note(f"system prompt: {context.session.system_prompt}")
    return CONTINUE


def _set(context: Context, words: list[str]) -> Outcome:
    session = context.session
    key = words[0].lower().replace("-", "_") if words else ""
    if key and key not in SAMPLING_KEYS:
        context.output.error(f"/set knows {', '.join(SAMPLING_KEYS)}; not {key!r}")
        return CONTINUE
    if key:
        ok, value = _parsed(context, key, " ".join(words[1:]))
        if not ok:
            return CONTINUE
        session.set_parameter(key, value)
        if key == "reasoning_effort" and value and session.rules.reasoning_effort is False:
            context.output.note(f"{session.model} takes no reasoning_effort: it is not sent")
    shown = SAMPLING_KEYS if not key else (key,)
    values = []
    for name in shown:
        value = getattr(session.params, name)
        written = "(server default)" if value is None else ",".join(value) if name == "stop" else value
        values.append(f"{name} = {written}")
    context.output.note(" · ".join(values))
    return CONTINUE


def role_choices(session: ChatSession) -> dict[str, str]:
    """Every role there is, by name, with its system prompt's first line (or what is wrong with its file)."""
    choices = {}
    for name, found in roles.available(session.roles, roles.roles_dir(os.environ)).items():
        try:
            choices[name] = (found if isinstance(found, roles.Role) else roles.from_file(found)).summary()
        except (OSError, UnicodeDecodeError, ValueError) as err:
            choices[name] = f"unusable: {err}"
    return choices


def _role(context: Context, words: list[str]) -> Outcome:
    session, name = context.session, _one(words)
    if name:
        try:
            role, examples = roles.take_on(name, session.roles, roles.roles_dir(os.environ))
            session.use_role(role, examples)
        except ValueError as err:  # no such role, a bad file, its provider's key not set
            context.output.error(str(err))
            return CONTINUE
    if session.role:
        context.output.note(f"role {session.role} · {session.model} · system prompt: {session.system_prompt}")
    else:
        where = f"none yet: [roles.NAME] in config.toml, or files in {roles.roles_dir(os.environ)}"
        context.output.note(f"no role (roles: {', '.join(sorted(role_choices(session))) or where})")
    return CONTINUE


def _retry(context: Context, words: list[str]) -> Outcome:
    if not context.session.conversation.exchanges():
        context.output.error("nothing to retry yet")
        return CONTINUE
    return Outcome(retry=True)


def _undo(context: Context, words: list[str]) -> Outcome:
    if not context.session.undo():
        context.output.error("nothing to undo")
    else:
        context.output.note("removed the last exchange")
    return CONTINUE


def _history(context: Context, words: list[str]) -> Outcome:
    wanted = _switch(context, words, "history", context.screen.history_kept)
    if wanted is not None:
        context.screen.keep_history(wanted)
        context.output.note(
            "input history is kept in a file" if wanted else "input history is kept for this session only"
        )
    return CONTINUE


def _toolbar(context: Context, words: list[str]) -> Outcome:
    wanted = _switch(context, words, "toolbar", context.screen.toolbar_shown)
    if wanted is not None:
        context.screen.show_toolbar(wanted)
    return CONTINUE


def _multiline(context: Context, words: list[str]) -> Outcome:
    wanted = _switch(context, words, "multiline", not context.screen.multiline)
    if wanted is not None:
        context.screen.multiline = wanted
        keys = "Enter adds a line, Alt-Enter sends" if wanted else "Enter sends, Alt-Enter adds a line"
        context.output.note(f"multi-line mode {'on' if wanted else 'off'}: {keys}")
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


def _file(context: Context, argument: tuple[list[str], str]) -> Outcome:
    patterns, question = argument
    if not patterns:
        context.output.error("usage: /file PATH… [QUESTION] (globs work; quote a path with spaces)")
        return CONTINUE
    pending = context.screen.attachments
    files, problems = read_files(patterns, pending.file_room(), _no_stdin)
    pending.items.extend(files)
    return _attached(context, [file.describe() for file in files], problems, question)


def _image(context: Context, argument: tuple[list[str], str]) -> Outcome:
    specs, question = argument
    if not specs:
        context.output.error("usage: /image PATH|URL… [QUESTION] (PNG, JPEG, WEBP or GIF)")
        return CONTINUE
    refusal = context.session.image_refusal()
    if refusal:
        context.output.error(refusal)
        return CONTINUE
    pending = context.screen.attachments
    images, problems = read_images(specs, pending.image_limit, _no_stdin)
    pending.items.extend(images)
    return _attached(context, [image.describe() for image in images], problems, question)


def _no_stdin(limit: int) -> bytes:
    raise AttachError("- (standard input) is for --file and --image on the command line")


def _attached(context: Context, added: list[str], problems: list[str], question: str) -> Outcome:
    """Report what was attached and what was not; send the question if all went, else offer it again."""
    for problem in problems:
        context.output.error(problem)
    if question and not problems:
        return Outcome(send=question)
    if question:
        context.screen.pending = question
    if added:
        context.output.note(f"{', '.join(added)} {'goes' if len(added) == 1 else 'go'} with your next message")
    return CONTINUE


def _attachments(context: Context, words: list[str]) -> Outcome:
    items = context.screen.attachments.items
    if not items:
        context.output.note("nothing is attached (/file and /image attach)")
    for number, item in enumerate(items, 1):
        context.output.info(f"{number:>3}  {item.describe()}")
    return CONTINUE


def _detach(context: Context, words: list[str]) -> Outcome:
    items = context.screen.attachments.items
    number = _one(words)
    if not number:
        context.output.note(f"detached {len(items)} attachment(s)" if items else "nothing is attached")
        items.clear()
    elif not number.isdigit() or not 1 <= int(number) <= len(items):
        choice = "nothing is attached" if not items else f"the attachments are numbered 1 to {len(items)}"
        context.output.error(f"/detach N: {choice} (/attachments lists them)")
    else:
        context.output.note(f"detached {items.pop(int(number) - 1).describe()}")
    return CONTINUE


def _copy(context: Context, words: list[str]) -> Outcome:
    replies = [turn.content for turn in context.session.conversation.turns if turn.role == "assistant"]
    if not replies:
        context.output.error("no reply to copy yet")
        return CONTINUE
    text = replies[-1]
    number = _one(words)
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


def _think(context: Context, words: list[str]) -> Outcome:
    replies = [turn for turn in context.session.conversation.turns if turn.role == "assistant"]
    if not replies or not replies[-1].reasoning:
        context.output.error("the last reply has no thinking to show")
        return CONTINUE
    context.output.reasoning(replies[-1].reasoning)
    return CONTINUE


def _thinking(context: Context, words: list[str]) -> Outcome:
    if words:
        ok, value = _parsed(context, "thinking", _one(words))
        if not ok:
            return CONTINUE
        context.output.thinking = value or "collapse"
    context.output.note(f"thinking: {context.output.thinking}")
    return CONTINUE


def _clear(context: Context, words: list[str]) -> Outcome:
    context.output.clear()
    return CONTINUE


def _help(context: Context, words: list[str]) -> Outcome:
    wanted = _one(words)
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
