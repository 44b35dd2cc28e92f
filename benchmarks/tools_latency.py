"""MCP tools: the prompt with servers configured, and a tool's round trip.

    python benchmarks/tools_latency.py [--runs 7]

- start to usable prompt, in a pseudo-terminal, with no MCP server, and with three stdio
  servers (tests/mcp_server.py), one of which waits 2 s before it answers: the servers start
  in the background once the prompt is up, so the prompt should not wait for them.
- a tool's round trip: chatrepl answering once with `--allow-tool test.add`, from the loopback
  server's last byte of the reply that asked for the call to the arrival of the request that
  carries the result, beside the same call made straight through the MCP SDK's own client
  (the server's own time, its transport included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from openai_server import FakeOpenAI, Script
from startup_latency import PROMPT, Server, chatrepl_path, ms, spawn

MCP_SERVER = Path(__file__).resolve().parent.parent / "tests" / "mcp_server.py"


def servers_file(folder: Path, delays: list[float]) -> Path:
    path = folder / "mcp.json"
    servers = {
        f"s{number}": {"command": sys.executable, "args": [str(MCP_SERVER), "--start-delay", str(delay)]}
        for number, delay in enumerate(delays)
    }
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def to_prompt(server: Server, home: str, arguments: list[str]) -> float:
    started = time.monotonic()
    child = spawn(server, home, [chatrepl_path(), *arguments])
    child.expect_exact(PROMPT)
    ready = time.monotonic() - started
    child.sendeof()
    child.expect(__import__("pexpect").EOF, timeout=60)
    child.close()
    return ready


def round_trip(home: Path, config: Path) -> float:
    """Seconds from the end of the reply asking for `add` to the request carrying its result."""
    fake = FakeOpenAI().start()
    try:
        fake.enqueue(Script(text="", tool_calls=[("c", "test__add", '{"a": 2, "b": 3}')]), Script(text="5"))
        env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "CHATREPL_"))}
        env.update(HOME=str(home), OPENAI_API_KEY="sk-benchmark", OPENAI_BASE_URL=fake.url, CHATREPL_MODEL="m")
        command = [chatrepl_path(), "--mcp-config", str(config), "--allow-tool", "test.add", "add"]
        subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=60)
        return fake.arrivals[1] - fake.stream_ends[0]
    finally:
        fake.stop()


def direct_calls(runs: int) -> list[float]:
    """Seconds one `add` call takes through the SDK's own client, the server started once."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def measure(quiet: object) -> list[float]:
        times = []
        parameters = StdioServerParameters(command=sys.executable, args=[str(MCP_SERVER)])
        async with Client(stdio_client(parameters, errlog=quiet)) as client:
            await client.call_tool("add", {"a": 2, "b": 3})
            for _ in range(runs):
                started = time.monotonic()
                await client.call_tool("add", {"a": 2, "b": 3})
                times.append(time.monotonic() - started)
        return times

    with open(os.devnull, "w") as quiet:
        return asyncio.run(measure(quiet))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    server = Server()
    with tempfile.TemporaryDirectory() as home:
        three = servers_file(Path(home), [0, 0, 2])
        (Path(home) / "one").mkdir()
        one = servers_file(Path(home) / "one", [0])
        to_prompt(server, home, [])  # warm the file cache
        none_configured, configured, trips = [], [], []
        for _ in range(runs):  # interleaved
            none_configured.append(to_prompt(server, home, []))
            configured.append(to_prompt(server, home, ["--mcp-config", str(three)]))
            trips.append(round_trip(Path(home), one))
    server.stop()
    direct = direct_calls(runs * 3)
    ratio = statistics.median(configured) / statistics.median(none_configured)
    added = statistics.median(trips) - statistics.median(direct)
    print(f"| measure (median of {runs}) | median (min–max) | target |")
    print("|---|---|---|")
    print(f"| start to usable prompt, no MCP server | {ms(none_configured)} | - |")
    print(f"| the same, three servers (one answers after 2 s) | {ms(configured)}, {ratio:.2f}× | ≤ 1.1× without |")
    print(f"| tool round trip: reply's last byte to the request with the result | {ms(trips)} | - |")
    print(f"| one `add` call straight through the SDK's client (the server's own time) | {ms(direct)} | - |")
    print(f"| chatrepl's share of the round trip | {added * 1000:.0f} ms | ≤ 15 ms |")


if __name__ == "__main__":
    main()
