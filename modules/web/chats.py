"""The UI's chat endpoints: list, search, create, load, rename, delete, remove the last
exchange (edits, versions and branches are in chat_edits.py; export and import in
chat_transfer.py).

A chat lives in a place: its mode, its character (not in instruct mode), and its store:
the saved history, or the incognito chats that only this server's memory holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from modules.app import Services, services
from modules.chat.chat_log import FORMAT, Chat, remove_last_exchange
from modules.chat.chat_search import search_chats
from modules.chat.history import ChatSummary
from modules.chat.messages import MODES, ChatMessage
from modules.chat.names import validate_history_id, validate_name
from modules.chat.placeholders import fill_placeholders
from modules.chat.service import DEFAULT_USER_NAME
from modules.chat.versions import version_numbers
from modules.errors import InvalidRequest

from .http import json_body
from .state import web_state

Mode = Literal["chat", "chat-instruct", "instruct"]


@dataclass(frozen=True)
class Place:
    mode: str
    character: str | None
    incognito: bool = False

    @property
    def store(self):
        return web_state().incognito if self.incognito else services().chat.history


def chat_place(mode: Any, character: Any, incognito: Any = False) -> Place:
    if mode not in MODES:
        raise InvalidRequest(f"Invalid mode {mode!r}: use one of {', '.join(MODES)}.", param="mode")
    incognito = incognito in (True, "1", "true")
    if mode == "instruct":
        return Place(mode, None, incognito)
    return Place(mode, validate_name(character), incognito)


def query_place() -> Place:
    args = request.args
    return chat_place(args.get("mode"), args.get("character"), args.get("incognito", False))


# --- JSON shapes ---------------------------------------------------------------------------------


def summary_json(chat: Chat | ChatSummary) -> dict:
    title = chat.display_title if isinstance(chat, Chat) else chat.title
    out = {
        "id": chat.id,
        "mode": chat.mode,
        "character": chat.character,
        "title": title,
        "updated": chat.updated,
    }
    if chat.id.startswith("incognito-"):
        out["incognito"] = True
    return out


def shown(message: ChatMessage) -> bool:
    """The messages the page shows (tool traffic and empty messages are only in the file)."""
    if message.role not in ("user", "assistant", "system", "tool"):
        return False
    return bool(message.content or message.attachments or message.role == "assistant")


def message_json(message: ChatMessage, version: tuple[int, int]) -> dict:
    out: dict = {"id": message.id, "role": message.role, "content": message.content}
    if message.extras:
        out["extras"] = message.extras
    if message.tool_rounds:
        out["tool_rounds"] = list(message.tool_rounds)
    if message.attachments:
        out["attachments"] = [
            {"name": a.name, "kind": a.kind, **({"file": a.file} if a.file else {"chars": len(a.text)})}
            for a in message.attachments
        ]
    if message.time:
        out["time"] = message.time
    if message.model:
        out["model"] = message.model
    if version[1] > 1:
        out["version"], out["versions"] = version
    return out


def path_json(chat: Chat, start: int = 0) -> list[dict]:
    """The path's messages from place `start` on, as the page shows them. Every message is
    listed with its id (hidden ones as `{"id", "role", "hidden": true}`) so that places on
    the page and in the chat are the same."""
    numbers = version_numbers(chat)
    out = []
    for i in range(start, len(chat.messages)):
        m = chat.messages[i]
        out.append(message_json(m, numbers[i]) if shown(m) else {"id": m.id, "role": m.role, "hidden": True})
    return out


def chat_json(chat: Chat) -> dict:
    out = {**summary_json(chat), "messages": path_json(chat)}
    if chat.format > FORMAT:
        out["read_only"] = True
    return out


# --- Requests ------------------------------------------------------------------------------------


class NewChat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode
    character: str | None = None
    user_name: str = Field("", max_length=100)
    incognito: bool = False


class ChatEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode
    character: str | None = None
    incognito: bool = False
    title: str = Field(max_length=200)


class ChatPlace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode
    character: str | None = None
    incognito: bool = False

    def place(self) -> Place:
        return chat_place(self.mode, self.character, self.incognito)


def new_chat(hearth: Services, place: Place, user_name: str = "") -> Chat:
    greeting = ""
    if place.mode != "instruct":
        found = hearth.chat.characters.get(place.character)
        user = user_name or found.user_name or DEFAULT_USER_NAME
        greeting = fill_placeholders(found.greeting, user=user, bot=found.name).strip()
    return place.store.new(place.mode, place.character, greeting=greeting)


def register_chat_routes(api: Blueprint) -> None:
    @api.get("/chats")
    def chats():
        place = query_place()
        listed = services().chat.history.list(place.mode, place.character)
        return jsonify(chats=[summary_json(c) for c in listed])

    @api.get("/search")
    def search():
        """Saved chats of every mode and character whose title or messages hold the words."""
        query = request.args.get("q", "")
        if len(query) > 200:
            raise InvalidRequest("Search for at most 200 characters.", param="q")
        hits = search_chats(services().chat.history, query)
        return jsonify(
            query=query,
            results=[
                {**summary_json(hit.summary), "snippet": hit.snippet, "where": hit.where} for hit in hits
            ],
        )

    @api.post("/chats")
    def create_chat():
        body = json_body(NewChat)
        place = chat_place(body.mode, body.character, body.incognito)
        return jsonify(chat_json(new_chat(services(), place, body.user_name))), 201

    @api.get("/chats/<chat_id>")
    def get_chat(chat_id: str):
        place = query_place()
        validate_history_id(chat_id)
        return jsonify(chat_json(place.store.load(place.mode, place.character, chat_id)))

    @api.patch("/chats/<chat_id>")
    def rename_chat(chat_id: str):
        body = json_body(ChatEdit)
        place = chat_place(body.mode, body.character, body.incognito)
        validate_history_id(chat_id)
        renamed = place.store.rename(place.mode, place.character, chat_id, body.title)
        return jsonify(summary_json(renamed))

    @api.delete("/chats/<chat_id>")
    def delete_chat(chat_id: str):
        place = query_place()
        validate_history_id(chat_id)
        place.store.delete(place.mode, place.character, chat_id)
        return jsonify(deleted=chat_id)

    @api.post("/chats/<chat_id>/remove-last")
    def remove_last(chat_id: str):
        place = json_body(ChatPlace).place()
        validate_history_id(chat_id)
        removed: list[str] = []

        def change(chat: Chat) -> Chat:
            edited, text = remove_last_exchange(chat)
            removed.append(text)
            return edited

        chat = place.store.update(place.mode, place.character, chat_id, change)
        return jsonify(chat=chat_json(chat), text=removed[0])
