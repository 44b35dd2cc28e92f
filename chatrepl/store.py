"""SQLite sessions: conversations, messages and partial replies; schema migrations.

WAL mode so a reader never blocks a writer, a busy timeout so two chatrepl processes
writing at once wait for each other instead of failing, and every write all or nothing
in a BEGIN IMMEDIATE transaction.  The journal (`journal.py`) writes from a thread of
its own, so the database never holds up a reply, and signals never land inside a write.  The schema version is
`PRAGMA user_version`; MIGRATIONS[n] takes a database from version n to n + 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatrepl.conversation import Turn
from chatrepl.images import Image
from chatrepl.options import app_dir, open_private

APPLICATION_ID = 0x63687270  # "chrp" in the file's header: this database is chatrepl's
SQLITE_HEADER = b"SQLite format 3\x00"

MIGRATIONS = [
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL,
        system_prompt TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        model TEXT,
        parameters TEXT,
        tokens_in INTEGER,
        tokens_out INTEGER,
        cost REAL,
        finish_reason TEXT,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    """,
    # The parameters a conversation last used, and a streaming reply's text in appended pieces
    # (saving it whole again at every save would cost the square of its length).
    f"""
    PRAGMA application_id = {APPLICATION_ID};
    ALTER TABLE conversations ADD COLUMN parameters TEXT NOT NULL DEFAULT '{{}}';
    CREATE TABLE reply_pieces (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        text TEXT NOT NULL
    );
    CREATE INDEX reply_pieces_by_message ON reply_pieces(message_id);
    """,
    # A reply's reasoning (the model's thinking), whole once finished and in pieces while it streams.
    """
    ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT '';
    ALTER TABLE reply_pieces ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
    """,
    # A user message's images: each file's bytes stored once however often it is sent, and
    # images given by address as the address.
    """
    CREATE TABLE images (
        sha256 TEXT PRIMARY KEY,
        data BLOB NOT NULL
    );
    CREATE TABLE message_images (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT REFERENCES images(sha256),
        url TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (message_id, position)
    );
    CREATE INDEX message_images_by_image ON message_images(sha256);
    """,
    # Full-text search of every message (an index kept in step with the messages by triggers,
    # filled from those already saved), and the role a conversation uses.
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
    ALTER TABLE conversations ADD COLUMN role TEXT NOT NULL DEFAULT '';
    CREATE INDEX conversations_by_update ON conversations(updated, id);
    """,
    # A reply's tool calls and their results (with the decision and the time each took), and a shell
    # command's (the command, whether it ran, its status), as JSON.
    """
    ALTER TABLE messages ADD COLUMN tools TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE messages ADD COLUMN shell TEXT NOT NULL DEFAULT '';
    CREATE VIRTUAL TABLE tools_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
    CREATE TRIGGER tools_fts_update AFTER UPDATE OF tools ON messages BEGIN
        DELETE FROM tools_fts WHERE rowid = old.id;
        INSERT INTO tools_fts(rowid, text)
            SELECT new.id, group_concat(coalesce(json_extract(message.value, '$.content'), '') || coalesce((
                SELECT group_concat(
                    json_extract(call.value, '$.function.name') || ' '
                    || json_extract(call.value, '$.function.arguments'), ' '
                ) FROM json_each(json_extract(message.value, '$.tool_calls')) AS call
            ), ''), ' ') FROM json_each(new.tools) AS message HAVING count(*) > 0;
    END;
    CREATE TRIGGER tools_fts_delete AFTER DELETE ON messages BEGIN
        DELETE FROM tools_fts WHERE rowid = old.id;
    END;
    """,
]
TEXT, REASONING = "text", "reasoning"  # the kinds of reply pieces
MATCH_START, MATCH_END = "\x02", "\x03"  # around the words a search matched, in its snippets
SEARCH_BATCH = 500  # matching messages a search reads at a time


OPEN_PATIENCE = 10.0  # seconds to keep trying while another process holds the database
BUSY_TIMEOUT = 10.0  # seconds a write waits for another process's


class StoreError(Exception):
    """The database cannot be used; the message says why."""


class NotChatreplDatabase(StoreError):
    """The file is something else than chatrepl's database: it is left as it is."""


@dataclass(frozen=True)
class ConversationRow:
    """A saved conversation: its title, model, system prompt, parameters and role, its number of turns
    and when it last changed."""

    id: int
    title: str
    model: str
    system_prompt: str
    turns: int
    updated: float
    parameters: dict[str, Any] = field(default_factory=dict)
    role: str = ""


@dataclass(frozen=True)
class MessageRow:
    """A saved message."""

    role: str
    content: str
    status: str
    reasoning: str = ""
    images: tuple[Image, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    shell: dict[str, Any] | None = None


def _tool_messages(text: str) -> tuple[dict[str, Any], ...]:
    """A saved reply's tool exchange (none if what is saved cannot be read)."""
    try:
        messages = json.loads(text)
    except ValueError:
        return ()
    return tuple(message for message in messages if isinstance(message, dict)) if isinstance(messages, list) else ()


def default_path(environ: Mapping[str, str]) -> Path:
    return app_dir(environ, "XDG_DATA_HOME") / "chatrepl.db"


def _is_corrupt(err: sqlite3.DatabaseError) -> bool:
    """The file is not an SQLite database, or a damaged one."""
    name = getattr(err, "sqlite_errorname", "")
    if name:
        return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
    return "not a database" in str(err) or "malformed" in str(err)


def _header(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(100)
    except OSError:
        return b""


def _is_chatrepls(header: bytes) -> bool:
    """An SQLite file that chatrepl made: its header carries chatrepl's application id."""
    return header.startswith(SQLITE_HEADER) and int.from_bytes(header[68:72], "big") == APPLICATION_ID


def _create_private(path: Path) -> None:
    """Make the directory (0700) and an empty file (0600) before SQLite opens it."""
    with suppress(FileExistsError):
        os.close(open_private(path, os.O_WRONLY | os.O_EXCL))


class Store:
    """One connection to the database; a Writer opens one of its own for the journal."""

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.moved_aside: Path | None = None  # where a damaged database was put
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as err:
            if not _is_corrupt(err):  # locked, unreadable, read-only: not a reason to move anything
                raise StoreError(f"cannot open {path}: {err}") from err
            if not _is_chatrepls(_header(path)):
                raise NotChatreplDatabase(
                    f"{path} is not a chatrepl history database; it is left as it is (choose another with --db)"
                ) from err
            self.moved_aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, self.moved_aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self._db = self._open()
        except OSError as err:
            raise StoreError(f"cannot open {path}: {err}") from err

    def _open(self) -> sqlite3.Connection:
        header = _header(self.path)
        if header and not header.startswith(SQLITE_HEADER):
            raise NotChatreplDatabase(
                f"{self.path} is not an SQLite database; it is left as it is (choose another file with --db)"
            )
        _create_private(self.path)
        deadline = time.monotonic() + OPEN_PATIENCE
        while True:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
            try:
                db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                db.execute("PRAGMA journal_mode = WAL")
                # Commits reach the OS at once (a killed chatrepl loses nothing) without waiting
                # for the disk on every one.
                db.execute("PRAGMA synchronous = NORMAL")
                db.execute("PRAGMA foreign_keys = ON")
                self._migrate(db)
                return db
            except sqlite3.OperationalError as err:
                db.close()
                # Switching a new database to WAL while another process opens it can fail
                # at once with "locked" instead of waiting: wait here instead.
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            except BaseException:
                db.close()
                raise

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring the schema up to date; a database that is up to date is only read, so opening
        it never waits for another process's write."""
        if self._schema(db) == len(MIGRATIONS):
            return
        with _transaction(db):
            version = self._schema(db)
            for number in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def _schema(self, db: sqlite3.Connection) -> int:
        """The schema version; StoreError if the database is not chatrepl's or is newer."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        application = db.execute("PRAGMA application_id").fetchone()[0]
        tables = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if application not in (0, APPLICATION_ID) or (version == 0 and tables):
            raise NotChatreplDatabase(
                f"{self.path} is another program's SQLite database; it is left as it is (choose another with --db)"
            )
        if version > len(MIGRATIONS):
            raise StoreError(f"the database is from a newer chatrepl (schema {version})")
        return version

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return _transaction(self._db)

    def reopen(self) -> Store:
        """Another connection to the same database, for another thread."""
        return Store(self.path, self.busy_timeout)

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _insert_conversation(
        db: sqlite3.Connection, model: str, system_prompt: str, title: str, parameters: dict[str, Any], role: str = ""
    ) -> int:
        now = time.time()
        cursor = db.execute(
            "INSERT INTO conversations (title, model, system_prompt, parameters, role, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (title, model, system_prompt, json.dumps(parameters), role, now, now),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @staticmethod
    def _update_conversation(
        db: sqlite3.Connection,
        conversation_id: int,
        model: str,
        system_prompt: str,
        parameters: dict[str, Any],
        role: str,
    ) -> None:
        db.execute(
            "UPDATE conversations SET model = ?, system_prompt = ?, parameters = ?, role = ? WHERE id = ?",
            (model, system_prompt, json.dumps(parameters), role, conversation_id),
        )

    @staticmethod
    def _insert_message(
        db: sqlite3.Connection,
        conversation_id: int,
        role: str,
        content: str,
        status: str,
        model: str,
        parameters: dict[str, Any],
    ) -> int:
        now = time.time()
        cursor = db.execute(
            "INSERT INTO messages (conversation_id, role, content, model, parameters, status, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, role, content, model, json.dumps(parameters), status, now, now),
        )
        db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @staticmethod
    def _insert_images(db: sqlite3.Connection, message_id: int, images: tuple[Image, ...]) -> None:
        for position, image in enumerate(images):
            digest = None
            if image.data:
                digest = image.sha256
                db.execute("INSERT OR IGNORE INTO images (sha256, data) VALUES (?, ?)", (digest, image.data))
            db.execute(
                "INSERT INTO message_images (message_id, position, name, sha256, url) VALUES (?, ?, ?, ?, ?)",
                (message_id, position, image.name, digest, image.url),
            )

    @staticmethod
    def _drop_unused_images(db: sqlite3.Connection) -> None:
        """Delete the images no message refers to any more (after messages were deleted)."""
        db.execute(
            "DELETE FROM images WHERE NOT EXISTS (SELECT 1 FROM message_images m WHERE m.sha256 = images.sha256)"
        )

    def import_conversation(self, model: str, system_prompt: str, title: str, turns: list[Turn]) -> int:
        """A whole conversation, in one transaction."""
        with self._write() as db:
            conversation_id = self._insert_conversation(db, model, system_prompt, title, {})
            for turn in turns:
                message_id = self._insert_message(db, conversation_id, turn.role, turn.content, turn.status, model, {})
                self._insert_images(db, message_id, turn.images)
                if turn.tools or turn.reasoning:
                    tools = json.dumps(turn.tools, ensure_ascii=False)
                    db.execute(
                        "UPDATE messages SET tools = ?, reasoning = ? WHERE id = ?", (tools, turn.reasoning, message_id)
                    )
        return conversation_id

    def set_conversation(
        self, conversation_id: int, model: str, system_prompt: str, parameters: dict[str, Any], role: str = ""
    ) -> None:
        """Record the model, system prompt, parameters and role a conversation goes on with."""
        with self._write() as db:
            self._update_conversation(db, conversation_id, model, system_prompt, parameters, role)

    def begin_turn(self, turn: TurnStart) -> tuple[int, int | None, int]:
        """In one transaction: the conversation (made or brought up to date), the user's message
        (unless it is saved already) and the reply to come, marked interrupted until it is finished.
        Returns the ids of the conversation, the user's message and the reply."""
        with self._write() as db:
            conversation_id = turn.conversation_id
            model, system_prompt, parameters = turn.model, turn.system_prompt, turn.conversation_parameters
            if conversation_id is None:
                title = " ".join((turn.user_text or "").split())[:60]
                conversation_id = self._insert_conversation(db, model, system_prompt, title, parameters, turn.role)
            else:
                self._update_conversation(db, conversation_id, model, system_prompt, parameters, turn.role)
            user_id = None
            if turn.user_text is not None:
                user_id = self._insert_message(db, conversation_id, "user", turn.user_text, "complete", turn.model, {})
                self._insert_images(db, user_id, turn.images)
            reply_id = self._insert_message(
                db, conversation_id, "assistant", "", "interrupted", turn.model, turn.sent_parameters
            )
        return conversation_id, user_id, reply_id

    def append_reply(self, reply_id: int, text: str, kind: str = TEXT) -> None:
        """Save more of a reply that is still streaming (or, of kind REASONING, of its thinking)."""
        with self._write() as db:
            db.execute("INSERT INTO reply_pieces (message_id, text, kind) VALUES (?, ?, ?)", (reply_id, text, kind))

    def finish_reply(self, reply_id: int, content: str, status: str, **figures: Any) -> None:
        """The whole reply, its status and its reasoning, tools or shell (JSON), tokens_in, tokens_out, cost or
        finish_reason."""
        allowed = {"reasoning", "tools", "shell", "tokens_in", "tokens_out", "cost", "finish_reason"}
        if set(figures) - allowed:
            raise ValueError(f"cannot update {sorted(set(figures) - allowed)}")
        assignments = "".join(f", {name} = ?" for name in figures)
        with self._write() as db:
            db.execute(
                f"UPDATE messages SET content = ?, status = ?{assignments}, updated = ? WHERE id = ?",
                (content, status, *figures.values(), time.time(), reply_id),
            )
            db.execute("DELETE FROM reply_pieces WHERE message_id = ?", (reply_id,))

    def take_back(self, conversation_id: int, message_ids: list[int]) -> bool:
        """Delete the messages of a turn that failed, and the conversation if that leaves it empty
        (then True)."""
        with self._write() as db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(message_id,) for message_id in message_ids])
            cursor = db.execute(
                "DELETE FROM conversations WHERE id = ? AND NOT EXISTS"
                " (SELECT 1 FROM messages WHERE conversation_id = conversations.id)",
                (conversation_id,),
            )
            self._drop_unused_images(db)
        return cursor.rowcount > 0

    def drop_last_exchange(self, conversation_id: int, keep_message: bool) -> None:
        """Delete the conversation's last user message (unless `keep_message`) and everything after it."""
        with self._write() as db:
            row = db.execute(
                "SELECT MAX(id) FROM messages WHERE conversation_id = ? AND role = 'user'", (conversation_id,)
            ).fetchone()
            if row[0] is not None:
                first = row[0] + 1 if keep_message else row[0]
                db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conversation_id, first))
                self._drop_unused_images(db)

    def _conversation_rows(self, where: str, parameters: tuple[Any, ...]) -> list[ConversationRow]:
        rows = self._db.execute(
            "SELECT c.id, c.title, c.model, c.system_prompt,"
            " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user'),"
            f" c.updated, c.parameters, c.role FROM conversations c {where}",
            parameters,
        ).fetchall()
        return [ConversationRow(*row[:6], parameters=_json_object(row[6]), role=row[7]) for row in rows]

    def conversations(self, limit: int = 20, offset: int = 0) -> list[ConversationRow]:
        """Saved conversations, the one written to last first."""
        return self._conversation_rows("ORDER BY c.updated DESC, c.id DESC LIMIT ? OFFSET ?", (limit, offset))

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]

    def search(self, text: str, limit: int = 20) -> list[tuple[ConversationRow, str]]:
        """The conversations whose messages (or their tool calls and results) hold every word of `text`
        (the last may be the start of a word), the latest match first, each with the words around its
        latest match, the matched words between MATCH_START and MATCH_END."""
        words = text.split()
        if not words:
            return []
        query = " ".join(f'"{word.replace(chr(34), chr(34) * 2)}"' for word in words) + "*"
        latest: dict[int, int] = {}  # conversation -> its latest matching message
        below = None
        # Newest messages first, in batches: the index walks its rowids backwards and stops early,
        # so a word found in nearly every message costs no more than a rare one.
        while len(latest) < limit:
            top = below if below is not None else 2**63 - 1
            batch = self._db.execute(
                "SELECT m.id, m.conversation_id FROM (SELECT rowid AS id FROM messages_fts WHERE messages_fts MATCH ?"
                " AND rowid < ? UNION SELECT rowid FROM tools_fts WHERE tools_fts MATCH ? AND rowid < ?"
                " ORDER BY id DESC LIMIT ?) f JOIN messages m ON m.id = f.id ORDER BY m.id DESC",
                (query, top, query, top, SEARCH_BATCH),
            ).fetchall()
            for message_id, conversation_id in batch:
                if len(latest) < limit:
                    latest.setdefault(conversation_id, message_id)
            if len(batch) < SEARCH_BATCH:
                break
            below = batch[-1][0]
        if not latest:
            return []
        marks = ",".join("?" * len(latest))
        # A match in a reply's tool calls shows there: what the tools were asked and gave follows the reply.
        contents = dict(
            self._db.execute(
                f"SELECT m.id, m.content || coalesce(char(10) || t.text, '') FROM messages m"
                f" LEFT JOIN tools_fts t ON t.rowid = m.id WHERE m.id IN ({marks})",
                tuple(latest.values()),
            )
        )
        rows = {row.id: row for row in self._conversation_rows(f"WHERE c.id IN ({marks})", tuple(latest))}
        return [
            (rows[conversation_id], snippet(contents[message], words)) for conversation_id, message in latest.items()
        ]

    def rename(self, conversation_id: int, title: str) -> None:
        with self._write() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation with its messages (and images nothing else uses)."""
        with self._write() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            self._drop_unused_images(db)

    def conversation(self, conversation_id: int) -> tuple[ConversationRow, list[MessageRow]] | None:
        """A saved conversation; a reply cut off by a kill has what was saved of it, and one
        cut off before any of it was saved is left out."""
        found = self._conversation_rows("WHERE c.id = ?", (conversation_id,))
        if not found:
            return None
        rows = self._db.execute(
            f"SELECT m.id, m.role, m.content || {_PIECES.format(kind=TEXT)}, m.status,"
            f" m.reasoning || {_PIECES.format(kind=REASONING)}, m.tools, m.shell"
            " FROM messages m WHERE m.conversation_id = ? ORDER BY m.id",
            (conversation_id,),
        ).fetchall()
        images: dict[int, list[Image]] = {}
        for message_id, name, data, url in self._db.execute(
            "SELECT p.message_id, p.name, i.data, p.url FROM message_images p"
            " JOIN messages m ON m.id = p.message_id LEFT JOIN images i ON i.sha256 = p.sha256"
            " WHERE m.conversation_id = ? ORDER BY p.message_id, p.position",
            (conversation_id,),
        ):
            images.setdefault(message_id, []).append(Image(name, data or b"", url))
        messages = [
            MessageRow(*row[1:5], tuple(images.get(row[0], ())), _tool_messages(row[5]), json.loads(row[6] or "null"))
            for row in rows
            if row[2] or row[4] or row[1] != "assistant" or row[3] == "complete"
        ]
        return found[0], messages

    def last_conversation_id(self) -> int | None:
        """The conversation written to last, of those with a message."""
        row = self._db.execute(
            "SELECT id FROM conversations c WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)"
            " ORDER BY updated DESC, id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None


def _folded(text: str) -> str:
    """The text lower-cased and without accents, character for character (so positions still match)."""
    return "".join(unicodedata.normalize("NFD", char)[0].lower() if char.isalpha() else char for char in text)


def snippet(text: str, words: list[str], around: int = 12) -> str:
    """About `around` words of `text` from just before the first of `words` found there (the last
    may be the start of a word; case and accents aside), each found word between MATCH_START and MATCH_END."""
    whole = [rf"{re.escape(_folded(word))}\b" for word in words[:-1]]
    pattern = re.compile(rf"\b(?:{'|'.join([*whole, re.escape(_folded(words[-1]))])})\w*")
    tokens = list(re.finditer(r"\S+", text))
    if not tokens:
        return ""
    found = pattern.search(_folded(text))
    first = next((n for n, token in enumerate(tokens) if found and token.end() > found.start()), 0)
    start = max(0, first - around // 3)
    end = min(len(tokens), start + around)
    span = text[tokens[start].start() : tokens[end - 1].end()]
    pieces, at = [], 0
    for match in pattern.finditer(_folded(span)):  # folding keeps positions: the marks go into the text as written
        pieces += [span[at : match.start()], MATCH_START, span[match.start() : match.end()], MATCH_END]
        at = match.end()
    pieces.append(span[at:])
    return ("…" if start else "") + "".join(pieces) + ("…" if end < len(tokens) else "")


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, one at a time (a trigger's body holds semicolons of its own)."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                yield statement
            statement = ""


# What was saved of a reply still streaming when chatrepl was killed: its pieces, in order.
_PIECES = (
    "COALESCE((SELECT group_concat(p.text, '') FROM"
    " (SELECT text FROM reply_pieces WHERE message_id = m.id AND kind = '{kind}' ORDER BY rowid) p), '')"
)


@dataclass(frozen=True)
class TurnStart:
    """What is saved as a turn begins."""

    conversation_id: int | None
    user_text: str | None  # None: the message is saved already (a retry)
    model: str
    system_prompt: str
    conversation_parameters: dict[str, Any]  # what the conversation goes on with
    sent_parameters: dict[str, Any]  # what this request sent
    images: tuple[Image, ...] = ()  # the user message's images
    role: str = ""  # the role the conversation goes on with


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
