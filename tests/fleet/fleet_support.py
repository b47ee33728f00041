"""Helpers for the fleet tests: reading the front's metrics and health, streaming."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import requests
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerProcess


def samples(server: ServerProcess, prefix: str = "hearth_upstream_") -> dict[tuple, float]:
    """Every sample of the front's /metrics whose name starts with `prefix`."""
    text = requests.get(server.api_base + "/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def upstream_requests(server: ServerProcess) -> dict[str, float]:
    """Requests each upstream ended (any outcome), by upstream name."""
    totals: dict[str, float] = {}
    for (name, labels), value in samples(server).items():
        if name == "hearth_upstream_requests_total":
            upstream = dict(labels)["upstream"]
            totals[upstream] = totals.get(upstream, 0) + value
    return totals


def wait_until(check: Callable[[], bool], timeout: float = 15, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def upstream_states(server: ServerProcess) -> dict[str, str]:
    return requests.get(server.api_base + "/health", timeout=10).json().get("upstreams", {})


def sse_events(response: requests.Response) -> Iterator[dict]:
    """The JSON events of a streamed response (the `[DONE]` line ends it)."""
    for line in response.iter_lines():
        match = re.match(rb"^data: (.*)$", line or b"")
        if not match:
            continue
        if match.group(1) == b"[DONE]":
            return
        yield json.loads(match.group(1))
