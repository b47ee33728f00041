"""What the UI serves for extensions: their CSS and JavaScript, and their settings panels.

`custom_css()` and `custom_js()` of every enabled extension are asked once and served as
two files of our own origin, /ui/extensions.css and /ui/extensions.js, which every page
loads (the Content-Security-Policy allows no inline script). An extension's `ui()` panel is
a list of controls bound to its params; the settings page renders them and changes them
here, for the running server (settings.yaml's `<name>-<param>` keys keep a value).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from modules.app import services
from modules.errors import InvalidRequest, NotFound
from modules.extensions import set_param
from modules.serving.access import management

from .http import json_body

log = logging.getLogger(__name__)


def register_extension_routes(web: Blueprint) -> None:
    @web.get("/ui/extensions.css")
    def extensions_css():
        return _text(services().extensions.css(), "text/css")

    @web.get("/ui/extensions.js")
    def extensions_js():
        return _text(services().extensions.js(), "text/javascript")

    @web.put("/ui/api/extensions/<name>/params")
    @management
    def extension_params(name: str):
        from pydantic import RootModel

        extensions = services().extensions
        extension = extensions.get(name)
        if extension is None:
            raise NotFound(f"The extension {name!r} is not enabled.")
        changes = json_body(RootModel[dict[str, object]]).root
        panels = extensions.panels()
        for param, value in changes.items():
            try:
                set_param(extension, panels, param, value)
            except ValueError as e:
                raise InvalidRequest(str(e), param=param) from None
        log.info("extension %s: %s changed from the settings page", name, ", ".join(changes))
        return jsonify(params=_plain(extension.params))


def _text(body: str, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _plain(params: dict) -> dict:
    import json

    return json.loads(json.dumps(params, default=str))
