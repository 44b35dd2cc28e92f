"""ChatClient against the loopback server: events, and every error kind."""

from __future__ import annotations

import itertools
import json
import socket

import hypothesis
import pytest
from conftest import TEST_KEY
from hypothesis import strategies as st
from openai_server import FakeOpenAI, Script

from chatrepl.client import (
    ChatClient,
    ChatError,
    Finished,
    ReasoningDelta,
    RefusalDelta,
    Request,
    TextDelta,
    ThinkSplitter,
    Usage,
)
from chatrepl.config import Settings

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
REQUEST = Request("test-model", tuple(MESSAGES))
AB_EVENT = '{"choices": [{"index": 0, "delta": {"content": "ab"}}]}'


def client_for(settings: Settings) -> ChatClient:
    return ChatClient.from_settings(settings)


def collect(client: ChatClient, request: Request = REQUEST) -> tuple[list[object], ChatError | None]:
    events: list[object] = []
    try:
        events.extend(client.stream(request))
    except ChatError as err:
        return events, err
    return events, None


def text_of(events: list[object]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def test_streams_text_and_finish_reason(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(text="Hello, world! 你好", chunk_size=3))
    events, error = collect(client_for(settings))
    assert error is None
    assert text_of(events) == "Hello, world! 你好"
    assert events[-2:] == [Finished("stop"), Usage(10, 4)]
    request = server.requests[0]
    assert request["messages"] == MESSAGES and request["stream"] is True and request["model"] == "test-model"
    assert request["stream_options"] == {"include_usage": True}
    assert server.headers_seen[0]["authorization"] == f"Bearer {TEST_KEY}"


def test_a_server_that_rejects_stream_options_is_asked_again_without(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(status=400, error_message="Unrecognized request argument supplied: stream_options"))
    client = client_for(settings)
    events, error = collect(client)
    assert error is None and text_of(events) == "You said: **hi**"
    collect(client)
    assert ["stream_options" in request for request in server.requests] == [True, False, False]


def test_refusal_and_usage_events(server: FakeOpenAI, settings: Settings) -> None:
    usage = json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
    refusal = json.dumps({"choices": [{"index": 0, "delta": {"refusal": "I can't help with that."}}]})
    done = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    server.enqueue(Script(raw_events=[refusal, done, usage, "[DONE]"]))
    events, error = collect(client_for(settings))
    assert error is None
    assert events == [RefusalDelta("I can't help with that."), Finished("stop"), Usage(7, 3)]


def test_a_keyless_server_gets_no_authorization_header(server: FakeOpenAI, settings: Settings) -> None:
    settings.api_key = None
    assert collect(client_for(settings))[1] is None
    assert "authorization" not in server.headers_seen[0]


def test_the_openai_organisation_and_project_go_with_the_default_servers_requests(
    server: FakeOpenAI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-example")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_example")
    assert collect(client_for(settings))[1] is None
    headers = server.headers_seen[0]
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-example", "proj_example")
    assert headers["user-agent"].startswith("chatrepl/")


def test_an_error_body_in_any_shape_is_one_line(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(status=404, error_body='{"error": "model \'nope\' not found"}'))  # Ollama's shape
    server.enqueue(Script(status=502, error_body="<html>\n<h1>502 Bad Gateway</h1>\n</html>"))
    client = client_for(settings)
    first, second = collect(client)[1], collect(client)[1]
    assert first is not None and first.message == "not found (404): model 'nope' not found"
    assert second is not None and second.message == "server error (502): <html> <h1>502 Bad Gateway</h1> </html>"


@pytest.mark.parametrize(
    ("script", "kind", "words"),
    [
        (Script(status=401, error_message="Incorrect API key provided"), "auth", ["401", "Incorrect API key"]),
        (Script(status=403, error_message="not allowed"), "permission", ["403", "not allowed"]),
        (Script(status=404, error_message="The model `nope` does not exist"), "not_found", ["404", "nope"]),
        (Script(status=429, retry_after="12", error_message="slow down"), "rate_limit", ["429", "retry after 12 s"]),
        (Script(status=429, error_code="insufficient_quota", error_message="quota"), "quota", ["quota exceeded"]),
        (Script(status=503, error_message="overloaded"), "server", ["503", "overloaded"]),
        (
            Script(status=400, error_code="context_length_exceeded", error_message="maximum context length is 8192"),
            "context",
            ["too long", "8192"],
        ),
        (Script(status=400, error_message="bad param"), "request", ["400", "bad param"]),
        (
            Script(status=400, error_param="temperature", error_message="Unsupported value"),
            "request",
            ["rejected the parameter temperature (400): Unsupported value"],
        ),
    ],
)
def test_status_errors_become_one_line_chat_errors(
    server: FakeOpenAI, settings: Settings, script: Script, kind: str, words: list[str]
) -> None:
    server.enqueue(script)
    events, error = collect(client_for(settings))
    assert events == [] and error is not None
    assert error.kind == kind
    assert "\n" not in error.message
    for word in words:
        assert word in error.message


def test_context_error_suggests_new(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(status=400, error_code="context_length_exceeded", error_message="too many tokens"))
    error = collect(client_for(settings))[1]
    assert error is not None and "new" in error.hint


def test_the_key_is_masked_in_error_messages(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(status=401, error_message=f"key {TEST_KEY} is wrong"))
    error = collect(client_for(settings))[1]
    assert error is not None
    assert TEST_KEY not in error.message and "sk-...cdef" in error.message


def test_connection_refused_names_the_base_url(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        settings.base_url = f"http://127.0.0.1:{port}/v1"
        error = collect(client_for(settings))[1]
    assert error is not None and error.kind == "connection"
    assert f"http://127.0.0.1:{port}/v1" in error.message


def test_no_answer_at_all_is_a_timeout(server: FakeOpenAI, settings: Settings) -> None:
    settings.timeout = 0.5
    server.enqueue(Script(first_delay=2))
    error = collect(client_for(settings))[1]
    assert error is not None and error.kind == "timeout" and "0.5 s" in error.message


@pytest.mark.parametrize(
    ("script", "words", "arrived"),
    [
        # events: the role, then two characters each; the n-th event sent is cut
        (Script(text="abcdefghijkl", chunk_size=2, drop_after=4), "connection dropped", "abcdef"),
        (Script(text="abcdefghijkl", chunk_size=2, end_without_done=4), "ended before the reply", "abcdef"),
        (Script(text="abcdefghijkl", chunk_size=2, stall_after=4, stall_seconds=3), "sent nothing for 0.5 s", "abcdef"),
        (Script(raw_events=[AB_EVENT, "{not json"]), "malformed", "ab"),
    ],
)
def test_a_stream_that_breaks_off_keeps_what_arrived(
    server: FakeOpenAI, settings: Settings, script: Script, words: str, arrived: str
) -> None:
    settings.timeout = 0.5
    server.enqueue(script)
    events, error = collect(client_for(settings))
    assert error is not None and error.kind == "incomplete"
    assert words in error.message
    assert text_of(events) == arrived


def test_lists_the_server_models(settings: Settings) -> None:
    assert client_for(settings).list_models() == ["test-model"]


def test_connect_timeout_is_its_own_setting(settings: Settings) -> None:
    settings.connect_timeout = 2.5
    timeout = client_for(settings)._http().timeout
    assert (timeout.connect, timeout.read) == (2.5, settings.timeout)


def split(pieces: list[str]) -> tuple[str, str]:
    """The reasoning and the answer a ThinkSplitter makes of these pieces of answer text."""
    splitter = ThinkSplitter()
    events = [event for piece in pieces for event in splitter.feed(piece)] + list(splitter.end())
    reasoning = "".join(event.text for event in events if isinstance(event, ReasoningDelta))
    return reasoning, text_of(events)


def cut(text: str, points: list[int]) -> list[str]:
    marks = sorted({point % (len(text) + 1) for point in points} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(marks) if b > a]


@hypothesis.given(
    thought=st.text(alphabet="ab <>/thinkT\n", max_size=40).filter(lambda text: "</think>" not in text),
    answer=st.text(alphabet="xy <>/thinkT\n", max_size=40).filter(lambda text: not text.startswith(("\n", "\r"))),
    points=st.lists(st.integers(min_value=0), max_size=12),
)
def test_a_think_block_is_reasoning_however_it_is_cut(thought: str, answer: str, points: list[int]) -> None:
    assert split(cut(f"<think>{thought}</think>\n\n{answer}", points)) == (thought, answer)
    assert split(cut(f"  <think>{thought}", points)) == (thought, "")  # never closed: the token limit came first


@hypothesis.given(text=st.text(max_size=60), points=st.lists(st.integers(min_value=0), max_size=12))
def test_an_answer_without_a_think_block_passes_unchanged(text: str, points: list[int]) -> None:
    hypothesis.assume(not text.lstrip().startswith("<think>"))
    assert split(cut(text, points)) == ("", text)
