"""Export a chat (Markdown, or Hearth's JSON with every version) and import one (Hearth's
JSON, or text-generation-webui's history JSON) into the chat list the page shows."""

from __future__ import annotations

import dataclasses
import io
import json
import re

from flask import Blueprint, jsonify, request, send_file

from modules.app import services
from modules.chat.chat_file import chat_from_json, chat_to_json
from modules.chat.chat_markdown import chat_markdown
from modules.chat.names import validate_history_id
from modules.errors import InvalidRequest
from modules.inbound import json_object

from .chats import chat_json, chat_place, query_place

MAX_IMPORT_BYTES = 64 * 1024 * 1024


def download_name(title: str, suffix: str) -> str:
    """A file name from a chat's title: letters, digits and a few marks, never a path."""
    stem = re.sub(r"[^\w .()-]+", "", title, flags=re.UNICODE).strip(" .")[:80] or "chat"
    return f"{stem}{suffix}"


def register_transfer_routes(api: Blueprint) -> None:
    @api.get("/chats/<chat_id>/export")
    def export_chat(chat_id: str):
        place = query_place()
        validate_history_id(chat_id)
        chat = place.store.load(place.mode, place.character, chat_id)
        kind = request.args.get("format", "json")
        if kind == "json":
            data = _json_bytes(chat_to_json(chat))
            mimetype, suffix = "application/json", ".json"
        elif kind == "markdown":
            bot = "Assistant"
            if place.character:
                bot = services().chat.characters.get(place.character).name
            user = " ".join(request.args.get("user_name", "").split())[:100] or "You"
            data = chat_markdown(chat, user_name=user, bot_name=bot).encode("utf-8")
            mimetype, suffix = "text/markdown", ".md"
        else:
            raise InvalidRequest("Export as format=json or format=markdown.", param="format")
        return send_file(
            io.BytesIO(data),
            mimetype=mimetype,
            as_attachment=True,
            download_name=download_name(chat.display_title, suffix),
        )

    @api.post("/chats/import")
    def import_chat():
        """Form fields `mode`, `character`, `incognito` (where it goes) and the file `file`."""
        place = chat_place(
            request.form.get("mode"), request.form.get("character"), request.form.get("incognito")
        )
        upload = request.files.get("file")
        if upload is None:
            raise InvalidRequest("Choose a chat file to import (form field 'file').", param="file")
        raw = upload.read(MAX_IMPORT_BYTES + 1)
        if len(raw) > MAX_IMPORT_BYTES:
            raise InvalidRequest(
                f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.", param="file"
            )
        data = json_object(raw, "the chat file")
        chat = chat_from_json(data, id="import", mode=place.mode, character=place.character, mtime=0.0)
        if not chat.messages:
            raise InvalidRequest("The file holds no messages to import.", param="file")
        keeps_mode = place.mode != "instruct" and chat.mode in ("chat", "chat-instruct")
        chat = dataclasses.replace(chat, mode=chat.mode if keeps_mode else place.mode)
        return jsonify(chat_json(place.store.add(chat))), 201


def _json_bytes(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
