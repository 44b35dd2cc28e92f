"""How long text that has arrived waits before it is drawn, at streaming rates from a slow
model to a fast local one.

    python benchmarks/live_lag.py

A markdown reply streams from the loopback server at a fixed number of chunks (about a
token each) a second, through the whole turn (client, turn engine, reply sink, markdown
renderer) to a 100 x 40 terminal whose writes are timed. For each chunk: the time from
the client decoding it (in the stream's thread) to the next write to the terminal, so
the time it waits in the queue for the turn counts too.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import FakeOpenAI, Script
from render_cost import reply_of
from rich.console import Console

from chatrepl.config import Settings
from chatrepl.events import TextDelta
from chatrepl.models import Catalogue
from chatrepl.output import Output, ReplySink
from chatrepl.session import ChatSession
from chatrepl.terminal import Terminal

RATES = (5, 20, 60, 200, 2000)  # chunks a second
SECONDS = 4  # of streaming at each rate


class TimedFile(io.StringIO):
    """A terminal's input that notes when each write came."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[float] = []

    def write(self, text: str) -> int:
        self.writes.append(time.monotonic())
        return super().write(text)

    def isatty(self) -> bool:
        return True


def lags(rate: int, server: FakeOpenAI) -> list[float]:
    """Milliseconds from each chunk being decoded by the client to the next write to the terminal."""
    chunks = rate * SECONDS
    server.enqueue(Script(text=reply_of(chunks), chunk_size=4, chunks_per_second=rate))
    settings = Settings(api_key="sk-bench", base_url=server.url, model="m", timeout=60, retries=0)
    session = ChatSession.from_settings(settings, Catalogue(), None, [])
    session.client.warm_up()
    decoded: list[float] = []
    stream = session.client.stream

    def timed(*args: Any) -> Iterator[Any]:  # in the stream's own thread, as each chunk is decoded
        for event in stream(*args):
            if isinstance(event, TextDelta):
                decoded.append(time.monotonic())
            yield event

    session.client.stream = timed  # type: ignore[method-assign]
    screen = TimedFile()
    console = Console(file=screen, width=100, height=40, force_terminal=True, color_system="standard")
    output = Output(console, Terminal())
    session.ask("go", ReplySink(output, output.reply()), Terminal())
    waits, next_write = [], 0
    for arrived in decoded:
        while next_write < len(screen.writes) and screen.writes[next_write] < arrived:
            next_write += 1
        if next_write < len(screen.writes):
            waits.append((screen.writes[next_write] - arrived) * 1000)
    return waits


def main() -> None:
    server = FakeOpenAI().start()
    print("| chunks a second | chunks | wait before drawn: median | 99th percentile | longest | target |")
    print("|---|---|---|---|---|---|")
    for rate in RATES:
        waits = sorted(lags(rate, server))
        p99 = waits[int(len(waits) * 0.99) - 1]
        print(
            f"| {rate:,} | {len(waits):,} | {statistics.median(waits):.1f} ms | {p99:.1f} ms | {waits[-1]:.1f} ms"
            " | < 35 ms |"
        )
    server.stop()


if __name__ == "__main__":
    main()
