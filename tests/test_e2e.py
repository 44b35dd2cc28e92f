"""The installed `chatrepl` in a pseudo-terminal, read the way a person would see it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pyte
import pytest
from conftest import TEST_KEY, installed_chatrepl, spawn_chatrepl
from openai_server import FakeOpenAI, Script

from chatrepl import __version__

PROMPT = "\x1b[?2004h"  # prompt_toolkit turns on bracketed paste each time a prompt is ready for input
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]")


@pytest.fixture
def terminal(cli_env: dict[str, str]) -> Iterator[pexpect.spawn]:
    child = spawn_chatrepl(cli_env)
    child.expect_exact(PROMPT)
    yield child
    child.close(force=True)


def type_line(child: pexpect.spawn, text: str) -> None:
    child.send(text + "\r")


def screen_text(child: pexpect.spawn) -> str:
    return ANSI.sub("", child.before or "")


def ask(child: pexpect.spawn, text: str) -> str:
    """Type a line, wait for the next prompt, and return what was shown in between, without colours."""
    type_line(child, text)
    child.expect_exact(PROMPT)
    return screen_text(child)


def test_two_turns_with_full_history_then_new_then_quit(server: FakeOpenAI, terminal: pexpect.spawn) -> None:
    server.enqueue(Script(text="The capital is **Paris**."), Script(text="About 2.1 million people."), Script())
    assert "The capital is Paris." in ask(terminal, "capital of France?")
    assert "About 2.1 million people." in ask(terminal, "and its population?")
    assert [m["role"] for m in server.requests[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert server.requests[1]["messages"][2]["content"] == "The capital is **Paris**."
    assert "new conversation" in ask(terminal, "new")
    assert "Hello! How can I help?" in ask(terminal, "hello again")
    assert [m["role"] for m in server.requests[2]["messages"]] == ["system", "user"]
    type_line(terminal, "quit")
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0


def test_an_error_turn_then_a_good_one(server: FakeOpenAI, terminal: pexpect.spawn) -> None:
    # a 429 whose retry-after is longer than chatrepl waits by itself is reported at once
    server.enqueue(Script(status=429, retry_after="300", error_message="Rate limit reached"), Script(text="Done now."))
    shown = ask(terminal, "please answer")
    assert "error: rate limited (429), retry after 300 s: Rate limit reached" in shown
    # The failed text is back in the input line: Enter alone sends it again.
    terminal.expect_exact("please answer")
    assert "Done now." in ask(terminal, "")
    assert server.requests[0]["messages"] == server.requests[1]["messages"]
    terminal.sendeof()
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0


def test_ctrl_c_mid_reply_stops_it_and_keeps_the_session(server: FakeOpenAI, terminal: pexpect.spawn) -> None:
    words = " ".join(f"w{n}" for n in range(2000))
    server.enqueue(Script(text=words, chunk_size=6, delay=0.02), Script(text="Still here."))
    type_line(terminal, "talk a lot")
    terminal.expect("w30 ")
    terminal.sendintr()
    terminal.expect("interrupted")
    terminal.expect_exact(PROMPT)
    deadline = time.monotonic() + 30
    while not server.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    # The server saw the hang-up with most of the reply still unsent (the time it takes is a benchmark).
    assert server.disconnects and server.stream_ends == []
    assert "Still here." in ask(terminal, "are you there?")
    history = server.requests[1]["messages"]
    assert history[2]["role"] == "assistant" and history[2]["content"].startswith("w0 w1 w2")
    assert history[2]["content"].endswith("[reply interrupted by the user]")
    # Ctrl-C at the prompt clears the line and does not leave.
    terminal.send("half typed")
    terminal.sendintr()
    terminal.expect_exact(PROMPT)
    terminal.sendeof()
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0
    assert len(server.requests) == 2


def test_a_resize_mid_reply_wraps_what_follows_at_the_new_width(server: FakeOpenAI, terminal: pexpect.spawn) -> None:
    paragraphs = [" ".join(f"{letter}{n}" for n in range(60)) for letter in "abcdef"]
    server.enqueue(Script(text="\n\n".join(paragraphs), chunk_size=8, delay=0.01))
    type_line(terminal, "long paragraphs")
    terminal.expect_exact("b20 ")
    terminal.setwinsize(30, 50)
    terminal.expect_exact("d0 ")  # printed after chatrepl saw the new size
    terminal.expect_exact(PROMPT)
    after = re.split(r"\r\n|\r", screen_text(terminal))
    assert max(len(line) for line in after) <= 50
    shown = " ".join(" ".join(after).split())
    for paragraph in paragraphs[3:]:
        assert paragraph[3:] in shown  # the whole paragraph, wrapped, no word lost
    terminal.sendeof()
    terminal.expect(pexpect.EOF)


def test_wide_characters_and_markdown_on_a_terminal(server: FakeOpenAI, terminal: pexpect.spawn) -> None:
    server.enqueue(Script(text="你好，世界！\n\n- 第一\n- 第二\n\n```python\nprint('hi')\n```\n", chunk_size=3))
    shown = ask(terminal, "chinese please")
    assert "你好，世界！" in shown
    assert "• 第一" in shown and "• 第二" in shown
    assert "```" not in shown  # the fence is rendered, not printed
    assert "print" in shown


def test_one_shot_on_a_terminal_renders_markdown_and_no_color_turns_it_off(
    server: FakeOpenAI, cli_env: dict[str, str]
) -> None:
    reply = "Some **bold** text"
    for extra, expect_plain in (({}, False), ({"NO_COLOR": "1"}, True), ({"CHATREPL_MARKDOWN": "false"}, True)):
        server.enqueue(Script(text=reply))
        env = {**cli_env, "TERM": "xterm-256color", **extra}
        output = pexpect.run(installed_chatrepl() + " hello", env=env, encoding="utf-8", timeout=15)
        if expect_plain:
            assert reply in output and "\x1b" not in output
        else:  # what stays on the screen once the live area is gone
            screen = pyte.Screen(80, 24)
            pyte.Stream(screen).feed(output)
            assert [line.rstrip() for line in screen.display if line.strip()] == ["Some bold text"]
            assert "\x1b[1mbold" in output


def test_ctrl_z_mid_reply_hands_the_terminal_to_the_shell_and_fg_resumes(
    server: FakeOpenAI, cli_env: dict[str, str]
) -> None:
    words = " ".join(f"w{n}" for n in range(600))
    server.enqueue(Script(text=words, chunk_size=6, delay=0.01))
    env = {**cli_env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", "PS1": "shell$ "}
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], env=env, dimensions=(30, 100), encoding="utf-8")
    shell.timeout = 15
    shell.expect_exact("shell$ ")
    shell.sendline(f"{installed_chatrepl()} --no-save")
    shell.expect_exact(PROMPT)
    shell.send("talk\r")
    shell.expect_exact("w30 ")
    shell.sendcontrol("z")
    shell.expect_exact("Stopped")
    # The live area was erased just before the shell took over, so nothing provisional stays behind.
    assert re.search(r"\x1b\[1A\x1b\[2K\r\n\[1\]\+\s*$", shell.before)
    shell.expect_exact("shell$ ")
    shell.sendline("fg")
    shell.expect_exact(PROMPT)
    shown = screen_text(shell)
    assert "w599" in shown and "interrupted" not in shown
    shell.sendeof()
    shell.expect_exact("shell$ ")
    shell.sendline("exit")
    shell.expect(pexpect.EOF)


def test_time_spent_stopped_is_not_taken_for_a_silent_server(server: FakeOpenAI, cli_env: dict[str, str]) -> None:
    go_on = threading.Event()
    server.enqueue(Script(text="before the stop, after the stop", chunk_size=4, hold_after=4, go_on=go_on))
    child = subprocess.Popen(
        [installed_chatrepl(), "--idle-timeout", "1", "talk"],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert child.stdout is not None
    shown = b""
    while len(shown) < 6:
        shown += child.stdout.read(6 - len(shown))
    assert shown == b"before"
    child.send_signal(signal.SIGSTOP)  # as Ctrl-Z does, for longer than the idle timeout
    time.sleep(2.5)
    child.send_signal(signal.SIGCONT)
    time.sleep(0.4)  # the server is silent, but only for this long since chatrepl went on
    go_on.set()
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert shown + out == b"before the stop, after the stop\n"


def test_ctrl_c_while_a_long_history_is_shown_comes_back_to_the_prompt(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from chatrepl.conversation import Turn
    from chatrepl.store import Store

    db = tmp_path / "chatrepl.db"
    store = Store(db)
    reply = "Some **markdown** with `code`.\n\n```python\nprint('hello')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    turns = [turn for n in range(1500) for turn in (Turn("user", f"question {n}"), Turn("assistant", reply))]
    turns.append(Turn("assistant", "THE LAST REPLY"))
    store.import_conversation("test-model", "be brief", "a long one", turns)
    store.close()
    server.enqueue(Script(text="Still here."))
    env = {**cli_env, "CHATREPL_DB": str(db), "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(installed_chatrepl(), ["-c"], env=env, dimensions=(30, 100), encoding="utf-8", timeout=30)
    child.expect("question 5")
    child.sendintr()
    child.expect("interrupted")
    child.expect_exact(PROMPT)
    assert "THE LAST REPLY" not in screen_text(child)  # the showing stopped
    assert "Still here." in ask(child, "are you there?")
    assert server.requests[0]["messages"][-1] == {"role": "user", "content": "are you there?"}
    assert len(server.requests[0]["messages"]) == 1 + len(turns) + 1  # the whole conversation goes on
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_cloned_dotenv_gets_the_key_only_once_allowed(
    server: FakeOpenAI, clean_env: dict[str, str], tmp_path: Path
) -> None:
    collector = FakeOpenAI().start()  # whoever wrote the .env
    try:
        config = tmp_path / "config.toml"
        config.write_text(f'base_url = "{server.url}"\nmodel = "test-model"\n')  # the user's own server
        clone = tmp_path / "clone"
        (clone / "src").mkdir(parents=True)
        (clone / ".env").write_text(f"OPENAI_BASE_URL={collector.url}\n")
        env = {**clean_env, "OPENAI_API_KEY": TEST_KEY, "CHATREPL_CONFIG": str(config)}
        env.update(TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1")

        def start() -> pexpect.spawn:
            return pexpect.spawn(installed_chatrepl(), env=env, cwd=clone / "src", encoding="utf-8", timeout=15)

        question = "use that, now and until the file or one it names changes? [y/N] "
        child = start()
        child.expect_exact(question)
        assert collector.authorizations == [] and server.authorizations == []  # nothing sent before the answer
        child.send("n\r")
        child.expect("ignored")
        child.expect_exact(PROMPT)
        assert "You said" in ask(child, "hello")
        child.sendeof()
        child.expect(pexpect.EOF)
        assert collector.authorizations == []
        assert server.authorizations and set(server.authorizations) == {f"Bearer {TEST_KEY}"}

        child = start()
        child.expect_exact(question)
        child.send("y\r")
        child.expect_exact(PROMPT)
        assert "You said" in ask(child, "hello")
        child.sendeof()
        child.expect(pexpect.EOF)
        assert f"Bearer {TEST_KEY}" in collector.authorizations  # the user said so

        child = start()  # allowed once, as the file is now: not asked again
        child.expect_exact(PROMPT)
        assert question not in (child.before or "") and collector.url in (child.before or "")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        collector.stop()


@pytest.mark.parametrize("no_color", [False, True])
def test_your_messages_stand_out_in_scrollback(server: FakeOpenAI, cli_env: dict[str, str], no_color: bool) -> None:
    env = {**cli_env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", **({"NO_COLOR": "1"} if no_color else {})}
    server.enqueue(Script(text="First answer."), Script(text="Second answer."))
    child = pexpect.spawn(installed_chatrepl(), env=env, dimensions=(24, 80), encoding="utf-8", timeout=15)
    screen = pyte.Screen(80, 24)
    stream = pyte.Stream(screen)
    shown = ""
    try:
        for question in ("first question", "second question"):
            child.expect_exact(PROMPT)
            shown += child.before + child.after
            child.send(question + "\r")
        child.expect_exact(PROMPT)
        shown += child.before + child.after
    finally:
        child.close(force=True)
    stream.feed(shown)
    # the banner first, dim unless NO_COLOR says otherwise
    assert (
        screen.display[0].rstrip()
        == f"chatrepl {__version__} · test-model at {server.url.rstrip('/')} · /help for commands"
    )
    assert bool(re.search(r"\x1b\[(\d+;)*2mchatrepl ", shown)) is not no_color
    rows = [n for n, line in enumerate(screen.display) if line.startswith("> ") and "question" in line]
    assert len(rows) == 2
    for row in rows:
        marker, first_letter = screen.buffer[row][0], screen.buffer[row][2]
        assert marker.bold and first_letter.bold  # the marker and the message, bold
        assert marker.fg == ("default" if no_color else "cyan")
    # one blank row between a reply's figures and the next question
    assert screen.display[rows[1] - 1].strip() == ""


def test_sigterm_while_an_editor_is_open_ends_chatrepl_at_once(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    editor = tmp_path / "slow-editor"
    editor.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'editor.pid'}\nexec sleep 60\n")
    editor.chmod(0o755)
    env = {**cli_env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", "VISUAL": str(editor)}
    child = pexpect.spawn(installed_chatrepl(), env=env, cwd=cli_env["HOME"], encoding="utf-8", timeout=15)
    try:
        child.expect_exact(PROMPT)
        assert "You said" in ask(child, "hello")
        type_line(child, "/edit")
        deadline = time.monotonic() + 10
        while not (tmp_path / "editor.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        editor_pid = int((tmp_path / "editor.pid").read_text())
        started = time.monotonic()
        child.kill(signal.SIGTERM)
        child.expect(pexpect.EOF, timeout=10)
        child.close()
        assert child.exitstatus == 143 and time.monotonic() - started < 5
        with pytest.raises(ProcessLookupError):  # the editor went with it
            for _ in range(100):
                os.kill(editor_pid, 0)
                time.sleep(0.02)
    finally:
        child.close(force=True)
    assert "Traceback" not in (child.before or "")


def test_a_ctrl_c_between_lines_is_only_noted() -> None:
    from chatrepl.terminal import Terminal

    terminal = Terminal()
    with terminal.between_lines():
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: chatrepl does not end
        time.sleep(0.05)
    assert terminal.interrupt_requested
    with terminal.busy():  # and the line that starts forgets it
        assert not terminal.interrupt_requested
