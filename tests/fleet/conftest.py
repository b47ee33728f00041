"""Fleet fixtures: real upstream servers on loopback (Hearth `--nowebui` on the tiny model,
llama-cpp-python's server on the default model) and a Hearth in front of them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from servers import ServerProcess, make_user_data, start_server, tiny_args

FAST_HEALTH = {"interval": 0.3, "timeout": 1.0, "failures": 2}


class Fleet:
    """Starts upstreams and fronts for one test module; stops them all at its end."""

    def __init__(self, tmp_path_factory, model_dir: Path) -> None:
        self._tmp = tmp_path_factory
        self._model_dir = model_dir
        self.started: list[ServerProcess] = []

    def upstream(self, *args: str, port: int | None = None, ctx_size: int = 2048) -> ServerProcess:
        """A Hearth on the tiny model, API only, four slots."""
        folder = self._tmp.mktemp("upstream")
        user_data = make_user_data(folder / "user_data")
        argv = [*tiny_args(user_data, self._model_dir, ctx_size=ctx_size), "--nowebui", "--parallel", "4"]
        if port is None:
            server = start_server([*argv, *args], log_path=folder / "server.log")
        else:  # a fixed port (to come back on): the last --api-port wins
            server = start_server(
                [*argv, *args, "--api-port", str(port)], log_path=folder / "server.log", wait_for=None
            )
            server.api_port = port
            self.started.append(server)
            if not _healthy(server):
                raise RuntimeError(f"upstream did not start:\n{server.log()}")
            return server
        self.started.append(server)
        return server

    def front(
        self,
        upstreams: dict[str, str],
        *args: str,
        health: dict | None = None,
        entries: dict | None = None,
        wait_for: str | None = "api",
        files: dict[str, str] | None = None,
        local: bool = False,
    ) -> ServerProcess:
        """Hearth in front of `upstreams` (name -> URL), with no local model unless `local`;
        `files` are written into its user_data first (extensions, characters)."""
        folder = self._tmp.mktemp("front")
        user_data = make_user_data(folder / "user_data")
        for relative, text in (files or {}).items():
            (user_data / relative).parent.mkdir(parents=True, exist_ok=True)
            (user_data / relative).write_text(text)
        config = {"health": health or FAST_HEALTH, "upstreams": entries or {}}
        (user_data / "upstreams.yaml").write_text(json.dumps(config))
        argv = ["--user-data-dir", str(user_data), "--api"]
        if not local:
            argv.append("--no-local-model")
        for name, url in upstreams.items():
            argv += ["--upstream", f"{name}={url}"]
        server = start_server([*argv, *args], log_path=folder / "server.log", wait_for=wait_for)
        server.extra["user_data"] = user_data
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, model_dir) -> Iterator[Fleet]:
    started = Fleet(tmp_path_factory, model_dir)
    yield started
    started.stop_all()


def _healthy(server: ServerProcess, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if requests.get(server.api_base + "/health", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False
