"""The streaming markdown renderer: same result as one whole rendering, safe, exact code."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pyte
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from chatrepl.render import LiveArea, MarkdownRenderer, PlainRenderer, render_whole

REPLIES = sorted((Path(__file__).parent / "replies").glob("*.md"))
# What our own rendering writes on a terminal without colours: the live area's redraw, nothing else.
LIVE_AREA_REDRAW = re.compile(r"\r\x1b\[2K(\x1b\[1A\x1b\[2K)+")
LINES = [
    "# Heading",
    "## Heading 你好",
    "",
    "",
    "plain words and more words",
    "a **bold** and `code` line 中文字符",
    "- item",
    "  - nested item",
    "1. first",
    "2) second",
    "> quoted",
    "> > deeper",
    "```python",
    "```",
    "~~~",
    "x = [1, 2, 3]",
    "    indented",
    "| a | b |",
    "|---|---|",
    "| 1 | 2 |",
    "---",
    "===",
    "***",
    "text with \x1b[31m escape and \x9b C1",
    "[a link](https://example.com) and [bold]markup[/bold]",
]


def chunks_of(text: str, sizes: list[int]) -> list[str]:
    pieces, start = [], 0
    for size in sizes or [len(text) or 1]:
        if start >= len(text):
            break
        pieces.append(text[start : start + size])
        start += size
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def stream(console: Console, pieces: list[str]) -> str:
    renderer = MarkdownRenderer(console)
    for piece in pieces:
        renderer.feed(piece)
    renderer.finish()
    return console.file.getvalue()


def plain_console(width: int = 60) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None)


def terminal_console(width: int, height: int) -> Console:
    return Console(file=io.StringIO(), width=width, height=height, force_terminal=True, color_system="truecolor")


def whole(console: Console, text: str) -> str:
    render_whole(console, text)
    return console.file.getvalue()


def screen_and_scrollback(output: str, width: int, height: int) -> list[str]:
    """Every line a person could scroll back to, as a terminal shows it after `output`."""
    screen = pyte.HistoryScreen(width, height, history=100_000)
    pyte.Stream(screen).feed(output.replace("\n", "\r\n"))  # the tty turns \n into \r\n
    rows = [*screen.history.top, *(screen.buffer[y] for y in range(height))]
    lines = ["".join(row[x].data for x in range(width)).rstrip() for row in rows]
    while lines and not lines[-1]:
        lines.pop()
    return lines


chunk_sizes = st.lists(st.integers(min_value=1, max_value=40), max_size=300)
markdownish = st.lists(st.sampled_from(LINES), max_size=40).map("\n".join)


@pytest.mark.parametrize("path", REPLIES, ids=lambda path: path.stem)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=chunk_sizes)
def test_any_chunking_of_a_real_reply_prints_the_whole_rendering(path: Path, sizes: list[int]) -> None:
    text = path.read_text()
    assert stream(plain_console(), chunks_of(text, sizes)) == whole(plain_console(), text)


@settings(max_examples=150, deadline=None)
@given(text=markdownish, sizes=chunk_sizes, width=st.sampled_from([24, 60, 100]))
def test_any_chunking_of_any_markdown_prints_the_whole_rendering(text: str, sizes: list[int], width: int) -> None:
    assert stream(plain_console(width), chunks_of(text, sizes)) == whole(plain_console(width), text)


@pytest.mark.parametrize("path", REPLIES, ids=lambda path: path.stem)
@settings(max_examples=15, deadline=None)
@given(sizes=chunk_sizes, height=st.sampled_from([6, 12, 40]))
def test_on_a_terminal_scrollback_equals_the_whole_rendering(path: Path, sizes: list[int], height: int) -> None:
    """The live area is redrawn in place: nothing duplicated, nothing missing, even many screens tall."""
    text = path.read_text() * 3
    streamed = stream(terminal_console(50, height), chunks_of(text, sizes))
    expected = whole(terminal_console(50, height), text)
    assert screen_and_scrollback(streamed, 50, height) == screen_and_scrollback(expected, 50, height)


@settings(max_examples=200, deadline=None)
@given(text=st.text(), sizes=chunk_sizes)
def test_nothing_from_the_reply_reaches_the_terminal_as_a_control(text: str, sizes: list[int]) -> None:
    colourless_terminal = Console(file=io.StringIO(), width=40, height=10, force_terminal=True, color_system=None)
    for console in (plain_console(), colourless_terminal):
        output = LIVE_AREA_REDRAW.sub("", stream(console, chunks_of(text, sizes)))
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", output)


def test_rich_markup_is_literal_and_links_show_their_target() -> None:
    output = whole(plain_console(120), "[bold red]not markup[/bold red] and [docs](https://example.com/real)")
    assert "[bold red]not markup[/bold red]" in output
    assert "docs (https://example.com/real)" in output


def test_long_code_lines_are_never_wrapped_or_padded() -> None:
    line = "result = compute(" + ", ".join(f"argument_{n}" for n in range(12)) + ")"
    output = whole(plain_console(30), f"```python\n{line}\n    indented()\n```\n")
    assert f"\n{line}\n    indented()\n" in "\n" + output


def test_an_unclosed_fence_still_renders_as_code() -> None:
    output = stream(plain_console(), ["Script:\n\n```bash\necho one\n", "echo two"])
    assert "```" not in output
    assert "echo one\necho two\n" in output


@pytest.mark.parametrize(
    ("reply", "words"),
    [("42.", ["42"]), ("- ", ["•"]), ("1. one\n2.\n3. three", ["1", "one", "2", "3", "three"])],
)
def test_an_empty_list_item_still_shows_its_marker(reply: str, words: list[str]) -> None:
    # A reply of just "42." is an ordered list whose one item is empty.
    shown = whole(plain_console(), reply)
    assert shown.split() == words
    assert stream(plain_console(), chunks_of(reply, [1])) == shown


def test_code_is_highlighted_by_its_language() -> None:
    code = "def f():\n    return 1\n"
    as_python = whole(terminal_console(60, 20), f"```python\n{code}```\n")
    as_text = whole(terminal_console(60, 20), f"```text\n{code}```\n")
    keyword = re.compile(r"(\x1b\[[0-9;]*m)def\x1b\[0m")  # `def` alone in a colour of its own
    assert keyword.search(as_python) and not keyword.search(as_text)
    assert re.sub(r"\x1b\[[0-9;]*m", "", as_python) == re.sub(r"\x1b\[[0-9;]*m", "", as_text)


def test_wide_characters_wrap_at_the_terminal_width() -> None:
    output = whole(plain_console(20), "你好" * 15)
    lines = output.rstrip("\n").split("\n")
    assert [line.rstrip() for line in lines] == ["你好" * 5] * 3


def test_plain_renderer_writes_text_unchanged_but_safe() -> None:
    out = io.StringIO()
    renderer = PlainRenderer(out)
    for piece in ["# Ti", "tle\n\n**bo", "ld** \x1b", "]0;x\x07"]:
        renderer.feed(piece)
    renderer.finish()
    assert out.getvalue() == "# Title\n\n**bold** ^[]0;x^G\n"


def test_live_area_counts_rows_after_the_terminal_narrows() -> None:
    console = terminal_console(40, 20)
    live = LiveArea(console)
    live.show("x" * 40 + "\n" + "y" * 10, max_rows=10)
    console.size = (20, 20)  # the terminal re-wraps the 40-cell line onto two rows
    console.file.truncate(0)
    live.clear()
    assert console.file.getvalue().endswith("\r\x1b[2K" + "\x1b[1A\x1b[2K" * 3)
