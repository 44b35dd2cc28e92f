"""What an attached image costs: reading and checking it, sending it (base64 in the JSON
body, through the openai client to the loopback server), saving it, resuming it.

    python benchmarks/attachment_cost.py

For images of 1, 5 and 20 MB: wall time to attach (read, check the first bytes), of the
first turn (Enter to the whole reply, with the image saved by the journal), of the next
turn (the image goes again, from the history), of a resume from the database, and the
growth of the process's peak memory over the run of that size.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chatrepl.attachments import read_images
from chatrepl.config import Settings
from chatrepl.events import Request
from chatrepl.models import Catalogue
from chatrepl.session import ChatSession
from chatrepl.store import Store
from chatrepl.terminal import Terminal

SIZES_MB = (1, 5, 20)


class Discard:
    """A sink that shows nothing."""

    def sending(self, request: Request) -> None: ...
    def feed(self, text: str) -> None: ...
    def think(self, text: str) -> None: ...
    def pause(self) -> None: ...
    def catch_up(self) -> float | None: ...
    def finish(self) -> None: ...
    def note(self, message: str) -> None: ...
    def retrying(self, message: str, seconds: float) -> None: ...


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(megabytes: int, server_url: str, folder: Path) -> tuple[float, ...]:
    picture = folder / f"{megabytes}.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(megabytes * 1024 * 1024 - 8))
    settings = Settings(api_key="sk-bench", base_url=server_url, model="test-model", timeout=60, retries=0)
    store = Store(folder / f"{megabytes}.db")
    session = ChatSession.from_settings(settings, Catalogue(), store, [])
    session.client.warm_up()
    before = peak_mb()
    started = time.perf_counter()
    images, problems = read_images([str(picture)], 32 * 1024 * 1024, bytes)
    assert not problems
    attached = time.perf_counter()
    assert session.ask("what is it?", Discard(), Terminal(), tuple(images)).status == "complete"
    session.writer.flush(60)  # type: ignore[union-attr]
    first = time.perf_counter()
    assert session.ask("and now?", Discard(), Terminal()).status == "complete"
    second = time.perf_counter()
    conversation_id = session.journal.conversation_id
    session.close()
    again = ChatSession.from_settings(settings, Catalogue(), Store(folder / f"{megabytes}.db"), [])
    resuming = time.perf_counter()
    assert again.resume(conversation_id) is not None  # type: ignore[arg-type]
    resumed = time.perf_counter()
    assert again.conversation.images()[0].data == images[0].data
    return attached - started, first - attached, second - first, resumed - resuming, peak_mb() - before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    # The server runs in a process of its own, so the memory measured is chatrepl's alone.
    port = free_port()
    server_script = Path(__file__).resolve().parent.parent / "tests" / "openai_server.py"
    server = subprocess.Popen([sys.executable, str(server_script), "--port", str(port)], stdout=subprocess.DEVNULL)
    time.sleep(1)
    print("| image | attach | first turn (sent, saved) | next turn (sent again) | resume | peak memory growth |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for megabytes in SIZES_MB:
            attach, first, second, resume, memory = measure(megabytes, f"http://127.0.0.1:{port}/v1", Path(folder))
            print(
                f"| {megabytes} MB | {attach * 1000:.0f} ms | {first * 1000:.0f} ms | {second * 1000:.0f} ms"
                f" | {resume * 1000:.0f} ms | {memory:.0f} MB |"
            )
    server.terminate()


if __name__ == "__main__":
    main()
