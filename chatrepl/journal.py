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
Lost = Callable[[Exception], str | None]  # told of a change that can never succeed; what to report, if anything
CANNOT_SUCCEED = (sqlite3.IntegrityError, StoreError)  # say, the conversation was deleted by another chatrepl


class Writer:
    """Writes changes to the database in order, in a background thread."""

    def __init__(self, store: Store) -> None:
        self.store = store  # the main thread's connection, for reading
        self._changes: deque[tuple[Change, Lost | None]] = deque()
        self._ready = threading.Condition()
        self._busy = False  # a change is being written
        self._failing = False
        self._reports: list[str] = []
        self._thread: threading.Thread | None = None

    def submit(self, change: Change, lost: Lost | None = None) -> None:
        """Queue a change; one that can never succeed is set aside, and `lost` says what to report."""
        with self._ready:
            self._changes.append((change, lost))
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

    def report(self, message: str) -> None:
        with self._ready:
            self._reports.append(message)

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
                (change, lost), self._busy = self._changes[0], True
            try:
                connection = connection or self.store.reopen()
                change(connection)
            except CANNOT_SUCCEED as err:  # tried again it would fail again, and hold up every later change
                report = lost(err) if lost is not None else f"not saved: {err} (set aside)"
                with self._ready:
                    self._changes.popleft()
                    self._busy = False
                    if report:
                        self._reports.append(report)
                    self._ready.notify_all()
                continue
            except (sqlite3.Error, OSError) as err:
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


Snapshot = tuple[list["Turn"], str, str]  # a conversation's turns, model and system prompt, as they are now


class Journal:
    """Saves one conversation; every method only queues the change.

    When a change of it can never succeed (another chatrepl deleted the conversation), the change is
    set aside with one warning, and the next message or reply saves the whole conversation anew, under
    a new id (`snapshot` gives it as it is then), which is said once.
    """

    def __init__(
        self, writer: Writer | None, conversation_id: int | None = None, snapshot: Callable[[], Snapshot] | None = None
    ) -> None:
        self.writer = writer
        self.conversation_id = conversation_id  # set by the writer's thread once the conversation is saved
        self._snapshot = snapshot
        self._orphaned = False  # in the writer's thread: the conversation can no longer be written where it was
        self._turn = _Ids()
        self._unsaved: dict[str, list[str]] = {}  # reply text, and reasoning, not yet saved
        self._saved_at = 0.0

    def _submit(self, change: Change) -> None:
        if self.writer is not None:
            self.writer.submit(change, self._lost)

    def _lost(self, err: Exception) -> str | None:
        """In the writer's thread: a change of this conversation can never succeed; the warning, once."""
        if self._orphaned:
            return None
        self._orphaned = True
        gone = f"conversation {self.conversation_id}" if self.conversation_id is not None else "this conversation"
        return f"not saved: {err}: set aside ({gone} was deleted elsewhere?); it is saved anew with the next change"

    def _save_anew(self, store: Store, snapshot: Snapshot | None) -> bool:
        """In the writer's thread: once the conversation is lost, save `snapshot` as a new one and say so."""
        if not self._orphaned or snapshot is None:
            return False
        turns, model, system_prompt = snapshot
        lost, self._orphaned, self._turn = self.conversation_id, False, _Ids()
        self.conversation_id = _import(store, turns, model, system_prompt) if turns else None
        if self.writer is not None and self.conversation_id is not None:
            self.writer.report(
                f"conversation {lost} was deleted elsewhere: saved anew as conversation {self.conversation_id}"
            )
        return True

    def _snapshot_now(self, leave_out_last: bool = False) -> Snapshot | None:
        if self._snapshot is None:
            return None
        turns, model, system_prompt = self._snapshot()
        return (turns[:-1] if leave_out_last else turns), model, system_prompt

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
        earlier = self._snapshot_now(leave_out_last=user_text is not None)  # the new message is saved below

        def save(store: Store) -> None:
            self._save_anew(store, earlier)
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
        whole = self._snapshot_now()  # this reply among its turns

        def save(store: Store) -> None:
            if self._save_anew(store, whole):
                return
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
            self.conversation_id = _import(store, turns, model, system_prompt)

        self._submit(save)


def _import(store: Store, turns: list[Turn], model: str, system_prompt: str) -> int:
    """Save the turns as a new conversation, titled after its first message; its id."""
    title = " ".join(turns[0].content.split())[:60]
    return store.import_conversation(model, system_prompt, title, turns)


def _known(identifier: int | None) -> int:
    """An id an earlier change set; changes run in order, so it is there unless that one failed for good."""
    if identifier is None:
        raise StoreError("an earlier change was not saved")
    return identifier
