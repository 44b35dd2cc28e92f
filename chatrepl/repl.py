"""The prompt_toolkit loop: prompt, key bindings, completion and toolbar.

A line is a command (run with a narrow context) or a message (a turn of the session);
either runs while the terminal is `busy`, so a Ctrl-C stops it and comes back here.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import ThreadedCompleter
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import SimpleLexer
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.styles import Style

from chatrepl import __version__
from chatrepl.attachments import Pending
from chatrepl.completer import ArgumentCompleter
from chatrepl.models import money_text
from chatrepl.options import app_dir, open_private
from chatrepl.output import PROMPT, Output
from chatrepl.parameters import uses_completions
from chatrepl.providers import MissingKey, Provider, server_models
from chatrepl.sanitize import sanitize
from chatrepl.terminal import Interrupted

if TYPE_CHECKING:
    from prompt_toolkit.application import Application
    from prompt_toolkit.key_binding import KeyPressEvent

    from chatrepl.commands import Context
    from chatrepl.config import Settings
    from chatrepl.conversation import Turn
    from chatrepl.images import Image
    from chatrepl.models import Catalogue
    from chatrepl.session import ChatSession
    from chatrepl.store import Store


MODELS_TIMEOUT = 2.0  # seconds a provider has to list its models for Tab
PROMPT_STYLE = Style.from_dict({"marker": "ansicyan bold", "message": "bold"})  # as Output.user_line shows it


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


def _history(keep: bool) -> History:
    """The input history: in a file only its owner can read, or (`/history off`) for this session only."""
    if not keep:
        return InMemoryHistory()
    from prompt_toolkit.history import FileHistory

    class TextHistory(FileHistory):
        """Bytes typed that are not UTF-8 come in as lone surrogates, which a file cannot hold: replaced."""

        def store_string(self, string: str) -> None:
            super().store_string(string.encode("utf-8", "replace").decode("utf-8"))

    path = history_path(os.environ)
    os.close(open_private(path, os.O_WRONLY | os.O_APPEND))
    return TextHistory(str(path))


class Repl:
    """The interactive loop: read a line, run a command or a turn, repeat."""

    def __init__(
        self,
        session: ChatSession,
        output: Output,
        history: bool = True,
        toolbar: bool = True,
        multiline: bool = False,
        prompt_io: dict[str, Any] | None = None,
        attachments: Pending | None = None,
    ) -> None:
        self.session = session
        self.output = output
        self.terminal = output.terminal
        self.server_models: list[str] = []  # filled in the background from the server's /models
        self._provider_models: dict[str, list[str]] = {}  # each provider's, asked of it once
        self.pending = ""  # text for the next prompt: a failed message, an edited one
        self.attachments = attachments or Pending()  # files and images that go with the next message
        self.multiline = multiline
        self.shell_mode = False
        self.history_kept = history
        self.toolbar_shown = toolbar
        monochrome = output.plain or bool(os.environ.get("NO_COLOR"))
        self.prompt: PromptSession[str] = PromptSession(
            # What you type stays in scrollback marked, so your own questions are easy to find again.
            [("class:marker", PROMPT)],
            lexer=SimpleLexer("class:message"),
            style=PROMPT_STYLE,
            color_depth=ColorDepth.MONOCHROME if monochrome else None,
            key_bindings=_input_keys(self),
            multiline=Condition(lambda: self.multiline),
            history=_history(history),
            auto_suggest=AutoSuggestFromHistory(),
            enable_open_in_editor=True,
            enable_suspend=True,
            completer=ThreadedCompleter(ArgumentCompleter(self)),  # asking a provider never holds up typing
            complete_while_typing=False,
            bottom_toolbar=self.toolbar_text if toolbar else None,
            prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
            **(prompt_io or {}),
        )
        self._prompt_io = prompt_io or {}
        self._warming_up = False

    @functools.cached_property
    def context(self) -> Context:
        """What the commands work with; the command table is imported once the prompt is up."""
        from chatrepl.commands import Context

        return Context(self.session, self.output, self)

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        catalogue: Catalogue,
        store: Store | None,
        examples: list[Turn],
        output: Output,
        prompt_io: dict[str, Any] | None = None,
        attachments: Pending | None = None,
    ) -> Repl:
        """The REPL chatrepl runs: a session on the settings' server, the prompt as the settings say,
        and `attachments` (or none yet, within the settings' limits) for the first message."""
        from chatrepl.session import ChatSession

        session = ChatSession.from_settings(settings, catalogue, store, examples)
        attachments = attachments or Pending(settings.file_limit, settings.image_limit)
        return cls(session, output, settings.history, settings.toolbar, settings.multiline, prompt_io, attachments)

    def confirm(self, question: str) -> bool:
        """Ask at the prompt, y or n; anything but yes (Ctrl-C and Ctrl-D too) is no."""
        asking: PromptSession[str] = PromptSession(**self._prompt_io)
        try:
            answer = asking.prompt(f"{sanitize(question)} [y/N] ")
        except (KeyboardInterrupt, EOFError):
            return False
        return answer.strip().lower() in ("y", "yes")

    def keep_history(self, keep: bool) -> None:
        self.history_kept = keep
        self.prompt.history = self.prompt.default_buffer.history = _history(keep)

    def show_toolbar(self, show: bool) -> None:
        self.toolbar_shown = show
        self.prompt.bottom_toolbar = self.toolbar_text if show else None

    def toolbar_text(self) -> str:
        """Model · mode · context used · session cost · whether saving fails · what is attached."""
        session = self.session
        mode = (
            "completion"
            if uses_completions(session.params, session.rules)
            else "json"
            if session.params.json
            else "chat"
        )
        parts = [session.model, "shell" if self.shell_mode else mode]
        if session.context_used is not None:
            parts.append(f"context {session.context_used:.0%}")
        if session.tally.priced and (session.tally.prompt_tokens or session.tally.completion_tokens):
            parts.append(f"session {money_text(session.tally.cost)}")
        if session.writer is not None and session.writer.failing:
            parts.append("not saving (retrying)")
        if self.attachments.items:
            parts.append(f"attached: {self.attachments.describe()}")
        return sanitize(" · ".join(parts))

    def banner(self) -> str:
        """The line above the first prompt, sanitized: prompt_toolkit draws it, as rich is not loaded yet."""
        session = self.session
        server = session.connections.url(session.model)
        role = f" · role {session.role}" if session.role else ""
        return sanitize(f"chatrepl {__version__} · {session.model} at {server}{role} · /help for commands")

    def _start_warm_up(self, app: Application[str]) -> None:
        if not self._warming_up:
            self._warming_up = True
            threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        """Start the MCP servers, and pay for the slow imports while the user is still typing."""
        if self.session.toolbox is not None:
            self.session.toolbox.servers.start()
        try:
            self.session.client.warm_up()
            # the command table for the first line, the turn engine for the first message
            import chatrepl.commands
            import chatrepl.turn  # noqa: F401
            from chatrepl.render import warm_up

            warm_up()
            # a name with control characters is no name to offer
            self.server_models = [name for name in self.session.client.list_models() if sanitize(name) == name]
        except Exception:  # the model list is a convenience; a real request reports real problems
            pass

    def provider_models(self, provider: Provider) -> list[str]:
        """The provider's models: its configured list, or what its server lists (asked once, briefly)."""
        if provider.name not in self._provider_models:
            names: list[str] = list(provider.models)
            if not names:
                from chatrepl.client import ChatError

                try:
                    names = server_models(provider, self.session.connections.keys, MODELS_TIMEOUT)
                except (ChatError, MissingKey):
                    names = []
            self._provider_models[provider.name] = [name for name in names if sanitize(name) == name]
        return self._provider_models[provider.name]

    def _read_line(self) -> str:
        def end_prompt(code: int) -> None:
            app = self.prompt.app
            if app.is_running and app.loop is not None:
                # Raised inside the prompt's event loop it would be reported there, not end the prompt.
                def leave() -> None:
                    if app.future is not None and not app.future.done():  # a second signal changes nothing
                        app.exit(exception=SystemExit(code))

                app.loop.call_soon_threadsafe(leave)

        with self.terminal.prompting(end_prompt):
            return self.prompt.prompt(default=self.pending)

    def run(self, resume: int | None = None) -> int:
        """Read and answer until the user leaves; `resume` first brings back that saved conversation."""
        session = self.session
        self.output.banner(self.banner(), self.prompt.output)
        # Once the prompt is drawn, not before: the imports would otherwise hold it up.
        self.prompt.app.after_render += self._start_warm_up
        if resume is not None:
            from chatrepl.commands.sessions import resume as bring_back

            self._busy(lambda: bring_back(self.context, resume))
        with self.terminal.between_lines():
            while True:
                if self.terminal.exit_code is not None:  # asked to leave as the last line ended
                    raise SystemExit(self.terminal.exit_code)
                for report in session.reports():
                    self.output.warning(report)
                try:
                    line = self._read_line()
                except KeyboardInterrupt:
                    self.pending = ""
                    continue
                except EOFError:
                    return 0
                line = line.encode("utf-8", "replace").decode("utf-8")
                self.pending = ""
                if line.strip() and self._busy(functools.partial(self._handle, line)):
                    return 0

    def _busy(self, action: Any) -> Any:
        """Run `action` outside the prompt: a Ctrl-C stops it and brings the prompt back."""
        with self.terminal.busy():
            try:
                return action()
            except Interrupted:
                self.output.note("interrupted")
        return None

    def _handle(self, line: str) -> bool:
        """Run a line; True to leave."""
        from chatrepl import commands

        try:
            parsed = commands.parse(line)
        except (commands.UnknownCommand, commands.BadArgument) as err:
            self.output.error(str(err))
            self.pending = line
            return False
        if parsed is None and self.shell_mode:
            parsed = commands.parse(f"/shell {line}")
        if parsed is None:
            self.ask(line)
            return False
        outcome = commands.run(self.context, *parsed)
        if outcome.send is not None:
            self.ask(outcome.send)
        elif outcome.retry:
            self._turn(None)
        return outcome.quit

    def ask(self, text: str) -> None:
        """Send a message (with what is attached) and show the reply; if the request fails the
        text is offered again, and the attachments stay."""
        images = self.attachments.images()
        refusal = self.session.image_refusal() if images else None
        if refusal:
            self.output.error(f"{refusal} (/detach removes the images)")
            self.pending = text
        elif self._turn(self.attachments.message(text), images):
            self.attachments.items.clear()
        else:
            self.pending = text

    def _turn(self, message: str | None, images: tuple[Image, ...] = ()) -> bool:
        """Answer `message` with its images, or with None the last message again (/retry); False when
        nothing came back."""
        session, output = self.session, self.output
        json = session.params.json and not uses_completions(session.params, session.rules)
        output.blank()
        with self.terminal.no_echo():
            sink = output.reply_sink(json)
            if message is None:
                outcome = session.retry(sink, self.terminal)
            else:
                outcome = session.ask(message, sink, self.terminal, images)
        output.outcome(outcome, json)
        provider, _ = session.connections.split(session.model)
        output.status(outcome, session.session_cost(), session.context_used, session.model if provider else "")
        output.blank()
        if outcome.leave is not None:
            raise SystemExit(outcome.leave)
        return outcome.content is not None
