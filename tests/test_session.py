"""The chat session and its journal against a real SQLite database: what is saved, when, and how."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from conftest import drive, make_repl, make_session, run_repl
from openai_server import FakeOpenAI, Script
from prompt_toolkit.input import create_pipe_input
from rich.console import Console

from chatrepl import journal
from chatrepl.config import Settings
from chatrepl.conversation import INTERRUPTED
from chatrepl.journal import Journal, Writer
from chatrepl.store import Store, TurnStart, _transaction


def rows(path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def test_a_write_interrupted_midway_is_rolled_back_and_leaves_no_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "chatrepl.db")
    conversation = store.import_conversation("m", "s", "t", [])
    with pytest.raises(KeyboardInterrupt), _transaction(store._db) as db:
        db.execute(
            "INSERT INTO messages (conversation_id, role, content, status, created, updated)"
            " VALUES (?, 'user', 'half', 'complete', 0, 0)",
            (conversation,),
        )
        raise KeyboardInterrupt
    assert not store._db.in_transaction
    store.set_conversation(conversation, "later", "s", {})  # later writes work
    other = sqlite3.connect(tmp_path / "chatrepl.db", timeout=0)
    other.execute("BEGIN IMMEDIATE")  # and no lock is left for other processes to wait on
    other.execute("ROLLBACK")
    assert rows(tmp_path / "chatrepl.db", "SELECT content FROM messages") == []  # the half write is gone
    assert rows(tmp_path / "chatrepl.db", "SELECT model FROM conversations") == [("later",)]


def test_a_streaming_reply_is_saved_in_pieces_each_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "SAVE_INTERVAL", 0.0)  # save at every delta
    path = tmp_path / "chatrepl.db"
    writer = Writer(Store(path))
    saving = Journal(writer)
    saving.begin("question", "m", "s", {}, {})
    deltas = [f"piece {n} " for n in range(2000)]
    for delta in deltas:
        saving.partial(delta)
    assert writer.flush(30)
    pieces = rows(path, "SELECT text FROM reply_pieces ORDER BY rowid")
    assert "".join(text for (text,) in pieces) == "".join(deltas)  # every character once: linear in the reply
    found = Store(path).conversation(1)
    assert found is not None and found[1][1].content == "".join(deltas) and found[1][1].status == INTERRUPTED
    saving.finish("".join(deltas), "complete")
    assert writer.flush(30)
    assert rows(path, "SELECT COUNT(*) FROM reply_pieces") == [(0,)]
    assert rows(path, "SELECT status FROM messages WHERE role = 'assistant'") == [("complete",)]


def test_a_reply_killed_before_any_text_was_saved_is_not_a_turn_on_resume(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    store = Store(tmp_path / "chatrepl.db")
    start = TurnStart(None, "what now?", "test-model", "be brief", {}, {})
    conversation_id, _, _ = store.begin_turn(start)  # and then the process was killed
    session = make_session(settings, store)
    assert session.resume(conversation_id) is not None
    assert [(turn.role, turn.content) for turn in session.conversation.turns] == [("user", "what now?")]


def test_a_failed_first_request_leaves_no_conversation_to_continue(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="first answer"), Script(status=500))
    run_repl(settings, "first\rnew\rsecond\r", store=Store(path))
    assert rows(path, "SELECT id, title FROM conversations") == [(1, "first")]
    assert Store(path).last_conversation_id() == 1


def test_a_conversation_goes_on_with_its_system_prompt_model_and_parameters(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "chatrepl.db"
    keys = "/model gpt-4o-mini\r/set temperature 0.3\r/json on\rhello json\r/system You are a pirate.\r"
    run_repl(settings, keys, store=Store(path))
    run_repl(settings, "/resume 1\rand then?\r", store=Store(path))
    request = server.requests[-1]
    assert request["model"] == "gpt-4o-mini" and request["temperature"] == 0.3
    assert request["response_format"] == {"type": "json_object"}
    assert request["messages"][0] == {"role": "system", "content": "You are a pirate."}


def test_the_parameters_saved_are_those_sent(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "chatrepl.db"
    settings.temperature, settings.max_tokens, settings.n = 0.5, 99, 2
    run_repl(settings, "/model gpt-5-mini\rthink\r/model test-model\r/mode completion\rcomplete\r", store=Store(path))
    saved = [
        json_of(text) for (text,) in rows(path, "SELECT parameters FROM messages WHERE role = 'assistant' ORDER BY id")
    ]
    not_parameters = ("model", "messages", "prompt", "stream", "stream_options")
    sent = [{key: value for key, value in body.items() if key not in not_parameters} for body in server.requests]
    assert saved == sent  # what the server received, exactly
    assert sent == [
        {"max_completion_tokens": 99},  # a reasoning model: no temperature, and n only in completion mode
        {"temperature": 0.5, "max_tokens": 99, "stop": ["\nUser:"], "n": 2},
    ]


def json_of(text: str) -> object:
    import json

    return json.loads(text)


class InterruptingFile(io.StringIO):
    """A terminal where Ctrl-C is pressed the moment a given text is written."""

    def __init__(self, trigger: str) -> None:
        super().__init__()
        self.trigger = trigger
        self.terminal = None

    def write(self, text: str) -> int:
        if self.trigger in text and self.terminal is not None:
            self.terminal.interrupt_requested = True
        return super().write(text)


def test_ctrl_c_in_the_last_moments_of_a_turn_keeps_the_reply_and_the_session(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="The whole answer."), Script(text="Still here."))
    screen = InterruptingFile(trigger="10 in · ")  # the status line, after the reply
    with create_pipe_input() as pipe:
        pipe.send_text("question\rnext\r\x03\x04")
        repl = make_repl(settings, pipe, Console(file=screen, width=80), store=Store(path))
        screen.terminal = repl.terminal
        code = drive(repl)
    output = screen.getvalue()
    assert code == 0 and "interrupted" in output and "Still here." in output
    assert [(turn.role, turn.status) for turn in repl.session.conversation.turns] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert rows(path, "SELECT content, status FROM messages WHERE role = 'assistant'") == [
        ("The whole answer.", "complete"),
        ("Still here.", "complete"),
    ]


def test_the_wait_for_the_journal_at_the_end_can_be_given_up_and_says_what_is_lost(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "chatrepl.db"
    Store(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock for good
    session = make_session(settings, Store(path, busy_timeout=0.1))
    session.journal.begin("question", "m", "s", {}, {})
    session.journal.finish("answer", "complete")
    problems = session.close(timeout=60, give_up=lambda: True)  # as a Ctrl-C does
    assert problems[-1] == "not saved: 2 change(s) could not be written"
    blocker.execute("ROLLBACK")


def test_thinking_streamed_before_a_kill_comes_back_with_the_conversation(
    server: FakeOpenAI, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "SAVE_INTERVAL", 0.0)
    path = tmp_path / "chatrepl.db"
    writer = Writer(Store(path))
    saving = Journal(writer)
    saving.begin("why?", "m", "s", {}, {})
    for piece in ("Because ", "the sky ", "scatters blue."):
        saving.partial(piece, reasoning=True)
    saving.partial("It is")
    assert writer.flush(30)  # and then the process was killed: no finish
    session = make_session(settings, Store(path))
    assert session.resume(1) is not None
    reply = session.conversation.turns[1]
    assert (reply.content, reply.reasoning, reply.status) == ("It is", "Because the sky scatters blue.", INTERRUPTED)
