from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from openai_server import FakeOpenAI
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.cli import _closing
from chatrepl.config import Settings
from chatrepl.conversation import Turn
from chatrepl.models import Catalogue
from chatrepl.output import Output
from chatrepl.repl import Repl
from chatrepl.session import ChatSession
from chatrepl.store import Store
from chatrepl.terminal import Terminal

TEST_KEY = "sk-test-0123456789abcdef"


def installed_chatrepl() -> str:
    """The console script installed beside the interpreter running the tests."""
    return str(Path(sys.executable).parent / "chatrepl")


def spawn_chatrepl(env: dict[str, str], *args: str, width: int = 100, timeout: float = 15) -> pexpect.spawn:
    """The installed chatrepl in a pseudo-terminal of 30 rows, in the environment's home, as a
    person's terminal has it."""
    return pexpect.spawn(
        installed_chatrepl(),
        list(args),
        env={**env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"},
        cwd=env["HOME"],
        dimensions=(30, width),
        encoding="utf-8",
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the REPL writes by itself (input history, the database) goes to the test's own folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(server: FakeOpenAI) -> Settings:
    return Settings(api_key=TEST_KEY, base_url=server.url, model="test-model", timeout=5, retries=0)


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no chatrepl or OpenAI settings and a private home."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OPENAI_", "CHATREPL_", "XDG_")) and name != "NO_COLOR"
    }
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def cli_env(clean_env: dict[str, str], server: FakeOpenAI) -> dict[str, str]:
    return {**clean_env, "OPENAI_API_KEY": TEST_KEY, "OPENAI_BASE_URL": server.url, "CHATREPL_MODEL": "test-model"}


def make_session(settings: Settings, store: Store | None = None, examples: list[Turn] | None = None) -> ChatSession:
    catalogue = Catalogue(settings.models)
    return ChatSession.from_settings(settings, catalogue, store, examples or [])


def make_repl(
    settings: Settings,
    pipe: Any,
    console: Console,
    store: Store | None = None,
    examples: list[Turn] | None = None,
    plain: bool = False,
    debug: bool = False,
) -> Repl:
    """A REPL as chatrepl builds one, reading from a prompt_toolkit pipe and writing to `console`."""
    output = Output(console, Terminal(), plain=plain, debug=debug)
    prompt_io = {"input": pipe, "output": DummyOutput()}
    return Repl.for_settings(settings, Catalogue(settings.models), store, examples or [], output, prompt_io)


def drive(repl: Repl) -> int:
    """Run the REPL to its end, then wait for the journal as chatrepl does on its way out."""
    return _closing(repl.session, repl.output, repl.run)


def run_repl(
    settings: Settings,
    keys: str,
    plain: bool = False,
    debug: bool = False,
    store: Store | None = None,
    console: Console | None = None,
    examples: list[Turn] | None = None,
) -> tuple[Repl, str, int]:
    """Type `keys` into a REPL, then Ctrl-C (clears any restored text) and Ctrl-D.

    Returns the REPL, its output and its exit code.
    """
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text(keys + "\x03\x04")
        console = console or Console(file=out, width=80, color_system=None)
        repl = make_repl(settings, pipe, console, store, examples, plain, debug)
        code = drive(repl)
    return repl, (out.getvalue() or console.file.getvalue()), code
