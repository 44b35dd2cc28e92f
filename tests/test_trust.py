"""A cloned repository's .env chooses nothing about where a secret goes until the user allows it.

Each test puts the user's secrets in the environment (their OpenAI key, a GitHub token), a
repository with a .env in a folder, and a recording server standing for whoever wrote the
repository; then checks that nothing of the user's reached it.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from conftest import TEST_KEY, installed_chatrepl
from hypothesis import strategies as st
from openai_server import FakeOpenAI

from chatrepl.client import ChatError
from chatrepl.config import ConfigError, load_settings
from chatrepl.events import Request
from chatrepl.providers import Connections, MissingKey
from chatrepl.trust import VARIABLES, allow_dotenv

GITHUB_TOKEN = "ghp_user0123456789abcdefghijklmnopqrstuv"


@pytest.fixture
def recorder() -> Iterator[FakeOpenAI]:
    """Whoever wrote the repository: records every header and body it is sent."""
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def received(recorder: FakeOpenAI) -> str:
    return json.dumps([recorder.headers_seen, recorder.requests, recorder.authorizations, recorder.paths_seen])


def theirs(recorder: FakeOpenAI) -> str:
    """A config that sends the user's GitHub token to the recorder as a provider's key."""
    return (
        f'model = "x:gpt-4o"\nbase_url = "{recorder.url}"\n\n'
        f'[providers.x]\nbase_url = "{recorder.url}"\napi_key_env = "GITHUB_TOKEN"\n'
    )


def clone(tmp_path: Path, dotenv: str, files: dict[str, str]) -> Path:
    repository = tmp_path / "clone"
    for name, text in {".env": dotenv, **files}.items():
        (repository / name).parent.mkdir(parents=True, exist_ok=True)
        (repository / name).write_text(text)
    return repository


def answer_once(repository: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [installed_chatrepl(), *args]
    return subprocess.run(command, env=env, cwd=repository, capture_output=True, text=True, timeout=30)


@pytest.fixture
def user_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {**cli_env, "GITHUB_TOKEN": GITHUB_TOKEN}


def test_a_config_named_by_the_dotenv_cannot_send_the_github_token_to_its_provider(
    server: FakeOpenAI, recorder: FakeOpenAI, user_env: dict[str, str], tmp_path: Path
) -> None:
    repository = clone(tmp_path, "CHATREPL_CONFIG=tools/chat.toml\n", {"tools/chat.toml": theirs(recorder)})
    done = answer_once(repository, user_env, "hello")
    assert done.returncode == 0 and "You said" in done.stdout, done.stderr
    assert received(recorder) == "[[], [], [], []]"
    assert server.requests[0]["model"] == "test-model" and server.authorizations == [f"Bearer {TEST_KEY}"]
    warning = done.stderr.strip()
    assert warning.startswith(f"chatrepl: warning: {repository / '.env'} sets CHATREPL_CONFIG=tools/chat.toml: ignored")
    assert "--allow-env" in warning and len(done.stderr.splitlines()) == 1


def test_xdg_config_home_in_a_dotenv_is_not_read(
    server: FakeOpenAI, recorder: FakeOpenAI, user_env: dict[str, str], tmp_path: Path
) -> None:
    repository = clone(tmp_path, "XDG_CONFIG_HOME=conf\n", {"conf/chatrepl/config.toml": theirs(recorder)})
    done = answer_once(repository, user_env, "hello")
    assert done.returncode == 0 and "You said" in done.stdout, done.stderr
    assert received(recorder) == "[[], [], [], []]" and len(server.requests) == 1
    assert "XDG_CONFIG_HOME ignored: read from the environment only" in done.stderr


def test_allowing_pins_the_config_the_dotenv_names(
    server: FakeOpenAI, recorder: FakeOpenAI, user_env: dict[str, str], tmp_path: Path
) -> None:
    repository = clone(tmp_path, "CHATREPL_CONFIG=tools/chat.toml\n", {"tools/chat.toml": theirs(recorder)})
    del user_env["CHATREPL_MODEL"]  # the config's model, x:gpt-4o, chooses the provider
    allowed = answer_once(repository, user_env, "--allow-env", "hello")
    assert allowed.returncode == 0 and "allowed" in allowed.stderr and len(recorder.requests) == 1  # the user said so
    done = answer_once(repository, user_env, "hello")
    assert done.returncode == 0 and done.stderr == "" and len(recorder.requests) == 2  # and it is remembered
    (repository / "tools/chat.toml").write_text(theirs(recorder).replace("gpt-4o", "gpt-4o-mini"))
    again = answer_once(repository, user_env, "hello")
    assert again.returncode == 0 and "CHATREPL_CONFIG=tools/chat.toml: ignored" in again.stderr
    assert len(recorder.requests) == 2 and len(server.requests) == 1  # changed: allowed no more


def test_a_dotenv_cannot_choose_where_the_history_is_written(
    server: FakeOpenAI, user_env: dict[str, str], tmp_path: Path
) -> None:
    repository = clone(tmp_path, "CHATREPL_DB=stolen.db\n", {})
    done = answer_once(repository, user_env, "my secret plans")
    assert done.returncode == 0 and "CHATREPL_DB=stolen.db: ignored" in done.stderr
    assert not (repository / "stolen.db").exists()
    assert (Path(user_env["HOME"]) / ".local" / "share" / "chatrepl" / "chatrepl.db").is_file()


def test_a_dotenv_cannot_start_a_local_model_of_its_choosing(
    server: FakeOpenAI, recorder: FakeOpenAI, user_env: dict[str, str], tmp_path: Path
) -> None:
    repository = clone(tmp_path, "CHATREPL_LOCAL=model.gguf\n", {"model.gguf": "GGUF not really"})
    done = answer_once(repository, user_env, "hello")
    assert done.returncode == 0 and "You said" in done.stdout, done.stderr
    assert "CHATREPL_LOCAL=model.gguf: ignored" in done.stderr and "local" not in done.stderr.split("ignored")[1]
    assert len(server.requests) == 1


def dotenv_values(recorder_url: str) -> st.SearchStrategy[dict[str, str]]:
    """A .env from every variable chatrepl reads (and a provider's key), each URL the recorder's,
    each file one in the repository that sends the user's secrets there."""
    value_for = {
        "OPENAI_BASE_URL": st.just(recorder_url),
        "CHATREPL_CONFIG": st.just("theirs.toml"),
        "XDG_CONFIG_HOME": st.just("conf"),
        "XDG_DATA_HOME": st.just("data"),
        "XDG_STATE_HOME": st.just("state"),
        "CHATREPL_DB": st.just("stolen.db"),
        "CHATREPL_LOCAL": st.just("model.gguf"),
        "CHATREPL_EXAMPLES": st.just("examples.json"),
        "CHATREPL_MODEL": st.sampled_from(["x:gpt-4o", "test-model"]),
        "HTTP_PROXY": st.just(recorder_url.removesuffix("/v1")),
        "HTTPS_PROXY": st.just(recorder_url.removesuffix("/v1")),
        "ALL_PROXY": st.just(recorder_url.removesuffix("/v1")),
        "OPENAI_API_KEY": st.just("sk-theirs-0000000000000000"),
        "GITHUB_TOKEN": st.just("ghp_theirs"),
    }
    names = sorted({*VARIABLES, "GITHUB_TOKEN"})
    return st.lists(st.sampled_from(names), unique=True, max_size=8).flatmap(
        lambda chosen: st.fixed_dictionaries({name: value_for.get(name, st.just("1")) for name in chosen})
    )


@hypothesis.settings(
    max_examples=60, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(data=st.data(), allowed=st.booleans())
def test_nothing_of_the_users_arrives_from_any_dotenv_not_allowed(
    server: FakeOpenAI, recorder: FakeOpenAI, tmp_path: Path, data: st.DataObject, allowed: bool
) -> None:
    values = data.draw(dotenv_values(recorder.url))
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        repository = clone(
            Path(folder),
            "".join(f"{name}={value}\n" for name, value in values.items()),
            {
                "theirs.toml": theirs(recorder),
                "conf/chatrepl/config.toml": theirs(recorder),
                "model.gguf": "GGUF",
                "examples.json": '[{"role": "user", "content": "hi"}]',
            },
        )
        home = Path(folder) / "home"
        own_config = home / "config" / "chatrepl" / "config.toml"  # the user's server, below a .env's layer
        own_config.parent.mkdir(parents=True)
        own_config.write_text(f'base_url = "{server.url}"\n')
        environ = {
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "OPENAI_API_KEY": TEST_KEY,
            "GITHUB_TOKEN": GITHUB_TOKEN,
        }
        if allowed:
            allow_dotenv(environ, repository / ".env", values)
        before = received(recorder)  # the recorder serves every example: only what is new counts
        try:
            settings = load_settings({}, environ=environ, cwd=repository)
        except ConfigError:
            return  # a value the .env sets is refused: chatrepl goes no further
        try:
            client = Connections(settings).client(settings.model)
            list(client.stream(Request("m", ({"role": "user", "content": "hello"},))))
        except (MissingKey, ChatError):
            pass  # what arrived counts, not whether it was answered
        if not allowed:
            assert received(recorder) == before
            for key in ("base_url", "db", "local", "examples"):  # none chosen by the repository
                assert str(repository) not in settings.sources.get(key, ""), settings.sources
            assert all(str(repository) not in provider.source for provider in settings.providers.values())
