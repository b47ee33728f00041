"""The bundled example extension does what docs/extensions.md says it does."""

from __future__ import annotations

from fake_model import MODEL, words

from modules.chat.messages import ChatMessage, ChatOptions


def last_line(app, mode: str) -> str:
    hearth = app.extensions["hearth"]
    prepared = hearth.chat.prepare(
        [ChatMessage("user", "hi")], ChatOptions(mode=mode), MODEL, count_tokens=words, max_tokens=8
    )
    return prepared.prompt.rsplit("\n", 1)[-1]


def test_character_bias_starts_the_reply_in_chat_modes(build_app):
    app = build_app("character_bias", yaml='character_bias-bias_string: " *grins*"\n')
    assert last_line(app, "chat") == "Assistant: *grins*"
    client = app.test_client()
    assert client.put("/ui/api/extensions/character_bias/params", json={"activate": False}).status_code == 200
    assert last_line(app, "chat") == "Assistant:"


def test_character_bias_panel(build_app):
    client = build_app("character_bias").test_client()
    listed = {e["name"]: e for e in client.get("/ui/api/extensions").get_json()["extensions"]}
    assert [c["param"] for c in listed["character_bias"]["panel"]] == ["activate", "bias_string"]
