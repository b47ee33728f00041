"""The service that unloads text models left idle past their keep-alive (residency.py).

Owned by the app: `start()` when the services are built, `close()` when the app closes
(the thread ends and is joined, so tests that build and close apps leak nothing). Under
gevent the thread is a greenlet, as every request handler is, so unloading a model waits
for its engine the way a request would. It looks every `POLL_SECONDS` while a loaded model
may expire, and otherwise sleeps until something changes (`wake()`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
JOIN_SECONDS = 30.0


class IdleUnloader:
    def __init__(self, check: Callable[[], bool]) -> None:
        """`check()` unloads what expired and says whether a model may still expire."""
        self._check = check
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="idle-unload", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Something changed (a model loaded, a request ended): look again now."""
        self._wake.set()

    def _run(self) -> None:
        pending = False
        while not self._closed:
            self._wake.wait(POLL_SECONDS if pending else None)
            self._wake.clear()
            if self._closed:
                break
            try:
                pending = self._check()
            except Exception:  # a failed unload must not end the service
                log.exception("unloading idle models failed")
                pending = True

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(JOIN_SECONDS)
            self._thread = None
