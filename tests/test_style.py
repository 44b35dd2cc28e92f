"""The code stays ruff-clean and formatted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_output_modules_write_to_the_terminal() -> None:
    """Everything shown goes through output.py (or render.py, which it drives): both sanitize."""
    writers = re.compile(r"\bprint\(|\bConsole\(|\.file\.write\(|sys\.(stdout|stderr)\b(?!\.(isatty|fileno)\(\))")
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted((ROOT / "chatrepl").glob("*.py"))
        if path.name not in ("output.py", "render.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if writers.search(line)
    ]
    assert found == []
