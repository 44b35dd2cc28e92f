"""The one sink that writes to the terminal.

Every method takes outside text as plain `str` and sanitizes it itself, and the console
is private: there is no way to hand this module text that reaches the terminal raw.
Replies are rendered by `render`, which sanitizes what it is fed.  Before each write
the terminal's requests are acted on (a Ctrl-C raises Interrupted there, between writes).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from chatrepl.conversation import COMPLETE, INCOMPLETE, Turn, estimate_text_tokens
from chatrepl.models import money_text
from chatrepl.render import (
    CODE_THEME,
    Frames,
    JsonRenderer,
    LiveArea,
    MarkdownRenderer,
    PlainRenderer,
    json_problem,
    markdown,
)
from chatrepl.sanitize import sanitize
from chatrepl.terminal import Terminal

if TYPE_CHECKING:
    from prompt_toolkit.output import Output as PromptOutput
    from rich.console import Console
    from rich.text import Text

    from chatrepl.events import Request, Usage
    from chatrepl.render import Renderer
    from chatrepl.tools import Tool
    from chatrepl.turn import TurnOutcome

PROMPT = "> "

_FINISH_NOTES = {
    "length": "the reply stopped at the token limit (raise it with --max-tokens)",
    "content_filter": "the reply was stopped by the server's content filter",
}


def report(kind: str, message: str) -> None:
    """One line on standard error before the conversation starts: `chatrepl: error: ...`."""
    print(f"chatrepl: {kind}: {sanitize(message)}", file=sys.stderr)


def report_traceback() -> None:
    """The traceback of the exception being handled, on standard error, made safe like everything shown
    (escapes and secrets)."""
    sys.stderr.write(sanitize(traceback.format_exc()))


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal (standard error, answered on standard input); no is the default."""
    sys.stderr.write(f"chatrepl: {sanitize(question)} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return answer.strip().lower() in ("y", "yes")


def emit(text: str) -> None:
    """Text on standard output, such as --print-config's, made safe as everything else."""
    print(sanitize(text))


def status_fields(
    usage: Usage, cost: float | None, session_cost: float | None, context_used: float | None
) -> list[tuple[str, int]]:
    """One turn's figures, `412 in · 1,208 out · $0.0009 · session $0.0112 · context 6%`, with the
    cached and reasoning tokens among them where the server counts those; each with its rank, how
    soon it is left out on a narrow screen (the higher, the sooner)."""
    about = "~" if usage.estimated else ""
    cached = f" ({usage.cached_tokens:,} cached)" if usage.cached_tokens else ""
    reasoning = f" ({usage.reasoning_tokens:,} reasoning)" if usage.reasoning_tokens else ""
    fields = [
        (f"{about}{usage.prompt_tokens:,} in{cached}", 0),
        (f"{about}{usage.completion_tokens:,} out{reasoning}", 1),
    ]
    if cost is not None:
        fields.append((money_text(cost), 2))
        if session_cost is not None:
            fields.append((f"session {money_text(session_cost)}", 4))
    if context_used is not None:
        fields.append((f"context {context_used:.0%}", 3))
    return fields


def fit_fields(fields: list[tuple[str, int]], width: int, most_lines: int = 2) -> list[str]:
    """The fields joined by ` · ` in lines of at most `width` columns, broken only between two fields;
    while that takes more than `most_lines` lines, the field of the highest rank is left out."""
    from rich.cells import cell_len

    while True:
        lines: list[str] = []
        for text, _ in fields:
            if lines and cell_len(f"{lines[-1]} · {text}") <= width:
                lines[-1] = f"{lines[-1]} · {text}"
            else:
                lines.append(text)
        if len(lines) <= most_lines or len(fields) == 1:
            return lines
        least_useful = max(fields, key=lambda field: field[1])
        fields = [field for field in fields if field is not least_useful]


def _styled(*spans: tuple[str, str]) -> Text:
    """Spans of sanitized text, each with its rich style, as one rich Text (rich is imported when
    first needed, not before the first prompt)."""
    from rich.text import Text

    return Text.assemble(*spans)


@contextlib.contextmanager
def spinner(message: str) -> Iterator[Callable[[float], None]]:
    """A spinner with the seconds elapsed on a terminal's standard error; silent elsewhere."""
    if not sys.stderr.isatty():
        yield lambda elapsed: None
        return
    from rich.console import Console

    text = sanitize(message)
    with Console(stderr=True).status(_styled((text, ""))) as status:
        yield lambda elapsed: status.update(_styled((f"{text}… {elapsed:.0f} s", "")))


class Output:
    """Notices, replies and the few control sequences chatrepl sends, all to one console."""

    def __init__(
        self,
        console: Console | None = None,
        terminal: Terminal | None = None,
        plain: bool = False,
        debug: bool = False,
        stderr: bool = False,
        thinking: str = "collapse",
    ) -> None:
        self._given_console = console
        self._stderr = stderr
        self.terminal = terminal or Terminal()
        self.plain = plain
        self.debug = debug
        self.thinking = thinking

    @functools.cached_property
    def _console(self) -> Console:
        """rich's console, made when first written to: importing rich would hold up the first prompt."""
        if self._given_console is not None:
            return self._given_console
        from rich.console import Console

        return Console(stderr=self._stderr, color_system=None if self.plain else "auto")

    @property
    def is_terminal(self) -> bool:
        return self._console.is_terminal

    @property
    def width(self) -> int:
        """Columns to fit text in: the terminal's, or 80 elsewhere."""
        return self._console.width

    def _line(self, *spans: tuple[str, str]) -> None:
        self.terminal.checkpoint()
        self._console.print(_styled(*spans), soft_wrap=True)

    def error(self, message: str, hint: str = "", cause: BaseException | None = None) -> None:
        spans = [("error: ", "bold red"), (sanitize(message), "red")]
        if hint:
            spans.append((f" · {sanitize(hint)}", "dim"))
        self._line(*spans)
        if self.debug and cause is not None:
            trace = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
            self._line((sanitize(trace), "dim"))

    def warning(self, message: str) -> None:
        self._line((f"warning: {sanitize(message)}", "yellow"))

    def note(self, message: str) -> None:
        self._line((sanitize(message), "dim"))

    def banner(self, text: str, prompt_output: PromptOutput) -> None:
        """The line above the first prompt, dim, drawn by prompt_toolkit on the prompt's own output (rich
        is not loaded before the prompt is up)."""
        from prompt_toolkit import print_formatted_text
        from prompt_toolkit.formatted_text import FormattedText

        print_formatted_text(FormattedText([("" if self.plain else "dim", sanitize(text))]), output=prompt_output)

    def info(self, message: str) -> None:
        self._line((sanitize(message), ""))

    def snippet(self, text: str, start: str, end: str) -> None:
        """Words around a search's match, indented, the matched words (between `start` and `end`) marked."""
        pieces = enumerate(text.replace(end, start).split(start))
        spans = [
            (sanitize(re.sub(r"\s+", " ", piece)), "bold underline" if number % 2 else "dim")
            for number, piece in pieces
        ]
        self._line(("       ", ""), *spans)

    def user_line(self, message: str) -> None:
        """A message of the user's, as it was typed at the prompt."""
        self._line((PROMPT, "bold cyan"), (sanitize(message), "bold"))

    def blank(self) -> None:
        self.terminal.checkpoint()
        self._console.print()

    def reply(self, json: bool = False) -> Renderer:
        """A renderer for a reply streamed from now on (markdown, or plain text as it arrives)."""

        renderer: Renderer = PlainRenderer(self._console.file) if self.plain else MarkdownRenderer(self._console)
        return JsonRenderer(renderer) if json else renderer

    def whole_reply(self, text: str, status: str) -> None:
        """A reply from the history, shown as it was shown when it streamed."""
        self.blank()
        renderer = self.reply()
        self.terminal.checkpoint()
        renderer.feed(text)
        renderer.finish()
        if status != COMPLETE:
            self.note(f"({status})")
        self.blank()

    def history(self, turns: list[Turn]) -> None:
        """A conversation's turns so far, as they were shown."""
        for turn in turns:
            if turn.role == "user":
                self.user_line(turn.content)
                if turn.images:
                    self.note(f"with {', '.join(image.describe() for image in turn.images)}")
            else:
                self.whole_reply(turn.content, turn.status)

    def reply_sink(self, json: bool = False) -> ReplySink:
        """Where a turn's reply goes: a renderer, the thinking as `thinking` says, notes and waits."""
        return ReplySink(self, self.reply(json), self.thinking)

    def reasoning(self, text: str) -> None:
        """A reply's whole reasoning, dim, as markdown."""
        self.terminal.checkpoint()
        self._console.print(markdown(sanitize(text), style="dim"), crop=False)

    def outcome(self, outcome: TurnOutcome, json: bool) -> None:
        """What a turn came to, after its reply: errors, notes and the other choices."""
        if outcome.refusal:
            self.warning(f"the model refused: {outcome.refusal}")
        if outcome.error is not None:
            kept = " (the partial reply is kept)" if outcome.status == INCOMPLETE else ""
            self.error(outcome.error.message + kept, outcome.error.hint, outcome.error)
        elif outcome.interrupted:
            kept = (
                " (the partial reply is kept)"
                if outcome.text
                else " (the thinking so far is kept)"
                if outcome.reasoning
                else ""
            )
            self.note(f"interrupted{kept}")
        elif outcome.finish_reason == "length" and outcome.reasoning and not outcome.text:
            self.warning(
                "the model spent its whole token budget thinking and never answered:"
                " raise it (/set max_tokens, --max-tokens) or lower /set reasoning_effort"
            )
        elif outcome.status == COMPLETE and not outcome.content:
            self.note("(the model sent an empty reply)")
        elif json and outcome.status == COMPLETE and outcome.text:
            problem = json_problem(outcome.text)
            if problem:
                self.warning(f"the reply is not valid JSON: {problem}")
        if outcome.finish_reason in _FINISH_NOTES and (outcome.text or not outcome.reasoning):
            self.note(_FINISH_NOTES[outcome.finish_reason])
        total = len(outcome.other_choices) + 1
        for index, text in outcome.other_choices.items():
            self.note(f"choice {index + 1} of {total} (the history keeps choice 1):")
            self.info(text)

    def status(
        self, outcome: TurnOutcome, session_cost: float | None, context_used: float | None, provider_model: str = ""
    ) -> None:
        """The turn's tokens, cost and share of the context window, when there are figures; first the
        model, when a provider's answered."""
        if outcome.usage is None:
            return
        fields = [(provider_model, 5)] if provider_model else []
        fields += status_fields(outcome.usage, outcome.cost, session_cost, context_used)
        if outcome.thinking_seconds is not None:
            fields.append((f"thought {outcome.thinking_seconds:.1f} s", 6))
        if outcome.answer_seconds is not None:
            fields.append((f"answer after {outcome.answer_seconds:.1f} s", 7))
        for line in fit_fields(fields, self._console.width):
            self.note(line)

    def countdown(self, message: str, seconds: float) -> None:
        """Wait `seconds`, counting down on one line; a Ctrl-C stops the wait (Interrupted)."""
        text = sanitize(message)
        if not self.is_terminal:
            self.note(f"{text} · retrying in {seconds:g} s")
            self.terminal.wait(seconds)
            return
        try:
            self.terminal.wait(
                seconds, lambda left: self.passing(f"{text} · retrying in {math.ceil(left)} s (Ctrl-C stops)")
            )
        finally:
            self.passed()

    def passing(self, text: str) -> None:
        """A dim line drawn over itself while something is waited for (given sanitized); `passed` takes it back."""
        self._console.file.write(f"\r\x1b[K\x1b[2m{text}\x1b[0m")
        self._console.file.flush()

    def passed(self) -> None:
        self._console.file.write("\x1b[0m\r\x1b[K")
        self._console.file.flush()

    def _put(self, question: str) -> None:
        """A question in bold, the answer to follow on its line."""
        self._console.print(_styled((sanitize(question), "bold")), end="")
        self._console.file.flush()

    def key(self, question: str, keys: str) -> str:
        """Ask with one key of `keys`, typed on the terminal; the key."""
        self._put(question)
        try:
            key = self.terminal.read_key(keys)
        except BaseException:  # Ctrl-C or a request to leave: what comes next starts a line of its own
            self._console.print()
            raise
        self._console.print(key)
        return key

    def ask_line(self, question: str) -> str:
        """A line typed on the terminal after `question` ("" at its end)."""
        self._put(question)
        return sys.stdin.readline().strip()

    def command(self, command: str, why: str | None) -> None:
        """A shell command, highlighted as shell, with a red line saying why it looks destructive."""
        if self.plain:
            self._console.print(sanitize(command), markup=False, highlight=False)
        else:
            from rich.syntax import Syntax

            self._console.print(Syntax(sanitize(command), "bash", theme=CODE_THEME, background_color="default"))
        if why:
            self._line((f"careful: it {why}", "bold red"))

    def clipboard(self, text: str) -> bool:
        """Ask the terminal to put `text` on the clipboard (OSC 52, which works over ssh too)."""
        if not self.is_terminal:
            return False
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        self._console.file.write(f"\x1b]52;c;{encoded}\x07")
        self._console.file.flush()
        return True

    def clear(self) -> None:
        self._console.clear()


class _Thinking:
    """A thinking model's reasoning as it streams, on the notices' console.

    collapse: a dim live area, a header with the seconds so far and the last lines, then
    one line once the answer starts; show: the reasoning kept dim above the answer; hide:
    the header alone.
    """

    LINES = 6  # of reasoning in the live area

    def __init__(self, console: Console, mode: str) -> None:
        self.console = console
        self.mode = mode
        self.started = time.monotonic()
        self.parts: list[str] = []
        self.live = LiveArea.on(console) if mode != "show" else None
        self.frames = Frames()

    def feed(self, text: str) -> None:
        self.parts.append(text)
        if self.mode == "show":
            self.console.print(_styled((sanitize(text), "dim")), end="", soft_wrap=True)
            return
        self.frames.changed()
        self.catch_up()

    def catch_up(self) -> float | None:
        """Draw the thinking that arrived since the last frame if a frame is due; else the seconds until it is."""
        wait = self.frames.due() if self.live is not None else None
        if wait == 0.0:
            self.draw(time.monotonic())
            return None
        return wait

    def draw(self, now: float) -> None:
        assert self.live is not None
        tail = sanitize("".join(self.parts[-200:])).splitlines()[-self.LINES :] if self.mode == "collapse" else []
        shown = _styled(
            (f"thinking… {now - self.started:.0f} s", "dim italic"), ("".join(f"\n  {line}" for line in tail), "dim")
        )
        self.live.show(shown, max_rows=self.console.height - 2)

    def pause(self) -> None:
        if self.live is not None:
            self.live.clear()
        self.frames.restart()

    def close(self) -> None:
        """The thinking is over: take back the live area and leave one line in its place."""
        self.pause()
        seconds = time.monotonic() - self.started
        tokens = estimate_text_tokens("".join(self.parts))
        if self.mode == "show":
            self.console.print()
        fields = [(f"thought for {seconds:.1f} s", 0), (f"~{tokens:,} tokens", 1)]
        if self.mode != "show":
            fields.append(("/think to show", 2))
        for line in fit_fields(fields, self.console.width):
            self.console.print(_styled((line, "dim")))


class ReplySink:
    """A turn's reply on the terminal: the renderer, the model's thinking, the turn's notes and its waits.
    With no `thinking` mode the reasoning is not shown at all (answering once, by default)."""

    def __init__(self, output: Output, renderer: Renderer, thinking: str | None = None) -> None:
        self.output = output
        self.renderer = renderer
        self.thinking = thinking
        self._thought: _Thinking | None = None
        self._thinking_over = False

    def sending(self, request: Request) -> None:
        pass  # nothing to show until the reply comes

    def think(self, text: str) -> None:
        if self.thinking is None or self._thinking_over:
            return
        if self._thought is None:
            self.output.terminal.checkpoint()
            self._thought = _Thinking(self.output._console, self.thinking)
        self._thought.feed(text)

    def _end_thinking(self) -> None:
        if self._thought is not None and not self._thinking_over:
            self._thinking_over = True
            self._thought.close()

    def feed(self, text: str) -> None:
        self._end_thinking()
        self.renderer.feed(text)

    def pause(self) -> None:
        if self._thought is not None and not self._thinking_over:
            self._thought.pause()
        self.renderer.pause()

    def catch_up(self) -> float | None:
        thought = self._thought.catch_up() if self._thought is not None and not self._thinking_over else None
        reply = self.renderer.catch_up()
        return min((wait for wait in (thought, reply) if wait is not None), default=None)

    def finish(self) -> None:
        self._end_thinking()
        self.renderer.finish()

    def note(self, message: str) -> None:
        self.pause()
        self.output.note(message)

    def retrying(self, message: str, seconds: float) -> None:
        self.pause()
        self._thought = None  # the next try thinks anew
        self.output.countdown(message, seconds)


class ToolLines:
    """Tool calls as the user sees them, on the output's console (standard error when answering once):
    a dim line as each starts, one with its outcome as it ends, and the one-key question before a call
    that needs the user's say (`can_ask`: there is a terminal to ask on)."""

    KEYS = "y once · s this session · a always · n no"

    def __init__(self, output: Output, can_ask: bool) -> None:
        self.output = output
        self.can_ask = can_ask
        self._spinning = False

    def started(self, tool: Tool, arguments: dict[str, Any]) -> None:
        from chatrepl.tools import short_arguments

        self.output.note(f"⚙ {tool.qualified}({short_arguments(arguments)})")

    SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def waiting(self, seconds: float) -> None:
        """The calls still run: a spinner and the time on one line, redrawn (on a terminal only)."""
        if self.output.is_terminal:
            frame = self.SPINNER[int(seconds * 10) % len(self.SPINNER)]
            self.output.passing(f"  {frame} {seconds:.0f} s (Ctrl-C cancels)")
            self._spinning = True

    def stopped(self) -> None:
        """The spinner's line gives way to what comes next."""
        if self._spinning:
            self.output.passed()
            self._spinning = False

    def finished(self, tool: Tool, text: str, error: bool, seconds: float) -> None:
        self.stopped()
        if error:
            self.output.note(f"  → {tool.qualified} failed: {' '.join(text.split())[:200]}")
        else:
            lines = len(text.splitlines())
            self.output.note(f"  → {lines} line{'' if lines == 1 else 's'}, {seconds:.1f} s")

    def warn(self, message: str) -> None:
        self.output.warning(message)

    def ask(self, tool: Tool, arguments: dict[str, Any]) -> str | None:
        """y, s, a or n for a call; None when there is no terminal to ask on."""
        if not self.can_ask:
            return None
        shown = json.dumps(arguments, indent=2, ensure_ascii=False)
        self.output.info(f"{tool.qualified} wants to run with:\n{shown}")
        return self.output.key(f"run it? {self.KEYS} ", "ysan")

    def keep_going(self, rounds: int) -> bool:
        """Whether to go on after `rounds` rounds of tool calls in one turn; no without a terminal."""
        question = f"the model has called tools {rounds} times in a row: go on? y/n "
        return self.can_ask and self.output.key(question, "yn") == "y"


class QuietSink:
    """A reply nobody reads as it streams (a shell command, shown once it is whole): only its notes
    and waits are shown."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def sending(self, request: Request) -> None:
        pass

    def feed(self, text: str) -> None:
        pass

    def think(self, text: str) -> None:
        pass

    def pause(self) -> None:
        pass

    def catch_up(self) -> float | None:
        return None

    def finish(self) -> None:
        pass

    def note(self, message: str) -> None:
        self.output.note(message)

    def retrying(self, message: str, seconds: float) -> None:
        self.output.countdown(message, seconds)
