"""How far the screen lags behind a fast server, in a pseudo-terminal.

    python benchmarks/stream_latency.py [--runs 5]

The loopback server streams a 5,000-token markdown reply at 5,000 tokens a second,
one token (4 characters) per event.  Measured: from the server sending the end of the
stream to the reply's last character appearing on the terminal.  The same reply is
also shown by a naive client that re-renders rich Live(Markdown(text)) on every chunk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import FakeOpenAI, Script
from render_cost import CHARS_PER_TOKEN, reply_of

TOKENS = 5_000
TOKENS_PER_SECOND = 5_000
NAIVE_TIMEOUT = 300
END = "§"  # the reply's last character, found in no escape sequence


def naive_client() -> None:
    """Stream a reply and re-render all of it on every chunk, as common terminal clients do."""
    import openai
    from rich.live import Live
    from rich.markdown import Markdown

    client = openai.OpenAI()
    text = ""
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "go"}], stream=True)
    with Live(auto_refresh=False, vertical_overflow="visible") as live:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                live.update(Markdown(text), refresh=True)


def lag(server: FakeOpenAI, command: list[str], home: str, timeout: float) -> float:
    """Seconds from the end of the stream to its last character on screen (inf if not within `timeout`)."""
    text = reply_of(TOKENS - 4) + f"\n\nThe end {END}"
    server.enqueue(Script(text=text, chunk_size=CHARS_PER_TOKEN, chunks_per_second=TOKENS_PER_SECOND))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "CHATREPL_"))}
    env.update(HOME=home, TERM="xterm-256color", OPENAI_API_KEY="sk-benchmark", OPENAI_BASE_URL=server.url)
    child = pexpect.spawn(
        command[0], command[1:], env=env, dimensions=(40, 100), encoding="utf-8", timeout=timeout, searchwindowsize=200
    )
    try:
        child.expect_exact(END)
        seen = time.monotonic()
    except pexpect.TIMEOUT:
        seen = float("inf")
    finally:
        child.close(force=True)
    return seen - server.stream_ends[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--naive-client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_client:
        naive_client()
        return
    chatrepl = [str(Path(sys.executable).parent / "chatrepl"), "go"]
    naive = [sys.executable, str(Path(__file__).resolve()), "--naive-client"]
    server = FakeOpenAI().start()
    with tempfile.TemporaryDirectory() as home:
        ours = [lag(server, chatrepl, home, timeout=60) for _ in range(args.runs)]
        theirs = [lag(server, naive, home, timeout=NAIVE_TIMEOUT)]
    server.stop()
    print(
        f"| {TOKENS:,}-token reply at {TOKENS_PER_SECOND:,} tokens/s | last character on screen after the stream ends |"
    )
    print("|---|---|")
    print(f"| chatrepl (median of {len(ours)}) | {statistics.median(ours) * 1000:.0f} ms |")
    late = statistics.median(theirs)
    shown = f"{late:.1f} s" if late < NAIVE_TIMEOUT else f"not within {NAIVE_TIMEOUT} s"
    print(f"| naive Live(Markdown(text)) per chunk (one run) | {shown} |")


if __name__ == "__main__":
    main()
