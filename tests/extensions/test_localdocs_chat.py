"""LocalDocs in chats: the prompt (via /v1/internal/chat-prompt) holds the best chunk with its
source, chat completions list the sources (whole and streamed), the UI's turns get them too,
and the collections are managed through /v1/internal/localdocs and /ui/api/localdocs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from localdocs_support import allow_folders, make_documents
from servers import make_user_data, tiny_args

from modules.app import close_app, create_app
from modules.settings import load_settings

pytest.importorskip("sentence_transformers")

PROJECT = Path(__file__).resolve().parents[2]
DENTIST = "When is my dentist appointment?"


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_dir):
    """One app for the module (the embedding model loads once), with a collection indexed."""
    root = tmp_path_factory.mktemp("localdocs")
    user_data = make_user_data(root / "user_data")
    allow_folders(user_data, tmp_path_factory.getbasetemp())
    settings = load_settings(
        [*tiny_args(user_data, model_dir, ctx_size=1024), "--api", "--extensions", "localdocs"],
        {},
    )
    application = create_app(settings)
    application.config.update(TESTING=True, DOCS_FOLDER=make_documents(root))
    client = application.test_client()
    created = client.post(
        "/v1/internal/localdocs", json={"name": "home", "folders": [str(application.config["DOCS_FOLDER"])]}
    )
    assert created.status_code == 201, created.get_json()
    wait_indexed(client, "home")
    yield application
    close_app(application)


def wait_indexed(client, name: str, base: str = "/v1/internal/localdocs") -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = client.get(f"{base}/{name}").get_json()
        if body["index"] and body["index"]["state"] not in ("scanning", "indexing"):
            assert body["index"]["state"] == "done", body
            return body
        time.sleep(0.1)
    raise AssertionError("indexing did not finish")


def ask(text: str = DENTIST, **fields) -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 3, "temperature": 0, **fields}


def test_the_chat_prompt_holds_the_best_chunk_with_its_source(app):
    client = app.test_client()
    folder = app.config["DOCS_FOLDER"]
    prompt = client.post("/v1/internal/chat-prompt", json=ask(localdocs=["home"])).get_json()["prompt"]
    block = re.search(r"<localdocs>\n(.*?)\n</localdocs>\n\nWhen is my dentist appointment\?", prompt, re.S)
    assert block, prompt
    assert f"[1] Source: {folder / 'notes' / 'dentist.md'} (lines 1-3)" in block.group(1)
    assert "The dentist appointment is on Tuesday at 14:30 with Dr. Molar." in block.group(1)
    # In the chat modes too, before the user's message.
    chat = client.post("/v1/internal/chat-prompt", json=ask(localdocs=["home"], mode="chat")).get_json()
    assert "Tuesday at 14:30" in chat["prompt"]
    # Without the field, nothing is added.
    plain = client.post("/v1/internal/chat-prompt", json=ask()).get_json()["prompt"]
    assert "<localdocs>" not in plain


def test_chat_completions_list_the_sources_used(app):
    client = app.test_client()
    body = client.post("/v1/chat/completions", json=ask(localdocs=["home"])).get_json()
    sources = body["localdocs"]["sources"]
    assert body["localdocs"]["collections"] == ["home"]
    assert sources[0]["path"].endswith("notes/dentist.md") and sources[0]["collection"] == "home"
    assert sources[0]["location"] == "lines 1-3" and 0.3 < sources[0]["score"] <= 1
    assert body["choices"][0]["message"]["role"] == "assistant"
    without = client.post("/v1/chat/completions", json=ask()).get_json()
    assert "localdocs" not in without


def test_a_stream_carries_the_sources_on_its_last_chunk(app):
    client = app.test_client()
    response = client.post("/v1/chat/completions", json=ask(localdocs=["home"], stream=True))
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["localdocs"]["sources"][0]["path"].endswith("dentist.md")
    assert all("localdocs" not in c for c in chunks if c is not finals[0])


def test_unknown_collections_are_a_404_in_openais_shape(app):
    client = app.test_client()
    for path in ("/v1/chat/completions", "/v1/internal/chat-prompt"):
        response = client.post(path, json=ask(localdocs=["home", "nope"]))
        assert response.status_code == 404
        error = response.get_json()["error"]
        assert error["param"] == "localdocs" and error["code"] == "collection_not_found"
        assert "'nope'" in error["message"] and "home" in error["message"]


def test_default_collections_apply_when_a_request_names_none(app):
    client = app.test_client()
    params = app.extensions["hearth"].extensions.get("localdocs").params
    params["default_collections"] = ["home"]
    try:
        prompt = client.post("/v1/internal/chat-prompt", json=ask()).get_json()["prompt"]
        assert "Tuesday at 14:30" in prompt
        off = client.post("/v1/internal/chat-prompt", json=ask(localdocs=[])).get_json()["prompt"]
        assert "<localdocs>" not in off
    finally:
        params["default_collections"] = []


def test_a_ui_turn_gets_the_excerpts_and_its_sources(app):
    from modules.web.presets import Sampling
    from modules.web.turns import TurnRequest, start_turn

    hearth = app.extensions["hearth"]
    chat_id = hearth.chat.history.new("instruct").id
    request = TurnRequest(
        action="send",
        mode="instruct",
        character=None,
        chat_id=chat_id,
        text=DENTIST,
        sampling=Sampling(max_tokens=2),
        state={"localdocs": ["home"]},
    )
    turn = start_turn(hearth.chat, hearth.chat.history, hearth.models.engine(), request)
    list(turn.events())
    turn.save()
    assert "Tuesday at 14:30" in turn.prepared.prompt
    assert turn.prepared.state["extras"]["localdocs"]["sources"][0]["path"].endswith("dentist.md")
    saved = hearth.chat.history.load("instruct", None, chat_id)
    assert saved.messages[0].content == DENTIST  # the chat keeps what the user typed


def test_collections_are_managed_through_the_api(app, tmp_path):
    client = app.test_client()
    listed = client.get("/v1/internal/localdocs").get_json()
    assert listed["object"] == "list" and [c["name"] for c in listed["data"]] == ["home"]
    home = listed["data"][0]
    assert home["files"] == 6 and home["chunks"] >= 6 and home["index"]["progress"] == 1.0

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "recipe.md").write_text("Pancakes need eggs, milk and flour.")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "trip.md").write_text("The train to Lisbon leaves at 08:15.")
    made = client.post(
        "/v1/internal/localdocs", json={"name": "extra", "folders": [str(tmp_path / "a")], "index": False}
    )
    assert made.status_code == 201 and made.get_json()["index"] is None and made.get_json()["needs_index"]
    assert client.post("/v1/internal/localdocs", json={"name": "extra"}).status_code == 409
    changed = client.put("/v1/internal/localdocs/extra", json={"folders": [str(tmp_path / "b")]})
    assert changed.get_json()["folders"] == [str((tmp_path / "b").resolve())]
    started = client.post("/v1/internal/localdocs/extra/index")
    assert started.status_code == 202
    assert started.get_json()["index"]["state"] in ("scanning", "indexing", "done")
    assert wait_indexed(client, "extra")["files"] == 1
    hits = client.post(
        "/v1/internal/localdocs/search",
        json={"collections": ["extra"], "query": "When does the train leave?"},
    ).get_json()
    assert hits["data"][0]["text"] == "The train to Lisbon leaves at 08:15."
    assert client.delete("/v1/internal/localdocs/extra").get_json() == {"deleted": "extra"}
    assert client.get("/v1/internal/localdocs/extra").status_code == 404
    for bad in (
        {"name": "../x", "folders": []},
        {"name": "y", "folders": ["relative"]},
        {"name": "y", "folders": [str(tmp_path / "missing")]},
        {"name": "y", "extra": 1},
    ):
        response = client.post("/v1/internal/localdocs", json=bad)
        assert response.status_code == 400 and response.get_json()["error"]["message"], bad


def test_the_ui_has_the_same_endpoints_and_the_panel_script(app):
    client = app.test_client()
    assert [c["name"] for c in client.get("/ui/api/localdocs").get_json()["data"]] == ["home"]
    assert (
        client.get("/ui/api/localdocs/nope")
        .get_json()["error"]["message"]
        .startswith("There is no LocalDocs collection")
    )
    assert client.post("/ui/api/localdocs", json={"name": "x", "folders": ["rel"]}).status_code == 400
    script = client.get("/ui/extensions.js").text
    assert "hearth:generate" in script and "/ui/api/localdocs" in script
    assert ".localdocs-sources" in client.get("/ui/extensions.css").text


def test_the_endpoints_need_the_admin_key(open_app, make_settings, user_data):
    app = open_app(
        make_settings("--api", "--api-key", "user", "--admin-key", "admin", "--extensions", "localdocs")
    )
    client = app.test_client()
    for method, path in (
        ("get", ""),
        ("post", ""),
        ("get", "/x"),
        ("delete", "/x"),
        ("post", "/x/index"),
        ("put", "/x"),
        ("post", "/search"),
    ):
        response = getattr(client, method)(
            f"/v1/internal/localdocs{path}", json={}, headers={"Authorization": "Bearer user"}
        )
        assert response.status_code == 401, (method, path)
    ok = client.get("/v1/internal/localdocs", headers={"Authorization": "Bearer admin"})
    assert ok.status_code == 200 and ok.get_json()["data"] == []


def test_the_localdocs_field_without_the_extension_says_how_to_enable_it(open_app, make_settings):
    app = open_app(make_settings("--api"))
    response = app.test_client().post("/v1/internal/chat-prompt", json=ask(localdocs=["x"]))
    assert response.status_code == 400
    assert "--extensions localdocs" in response.get_json()["error"]["message"]


def test_api_md_documents_every_localdocs_route(app):
    doc = (PROJECT / "docs" / "api.md").read_text()
    routes = {
        (method, re.sub(r"<(\w+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("openai.localdocs.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert len(routes) == 7
    for method, path in routes:
        assert f"`{method} {path}`" in doc, (method, path)
    assert "`localdocs`" in doc
