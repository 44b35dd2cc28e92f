"""ChatClient: builds requests, yields stream events, turns API errors into ChatError.

`openai` takes a good part of a second to import, so it is imported on first use
(or by `warm_up`, which the REPL runs in a background thread once the prompt is up).
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatrepl.config import Settings, mask_key
from chatrepl.conversation import COMPLETION_USER, completion_prompt
from chatrepl.models import ModelInfo

if TYPE_CHECKING:
    import openai

OPENAI_URL = "https://api.openai.com/v1"
_KEYLESS_PLACEHOLDER = "no-key"  # local servers ignore it; the openai library insists on one
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True)
class OtherChoice:
    """Text of a further reply (n > 1 in completion mode), numbered from 1."""

    index: int
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False  # the server sent no counts: these are chatrepl's own guess
    cached_tokens: int = 0  # of the prompt tokens, those the server had cached (billed lower)
    reasoning_tokens: int = 0  # of the completion tokens, those spent thinking, not shown


@dataclass(frozen=True)
class Finished:
    reason: str


Event = TextDelta | RefusalDelta | OtherChoice | Usage | Finished


class ChatError(Exception):
    """A failed request, as one line for the user and an optional hint."""

    def __init__(self, kind: str, message: str, hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint
        self.retry_after = retry_after  # seconds the server asked us to wait, if it said

    @property
    def retryable(self) -> bool:
        """Worth asking again after a pause: a rate limit or a server error (not a used-up quota)."""
        return self.kind in ("rate_limit", "server")


class _IdleWatchdog:
    """Closes a stream that has sent no event for `seconds`; keep-alive comments do not count."""

    def __init__(self, seconds: float, close: Callable[[], None]) -> None:
        self.seconds = seconds
        self.close = close
        self.fired = False
        self._last = time.monotonic()
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="idle-watchdog", daemon=True).start()

    def saw_event(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        interval = min(0.5, self.seconds / 4)
        woke = time.monotonic()
        while not self._done.wait(interval):
            now = time.monotonic()
            if now - woke > interval + 1:
                # chatrepl itself was stopped (Ctrl-Z): that was not the server's silence
                self._last = now
            woke = now
            if now - self._last > self.seconds:
                self.fired = True
                self.close()  # the read blocked in the other thread fails at once
                return


def _field(item: Any, name: str, kind: type) -> Any:
    """`item.name` if it is a `kind`, else None: a chunk's fields are whatever the server sent."""
    value = getattr(item, name, None)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _chunk_events(chunk: Any) -> Iterator[Event]:
    """The events in one streamed chunk (chat or legacy completion); fields of the wrong type are ignored."""
    usage = getattr(chunk, "usage", None)
    prompt_tokens, completion_tokens = _field(usage, "prompt_tokens", int), _field(usage, "completion_tokens", int)
    if prompt_tokens is not None or completion_tokens is not None:
        cached = _field(getattr(usage, "prompt_tokens_details", None), "cached_tokens", int)
        reasoning = _field(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", int)
        yield Usage(
            prompt_tokens or 0, completion_tokens or 0, cached_tokens=cached or 0, reasoning_tokens=reasoning or 0
        )
    for choice in _field(chunk, "choices", list) or []:
        index = _field(choice, "index", int) or 0
        delta = getattr(choice, "delta", None)
        text = _field(delta, "content", str) if delta is not None else _field(choice, "text", str)
        if text:
            yield TextDelta(text) if index == 0 else OtherChoice(index, text)
        refusal = _field(delta, "refusal", str)
        if refusal:
            yield RefusalDelta(refusal)
        reason = _field(choice, "finish_reason", str)
        if reason and index == 0:
            yield Finished(reason)


def _hang_up(response: Any) -> None:
    """Close a response from another thread: shutting the socket down wakes a read blocked on it."""
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


class ChatClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()
        self._usage_in_stream = True  # until a server rejects stream_options

    @property
    def base_url(self) -> str:
        return self.settings.base_url or OPENAI_URL

    def warm_up(self) -> None:
        """Import openai, build the HTTP client and the reply types ahead of the first request."""
        from openai.types.chat import ChatCompletionChunk

        self._openai().chat.completions  # noqa: B018 - the attribute imports the chat resources
        # The first reply chunk otherwise pays for pydantic building its schemas.
        ChatCompletionChunk.construct(choices=[{"index": 0, "delta": {"content": ""}, "finish_reason": None}])

    def _openai(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    api_key=self.settings.api_key or _KEYLESS_PLACEHOLDER,
                    base_url=self.base_url,
                    timeout=openai.Timeout(self.settings.timeout, connect=self.settings.connect_timeout),
                    max_retries=0,
                )
            return self._client

    def list_models(self) -> list[str]:
        """The model names the server offers (GET /models)."""
        import openai

        try:
            return sorted(model.id for model in self._openai().models.list())
        except openai.OpenAIError as err:
            raise self._error(err) from err

    def request_params(self, rules: ModelInfo) -> dict[str, Any]:
        """The request's parameters, leaving out what the model's catalogue entry says it rejects."""
        settings = self.settings
        params: dict[str, Any] = {"model": settings.model}
        sampling = ("temperature", "top_p", "presence_penalty", "frequency_penalty") if rules.temperature else ()
        for key in (*sampling, "stop", "seed"):
            if getattr(settings, key) is not None:
                params[key] = getattr(settings, key)
        if settings.max_tokens is not None:
            params[rules.max_tokens_param] = settings.max_tokens
        if settings.json and rules.json_mode:
            params["response_format"] = {"type": "json_object"}
        if self._usage_in_stream:
            params["stream_options"] = {"include_usage": True}
        return params

    def uses_completions(self, rules: ModelInfo) -> bool:
        """Completion mode: the legacy Completions API, asked by the user or required by the model."""
        return self.settings.mode == "completion" or rules.api == "completions"

    def _create(self, messages: list[dict[str, str]], rules: ModelInfo) -> Any:
        params = self.request_params(rules)
        if not self.uses_completions(rules):
            return self._openai().chat.completions.create(messages=messages, stream=True, **params)
        params.pop("response_format", None)
        params.pop(rules.max_tokens_param, None)
        if self.settings.max_tokens is not None:
            params["max_tokens"] = self.settings.max_tokens
        params.setdefault("stop", [f"\n{COMPLETION_USER}"])
        if self.settings.n:
            params["n"] = self.settings.n
        return self._openai().completions.create(prompt=completion_prompt(messages), stream=True, **params)

    def _open_stream(self, messages: list[dict[str, str]], rules: ModelInfo) -> Any:
        import openai

        try:
            return self._create(messages, rules)
        except openai.BadRequestError as err:
            if not (self._usage_in_stream and "stream_options" in str(err.message)):
                raise
        # A server that rejects stream_options is asked again without, and never again with.
        self._usage_in_stream = False
        return self._create(messages, rules)

    def stream(self, messages: list[dict[str, str]], rules: ModelInfo) -> Iterator[Event]:
        """Send the conversation and yield the reply as it streams.

        Raises ChatError; kind "incomplete" means text may already have been yielded.
        Closing the generator (or an exception such as KeyboardInterrupt while it
        waits for the network) closes the HTTP stream at once.
        """
        import openai

        try:
            stream = self._open_stream(messages, rules)
        except openai.OpenAIError as err:
            raise self._error(err) from err
        finished = False
        watchdog = _IdleWatchdog(self.settings.idle_timeout, lambda: _hang_up(stream.response))
        try:
            for chunk in stream:
                watchdog.saw_event()
                for event in _chunk_events(chunk):
                    finished = finished or isinstance(event, Finished)
                    yield event
        except Exception as err:
            if watchdog.fired:
                raise self._idle_error() from err
            if isinstance(err, openai.APIConnectionError):
                raise self._stream_broken(err) from err
            if isinstance(err, openai.OpenAIError):
                raise self._error(err) from err
            if isinstance(err, ValueError):  # an event that is not JSON
                raise ChatError("incomplete", self._mask(f"the server sent a malformed event: {err}")) from err
            raise
        finally:
            watchdog.stop()
            stream.close()
        if watchdog.fired:
            raise self._idle_error()
        if not finished:
            raise ChatError("incomplete", "the stream ended before the reply was finished")

    def _idle_error(self) -> ChatError:
        return ChatError(
            "incomplete",
            f"no reply text for {self.settings.idle_timeout:g} s: stopped waiting",
            "change the wait with --idle-timeout",
        )

    def _stream_broken(self, err: Exception) -> ChatError:
        import openai

        if isinstance(err, openai.APITimeoutError):
            return ChatError("incomplete", f"the server sent nothing for {self.settings.timeout:g} s mid-reply")
        return ChatError("incomplete", "the connection dropped mid-reply")

    def _mask(self, message: str) -> str:
        message = " ".join(message.split())
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        key = self.settings.api_key
        return message.replace(key, mask_key(key)) if key else message

    def _error(self, err: Exception) -> ChatError:
        import openai

        if isinstance(err, openai.APITimeoutError):
            return ChatError(
                "timeout",
                f"no answer from {self.base_url} within {self.settings.timeout:g} s",
                "raise it with --timeout or CHATREPL_TIMEOUT",
            )
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__ or err.__context__
            detail = f": {cause}" if cause else ""
            return ChatError(
                "connection",
                self._mask(f"cannot reach {self.base_url}{detail}"),
                "is the server running? check OPENAI_BASE_URL or --base-url",
            )
        if isinstance(err, openai.APIStatusError):
            return self._status_error(err)
        if isinstance(err, openai.APIError):
            return ChatError("server", self._mask(f"the server reported an error: {err.message}"))
        return ChatError("client", self._mask(str(err)))

    def _status_error(self, err: openai.APIStatusError) -> ChatError:
        status = err.status_code
        body = err.body if isinstance(err.body, dict) else {}
        detail = body.get("message") or (err.body if isinstance(err.body, str) else "") or err.response.reason_phrase
        detail = self._mask(str(detail))
        code = str(body.get("code") or "")
        if status == 401:
            return ChatError("auth", f"authentication failed (401): {detail}", "check your API key (OPENAI_API_KEY)")
        if status == 403:
            return ChatError("permission", f"permission denied (403): {detail}", "check the key's access to this model")
        if status == 404:
            return ChatError(
                "not_found",
                f"not found (404): {detail}",
                f"check the model name ({self.settings.model}) and the base URL ({self.base_url})",
            )
        if status == 429:
            if code == "insufficient_quota":
                return ChatError("quota", f"quota exceeded (429): {detail}", "check your plan and billing")
            wait = _retry_after(err.response.headers)
            when = f"retry after {wait:g} s" if wait is not None else "retry in a moment"
            return ChatError("rate_limit", f"rate limited (429), {when}: {detail}", retry_after=wait)
        if code == "context_length_exceeded" or "context length" in detail.lower():
            return ChatError(
                "context",
                f"the conversation is too long for the model's context: {detail}",
                "type new to start a fresh conversation",
            )
        if status >= 500:
            wait = _retry_after(err.response.headers)
            return ChatError("server", f"server error ({status}): {detail}", retry_after=wait)
        param = body.get("param")
        if param:
            return ChatError(
                "request",
                self._mask(f"the server rejected the parameter {param} ({status}): {detail}"),
                f"change it with /set {param}, or leave it out with /set {param} and no value",
            )
        return ChatError("request", f"request rejected ({status}): {detail}")


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from retry-after-ms or retry-after (seconds, or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = (headers.get(name) or "").strip()
        if not value:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - time.time())
    return None
