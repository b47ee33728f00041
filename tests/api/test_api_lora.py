"""LoRA adapters through the API (text-generation-webui's lora/list, load, unload, and
llama-server's per-request `lora`), with adapters generated for the tiny model."""

from __future__ import annotations

import pytest
import requests
from api_helpers import assert_openai_error, post
from servers import make_user_data, start_server, tiny_args
from tiny_lora import write_tiny_lora

PROMPT = "Who is best, Asuka or Rei? Answer:"


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir):
    folder = tmp_path_factory.mktemp("lora")
    user_data = make_user_data(folder / "user_data")
    (user_data / "loras").mkdir()
    write_tiny_lora(user_data / "loras" / "style.gguf")
    write_tiny_lora(user_data / "loras" / "other.gguf", seed=11)
    (user_data / "loras" / "broken.gguf").write_bytes(b"GGUF, but not an adapter")
    proc = start_server([*tiny_args(user_data, model_dir), "--api"], log_path=folder / "server.log")
    yield proc
    proc.stop()


def get(server, path: str) -> dict:
    response = requests.get(server.api_base + path, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def logits(server, **fields) -> dict[str, float]:
    response = post(server, "/v1/internal/logits", {"prompt": PROMPT, "top_logits": 20, **fields})
    assert response.status_code == 200, response.text
    return response.json()["logits"]


def test_list_load_with_scales_and_unload(server):
    assert sorted(get(server, "/v1/internal/lora/list")["lora_names"]) == ["broken", "other", "style"]
    base = logits(server)
    loaded = post(server, "/v1/internal/lora/load", {"lora_names": ["style"]})
    assert loaded.status_code == 200 and loaded.json()["lora_names"] == ["style"]
    info = get(server, "/v1/internal/model/info")
    assert info["lora_names"] == ["style"] and info["loras"] == [{"id": 0, "name": "style", "scale": 1.0}]
    full = logits(server)
    post(server, "/v1/internal/lora/load", {"lora_names": ["style"], "lora_scales": [0.4]})
    light = logits(server)
    best = max(full, key=full.get)
    assert full != base and light not in (base, full)
    assert full[best] > light.get(best, 0.0) > base.get(best, 0.0)  # it moves with the scale
    unloaded = post(server, "/v1/internal/lora/unload", {})
    assert unloaded.status_code == 200 and unloaded.json()["lora_names"] == []
    assert get(server, "/v1/internal/model/info")["lora_names"] == []
    assert logits(server) == base  # back exactly


def test_a_request_names_its_own_scales(server):
    base = logits(server)
    post(server, "/v1/internal/lora/load", {"lora_names": ["style", "other"], "lora_scales": [0, 0]})
    assert logits(server) == base  # loaded, switched off
    styled = logits(server, lora=[{"id": 0, "scale": 1.0}])
    assert styled != base
    both = logits(server, lora=[{"id": 0, "scale": 1.0}, {"id": 1, "scale": 1.0}])
    assert both not in (base, styled)
    chat = post(
        server,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "lora": [{"id": 1, "scale": 0.5}]},
    )
    assert chat.status_code == 200, chat.text
    error = assert_openai_error(
        post(server, "/v1/completions", {"prompt": "Hi", "lora": [{"id": 5, "scale": 1}]}), 400
    )
    assert error["param"] == "lora.0.id" and "other" in error["message"]
    post(server, "/v1/internal/lora/unload", {})


def test_bad_adapters_are_400s_and_change_nothing(server):
    post(server, "/v1/internal/lora/load", {"lora_names": ["style"]})
    for body, param in (
        ({"lora_names": ["missing"]}, "lora_names.0"),
        ({"lora_names": ["broken"]}, "lora_names"),
        ({"lora_names": ["style"], "lora_scales": [1, 2]}, "lora_scales"),
    ):
        error = assert_openai_error(post(server, "/v1/internal/lora/load", body), 400)
        assert error["param"] == param, error
    assert get(server, "/v1/internal/model/info")["lora_names"] == ["style"]
    post(server, "/v1/internal/lora/unload", {})


def test_a_model_keeps_its_adapters_when_it_is_loaded_again(server):
    post(server, "/v1/internal/lora/load", {"lora_names": ["style"], "lora_scales": [0.5]})
    styled = logits(server)
    post(server, "/v1/internal/model/unload", {})
    assert logits(server) == styled  # loaded again on demand, with its adapters
    assert get(server, "/v1/internal/model/info")["loras"] == [{"id": 0, "name": "style", "scale": 0.5}]
    post(server, "/v1/internal/lora/unload", {})
