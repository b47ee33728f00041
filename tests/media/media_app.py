"""The media blueprint under a stand-in for the API blueprint, until that one lands on main.

The stand-in does what the API's blueprint does for its children: OpenAI-shaped errors
(install_error_handlers) and the API-key check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from flask import Blueprint, Flask
from servers import PROJECT_ROOT, ServerProcess, free_port

from extensions.openai import media
from extensions.openai.http import check_api_key, install_error_handlers
from modules.app import create_app
from modules.settings import Settings


def create_media_app(settings: Settings) -> Flask:
    app = create_app(settings)
    parent = Blueprint("api_stand_in", __name__)
    install_error_handlers(parent, lambda: True)
    parent.before_request(check_api_key)
    parent.register_blueprint(media.blueprint)
    app.register_blueprint(parent)
    return app


SERVE_MEDIA = Path(__file__).with_name("serve_media.py")


def start_media_server(args: list[str], log_path: Path, timeout: float = 120) -> ServerProcess:
    """Start the media test server as a process on a free port and wait for /health."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENEDAI_")}
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, str(SERVE_MEDIA), "--api-port", str(port), *args],
                               cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = ServerProcess(process, 0, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.api_base + "/health", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not become healthy in {timeout}s:\n{server.log()}")
