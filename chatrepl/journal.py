"""Saving conversations as they happen, from a thread of its own.

The `Writer` takes changes in order and writes each in one transaction on its own
connection, so a busy database never holds up a reply and no signal ever lands between
a BEGIN and its COMMIT.  A change that fails stays first in line and is tried again
(with the next change, or after a pause): nothing is dropped.  It says once that saving
fails and once that it works again; the REPL shows what it says between turns.

A `Journal` is one conversation's view of the writer: it saves the user's message before
the request goes out and the reply as it streams, in pieces (linear in its length),
marked interrupted until it is known to be otherwise.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatrepl.store import REASONING, TEXT, Store, StoreError, TurnStart

if TYPE_CHECKING:
    from chatrepl.conversation import Turn
    from chatrepl.images import Image

SAVE_INTERVAL = 0.25  # seconds between saves of a reply that is still streaming
RETRY_INTERVAL = 2.0  # seconds before a failed change is tried again, if no other comes first

Change = Callable[[Store], None]


class Writer:
    """Writes changes to the database in order, in a background thread."""

    def __init__(self, store: Store) -> None:
        self.store = store  # the main thread's connection, for reading
        self._changes: deque[Change] = deque()
        self._ready = threading.Condition()
        self._busy = False  # a change is being written
        self._failing = False
        self._reports: list[str] = []
        self._thread: threading.Thread | None = None

    def submit(self, change: Change) -> None:
        with self._ready:
            self._changes.append(change)
            self._ready.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
                self._thread.start()

    def flush(self, timeout: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Wait until every change so far is written (at most `timeout` seconds, or until `give_up`);
        False if some are not."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while self._changes or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or give_up():
                    return False
                self._ready.wait(min(left, 0.05))
        return True

    @property
    def failing(self) -> bool:
        """The last write failed, and has not worked since."""
        return self._failing

    def unsaved(self) -> int:
        with self._ready:
            return len(self._changes)

    def reports(self) -> list[str]:
        """What the writer has to say since last asked: that saving fails, or works again."""
        with self._ready:
            taken, self._reports = self._reports, []
        return taken

    def _wait_for_more(self, count: int) -> None:
        """With the lock held: wait until a change past the first `count` comes, or the retry interval ends."""
        self._ready.wait_for(lambda: len(self._changes) > count, RETRY_INTERVAL)

    def _run(self) -> None:
        connection: Store | None = None
        while True:
            with self._ready:
                while not self._changes:
                    self._ready.wait()
                change, self._busy = self._changes[0], True
            try:
                connection = connection or self.store.reopen()
                change(connection)
            except (sqlite3.Error, OSError, StoreError) as err:
                with self._ready:
                    self._busy = False
                    if not self._failing:
                        self._failing = True
                        self._reports.append(f"not saved: {err} (trying again with the next change)")
                    self._ready.notify_all()
                    self._wait_for_more(len(self._changes))
                continue
            with self._ready:
                self._changes.popleft()
                self._busy = False
                if self._failing:
                    self._failing = False
                    self._reports.append("saving works again: everything so far is saved")
                self._ready.notify_all()


@dataclass
class _Ids:
    """Database ids of the turn under way, known once the writer has saved its start."""

    user: int | None = None
    reply: int | None = None


class Journal:
    """Saves one conversation; every method only queues the change."""

    def __init__(self, writer: Writer | None, conversation_id: int | None = None) -> None:
        self.writer = writer
        self.conversation_id = conversation_id  # set by the writer's thread once the conversation is saved
        self._turn = _Ids()
        self._unsaved: dict[str, list[str]] = {}  # reply text, and reasoning, not yet saved
        self._saved_at = 0.0

    def _submit(self, change: Change) -> None:
        if self.writer is not None:
            self.writer.submit(change)

    def begin(
        self,
        user_text: str | None,
        model: str,
        system_prompt: str,
        conversation_parameters: dict[str, Any],
        sent_parameters: dict[str, Any],
        images: tuple[Image, ...] = (),
        role: str = "",
    ) -> None:
        """Save the user's message and its images (None: it is saved already, as the last one) and a
        reply to come."""
        turn = self._turn = _Ids()
        self._unsaved, self._saved_at = {}, time.monotonic()

        def save(store: Store) -> None:
            start = TurnStart(
                self.conversation_id,
                user_text,
                model,
                system_prompt,
                conversation_parameters,
                sent_parameters,
                images,
                role,
            )
            self.conversation_id, turn.user, turn.reply = store.begin_turn(start)

        self._submit(save)

    def partial(self, delta: str, reasoning: bool = False) -> None:
        """More of the reply streaming (or of its reasoning), saved every SAVE_INTERVAL."""
        self._unsaved.setdefault(REASONING if reasoning else TEXT, []).append(delta)
        if time.monotonic() - self._saved_at >= SAVE_INTERVAL:
            self._save_unsaved()

    def _save_unsaved(self) -> None:
        unsaved, turn = self._unsaved, self._turn
        self._unsaved, self._saved_at = {}, time.monotonic()
        for kind, pieces in unsaved.items():
            text = "".join(pieces)
            self._submit(lambda store, kind=kind, text=text: store.append_reply(_known(turn.reply), text, kind))

    def finish(self, content: str | None, status: str, retry: bool = False, **figures: Any) -> None:
        """Record the reply; content None means the request failed: the turn is taken back
        (with `retry`, only the reply: the message stays, as it does in the conversation)."""
        turn = self._turn
        self._unsaved = {}

        def save(store: Store) -> None:
            if content is not None:
                store.finish_reply(_known(turn.reply), content, status, **figures)
            else:
                taken = [turn.reply] if retry or turn.user is None else [turn.reply, turn.user]
                if store.take_back(_known(self.conversation_id), [_known(message) for message in taken]):
                    self.conversation_id = None

        self._submit(save)

    def settings(self, model: str, system_prompt: str, parameters: dict[str, Any], role: str = "") -> None:
        """Record what the conversation goes on with (after /system, /model, /set), once it is saved."""

        def save(store: Store) -> None:
            if self.conversation_id is not None:
                store.set_conversation(self.conversation_id, model, system_prompt, parameters, role)

        self._submit(save)

    def forget(self, message: bool) -> None:
        """Delete the replies to the last message saved (/retry), and with `message` the message too (/undo)."""

        def save(store: Store) -> None:
            if self.conversation_id is not None:
                store.drop_last_exchange(self.conversation_id, keep_message=not message)

        self._submit(save)

    def rename(self, title: str) -> None:
        """Give the conversation a title of the user's, once it is saved."""

        def save(store: Store) -> None:
            if self.conversation_id is not None:
                store.rename(self.conversation_id, title)

        self._submit(save)

    def adopt(self, turns: list[Turn], model: str, system_prompt: str) -> None:
        """Save an imported conversation's turns as a new conversation."""
        if not turns:
            return

        def save(store: Store) -> None:
            title = " ".join(turns[0].content.split())[:60]
            self.conversation_id = store.import_conversation(model, system_prompt, title, turns)

        self._submit(save)


def _known(identifier: int | None) -> int:
    """An id an earlier change set; changes run in order, so it is there unless that one failed for good."""
    if identifier is None:
        raise StoreError("an earlier change was not saved")
    return identifier
