"""TavernAI / Character Card V2 PNGs: base64 JSON in the picture's `chara` text chunk.

V1 cards keep the fields at the top level; V2 (`spec: chara_card_v2`) and V3 (`ccv3` chunk)
keep them under `data`. We map them onto our character fields and back; export writes V2.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from modules.chat import png
from modules.errors import InvalidRequest


@dataclass(frozen=True)
class CardFields:
    name: str
    context: str
    greeting: str
    example_dialogue: str


def read_card(data: bytes) -> dict:
    """The card JSON inside a PNG; InvalidRequest when there is none or it is damaged."""
    texts = png.read_text(data)
    raw = texts.get("ccv3") or texts.get("chara")
    if raw is None:
        raise InvalidRequest("This PNG has no character card (no 'chara' text chunk).")
    try:
        card = json.loads(base64.b64decode(raw.strip(), validate=False).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequest(f"The character card in this PNG is damaged: {e}.") from e
    if not isinstance(card, dict):
        raise InvalidRequest("The character card in this PNG is not a JSON object.")
    return card


def card_fields(card: dict) -> CardFields:
    """Our fields from a V1, V2 or V3 card."""
    data = card.get("data") if isinstance(card.get("data"), dict) else card

    def text(key: str) -> str:
        value = data.get(key)
        return value.strip() if isinstance(value, str) else ""

    name = text("name") or text("char_name")
    if not name:
        raise InvalidRequest("The character card has no name.")
    parts = [
        text("system_prompt").replace("{{original}}", "").strip(),
        text("description") or text("char_persona"),
        f"{name}'s Personality: {text('personality')}" if text("personality") else "",
        f"Scenario: {text('scenario') or text('world_scenario')}"
        if text("scenario") or text("world_scenario")
        else "",
    ]
    return CardFields(
        name=name,
        context="\n".join(p for p in parts if p),
        greeting=text("first_mes") or text("char_greeting"),
        example_dialogue=text("mes_example") or text("example_dialogue"),
    )


def make_card(fields: CardFields) -> dict:
    """A Character Card V2 holding our fields (the context goes into `description`)."""
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": fields.name,
            "description": fields.context,
            "personality": "",
            "scenario": "",
            "first_mes": fields.greeting,
            "mes_example": fields.example_dialogue,
            "creator_notes": "",
            "system_prompt": "",
            "post_history_instructions": "",
            "alternate_greetings": [],
            "tags": [],
            "creator": "",
            "character_version": "",
            "extensions": {},
        },
    }


def write_card(picture: bytes, card: dict) -> bytes:
    """`picture` (a PNG) with `card` in its `chara` chunk, replacing any card it had
    (a V3 `ccv3` chunk too, which readers would otherwise prefer)."""
    payload = base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8")).decode()
    return png.with_text(picture, "chara", payload, drop=("ccv3",))
