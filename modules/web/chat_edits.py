"""Editing a chat: a message's text, which version is shown, branching into a new chat, and
the prompt the next reply would get (with its size in tokens).

Edits and switches answer with the part of the path that changed: `{"at": i, "messages":
[...the path from place i on...], "chat": summary}` (a long chat is not sent again whole).
"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, jsonify
from pydantic import Field

from modules.app import services
from modules.chat.attachments import MAX_FILES
from modules.chat.chat_log import Chat
from modules.chat.messages import ChatMessage
from modules.chat.names import validate_history_id
from modules.chat.versions import edit_message, index_of, path_until, switch_version

from .chats import ChatPlace, chat_json, path_json, summary_json
from .files import AttachmentIn
from .http import MAX_TEXT_JSON_BYTES, json_body
from .presets import Sampling
from .turns import TurnRequest, chat_options, prompt_messages

MAX_TEXT = 100_000


class MessageEdit(ChatPlace):
    text: str = Field(max_length=MAX_TEXT)


class VersionChoice(ChatPlace):
    version: int = Field(ge=1)


class BranchPoint(ChatPlace):
    message: int = Field(ge=1)


class PromptPreview(ChatPlace):
    """What the page would send next: the typed text and the prompt choices."""

    text: str = Field("", max_length=MAX_TEXT)
    sampling: Sampling = Field(default_factory=Sampling)
    user_name: str = Field("", max_length=100)
    user_bio: str = Field("", max_length=4000)
    instruction_template: str = Field("", max_length=100)
    reasoning_effort: str | None = Field(None, pattern="^(low|medium|high)$")
    enable_thinking: bool | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_FILES)


def changed_from(chat: Chat, index: int) -> dict:
    return {"at": index, "messages": path_json(chat, index), "chat": summary_json(chat)}


def register_edit_routes(api: Blueprint) -> None:
    @api.put("/chats/<chat_id>/messages/<int:message_id>")
    def edit(chat_id: str, message_id: int):
        """New text for a message: a new version of it that keeps what followed."""
        body = json_body(MessageEdit)
        place = body.place()
        validate_history_id(chat_id)
        found: list[int] = []

        def change(chat: Chat) -> Chat:
            found.append(index_of(chat, message_id))  # the new version takes the old one's place
            return edit_message(chat, message_id, body.text)

        chat = place.store.update(place.mode, place.character, chat_id, change)
        return jsonify(changed_from(chat, found[0]))

    @api.post("/chats/<chat_id>/messages/<int:message_id>/version")
    def choose_version(chat_id: str, message_id: int):
        """Show another version of a message (and what followed that version)."""
        body = json_body(VersionChoice)
        place = body.place()
        validate_history_id(chat_id)
        found: list[int] = []

        def change(chat: Chat) -> Chat:
            index = index_of(chat, message_id)
            found.append(index)
            return switch_version(chat, index, body.version)

        chat = place.store.update(place.mode, place.character, chat_id, change)
        return jsonify(changed_from(chat, found[0]))

    @api.post("/chats/<chat_id>/branch")
    def branch(chat_id: str):
        """A new chat with this chat's messages up to and including `message`."""
        body = json_body(BranchPoint)
        place = body.place()
        validate_history_id(chat_id)
        chat = place.store.load(place.mode, place.character, chat_id)
        messages = tuple(dataclasses.replace(m, id=None) for m in path_until(chat, body.message))
        title = f"{chat.display_title} (branch)"[:200]
        fork = Chat("", chat.mode, chat.character, messages, title, chat.created, 0.0)
        added = place.store.add(dataclasses.replace(fork, updated=0.0))
        place.store.copy_files(place.mode, place.character, chat_id, added.id)  # its images
        return jsonify(chat_json(added)), 201

    @api.post("/chats/<chat_id>/prompt")
    def prompt(chat_id: str):
        """The prompt the next reply would get (with the typed text as a new message), its
        size in tokens and the model's context; `{"model": null}` when none is loaded."""
        body = json_body(PromptPreview, MAX_TEXT_JSON_BYTES)
        place = body.place()
        validate_history_id(chat_id)
        hearth = services()
        engine = hearth.models.get_loaded()
        if engine is None:
            return jsonify(model=None)
        chat = place.store.load(place.mode, place.character, chat_id)
        messages = list(chat.messages)
        if body.text or body.attachments:
            files = tuple(a.attachment() for a in body.attachments)
            messages.append(ChatMessage("user", body.text, attachments=files))
        request = TurnRequest(
            action="send",
            mode=place.mode,
            character=place.character,
            chat_id=chat_id,
            text=body.text,
            sampling=body.sampling,
            user_name=" ".join(body.user_name.split()),
            user_bio=body.user_bio.strip(),
            instruction_template=body.instruction_template,
            reasoning_effort=body.reasoning_effort,
            enable_thinking=body.enable_thinking,
        )
        n_ctx = engine.info.n_ctx
        messages, _ = prompt_messages(place.store, request, messages, engine)
        prepared = hearth.chat.prepare(
            messages,
            chat_options(request),
            engine.info,
            count_tokens=engine.count_tokens,
            max_tokens=min(body.sampling.max_tokens, n_ctx // 2),
        )
        return jsonify(
            model=engine.info.name,
            prompt=prepared.prompt,
            tokens=engine.count_tokens(prepared.prompt) + 1,
            n_ctx=n_ctx,
            reply_room=min(body.sampling.max_tokens, n_ctx // 2),
            dropped_messages=prepared.dropped_messages,
            template=prepared.template_name,
        )
