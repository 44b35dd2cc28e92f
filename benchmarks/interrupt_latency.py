"""How fast Ctrl-C stops a reply, in a pseudo-terminal.

    python benchmarks/interrupt_latency.py [--runs 7]

The installed `chatrepl` asks the loopback server for a long reply streamed slowly;
once text is on the screen, Ctrl-C is sent.  Measured: from Ctrl-C to the server
seeing the connection hung up, and to the prompt being back.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import FakeOpenAI, Script
from startup_latency import PROMPT, ms


def one_run(server: FakeOpenAI, home: str) -> tuple[float, float]:
    """Seconds from Ctrl-C to the hang-up the server sees, and to the prompt."""
    server.enqueue(Script(text=" ".join(f"w{n}" for n in range(3000)), chunk_size=6, delay=0.01))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "CHATREPL_", "XDG_"))}
    env.update(HOME=home, TERM="xterm-256color", OPENAI_API_KEY="sk-benchmark", OPENAI_BASE_URL=server.url)
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    chatrepl = str(Path(sys.executable).parent / "chatrepl")
    child = pexpect.spawn(chatrepl, env=env, dimensions=(40, 100), encoding="utf-8", timeout=30)
    child.delaybeforesend = None
    child.expect_exact(PROMPT)
    hung_up = len(server.disconnects)
    child.send("talk\r")
    child.expect("w40 ")
    pressed = time.monotonic()
    child.sendintr()
    child.expect_exact(PROMPT)
    prompt = time.monotonic()
    while len(server.disconnects) == hung_up and time.monotonic() - pressed < 10:
        time.sleep(0.001)
    disconnect = server.disconnects[hung_up] if len(server.disconnects) > hung_up else float("inf")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return disconnect - pressed, prompt - pressed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    server = FakeOpenAI().start()
    with tempfile.TemporaryDirectory() as home:
        results = [one_run(server, home) for _ in range(runs)]
    server.stop()
    print(f"| Ctrl-C mid-reply (median of {runs}, pseudo-terminal, loopback server) | median (min–max) | target |")
    print("|---|---|---|")
    print(f"| to the server seeing the connection closed | {ms([hang for hang, _ in results])} | < 100 ms |")
    print(f"| to the prompt back | {ms([back for _, back in results])} | < 200 ms |")


if __name__ == "__main__":
    main()
