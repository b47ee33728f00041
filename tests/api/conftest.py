"""API fixtures: real server processes (one per test module), the official client, and
OpenAI's response schemas."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, start_server
from tiny_model import write_tiny_model

SERVER_BASE = ["--ctx-size", "1024", "--threads", "1", "--threads-batch", "1"]


def make_user_data(folder: Path) -> Path:
    for sub in ("models", "characters", "presets", "logs", "cache", "extensions"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def start_api(tmp_path_factory, model_dir) -> Iterator[Callable[..., ServerProcess]]:
    """Start `server.py --api` with the tiny model; every server stops after the module."""
    started: list[ServerProcess] = []

    def start(
        *args: str, models: Path | None = None, model: str | None = "tiny", env: dict | None = None
    ) -> ServerProcess:
        folder = tmp_path_factory.mktemp("api")
        argv = [
            "--user-data-dir",
            str(make_user_data(folder / "user_data")),
            "--model-dir",
            str(models or model_dir),
            *SERVER_BASE,
            "--api",
        ]
        if model:
            argv += ["--model", model]
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
