"""Models on demand in a real server: with --models-max 1 --model-ttl 2, two models requested
alternately each answer (the other is unloaded); an idle model leaves the loaded list within
ttl + 1 s; keep_alive (Ollama's meaning) per request; model states in /v1/models."""

from __future__ import annotations

import time

import pytest
import requests
from api_helpers import assert_openai_error, post
from servers import make_user_data, start_server, tiny_args

HI = [{"role": "user", "content": "Hi"}]
TTL = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir):
    folder = tmp_path_factory.mktemp("on-demand")
    user_data = make_user_data(folder / "user_data")
    args = [*tiny_args(user_data, model_dir), "--api", "--models-max", "1", "--model-ttl", str(TTL)]
    proc = start_server(args, log_path=folder / "server.log")
    yield proc
    proc.stop()


def states(server) -> dict[str, dict]:
    response = requests.get(server.api_url + "/models", timeout=30)
    assert response.status_code == 200, response.text
    return {card["id"]: card for card in response.json()["data"] if card["kind"] == "text"}


def loaded(server) -> list[str]:
    return [name for name, card in states(server).items() if card["state"] == "loaded"]


def chat(server, model: str, **fields) -> dict:
    response = post(
        server, "/v1/chat/completions", {"model": model, "messages": HI, "max_tokens": 3, **fields}
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_unloaded(server, started: float, limit: float) -> float:
    """Poll the model list until nothing is loaded; the seconds it took from `started`."""
    while loaded(server):
        assert time.monotonic() - started < limit, f"still loaded after {limit:.1f} s: {loaded(server)}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_two_models_requested_alternately_each_answer(server):
    for model in ("tiny", "Tiny Two Instruct", "tiny", "Tiny Two Instruct"):
        assert chat(server, model)["model"] == model
        assert loaded(server) == [model]  # the other one made room
    cards = states(server)
    assert cards["Tiny Two Instruct"]["keep_alive"] == TTL
    assert cards["tiny"]["state"] == "unloaded" and not cards["tiny"]["loaded"]
    assert "unloading tiny to make room for Tiny Two Instruct" in server.log()


def test_an_idle_model_is_unloaded_within_ttl_and_a_second(server):
    chat(server, "tiny")
    idle_since = time.monotonic()
    took = wait_until_unloaded(server, idle_since, TTL + 1)
    assert took >= TTL - 0.2  # not before its time either
    assert "unloaded model tiny: idle past its keep-alive" in server.log()
    assert chat(server, "tiny")["model"] == "tiny"  # and it loads again on demand


def test_a_stream_keeps_its_model_until_it_ends(server):
    with requests.post(
        server.api_url + "/chat/completions",
        json={"model": "tiny", "messages": HI, "max_tokens": 200, "stream": True, "keep_alive": 0},
        stream=True,
        timeout=60,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]" and len(lines) > 50  # it was not unloaded under the stream
    wait_until_unloaded(server, time.monotonic(), 1.0)  # keep_alive 0: gone once it ended


def test_keep_alive_per_request(server):
    chat(server, "tiny", keep_alive="5m")
    assert states(server)["tiny"]["keep_alive"] == 300
    time.sleep(TTL + 0.5)
    assert loaded(server) == ["tiny"]  # kept past --model-ttl
    chat(server, "tiny", keep_alive=-1)
    assert states(server)["tiny"]["keep_alive"] == -1
    response = post(
        server, "/v1/completions", {"model": "tiny", "prompt": "Hi", "max_tokens": 2, "keep_alive": 0}
    )
    assert response.status_code == 200
    wait_until_unloaded(server, time.monotonic(), 1.0)
    for bad in ("soon", "5x", True, [], {}):
        error = assert_openai_error(
            post(server, "/v1/chat/completions", {"model": "tiny", "messages": HI, "keep_alive": bad}), 400
        )
        assert error["param"] == "keep_alive", error


def test_the_other_protocols_take_keep_alive_too(server):
    responses = post(
        server, "/v1/responses", {"model": "tiny", "input": "Hi", "max_output_tokens": 16, "keep_alive": 0}
    )
    assert responses.status_code == 200, responses.text
    wait_until_unloaded(server, time.monotonic(), 1.0)
    messages = post(
        server,
        "/v1/messages",
        {"model": "tiny", "max_tokens": 4, "messages": HI, "keep_alive": "1h"},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert messages.status_code == 200, messages.text
    assert states(server)["tiny"]["keep_alive"] == 3600
