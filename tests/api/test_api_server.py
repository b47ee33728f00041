"""The API inside the running server: concurrent clients under gevent, request logging, and
the hook other model kinds use to appear in /v1/models."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from api_helpers import post
from stream_events import chunks

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def busy_server(start_api):
    return start_api("--parallel", "2", env={"OPENEDAI_DEBUG": "1"})


def test_concurrent_clients_get_their_own_answers(busy_server):
    """Six clients at once, two sequences batched at a time: each gets what it would get alone."""
    prompts = [f"Story number {i}:" for i in range(6)]

    def complete(prompt: str) -> str:
        body = {"prompt": prompt, "max_tokens": 24, "temperature": 0}
        response = post(busy_server, "/v1/completions", body)
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["text"]

    def stream(prompt: str) -> str:
        response = requests.post(
            busy_server.api_url + "/completions",
            stream=True,
            timeout=60,
            json={"prompt": prompt, "max_tokens": 24, "temperature": 0, "stream": True},
        )
        return "".join(c["choices"][0]["text"] for c in chunks(response)[0])

    alone = [complete(p) for p in prompts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(complete, prompts))
        streamed = list(pool.map(stream, prompts))
    assert together == alone and streamed == alone
    assert len(set(alone)) > 1


def test_debug_logs_each_request(busy_server):
    post(busy_server, "/v1/chat/completions", {"messages": HI, "max_tokens": 1})
    requests.get(busy_server.api_url + "/nope", timeout=10)

    def logged() -> bool:  # each line is written when its response has ended
        log = busy_server.log()
        return bool(re.search(r"POST /v1/chat/completions -> 200 \(\d+ bytes in\)", log)) and (
            "GET /v1/nope -> 404" in log
        )

    deadline = time.monotonic() + 5
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged(), busy_server.log()[-2000:]


def test_other_model_kinds_join_the_listing(app):
    from extensions.openai.state import KEY

    app.extensions[KEY].model_sources.append(
        lambda: [{"id": "fake-embedder", "created": 1, "kind": "embedding", "dimensions": 384}]
    )
    client = app.test_client()
    listing = client.get("/v1/models").get_json()["data"]
    assert [m["id"] for m in listing][-1] == "fake-embedder"
    assert listing[0]["kind"] == "text"
    one = client.get("/v1/models/fake-embedder").get_json()
    assert one == {
        "id": "fake-embedder",
        "object": "model",
        "created": 1,
        "owned_by": "hearth",
        "kind": "embedding",
        "loaded": False,
        "dimensions": 384,
    }
