"""WSGI middleware around the whole app: requests in flight, draining, and the request log.

It sits outside Flask so that it sees a response until its last byte: a streamed
completion counts as in flight until the stream ends, and the log line
(`OPENEDAI_DEBUG=1` / api_debug), one per request on either port, has the whole
duration and size: `api POST /v1/chat/completions -> 200 (143 bytes in) 2101 bytes out in 812.3 ms`.

At shutdown the server stops accepting connections, then `drain()`s: a new request on a
connection that is still open gets a 503, and `wait_idle()` waits for the requests in
flight to end. Websocket connections are left out of the count: they last as long as a
browser tab, so the server closes them instead of waiting.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import Unavailable
from .listeners import LISTENER

log = logging.getLogger("hearth.requests")

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

_SHUTTING_DOWN = json.dumps(
    Unavailable("The server is shutting down.", code="shutting_down").to_dict()
).encode()


class Traffic:
    def __init__(self, app: WSGIApp, *, log_requests: bool) -> None:
        self.app = app
        self.log_requests = log_requests
        self.in_flight = 0
        self.draining = False

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self.draining:
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(_SHUTTING_DOWN))),
                    ("Connection", "close"),
                ],
            )
            return [_SHUTTING_DOWN]
        record = _Record(environ)
        counted = not record.websocket
        if counted:
            self.in_flight += 1

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            record.status = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        def finished() -> None:
            if counted:
                self.in_flight -= 1
            if self.log_requests:
                record.log()

        try:
            body = self.app(environ, start)
        except BaseException:
            finished()
            raise
        return _Body(body, record, finished)

    def drain(self) -> None:
        self.draining = True

    def wait_idle(self, timeout: float, *, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Wait until no request is in flight (True), or `timeout` seconds (False)."""
        deadline = time.monotonic() + timeout
        while self.in_flight > 0:
            if time.monotonic() >= deadline:
                return False
            sleep(0.05)
        return True


class _Record:
    def __init__(self, environ: dict) -> None:
        self.started = time.perf_counter()
        self.method = environ.get("REQUEST_METHOD", "-")
        query = environ.get("QUERY_STRING")
        self.path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        self.listener = environ.get(LISTENER)
        self.websocket = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        self.received = int(environ.get("CONTENT_LENGTH") or 0)
        self.status = "-"
        self.sent = 0

    def log(self) -> None:
        took = (time.perf_counter() - self.started) * 1000
        status = "websocket closed" if self.websocket and self.status == "-" else self.status
        where = f"{self.listener} " if self.listener else ""
        log.info(
            "%s%s %s -> %s (%d bytes in) %d bytes out in %.1f ms",
            where,
            self.method,
            self.path,
            status,
            self.received,
            self.sent,
            took,
        )


class _Body:
    """The response body, passed through; counts bytes and reports its end once."""

    def __init__(self, body: Iterable[bytes], record: _Record, finished: Callable[[], None]) -> None:
        self._body = body
        self._record = record
        self._finished: Callable[[], None] | None = finished

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._record.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._finished is not None:
                finished, self._finished = self._finished, None
                finished()
