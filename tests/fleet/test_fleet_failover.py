"""When upstreams fail: a killed upstream loses no request that had not started streaming (they
go to the other one) and the streams it was writing end with a clear error; it is used again
when it comes back; a client that drops a stream makes Hearth close the upstream request
within 100 ms; a busy upstream's 429 sends the request elsewhere; with nothing up, a 503."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from fleet_support import samples, sse_events, upstream_requests, upstream_states, wait_until
from servers import PROJECT_ROOT, free_port

from modules.engines.remote.pool import affinity_key, ranked

API_MD = PROJECT_ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def setup(fleet):
    port_a = free_port()
    a, b = fleet.upstream(port=port_a), fleet.upstream()
    busy = fleet.upstream("--parallel", "1", "--queue-size", "1")
    front = fleet.front({"a": a.api_base, "b": b.api_base, "busy": busy.api_base}, "--model", "tiny")
    return SimpleNamespace(a=a, b=b, busy=busy, port_a=port_a, front=front, fleet=fleet)


def stream_chat(front, text: str, max_tokens: int = 500, **extra) -> dict:
    """One streamed chat: did content arrive, how did it end, what error came."""
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        **extra,
    }
    out = {"started": False, "finish": None, "error": None, "status": None}
    with requests.post(front.api_url + "/chat/completions", json=body, stream=True, timeout=120) as response:
        out["status"] = response.status_code
        if response.status_code != 200:
            out["error"] = response.json()["error"]
            return out
        for event in sse_events(response):
            if "error" in event:
                out["error"] = event["error"]
                break
            for choice in event.get("choices") or []:
                out["started"] = out["started"] or bool(choice["delta"].get("content"))
                out["finish"] = choice.get("finish_reason") or out["finish"]
    return out


def key_preferring(side: str, names: tuple[str, ...], capacities: dict[str, int]) -> str:
    members = [SimpleNamespace(upstream=SimpleNamespace(name=n), capacity=capacities[n]) for n in names]
    for i in range(1000):
        history_id = f"pref-{side}-{i}"
        if ranked(affinity_key(f"history:{history_id}", ""), members)[0].upstream.name == side:
            return history_id
    raise AssertionError("no key found")


CAPACITIES = {"a": 4, "b": 4, "busy": 1}


def test_a_busy_upstream_sends_the_request_elsewhere(setup):
    """The front does not know that someone else fills `busy`: its 429 is a retry elsewhere."""
    history_id = key_preferring("busy", ("a", "b", "busy"), CAPACITIES)
    retried = ("hearth_upstream_retries_total", (("upstream", "busy"),))
    for _ in range(3):  # on a loaded machine the first hog may end before the request comes
        with ThreadPoolExecutor(2) as pool:
            # Straight to the upstream: one generates, one waits in its queue of one.
            hogs = [pool.submit(stream_chat, setup.busy, f"hog {i}", 1900) for i in range(2)]
            assert wait_until(lambda: queued(setup.busy) == 1, timeout=10, step=0.01)
            before = samples(setup.front)
            result = stream_chat(setup.front, "Hello", 8, history_id=history_id)
            assert result["finish"] == "length" and result["error"] is None, result
            after = samples(setup.front)
            assert [hog.result()["finish"] for hog in hogs] == ["length", "length"], [
                h.result() for h in hogs
            ]
        if after.get(retried, 0) == before.get(retried, 0) + 1:
            break
    assert after.get(retried, 0) == before.get(retried, 0) + 1
    assert upstream_states(setup.front)["busy"] == "up"  # busy is not broken


def stats(server, model: str = "tiny") -> dict:
    return requests.get(server.api_url + f"/internal/model/info?model={model}", timeout=5).json()["stats"]


def busy_slots(server) -> int:
    return stats(server)["busy_slots"]


def queued(server) -> int:
    return stats(server)["queued"]


def test_a_dropped_stream_closes_the_upstream_request_within_100_ms(setup):
    for attempt in range(3):  # the machine is shared: one slow poll is not Hearth's delay
        connection = http.client.HTTPConnection("127.0.0.1", setup.front.api_port, timeout=30)
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": f"A long story {attempt}"}],
            "max_tokens": 1900,
            "ignore_eos": True,
            "stream": True,
        }
        connection.request(
            "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        assert response.status == 200
        received = b""
        while received.count(b"data: ") < 20:
            received += response.read1(4096)
        upstreams = [u for u in (setup.a, setup.b, setup.busy) if busy_slots(u)]
        assert len(upstreams) == 1
        connection.sock.shutdown(socket.SHUT_RDWR)  # the client goes away mid-stream
        connection.sock.close()
        response.close()
        dropped = time.monotonic()
        upstream = upstreams[0]
        assert wait_until(lambda: busy_slots(upstream) == 0, timeout=5, step=0.002)  # noqa: B023
        elapsed = time.monotonic() - dropped
        if elapsed <= 0.1:
            break
    assert elapsed <= 0.1, f"the upstream still generated {elapsed * 1000:.0f} ms after the client left"
    assert wait_until(lambda: in_flight(setup.front) == 0, timeout=2)


def in_flight(front) -> float:
    return sum(v for (name, _), v in samples(front).items() if name == "hearth_upstream_in_flight")


def test_stop_generation_at_the_front_stops_the_upstream(setup):
    with requests.post(
        setup.front.api_url + "/chat/completions",
        json={
            "model": "tiny",
            "messages": [{"role": "user", "content": "Go on"}],
            "max_tokens": 1900,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        stream=True,
        timeout=60,
    ) as response:
        events = sse_events(response)
        first = next(events)
        stopped = requests.post(
            setup.front.api_url + "/internal/stop-generation", json={"id": first["id"]}, timeout=10
        )
        assert stopped.json()["stopped"] == 1
        rest = list(events)
    finish = [c["finish_reason"] for e in rest for c in e.get("choices") or [] if c.get("finish_reason")]
    assert finish == ["stop"]
    assert rest[-1]["usage"]["completion_tokens"] < 1900
    assert wait_until(lambda: busy_slots(setup.a) + busy_slots(setup.b) == 0, timeout=2)


def test_killing_an_upstream_during_50_requests_loses_none_that_had_not_started(setup):
    done: list[dict] = []

    def one(i: int) -> dict:
        result = stream_chat(setup.front, f"Story number {i}", 300)
        done.append(result)
        return result

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, i) for i in range(50)]
        assert wait_until(lambda: len(done) >= 10, timeout=60)
        setup.a.process.send_signal(signal.SIGKILL)  # no goodbye: connections reset, port closed
        killed_at = len(done)
        results = [future.result() for future in futures]
    setup.a.process.wait(timeout=10)
    complete = [r for r in results if r["finish"] == "length" and r["error"] is None]
    failed = [r for r in results if r["error"] is not None]
    assert len(complete) + len(failed) == 50, results
    assert all(r["started"] for r in failed), [r for r in failed if not r["started"]]
    for result in failed:  # a clear error event, not a silent cut
        message = result["error"]["message"]
        assert re.search(r"upstream server a .*failed in the middle of the reply", message), message
        assert result["error"]["code"] == "upstream_error"
    assert len(complete) > 50 - killed_at - 8  # the requests after the kill went to b
    assert upstream_states(setup.front)["a"] == "ejected"
    metrics = samples(setup.front)
    assert metrics[("hearth_upstream_ejected", (("upstream", "a"),))] == 1
    assert sum(v for (name, labels), v in metrics.items() if name == "hearth_upstream_failures_total") >= 1

    # a comes back on its port: the health checks admit it again, and it takes requests
    setup.a = setup.fleet.upstream(port=setup.port_a)
    assert wait_until(lambda: upstream_states(setup.front)["a"] == "up", timeout=15)
    before = upstream_requests(setup.front).get("a", 0)
    history_id = key_preferring("a", ("a", "b", "busy"), CAPACITIES)
    assert stream_chat(setup.front, "Welcome back", 8, history_id=history_id)["finish"] == "length"
    assert upstream_requests(setup.front)["a"] == before + 1


def test_with_no_upstream_up_requests_get_a_503_and_health_says_so(fleet):
    lonely = fleet.upstream()
    dead = f"http://127.0.0.1:{free_port()}"
    front = fleet.front({"lonely": lonely.api_base, "dead": dead}, "--model", "tiny")
    assert upstream_states(front) == {"lonely": "up", "dead": "ejected"}  # down at start: served anyway
    assert stream_chat(front, "Hi", 4)["finish"] == "length"
    lonely.stop(signal.SIGKILL)
    assert wait_until(lambda: upstream_states(front)["lonely"] == "ejected", timeout=10)
    response = requests.post(
        front.api_url + "/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=30,
    )
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("No upstream server serving tiny can take requests")
    assert response.headers["Retry-After"]
    health = requests.get(front.api_base + "/health", timeout=10)
    assert health.status_code == 503 and health.json()["status"] == "no_upstream"


def test_api_md_documents_every_upstream_metric(setup):
    section = Path(API_MD).read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    names = {(name, labels) for name, labels in samples(setup.front)}
    assert {name for name, _ in names} >= {
        "hearth_upstream_requests_total",
        "hearth_upstream_in_flight",
        "hearth_upstream_ejected",
        "hearth_upstream_time_to_first_token_seconds_bucket",
    }
    for name, labels in names:
        family = re.sub(r"_(bucket|sum|count|created)$", "", name)
        if name.endswith("_created"):
            continue
        assert f"`{family}`" in section or f"`{name}`" in section, f"docs/api.md does not document {name}"
        for label, _ in labels:
            assert label == "le" or f"`{label}`" in section, f"{name}: label {label} is not documented"
