"""CPU and terminal output of a thinking model's reply, beside a plain reply of the same length.

    python benchmarks/thinking_cost.py

20,000 tokens of reasoning, then 2,000 of answer, arrive at 5,000 tokens a second in
chunks of 1-4 tokens and go through chatrepl's reply sink to a 100x40 terminal, with
the thinking collapsed (the default), shown and hidden; the yardstick is a 22,000-token
answer with no thinking through the same sink.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_cost import CHARS_PER_TOKEN, chunks_of, reply_of, terminal

from chatrepl.output import Output, ReplySink

TOKENS_PER_SECOND = 5_000
THINKING, ANSWER = 20_000, 2_000


def thought_of(tokens: int) -> str:
    lines, text = 0, ""
    while len(text) < tokens * CHARS_PER_TOKEN:
        lines += 1
        text += f"Step {lines}: the user asks about the cost; weigh this option against the ones before it.\n"
    return text[: tokens * CHARS_PER_TOKEN]


def run(thinking: str | None, thought: str, answer: str) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and characters written, the chunks paced as the server would send them."""
    console = terminal()
    sink = ReplySink(Output(console), Output(console).reply(), thinking)
    paced = [(sink.think, chunk) for chunk in chunks_of(thought)] + [(sink.feed, chunk) for chunk in chunks_of(answer)]
    started, cpu = time.monotonic(), time.process_time()
    sent = 0
    for feed, chunk in paced:
        feed(chunk)
        sent += len(chunk) // CHARS_PER_TOKEN
        ahead = started + sent / TOKENS_PER_SECOND - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    sink.finish()
    return time.process_time() - cpu, time.monotonic() - started, len(console.file.getvalue())


def main() -> None:
    thought, answer = thought_of(THINKING), reply_of(ANSWER)
    rows = [
        ("answer only, no thinking (yardstick)", run(None, "", reply_of(THINKING + ANSWER))),
        ("thinking collapsed (default)", run("collapse", thought, answer)),
        ("thinking shown", run("show", thought, answer)),
        ("thinking hidden", run("hide", thought, answer)),
    ]
    print(f"| {THINKING:,} thinking + {ANSWER:,} answer tokens at {TOKENS_PER_SECOND:,}/s | CPU | wall | written |")
    print("|---|---|---|---|")
    for name, (cpu, wall, written) in rows:
        print(f"| {name} | {cpu:.2f} s | {wall:.1f} s | {written / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
