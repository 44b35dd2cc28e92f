"""Leaves every module may import: chatrepl's folders and private files, OpenAI's address, key masking.

It imports nothing of chatrepl's, so nothing that imports it can close an import circle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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


def mask_key(key: str) -> str:
    """A key as it may be shown: sk-...abcd."""
    return f"{key[:3]}...{key[-4:]}" if len(key) > 12 else "***"
