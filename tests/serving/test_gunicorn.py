"""The documented deployment: gunicorn -k gevent with the app factory, flags in HEARTH_ARGS."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import simple_websocket
from openai import OpenAI
from servers import PROJECT_ROOT, free_port
from serving_support import GUNICORN_COMMAND, install_ws_extension, wait_until

GUNICORN = Path(sys.executable).with_name("gunicorn")


@pytest.fixture
def gunicorn(tmp_path, user_data, tiny_model_path):
    processes = []

    def start(hearth_args: str) -> tuple[subprocess.Popen, str, Path]:
        port = free_port()
        log_path = tmp_path / f"gunicorn{len(processes)}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENEDAI_")}
        env["HEARTH_ARGS"] = (
            f"--user-data-dir {user_data} --model {tiny_model_path} --ctx-size 512 "
            f"--threads 1 --threads-batch 1 {hearth_args}"
        )
        command = [str(GUNICORN), *shlex.split(GUNICORN_COMMAND.format(port=port))[1:]]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return requests.get(base + "/health", timeout=2).ok
            except requests.RequestException:
                return False

        assert wait_until(healthy, timeout=60, step=0.2), log_path.read_text()
        return process, base, log_path

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


needs_gunicorn = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed here")


@needs_gunicorn
def test_gunicorn_serves_everything_on_one_port(gunicorn, user_data):
    process, base, log_path = gunicorn(f"--api --extensions {install_ws_extension(user_data)}")
    # No listener tag under gunicorn: UI and API routes share its one port.
    assert requests.get(base + "/health", timeout=10).json() == {"status": "ok", "models": []}
    assert requests.get(base + "/ui-page", timeout=10).text == "a UI page"
    assert "hearth_http_requests" in requests.get(base + "/metrics", timeout=10).text
    ws = simple_websocket.Client.connect(base.replace("http", "ws") + "/ws/echo")
    ws.send("through gunicorn")
    assert ws.receive(timeout=10) == "through gunicorn"
    ws.close()
    # The Host guard holds (settings from HEARTH_ARGS: loopback only).
    refused = requests.get(base + "/v1/models", headers={"Host": "evil.example"}, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "host_not_allowed"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started < 10, log_path.read_text()


@needs_gunicorn
def test_gunicorn_serves_a_chat_completion(gunicorn):
    _, base, _ = gunicorn("--api --api-key sk-test")
    client = OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
    reply = client.chat.completions.create(
        model="tiny", max_tokens=8, temperature=0, messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens >= 1
    streamed = client.chat.completions.create(
        model="tiny",
        max_tokens=8,
        temperature=0,
        stream=True,
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert [chunk.choices[0].finish_reason for chunk in streamed if chunk.choices][-1] in ("stop", "length")
