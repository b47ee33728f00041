"""Background responses (`"background": true`): generations that outlive their request.

The request starts the generation and answers at once; a worker (a greenlet under the
server, a thread elsewhere) reads the generation to its end and saves the response. The
jobs belong to the app: `close()` cancels them and waits for them, so nothing outlives
the app that started it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CLOSE_WAIT_SECONDS = 10.0


@dataclass
class Job:
    response_id: str
    work: Callable[[Job], None]  # reads the generation to its end; checks `cancelled`
    cancel_generation: Callable[[], None]
    snapshot: Callable[[], dict]  # the response as it stands
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled = True
        self.cancel_generation()


class BackgroundJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closed = False

    def start(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the app is closing")
            self._jobs[job.response_id] = job
        threading.Thread(
            target=self._run, args=(job,), name=f"response {job.response_id}", daemon=True
        ).start()

    def _run(self, job: Job) -> None:
        try:
            job.work(job)
        except Exception:
            log.exception("background response %s failed", job.response_id)
        finally:
            with self._lock:
                self._jobs.pop(job.response_id, None)
            job.done.set()

    def get(self, response_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(response_id)

    def cancel(self, response_id: str) -> Job | None:
        """Cancel a running job and wait for it to save its response; None if none runs."""
        job = self.get(response_id)
        if job is not None:
            job.cancel()
            job.done.wait(CLOSE_WAIT_SECONDS)
        return job

    def close(self) -> None:
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.done.wait(CLOSE_WAIT_SECONDS)
