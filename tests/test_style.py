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


# Every way to write to the terminal, and the modules that may use it: output.py and render.py sanitize
# what they write; repl.py holds the prompt, prompt_toolkit's own output.
TERMINAL_WRITERS = {
    r"\bprint\(": ("output.py", "render.py"),
    r"\bprint_formatted_text\b": ("output.py",),
    r"\bConsole\(": ("output.py", "render.py"),
    r"\.(file|stream)\.write\(": ("output.py", "render.py"),
    r"\bsys\.(stdout|stderr)\b(?!\.(isatty|fileno)\(\))": ("output.py", "render.py"),
    r"\bos\.write\((1|2|sys\.)": (),
    r"\bprompt_toolkit\b.*\bimport\b.*\b(confirm|prompt|print_formatted_text)\b": ("output.py",),
    r"\b(PromptSession|Application|create_output)\b": ("repl.py",),
    r"\boutput\.write(_raw)?\(": (),
}


def test_only_the_output_modules_write_to_the_terminal() -> None:
    """Everything shown goes through output.py (or render.py, which it drives): both sanitize."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "chatrepl").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for pattern, allowed in TERMINAL_WRITERS.items()
        if re.search(pattern, line) and path.name not in allowed
    ]
    assert found == []
