"""Images in UI chats, as the prompt takes them (modules/chat/chat_images.py): markers and
pixels for a model that reads images, left out with a notice for one that does not, the
newest ones when there are too many, a lost file never breaks the chat, and a marker typed
by someone never places an image."""

from __future__ import annotations

import io

import pytest

from modules.chat.chat_images import checked_image, image_attachment, with_images
from modules.chat.messages import Attachment, ChatMessage
from modules.errors import InvalidRequest
from modules.image_input import MARKER, ImageLimits


def png(seed: int, size=(12, 10)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 256, 20, 200)).save(out, format="PNG")
    return out.getvalue()


FILES = {}


def saved(seed: int) -> Attachment:
    name, _ = checked_image(png(seed), ImageLimits())
    FILES[name] = png(seed)
    return image_attachment(f"photo-{seed}.png", name)


def read(name: str) -> bytes:
    return FILES[name]


def test_a_message_with_images_gets_a_marker_and_the_pixels_of_each():
    text_file = Attachment("notes.txt", "text", "some notes")
    messages = [ChatMessage("user", "What are these?", attachments=(saved(1), text_file, saved(2)))]
    [out], notices = with_images(messages, read, vision=True, limits=ImageLimits())
    assert out.content == f"{MARKER}\n{MARKER}\nWhat are these?"
    assert [(i.width, i.height) for i in out.images] == [(12, 10), (12, 10)]
    assert out.images[0].digest != out.images[1].digest
    assert out.attachments == (text_file,)  # files stay for the prompt's file blocks
    assert notices == []


def test_a_text_model_gets_the_text_and_the_page_a_notice():
    messages = [ChatMessage("user", "Look", attachments=(saved(1),)), ChatMessage("assistant", "Nice")]
    out, notices = with_images(messages, read, vision=False, limits=ImageLimits())
    assert [m.content for m in out] == ["Look", "Nice"] and not out[0].images and not out[0].attachments
    assert notices == ["This model reads text only: 1 image left out of the prompt."]


def test_only_the_newest_images_are_read():
    messages = [ChatMessage("user", f"turn {i}", attachments=(saved(i),)) for i in range(4)]
    out, notices = with_images(messages, read, vision=True, limits=ImageLimits(max_images=2))
    assert [len(m.images) for m in out] == [0, 0, 1, 1]
    assert [m.content.count(MARKER) for m in out] == [0, 0, 1, 1]
    assert notices == ["Only the newest 2 images go with a prompt: 2 images left out."]


def test_a_lost_or_damaged_file_is_left_out_and_said():
    FILES["0" * 32 + ".png"] = b"not a picture"
    lost = image_attachment("gone.png", "f" * 32 + ".png")
    damaged = image_attachment("bad.png", "0" * 32 + ".png")

    def reading(name):
        if name not in FILES:
            raise FileNotFoundError(name)
        return FILES[name]

    [out], notices = with_images(
        [ChatMessage("user", "hi", attachments=(lost, damaged, saved(3)))],
        reading,
        vision=True,
        limits=ImageLimits(),
    )
    assert len(out.images) == 1 and out.content == f"{MARKER}\nhi"
    assert notices == ["2 images of this chat could not be read and were left out."]


def test_a_typed_marker_places_no_image():
    messages = [ChatMessage("user", f"what does {MARKER} mean?"), ChatMessage("assistant", MARKER)]
    out, _ = with_images(messages, read, vision=True, limits=ImageLimits())
    assert all(MARKER not in m.content for m in out)


def test_a_file_name_that_is_not_a_hash_is_never_read():
    """A chat file edited by hand (or by someone else) cannot point the reader elsewhere."""
    asked = []
    bad = image_attachment("x.png", "../../settings.yaml")
    [out], notices = with_images(
        [ChatMessage("user", "x", attachments=(bad,))], asked.append, vision=True, limits=ImageLimits()
    )
    assert asked == [] and not out.images and notices


def test_the_saved_name_is_the_hash_of_the_bytes_with_the_format():
    a, image = checked_image(png(1), ImageLimits())
    b, _ = checked_image(png(1), ImageLimits())
    assert a == b and a.endswith(".png") and len(a) == 36 and (image.width, image.height) == (12, 10)
    with pytest.raises(InvalidRequest):
        checked_image(b"<svg onload=alert(1)>", ImageLimits())
