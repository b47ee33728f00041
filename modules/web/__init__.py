"""The browser chat UI: server-rendered pages, the UI's JSON endpoints and the chat websocket.

`init_web(app, hearth)` is called by `create_app` unless `--nowebui`. Layout:

    pages.py       /, /notebook, /characters, /models, /settings, /login, /logout
    api.py         /ui/api/...: status, models, presets, settings, extensions
    characters.py  /ui/api/characters/...: gallery, pictures, import, export
    chats.py       /ui/api/chats/...: the sidebar's chats, search
    chat_edits.py  edit a message, switch versions, branch, the next prompt
    chat_transfer.py  export and import
    files.py       /ui/api/files (a file read into text), /ui/api/tokens
    notebook.py    /ui/api/notebooks/..., and a notebook's completion
    http.py        JSON bodies and error messages for all of them
    socket.py      /ui/ws: generate / complete / stop, streamed deltas
    extension_routes.py  /ui/extensions.css, .js, and the panels' params
    turns.py       one chat turn: prompt (ChatService), generation, saving
    incognito.py   chats kept in memory only
    security.py    login, same-origin checks, CSP and other headers
    presets.py, choices.py, pictures.py, state.py
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Flask, jsonify, render_template, request
from flask_sock import Sock
from werkzeug.exceptions import HTTPException

from modules.errors import HearthError
from modules.notebooks import NotebookStore
from modules.settings import PROJECT_ROOT

from .api import create_api_blueprint
from .choices import choices_from
from .extension_routes import register_extension_routes
from .pages import register_pages
from .presets import PresetStore
from .security import add_headers, check_request, is_websocket, make_guard
from .socket import ChatSocket
from .state import EXTENSION_KEY, WebState, web_state

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_SOCKET_MESSAGE = 8 * 1024 * 1024  # a message with its files' text (socket.py's limits)


def init_web(app: Flask, hearth, extension_blueprints: Sequence[Blueprint] = ()) -> None:
    """The UI blueprint, with extensions' `ui_blueprint`s inside it (so their routes get
    the UI's login, same-origin checks, headers and port)."""
    settings = hearth.settings
    guard = make_guard(settings)
    app.extensions[EXTENSION_KEY] = WebState(
        presets=PresetStore(
            shipped_dir=PROJECT_ROOT / "user_data" / "presets", user_dir=settings.user_data_dir / "presets"
        ),
        guard=guard,
        choices=choices_from(settings),
        notebooks=NotebookStore(root=settings.user_data_dir / "notebooks"),
        mode_chosen="mode" in settings.model_fields_set,
    )
    if guard.login_required:
        app.secret_key = guard.secret
        app.config.update(
            SESSION_COOKIE_NAME="hearth_ui_session",
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=settings.ssl_certfile is not None,
            PERMANENT_SESSION_LIFETIME=timedelta(days=30),
        )
    elif settings.listen:
        log.warning(
            "The browser UI is reachable from the network without a login (--listen without "
            "--ui-auth): anyone who can reach this machine can read and write your chats "
            "(changing models, settings and LocalDocs folders stays limited to this machine). "
            "Add --ui-auth USER:PASSWORD."
        )
    app.config.setdefault(
        "SOCK_SERVER_OPTIONS", {"ping_interval": 25, "max_message_size": MAX_SOCKET_MESSAGE}
    )
    app.register_blueprint(create_blueprint(extension_blueprints))


def create_blueprint(extension_blueprints: Sequence[Blueprint] = ()) -> Blueprint:
    web = Blueprint(
        "web",
        __name__,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
        static_url_path="/ui/static",
    )

    @web.before_request
    def guard():
        from modules.app import services

        return check_request(web_state().guard, services().settings)

    web.after_request(add_headers)

    @web.errorhandler(HearthError)
    def hearth_error(error: HearthError):
        return error_page(error.message, error.status)

    @web.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return error_page(error.description or error.name, error.code or 500)

    register_pages(web)
    web.register_blueprint(create_api_blueprint())
    register_extension_routes(web)
    for child in extension_blueprints:
        try:
            web.register_blueprint(child)
        except Exception:
            log.exception("the UI blueprint %s failed to register and is skipped", child.name)
    _register_socket(web)
    return web


def error_page(message: str, status: int):
    if request.path.startswith("/ui/api/") or is_websocket():
        return jsonify(error={"message": message}), status
    return render_template(
        "error.html",
        page="error",
        title="Error",
        message=message,
        status=status,
        theme=web_state().choices.theme,
    ), status


def _register_socket(web: Blueprint) -> None:
    sock = Sock()

    @sock.route("/ui/ws", bp=web)
    def chat_socket(ws):
        from modules.app import services

        ChatSocket(ws, services(), web_state()).serve()
