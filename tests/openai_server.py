"""A loopback HTTP server that speaks the OpenAI chat wire format (JSON and SSE).

Tests queue `Script`s that say how the next request is answered: the reply text,
how it is chunked and paced, an error status, a dropped or stalled stream.  With
nothing queued, the reply is chosen from the last user message (see
`script_for_message`), so the server is also useful by hand:

    python tests/openai_server.py --port 8765
    OPENAI_BASE_URL=http://127.0.0.1:8765/v1 OPENAI_API_KEY=sk-test chatrepl
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import queue
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

LONG_REPLY = "\n\n".join(
    [
        "# A long answer",
        "Here is a paragraph of prose that goes on for a while so that it wraps "
        "across several lines of an ordinary terminal, which is what most replies do.",
        "- first point\n- second point with `inline code`\n- third point",
        '```python\ndef greet(name: str) -> str:\n    return f"hello {name}"\n```',
        "| name | value |\n|------|-------|\n| alpha | 1 |\n| beta | 2 |",
    ]
    + [f"Paragraph {n}: the quick brown fox jumps over the lazy dog." for n in range(1, 41)]
    + ["The end."]
)

CHINESE_REPLY = (
    "你好！我是一个助手。\n\n- 第一点：中文字符是宽字符\n- 第二点：表格也要对齐\n\n"
    "| 名字 | 值 |\n|---|---|\n| 甲 | 一 |"
)


@dataclass
class Script:
    """How the server answers one request."""

    text: str = "Hello! How can I help?"
    chunk_size: int = 4
    first_delay: float = 0.0  # seconds before the answer begins (time to first token); ended by stop()
    delay: float = 0.0  # seconds between chunks
    status: int = 200
    error_message: str = "something went wrong"
    error_type: str = "server_error"
    error_code: str | None = None
    error_param: str | None = None
    retry_after: str | None = None
    error_body: str | None = None  # with a status: this text as the body, instead of OpenAI's error object
    error_headers: dict[str, str] | None = None  # with a status: more headers (x-request-id, x-should-retry)
    drop_after: int | None = None  # chunks sent before the connection is cut mid-body
    end_without_done: int | None = None  # chunks sent before a clean end with no [DONE]
    stall_after: int | None = None  # chunks sent before the server goes silent
    stall_seconds: float = 30.0  # ended by stop(): a test that waits for a client to give up need not set it
    keepalive: bool = False  # while stalled, send SSE comment lines every 0.1 s
    hold_after: int | None = None  # chunks sent before the server waits for `go_on` to be set
    go_on: threading.Event | None = None
    finish_reason: str = "stop"
    refusal: str | None = None
    reasoning: str | None = None  # thinking streamed before the answer, in `reasoning_form`
    reasoning_form: str = "reasoning_content"  # or "reasoning", or "think" (a <think> block in the content)
    raw_events: list[str] | None = None  # exact SSE data lines to send instead
    raw_body: list[bytes] | None = None  # exact bytes of the event stream, in these pieces
    chunks_per_second: float | None = None  # pace chunks on a fixed schedule instead of `delay`
    other_choices: list[str] | None = None  # legacy completions with n > 1: the texts after the first
    cached_tokens: int = 0  # usage details: prompt tokens the server had cached
    reasoning_tokens: int = 0  # usage details: completion tokens spent reasoning
    tool_calls: list[tuple[str, str, str]] | None = None  # (id, function name, arguments): asked after the text
    content_type: str = "text/event-stream"
    ascii_json: bool = False  # escape every non-ASCII character in the events (default: raw UTF-8, as most servers)


def script_for_message(text: str) -> Script:
    """Pick a reply for a hand-typed message: 'long', 'chinese', 'slow', 'think', 'error 429', 'tool add 2 3' …"""
    lowered = text.lower()
    if lowered.startswith("tool "):  # "tool add 2 3", "tool slow 30", "tool echo": calls tests/mcp_server.py's tools
        name, *numbers = lowered.split()[1:] or ["echo"]
        arguments = {
            "add": dict(zip("ab", map(int, numbers), strict=False)),
            "slow": {"seconds": float(numbers[0] if numbers else 5)},
        }
        return Script(
            text="", tool_calls=[("call_1", f"test__{name}", json.dumps(arguments.get(name, {"text": text})))]
        )
    status = re.search(r"\berror (\d{3})\b", lowered)
    if status:
        return Script(status=int(status.group(1)), retry_after="7", error_message=f"simulated {status.group(1)}")
    if "drop" in lowered:
        return Script(text=LONG_REPLY, delay=0.01, drop_after=60)
    if "long" in lowered:
        return Script(text=LONG_REPLY, delay=0.002)
    if "slow" in lowered:
        return Script(text=LONG_REPLY, delay=0.05)
    if "think" in lowered:
        steps = "\n".join(f"Step {n}: weigh option {n} against the others." for n in range(1, 41))
        return Script(text="After thinking: **option 7**.", reasoning=steps, chunk_size=6, delay=0.02)
    if "chinese" in lowered or "中文" in text:
        return Script(text=CHINESE_REPLY, chunk_size=2, delay=0.01)
    return Script(text=f"You said: **{text}**")


def shell_script(last: str) -> Script:
    """A command for a description, a revised one, or what the command does, as a model might answer."""
    if last.startswith("Explain"):
        return Script(
            text="- **ls -la** lists every file, hidden ones too, with sizes\n- **head -5** keeps the first five"
        )
    if last.startswith("Change the command"):
        return Script(text="ls -la | head -3")
    if "delete" in last or "remove" in last:
        return Script(text="```sh\nrm -rf ./build\n```")
    return Script(text="Here it is:\n```bash\n$ ls -la | head -5\n```")


def chunk_event(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        """`tls`: serve HTTPS with this context's certificate."""
        super().__init__(("127.0.0.1", port), _Handler)
        self.scheme = "http"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.scripts: queue.Queue[Script] = queue.Queue()
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.paths_seen: list[str] = []  # the path and query of every request, GET or POST
        self.authorizations: list[str] = []  # the Authorization header of every request, GET or POST
        self.closing = threading.Event()
        self.disconnects: list[float] = []  # when a client hung up mid-stream (time.monotonic())
        self.first_token_times: list[tuple[float, float]] = []  # (request read, first text sent), monotonic
        self.stream_ends: list[float] = []  # when each complete stream's last byte was sent
        self.arrivals: list[float] = []  # when each POST was read (time.monotonic())
        self.model_ids = ["test-model"]  # what GET /models lists
        self.reply: str | None = None  # with nothing queued, answer every request with this text
        self.report_first_tokens = False  # print "first-token RECEIVED SENT" (monotonic) for each stream

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/v1"

    def enqueue(self, *scripts: Script) -> None:
        for script in scripts:
            self.scripts.put(script)

    def next_script(self, body: dict[str, Any]) -> Script:
        try:
            return self.scripts.get_nowait()
        except queue.Empty:
            if self.reply is not None:
                return Script(text=self.reply)
            messages = body.get("messages") or [{}]
            if "one command" in str(messages[0].get("content")):  # chatrepl --shell, /shell
                return shell_script(str(messages[-1].get("content")))
            if messages[-1].get("role") == "tool":  # the results of the tools it asked for
                said = "; ".join(str(message.get("content")) for message in messages if message.get("role") == "tool")
                return Script(text=f"The tools said: {said}")
            users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
            last = users[-1] if users else ""
            if isinstance(last, list):  # content parts: text and images
                text = " ".join(part.get("text", "") for part in last if part.get("type") == "text")
                images = sum(part.get("type") == "image_url" for part in last)
                return Script(text=f"I see {images} image(s). You said: **{text}**")
            return script_for_message(str(last))

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up is part of the job; tests check what they received

    def start(self) -> FakeOpenAI:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAI

    def setup(self) -> None:
        super().setup()
        # As real API servers do: no Nagle delay between the small writes of a stream.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        self.server.paths_seen.append(self.path)
        if urlsplit(self.path).path.rstrip("/").endswith("/models"):
            models = [{"id": name, "object": "model", "owned_by": "test"} for name in self.server.model_ids]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        self.received_at = time.monotonic()
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        self.server.arrivals.append(self.received_at)
        self.server.headers_seen.append({name.lower(): value for name, value in self.headers.items()})
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        self.server.paths_seen.append(self.path)
        if not urlsplit(self.path).path.rstrip("/").endswith("/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        script = self.server.next_script(body)
        if script.first_delay:
            self.server.closing.wait(script.first_delay)  # a long one ends when the server stops
        if script.status != 200 and script.error_body is not None:
            self._send(script.status, script.error_body.encode(), "text/plain", script.error_headers)
        elif script.status != 200:
            error = {
                "message": script.error_message,
                "type": script.error_type,
                "code": script.error_code,
                "param": script.error_param,
            }
            extra = {"Retry-After": script.retry_after} if script.retry_after else {}
            self._send_json(script.status, {"error": error}, {**extra, **(script.error_headers or {})})
        elif body.get("stream"):
            self._stream(script, body)
        else:
            self._send_json(200, self._completion(script, body))

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _completion(self, script: Script, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": script.text, "refusal": script.refusal}
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": script.finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def _text_completion_events(self, script: Script, body: dict[str, Any]) -> list[str]:
        dumps = functools.partial(json.dumps, ensure_ascii=script.ascii_json)
        texts = [script.text, *(script.other_choices or [])][: body.get("n") or 1]
        size = max(1, script.chunk_size)
        events = []
        for index, text in enumerate(texts):
            for start in range(0, len(text), size):
                choice = {"index": index, "text": text[start : start + size], "finish_reason": None}
                events.append(dumps({"object": "text_completion", "choices": [choice]}))
            done = {"index": index, "text": "", "finish_reason": script.finish_reason}
            events.append(dumps({"object": "text_completion", "choices": [done]}))
        return [*events, "[DONE]"]

    def _events(self, script: Script, body: dict[str, Any]) -> list[str]:
        if script.raw_events is not None:
            return script.raw_events
        if "prompt" in body:
            return self._text_completion_events(script, body)
        model = body.get("model", "test-model")
        dumps = functools.partial(json.dumps, ensure_ascii=script.ascii_json)
        events = [dumps(chunk_event(model, {"role": "assistant", "content": ""}))]
        if script.refusal is not None:
            events.append(dumps(chunk_event(model, {"refusal": script.refusal})))
        text = script.text
        size = max(1, script.chunk_size)
        if script.reasoning is not None and script.reasoning_form == "think":
            text = f"<think>{script.reasoning}</think>\n\n{text}"
        elif script.reasoning is not None:
            thought = script.reasoning
            pieces = [thought[i : i + size] for i in range(0, len(thought), size)]
            events += [dumps(chunk_event(model, {script.reasoning_form: piece})) for piece in pieces]
        events += [dumps(chunk_event(model, {"content": text[i : i + size]})) for i in range(0, len(text), size)]
        for index, (call_id, name, arguments) in enumerate(script.tool_calls or []):
            call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            events.append(dumps(chunk_event(model, {"tool_calls": [call]})))
            pieces = [arguments[i : i + size] for i in range(0, len(arguments), size)]
            events += [
                dumps(chunk_event(model, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
                for piece in pieces
            ]
        finish = "tool_calls" if script.tool_calls else script.finish_reason
        events.append(dumps(chunk_event(model, {}, finish)))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage: dict[str, Any] = {
                "prompt_tokens": 10,
                "completion_tokens": len(text) // 4 + script.reasoning_tokens,
                "total_tokens": 10 + len(text) // 4 + script.reasoning_tokens,
            }
            if script.cached_tokens or script.reasoning_tokens:
                usage["prompt_tokens_details"] = {"cached_tokens": script.cached_tokens}
                usage["completion_tokens_details"] = {"reasoning_tokens": script.reasoning_tokens}
            events.append(dumps({**chunk_event(model, {}), "choices": [], "usage": usage}))
        return [*events, "[DONE]"]

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, script: Script, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", script.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        started = time.monotonic()
        if script.raw_body is not None:
            for piece in script.raw_body:
                self._write_chunk(piece)
            self._write_chunk(b"")
            return
        try:
            for sent, event in enumerate(self._events(script, body)):
                if sent == script.drop_after:
                    self.close_connection = True
                    return  # no terminating chunk: the client sees a cut body
                if sent == script.end_without_done:
                    break
                if sent == script.stall_after:
                    until = time.monotonic() + script.stall_seconds
                    while time.monotonic() < until and not self.server.closing.wait(0.1):
                        if script.keepalive:
                            self._write_chunk(b": keep-alive\n\n")
                    self.close_connection = True
                    return
                if sent == script.hold_after and script.go_on is not None:
                    script.go_on.wait(30)
                if script.chunks_per_second:
                    time.sleep(max(0.0, started + sent / script.chunks_per_second - time.monotonic()))
                elif sent and script.delay:
                    time.sleep(script.delay)
                self._write_chunk(f"data: {event}\n\n".encode())
                if sent == 1:  # event 0 carries only the role; event 1 the first text
                    self.server.first_token_times.append((self.received_at, time.monotonic()))
                    if self.server.report_first_tokens:
                        print(f"first-token {self.received_at} {time.monotonic()}", flush=True)
            self._write_chunk(b"")
            self.server.stream_ends.append(time.monotonic())
        except (BrokenPipeError, ConnectionResetError):
            self.server.disconnects.append(time.monotonic())
            self.close_connection = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--reply", help="answer every request with this text")
    parser.add_argument("--report-first-tokens", action="store_true", help="print when each first token was sent")
    args = parser.parse_args()
    server = FakeOpenAI(args.port)
    server.reply, server.report_first_tokens = args.reply, args.report_first_tokens
    print(f"serving the OpenAI wire format at {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
