"""A long session: 1,000 turns against the loopback server in one REPL.

    python benchmarks/soak.py [--turns 1000]

The REPL reads its input from a pipe and saves to a real database in a temporary
folder; the loopback server runs in a process of its own (so what it keeps is not
counted) and answers each message with a line of markdown.  Resident memory, open
file descriptors and threads of the REPL's process are read from /proc after the
warm-up (100 turns) and at the end; the screen output goes to /dev/null.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.config import Settings
from chatrepl.models import Catalogue
from chatrepl.output import Output
from chatrepl.repl import Repl
from chatrepl.store import Store

WARM_UP = 100


def resources() -> tuple[float, int, int]:
    """Resident memory in MB, open file descriptors, threads."""
    status = Path("/proc/self/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    threads = int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])
    return rss_kb / 1024, len(os.listdir("/proc/self/fd")), threads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=1000)
    turns = parser.parse_args().turns
    port = free_port()
    server_script = Path(__file__).resolve().parent.parent / "tests" / "openai_server.py"
    server = subprocess.Popen([sys.executable, str(server_script), "--port", str(port)], stdout=subprocess.PIPE)
    assert server.stdout is not None
    server.stdout.readline()  # it says where it serves once it does
    samples: dict[int, tuple[float, int, int]] = {}
    done = threading.Event()

    with tempfile.TemporaryDirectory() as folder, open(os.devnull, "w") as screen:
        os.environ["XDG_STATE_HOME"] = folder
        settings = Settings(api_key="sk-soak", base_url=f"http://127.0.0.1:{port}/v1", model="gpt-4o-mini", retries=0)
        store = Store(Path(folder) / "soak.db")
        before = resources()
        started = time.monotonic()
        with create_pipe_input() as pipe:
            pipe.send_text("".join(f"question {n}\r" for n in range(turns)) + "\x04")
            console = Console(file=screen, width=100, color_system=None)
            prompt_io = {"input": pipe, "output": DummyOutput()}
            repl = Repl.for_settings(settings, Catalogue(), store, [], Output(console), prompt_io)

            def sample() -> None:
                while not done.wait(0.05):
                    if len(repl.session.conversation.turns) >= 2 * WARM_UP:
                        samples[WARM_UP] = resources()
                        return

            threading.Thread(target=sample, daemon=True).start()
            repl.run()
            repl.session.close()
        elapsed = time.monotonic() - started
        done.set()
        end = resources()
        saved = store.conversations()[0].turns
    server.terminate()
    server.wait()
    warm = samples.get(WARM_UP, before)
    growth_kb = (end[0] - warm[0]) * 1024 / max(1, turns - WARM_UP)
    print(f"| soak: {turns:,} turns in one session ({elapsed:.0f} s, {saved:,} saved) | result | target |")
    print("|---|---|---|")
    print(
        f"| resident memory at the start / after {WARM_UP} turns / at the end | "
        f"{before[0]:.0f} / {warm[0]:.0f} / {end[0]:.0f} MB | < 150 MB |"
    )
    print(f"| growth per turn after the warm-up | {growth_kb:.1f} KB | flat |")
    print(f"| open file descriptors start / after warm-up / end | {before[1]} / {warm[1]} / {end[1]} | no leak |")
    print(f"| threads start / after warm-up / end | {before[2]} / {warm[2]} / {end[2]} | no leak |")


if __name__ == "__main__":
    main()
