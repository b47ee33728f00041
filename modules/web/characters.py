"""The UI's character endpoints: the gallery, create / edit / delete, pictures, import, export."""

from __future__ import annotations

import json
import re
from io import BytesIO
from pathlib import Path

import yaml
from flask import Blueprint, jsonify, request, send_file, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modules.app import Services, services
from modules.chat import cards
from modules.chat.characters import Character, CharacterFile
from modules.chat.names import validate_name
from modules.errors import InvalidRequest, NotFound, PayloadTooLarge

from .http import checked
from .pictures import MAX_UPLOAD_BYTES, check_card_png, normalized_picture

MAX_CHARACTER_FILE = 1024 * 1024


def character_json(character: Character) -> dict:
    picture = None
    if character.picture is not None:
        try:
            version = int(character.picture.stat().st_mtime)
        except OSError:
            version = 0
        picture = url_for("web.api.character_picture", key=character.key, v=version)
    return {
        "key": character.key,
        "name": character.name,
        "greeting": character.greeting,
        "context": character.context,
        "example_dialogue": character.example_dialogue,
        "user_name": character.user_name or "",
        "builtin": character.builtin,
        "picture": picture,
    }


class CharacterForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=100)
    greeting: str = Field("", max_length=20_000)
    context: str = Field("", max_length=100_000)
    example_dialogue: str = Field("", max_length=100_000)
    user_name: str = Field("", max_length=100)

    def fields(self) -> dict:
        """The keyword arguments of `CharacterStore.save` this form fills."""
        return {
            "name": self.name,
            "context": self.context,
            "greeting": self.greeting,
            "example_dialogue": self.example_dialogue,
            "user_name": self.user_name or None,
        }


def key_for_name(name: str) -> str:
    """A file-safe key for a character's display name."""
    cleaned = re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|]', "_", name).strip(" ._")
    return validate_name(cleaned[:80] or "Character")


def unique_key(hearth: Services, key: str) -> str:
    store = hearth.chat.characters
    if not store.exists(key):
        return key
    for n in range(2, 1000):
        candidate = validate_name(f"{key} ({n})")
        if not store.exists(candidate):
            return candidate
    raise InvalidRequest("Too many characters with this name.")


def uploaded_picture() -> bytes | None:
    upload = request.files.get("picture")
    if upload is None or not upload.filename:
        return None
    return normalized_picture(upload.read(MAX_UPLOAD_BYTES + 1))


def import_character(hearth: Services, filename: str, data: bytes) -> Character:
    """A TavernAI / Character Card PNG, or a character (or card) as JSON or YAML."""
    store = hearth.chat.characters
    suffix = Path(filename).suffix.lower()
    if suffix == ".png" or data.startswith(b"\x89PNG"):
        check_card_png(data)
        fields = cards.card_fields(cards.read_card(data))
        return store.import_card(data, key=unique_key(hearth, key_for_name(fields.name)))
    if suffix not in (".json", ".yaml", ".yml"):
        raise InvalidRequest("Import a character card (.png) or a character file (.json, .yaml).")
    if len(data) > MAX_CHARACTER_FILE:
        raise PayloadTooLarge("The character file is larger than 1 MB.")
    try:
        text = data.decode("utf-8")
        raw = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise InvalidRequest(f"The file cannot be read: {e}".split("\n")[0]) from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The character file must hold a mapping of fields.")
    if "spec" in raw or "first_mes" in raw or "description" in raw:  # a card as JSON
        fields = cards.card_fields(raw)
        name, context, greeting, example = (
            fields.name,
            fields.context,
            fields.greeting,
            fields.example_dialogue,
        )
        user_name = None
    else:
        try:
            parsed = CharacterFile.model_validate(raw).to_character(
                Path(filename).stem or "Character", picture=None, builtin=False
            )
        except ValidationError as e:
            raise InvalidRequest(f"The character file is invalid: {e.errors()[0]['msg']}.") from None
        name, context, greeting, example = (
            parsed.name,
            parsed.context,
            parsed.greeting,
            parsed.example_dialogue,
        )
        user_name = parsed.user_name
    form = checked(
        CharacterForm,
        {
            "name": name,
            "greeting": greeting,
            "context": context,
            "example_dialogue": example,
            "user_name": user_name or "",
        },
    )
    key = unique_key(hearth, key_for_name(form.name))
    return store.save(key, **form.fields())


def register_character_routes(api: Blueprint) -> None:
    @api.get("/characters")
    def characters():
        return jsonify(characters=[character_json(c) for c in services().chat.characters.list()])

    @api.get("/characters/<key>")
    def character(key: str):
        return jsonify(character_json(services().chat.characters.get(key)))

    @api.post("/characters")
    def create_character():
        hearth = services()
        form = checked(CharacterForm, request.form.to_dict())
        key = unique_key(hearth, key_for_name(form.name))
        saved = hearth.chat.characters.save(
            key,
            **form.fields(),
            picture=uploaded_picture(),
        )
        return jsonify(character_json(saved)), 201

    @api.put("/characters/<key>")
    def update_character(key: str):
        store = services().chat.characters
        store.get(key)  # 404 for a character that does not exist
        form = checked(CharacterForm, request.form.to_dict())
        picture = uploaded_picture()
        saved = store.save(
            key,
            **form.fields(),
            picture=picture,
            overwrite=True,
        )
        return jsonify(character_json(saved))

    @api.delete("/characters/<key>")
    def delete_character(key: str):
        services().chat.characters.delete(key)
        return jsonify(deleted=key)

    @api.get("/characters/<key>/picture")
    def character_picture(key: str):
        character = services().chat.characters.get(key)
        if character.picture is None:
            raise NotFound(f"The character '{key}' has no picture.")
        kind = "image/png" if character.picture.suffix.lower() == ".png" else "image/jpeg"
        response = send_file(character.picture, mimetype=kind, max_age=3600)
        response.headers["Content-Disposition"] = "inline"
        return response

    @api.get("/characters/<key>/card")
    def character_card(key: str):
        data = services().chat.characters.export_card(key)
        return send_file(BytesIO(data), mimetype="image/png", as_attachment=True, download_name=f"{key}.png")

    @api.post("/characters/import")
    def import_file():
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise InvalidRequest("Choose a file to import.", param="file")
        data = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge("The file is too large.")
        return jsonify(character_json(import_character(services(), upload.filename, data))), 201
