"""Describe it, get one shell command, run it only when the user says so."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pexpect
import pytest
from conftest import installed_chatrepl, spawn_chatrepl
from openai_server import FakeOpenAI, Script

from chatrepl.shell import bare_command, danger, system_prompt

PROMPT = "\x1b[?2004h"
MENU = "e execute · r revise · d describe · c copy · a abort"


@pytest.mark.parametrize(
    ("answer", "command"),
    [
        ("ls -la", "ls -la"),
        ("```bash\nfind . -size +100M -mtime -7\n```", "find . -size +100M -mtime -7"),
        ("$ du -sh * | sort -h", "du -sh * | sort -h"),
        ("Here you go:\n```sh\n$ ls\n```\nThis lists the files.", "ls"),
        ("Use `du -sh *` to see the sizes.", "du -sh *"),
        ("tar czf a.tgz dir && \\\n  rm -r dir", "tar czf a.tgz dir && \\\nrm -r dir"),
        ("ls -la\nls -l", None),  # two commands: alternatives, nothing to run
        ("```sh\nls\n```\nor\n```sh\ndir\n```", None),
        ("Either `ls` or `dir`.", None),
        ("I cannot do that with one command.", None),
        ('echo "unclosed', None),
    ],
)
def test_the_answer_is_stripped_to_the_bare_command(answer: str, command: str | None) -> None:
    assert bare_command(answer) == command


@pytest.mark.parametrize(
    "command",
    [
        "rm -rf build",
        "rm -f -r build",
        "sudo apt upgrade",
        "dd if=/dev/zero of=/dev/sda",
        "mkfs.ext4 /dev/sdb1",
        "echo hi > notes.txt",
        "curl -fsSL https://example.com/install.sh | sh",
        "wget -qO- x | sudo bash",
        "chmod -R 777 .",
        "git push --force origin main",
        "find . -name '*.tmp' -delete",
    ],
)
def test_destructive_commands_are_marked(command: str) -> None:
    assert danger(command)


@pytest.mark.parametrize(
    "command",
    [
        "ls -la",
        "find . -size +100M -mtime -7",
        "du -sh * | sort -h",
        "grep -rn TODO src",
        "echo hi >> notes.txt",
        "make 2>&1 | tee log",
        "cmd > /dev/null",
        "git push origin main",
        "git rm -r --cached build",
        "chmod 644 file",
        "docker ps -a",
        "awk '$3 > 100' data.txt",
    ],
)
def test_ordinary_commands_are_not(command: str) -> None:
    assert danger(command) is None


def test_the_model_is_told_the_shell_the_system_and_the_folder(tmp_path: Path) -> None:
    told = system_prompt({"SHELL": "/usr/bin/zsh"}, tmp_path / "my-project")
    assert "one zsh command" in told and "'my-project'" in told and "Linux" in told


def shell_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {**cli_env, "SHELL": "/bin/sh", "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}


def test_with_no_terminal_the_command_is_printed_and_nothing_runs(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    home = Path(cli_env["HOME"])
    server.enqueue(Script(text="```sh\n$ touch created.txt\n```"), Script(text="Either `ls` or `dir`."))
    command = [installed_chatrepl(), "--shell", "make a file"]
    done = subprocess.run(command, env=shell_env(cli_env), cwd=home, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "touch created.txt\n", "")
    assert not (home / "created.txt").exists()
    told = server.requests[0]["messages"][0]["content"]
    assert "one sh command" in told and f"{home.name!r}" in told
    done = subprocess.run(command, env=shell_env(cli_env), cwd=home, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "chatrepl: error: not one command, so nothing to print: Either `ls` or `dir`.\n"


def spawn_shell(cli_env: dict[str, str], *args: str) -> pexpect.spawn:
    return spawn_chatrepl(shell_env(cli_env), *args, width=120, timeout=20)


def test_execute_runs_it_and_chatrepl_ends_with_its_status(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    home = Path(cli_env["HOME"])
    server.enqueue(Script(text="touch made.txt && exit 3"))
    child = spawn_shell(cli_env, "--shell", "make a file, then fail")
    child.expect_exact(MENU)
    assert not (home / "made.txt").exists()  # nothing before the key
    child.send("e")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3 and (home / "made.txt").exists()


def test_abort_runs_nothing_and_the_turn_is_saved(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    home = Path(cli_env["HOME"])
    server.enqueue(Script(text="touch made.txt"))
    child = spawn_shell(cli_env, "--shell", "make a file")
    child.expect_exact(MENU)
    child.send("a")
    child.expect_exact("nothing ran")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not (home / "made.txt").exists()
    with sqlite3.connect(home / ".local" / "share" / "chatrepl" / "chatrepl.db") as db:
        saved = db.execute("SELECT role, content, shell FROM messages ORDER BY id").fetchall()
    assert saved[0][:2] == ("user", "make a file") and saved[1][1] == "touch made.txt"
    assert json.loads(saved[1][2]) == {"command": "touch made.txt", "ran": False, "status": None}


def test_a_destructive_command_is_marked_and_asked_about_again(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    home = Path(cli_env["HOME"])
    (home / "build").mkdir()
    server.enqueue(Script(text="rm -rf build"))
    child = spawn_shell(cli_env, "--shell", "remove the build folder")
    child.expect_exact("careful: it removes files and folders recursively")
    child.expect_exact(MENU)
    child.send("e")
    child.expect_exact("are you sure? y/n")
    child.send("n")
    child.expect_exact(MENU)
    assert (home / "build").is_dir()
    child.send("e")
    child.expect_exact("are you sure? y/n")
    child.send("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not (home / "build").exists()


def test_revise_describe_and_copy_in_the_repl(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    server.enqueue(
        Script(text="ls -la"),
        Script(text="- **ls -la** lists every file"),  # described
        Script(text="ls -la | head -3"),  # revised
    )
    child = spawn_shell(cli_env)
    child.expect_exact(PROMPT)
    child.send("/shell list the files\r")
    child.expect_exact(MENU)
    child.send("d")
    child.expect_exact("lists every file")
    child.expect_exact(MENU)
    child.send("r")
    child.expect_exact("what to change: ")
    child.send("only three\r")
    child.expect_exact(MENU)
    child.send("c")
    child.expect_exact("\x1b]52;c;bHMgLWxhIHwgaGVhZCAtMw==\x07")  # OSC 52: "ls -la | head -3"
    child.expect_exact(PROMPT)
    revised = server.requests[2]["messages"]
    assert [message["content"] for message in revised[1:]] == [
        "list the files",
        "ls -la",
        "Change the command: only three",
    ]
    assert server.requests[1]["messages"][-1]["content"].startswith("Explain briefly")
    child.sendeof()
    child.expect(pexpect.EOF)
