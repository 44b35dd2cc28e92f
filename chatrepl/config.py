"""Settings, layered: defaults < config.toml < .env < environment < command-line flags."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatrepl.options import (
    DEFAULT_MODEL,
    DEFAULT_SYSTEM,
    FILE_LIMIT,
    IMAGE_LIMIT,
    LOCAL_INSTALL,
    OPTION_BY_KEY,
    OPTIONS,
    api_key,
    app_dir,
    mask_key,
    tomllib,
)

if TYPE_CHECKING:
    from chatrepl.mcp import ServerSpec
    from chatrepl.providers import Provider
    from chatrepl.roles import Role
    from chatrepl.tools import Rules


class ConfigError(Exception):
    """A setting that cannot be used; the message names where it came from."""


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
    tool_output_limit: int = 20_000
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # catalogue entries from config.toml
    providers: dict[str, Provider] = field(default_factory=dict)  # [providers.NAME] from config.toml
    provider_keys: dict[str, str] = field(default_factory=dict)  # the providers' key variables that are set
    roles: dict[str, Role] = field(default_factory=dict)  # [roles.NAME] from config.toml
    mcp_servers: list[ServerSpec] = field(default_factory=list)  # [mcp_servers.NAME], and mcp_config's files
    tool_rules: Rules | None = None  # [tools] allow, ask, deny
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
        elif key in ("mcp_servers", "mcp_config", "tools"):
            try:
                _read_tool_settings(settings, key, raw, path, environ)
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


def _read_tool_settings(settings: Settings, key: str, raw: Any, path: Path, environ: Mapping[str, str]) -> None:
    """`[mcp_servers.NAME]`, `mcp_config = [FILE.json, …]` (beside the config file when relative) and
    `[tools]` from a config file; ValueError names what is wrong."""
    from chatrepl import mcp, tools

    if key == "tools":
        settings.tool_rules = tools.read_rules(raw, str(path))
    elif key == "mcp_servers" and isinstance(raw, dict):
        found = (mcp.read_spec(name, entry, str(path), environ) for name, entry in raw.items())
        settings.mcp_servers += [spec for spec in found if spec is not None]
    elif key == "mcp_config" and isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        for name in raw:
            settings.mcp_servers += mcp.read_json_config(path.parent / Path(name).expanduser(), environ)
    else:
        raise ValueError(f"{path}: {key}: expected {'a table' if key == 'mcp_servers' else 'a list of JSON files'}")


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
