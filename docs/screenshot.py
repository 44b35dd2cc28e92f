"""Make docs/chatrepl.svg, the picture at the top of the README, from a real session.

    pip install '.[test]' && python docs/screenshot.py

The installed chatrepl runs in a pseudo-terminal against the loopback test server, a
question is typed and the reply streams in; the screen it leaves (read by a terminal
emulator, pyte, which also answers the prompt's cursor position requests so the toolbar
is drawn) is written out as SVG by rich.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path

import pexpect
import pyte
from rich.console import Console
from rich.style import Style
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from openai_server import FakeOpenAI, Script  # noqa: E402

COLUMNS, ROWS = 92, 28
QUESTION = "how do I count words in a file, in Python?"
REPLY = """\
Read the file, split on whitespace, and count with `collections.Counter`:

```python
from collections import Counter
from pathlib import Path

words = Path("notes.txt").read_text().lower().split()
for word, count in Counter(words).most_common(3):
    print(f"{word:<8} {count}")
```

| approach | memory | good for |
|---|---|---|
| `read_text().split()` | whole file | files that fit in memory |
| line by line | one line | large logs |

For **very large files**, iterate over the lines instead of reading it all at once.
"""


def _color(name: str) -> str | None:
    """A pyte colour as rich names it: `brightred` is `bright_red`, `5f87af` is `#5f87af`."""
    if name == "default":
        return None
    if len(name) == 6 and all(char in "0123456789abcdef" for char in name):
        return f"#{name}"
    return name.replace("bright", "bright_") if name.startswith("bright") else name


def to_svg(screen: pyte.Screen, title: str) -> str:
    console = Console(record=True, width=COLUMNS, force_terminal=True, color_system="truecolor", file=io.StringIO())
    for row in range(screen.lines):
        line = Text()
        for column in range(screen.columns):
            char = screen.buffer[row][column]
            if char.data == "":  # the right half of a wide character
                continue
            foreground, background = _color(char.fg), _color(char.bg)
            if char.reverse:
                foreground, background = background or "black", foreground or "white"
            style = Style(
                color=foreground, bgcolor=background, bold=char.bold, italic=char.italics, underline=char.underscore
            )
            line.append(char.data, style)
        console.print(line, end="\n", crop=True, overflow="crop", no_wrap=True)
    return console.export_svg(title=title)


def main() -> None:
    server = FakeOpenAI().start()
    server.enqueue(Script(text=REPLY, chunk_size=6, delay=0.004))
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"chatrepl-screenshot-{os.getpid()}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "TERM": "xterm-256color",
        "OPENAI_API_KEY": "sk-screenshot",
        "OPENAI_BASE_URL": server.url,
        "CHATREPL_MODEL": "gpt-4.1-mini",
    }
    chatrepl = str(Path(sys.executable).parent / "chatrepl")
    child = pexpect.spawn(chatrepl, env=env, cwd=str(ROOT), dimensions=(ROWS, COLUMNS), encoding="utf-8")
    screen = pyte.Screen(COLUMNS, ROWS)
    screen.write_process_input = child.send  # answers the prompt's cursor position requests
    stream = pyte.Stream(screen)

    def wait_for(text: str, row: int | None = None, seconds: float = 15) -> None:
        """Wait until `text` is on screen (in `row`, if given)."""
        deadline = time.monotonic() + seconds
        while text not in ("\n".join(screen.display) if row is None else screen.display[row]):
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshot: {text!r} never appeared:\n" + "\n".join(screen.display))
            with contextlib.suppress(pexpect.TIMEOUT):
                stream.feed(child.read_nonblocking(65536, timeout=0.1))

    wait_for("gpt-4.1-mini · chat", row=-1)
    for char in QUESTION:  # typed, as a person would
        child.send(char)
        time.sleep(0.01)
    child.send("\r")
    wait_for(" out · $")  # the status line after the reply
    wait_for("session $", row=-1)  # and the toolbar drawn again under the next prompt
    svg = to_svg(screen, "chatrepl")
    child.sendeof()
    child.close(force=True)
    server.stop()
    target = ROOT / "docs" / "chatrepl.svg"
    target.write_text(svg, encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
