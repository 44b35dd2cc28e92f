"""The prompt_toolkit loop that wires conversation, client, renderer and commands together."""

from __future__ import annotations

import base64
import contextlib
import math
import os
import signal
import sys
import termios
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console
from rich.text import Text

from chatrepl import __version__, commands
from chatrepl.client import ChatClient, ChatError, Finished, OtherChoice, RefusalDelta, TextDelta, Usage
from chatrepl.config import OPTION_BY_KEY, SAMPLING_KEYS, app_dir, open_private
from chatrepl.conversation import (
    COMPLETE,
    INCOMPLETE,
    INTERRUPTED,
    Conversation,
    Turn,
    estimate_text_tokens,
    estimate_tokens,
)
from chatrepl.render import JsonRenderer, MarkdownRenderer, PlainRenderer, Renderer, json_problem, markdown
from chatrepl.sanitize import sanitize
from chatrepl.store import ConversationRow, Store, TurnJournal

if TYPE_CHECKING:
    from prompt_toolkit.key_binding import KeyPressEvent

    from chatrepl.config import Settings
    from chatrepl.models import Catalogue, ModelInfo

FAILED = "failed"  # nothing came back: the user's message is taken out of the history again
MAX_WAIT = 60.0  # longest retry-after worth waiting for by ourselves
PROMPT = "> "

_FINISH_NOTES = {
    "length": "the reply stopped at the token limit (raise it with --max-tokens)",
    "content_filter": "the reply was stopped by the server's content filter",
}


class Notices:
    """One-line messages to the user: errors, warnings, dim status lines."""

    def __init__(self, console: Console, debug: bool = False) -> None:
        self.console = console
        self.debug = debug

    def error(self, message: str, hint: str = "", cause: BaseException | None = None) -> None:
        line = Text("error: ", style="bold red")
        line.append(sanitize(message), style="red")
        if hint:
            line.append(f" · {sanitize(hint)}", style="dim")
        self.console.print(line, soft_wrap=True)
        if self.debug and cause is not None:
            trace = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
            self.console.print(Text(sanitize(trace), style="dim"), soft_wrap=True)

    def warning(self, message: str) -> None:
        self.console.print(Text(f"warning: {sanitize(message)}", style="yellow"), soft_wrap=True)

    def note(self, message: str) -> None:
        self.console.print(Text(sanitize(message), style="dim"), soft_wrap=True)

    def countdown(self, message: str, seconds: float) -> None:
        """Wait `seconds`, counting down on one line; Ctrl-C (KeyboardInterrupt) stops the wait."""
        text = sanitize(message)
        if not self.console.is_terminal:
            self.note(f"{text} · retrying in {seconds:g} s")
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.console.file.write(
                    f"\r\x1b[K\x1b[2m{text} · retrying in {math.ceil(left)} s (Ctrl-C stops)\x1b[0m"
                )
                self.console.file.flush()
                time.sleep(min(1.0, left))
        finally:  # also after a Ctrl-C that cut a write short
            self.console.file.write("\x1b[0m\r\x1b[K")
            self.console.file.flush()


class _ReplyTerminal:
    """The terminal while a reply streams.

    Ctrl-C raises KeyboardInterrupt at once while waiting for the network, but is held
    back while the renderer writes, so it never cuts an escape sequence or the live
    area's bookkeeping in half; so is Ctrl-Z, which hands the terminal back to the shell
    clean (live area erased, echo on) and takes it again on `fg`.  Keys typed meanwhile
    are not echoed into the reply; they wait for the next prompt.
    """

    def __init__(self, pause: Callable[[], None]) -> None:
        self.pause = pause
        self.writing = False
        self.interrupted = False
        self.suspended = False
        self._saved: list[Any] | None = None  # the terminal settings to restore

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self.writing:
            self.interrupted = True
        else:
            raise KeyboardInterrupt

    def _on_sigtstp(self, signum: int, frame: object) -> None:
        if self.writing:
            self.suspended = True
        else:
            self._suspend()

    def _suspend(self) -> None:
        self.pause()
        if self._saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, self._saved)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stopped here until `fg`
        signal.signal(signal.SIGTSTP, self._on_sigtstp)
        self._saved = _silence_echo()

    @contextlib.contextmanager
    def active(self) -> Iterator[_ReplyTerminal]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        self._saved = _silence_echo()
        previous_stop = signal.signal(signal.SIGTSTP, self._on_sigtstp) if self._saved is not None else None
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
            if previous_stop is not None:
                signal.signal(signal.SIGTSTP, previous_stop)
            if self._saved is not None:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, self._saved)

    @contextlib.contextmanager
    def writing_output(self, raise_held: bool = True) -> Iterator[None]:
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
            if self.suspended:
                self.suspended = False
                self._suspend()
            held, self.interrupted = self.interrupted, False
            if held and raise_held:
                raise KeyboardInterrupt


def _silence_echo() -> list[Any] | None:
    """Turn off the terminal's echo (and its ^C); return the settings to restore."""
    if not sys.stdin.isatty():
        return None
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    return saved


@dataclass
class TurnResult:
    status: str
    question: str
    content: str | None = None  # what the history now holds as the reply; None when the turn failed
    usage: Usage | None = None
    cost: float | None = None  # US dollars, when the model's price is known
    finish_reason: str | None = None


@dataclass
class Tally:
    """Token and cost totals of a conversation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    priced: bool = True  # every turn so far had a known price

    def add(self, usage: Usage, cost: float | None) -> None:
        """Count a turn; cost is None when the model's price is unknown."""
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        if cost is None:
            self.priced = False
        else:
            self.cost += cost

    def summary(self) -> str:
        money = f" · {money_text(self.cost)}" if self.priced else ""
        return f"{self.prompt_tokens:,} in · {self.completion_tokens:,} out{money}"


def money_text(dollars: float) -> str:
    """Dollars with enough digits to show a small figure: $0.0112, $0.000005."""
    if dollars >= 0.001 or dollars <= 0:
        return f"${dollars:.4f}"
    return f"${dollars:.{1 - math.floor(math.log10(dollars))}f}"


def status_line(usage: Usage, cost: float | None, tally: Tally, rules: ModelInfo) -> str:
    """One turn's figures: `412 in · 1,208 out · $0.0009 · session $0.0112 · context 6%`,
    with the cached and reasoning tokens among them where the server counts those."""
    about = "~" if usage.estimated else ""
    cached = f" ({usage.cached_tokens:,} cached)" if usage.cached_tokens else ""
    reasoning = f" ({usage.reasoning_tokens:,} reasoning)" if usage.reasoning_tokens else ""
    parts = [f"{about}{usage.prompt_tokens:,} in{cached}", f"{about}{usage.completion_tokens:,} out{reasoning}"]
    if cost is not None:
        parts.append(money_text(cost))
        if tally.priced:
            parts.append(f"session {money_text(tally.cost)}")
    used = context_share(usage, rules)
    if used is not None:
        parts.append(f"context {used:.0%}")
    return " · ".join(parts)


def context_share(usage: Usage, rules: ModelInfo) -> float | None:
    """How much of the model's context window a turn took; None when the window is unknown."""
    return (usage.prompt_tokens + usage.completion_tokens) / rules.context if rules.context else None


@dataclass
class _Streamed:
    """What arrived for one reply."""

    parts: list[str]
    refusal: list[str]
    other_choices: dict[int, list[str]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    error: ChatError | None = None
    status: str = COMPLETE
    exit: SystemExit | None = None  # SIGTERM or SIGHUP came mid-reply: save it, then leave


def _json_hint(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """JSON mode needs the word JSON in the messages; add a system line saying so when it is missing."""
    if any("json" in message["content"].lower() for message in messages):
        return messages
    system = 1 if messages and messages[0]["role"] == "system" else 0
    return [*messages[:system], {"role": "system", "content": "Reply with a JSON object."}, *messages[system:]]


def request_messages(conversation: Conversation, settings: Settings) -> list[dict[str, str]]:
    messages = conversation.messages()
    return _json_hint(messages) if settings.json else messages


def fit_context(conversation: Conversation, settings: Settings, rules: ModelInfo) -> int:
    """Leave out the oldest exchanges until the prompt and the reply budget fit the model's window."""
    if not rules.context:
        return 0
    reply_budget = settings.max_tokens or min(rules.max_output or rules.context, rules.context // 4)
    dropped = 0
    while estimate_tokens(request_messages(conversation, settings)) + reply_budget > rules.context:
        if not conversation.drop_oldest_exchange():
            break
        dropped += 1
    return dropped


def _stream(
    conversation: Conversation,
    client: ChatClient,
    rules: ModelInfo,
    renderer: Renderer,
    notices: Notices,
    journal: TurnJournal,
) -> _Streamed:
    reply = _Streamed([], [])
    retried = False  # after a context-length error
    attempts = 0  # retries after a rate limit or server error
    with _ReplyTerminal(renderer.pause).active() as terminal:
        try:
            while True:
                try:
                    for event in client.stream(request_messages(conversation, client.settings), rules):
                        if isinstance(event, TextDelta):
                            reply.parts.append(event.text)
                            journal.partial(event.text)
                            with terminal.writing_output():
                                renderer.feed(event.text)
                        elif isinstance(event, RefusalDelta):
                            reply.refusal.append(event.text)
                        elif isinstance(event, OtherChoice):
                            reply.other_choices.setdefault(event.index, []).append(event.text)
                        elif isinstance(event, Finished):
                            reply.finish_reason = event.reason
                        elif isinstance(event, Usage):
                            reply.usage = event
                except ChatError as err:
                    if err.kind == "context" and not retried and conversation.drop_oldest_exchange():
                        notices.note("too long for the server: left out the oldest exchange and asked again")
                        retried = True
                        continue
                    wait = err.retry_after if err.retry_after is not None else 2.0**attempts
                    if err.retryable and not reply.parts and attempts < client.settings.retries and wait <= MAX_WAIT:
                        attempts += 1
                        notices.countdown(f"{err.message} · try {attempts + 1} of {client.settings.retries + 1}", wait)
                        continue
                    broken = err.kind == "incomplete" or reply.parts  # an error after text still leaves text
                    reply.error, reply.status = err, INCOMPLETE if broken else FAILED
                break
        except KeyboardInterrupt:
            reply.status = INTERRUPTED
        except SystemExit as leaving:
            reply.status, reply.exit = INTERRUPTED, leaving
        finally:
            with terminal.writing_output(raise_held=False):
                renderer.finish()
    return reply


def run_turn(
    conversation: Conversation,
    client: ChatClient,
    rules: ModelInfo,
    renderer: Renderer,
    notices: Notices,
    journal: TurnJournal,
    retry: bool = False,
) -> TurnResult:
    """Answer the conversation's last user message, record the reply and save the turn
    (with `retry`, the user message is saved already: only the reply is).

    The result's status is complete, interrupted (Ctrl-C), incomplete (the stream
    broke off; the partial reply is kept) or failed (nothing came back; the user turn
    is removed so the caller can offer the text again).
    """
    settings = client.settings
    dropped = fit_context(conversation, settings, rules)
    if dropped:
        notices.note(f"left out the {dropped} oldest exchange(s) to fit the model's context window")
    parameters = {key: getattr(settings, key) for key in SAMPLING_KEYS if getattr(settings, key) is not None}
    question = conversation.turns[-1].content
    journal.begin(None if retry else question, settings.model, conversation.system_prompt, parameters)
    if settings.json:
        renderer = JsonRenderer(renderer)
    reply = _stream(conversation, client, rules, renderer, notices, journal)
    status, usage, finish_reason = reply.status, reply.usage, reply.finish_reason
    text, refused = "".join(reply.parts), "".join(reply.refusal)
    if refused:
        notices.warning(f"the model refused: {refused}")
    content: str | None = text or refused
    if usage is None and content:
        prompt = estimate_tokens(request_messages(conversation, settings))
        usage = Usage(prompt, estimate_text_tokens(content), estimated=True)
    if status != COMPLETE and not content:
        status, content = FAILED, None
        if not retry:  # a retried message stays, answered or not, for another /retry
            conversation.drop_unanswered()
    else:
        conversation.add_assistant(content or "", status)
    if reply.error is not None:
        kept = " (the partial reply is kept)" if status == INCOMPLETE else ""
        notices.error(reply.error.message + kept, reply.error.hint, reply.error)
    elif reply.status == INTERRUPTED:
        notices.note("interrupted (the partial reply is kept)" if text else "interrupted")
    elif status == COMPLETE and not (text or refused):
        notices.note("(the model sent an empty reply)")
    elif settings.json and status == COMPLETE and text:
        problem = json_problem(text)
        if problem:
            notices.warning(f"the reply is not valid JSON: {problem}")
    if finish_reason in _FINISH_NOTES:
        notices.note(_FINISH_NOTES[finish_reason])
    total = len(reply.other_choices) + 1
    for index, pieces in sorted(reply.other_choices.items()):
        notices.note(f"choice {index + 1} of {total} (the history keeps choice 1):")
        notices.console.print(Text(sanitize("".join(pieces))), soft_wrap=True)
    cost = rules.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) if usage else None
    tokens = {"tokens_in": usage.prompt_tokens, "tokens_out": usage.completion_tokens} if usage else {}
    journal.finish(content, status, retry=retry, finish_reason=finish_reason, cost=cost, **tokens)
    if reply.exit is not None:
        raise reply.exit
    return TurnResult(status, question, content, usage, cost, finish_reason)


def restore(store: Store, conversation_id: int, examples: list[Turn]) -> tuple[ConversationRow, Conversation] | None:
    """A saved conversation, ready to go on, with its row; None if there is none."""
    found = store.conversation(conversation_id)
    if found is None:
        return None
    row, messages = found
    turns = [Turn(m.role, m.content, m.status) for m in messages]
    return row, Conversation(row.system_prompt, turns, examples=examples)


def run_once(
    settings: Settings,
    catalogue: Catalogue,
    store: Store | None,
    examples: list[Turn],
    question: str,
    plain: bool,
    debug: bool,
    resume: int | None = None,
) -> int:
    """Answer one question on stdout and exit: 0 done, 1 failed, 130 interrupted.
    With `resume`, the question goes on that saved conversation."""
    client = ChatClient(settings)
    conversation = Conversation(settings.system, examples=examples)
    renderer = PlainRenderer(sys.stdout) if plain else MarkdownRenderer(Console())
    notices = Notices(Console(stderr=True, color_system=None if plain else "auto"), debug)
    journal = TurnJournal(store, notices.warning)
    saved = restore(store, resume, examples) if store is not None and resume is not None else None
    if saved is not None:
        journal.conversation_id, conversation = saved[0].id, saved[1]
    conversation.add_user(question)
    result = run_turn(conversation, client, catalogue.lookup(settings.model), renderer, notices, journal)
    return {COMPLETE: 0, INTERRUPTED: 130}.get(result.status, 1)


class _ArgumentCompleter(Completer):
    """Tab completion of commands and their arguments, each with a one-line description."""

    def __init__(self, repl: Repl) -> None:
        self.repl = repl
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        word, space, argument = text.partition(" ")
        if word == "/file" and space and " " not in argument:
            yield from self.paths.get_completions(Document(argument), complete_event)
            return
        candidates: dict[str, str]  # completion -> description
        if not space:
            candidates = {f"/{command.name}": command.help for command in commands.COMMANDS}
            argument = word
        elif word == "/model":
            catalogue = self.repl.catalogue
            names = {*catalogue.names(), *self.repl.server_models}
            candidates = {name: " · ".join(catalogue.lookup(name).facts()[:2]) for name in sorted(names)}
        elif word == "/set":
            candidates = {key: OPTION_BY_KEY[key].help for key in SAMPLING_KEYS}
        elif word == "/resume" and self.repl.store is not None:
            candidates = {str(row.id): row.title for row in self.repl.store.conversations()}
        else:
            return
        for candidate, description in candidates.items():
            if candidate.startswith(argument):
                yield Completion(candidate, start_position=-len(argument), display_meta=sanitize(description))


def _input_keys(repl: Repl) -> KeyBindings:
    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _other_enter(event: KeyPressEvent) -> None:
        """Alt-Enter: a new line, or in /multiline mode (where Enter adds lines) send."""
        if repl.multiline:
            event.current_buffer.validate_and_handle()
        else:
            event.current_buffer.insert_text("\n")

    return keys


def history_path(environ: Mapping[str, str]) -> Path:
    return app_dir(environ, "XDG_STATE_HOME") / "history"


def _file_history(path: Path) -> History:
    """Input history kept in a file that only its owner can read."""
    from prompt_toolkit.history import FileHistory

    os.close(open_private(path, os.O_WRONLY | os.O_APPEND))
    return FileHistory(str(path))


class Repl:
    """The interactive loop: read a line, run a command or a turn, repeat."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        store: Store | None = None,
        console: Console | None = None,
        examples: list[Turn] | None = None,
        plain: bool = False,
        debug: bool = False,
        prompt_io: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.client = ChatClient(settings)
        self.examples = examples or []
        self.conversation = Conversation(settings.system, examples=self.examples)
        self.tally = Tally()
        self.console = console or Console(color_system=None if plain else "auto")
        self.plain = plain
        self.notices = Notices(self.console, debug)
        self.store = store
        self.journal = TurnJournal(store, self.notices.warning)
        self.server_models: list[str] = []  # filled in the background from the server's /models
        self.pending = ""  # text for the next prompt: a failed message, an edited one
        self.attachments: list[str] = []  # files (/file) that go with the next message
        self.multiline = settings.multiline
        self.context_used: float | None = None  # share of the model's window the last turn took
        self.session: PromptSession[str] = PromptSession(
            PROMPT,
            key_bindings=_input_keys(self),
            multiline=Condition(lambda: self.multiline),
            history=self._history(settings.history),
            auto_suggest=AutoSuggestFromHistory(),
            enable_open_in_editor=True,
            enable_suspend=True,
            completer=_ArgumentCompleter(self),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar_text if settings.toolbar else None,
            prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
            **(prompt_io or {}),
        )

    @staticmethod
    def _history(keep: bool) -> History:
        """The input history: in a private file, or (`/history off`) for this session only."""
        return _file_history(history_path(os.environ)) if keep else InMemoryHistory()

    def keep_history(self, keep: bool) -> None:
        self.session.history = self._history(keep)
        self.session.default_buffer.history = self.session.history

    def show_toolbar(self, show: bool) -> None:
        self.settings.toolbar = show
        self.session.bottom_toolbar = self.toolbar_text if show else None

    def toolbar_text(self) -> str:
        """Model · mode · context used · session cost."""
        rules = self.catalogue.lookup(self.settings.model)
        mode = "completion" if self.client.uses_completions(rules) else "json" if self.settings.json else "chat"
        parts = [self.settings.model, mode]
        if self.context_used is not None:
            parts.append(f"context {self.context_used:.0%}")
        if self.tally.priced and (self.tally.prompt_tokens or self.tally.completion_tokens):
            parts.append(f"session {money_text(self.tally.cost)}")
        return sanitize(" · ".join(parts))

    def start_new_conversation(self) -> None:
        """A fresh conversation, saved as a new one once it has a message."""
        self.conversation = Conversation(self.settings.system, examples=self.examples)
        self.tally = Tally()
        self.journal = TurnJournal(self.store, self.notices.warning)

    def resume(self, conversation_id: int) -> bool:
        """Bring back a saved conversation and show its history; False if there is none."""
        saved = restore(self.store, conversation_id, self.examples) if self.store else None
        if saved is None:
            return False
        row, conversation = saved
        self.start_new_conversation()
        self.journal.conversation_id, self.conversation = row.id, conversation
        self.notices.note(f"resumed conversation {row.id}: {row.title}")
        for turn in self.conversation.turns:
            self.show_turn(turn)
        return True

    def load(self, conversation: Conversation) -> None:
        """Go on with an imported conversation; it is saved as a new one."""
        self.start_new_conversation()
        self.conversation = conversation
        conversation.examples = self.examples
        self.journal.adopt(conversation, self.settings.model)
        self.notices.note(f"loaded {len(conversation.turns)} messages")
        for turn in conversation.turns:
            self.show_turn(turn)

    def stop_saving(self) -> None:
        self.store = None
        self.journal.store = None

    def show_turn(self, turn: Turn) -> None:
        if turn.role == "user":
            self.console.print(Text(PROMPT + sanitize(turn.content), style="bold"), soft_wrap=True)
            return
        self.console.print()
        renderer = self._renderer()
        renderer.feed(turn.content)
        renderer.finish()
        if turn.status != COMPLETE:
            self.notices.note(f"({turn.status})")
        self.console.print()

    def show_info(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)

    def _warm_up(self) -> None:
        """Pay for the slow imports while the user is still typing."""
        try:
            self.client.warm_up()
            import io

            Console(file=io.StringIO()).print(markdown("# x\n\n```python\nx = 1\n```"))
            # a name with control characters is no name to offer
            self.server_models = [name for name in self.client.list_models() if sanitize(name) == name]
        except Exception:  # the model list is a convenience; a real request reports real problems
            pass

    def _renderer(self) -> Renderer:
        return PlainRenderer(self.console.file) if self.plain else MarkdownRenderer(self.console)

    def run(self, resume: int | None = None) -> int:
        """Read and answer until the user leaves; `resume` first brings back that saved conversation."""
        self.notices.note(
            f"chatrepl {__version__} · {self.settings.model} at {self.client.base_url} · /help for commands"
        )
        threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()
        if resume is not None:
            self.resume(resume)
        while True:
            try:
                line = self.session.prompt(default=self.pending)
            except KeyboardInterrupt:
                self.pending = ""
                continue
            except EOFError:
                return 0
            line = line.encode("utf-8", "replace").decode("utf-8")
            self.pending = ""
            if not line.strip():
                continue
            try:
                parsed = commands.parse(line)
            except commands.UnknownCommand as err:
                self.notices.error(str(err))
                self.pending = line
                continue
            if parsed is None:
                self.ask(line)
            elif not parsed[0].handler(self, parsed[1]):
                return 0

    def ask(self, text: str) -> None:
        """Send a message (with any attached files) and show the reply; if the request fails the
        text is offered again, and the files stay attached."""
        self.conversation.add_user("\n\n".join([*self.attachments, text]))
        if self.answer():
            self.attachments = []
        else:
            self.pending = text

    def copy_to_clipboard(self, text: str) -> bool:
        """Ask the terminal to put `text` on the clipboard (OSC 52, which works over ssh too)."""
        if not self.console.is_terminal:
            return False
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        self.console.file.write(f"\x1b]52;c;{encoded}\x07")
        self.console.file.flush()
        return True

    def answer(self, retry: bool = False) -> bool:
        """Answer the conversation's last message; `retry` replaces the saved reply to it.
        False when nothing came back."""
        self.console.print()
        rules = self.catalogue.lookup(self.settings.model)
        result = run_turn(
            self.conversation, self.client, rules, self._renderer(), self.notices, self.journal, retry=retry
        )
        if result.usage is not None:
            self.tally.add(result.usage, result.cost)
            self.notices.note(status_line(result.usage, result.cost, self.tally, rules))
            used = context_share(result.usage, rules)
            if used is not None:
                self.context_used = used
        self.console.print()
        return result.status != FAILED
