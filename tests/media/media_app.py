"""The media blueprint under a stand-in for the API blueprint, until that one lands on main.

The stand-in does what the API's blueprint does for its children: OpenAI-shaped errors
(install_error_handlers) and the API-key check.
"""

from __future__ import annotations

from flask import Blueprint, Flask

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
