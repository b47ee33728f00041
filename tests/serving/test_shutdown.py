"""SIGTERM/SIGINT: streams end with their final chunk and [DONE]; the server exits 0 quickly."""

from __future__ import annotations

import json
import signal
import time

import requests
import simple_websocket
from serving_support import install_ws_extension, wait_until

MAX_TOKENS = 1900  # the tiny model needs ~2 s for these; the signal comes after 5 chunks


def test_sigterm_during_a_stream_ends_it_cleanly(serve):
    server = serve("--api", "--ctx-size", "2048")
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = requests.post(server.api_url + "/chat/completions", json=body, stream=True, timeout=30)
    assert response.status_code == 200
    events, signalled = [], None
    for line in response.iter_lines():
        if not line:
            continue
        events.append(line.decode())
        if len(events) == 5:
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
    assert signalled is not None, events
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    finals = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert finals == ["stop"]  # cancelled: it stopped, short of max_tokens ("length")
    usage = chunks[-1]["usage"]
    assert 1 <= usage["completion_tokens"] < MAX_TOKENS
    assert server.process.wait(timeout=10) == 0
    assert time.monotonic() - signalled < 5
    assert "cancelled the running generations" in server.log()


def test_sigint_with_idle_connections_and_a_websocket_exits_at_once(serve, user_data):
    server = serve("--api", "--extensions", install_ws_extension(user_data))
    session = requests.Session()  # keeps its connection open after the request
    assert session.get(server.api_base + "/health", timeout=10).status_code == 200
    ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{server.ui_port}/ws/echo")
    ws.send("hi")
    assert ws.receive(timeout=10) == "hi"
    started = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 3  # nothing waited for the idle connections
    assert wait_until(lambda: not ws.connected, timeout=5)  # the server closed it
    session.close()
    assert "stopped" in server.log()
