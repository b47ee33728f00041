"""Images in the UI's chats: saved with the chat, given to the prompt as pixels.

An image the page attaches is checked like every image that enters Hearth
(modules/image_input.py) and saved among the chat's files under the hash of its bytes (the
same image twice is one file): a saved chat's files are in the chat's folder
(`<id>.files/`, HistoryStore), an incognito chat's in memory with the chat. The message
names it: an attachment of kind "image" whose `file` is that name, never the bytes, so the
chat's JSON stays small.

For the prompt, a message's images become markers before its text (the images first, then
the question, as the API's examples put them) and their pixels; a model that reads text
only gets the text, and the page is told that the images were left out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
from collections.abc import Callable, Sequence

from modules.chat.messages import Attachment, ChatMessage
from modules.engines.base import ImageInput
from modules.errors import InvalidRequest
from modules.image_input import MARKER, ImageLimits, decode_image, escape_markers

IMAGE = "image"
FILE_NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|gif|webp|bmp)$")
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}


def checked_image(data: bytes, limits: ImageLimits) -> tuple[str, ImageInput]:
    """The file name an image is saved under, and its pixels; a 400 for anything that is
    not an image Hearth reads, or breaks the limits."""
    from PIL import Image

    image = decode_image(data, "file", limits)
    with Image.open(io.BytesIO(data)) as opened:  # decoded above: this reads the header only
        extension = _EXTENSIONS[opened.format]
    return f"{hashlib.sha256(data).hexdigest()[:32]}.{extension}", image


def checked_file_name(name: str) -> str:
    if not FILE_NAME.match(name):
        raise InvalidRequest(f"{name[:80]!r} is not the name of a chat's image.", param="file")
    return name


def has_images(messages: Sequence[ChatMessage]) -> bool:
    return any(a.kind == IMAGE for m in messages for a in m.attachments)


def with_images(
    messages: Sequence[ChatMessage],
    read: Callable[[str], bytes],
    *,
    vision: bool,
    limits: ImageLimits,
) -> tuple[list[ChatMessage], list[str]]:
    """The messages as the prompt takes them: each image attachment becomes a marker and its
    pixels (`vision`), or is left out (a model that reads text only); notices say what was
    left out. Only the newest `limits.max_images` images are read: older turns rarely fit.
    A marker someone typed is broken up, as the API does."""
    wanted = limits.max_images
    out: list[ChatMessage] = []
    left_out = missing = 0
    for message in reversed(messages):
        text = escape_markers(message.content)  # typed text never places an image
        images = [a for a in message.attachments if a.kind == IMAGE]
        if not images:
            out.append(dataclasses.replace(message, content=text) if text != message.content else message)
            continue
        others = tuple(a for a in message.attachments if a.kind != IMAGE)
        pixels: list[ImageInput] = []
        for attachment in images:
            if not vision or wanted <= 0:
                left_out += 1
                continue
            try:
                pixels.append(decode_image(read(checked_file_name(attachment.file)), "file", limits))
                wanted -= 1
            except (OSError, InvalidRequest):  # deleted or damaged since: the chat still opens
                missing += 1
        content = "".join(MARKER + "\n" for _ in pixels) + text
        out.append(dataclasses.replace(message, content=content, images=tuple(pixels), attachments=others))
    notices = []
    if left_out and not vision:
        notices.append(f"This model reads text only: {_count(left_out)} left out of the prompt.")
    elif left_out:
        newest = limits.max_images
        notices.append(f"Only the newest {newest} images go with a prompt: {_count(left_out)} left out.")
    if missing:
        notices.append(f"{_count(missing)} of this chat could not be read and {_were(missing)} left out.")
    return out[::-1], notices


def without_markers(text: str) -> str:
    """A message's text as it is saved and shown: the images' markers `with_images` put in
    are taken out (the images stay in its attachments)."""
    return text.replace(MARKER + "\n", "").replace(MARKER, "")


def _count(n: int) -> str:
    return "1 image" if n == 1 else f"{n} images"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def image_attachment(name: str, file: str) -> Attachment:
    return Attachment(name, IMAGE, "", file)
