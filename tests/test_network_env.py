"""The environment variables that decide how requests reach a server: SSL_CERT_FILE (a private
certificate authority) and HTTPS_PROXY (a proxy in between), honoured by the installed chatrepl."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from socketserver import BaseRequestHandler, ThreadingTCPServer

import pytest
import trustme
from conftest import TEST_KEY, installed_chatrepl
from openai_server import FakeOpenAI, Script


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(authority: trustme.CA) -> Iterator[FakeOpenAI]:
    """The OpenAI-speaking server over HTTPS, its certificate signed by a private authority."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    fake = FakeOpenAI(tls=context).start()
    yield fake
    fake.stop()


class ConnectProxy(ThreadingTCPServer):
    """An HTTPS proxy: it answers CONNECT host:port by relaying bytes both ways, and records each target."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.targets: list[str] = []


class _Tunnel(BaseRequestHandler):
    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.request.recv(4096)
            if not data:
                return
            head += data
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        assert isinstance(self.server, ConnectProxy)
        self.server.targets.append(f"{method} {target}")
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            ends = [self.request, upstream]
            while True:
                readable, _, _ = select.select(ends, [], [], 10)
                if not readable:
                    return
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.request else self.request).sendall(data)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def ask_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([installed_chatrepl(), "hello"], env=env, capture_output=True, text=True, timeout=60)


def https_env(clean_env: dict[str, str], server: FakeOpenAI) -> dict[str, str]:
    env = {name: value for name, value in clean_env.items() if name.lower() not in ("https_proxy", "no_proxy")}
    return {**env, "OPENAI_API_KEY": TEST_KEY, "OPENAI_BASE_URL": server.url, "CHATREPL_RETRIES": "0"}


def test_ssl_cert_file_makes_a_private_authority_trusted(
    tls_server: FakeOpenAI, authority: trustme.CA, clean_env: dict[str, str], tmp_path: Path
) -> None:
    env = https_env(clean_env, tls_server)
    untrusted = ask_once(env)
    assert untrusted.returncode == 1 and "Traceback" not in untrusted.stderr
    assert "certificate" in untrusted.stderr and len(untrusted.stderr.strip().splitlines()) == 1
    assert "SSL_CERT_FILE" in untrusted.stderr  # the error says what to do
    bundle = tmp_path / "authority.pem"
    authority.cert_pem.write_to_path(str(bundle))
    tls_server.enqueue(Script(text="Hello over TLS."))
    trusted = ask_once({**env, "SSL_CERT_FILE": str(bundle)})
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.strip() == "Hello over TLS."


def test_https_proxy_carries_the_requests_and_never_sees_the_key(
    tls_server: FakeOpenAI, authority: trustme.CA, proxy: ConnectProxy, clean_env: dict[str, str], tmp_path: Path
) -> None:
    bundle = tmp_path / "authority.pem"
    authority.cert_pem.write_to_path(str(bundle))
    tls_server.enqueue(Script(text="Through the proxy."))
    env = {
        **https_env(clean_env, tls_server),
        "SSL_CERT_FILE": str(bundle),
        "HTTPS_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
    }
    done = ask_once(env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Through the proxy."
    assert proxy.targets == [f"CONNECT 127.0.0.1:{tls_server.server_address[1]}"]
    assert tls_server.authorizations == [f"Bearer {TEST_KEY}"]  # the key went inside the tunnel only
