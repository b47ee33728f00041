"""The UI's own JSON endpoints, under /ui/api/ (see docs/ui.md for the list).

Every input is validated (names through the chat module's validators, bodies through
pydantic models, pictures by decoding them), and every failure is a JSON message,
`{"error": {"message": ...}}`, that the page shows to the user.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from flask import Blueprint, Response, jsonify, request, send_file, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException

from modules.app import Services, load_options, services
from modules.chat import cards
from modules.chat.characters import Character, CharacterFile
from modules.chat.chat_log import Chat, remove_last_exchange
from modules.chat.history import ChatSummary
from modules.chat.messages import MODES, ChatOptions
from modules.chat.names import validate_history_id, validate_name
from modules.chat.placeholders import fill_placeholders
from modules.chat.service import DEFAULT_USER_NAME
from modules.errors import HearthError, InvalidRequest, NotFound, PayloadTooLarge
from modules.extensions import available_extensions, extension_dirs
from modules.settings import PROJECT_ROOT

from .choices import UiChoices, save_choices, settings_file
from .pictures import MAX_UPLOAD_BYTES, check_card_png, normalized_picture
from .presets import Sampling
from .state import web_state

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024
MAX_CHARACTER_FILE = 1024 * 1024
Model = TypeVar("Model", bound=BaseModel)


def create_api_blueprint() -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/ui/api")

    @api.before_request
    def limit_body_size():
        request.max_content_length = MAX_UPLOAD_BYTES + 1024 * 1024  # a picture plus form fields

    _errors(api)
    _status_routes(api)
    _character_routes(api)
    _chat_routes(api)
    _preset_routes(api)
    _settings_routes(api)

    @api.route("/<path:_rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def no_such_endpoint(_rest: str):
        """Unknown paths (and known ones with another method) answer in JSON like the rest."""
        raise NotFound(f"There is no {request.method} {request.path} in the UI's API.")

    return api


# --- Plumbing --------------------------------------------------------------------------------------


def error_response(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error={"message": message}), status


def _errors(api: Blueprint) -> None:
    @api.errorhandler(HearthError)
    def hearth_error(error: HearthError):
        response, status = error_response(error.message, error.status)
        response.headers.update(error.headers)
        return response, status

    @api.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            400: "The request could not be read.",
            404: "Not found.",
            405: f"{request.method} is not allowed here.",
            413: f"The upload is too large (the limit is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB).",
        }
        return error_response(
            messages.get(error.code or 500, error.description or "Error."), error.code or 500
        )


def json_body(model: type[Model]) -> Model:
    raw = request.get_data(cache=False)
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge("The request is too large.")
    try:
        data = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return checked(model, data)


def checked(model: type[Model], data: dict) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        raise InvalidRequest(f"{where}: {first['msg']}.", param=where) from None


def chat_place(mode: Any, character: Any) -> tuple[str, str | None]:
    if mode not in MODES:
        raise InvalidRequest(f"Invalid mode {mode!r}: use one of {', '.join(MODES)}.", param="mode")
    if mode == "instruct":
        return mode, None
    return mode, validate_name(character)


def summary_json(chat: Chat | ChatSummary) -> dict:
    title = chat.display_title if isinstance(chat, Chat) else chat.title
    return {
        "id": chat.id,
        "mode": chat.mode,
        "character": chat.character,
        "title": title,
        "updated": chat.updated,
    }


def chat_json(chat: Chat) -> dict:
    messages = [
        {"role": m.role, "content": m.content}
        for m in chat.messages
        if m.role in ("user", "assistant", "system", "tool") and (m.content or m.role == "assistant")
    ]
    return {**summary_json(chat), "messages": messages}


# --- Status and models -----------------------------------------------------------------------------


def status_json(hearth: Services) -> dict:
    models = hearth.models
    loaded = models.loaded_ids()
    current = None
    engine = models.get_loaded()
    if engine is not None:
        info = engine.info
        try:
            template = hearth.chat.templates.choose(ChatOptions(), info).name
        except HearthError:
            template = ""
        current = {
            "id": info.name,
            "n_ctx": info.n_ctx,
            "template": template,
            "has_own_template": bool(info.chat_template),
        }
    return {"model": current, "loaded": loaded, "loading": models.load_progress()}


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=500)
    ctx_size: int | None = Field(None, ge=0, le=1_048_576)
    threads: int | None = Field(None, ge=1, le=512)


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=500)


def _status_routes(api: Blueprint) -> None:
    @api.get("/status")
    def status():
        return jsonify(status_json(services()))

    @api.get("/models")
    def models():
        hearth = services()
        loaded = set(hearth.models.loaded_ids())
        catalog = []
        for spec in hearth.models.catalog():
            try:
                size = spec.path.stat().st_size
            except OSError:
                size = None
            catalog.append(
                {
                    "id": spec.id,
                    "file": spec.path.name,
                    "source": spec.source,
                    "loader": spec.loader,
                    "size": size,
                    "loaded": spec.id in loaded,
                }
            )
        options = load_options(hearth.settings)  # what a load without overrides uses
        return jsonify(
            models=catalog,
            status=status_json(hearth),
            defaults={"ctx_size": options.ctx_size, "threads": options.threads},
        )

    @api.post("/models/load")
    def load_model():
        body = json_body(LoadRequest)
        hearth = services()
        spec = hearth.models.resolve(body.name)
        overrides = {
            k: v for k, v in (("ctx_size", body.ctx_size), ("threads", body.threads)) if v is not None
        }
        hearth.models.load(spec.id, overrides or None)
        return jsonify(status_json(hearth))

    @api.post("/models/unload")
    def unload_model():
        body = json_body(UnloadRequest)
        hearth = services()
        name = hearth.models.resolve(body.name).id if body.name else None
        hearth.models.unload(name)
        return jsonify(status_json(hearth))

    @api.get("/templates")
    def templates():
        return jsonify(templates=services().chat.templates.names())


# --- Characters ------------------------------------------------------------------------------------


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
    return store.save(
        key,
        name=form.name,
        context=form.context,
        greeting=form.greeting,
        example_dialogue=form.example_dialogue,
        user_name=form.user_name or None,
    )


def _character_routes(api: Blueprint) -> None:
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
            name=form.name,
            context=form.context,
            greeting=form.greeting,
            example_dialogue=form.example_dialogue,
            user_name=form.user_name or None,
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
            name=form.name,
            context=form.context,
            greeting=form.greeting,
            example_dialogue=form.example_dialogue,
            user_name=form.user_name or None,
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
        from io import BytesIO

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


# --- Chats -----------------------------------------------------------------------------------------


class NewChat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["chat", "chat-instruct", "instruct"]
    character: str | None = None
    user_name: str = Field("", max_length=100)


class ChatEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["chat", "chat-instruct", "instruct"]
    character: str | None = None
    title: str = Field(max_length=200)


class ChatPlace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["chat", "chat-instruct", "instruct"]
    character: str | None = None


def new_chat(hearth: Services, mode: str, character: str | None, user_name: str = "") -> Chat:
    greeting = ""
    if mode != "instruct":
        found = hearth.chat.characters.get(character)
        user = user_name or found.user_name or DEFAULT_USER_NAME
        greeting = fill_placeholders(found.greeting, user=user, bot=found.name).strip()
    return hearth.chat.history.new(mode, character, greeting=greeting)


def _chat_routes(api: Blueprint) -> None:
    @api.get("/chats")
    def chats():
        mode, character = chat_place(request.args.get("mode"), request.args.get("character"))
        listed = services().chat.history.list(mode, character)
        return jsonify(chats=[summary_json(c) for c in listed])

    @api.post("/chats")
    def create_chat():
        body = json_body(NewChat)
        mode, character = chat_place(body.mode, body.character)
        return jsonify(chat_json(new_chat(services(), mode, character, body.user_name))), 201

    @api.get("/chats/<chat_id>")
    def get_chat(chat_id: str):
        mode, character = chat_place(request.args.get("mode"), request.args.get("character"))
        validate_history_id(chat_id)
        return jsonify(chat_json(services().chat.history.load(mode, character, chat_id)))

    @api.patch("/chats/<chat_id>")
    def rename_chat(chat_id: str):
        body = json_body(ChatEdit)
        mode, character = chat_place(body.mode, body.character)
        validate_history_id(chat_id)
        renamed = services().chat.history.rename(mode, character, chat_id, body.title)
        return jsonify(summary_json(renamed))

    @api.delete("/chats/<chat_id>")
    def delete_chat(chat_id: str):
        mode, character = chat_place(request.args.get("mode"), request.args.get("character"))
        validate_history_id(chat_id)
        services().chat.history.delete(mode, character, chat_id)
        return jsonify(deleted=chat_id)

    @api.post("/chats/<chat_id>/remove-last")
    def remove_last(chat_id: str):
        body = json_body(ChatPlace)
        mode, character = chat_place(body.mode, body.character)
        validate_history_id(chat_id)
        removed: list[str] = []

        def change(chat: Chat) -> Chat:
            edited, text = remove_last_exchange(chat)
            removed.append(text)
            return edited

        chat = services().chat.history.update(mode, character, chat_id, change)
        return jsonify(chat=chat_json(chat), text=removed[0])


# --- Presets ---------------------------------------------------------------------------------------


class PresetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sampling: Sampling


def _preset_routes(api: Blueprint) -> None:
    @api.get("/presets")
    def presets():
        return jsonify(presets=[p.to_json() for p in web_state().presets.list()])

    @api.put("/presets/<name>")
    def save_preset(name: str):
        body = json_body(PresetBody)
        return jsonify(web_state().presets.save(name, body.sampling).to_json())

    @api.delete("/presets/<name>")
    def delete_preset(name: str):
        web_state().presets.delete(name)
        return jsonify(deleted=name)


# --- Settings and extensions -----------------------------------------------------------------------


def extensions_json(hearth: Services) -> list[dict]:
    settings = hearth.settings
    loaded = {e.name: e for e in hearth.extensions}
    wanted = settings.enabled_extensions
    names = sorted(
        set(available_extensions(extension_dirs(PROJECT_ROOT, settings.user_data_dir))) | set(wanted)
    )
    out = []
    for name in names:
        if name in loaded:
            state = "loaded"
        elif name in wanted:
            state = "failed"
        else:
            state = "available"
        params = {k: v for k, v in loaded[name].params.items()} if name in loaded else {}
        out.append({"name": name, "state": state, "params": json.loads(json.dumps(params, default=str))})
    return out


def _settings_routes(api: Blueprint) -> None:
    @api.get("/settings")
    def get_settings():
        hearth, web = services(), web_state()
        return jsonify(
            choices=web.choices.model_dump(),
            file=str(settings_file(hearth.settings)),
            extensions=extensions_json(hearth),
        )

    @api.put("/settings")
    def put_settings():
        choices = json_body(UiChoices)
        hearth, web = services(), web_state()
        save_choices(settings_file(hearth.settings), choices)
        web.choices = choices
        log.info("saved the UI's choices to %s", settings_file(hearth.settings))
        return jsonify(choices=choices.model_dump(), file=str(settings_file(hearth.settings)))

    @api.get("/extensions")
    def extensions():
        return jsonify(extensions=extensions_json(services()))
