"""A UI chat's images: `POST /ui/api/chats/<id>/images` checks one and saves it with the
chat; `GET /ui/api/chats/<id>/images/<file>` gives it back (thumbnails, the full view).

The place (mode, character, incognito) is in the query, as for the chat's other calls. What
is saved is the uploaded file as it came, after the checks every image entering Hearth gets
(modules/image_input.py): a PNG, JPEG, GIF, WebP or BMP within the size and pixel limits.
The message then names it (modules/chat/chat_images.py).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from modules.chat.attachments import checked_file_name, shown_name
from modules.chat.chat_images import IMAGE, checked_image
from modules.chat.chat_images import checked_file_name as checked_image_file
from modules.chat.names import validate_history_id
from modules.errors import InvalidRequest, PayloadTooLarge
from modules.image_input import ImageLimits

from .chats import query_place
from .files import off_the_loop

LIMITS = ImageLimits()
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
}


def register_image_routes(api: Blueprint) -> None:
    @api.post("/chats/<chat_id>/images")
    def add_image(chat_id: str):
        """Form file `file`: saved with the chat; its attachment for the message, and its size."""
        place = query_place()
        validate_history_id(chat_id)
        upload = request.files.get("file")
        if upload is None:
            raise InvalidRequest("Choose an image to attach (form field 'file').", param="file")
        name = checked_file_name(upload.filename or "image")
        data = upload.read(LIMITS.max_bytes + 1)
        if len(data) > LIMITS.max_bytes:
            raise PayloadTooLarge(f"{shown_name(name)} is larger than {LIMITS.max_bytes // 2**20} MB.")
        file, image = off_the_loop(checked_image, data, LIMITS)
        place.store.write_file(place.mode, place.character, chat_id, file, data)
        return jsonify(
            name=name, kind=IMAGE, file=file, bytes=len(data), width=image.width, height=image.height
        ), 201

    @api.get("/chats/<chat_id>/images/<file>")
    def image(chat_id: str, file: str):
        place = query_place()
        validate_history_id(chat_id)
        data = place.store.read_file(place.mode, place.character, chat_id, checked_image_file(file))
        response = Response(data, mimetype=MEDIA_TYPES[file.rsplit(".", 1)[1]])
        # Named by its bytes' hash: the same name is always the same image.
        response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
