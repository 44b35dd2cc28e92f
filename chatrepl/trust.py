"""The trust rule, in one place: what a .env found from the working directory upward may set.

A cloned repository can hold a .env; nothing in it may choose where a request goes, which secret
goes with it, which file chatrepl reads or writes, or which program it starts, until the user
allows that file. Every variable chatrepl reads is in VARIABLES, of one of three kinds:

- plain: what to ask and how to show it (model, sampling, display) and an API key itself;
  taken from any .env.
- routing: taken from a .env only once the user allowed it as it is now, together with the
  files it names (pinned by content: a change to any of them asks again).
- process: read from the process environment only, never from a .env, allowed or not (the
  XDG folders, the HTTP library's proxies and certificate authorities, the editor, NO_COLOR).

A variable not in the table is read only as a provider's key (`api_key_env`), and providers
come only from a config file the user's own sources chose: plain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from chatrepl.options import app_dir, append_line, read_lines

PLAIN, ROUTING, PROCESS = "plain", "routing", "process"

VARIABLES = {
    "OPENAI_API_KEY": PLAIN,
    "OPENAI_BASE_URL": ROUTING,
    "CHATREPL_CONFIG": ROUTING,
    "CHATREPL_DB": ROUTING,
    "CHATREPL_LOCAL": ROUTING,  # a model file, and the server that serves it
    "CHATREPL_EXAMPLES": ROUTING,
    "CHATREPL_MODEL": PLAIN,
    "CHATREPL_SYSTEM": PLAIN,
    "CHATREPL_TEMPERATURE": PLAIN,
    "CHATREPL_MAX_TOKENS": PLAIN,
    "CHATREPL_TIMEOUT": PLAIN,
    "CHATREPL_TOP_P": PLAIN,
    "CHATREPL_PRESENCE_PENALTY": PLAIN,
    "CHATREPL_FREQUENCY_PENALTY": PLAIN,
    "CHATREPL_STOP": PLAIN,
    "CHATREPL_SEED": PLAIN,
    "CHATREPL_N": PLAIN,
    "CHATREPL_REASONING_EFFORT": PLAIN,
    "CHATREPL_JSON": PLAIN,
    "CHATREPL_MODE": PLAIN,
    "CHATREPL_CONNECT_TIMEOUT": PLAIN,
    "CHATREPL_IDLE_TIMEOUT": PLAIN,
    "CHATREPL_RETRIES": PLAIN,
    "CHATREPL_HISTORY": PLAIN,
    "CHATREPL_TOOLBAR": PLAIN,
    "CHATREPL_MARKDOWN": PLAIN,
    "CHATREPL_MULTILINE": PLAIN,
    "CHATREPL_THINKING": PLAIN,
    "CHATREPL_SAVE": PLAIN,
    "CHATREPL_LOCAL_CTX": PLAIN,
    "CHATREPL_ROLE": PLAIN,  # a name: the roles folder is the user's own
    "CHATREPL_FILE_LIMIT": PLAIN,
    "CHATREPL_IMAGE_LIMIT": PLAIN,
    "CHATREPL_TOOL_OUTPUT_LIMIT": PLAIN,
    "XDG_CONFIG_HOME": PROCESS,
    "XDG_DATA_HOME": PROCESS,
    "XDG_STATE_HOME": PROCESS,
    "OPENAI_ORG_ID": PROCESS,
    "OPENAI_PROJECT_ID": PROCESS,
    "HTTP_PROXY": PROCESS,
    "HTTPS_PROXY": PROCESS,
    "ALL_PROXY": PROCESS,
    "NO_PROXY": PROCESS,
    "SSL_CERT_FILE": PROCESS,
    "SSL_CERT_DIR": PROCESS,
    "VISUAL": PROCESS,
    "EDITOR": PROCESS,
    "NO_COLOR": PROCESS,
}
_NAMED_FILES = ("CHATREPL_CONFIG", "CHATREPL_EXAMPLES", "CHATREPL_LOCAL")  # files a .env names, read by chatrepl
_HASHED_WHOLE = 64 * 1024 * 1024  # a larger file (a model) is pinned by its size and modification time


def kind(variable: str) -> str:
    """The kind of a variable: PLAIN, ROUTING or PROCESS."""
    return VARIABLES.get(variable, PLAIN)


def dotenv_settings(
    dotenv_file: Path,
    values: Mapping[str, str],
    environ: Mapping[str, str],
    ask: Callable[[Path, str], bool] | None = None,
) -> tuple[dict[str, str], str | None]:
    """What chatrepl takes from the .env: its plain settings always, its routing settings only once the
    file is allowed (`ask`, given on a terminal, may allow it now), nothing it may not set at all; and
    the warning that names what was left out, if anything was."""
    given = {name: value for name, value in values.items() if value.strip()}
    usable = {name: value for name, value in given.items() if kind(name) != PROCESS}
    process_only = ", ".join(name for name in given if kind(name) == PROCESS)
    unread = f"{process_only} ignored: read from the environment only" if process_only else ""
    # What the environment sets itself wins anyway: the .env chooses nothing there.
    routing = {name: value for name, value in usable.items() if kind(name) == ROUTING and name not in environ}
    described = ", ".join(f"{name}={value}" for name, value in routing.items())
    trusted = not routing or dotenv_allowed(environ, dotenv_file, usable)
    if not trusted and ask is not None and ask(dotenv_file, described):
        allow_dotenv(environ, dotenv_file, usable)
        trusted = True
    if trusted:
        return usable, f"{dotenv_file}: {unread}" if unread else None
    kept = {name: value for name, value in usable.items() if name not in routing}
    return kept, (
        f"{dotenv_file} sets {described}: ignored, as it would choose where requests go or which files chatrepl "
        f"uses (if you trust that file, allow it with chatrepl --allow-env){'; ' + unread if unread else ''}"
    )


def _allowed_list(environ: Mapping[str, str]) -> Path:
    """Where allowed .env files are recorded: the process environment says, never a .env."""
    return app_dir(environ, "XDG_STATE_HOME") / "allowed-env"


def _fingerprint(dotenv_file: Path, values: Mapping[str, str]) -> str:
    """The .env's content and that of each file it names, with the .env's path."""
    import hashlib

    digest = hashlib.sha256(dotenv_file.read_bytes())
    for name in _NAMED_FILES:
        named = Path(values.get(name, "").strip()).expanduser()
        digest.update(f"\0{name}={named}\0".encode())
        if values.get(name, "").strip() and named.is_file():
            stat = named.stat()
            large = stat.st_size > _HASHED_WHOLE
            digest.update(f"{stat.st_size} {stat.st_mtime_ns}".encode() if large else named.read_bytes())
    return f"{digest.hexdigest()}  {dotenv_file.resolve()}"


def dotenv_allowed(environ: Mapping[str, str], dotenv_file: Path, values: Mapping[str, str]) -> bool:
    """The user allowed this .env, as it is now with the files it names (a change must be allowed again)."""
    allowed = read_lines(_allowed_list(environ))
    return bool(allowed) and _fingerprint(dotenv_file, values) in allowed


def allow_dotenv(environ: Mapping[str, str], dotenv_file: Path, values: Mapping[str, str]) -> None:
    """Record this .env and the files it names, by path and content, as the user's own."""
    append_line(_allowed_list(environ), _fingerprint(dotenv_file, values))
