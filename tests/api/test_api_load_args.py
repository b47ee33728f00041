"""Load arguments over the API: text-generation-webui's documented example verbatim, the KV
cache's memory in model/info, unknown arguments refused with the known ones, GPU-only ones
accepted with a note, per-model settings from models.yaml, and the flags' defaults."""

from __future__ import annotations

import pytest
import requests
from api_helpers import assert_openai_error, post
from servers import make_user_data, start_server, tiny_args
from tiny_model import write_tiny_model

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Models whose attention heads hold 32 values, as quantized caches need, and one whose
    heads hold 16."""
    folder = tmp_path_factory.mktemp("arg-models")
    write_tiny_model(folder / "Qwen_Qwen3-0.6B-Q4_K_M.gguf", heads=2)
    write_tiny_model(folder / "Other Two Heads.gguf", heads=2, seed=3)
    write_tiny_model(folder / "narrow.gguf", seed=4)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("args")
    user_data = make_user_data(folder / "user_data")
    (user_data / "models.yaml").write_text(
        "# per-model settings, text-generation-webui's format\n"
        "other two:\n  ctx_size: 768\n  cache_type: q4_0\n  instruction_template: Alpaca\n"
        "other:\n  ctx_size: 640\n  parallel: 2\n  not_an_arg: 1\n",
        encoding="utf-8",
    )
    args = [*tiny_args(user_data, models, ctx_size=1024, model="narrow"), "--api", "--ubatch-size", "32"]
    proc = start_server(args, log_path=folder / "server.log")
    yield proc
    proc.stop()


def info(server) -> dict:
    response = requests.get(server.api_base + "/v1/internal/model/info", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_documented_example_works_verbatim_and_halves_the_cache(server):
    name = "Qwen_Qwen3-0.6B-Q4_K_M.gguf"  # the example's own model name, as a file here
    fp16 = post(server, "/v1/internal/model/load", {"model_name": name, "args": {"ctx_size": 32768}})
    assert fp16.status_code == 200, fp16.text
    before = info(server)
    assert before["cache_type"] == "fp16" and before["flash_attn"] is True  # the default, as llama-server's
    response = post(
        server,
        "/v1/internal/model/load",
        {"model_name": name, "args": {"ctx_size": 32768, "flash_attn": True, "cache_type": "q8_0"}},
    )
    assert response.status_code == 200, response.text
    after = info(server)
    assert after["model_name"] == "Qwen_Qwen3-0.6B-Q4_K_M" and after["n_ctx"] == 32768
    assert after["cache_type"] == "q8_0" and after["flash_attn"] is True
    assert after["args"] == {"ctx_size": 32768, "flash_attn": True, "cache_type": "q8_0"}
    ratio = after["kv_cache_bytes"] / before["kv_cache_bytes"]
    assert 0.45 < ratio < 0.6, ratio  # about half of fp16's
    assert after["kv_cache_bytes"] == after["kv_bytes_per_token"] * 32768 * after["stats"]["slots"]
    reply = post(server, "/v1/chat/completions", {"model": name, "messages": HI, "max_tokens": 3})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]


def test_a_quantized_cache_without_flash_attention_turns_it_on(server):
    response = post(
        server,
        "/v1/internal/model/load",
        {"model_name": "Qwen_Qwen3-0.6B-Q4_K_M", "args": {"cache_type": "q4_0", "flash_attn": False}},
    )
    assert response.status_code == 200, response.text
    assert info(server)["flash_attn"] is True
    assert "needs flash attention: it is on" in server.log()


def test_unknown_arguments_are_refused_with_the_known_ones(server):
    error = assert_openai_error(
        post(server, "/v1/internal/model/load", {"model_name": "narrow", "args": {"n_batch": 8}}), 400
    )
    assert error["param"] == "args.n_batch"
    for known in ("ctx_size", "cache_type", "rope_freq_base", "compress_pos_emb", "gpu_layers", "mlock"):
        assert known in error["message"]
    error = assert_openai_error(
        post(server, "/v1/internal/model/load", {"model_name": "narrow", "args": {"cache_type": "q3"}}), 400
    )
    assert error["param"] == "args.cache_type"


def test_a_quantized_cache_on_narrow_heads_is_a_400_and_nothing_changes(server):
    post(server, "/v1/internal/model/load", {"model_name": "narrow", "args": {"ctx_size": 1024}})
    error = assert_openai_error(
        post(server, "/v1/internal/model/load", {"model_name": "narrow", "args": {"cache_type": "q8_0"}}), 400
    )
    assert "32" in error["message"] and error["param"] == "args.cache_type"


def test_gpu_arguments_are_accepted_with_a_note(server):
    args = {"gpu_layers": 99, "tensor_split": "60,40", "no_kv_offload": True, "cpu_moe": True}
    response = post(server, "/v1/internal/model/load", {"model_name": "narrow", "args": args})
    assert response.status_code == 200, response.text
    log = server.log()
    for name in ("tensor_split", "no_kv_offload", "cpu_moe"):
        assert f"narrow: {name} is for GPUs and changes nothing here" in log
    reply = post(server, "/v1/completions", {"model": "narrow", "prompt": "Hello", "max_tokens": 2})
    assert reply.status_code == 200


def test_models_yaml_settings_apply_whenever_the_model_loads(server):
    post(server, "/v1/internal/model/unload", {})
    reply = post(
        server, "/v1/chat/completions", {"model": "Other Two Heads", "messages": HI, "max_tokens": 2}
    )
    assert reply.status_code == 200, reply.text
    loaded = info(server)
    # the first matching rule sets a key; a later one adds what it lacks; unknown keys are skipped
    assert loaded["n_ctx"] == 768 and loaded["cache_type"] == "q4_0" and loaded["stats"]["slots"] == 2
    assert "'not_an_arg' is not a load argument" in server.log()
    prompt = post(server, "/v1/internal/chat-prompt", {"model": "Other Two Heads", "messages": HI}).json()
    assert "<|im_start|>" in prompt["prompt"]  # the file's own template wins over the table's
    # a load request's args win over the table
    post(server, "/v1/internal/model/load", {"model_name": "Other Two Heads", "args": {"ctx_size": 512}})
    assert info(server)["n_ctx"] == 512 and info(server)["cache_type"] == "q4_0"


def test_flags_are_every_load_s_defaults(server):
    assert "ubatch_size" not in info(server)["args"]
    post(server, "/v1/internal/model/load", {"model_name": "narrow", "args": {"ctx_size": 300}})
    assert info(server)["n_ctx"] == 300  # the request's, over --ctx-size 1024
    post(server, "/v1/internal/model/load", {"model_name": "narrow"})
    assert info(server)["n_ctx"] == 1024 and info(server)["args"] == {}
