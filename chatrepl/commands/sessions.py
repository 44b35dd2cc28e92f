"""Commands about conversations: new, quit, retry, undo, usage; the saved ones (list, search, rename,
delete, resume) and exports (save, load)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from chatrepl.commands.base import CONTINUE, QUIT, Context, Outcome, one
from chatrepl.conversation import Conversation, from_json, to_json, to_markdown
from chatrepl.store import MATCH_END, MATCH_START

if TYPE_CHECKING:
    from chatrepl.output import Output
    from chatrepl.session import ChatSession
    from chatrepl.store import ConversationRow


def _new(context: Context, words: list[str]) -> Outcome:
    context.session.new()
    context.output.note("new conversation")
    return CONTINUE


def _quit(context: Context, words: list[str]) -> Outcome:
    return QUIT


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
    wanted = one(words)
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
    wanted = one(words)
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
    target = one(words)
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
    source = one(words)
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
