"""Every example of the CommonMark specification, streamed through the renderer in several
chunkings at two widths, leaves on a terminal screen exactly what rendering it whole does, and
prints exactly the same text where there is no terminal (no live area: only what is final).

The specification is not part of this repository: CI fetches it from the npm registry
(`npm pack commonmark-spec@0.31.2`) and names its spec.txt in CHATREPL_COMMONMARK_SPEC.
"""

from __future__ import annotations

import io
import os
import random
import re
from pathlib import Path

import pyte
import pytest
from rich.console import Console

from chatrepl.render import MarkdownRenderer, render_whole

SPEC = os.environ.get("CHATREPL_COMMONMARK_SPEC", "")
pytestmark = pytest.mark.skipif(
    not Path(SPEC).is_file(),
    reason="CHATREPL_COMMONMARK_SPEC names no spec.txt (npm pack commonmark-spec@0.31.2 has one; CI fetches it)",
)
WIDTHS = (80, 40)


def examples() -> list[str]:
    """The markdown of each example, tabs written as the specification shows them (→) put back."""
    text = Path(SPEC).read_text(encoding="utf-8")
    found = re.findall(r"^`{32} example\n(.*?)^\.\n.*?^`{32}$", text, re.MULTILINE | re.DOTALL)
    return [markdown.replace("→", "\t") for markdown in found]


def chunkings(text: str) -> dict[str, list[str]]:
    rng = random.Random(len(text))
    pieces, start = [], 0
    while start < len(text):
        size = rng.randint(1, 7)
        pieces.append(text[start : start + size])
        start += size
    return {"a character at a time": list(text), "1 to 7 characters": pieces, "a line at a time": text.splitlines(True)}


def on_screen(output: str, width: int) -> list[str]:
    """The rows a terminal shows after `output`, scrollback included (the screen is tall enough)."""
    screen = pyte.Screen(width, 400)
    pyte.Stream(screen).feed(output.replace("\n", "\r\n"))
    rows = [row.rstrip() for row in screen.display]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def console(width: int, is_terminal: bool) -> Console:
    return Console(file=io.StringIO(), width=width, height=40, force_terminal=is_terminal, color_system=None)


def streamed(pieces: list[str], width: int, is_terminal: bool) -> str:
    out = console(width, is_terminal)
    renderer = MarkdownRenderer(out)
    for piece in pieces:
        renderer.feed(piece)
    renderer.finish()
    return out.file.getvalue()


def test_every_example_streams_as_it_renders_whole() -> None:
    cases = examples()
    assert len(cases) == 652
    differ = []
    for number, text in enumerate(cases, 1):
        for width in WIDTHS:
            whole, printed = console(width, True), console(width, False)
            render_whole(whole, text)
            render_whole(printed, text)
            expected = on_screen(whole.file.getvalue(), width)
            for name, pieces in chunkings(text).items():
                if on_screen(streamed(pieces, width, True), width) != expected:
                    differ.append(f"example {number}, {name}, width {width}, on a terminal")
                if streamed(pieces, width, False) != printed.file.getvalue():
                    differ.append(f"example {number}, {name}, width {width}, printed")
    assert differ == []
