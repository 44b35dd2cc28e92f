"""Named providers: PROVIDER:MODEL chooses the server, each provider's key goes to its own base
URL only, built-in local servers, completion of prefixes and models, --providers."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_KEY, installed_chatrepl, run_repl
from openai_server import FakeOpenAI, Script

from chatrepl.config import ConfigError, Settings, load_settings
from chatrepl.models import money_text
from chatrepl.providers import BUILT_IN, check_entry, split_model

ONE_KEY, TWO_KEY = "one-key-0123456789abcdef", "two-key-0123456789abcdef"


@pytest.fixture
def second() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def write_config(home: Path, text: str) -> Path:
    path = home / ".config" / "chatrepl" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def two_providers(server: FakeOpenAI, second: FakeOpenAI) -> str:
    return (
        f'[providers.one]\nbase_url = "{server.url}"\napi_key_env = "ONE_KEY"\n\n'
        f'[providers.two]\nbase_url = "{second.url}"\napi_key_env = "TWO_KEY"\nmodels = ["m2", "m2-large"]\n'
    )


def provider_settings(tmp_path: Path, config: str, model: str, keys: dict[str, str]) -> Settings:
    home = tmp_path / "home"
    write_config(home, config)
    environ = {"XDG_CONFIG_HOME": str(home / ".config"), "OPENAI_API_KEY": TEST_KEY, **keys}
    return load_settings({"model": model, "retries": 0}, environ, cwd=tmp_path)


def test_a_prefix_names_a_provider_only_when_one_is_known() -> None:
    ollama = BUILT_IN["ollama"]
    assert split_model("ollama:qwen3:8b", BUILT_IN) == (ollama, "qwen3:8b")
    assert ollama.base_url == "http://127.0.0.1:11434/v1" and ollama.api_key_env is None
    assert split_model("qwen3:8b", BUILT_IN) == (None, "qwen3:8b")
    assert split_model("gpt-4.1", BUILT_IN) == (None, "gpt-4.1")
    assert split_model("ollama:", BUILT_IN) == (None, "ollama:")


def test_each_providers_key_goes_to_its_own_server_only(server: FakeOpenAI, second: FakeOpenAI, tmp_path: Path) -> None:
    default = FakeOpenAI().start()
    try:
        config = two_providers(server, second) + f'\n[providers.keyless]\nbase_url = "{default.url}"\n'
        settings = provider_settings(tmp_path, config, "one:m1", {"ONE_KEY": ONE_KEY, "TWO_KEY": TWO_KEY})
        settings.base_url = default.url  # the default server, for bare model names
        keys = "hello\r/model two:m2\rand you?\r/model plain-model\rand the default?\r/model keyless:k\rlast\r"
        repl, output, _ = run_repl(settings, keys)
        assert [request["model"] for request in server.requests] == ["m1"]
        assert [request["model"] for request in second.requests] == ["m2"]
        assert [request["model"] for request in default.requests] == ["plain-model", "k"]
        # The conversation went on across the switches.
        assert [m["content"] for m in default.requests[1]["messages"] if m["role"] == "user"][-2:] == [
            "and the default?",
            "last",
        ]
        assert set(server.authorizations) == {f"Bearer {ONE_KEY}"}
        assert set(second.authorizations) == {f"Bearer {TWO_KEY}"}
        assert default.authorizations[:2] == [f"Bearer {TEST_KEY}", ""]  # the keyless provider gets no key at all
        assert "model two:m2" in output and repl.session.model == "keyless:k"
    finally:
        default.stop()


def test_an_unset_key_variable_is_one_line_naming_it(server: FakeOpenAI, second: FakeOpenAI, tmp_path: Path) -> None:
    settings = provider_settings(tmp_path, two_providers(server, second), "test-model", {"ONE_KEY": ONE_KEY})
    settings.base_url = server.url
    repl, output, _ = run_repl(settings, "/model two:m2\r")
    assert "TWO_KEY is not set: it holds the key of provider two (the model stays test-model)" in output
    assert repl.session.model == "test-model"


def test_user_entries_override_the_built_in_ones(server: FakeOpenAI, tmp_path: Path) -> None:
    settings = provider_settings(tmp_path, f'[providers.ollama]\nbase_url = "{server.url}"\n', "ollama:qwen3", {})
    server.enqueue(Script(text="from the local server"))
    _, output, _ = run_repl(settings, "hi\r")
    assert "from the local server" in output
    assert server.requests[0]["model"] == "qwen3" and set(server.authorizations) == {""}  # not the OpenAI key


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('base_url = "ftp://x"', "providers.p.base_url: expected an http:// or https:// address"),
        ('base_url = "http://x"\napi_key = "sk-1"', "providers.p.api_key: unknown provider setting"),
        ('base_url = "http://x"\nmodels = "a"', "providers.p.models: expected a list, got 'a'"),
        ('base_url = "http://x"\napi_key_env = 3', "providers.p.api_key_env: expected text"),
    ],
)
def test_a_bad_provider_entry_is_named_when_the_settings_load(tmp_path: Path, entry: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        provider_settings(tmp_path, f"[providers.p]\n{entry}\n", "m", {})
    with pytest.raises(ValueError, match="a provider's name is"):
        check_entry("a b", {"base_url": "http://x"}, "config.toml")


def test_tab_offers_prefixes_then_the_providers_models(server: FakeOpenAI, second: FakeOpenAI, tmp_path: Path) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    settings = provider_settings(tmp_path, two_providers(server, second), "test-model", {"ONE_KEY": ONE_KEY})
    settings.base_url = server.url
    server.model_ids = ["served-a", "served-b", "bad-\x1b[2J"]
    repl, _, _ = run_repl(settings, "")
    assert repl.prompt.completer is not None

    def complete(text: str) -> list[str]:
        found = repl.prompt.completer.get_completions(Document(text), CompleteEvent(completion_requested=True))  # type: ignore[union-attr]
        return [completion.text for completion in found]

    assert {"one:", "two:", "ollama:", "vllm:"} <= set(complete("/model "))
    assert complete("/model one:") == ["one:served-a", "one:served-b"]  # asked of the server, control characters out
    assert complete("/model two:m2-") == ["two:m2-large"]  # its configured list; nothing asked
    assert complete("/model lmstudio:") == []  # nobody there: nothing, quickly
    requests = len(server.authorizations)
    complete("/model one:")
    assert len(server.authorizations) == requests  # asked once


def test_prices_per_provider_and_the_providers_model_shown(server: FakeOpenAI, tmp_path: Path) -> None:
    config = (
        f'[providers.one]\nbase_url = "{server.url}"\n\n'
        '[models."one:big"]\ninput_per_million = 1.0\noutput_per_million = 2.0\n'
    )
    settings = provider_settings(tmp_path, config, "one:big", {})
    server.enqueue(Script(text="priced"))
    repl, output, _ = run_repl(settings, "hi\r")
    cost = money_text((10 * 1.0 + len("priced") // 4 * 2.0) / 1e6)  # the server counts 10 in, len // 4 out
    assert repl.toolbar_text().startswith("one:big · chat")
    assert re.search(rf"^one:big · 10 in · 1 out · {re.escape(cost)} · ", output, re.MULTILINE)  # the status line
    assert repl.banner().startswith(f"chatrepl 0.1.0 · one:big at {server.url.rstrip('/')} · ")  # the provider's server


def test_providers_flag_lists_where_each_comes_from_and_whether_it_answers(
    server: FakeOpenAI, second: FakeOpenAI, clean_env: dict[str, str]
) -> None:
    home = Path(clean_env["HOME"])
    write_config(home, two_providers(server, second))
    env = {**clean_env, "ONE_KEY": ONE_KEY, "OPENAI_API_KEY": TEST_KEY, "OPENAI_BASE_URL": server.url}
    done = subprocess.run([installed_chatrepl(), "--providers"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert "ONE_KEY set" in rows["one"] and "yes (" in rows["one"] and "config.toml" in rows["one"]
    assert "TWO_KEY not set" in rows["two"] and "not asked (no key)" in rows["two"]
    assert "none needed" in rows["ollama"] and "built in" in rows["ollama"]
    assert rows["(default)"].split()[1] == server.url and "OPENAI_API_KEY set" in rows["(default)"]
    assert ONE_KEY not in done.stdout and TEST_KEY not in done.stdout


def test_a_provider_model_needs_no_openai_key_but_its_own(server: FakeOpenAI, clean_env: dict[str, str]) -> None:
    home = Path(clean_env["HOME"])
    write_config(home, f'[providers.one]\nbase_url = "{server.url}"\napi_key_env = "ONE_KEY"\n')
    server.enqueue(Script(text="no OpenAI key needed"))
    ask = [installed_chatrepl(), "-m", "one:m", "hello"]
    done = subprocess.run(ask, env={**clean_env, "ONE_KEY": ONE_KEY}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "no OpenAI key needed"
    missing = subprocess.run(ask, env=clean_env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "chatrepl: error: ONE_KEY is not set: it holds the key of provider one"


def test_an_azure_provider_sends_the_deployment_its_api_version_and_only_its_own_key(
    server: FakeOpenAI, clean_env: dict[str, str]
) -> None:
    home = Path(clean_env["HOME"])
    endpoint = server.url.removesuffix("/v1")
    write_config(home, f'[providers.az]\ntype = "azure"\nbase_url = "{endpoint}"\napi_version = "2024-10-21"\n')
    env = {**clean_env, "AZURE_OPENAI_API_KEY": ONE_KEY, "OPENAI_API_KEY": TEST_KEY}
    server.enqueue(Script(text="from Azure"))
    done = subprocess.run(
        [installed_chatrepl(), "-m", "az:my-gpt", "hello"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.strip() == "from Azure", done.stderr
    assert server.paths_seen == ["/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"]
    assert server.headers_seen[0]["api-key"] == ONE_KEY and server.authorizations == [""]
    assert TEST_KEY not in repr(server.headers_seen) + repr(server.requests)
    listed = subprocess.run([installed_chatrepl(), "--providers"], env=env, capture_output=True, text=True, timeout=30)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("az "))
    assert endpoint in row and "AZURE_OPENAI_API_KEY set" in row and "yes (1 models)" in row


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('type = "azure"\nbase_url = "https://x.openai.azure.com"', "providers.p.api_version: an Azure provider"),
        ('base_url = "http://x"\napi_version = "2024-10-21"', "providers.p.api_version: api_version is for type azure"),
        ('type = "anthropic"\nbase_url = "http://x"', 'providers.p.type: expected "openai" or "azure"'),
    ],
)
def test_a_bad_azure_entry_is_named(tmp_path: Path, entry: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        provider_settings(tmp_path, f"[providers.p]\n{entry}\n", "m", {})


def test_a_key_that_cannot_go_in_a_header_is_named_when_the_settings_load(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match=r"ONE_KEY in environment: the key holds '“' \(U\+201C\)"):
        config = '[providers.one]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "ONE_KEY"\n'
        provider_settings(tmp_path, config, "one:m", {"ONE_KEY": "“sk-pasted”"})
    done = subprocess.run(
        [installed_chatrepl(), "hello"],
        env={**clean_env, "OPENAI_API_KEY": "“sk-pasted-0123456789”"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("chatrepl: error: OPENAI_API_KEY in environment: the key holds '“'")
    assert "sk-pasted" not in done.stderr and len(done.stderr.splitlines()) == 1
