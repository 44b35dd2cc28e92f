"""One turn against the loopback server: the request as sent, the idle limit, and signals as requests."""

from __future__ import annotations

import threading
import time

import pytest
from openai_server import FakeOpenAI, Script

from chatrepl.config import Settings
from chatrepl.conversation import COMPLETE, INCOMPLETE, INTERRUPTED, Conversation
from chatrepl.events import Request
from chatrepl.models import ModelInfo
from chatrepl.parameters import DEFAULT_PARAMETERS, Parameters
from chatrepl.providers import Connections
from chatrepl.terminal import Interrupted, Terminal
from chatrepl.turn import TurnOutcome, build_request, run_turn


class RecordingSink:
    """A sink that keeps what a turn gives it."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.text: list[str] = []
        self.notes: list[str] = []
        self.finished = 0

    def sending(self, request: Request) -> None:
        self.requests.append(request)

    def feed(self, text: str) -> None:
        self.text.append(text)

    def think(self, text: str) -> None:
        self.text.append(f"[thought]{text}")

    def pause(self) -> None:
        pass

    def catch_up(self) -> float | None:
        return None

    def finish(self) -> None:
        self.finished += 1

    def note(self, message: str) -> None:
        self.notes.append(message)

    def retrying(self, message: str, seconds: float) -> None:
        self.notes.append(message)


def asked(text: str = "hi") -> Conversation:
    conversation = Conversation("be brief")
    conversation.add_user(text)
    return conversation


def turn(
    settings: Settings,
    params: Parameters = DEFAULT_PARAMETERS,
    rules: ModelInfo | None = None,
    terminal: Terminal | None = None,
    sink: RecordingSink | None = None,
) -> TurnOutcome:
    return run_turn(
        Connections(settings).default,
        asked(),
        settings.model,
        params,
        rules or ModelInfo(settings.model),
        sink or RecordingSink(),
        terminal or Terminal(),
        settings.idle_timeout,
        settings.retries,
    )


def test_parameters_are_sent_only_when_set(server: FakeOpenAI, settings: Settings) -> None:
    turn(settings)
    assert "temperature" not in server.requests[0] and "max_tokens" not in server.requests[0]
    turn(settings, Parameters(temperature=0.3, max_tokens=42))
    assert server.requests[1]["temperature"] == 0.3 and server.requests[1]["max_tokens"] == 42


def test_the_catalogue_decides_what_is_sent_and_the_request_says_so(server: FakeOpenAI, settings: Settings) -> None:
    rules = ModelInfo("reasoner", max_tokens_param="max_completion_tokens", temperature=False)
    params = Parameters(temperature=0.7, top_p=0.5, max_tokens=100, seed=3, n=2)
    outcome = turn(settings, params, rules)
    sent = server.requests[0]
    assert "temperature" not in sent and "top_p" not in sent and "max_tokens" not in sent and "n" not in sent
    assert sent["max_completion_tokens"] == 100 and sent["seed"] == 3
    assert outcome.request is not None and outcome.request.params == {"seed": 3, "max_completion_tokens": 100}


def test_completion_mode_request_is_the_prompt(settings: Settings) -> None:
    request = build_request(asked("two?"), "m", Parameters(mode="completion", n=2, max_tokens=5), ModelInfo("m"))
    assert request.completion
    assert request.body() == {
        "model": "m",
        "prompt": "be brief\n\nUser: two?\nAssistant:",
        "max_tokens": 5,
        "stop": ["\nUser:"],
        "n": 2,
    }


@pytest.mark.parametrize("keepalive", [False, True])
def test_an_idle_stream_is_given_up_even_with_keep_alives(
    server: FakeOpenAI, settings: Settings, keepalive: bool
) -> None:
    settings.idle_timeout = 0.6
    server.enqueue(Script(text="abcdefgh", chunk_size=2, stall_after=3, keepalive=keepalive))
    sink = RecordingSink()
    outcome = turn(settings, sink=sink)
    assert outcome.status == INCOMPLETE and outcome.error is not None
    assert "no reply text for 0.6 s: stopped waiting" in outcome.error.message
    assert "".join(sink.text) == "abcd" and sink.finished == 1
    if keepalive:  # the server's next keep-alive finds the stream closed
        deadline = time.monotonic() + 10
        while not server.disconnects and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.disconnects


def test_a_server_silent_after_the_finish_leaves_the_reply_complete(server: FakeOpenAI, settings: Settings) -> None:
    settings.idle_timeout = 0.5
    finished = '{"choices": [{"index": 0, "delta": {"content": "all"}, "finish_reason": "stop"}]}'
    server.enqueue(Script(raw_events=[finished, finished], stall_after=1))
    outcome = turn(settings)
    assert (outcome.status, outcome.text, outcome.error) == (COMPLETE, "all", None)


@pytest.mark.parametrize(
    ("request_", "status", "leave"), [("interrupt", INTERRUPTED, None), ("exit", INTERRUPTED, 143)]
)
def test_a_signal_is_a_request_the_turn_acts_on_between_events(
    server: FakeOpenAI, settings: Settings, request_: str, status: str, leave: int | None
) -> None:
    server.enqueue(Script(text="word " * 400, chunk_size=5, delay=0.01))
    terminal = Terminal()
    sink = RecordingSink()

    def ask_to_stop() -> None:
        while len(sink.text) < 10:
            time.sleep(0.01)
        if request_ == "interrupt":
            terminal.interrupt_requested = True
        else:
            terminal.exit_code = 143

    threading.Thread(target=ask_to_stop, daemon=True).start()
    outcome = turn(settings, terminal=terminal, sink=sink)
    assert (outcome.status, outcome.interrupted, outcome.leave) == (status, True, leave)
    assert outcome.text == "".join(sink.text) and 0 < len(outcome.text) < len("word " * 400)
    assert sink.finished == 1


def test_a_ctrl_c_before_any_text_fails_the_turn(server: FakeOpenAI, settings: Settings) -> None:
    server.enqueue(Script(first_delay=30))
    terminal = Terminal()
    threading.Timer(0.3, lambda: setattr(terminal, "interrupt_requested", True)).start()
    outcome = turn(settings, terminal=terminal)
    assert outcome.interrupted and outcome.content is None


def test_a_signal_wakes_whoever_waits_and_is_only_noted() -> None:
    import os
    import signal

    terminal = Terminal()
    woken: list[str] = []
    with terminal.busy(), terminal.waking(lambda: woken.append("now")):
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: a request
        deadline = time.monotonic() + 10
        while not woken and time.monotonic() < deadline:
            time.sleep(0.001)
        assert woken == ["now"] and terminal.interrupt_requested
        with pytest.raises(Interrupted):
            terminal.checkpoint()
        assert not terminal.interrupt_requested  # acted on once
