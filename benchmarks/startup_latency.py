"""Startup time and Enter-to-first-character latency, in a pseudo-terminal, beside yardsticks.

Runs the installed `chatrepl` against the loopback OpenAI-compatible server and
prints a markdown table of medians:

    python benchmarks/startup_latency.py [--runs 7]

- start to prompt: from spawning `chatrepl` to the prompt accepting input, beside
  `python -c "import openai"` spawned the same way in the same run.
- Enter to first character, minus the server's own time to first token: what the
  client adds (the server runs in a process of its own, so this one's work never
  delays it), measured once the user has taken a second to type (the usual case:
  warm), beside a minimal client that prints the openai SDK's stream, and with the
  message typed and sent the instant the prompt appears (the worst case: the
  background import of openai has not finished).
- start to first reply character with the message sent the instant the prompt
  appears, beside a minimal client that imports openai before showing its prompt
  (prompt_toolkit) and prints the SDK's stream.
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


# The yardstick: openai imported before the prompt shows, the SDK's stream printed as it comes.
OPENAI_FIRST_CLIENT = """
import openai
from prompt_toolkit import prompt
client = openai.OpenAI()
while True:
    try:
        text = prompt("> ")
    except EOFError:
        break
    messages = [{"role": "user", "content": text}]
    for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
"""


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


def spawn(server: Server, home: str, command: list[str] | None = None) -> pexpect.spawn:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "CHATREPL_", "XDG_"))}
    env.update(
        HOME=home,
        TERM="xterm-256color",
        OPENAI_API_KEY="sk-benchmark",
        OPENAI_BASE_URL=server.url,
        PROMPT_TOOLKIT_NO_CPR="1",
    )
    command = command or [chatrepl_path()]
    child = pexpect.spawn(
        command[0], command[1:], env=env, cwd=home, dimensions=(40, 120), encoding="utf-8", timeout=30
    )
    child.delaybeforesend = None  # pexpect otherwise sleeps 50 ms before each send
    return child


def one_run(server: Server, home: str, think: float, command: list[str] | None = None) -> tuple[float, float, float]:
    """Seconds to the prompt, seconds the client added to the first token, and seconds from the
    start to the first reply character."""
    started = time.monotonic()
    child = spawn(server, home, command)
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
    return ready - started, (shown - entered) - (first_sent - received), shown - started


def import_openai() -> float:
    """Seconds `python -c "import openai"` takes, start to exit, as `time` would say."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import openai"], check=True)
    return time.monotonic() - started


def ms(values: list[float]) -> str:
    """Seconds as a median in milliseconds, with the fastest and slowest run beside it."""
    return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f}–{max(values) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    server = Server()
    yardstick = [sys.executable, "-c", OPENAI_FIRST_CLIENT]
    with tempfile.TemporaryDirectory() as home:
        one_run(server, home, 1.0)  # warm the file cache
        one_run(server, home, 0.0, yardstick)
        imports, typed, hurried, openai_typed, openai_first = [], [], [], [], []
        for _ in range(runs):  # interleaved, so a slow moment of the machine falls on all alike
            imports.append(import_openai())
            typed.append(one_run(server, home, 1.0))
            hurried.append(one_run(server, home, 0.0))
            openai_typed.append(one_run(server, home, 1.0, yardstick))
            openai_first.append(one_run(server, home, 0.0, yardstick))
    server.stop()
    prompt = [run[0] for run in typed + hurried]
    ratio = statistics.median(prompt) / statistics.median(imports)
    print(f"| measure (median of {runs}, pseudo-terminal, loopback server) | median (min–max) | target |")
    print("|---|---|---|")
    print(f"| start to usable prompt | {ms(prompt)}, {ratio:.2f}× `import openai` | ≤ 0.30× `import openai` |")
    print(f'| `python -c "import openai"` (yardstick) | {ms(imports)} | - |')
    added, added_yardstick = (statistics.median(run[1] for run in results) for results in (typed, openai_typed))
    print(
        f"| Enter to first character, added to server TTFT (typed after 1 s) | {ms([run[1] for run in typed])} "
        f"| ≤ the yardstick's + 5 ms ({(added - added_yardstick) * 1000:+.0f} ms) |"
    )
    print(f"| the same, a plain printer of the SDK's stream (yardstick) | {ms([run[1] for run in openai_typed])} | - |")
    print(f"| the same, chatrepl with Enter the instant the prompt appears | {ms([run[1] for run in hurried])} | - |")
    first, first_yardstick = (statistics.median(run[2] for run in results) for results in (hurried, openai_first))
    print(
        f"| start to first reply character, Enter the instant the prompt appears | {ms([run[2] for run in hurried])}, "
        f"{first / first_yardstick:.2f}× the yardstick's | ≤ 1.35× the yardstick's |"
    )
    print(
        f"| the same, client importing openai before its prompt (yardstick) | {ms([run[2] for run in openai_first])} "
        "| - |"
    )


if __name__ == "__main__":
    main()
