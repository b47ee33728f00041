"""Files in a user message: how their text goes into the prompt, cut to fit the context.

Each file becomes a block before the message's own text, so that the question comes last
(small models answer the last thing they read):

    [File: notes.txt]
    ...the file's text...
    [End of file: notes.txt]

    What do these notes say about Tuesday?

Only the newest user message's files are cut to fit: they get the room the context leaves
after the system text, that message and the room kept for the reply, shared fairly between
files (a short file is never cut because a long one is long). Older messages with files are
whole, or left out by the usual truncation of old turns. Every cut is reported in words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from modules.chat.messages import Attachment, ChatMessage
from modules.errors import InvalidRequest

MAX_FILES = 10  # per message
MAX_FILE_CHARS = 1_000_000  # of text kept from one file when it is read
MAX_MESSAGE_FILE_CHARS = 2_000_000  # of all of one message's files


def checked_file_name(name: str) -> str:
    """A file's name as the page shows it. Only its name is kept (never a path), so a name
    with folders in it is refused, with a message that says so."""
    name = name.strip()
    if not name:
        return "file"
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidRequest(
            f"The file name {shown_name(name)} is a path: send a file whose name has no folders "
            "('/', '\\' or '..') in it.",
            param="file",
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRequest("The file name holds control characters.", param="file")
    if len(name) > 255:
        raise InvalidRequest("The file name is longer than 255 characters.", param="file")
    return name


def shown_name(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:79] + "…")


def file_block(attachment: Attachment, text: str | None = None) -> str:
    body = attachment.text if text is None else text
    return f"[File: {attachment.name}]\n{body}\n[End of file: {attachment.name}]"


def with_files(message: ChatMessage, texts: Sequence[str] | None = None) -> ChatMessage:
    """The message as the prompt sees it: its files' text (or `texts`), then its own."""
    if not message.attachments:
        return message
    texts = texts if texts is not None else [a.text for a in message.attachments]
    blocks = [file_block(a, t) for a, t in zip(message.attachments, texts, strict=True) if t is not None]
    content = "\n\n".join([*blocks, message.content] if message.content else blocks)
    return dataclasses.replace(message, content=content, attachments=())


def fit_files(
    attachments: Sequence[Attachment], room: int, count_tokens: Callable[[str], int]
) -> tuple[list[str | None], list[str]]:
    """Each file's text cut so that all fit in `room` tokens (None: left out), and notices."""
    sizes = [count_tokens(a.text) if a.text else 0 for a in attachments]
    shares = _fair_shares(sizes, max(room, 0))
    texts: list[str | None] = []
    notices: list[str] = []
    for attachment, size, share in zip(attachments, sizes, shares, strict=True):
        if size <= share:
            texts.append(attachment.text)
        elif share < 8:
            texts.append(None)
            notices.append(f"{attachment.name} was left out: the model's context has no room for it.")
        else:
            kept = cut_to_tokens(attachment.text, share, count_tokens)
            texts.append(kept)
            notices.append(
                f"{attachment.name} was cut to fit the model's context: the first {len(kept):,} of "
                f"{len(attachment.text):,} characters were used."
            )
    return texts, notices


def _fair_shares(sizes: Sequence[int], room: int) -> list[int]:
    """Water-filling: small files get all they need; the rest share what is left equally."""
    shares = [0] * len(sizes)
    left, waiting = room, sorted(range(len(sizes)), key=lambda i: sizes[i])
    while waiting:
        each = left // len(waiting)
        i = waiting[0]
        if sizes[i] <= each:
            shares[i] = sizes[i]
            left -= sizes[i]
            waiting.pop(0)
        else:
            for j in waiting:
                shares[j] = each
            break
    return shares


def cut_to_tokens(text: str, limit: int, count_tokens: Callable[[str], int]) -> str:
    """The longest start of `text` (cut at a space or line end where one is near) that has
    at most `limit` tokens, found in a few counts rather than by tokenizing all of it."""
    keep = min(len(text), limit * 4)
    for _ in range(12):
        candidate = _at_boundary(text[:keep])
        tokens = count_tokens(candidate)
        if tokens <= limit:
            return candidate
        keep = max(1, int(keep * limit / tokens * 0.95))
    return ""


def _at_boundary(text: str) -> str:
    cut = max(text.rfind("\n"), text.rfind(" "))
    return text[:cut] if cut > len(text) - 200 and cut > 0 else text
