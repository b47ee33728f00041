"""Handing work between the engines' OS threads and request handlers.

Model work runs on real OS threads (../shared/FACTS.md: a C call blocks gevent's loop,
and every call into one model must come from one thread). Request handlers, however,
are greenlets on gevent's loop in the server, and plain threads in tests or under a
threaded WSGI server. gevent's own Event/Queue are not safe across OS threads, so:

- `start_thread` always starts a real OS thread, monkey-patched or not;
- `Inbox` is what a worker thread blocks on (a C-level queue gevent never patches);
- a `Mailer` hands items from worker threads to consumers. Under gevent it owns one
  long-lived loop watcher: workers append to a deque and wake the loop, and the loop
  moves each item into the consumer's gevent queue. Workers therefore never touch a
  gevent object that a consumer might drop, whatever order they finish in.
"""

from __future__ import annotations

import _queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

Empty = _queue.Empty


def gevent_active() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("threading")


def native_logging_locks() -> None:
    """Give `logging` real OS locks: model threads log, and so do libraries on them.

    Under monkey-patching, logging's locks are gevent locks, and one log call from a real
    thread racing one from a greenlet corrupts them: the next greenlet to log then waits
    forever (the server hangs, or at the latest exits never). A real lock is held only for
    the length of one write, so a greenlet blocking on it costs the loop microseconds.
    Idempotent; takes each old lock while swapping so that no holder is cut off.
    """
    import logging

    from gevent import monkey

    native_rlock = monkey.get_original("_thread", "RLock")
    native_type = type(native_rlock())
    if getattr(logging, "_lock", None) is not None and not isinstance(logging._lock, native_type):
        old = logging._lock
        with old:
            logging._lock = native_rlock()
    handlers = [ref() for ref in list(getattr(logging, "_handlerList", []))]
    for handler in handlers:
        if handler is not None and handler.lock is not None and not isinstance(handler.lock, native_type):
            old = handler.lock
            with old:
                handler.lock = native_rlock()
    if getattr(logging.Handler.createLock, "__name__", "") != "_create_native_lock":

        def _create_native_lock(self) -> None:
            self.lock = native_rlock()

        logging.Handler.createLock = _create_native_lock


def start_thread(target: Callable[[], Any], name: str) -> None:
    """Start `target` on a real OS thread, even when threading is monkey-patched."""
    if gevent_active():
        from gevent import monkey

        native_logging_locks()
        monkey.get_original("_thread", "start_new_thread")(target, ())
    else:
        threading.Thread(target=target, name=name, daemon=True).start()


class Inbox:
    """A queue a worker OS thread blocks on; any thread or greenlet may put into it."""

    def __init__(self) -> None:
        self._queue = _queue.SimpleQueue()

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def get(self, timeout: float | None = None) -> Any:
        """Block this OS thread for the next item; raises Empty on timeout."""
        return self._queue.get(timeout=timeout)

    def get_nowait(self) -> Any:
        return self._queue.get_nowait()


class Channel(Protocol):
    def put(self, item: Any) -> None:
        """Called from any thread."""

    def get(self, timeout: float | None = None) -> Any:
        """Called from the consumer; raises Empty on timeout."""


class Mailer(Protocol):
    def channel(self) -> Channel: ...

    def close(self) -> None: ...


class ThreadMailer:
    """Consumers are plain threads: a blocking queue each is all it takes."""

    def channel(self) -> Channel:
        return Inbox()

    def close(self) -> None:
        pass


class _GeventChannel:
    def __init__(self, mailer: GeventMailer) -> None:
        from gevent.queue import Queue

        self._mailer = mailer
        self._queue = Queue()

    def put(self, item: Any) -> None:
        self._mailer.post(self._queue, item)

    def get(self, timeout: float | None = None) -> Any:
        from gevent.queue import Empty as GeventEmpty

        try:
            return self._queue.get(timeout=timeout)
        except GeventEmpty:
            raise Empty from None


class GeventMailer:
    """Consumers are greenlets of the hub that created this mailer."""

    def __init__(self) -> None:
        import gevent

        self._pending: deque = deque()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._deliver)

    def channel(self) -> Channel:
        return _GeventChannel(self)

    def post(self, queue: Any, item: Any) -> None:
        """Any thread: queue the item and wake the loop."""
        self._pending.append((queue, item))
        self._watcher.send()

    def _deliver(self) -> None:
        """Runs in the hub: move every pending item into its consumer's queue."""
        while self._pending:
            queue, item = self._pending.popleft()
            queue.put_nowait(item)

    def close(self) -> None:
        self._deliver()
        self._watcher.stop()


def make_mailer() -> Mailer:
    return GeventMailer() if gevent_active() else ThreadMailer()
