"""Whatever a server sends back, chatrepl reports it in a line and the conversation stays whole."""

from __future__ import annotations

import io
import itertools
import json

from conftest import make_session
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openai_server import FakeOpenAI, Script
from rich.console import Console

from chatrepl.config import Settings
from chatrepl.conversation import COMPLETE, INCOMPLETE, INTERRUPTED
from chatrepl.output import Output
from chatrepl.terminal import Terminal
from chatrepl.turn import FAILED

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
deltas = st.fixed_dictionaries(
    {},
    optional={
        "content": st.none() | st.text(max_size=40) | st.integers(),
        "role": st.sampled_from(["assistant", None, "tool"]),
        "refusal": st.none() | st.text(max_size=20),
        "surprise": json_values,
    },
)
choices = st.fixed_dictionaries(
    {},
    optional={
        "index": st.integers(-1, 3) | st.none(),
        "delta": deltas | st.none() | json_values,
        "finish_reason": st.sampled_from([None, "stop", "length", "content_filter", "tool_calls", "weird"]),
        "text": st.text(max_size=10),
    },
)
chunks = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=5),
        "choices": st.none() | st.lists(choices, max_size=3) | json_values,
        "usage": st.none()
        | st.fixed_dictionaries({"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)})
        | json_values,
        "error": st.none() | st.fixed_dictionaries({"message": st.text(max_size=30)}),
    },
)
events = st.lists(
    st.one_of(
        chunks.map(json.dumps),
        chunks.map(lambda chunk: json.dumps(chunk, ensure_ascii=False)),  # raw UTF-8, U+2028 and all
        st.text(max_size=30),  # not JSON at all
        st.just("x" * 100_000),  # a huge event
        st.just("[DONE]"),
    ),
    max_size=12,
)


def framed(data: list[str], cuts: list[int], newline: str) -> list[bytes]:
    """The events as an SSE byte stream with these line ends, cut into pieces at arbitrary places
    (even mid-character, or between the CR and LF of a line end)."""
    end = newline * 2
    stream = "".join(f"data: {event}{end}" if not event.startswith(":") else f"{event}{newline}" for event in data)
    stream = stream.encode()
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=events, cuts=st.lists(st.integers(min_value=0), max_size=8), newline=st.sampled_from(["\n", "\r", "\r\n"]))
@example(data=['{"choices": [{"index": null, "text": "0"}]}', '{"error": {"message": ""}}'], cuts=[], newline="\n")
@example(
    data=['{"choices": [{"index": 0, "delta": {"content": "a\u2028b\u0085"}, "finish_reason": "stop"}]}'],
    cuts=[],
    newline="\r",
)
def test_any_server_stream_leaves_a_consistent_conversation(
    server: FakeOpenAI, data: list[str], cuts: list[int], newline: str
) -> None:
    settings_ = Settings(api_key="sk-fuzz", base_url=server.url, model="m", timeout=5, retries=0, idle_timeout=5)
    server.enqueue(Script(raw_body=framed(data, cuts, newline)))
    session = make_session(settings_)
    out = io.StringIO()
    output = Output(Console(file=out, width=60, color_system=None), Terminal())
    outcome = session.ask("hello", output.reply_sink(), output.terminal)
    output.outcome(outcome, json=False)
    assert outcome.status in (COMPLETE, INCOMPLETE, INTERRUPTED, FAILED)
    turns = session.conversation.turns
    if outcome.status == FAILED:
        assert turns == [] and outcome.content is None
        assert "error:" in out.getvalue()
    else:
        assert [turn.role for turn in turns] == ["user", "assistant"]
        assert turns[-1].content == outcome.text or turns[-1].content == outcome.refusal
