"""Finding saved conversations: full-text search with a highlighted snippet, paging, rename and
delete, in the REPL, from the shell and in a terminal; the search index added to a database
made before it."""

from __future__ import annotations

import io
import re
import sqlite3
import subprocess
from pathlib import Path

import pexpect
from conftest import installed_chatrepl, run_repl
from openai_server import FakeOpenAI, Script
from rich.console import Console

from chatrepl.config import Settings
from chatrepl.conversation import Turn
from chatrepl.store import MATCH_END, MATCH_START, MIGRATIONS, Store, _statements


def saved(store: Store, *titles_and_texts: tuple[str, str]) -> list[int]:
    return [
        store.import_conversation("m", "s", title, [Turn("user", text), Turn("assistant", "ok")])
        for title, text in titles_and_texts
    ]


def test_search_finds_every_word_anywhere_the_last_as_a_prefix(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    first, second, third = saved(
        store,
        ("soup", "How long should a lentil soup simmer?"),
        ("bread", "Sourdough starter smells of acetone, is that normal?"),
        ("café", "Où est le café? Réponse en français."),
    )
    assert [row.id for row, _ in store.search("lentil soup")] == [first]
    assert [row.id for row, _ in store.search("sourd")] == [second]  # the last word may be the start of one
    assert [row.id for row, _ in store.search("cafe")] == [third]  # accents aside
    assert store.search("lentil acetone") == []  # every word, in one message
    assert store.search('" OR * NEAR(') == []  # the search's own syntax is only text
    ((row, snippet),) = store.search("simmer")
    assert f"{MATCH_START}simmer{MATCH_END}" in snippet and row.title == "soup"


def test_sessions_search_and_pages_in_the_repl(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    saved(store, *[(f"talk {n}", f"message number {n} about weather") for n in range(1, 46)])
    saved(store, ("the one", "where is the hidden treasure buried"))
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    _, output, _ = run_repl(
        settings, "/sessions treasure\r/sessions\r/sessions 3\r/sessions 9\r", store=store, console=console
    )
    assert "the one" in output
    assert "\x1b[1;4mtreasure\x1b[0m" in output  # the match marked
    assert "page 1 of 3 (46 conversations): /sessions 2 for the next, /sessions --all for every one" in output
    assert "page 3 of 3 (46 conversations): /sessions --all for every one" in output
    assert "there are 46 saved conversations: no page 9" in output
    _, output, _ = run_repl(settings, "/sessions --all\r/sessions nothing-like-it\r", store=store)
    assert all(f"talk {n}" in output for n in range(1, 46))
    assert "no saved conversation holds 'nothing-like-it'" in output


def test_rename_and_delete_with_a_question_first(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    (other,) = saved(store, ("keep me?", "something to delete"))
    keys = "/rename nothing yet\rhello there\r/rename  My   chat \r"
    keys += f"/delete {other}\rn\r/delete {other}\ry\r/delete 99\r/delete 1\ryes\r/sessions\r"
    _, output, _ = run_repl(settings, keys, store=store)
    assert "this conversation is not saved yet: send a message first" in output
    assert "this conversation is now called 'My chat'" in output
    assert "nothing deleted" in output and f"deleted conversation {other}" in output
    assert "no saved conversation 99" in output
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT id, title FROM conversations").fetchall() == [(2, "My chat")]
        assert db.execute("SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (other,)).fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'delete'").fetchone() == (0,)


def test_deleting_this_conversation_starts_a_new_one(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    _, output, _ = run_repl(settings, "hello\r/delete 1\ry\rsecond\r", store=store)
    assert "deleted conversation 1: a new one begins" in output
    assert [m["content"] for m in server.requests[1]["messages"] if m["role"] == "user"] == ["second"]
    assert [row.title for row in store.conversations()] == ["second"]


def test_the_search_index_is_added_to_a_database_made_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:4]:  # the schema of the release before the search
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 4")
    db.execute(
        "INSERT INTO conversations (title, model, system_prompt, created, updated) VALUES ('old', 'm', 's', 0, 0)"
    )
    db.execute(
        "INSERT INTO messages (conversation_id, role, content, status, created, updated)"
        " VALUES (1, 'user', 'a question about quaternions', 'complete', 0, 0)"
    )
    db.close()
    store = Store(path)
    assert [row.title for row, _ in store.search("quaternions")] == ["old"]
    assert store.conversation(1) is not None and store.conversation(1)[0].role == ""


def test_sessions_export_and_delete_from_the_shell(server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = Store(db)
    first, second = saved(store, ("about owls", "owls hunt at night"), ("about cats", "cats sleep all day"))
    store.close()
    env = {**cli_env, "CHATREPL_DB": str(db)}

    def chatrepl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([installed_chatrepl(), *args], env=env, capture_output=True, text=True, timeout=30)

    listed = chatrepl("--sessions")
    assert listed.returncode == 0 and "about owls" in listed.stdout and "about cats" in listed.stdout
    found = chatrepl("--sessions", "owls")
    assert found.returncode == 0 and "about cats" not in found.stdout
    assert "owls hunt at night" in found.stdout and "\x1b" not in found.stdout  # plain: not a terminal
    assert chatrepl("--sessions", "zebras").returncode == 1
    exported = chatrepl("--export", str(first), str(tmp_path / "owls.md"))
    assert exported.returncode == 0 and "saved to" in exported.stderr
    assert "owls hunt at night" in (tmp_path / "owls.md").read_text()
    assert chatrepl("--export", "77", str(tmp_path / "x.md")).returncode == 1
    refused = chatrepl("--delete", str(second))  # no terminal to ask on
    assert refused.returncode == 2 and "run it on a terminal" in refused.stderr
    child = pexpect.spawn(installed_chatrepl(), ["--delete", str(second)], env=env, encoding="utf-8", timeout=15)
    child.expect_exact(f"delete conversation {second}, 'about cats' (1 turns)? [y/N]")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert [row.title for row in Store(db).conversations()] == ["about owls"]
    assert server.requests == []


def test_a_reply_is_found_once_it_is_finished(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    server.enqueue(Script(text="The answer mentions platypus."))
    _, output, _ = run_repl(settings, "tell me\r/sessions platyp\r/sessions zzz\r", store=store)
    assert re.search(r"1 turns\s+test-model\s+tell me\n\s+The answer mentions platypus", output), output


def test_what_a_search_shows_from_saved_text_cannot_steer_the_terminal(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    store = Store(tmp_path / "c.db")
    saved(store, ("title \x1b]0;owned\x07", "the hostile \x1b[2J reply clears \x1b]52;c;Zm9v\x07 the screen"))
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    _, output, _ = run_repl(settings, "/sessions hostile\r", store=store, console=console)
    assert "^[[2J" in output and "^[]52;c;Zm9v^G" in output and "^[]0;owned^G" in output
    assert "\x1b[2J" not in output and "\x1b]" not in output


def test_a_search_finds_what_a_reply_asked_of_tools_and_what_they_gave(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    call = {"id": "c", "type": "function", "function": {"name": "weather__now", "arguments": '{"city": "Reykjavík"}'}}
    tools = (
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c", "content": "Sleet and gales all week", "decision": "allowed"},
    )
    (asked,) = [
        store.import_conversation("m", "s", "weather", [Turn("user", "out?"), Turn("assistant", "No.", tools=tools)])
    ]
    saved(store, ("other", "gale-free days"))
    (row, shown), *rest = store.search("gales")
    assert row.id == asked and rest == [] and f"{MATCH_START}gales{MATCH_END}" in shown
    assert [row.id for row, _ in store.search("reykjavik")] == [asked]
    store.delete(asked)
    assert store.search("gales") == []
