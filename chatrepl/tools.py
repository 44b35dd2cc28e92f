"""The tools the model may call, and the one gate every call passes before it runs.

A tool is offered to the model under a function name made from its server's name and its own
(`SERVER__TOOL`, fitted to OpenAI's rule for function names), so the call names its server.
Rules say allow, ask or deny, by pattern: the tool's own name, `SERVER.TOOL`, or `SERVER.*`;
deny beats ask, ask beats allow, and a tool no rule names is asked about. "Always" is kept with a
hash of the tool's definition (name, description, schema): a server that changes the tool is
asked about again.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from chatrepl.events import ToolCall
from chatrepl.options import app_dir, append_line, read_lines
from chatrepl.terminal import POLL, Interrupted, Terminal

if TYPE_CHECKING:
    from pathlib import Path

    from chatrepl.mcp import ServerSpec

ALLOW, ASK, DENY = "allow", "ask", "deny"
_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")
_NAME_LIMIT = 64  # OpenAI's longest function name
DECLINED = "the user declined to run this tool"
REFUSED = "not run: it needs the user's approval, and there is no terminal to ask on"
CANCELLED = "cancelled by the user"
DENIED = "not run: a rule of the user's denies it"
_TOLD = {"refused": "it needs your approval, and there is no terminal to ask on", "denied": "a rule of yours denies it"}


@dataclass(frozen=True)
class Tool:
    """A tool one server offers."""

    server: str
    name: str
    description: str = ""
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.server}.{self.name}"

    def fingerprint(self) -> str:
        """A hash of the definition: a server that changes the tool changes it."""
        import hashlib  # loads OpenSSL: only once a tool is asked about

        definition = json.dumps([self.name, self.description, self.schema], sort_keys=True)
        return hashlib.sha256(definition.encode()).hexdigest()[:32]


def function_name(tool: Tool) -> str:
    """The tool's name as the model sees it: `SERVER__TOOL`, letters, digits, `_` and `-` only, at most 64."""
    name = _FUNCTION_NAME.sub("_", f"{tool.server}__{tool.name}")
    if len(name) > _NAME_LIMIT:  # kept apart from others cut the same way by a short hash
        import hashlib

        name = f"{name[: _NAME_LIMIT - 9]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name


@dataclass(frozen=True)
class Rules:
    """Patterns of tools to allow, ask about and deny."""

    allow: tuple[str, ...] = ()
    ask: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def decide(self, tool: Tool) -> str:
        """ALLOW, ASK or DENY: deny beats ask, ask beats allow; ask when no rule names the tool."""
        for decision, patterns in ((DENY, self.deny), (ASK, self.ask), (ALLOW, self.allow)):
            if any(_matches(pattern, tool) for pattern in patterns):
                return decision
        return ASK

    def with_allowed(self, patterns: tuple[str, ...]) -> Rules:
        return Rules((*self.allow, *patterns), self.ask, self.deny)


def _matches(pattern: str, tool: Tool) -> bool:
    return fnmatch.fnmatchcase(tool.name, pattern) or fnmatch.fnmatchcase(tool.qualified, pattern)


class Registry:
    """The tools of the running servers, by the function name the model calls them by."""

    def __init__(self, tools: list[Tool]) -> None:
        self.by_function = {function_name(tool): tool for tool in tools}

    def definitions(self) -> tuple[dict[str, Any], ...]:
        """The tools as a request offers them."""
        return tuple(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": tool.description,
                    "parameters": tool.schema or {"type": "object", "properties": {}},
                },
            }
            for name, tool in self.by_function.items()
        )


Ask = Callable[[Tool, dict[str, Any]], str | None]  # y (once), s (this session), a (always), n; None: no terminal


class Gate:
    """The one place a call is allowed to run: the rules, what the user said this session, what they
    said always (with the definition's hash), and, for the rest, the user asked (no terminal: no)."""

    def __init__(self, rules: Rules, environ: Mapping[str, str] | None = None) -> None:
        self.rules = rules
        self.role_allows: tuple[str, ...] = ()  # what the role in use lets run (its `tools`)
        self._always = app_dir(os.environ if environ is None else environ, "XDG_STATE_HOME") / "tools-allowed"
        self._session: set[tuple[str, str]] = set()

    def decide(self, tool: Tool) -> str:
        """What the rules and earlier answers say of the tool: ALLOW, ASK or DENY."""
        decision = self.rules.with_allowed(self.role_allows).decide(tool)
        if decision == ASK and (tool.qualified, tool.fingerprint()) in self._session | self._always_allowed():
            return ALLOW
        return decision

    def admit(self, tool: Tool, arguments: dict[str, Any], ask: Ask | None) -> str | None:
        """None if the call may run; else what the model is told instead of a result."""
        decision = self.decide(tool)
        if decision == ALLOW:
            return None
        if decision == DENY:
            return DENIED
        answer = ask(tool, arguments) if ask is not None else None
        if answer is None:  # no terminal to ask on
            return REFUSED
        key = (tool.qualified, tool.fingerprint())
        if answer == "s":
            self._session.add(key)
        elif answer == "a":
            self._remember(key)
        return None if answer in ("y", "s", "a") else DECLINED

    def _always_allowed(self) -> set[tuple[str, str]]:
        return {(name, digest) for digest, _, name in (line.partition("  ") for line in read_lines(self._always))}

    def _remember(self, key: tuple[str, str]) -> None:
        append_line(self._always, f"{key[1]}  {key[0]}")


def cut(text: str, limit: int) -> str:
    """A tool's output as the model gets it: at most `limit` characters, saying so when it was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[cut by chatrepl: the output was {len(text):,} characters; the first {limit:,} are above]"


def parse_arguments(text: str) -> dict[str, Any]:
    """A call's arguments: `""` means none; ValueError for what is not a JSON object."""
    if not text.strip():
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"the arguments are {type(value).__name__}, not an object")
    return value


def short_arguments(arguments: dict[str, Any], width: int = 60) -> str:
    """The arguments on one short line, for the line a running call shows."""
    pairs = (f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    return one_line(", ".join(pairs), width)


def one_line(text: str, width: int) -> str:
    """`text` on one line of at most `width` characters, an ellipsis where it is cut."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def read_rules(table: Any, where: str) -> Rules:
    """`[tools] allow = [...], ask = [...], deny = [...]` from a config file; ValueError names what is wrong."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: tools: expected a table with allow, ask and deny")
    for key, value in table.items():
        if key not in (ALLOW, ASK, DENY):
            raise ValueError(f"{where}: tools.{key}: unknown (allow, ask, deny)")
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise ValueError(f"{where}: tools.{key}: expected a list of patterns, got {value!r}")
    return Rules(tuple(table.get(ALLOW, ())), tuple(table.get(ASK, ())), tuple(table.get(DENY, ())))


class Screen(Protocol):
    """How tool calls are shown and asked about (output.ToolLines)."""

    def started(self, tool: Tool, arguments: dict[str, Any]) -> None: ...

    def waiting(self, seconds: float) -> None: ...

    def stopped(self) -> None: ...

    def finished(self, tool: Tool, text: str, error: bool, seconds: float) -> None: ...

    def warn(self, message: str) -> None: ...

    def ask(self, tool: Tool, arguments: dict[str, Any]) -> str | None: ...

    def keep_going(self, rounds: int) -> bool: ...


class Servers(Protocol):
    """Where tools run (mcp.Servers)."""

    specs: dict[str, ServerSpec]
    states: dict[str, str]
    log: Path

    def start(self) -> None: ...

    def restart(self, name: str) -> None: ...

    def count(self, name: str) -> int: ...

    def close(self) -> None: ...

    def tools(self, timeout: float = ...) -> list[Tool]: ...

    def call(self, tool: Tool, arguments: dict[str, Any]) -> concurrent.futures.Future[tuple[str, bool]]: ...


@dataclass
class Record:
    """One call as it went: what the model asked, what it was given, and how it was decided."""

    call: ToolCall
    result: str
    decision: str  # allowed, asked (y, s, a), declined, denied, refused, cancelled, failed
    seconds: float = 0.0


class Toolbox:
    """The tools of the configured servers, run through the one gate, shown on one screen."""

    def __init__(self, servers: Servers, gate: Gate, screen: Screen, output_limit: int = 20_000) -> None:
        self.servers = servers
        self.gate = gate
        self.screen = screen
        self.output_limit = output_limit
        self.records: list[Record] = []  # every call of this session, for /tool
        self._said_failed: set[str] = set()

    def registry(self) -> Registry:
        """The tools there are, once every server has listed them or failed (each failure said once)."""
        tools = self.servers.tools()
        for name, state in self.servers.states.items():
            if state.startswith("failed") and name not in self._said_failed:
                self._said_failed.add(name)
                self.screen.warn(f"the MCP server {name} {state} (its tools are left out)")
        return Registry(tools)

    def run(self, calls: tuple[ToolCall, ...], terminal: Terminal) -> list[Record]:
        """Run the calls the gate admits, at once; the records in call order.  A Ctrl-C cancels the
        calls still running (each gets CANCELLED) and raises Interrupted once all are recorded."""
        registry = self.registry()
        records: list[Record | None] = []
        running: dict[int, tuple[Tool, concurrent.futures.Future[tuple[str, bool]], float]] = {}
        ended: dict[int, float] = {}
        for call in calls:
            tool = registry.by_function.get(call.name)
            try:
                arguments = parse_arguments(call.arguments)
            except ValueError as err:
                records.append(
                    Record(call, f"error: the arguments are not valid JSON ({err}); nothing was run", "failed")
                )
                continue
            if tool is None:
                records.append(Record(call, f"error: there is no tool {call.name}", "failed"))
                continue
            refusal = self.gate.admit(tool, arguments, self.screen.ask)
            if refusal is not None:
                decision = {DECLINED: "declined", REFUSED: "refused"}.get(refusal, "denied")
                if decision in _TOLD:  # the user did not just say so: they are told
                    self.screen.warn(f"{tool.qualified} not run: {_TOLD[decision]}")
                records.append(Record(call, refusal, decision))
                continue
            self.screen.started(tool, arguments)
            index, started = len(records), time.monotonic()
            future = self.servers.call(tool, arguments)
            # Timed as it ends, not as it is collected: a later call's question may come between.
            future.add_done_callback(lambda _, index=index: ended.setdefault(index, time.monotonic()))
            running[index] = (tool, future, started)
            records.append(None)
        interrupted = False
        began = time.monotonic()
        try:
            for index, (tool, future, started) in running.items():
                text, error, decision = self._outcome(future, terminal, interrupted, lambda: time.monotonic() - began)
                interrupted = interrupted or decision == "cancelled"
                seconds = ended.get(index, time.monotonic()) - started
                if decision != "cancelled":
                    self.screen.finished(tool, text, error, seconds)
                records[index] = Record(calls[index], cut(text, self.output_limit), decision, seconds)
        finally:
            self.screen.stopped()
        done = [record for record in records if record is not None]
        self.records += done
        if interrupted:
            raise Interrupted
        return done

    def _outcome(
        self,
        future: concurrent.futures.Future[tuple[str, bool]],
        terminal: Terminal,
        interrupted: bool,
        elapsed: Callable[[], float],
    ) -> tuple[str, bool, str]:
        """Wait for a call, the spinner turning, acting on Ctrl-C (which cancels it, and every call after it)."""
        try:
            while not interrupted:
                try:
                    text, error = future.result(timeout=POLL)
                    return text, error, "failed" if error else "allowed"
                except concurrent.futures.TimeoutError:
                    terminal.checkpoint()
                    self.screen.waiting(elapsed())
                except Exception as err:  # the servers' thread is gone (chatrepl is ending): a failed call
                    return f"the call failed: {err or type(err).__name__}", True, "failed"
        except Interrupted:
            pass
        future.cancel()
        return CANCELLED, True, "cancelled"
