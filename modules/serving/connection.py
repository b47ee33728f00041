"""Whether the client of a request is still there.

A streamed response learns that its client went away when a write fails. A whole response
writes nothing until the end, so it asks: `client_gone_probe(environ)` returns a function
that says, without blocking, whether the client closed (or reset) its connection. It peeks
at the socket: a closed connection reads as end-of-file; a waiting client has sent nothing
more, and a pipelining one has sent data, which stays unread for the next request.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any


def _request_socket(environ: dict) -> Any:
    """The request's connection under gevent's WSGI server or gunicorn; None elsewhere."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        stream = environ.get("wsgi.input")
        stream = getattr(stream, "rfile", stream)  # gevent.pywsgi.Input -> its socket file
        sock = getattr(getattr(stream, "raw", None), "_sock", None)
    # gevent's socket wraps the OS one; a peek must not wait on gevent's loop
    return getattr(sock, "_sock", sock) if sock is not None else None


def _never() -> bool:
    return False


def client_gone_probe(environ: dict) -> Callable[[], bool]:
    sock = _request_socket(environ)
    if sock is None or not hasattr(sock, "recv"):
        return _never

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False  # nothing to read: the client is waiting
        except OSError:
            return True  # reset, or the socket is closed

    return gone
