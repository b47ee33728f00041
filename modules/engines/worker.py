"""One OS thread per model: every call into the model runs there, in order.

The media models (torch, CTranslate2, onnxruntime) hold the GIL only part of the time and
spend the rest in native thread pools. Calling them from gevent's loop would stall every
other request, and calling one model from several OS threads gives each thread its own
OpenMP team, which fight for the cores (../shared/FACTS.md). So each model gets one
dedicated thread, which also loads it lazily on its first job; request handlers wait on a
mailer channel (a greenlet under gevent, a plain thread elsewhere) while it works.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import HearthError, Unavailable
from .crossthread import Channel, Empty, Inbox, Mailer, gevent_active, start_thread

log = logging.getLogger(__name__)

M = TypeVar("M")
T = TypeVar("T")

_RESULT, _ITEM, _END, _ERROR = "result", "item", "end", "error"


@dataclass(eq=False)
class _Job:
    run: Callable[[Any], Any]
    channel: Channel
    streaming: bool
    # Set by the consumer (any thread) when it stops listening; read by the worker between
    # items. A plain attribute: gevent's Event is not safe across OS threads.
    cancelled: bool = field(default=False)


_STOP = object()


class ModelWorker(Generic[M]):
    """A model that loads on first use and runs each job on its own OS thread."""

    def __init__(
        self, name: str, load: Callable[[], M], mailer: Mailer, release: Callable[[M], None] | None = None
    ) -> None:
        self.name = name
        self._load = load
        self._release = release
        self._mailer = mailer
        self._inbox = Inbox()
        self._exited = Inbox()  # gets one item when the thread has dropped the model and ends
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._model: M | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    # --- Called by request handlers -------------------------------------------------------------

    def call(self, run: Callable[[M], T]) -> T:
        """Run `run(model)` on the worker thread and return its result (or raise its error)."""
        job = _Job(run, self._mailer.channel(), streaming=False)
        self._submit(job)
        kind, value = job.channel.get()
        if kind == _ERROR:
            raise value
        return value

    def stream(self, run: Callable[[M], Iterator[T]]) -> Iterator[T]:
        """Iterate `run(model)` on the worker thread; closing this iterator early stops it."""
        job = _Job(run, self._mailer.channel(), streaming=True)
        self._submit(job)
        return self._read(job)

    def _read(self, job: _Job) -> Iterator[Any]:
        try:
            while True:
                kind, value = job.channel.get()
                if kind == _ITEM:
                    yield value
                elif kind == _END:
                    return
                else:
                    raise value
        finally:
            job.cancelled = True

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise Unavailable(f"The {self.name} was unloaded; retry the request.")
            if not self._started:
                self._started = True
                start_thread(self._serve, name=f"model-{self.name}")
        self._inbox.put(job)

    def close(self) -> None:
        """Finish the jobs already queued, then drop the model and end the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._started
        if started:
            self._inbox.put(_STOP)
        else:
            self._exited.put(True)

    def join(self, timeout: float) -> bool:
        """After close(): wait until the thread has ended. At exit this matters: a thread
        still freeing a torch model while the interpreter runs its exit handlers can crash
        the process (seen as llama.cpp's abort handler attaching gdb)."""
        try:
            self._exited.get(timeout=timeout)
        except Empty:
            return False
        self._exited.put(True)  # for any later join
        return True

    # --- The worker thread ------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            job = self._inbox.get()
            if job is _STOP:
                break
            if not job.cancelled:
                self._run(job)
                _run_thread_greenlets()
        try:
            model, self._model = self._model, None
            if model is not None:
                if self._release is not None:
                    self._release(model)
                del model
                gc.collect()
                log.info("unloaded %s", self.name)
        finally:
            self._exited.put(True)

    def _run(self, job: _Job) -> None:
        try:
            model = self._ensure_loaded()
            if not job.streaming:
                job.channel.put((_RESULT, job.run(model)))
                return
            items = job.run(model)
            try:
                for item in items:
                    if job.cancelled:
                        return
                    job.channel.put((_ITEM, item))
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
            job.channel.put((_END, None))
        except Exception as exc:
            # Every failure goes back to the caller, whose error handler logs it once.
            job.channel.put((_ERROR, exc))

    def _ensure_loaded(self) -> M:
        if self._model is None:
            log.info("loading %s", self.name)
            try:
                self._model = self._load()
            except HearthError:
                raise
            except Exception as exc:
                log.exception("loading %s failed", self.name)
                raise Unavailable(f"The {self.name} could not be loaded: {exc}") from exc
            log.info("loaded %s", self.name)
        return self._model


def _run_thread_greenlets() -> None:
    """Under gevent, give this thread's own hub a turn.

    With threading monkey-patched, a library that starts a thread (transformers' and
    diffusers' loading pools do) gets a greenlet in the hub of the calling OS thread, and
    this thread otherwise blocks where gevent cannot see (the Inbox). Without a turn, a
    pool that was shut down never finishes, and the interpreter hangs at exit joining it.
    """
    if gevent_active():
        import gevent

        for _ in range(3):
            gevent.sleep(0)
