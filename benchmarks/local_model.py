"""The embedded local model on this machine (needs the `local` extra).

    python benchmarks/local_model.py [--runs 3]

- model ready: from starting the llama.cpp server to it answering /v1/models;
- start to prompt: from spawning `chatrepl --local` in a pseudo-terminal to its prompt;
- generation speed: tokens per second after the first, of a reply of up to 200 tokens, streamed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai
import pexpect

from chatrepl import local

PROMPT = "\x1b[?2004h"


def model_ready(log: Path) -> tuple[float, float]:
    """Seconds until the server is ready, and tokens per second of one generation."""
    model = local.bundled_model()
    assert model is not None
    server = local.LocalServer(model, local.DEFAULT_CONTEXT, log)
    server.start()
    try:
        ready = server.wait_ready()
        client = openai.OpenAI(base_url=server.base_url, api_key="none")
        started = time.monotonic()
        stream = client.chat.completions.create(
            model=server.name,
            messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
            max_tokens=200,
            stream=True,
        )
        tokens = 0  # llama.cpp's server streams one token an event and sends no usage counts
        first = None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic()
                tokens += 1
        speed = (tokens - 1) / (time.monotonic() - (first or started))
    finally:
        server.stop()
    return ready, speed


def start_to_prompt(home: str) -> float:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "CHATREPL_", "XDG_"))}
    env.update(HOME=home, TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1")
    started = time.monotonic()
    child = pexpect.spawn(str(Path(sys.executable).parent / "chatrepl"), ["--local"], env=env, timeout=180)
    child.expect_exact(PROMPT)
    elapsed = time.monotonic() - started
    child.sendeof()
    child.expect(pexpect.EOF)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    if not local.available():
        sys.exit("the local extra is not installed: pip install '.[local]'")
    with tempfile.TemporaryDirectory() as home:
        measured = [model_ready(Path(home) / "server.log") for _ in range(runs)]
        prompts = [start_to_prompt(home) for _ in range(runs)]
    print(f"| local model {local.BUNDLED_NAME} (median of {runs}) | result |")
    print("|---|---|")
    print(f"| model ready (server start to /v1/models answering) | {statistics.median(m[0] for m in measured):.2f} s |")
    print(f"| `chatrepl --local` to prompt | {statistics.median(prompts):.2f} s |")
    print(f"| generation speed | {statistics.median(m[1] for m in measured):.0f} tokens/s |")


if __name__ == "__main__":
    main()
