"""ModelWorker: lazy loading on one dedicated OS thread, errors back to the caller, streams
that stop when the reader goes away, and unloading."""

from __future__ import annotations

import threading
import time

import pytest

from modules.engines.crossthread import ThreadMailer
from modules.engines.worker import ModelWorker
from modules.errors import InvalidRequest, Unavailable

pytestmark = pytest.mark.media


class FakeModel:
    def __init__(self) -> None:
        self.loaded_on = threading.get_ident()
        self.produced: list[int] = []

    def count(self, n: int):
        for i in range(n):
            time.sleep(0.01)
            self.produced.append(i)
            yield i


def make_worker(load=FakeModel, release=None) -> ModelWorker:
    return ModelWorker("fake", load, ThreadMailer(), release=release)


def test_loads_lazily_on_its_own_thread_and_runs_every_call_there():
    loads = []

    def load():
        loads.append(threading.get_ident())
        return FakeModel()

    worker = make_worker(load)
    assert not worker.loaded and loads == []
    threads = {worker.call(lambda m: threading.get_ident()) for _ in range(5)}
    assert worker.loaded
    assert len(loads) == 1
    assert threads == {loads[0]} and loads[0] != threading.get_ident()
    worker.close()


def test_errors_come_back_to_the_caller_and_the_worker_goes_on():
    worker = make_worker()

    def bad(model):
        raise InvalidRequest("no")

    with pytest.raises(InvalidRequest):
        worker.call(bad)
    with pytest.raises(ZeroDivisionError):
        worker.call(lambda m: 1 / 0)
    assert worker.call(lambda m: 42) == 42
    worker.close()


def test_a_failed_load_is_a_503_and_is_retried_on_the_next_job():
    attempts = []

    def load():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk on fire")
        return FakeModel()

    worker = make_worker(load)
    with pytest.raises(Unavailable, match="disk on fire"):
        worker.call(lambda m: m)
    assert not worker.loaded
    assert isinstance(worker.call(lambda m: m), FakeModel)
    assert len(attempts) == 2
    worker.close()


def test_stream_yields_items_in_order():
    worker = make_worker()
    assert list(worker.stream(lambda m: m.count(5))) == [0, 1, 2, 3, 4]
    worker.close()


def test_closing_a_stream_early_stops_the_producer():
    worker = make_worker()
    model = worker.call(lambda m: m)
    stream = worker.stream(lambda m: m.count(200))
    assert next(stream) == 0
    stream.close()
    worker.call(lambda m: None)  # the worker has moved on to the next job
    assert len(model.produced) < 20


def test_close_finishes_queued_work_releases_the_model_and_refuses_more():
    released = []
    worker = make_worker(release=lambda m: released.append(threading.get_ident()))
    model = worker.call(lambda m: m)
    worker.close()
    deadline = time.monotonic() + 5
    while not released and time.monotonic() < deadline:
        time.sleep(0.01)
    assert released == [model.loaded_on]
    assert not worker.loaded
    with pytest.raises(Unavailable, match="unloaded"):
        worker.call(lambda m: m)


LOGGING_RACE = """
from gevent import monkey; monkey.patch_all()
import logging, sys, time
import gevent
from modules.engines.crossthread import start_thread
logging.basicConfig(level=logging.INFO, stream=open("/dev/null", "w"))
log = logging.getLogger("race")
done = []
def model_thread():
    for i in range(20000):
        log.info("worker %d", i)
        logging.getLogger(f"w{i % 50}")
    done.append(True)
start_thread(model_thread, "race")
started = time.monotonic()
while not done and time.monotonic() - started < 60:
    log.info("greenlet")
    gevent.sleep(0)
print("ok" if done and logging.getLogger().handlers[0].lock.acquire(timeout=5) else "stuck")
"""


def test_logging_from_model_threads_and_greenlets_does_not_deadlock():
    """gevent's patched locks break when a real thread and a greenlet log at once."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_RACE],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_join_waits_for_the_thread_to_drop_the_model():
    released = []

    def release(model):
        time.sleep(0.2)
        released.append(model)

    worker = make_worker(release=release)
    worker.call(lambda m: m)
    worker.close()
    assert worker.join(timeout=5)
    assert released and worker.join(timeout=0)
    never_started = make_worker()
    never_started.close()
    assert never_started.join(timeout=0)
