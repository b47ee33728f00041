"""Which text models stay loaded: holds, idle times, keep-alive, and whom to unload for room.

A model is busy while a request holds it (from choosing it until the request's view has
returned; a stream's generations count from then on, see `busy`) or while its engine has
generations running or waiting. Only an idle model is ever unloaded, to make room or
because it stayed idle past its keep-alive.

Keep-alive follows Ollama: each request sets how long its model may stay idle after it
(seconds; 0: unload as soon as it is idle; negative: never), or, naming none, restores the
server's `--model-ttl` (0 there means never). Idle time counts from the moment the model
was last seen busy.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from .base import TextEngine

FOREVER = -1.0
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_keep_alive(value: int | float | str) -> float:
    """Ollama's keep_alive in seconds: a number of seconds, or a duration string as Go writes
    them ("5m", "1h30m", "90s", "-1", "0"); negative means forever (FOREVER). ValueError
    when it is neither."""
    if isinstance(value, bool):
        raise ValueError("keep_alive is a number of seconds or a duration such as '5m'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
            parts = _DURATION.findall(body)
            if not body or "".join(number + unit for number, unit in parts) != body:
                raise ValueError(f"{value[:40]!r} is not a duration such as '5m' or '1h30m'") from None
            seconds = sign * sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not math.isfinite(seconds):
        raise ValueError("keep_alive must be finite")
    return FOREVER if seconds < 0 else seconds


@dataclass
class _Entry:
    holds: int = 0
    last_active: float = 0.0
    keep_alive: float | None = None  # seconds; None: the server's ttl; negative: forever


def engine_busy(engine: TextEngine) -> bool:
    stats = engine.stats()
    return bool(stats.busy_slots or stats.queued)


class Residency:
    """Bookkeeping only; the model manager calls it under its lock."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def _entry(self, name: str) -> _Entry:
        return self._entries.setdefault(name, _Entry(last_active=self._clock()))

    def used(self, name: str, keep_alive: float | None) -> None:
        """A request chose the model: it is active now, with the request's keep-alive."""
        entry = self._entry(name)
        entry.last_active = self._clock()
        entry.keep_alive = keep_alive

    def hold(self, name: str) -> None:
        self._entry(name).holds += 1

    def release(self, name: str) -> None:
        entry = self._entry(name)
        entry.holds = max(0, entry.holds - 1)
        entry.last_active = self._clock()

    def forget(self, name: str) -> None:
        """The model was unloaded. Its holds and keep-alive go with it."""
        self._entries.pop(name, None)

    def busy(self, name: str, engine: TextEngine) -> bool:
        entry = self._entry(name)
        if entry.holds or engine_busy(engine):
            entry.last_active = self._clock()
            return True
        return False

    def keep_alive(self, name: str) -> float:
        """Seconds the model may stay idle; negative: forever."""
        value = self._entry(name).keep_alive
        if value is None:
            return self._ttl if self._ttl > 0 else FOREVER
        return value

    def expired(self, name: str, engine: TextEngine) -> bool:
        """Idle for longer than its keep-alive (checked, which also notes a busy model)."""
        if self.busy(name, engine):
            return False
        keep = self.keep_alive(name)
        return keep >= 0 and self._clock() - self._entry(name).last_active >= keep

    def state(self, name: str) -> dict:
        """For the model list: the keep-alive and the seconds since the model was last active."""
        entry = self._entry(name)
        return {
            "keep_alive": self.keep_alive(name),
            "idle_seconds": round(self._clock() - entry.last_active, 3),
        }
