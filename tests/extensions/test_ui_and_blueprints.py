"""What extensions add to the app: a settings panel bound to params, CSS and JavaScript the
pages load, and blueprints (on the app, inside the UI, inside the API)."""

from __future__ import annotations

PARTS = """
    from flask import Blueprint, jsonify

    params = {"activate": True, "greeting": "hi", "level": 2, "style": "plain"}

    def ui():
        return [
            {"param": "activate", "type": "checkbox"},
            {"param": "greeting", "type": "text", "label": "Greeting"},
            {"param": "level", "type": "number", "min": 1, "max": 5},
            {"param": "style", "type": "select", "choices": ["plain", "fancy"]},
        ]

    def custom_css():
        return ".parts-marker { color: red; }"

    def custom_js():
        return "window.partsLoaded = true;"

    def blueprint():
        bp = Blueprint("parts", __name__)
        bp.get("/parts/hello")(lambda: jsonify(hello=params["greeting"]))
        return bp

    def ui_blueprint():
        bp = Blueprint("parts_ui", __name__, url_prefix="/ui/api/parts")
        bp.post("/echo")(lambda: jsonify(echo=params["level"]))
        return bp

    def api_blueprint():
        bp = Blueprint("parts_api", __name__, url_prefix="/v1/internal/parts")
        bp.get("/level")(lambda: jsonify(level=params["level"]))
        return bp
"""


def test_panel_controls_are_listed_and_change_params(write_extension, build_app):
    write_extension("parts", PARTS)
    app = build_app("parts")
    client = app.test_client()
    listed = {e["name"]: e for e in client.get("/ui/api/settings").get_json()["extensions"]}
    panel = listed["parts"]["panel"]
    assert [(c["param"], c["type"], c["label"]) for c in panel] == [
        ("activate", "checkbox", "Activate"),
        ("greeting", "text", "Greeting"),
        ("level", "number", "Level"),
        ("style", "select", "Style"),
    ]
    response = client.put("/ui/api/extensions/parts/params", json={"level": 4, "greeting": "hey"})
    assert response.status_code == 200 and response.get_json()["params"]["level"] == 4
    assert app.extensions["hearth"].extensions.get("parts").params["greeting"] == "hey"
    assert client.get("/parts/hello").get_json() == {"hello": "hey"}  # the hooks see it
    for bad in (
        {"level": 9},
        {"level": "x"},
        {"level": 2.5},
        {"style": "loud"},
        {"activate": "yes"},
        {"nope": 1},
    ):
        response = client.put("/ui/api/extensions/parts/params", json=bad)
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["message"]
    assert client.put("/ui/api/extensions/ghost/params", json={}).status_code == 404


def test_css_and_js_are_served_as_files_every_page_loads(write_extension, build_app):
    write_extension("parts", PARTS)
    client = build_app("parts").test_client()
    css = client.get("/ui/extensions.css")
    js = client.get("/ui/extensions.js")
    assert css.mimetype == "text/css" and ".parts-marker" in css.text and "/* extension parts */" in css.text
    assert js.mimetype == "text/javascript" and "window.partsLoaded = true;" in js.text
    assert "script-src 'self'" in js.headers["Content-Security-Policy"]
    for page in ("/", "/settings"):
        html = client.get(page).text
        assert '<link rel="stylesheet" href="/ui/extensions.css">' in html
        assert '<script src="/ui/extensions.js" defer></script>' in html
    assert 'id="extension-panels"' in client.get("/settings").text


def test_blueprints_are_registered_where_their_hook_says(write_extension, build_app):
    write_extension("parts", PARTS)
    app = build_app("parts", flags=("--api", "--api-key", "k", "--ui-auth", "me:pw"))
    rules = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    assert rules["/parts/hello"] == "parts.<lambda>"
    assert rules["/ui/api/parts/echo"].startswith("web.parts_ui.")
    assert rules["/v1/internal/parts/level"].startswith("openai.parts_api.")
    client = app.test_client()
    # Inside the UI: its login applies.
    assert client.post("/ui/api/parts/echo").status_code == 401
    # Inside the API: its key applies, and errors have OpenAI's shape.
    refused = client.get("/v1/internal/parts/level")
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_api_key"
    ok = client.get("/v1/internal/parts/level", headers={"Authorization": "Bearer k"})
    assert ok.get_json() == {"level": 2}


def test_without_the_api_an_api_blueprint_is_not_mounted(write_extension, build_app):
    write_extension("parts", PARTS)
    app = build_app("parts", flags=())
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert "/v1/internal/parts/level" not in rules and "/ui/api/parts/echo" in rules
