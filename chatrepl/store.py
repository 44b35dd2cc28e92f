"""SQLite sessions: conversations, messages and partial replies; schema migrations.

One connection per process, WAL mode so a reader never blocks a writer, a busy
timeout so two chatrepl processes writing at once wait for each other instead of
failing, and every write in a BEGIN IMMEDIATE transaction.  The schema version is
`PRAGMA user_version`; MIGRATIONS[n] takes a database from version n to n + 1.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatrepl.config import app_dir, open_private

if TYPE_CHECKING:
    from chatrepl.conversation import Conversation

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
]


OPEN_PATIENCE = 10.0  # seconds to keep trying while another process holds the database


class StoreError(Exception):
    """The database cannot be used; the message says why."""


@dataclass(frozen=True)
class ConversationRow:
    id: int
    title: str
    model: str
    system_prompt: str
    turns: int
    updated: float


@dataclass(frozen=True)
class MessageRow:
    role: str
    content: str
    status: str


def default_path(environ: Mapping[str, str]) -> Path:
    return app_dir(environ, "XDG_DATA_HOME") / "chatrepl.db"


def _is_corrupt(err: sqlite3.DatabaseError) -> bool:
    """The file is not an SQLite database, or a damaged one."""
    name = getattr(err, "sqlite_errorname", "")
    if name:
        return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
    return "not a database" in str(err) or "malformed" in str(err)


def _create_private(path: Path) -> None:
    """Make the directory (0700) and an empty file (0600) before SQLite opens it."""
    with suppress(FileExistsError):
        os.close(open_private(path, os.O_WRONLY | os.O_EXCL))


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.moved_aside: Path | None = None  # where a corrupt database was put
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as err:
            if not _is_corrupt(err):  # locked, unreadable, read-only: not a reason to move anything
                raise StoreError(f"cannot open {path}: {err}") from err
            self.moved_aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, self.moved_aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self._db = self._open()
        except OSError as err:
            raise StoreError(f"cannot open {path}: {err}") from err

    def _open(self) -> sqlite3.Connection:
        _create_private(self.path)
        deadline = time.monotonic() + OPEN_PATIENCE
        while True:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA busy_timeout = 10000")
                db.execute("PRAGMA journal_mode = WAL")
                # Commits reach the OS at once (a killed chatrepl loses nothing) without waiting
                # for the disk on every one: that wait would sit between Enter and the request.
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
            except sqlite3.Error:
                db.close()
                raise

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(f"the database is from a newer chatrepl (schema {version})")
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def new_conversation(self, model: str, system_prompt: str, title: str) -> int:
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO conversations (title, model, system_prompt, created, updated) VALUES (?, ?, ?, ?, ?)",
                (title, model, system_prompt, now, now),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add_message(
        self, conversation_id: int, role: str, content: str, status: str, model: str, parameters: dict[str, Any]
    ) -> int:
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, model, parameters, status, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, model, json.dumps(parameters), status, now, now),
            )
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update_message(self, message_id: int, **fields: Any) -> None:
        """Set content, status, tokens_in, tokens_out, cost or finish_reason of a message."""
        allowed = {"content", "status", "tokens_in", "tokens_out", "cost", "finish_reason"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"cannot update {sorted(set(fields) - allowed)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._write() as db:
            db.execute(
                f"UPDATE messages SET {assignments}, updated = ? WHERE id = ?",
                (*fields.values(), time.time(), message_id),
            )

    def drop_last_exchange(self, conversation_id: int, keep_message: bool) -> None:
        """Delete the conversation's last user message (unless `keep_message`) and everything after it."""
        with self._write() as db:
            row = db.execute(
                "SELECT MAX(id) FROM messages WHERE conversation_id = ? AND role = 'user'", (conversation_id,)
            ).fetchone()
            if row[0] is not None:
                first = row[0] + 1 if keep_message else row[0]
                db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conversation_id, first))

    def delete_message(self, message_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def _conversation_rows(self, where: str, parameters: tuple[Any, ...]) -> list[ConversationRow]:
        rows = self._db.execute(
            "SELECT c.id, c.title, c.model, c.system_prompt,"
            " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user'), c.updated"
            f" FROM conversations c {where}",
            parameters,
        ).fetchall()
        return [ConversationRow(*row) for row in rows]

    def conversations(self, limit: int = 20) -> list[ConversationRow]:
        return self._conversation_rows("ORDER BY c.updated DESC, c.id DESC LIMIT ?", (limit,))

    def conversation(self, conversation_id: int) -> tuple[ConversationRow, list[MessageRow]] | None:
        found = self._conversation_rows("WHERE c.id = ?", (conversation_id,))
        if not found:
            return None
        messages = self._db.execute(
            "SELECT role, content, status FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ).fetchall()
        return found[0], [MessageRow(*row) for row in messages]

    def last_conversation_id(self) -> int | None:
        row = self._db.execute("SELECT id FROM conversations ORDER BY updated DESC, id DESC LIMIT 1").fetchone()
        return row[0] if row else None


JOURNAL_INTERVAL = 0.25  # seconds between saves of a reply that is still streaming


class TurnJournal:
    """Saves one conversation's turns as they happen; a failed write is reported, never fatal.

    The user's message is committed before the request goes out, and the reply is
    saved as it streams, marked interrupted until it is known to be otherwise, so a
    process killed mid-reply leaves the partial reply behind.
    """

    def __init__(self, store: Store | None, warn: Callable[[str], None]) -> None:
        self.store = store
        self.warn = warn
        self.conversation_id: int | None = None
        self._reply_id: int | None = None
        self._user_id: int | None = None
        self._text = ""
        self._saved_at = 0.0

    def _try(self, action: Callable[[], Any]) -> Any:
        if self.store is None:
            return None
        try:
            return action()
        except (sqlite3.Error, OSError, StoreError) as err:
            self.warn(f"not saved: {err}")
            self.store = None  # one warning, not one per chunk; the reply goes on regardless
            return None

    def adopt(self, conversation: Conversation, model: str) -> None:
        """Save an imported conversation as a new one, turns and all."""
        store = self.store
        if store is None or not conversation.turns:
            return
        title = " ".join(conversation.turns[0].content.split())[:60]

        def save() -> int:
            new_id = store.new_conversation(model, conversation.system_prompt, title)
            for turn in conversation.turns:
                store.add_message(new_id, turn.role, turn.content, turn.status, model, {})
            return new_id

        self.conversation_id = self._try(save)

    def begin(self, user_text: str | None, model: str, system_prompt: str, parameters: dict[str, Any]) -> None:
        """Save the user's message (None: it is saved already, as the last one) and a reply to come."""
        store = self.store
        if store is None:
            return
        if self.conversation_id is None and user_text is not None:
            title = " ".join(user_text.split())[:60]
            self.conversation_id = self._try(lambda: store.new_conversation(model, system_prompt, title))
        conversation_id = self.conversation_id
        if conversation_id is None:
            return
        if user_text is not None:
            self._user_id = self._try(
                lambda: store.add_message(conversation_id, "user", user_text, "complete", model, {})
            )
        self._reply_id = self._try(
            lambda: store.add_message(conversation_id, "assistant", "", "interrupted", model, parameters)
        )
        self._text, self._saved_at = "", time.monotonic()

    def partial(self, delta: str) -> None:
        self._text += delta
        store, reply_id, text = self.store, self._reply_id, self._text
        if store is None or reply_id is None or time.monotonic() - self._saved_at < JOURNAL_INTERVAL:
            return
        self._saved_at = time.monotonic()
        self._try(lambda: store.update_message(reply_id, content=text))

    def finish(self, content: str | None, status: str, retry: bool = False, **figures: Any) -> None:
        """Record the reply; content None means the request failed: the turn is taken back
        (with `retry`, only the reply: the message stays, as it does in the conversation)."""
        reply_id, user_id, store = self._reply_id, self._user_id, self.store
        self._reply_id = None
        if reply_id is None or store is None:
            return
        if content is not None:
            self._try(lambda: store.update_message(reply_id, content=content, status=status, **figures))
        elif retry or user_id is None:
            self._try(lambda: store.delete_message(reply_id))
        else:
            self._try(lambda: (store.delete_message(reply_id), store.delete_message(user_id)))

    def forget(self, message: bool) -> None:
        """Delete the replies to the last message saved (/retry), and with `message` the message too (/undo)."""
        store, conversation_id = self.store, self.conversation_id
        if store is not None and conversation_id is not None:
            self._try(lambda: store.drop_last_exchange(conversation_id, keep_message=not message))
