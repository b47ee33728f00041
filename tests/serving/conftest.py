"""Fixtures for the serving tests: apps with an API-side and a UI-side blueprint, and servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Blueprint, Flask, jsonify

from modules.app import close_app, create_app
from modules.settings import load_settings


def _stand_in_blueprints() -> list[Blueprint]:
    """Routes on each side, named as the real ones are: `openai` is the API's blueprint."""
    api = Blueprint("openai", __name__)
    api.add_url_rule("/v1/things", "things", lambda: jsonify(data=[]))
    api.add_url_rule("/docs", "docs", lambda: "API docs")
    child = Blueprint("media", __name__, url_prefix="/v1")  # a child blueprint, as the media one is
    child.add_url_rule("/pictures", "pictures", lambda: jsonify(data=[]))
    api.register_blueprint(child)
    ui = Blueprint("web", __name__)
    ui.add_url_rule("/", "index", lambda: "the chat UI")
    return [api, ui]


@pytest.fixture
def build_app(user_data: Path, tiny_model_path: Path) -> Iterator[Callable[..., Flask]]:
    """create_app with the given flags (no API extension), plus stand-in UI and API routes."""
    apps: list[Flask] = []

    def build(*argv: str) -> Flask:
        settings = load_settings(
            ["--user-data-dir", str(user_data), "--model", str(tiny_model_path), *argv], {}
        )
        app = create_app(settings)
        for blueprint in _stand_in_blueprints():
            app.register_blueprint(blueprint)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_app(app)


@pytest.fixture
def serve(server, tiny_model_path):
    """The `server` fixture with the tiny model given by path."""

    def start(*args: str, **kwargs):
        kwargs.setdefault("model", str(tiny_model_path))
        return server(*args, **kwargs)

    return start
