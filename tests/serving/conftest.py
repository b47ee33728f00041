"""Fixtures for the serving tests: apps with an API-side and a UI-side blueprint, and servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Blueprint, Flask, jsonify

from modules.settings import load_settings


def _stand_in_blueprints() -> list[Blueprint]:
    """Routes on each side, named as the real ones are: `openai` is the API's blueprint."""
    api = Blueprint("openai", __name__)
    api.add_url_rule("/v1/things", "things", lambda: jsonify(data=[]))
    api.add_url_rule("/docs", "docs", lambda: "API docs")
    child = Blueprint("media", __name__, url_prefix="/v1")  # a child blueprint, as the media one is
    child.add_url_rule("/pictures", "pictures", lambda: jsonify(data=[]))
    api.register_blueprint(child)
    ui = Blueprint("ui_stand_in", __name__)  # beside the real UI, which create_app registers
    ui.add_url_rule("/ui-stand-in", "index", lambda: "the chat UI")
    return [api, ui]


@pytest.fixture
def build_app(open_app, user_data: Path, tiny_model_path: Path) -> Callable[..., Flask]:
    """create_app with the given flags (no API extension), plus stand-in UI and API routes."""

    def build(*argv: str) -> Flask:
        settings = load_settings(
            ["--user-data-dir", str(user_data), "--model", str(tiny_model_path), *argv], {}
        )
        app = open_app(settings)
        for blueprint in _stand_in_blueprints():
            app.register_blueprint(blueprint)
        return app

    return build


@pytest.fixture
def serve(server, tiny_model_path):
    """The `server` fixture with the tiny model given by path."""

    def start(*args: str, **kwargs):
        kwargs.setdefault("model", str(tiny_model_path))
        return server(*args, **kwargs)

    return start
