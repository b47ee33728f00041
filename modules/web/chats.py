"""The UI's chat endpoints: list, create, load, rename, delete, and remove the last exchange."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from modules.app import Services, services
from modules.chat.chat_log import Chat, remove_last_exchange
from modules.chat.history import ChatSummary
from modules.chat.messages import MODES
from modules.chat.names import validate_history_id, validate_name
from modules.chat.placeholders import fill_placeholders
from modules.chat.service import DEFAULT_USER_NAME
from modules.errors import InvalidRequest

from .http import json_body


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
        {"role": m.role, "content": m.content, **({"extras": m.extras} if m.extras else {})}
        for m in chat.messages
        if m.role in ("user", "assistant", "system", "tool") and (m.content or m.role == "assistant")
    ]
    return {**summary_json(chat), "messages": messages}


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


def register_chat_routes(api: Blueprint) -> None:
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
