"""The upstream HTTP client against a small real server: a kept-alive connection the server
dropped is resent, not failed; an abort from another thread wakes the reader at once and
the server sees the client go; error answers become messages."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest
from servers import free_port

from modules.engines.remote.http import Endpoint, HttpError, StreamBroken, Unreachable


class Handler(socketserver.BaseRequestHandler):
    """Answers each request on a connection by its path, then (for /once) closes it."""

    def handle(self) -> None:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")[1:]
                    if line.startswith(b"content-length:")
                ),
                0,
            )
            while len(data) < length:
                data += self.request.recv(65536)
            data = data[length:]
            path = head.split(b" ")[1].decode()
            self.server.seen.append(path)
            if path == "/once":  # claims keep-alive, then closes anyway
                self.send(200, b'{"n": %d}' % len(self.server.seen))
                return
            if path == "/slow":
                self.request.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                try:
                    for _ in range(200):
                        event = b'data: {"x": 1}\n\n'
                        self.request.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                        time.sleep(0.05)
                except OSError:
                    self.server.gone_at = time.monotonic()
                return
            if path == "/openai-error":
                self.send(400, b'{"error": {"message": "the request exceeds the available context size"}}')
            elif path == "/plain-error":
                self.send(502, b"Bad gateway, sorry")
            else:
                self.send(200, b'{"ok": true}')

    def send(self, status: int, body: bytes) -> None:
        self.request.sendall(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )


@pytest.fixture
def server():
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.seen, srv.gone_at = [], None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def endpoint(server) -> Endpoint:
    return Endpoint(f"http://127.0.0.1:{server.server_address[1]}/v1")


def test_a_dropped_keep_alive_connection_is_resent_on_a_new_one(server):
    upstream = endpoint(server)
    assert upstream.call("GET", "/once", timeout=5) == {"n": 1}
    # the idle connection went back to the pool, but the server closed it
    assert upstream.call("GET", "/once", timeout=5) == {"n": 2}
    assert upstream.call("GET", "/fine", timeout=5) == {"ok": True}
    assert server.seen == ["/once", "/once", "/fine"]  # the prefix /v1 is Hearth's to add


def test_an_abort_wakes_the_reader_and_closes_the_connection(server):
    upstream = endpoint(server)
    exchange = upstream.send("GET", "/slow", timeout=30)
    events = exchange.events()
    assert next(events) == {"x": 1}
    threading.Timer(0.2, exchange.abort).start()
    started = time.monotonic()
    with pytest.raises(StreamBroken, match="aborted"):
        for _ in events:
            pass
    assert time.monotonic() - started < 0.5
    exchange.close()
    deadline = time.monotonic() + 2
    while server.gone_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.gone_at is not None  # the server's next write failed: it saw the client go


def test_error_answers_become_messages(server):
    upstream = endpoint(server)
    with pytest.raises(HttpError) as error:
        upstream.call("POST", "/openai-error", {"prompt": "x"}, timeout=5)
    assert (error.value.status, error.value.message) == (
        400,
        "the request exceeds the available context size",
    )
    with pytest.raises(HttpError) as error:
        upstream.call("GET", "/plain-error", timeout=5)
    assert (error.value.status, error.value.message) == (502, "Bad gateway, sorry")


def test_nobody_listening_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unreachable, match="connection refused"):
        Endpoint(f"http://127.0.0.1:{port}").call("GET", "/health", timeout=5)


def test_keys_go_in_the_authorization_header_only():
    upstream = Endpoint(f"http://127.0.0.1:{free_port()}", "sk-secret")
    assert upstream._headers["Authorization"] == "Bearer sk-secret"
    assert "sk-secret" not in upstream.url
