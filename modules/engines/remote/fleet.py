"""The fleet: every upstream server, what each serves, and their health, as one service on
the app with a clear start and close.

At start every upstream is probed at once (its model list, its kind); then each has a
checker thread (a greenlet under gevent) that asks its health endpoint every `interval`
seconds. `failures` consecutive failures, of checks or of requests routed to it, eject it:
no new request goes there, and the requests waiting there for their first byte are moved
to another upstream. An ejected upstream is probed every interval; when it answers, its
model list is read again (it may have changed) and it takes requests again.
"""

from __future__ import annotations

import logging
import threading
import time

from ..base import GenerationObserver
from ..registry import LoadOptions
from .config import FleetConfig
from .dialects import DISCOVERY_TIMEOUT
from .http import HttpError, StreamBroken, Unreachable, timed_out
from .kinds import DIALECTS, detect
from .pool import EJECTED, UNKNOWN, UP, Member, Upstream

log = logging.getLogger(__name__)

START_WAIT = DISCOVERY_TIMEOUT  # at most this long at start for the first answers


class FleetEvents:
    """What the fleet tells the metrics; the default tells nobody."""

    def request_finished(
        self,
        upstream: str,
        model: str,
        outcome: str,
        prompt_tokens: int,
        completion_tokens: int,
        first_token: float | None,
        seconds: float,
    ) -> None:
        pass

    def request_failed(self, upstream: str, kind: str) -> None:
        pass

    def retried(self, upstream: str) -> None:
        pass


class Fleet:
    def __init__(self, config: FleetConfig, events: FleetEvents | None = None) -> None:
        self.config = config
        self.policy = config.health
        self.events = events or FleetEvents()
        self.upstreams = [Upstream(c) for c in config.upstreams]
        self._known: dict[str, list[str]] = {}  # model name -> upstreams that ever offered it
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.version = 0  # grows whenever an upstream joins, leaves or changes its models

    # --- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        """Probe every upstream (waiting a few seconds at most), then check them regularly."""
        if not self.upstreams:
            return
        first = [threading.Thread(target=self._probe, args=(u,), daemon=True) for u in self.upstreams]
        for thread in first:
            thread.start()
        deadline = time.monotonic() + START_WAIT
        for thread in first:
            thread.join(max(0.0, deadline - time.monotonic()))
        for upstream in self.upstreams:
            thread = threading.Thread(
                target=self._watch, args=(upstream,), name=f"upstream-{upstream.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + self.policy.timeout + 1  # a check in progress may take that long
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        for upstream in self.upstreams:
            upstream.endpoint.close()

    # --- what it serves ---------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Every model an upstream offers, or offered before it went away (its requests then
        get 503 until it is back, not 404)."""
        with self._lock:
            return list(self._known)

    def knows(self, name: str) -> bool:
        return name in self._known

    def members(self, name: str) -> list[Member]:
        return [u.members[name] for u in self.upstreams if name in u.members]

    def upstream_names(self, name: str) -> list[str]:
        """The upstreams that offer (or offered) the model, in the order they were declared."""
        owners = self._known.get(name, ())
        return [u.name for u in self.upstreams if u.name in owners]

    def engine(self, name: str, options: LoadOptions, observer: GenerationObserver | None):
        from .engine import RemoteEngine

        return RemoteEngine(name, self, options, observer)

    def status(self) -> dict[str, str]:
        return {u.name: u.state for u in self.upstreams}

    # --- health -----------------------------------------------------------------------------------

    def _watch(self, upstream: Upstream) -> None:
        while not self._stop.wait(self.policy.interval):
            try:
                if upstream.up:
                    self._check(upstream)
                else:
                    self._probe(upstream)
            except Exception:  # a bug here must not end the checks
                log.exception("checking upstream %s failed", upstream.name)

    def _check(self, upstream: Upstream) -> None:
        try:
            upstream.dialect.check_health(upstream.endpoint, self.policy.timeout)
        except (HttpError, Unreachable, StreamBroken) as error:
            # A server busy streaming to us may answer its checks late (llama-server when its
            # HTTP threads are all taken, llama-cpp-python's server while it generates): a
            # late answer from an upstream that just sent us tokens is not a failure.
            recently = time.monotonic() - upstream.last_seen < self.policy.interval + self.policy.timeout
            if timed_out(error) and recently:
                log.debug("upstream %s answered its check late while streaming", upstream.name)
                return
            self.failed(upstream, f"health check: {error}", kind="health")
            return
        with upstream.lock:
            upstream.failures = 0

    def _probe(self, upstream: Upstream) -> bool:
        """Read the upstream's model list (and its kind): it is up when that works."""
        try:
            listed = upstream.endpoint.call("GET", "/v1/models", timeout=max(self.policy.timeout, 5.0))
            kind = upstream.config.kind
            if kind != "auto":
                dialect = DIALECTS[kind]
            else:
                dialect = upstream.dialect or detect(upstream.endpoint, listed)
            offered = upstream.offered(dialect.listings(listed))
        except (HttpError, Unreachable, StreamBroken, KeyError, TypeError, ValueError) as error:
            reason = str(error) or type(error).__name__
            if upstream.state != EJECTED or reason != upstream.last_error:
                url = upstream.config.url
                log.warning("upstream %s (%s) does not answer: %s", upstream.name, url, reason)
            with upstream.lock:
                upstream.last_error = reason
                if upstream.state == UNKNOWN:
                    upstream.state = EJECTED
            return False
        with upstream.lock:
            upstream.dialect = dialect
            members = {}
            for name, listing in offered.items():
                member = upstream.members.get(name)
                if member is None or member.model != listing.id:
                    member = Member(upstream, listing.id, listing)
                else:
                    member.listing, member.details = listing, None  # details are read again
                members[name] = member
            upstream.members = members
            was = upstream.state
            upstream.state, upstream.failures, upstream.last_error = UP, 0, ""
        with self._lock:
            for name in offered:
                owners = self._known.setdefault(name, [])
                if upstream.name not in owners:
                    owners.append(upstream.name)
            self.version += 1
        names = ", ".join(offered) or "no models"
        if was == EJECTED:
            log.info("upstream %s is back (%s): %s", upstream.name, dialect.kind, names)
        else:
            log.info("upstream %s (%s at %s): %s", upstream.name, dialect.kind, upstream.config.url, names)
        return True

    def failed(self, upstream: Upstream, reason: str, *, kind: str) -> None:
        """A failed check or request: enough in a row eject the upstream."""
        self.events.request_failed(upstream.name, kind)
        with upstream.lock:
            upstream.failures += 1
            upstream.last_error = reason
            eject = upstream.up and upstream.failures >= self.policy.failures
            if eject:
                upstream.state = EJECTED
                waiting = [g for m in upstream.members.values() for g in m.running]
        if not eject:
            return
        with self._lock:
            self.version += 1
        log.warning("upstream %s ejected after %d failures: %s", upstream.name, upstream.failures, reason)
        for generation in waiting:
            generation.upstream_lost()

    def succeeded(self, upstream: Upstream) -> None:
        if upstream.failures:
            with upstream.lock:
                upstream.failures = 0


def fleet_events(metrics) -> FleetEvents:
    """The metrics' side of the fleet's events (see modules/metrics.py)."""
    return metrics.upstream_events() if metrics is not None else FleetEvents()
