"""Startup time and Enter-to-first-character latency, in a pseudo-terminal.

Runs the installed `chatrepl` against the loopback OpenAI-compatible server and
prints a markdown table of medians:

    python benchmarks/startup_latency.py [--runs 7]

- start to prompt: from spawning `chatrepl` to the prompt accepting input.
- Enter to first character, minus the server's own time to first token: what the
  client adds, measured once the user has taken a second to type (the usual case),
  and with the message typed and sent the instant the prompt appears (the worst
  case: the background warm-up has not finished).
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
from openai_server import FakeOpenAI, Script

PROMPT = "\x1b[?2004h"  # prompt_toolkit enables bracketed paste when a prompt is ready
MARK = "§"  # the reply's first character, found in no escape sequence


def chatrepl_path() -> str:
    return str(Path(sys.executable).parent / "chatrepl")


def spawn(server: FakeOpenAI, home: str) -> pexpect.spawn:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "CHATREPL_", "XDG_"))}
    env.update(
        HOME=home,
        TERM="xterm-256color",
        OPENAI_API_KEY="sk-benchmark",
        OPENAI_BASE_URL=server.url,
        PROMPT_TOOLKIT_NO_CPR="1",
    )
    child = pexpect.spawn(chatrepl_path(), env=env, cwd=home, dimensions=(40, 120), encoding="utf-8", timeout=30)
    child.delaybeforesend = None  # pexpect otherwise sleeps 50 ms before each send
    return child


def one_run(server: FakeOpenAI, home: str, think: float) -> tuple[float, float]:
    """Seconds to the prompt, and seconds the client added to the first token."""
    server.enqueue(Script(text=f"{MARK} the reply", chunk_size=4))
    started = time.monotonic()
    child = spawn(server, home)
    child.expect_exact(PROMPT)
    ready = time.monotonic()
    child.send("hello")
    time.sleep(think)
    before = len(server.first_token_times)
    entered = time.monotonic()
    child.send("\r")
    child.expect_exact(MARK)
    shown = time.monotonic()
    received, first_sent = server.first_token_times[before]
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return ready - started, (shown - entered) - (first_sent - received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    server = FakeOpenAI().start()
    with tempfile.TemporaryDirectory() as home:
        one_run(server, home, 1.0)  # warm the file cache
        typed = [one_run(server, home, 1.0) for _ in range(runs)]
        hurried = [one_run(server, home, 0.0) for _ in range(runs)]
    server.stop()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f}–{max(values) * 1000:.0f})"

    print(f"| measure (median of {runs}, pseudo-terminal, loopback server) | median (min–max) | target |")
    print("|---|---|---|")
    print(f"| start to usable prompt | {ms([t for t, _ in typed + hurried])} | < 500 ms |")
    print(
        f"| Enter to first character, added to server TTFT (typed after 1 s) | {ms([d for _, d in typed])} | < 20 ms |"
    )
    print(f"| the same, Enter the instant the prompt appears | {ms([d for _, d in hurried])} | - |")


if __name__ == "__main__":
    main()
