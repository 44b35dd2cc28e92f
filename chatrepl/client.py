"""ChatClient: sends a Request through the openai SDK, yields stream events, turns API errors into ChatError.

The SDK builds and sends every request and raises its typed errors; the reply is read from
its raw streaming response, and the server-sent events are framed and decoded here (only
the fields chatrepl uses), with no typed object per event.  `openai` is imported on first
use, or by `warm_up` in a background thread: never before the prompt is up.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from chatrepl.events import (
    Event,
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
from chatrepl.options import OPENAI_URL, mask_key
from chatrepl.sdk import import_openai

if TYPE_CHECKING:
    import openai

_ACCOUNT_HEADERS = (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project"))


def account_headers() -> dict[str, str]:
    """OpenAI's organisation and project, from the variables its own library reads (the environment
    only), for the default server's requests."""
    return {name: os.environ[variable] for variable, name in _ACCOUNT_HEADERS if os.environ.get(variable)}


_MAX_MESSAGE = 300


class ChatError(Exception):
    """A failed request, as one line for the user and an optional hint; `retryable` when asking again
    after a pause may succeed (a rate limit, a server error, a lost connection; never a used-up quota)."""

    def __init__(
        self, kind: str, message: str, hint: str = "", retry_after: float | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint
        self.retry_after = retry_after  # seconds the server asked us to wait, if it said
        self.retryable = retryable


def _field(item: Any, name: str, kind: type) -> Any:
    """`item[name]` if it is a `kind` (a bool is no int), else None: a chunk's fields are whatever
    the server sent.  The JSON decoder makes exact dicts, lists, strings and ints."""
    value = item.get(name) if type(item) is dict else None
    return value if type(value) is kind else None


_OPEN, _CLOSE = "<think>", "</think>"
# The chat completions resource (openai.resources.chat itself loads it lazily): imported with openai,
# not by the first request.
_CHAT_RESOURCES = "openai.resources.chat.chat"


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


_BOM = b"\xef\xbb\xbf"


def sse_events(chunks: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """The type and data of each server-sent event in a body's chunks, as the SSE specification frames
    them: lines end at CR, LF or CRLF, found in the bytes (so U+2028 in a JSON string stays text); the
    body is UTF-8 whatever its charset, a leading BOM dropped; several data lines are joined by a new
    line; comments and other fields are passed over; an event the body ends in before its blank line
    (a stream cut short) is not an event."""
    pending = b""
    started = skip_newline = False
    kind, data = "", []
    for chunk in chunks:
        if skip_newline and chunk[:1] == b"\n":  # the LF of a CRLF split between two chunks
            chunk = chunk[1:]
        pending += chunk
        if not started:
            if _BOM.startswith(pending[:3]) and len(pending) < 3:
                continue
            pending, started = pending.removeprefix(_BOM), True
        lines = pending.splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        skip_newline = bool(lines) and lines[-1].endswith(b"\r")
        for line in lines:
            if line in (b"\n", b"\r", b"\r\n"):
                if data:
                    yield kind or "message", "\n".join(data)
                kind, data = "", []
                continue
            name, _, value = line.rstrip(b"\r\n").decode("utf-8", "replace").partition(":")
            value = value[1:] if value[:1] == " " else value
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value


class ToolCallAssembler:
    """Puts together the tool calls of a streamed reply from their fragments, in each dialect servers
    speak: the standard one (`index`, then `id`, `name` and pieces of the arguments); no `index` at all;
    `index` always 0 (a new `id` starts a new call); `id` and `name` repeated on every fragment; each
    call whole in one fragment; several calls in one delta."""

    def __init__(self) -> None:
        self._calls: list[dict[str, str]] = []
        self._at_index: dict[int, dict[str, str]] = {}

    def feed(self, fragments: list[Any]) -> None:
        for fragment in fragments:
            if not isinstance(fragment, dict):
                continue
            function = _field(fragment, "function", dict) or {}
            name, arguments = _field(function, "name", str) or "", _field(function, "arguments", str) or ""
            call = self._call_for(_field(fragment, "index", int), _field(fragment, "id", str) or "", name)
            if name and not call["name"]:
                call["name"] = name
            call["arguments"] += arguments

    def _call_for(self, index: int | None, call_id: str, name: str) -> dict[str, str]:
        """The call a fragment continues, or a new one."""
        known = next((call for call in self._calls if call_id and call["id"] == call_id), None)
        if known is not None:
            return known
        current = self._at_index.get(index) if index is not None else (self._calls[-1] if self._calls else None)
        continues = current is not None and (not call_id or not current["id"])
        if continues and not call_id and name and current["name"] and index is None:
            continues = False  # no index, no id: a fragment with a name starts the next call
        if current is not None and continues:
            current["id"] = current["id"] or call_id
            return current
        call = {"id": call_id, "name": "", "arguments": ""}
        self._calls.append(call)
        if index is not None:
            self._at_index[index] = call
        return call

    def take(self) -> tuple[ToolCall, ...]:
        """The calls so far, whole (an id made up where the server sent none); then none."""
        calls = tuple(
            ToolCall(call["id"] or f"call_{number}", call["name"], call["arguments"])
            for number, call in enumerate(self._calls, 1)
        )
        self._calls, self._at_index = [], {}
        return calls


def _chunk_events(chunk: Any, tool_calls: ToolCallAssembler) -> Iterator[Event]:
    """The events in one streamed chunk (chat or legacy completion), as decoded from its JSON; fields
    chatrepl does not use are never looked at, and fields of the wrong type are ignored.  Tool call
    fragments go to `tool_calls`, whose calls come whole as the reply finishes."""
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
        fragments = _field(delta, "tool_calls", list)
        if fragments and index == 0:
            tool_calls.feed(fragments)
        reason = _field(choice, "finish_reason", str)
        if reason and index == 0:
            calls = tool_calls.take()
            if calls:
                yield ToolCalls(calls)
            yield Finished(reason)


class ChatClient:
    """Sends requests to one server with one key, through an openai SDK client made on first use:
    `OpenAI`, or `AzureOpenAI` when an Azure API version is given (the model is then the deployment)."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        azure_api_version: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.azure_api_version = azure_api_version
        self.headers = dict(headers or {})
        if azure_api_version:
            self.headers["api-key"] = api_key or ""
        elif api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()
        self._usage_in_stream = True  # until a server rejects stream_options

    def warm_up(self) -> None:
        """Import openai and its chat resources and build the client ahead of the first request."""
        self._sdk()

    def _sdk(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                openai = import_openai(_CHAT_RESOURCES)

                # Every value the SDK would otherwise take from OPENAI_* or AZURE_* variables is given;
                # the key goes in the request headers (self.headers), so a keyless server gets none.
                options: dict[str, Any] = {
                    "api_key": self.api_key or "no key",
                    "timeout": openai.Timeout(self.timeout, connect=self.connect_timeout),
                    "max_retries": 0,  # chatrepl retries by itself, with a countdown Ctrl-C stops
                    **{name: "" for name in _UNREAD_VARIABLES if name in _parameters(openai.OpenAI)},
                }
                if self.azure_api_version:
                    options.update(azure_endpoint=self.base_url, api_version=self.azure_api_version)
                else:
                    options["base_url"] = self.base_url
                if not self.api_key:
                    from openai._types import Omit  # not exported before openai 1.7x

                    self.headers["Authorization"] = Omit()
                self._client = _sdk_class(bool(self.azure_api_version))(**options)
            return self._client

    @contextlib.contextmanager
    def _sent(self, send: Callable[[openai.OpenAI, Mapping[str, Any]], Any], model: str | None) -> Iterator[Any]:
        """The HTTP response to what `send` asks of the SDK client (given the request headers), its
        body still unread; the SDK's errors become ChatError."""
        openai = import_openai()

        try:
            with send(self._sdk(), self.headers) as raw:
                yield raw.http_response
        except openai.APIStatusError as err:
            raise self._status_error(err.response, model) from err
        except openai.APITimeoutError as err:
            connecting = "Connect" in type(err.__cause__).__name__
            wait, flag = (self.connect_timeout, "--connect-timeout") if connecting else (self.timeout, "--timeout")
            what = "no connection to" if connecting else "no answer from"
            raise ChatError(
                "timeout", f"{what} {self.base_url} within {wait:g} s", f"raise it with {flag}", retryable=True
            ) from err
        except openai.APIConnectionError as err:
            cause = err.__cause__ or err.__context__
            detail = f": {cause}" if cause and str(cause) else ""
            hint = "is the server running? check OPENAI_BASE_URL or --base-url"
            if "CERTIFICATE_VERIFY_FAILED" in detail:
                hint = "a server with a private certificate authority: set SSL_CERT_FILE to its certificate (PEM)"
            message = self._mask(f"cannot reach {self.base_url}{detail}")
            raise ChatError("connection", message, hint, retryable=True) from err
        except openai.OpenAIError as err:
            raise ChatError("client", self._mask(str(err))) from err

    def list_models(self) -> list[str]:
        """The model names the server offers (GET /models)."""
        with self._sent(
            lambda sdk, headers: sdk.models.with_streaming_response.list(extra_headers=headers), None
        ) as response:
            try:
                listing = json.loads(response.read())
            except Exception as err:
                raise ChatError("server", self._mask(f"the server sent no list of models: {err}")) from err
        return sorted(
            name for model in _field(listing, "data", list) or [] if isinstance(name := _field(model, "id", str), str)
        )

    def _opened(self, request: Request) -> contextlib.AbstractContextManager[Any]:
        """The streaming response to the request; a server that rejects stream_options is asked again
        without, and never again with."""
        body = request.body()
        text_field = "prompt" if request.completion else "messages"
        model, text = body.pop("model"), body.pop(text_field)

        def send(sdk: openai.OpenAI, headers: Mapping[str, Any]) -> Any:
            resource = sdk.completions if request.completion else sdk.chat.completions
            # The parameters go as JSON as they are, so every openai version sends all of them.
            extra = {**body, "stream_options": {"include_usage": True}} if self._usage_in_stream else body
            return resource.with_streaming_response.create(
                model=model, stream=True, extra_body=extra, extra_headers=headers, **{text_field: text}
            )

        return self._sent(send, model)

    def stream(self, request: Request, opened: Callable[[Any], None] = lambda response: None) -> Iterator[Event]:
        """Send the request and yield the reply as it streams; `opened` gets the HTTP response
        as soon as there is one (so another thread can hang it up).

        Raises ChatError; kind "incomplete" means text may already have been yielded.
        """
        with contextlib.ExitStack() as stack:
            try:
                response = stack.enter_context(self._opened(request))
            except ChatError as err:
                if not (self._usage_in_stream and err.kind == "request" and "stream_options" in err.message):
                    raise
                self._usage_in_stream = False
                response = stack.enter_context(self._opened(request))
            opened(response)
            yield from self._events(response)

    def _events(self, response: Any) -> Iterator[Event]:
        finished = False
        splitter = ThinkSplitter()
        tool_calls = ToolCallAssembler()
        try:
            for kind, data in sse_events(response.iter_bytes()):
                if kind == "error":
                    raise self._reported(data)
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except (ValueError, RecursionError) as err:
                    message = self._mask(f"the server sent a malformed event: {err}")
                    raise ChatError("incomplete", message) from err
                if isinstance(chunk, dict) and chunk.get("error") is not None:  # an error event mid-stream
                    raise self._reported(data)
                for event in _chunk_events(chunk, tool_calls):
                    if isinstance(event, TextDelta):
                        yield from splitter.feed(event.text)
                        continue
                    if isinstance(event, Finished):
                        yield from splitter.end()
                    finished = finished or isinstance(event, Finished)
                    yield event
        except ChatError:
            raise
        except Exception as err:  # whatever reading the body raised ends the turn with one line
            if not finished:  # lost after the finish (the usage or [DONE] still to come), nothing was lost
                raise self._stream_broken(err) from err
        if not finished:
            raise ChatError("incomplete", "the stream ended before the reply was finished")

    def open(self, request: Request) -> ReplyStream:
        """Send the request from a thread of its own; read its events with ReplyStream.get."""
        return ReplyStream(self, request)

    def _reported(self, data: str) -> ChatError:
        """An error event in the stream, as the server put it."""
        detail = _error_detail(data)[1] or data
        return ChatError("server", self._mask(f"the server reported an error: {detail}"), retryable=True)

    def _stream_broken(self, err: Exception) -> ChatError:
        if "Timeout" in type(err).__name__:
            message = f"the server sent nothing for {self.timeout:g} s mid-reply"
            return ChatError("incomplete", message, retryable=True)
        if _is_transport_error(err):
            return ChatError("incomplete", "the connection dropped mid-reply", retryable=True)
        return ChatError("incomplete", self._mask(f"the reply could not be read: {type(err).__name__}: {err}"))

    def _mask(self, message: str) -> str:
        message = " ".join(message.split())
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        key = self.api_key
        return message.replace(key, mask_key(key)) if key else message

    def _status_error(self, response: Any, model: str | None) -> ChatError:
        status = response.status_code
        body, detail = _error_detail(response.text)
        request_id = response.headers.get("x-request-id")
        detail = self._mask(f"{detail or response.reason_phrase}{f' (request {request_id})' if request_id else ''}")
        code = str(body.get("code") or "")
        should_retry = {"true": True, "false": False}.get(response.headers.get("x-should-retry", "").lower())
        retryable = (status in (408, 409, 429) or status >= 500) if should_retry is None else should_retry
        wait = _retry_after(response.headers)
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
            when = f"retry after {wait:g} s" if wait is not None else "retry in a moment"
            return ChatError(
                "rate_limit", f"rate limited (429), {when}: {detail}", retry_after=wait, retryable=retryable
            )
        if code == "context_length_exceeded" or "context length" in detail.lower():
            return ChatError(
                "context",
                f"the conversation is too long for the model's context: {detail}",
                "type new to start a fresh conversation",
            )
        if status >= 500:
            return ChatError("server", f"server error ({status}): {detail}", retry_after=wait, retryable=retryable)
        param = body.get("param")
        if param:
            return ChatError(
                "request",
                self._mask(f"the server rejected the parameter {param} ({status}): {detail}"),
                f"change it with /set {param}, or leave it out with /set {param} and no value",
            )
        return ChatError("request", f"request rejected ({status}): {detail}", retry_after=wait, retryable=retryable)


def import_in_background() -> None:
    """Start importing openai and its chat resources in a thread of their own, for a request about to be
    made (answering once); the request waits only for what is left of the import."""

    def load() -> None:
        with contextlib.suppress(Exception):  # the request itself reports what is wrong
            import_openai(_CHAT_RESOURCES)

    threading.Thread(target=load, name="import-openai", daemon=True).start()


_UNREAD_VARIABLES = ("organization", "project", "webhook_secret", "admin_api_key")  # given, so never read
_SDK_HEADERS = ("accept", "content-type", "user-agent")


@functools.cache
def _parameters(cls: type) -> frozenset[str]:
    """The names a class's constructor takes (SDK versions differ in them)."""
    import inspect

    return frozenset(inspect.signature(cls).parameters)


@functools.cache
def _sdk_class(azure: bool) -> type[openai.OpenAI]:
    """The SDK's client class, sending only the SDK's own default headers (Accept, Content-Type, its
    User-Agent, X-Stainless-*): by itself it adds headers from the environment (OPENAI_ORG_ID,
    OPENAI_CUSTOM_HEADERS) to every request, to any server; chatrepl gives the rest per request."""
    openai = import_openai()

    base = openai.AzureOpenAI if azure else openai.OpenAI

    class Client(base):  # type: ignore[misc,valid-type]
        @property
        def default_headers(self) -> dict[str, Any]:
            return {
                name: value
                for name, value in super().default_headers.items()
                if name.lower() in _SDK_HEADERS or name.lower().startswith("x-stainless-")
            }

    Client.__name__ = Client.__qualname__ = base.__name__  # the SDK's User-Agent names the class
    return Client


def _is_transport_error(err: Exception) -> bool:
    """An error of the network or of the HTTP library under openai (httpx, or httpx2 in newer versions)."""
    return isinstance(err, OSError) or type(err).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11")


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


def _error_detail(text: str) -> tuple[dict[str, Any], str]:
    """The error object of a failed response or an error event (OpenAI's `{"error": {…}}`, or the body
    itself) and its message: what the server said, whatever shape it said it in."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return {}, text
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
        self._held: Any = None  # an item taken from the queue while joining text, not yet given out
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
        called); raises ChatError.  Text that has queued up behind text comes as one TextDelta: a
        reader that fell behind (printing a long block) catches up in one step, not one per token."""
        if self._held is not None:
            item, self._held = self._held, None
        else:
            try:
                item = self._events.get(timeout=timeout)
            except queue.Empty:
                return None
        if type(item) is TextDelta:
            item = self._joined(item)
        if isinstance(item, BaseException):
            raise item
        return None if item is _WAKE else item

    def _joined(self, first: TextDelta) -> TextDelta:
        texts = [first.text]
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
            if type(item) is not TextDelta:
                self._held = item  # the next get's
                break
            texts.append(item.text)
        return first if len(texts) == 1 else TextDelta("".join(texts))

    def wake(self) -> None:
        """Make a `get` waiting now return at once; safe in a signal handler (SimpleQueue.put is reentrant)."""
        self._events.put(_WAKE)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            response = self._response
        if response is not None:
            _hang_up(response)
