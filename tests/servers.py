"""Starting the real server as a process, as users do, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent


USER_DATA_FOLDERS = ("models", "characters", "presets", "logs", "cache", "extensions")


def make_user_data(folder: Path) -> Path:
    """A fresh user_data folder with the layout the repository ships."""
    for sub in USER_DATA_FOLDERS:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


def tiny_args(
    user_data: Path,
    model_dir: Path,
    *,
    ctx_size: int = 512,
    model: str | None = "tiny",
    threads_batch: int = 1,
) -> list[str]:
    """Flags for Hearth on the tiny test model: small, fast and one thread."""
    args = [
        "--user-data-dir",
        str(user_data),
        "--model-dir",
        str(model_dir),
        "--ctx-size",
        str(ctx_size),
        "--threads",
        "1",
        "--threads-batch",
        str(threads_batch),
    ]
    return [*args, "--model", model] if model else args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    ui_port: int
    api_port: int
    log_path: Path
    scheme: str = "http"
    host: str = "127.0.0.1"
    extra: dict = field(default_factory=dict)

    @property
    def ui_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.ui_port}"

    @property
    def api_base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.api_port}"

    @property
    def api_url(self) -> str:
        return f"{self.api_base}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def start_server(
    args: Sequence[str],
    *,
    log_path: Path,
    env: dict | None = None,
    wait_for: str | None = "api",
    timeout: float = 90,
    verify: bool | str = True,
) -> ServerProcess:
    """Start `python server.py ARGS` on free ports and wait until it answers /health."""
    ui_port, api_port = free_port(), free_port()
    argv = [sys.executable, "server.py", "--listen-port", str(ui_port), "--api-port", str(api_port), *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    for name in list(full_env):
        if name.startswith("OPENEDAI_") and name not in (env or {}):
            del full_env[name]
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
    )
    server = ServerProcess(process, ui_port, api_port, log_path)
    if "--ssl-certfile" in args:
        server.scheme = "https"
    if wait_for is None:
        return server
    url = (server.api_base if wait_for == "api" else server.ui_url) + "/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if requests.get(url, timeout=2, verify=verify).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become healthy in {timeout}s:\n{server.log()}")
