"""ChatClient: sends a Request, yields stream events, turns API errors into ChatError.

Requests go in OpenAI's wire format over httpx, and the reply's server-sent events are
decoded here, only the fields chatrepl uses.  httpx is imported on first use (or by
`warm_up`, which the REPL runs in a background thread once the prompt is up).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatrepl import __version__
from chatrepl.config import OPENAI_URL, mask_key
from chatrepl.conversation import completion_prompt

if TYPE_CHECKING:
    import httpx

    from chatrepl.config import Settings

_ACCOUNT_HEADERS = (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project"))
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """Text of the model's thinking, shown apart from the answer and never sent back."""

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


Event = TextDelta | ReasoningDelta | RefusalDelta | OtherChoice | Usage | Finished


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


def _field(item: Any, name: str, kind: type) -> Any:
    """`item[name]` if it is a `kind`, else None: a chunk's fields are whatever the server sent."""
    value = item.get(name) if isinstance(item, dict) else None
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


_OPEN, _CLOSE = "<think>", "</think>"


def _held_back(text: str, tag: str) -> int:
    """How many characters at the end of `text` could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Takes a `<think>…</think>` block at the start of the answer text (Qwen3, QwQ, R1-style
    models behind servers that do not split it) as reasoning, however the tags are split
    across chunks; a block never closed (the token limit came first) is reasoning to the end."""

    def __init__(self) -> None:
        self._state = "start"  # start, thinking, after (the blank lines after the block), answer
        self._pending = ""

    def feed(self, text: str) -> Iterator[Event]:
        if self._state == "answer":
            yield TextDelta(text)
            return
        self._pending += text
        while self._pending:
            if self._state == "start":
                stripped = self._pending.lstrip()
                if len(stripped) < len(_OPEN) and _OPEN.startswith(stripped):
                    return  # it may still become the tag
                if stripped.startswith(_OPEN):
                    self._state, self._pending = "thinking", stripped[len(_OPEN) :]
                else:
                    self._state = "answer"
            elif self._state == "thinking":
                end = self._pending.find(_CLOSE)
                if end < 0:
                    keep = _held_back(self._pending, _CLOSE)
                    thought, self._pending = (
                        self._pending[: len(self._pending) - keep],
                        self._pending[len(self._pending) - keep :],
                    )
                    if thought:
                        yield ReasoningDelta(thought)
                    return
                if end:
                    yield ReasoningDelta(self._pending[:end])
                self._state, self._pending = "after", self._pending[end + len(_CLOSE) :]
            elif self._state == "after":
                self._pending = self._pending.lstrip("\r\n")
                if self._pending:
                    self._state = "answer"
            else:
                text, self._pending = self._pending, ""
                yield TextDelta(text)

    def end(self) -> Iterator[Event]:
        """What is held back at the end: the rest of an unclosed block, or text that only looked like a tag."""
        pending, self._pending = self._pending, ""
        if pending and self._state == "thinking":
            yield ReasoningDelta(pending)
        elif pending and self._state == "start":
            yield TextDelta(pending)
        self._state = "answer"


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each server-sent event in a stream's lines (several data lines joined by a new
    line, comments and other fields passed over), as the SSE specification frames them."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _chunk_events(chunk: Any) -> Iterator[Event]:
    """The events in one streamed chunk (chat or legacy completion), as decoded from its JSON; fields
    chatrepl does not use are never looked at, and fields of the wrong type are ignored."""
    usage = _field(chunk, "usage", dict)
    prompt_tokens, completion_tokens = _field(usage, "prompt_tokens", int), _field(usage, "completion_tokens", int)
    if prompt_tokens is not None or completion_tokens is not None:
        cached = _field(_field(usage, "prompt_tokens_details", dict), "cached_tokens", int)
        reasoning = _field(_field(usage, "completion_tokens_details", dict), "reasoning_tokens", int)
        yield Usage(
            prompt_tokens or 0, completion_tokens or 0, cached_tokens=cached or 0, reasoning_tokens=reasoning or 0
        )
    for choice in _field(chunk, "choices", list) or []:
        index = _field(choice, "index", int) or 0
        delta = _field(choice, "delta", dict)
        # DeepSeek and llama.cpp's server send reasoning_content; OpenRouter and newer vLLM, reasoning.
        reasoning = _field(delta, "reasoning_content", str) or _field(delta, "reasoning", str)
        if reasoning and index == 0:
            yield ReasoningDelta(reasoning)
        text = _field(delta, "content", str) if delta is not None else _field(choice, "text", str)
        if text:
            yield TextDelta(text) if index == 0 else OtherChoice(index, text)
        refusal = _field(delta, "refusal", str)
        if refusal:
            yield RefusalDelta(refusal)
        reason = _field(choice, "finish_reason", str)
        if reason and index == 0:
            yield Finished(reason)


@dataclass(frozen=True)
class Request:
    """One request exactly as it is sent: the model, the messages and the parameters.

    In completion mode (the legacy Completions API) the messages go as one prompt.
    """

    model: str
    messages: tuple[dict[str, str], ...]
    params: dict[str, Any] = field(default_factory=dict)
    completion: bool = False

    def body(self) -> dict[str, Any]:
        """The request's JSON body, but for streaming itself."""
        if self.completion:
            return {"model": self.model, "prompt": completion_prompt(list(self.messages)), **self.params}
        return {"model": self.model, "messages": list(self.messages), **self.params}


class ChatClient:
    """Sends requests to one server with one key, over an HTTP client made on first use."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.headers = {"User-Agent": f"chatrepl/{__version__}", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._usage_in_stream = True  # until a server rejects stream_options

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatClient:
        """The client of the default server; OpenAI's organisation and project variables, as its own
        library reads them, go with its requests."""
        headers = {name: os.environ[variable] for variable, name in _ACCOUNT_HEADERS if os.environ.get(variable)}
        return cls(settings.api_key, settings.base_url, settings.timeout, settings.connect_timeout, headers)

    def warm_up(self) -> None:
        """Import the HTTP library and build the client ahead of the first request."""
        self._http()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                # Proxies and certificate authorities come from the environment (HTTPS_PROXY,
                # SSL_CERT_FILE); a redirect to another host never carries the Authorization header.
                self._client = httpx.Client(
                    headers=self.headers,
                    timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                    follow_redirects=True,
                )
            return self._client

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """The response to one request, its body still unread; ChatError for any status but 2xx."""
        import httpx

        client = self._http()
        try:
            response = client.send(client.build_request(method, f"{self.base_url}/{path}", json=body), stream=True)
        except httpx.TimeoutException as err:
            raise ChatError(
                "timeout",
                f"no answer from {self.base_url} within {self.timeout:g} s",
                "raise it with --timeout or CHATREPL_TIMEOUT",
            ) from err
        except (httpx.TransportError, httpx.InvalidURL) as err:
            hint = "is the server running? check OPENAI_BASE_URL or --base-url"
            if "CERTIFICATE_VERIFY_FAILED" in str(err):
                hint = "a server with a private certificate authority: set SSL_CERT_FILE to its certificate (PEM)"
            detail = f": {err}" if str(err) else ""
            raise ChatError("connection", self._mask(f"cannot reach {self.base_url}{detail}"), hint) from err
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as status:
            try:
                response.read()
            except httpx.HTTPError as err:
                raise self._stream_broken(err) from err
            finally:
                response.close()
            raise self._status_error(response, body["model"] if body else None) from status
        return response

    def list_models(self) -> list[str]:
        """The model names the server offers (GET /models)."""
        import httpx

        response = self._send("GET", "models")
        try:
            listing = json.loads(response.read())
        except (httpx.HTTPError, ValueError) as err:
            raise ChatError("server", self._mask(f"the server sent no list of models: {err}")) from err
        finally:
            response.close()
        return sorted(
            name for model in _field(listing, "data", list) or [] if isinstance(name := _field(model, "id", str), str)
        )

    def _open_stream(self, request: Request) -> httpx.Response:
        path = "completions" if request.completion else "chat/completions"
        body = {**request.body(), "stream": True}
        if not self._usage_in_stream:
            return self._send("POST", path, body)
        try:
            return self._send("POST", path, {**body, "stream_options": {"include_usage": True}})
        except ChatError as err:
            if not (err.kind == "request" and "stream_options" in err.message):
                raise
        # A server that rejects stream_options is asked again without, and never again with.
        self._usage_in_stream = False
        return self._send("POST", path, body)

    def stream(self, request: Request, opened: Callable[[Any], None] = lambda response: None) -> Iterator[Event]:
        """Send the request and yield the reply as it streams; `opened` gets the HTTP response
        as soon as there is one (so another thread can hang it up).

        Raises ChatError; kind "incomplete" means text may already have been yielded.
        """
        import httpx

        response = self._open_stream(request)
        opened(response)
        finished = False
        splitter = ThinkSplitter()
        try:
            for data in sse_data(response.iter_lines()):
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if isinstance(chunk, dict) and chunk.get("error") is not None:  # an error event mid-stream
                    error = chunk["error"]
                    detail = error.get("message") if isinstance(error, dict) else error
                    raise ChatError("server", self._mask(f"the server reported an error: {detail}"))
                for event in _chunk_events(chunk):
                    if isinstance(event, TextDelta):
                        yield from splitter.feed(event.text)
                        continue
                    if isinstance(event, Finished):
                        yield from splitter.end()
                    finished = finished or isinstance(event, Finished)
                    yield event
        except ValueError as err:  # an event that is not JSON
            raise ChatError("incomplete", self._mask(f"the server sent a malformed event: {err}")) from err
        except (httpx.HTTPError, httpx.StreamError) as err:
            if not finished:  # lost after the finish (the usage or [DONE] still to come), nothing was lost
                raise self._stream_broken(err) from err
        finally:
            response.close()
        if not finished:
            raise ChatError("incomplete", "the stream ended before the reply was finished")

    def open(self, request: Request) -> ReplyStream:
        """Send the request from a thread of its own; read its events with ReplyStream.get."""
        return ReplyStream(self, request)

    def _stream_broken(self, err: Exception) -> ChatError:
        if "Timeout" in type(err).__name__:
            return ChatError("incomplete", f"the server sent nothing for {self.timeout:g} s mid-reply")
        return ChatError("incomplete", "the connection dropped mid-reply")

    def _mask(self, message: str) -> str:
        message = " ".join(message.split())
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        key = self.api_key
        return message.replace(key, mask_key(key)) if key else message

    def _status_error(self, response: httpx.Response, model: str | None) -> ChatError:
        status = response.status_code
        body, detail = _error_body(response)
        detail = self._mask(detail or response.reason_phrase)
        code = str(body.get("code") or "")
        if status == 401:
            return ChatError("auth", f"authentication failed (401): {detail}", "check your API key (OPENAI_API_KEY)")
        if status == 403:
            return ChatError("permission", f"permission denied (403): {detail}", "check the key's access to this model")
        if status == 404:
            return ChatError(
                "not_found",
                f"not found (404): {detail}",
                f"check the model name ({model}) and the base URL ({self.base_url})",
            )
        if status == 429:
            if code == "insufficient_quota":
                return ChatError("quota", f"quota exceeded (429): {detail}", "check your plan and billing")
            wait = _retry_after(response.headers)
            when = f"retry after {wait:g} s" if wait is not None else "retry in a moment"
            return ChatError("rate_limit", f"rate limited (429), {when}: {detail}", retry_after=wait)
        if code == "context_length_exceeded" or "context length" in detail.lower():
            return ChatError(
                "context",
                f"the conversation is too long for the model's context: {detail}",
                "type new to start a fresh conversation",
            )
        if status >= 500:
            wait = _retry_after(response.headers)
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
    import email.utils

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


def _error_body(response: httpx.Response) -> tuple[dict[str, Any], str]:
    """The error object of a failed response (OpenAI's `{"error": {…}}`, or the body itself) and its
    message: what the server said, whatever shape it said it in."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}, response.text
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return error, str(error.get("message") or "")
    return {}, "" if error is None else str(error)


def _hang_up(response: Any) -> None:
    """Close a response from another thread: shutting the socket down wakes a read blocked on it."""
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


DONE = object()  # ReplyStream.get: the stream has ended
_WAKE = object()  # ReplyStream.get: look at the requests now


class ReplyStream:
    """A request streaming in a thread of its own.

    The reader takes the events with `get`, which returns after at most `timeout` seconds
    even when nothing came, so it can act on a Ctrl-C or an idle server between events;
    `cancel` hangs the stream up at once.
    """

    def __init__(self, client: ChatClient, request: Request) -> None:
        self._client = client
        self._request = request
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._response: Any = None
        self._cancelled = False
        threading.Thread(target=self._run, name="reply-stream", daemon=True).start()

    def _run(self) -> None:
        try:
            for event in self._client.stream(self._request, self._opened):
                if self._cancelled:
                    return
                self._events.put(event)
            self._events.put(DONE)
        except BaseException as err:  # handed to the reader, who raises it in its own thread
            self._events.put(err)

    def _opened(self, response: Any) -> None:
        with self._lock:
            self._response = response
            cancelled = self._cancelled
        if cancelled:
            _hang_up(response)

    def get(self, timeout: float) -> Any:
        """The next Event, DONE at the end, or None if nothing came within `timeout` (or `wake` was
        called); raises ChatError."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return None if item is _WAKE else item

    def wake(self) -> None:
        """Make a `get` waiting now return at once; safe in a signal handler (SimpleQueue.put is reentrant)."""
        self._events.put(_WAKE)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            response = self._response
        if response is not None:
            _hang_up(response)
