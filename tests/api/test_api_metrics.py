"""The bounded queue, stopping one generation among several, and /metrics over HTTP.

A full queue refuses with 429 in OpenAI's shape (code `queue_full`, `Retry-After`) and the
server serves again once the slot is free; stopping a generation by id stops that one only;
/metrics parses and counts every generation that ended, the stopped and the abandoned ones
("cancelled") too, and every request by endpoint and status, the 429s included.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from api_helpers import assert_openai_error, post
from prometheus_client.parser import text_string_to_metric_families

LONG = 15000  # tokens: many seconds of the tiny model, so an unstopped generation is still busy
HI = [{"role": "user", "content": "Hi"}]
API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
Samples = dict[tuple[str, tuple], float]


@pytest.fixture(scope="module")
def one_slot_api(start_api):
    """One sequence slot and room for one waiting request."""
    return start_api("--ctx-size", "16384", "--parallel", "1", "--queue-size", "1")


@pytest.fixture(scope="module")
def two_slot_api(start_api):
    return start_api("--ctx-size", "16384", "--parallel", "2")


# --- Helpers -------------------------------------------------------------------------------------


def scrape(server) -> Samples:
    """Every sample of /metrics, parsed by prometheus-client's own parser."""
    response = requests.get(server.api_base + "/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def increase(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def generations(before: Samples, after: Samples, reason: str) -> float:
    return increase(before, after, "hearth_generations_total", model="tiny", finish_reason=reason)


def generated_tokens(before: Samples, after: Samples) -> float:
    return increase(before, after, "hearth_generated_tokens_total", model="tiny")


def requests_with(before: Samples, after: Samples, path: str, status: int) -> float:
    labels = {"endpoint": path, "method": "POST", "status": str(status)}
    return increase(before, after, "hearth_http_requests_total", **labels)


def stats(server) -> dict:
    return requests.get(server.api_url + "/internal/model/info", timeout=30).json()["stats"]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def wait_for_metrics(server, check: Callable[[Samples], bool], seconds: float = 30) -> Samples:
    """The first scrape that passes `check`: a generation is counted just after it ends."""
    deadline = time.monotonic() + seconds
    while True:
        samples = scrape(server)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


class Stream:
    """A streamed completion that keeps generating (ignore_eos) until it is stopped."""

    def __init__(self, server, max_tokens: int = LONG) -> None:
        body = {"prompt": "Once upon a time", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
        self.response = requests.post(server.api_url + "/completions", json=body, stream=True, timeout=60)
        assert self.response.status_code == 200
        self.chunks: Iterator[dict] = (
            json.loads(line[6:])
            for line in self.response.iter_lines(decode_unicode=True)
            if line.startswith("data: ") and line != "data: [DONE]"
        )
        self.first = next(self.chunks)
        self.id = self.first["id"]
        self.tokens = 0  # at least this many generated: each chunk with text holds a token or more
        self._count([self.first])

    def _count(self, chunks: list[dict]) -> list[dict]:
        self.tokens += sum(1 for chunk in chunks if chunk["choices"][0]["text"])
        return chunks

    def take(self, n: int) -> list[dict]:
        return self._count([next(self.chunks) for _ in range(n)])

    def rest(self) -> list[dict]:
        return self._count(list(self.chunks))

    def close(self) -> None:
        self.response.close()


def finish_reasons(chunks: list[dict]) -> list[str]:
    return [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]


def stop(server, request_id: str) -> None:
    response = post(server, "/v1/internal/stop-generation", {"id": request_id})
    assert response.status_code == 200 and response.json()["stopped"] == 1


# --- The bounded queue -----------------------------------------------------------------------------


def test_a_full_queue_refuses_with_429_and_the_server_recovers(one_slot_api):
    server = one_slot_api
    before = scrape(server)
    running = Stream(server)  # takes the only slot
    wait_for(lambda: stats(server)["busy_slots"] == 1, 30, "the long request never started")
    answers: dict[str, requests.Response] = {}
    body = {"prompt": "Hi", "max_tokens": 5, "ignore_eos": True}
    waiting = threading.Thread(target=lambda: answers.update(waiting=post(server, "/v1/completions", body)))
    waiting.start()
    wait_for(lambda: stats(server)["queued"] == 1, 30, "the second request never queued")

    refused = post(server, "/v1/chat/completions", {"messages": HI, "max_tokens": 5})
    error = assert_openai_error(refused, 429)
    assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
    assert int(refused.headers["Retry-After"]) >= 1
    now = stats(server)
    assert (now["busy_slots"], now["queued"]) == (1, 1)  # the refused request changed nothing

    stop(server, running.id)
    assert finish_reasons(running.rest()) == ["stop"]
    waiting.join(timeout=60)
    assert answers["waiting"].status_code == 200
    assert answers["waiting"].json()["usage"]["completion_tokens"] == 5
    served = post(server, "/v1/chat/completions", {"messages": HI, "max_tokens": 5, "ignore_eos": True})
    assert served.status_code == 200 and served.json()["choices"][0]["finish_reason"] == "length"

    after = scrape(server)
    assert requests_with(before, after, "/v1/chat/completions", 429) == 1
    assert requests_with(before, after, "/v1/chat/completions", 200) == 1
    assert requests_with(before, after, "/v1/completions", 200) == 2
    assert generations(before, after, "cancelled") == 1  # the stopped one
    assert generations(before, after, "length") == 2
    assert generated_tokens(before, after) >= running.tokens + 10
    assert value(after, "hearth_queue_depth", model="tiny") == 0


# --- Stopping one generation among several ----------------------------------------------------------


def test_stopping_one_stream_by_id_leaves_the_other_streaming(two_slot_api):
    server = two_slot_api
    before = scrape(server)
    a, b = Stream(server), Stream(server)
    assert a.id != b.id
    b.take(20)
    assert stats(server)["busy_slots"] == 2

    stop(server, a.id)
    a_rest = a.rest()  # ends soon: unstopped, it would run for LONG tokens
    assert finish_reasons(a_rest) == ["stop"] and a.tokens < LONG
    later = b.take(500)  # B goes on long after A ended
    assert finish_reasons(later) == []
    assert stats(server)["busy_slots"] == 1

    b.close()  # B's client goes away mid-stream
    wait_for(lambda: stats(server)["busy_slots"] == 0, 30, "the abandoned stream kept running")
    after = wait_for_metrics(server, lambda s: generations(before, s, "cancelled") >= 2)
    assert generations(before, after, "cancelled") == 2  # A stopped, B abandoned
    assert generations(before, after, "stop") == generations(before, after, "length") == 0
    tokens = generated_tokens(before, after)
    assert a.tokens + b.tokens <= tokens < 2 * LONG
    time.sleep(0.5)
    assert generations(before, scrape(server), "cancelled") == 2, "each generation is counted once"


def test_a_whole_answer_whose_client_leaves_is_counted_as_cancelled(two_slot_api):
    server = two_slot_api
    before = scrape(server)
    payload = json.dumps({"prompt": "Once upon a time", "max_tokens": LONG, "ignore_eos": True}).encode()
    client = socket.create_connection(("127.0.0.1", server.api_port), timeout=30)
    client.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    wait_for(lambda: stats(server)["busy_slots"] == 1, 30, "the request never started")
    client.close()  # gives up before any byte of the answer came
    wait_for(lambda: stats(server)["busy_slots"] == 0, 30, "the abandoned answer kept running")
    after = wait_for_metrics(server, lambda s: generations(before, s, "cancelled") >= 1)
    assert generations(before, after, "cancelled") == 1
    assert 0 < generated_tokens(before, after) < LONG


# --- The metrics are documented ----------------------------------------------------------------------


def test_api_md_documents_every_metric_and_its_labels(two_slot_api):
    response = requests.get(two_slot_api.api_base + "/metrics", timeout=30)
    families = [f for f in text_string_to_metric_families(response.text) if not f.name.endswith("_created")]
    assert len(families) >= 10
    section = API_MD.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    for family in families:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert re.search(rf"`{name}`", section), f"docs/api.md does not document {name}"
        for label in {label for sample in family.samples for label in sample.labels} - {"le"}:
            assert f"`{label}`" in section, f"{name}: label {label} is not documented"
