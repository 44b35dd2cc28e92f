from __future__ import annotations

from pathlib import Path

import pytest

from chatrepl.config import ConfigError, load_settings
from chatrepl.options import DEFAULT_MODEL, DEFAULT_SYSTEM


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    settings = load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert (settings.api_key, settings.base_url, settings.model) == (None, None, DEFAULT_MODEL)
    assert settings.system == DEFAULT_SYSTEM
    assert settings.temperature is None and settings.max_tokens is None
    assert settings.sources == {}


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    write(
        tmp_path / "cfg" / "chatrepl" / "config.toml",
        'model = "from-config"\nsystem = "config system"\ntemperature = 0.1\nmax_tokens = 100\ntimeout = 9\n',
    )
    project = tmp_path / "project" / "sub"
    project.mkdir(parents=True)
    write(tmp_path / "project" / ".env", "CHATREPL_MODEL=from-dotenv\nCHATREPL_SYSTEM=dotenv system\n")
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "CHATREPL_SYSTEM": "env system", "CHATREPL_TEMPERATURE": "0.5"}
    settings = load_settings({"temperature": 1.5}, environ=environ, cwd=project)
    assert settings.timeout == 9 and settings.max_tokens == 100  # config file
    assert settings.model == "from-dotenv"  # .env, found in a parent directory, beats the config file
    assert settings.system == "env system"  # the environment beats .env
    assert settings.temperature == 1.5  # a flag beats everything
    assert settings.sources["model"] == f"CHATREPL_MODEL in {tmp_path / 'project' / '.env'}"
    assert settings.sources["system"] == "CHATREPL_SYSTEM in environment"
    assert settings.sources["temperature"] == "--temperature"


def test_dotenv_does_not_change_the_process_environment(tmp_path: Path) -> None:
    write(tmp_path / ".env", "OPENAI_API_KEY=sk-from-dotenv\n")
    environ: dict[str, str] = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert load_settings({}, environ=environ, cwd=tmp_path).api_key == "sk-from-dotenv"
    assert "OPENAI_API_KEY" not in environ


def test_key_is_stripped_of_whitespace_and_newlines(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "OPENAI_API_KEY": "  sk-abc\n"}
    settings = load_settings({}, environ=environ, cwd=tmp_path)
    assert settings.api_key == "sk-abc"
    blank = load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path), "OPENAI_API_KEY": " \n"}, cwd=tmp_path)
    assert blank.api_key is None


def test_the_example_env_file_as_it_is_changes_nothing(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    settings = load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.sources == {} and settings.model == DEFAULT_MODEL


def test_config_path_can_be_named_by_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere.toml", 'api_key = "sk-config"\nbase_url = "http://127.0.0.1:1/v1/"\n')
    settings = load_settings({}, environ={"CHATREPL_CONFIG": str(path)}, cwd=tmp_path)
    assert settings.api_key == "sk-config"
    assert settings.base_url == "http://127.0.0.1:1/v1"


def test_a_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, environ={"CHATREPL_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)


def test_every_repl_switch_can_be_set_in_the_config_file(tmp_path: Path) -> None:
    write(
        tmp_path / "chatrepl" / "config.toml",
        'markdown = false\nmultiline = true\nsave = false\ndb = "~/chats.db"\nhistory = false\ntoolbar = false\n'
        "idle_timeout = 5\nconnect_timeout = 2\nretries = 1\n",
    )
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    settings = load_settings({}, environ=environ, cwd=tmp_path)
    assert (settings.markdown, settings.multiline, settings.save) == (False, True, False)
    assert (settings.history, settings.toolbar) == (False, False)
    assert (settings.idle_timeout, settings.connect_timeout, settings.retries) == (5, 2, 1)
    assert settings.db == str(Path("~/chats.db").expanduser())


def test_bad_config_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "chatrepl" / "config.toml", 'model = "ok"\ntemperature = = 3\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert str(path) in str(caught.value) and "line 2" in str(caught.value)
    assert path.read_text() == 'model = "ok"\ntemperature = = 3\n'  # never reset


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("temperature = 3", "temperature must be between 0 and 2"),
        ('temperature = "hot"', "expected a number"),
        ("max_tokens = 0", "at least 1"),
        ("max_tokens = 1.5", "whole number"),
        ("timeout = -1", "more than 0"),
        ('base_url = "localhost:8080"', "http:// or https://"),
        ("model = 3", "expected text"),
    ],
)
def test_bad_values_in_config_name_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    write(tmp_path / "chatrepl" / "config.toml", toml + "\n")
    with pytest.raises(ConfigError, match=expected) as caught:
        load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert "config.toml key" in str(caught.value)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CHATREPL_MAX_TOKENS in environment: expected a whole number"):
        load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path), "CHATREPL_MAX_TOKENS": "lots"}, cwd=tmp_path)


def test_unknown_config_key_is_a_warning_not_a_reset(tmp_path: Path) -> None:
    write(tmp_path / "chatrepl" / "config.toml", 'modle = "typo"\nmodel = "kept"\n')
    settings = load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.model == "kept"
    assert any("'modle'" in warning for warning in settings.warnings)


def test_every_variable_read_is_classified_and_the_example_env_lists_what_a_dotenv_can_set() -> None:
    import re

    from chatrepl.options import OPTIONS
    from chatrepl.trust import PROCESS, VARIABLES

    root = Path(__file__).resolve().parent.parent
    listed = set(re.findall(r"^([A-Z_]+)=", (root / ".env.example").read_text(), re.MULTILINE))
    source = "".join(path.read_text() for path in (root / "chatrepl").rglob("*.py"))
    read = {option.env for option in OPTIONS} | set(
        re.findall(r"""(?:environ(?:\.get\(|\[)|app_dir\(environ, |\(")["']([A-Z][A-Z_]+_[A-Z]+)["']""", source)
    )
    assert read - set(VARIABLES) == set()  # a new variable is classified in trust.VARIABLES, or this fails
    assert listed == {name for name, kind in VARIABLES.items() if kind != PROCESS}


def test_a_bad_model_entry_is_reported_when_the_settings_are_loaded(tmp_path: Path) -> None:
    config = write(tmp_path / "chatrepl" / "config.toml", '[models."my-llama"]\ncontext = "8k"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert str(caught.value) == f"{config}: models.\"my-llama\".context: expected a whole number, got '8k'"


def trust_case(tmp_path: Path, dotenv: str, environ: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "clone"
    write(project / ".env", dotenv)
    return project, {
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        **(environ or {}),
    }


def test_a_dotenv_cannot_send_a_key_from_elsewhere_to_its_own_server(tmp_path: Path) -> None:
    project, environ = trust_case(
        tmp_path, "OPENAI_BASE_URL=http://collector.example/v1\n", {"OPENAI_API_KEY": "sk-mine"}
    )
    settings = load_settings({}, environ=environ, cwd=project)
    assert (settings.api_key, settings.base_url) == ("sk-mine", None)
    (warning,) = settings.warnings
    assert warning.startswith(f"{project / '.env'} sets OPENAI_BASE_URL=http://collector.example/v1: ignored, as it")
    assert "chatrepl --allow-env" in warning


def test_a_dotenv_choosing_a_config_file_cannot_redirect_the_key_either(tmp_path: Path) -> None:
    write(tmp_path / "theirs.toml", 'base_url = "http://collector.example/v1"\n')
    user = write(tmp_path / "cfg" / "chatrepl" / "config.toml", 'base_url = "http://127.0.0.1:9/v1"\n')
    project, environ = trust_case(
        tmp_path, f"CHATREPL_CONFIG={tmp_path / 'theirs.toml'}\n", {"OPENAI_API_KEY": "sk-mine"}
    )
    settings = load_settings({}, environ=environ, cwd=project)
    assert settings.base_url == "http://127.0.0.1:9/v1" and settings.sources["base_url"] == f"{user} key 'base_url'"


@pytest.mark.parametrize(
    "dotenv",
    [
        "OPENAI_API_KEY=sk-theirs\nOPENAI_BASE_URL=http://their.server/v1\n",  # their key with their server
        "OPENAI_BASE_URL=http://their.server/v1\n",  # no key to send anywhere
    ],
)
def test_a_dotenv_chooses_no_server_until_allowed_whatever_key_there_is(tmp_path: Path, dotenv: str) -> None:
    project, environ = trust_case(tmp_path, dotenv)
    settings = load_settings({}, environ=environ, cwd=project)
    assert settings.base_url is None and "OPENAI_BASE_URL=http://their.server/v1: ignored" in settings.warnings[0]
    assert settings.api_key == ("sk-theirs" if "sk-theirs" in dotenv else None)  # plain: taken


def test_what_the_environment_sets_itself_is_not_the_dotenvs_choice(tmp_path: Path) -> None:
    project, environ = trust_case(
        tmp_path,
        "OPENAI_BASE_URL=http://their.server/v1\n",
        {"OPENAI_API_KEY": "sk-mine", "OPENAI_BASE_URL": "http://mine/v1"},
    )
    settings = load_settings({}, environ=environ, cwd=project)
    assert settings.warnings == [] and settings.base_url == "http://mine/v1"


def test_an_allowed_dotenv_is_trusted_until_it_changes(tmp_path: Path) -> None:
    from chatrepl.trust import allow_dotenv

    project, environ = trust_case(tmp_path, "OPENAI_BASE_URL=http://their.server/v1\n", {"OPENAI_API_KEY": "sk-mine"})
    asked: list[str] = []

    def no(path: Path, redirect: str) -> bool:
        asked.append(f"{path}: {redirect}")
        return False

    assert load_settings({}, environ=environ, cwd=project, ask=no).base_url is None
    assert asked == [f"{project / '.env'}: OPENAI_BASE_URL=http://their.server/v1"]
    assert load_settings({}, environ=environ, cwd=project, ask=lambda path, redirect: True).base_url == (
        "http://their.server/v1"
    )
    assert load_settings({}, environ=environ, cwd=project).base_url == "http://their.server/v1"  # recorded
    write(project / ".env", "OPENAI_BASE_URL=http://another.server/v1\n")
    assert load_settings({}, environ=environ, cwd=project).base_url is None  # changed: allowed no more
    allow_dotenv(environ, project / ".env", {"OPENAI_BASE_URL": "http://another.server/v1"})
    assert load_settings({}, environ=environ, cwd=project).base_url == "http://another.server/v1"
    listed = (tmp_path / "state" / "chatrepl" / "allowed-env").stat().st_mode & 0o777
    assert listed == 0o600
