"""Tools through real MCP servers (tests/mcp_server.py, written with the SDK's server classes, over
stdio and streamable HTTP), the one gate, and the calls' round trip through the loopback server."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import installed_chatrepl, spawn_chatrepl
from openai_server import FakeOpenAI, Script

from chatrepl.tools import DECLINED, DENIED, REFUSED, Gate, Rules, Tool, cut, function_name, parse_arguments

MCP_SERVER = Path(__file__).parent / "mcp_server.py"
PROMPT = "\x1b[?2004h"
needs_mcp = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mcp") is None, reason="the mcp extra is not installed"
)


def test_function_names_fit_openais_rule_and_name_their_server() -> None:
    assert function_name(Tool("git hub", "create.issue")) == "git_hub__create_issue"
    long = function_name(Tool("s" * 40, "t" * 40))
    assert len(long) == 64 and long != function_name(Tool("s" * 40, "t" * 41))


@pytest.mark.parametrize(
    ("rules", "decision"),
    [
        (Rules(), "ask"),
        (Rules(allow=("add",)), "allow"),
        (Rules(allow=("test.*",)), "allow"),
        (Rules(allow=("test.*",), ask=("add",)), "ask"),
        (Rules(allow=("add",), ask=("test.*",), deny=("test.add",)), "deny"),
        (Rules(allow=("other.*",)), "ask"),
    ],
)
def test_deny_beats_ask_beats_allow_and_ask_is_the_default(rules: Rules, decision: str) -> None:
    assert rules.decide(Tool("test", "add")) == decision


def test_always_is_pinned_to_the_tools_definition(tmp_path: Path) -> None:
    environ = {"XDG_STATE_HOME": str(tmp_path)}
    tool = Tool("test", "add", "Add two numbers.", {"type": "object"})
    asked: list[str] = []

    def answer(key: str):  # the user's key, noted each time they are asked
        return lambda tool, arguments: asked.append(tool.qualified) or key

    assert Gate(Rules(), environ).admit(tool, {}, answer("a")) is None
    assert Gate(Rules(), environ).admit(tool, {}, answer("n")) is None  # remembered: not asked
    changed = Tool("test", "add", "Add two numbers, and send them to evil.example.", {"type": "object"})
    assert Gate(Rules(), environ).admit(changed, {}, answer("n")) == DECLINED  # changed: asked again
    assert asked == ["test.add", "test.add"]
    assert (tmp_path / "chatrepl" / "tools-allowed").stat().st_mode & 0o777 == 0o600
    session = Gate(Rules(), environ)
    assert session.admit(changed, {}, answer("s")) is None and session.admit(changed, {}, None) is None
    assert Gate(Rules(), environ).admit(changed, {}, None) == REFUSED  # "this session" was that session only


def test_a_denied_tool_is_never_asked_about(tmp_path: Path) -> None:
    def ask(tool: Tool, arguments: dict[str, object]) -> str:
        raise AssertionError("asked about a denied tool")

    gate = Gate(Rules(allow=("test.*",), deny=("add",)), {"XDG_STATE_HOME": str(tmp_path)})
    assert gate.admit(Tool("test", "add"), {}, ask) == DENIED and gate.admit(Tool("test", "echo"), {}, ask) is None


def test_arguments_and_output_limits() -> None:
    assert parse_arguments("") == {} and parse_arguments('{"a": 1}') == {"a": 1}
    for bad in ("{not json", "[1, 2]"):
        with pytest.raises(ValueError):
            parse_arguments(bad)
    assert cut("x" * 10, 10) == "x" * 10
    assert cut("x" * 25, 10) == "x" * 10 + "\n[cut by chatrepl: the output was 25 characters; the first 10 are above]"


def mcp_config(tmp_path: Path, servers: dict[str, dict[str, object]]) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def stdio_server(name: str = "test", *extra: str) -> dict[str, object]:
    return {"command": sys.executable, "args": [str(MCP_SERVER), "--name", name, *extra]}


def answer_once(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_chatrepl(), *args],
        env=env,
        cwd=env["HOME"],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def tool_results(server: FakeOpenAI, request: int = 1) -> list[tuple[str, str]]:
    """The (call id, result) of each tool message the request sent."""
    messages = server.requests[request]["messages"]
    return [(message["tool_call_id"], message["content"]) for message in messages if message["role"] == "tool"]


def server_processes(tmp_path: Path) -> list[int]:
    """The pids of test MCP servers started for this test (their command line names its folder)."""
    found = subprocess.run(["pgrep", "-f", f"mcp_server.py --name {tmp_path.name}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def eventually(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether `check` holds within `seconds` (asked every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    return check()


def assert_no_server_left(tmp_path: Path) -> None:
    """Every test MCP server of this test ends within 10 s (its guard sees chatrepl gone)."""
    assert eventually(lambda: server_processes(tmp_path) == []), server_processes(tmp_path)


@needs_mcp
def test_an_allowed_call_goes_back_to_the_model_and_standard_output_holds_the_answer_alone(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    calls = [("call_1", "test__add", '{"a": 2, "b": 3}'), ("call_2", "test__echo", '{"text": "second"}')]
    server.enqueue(Script(text="Adding.", tool_calls=calls), Script(text="The sum is 5."))
    done = answer_once(cli_env, "--mcp-config", str(config), "--allow-tool", "test.*", "2+3?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Adding.\nThe sum is 5.\n"
    assert tool_results(server) == [("call_1", "5"), ("call_2", "second")]  # in call order
    assert "⚙ test.add(a=2, b=3)" in done.stderr and "test starting" not in done.stderr  # its stderr is logged
    assert "test__add" in [tool["function"]["name"] for tool in server.requests[0]["tools"]]
    log = Path(cli_env["HOME"]) / ".local" / "state" / "chatrepl" / "mcp.log"
    assert f"{tmp_path.name} starting" in log.read_text()
    assert server_processes(tmp_path) == []  # ended with chatrepl


@needs_mcp
def test_with_no_terminal_a_call_not_allowed_is_refused_and_the_model_told(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    calls = [("c1", "test__add", '{"a": 1, "b": 1}'), ("c2", "test__echo", "{not json"), ("c3", "nope__x", "")]
    server.enqueue(Script(text="", tool_calls=calls), Script(text="I could not."))
    done = answer_once(cli_env, "--mcp-config", str(config), "add", stdin="")
    assert done.returncode == 0 and done.stdout == "I could not.\n", done.stderr
    results = dict(tool_results(server))
    assert results["c1"] == REFUSED and "not valid JSON" in results["c2"] and "no tool nope__x" in results["c3"]
    assert "warning: test.add not run: it needs your approval, and there is no terminal to ask on" in done.stderr


@needs_mcp
def test_a_server_that_fails_is_one_line_and_the_others_work(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    broken = {"command": str(tmp_path / "no-such-server")}
    config = mcp_config(tmp_path, {"broken": broken, "test": stdio_server(tmp_path.name)})
    server.enqueue(Script(text="", tool_calls=[("c1", "test__lines", '{"count": 500}')]), Script(text="Done."))
    env = {**cli_env, "CHATREPL_TOOL_OUTPUT_LIMIT": "100"}
    done = answer_once(env, "--mcp-config", str(config), "--allow-tool", "lines", "go")
    assert done.returncode == 0 and done.stdout == "Done.\n", done.stderr
    failed = [line for line in done.stderr.splitlines() if "broken" in line]
    assert len(failed) == 1 and failed[0].startswith("warning: the MCP server broken failed: no such command:")
    (result,) = [text for _, text in tool_results(server)]
    assert result.startswith("line 1\nline 2") and "the output was 4,391 characters; the first 100" in result


@needs_mcp
def test_a_stdio_server_gets_a_small_environment_and_no_secret(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    named = {**stdio_server(tmp_path.name), "env": {"GIVEN": "${GIVEN_FROM_USER}"}}
    config = mcp_config(tmp_path, {"test": named})
    server.enqueue(Script(text="", tool_calls=[("c1", "test__environment", "")]), Script(text="ok"))
    env = {**cli_env, "GIVEN_FROM_USER": "yes", "GITHUB_TOKEN": "ghp_secret", "AWS_SECRET_ACCESS_KEY": "x"}
    done = answer_once(env, "--mcp-config", str(config), "--allow-tool", "environment", "env?")
    assert done.returncode == 0, done.stderr
    (names,) = [text.split() for _, text in tool_results(server)]
    assert "GIVEN" in names and "PATH" in names and "HOME" in names
    assert not {"OPENAI_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_BASE_URL"} & set(names)


@pytest.fixture
def http_mcp() -> Iterator[str]:
    """The test MCP server over streamable HTTP on a loopback port; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(MCP_SERVER), "--http", str(port), "--name", "web"], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


@needs_mcp
def test_a_streamable_http_server_from_the_config_file(
    server: FakeOpenAI, cli_env: dict[str, str], http_mcp: str
) -> None:
    config = Path(cli_env["HOME"]) / ".config" / "chatrepl" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[mcp_servers.web]\nurl = "{http_mcp}"\n\n[tools]\nallow = ["web.add"]\n')
    server.enqueue(Script(text="", tool_calls=[("c1", "web__add", '{"a": 40, "b": 2}')]), Script(text="42."))
    done = answer_once(cli_env, "what is 40+2?")
    assert done.returncode == 0 and done.stdout == "42.\n", done.stderr
    assert tool_results(server) == [("c1", "42")]


def spawn(env: dict[str, str], *args: str) -> pexpect.spawn:
    child = spawn_chatrepl(env, *args, width=120, timeout=30)
    child.expect_exact(PROMPT)
    return child


@contextlib.contextmanager
def running(env: dict[str, str], *args: str) -> Iterator[pexpect.spawn]:
    """chatrepl at its prompt; left with Ctrl-D at the end of the block (and ended whatever happens)."""
    child = spawn(env, *args)
    try:
        yield child
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


@needs_mcp
def test_at_the_prompt_each_key_answers_the_question(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    echo = [("e", "test__echo", '{"text": "hi"}')]
    for _ in range(4):
        server.enqueue(Script(text="Echoing.", tool_calls=echo), Script(text="Echoed."))
    with running({**cli_env, "XDG_STATE_HOME": str(tmp_path / "state")}, "--mcp-config", str(config)) as child:
        answers = []
        for key in ("n", "y", "s"):
            child.send("echo hi\r")
            child.expect_exact("run it? y once · s this session · a always · n no")
            child.send(key)
            child.expect_exact("Echoed.")
            child.expect_exact(PROMPT)
            answers.append(tool_results(server, len(server.requests) - 1)[-1][1])  # this turn's, after the history's
        child.send("echo hi\r")  # "this session": not asked again
        child.expect_exact("Echoed.")
        child.expect_exact(PROMPT)
        answers.append(tool_results(server, len(server.requests) - 1)[-1][1])  # this turn's, after the history's
        assert answers == [DECLINED, "hi", "hi", "hi"]
        assert "run it?" not in child.before
    assert server_processes(tmp_path) == []


@needs_mcp
def test_always_is_remembered_across_sessions(server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    env = {**cli_env, "XDG_STATE_HOME": str(tmp_path / "state")}
    for _ in range(2):
        server.enqueue(Script(tool_calls=[("e", "test__echo", '{"text": "hi"}')]), Script(text="Echoed."))
    child = spawn(env, "--mcp-config", str(config))
    child.send("echo\r")
    child.expect_exact("run it?")
    child.send("a")
    child.expect_exact("Echoed.")
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child = spawn(env, "--mcp-config", str(config))
    child.send("echo\r")
    child.expect_exact("Echoed.")
    assert "run it?" not in child.before and tool_results(server, 3) == [("e", "hi")]
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)


@needs_mcp
def test_ctrl_c_cancels_a_slow_tool_and_the_prompt_comes_back_at_once(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    server.enqueue(Script(tool_calls=[("s", "test__slow", '{"seconds": 30}')]))
    server.enqueue(Script(tool_calls=[("e", "test__echo", '{"text": "still running"}')]), Script(text="Echoed."))
    child = spawn(cli_env, "--mcp-config", str(config), "--allow-tool", "test.*")
    try:
        child.send("wait\r")
        child.expect_exact("⚙ test.slow(seconds=30)")
        time.sleep(0.5)
        pressed = time.monotonic()
        child.sendintr()
        child.expect_exact("interrupted")
        child.expect_exact(PROMPT)
        assert time.monotonic() - pressed < 3
        log = Path(cli_env["HOME"]) / ".local" / "state" / "chatrepl" / "mcp.log"
        assert eventually(lambda: "slow: cancelled" in log.read_text())  # the server was told (MCP cancellation)
        child.send("again\r")  # the server is still there for the next call
        child.expect_exact("Echoed.")
        assert tool_results(server, 2) == [("e", "still running")]
        assert server_processes(tmp_path)  # the server (under its guard) runs
        os.kill(child.pid, signal.SIGKILL)  # not even SIGKILL leaves the server behind
        assert_no_server_left(tmp_path)
    finally:
        child.close(force=True)


@needs_mcp
def test_a_turn_with_tool_calls_is_saved_and_resumed_with_a_valid_history(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    server.enqueue(Script(text="", tool_calls=[("c1", "test__add", '{"a": 2, "b": 3}')]), Script(text="It is 5."))
    first = answer_once(cli_env, "--mcp-config", str(config), "--allow-tool", "test.add", "2+3?")
    assert first.returncode == 0, first.stderr
    server.enqueue(Script(text="Still 5."))
    again = answer_once(cli_env, "-c", "and now?")  # no servers needed to go on
    assert again.returncode == 0 and again.stdout == "Still 5.\n", again.stderr
    sent = [(message["role"], message.get("content")) for message in server.requests[2]["messages"]]
    assert sent[1:] == [
        ("user", "2+3?"),
        ("assistant", None),
        ("tool", "5"),
        ("assistant", "It is 5."),
        ("user", "and now?"),
    ]
    assert server.requests[2]["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "5"}
    exported = Path(cli_env["HOME"]) / "out.json"
    assert answer_once(cli_env, "--export", "1", str(exported)).returncode == 0
    (reply,) = [turn for turn in json.loads(exported.read_text())["messages"] if turn.get("tools")]
    assert reply["content"] == "It is 5." and reply["tools"][1]["decision"] == "allowed"


@needs_mcp
def test_a_role_may_name_the_tools_it_lets_run(server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path) -> None:
    config = Path(cli_env["HOME"]) / ".config" / "chatrepl" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[roles.adder]\nsystem = "You add."\ntools = ["test.add"]\n')
    servers = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    calls = [("c1", "test__add", '{"a": 1, "b": 2}'), ("c2", "test__echo", '{"text": "x"}')]
    server.enqueue(Script(text="", tool_calls=calls), Script(text="3."))
    done = answer_once(cli_env, "--mcp-config", str(servers), "--role", "adder", "1+2?", stdin="")
    assert done.returncode == 0 and done.stdout == "3.\n", done.stderr
    assert tool_results(server) == [("c1", "3"), ("c2", REFUSED)]  # the role's tool ran; the other is asked about


def enqueue_rounds(server: FakeOpenAI, rounds: int) -> None:
    """Replies that each say "step N." and call a tool, `rounds` of them."""
    for step in range(1, rounds + 1):
        server.enqueue(Script(text=f"step {step}. ", tool_calls=[(f"c{step}", "test__add", '{"a": 1, "b": 1}')]))


@needs_mcp
def test_a_chain_of_calls_stops_at_the_limit_without_a_terminal(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    enqueue_rounds(server, 11)
    done = answer_once(cli_env, "--mcp-config", str(config), "--allow-tool", "add", "loop", stdin="")
    assert done.returncode == 0, done.stderr
    assert len(server.requests) == 11 and "step 11." in done.stdout  # ten rounds run; the eleventh is not
    assert "stopped: the model called tools 10 times in a row" in done.stderr


def until_running(child: pexpect.spawn) -> None:
    """Ask /mcp until the server named test is running (with its tools) or 30 s have passed."""
    deadline = time.monotonic() + 30
    while True:
        child.send("/mcp\r")
        child.expect(r"test +(running · \d+ tools|\w+)")
        state = child.match.group(1)
        child.expect_exact(PROMPT)
        if state != "starting" or time.monotonic() > deadline:
            assert state.startswith("running"), state
            return
        time.sleep(0.2)


@needs_mcp
def test_mcp_lists_the_servers_and_restarts_one(server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    server.enqueue(Script(tool_calls=[("e", "test__echo", '{"text": "after"}')]), Script(text="Echoed."))
    with running(cli_env, "--mcp-config", str(config), "--allow-tool", "test.*") as child:
        until_running(child)
        before = set(server_processes(tmp_path))
        assert before
        child.send("/mcp re\t")  # Tab offers the servers to restart
        child.expect_exact("restart test")
        child.send("\x15")  # Ctrl-U: the line emptied again
        child.send("/mcp restart nosuch\r")
        child.expect_exact("/mcp restart NAME: the servers are test")
        child.expect_exact(PROMPT)
        child.send("/mcp restart test\r")
        child.expect_exact("restarting test")
        child.expect_exact(PROMPT)
        until_running(child)
        assert server_processes(tmp_path) and not before & set(server_processes(tmp_path))  # a new process
        child.send("echo\r")  # the new one answers
        child.expect_exact("Echoed.")
        child.expect_exact(PROMPT)
        assert tool_results(server) == [("e", "after")]
    assert server_processes(tmp_path) == []


@needs_mcp
def test_in_a_terminal_the_chain_limit_asks_whether_to_go_on(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    enqueue_rounds(server, 21)
    with running(cli_env, "--mcp-config", str(config), "--allow-tool", "add") as child:
        child.send("loop\r")
        child.expect_exact("step 11.")  # what the model said comes before the question
        child.expect_exact("the model has called tools 10 times in a row: go on? y/n")
        assert len(server.requests) == 11
        child.send("y")
        child.expect_exact("step 21.")
        child.expect_exact("the model has called tools 20 times in a row: go on? y/n")
        assert len(server.requests) == 21
        child.send("n")
        child.expect_exact("stopped: the model called tools 20 times in a row")
        child.expect_exact(PROMPT)
        assert len(server.requests) == 21  # no request after the no


@needs_mcp
def test_tools_run_for_a_providers_model_and_its_results_go_to_that_server_alone(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    provider = FakeOpenAI().start()
    try:
        config = Path(cli_env["HOME"]) / ".config" / "chatrepl" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'[providers.mine]\nbase_url = "{provider.url}"\napi_key_env = "MINE_KEY"\n')
        servers = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
        provider.enqueue(Script(text="", tool_calls=[("c1", "test__add", '{"a": 20, "b": 22}')]), Script(text="42."))
        env = {**cli_env, "MINE_KEY": "mine-key"}
        done = answer_once(env, "--mcp-config", str(servers), "--allow-tool", "add", "-m", "mine:big", "20+22?")
        assert done.returncode == 0 and done.stdout == "42.\n", done.stderr
        assert tool_results(provider) == [("c1", "42")] and server.requests == []
        assert provider.requests[1]["model"] == "big" and provider.requests[1]["tools"]
    finally:
        provider.stop()


@needs_mcp
def test_retry_asks_again_and_the_tools_run_again(server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    for total in (5, 6):
        call = ("c1", "test__add", json.dumps({"a": 2, "b": total - 2}))
        server.enqueue(Script(text="", tool_calls=[call]), Script(text=f"It is {total}."))
    with running(cli_env, "--mcp-config", str(config), "--allow-tool", "add") as child:
        child.send("2+3?\r")
        child.expect_exact("It is 5.")
        child.expect_exact(PROMPT)
        child.send("/retry\r")
        child.expect_exact("It is 6.")
        child.expect_exact(PROMPT)
        retried = server.requests[3]["messages"]
        assert [message["role"] for message in retried[-3:]] == ["user", "assistant", "tool"]
        assert retried[-1]["content"] == "6" and "It is 5." not in json.dumps(retried)  # the first answer is gone


@needs_mcp
def test_a_call_is_timed_as_it_ends_not_while_the_next_one_is_asked_about(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    calls = [("c1", "test__add", '{"a": 1, "b": 2}'), ("c2", "test__echo", '{"text": "x"}')]
    server.enqueue(Script(text="", tool_calls=calls), Script(text="Done."))
    with running(cli_env, "--mcp-config", str(config)) as child:
        child.send("go\r")
        child.expect_exact("run it?")
        child.send("y")  # add runs at once
        child.expect_exact("run it?")
        time.sleep(2)  # while the user thinks about echo
        child.send("y")
        child.expect_exact("Done.")
        child.expect_exact(PROMPT)
    exported = Path(cli_env["HOME"]) / "out.json"
    assert answer_once(cli_env, "--export", "1", str(exported)).returncode == 0
    (reply,) = [turn for turn in json.loads(exported.read_text())["messages"] if turn.get("tools")]
    added, echoed = reply["tools"][1:]
    assert added["content"] == "3" and added["seconds"] < 1 and echoed["content"] == "x"


@needs_mcp
def test_tools_lists_the_tools_and_their_rules_and_tool_shows_a_call(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    server.enqueue(Script(text="", tool_calls=[("c1", "test__lines", '{"count": 3}')]), Script(text="Three lines."))
    with running(cli_env, "--mcp-config", str(config), "--allow-tool", "test.lines") as child:
        child.send("count\r")
        child.expect_exact("Three lines.")
        child.expect_exact(PROMPT)
        child.send("/tools\r")
        child.expect(r"test\.add +ask +Add two whole numbers\.")
        child.expect(r"test\.lines +allow +Numbered lines of text\.")
        child.expect_exact(PROMPT)
        child.send("/tool\r")
        child.expect(r"1  test\.lines · allowed · \d+\.\d s")
        child.expect_exact(PROMPT)
        child.send("/tool 1\r")
        child.expect_exact("test.lines (allowed")
        child.expect_exact('"count": 3')
        child.expect_exact("line 1\r\nline 2\r\nline 3")
        child.expect_exact(PROMPT)
        child.send("/tool 2\r")
        child.expect_exact("/tool N: the calls are numbered 1 to 1")
        child.expect_exact(PROMPT)


@needs_mcp
def test_ctrl_c_at_the_question_ends_the_turn_on_a_line_of_its_own(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    server.enqueue(Script(text="", tool_calls=[("e", "test__echo", '{"text": "hi"}')]))
    with running(cli_env, "--mcp-config", str(config)) as child:
        child.send("echo\r")
        child.expect_exact("run it?")
        child.sendintr()
        child.expect(r"n no (\x1b\[[0-9;]*m)*\r\n(\x1b\[[0-9;]*m)*interrupted")
        child.expect_exact(PROMPT)
        assert len(server.requests) == 1  # nothing ran, nothing more was sent
        child.expect_exact("echo")  # the message is back in the input line
        child.send("\x15")  # Ctrl-U empties it, so that Ctrl-D leaves


@needs_mcp
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGHUP])
def test_no_server_process_is_left_when_chatrepl_is_ended_by_a_signal(
    cli_env: dict[str, str], tmp_path: Path, signal_number: int
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    child = spawn(cli_env, "--mcp-config", str(config))
    try:
        until_running(child)
        assert server_processes(tmp_path)
        os.kill(child.pid, signal_number)
        child.expect(pexpect.EOF)
        assert_no_server_left(tmp_path)
    finally:
        child.close(force=True)


@needs_mcp
def test_a_tools_output_reaches_the_terminal_only_through_the_sanitizer(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = mcp_config(tmp_path, {"test": stdio_server(tmp_path.name)})
    hostile = json.dumps({"text": "\x1b]0;pwned\x07\x1b[31mred"})
    server.enqueue(Script(text="", tool_calls=[("e", "test__echo", hostile)]), Script(text="Echoed."))
    with running(cli_env, "--mcp-config", str(config), "--allow-tool", "echo") as child:
        seen = io.StringIO()
        child.logfile_read = seen
        child.send("echo\r")
        child.expect_exact("Echoed.")
        child.expect_exact(PROMPT)
        child.send("/tool 1\r")  # the call's full arguments and result
        child.expect_exact("result:")
        child.expect_exact(PROMPT)
    assert tool_results(server) == [("e", "\x1b]0;pwned\x07\x1b[31mred")]  # the model gets it as it was
    assert "\x1b]0;" not in seen.getvalue() and "\x07" not in seen.getvalue() and "\x1b[31mred" not in seen.getvalue()
    assert "red" in seen.getvalue()
