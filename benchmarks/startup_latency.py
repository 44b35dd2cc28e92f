"""Startup time and Enter-to-first-character latency, in a pseudo-terminal.

Runs the installed `chatrepl` against the loopback OpenAI-compatible server and
prints a markdown table of medians:

    python benchmarks/startup_latency.py [--runs 7]

- start to prompt: from spawning `chatrepl` to the prompt accepting input.
- Enter to first character, minus the server's own time to first token: what the
  client adds (the server runs in a process of its own, so this one's work never
  delays it), measured once the user has taken a second to type (the usual case),
  and with the message typed and sent the instant the prompt appears (the worst
  case: the background warm-up has not finished).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pexpect

PROMPT = "\x1b[?2004h"  # prompt_toolkit enables bracketed paste when a prompt is ready
MARK = "§"  # the reply's first character, found in no escape sequence


def chatrepl_path() -> str:
    return str(Path(sys.executable).parent / "chatrepl")


class Server:
    """The loopback test server in a process of its own, and the first-token times it reports."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        script = Path(__file__).resolve().parent.parent / "tests" / "openai_server.py"
        command = [sys.executable, str(script), "--port", str(port), "--reply", f"{MARK} the reply"]
        self.process = subprocess.Popen([*command, "--report-first-tokens"], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.process.stdout.readline()  # it says where it serves once it does
        self.first_token_times: list[tuple[float, float]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            _, received, sent = line.split()
            self.first_token_times.append((float(received), float(sent)))

    def first_token(self, index: int) -> tuple[float, float]:
        while len(self.first_token_times) <= index:
            time.sleep(0.001)
        return self.first_token_times[index]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def spawn(server: Server, home: str) -> pexpect.spawn:
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


def one_run(server: Server, home: str, think: float) -> tuple[float, float]:
    """Seconds to the prompt, and seconds the client added to the first token."""
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
    received, first_sent = server.first_token(before)
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return ready - started, (shown - entered) - (first_sent - received)


def ms(values: list[float]) -> str:
    """Seconds as a median in milliseconds, with the fastest and slowest run beside it."""
    return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f}–{max(values) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    server = Server()
    with tempfile.TemporaryDirectory() as home:
        one_run(server, home, 1.0)  # warm the file cache
        typed = [one_run(server, home, 1.0) for _ in range(runs)]
        hurried = [one_run(server, home, 0.0) for _ in range(runs)]
    server.stop()
    print(f"| measure (median of {runs}, pseudo-terminal, loopback server) | median (min–max) | target |")
    print("|---|---|---|")
    print(f"| start to usable prompt | {ms([t for t, _ in typed + hurried])} | < 500 ms |")
    print(
        f"| Enter to first character, added to server TTFT (typed after 1 s) | {ms([d for _, d in typed])} | < 20 ms |"
    )
    print(f"| the same, Enter the instant the prompt appears | {ms([d for _, d in hurried])} | - |")


if __name__ == "__main__":
    main()
