"""Streams end when the client goes away or asks to stop, and end the way each client expects."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from api_helpers import post
from stream_events import chunks

LONG = 15000  # tokens: over ten seconds of the tiny model, so an unstopped generation is still busy
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def long_api(start_api):
    return start_api("--ctx-size", "16384")


def busy(server) -> int:
    stats = requests.get(server.api_url + "/internal/model/info", timeout=10).json()["stats"]
    return stats["busy_slots"] + stats["queued"]


def wait_until_idle(server, seconds: float) -> float:
    """Seconds until the engine has nothing to do (fails after `seconds`)."""
    start = time.monotonic()
    while busy(server):
        assert time.monotonic() - start < seconds, "the generation kept running"
        time.sleep(0.05)
    return time.monotonic() - start


def open_stream(server, path="/v1/chat/completions", **body):
    payload = {"messages": HI, "max_tokens": LONG, "stream": True, **body}
    if path == "/v1/completions":
        payload = {"prompt": "Once upon a time", "max_tokens": LONG, "stream": True, **body}
    response = requests.post(server.api_base + path, json=payload, stream=True, timeout=60)
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_closing_the_stream_stops_the_generation(long_api, path):
    response = open_stream(long_api, path)
    lines = response.iter_lines()
    for _ in range(10):
        next(lines)
    assert busy(long_api) == 1
    response.close()  # the client goes away mid-stream
    wait_until_idle(long_api, seconds=3)
    # the next request is served at once, not after the abandoned one
    started = time.monotonic()
    post(long_api, "/v1/completions", {"prompt": "Hi", "max_tokens": 5})
    assert time.monotonic() - started < 3


def test_stop_generation_by_id_ends_the_stream_cleanly(long_api):
    response = open_stream(long_api)
    lines = (line for line in response.iter_lines(decode_unicode=True) if line.startswith("data: {"))
    first = json.loads(next(lines)[6:])
    stop = post(long_api, "/v1/internal/stop-generation", {"id": first["id"]})
    assert stop.status_code == 200 and stop.json()["stopped"] == 1
    rest = [json.loads(line[6:]) for line in lines]
    assert rest[-1]["choices"][0]["finish_reason"] == "stop"
    assert sum(1 for chunk in rest if chunk["choices"][0]["delta"].get("content")) < LONG
    wait_until_idle(long_api, seconds=3)


def test_stop_generation_of_a_whole_request_with_n_choices(long_api):
    result = {}

    def run():
        result["response"] = post(
            long_api, "/v1/completions", {"prompt": "Hi", "max_tokens": LONG // 2, "n": 2, "temperature": 1.0}
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not busy(long_api):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    post(long_api, "/v1/internal/stop-generation", {})  # no key configured: anyone may stop all
    thread.join(timeout=20)
    body = result["response"].json()
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "stop"]
    assert body["usage"]["completion_tokens"] < LONG


def test_request_ids_are_engine_ids_and_stop_a_running_request(long_api):
    response = open_stream(long_api, "/v1/completions", n=2)
    lines = (line for line in response.iter_lines(decode_unicode=True) if line.startswith("data: {"))
    first = json.loads(next(lines)[6:])
    assert first["id"].startswith("cmpl-")
    # a second choice runs under `<id>-1`; stopping it leaves choice 0 running
    assert post(long_api, "/v1/internal/stop-generation", {"id": first["id"] + "-1"}).status_code == 200
    assert post(long_api, "/v1/internal/stop-generation", {"id": first["id"]}).status_code == 200
    rest = [json.loads(line[6:]) for line in lines]
    finishes = [c["choices"][0]["finish_reason"] for c in [first, *rest] if c["choices"][0]["finish_reason"]]
    assert finishes == ["stop", "stop"]


@pytest.mark.parametrize(
    "user_agent",
    ["python-requests/2.32.3", "OpenAI/Python 3.54.0", "OpenAI/JS 5.0.0", "curl/8.0", ""],
)
def test_every_client_gets_the_done_marker(api, user_agent):
    """One protocol for every client: the stream ends with [DONE] whatever the User-Agent
    (python-requests clients once got none; that surprised clients waiting for it)."""
    response = requests.post(
        api.api_url + "/chat/completions",
        stream=True,
        timeout=30,
        headers={"User-Agent": user_agent},
        json={"messages": HI, "max_tokens": 3, "stream": True},
    )
    parts, got_done = chunks(response)
    assert got_done and parts
    assert parts[-1]["choices"][0]["finish_reason"] == "length"


def test_a_failure_after_the_headers_is_an_error_event(app):
    """A stream cannot change its status once it started: the error is the last event."""
    from extensions.openai.sse import sse_response
    from modules.errors import Unavailable

    closed = []

    def payloads():
        yield {"choices": []}
        raise Unavailable("The model was unloaded.")

    with app.test_request_context(headers={"User-Agent": "OpenAI/Python"}):
        response = sse_response(payloads(), lambda: closed.append(True))
        body = b"".join(response.iter_encoded()).decode()
    events = [e.removeprefix("data: ") for e in body.strip().split("\n\n")]
    assert json.loads(events[0]) == {"choices": []}
    assert json.loads(events[1])["error"]["message"] == "The model was unloaded."
    assert len(events) == 2 and closed


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_client_that_gives_up_on_a_whole_answer_frees_its_slot(long_api, path):
    import socket

    body = {"messages": HI} if path.endswith("chat/completions") else {"prompt": "Once upon a time"}
    payload = json.dumps({**body, "max_tokens": LONG, "ignore_eos": True}).encode()
    client = socket.create_connection(("127.0.0.1", long_api.api_port), timeout=10)
    client.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    deadline = time.monotonic() + 10
    while not busy(long_api):
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.02)
    client.close()  # gives up before any byte of the answer came
    wait_until_idle(long_api, seconds=3)  # ~LONG tokens would keep it busy for many seconds
