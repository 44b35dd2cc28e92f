"""Sessions in a real SQLite database: journaling, resume, concurrency, damage."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY, drive, installed_chatrepl, make_repl, run_repl
from openai_server import FakeOpenAI, Script
from prompt_toolkit.input import create_pipe_input
from rich.console import Console

from chatrepl.config import Settings
from chatrepl.conversation import INTERRUPTED, Turn
from chatrepl.session import ChatSession
from chatrepl.store import APPLICATION_ID, MIGRATIONS, NotChatreplDatabase, Store


def rows(path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def test_files_are_private_and_the_schema_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "data" / "chatrepl" / "chatrepl.db"
    store = Store(path)
    store.import_conversation("m", "s", "t", [Turn("user", "hi")])
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    assert rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert rows(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    store.close()
    Store(path).close()  # opening again migrates nothing and loses nothing
    assert len(rows(path, "SELECT * FROM conversations")) == 1


def damage(path: Path) -> bytes:
    """Make `path` a chatrepl database whose first page is garbage; return its bytes."""
    store = Store(path)
    store.import_conversation("m", "s", "t", [Turn("user", "hi")])
    store.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the header stays: it is chatrepl's file, damaged
    path.write_bytes(bytes(data))
    return bytes(data)


def test_a_damaged_chatrepl_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "chatrepl.db"
    damaged = damage(path)
    store = Store(path)
    assert store.moved_aside is not None and store.moved_aside.read_bytes() == damaged
    assert store.conversations() == []


def test_a_file_that_is_not_chatrepls_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"this is not a database" * 100)
    with pytest.raises(NotChatreplDatabase, match="is not an SQLite database; it is left as it is"):
        Store(notes)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    before = other.read_bytes()
    with pytest.raises(NotChatreplDatabase, match="another program's SQLite database"):
        Store(other)
    damaged_other = bytearray(before)
    damaged_other[100:4096] = b"\xff" * (4096 - 100)
    other.write_bytes(bytes(damaged_other))
    with pytest.raises(NotChatreplDatabase, match="is not a chatrepl history database"):
        Store(other)
    assert notes.read_bytes() == b"this is not a database" * 100 and other.read_bytes() == bytes(damaged_other)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", "other.sqlite"]


def test_conversation_is_saved_turn_by_turn_and_resumed(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="Paris."), Script(text="Lyon."))
    run_repl(settings, "capital?\rsecond city?\r", store=Store(path))
    assert rows(path, "SELECT role, content, status FROM messages ORDER BY id") == [
        ("user", "capital?", "complete"),
        ("assistant", "Paris.", "complete"),
        ("user", "second city?", "complete"),
        ("assistant", "Lyon.", "complete"),
    ]
    tokens = rows(path, "SELECT tokens_in, tokens_out, finish_reason FROM messages WHERE role = 'assistant'")
    assert tokens[0] == (10, 1, "stop")
    server.enqueue(Script(text="Marseille."))
    _, output, _ = run_repl(settings, "/sessions\r/resume 1\rthird?\r", store=Store(path))
    assert "capital?" in output and "Lyon." in output  # the history is shown
    assert [m["content"] for m in server.requests[-1]["messages"]][1:] == [
        "capital?",
        "Paris.",
        "second city?",
        "Lyon.",
        "third?",
    ]
    assert len(rows(path, "SELECT * FROM conversations")) == 1
    assert rows(path, "SELECT COUNT(*) FROM messages") == [(6,)]


def test_a_failed_request_leaves_no_orphan_row(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "chatrepl.db"
    server.enqueue(Script(status=500))
    run_repl(settings, "hello\r", store=Store(path))
    assert rows(path, "SELECT COUNT(*) FROM messages") == [(0,)]
    assert rows(path, "SELECT COUNT(*) FROM conversations") == [(0,)]


def test_new_starts_a_new_conversation_row(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "chatrepl.db"
    run_repl(settings, "one\rnew\rtwo\r", store=Store(path))
    assert rows(path, "SELECT title FROM conversations ORDER BY id") == [("one",), ("two",)]


def test_export_and_import(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    server.enqueue(Script(text="**Yes.**"))
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    run_repl(settings, f"is it?\r/save {md}\r/save {js}\r/save {tmp_path / 'chat.txt'}\r")
    assert "**User:**\n\nis it?" in md.read_text() and "**Yes.**" in md.read_text()
    assert json.loads(js.read_text())["messages"][1] == {
        "role": "assistant",
        "content": "**Yes.**",
        "status": "complete",
    }
    _, output, _ = run_repl(settings, f"/load {js}\rand then?\r/load {md}\r")
    assert "loaded 2 messages" in output and "cannot load" in output
    assert [m["content"] for m in server.requests[-1]["messages"]][1:] == ["is it?", "**Yes.**", "and then?"]


def test_saving_that_fails_is_retried_and_reported_once_each_way(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "chatrepl.db"
    Store(path).close()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    server.enqueue(Script(text="Still answered."), Script(text="And saved."), Script(text="Third."))
    settings.idle_timeout = 1  # shorter than a write waits for the lock: a reply waiting on it would trip

    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text("hello\rnext\rlast\r\x03\x04")
        repl = make_repl(settings, pipe, Console(file=out, width=80), store=Store(path, busy_timeout=2))
        writer = repl.session.writer
        assert writer is not None

        toolbar_while_failing: list[str] = []

        def release() -> None:  # once saving has failed; what it saw is checked in the test's own thread
            deadline = time.monotonic() + 30
            while not writer.failing and time.monotonic() < deadline:
                time.sleep(0.01)
            toolbar_while_failing.append(repl.toolbar_text())
            blocker.execute("COMMIT")

        releaser = threading.Thread(target=release, daemon=True)
        releaser.start()
        drive(repl)
        releaser.join(30)
    assert toolbar_while_failing and toolbar_while_failing[0].endswith("not saving (retrying)")
    output = out.getvalue()
    assert "Still answered." in output and "And saved." in output and "Third." in output
    assert output.count("not saved: database is locked") == 1
    assert output.count("saving works again") == 1
    assert rows(path, "SELECT role, content, status FROM messages ORDER BY id") == [
        ("user", "hello", "complete"),
        ("assistant", "Still answered.", "complete"),
        ("user", "next", "complete"),
        ("assistant", "And saved.", "complete"),
        ("user", "last", "complete"),
        ("assistant", "Third.", "complete"),
    ]


def chatrepl_env(cli_env: dict[str, str], db: Path) -> dict[str, str]:
    return {**cli_env, "CHATREPL_DB": str(db)}


def test_sigkill_mid_reply_leaves_the_partial_marked_interrupted(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="word " * 500, chunk_size=5, delay=0.01))
    child = subprocess.Popen(
        [installed_chatrepl(), "talk"], env=chatrepl_env(cli_env, db), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert child.stdout is not None
    child.stdout.read(300)  # the reply is well under way
    time.sleep(0.4)  # past one journal interval
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    found = Store(db).conversation(1)
    assert found is not None
    user, reply = found[1]
    assert (user.role, user.content, user.status) == ("user", "talk", "complete")
    assert reply.role == "assistant" and reply.status == INTERRUPTED
    assert reply.content.startswith("word word") and len(reply.content) >= 300
    assert "word " * (len(reply.content) // 5) == reply.content  # the pieces, in order


def test_two_processes_writing_at_once_lose_nothing(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "chatrepl.db"
    env = chatrepl_env(cli_env, db)
    script = "\n".join(
        [
            "import sys",
            "from pathlib import Path",
            "from chatrepl.conversation import Turn",
            "from chatrepl.store import Store",
            "store = Store(Path(sys.argv[1]))",
            "for n in range(100):",
            "    store.import_conversation('m', 's', f'{sys.argv[2]}-{n}', [Turn('user', 'hi')])",
        ]
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, str(db), name], env=env) for name in ("a", "b")]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    assert rows(db, "SELECT COUNT(*) FROM conversations") == [(200,)]
    assert rows(db, "SELECT COUNT(*) FROM messages") == [(200,)]


def test_the_key_is_never_stored_and_no_save_writes_nothing(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "chatrepl.db"
    env = chatrepl_env(cli_env, db)
    subprocess.run([installed_chatrepl(), "hello"], env=env, capture_output=True, stdin=subprocess.DEVNULL, check=True)
    data = b"".join(path.read_bytes() for path in tmp_path.glob("chatrepl.db*"))
    assert b"hello" in data and TEST_KEY.encode() not in data
    private = tmp_path / "private.db"
    subprocess.run(
        [installed_chatrepl(), "--no-save", "hello"],
        env=chatrepl_env(cli_env, private),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    assert not private.exists()
    config = tmp_path / "config.toml"
    config.write_text(f"save = false\ndb = {str(private)!r}\n")
    subprocess.run(
        [installed_chatrepl(), "hello"],
        env={**cli_env, "CHATREPL_CONFIG": str(config)},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    assert not private.exists()


def test_the_database_named_in_an_allowed_dotenv_file_is_used(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    project = Path(cli_env["HOME"]) / "project"
    project.mkdir()
    (project / ".env").write_text(f"CHATREPL_DB={tmp_path / 'project.db'}\n")
    subprocess.run(
        [installed_chatrepl(), "--allow-env", "hello"],
        env=cli_env,
        cwd=project,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    assert rows(tmp_path / "project.db", "SELECT content FROM messages WHERE role = 'user'") == [("hello",)]


@pytest.mark.parametrize("args", [["--continue"], ["--session", "1"]])
def test_continue_brings_back_the_last_conversation(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path, args: list[str]
) -> None:
    import pexpect

    db = tmp_path / "chatrepl.db"
    env = chatrepl_env(cli_env, db)
    server.enqueue(Script(text="First answer."))
    subprocess.run([installed_chatrepl(), "first question"], env=env, capture_output=True, stdin=subprocess.DEVNULL)
    child = pexpect.spawn(installed_chatrepl(), args, env={**env, "PROMPT_TOOLKIT_NO_CPR": "1"}, encoding="utf-8")
    child.expect("First answer.")
    child.expect_exact("\x1b[?2004h")
    child.send("second\r")
    child.expect_exact("\x1b[?2004h")
    assert [m["content"] for m in server.requests[-1]["messages"]][1:] == ["first question", "First answer.", "second"]
    child.sendeof()
    child.expect(pexpect.EOF)


def test_continue_with_a_question_answers_it_in_the_last_conversation(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "chatrepl.db"
    env = chatrepl_env(cli_env, db)
    server.enqueue(Script(text="First answer."), Script(text="Second answer."))
    for args in (["first question"], ["-c", "second question"]):
        result = subprocess.run(
            [installed_chatrepl(), *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        assert result.returncode == 0, result.stderr
    assert result.stdout == "Second answer.\n"
    sent = [m["content"] for m in server.requests[-1]["messages"]][1:]
    assert sent == ["first question", "First answer.", "second question"]
    assert rows(db, "SELECT conversation_id, content FROM messages ORDER BY id") == [
        (1, "first question"),
        (1, "First answer."),
        (1, "second question"),
        (1, "Second answer."),
    ]


def test_chatrepl_names_both_paths_when_it_moves_a_corrupt_database(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "chatrepl.db"
    damage(db)
    result = subprocess.run(
        [installed_chatrepl(), "hello"], env=chatrepl_env(cli_env, db), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "You said" in result.stdout
    moved = next(tmp_path.glob("chatrepl.db.corrupt-*"))
    assert f"{db} was unreadable; moved it to {moved}" in result.stderr
    assert rows(db, "SELECT content FROM messages WHERE role = 'user'") == [("hello",)]


def test_two_chatrepl_processes_at_once_lose_nothing(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "chatrepl.db"
    env = chatrepl_env(cli_env, db)
    Store(db).close()
    for batch in range(4):
        runs = [
            subprocess.Popen(
                [installed_chatrepl(), f"q{batch}-{n}"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            )
            for n in range(2)
        ]
        assert [run.wait(timeout=60) for run in runs] == [0, 0]
    assert rows(db, "SELECT COUNT(*) FROM conversations") == [(8,)]
    assert rows(db, "SELECT COUNT(*) FROM messages WHERE status = 'complete'") == [(16,)]


def test_resuming_a_missing_conversation_is_a_clear_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    import pexpect

    env = chatrepl_env(cli_env, tmp_path / "chatrepl.db")
    for args, message in (("--session 99", "no saved conversation 99"), ("-c", "no saved conversation yet")):
        output, status = pexpect.run(
            f"{installed_chatrepl()} {args}", env=env, withexitstatus=True, encoding="utf-8", timeout=30
        )
        assert status == 2 and message in output


def test_retry_replaces_the_last_reply_and_undo_removes_the_exchange(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="first try"), Script(text="second try"), Script(text="other"), Script(text="after"))
    repl, output, _ = run_repl(
        settings, "question\r/retry\rtwo\r/undo\rthree\r/undo\r/undo\r/undo\r", store=Store(path)
    )
    assert server.requests[1]["messages"][1:] == [{"role": "user", "content": "question"}]
    assert "second try" in output and output.count("removed the last exchange") == 3
    assert "nothing to undo" in output
    assert server.requests[3]["messages"][1:] == [
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "second try"},
        {"role": "user", "content": "three"},
    ]
    assert repl.session.conversation.turns == []
    assert rows(path, "SELECT role, content FROM messages") == []


def test_retry_keeps_the_saved_message(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="one"), Script(text="two"))
    _, output, _ = run_repl(settings, "/retry\rquestion\r/retry\r", store=Store(path))
    assert "nothing to retry yet" in output
    assert rows(path, "SELECT role, content FROM messages ORDER BY id") == [("user", "question"), ("assistant", "two")]


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_mid_reply_saves_the_partial(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path, number: int
) -> None:
    import pexpect

    db = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="word " * 1000, chunk_size=5, delay=0.01))
    env = {**chatrepl_env(cli_env, db), "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color"}
    child = pexpect.spawn(installed_chatrepl(), env=env, encoding="utf-8", timeout=30)
    child.expect_exact("\x1b[?2004h")
    child.send("talk\r")
    child.expect("word word word")
    os.kill(child.pid, number)
    child.expect(pexpect.EOF)
    assert child.getecho()  # the terminal is restored: typing is echoed again
    child.close()
    assert child.exitstatus == 128 + number and "Traceback" not in child.before
    ((content, status),) = rows(db, "SELECT content, status FROM messages WHERE role = 'assistant'")
    assert status == INTERRUPTED and content.startswith("word word word")


def test_sigterm_at_the_prompt_leaves_quietly(cli_env: dict[str, str], tmp_path: Path) -> None:
    import pexpect

    env = {**chatrepl_env(cli_env, tmp_path / "chatrepl.db"), "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(installed_chatrepl(), env=env, encoding="utf-8", timeout=30)
    child.expect_exact("\x1b[?2004h")
    os.kill(child.pid, signal.SIGTERM)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 143 and "Traceback" not in child.before


def test_continue_keeps_the_conversations_settings_unless_flags_say_otherwise(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = chatrepl_env(cli_env, tmp_path / "chatrepl.db")
    runs = [
        ["-m", "gpt-4o-mini", "-s", "You are a pirate.", "-t", "0.2", "first"],
        ["-c", "second"],
        ["-c", "-t", "0.9", "-m", "other-model", "third"],
    ]
    for args in runs:
        result = subprocess.run([installed_chatrepl(), *args], env=env, capture_output=True, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
    second, third = server.requests[1], server.requests[2]
    assert (second["model"], second["temperature"]) == ("gpt-4o-mini", 0.2)
    assert second["messages"][0] == {"role": "system", "content": "You are a pirate."}
    assert (third["model"], third["temperature"]) == ("other-model", 0.9)
    assert third["messages"][0] == {"role": "system", "content": "You are a pirate."}


def test_a_markdown_export_replays_no_escape_sequence_and_the_json_keeps_the_text(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    hostile = "\x1b]0;owned\x07 \x1b[2J \x9b31m \u202eevil\x7f\r"
    server.enqueue(Script(text=f"tab\there {hostile} end"))
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    run_repl(settings, f"hi\r/save {md}\r/save {js}\r")
    exported = md.read_text()
    assert "tab\there ]0;owned [2J 31m evil end" in exported
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", exported)
    assert json.loads(js.read_text())["messages"][1]["content"] == f"tab\there {hostile} end"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", js.read_text())


def test_the_key_reaches_no_file_chatrepl_writes(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    server.enqueue(Script(status=401, error_message=f"Incorrect API key provided: {TEST_KEY}"), Script(text="ok"))
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    run_repl(settings, f"hello\r\rnext\r/save {md}\r/save {js}\r", store=Store(tmp_path / "chatrepl.db"))
    written = [md, js, tmp_path / "state" / "chatrepl" / "history", *tmp_path.glob("chatrepl.db*")]
    assert all(path.stat().st_size for path in written)
    for path in written:
        assert TEST_KEY.encode() not in path.read_bytes(), path


def test_a_conversation_deleted_elsewhere_is_set_aside_once_and_saved_anew(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    from conftest import make_session

    from chatrepl.output import Output
    from chatrepl.terminal import Terminal

    path = tmp_path / "chatrepl.db"
    session, other = make_session(settings, Store(path)), make_session(settings, Store(path))
    output = Output(Console(file=io.StringIO(), width=80), Terminal())

    def say(who: ChatSession, text: str) -> None:
        who.ask(text, output.reply_sink(), output.terminal)
        assert who.writer is not None and who.writer.flush(10)

    say(session, "one")
    gone = session.journal.conversation_id
    Store(path).delete(gone)  # another chatrepl deletes the conversation this one writes
    say(session, "two")
    say(other, "meanwhile")  # another conversation's changes wait for nothing
    say(session, "three")
    reports = session.reports()
    assert len([report for report in reports if "set aside" in report]) == 1
    anew = session.journal.conversation_id
    assert reports[-1] == f"conversation {gone} was deleted elsewhere: saved anew as conversation {anew}"
    assert rows(path, f"SELECT role, content FROM messages WHERE conversation_id = {anew} ORDER BY id") == [
        ("user", "one"),
        ("assistant", "You said: **one**"),
        ("user", "two"),
        ("assistant", "You said: **two**"),
        ("user", "three"),
        ("assistant", "You said: **three**"),
    ]
    assert rows(path, f"SELECT content FROM messages WHERE conversation_id = {other.journal.conversation_id}")[0] == (
        "meanwhile",
    )
