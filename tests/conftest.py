"""Fixtures: settings -> app -> client, tiny models, and real server processes."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from servers import ServerProcess, make_user_data, start_server, tiny_args
from tiny_model import write_tiny_model

from modules.app import close_app, create_app
from modules.settings import Settings, load_settings

CHROMIUM = "/usr/bin/chromium"  # Debian's: tests/setup.sh installs it; never a downloaded one
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Playwright. Missing, it fails: the test setup installs it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run tests/setup.sh (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser) -> Iterator[Callable]:
    """Pages in fresh browser contexts; any script error on a page fails the test."""
    contexts, errors = [], []

    def make(width: int = 1280, height: int = 820, color_scheme: str = "light"):
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=color_scheme)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "dialog", lambda dialog: (errors.append(f"native dialog: {dialog.message}"), dialog.dismiss())
        )
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors


@pytest.fixture(scope="session", autouse=True)
def quiet_llama_cpp():
    """llama.cpp prints every load detail to stderr unless told otherwise."""
    from modules.engines.llamacpp.library import set_library_logging

    set_library_logging(False)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_model_path) -> Path:
    """A model folder with the tiny model, a second one whose name has spaces, and junk."""
    folder = tmp_path_factory.mktemp("models")
    shutil.copy(tiny_model_path, folder / "tiny.gguf")
    write_tiny_model(folder / "Tiny Two Instruct.gguf", seed=1, name="Tiny Two")
    (folder / "notes.txt").write_text("not a model")
    return folder


@pytest.fixture
def user_data(tmp_path) -> Path:
    return make_user_data(tmp_path / "user_data")


@pytest.fixture
def make_settings(user_data, model_dir) -> Callable[..., Settings]:
    """Settings for a test: the tiny model from `model_dir`, a temporary user_data."""

    def build(*argv: str, env: dict | None = None) -> Settings:
        return load_settings([*tiny_args(user_data, model_dir), *argv], env or {})

    return build


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings("--api")


@pytest.fixture
def open_app() -> Iterator[Callable[[Settings], Flask]]:
    """`create_app(settings)` in testing mode; every app opened is closed after the test."""
    apps: list[Flask] = []

    def open_(settings: Settings) -> Flask:
        application = create_app(settings)
        application.config["TESTING"] = True
        apps.append(application)
        return application

    yield open_
    for application in apps:
        close_app(application)


@pytest.fixture
def app(open_app, settings) -> Flask:
    return open_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def server(tmp_path, user_data, model_dir) -> Iterator[Callable[..., ServerProcess]]:
    """Start real `server.py` processes on free ports; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict | None = None, model: str = "tiny", **kwargs) -> ServerProcess:
        base = tiny_args(user_data, model_dir, model=model)
        proc = start_server(
            [*base, *args], log_path=tmp_path / f"server{len(started)}.log", env=env, **kwargs
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
