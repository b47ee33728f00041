"""A small HTTP/1.1 client for upstream servers: keep-alive connections, streamed answers,
and requests that any thread or greenlet can abort at once.

Plain `http.client`, for three reasons: under gevent its sockets are gevent's (the standard
library is monkey-patched), elsewhere they are ordinary blocking sockets, so one client
serves the server, gunicorn's gevent workers and threaded tests alike; it separates sending
a request from reading its answer, so a generation is sent when it is created and read when
its consumer asks; and aborting is `shutdown()` on the socket, which wakes a reader blocked
on it in either world (a request a client dropped is closed upstream at once).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "Hearth"
MAX_IDLE = 8  # idle keep-alive connections kept per upstream (each holds one of its HTTP threads)
MAX_EVENT_BYTES = 16 * 1024 * 1024  # one SSE event or NDJSON line; more is a broken stream


class Unreachable(Exception):
    """Nothing came back: the connection could not be made, or broke before any answer."""


class HttpError(Exception):
    """The upstream answered with an error status."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body


class StreamBroken(Exception):
    """The answer started but did not end properly (the connection broke, or a bad event)."""


@dataclass(frozen=True)
class TlsOptions:
    verify: bool = True
    ca_file: str | None = None  # a CA bundle or a self-signed certificate to trust


class Endpoint:
    """One upstream's base URL, its key, and a pool of idle keep-alive connections."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        tls: TlsOptions = TlsOptions(),
        connect_timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        # The server's root: `/v1` is Hearth's to add (a URL copied from a client's base_url
        # ends with it); a path before it (a reverse proxy's prefix) stays.
        path = parts.path.rstrip("/")
        self.prefix = path[: -len("/v1")] if path.endswith("/v1") else path
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json, text/event-stream"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._connect_timeout = connect_timeout
        self._context = _ssl_context(tls) if self.https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    # --- connections ----------------------------------------------------------------------

    def _new_connection(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self._connect_timeout, context=self._context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self._connect_timeout)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new_connection(), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # --- requests -------------------------------------------------------------------------

    def send(self, method: str, path: str, body: Any = None, *, timeout: float) -> Exchange:
        """Send a request (connecting if needed) and return at once; read the answer from
        the `Exchange`. Unreachable when the request could not be sent."""
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        exchange = Exchange(self, method, self.prefix + path, data, headers, timeout)
        exchange.send()
        return exchange

    def ping(self, path: str, *, timeout: float) -> None:
        """GET `path` and read its answer, whatever it is (HttpError for an error status)."""
        exchange = self.send("GET", path, timeout=timeout)
        try:
            exchange.answer()
            exchange._read_all()
        finally:
            exchange.close()

    def call(self, method: str, path: str, body: Any = None, *, timeout: float) -> Any:
        """A whole request: the answer's JSON (HttpError for an error status)."""
        exchange = self.send(method, path, body, timeout=timeout)
        try:
            exchange.answer()
            return exchange.json()
        finally:
            exchange.close()


class Exchange:
    """One request and its answer, on one connection; `abort()` may come from anywhere."""

    def __init__(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        data: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> None:
        self._endpoint = endpoint
        self._request = (method, path, data, headers)
        self._deadline = time.monotonic() + timeout
        self._connection: http.client.HTTPConnection | None = None
        self._sock: socket.socket | None = None  # kept: http.client forgets it on Connection: close
        self._reused = False
        self._response: http.client.HTTPResponse | None = None
        self._complete = False  # the whole answer was read: the connection may be reused
        self.aborted = False

    def _remaining(self) -> float:
        return max(0.05, self._deadline - time.monotonic())

    def send(self) -> None:
        connection, self._reused = self._endpoint._take()
        self._connection = connection
        try:
            self._put(connection)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if not self._reused:
                raise Unreachable(_reason(exc)) from None
            self._resend()

    def _put(self, connection: http.client.HTTPConnection) -> None:
        method, path, data, headers = self._request
        if connection.sock is not None:
            connection.sock.settimeout(self._remaining())
        connection.request(method, path, body=data, headers=headers)
        self._sock = connection.sock
        if self.aborted:  # aborted while connecting: the socket was not there to shut down
            self.abort()

    def _resend(self) -> None:
        """A kept-alive connection the server had closed: the same request on a new one."""
        connection = self._endpoint._new_connection()
        self._connection, self._reused = connection, False
        try:
            self._put(connection)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Unreachable(_reason(exc)) from None

    def answer(self) -> http.client.HTTPResponse:
        """Wait for the status line and headers; HttpError for a status of 400 or more."""
        if self._response is not None:
            return self._response
        assert self._connection is not None
        try:
            self._sock.settimeout(self._remaining())
            response = self._connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._connection.close()
            if self.aborted:
                raise StreamBroken("aborted") from None
            if not self._reused:
                raise Unreachable(_reason(exc)) from None
            self._resend()
            return self.answer()
        self._response = response
        if response.status >= 400:
            raw = self._read_all(limit=64 * 1024)
            body = _parsed(raw)
            raise HttpError(response.status, _error_message(body, raw, response.reason), body)
        return response

    def json(self) -> Any:
        raw = self._read_all()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise StreamBroken(f"not JSON: {raw[:200]!r}") from None

    def _read_all(self, limit: int | None = None) -> bytes:
        assert self._response is not None
        try:
            raw = self._response.read() if limit is None else self._response.read(limit)
        except (OSError, http.client.HTTPException) as exc:
            raise StreamBroken(_reason(exc)) from None
        self._complete = self._response.isclosed()
        return raw

    def events(self) -> Iterator[dict | None]:
        """Server-sent events' JSON data, in order; None for `data: [DONE]`."""
        for block in self._split(b"\n\n"):
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        yield None
                    elif data:
                        yield _event_json(data)

    def lines(self) -> Iterator[dict]:
        """Newline-delimited JSON (Ollama's streams)."""
        for line in self._split(b"\n"):
            if line.strip():
                yield _event_json(line)

    def _split(self, separator: bytes) -> Iterator[bytes]:
        response = self.answer()
        buffer = b""
        while True:
            try:
                chunk = response.read1(65536)
            except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
                raise StreamBroken("aborted" if self.aborted else _reason(exc)) from None
            if not chunk:
                if self.aborted:
                    raise StreamBroken("aborted")
                self._complete = response.isclosed()
                if buffer.strip():
                    yield buffer.replace(b"\r\n", b"\n")
                return
            buffer += chunk
            if b"\r" in buffer:
                buffer = buffer.replace(b"\r\n", b"\n")
            while (end := buffer.find(separator)) >= 0:
                yield buffer[:end]
                buffer = buffer[end + len(separator) :]
            if len(buffer) > MAX_EVENT_BYTES:
                raise StreamBroken("an event larger than 16 MB")

    def finish(self) -> None:
        """The caller read what it wanted: read the rest of the body (the end of a chunked
        stream after `[DONE]`) so that the connection can serve the next request."""
        if self._response is not None and not self._complete and not self.aborted:
            try:
                self._sock.settimeout(1.0)
                self._response.read()
                self._complete = self._response.isclosed()
            except (OSError, http.client.HTTPException, ValueError, AttributeError):
                self._complete = False
        self.close()

    def abort(self) -> None:
        """Close the connection now, from any thread or greenlet: a reader blocked on it
        wakes up (StreamBroken), and the upstream sees the client go."""
        self.aborted = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        reusable = (
            self._complete
            and not self.aborted
            and self._response is not None
            and not self._response.will_close
            and connection.sock is not None
        )
        self._sock = None
        if reusable:
            self._endpoint._give_back(connection)
        else:
            connection.close()


def _ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


TIMED_OUT = "timed out"


def timed_out(error: BaseException) -> bool:
    """Whether a failure was the upstream not answering in time (rather than refusing)."""
    return isinstance(error, Unreachable | StreamBroken) and str(error) == TIMED_OUT


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return TIMED_OUT
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed the connection without answering"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    text = str(exc) or type(exc).__name__
    return text[:200]


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _event_json(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise StreamBroken(f"an event that is not JSON: {data[:200]!r}") from None
    if not isinstance(value, dict):
        raise StreamBroken(f"an event that is not a JSON object: {data[:200]!r}")
    return value


def _error_message(body: Any, raw: bytes, reason: str) -> str:
    """The message of an error answer, in OpenAI's shape, llama-server's, or plain text."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            if message:
                return str(message)[:1000]
        elif isinstance(error, str):
            return error[:1000]
        if isinstance(body.get("detail"), str):
            return body["detail"][:1000]
    text = raw.decode("utf-8", "replace").strip()
    return text[:1000] or reason
