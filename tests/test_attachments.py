"""Images and text files that go with a message: read, checked, sent as content parts, saved,
resent on /retry and /resume, exported; in the REPL, on the command line and in a terminal."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pyte
import pytest
from conftest import installed_chatrepl, make_session, run_repl
from openai_server import FakeOpenAI, Script

from chatrepl.attachments import Pending, TextFile, read_files, split_paths
from chatrepl.config import Settings
from chatrepl.conversation import Conversation, from_json, to_json, to_markdown
from chatrepl.images import Image, dimensions, image_tokens, media_type
from chatrepl.models import Catalogue
from chatrepl.options import byte_size
from chatrepl.parameters import DEFAULT_PARAMETERS
from chatrepl.store import Store
from chatrepl.turn import estimate_prompt


def png(width: int, height: int) -> bytes:
    """A real PNG image of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xcc\x33\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# The first bytes of other kinds, as far as their size: JPEG (an APP0 segment, then the frame
# header), GIF, and the three forms of WEBP.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xc0\x00\x11\x08\x02\x58\x03\x20"
GIF = b"GIF89a\x40\x01\xc8\x00" + b"\x00" * 20
WEBP_LOSSY = b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00\x00\x00\x00\x9d\x01\x2a\x80\x02\xe0\x01" + b"\x00" * 4
WEBP_LOSSLESS = b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + (99 | 49 << 14).to_bytes(4, "little") + b"\0" * 8
WEBP_EXTENDED = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00" + b"\xff\x03\x00\xff\x01\x00"


def image_parts(request: dict[str, Any]) -> list[Any]:
    content = request["messages"][-1]["content"]
    assert isinstance(content, list), content
    return content


def data_of(part: dict[str, Any]) -> bytes:
    """The bytes a data: URL in an image part carries, checked to be base64 of a PNG."""
    header, payload = part["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    return base64.b64decode(payload, validate=True)


def test_images_are_known_by_their_first_bytes_with_their_size() -> None:
    assert media_type(png(3, 2)) == "image/png" and dimensions(png(3, 2)) == (3, 2)
    assert media_type(JPEG) == "image/jpeg" and dimensions(JPEG) == (800, 600)
    assert media_type(GIF) == "image/gif" and dimensions(GIF) == (320, 200)
    assert media_type(WEBP_LOSSY) == "image/webp" and dimensions(WEBP_LOSSY) == (640, 480)
    assert media_type(WEBP_LOSSLESS) == "image/webp" and dimensions(WEBP_LOSSLESS) == (100, 50)
    assert dimensions(WEBP_EXTENDED) == (1024, 512)
    assert media_type(b"%PDF-1.7") is None and media_type(b"") is None
    # The documented figures: 1024 x 1024 costs 765 tokens, 2048 x 4096 costs 1105, a small one 255.
    assert [image_tokens(size) for size in ((1024, 1024), (2048, 4096), (100, 100))] == [765, 1105, 255]
    assert image_tokens(None) == 1445  # an address: the most an image can cost


def test_paths_then_the_question() -> None:
    assert split_paths('src/*.py "my notes.txt" README.md explain the layout') == (
        ["src/*.py", "my notes.txt", "README.md"],
        "explain the layout",
    )
    assert split_paths("a.py what's this?") == (["a.py"], "what's this?")
    assert split_paths("~/x -- README.md is what?") == (["~/x"], "README.md is what?")
    assert split_paths("https://example.com/cat.jpg") == (["https://example.com/cat.jpg"], "")
    assert split_paths("") == ([], "")


def test_several_files_by_glob_with_spaces_and_home_within_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print('a')\n")
    (tmp_path / "src" / "b.py").write_text("x = '```'\n")
    (tmp_path / "my notes.txt").write_text("milk\n")
    (tmp_path / "big.log").write_text("y" * 5000)
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    patterns = [f"{tmp_path}/src/*.py", "~/my notes.txt", "~/big.log", "~/blob.bin", "~/none/*.c"]
    files, problems = read_files(patterns, 1000, bytes)
    assert [file.name for file in files] == [f"{tmp_path}/src/a.py", f"{tmp_path}/src/b.py", "~/my notes.txt"]
    assert problems == [
        "cannot attach ~/blob.bin: it is a binary file",
        "no file matches ~/none/*.c",
        "did not fit in the 1000 B left for files (file_limit): ~/big.log (4.9 KB)",
    ]
    # Each goes as a fenced block with its path and language, in a fence no line of it closes.
    assert files[0].block() == f"File {tmp_path}/src/a.py:\n```python\nprint('a')\n```"
    assert files[1].block().splitlines()[1] == "````python"
    pending = Pending(items=[*files])
    assert pending.message("why?").startswith("why?\n\nFile ") and pending.message("why?").endswith(
        "```text\nmilk\n```"
    )


def test_sizes_are_read_with_units() -> None:
    assert [byte_size(value) for value in (1000, "256KiB", "20 MB", "1.5mib")] == [1000, 262144, 20_000_000, 1572864]
    for bad in ("lots", "-3", "0", "12 parsecs"):
        with pytest.raises(ValueError):
            byte_size(bad)


def test_images_go_as_content_parts_with_data_urls_of_the_files(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    first, second = tmp_path / "one.png", tmp_path / "two shot.png"
    first.write_bytes(png(4, 4))
    second.write_bytes(png(8, 2))
    keys = f'/image {first} "{second}" https://example.com/cat.jpg what differs?\r/image {first}\rand now?\r'
    repl, output, _ = run_repl(settings, keys)
    several, one = (image_parts(request) for request in server.requests)
    assert several[0] == {"type": "text", "text": "what differs?"}
    assert [data_of(part) for part in several[1:3]] == [first.read_bytes(), second.read_bytes()]
    assert several[3] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert [part["type"] for part in one] == ["text", "image_url"] and data_of(one[1]) == first.read_bytes()
    # Earlier images stay in the conversation, as the model saw them.
    assert server.requests[1]["messages"][1]["content"] == several
    assert "goes with your next message" in output and repl.attachments.items == []


def test_what_is_not_an_image_or_too_big_is_refused_with_one_line(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "fake.png").write_text("not really")
    (tmp_path / "big.png").write_bytes(png(64, 64))
    settings.image_limit = 100
    keys = f"/image {tmp_path / 'fake.png'}\r/image {tmp_path / 'big.png'}\r/image {tmp_path / 'gone.png'}\r/image\r"
    repl, output, _ = run_repl(settings, keys)
    assert f"{tmp_path / 'fake.png'} is not a PNG, JPEG, WEBP or GIF image" in output
    assert f"{tmp_path / 'big.png'} is " in output and "the limit is 100 B (image_limit)" in output
    assert "cannot read" in output and "No such file" in output
    assert "usage: /image PATH|URL" in output
    assert repl.attachments.items == [] and server.requests == []


def test_a_model_that_cannot_see_is_refused_before_sending_and_named_one_that_can(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    picture = tmp_path / "p.png"
    picture.write_bytes(png(2, 2))
    settings.model = "gpt-3.5-turbo"
    _, output, _ = run_repl(settings, f"/image {picture} what is it?\r")
    assert "gpt-3.5-turbo cannot see images (the model catalogue says so); /model gpt-5-nano can" in output
    assert server.requests == []
    # Attached for a model that sees, then switched to one that does not: refused when sent, still attached.
    settings.model = "gpt-4o"
    # Enter sends the text kept again: refused again; Ctrl-C clears it.
    keys = f"/image {picture}\r/model gpt-3.5-turbo\rwhat is it?\r\r\x03/model gpt-4o\rnow?\r"
    _, output, _ = run_repl(settings, keys)
    assert output.count("gpt-3.5-turbo cannot see images") == 2 and "(/detach removes the images)" in output
    (request,) = server.requests
    assert [part["type"] for part in image_parts(request)] == ["text", "image_url"]


def test_a_failed_request_keeps_them_attached_for_the_next_try(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "p.png").write_bytes(png(2, 2))
    (tmp_path / "n.txt").write_text("note\n")
    server.enqueue(Script(status=500, error_message="boom"), Script(text="Seen."))
    keys = f"/image {tmp_path / 'p.png'}\r/file {tmp_path / 'n.txt'}\r/attachments\rlook\r\r"
    repl, output, _ = run_repl(settings, keys)
    assert "  1  " in output and "p.png (" in output and "  2  " in output and "n.txt (5 B)" in output
    assert "boom" in output and "Seen." in output
    failed, sent = (image_parts(request) for request in server.requests)
    assert failed == sent and sent[0]["text"].startswith("look\n\nFile ") and sent[0]["text"].endswith("note\n```")
    assert repl.attachments.items == []


def test_detach_removes_one_or_all(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(png(2, 2))
    keys = f"/image {tmp_path}/*.png\r/detach 2\r/detach 9\r/attachments\rfirst\r/image {tmp_path / 'a.png'}\r"
    keys += "/detach\r/attachments\rsecond\r"
    _, output, _ = run_repl(settings, keys)
    assert "detached" in output and "b.png" in output.split("detached", 1)[1].splitlines()[0]
    assert "/detach N: the attachments are numbered 1 to 2 (/attachments lists them)" in output
    assert "detached 1 attachment(s)" in output and "nothing is attached (/file and /image attach)" in output
    assert len(image_parts(server.requests[0])) == 3  # text, a.png, c.png
    assert server.requests[1]["messages"][-1]["content"] == "second"


def test_retry_and_resume_send_the_stored_images_without_the_files(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    picture = tmp_path / "p.png"
    picture.write_bytes(png(5, 5))
    store = Store(tmp_path / "chatrepl.db")
    run_repl(settings, f"/image {picture} {picture} twice?\r", store=store)
    picture.unlink()
    run_repl(settings, "/resume 1\r/retry\rand?\r", store=store)
    first, retried, later = server.requests
    assert image_parts(retried) == image_parts(first)
    assert later["messages"][1]["content"] == image_parts(first)
    assert [data_of(part) for part in image_parts(first)[1:]] == [png(5, 5)] * 2
    with sqlite3.connect(tmp_path / "chatrepl.db") as db:
        assert db.execute("SELECT COUNT(*) FROM images").fetchone() == (1,)  # the same image is stored once
        assert db.execute("SELECT COUNT(*) FROM message_images").fetchone() == (2,)
    run_repl(settings, "/resume 1\r/undo\r/undo\r", store=store)
    with sqlite3.connect(tmp_path / "chatrepl.db") as db:
        assert db.execute("SELECT COUNT(*) FROM images").fetchone() == (0,)  # none is kept that nothing uses


def test_images_count_in_the_context_estimate() -> None:
    conversation = Conversation("")
    conversation.add_user("hi", (Image("a.png", png(1024, 1024)), Image("cat", url="https://example.com/c.jpg")))
    rules = Catalogue().lookup("gpt-4o")
    with_images = estimate_prompt(conversation, DEFAULT_PARAMETERS, rules)
    conversation.turns[0].images = ()
    assert with_images - estimate_prompt(conversation, DEFAULT_PARAMETERS, rules) == 765 + 1445


def test_exports_keep_the_images(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    picture = tmp_path / "p.png"
    picture.write_bytes(png(3, 3))
    out = tmp_path / "out"
    out.mkdir()
    keys = f"/image {picture} https://example.com/c.jpg look\r/save {out / 'chat.md'}\r/save {out / 'chat.json'}\r"
    keys += f"new\r/load {out / 'chat.json'}\rmore\r"
    _, output, _ = run_repl(settings, keys)
    assert "and 1 image(s) beside it" in output
    assert (out / "chat-1.png").read_bytes() == png(3, 3)
    markdown = (out / "chat.md").read_text()
    assert "![p.png](chat-1.png)" in markdown and "![c.jpg](https://example.com/c.jpg)" in markdown
    exported = json.loads((out / "chat.json").read_text())
    assert exported["messages"][0]["content"] == image_parts(server.requests[0])
    assert server.requests[1]["messages"][1]["content"] == image_parts(server.requests[0])  # loaded, sent again


def test_a_json_export_with_bad_image_parts_is_refused() -> None:
    good = from_json(to_json(Conversation("", [])))
    assert good.turns == []
    bad = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,eA=="}}]}]}
    with pytest.raises(ValueError, match="message 1: an image data URL must be base64"):
        from_json(json.dumps(bad))
    assert to_markdown(Conversation("", []))[1] == {}


def test_switching_to_a_model_that_cannot_see_says_the_images_go_by_name(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "p.png").write_bytes(png(2, 2))
    settings.model = "gpt-4o"
    _, output, _ = run_repl(settings, f"/image {tmp_path / 'p.png'} look\r/model gpt-3.5-turbo\rtell me more\r")
    assert "gpt-3.5-turbo cannot see images: the 1 image(s) in this conversation are sent by name only" in output
    assert server.requests[1]["messages"][1]["content"] == f"look\n[image not shown: {tmp_path / 'p.png'}]"


def test_file_question_waits_when_a_file_could_not_go(server: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    keys = f"/file {tmp_path / 'a.txt'} {tmp_path / 'b.txt'} compare them\r"
    repl, output, _ = run_repl(settings, keys)
    assert "cannot read" in output and server.requests == []
    assert [item.name for item in repl.attachments.items] == [str(tmp_path / "a.txt")]
    assert isinstance(repl.attachments.items[0], TextFile)
    run_repl(settings, keys + "\r")  # Enter sends the question kept, with the file that could go
    assert (
        server.requests[0]["messages"][-1]["content"]
        == f"compare them\n\nFile {tmp_path / 'a.txt'}:\n```text\nalpha\n```"
    )


def test_completion_after_image_offers_images_and_folders(
    server: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    tmp_path = tmp_path / "files"
    (tmp_path / "sub").mkdir(parents=True)
    (tmp_path / "shot.png").write_bytes(png(2, 2))
    (tmp_path / "notes.txt").write_text("x")
    repl, _, _ = run_repl(settings, "")
    assert repl.prompt.completer is not None

    def complete(text: str) -> set[str]:
        found = repl.prompt.completer.get_completions(Document(text), CompleteEvent(completion_requested=True))  # type: ignore[union-attr]
        return {completion.display_text for completion in found}

    assert complete(f"/image {tmp_path}/") == {"shot.png", "sub/"}
    assert complete(f"/file {tmp_path}/notes.txt {tmp_path}/") == {"shot.png", "notes.txt", "sub/"}


def run_cli(cli_env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([installed_chatrepl(), *args], env=cli_env, input=stdin, capture_output=True, timeout=60)


def test_one_shot_flags_attach_images_and_files(server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "p.png").write_bytes(png(2, 3))
    (tmp_path / "a.md").write_text("# A\n")
    done = run_cli(cli_env, "--image", str(tmp_path / "p.png"), "--file", str(tmp_path / "a.md"), "what is here?")
    assert done.returncode == 0, done.stderr
    parts = image_parts(server.requests[0])
    assert parts[0]["text"] == f"what is here?\n\nFile {tmp_path / 'a.md'}:\n```markdown\n# A\n```"
    assert data_of(parts[1]) == png(2, 3)
    assert b"I see 1 image(s)" in done.stdout
    piped = run_cli(cli_env, "--image", "-", "and this?", stdin=png(4, 4))
    assert piped.returncode == 0 and data_of(image_parts(server.requests[1])[1]) == png(4, 4)
    text = run_cli(cli_env, "--file", "-", "summarize", stdin=b"line one\n")
    assert text.returncode == 0
    assert server.requests[2]["messages"][-1]["content"] == "summarize\n\nFile standard input:\n```\nline one\n```"


def test_one_shot_refusals_are_one_line_and_send_nothing(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "p.png").write_bytes(png(2, 2))
    (tmp_path / "x.txt").write_text("text")
    cases = [
        (["--image", str(tmp_path / "x.txt"), "q"], "is not a PNG, JPEG, WEBP or GIF image"),
        (
            ["--image", str(tmp_path / "p.png"), "--model", "gpt-4", "q"],
            "gpt-4 cannot see images (the model catalogue says so); -m gpt-5-nano can",
        ),
        (
            ["--image", str(tmp_path / "p.png"), "--completion", "q"],
            "completion mode sends no images: without --completion, in chat mode (mode = chat)",
        ),
        (["--file", str(tmp_path / "nothing*.txt"), "q"], "no file matches"),
        (["--file", "-", "--image", "-", "q"], "standard input (-) can be attached once"),
        (["--file", "-"], "give the question too"),
        (["--image", str(tmp_path / "p.png"), "--", "q", "LIMIT"], "the limit is 10 B (image_limit)"),
    ]
    for args, message in cases:
        env = {**cli_env, "CHATREPL_IMAGE_LIMIT": "10"} if "LIMIT" in args else cli_env
        done = run_cli(env, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message.encode() in done.stderr and b"Traceback" not in done.stderr
        assert len(done.stderr.decode().strip().splitlines()) == 1, done.stderr
    assert server.requests == []


def test_the_toolbar_shows_what_is_attached_until_it_is_sent(
    server: FakeOpenAI, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "shot.png").write_bytes(png(16, 16))
    server.enqueue(Script(text="A small orange square."))
    # The toolbar is drawn once the prompt knows where it is on screen: the screen answers its
    # cursor position requests, as a terminal does.
    child = pexpect.spawn(
        installed_chatrepl(),
        env={**cli_env, "TERM": "xterm-256color"},
        cwd=str(tmp_path),
        dimensions=(24, 100),
        encoding="utf-8",
        timeout=15,
    )
    screen = pyte.Screen(100, 24)
    screen.write_process_input = child.send  # type: ignore[method-assign]
    stream = pyte.Stream(screen)

    def toolbar_when(shown: str, toolbar: Callable[[str], bool]) -> None:
        """Wait until `shown` is on screen and the last row, the toolbar, is as `toolbar` wants."""
        deadline = time.monotonic() + 15
        while not (shown in "\n".join(screen.display) and toolbar(screen.display[-1])):
            assert time.monotonic() < deadline, "\n".join(screen.display)
            with contextlib.suppress(pexpect.TIMEOUT):
                stream.feed(child.read_nonblocking(65536, timeout=0.2))

    try:
        toolbar_when(">", lambda row: "test-model · chat" in row)
        child.send("/image shot.png\r")
        toolbar_when("goes with your next message", lambda row: "attached: shot.png (" in row)
        child.send("what is it?\r")
        toolbar_when("A small orange square.", lambda row: "test-model · chat" in row and "attached" not in row)
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert len(image_parts(server.requests[0])) == 2


def test_a_session_refuses_images_for_completion_mode(settings: Settings) -> None:
    session = make_session(settings)
    assert session.image_refusal() is None  # a model the catalogue does not know gets them
    session.set_parameter("mode", "completion")
    assert session.image_refusal() == "completion mode sends no images: /mode chat first"


@pytest.mark.parametrize("flag", ["--file", "--image"])
def test_a_file_that_never_ends_is_refused_in_one_line(cli_env: dict[str, str], tmp_path: Path, flag: str) -> None:
    fifo = tmp_path / "nobody-writes-here"
    os.mkfifo(fifo)
    for endless in ("/dev/zero", str(fifo)):
        command = [installed_chatrepl(), flag, endless, "what is this?"]
        done = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=20)
        assert done.returncode == 2 and done.stdout == ""
        problem = f"cannot attach {endless}: it is not a regular file (a device or a pipe may never end)"
        assert done.stderr == f"chatrepl: error: {problem}\n"


def test_slash_file_on_an_endless_file_says_so_and_the_repl_goes_on(server: FakeOpenAI, settings: Settings) -> None:
    _, output, _ = run_repl(settings, "/file /dev/zero\r/image /dev/zero\rhello\r")
    assert output.count("cannot attach /dev/zero: it is not a regular file") == 2
    assert "You said: hello" in output


def test_standard_input_is_read_only_to_a_byte_past_the_limit(cli_env: dict[str, str]) -> None:
    command = [installed_chatrepl(), "--file", "-", "summarize"]
    env = {**cli_env, "CHATREPL_FILE_LIMIT": "1KiB"}
    with subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as reader:
        assert reader.stdin is not None and reader.stderr is not None
        reader.stdin.write("x" * 2048)
        reader.stdin.flush()
        assert reader.wait(timeout=20) == 2  # without waiting for an end of the input that never came
        assert "did not fit in the 1.0 KB left for files (file_limit): standard input" in reader.stderr.read()
