"""Signals, termios, echo and suspend.

Every signal becomes a request: the handlers only take note, and the code that owns
the screen acts on the note between two writes (`checkpoint`), never in the middle of
one.  Ctrl-C (SIGINT) asks to stop what is going on and go back to the prompt; SIGTERM
and SIGHUP ask to leave (the reply so far is saved first); Ctrl-Z (SIGTSTP) asks to
hand the terminal back to the shell, clean, until `fg`.

While prompt_toolkit reads a line it owns the keys (Ctrl-C and Ctrl-Z arrive as keys
there, not as signals), so the requests are taken only while chatrepl is `busy`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

try:
    import termios
except ImportError:  # Windows: no termios, no job control
    termios = None  # type: ignore[assignment]

_LEAVING_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
_SIGTSTP = getattr(signal, "SIGTSTP", None)
POLL = 0.05  # seconds between looks at the requests while waiting


class Interrupted(Exception):
    """Ctrl-C was pressed: what is going on stops, and chatrepl goes back to the prompt."""


class Terminal:
    """The process's signals and the terminal's input settings."""

    def __init__(self) -> None:
        self.interrupt_requested = False
        self.exit_code: int | None = None  # 128 + the signal that asked chatrepl to leave
        self.suspend_requested = False
        self._busy = False
        self._end_prompt: Callable[[int], None] | None = None
        self._echo_settings: tuple[list[Any], list[Any]] | None = None  # (with echo, without) while silenced
        self._wake: Callable[[], None] = lambda: None  # called by a handler: whoever waits, look now
        self._waiting = False  # something waits that acts on the requests (a reply streaming)

    def install(self) -> None:
        """Take SIGTERM and SIGHUP for good; Ctrl-C and Ctrl-Z are taken while `busy`."""
        for number in _LEAVING_SIGNALS:
            signal.signal(number, self._on_leave)

    def _on_leave(self, number: int, frame: object) -> None:
        self.exit_code = 128 + number
        if self._end_prompt is not None:
            self._end_prompt(self.exit_code)
        elif self._waiting:  # a reply streams: it is saved, then chatrepl leaves at the next checkpoint
            self._wake()
        else:  # starting up, or a command (an editor, say): leave now, the usual way
            raise SystemExit(self.exit_code)

    def _on_interrupt(self, number: int, frame: object) -> None:
        self.interrupt_requested = True
        self._wake()

    def _on_suspend(self, number: int, frame: object) -> None:
        self.suspend_requested = True
        self._wake()

    @contextlib.contextmanager
    def waking(self, wake: Callable[[], None]) -> Iterator[None]:
        """While something waits: a request calls `wake` (from the signal handler: it must be reentrant)."""
        self._wake, self._waiting = wake, True
        try:
            yield
        finally:
            self._wake, self._waiting = (lambda: None), False

    @contextlib.contextmanager
    def prompting(self, end_prompt: Callable[[int], None]) -> Iterator[None]:
        """While a line is read: a request to leave ends the prompt through `end_prompt`."""
        self._end_prompt = end_prompt
        try:
            yield
        finally:
            self._end_prompt = None

    @contextlib.contextmanager
    def between_lines(self) -> Iterator[None]:
        """While the REPL runs: a Ctrl-C between the prompt and what the line starts is only noted (and
        forgotten as the line starts); it never ends chatrepl, which only Ctrl-D and quit do."""
        with _handling(self._on_interrupt, None):
            yield

    @contextlib.contextmanager
    def busy(self) -> Iterator[Terminal]:
        """Outside the prompt: Ctrl-C and Ctrl-Z become requests (a Ctrl-C from before is forgotten)."""
        self.interrupt_requested = self.suspend_requested = False
        with _handling(self._on_interrupt, self._on_suspend):
            self._busy = True
            try:
                yield self
            finally:
                self._busy = False

    @contextlib.contextmanager
    def handed_over(self) -> Iterator[None]:
        """While another program (an editor) owns the terminal: its keys are its own, and Ctrl-Z
        stops chatrepl with it, as the shell expects of a job."""
        with _handling(signal.SIG_IGN, signal.SIG_DFL):
            yield

    def checkpoint(self, pause: Callable[[], None] = lambda: None) -> None:
        """Act on the requests: suspend (after `pause` takes back what is drawn), then raise
        SystemExit for a request to leave or Interrupted for a Ctrl-C."""
        if self.suspend_requested:
            self.suspend_requested = False
            self.suspend(pause)
        if self.exit_code is not None:
            raise SystemExit(self.exit_code)
        if self.interrupt_requested:
            self.interrupt_requested = False
            raise Interrupted

    def suspend(self, pause: Callable[[], None]) -> None:
        """Stop chatrepl until `fg`, with the terminal as the shell expects it."""
        if _SIGTSTP is None or not _main_thread():
            return
        pause()
        silenced = self._echo_settings
        if silenced is not None:
            _set_input_settings(silenced[0])
        previous = signal.signal(_SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), _SIGTSTP)  # stopped here until `fg`
        signal.signal(_SIGTSTP, previous)
        if silenced is not None:
            _set_input_settings(silenced[1])

    def wait(self, seconds: float, tick: Callable[[float], None] = lambda left: None) -> None:
        """Sleep, acting on the requests meanwhile; `tick` gets the seconds left, about once a second."""
        deadline = time.monotonic() + seconds
        shown = None
        while (left := deadline - time.monotonic()) > 0:
            self.checkpoint()
            if shown is None or shown - left >= 1:
                shown = left
                tick(left)
            time.sleep(min(POLL, left))
        self.checkpoint()

    def read_key(self, keys: str) -> str:
        """One of `keys` typed on the terminal (other keys are passed over), acting on the requests
        while it waits: a Ctrl-C raises Interrupted."""
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if termios is not None else None
        if saved is not None:
            single = termios.tcgetattr(fd)
            single[3] &= ~(termios.ICANON | termios.ECHO)
            single[6][termios.VMIN], single[6][termios.VTIME] = 1, 0
            _set_input_settings(single)
        try:
            while True:
                self.checkpoint()
                if select.select([fd], [], [], POLL)[0]:
                    key = os.read(fd, 1).decode("ascii", "ignore").lower()
                    if key and key in keys:
                        return key
        finally:
            if saved is not None:
                _set_input_settings(saved)

    @contextlib.contextmanager
    def no_echo(self) -> Iterator[None]:
        """Keys typed while a reply streams are not echoed into it (nor is ^C); they wait for the prompt."""
        settings = self._echo_settings = _input_settings()
        if settings is not None:
            _set_input_settings(settings[1])
        try:
            yield
        finally:
            self._echo_settings = None
            if settings is not None:
                _set_input_settings(settings[0])


@contextlib.contextmanager
def _handling(on_interrupt: Any, on_suspend: Any) -> Iterator[None]:
    """SIGINT and SIGTSTP (unless None) handled so for a while (only the main thread can set handlers)."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, on_interrupt)
    stop = _SIGTSTP is not None and on_suspend is not None
    previous_stop = signal.signal(_SIGTSTP, on_suspend) if stop else None
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if stop:
            signal.signal(_SIGTSTP, previous_stop)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _input_settings() -> tuple[list[Any], list[Any]] | None:
    """The terminal's input settings now, and the same without echo; None when stdin is no terminal."""
    if termios is None or not sys.stdin.isatty():
        return None
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
    return saved, quiet


def _set_input_settings(settings: list[Any]) -> None:
    if termios is not None:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, settings)
