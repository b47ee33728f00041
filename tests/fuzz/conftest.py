"""Fixtures for the fuzz, schema and soak tests: real server processes on the tiny model."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from servers import ServerProcess, make_user_data, start_server, tiny_args


@pytest.fixture(scope="module")
def start_fuzz_server(tmp_path_factory, tiny_model_path) -> Iterator[Callable[..., ServerProcess]]:
    """`server.py --api` with the tiny model as the only model in its folder; stopped after the
    module, and its log checked for tracebacks (a 500 the responses hid would show there)."""
    started: list[ServerProcess] = []

    def start(*args: str, ctx_size: int = 1024) -> ServerProcess:
        folder = tmp_path_factory.mktemp("fuzz")
        models = folder / "models"
        models.mkdir()
        shutil.copy(tiny_model_path, models / "tiny.gguf")
        user_data = make_user_data(folder / "user_data")
        argv = [*tiny_args(user_data, models, ctx_size=ctx_size), "--api", *args]
        server = start_server(argv, log_path=folder / "server.log", timeout=120)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        assert "Traceback" not in server.log(), server.log()[-5000:]
