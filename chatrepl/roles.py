"""Roles: named system prompts, each with the model, request parameters and few-shot examples
it wants.  From `[roles.NAME]` in config.toml, or from files `roles/NAME.md` beside it (the
text is the system prompt; TOML between `+++` lines at the top sets the rest), so prompts
can live in a dotfiles repository."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatrepl import options

if TYPE_CHECKING:
    from chatrepl.conversation import Turn

# What a role may set besides its system prompt: the model, the request parameters, examples, and the
# tools it lets run without asking (patterns, as [tools] allow takes them).
ROLE_KEYS = ("model", *options.SAMPLING_KEYS, "json", "mode", "examples", "tools")


@dataclass(frozen=True)
class Role:
    name: str
    system: str
    settings: dict[str, Any] = field(default_factory=dict)  # ROLE_KEYS, parsed
    source: str = ""

    def summary(self) -> str:
        """The system prompt's first line, to describe the role in a list."""
        return self.system.strip().splitlines()[0] if self.system.strip() else ""


def check_entry(name: str, entry: Any, where: str) -> Role:
    """A role from `[roles.NAME]` (or a file's front matter and text); ValueError names the file, key, problem."""
    place = f"{where}: roles.{name}"
    if not isinstance(entry, dict):
        raise ValueError(f"{place}: expected a table with system")
    system = entry.get("system")
    if not isinstance(system, str) or not system.strip():
        raise ValueError(f"{place}.system: a role needs its system prompt as text")
    settings = {}
    for key, value in entry.items():
        if key == "system":
            continue
        if key not in ROLE_KEYS:
            raise ValueError(f"{place}.{key}: a role sets {', '.join(('system', *ROLE_KEYS))}; not {key!r}")
        if key == "tools":
            if not (isinstance(value, list) and all(isinstance(pattern, str) for pattern in value)):
                raise ValueError(f"{place}.tools: expected a list of patterns (NAME, SERVER.NAME, SERVER.*)")
            settings[key] = tuple(value)
            continue
        try:
            settings[key] = options.OPTION_BY_KEY[key].parse(value)
        except ValueError as err:
            raise ValueError(f"{place}.{key}: {err}") from None
    return Role(name, system.strip(), settings, where)


def roles_dir(environ: Mapping[str, str]) -> Path:
    return options.app_dir(environ, "XDG_CONFIG_HOME") / "roles"


def from_file(path: Path) -> Role:
    """A role from a file: its text, after optional TOML front matter between `+++` lines."""
    text = path.read_text(encoding="utf-8")
    front: dict[str, Any] = {}
    if text.startswith("+++\n"):
        matter, separator, text = text[4:].partition("\n+++\n")
        if not separator:
            raise ValueError(f"{path}: the front matter opened with +++ is never closed")
        try:
            front = options.tomllib.loads(matter)
        except options.tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: bad front matter: {err}") from None
    return check_entry(path.stem, {**front, "system": text}, str(path))


def available(configured: Mapping[str, Role], directory: Path) -> dict[str, Role | Path]:
    """Every role by name: the config file's, then the files' (a file wins over a config entry);
    a file is only read when the role is used."""
    found: dict[str, Role | Path] = dict(configured)
    if directory.is_dir():
        found.update({path.stem: path for path in sorted(directory.glob("*.md"))})
    return found


def load(name: str, configured: Mapping[str, Role], directory: Path) -> Role:
    """The role called `name`; ValueError says there is none (naming those there are) or what is wrong."""
    found = available(configured, directory).get(name)
    if found is None:
        names = ", ".join(sorted(available(configured, directory))) or f"none yet: see [roles.NAME] or {directory}"
        raise ValueError(f"no role {name!r} (roles: {names})")
    if isinstance(found, Role):
        return found
    try:
        return from_file(found)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read role file {found}: {err}") from None


def read_examples(path: str) -> list[Turn]:
    """The few-shot turns of an examples file (a JSON list, or TOML [[messages]]); ValueError says why not."""
    from chatrepl.conversation import parse_examples

    file = Path(path).expanduser()
    try:
        return parse_examples(file.read_text(encoding="utf-8"), file.suffix.lower())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"cannot use the examples file {path}: {err}") from None


def take_on(name: str, configured: Mapping[str, Role], directory: Path) -> tuple[Role, list[Turn] | None]:
    """The role called `name` with the examples it names (None if it names none); ValueError if unusable."""
    role = load(name, configured, directory)
    examples = role.settings.get("examples")
    return role, read_examples(examples) if examples else None
