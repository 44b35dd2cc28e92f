"""The installed `chatrepl` command in one-shot and pipe modes, as a subprocess."""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_KEY, installed_chatrepl
from openai_server import LONG_REPLY, FakeOpenAI, Script

from chatrepl import __version__
from chatrepl.options import tomllib


def chatrepl(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_chatrepl(), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=env["HOME"],
        timeout=30,
    )


def test_one_shot_prints_the_raw_reply(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    server.enqueue(Script(text="# Title\n\n**bold** 你好"))
    result = chatrepl(cli_env, "what", "is", "this?", stdin="")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "# Title\n\n**bold** 你好\n"
    assert result.stderr == ""
    assert server.requests[0]["messages"][-1] == {"role": "user", "content": "what is this?"}


def test_stdin_is_joined_after_the_prompt(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    result = chatrepl(cli_env, "summarize this", stdin="line one\nline two\n")
    assert result.returncode == 0, result.stderr
    assert server.requests[0]["messages"][-1]["content"] == "summarize this\n\nline one\nline two"


def test_stdin_alone_is_the_question(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    chatrepl(cli_env, stdin="just a question\n")
    assert server.requests[0]["messages"][-1]["content"] == "just a question"


def test_invalid_utf8_on_stdin_is_replaced(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [installed_chatrepl(), "what is"], input=b"caf\xe9 \xff", capture_output=True, env=cli_env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert server.requests[0]["messages"][-1]["content"] == "what is\n\ncaf\ufffd \ufffd"


def test_empty_stdin_is_refused(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    result = chatrepl(cli_env, stdin="  \n")
    assert result.returncode == 2 and "standard input was empty" in result.stderr
    assert server.requests == []


def test_api_failure_exits_non_zero_with_one_line_on_stderr(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    server.enqueue(Script(status=401, error_message="Incorrect API key provided"))
    result = chatrepl(cli_env, "hi", stdin="")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: authentication failed (401): Incorrect API key provided · check your API key (OPENAI_API_KEY)"
    ]


def test_dead_server_names_the_base_url(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    result = chatrepl(env, "hi", stdin="")
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:9/v1" in result.stderr and "Traceback" not in result.stderr


def test_dropped_stream_prints_the_partial_and_fails(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    server.enqueue(Script(text="abcdefgh", chunk_size=2, drop_after=3))
    result = chatrepl(cli_env, "hi", stdin="")
    assert result.returncode == 1
    assert result.stdout == "abcd\n"
    assert "connection dropped mid-reply" in result.stderr


def test_escape_sequences_from_the_model_are_made_visible(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    server.enqueue(Script(text="a\x1b]0;pwned\x07b\x1b[2Jc\u202ed\x9bx"))
    result = chatrepl(cli_env, "hi", stdin="")
    assert result.stdout == "a^[]0;pwned^Gb^[[2Jc<U+202E>d<U+009B>x\n"


def test_output_into_a_closed_pipe_ends_quietly(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    server.enqueue(Script(text=LONG_REPLY * 20, chunk_size=64))
    result = subprocess.run(
        f"'{installed_chatrepl()}' long | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=cli_env,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert result.stdout == "# A long answer\n"
    assert result.stderr == ""


def test_no_key_explains_the_three_ways_to_set_it(clean_env: dict[str, str]) -> None:
    result = chatrepl({**clean_env, "CHATREPL_LOCAL": "false"}, "hi", stdin="")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    for way in ("OPENAI_API_KEY", ".env", "config.toml", "OPENAI_BASE_URL", "pip install 'chatrepl[local]'"):
        assert way in message


def test_key_from_dotenv_in_a_parent_directory(server: FakeOpenAI, clean_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={TEST_KEY}\nOPENAI_BASE_URL={server.url}\n")
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    result = subprocess.run(
        [installed_chatrepl(), "--allow-env", "hi"], capture_output=True, text=True, env=clean_env, cwd=work, timeout=30
    )
    assert result.returncode == 0, result.stderr  # its base URL once the file is allowed; its key in any case
    assert server.headers_seen[0]["authorization"] == f"Bearer {TEST_KEY}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "5"], "temperature must be between 0 and 2, got 5"),
        (["--max-tokens", "many"], "expected a whole number"),
        (["--base-url", "localhost"], "http:// or https://"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_get_a_clear_error(cli_env: dict[str, str], args: list[str], message: str) -> None:
    result = chatrepl(cli_env, *args, "hi", stdin="")
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1  # one line, not the whole usage


def test_bad_config_file_is_named_with_its_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('model = "x"\ntemperature = \n')
    result = chatrepl({**cli_env, "CHATREPL_CONFIG": str(config)}, "hi", stdin="")
    assert result.returncode == 2
    assert str(config) in result.stderr and "line 2" in result.stderr


def test_a_bad_model_entry_stops_chatrepl_before_anything_is_sent(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[models."test-model"]\ncontext = "8k"\n')
    result = chatrepl({**cli_env, "CHATREPL_CONFIG": str(config)}, "hi", stdin="")
    assert result.returncode == 2 and server.requests == []
    assert result.stderr == (
        f"chatrepl: error: {config}: models.\"test-model\".context: expected a whole number, got '8k'\n"
    )


def test_flags_reach_the_request(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    flags = ["-m", "other-model", "-s", "be terse", "-t", "0.2", "--max-tokens", "64", "--top-p", "0.5", "--seed", "7"]
    result = chatrepl(cli_env, *flags, "--stop", "END,FIN", "hi", stdin="")
    assert result.returncode == 0, result.stderr
    request = server.requests[0]
    assert (request["model"], request["temperature"], request["max_tokens"]) == ("other-model", 0.2, 64)
    assert (request["top_p"], request["seed"], request["stop"]) == (0.5, 7, ["END", "FIN"])
    assert request["messages"][0] == {"role": "system", "content": "be terse"}


def version_lines() -> list[str]:
    """What --version says: chatrepl's version, Python's, and the versions of the libraries installed."""
    from importlib import metadata

    libraries = [f"{name} {metadata.version(name)}" for name in ("openai", "prompt_toolkit", "rich")]
    return [f"chatrepl {__version__}", f"Python {platform.python_version()}", *libraries]


def test_version_and_help(cli_env: dict[str, str]) -> None:
    shown = chatrepl(cli_env, "--version").stdout.splitlines()
    assert shown[0] == f"chatrepl {__version__}" and shown[1].startswith(f"Python {platform.python_version()} (")
    assert [shown[0], shown[1].split(" (")[0], *shown[2:]] == version_lines()
    help_text = chatrepl(cli_env, "--help").stdout
    for flag in (
        "--model",
        "--system",
        "--temperature",
        "--max-tokens",
        "--base-url",
        "--timeout",
        "--plain",
        "--debug",
    ):
        assert flag in help_text
    assert "examples:" in help_text


@pytest.mark.skipif(
    not os.environ.get("CHATREPL_TEST_INSTALLED"), reason="only where CI runs the suite against the installed wheel"
)
def test_the_package_tested_is_the_one_installed() -> None:
    import chatrepl

    assert Path(chatrepl.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), chatrepl.__file__


def test_python_dash_m_works(cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatrepl", "--version"], capture_output=True, text=True, env=cli_env, timeout=30
    )
    assert result.stdout.splitlines()[0] == f"chatrepl {__version__}" and len(result.stdout.splitlines()) == 5


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("examples.json", '[{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]'),
        (
            "examples.toml",
            '[[messages]]\nrole = "user"\ncontent = "2+2"\n[[messages]]\nrole = "assistant"\ncontent = "4"\n',
        ),
    ],
)
def test_examples_file_follows_the_system_prompt(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path, name: str, content: str
) -> None:
    examples = tmp_path / name
    examples.write_text(content)
    result = chatrepl(cli_env, "--examples", str(examples), "--json", "3+3", stdin="")
    assert result.returncode == 0, result.stderr
    messages = server.requests[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user", "assistant", "user"]
    assert messages[2:4] == [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]
    assert server.requests[0]["response_format"] == {"type": "json_object"}


def test_a_bad_examples_file_is_named(cli_env: dict[str, str], tmp_path: Path) -> None:
    examples = tmp_path / "examples.json"
    examples.write_text('[{"role": "robot", "content": "x"}]')
    result = chatrepl(cli_env, "--examples", str(examples), "hi", stdin="")
    assert result.returncode == 2
    assert f"cannot use the examples file {examples}: example 1 needs a role" in result.stderr


def test_print_config_shows_values_and_sources_with_the_key_masked(cli_env: dict[str, str], tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('model = "from-file"\ntemperature = 0.4\n')
    env = {**cli_env, "CHATREPL_CONFIG": str(config_file)}
    result = chatrepl(env, "--print-config", "--max-tokens", "77", "--plain", stdin="")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert 'api_key = "sk-...cdef"  # OPENAI_API_KEY in environment' in lines
    assert TEST_KEY not in result.stdout
    assert 'model = "test-model"  # CHATREPL_MODEL in environment' in lines
    assert f"temperature = 0.4  # {config_file} key 'temperature'" in lines
    assert "max_tokens = 77  # --max-tokens" in lines
    assert "timeout = 60.0  # default" in lines
    assert "markdown = false  # --plain" in lines
    assert "# seed: not set (default)" in lines
    # What it prints is a config file that sets the same values.
    config_file.write_text(result.stdout.replace("sk-...cdef", TEST_KEY))
    again = chatrepl({**env, "CHATREPL_MODEL": ""}, "--print-config", stdin="")
    assert again.returncode == 0, again.stderr

    def values(output: str) -> list[str]:
        return [line.split("  # ")[0] for line in output.splitlines() if not line.startswith("#")]

    assert values(again.stdout) == values(result.stdout)
    assert "  # CHATREPL_MODEL" not in again.stdout  # the values now come from the file


def test_local_with_a_file_that_is_no_model_is_an_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    result = chatrepl(cli_env, "--local", str(notes), "hi", stdin="")
    assert (result.returncode, result.stderr) == (2, f"chatrepl: error: {notes} is not a GGUF model file\n")
    missing = tmp_path / "missing.gguf"
    result = chatrepl(cli_env, "--local", str(missing), stdin="")
    assert (result.returncode, result.stderr) == (2, f"chatrepl: error: no model file at {missing}\n")


def test_print_config_escapes_what_could_steer_the_terminal(cli_env: dict[str, str]) -> None:
    hostile = "\x1b]0;owned\x07 \x9b2J \u202eevil\x7f"
    result = chatrepl({**cli_env, "CHATREPL_SYSTEM": hostile}, "--print-config", stdin="")
    assert result.returncode == 0, result.stderr
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", result.stdout)
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("system = ")]
    assert tomllib.loads(line.split("  # ")[0])["system"] == hostile  # still TOML for the same value


def test_the_key_is_masked_even_in_debug_tracebacks(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    server.enqueue(Script(status=500, error_message=f"upstream said: bad key {TEST_KEY}"))
    result = chatrepl({**cli_env, "CHATREPL_RETRIES": "0"}, "--debug", "hi", stdin="")
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert TEST_KEY not in result.stderr + result.stdout and "sk-...cdef" in result.stderr


def test_a_password_in_the_base_url_is_never_shown(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "OPENAI_BASE_URL": "http://me:hunter2hunter2@127.0.0.1:9/v1"}
    shown = chatrepl(env, "--print-config", stdin="")
    failed = chatrepl(env, "--debug", "hi", stdin="")
    for result in (shown, failed):
        assert "hunter2" not in result.stdout + result.stderr
    assert 'base_url = "http://me:***@127.0.0.1:9/v1"' in shown.stdout
    assert "cannot reach http://me:***@127.0.0.1:9/v1" in failed.stderr


def test_a_password_in_a_providers_url_is_never_shown(cli_env: dict[str, str]) -> None:
    config = Path(cli_env["HOME"]) / ".config" / "chatrepl" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[providers.p]\nbase_url = "http://me:sesame-0123@127.0.0.1:9/v1"\n')
    shown = chatrepl(cli_env, "--print-config", stdin="")
    listed = chatrepl(cli_env, "--providers", stdin="")
    failed = chatrepl({**cli_env, "CHATREPL_RETRIES": "0"}, "-m", "p:m", "hi", stdin="")
    for result in (shown, listed, failed):
        assert "sesame-0123" not in result.stdout + result.stderr
    assert "http://me:***@127.0.0.1:9/v1" in shown.stdout + listed.stdout and "me:***@" in failed.stderr


def bash_completes(cli_env: dict[str, str], *words: str) -> list[str]:
    """What bash offers for the last of `words`, with chatrepl's completion script loaded as the README says."""
    line = " ".join(shlex.quote(word) for word in words)
    program = (
        f'eval "$({shlex.quote(installed_chatrepl())} --completion-script bash)"\n'
        f"COMP_WORDS=(chatrepl {line}); COMP_CWORD={len(words)}\n"
        '_chatrepl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "--norc", "-c", program], env=cli_env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.split()


def test_bash_completes_flags_and_their_values(cli_env: dict[str, str]) -> None:
    assert bash_completes(cli_env, "--mod") == ["--model"]
    assert bash_completes(cli_env, "--ima") == ["--image"]
    assert bash_completes(cli_env, "--thinking", "s") == ["show"]
    assert bash_completes(cli_env, "hello", "--reasoning-effort", "") == ["minimal", "low", "medium", "high"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_flag_and_parse(shell: str, cli_env: dict[str, str]) -> None:
    from chatrepl.cli import build_parser

    script = chatrepl(cli_env, "--completion-script", shell).stdout
    flags = [name for action in build_parser()._actions for name in action.option_strings if name.startswith("--")]
    if shell == "fish":
        assert all(f" -l {flag[2:]} " in script for flag in flags)
    else:
        assert all(f"{flag}[" in script or f",{flag}}}" in script for flag in flags)
        assert script.startswith("#compdef chatrepl\n")
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here to parse the script")
    checked = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_the_readme_flag_table_and_help_list_the_same_flags(cli_env: dict[str, str]) -> None:
    from chatrepl.cli import build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("| flag | meaning |", 1)[1].split("\n\n", 1)[0]
    spans = [row.split("|")[1] for row in table.strip().splitlines()[1:]]  # the first column of each row
    documented = {flag for span in spans for flag in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", span)}
    flags = {name for action in build_parser()._actions for name in action.option_strings}
    assert documented == flags, f"only in README: {documented - flags}; only in --help: {flags - documented}"
    help_text = chatrepl(cli_env, "--help").stdout
    assert all(flag in help_text for flag in flags)


def test_a_debug_traceback_is_sanitized_and_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatrepl import cli
    from chatrepl.sanitize import keep_secret

    keep_secret("sk-debug-secret-0123456789", "sk-...6789")

    def broken(argv: object, terminal: object) -> int:
        raise RuntimeError("\x1b]0;owned\x07 key sk-debug-secret-0123456789")

    monkeypatch.setattr(cli, "run", broken)
    assert cli.main(["--debug"]) == 1
    shown = capsys.readouterr().err
    assert "Traceback (most recent call last)" in shown and "RuntimeError" in shown
    assert "\x1b" not in shown and "\x07" not in shown and "sk-debug-secret" not in shown and "sk-...6789" in shown
    assert shown.endswith("chatrepl: error: unexpected RuntimeError: ^[]0;owned^G key sk-...6789\n")
