"""An MCP server for the tests, written with the SDK's own server classes.

    python tests/mcp_server.py                       # over stdio
    python tests/mcp_server.py --http PORT           # over streamable HTTP on 127.0.0.1:PORT/mcp

Its tools: `add`, `echo`, `lines` (a long result), `slow` (waits, for Ctrl-C; a cancellation is
noted on standard error), `fail` (a tool error) and `environment` (the names of the variables the
server was started with). With --name NAME it calls itself NAME.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer


def build(name: str) -> MCPServer:
    server = MCPServer(name)

    @server.tool(description="Add two whole numbers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Say the text back.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Numbered lines of text.")
    def lines(count: int) -> str:
        return "\n".join(f"line {number}" for number in range(1, count + 1))

    @server.tool(description="Wait, then say how long.")
    async def slow(seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            print("slow: cancelled", file=sys.stderr, flush=True)  # the MCP cancellation came
            raise
        return f"waited {seconds} s"

    @server.tool(description="Always fails.")
    def fail() -> str:
        raise ValueError("this tool always fails")

    @server.tool(description="The names of the environment variables the server was started with.")
    def environment() -> str:
        return " ".join(sorted(os.environ))

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT")
    parser.add_argument("--name", default="test")
    parser.add_argument("--start-delay", type=float, default=0.0, help="seconds before the server answers")
    args = parser.parse_args()
    time.sleep(args.start_delay)
    print(f"{args.name} starting", file=sys.stderr, flush=True)  # goes to chatrepl's log, never the terminal
    server = build(args.name)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
