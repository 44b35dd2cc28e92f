"""A thinking model's reasoning, in each form servers send it: shown live, collapsed, saved, never sent back."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pexpect
import pytest
from conftest import installed_chatrepl, run_repl
from openai_server import FakeOpenAI, Script

from chatrepl.config import Settings
from chatrepl.conversation import INTERRUPTED
from chatrepl.store import Store

FORMS = ["reasoning_content", "reasoning", "think"]
THOUGHT = "First, the user greets me.\nSo I should greet back, **briefly**."


@pytest.mark.parametrize("form", FORMS)
def test_the_thinking_is_collapsed_shown_on_request_saved_and_never_sent_back(
    server: FakeOpenAI, settings: Settings, tmp_path: Path, form: str
) -> None:
    path = tmp_path / "chatrepl.db"
    server.enqueue(Script(text="Hello there!", reasoning=THOUGHT, reasoning_form=form), Script(text="Fine."))
    repl, output, _ = run_repl(settings, "hi\r/think\r", store=Store(path))
    assert "thought for " in output and "/think to show" in output
    assert re.search(r"· thought [0-9.]+ s · answer after [0-9.]+ s\n", output)  # in the status line
    assert "First, the user greets me." in output  # from /think, rendered as markdown
    assert "Hello there!" in output and "<think>" not in output
    reply = repl.session.conversation.turns[1]
    assert (reply.content, reply.reasoning) == ("Hello there!", THOUGHT)
    with sqlite3.connect(path) as db:
        saved = db.execute("SELECT content, reasoning FROM messages WHERE role = 'assistant'").fetchall()
    assert saved == [("Hello there!", THOUGHT)]
    _, resumed, _ = run_repl(settings, "/resume 1\r/think\rand you?\r", store=Store(path))
    assert resumed.count("So I should greet back") == 1  # brought back, and shown on request only
    assert server.requests[1]["messages"][2] == {"role": "assistant", "content": "Hello there!"}


def test_an_unclosed_think_block_is_all_thinking_and_the_budget_is_named(
    server: FakeOpenAI, settings: Settings
) -> None:
    server.enqueue(Script(text="<think>Let me count the ways, one by one", finish_reason="length"))
    repl, output, _ = run_repl(settings, "how many?\r")
    assert "spent its whole token budget thinking" in output and "max_tokens" in output
    assert "(the model sent an empty reply)" not in output and "token limit" not in output
    reply = repl.session.conversation.turns[1]
    assert (reply.content, reply.reasoning) == ("", "Let me count the ways, one by one")


def test_ctrl_c_while_the_model_thinks_keeps_the_thinking_marked_interrupted(
    server: FakeOpenAI, settings: Settings
) -> None:
    server.enqueue(Script(text="never reached", reasoning="hmm " * 500, chunk_size=4, delay=0.01))

    def interrupt() -> None:
        while not server.first_token_times:
            time.sleep(0.01)
        time.sleep(0.2)  # some thinking on
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    repl, output, _ = run_repl(settings, "think hard\r")
    assert "interrupted (the thinking so far is kept)" in output
    reply = repl.session.conversation.turns[1]
    assert reply.status == INTERRUPTED and reply.content == ""
    assert reply.reasoning.startswith("hmm hmm") and len(reply.reasoning) < len("hmm " * 500)


def test_exports_keep_the_thinking_apart(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    server.enqueue(Script(text="Answer.", reasoning=THOUGHT))
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    run_repl(settings, f"q\r/save {md}\r/save {js}\r")
    assert json.loads(js.read_text())["messages"][1] == {
        "role": "assistant",
        "content": "Answer.",
        "status": "complete",
        "reasoning": THOUGHT,
    }
    assert f"<details><summary>thinking</summary>\n\n{THOUGHT}\n\n</details>\n\nAnswer." in md.read_text()
    _, output, _ = run_repl(settings, f"/load {js}\r/think\r")
    assert "So I should greet back" in output


@pytest.mark.parametrize("mode", ["collapse", "show"])
def test_answering_once_prints_the_answer_alone_on_standard_output(
    server: FakeOpenAI, cli_env: dict[str, str], mode: str
) -> None:
    server.enqueue(Script(text="Paris.", reasoning="The capital of France is Paris.", reasoning_form="reasoning"))
    result = subprocess.run(
        [installed_chatrepl(), "--thinking", mode, "capital?"],
        env=cli_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Paris.\n"
    assert ("The capital of France is Paris." in result.stderr) == (mode == "show")


def test_on_a_terminal_the_thinking_is_live_then_one_line(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    thought = "\n".join(f"step {n} of the plan" for n in range(60))
    server.enqueue(Script(text="Done thinking.", reasoning=thought, chunk_size=6, delay=0.01))
    env = {**cli_env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(installed_chatrepl(), env=env, dimensions=(30, 100), encoding="utf-8", timeout=30)
    child.expect_exact("\x1b[?2004h")
    child.send("plan it\r")
    child.expect("thinking… [0-9]+ s")  # the live area's header, while the model thinks
    child.expect("step [0-9]+ of the plan")
    child.expect("thought for [0-9.]+ s · ~[0-9,]+ tokens · /think to show")
    child.expect("Done thinking.")
    child.expect_exact("\x1b[?2004h")
    screen = child.before or ""
    assert "step 59 of the plan" not in screen.split("thought for")[-1]  # the thinking did not stay on screen
    child.sendeof()
    child.expect(pexpect.EOF)


def test_reasoning_effort_goes_where_the_catalogue_allows(server: FakeOpenAI, settings: Settings) -> None:
    keys = "/set reasoning_effort extreme\r/set reasoning_effort low\rone\r/model gpt-5-mini\rtwo\r/model gpt-4o\r"
    keys += "/set reasoning_effort high\rthree\r"
    _, output, _ = run_repl(settings, keys)
    assert "reasoning_effort is minimal, low, medium or high, not 'extreme'" in output
    assert "gpt-4o takes no reasoning_effort: it is not sent" in output
    efforts = [request.get("reasoning_effort") for request in server.requests]
    assert efforts == ["low", "low", None]  # a model the catalogue does not know, gpt-5-mini, gpt-4o


def test_a_try_after_an_error_mid_thought_thinks_anew(server: FakeOpenAI, settings: Settings) -> None:
    first = json.dumps({"choices": [{"index": 0, "delta": {"reasoning_content": "A thought cut short."}}]})
    server.enqueue(
        Script(raw_body=[f"data: {first}\n\n".encode(), b'event: error\ndata: {"message": "overloaded"}\n\n']),
        Script(text="Hello there!", reasoning=THOUGHT),
    )
    settings.retries = 1
    repl, output, _ = run_repl(settings, "hi\r/think\r")
    assert "the server reported an error: overloaded · try 2 of 2" in output
    reply = repl.session.conversation.turns[1]
    assert (reply.content, reply.reasoning) == ("Hello there!", THOUGHT)
    assert "cut short" not in output.split("try 2 of 2")[1]
