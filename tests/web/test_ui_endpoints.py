"""The UI's JSON endpoints: what they do, and that bad input is a JSON message, never a 500."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest
import yaml
from PIL import Image

from modules.chat import png


def png_bytes(size=(64, 48), color=(200, 80, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def image_bytes(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 120, 200)).save(out, format=fmt)
    return out.getvalue()


def card_png(name="Card Person", **fields) -> bytes:
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": name,
            "description": "A test card.",
            "first_mes": "Hi {{user}}!",
            "mes_example": "",
            "personality": "",
            "scenario": "",
            **fields,
        },
    }
    chunk = base64.b64encode(json.dumps(card).encode()).decode()
    return png.with_text(png_bytes(), "chara", chunk)


@pytest.fixture(autouse=True)
def no_server_errors(caplog):
    """No request in these tests may log an error (an unexpected exception logs one)."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def error_of(response) -> str:
    assert response.is_json, response.data[:300]
    return response.get_json()["error"]["message"]


# --- Characters --------------------------------------------------------------------------------


def test_characters_list_the_shipped_ones(ui):
    data = ui.get("/ui/api/characters").get_json()
    keys = {c["key"]: c for c in data["characters"]}
    assert {"Assistant", "Ada"} <= set(keys)
    assert keys["Ada"]["builtin"] is True
    assert keys["Ada"]["picture"].startswith("/ui/api/characters/Ada/picture")
    picture = ui.get(keys["Ada"]["picture"])
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert picture.headers["X-Content-Type-Options"] == "nosniff"


def test_create_edit_and_delete_a_character_with_a_picture(ui, user_data):
    created = ui.post(
        "/ui/api/characters",
        data={
            "name": "Nova",
            "greeting": "Hello {{user}}",
            "context": "Nova is a pilot.",
            "picture": (io.BytesIO(image_bytes("JPEG")), "me.jpg"),
        },
    )
    assert created.status_code == 201, created.data
    nova = created.get_json()
    assert nova["key"] == "Nova" and nova["picture"]
    stored = user_data / "characters" / "Nova.png"  # re-encoded to PNG whatever came in
    assert Image.open(stored).format == "PNG"

    again = ui.post("/ui/api/characters", data={"name": "Nova"})
    assert again.get_json()["key"] == "Nova (2)"  # never overwrites

    edited = ui.put("/ui/api/characters/Nova", data={"name": "Nova Prime", "context": "Changed."})
    assert edited.status_code == 200
    assert edited.get_json()["name"] == "Nova Prime" and edited.get_json()["picture"]  # kept
    assert ui.get("/ui/api/characters/Nova").get_json()["context"] == "Changed."

    assert ui.delete("/ui/api/characters/Nova").status_code == 200
    assert ui.get("/ui/api/characters/Nova").status_code == 404
    assert not stored.exists()


def test_a_display_name_with_markup_gets_a_safe_key(ui):
    name = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    created = ui.post("/ui/api/characters", data={"name": name})
    assert created.status_code == 201
    body = created.get_json()
    assert body["name"] == name  # the name is kept as text; the page shows it as text
    assert not set(body["key"]) & set('<>/"\\')


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "Ok", "context": "x" * 100_001}, "context"),
        ({"name": "Ok", "picture": (io.BytesIO(b"GIF89a not really"), "a.gif")}, "picture"),
        ({"name": "Ok", "picture": (io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "a.png")}, "picture"),
        ({"name": "Ok", "picture": (io.BytesIO(b"<html><script>alert(1)</script>"), "a.png")}, "picture"),
        ({"name": "Ok", "picture": (io.BytesIO(b""), "a.png")}, "empty"),
    ],
)
def test_bad_character_forms_are_messages(ui, data, message):
    response = ui.post("/ui/api/characters", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert message in error_of(response).lower()


def test_gif_and_webp_uploads(ui):
    webp = ui.post(
        "/ui/api/characters", data={"name": "Web", "picture": (io.BytesIO(image_bytes("WEBP")), "w.webp")}
    )
    assert webp.status_code == 201
    gif = ui.post(
        "/ui/api/characters", data={"name": "Gif", "picture": (io.BytesIO(image_bytes("GIF")), "g.gif")}
    )
    assert gif.status_code == 400 and "GIF" in error_of(gif)


def test_huge_picture_is_refused(ui):
    data = png_bytes() + b"\0" * (11 * 1024 * 1024)
    response = ui.post("/ui/api/characters", data={"name": "Big", "picture": (io.BytesIO(data), "b.png")})
    assert response.status_code == 413
    assert "large" in error_of(response)


@pytest.mark.parametrize("key", ["..", "a:b", "con", ".hidden", "x" * 101])
def test_unsafe_character_keys(ui, key):
    for response in (
        ui.get(f"/ui/api/characters/{key}"),
        ui.delete(f"/ui/api/characters/{key}"),
        ui.get(f"/ui/api/characters/{key}/picture"),
        ui.get(f"/ui/api/characters/{key}/card"),
        ui.put(f"/ui/api/characters/{key}", data={"name": "x"}),
    ):
        assert response.status_code in (400, 404)
        error_of(response)


def test_shipped_characters_cannot_be_deleted_and_missing_pictures_404(ui):
    response = ui.delete("/ui/api/characters/Ada")
    assert response.status_code == 400 and "ships with Hearth" in error_of(response)
    assert ui.get("/ui/api/characters/Assistant/picture").status_code == 404
    assert ui.get("/ui/api/characters/Nobody").status_code == 404


def test_export_card_round_trips_through_import(ui):
    exported = ui.get("/ui/api/characters/Ada/card")
    assert exported.status_code == 200 and exported.mimetype == "image/png"
    imported = ui.post("/ui/api/characters/import", data={"file": (io.BytesIO(exported.data), "Ada.png")})
    assert imported.status_code == 201
    assert imported.get_json()["key"] == "Ada (2)" and imported.get_json()["name"] == "Ada"


def test_import_a_tavern_card_png(ui):
    response = ui.post("/ui/api/characters/import", data={"file": (io.BytesIO(card_png()), "card.png")})
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert body["name"] == "Card Person" and body["greeting"] == "Hi {{user}}!" and body["picture"]


def test_import_json_and_yaml(ui):
    ours = yaml.safe_dump({"name": "Yaml Person", "context": "Likes YAML.", "greeting": "Yo"})
    response = ui.post("/ui/api/characters/import", data={"file": (io.BytesIO(ours.encode()), "y.yaml")})
    assert response.status_code == 201 and response.get_json()["context"] == "Likes YAML."
    pyg = json.dumps({"char_name": "Pyg", "char_persona": "Old school.", "char_greeting": "Hey"})
    response = ui.post("/ui/api/characters/import", data={"file": (io.BytesIO(pyg.encode()), "p.json")})
    assert response.status_code == 201 and "Old school." in response.get_json()["context"]
    card = json.dumps(
        {"spec": "chara_card_v2", "data": {"name": "Json Card", "description": "D", "first_mes": "F"}}
    )
    response = ui.post("/ui/api/characters/import", data={"file": (io.BytesIO(card.encode()), "c.json")})
    assert response.status_code == 201 and response.get_json()["greeting"] == "F"


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b"", "x.png"),
        (png_bytes(), "plain.png"),  # a picture without a card
        (b"\x89PNG\r\n\x1a\ngarbage", "broken.png"),
        (b"{not json", "x.json"),
        (b"[1, 2]", "x.json"),
        (b"key: [unclosed", "x.yaml"),
        (b"\xff\xfe\x00", "x.yaml"),
        (b"name: x", "x.txt"),
        (json.dumps({"spec": "chara_card_v2", "data": {"description": "no name"}}).encode(), "x.json"),
        (yaml.safe_dump({"name": "n" * 300}).encode(), "x.yaml"),
    ],
)
def test_bad_imports_are_messages(ui, content, filename):
    response = ui.post("/ui/api/characters/import", data={"file": (io.BytesIO(content), filename)})
    assert response.status_code == 400, response.data
    error_of(response)


def test_import_without_a_file(ui):
    response = ui.post("/ui/api/characters/import", data={})
    assert response.status_code == 400 and "file" in error_of(response)


# --- Chats --------------------------------------------------------------------------------------


def test_chat_lifecycle(ui):
    created = ui.post("/ui/api/chats", json={"mode": "chat", "character": "Ada", "user_name": "Sam"})
    assert created.status_code == 201
    chat = created.get_json()
    assert chat["messages"][0]["role"] == "assistant"
    assert "Sam" in chat["messages"][0]["content"] and "{{user}}" not in chat["messages"][0]["content"]
    listed = ui.get("/ui/api/chats?mode=chat&character=Ada").get_json()["chats"]
    assert [c["id"] for c in listed] == [chat["id"]]
    # chat and chat-instruct share a character's chats
    assert ui.get("/ui/api/chats?mode=chat-instruct&character=Ada").get_json()["chats"][0]["id"] == chat["id"]

    title = '<img src=x onerror="alert(1)">'
    renamed = ui.patch(
        f"/ui/api/chats/{chat['id']}", json={"mode": "chat", "character": "Ada", "title": title}
    )
    assert renamed.get_json()["title"] == title

    loaded = ui.get(f"/ui/api/chats/{chat['id']}?mode=chat&character=Ada").get_json()
    assert loaded["title"] == title
    assert ui.delete(f"/ui/api/chats/{chat['id']}?mode=chat&character=Ada").status_code == 200
    assert ui.get(f"/ui/api/chats/{chat['id']}?mode=chat&character=Ada").status_code == 404


def test_instruct_chats_have_no_character_and_no_greeting(ui):
    chat = ui.post("/ui/api/chats", json={"mode": "instruct"}).get_json()
    assert chat["character"] is None and chat["messages"] == []
    assert ui.get("/ui/api/chats?mode=instruct").get_json()["chats"][0]["id"] == chat["id"]


def test_remove_last_gives_back_the_message(ui, web_app):
    from modules.chat.chat_log import append_exchange

    chat = ui.post("/ui/api/chats", json={"mode": "chat", "character": "Ada"}).get_json()
    history = web_app.extensions["hearth"].chat.history
    history.update("chat", "Ada", chat["id"], lambda c: append_exchange(c, "my question", "an answer"))
    response = ui.post(f"/ui/api/chats/{chat['id']}/remove-last", json={"mode": "chat", "character": "Ada"})
    assert response.status_code == 200
    assert response.get_json()["text"] == "my question"
    assert [m["role"] for m in response.get_json()["chat"]["messages"]] == ["assistant"]
    again = ui.post(f"/ui/api/chats/{chat['id']}/remove-last", json={"mode": "chat", "character": "Ada"})
    assert again.status_code == 400 and "no exchange" in error_of(again)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/ui/api/chats", None),
        ("get", "/ui/api/chats?mode=nope", None),
        ("get", "/ui/api/chats?mode=chat", None),
        ("get", "/ui/api/chats?mode=chat&character=../../etc", None),
        ("get", "/ui/api/chats/..%2f..%2fx?mode=instruct", None),
        ("get", "/ui/api/chats/has.dot?mode=instruct", None),
        ("get", "/ui/api/chats/20990101-000000-abcdef?mode=instruct", None),
        ("post", "/ui/api/chats", {"mode": "chat"}),
        ("post", "/ui/api/chats", {"mode": "chat", "character": "Nobody"}),
        ("post", "/ui/api/chats", {"mode": "weird"}),
        ("post", "/ui/api/chats", {"mode": "chat", "character": "Ada", "extra": 1}),
        ("post", "/ui/api/chats", [1, 2]),
        ("post", "/ui/api/chats", "not json"),
        ("patch", "/ui/api/chats/abc", {"mode": "instruct"}),
        ("patch", "/ui/api/chats/abc", {"mode": "instruct", "title": "x" * 201}),
        ("patch", "/ui/api/chats/abc", {"mode": "instruct", "title": "missing chat"}),
        ("delete", "/ui/api/chats/abc?mode=instruct", None),
        ("delete", "/ui/api/chats/abc", None),
        ("post", "/ui/api/chats/abc/remove-last", {"mode": "instruct"}),
        ("post", "/ui/api/chats/abc/remove-last", {}),
    ],
)
def test_bad_chat_requests_are_messages(ui, method, path, body):
    if body == "not json":
        response = getattr(ui, method)(path, data="{nope", content_type="application/json")
    else:
        response = getattr(ui, method)(path, json=body) if body is not None else getattr(ui, method)(path)
    assert 400 <= response.status_code < 500, (response.status_code, response.data)
    error_of(response)


# --- Models ---------------------------------------------------------------------------------------


def test_models_status_load_and_unload(ui):
    data = ui.get("/ui/api/models").get_json()
    ids = {m["id"] for m in data["models"]}
    assert {"tiny", "Tiny Two Instruct"} <= ids
    assert data["defaults"]["ctx_size"] == 512
    assert ui.get("/ui/api/status").get_json()["model"] is None  # nothing loaded in-process yet

    loaded = ui.post("/ui/api/models/load", json={"name": "tiny", "ctx_size": 256, "threads": 1})
    assert loaded.status_code == 200, loaded.data
    status = loaded.get_json()
    assert status["model"]["id"] == "tiny" and status["model"]["n_ctx"] == 256
    assert status["model"]["template"] == "model"  # the GGUF's own ChatML
    assert status["loading"] == {}

    unloaded = ui.post("/ui/api/models/unload", json={"name": "tiny"})
    assert unloaded.get_json()["model"] is None and unloaded.get_json()["loaded"] == []


def test_a_broken_model_file_is_a_message(ui, model_dir, tmp_path, web_app):
    bad = model_dir.parent / "broken-models"
    bad.mkdir(exist_ok=True)
    (bad / "broken.gguf").write_bytes(b"GGUF but not really")
    models = web_app.extensions["hearth"].models
    models._model_dir = bad  # point the catalog at a folder with a broken file
    response = ui.post("/ui/api/models/load", json={"name": "broken"})
    assert response.status_code >= 400
    assert "broken.gguf" in error_of(response)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "nope"},
        {"name": "tiny", "ctx_size": -1},
        {"name": "tiny", "threads": 0},
        {"name": "tiny", "ctx_size": "big"},
        {"name": "tiny", "other": 1},
        {"name": ["tiny"]},
    ],
)
def test_bad_loads_are_messages(ui, body):
    response = ui.post("/ui/api/models/load", json=body)
    assert 400 <= response.status_code < 500
    error_of(response)


def test_unload_unknown_model(ui):
    response = ui.post("/ui/api/models/unload", json={"name": "nope"})
    assert response.status_code == 404 and "does not exist" in error_of(response)
    assert ui.post("/ui/api/models/unload", json={}).status_code == 200  # unload all


def test_templates_are_listed(ui):
    assert "ChatML" in ui.get("/ui/api/templates").get_json()["templates"]


# --- Presets -------------------------------------------------------------------------------------


def test_shipped_presets_are_valid_and_default_comes_first(ui):
    presets = ui.get("/ui/api/presets").get_json()["presets"]
    names = [p["name"] for p in presets]
    assert names[0] == "Default" and {"Precise", "Creative", "Deterministic"} <= set(names)
    assert all(p["builtin"] for p in presets)


def test_save_and_delete_a_preset(ui, user_data):
    sampling = {
        "temperature": 0.4,
        "top_p": 0.8,
        "top_k": 10,
        "min_p": 0.1,
        "repetition_penalty": 1.2,
        "max_tokens": 300,
        "seed": 7,
        "stop": ["###"],
    }
    saved = ui.put("/ui/api/presets/Mine", json={"sampling": sampling})
    assert saved.status_code == 200
    assert yaml.safe_load((user_data / "presets" / "Mine.yaml").read_text())["stop"] == ["###"]
    mine = next(p for p in ui.get("/ui/api/presets").get_json()["presets"] if p["name"] == "Mine")
    assert mine["sampling"] == sampling and mine["builtin"] is False
    assert ui.delete("/ui/api/presets/Mine").status_code == 200
    refused = ui.delete("/ui/api/presets/Default")
    assert refused.status_code == 400 and "ships with Hearth" in error_of(refused)


def test_textgen_presets_load(ui, user_data):
    (user_data / "presets" / "Old.yaml").write_text("temperature: 1.3\nmax_new_tokens: 99\ndo_sample: true\n")
    (user_data / "presets" / "Broken.yaml").write_text("temperature: hot\n")
    presets = {p["name"]: p for p in ui.get("/ui/api/presets").get_json()["presets"]}
    assert presets["Old"]["sampling"]["max_tokens"] == 99 and presets["Old"]["sampling"]["temperature"] == 1.3
    assert "Broken" not in presets


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("Bad", {"sampling": {"temperature": 9}}),
        ("Bad", {"sampling": {"top_p": -1}}),
        ("Bad", {"sampling": {"stop": ["x" * 201]}}),
        ("Bad", {"sampling": {"stop": ["a"] * 17}}),
        ("Bad", {"sampling": "hot"}),
        ("Bad", {}),
        ("..", {"sampling": {}}),
        ("a:b", {"sampling": {}}),
    ],
)
def test_bad_presets_are_messages(ui, name, body):
    response = ui.put(f"/ui/api/presets/{name}", json=body)
    assert 400 <= response.status_code < 500
    error_of(response)


# --- Settings ------------------------------------------------------------------------------------


def test_saving_settings_keeps_other_keys_and_writes_only_setting_fields(ui, user_data):
    path = user_data / "settings.yaml"
    path.write_text("ctx_size: 1024\nopenai-debug: true\nmode: instruct\n")
    choices = {
        "mode": "chat-instruct",
        "character": "Ada",
        "preset": "Precise",
        "instruction_template": "ChatML",
        "user_name": "Sam",
        "user_bio": "Likes tea.",
        "theme": "dark",
    }
    response = ui.put("/ui/api/settings", json=choices)
    assert response.status_code == 200, response.data
    written = yaml.safe_load(path.read_text())
    assert written == {"ctx_size": 1024, "openai-debug": True, **choices}
    assert list(written)[:3] == ["ctx_size", "openai-debug", "mode"]  # order kept
    assert not list(user_data.glob("*.tmp")) and not list(user_data.glob(".settings*"))

    from modules.settings import load_settings

    reloaded = load_settings(["--user-data-dir", str(user_data)], {})  # the file still loads
    assert reloaded.mode == "chat-instruct" and reloaded.theme == "dark" and reloaded.ctx_size == 1024
    assert ui.get("/ui/api/settings").get_json()["choices"] == choices


def test_choice_keys_are_settings_fields():
    from modules.settings import Settings
    from modules.web.choices import CHOICE_KEYS

    assert set(CHOICE_KEYS) <= set(Settings.model_fields)


def test_a_broken_settings_file_is_left_alone(ui, user_data):
    path = user_data / "settings.yaml"
    path.write_text("mode: [unclosed\n")
    response = ui.put("/ui/api/settings", json={"mode": "chat"})
    assert response.status_code == 400 and "left alone" in error_of(response)
    assert path.read_text() == "mode: [unclosed\n"


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "nonsense"},
        {"theme": "purple"},
        {"character": "../x"},
        {"preset": "a/b"},
        {"user_name": "x" * 101},
        {"unknown_key": 1},
        {"ctx_size": 1},
        {"user_name": "a:b"},
    ],
)
def test_bad_settings_are_messages(ui, body, user_data):
    response = ui.put("/ui/api/settings", json=body)
    assert response.status_code == 400
    error_of(response)
    assert not (user_data / "settings.yaml").exists()


def test_extensions_are_listed_with_their_state(ui):
    extensions = {e["name"]: e for e in ui.get("/ui/api/extensions").get_json()["extensions"]}
    assert extensions["openai"]["state"] == "available"


# --- Everything else ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/ui/api/nothing-here"),
        ("post", "/ui/api/status"),
        ("put", "/ui/api/characters"),
        ("delete", "/ui/api/presets"),
        ("get", "/ui/api/chats/x/remove-last"),
    ],
)
def test_unknown_routes_and_methods(ui, method, path):
    response = getattr(ui, method)(path)
    assert response.status_code in (404, 405)


def test_huge_json_body(ui):
    response = ui.put(
        "/ui/api/settings", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", content_type="application/json"
    )
    assert response.status_code == 413
    error_of(response)


def test_an_upload_far_over_the_limit_is_refused_before_it_is_read(ui):
    response = ui.post(
        "/ui/api/characters/import", data={"file": (io.BytesIO(b"x" * (12 * 1024 * 1024)), "big.png")}
    )
    assert response.status_code == 413
    assert "too large" in error_of(response)


def test_logout_without_a_login_is_harmless(ui):
    response = ui.post("/logout")
    assert response.status_code == 302


def test_nowebui_leaves_the_ui_out(open_app, make_settings):
    application = open_app(make_settings("--nowebui"))
    client = application.test_client()
    assert client.get("/ui/api/status").status_code == 404
    assert "web" not in application.blueprints
