"""Fixtures for the browser UI: an in-process app and client, a real server process, and
headless Chromium driven by Playwright (Debian's, never a downloaded one)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

ORIGIN = "http://localhost"


@pytest.fixture
def web_app(open_app, make_settings):
    return open_app(make_settings())


@pytest.fixture
def ui(web_app):
    """A test client whose unsafe requests come from the UI's own origin, as a browser's do."""
    client = web_app.test_client()
    client.environ_base["HTTP_ORIGIN"] = ORIGIN
    return client


def traceback_free(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture
def ui_server(server) -> Callable:
    """A real `server.py` serving the UI (no API), waited for on the UI port."""
    started = []

    def start(*args: str, **kwargs):
        proc = server("--ctx-size", "2048", *args, wait_for="ui", **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        traceback_free(proc.log())
