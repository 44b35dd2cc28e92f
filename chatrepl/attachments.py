"""What goes with a message besides its text: images and text files, read from disk (paths,
globs, `~`) or standard input (`-`), each checked and kept within its limit."""

from __future__ import annotations

import glob
import os
import re
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chatrepl.images import Image, media_type, size_text
from chatrepl.options import FILE_LIMIT, IMAGE_LIMIT

STDIN = "-"
WEB = ("http://", "https://")  # an image given by its address
STDIN_NAME = "standard input"

_LANGUAGES = {
    ".py": "python", ".js": "javascript", ".mjs": "javascript", ".ts": "typescript", ".tsx": "tsx",
    ".jsx": "jsx", ".rs": "rust", ".go": "go", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp",
    ".hpp": "cpp", ".java": "java", ".kt": "kotlin", ".swift": "swift", ".rb": "ruby", ".php": "php",
    ".cs": "csharp", ".sh": "bash", ".bash": "bash", ".zsh": "zsh", ".fish": "fish", ".ps1": "powershell",
    ".sql": "sql", ".html": "html", ".css": "css", ".scss": "scss", ".md": "markdown", ".json": "json",
    ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".xml": "xml", ".ini": "ini", ".lua": "lua",
    ".r": "r", ".jl": "julia", ".hs": "haskell", ".ml": "ocaml", ".ex": "elixir", ".erl": "erlang",
    ".clj": "clojure", ".scala": "scala", ".dart": "dart", ".vue": "vue", ".tf": "hcl", ".diff": "diff",
    ".patch": "diff", ".csv": "csv", ".txt": "text",
}  # fmt: skip
_NAMED_LANGUAGES = {"Dockerfile": "dockerfile", "Makefile": "makefile", "CMakeLists.txt": "cmake"}
_GLOB = re.compile(r"[*?[]")


class AttachError(ValueError):
    """A file or image that cannot go with a message; the message says why in one line."""


@dataclass(frozen=True)
class TextFile:
    """A text file that goes with a message, sent as a fenced block headed by its path."""

    name: str  # the path as the user gave it, or "standard input"
    text: str

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))

    def describe(self) -> str:
        return f"{self.name} ({size_text(self.size)})"

    def block(self) -> str:
        """The file as the model sees it: its path, then its text in a fence no line of it can close."""
        longest = max((len(run) for run in re.findall(r"`{3,}", self.text)), default=2)
        fence = "`" * (longest + 1)
        path = Path(self.name)
        language = _NAMED_LANGUAGES.get(path.name) or _LANGUAGES.get(path.suffix.lower(), "")
        return f"File {self.name}:\n{fence}{language}\n{self.text.rstrip(chr(10))}\n{fence}"


Attachment = Image | TextFile


@dataclass
class Pending:
    """What goes with the next message; a request that fails keeps it for the next try."""

    file_limit: int = FILE_LIMIT
    image_limit: int = IMAGE_LIMIT
    items: list[Attachment] = field(default_factory=list)

    def images(self) -> tuple[Image, ...]:
        return tuple(item for item in self.items if isinstance(item, Image))

    def message(self, text: str) -> str:
        """The message sent: the text, then the text files' blocks (as piped text follows a question)."""
        blocks = [item.block() for item in self.items if isinstance(item, TextFile)]
        return "\n\n".join([text, *blocks] if text else blocks)

    def file_room(self) -> int:
        """Bytes of text files the message can still take."""
        return self.file_limit - sum(item.size for item in self.items if isinstance(item, TextFile))

    def describe(self) -> str:
        return ", ".join(item.describe() for item in self.items)


def split_paths(argument: str) -> tuple[list[str], str]:
    """The paths (quoted if they have spaces) at the start of an argument, and the question after them.

    A word is a path while it names a file, is a glob that matches one, is `-` or a web address, or
    looks like a path (it has a slash or an extension); the first word that is none of these starts
    the question.  `--` ends the paths.
    """
    lexer = shlex.shlex(argument, posix=True)
    lexer.whitespace_split = True
    paths: list[str] = []
    while True:
        start = lexer.instream.tell()
        try:
            word = lexer.get_token()
        except ValueError:  # an unclosed quote: an apostrophe in the question
            return paths, argument[start:].strip()
        if word is None:
            return paths, ""
        if word == "--":
            return paths, argument[lexer.instream.tell() :].strip()
        if not _is_path(word):
            return paths, argument[start:].strip()
        paths.append(word)


def _is_path(word: str) -> bool:
    return (
        word == STDIN
        or word.startswith(("~", *WEB))
        or "/" in word
        or bool(re.search(r"\.\w+$", word))
        or os.path.exists(word)
        or bool(_GLOB.search(word) and glob.glob(os.path.expanduser(word)))
    )


def expand(pattern: str) -> list[str]:
    """The files a path or glob names (`~` expanded, folders left out); AttachError if none."""
    if pattern == STDIN:
        return [STDIN]
    expanded = os.path.expanduser(pattern)
    if not _GLOB.search(expanded):
        if os.path.isdir(expanded):
            raise AttachError(f"{pattern} is a folder (a glob such as {pattern.rstrip('/')}/*.py takes its files)")
        return [pattern]
    found = sorted(name for name in glob.glob(expanded, recursive=True) if not os.path.isdir(name))
    if not found:
        raise AttachError(f"no file matches {pattern}")
    return found


def read_image(spec: str, limit: int, read_stdin: Callable[[int], bytes]) -> Image:
    """An image from a file, standard input (`-`) or a web address (sent as it is, not downloaded)."""
    if spec.startswith(WEB):
        return Image(spec, url=spec)

    def over(size: int) -> AttachError:
        return AttachError(f"{spec} is {size_text(size)}; the limit is {size_text(limit)} (image_limit)")

    if spec == STDIN:
        data = read_stdin(limit + 1)
    else:
        try:
            size = os.stat(os.path.expanduser(spec)).st_size
        except OSError as err:
            raise AttachError(f"cannot read {spec}: {err.strerror or err}") from None
        if size > limit:  # known before it is read
            raise over(size)
        data = read_bounded(spec, limit)
    if len(data) > limit:
        raise over(len(data))
    if media_type(data) is None:
        raise AttachError(f"{spec} is not a PNG, JPEG, WEBP or GIF image")
    return Image(STDIN_NAME if spec == STDIN else spec, data)


def read_bounded(spec: str, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a regular file, whatever its size said; AttachError for anything
    else (a device such as /dev/zero, a pipe, a socket), which may never end, or never begin."""
    try:
        # Not blocking: opening a named pipe nobody writes to would wait for ever.
        handle = os.open(os.path.expanduser(spec), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise AttachError(f"cannot read {spec}: {err.strerror or err}") from None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise AttachError(f"cannot attach {spec}: it is not a regular file (a device or a pipe may never end)")
        os.set_blocking(handle, True)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(handle, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as err:
        raise AttachError(f"cannot read {spec}: {err.strerror or err}") from None
    finally:
        os.close(handle)


def read_images(specs: list[str], limit: int, read_stdin: Callable[[int], bytes]) -> tuple[list[Image], list[str]]:
    """The images the paths, globs and addresses name, in order, and one line for each problem."""
    images: list[Image] = []
    problems: list[str] = []
    for spec in specs:
        try:
            names = [spec] if spec.startswith(WEB) else expand(spec)
            images += [read_image(name, limit, read_stdin) for name in names]
        except AttachError as err:
            problems.append(str(err))
    return images, problems


def read_files(patterns: list[str], room: int, read_stdin: Callable[[int], bytes]) -> tuple[list[TextFile], list[str]]:
    """The text files the patterns name, in order, as many as fit in `room` bytes, and one line for
    each problem: a pattern that names nothing, a file unreadable or binary, and those that did not fit."""
    files: list[TextFile] = []
    problems: list[str] = []
    left_out: list[str] = []
    room_at_first = room
    for pattern in patterns:
        try:
            names = expand(pattern)
        except AttachError as err:
            problems.append(str(err))
            continue
        for name in names:
            try:
                size = os.stat(os.path.expanduser(name)).st_size if name != STDIN else 0
                if size > room:
                    left_out.append(f"{name} ({size_text(size)})")
                    continue
                file = _read_text(name, room, read_stdin)
            except AttachError as err:
                problems.append(str(err))
                continue
            except OSError as err:
                problems.append(f"cannot read {name}: {err.strerror or err}")
                continue
            if file.size > room:
                left_out.append(file.describe())
                continue
            files.append(file)
            room -= file.size
    if left_out:
        limit = size_text(max(room_at_first, 0))
        problems.append(f"did not fit in the {limit} left for files (file_limit): {', '.join(left_out)}")
    return files, problems


def _read_text(name: str, room: int, read_stdin: Callable[[int], bytes]) -> TextFile:
    """The text of a file or standard input, read up to a byte past `room` (the caller leaves it out then)."""
    data = read_stdin(room + 1) if name == STDIN else read_bounded(name, room)
    shown = STDIN_NAME if name == STDIN else name
    if b"\0" in data:
        raise AttachError(f"cannot attach {shown}: it is a binary file")
    try:
        return TextFile(shown, data.decode("utf-8"))
    except UnicodeDecodeError:
        raise AttachError(f"cannot attach {shown}: it is not UTF-8 text") from None
