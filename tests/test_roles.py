"""Roles: from [roles.NAME] in config.toml and from roles/NAME.md files, taken on with --role,
/role and role = ..., applied from the next request, kept by new, saved and restored."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import installed_chatrepl, run_repl
from openai_server import FakeOpenAI, Script

from chatrepl.config import ConfigError, Settings, load_settings
from chatrepl.store import Store

CONFIG = """
[roles.coder]
system = "You write Python. Answer with code only."
model = "coder-model"
temperature = 0.1
examples = "{examples}"

[roles.poet]
system = "You answer in verse."
"""
WRITER = """+++
model = "writer-model"
max_tokens = 300
+++
You edit prose.
Keep the author's voice.
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder with two roles in config.toml, one in a file, and an examples file."""
    config = tmp_path / "config" / "chatrepl"
    (config / "roles").mkdir(parents=True)
    examples = tmp_path / "examples.json"
    examples.write_text(json.dumps([{"role": "user", "content": "add"}, {"role": "assistant", "content": "a + b"}]))
    (config / "config.toml").write_text(CONFIG.format(examples=examples))
    (config / "roles" / "writer.md").write_text(WRITER)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


def role_settings(home: Path, server: FakeOpenAI, model: str = "test-model") -> Settings:
    """Settings as the environment gives them (a flag given now would win over a role)."""
    environ = {
        "XDG_CONFIG_HOME": str(home / "config"),
        "OPENAI_API_KEY": "sk-test-0123456789abcdef",
        "OPENAI_BASE_URL": server.url,
        "CHATREPL_MODEL": model,
        "CHATREPL_RETRIES": "0",
    }
    return load_settings({}, environ, cwd=home)


def test_a_role_from_the_config_file_sets_system_model_parameters_and_examples(home: Path, server: FakeOpenAI) -> None:
    settings = role_settings(home, server)
    repl, output, _ = run_repl(settings, "/role coder\rsum two numbers\rnew\ragain\r")
    first, after_new = server.requests
    assert first["model"] == "coder-model" and first["temperature"] == 0.1
    assert first["messages"][:3] == [
        {"role": "system", "content": "You write Python. Answer with code only."},
        {"role": "user", "content": "add"},
        {"role": "assistant", "content": "a + b"},
    ]
    assert after_new["model"] == "coder-model" and after_new["messages"][:3] == first["messages"][:3]  # new keeps it
    assert "role coder · coder-model · system prompt: You write Python." in output
    assert repl.session.role == "coder"


def test_a_role_file_with_front_matter_and_tab_completion(home: Path, server: FakeOpenAI) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    settings = role_settings(home, server)
    (home / "config" / "chatrepl" / "roles" / "broken.md").write_text("+++\nmodel = \n")
    repl, output, _ = run_repl(settings, "/role\r/role writer\rfix this sentence\r/role broken\r/role nobody\r")
    assert "no role (roles: broken, coder, poet, writer)" in output
    (request,) = server.requests
    assert request["model"] == "writer-model" and request["max_tokens"] == 300
    assert request["messages"][0] == {"role": "system", "content": "You edit prose.\nKeep the author's voice."}
    assert "front matter opened with +++ is never closed" in output
    assert "no role 'nobody' (roles: broken, coder, poet, writer)" in output
    assert repl.prompt.completer is not None
    found = list(repl.prompt.completer.get_completions(Document("/role "), CompleteEvent(completion_requested=True)))
    described = {completion.text: completion.display_meta_text for completion in found}
    assert described["writer"] == "You edit prose." and described["poet"] == "You answer in verse."
    assert described["broken"].startswith("unusable: ")


def test_flags_given_now_win_over_the_role(home: Path, server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "XDG_CONFIG_HOME": str(home / "config")}
    done = subprocess.run(
        [installed_chatrepl(), "--role", "coder", "-t", "1.5", "hello"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert server.requests[0]["temperature"] == 1.5 and server.requests[0]["model"] == "coder-model"
    unknown = subprocess.run([installed_chatrepl(), "--role", "ghost", "hi"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "no role 'ghost'" in unknown.stderr and len(unknown.stderr.splitlines()) == 1
    from_env = subprocess.run(
        [installed_chatrepl(), "hi"], env={**env, "CHATREPL_ROLE": "poet"}, capture_output=True, text=True
    )
    assert from_env.returncode == 0 and server.requests[-1]["messages"][0]["content"] == "You answer in verse."


def test_the_role_is_saved_and_comes_back_with_the_conversation(home: Path, server: FakeOpenAI, tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    settings = role_settings(home, server)
    run_repl(settings, "/role poet\rwrite about rain\r", store=store)
    assert store.conversations()[0].role == "poet"
    repl, _, _ = run_repl(role_settings(home, server), "/resume 1\rmore\r", store=store)
    assert repl.session.role == "poet"
    assert server.requests[-1]["messages"][0]["content"] == "You answer in verse."
    assert " [poet] " in run_repl(settings, "/sessions\r", store=store)[1]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('model = "m"', "roles.r.system: a role needs its system prompt as text"),
        ('system = "s"\ntemperature = 9', "roles.r.temperature: temperature must be"),
        ('system = "s"\nbase_url = "http://elsewhere"', "roles.r.base_url: a role sets system, model"),
    ],
)
def test_a_bad_role_entry_is_named_when_the_settings_load(tmp_path: Path, entry: str, problem: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[roles.r]\n{entry}\n")
    with pytest.raises(ConfigError, match=problem):
        load_settings({}, {"CHATREPL_CONFIG": str(config)}, cwd=tmp_path)


def test_a_role_needs_its_models_provider_key(home: Path, server: FakeOpenAI) -> None:
    config = home / "config" / "chatrepl" / "config.toml"
    config.write_text(
        config.read_text()
        + f'\n[providers.far]\nbase_url = "{server.url}"\napi_key_env = "FAR_KEY"\n'
        + '\n[roles.remote]\nsystem = "s"\nmodel = "far:m"\n'
    )
    settings = role_settings(home, server)
    server.enqueue(Script(text="still here"))
    repl, output, _ = run_repl(settings, "/role remote\rhello\r")
    assert "FAR_KEY is not set: it holds the key of provider far" in output
    assert repl.session.role == "" and server.requests[0]["model"] == "test-model"


def test_a_role_files_text_cannot_steer_the_terminal(home: Path, server: FakeOpenAI) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    (home / "config" / "chatrepl" / "roles" / "evil.md").write_text("Be \x1b]0;owned\x07 sneaky\x1b[2J.\n")
    repl, output, _ = run_repl(role_settings(home, server), "/role evil\r")
    assert "\x1b]" not in output and "\x1b[2J" not in output and "^[]0;owned^G" in output
    assert repl.prompt.completer is not None
    found = list(repl.prompt.completer.get_completions(Document("/role ev"), CompleteEvent(completion_requested=True)))
    assert [completion.display_meta_text for completion in found] == ["Be ^[]0;owned^G sneaky^[[2J."]
