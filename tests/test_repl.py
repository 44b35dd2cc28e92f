"""The REPL loop driven through prompt_toolkit's pipe input, against the loopback server."""

from __future__ import annotations

import io
import os
import re
import signal
import threading
import time
from pathlib import Path

import hypothesis
import pytest
from conftest import drive, make_repl, run_repl
from hypothesis import strategies as st
from openai_server import FakeOpenAI, Script
from prompt_toolkit.input import create_pipe_input
from rich.console import Console

from chatrepl.config import Settings
from chatrepl.conversation import INCOMPLETE, INTERRUPTED, Turn
from chatrepl.repl import Repl


def roles(repl: Repl) -> list[tuple[str, str]]:
    return [(turn.role, turn.content) for turn in repl.session.conversation.turns]


def test_second_request_carries_the_first_turn(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(text="Paris."), Script(text="About 2 million."))
    repl, output, code = run_repl(settings, "capital of France?\rand its population?\r")
    assert code == 0
    assert "Paris." in output and "About 2 million." in output
    assert server.requests[1]["messages"] == [
        {"role": "system", "content": settings.system},
        {"role": "user", "content": "capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "and its population?"},
    ]
    assert roles(repl)[-1] == ("assistant", "About 2 million.")


@pytest.mark.parametrize("word", ["new", "/new", "NEW"])
def test_new_resets_to_the_system_prompt(server: FakeOpenAI, settings: Settings, word: str) -> None:
    _, output, _ = run_repl(settings, f"first\r{word}\rsecond\r")
    assert "new conversation" in output
    assert server.requests[1]["messages"] == [
        {"role": "system", "content": settings.system},
        {"role": "user", "content": "second"},
    ]


@pytest.mark.parametrize("word", ["quit", "exit", "/quit", "/exit"])
def test_quit_words_leave_with_status_zero(server: FakeOpenAI, settings: Settings, word: str) -> None:
    _, _, code = run_repl(settings, f"{word}\rnever sent\r")
    assert code == 0 and server.requests == []


def test_empty_input_sends_nothing(server: FakeOpenAI, settings: Settings) -> None:
    run_repl(settings, "\r   \r\t\r")
    assert server.requests == []


def test_unknown_command_is_not_sent(server: FakeOpenAI, settings: Settings) -> None:
    _, output, _ = run_repl(settings, "/frobnicate now\r")
    assert "unknown command /frobnicate, try /help" in output
    assert server.requests == []


def test_a_path_is_a_message_not_a_command(server: FakeOpenAI, settings: Settings) -> None:
    run_repl(settings, "/etc/hosts is what?\r")
    assert server.requests[0]["messages"][-1]["content"] == "/etc/hosts is what?"


def test_help_lists_every_command(server: FakeOpenAI, settings: Settings) -> None:
    from chatrepl.commands import COMMANDS

    _, output, _ = run_repl(settings, "/help\r")  # on an 80-column console
    lines = output.splitlines()
    assert all(len(line) < 80 for line in lines)  # wrapped, not left for the terminal to break mid-word
    for command in COMMANDS:
        usage = f"/{command.name} {command.arguments}".rstrip()
        (start,) = [number for number, line in enumerate(lines) if line.startswith(usage + " ")]
        described = [lines[start]]
        for line in lines[start + 1 :]:
            if line[:1] != " ":
                break
            described.append(line)  # a description goes on under itself
        entry = " ".join(line.strip() for line in described)
        assert command.help in entry
        assert all(f"/{alias}" in entry for alias in command.aliases)
    assert "Alt-Enter" in output and "new, quit and exit work without the slash." in output


def test_alt_enter_inserts_a_newline_and_paste_stays_one_message(server: FakeOpenAI, settings: Settings) -> None:
    paste = "\x1b[200~line one\nline two\n\nline four\x1b[201~"
    run_repl(settings, "first\x1b\rsecond\r" + paste + "\r")
    sent = [request["messages"][-1]["content"] for request in server.requests]
    assert sent == ["first\nsecond", "line one\nline two\n\nline four"]


@pytest.mark.parametrize(
    ("script", "shown"),
    [
        (Script(status=401, error_message="Incorrect API key"), "authentication failed (401)"),
        (Script(status=404, error_message="no such model"), "not found (404)"),
        (Script(status=429, retry_after="20", error_message="slow down"), "rate limited (429), retry after 20 s"),
        (Script(status=500, error_message="boom"), "server error (500)"),
        (Script(status=400, error_code="context_length_exceeded", error_message="too long"), "type new"),
        (Script(first_delay=30), "no answer from"),
    ],
)
def test_a_failed_request_offers_the_text_again(
    server: FakeOpenAI, settings: Settings, script: Script, shown: str
) -> None:
    settings.timeout = 1
    server.enqueue(script, Script(text="Second time lucky."))
    # Enter on the restored input sends the same text again.
    repl, output, code = run_repl(settings, "tell me a joke\r\r")
    assert code == 0
    assert output.count(shown) == 1 and output.count("error: ") == 1
    assert "Second time lucky." in output
    assert server.requests[0]["messages"] == server.requests[1]["messages"]
    assert roles(repl) == [("user", "tell me a joke"), ("assistant", "Second time lucky.")]


def test_debug_shows_the_traceback(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(status=500))
    _, output, _ = run_repl(settings, "hi\r", debug=True)
    assert "Traceback" in output and "InternalServerError: Error code: 500" in output


def test_a_dropped_stream_keeps_the_partial_marked_incomplete(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(text="one two three four five six", chunk_size=4, drop_after=3), Script(text="ok"))
    repl, output, _ = run_repl(settings, "count\rgo on\r")
    assert "connection dropped mid-reply (the partial reply is kept)" in output
    partial = repl.session.conversation.turns[1]
    assert (partial.role, partial.content, partial.status) == ("assistant", "one two ", INCOMPLETE)
    # The model is told its earlier reply was cut off, not handed it as a whole answer.
    assert server.requests[1]["messages"][2]["content"].startswith("one two \n\n[reply cut off")


def test_finish_reasons_and_refusals_are_reported(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(
        Script(text="A long story that", finish_reason="length"),
        Script(text="", finish_reason="content_filter"),
        Script(text="", refusal="I can't help with that."),
    )
    repl, output, _ = run_repl(settings, "story\rbad\rworse\r")
    assert "token limit" in output
    assert "content filter" in output
    assert "the model refused: I can't help with that." in output
    assert roles(repl)[-1] == ("assistant", "I can't help with that.")


def test_plain_mode_writes_text_as_it_arrives(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(text="# Title\n\n**bold** and `code`"))
    _, output, _ = run_repl(settings, "hi\r", plain=True)
    assert "# Title\n\n**bold** and `code`\n" in output


def test_ctrl_c_mid_reply_keeps_the_partial(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(text="word " * 400, chunk_size=5, delay=0.02), Script(text="next"))

    def interrupt() -> None:
        while not server.first_token_times:
            time.sleep(0.01)
        time.sleep(0.2)  # a few chunks on
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    repl, output, code = run_repl(settings, "talk\rmore\r")
    assert code == 0
    partial = repl.session.conversation.turns[1]
    assert partial.status == INTERRUPTED and 0 < len(partial.content) < len("word " * 400)
    assert "interrupted" in output
    # The HTTP stream was closed: the server saw the hang-up with most of the reply unsent.
    deadline = time.monotonic() + 30
    while not server.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.disconnects and len(server.stream_ends) == 1  # only the reply to "more" was sent whole
    assert len(server.requests) == 2
    assert server.requests[1]["messages"][2]["content"].endswith("[reply interrupted by the user]")


def test_markdown_can_be_turned_off_and_on(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(text="**raw**"), Script(text="**rendered**"))
    _, output, _ = run_repl(settings, "/markdown off\rone\r/markdown on\rtwo\r/markdown maybe\r/markdown\r")
    assert "markdown rendering is off" in output and "**raw**" in output
    assert "rendered" in output and "**rendered**" not in output
    assert "/markdown takes on or off, not 'maybe'" in output
    assert output.count("markdown rendering is on") == 2


def test_status_line_after_each_reply_and_usage_totals(server: FakeOpenAI, settings: Settings) -> None:
    settings.model = "gpt-4o-mini"
    server.enqueue(Script(text="x" * 400), Script(text="y" * 800))
    _, output, _ = run_repl(settings, "one\rtwo\r/usage\r")
    # The loopback server reports 10 prompt tokens and a completion of len(text) // 4.
    first, second = (10 * 0.15 + 100 * 0.60) / 1e6, (10 * 0.15 + 200 * 0.60) / 1e6
    assert first == pytest.approx(0.0000615) and second == pytest.approx(0.0001215)
    assert "10 in · 100 out · $0.000062 · session $0.000062 · context 0%" in output
    assert "10 in · 200 out · $0.00012 · session $0.00018 · context 0%" in output
    assert "this conversation: 2 replies · 20 in · 300 out · $0.00018" in output


def test_cached_and_reasoning_tokens_are_shown_and_cached_ones_billed_lower(
    server: FakeOpenAI, settings: Settings
) -> None:
    settings.model = "gpt-5-mini"  # $0.25 in, $0.025 cached in, $2.00 out per million
    server.enqueue(Script(text="x" * 400, cached_tokens=8, reasoning_tokens=50))
    _, output, _ = run_repl(settings, "think\r")
    cost = (2 * 0.25 + 8 * 0.025 + 150 * 2.00) / 1e6
    assert cost == pytest.approx(0.0003007)
    assert "10 in (8 cached) · 150 out (50 reasoning) · $0.00030 · session $0.00030" in output


def test_unknown_model_shows_tokens_but_no_cost(server: FakeOpenAI, settings: Settings) -> None:
    _, output, _ = run_repl(settings, "one\r")
    assert "10 in · 4 out\n" in output and "$" not in output


def test_set_validates_and_reaches_the_request(server: FakeOpenAI, settings: Settings) -> None:
    keys = (
        "/set temperature 0.7\r/set top_p 0.9\r/set presence_penalty 3\r/set frequency-penalty -1.5\r"
        "/set stop END,STOP\r/set seed 42\r/set max_tokens 50\r/set colour blue\r/set\rhello\r"
    )
    _, output, _ = run_repl(settings, keys)
    assert "presence_penalty must be between -2 and 2, got 3" in output
    assert "/set knows temperature" in output and "not 'colour'" in output
    assert "temperature = 0.7 · top_p = 0.9 · max_tokens = 50 · presence_penalty = (server default)" in output
    request = server.requests[0]
    assert (request["temperature"], request["top_p"], request["frequency_penalty"]) == (0.7, 0.9, -1.5)
    assert (request["stop"], request["seed"], request["max_tokens"]) == (["END", "STOP"], 42, 50)
    assert "presence_penalty" not in request


def test_set_without_a_value_goes_back_to_the_server_default(server: FakeOpenAI, settings: Settings) -> None:
    settings.temperature = 1.0
    run_repl(settings, "/set temperature\rhello\r")
    assert "temperature" not in server.requests[0]


def test_model_switch_follows_the_catalogue_rules(server: FakeOpenAI, settings: Settings) -> None:
    settings.temperature, settings.max_tokens = 0.5, 99
    _, output, _ = run_repl(settings, "/model gpt-5-mini\rhello\r/model\r")
    assert "model gpt-5-mini · context 400,000 tokens · $0.25 in / $2 out per million tokens" in output
    assert "takes no temperature" in output
    request = server.requests[0]
    assert request["model"] == "gpt-5-mini" and request["max_completion_tokens"] == 99
    assert "temperature" not in request and "max_tokens" not in request


def test_system_prompt_can_be_changed(server: FakeOpenAI, settings: Settings) -> None:
    _, output, _ = run_repl(settings, "/system You are a pirate.\rhello\r")
    assert "system prompt: You are a pirate." in output
    assert server.requests[0]["messages"][0] == {"role": "system", "content": "You are a pirate."}


def test_tab_completes_commands_models_and_keys(server: FakeOpenAI, settings: Settings) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    repl, _, _ = run_repl(settings, "")
    completer = repl.prompt.completer
    assert completer is not None

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))]

    assert complete("/mo") == ["/model", "/mode"]
    assert "gpt-4o-mini" in complete("/model gpt-4o")
    (mini,) = [
        c for c in completer.get_completions(Document("/model gpt-4o-m"), CompleteEvent()) if c.text == "gpt-4o-mini"
    ]
    assert mini.display_meta_text == "context 128,000 tokens · $0.15 in / $0.6 out per million tokens"
    assert complete("/set pre") == ["presence_penalty"]
    assert complete("hello") == []
    server.model_ids = ["test-model", "test-\x1b]0;owned\x07"]
    repl._warm_up()  # fetches the server's /models, as it does in the background
    assert complete("/model test") == ["test-model"]  # a name with control characters is not offered


def test_old_turns_are_left_out_to_fit_the_context_window(server: FakeOpenAI, settings: Settings) -> None:
    settings.model, settings.max_tokens = "small-window", 100
    settings.models = {"small-window": {"context": 400}}
    examples = [Turn("user", "example question"), Turn("assistant", "example answer")]
    long = "word " * 200  # about 250 tokens each
    _, output, _ = run_repl(settings, f"{long}\rsecond {long}\rthird\r", examples=examples)
    assert "left out the 1 oldest exchange(s) to fit the model's context window" in output
    sent = server.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and sent[1:3] == [
        {"role": "user", "content": "example question"},
        {"role": "assistant", "content": "example answer"},
    ]
    assert [m["content"] for m in sent[3:]][-1] == "third"
    assert not any(m["content"] == long for m in sent)


def test_a_context_error_leaves_out_the_oldest_exchange_and_asks_again(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(
        Script(text="one"),
        Script(status=400, error_code="context_length_exceeded", error_message="maximum context length"),
        Script(text="fits now"),
    )
    _, output, _ = run_repl(settings, "first\rsecond\r")
    assert "too long for the server: left out the oldest exchange and asked again" in output
    assert "fits now" in output
    assert [m["content"] for m in server.requests[-1]["messages"][1:]] == ["second"]


def test_json_mode(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(text='{"answer": 42}'), Script(text="not json at all"), Script(text="{}"))
    _, output, _ = run_repl(settings, "/json on\rthe answer?\ragain\r/json off\rplain\r")
    first, _second, third = server.requests
    assert first["response_format"] == {"type": "json_object"}
    assert first["messages"][1] == {"role": "system", "content": "Reply with a JSON object."}
    assert "the reply is not valid JSON" in output and output.count("not valid JSON") == 1
    assert "response_format" not in third
    assert all(m["content"] != "Reply with a JSON object." for m in third["messages"])


def test_json_hint_is_not_added_when_json_is_mentioned(server: FakeOpenAI, settings: Settings) -> None:
    settings.json = True
    run_repl(settings, "give me json\r")
    assert [m["role"] for m in server.requests[0]["messages"]] == ["system", "user"]


def test_completion_mode_sends_a_prompt_and_shows_every_choice(server: FakeOpenAI, settings: Settings) -> None:
    settings.temperature, settings.max_tokens, settings.n = 0.2, 30, 2
    server.enqueue(Script(text=" Four.", other_choices=[" 4"]), Script(text=" Six."))
    repl, output, _ = run_repl(settings, "/mode completion\rtwo plus two?\r/set n 1\rthree plus three?\r")
    first, second = server.requests
    assert first["prompt"] == f"{settings.system}\n\nUser: two plus two?\nAssistant:"
    assert (first["n"], first["max_tokens"], first["temperature"], first["stop"]) == (2, 30, 0.2, ["\nUser:"])
    assert "messages" not in first
    assert "Four." in output and "choice 2 of 2 (the history keeps choice 1):\n 4" in output
    assert second["prompt"].endswith("User: two plus two?\nAssistant:  Four.\nUser: three plus three?\nAssistant:")
    assert roles(repl)[-1] == ("assistant", " Six.")


def test_an_instruct_model_uses_completions_by_itself(server: FakeOpenAI, settings: Settings) -> None:
    settings.model = "gpt-3.5-turbo-instruct"
    _, output, _ = run_repl(settings, "/mode\rhello\r")
    assert "completion mode is used" in output
    assert "prompt" in server.requests[0]


def test_help_for_one_command(server: FakeOpenAI, settings: Settings) -> None:
    _, output, _ = run_repl(settings, "/help resume\r/help /quit\r/help nope\r")
    assert "/resume ID\n  go on with a saved conversation" in output
    assert "/quit, /exit\n  leave chatrepl" in output
    assert "  Also without the slash: quit, exit." in output  # the details beyond the one-line help
    assert "no command /nope, try /help" in output
    _, output, _ = run_repl(settings, "/help image\r")  # long details, on an 80-column console
    lines = output.strip().splitlines()
    assert lines[0] == "/image PATH|URL… [QUESTION]" and all(len(line) < 80 for line in lines)
    assert "Images are saved with the conversation, so /retry" in " ".join(line.strip() for line in lines)


def test_input_history_is_kept_in_a_private_file(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    import stat

    run_repl(settings, "first message\r/history off\rsecret message\r/history on\rthird message\r")
    path = tmp_path / "state" / "chatrepl" / "history"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = path.read_text()
    assert "first message" in saved and "third message" in saved and "secret message" not in saved
    server.enqueue(Script(text="again"))
    run_repl(settings, "\x1b[A\r")  # Up brings back the last message of the earlier session
    assert server.requests[-1]["messages"][-1]["content"] == "third message"


def test_multiline_mode_swaps_enter_and_alt_enter(server: FakeOpenAI, settings: Settings) -> None:
    _, output, _ = run_repl(settings, "/multiline\rline one\rline two\x1b\r/multiline off\x1b\rsingle\r")
    assert "multi-line mode on: Enter adds a line, Alt-Enter sends" in output
    assert [r["messages"][-1]["content"] for r in server.requests] == ["line one\nline two", "single"]


def test_multiline_mode_can_be_on_from_the_start(server: FakeOpenAI, settings: Settings) -> None:
    settings.multiline = True
    run_repl(settings, "line one\rline two\x1b\r")
    assert server.requests[0]["messages"][-1]["content"] == "line one\nline two"


def test_edit_composes_the_message_in_the_editor(
    server: FakeOpenAI, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf " written in the editor\\n" >> "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("VISUAL", str(editor))
    run_repl(settings, "/edit draft:\r\r")
    assert server.requests[0]["messages"][-1]["content"] == "draft: written in the editor"
    monkeypatch.setenv("VISUAL", str(tmp_path / "missing-editor"))
    _, output, _ = run_repl(settings, "/edit\r")
    assert "did not run" in output


def test_toolbar_shows_model_mode_context_and_cost(server: FakeOpenAI, settings: Settings) -> None:
    settings.model = "gpt-4o-mini"
    repl, _, _ = run_repl(settings, "hello\r/json on\r")
    assert repl.toolbar_text() == "gpt-4o-mini · json · context 0% · session $0.0000039"
    repl.show_toolbar(False)
    assert repl.prompt.bottom_toolbar is None


def test_rate_limits_and_server_errors_are_retried_before_any_text(server: FakeOpenAI, settings: Settings) -> None:
    settings.retries = 3
    server.enqueue(
        Script(status=429, retry_after="0", error_message="slow down"),
        Script(status=503, retry_after="0", error_message="busy"),
        Script(text="Finally."),
    )
    repl, output, _ = run_repl(settings, "hello\r")
    assert "rate limited (429), retry after 0 s: slow down · try 2 of 4 · retrying in 0 s" in output
    assert "server error (503): busy · try 3 of 4" in output
    assert "Finally." in output and len(server.requests) == 3
    assert roles(repl) == [("user", "hello"), ("assistant", "Finally.")]


def test_retries_give_up_after_the_limit_and_never_follow_text(server: FakeOpenAI, settings: Settings) -> None:
    settings.retries = 1
    server.enqueue(
        Script(status=500, retry_after="0"),
        Script(status=500, retry_after="0", error_message="still down"),
        Script(text="abcdefgh", chunk_size=2, drop_after=3),
    )
    _, output, _ = run_repl(settings, "one\r\x03two\r")
    assert "error: server error (500): still down" in output
    assert len(server.requests) == 3  # one try and one retry for "one"; "two" is cut off and not retried
    assert "connection dropped mid-reply" in output


def test_a_connection_lost_before_any_text_is_asked_again(server: FakeOpenAI, settings: Settings) -> None:
    settings.retries = 1
    server.enqueue(Script(text="lost", drop_after=1), Script(text="Whole."))  # event 0 carries only the role
    repl, output, _ = run_repl(settings, "hello\r")
    assert "the connection dropped mid-reply · try 2 of 2" in output
    assert roles(repl) == [("user", "hello"), ("assistant", "Whole.")] and len(server.requests) == 2


def test_ctrl_c_stops_the_countdown(server: FakeOpenAI, settings: Settings) -> None:
    settings.retries = 2
    server.enqueue(Script(status=429, retry_after="30"))

    def interrupt() -> None:
        while not server.requests:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    repl, output, _ = run_repl(settings, "hello\r")
    # Not stopped, the countdown would have asked again after 30 s.
    assert "interrupted" in output and len(server.requests) == 1
    assert repl.session.conversation.turns == []


def test_file_attaches_text_and_refuses_binary_and_big_files(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nremember the milk\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x00\x00")
    (tmp_path / "big.txt").write_text("x" * 300_000)
    keys = f"/file {notes}\rsummarize\r/file {tmp_path / 'image.png'}\r/file {tmp_path / 'big.txt'}\r"
    keys += f"/file {notes} what to buy?\r/file {tmp_path / 'missing.txt'}\r"
    _, output, _ = run_repl(settings, keys)
    first, second = (request["messages"][-1]["content"] for request in server.requests)
    assert first == f"summarize\n\nFile {notes}:\n```markdown\n# Notes\n\nremember the milk\n```"
    assert second.startswith("what to buy?\n\nFile ")
    assert "notes.md (27 B)" in output and "goes with your next message" in output
    assert "cannot attach" in output and "it is a binary file" in output
    assert "did not fit in the 256 KB left for files (file_limit)" in output and "big.txt (293 KB)" in output
    assert "missing.txt: No such file or directory" in output


def test_copy_writes_the_clipboard_through_the_terminal(server: FakeOpenAI, settings: Settings) -> None:
    import base64

    reply = "Run this:\n\n```sh\necho one\n```\n\nand\n\n```py\nprint(2)\n```\n"
    server.enqueue(Script(text=reply))
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    _, output, _ = run_repl(settings, "/copy\rhello\r/copy 2\r/copy 3\r/copy\r", console=console)
    assert "no reply to copy yet" in output
    assert f"\x1b]52;c;{base64.b64encode(b'print(2)' + bytes([10])).decode()}\x07" in output
    assert "the last reply has 2 code blocks: /copy 1 to /copy 2" in output
    assert f"\x1b]52;c;{base64.b64encode(reply.encode()).decode()}\x07" in output


def test_copy_needs_a_terminal(server: FakeOpenAI, settings: Settings) -> None:
    _, output, _ = run_repl(settings, "hello\r/copy\r")
    assert "copying needs a terminal" in output


def test_completion_of_paths_and_saved_sessions(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from chatrepl.store import Store

    (tmp_path / "report.txt").write_text("x")
    store = Store(tmp_path / "db.sqlite")
    store.import_conversation("m", "s", "about cats", [])
    repl, _, _ = run_repl(settings, "", store=store)
    completer = repl.prompt.completer
    assert completer is not None
    event = CompleteEvent(completion_requested=True)
    paths = [c.text for c in completer.get_completions(Document(f"/file {tmp_path}/rep"), event)]
    assert paths == ["ort.txt"]
    (tmp_path / "evil\u202etxt.exe").write_text("x")  # a name that shows reversed
    (shown,) = [c.display_text for c in completer.get_completions(Document(f"/file {tmp_path}/evil"), event)]
    assert shown == "evil<U+202E>txt.exe"
    sessions = list(completer.get_completions(Document("/resume "), event))
    assert [(c.text, c.display_meta_text) for c in sessions] == [("1", "about cats")]
    commands_ = {c.text: c.display_meta_text for c in completer.get_completions(Document("/re"), event)}
    assert commands_["/retry"] == "ask for the last reply again, replacing it"


def test_a_one_megabyte_paste_and_bytes_that_are_not_utf8(server: FakeOpenAI, settings: Settings) -> None:
    big = ("word " * 20 + "\n") * 9500  # about 1 MB
    server.enqueue(Script(text="got it"), Script(text="got that"))
    with create_pipe_input() as pipe:

        def type_in() -> None:  # from another thread: more than a pipe's buffer waits for the reader
            pipe.send_text("\x1b[200~" + big + "\x1b[201~\r")
            pipe.send_bytes(b"caf\xe9 \xff\xfe ok\r\x03\x04")

        threading.Thread(target=type_in, daemon=True).start()
        console = Console(file=io.StringIO(), width=80, color_system=None)
        drive(make_repl(settings, pipe, console))
    first, second = (request["messages"][-1]["content"] for request in server.requests)
    assert first == big.rstrip("\n") or first == big
    assert second.startswith("caf") and second.endswith(" ok")


STEERING = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
LIVE_AREA_REDRAW = re.compile(r"\r\x1b\[2K(\x1b\[1A\x1b\[2K)+")
hostile_text = st.text(alphabet="\x1b\x07\x9b\x90\r\x08\u202e\x7f[]2J0;b ", min_size=1, max_size=30) | st.text(
    min_size=1, max_size=30
)


@hypothesis.settings(
    max_examples=25, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(hostile=hostile_text)
def test_no_outside_text_reaches_the_terminal_as_a_control(
    server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory, hostile: str
) -> None:
    """Reply, refusal, error body, saved title, model name and system prompt, on a terminal without colours:
    the only control sequences written are the live area's own."""
    from chatrepl.store import Store

    store = Store(tmp_path_factory.mktemp("db") / "chatrepl.db")
    store.import_conversation(hostile, "s", hostile, [])  # a saved title and model name
    server.enqueue(Script(text=f"{hostile} reply", refusal=hostile), Script(status=400, error_message=hostile))
    settings = Settings(api_key="sk-property", base_url=server.url, model=hostile, system=hostile, timeout=5, retries=0)
    console = Console(file=io.StringIO(), width=60, height=20, force_terminal=True, color_system=None)
    repl, output, _ = run_repl(settings, "one\rtwo\r/sessions\r/system\r/model\r", store=store, console=console)
    assert "sk-property" not in output
    assert not STEERING.search(LIVE_AREA_REDRAW.sub("", output)), repr(output)
    assert not STEERING.search(repl.banner()), repr(repl.banner())  # drawn by prompt_toolkit, not this console


@pytest.mark.parametrize(
    ("width", "lines"),
    [
        (120, ["10 in · 5 out · $0.0000045 · session $0.0000045 · context 0% · thought 0.0 s · answer after 0.0 s"]),
        (70, ["10 in · 5 out · $0.0000045 · session $0.0000045 · context 0%", "thought 0.0 s · answer after 0.0 s"]),
        (30, ["10 in · 5 out · $0.0000045", "context 0%"]),
        (16, ["10 in · 5 out", "$0.0000045"]),
    ],
)
def test_the_status_line_breaks_between_fields_and_leaves_out_the_least_useful(
    server: FakeOpenAI, settings: Settings, width: int, lines: list[str]
) -> None:
    settings.model = "gpt-4o-mini"
    server.enqueue(Script(text="Hello there, friend!", reasoning="Hmm.", reasoning_form="reasoning"))
    console = Console(file=io.StringIO(), width=width, color_system=None)
    _, output, _ = run_repl(settings, "hi\r", console=console)
    shown = re.sub(r"\d\.\d s", "0.0 s", output)
    assert "\n".join(["", *lines, ""]) in shown
    if width >= 30:  # the thinking's line too, where its first field fits at all
        thought = "thought for 0.0 s · ~1 tokens" + (" · " if width > 50 else "\n") + "/think to show"
        assert f"\n{thought}\n" in shown
