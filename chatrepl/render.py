"""Streaming reply renderers.

`MarkdownRenderer` prints each finished markdown block to scrollback once and keeps
only the unfinished last block in a live area, re-rendered at most `FPS` times a
second, so the work stays proportional to the reply and a reply taller than the
screen never duplicates lines.  `PlainRenderer` writes the text as it arrives.
Both sanitize what they are given: the caller passes raw model text.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Protocol, TextIO

from chatrepl.sanitize import sanitize

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.live import Live
    from rich.segment import Segment

FPS = 15
CODE_THEME = "monokai"

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# Lines that may continue the block before a blank line: indented text, list items.
_CONTINUATION = re.compile(r"[ \t]|[-*+][ \t]|\d{1,9}[.)][ \t]")


class Renderer(Protocol):
    def feed(self, text: str) -> None: ...

    def finish(self) -> None: ...


class PlainRenderer:
    """Writes sanitized text as it arrives, ending with a newline."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = "\n"

    def feed(self, text: str) -> None:
        text = sanitize(text)
        if text:
            self.stream.write(text)
            self.stream.flush()
            self._last = text[-1]

    def finish(self) -> None:
        if self._last != "\n":
            self.stream.write("\n")
            self.stream.flush()
        self._last = "\n"


def markdown(text: str) -> RenderableType:
    from rich.markdown import Markdown

    # hyperlinks=False shows a link's real target instead of hiding it behind its text
    return Markdown(text, code_theme=CODE_THEME, hyperlinks=False)


class _Lines:
    """A renderable's lines without blank ones around them, optionally only the last `limit`."""

    def __init__(self, renderable: RenderableType, limit: int | None = None, gap: bool = False) -> None:
        self.renderable = renderable
        self.limit = limit
        self.gap = gap  # start with one blank line, to stand apart from what is above

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        lines = console.render_lines(self.renderable, options, pad=False)
        while lines and _is_blank(lines[-1]):
            lines.pop()
        while lines and _is_blank(lines[0]):
            lines.pop(0)
        if self.limit is not None:
            lines = lines[-self.limit :] if self.limit > 0 else []
        if self.gap:
            yield Segment.line()
        for line in lines:
            yield from line
            yield Segment.line()


def _is_blank(line: list[Segment]) -> bool:
    """Nothing to see: only spaces, and no background colour (a code block's padding has one)."""
    return all(not segment.text.strip() and not (segment.style and segment.style.bgcolor) for segment in line)


class MarkdownRenderer:
    """Renders a streamed reply as markdown: finished blocks once, the last block live."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending = ""  # text not yet printed to scrollback
        self._scanned = 0  # _pending[:_scanned] is whole lines already classified
        self._fence: str | None = None  # the open fence marker, inside a code block
        self._after_blank = False
        self._printed = False
        self._live: Live | None = None
        self._last_refresh = 0.0

    def feed(self, text: str) -> None:
        self._pending += sanitize(text)
        self._flush_finished_blocks()
        now = time.monotonic()
        if now - self._last_refresh >= 1 / FPS:
            self._last_refresh = now
            self._show_tail()

    def finish(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._pending.strip():
            self._print_block(self._pending)
        self._pending = ""

    def _flush_finished_blocks(self) -> None:
        while (end := self._pending.find("\n", self._scanned)) != -1:
            start, self._scanned = self._scanned, end + 1
            line = self._pending[start:end]
            if self._fence is not None:
                if line.strip().startswith(self._fence) and not line.strip().strip(self._fence[0]):
                    self._fence = None
                continue
            if not line.strip():
                self._after_blank = True
                continue
            if self._after_blank and not _CONTINUATION.match(line) and self._pending[:start].strip():
                self._print_block(self._pending[:start])
                self._pending = self._pending[start:]
                self._scanned = end + 1 - start
            self._after_blank = False
            fence = _FENCE.match(line)
            if fence:
                self._fence = fence.group(1)

    def _print_block(self, text: str) -> None:
        self.console.print(_Lines(markdown(text), gap=self._printed))
        self._printed = True

    def _show_tail(self) -> None:
        if not self._pending.strip():
            return
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                console=self.console, auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False
            )
            self._live.start()
        # Only what fits on screen is live: rows that scroll out of a live area cannot be redrawn.
        tail = _Lines(markdown(self._pending), limit=self.console.size.height - 3, gap=self._printed)
        self._live.update(tail, refresh=True)
