"""The UI's endpoints for editing chats (versions, edits, branches), search, incognito chats,
export and import, files and token counts, and notebooks: what they do, and that bad input
is a clear JSON message, never a 500."""

from __future__ import annotations

import json
import logging

import pytest
from document_files import docx_bytes, pdf_bytes
from ui_helpers import THINKING_TEMPLATE

from modules.chat import chat_log, versions
from modules.chat.messages import ChatMessage

INSTRUCT = {"mode": "instruct"}


@pytest.fixture(autouse=True)
def no_server_errors(caplog):
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
def history(web_app):
    return web_app.extensions["hearth"].chat.history


@pytest.fixture
def chat(ui, history):
    """An instruct chat: u1 a1 u2 a2, with a second version of a2."""
    made = ui.post("/ui/api/chats", json=INSTRUCT).get_json()
    history.update("instruct", None, made["id"], lambda c: chat_log.append_exchange(c, "u1", "a1"))
    history.update("instruct", None, made["id"], lambda c: chat_log.append_exchange(c, "u2", "a2"))
    history.update(
        "instruct", None, made["id"], lambda c: versions.add_version(c, 3, ChatMessage("assistant", "a2 v2"))
    )
    return made["id"]


def error_of(response) -> str:
    assert response.is_json, response.data[:300]
    return response.get_json()["error"]["message"]


def test_chat_json_has_ids_times_versions(ui, chat):
    messages = ui.get(f"/ui/api/chats/{chat}?mode=instruct").get_json()["messages"]
    assert [m["content"] for m in messages] == ["u1", "a1", "u2", "a2 v2"]
    assert [m["id"] for m in messages][:3] == [1, 2, 3]
    assert all(m["time"] for m in messages)
    assert (messages[3]["version"], messages[3]["versions"]) == (2, 2)
    assert "version" not in messages[0]


def test_switch_versions_and_edit(ui, chat):
    switched = ui.post(f"/ui/api/chats/{chat}/messages/5/version", json={**INSTRUCT, "version": 1})
    assert switched.status_code == 200, switched.data
    data = switched.get_json()
    assert data["at"] == 3 and [m["content"] for m in data["messages"]] == ["a2"]
    edited = ui.put(f"/ui/api/chats/{chat}/messages/1", json={**INSTRUCT, "text": "u1, edited"}).get_json()
    assert edited["at"] == 0
    assert [m["content"] for m in edited["messages"]] == ["u1, edited", "a1", "u2", "a2"]
    assert edited["messages"][0]["versions"] == 2
    bad = ui.post(f"/ui/api/chats/{chat}/messages/5/version", json={**INSTRUCT, "version": 9})
    assert bad.status_code in (400, 404)
    missing = ui.put(f"/ui/api/chats/{chat}/messages/999", json={**INSTRUCT, "text": "x"})
    assert missing.status_code == 404 and "no message 999" in error_of(missing)


def test_branch_here_makes_a_second_chat(ui, chat):
    response = ui.post(f"/ui/api/chats/{chat}/branch", json={**INSTRUCT, "message": 2})
    assert response.status_code == 201
    fork = response.get_json()
    assert fork["id"] != chat and fork["title"].endswith("(branch)")
    assert [m["content"] for m in fork["messages"]] == ["u1", "a1"]
    listed = {c["id"] for c in ui.get("/ui/api/chats?mode=instruct").get_json()["chats"]}
    assert {chat, fork["id"]} <= listed


def test_search_finds_a_word_from_the_middle(ui, chat, history):
    history.update(
        "instruct", None, chat, lambda c: chat_log.append_exchange(c, "tell me about otters", "they float")
    )
    found = ui.get("/ui/api/search?q=OTTERS").get_json()["results"]
    assert [r["id"] for r in found] == [chat] and "otters" in found[0]["snippet"]
    assert ui.get("/ui/api/search?q=").get_json()["results"] == []
    assert ui.get("/ui/api/search?q=" + "x" * 201).status_code == 400


def test_incognito_chats_never_reach_the_disk(ui, user_data):
    before = sorted(p.name for p in (user_data / "logs").rglob("*.json"))
    made = ui.post("/ui/api/chats", json={**INSTRUCT, "incognito": True}).get_json()
    assert made["incognito"] is True and made["id"].startswith("incognito-")
    loaded = ui.get(f"/ui/api/chats/{made['id']}?mode=instruct&incognito=1")
    assert loaded.status_code == 200
    assert ui.get(f"/ui/api/chats/{made['id']}?mode=instruct").status_code in (400, 404)  # not a saved chat
    assert made["id"] not in {c["id"] for c in ui.get("/ui/api/chats?mode=instruct").get_json()["chats"]}
    assert ui.delete(f"/ui/api/chats/{made['id']}?mode=instruct&incognito=1").status_code == 200
    gone = ui.get(f"/ui/api/chats/{made['id']}?mode=instruct&incognito=1")
    assert gone.status_code == 404 and "incognito" in error_of(gone)
    assert sorted(p.name for p in (user_data / "logs").rglob("*.json")) == before


def test_export_then_import_gives_the_same_chat(ui, chat):
    exported = ui.get(f"/ui/api/chats/{chat}/export?mode=instruct&format=json")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    data = json.loads(exported.data)
    imported = ui.post(
        "/ui/api/chats/import",
        data={"mode": "instruct", "file": (__import__("io").BytesIO(exported.data), "c.json")},
    )
    assert imported.status_code == 201, imported.data
    copy = imported.get_json()
    original = ui.get(f"/ui/api/chats/{chat}?mode=instruct").get_json()
    assert copy["id"] != chat
    strip = lambda ms: [{k: v for k, v in m.items()} for m in ms]  # noqa: E731
    assert strip(copy["messages"]) == strip(original["messages"])
    again = json.loads(ui.get(f"/ui/api/chats/{copy['id']}/export?mode=instruct&format=json").data)
    assert again["branches"] == data["branches"] and again["messages"] == data["messages"]


def test_markdown_export(ui, chat):
    response = ui.get(f"/ui/api/chats/{chat}/export?mode=instruct&format=markdown&user_name=Sam")
    text = response.data.decode()
    assert response.mimetype == "text/markdown"
    assert "**Sam**" in text and "**Assistant**" in text and "a2 v2" in text and "\na2\n" not in text
    assert ui.get(f"/ui/api/chats/{chat}/export?mode=instruct&format=pdf").status_code == 400


def test_textgen_history_imports(ui):
    history = {
        "internal": [["<|BEGIN-VISIBLE-CHAT|>", "Hi!"], ["How are you?", "Fine, thanks."]],
        "visible": [["<|BEGIN-VISIBLE-CHAT|>", "Hi!"], ["How are you?", "Fine, thanks."]],
        "metadata": {"assistant_1": {"timestamp": "Mar 01, 2025 09:15", "model_name": "Llama-3-8B"}},
    }
    body = {
        "mode": "chat",
        "character": "Ada",
        "file": (__import__("io").BytesIO(json.dumps(history).encode()), "h.json"),
    }
    response = ui.post("/ui/api/chats/import", data=body)
    assert response.status_code == 201, response.data
    messages = response.get_json()["messages"]
    assert [m["content"] for m in messages] == ["Hi!", "How are you?", "Fine, thanks."]
    assert messages[2]["model"] == "Llama-3-8B" and messages[2]["time"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": []}', "no messages"),
        (b'{"title": "x"}', "no messages"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "UTF-8"),
    ],
)
def test_bad_imports_are_messages(ui, content, says):
    response = ui.post(
        "/ui/api/chats/import",
        data={"mode": "instruct", "file": (__import__("io").BytesIO(content), "x.json")},
    )
    assert response.status_code == 400 and says in error_of(response)


def test_reading_files(ui):
    import io

    txt = ui.post(
        "/ui/api/files", data={"file": (io.BytesIO(b"Meeting on Tuesday."), "notes.txt")}
    ).get_json()
    assert txt["text"] == "Meeting on Tuesday." and txt["kind"] == "text" and txt["chars"] == 19
    pdf = ui.post(
        "/ui/api/files", data={"file": (io.BytesIO(pdf_bytes(["PINEAPPLE inside"])), "r.pdf")}
    ).get_json()
    assert "PINEAPPLE" in pdf["text"] and pdf["pages"] == 1
    docx = ui.post(
        "/ui/api/files", data={"file": (io.BytesIO(docx_bytes(["Word text"])), "m.docx")}
    ).get_json()
    assert docx["text"] == "Word text"


@pytest.mark.parametrize(
    ("name", "data", "status", "says"),
    [
        ("fake.pdf", b"not a pdf", 400, "not a PDF"),
        ("../evil.txt", b"hello", 400, "is a path"),
        ("blob.bin", b"\0\0\0\0", 400, "binary"),
        ("empty.txt", b"", 400, "empty"),
        ("scan.pdf", pdf_bytes([]), 400, "no text"),
    ],
)
def test_bad_files_are_clear_messages(ui, name, data, status, says):
    import io

    response = ui.post("/ui/api/files", data={"file": (io.BytesIO(data), name)})
    assert response.status_code == status and says in error_of(response)


def test_a_file_over_the_limit_is_refused_before_it_is_read(ui):
    import io

    from modules.web.files import MAX_FILE_BYTES

    response = ui.post(
        "/ui/api/files", data={"file": (io.BytesIO(b"x" * (MAX_FILE_BYTES + 2 * 1024 * 1024)), "big.txt")}
    )
    assert response.status_code == 413 and "25 MB" in error_of(response)


def test_counting_tokens_and_the_next_prompt(ui, web_app, chat):
    assert ui.post("/ui/api/tokens", json={"text": "hello"}).get_json()["tokens"] is None  # no model yet
    web_app.extensions["hearth"].models.engine()  # load the tiny model
    counted = ui.post("/ui/api/tokens", json={"text": "hello world"}).get_json()
    assert counted["tokens"] > 0 and counted["n_ctx"] == 512
    preview = ui.post(
        f"/ui/api/chats/{chat}/prompt",
        json={
            **INSTRUCT,
            "text": "and now?",
            "sampling": {"max_tokens": 64},
            "attachments": [{"name": "n.txt", "kind": "text", "text": "FILE-TEXT"}],
        },
    ).get_json()
    assert (
        preview["prompt"].index("a2 v2")
        < preview["prompt"].index("FILE-TEXT")
        < preview["prompt"].index("and now?")
    )
    assert preview["tokens"] > 10 and preview["n_ctx"] == 512 and preview["reply_room"] == 64
    bad = ui.post(
        f"/ui/api/chats/{chat}/prompt",
        json={**INSTRUCT, "attachments": [{"name": "../x", "kind": "text", "text": "x"}]},
    )
    assert bad.status_code == 400 and "is a path" in error_of(bad)


def test_notebooks(ui, user_data):
    made = ui.post("/ui/api/notebooks", json={"text": "Once upon a time"})
    assert made.status_code == 201
    notebook = made.get_json()
    assert notebook["title"] == "Once upon a time" and not notebook["can_undo"]
    saved = ui.put(
        f"/ui/api/notebooks/{notebook['id']}", json={"text": "Once upon a time, there", "title": "Story"}
    )
    assert saved.get_json()["title"] == "Story"
    assert ui.get(f"/ui/api/notebooks/{notebook['id']}").get_json()["text"] == "Once upon a time, there"
    assert [n["id"] for n in ui.get("/ui/api/notebooks").get_json()["notebooks"]] == [notebook["id"]]
    assert (user_data / "notebooks" / f"{notebook['id']}.json").is_file()
    undo = ui.post(f"/ui/api/notebooks/{notebook['id']}/undo")
    assert undo.status_code == 400 and "no generation to undo" in error_of(undo)
    big = "é" * 2_000_000  # the most a notebook holds, in two-byte letters
    assert ui.put(f"/ui/api/notebooks/{notebook['id']}", json={"text": big}).status_code == 200
    too_big = ui.put(f"/ui/api/notebooks/{notebook['id']}", json={"text": big + "x"})
    assert too_big.status_code == 400 and "2000000 characters" in error_of(too_big)
    assert ui.get("/ui/api/notebooks/..%2f..%2fetc").status_code in (400, 404)
    assert ui.get("/ui/api/notebooks/20990101-000000-abcdef").status_code == 404
    assert ui.delete(f"/ui/api/notebooks/{notebook['id']}").status_code == 200
    assert ui.get("/ui/api/notebooks").get_json()["notebooks"] == []


def test_the_notebook_page_and_the_newcomers_mode(ui):
    page = ui.get("/notebook")
    assert page.status_code == 200 and b'id="notebook-text"' in page.data
    boot = json.loads(ui.get("/").data.split(b'id="boot">')[1].split(b"</script>")[0])
    assert boot["start_mode"] in ("chat", "instruct")


def test_the_reasoning_switches_reach_templates_that_read_them(ui, web_app, user_data, chat):
    folder = user_data / "instruction-templates"
    folder.mkdir(exist_ok=True)
    (folder / "Thinker.yaml").write_text(THINKING_TEMPLATE)
    boot = json.loads(ui.get("/").data.split(b'id="boot">')[1].split(b"</script>")[0])
    assert boot["template_switches"] == {"Thinker": ["enable_thinking"]}  # the shipped ones read none
    web_app.extensions["hearth"].models.engine()
    body = {**INSTRUCT, "instruction_template": "Thinker", "sampling": {"max_tokens": 32}}
    plain = ui.post(f"/ui/api/chats/{chat}/prompt", json=body).get_json()["prompt"]
    off = ui.post(f"/ui/api/chats/{chat}/prompt", json={**body, "enable_thinking": False})
    off = off.get_json()["prompt"]
    assert "<think>" not in plain and off.endswith("<think>\n\n</think>\n\n")
    status = ui.get("/ui/api/status").get_json()
    assert status["model"]["template_switches"] == []  # the tiny model's ChatML reads neither
