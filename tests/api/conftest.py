"""API fixtures: real server processes (one per test module), the official client, and
OpenAI's response schemas."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, make_user_data, start_server, tiny_args
from tiny_model import write_tiny_model


@pytest.fixture(scope="module")
def start_api(tmp_path_factory, model_dir) -> Iterator[Callable[..., ServerProcess]]:
    """Start `server.py --api` with the tiny model; every server stops after the module."""
    started: list[ServerProcess] = []

    def start(
        *args: str, models: Path | None = None, model: str | None = "tiny", env: dict | None = None
    ) -> ServerProcess:
        folder = tmp_path_factory.mktemp("api")
        user_data = make_user_data(folder / "user_data")
        argv = [*tiny_args(user_data, models or model_dir, ctx_size=1024, model=model), "--api"]
        server = start_server([*argv, *args], log_path=folder / "server.log", env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def api(start_api) -> ServerProcess:
    """A plain API server: no keys, the tiny model loaded, context 1024."""
    return start_api()


@pytest.fixture(scope="module")
def client(api):
    import openai

    return openai.OpenAI(base_url=api.api_url, api_key="sk-local", max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def named_model_dir(tmp_path_factory, tiny_model_path) -> Path:
    """A model folder as GPT4All users have it: a model whose name has spaces."""
    folder = tmp_path_factory.mktemp("named-models")
    shutil.copy(tiny_model_path, folder / "Phi-3 Mini Instruct.gguf")
    write_tiny_model(folder / "Tiny Two Instruct.gguf", seed=1, name="Tiny Two")
    return folder
