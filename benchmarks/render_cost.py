"""CPU and terminal output of rendering a streamed markdown reply.

    python benchmarks/render_cost.py

A reply of mixed markdown (prose, lists, code, tables, Chinese) arrives in chunks of
1-4 tokens (about 4 characters a token) and is rendered to a 100x40 terminal:

- once: rich's Markdown rendering of the whole reply, one time (the floor);
- streamed: chatrepl's MarkdownRenderer fed every chunk;
- naive: rich Live re-rendering Markdown(whole text so far) on every chunk, as many
  terminal chat tools do (measured on shorter replies: it grows with the square).
"""

from __future__ import annotations

import io
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from chatrepl.render import MarkdownRenderer

REPLIES = Path(__file__).resolve().parent.parent / "tests" / "replies"
CHARS_PER_TOKEN = 4


def reply_of(tokens: int) -> str:
    corpus = "\n\n".join((REPLIES / name).read_text() for name in ("mixed.md", "chinese.md"))
    text = ""
    while len(text) < tokens * CHARS_PER_TOKEN:
        text += corpus + "\n\n"
    return text[: tokens * CHARS_PER_TOKEN]


def chunks_of(text: str, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    chunks, start = [], 0
    while start < len(text):
        size = rng.randint(1, 4) * CHARS_PER_TOKEN
        chunks.append(text[start : start + size])
        start += size
    return chunks


def terminal() -> Console:
    return Console(file=io.StringIO(), width=100, height=40, force_terminal=True, color_system="truecolor")


def measure(work: Callable[[Console], None]) -> tuple[float, int]:
    """CPU seconds and characters written to the terminal."""
    console = terminal()
    started = time.process_time()
    work(console)
    return time.process_time() - started, len(console.file.getvalue())


def once(text: str) -> Callable[[Console], None]:
    return lambda console: console.print(Markdown(text))


def streamed(text: str) -> Callable[[Console], None]:
    def work(console: Console) -> None:
        renderer = MarkdownRenderer(console)
        for chunk in chunks_of(text):
            renderer.feed(chunk)
        renderer.finish()

    return work


def naive(text: str) -> Callable[[Console], None]:
    def work(console: Console) -> None:
        so_far = ""
        with Live(console=console, auto_refresh=False, vertical_overflow="visible") as live:
            for chunk in chunks_of(text):
                so_far += chunk
                live.update(Markdown(so_far), refresh=True)

    return work


def row(name: str, tokens: int, result: tuple[float, int], floor: float) -> str:
    cpu, written = result
    return f"| {name} | {tokens:,} | {cpu:.2f} s | {cpu / floor:.1f}x | {written / 1e6:.2f} MB |"


def main() -> None:
    small, large = 5_000, 20_000
    naive_small, naive_large = 500, 2_000
    # Imports, lexers and styles load on first use: once, before anything is timed.
    measure(once(reply_of(small)))
    measure(streamed(reply_of(small)))
    floor_large = measure(once(reply_of(large)))[0]
    floor_small = measure(once(reply_of(small)))[0]
    floor_naive_small = measure(once(reply_of(naive_small)))[0]
    floor_naive_large = measure(once(reply_of(naive_large)))[0]
    ours_small = measure(streamed(reply_of(small)))
    ours_large = measure(streamed(reply_of(large)))
    print("naive runs take a while…", file=sys.stderr)
    theirs_small = measure(naive(reply_of(naive_small)))
    theirs_large = measure(naive(reply_of(naive_large)))

    print("| renderer | reply tokens | CPU | CPU vs rendering once | written to terminal |")
    print("|---|---|---|---|---|")
    print(row("rich Markdown, whole reply once", large, (floor_large, 0), floor_large).rsplit("|", 2)[0] + "| - |")
    print(row("chatrepl streamed", small, ours_small, floor_small))
    print(row("chatrepl streamed", large, ours_large, floor_large))
    print(row("naive Live(Markdown(text)) per chunk", naive_small, theirs_small, floor_naive_small))
    print(row("naive Live(Markdown(text)) per chunk", naive_large, theirs_large, floor_naive_large))
    print()
    print(f"time(4n)/time(n): chatrepl {ours_large[0] / ours_small[0]:.1f} ({small:,} -> {large:,} tokens), ", end="")
    print(f"naive {theirs_large[0] / theirs_small[0]:.1f} ({naive_small:,} -> {naive_large:,} tokens)")


if __name__ == "__main__":
    main()
