"""text-generation-webui's internal endpoints: tokens, logits, models, health."""

from __future__ import annotations

import math

import pytest
import requests
from api_helpers import assert_openai_error, post

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server(start_api):
    """A server of its own: these tests load and unload models."""
    return start_api()


def get(server, path):
    response = requests.get(server.api_base + path, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_encode_decode_and_count(server):
    encoded = post(server, "/v1/internal/encode", {"text": "Hello world, this is a test."}).json()
    assert encoded["length"] == len(encoded["tokens"]) and encoded["tokens"][0] == 1  # BOS
    without_bos = post(server, "/v1/internal/encode", {"text": "Hello world", "add_bos": False}).json()
    assert without_bos["tokens"][0] != 1
    decoded = post(server, "/v1/internal/decode", {"tokens": encoded["tokens"]}).json()
    assert decoded["text"] == "Hello world, this is a test."
    count = post(server, "/v1/internal/token-count", {"text": "Hello world, this is a test."}).json()
    assert count["length"] == encoded["length"]


def test_logits_before_and_after_the_samplers(server):
    raw = post(
        server, "/v1/internal/logits", {"prompt": "Who is best, Asuka or Rei? Answer:", "use_samplers": False}
    ).json()["logits"]
    probabilities = list(raw.values())
    assert len(raw) == 50 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1.0001
    top3 = post(
        server,
        "/v1/internal/logits",
        {"prompt": "Who is best, Asuka or Rei? Answer:", "use_samplers": True, "top_k": 3},
    ).json()["logits"]
    assert list(top3) == list(raw)[:3]  # the same three tokens, renormalised
    assert math.isclose(sum(top3.values()), 1.0, rel_tol=1e-6)


def test_model_list_load_info_and_unload(server):
    assert set(get(server, "/v1/internal/model/list")["model_names"]) == {
        "tiny",
        "Tiny Two Instruct",
        "SmolLM2-135M-Instruct",
    }
    info = get(server, "/v1/internal/model/info")
    assert info["model_name"] == "tiny" and info["n_ctx"] == 1024 and info["loader"] == "llama.cpp"
    loaded = post(
        server,
        "/v1/internal/model/load",
        {"model_name": "Tiny Two Instruct", "args": {"ctx_size": 2048, "parallel": 2, "flash_attn": True}},
    )
    assert loaded.status_code == 200 and loaded.json()["model_name"] == "Tiny Two Instruct"
    info = get(server, "/v1/internal/model/info")
    assert info["model_name"] == "Tiny Two Instruct" and info["n_ctx"] == 2048
    assert info["stats"]["slots"] == 2
    reply = post(server, "/v1/chat/completions", {"messages": HI, "max_tokens": 2}).json()
    assert reply["model"] == "Tiny Two Instruct"  # no model named: the last loaded one
    unloaded = post(server, "/v1/internal/model/unload", {}).json()
    assert set(unloaded["unloaded"]) == {"tiny", "Tiny Two Instruct"}
    assert get(server, "/v1/internal/model/info")["model_name"] is None
    reply = post(server, "/v1/chat/completions", {"messages": HI, "max_tokens": 2}).json()
    assert reply["model"] == "tiny"  # none loaded: the --model default comes back


def test_load_remembers_the_instruction_template(server):
    post(
        server,
        "/v1/internal/model/load",
        {"model_name": "tiny", "settings": {"instruction_template": "Alpaca"}},
    )
    assert get(server, "/v1/internal/model/info")["instruction_template"] == "Alpaca"
    prompt = post(server, "/v1/internal/chat-prompt", {"messages": HI}).json()["prompt"]
    assert "### Instruction:" in prompt
    chatml = post(
        server, "/v1/internal/chat-prompt", {"messages": HI, "instruction_template": "ChatML"}
    ).json()
    assert "<|im_start|>" in chatml["prompt"]  # a template the request names wins
    post(server, "/v1/internal/model/load", {"model_name": "tiny", "instruction_template": None})
    assert "<|im_start|>" in post(server, "/v1/internal/chat-prompt", {"messages": HI}).json()["prompt"]


def test_load_with_bad_args_is_a_400(server):
    error = assert_openai_error(
        post(server, "/v1/internal/model/load", {"model_name": "tiny", "args": {"ctx_size": -5}}), 400
    )
    assert error["param"] == "args.ctx_size"


@pytest.mark.parametrize("path", ["/health", "/v1/internal/health"])
def test_health(server, path):
    assert get(server, path)["status"] == "ok"


def test_health_is_503_while_a_model_loads(app, monkeypatch):
    manager = app.extensions["hearth"].models
    monkeypatch.setattr(type(manager), "loading", property(lambda self: True))
    client = app.test_client()
    for path in ("/health", "/v1/internal/health"):
        response = client.get(path)
        assert response.status_code == 503 and response.get_json()["status"] == "loading"
