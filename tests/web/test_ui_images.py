"""Images in the UI's chats against a real server with a model that reads images (the tiny
model and a generated projector beside it): an image is checked and saved with the chat (in
the chat's folder, named by its hash, never inline in the JSON), the socket's message names
it, the model gets its pixels on this turn and the next, bad uploads are a 400 that changes
nothing, incognito chats keep theirs in memory, a branch takes its images along and deleting
the chat deletes them."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
import requests
from tiny_model import write_tiny_model
from tiny_projector import write_tiny_projector
from ui_helpers import UiClient

TINY_EMBD = 64


def png(seed: int, size=(96, 80)) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def huge_png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + end


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("ui-images")
    models = folder / "models"
    models.mkdir()
    write_tiny_model(models / "tiny-vision.gguf", name="tiny vision")
    write_tiny_projector(models / "mmproj-tiny-vision.gguf", TINY_EMBD)
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        [*tiny_args(user_data, models, ctx_size=2048, model="tiny-vision")],
        log_path=folder / "server.log",
        wait_for="ui",
    )
    proc.extra["user_data"] = user_data
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


@pytest.fixture
def ui(running):
    return UiClient(running.ui_url)


def place(chat: dict, **extra) -> dict:
    return {"mode": chat["mode"], "character": chat["character"], **extra}


def upload(ui: UiClient, chat: dict, data: bytes, name: str = "photo.png", **query) -> requests.Response:
    return ui.http.post(
        f"{ui.base}/ui/api/chats/{chat['id']}/images",
        params=place(chat, **query),
        files={"file": (name, data, "image/png")},
        timeout=30,
    )


def send(ui: UiClient, chat: dict, text: str, attachments=(), incognito: bool = False) -> dict:
    socket = ui.socket()
    try:
        socket.send(
            type="generate",
            id="g1",
            action="send",
            text=text,
            chat={**place(chat), "id": chat["id"], **({"incognito": True} if incognito else {})},
            sampling={"temperature": 0, "max_tokens": 6},
            **({"attachments": list(attachments)} if attachments else {}),
        )
        before, done = socket.until("done", "error")
    finally:
        socket.close()
    assert done["type"] == "done", done
    [start] = [m for m in before if m["type"] == "start"]
    return {**done, "start": start}


def chat_folder(running, chat: dict):
    return running.extra["user_data"] / "logs" / "chat" / chat["character"]


def test_an_image_is_saved_with_the_chat_and_the_model_sees_it(ui, running):
    status = ui.call("GET", "/ui/api/status")
    assert status["model"]["vision"] is True
    chat = ui.new_chat()
    data = png(1)
    response = upload(ui, chat, data, "cat.png")
    assert response.status_code == 201, response.text
    image = response.json()
    assert (
        image["kind"] == "image"
        and image["name"] == "cat.png"
        and (image["width"], image["height"]) == (96, 80)
    )
    stored = chat_folder(running, chat) / f"{chat['id']}.files" / image["file"]
    assert stored.read_bytes() == data

    attachment = {"name": "cat.png", "kind": "image", "file": image["file"]}
    with_image = send(ui, chat, "What is this?", [attachment])
    plain = send(ui, ui.new_chat(), "What is this?")
    # the image's tokens are in the prompt: a projector turns it into 16 or more
    assert with_image["stats"]["prompt_tokens"] >= plain["stats"]["prompt_tokens"] + 16

    saved = json.loads((chat_folder(running, chat) / f"{chat['id']}.json").read_text())
    assert saved["messages"][-2]["attachments"] == [{**attachment, "text": ""}]
    assert saved["messages"][-2]["content"] == "What is this?"  # no image marker in what is shown
    assert "base64" not in json.dumps(saved) and len(json.dumps(saved)) < 4000

    served = ui.http.get(f"{ui.base}/ui/api/chats/{chat['id']}/images/{image['file']}", params=place(chat))
    assert served.content == data and served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"

    # the next turn reads the image again from the chat's folder
    again = send(ui, chat, "And now?")
    assert again["stats"]["prompt_tokens"] >= with_image["stats"]["prompt_tokens"] + 16 - 2
    assert again["start"]["notices"] == []


def test_the_prompt_preview_shows_where_the_image_goes(ui):
    chat = ui.new_chat()
    image = upload(ui, chat, png(2)).json()
    send(ui, chat, "Describe it", [{"name": "photo.png", "kind": "image", "file": image["file"]}])
    preview = ui.call("POST", f"/ui/api/chats/{chat['id']}/prompt", json={**place(chat), "text": ""})
    assert preview["prompt"].index("<__media__>") < preview["prompt"].index("Describe it")


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("notes.png", b"this is text, not a picture", "cannot be read"),
        ("huge.png", huge_png(20_000, 20_000), "pixels"),
        ("../../evil.png", png(3), "path"),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "cannot be read"),
    ],
)
def test_bad_uploads_are_a_400_and_save_nothing(ui, running, name, data, words):
    chat = ui.new_chat()
    response = upload(ui, chat, data, name)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"]
    assert not (chat_folder(running, chat) / f"{chat['id']}.files").exists()


def test_names_and_places_from_outside_are_checked(ui):
    chat = ui.new_chat()
    base = f"{ui.base}/ui/api/chats/{chat['id']}/images"
    for file in ("..%2F..%2Fsettings.yaml", "settings.yaml", "a" * 32 + ".svg"):
        assert ui.http.get(f"{base}/{file}", params=place(chat)).status_code in (400, 404)
    assert ui.http.get(f"{base}/{'a' * 32}.png", params=place(chat)).status_code == 404
    assert upload(ui, {**chat, "id": "no-such-chat"}, png(4)).status_code == 404
    assert upload(ui, {**chat, "character": "../x"}, png(4)).status_code == 400
    socket = ui.socket()
    try:  # the socket takes only an image's name among the chat's files
        socket.send(
            type="generate",
            id="g1",
            action="send",
            text="x",
            chat={**place(chat), "id": chat["id"]},
            attachments=[{"name": "x.png", "kind": "image", "file": "../../settings.yaml"}],
        )
        _, error = socket.until("error")
        assert "attachments" in error["message"]
    finally:
        socket.close()


def test_an_incognito_chat_keeps_its_images_in_memory(ui, running):
    chat = ui.call(
        "POST", "/ui/api/chats", json={"mode": "chat", "character": "Assistant", "incognito": True}
    )
    image = upload(ui, chat, png(5), incognito="1").json()
    done = send(ui, chat, "Hi", [{"name": "p.png", "kind": "image", "file": image["file"]}], incognito=True)
    assert done["stats"]["prompt_tokens"] > 16
    url = f"{ui.base}/ui/api/chats/{chat['id']}/images/{image['file']}"
    assert ui.http.get(url, params=place(chat, incognito="1")).content == png(5)
    assert not list(running.extra["user_data"].rglob(image["file"]))  # never written
    ui.call("DELETE", f"/ui/api/chats/{chat['id']}", params=place(chat, incognito="1"))
    assert ui.http.get(url, params=place(chat, incognito="1")).status_code == 404


def test_a_branch_takes_its_images_and_deleting_a_chat_deletes_them(ui, running):
    chat = ui.new_chat()
    image = upload(ui, chat, png(6)).json()
    send(ui, chat, "Look", [{"name": "p.png", "kind": "image", "file": image["file"]}])
    first = ui.chat(chat)["messages"][0]
    branch = ui.call(
        "POST", f"/ui/api/chats/{chat['id']}/branch", json={**place(chat), "message": first["id"]}
    )
    ui.call("DELETE", f"/ui/api/chats/{chat['id']}", params=place(chat))
    assert not (chat_folder(running, chat) / f"{chat['id']}.files").exists()
    url = f"{ui.base}/ui/api/chats/{branch['id']}/images/{image['file']}"
    assert ui.http.get(url, params=place(chat)).content == png(6)
    again = send(ui, branch, "Still there?")
    assert again["start"]["notices"] == []
