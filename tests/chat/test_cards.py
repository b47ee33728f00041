"""TavernAI / Character Card V2 PNGs: import, export and the round trip."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from modules.chat import cards, png
from modules.errors import InvalidRequest

V2 = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Seraphina",
        "description": "Seraphina is a guardian of the forest.",
        "personality": "caring",
        "scenario": "{{user}} wakes up in her glade.",
        "first_mes": "*She smiles.* You're awake, {{user}}.",
        "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: I'm Seraphina.",
        "tags": ["fantasy"],
    },
}


def card_png(card: dict, *, chunk: str = "tEXt") -> bytes:
    payload = base64.b64encode(json.dumps(card).encode()).decode()
    picture = png.plain_png(8, 8, (200, 10, 10))
    if chunk == "tEXt":
        return png.with_text(picture, "chara", payload)
    body = b"chara\0\0\0\0\0" + payload.encode()  # iTXt, uncompressed, no language
    chunks = png.read_chunks(picture)
    return png.write_chunks([*chunks[:-1], (b"iTXt", body), chunks[-1]])


def test_v2_card_imports(characters, user_data):
    character = characters.import_card(card_png(V2))
    assert character.key == "Seraphina" and character.name == "Seraphina"
    assert character.context == (
        "Seraphina is a guardian of the forest.\nSeraphina's Personality: caring\n"
        "Scenario: {{user}} wakes up in her glade."
    )
    assert character.greeting == "*She smiles.* You're awake, {{user}}."
    assert character.example_dialogue.startswith("<START>")
    assert character.picture == user_data / "characters" / "Seraphina.png"
    assert not character.builtin


def test_v1_card_in_an_itxt_chunk_imports(characters):
    v1 = {"name": "Old One", "description": "d", "first_mes": "hi", "mes_example": ""}
    character = characters.import_card(card_png(v1, chunk="iTXt"))
    assert (character.key, character.context, character.greeting) == (
        "Old One",
        "d",
        "hi",
    )


def test_card_round_trips(characters):
    first = characters.import_card(card_png(V2))
    exported = characters.export_card(first.key)
    assert cards.read_card(exported)["spec"] == "chara_card_v2"
    characters.delete(first.key)
    second = characters.import_card(exported)
    for field in ("key", "name", "context", "greeting", "example_dialogue"):
        assert getattr(second, field) == getattr(first, field)
    # The picture survives too (pixels untouched, only the text chunk replaced).
    pixels = [c for c in png.read_chunks(second.picture.read_bytes()) if c[0] == b"IDAT"]
    assert zlib.decompress(pixels[0][1])[1:4] == bytes((200, 10, 10))


def test_export_of_a_character_without_png_makes_one(characters):
    data = characters.export_card("Assistant")
    assert cards.card_fields(cards.read_card(data)).name == "Assistant"


def test_import_refuses_an_existing_name_unless_told(characters):
    characters.import_card(card_png(V2))
    with pytest.raises(InvalidRequest, match="already exists"):
        characters.import_card(card_png(V2))
    characters.import_card(card_png(V2), overwrite=True)


def test_unsafe_card_names_become_safe_keys(characters):
    evil = {"name": "../../etc/passwd", "description": "x"}
    character = characters.import_card(card_png(evil))
    assert "/" not in character.key and character.name == "../../etc/passwd"
    assert character.picture.parent == characters.user_dir


@pytest.mark.parametrize(
    "data",
    [
        b"not a png",
        png.plain_png()[:-6],  # truncated
        png.plain_png(),  # no card
        png.with_text(png.plain_png(), "chara", "!!!notbase64json"),
        png.with_text(png.plain_png(), "chara", base64.b64encode(b"[1, 2]").decode()),
        png.with_text(
            png.plain_png(),
            "chara",
            base64.b64encode(b'{"description": "no name"}').decode(),
        ),
    ],
)
def test_bad_cards_are_refused_clearly(characters, data):
    with pytest.raises(InvalidRequest):
        characters.import_card(data)
    assert characters.user_dir.is_dir() and not list(characters.user_dir.iterdir())
