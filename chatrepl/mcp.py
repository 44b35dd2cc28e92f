"""MCP servers: started in the background, their tools listed and called, ended with chatrepl.

The official SDK (the `mcp` extra, imported only when a server is configured) talks to every
server from one event loop in a thread of its own; the rest of chatrepl asks it for the tools
and for calls, which come back as futures.  Servers start in parallel, each within
STARTUP_LIMIT seconds; one that fails is reported by name and the others work.  A stdio server
gets a small environment (what the SDK passes on, the locale, and what its entry names, with
`${VAR}` taken from the user's environment) and its standard error goes to a log file, never to
the terminal.  It runs under `guard`, which ends it when chatrepl ends, however chatrepl ends
(SIGKILL too, when nothing else is done).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from chatrepl.options import app_dir, check_table, open_private
from chatrepl.tools import Tool

STARTUP_LIMIT = 20.0  # seconds a server has to start and list its tools
GUARD_POLL = 0.2  # seconds between the guard's looks at its parent
INSTALL = "pip install 'chatrepl[mcp]'"
_PASSED_ON = ("LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")  # beside the SDK's HOME, LOGNAME, PATH, SHELL, TERM, USER
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# "type" ("stdio", "http") is what other clients' files say; the keys given tell it here.
_KEYS = {
    "command": str,
    "args": list,
    "env": dict,
    "cwd": str,
    "url": str,
    "headers": dict,
    "enabled": bool,
    "type": str,
}


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one MCP server: a command over stdio, or a streamable HTTP address."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    source: str = ""


def read_spec(name: str, entry: Any, where: str, environ: Mapping[str, str]) -> ServerSpec | None:
    """A server from `[mcp_servers.NAME]` or an `mcpServers` entry (None when `enabled = false`);
    ValueError names the file, the server and what is wrong."""
    place = f"{where}: mcp_servers.{name}"
    check_table(entry, _KEYS, place, "command or url", "server setting")
    if not name or not all(char.isalnum() or char in "-_" for char in name):
        raise ValueError(f"{place}: a server's name is letters, digits, '-' and '_'")
    if entry.get("enabled") is False:
        return None
    command, url = entry.get("command", ""), entry.get("url", "")
    if bool(command) == bool(url):
        raise ValueError(f"{place}: give either command (stdio) or url (streamable HTTP)")
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
        raise ValueError(f"{place}.url: expected an http:// or https:// address, got {url!r}")
    try:
        env = tuple((key, _expand(str(value), environ)) for key, value in entry.get("env", {}).items())
        headers = tuple((key, _expand(str(value), environ)) for key, value in entry.get("headers", {}).items())
    except KeyError as err:
        raise ValueError(f"{place}: ${{{err.args[0]}}} is not set in the environment") from None
    args = tuple(str(arg) for arg in entry.get("args", []))
    return ServerSpec(name, command, args, env, entry.get("cwd"), url, headers, where)


def _expand(value: str, environ: Mapping[str, str]) -> str:
    """`${VAR}` replaced by the user's environment variable (KeyError if it is not set)."""
    return _VARIABLE.sub(lambda match: environ[match.group(1)], value)


def read_json_config(path: Path, environ: Mapping[str, str]) -> list[ServerSpec]:
    """The servers of a file in the shape other clients use: `{"mcpServers": {NAME: {...}}}`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    servers = document.get("mcpServers") if isinstance(document, dict) else None
    if not isinstance(servers, dict):
        raise ValueError(f"{path}: expected an object with mcpServers")
    found = (read_spec(name, entry, str(path), environ) for name, entry in servers.items())
    return [spec for spec in found if spec is not None]


def log_path(environ: Mapping[str, str]) -> Path:
    return app_dir(environ, "XDG_STATE_HOME") / "mcp.log"


class Servers:
    """The configured servers, started together in the background (`start`), ended by `close`."""

    def __init__(self, specs: list[ServerSpec], log: Path) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.states = dict.fromkeys(self.specs, "not started")
        self.log = log
        self._tools: dict[str, list[Tool]] = {}
        self._clients: dict[str, Any] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._settled = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        """Start every server, each in parallel, without waiting for any."""
        if self._thread is not None or not self.specs:
            return
        self.states = dict.fromkeys(self.specs, "starting")
        looping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(looping,), name="mcp", daemon=True)
        self._thread.start()
        looping.wait(5)

    def tools(self, timeout: float = STARTUP_LIMIT) -> list[Tool]:
        """The tools of the running servers, once every server has listed its tools or failed."""
        with self._settled:
            self._settled.wait_for(lambda: "starting" not in self.states.values(), timeout)
            return [tool for name in self.specs for tool in self._tools.get(name, [])]

    def count(self, name: str) -> int:
        return len(self._tools.get(name, []))

    def call(self, tool: Tool, arguments: dict[str, Any]) -> concurrent.futures.Future[tuple[str, bool]]:
        """Call the tool; the future's result is its text and whether it is an error.  Cancelling
        the future cancels the call on the server, which goes on running."""
        if self._loop is None:
            raise RuntimeError("the MCP servers are not started")
        return asyncio.run_coroutine_threadsafe(self._call(tool, arguments), self._loop)

    def restart(self, name: str) -> None:
        if self._loop is not None:
            self._set_state(name, "starting")
            self._loop.call_soon_threadsafe(self._launch, self.specs[name])

    def close(self) -> None:
        """End every server (closing its standard input, then more firmly)."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def _run(self, looping: threading.Event) -> None:
        handle = open_private(self.log, os.O_WRONLY | os.O_APPEND)
        with open(handle, "a", encoding="utf-8", errors="replace") as log:
            _log_to(log)
            asyncio.run(self._main(looping, log))

    async def _main(self, looping: threading.Event, log: IO[str]) -> None:
        self._loop, self._stop, self._log = asyncio.get_running_loop(), asyncio.Event(), log
        looping.set()
        for spec in self.specs.values():
            self._launch(spec)
        await self._stop.wait()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _launch(self, spec: ServerSpec) -> None:
        running = self._tasks.get(spec.name)
        if running is not None:
            running.cancel()
        task = asyncio.get_running_loop().create_task(self._serve(spec, running))
        self._tasks[spec.name] = task
        asyncio.get_running_loop().call_later(STARTUP_LIMIT, self._too_slow, spec.name, task)

    def _too_slow(self, name: str, task: asyncio.Task[None]) -> None:
        if self.states.get(name) == "starting" and self._tasks.get(name) is task:
            self._set_state(name, f"failed: no tools listed within {STARTUP_LIMIT:g} s")
            task.cancel()

    async def _serve(self, spec: ServerSpec, previous: asyncio.Task[None] | None) -> None:
        from mcp import Client

        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            async with Client(self._transport(spec)) as client:
                tools: list[Tool] = []
                cursor = None
                while True:
                    listed = await client.list_tools(cursor=cursor)
                    tools += [
                        Tool(spec.name, tool.name, tool.description or "", tool.input_schema or {})
                        for tool in listed.tools
                    ]
                    cursor = listed.next_cursor
                    if not cursor:
                        break
                self._tools[spec.name], self._clients[spec.name] = tools, client
                self._set_state(spec.name, "running")
                await asyncio.Event().wait()  # serving until cancelled
        except asyncio.CancelledError:
            # A server restarted is starting again, not stopped: its new task already stands in for this one.
            replaced = self._tasks.get(spec.name) is not asyncio.current_task()
            if not replaced and self.states.get(spec.name) in ("running", "starting"):
                self._set_state(spec.name, "stopped")
            raise
        except Exception as err:  # whatever the server or the transport did: one line, the others go on
            self._log.write(f"{spec.name}: {type(err).__name__}: {err}\n")  # the log file, not the terminal
            self._log.flush()
            self._set_state(spec.name, f"failed: {_one_line(err)}")
        finally:
            self._clients.pop(spec.name, None)

    def _transport(self, spec: ServerSpec) -> Any:
        if spec.url:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            return streamable_http_client(spec.url, http_client=create_mcp_http_client(headers=dict(spec.headers)))
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        if shutil.which(spec.command) is None:
            raise FileNotFoundError(f"no such command: {spec.command}")
        env = {name: os.environ[name] for name in _PASSED_ON if name in os.environ} | dict(spec.env)
        guarded = ["-m", "chatrepl.mcp", spec.command, *spec.args]
        parameters = StdioServerParameters(command=sys.executable, args=guarded, env=env, cwd=spec.cwd)
        return stdio_client(parameters, errlog=self._log)

    async def _call(self, tool: Tool, arguments: dict[str, Any]) -> tuple[str, bool]:
        client = self._clients.get(tool.server)
        if client is None:
            return f"the server {tool.server} is not running ({self.states.get(tool.server)})", True
        try:
            result = await client.call_tool(tool.name, arguments)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            return f"the call failed: {_one_line(err)}", True
        parts = [getattr(part, "text", None) or f"[{getattr(part, 'type', 'content')}]" for part in result.content]
        return "\n".join(parts), bool(result.is_error)

    def _set_state(self, name: str, state: str) -> None:
        with self._settled:
            self.states[name] = state
            self._settled.notify_all()


def _one_line(err: BaseException) -> str:
    """An error on one line: an exception group's first error, the type when there is no message."""
    while getattr(err, "exceptions", None):  # an exception group (anyio's task groups raise them)
        err = err.exceptions[0]  # type: ignore[attr-defined]
    text = " ".join(str(err).split())
    return text[:200] if text else type(err).__name__


def _log_to(log: IO[str]) -> None:
    """The SDK's own log lines go to the log file, never to the terminal."""
    handler = logging.StreamHandler(log)
    for name in ("mcp", "httpx2", "httpx"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False


def guard(command: list[str]) -> int:
    """In a stdio server's process group (`python -m chatrepl.mcp COMMAND [ARG…]`): run the server on
    the same standard input and output, and end it when chatrepl ends.  chatrepl is the parent: once
    the parent is another, chatrepl is gone, however it went."""
    parent = os.getppid()
    server = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda number, frame: server.terminate())
    while True:
        try:
            return server.wait(timeout=GUARD_POLL)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                server.terminate()
                try:
                    return server.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    server.kill()
                    return server.wait()


if __name__ == "__main__":
    sys.exit(guard(sys.argv[1:]))
