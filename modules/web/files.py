"""Reading an attached file into text (`POST /ui/api/files`) and counting tokens
(`POST /ui/api/tokens`).

A file is read and forgotten: the page gets its text back and sends it with the message,
so nothing is stored until the message is (and never for an incognito chat). Reading a PDF
is pure Python work: it runs on a thread of its own, so the server keeps answering.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modules.app import services
from modules.chat.attachments import MAX_FILE_CHARS, checked_file_name, shown_name
from modules.chat.chat_images import FILE_NAME, IMAGE
from modules.chat.documents import UnreadableFile, read_document
from modules.chat.messages import Attachment
from modules.engines.crossthread import gevent_active, native_logging_locks
from modules.errors import InvalidRequest, PayloadTooLarge

from .http import json_body

MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_COUNTED = 400_000  # characters of text a token count reads


def off_the_loop(function, *args):
    """Run CPU-bound work on a real thread under gevent, so other requests are served."""
    if not gevent_active():
        return function(*args)
    import gevent

    def call():  # an error comes back as a value: gevent would print a task's traceback
        try:
            return True, function(*args)
        except Exception as exc:
            return False, exc

    native_logging_locks()
    ok, value = gevent.get_hub().threadpool.apply(call)
    if not ok:
        raise value
    return value


class AttachmentIn(BaseModel):
    """A file the page read through /ui/api/files, sent back with the message; or an image
    saved with the chat through /ui/api/chats/<id>/images (its `file`, no text)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    kind: Literal["text", "markdown", "code", "html", "pdf", "docx", "image"] = "text"
    text: str = Field("", max_length=MAX_FILE_CHARS)
    file: str = Field("", pattern=FILE_NAME.pattern + "|^$")

    @model_validator(mode="after")
    def _image_or_text(self) -> AttachmentIn:
        if (self.kind == IMAGE) != bool(self.file):
            raise ValueError("an image names its file (and only an image does)")
        if self.kind == IMAGE and self.text:
            raise ValueError("an image has no text")
        return self

    def attachment(self) -> Attachment:
        return Attachment(checked_file_name(self.name), self.kind, self.text, self.file)


class TokenCount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=MAX_COUNTED)


def register_file_routes(api: Blueprint) -> None:
    @api.post("/files")
    def read_file():
        """Form file `file`: its text, kind, size, and a notice when only its start was kept."""
        upload = request.files.get("file")
        if upload is None:
            raise InvalidRequest("Choose a file to attach (form field 'file').", param="file")
        name = checked_file_name(upload.filename or "")
        data = upload.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise PayloadTooLarge(f"{shown_name(name)} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
        if not data:
            raise InvalidRequest(f"{shown_name(name)} is empty.", param="file")
        try:
            document = off_the_loop(read_document, name, data)
        except UnreadableFile as e:
            raise InvalidRequest(
                f"{shown_name(name)} cannot be read: {e}. Hearth reads text, Markdown, code, PDF and "
                ".docx files.",
                param="file",
            ) from None
        text, notice = document.text, None
        if not text.strip():
            raise InvalidRequest(
                f"{shown_name(name)} has no text to read"
                + (" (a scanned PDF holds pictures of text)." if document.kind == "pdf" else "."),
                param="file",
            )
        if len(text) > MAX_FILE_CHARS:
            text = text[:MAX_FILE_CHARS]
            notice = f"Only the first {MAX_FILE_CHARS:,} of {len(document.text):,} characters were kept."
        return jsonify(
            name=name,
            kind=document.kind,
            text=text,
            chars=len(text),
            bytes=len(data),
            pages=document.pages,
            tokens=_tokens(text),
            notice=notice,
        )

    @api.post("/tokens")
    def count_tokens():
        """`{"text"}`: its tokens for the loaded model, and the model's context."""
        body = json_body(TokenCount)
        engine = services().models.get_loaded()
        if engine is None:
            return jsonify(tokens=None, n_ctx=None, model=None)
        return jsonify(tokens=_tokens(body.text), n_ctx=engine.info.n_ctx, model=engine.info.name)


def _tokens(text: str) -> int | None:
    """The text's tokens for the loaded model (exact up to its context, else at least that);
    None without a model."""
    engine = services().models.get_loaded()
    if engine is None:
        return None
    return engine.count_tokens(text[:MAX_COUNTED]) if text else 0
