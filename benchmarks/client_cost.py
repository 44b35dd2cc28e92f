"""CPU spent reading a long markdown reply in a terminal: chatrepl beside a client that prints
the openai SDK's stream as plain text.

    python benchmarks/client_cost.py

The loopback server, in a process of its own, answers with a markdown reply (prose, lists,
code, tables, Chinese) of 4,000 or 16,000 tokens, one token per server-sent event. Each
client answers one question in a pseudo-terminal (100 x 40) and its CPU time (user +
system, the kernel's accounting of the finished process) is taken; median of 5, the
clients' runs interleaved.
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_cost import reply_of

ROOT = Path(__file__).resolve().parent.parent
SIZES = (4_000, 16_000)
RUNS = 5
# The yardstick: the SDK's normal streaming, each delta printed as it comes.
PLAIN_PRINTER = """
import sys, openai
client = openai.OpenAI(api_key="sk-bench", base_url=sys.argv[1])
stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}], stream=True)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(command: list[str], env: dict[str, str]) -> float:
    """CPU time of `command` answering once in a pseudo-terminal, read to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = pexpect.spawn(command[0], command[1:], env=env, dimensions=(40, 100), encoding="utf-8", timeout=300)
    child.expect(pexpect.EOF)
    child.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.exitstatus != 0:
        raise SystemExit(f"{command[0]} failed ({child.exitstatus}): {child.before[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    chatrepl = str(Path(sys.executable).parent / "chatrepl")
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for tokens in SIZES:
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "tests" / "openai_server.py"),
                    "--port",
                    str(port),
                    "--reply",
                    reply_of(tokens),
                ],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(1)
            url = f"http://127.0.0.1:{port}/v1"
            env = {
                "PATH": os.environ["PATH"],
                "HOME": home,
                "XDG_CONFIG_HOME": f"{home}/config",
                "XDG_DATA_HOME": f"{home}/data",
                "XDG_STATE_HOME": f"{home}/state",
                "TERM": "xterm-256color",
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": url,
                "CHATREPL_MODEL": "m",
            }
            clients = {
                "plain printer of the SDK's stream (yardstick)": [sys.executable, "-c", PLAIN_PRINTER, url],
                "chatrepl, markdown": [chatrepl, "--no-save", "question"],
                "chatrepl --plain": [chatrepl, "--no-save", "--plain", "question"],
            }
            # Interleaved, so that a machine slower for a while weighs on every client alike.
            runs: dict[str, list[float]] = {label: [] for label in clients}
            for _ in range(RUNS):
                for label, command in clients.items():
                    runs[label].append(cpu_seconds(command, env))
            rows += [(tokens, label, statistics.median(cpu)) for label, cpu in runs.items()]
            server.terminate()
    yardstick = {tokens: cpu for tokens, label, cpu in rows if "yardstick" in label}
    print("| client | reply tokens | CPU | vs yardstick |")
    print("|---|---|---|---|")
    for tokens, label, cpu in rows:
        print(f"| {label} | {tokens:,} | {cpu:.2f} s | {cpu / yardstick[tokens]:.2f}× |")
    for label in dict.fromkeys(label for _, label, _ in rows):
        small, large = (cpu for tokens, name, cpu in rows if name == label)
        print(f"{label}: CPU({SIZES[1]:,}) / CPU({SIZES[0]:,}) = {large / small:.1f}")


if __name__ == "__main__":
    main()
