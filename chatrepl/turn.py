"""One turn: a frozen Request built from the conversation and the parameters, streamed to
a sink, and the TurnOutcome it comes to (complete, incomplete, interrupted or failed).

The turn prints nothing: text, notes and the wait before a retry go to the sink it is
given, and between two events it acts on the terminal's requests (Ctrl-C, SIGTERM,
Ctrl-Z) through `Terminal.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from chatrepl.client import DONE, ChatClient, ChatError
from chatrepl.conversation import (
    COMPLETE,
    COMPLETION_USER,
    INCOMPLETE,
    INTERRUPTED,
    Conversation,
    api_message,
    estimate_text_tokens,
    estimate_tokens,
    message_text,
)
from chatrepl.events import (
    Finished,
    OtherChoice,
    ReasoningDelta,
    RefusalDelta,
    Request,
    TextDelta,
    ToolCall,
    ToolCalls,
    Usage,
)
from chatrepl.parameters import Parameters, sends_images, uses_completions
from chatrepl.terminal import POLL, Interrupted, Terminal

if TYPE_CHECKING:
    from chatrepl.models import ModelInfo
    from chatrepl.tools import Toolbox

FAILED = "failed"  # nothing came back: the user's message is taken out of the history again
MAX_WAIT = 60.0  # longest retry-after worth waiting for by ourselves
MAX_BACKOFF = 8.0  # longest wait between two tries when the server said nothing of it
SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")  # what reasoning models reject
JSON_HINT = "Reply with a JSON object."
CHAIN_LIMIT = 10  # rounds of tool calls in one turn before the user is asked whether to go on


def backoff(attempt: int) -> float:
    """Seconds to wait before try `attempt + 2` when the server named no time: doubling from 1 s up to
    MAX_BACKOFF, less up to a quarter at random, so that clients that failed together do not return together."""
    return round(min(MAX_BACKOFF, 2.0**attempt) * random.uniform(0.75, 1.0), 1)


def request_messages(
    conversation: Conversation, params: Parameters, rules: ModelInfo, skip: int = 0
) -> list[dict[str, Any]]:
    """The messages to send; JSON mode needs the word JSON in them, so a system line says so if none does."""
    messages = conversation.messages(skip, images=sends_images(params, rules))
    if not params.json or any("json" in message_text(message).lower() for message in messages):
        return messages
    system = 1 if messages and messages[0]["role"] == "system" else 0
    return [*messages[:system], {"role": "system", "content": JSON_HINT}, *messages[system:]]


def build_request(
    conversation: Conversation, model: str, params: Parameters, rules: ModelInfo, skip: int = 0
) -> Request:
    """The request exactly as it will be sent, after the catalogue's rules for the model."""
    completion = uses_completions(params, rules)
    sent: dict[str, Any] = {}
    for key in (*(SAMPLING if rules.temperature else ()), "stop", "seed"):
        value = getattr(params, key)
        if value is not None:
            sent[key] = list(value) if key == "stop" else value
    if completion:
        if params.max_tokens is not None:
            sent["max_tokens"] = params.max_tokens
        sent.setdefault("stop", [f"\n{COMPLETION_USER}"])
        if params.n:
            sent["n"] = params.n
    else:
        if params.max_tokens is not None:
            sent[rules.max_tokens_param] = params.max_tokens
        if params.json and rules.json_mode:
            sent["response_format"] = {"type": "json_object"}
        if params.reasoning_effort and rules.reasoning_effort is not False:
            sent["reasoning_effort"] = params.reasoning_effort
    return Request(model, tuple(request_messages(conversation, params, rules, skip)), sent, completion)


def estimate_prompt(conversation: Conversation, params: Parameters, rules: ModelInfo, skip: int = 0) -> int:
    """A guess of the prompt tokens of the request `build_request` makes, images included."""
    images = conversation.images(skip) if sends_images(params, rules) else []
    return estimate_tokens(request_messages(conversation, params, rules, skip), images)


def fit_context(conversation: Conversation, params: Parameters, rules: ModelInfo) -> int:
    """How many of the oldest exchanges to leave out so the prompt and the reply budget fit the window."""
    if not rules.context:
        return 0
    reply_budget = params.max_tokens or min(rules.max_output or rules.context, rules.context // 4)
    skip = 0
    while skip < conversation.exchanges() - 1:
        if estimate_prompt(conversation, params, rules, skip) + reply_budget <= rules.context:
            break
        skip += 1
    return skip


class Sink(Protocol):
    """Where a turn's reply and notes go."""

    def sending(self, request: Request) -> None:
        """A request is about to go out."""

    def feed(self, text: str) -> None: ...

    def think(self, text: str) -> None:
        """More of the model's thinking, which comes before the answer."""

    def pause(self) -> None:
        """Take back what is drawn provisionally (before a suspend)."""

    def catch_up(self) -> float | None:
        """Draw what arrived since the last frame if one is due; the seconds until the next one
        while something waits to be drawn, else None."""

    def finish(self) -> None: ...

    def note(self, message: str) -> None: ...

    def retrying(self, message: str, seconds: float) -> None:
        """Wait `seconds` before asking again, saying why; may raise Interrupted."""


@dataclass
class TurnOutcome:
    status: str = COMPLETE  # complete, incomplete, interrupted or failed
    request: Request | None = None  # the last request sent
    text: str = ""
    refusal: str = ""
    reasoning: str = ""  # the model's thinking, kept apart from the answer
    thinking_seconds: float | None = None  # from the first thought to the answer (or the end), if it thought
    answer_seconds: float | None = None  # from the request to the first answer text, if it thought first
    usage: Usage | None = None
    cost: float | None = None  # US dollars, when the model's price is known
    finish_reason: str | None = None
    error: ChatError | None = None
    interrupted: bool = False  # Ctrl-C or a signal stopped it (the status says what was left)
    leave: int | None = None  # the exit status SIGTERM or SIGHUP asked for
    dropped: int = 0  # oldest exchanges left out of the request
    other_choices: dict[int, str] = field(default_factory=dict)
    tools: tuple[dict[str, Any], ...] = ()  # the tool calls and results, each request after them sends them

    @property
    def content(self) -> str | None:
        """What the history keeps as the reply; None when the turn failed."""
        return None if self.status == FAILED else self.text or self.refusal


@dataclass
class _Reply:
    parts: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    thinking: tuple[float, float | None] | None = None  # when the thinking began, and when the answer did
    sent: float = 0.0  # when the request that answered went out
    other_choices: dict[int, list[str]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # what the last request's reply asked to run


def run_turn(
    client: ChatClient,
    conversation: Conversation,
    model: str,
    params: Parameters,
    rules: ModelInfo,
    sink: Sink,
    terminal: Terminal,
    idle_timeout: float = 60.0,
    retries: int = 0,
    toolbox: Toolbox | None = None,
) -> TurnOutcome:
    """Answer the conversation's last user message; the conversation itself is not changed.  With a
    toolbox, the model may call its tools: each round of calls runs through its gate, and the
    results go back to the model in the next request of the same turn."""
    outcome = TurnOutcome(dropped=fit_context(conversation, params, rules))
    reply = _Reply()
    attempts = 0  # retries after a rate limit or server error
    context_retried = False
    rounds = 0
    try:
        # The first request waits for the servers to list their tools (or fail), never longer.
        offered = (
            toolbox.registry().definitions() if toolbox is not None and not uses_completions(params, rules) else ()
        )
        if outcome.dropped:
            sink.note(f"left out the {outcome.dropped} oldest exchange(s) to fit the model's context window")
        while True:
            request = build_request(conversation, model, params, rules, outcome.dropped)
            sent_exchange = tuple(api_message(message) for message in outcome.tools)
            outcome.request = dataclasses.replace(request, messages=(*request.messages, *sent_exchange), tools=offered)
            sink.sending(outcome.request)
            said = len(reply.parts)
            try:
                _stream(client, outcome.request, sink, terminal, idle_timeout, reply)
            except ChatError as err:
                if err.kind == "context" and not context_retried and outcome.dropped < conversation.exchanges() - 1:
                    outcome.dropped += 1
                    context_retried = True
                    sink.note("too long for the server: left out the oldest exchange and asked again")
                    continue
                wait = err.retry_after if err.retry_after is not None else backoff(attempts)
                if err.retryable and not reply.parts and attempts < retries and wait <= MAX_WAIT:
                    attempts += 1
                    reply = _Reply()  # what the failed attempt thought is not this one's
                    sink.retrying(f"{err.message} · try {attempts + 1} of {retries + 1}", wait)
                    continue
                outcome.error = err
                outcome.status = INCOMPLETE if err.kind == "incomplete" or reply.parts else FAILED
                break
            if not (reply.tool_calls and toolbox is not None):
                break
            sink.finish()  # what the model said before its calls is final: the calls (and questions) come after it
            rounds += 1
            if rounds > CHAIN_LIMIT and rounds % CHAIN_LIMIT == 1 and not toolbox.screen.keep_going(rounds - 1):
                sink.note(f"stopped: the model called tools {rounds - 1} times in a row")
                break
            calls, reply.tool_calls = reply.tool_calls, ()
            records = toolbox.run(calls, terminal)
            text = "".join(reply.parts[said:])
            asked = {"role": "assistant", "content": text or None, "tool_calls": [call.message() for call in calls]}
            answers = tuple(
                {
                    "role": "tool",
                    "tool_call_id": r.call.id,
                    "content": r.result,
                    "decision": r.decision,
                    "seconds": r.seconds,
                }
                for r in records
            )
            outcome.tools += (asked, *answers)
    except Interrupted:
        outcome.status, outcome.interrupted = INTERRUPTED, True
    except SystemExit as leaving:
        outcome.status, outcome.interrupted, outcome.leave = INTERRUPTED, True, int(leaving.code or 0)
    finally:
        sink.finish()
    _settle(outcome, reply, rules, lambda: estimate_prompt(conversation, params, rules, outcome.dropped))
    return outcome


def _stream(
    client: ChatClient, request: Request, sink: Sink, terminal: Terminal, idle_timeout: float, reply: _Reply
) -> None:
    """Stream one request into `reply` and the sink, acting on the terminal's requests between events."""
    stream = client.open(request)
    reply.sent = last_event = woke = time.monotonic()
    with terminal.waking(stream.wake):
        try:
            while True:
                terminal.checkpoint(sink.pause)
                frame = sink.catch_up()  # text that came between two frames is drawn when its frame is due
                event = stream.get(POLL if frame is None else min(POLL, frame))
                now = time.monotonic()
                if now - woke > POLL + 1:  # chatrepl itself was stopped (Ctrl-Z): not the server's silence
                    last_event = now
                woke = now
                if event is None:
                    if now - last_event > idle_timeout:
                        if reply.finish_reason is not None:
                            return  # the reply is whole; only its usage or the end marker never came
                        raise ChatError(
                            "incomplete",
                            f"no reply text for {idle_timeout:g} s: stopped waiting",
                            "change the wait with --idle-timeout",
                        )
                    continue
                if event is DONE:
                    return
                last_event = now
                if isinstance(event, TextDelta):
                    if reply.thinking is not None and reply.thinking[1] is None:
                        reply.thinking = (reply.thinking[0], now)
                    reply.parts.append(event.text)
                    sink.feed(event.text)
                elif isinstance(event, ReasoningDelta):
                    if reply.thinking is None:
                        reply.thinking = (now, None)
                    reply.reasoning.append(event.text)
                    sink.think(event.text)
                elif isinstance(event, RefusalDelta):
                    reply.refusal.append(event.text)
                elif isinstance(event, OtherChoice):
                    reply.other_choices.setdefault(event.index, []).append(event.text)
                elif isinstance(event, Finished):
                    reply.finish_reason = event.reason
                elif isinstance(event, Usage):
                    reply.usage = event if reply.usage is None else reply.usage.plus(event)  # each round's
                elif isinstance(event, ToolCalls):
                    reply.tool_calls = event.calls
        finally:
            stream.cancel()


def _settle(outcome: TurnOutcome, reply: _Reply, rules: ModelInfo, estimate: Callable[[], int]) -> None:
    """Fill in the outcome from what arrived: text, status, usage (estimated if none came) and cost."""
    outcome.text, outcome.refusal, outcome.reasoning = (
        "".join(reply.parts),
        "".join(reply.refusal),
        "".join(reply.reasoning),
    )
    if reply.thinking is not None:
        began, answered = reply.thinking
        outcome.thinking_seconds = (answered or time.monotonic()) - began
        outcome.answer_seconds = answered - reply.sent if answered is not None else None
    outcome.finish_reason = reply.finish_reason
    outcome.other_choices = {index: "".join(parts) for index, parts in sorted(reply.other_choices.items())}
    content = outcome.text or outcome.refusal
    if outcome.status != COMPLETE and not (content or outcome.reasoning):  # partial thinking is kept too
        outcome.status = FAILED
    outcome.usage = reply.usage
    if outcome.usage is None and content and outcome.request is not None:
        outcome.usage = Usage(estimate(), estimate_text_tokens(content), estimated=True)
    if outcome.usage is not None:
        usage = outcome.usage
        outcome.cost = rules.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
