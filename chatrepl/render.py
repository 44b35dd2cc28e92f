"""Streaming reply renderers.

`MarkdownRenderer` prints each finished markdown block to scrollback once and keeps
only the unfinished last block in a live area at the bottom, redrawn at most `FPS`
times a second (text that arrives between two frames is drawn by `catch_up`, which the
turn calls while it waits, so none waits more than a frame).  On a terminal the blocks
finished since the last frame are printed with that frame, together: one parse and one
print a frame, however fast the text comes.  The work stays
proportional to the reply, a reply taller than the screen never duplicates or loses
lines, and what ends up in scrollback is exactly what rendering the whole reply at once
prints (`render_whole`).

A block is finished when markdown-it, parsing the complete lines not yet printed,
starts another top-level block after it: only the last block can still change.
Printing blocks one by one then differs from one whole rendering only in the blank
line rich puts between top-level blocks, which `_needs_gap` reproduces.

`PlainRenderer` writes the text as it arrives.  Both sanitize what they are given:
the caller passes raw model text.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TextIO

from chatrepl.sanitize import sanitize

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.markdown import Markdown

FPS = 40  # a frame every 25 ms at most: text that has arrived is on screen within 35 ms
CODE_THEME = "monokai"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Renderer(Protocol):
    def feed(self, text: str) -> None: ...

    def pause(self) -> None:
        """Take back what is drawn provisionally, before the screen is handed to another program."""

    def catch_up(self) -> float | None:
        """Draw what arrived since the last frame if a frame is due; the seconds until the next
        frame while something waits to be drawn, else None."""

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

    def pause(self) -> None:
        pass  # nothing is provisional: every character is final once written

    def catch_up(self) -> float | None:
        return None  # every character is written as it arrives

    def finish(self) -> None:
        if self._last != "\n":
            self.stream.write("\n")
            self.stream.flush()
        self._last = "\n"


class JsonRenderer:
    """Shows a JSON-mode reply as a highlighted JSON code block, streamed like any other."""

    def __init__(self, inner: Renderer) -> None:
        self.inner = inner
        self._started = False

    def feed(self, text: str) -> None:
        if not self._started:
            self._started = True
            self.inner.feed("```json\n" if isinstance(self.inner, MarkdownRenderer) else "")
        self.inner.feed(text)

    def pause(self) -> None:
        self.inner.pause()

    def catch_up(self) -> float | None:
        return self.inner.catch_up()

    def finish(self) -> None:
        self.inner.finish()


def json_problem(text: str) -> str | None:
    """Why `text` is not valid JSON, or None if it is."""
    import json

    try:
        json.loads(text)
    except ValueError as err:
        return str(err)
    return None


@functools.cache
def _reply_markdown_class() -> type[Markdown]:
    """rich's Markdown with code blocks that copy exactly; built on first use, as rich.markdown is slow to import."""
    from rich.markdown import CodeBlock, Markdown
    from rich.segment import Segment
    from rich.syntax import Syntax

    class CopyableCodeBlock(CodeBlock):
        """Highlighted code with no padding and no hard wraps: a long line is left to the
        terminal's own soft wrap, so copying it gives back the code as it was sent."""

        def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
            code = str(self.text).rstrip("\n")
            syntax = Syntax(code, _lexer(self.lexer_name), theme=self.theme, background_color="default")
            for line in syntax.highlight(code).split("\n", allow_blank=True):
                yield from line.render(console)
                yield Segment.line()

    class ReplyMarkdown(Markdown):
        elements: ClassVar[dict[str, Any]] = {
            **Markdown.elements,
            "fence": CopyableCodeBlock,
            "code_block": CopyableCodeBlock,
        }

    return ReplyMarkdown


@functools.cache
def _lexer(name: str) -> Any:
    """The pygments lexer of a code block's language, as rich's Syntax would find it by name (a
    search through every lexer pygments has, slow enough to be done once a language); the name itself
    when there is none, which Syntax then shows as plain text."""
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(name, stripnl=False, ensurenl=True, tabsize=4)
    except ClassNotFound:
        return name


@functools.cache
def _empty_markdown(style: str) -> Markdown:
    return _reply_markdown_class()("", style=style, code_theme=CODE_THEME, hyperlinks=False)


@functools.cache
def _parser(blocks_only: bool = False) -> Any:
    """The markdown-it set-up rich's Markdown builds anew for every text, built once; `blocks_only`
    leaves out inline parsing, all that finding finished blocks needs."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt().enable("strikethrough").enable("table")
    return parser.disable("inline") if blocks_only else parser


def markdown(text: str, style: str = "none") -> Markdown:
    """A reply's markdown renderable; links show their real target, never rich markup."""
    renderable = copy.copy(_empty_markdown(style))
    renderable.markup = text
    renderable.parsed = _with_empty_items_marked(_parser().parse(text))
    _show_images_inline(renderable.parsed)
    return renderable


def _with_empty_items_marked(parsed: list[Any]) -> list[Any]:
    """The tokens, each empty list item given an empty paragraph: rich prints an item's marker beside
    its first line, so an empty one (a reply of just `42.` is one) would print nothing at all."""
    from markdown_it.token import Token

    marked: list[Any] = []
    for token in parsed:
        if token.type == "list_item_close" and marked and marked[-1].type == "list_item_open":
            level = token.level + 1
            marked += [
                Token("paragraph_open", "p", 1, level=level, block=True),
                Token("inline", "", 0, level=level + 1, content="", children=[]),
                Token("paragraph_close", "p", -1, level=level, block=True),
            ]
        marked.append(token)
    return marked


def _show_images_inline(parsed: list[Any]) -> None:
    """An image shows as `🌆 alt` in its line: rich prints it apart, before a row of padding that
    runs a cell past the screen, and drops the blank row before the paragraph it sits in."""
    from markdown_it.token import Token

    for token in parsed:
        for index, child in enumerate(token.children or []):
            if child.type == "image":
                name = child.content or str(child.attrs.get("src", "")).strip("/").rsplit("/", 1)[-1]
                token.children[index] = Token("text", "", 0, content=f"🌆 {name}")


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced and indented code blocks in a markdown text, in order."""
    return [token.content for token in _parser(blocks_only=True).parse(text) if token.type in ("fence", "code_block")]


def warm_up() -> None:
    """Import and build what rendering a reply needs (markdown, highlighting), ahead of the first reply."""
    import io

    from rich.console import Console

    Console(file=io.StringIO()).print(markdown("# x\n\n```python\nx = 1\n```"))


def render_whole(console: Console, text: str) -> None:
    """Print a whole reply at once: what streaming it through MarkdownRenderer leaves in scrollback."""
    console.print(markdown(sanitize(text)), crop=False)


def _top_level_blocks(parsed: list[Any]) -> list[tuple[int, bool, bool]]:
    """For each top-level block: its first line, whether rich printing it alone opens it with a
    blank line itself, and whether rich wants a blank line after it (the middle one needs a parse
    with inlines).  A list, a table or a quote opens with a blank line, but a quote holding nothing
    to show (only a link definition) prints nothing; so does a heading or paragraph with no text
    (rich starts a new line before an empty line of text)."""
    elements = _reply_markdown_class().elements
    blocks = []
    for index, token in enumerate(parsed):
        if token.level != 0 or token.nesting < 0 or not token.map:
            continue
        following = parsed[index + 1] if token.nesting == 1 else None
        if following is not None and following.type != "inline":  # a container
            empty = following.type == token.type.replace("_open", "_close")
            opens_blank = _opens_blank("> [x]: /u\n") if empty else True
        else:
            opens_blank = following is not None and not following.children and _opens_blank("## \n")
        element = elements.get(token.type)
        blocks.append((token.map[0], opens_blank, getattr(element, "new_line", True)))
    return blocks


@functools.cache
def _opens_blank(sample: str) -> bool:
    """Whether rich, printing the markdown `sample` after a paragraph, puts no blank line of its own
    between them (the block brings its own, or none is wanted): for an empty heading or quote rich's
    versions differ, so the one installed is asked, once."""
    import io

    from rich.console import Console

    def printed(text: str) -> str:
        console = Console(file=io.StringIO(), width=40, color_system=None)
        console.print(markdown(text), crop=False)
        return console.file.getvalue()

    return printed(f"x\n\n{sample}") == printed("x\n") + printed(sample)


class Frames:
    """When a live area is drawn again: once something new has come, at most FPS times a second."""

    def __init__(self) -> None:
        self._drawn_at = 0.0
        self._waiting = False  # something has come since the last frame

    def changed(self) -> None:
        self._waiting = True

    def restart(self) -> None:
        """The next change is drawn at once (the area was taken back)."""
        self._drawn_at = 0.0

    def due(self) -> float | None:
        """0 when a frame is due now (it counts as drawn); the seconds until it is while something
        waits to be drawn; None when nothing does."""
        if not self._waiting:
            return None
        now = time.monotonic()
        if now - self._drawn_at < 1 / FPS:
            return self._drawn_at + 1 / FPS - now
        self._drawn_at, self._waiting = now, False
        return 0.0


class LiveArea:
    """The bottom rows of the screen, redrawn in place; nothing in it reaches scrollback."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._widths: list[int] = []  # cell width of each line drawn

    @classmethod
    def on(cls, console: Console) -> LiveArea | None:
        """A live area, where the console is a terminal that can redraw; None elsewhere."""
        return cls(console) if console.is_terminal and not console.is_dumb_terminal else None

    def _rows(self) -> int:
        # Rows the drawn lines take now: a terminal narrowed since then re-wraps each line.
        width = max(1, self.console.width)
        return sum(max(1, math.ceil(line / width)) for line in self._widths)

    def clear(self) -> None:
        rows = self._rows()
        if rows:
            # Erased line by line from the bottom up: tmux files a screen erased from its
            # top-left corner (ESC[J there) into scrollback, which would leave copies behind.
            self.console.file.write("\r\x1b[2K" + "\x1b[1A\x1b[2K" * rows)
            self.console.file.flush()
        self._widths = []

    def show(self, renderable: Any, max_rows: int) -> None:
        from rich.cells import cell_len

        with self.console.capture() as capture:
            self.console.print(renderable, crop=True)
        lines = capture.get().split("\n")[:-1][-max_rows:] if max_rows > 0 else []
        self.clear()
        if lines:
            self.console.file.write("\n".join(lines) + "\n")
            self.console.file.flush()
        self._widths = [cell_len(_ANSI.sub("", line)) for line in lines]


class MarkdownRenderer:
    """Renders a streamed reply as markdown: finished blocks once, the last block live."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending = ""  # sanitized text not yet printed to scrollback
        self._printed = False
        self._gap_after_printed = False  # rich wants a blank line after the last block printed
        self._live = LiveArea.on(console)
        self._frames = Frames()
        self._parse_at = 0  # length of _pending at which a line end is worth a parse anyway
        self._block_may_have_ended = False  # a line has ended that may have finished a block
        self._references: dict[str, dict[str, str]] = {}  # link reference definitions seen, the first of each

    def feed(self, text: str) -> None:
        text = sanitize(text)
        self._pending += text
        if "\n" in text and (self._blank_line_ended(len(text)) or len(self._pending) >= self._parse_at):
            self._block_may_have_ended = True
            if self._live is None:
                self._print_finished_blocks()
        self._frames.changed()
        self.catch_up()

    def catch_up(self) -> float | None:
        wait = self._frames.due() if self._live is not None else None
        if wait == 0.0:
            if self._block_may_have_ended:
                self._print_finished_blocks()
            self._show_tail()
            return None
        return wait

    def pause(self) -> None:
        """Erase the live area; the next text draws it again."""
        if self._live is not None:
            self._live.clear()
        self._frames.restart()

    def finish(self) -> None:
        if self._live is not None:
            self._live.clear()
        if self._pending.strip():
            self._learn_references(self._pending)
            self._print(self._pending)
        self._pending = ""

    def _blank_line_ended(self, new: int) -> bool:
        """Whether the last `new` characters completed a blank line, where most blocks end."""
        return "\n\n" in self._pending[-new - 1 :] or bool(re.search(r"\n[ \t]+\n", self._pending[-new - 80 :]))

    def _print_finished_blocks(self) -> None:
        self._block_may_have_ended = False
        # Parsing is linear in the pending text, so between blank lines a long block is parsed
        # again only once it has doubled: the total stays linear, a finished block may wait.
        complete = self._pending[: self._pending.rfind("\n") + 1]
        parsed = self._learn_references(complete)
        blocks = _top_level_blocks(parsed)
        self._parse_at = 2 * len(self._pending)
        if len(blocks) < 2:
            return
        cut = _line_offset(complete, blocks[-1][0])
        if self._waits_for_a_definition(parsed, blocks[-1][0]):
            return
        finished, self._pending = self._pending[:cut], self._pending[cut:]
        self._parse_at = 2 * len(self._pending)
        if self._live is not None:
            self._live.clear()
        self._print(finished)

    def _learn_references(self, text: str) -> list[Any]:
        """Parse `text`, noting the link reference definitions in it (an earlier one of a label wins)."""
        env: dict[str, Any] = {}
        parsed = _parser(blocks_only=True).parse(text, env)
        for label, target in env.get("references", {}).items():
            self._references.setdefault(label, target)
        return parsed

    def _waits_for_a_definition(self, parsed: list[Any], last_line: int) -> bool:
        """Whether the finished blocks use a reference not defined yet, which may still come (models
        often put the definitions last): they stay live while they fit on the screen."""
        from markdown_it.common.utils import normalizeReference

        inline = " ".join(
            token.content for token in parsed if token.type == "inline" and token.map and token.map[0] < last_line
        )
        inline = re.sub(r"`+[^`]*`+", "", inline)  # code spans hold no links
        for text, label in _REFERENCE.findall(inline):
            if normalizeReference(label or text) not in self._references:
                return self._pending.count("\n") < self.console.height - 2
        return False

    def _with_references(self, text: str) -> str:
        """The text after the definitions seen so far: a block printed alone resolves them as the reply does."""
        definitions = "".join(_definition(label, target) for label, target in self._references.items())
        return f"{definitions}\n{text}" if definitions else text

    def _print(self, text: str) -> None:
        renderable = markdown(self._with_references(text))
        blocks = _top_level_blocks(renderable.parsed)
        if not blocks:
            return
        if self._needs_gap(blocks[0]):
            self.console.print()
        self.console.print(renderable, crop=False)
        self._printed = True
        self._gap_after_printed = blocks[-1][2]

    def _needs_gap(self, first_block: tuple[int, bool, bool]) -> bool:
        return self._printed and self._gap_after_printed and not first_block[1]

    def _show_tail(self) -> None:
        assert self._live is not None
        if not self._pending.strip():
            return
        from rich.console import Group

        tail = markdown(self._with_references(self._visible_source()))
        blocks = _top_level_blocks(tail.parsed)
        gap = bool(blocks) and self._needs_gap(blocks[0])
        # Only what fits on screen is live: rows that scroll off cannot be redrawn.
        self._live.show(Group("", tail) if gap else tail, max_rows=self.console.height - 2)

    def _visible_source(self) -> str:
        """Enough of the end of the pending text to fill the live area: a long block is not
        rendered whole at every frame (its first line is kept, so a code fence stays code)."""
        lines = self._pending.split("\n")
        keep = 2 * self.console.height
        if len(lines) <= keep + 1:
            return self._pending
        return "\n".join([lines[0], *lines[-keep:]])


# A link by reference: [text][label], [label][] or [label], not followed by (url) or a definition's colon.
_REFERENCE = re.compile(r"(?<!\\)\[([^\[\]]+)\](?:\[([^\[\]]*)\])?(?![(:])")


def _definition(label: str, target: dict[str, str]) -> str:
    """A link reference definition's line, as markdown-it noted it (the label normalized, the address encoded)."""
    title = target.get("title") or ""
    quoted = title.replace("\\", "\\\\").replace('"', '\\"')
    return f"[{label}]: <{target['href']}>" + (f' "{quoted}"' if title else "") + "\n"


def _line_offset(text: str, line: int) -> int:
    """The index in `text` where its `line`-th line (from 0) starts."""
    offset = 0
    for _ in range(line):
        offset = text.index("\n", offset) + 1
    return offset
