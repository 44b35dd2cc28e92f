"""How fast /sessions finds text among many saved conversations.

    python benchmarks/search_sessions.py [--conversations 10000] [--messages 100]

Makes a history database of 10,000 conversations of 100 messages each (a million
messages, written through the store with its search index kept by its triggers), then
times searches of several kinds (median of 7 each, from a connection opened afresh) and
the first page of /sessions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from chatrepl.conversation import Turn
from chatrepl.store import Store

VOCABULARY = (
    "the a of to and in is it that for on with as this be are was you can by not or from an at which have but "
    "function value return error list file data python request server model token stream reply cache index "
    "query table column string number array object class method module package test build deploy config "
    "network socket thread process memory disk buffer parse render terminal window screen cursor color"
)
WORDS = VOCABULARY.split()
RARE = ["quaternion", "platypus", "zeppelin", "marzipan", "obsidian"]


def message(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(20, 80))
    if rng.random() < 0.001:
        words.insert(rng.randrange(len(words)), rng.choice(RARE))
    return " ".join(words)


def build(path: Path, conversations: int, messages: int) -> float:
    rng = random.Random(7)
    store = Store(path)
    started = time.perf_counter()
    for number in range(conversations):
        turns = [Turn("user" if n % 2 == 0 else "assistant", message(rng)) for n in range(messages)]
        store.import_conversation("gpt-4.1-mini", "s", f"conversation {number}", turns)
    store.close()
    return time.perf_counter() - started


def timed(action: object) -> float:
    """The median of 7 runs of `action`, in milliseconds."""
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chatrepl.db"
        seconds = build(path, args.conversations, args.messages)
        size = path.stat().st_size / 1_000_000
        store = Store(path)
        total = args.conversations * args.messages
        print(f"{args.conversations:,} conversations, {total:,} messages: built in {seconds:.0f} s, {size:.0f} MB")
        print()
        print("| search | found | median of 7 | target |")
        print("|---|---|---|---|")
        for label, text in (
            ("a rare word", "quaternion"),
            ("two rare words in one message", "platypus zeppelin"),
            ("the start of a rare word", "marzip"),
            ("a word in many messages", "socket"),
            ("two common words", "thread memory"),
            ("a word in nearly every message", "the"),
            ("a word in no message", "xylophone"),
        ):
            found = len(store.search(text))
            print(f"| {label} (`{text}`) | {found} | {timed(lambda text=text: store.search(text)):.1f} ms | < 100 ms |")
        print(f"| first page of /sessions | 20 | {timed(lambda: store.conversations(20)):.1f} ms | — |")


if __name__ == "__main__":
    main()
