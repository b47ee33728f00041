"""Just enough PNG to read and write the text chunks that carry character cards.

No imaging library: a PNG is a signature followed by chunks (length, type, data, CRC), and
cards live in `tEXt`/`zTXt`/`iTXt` chunks. We never decode pixels, except to make a plain
picture for a character that has none.
"""

from __future__ import annotations

import struct
import zlib

from modules.errors import InvalidRequest

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")


def read_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, data) chunks of a PNG, in order; InvalidRequest if it is not one."""
    if not data.startswith(SIGNATURE):
        raise InvalidRequest("Not a PNG file.")
    chunks: list[tuple[bytes, bytes]] = []
    pos = len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise InvalidRequest("Truncated PNG file.")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length + 4
        if end > len(data):
            raise InvalidRequest("Truncated PNG file.")
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[-1][0] != b"IEND":
        raise InvalidRequest("Truncated PNG file (no IEND chunk).")
    return chunks


def write_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [SIGNATURE]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def _decode_text(kind: bytes, body: bytes) -> tuple[str, str] | None:
    """(keyword, text) of a text chunk, or None when it is damaged."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep:
        return None
    try:
        if kind == b"tEXt":
            return keyword.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return keyword.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
        # iTXt: compression flag, method, language\0, translated keyword\0, text
        compressed = rest[:1] == b"\x01"
        _lang, _, rest = rest[2:].partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        if compressed:
            text = zlib.decompress(text)
        return keyword.decode("latin-1"), text.decode("utf-8")
    except (zlib.error, UnicodeDecodeError):
        return None


def read_text(data: bytes) -> dict[str, str]:
    """Every readable text chunk of a PNG, keyword -> text (the last one wins)."""
    texts: dict[str, str] = {}
    for kind, body in read_chunks(data):
        if kind in _TEXT_TYPES and (decoded := _decode_text(kind, body)):
            texts[decoded[0]] = decoded[1]
    return texts


def with_text(data: bytes, keyword: str, text: str, *, drop: tuple[str, ...] = ()) -> bytes:
    """The same PNG with one `tEXt` chunk `keyword`; older chunks named `keyword` or in `drop`
    are removed. `text` must be Latin-1 (cards are base64, so ASCII); it goes before IEND.
    """
    gone = {keyword, *drop}
    chunks = [
        (kind, body)
        for kind, body in read_chunks(data)
        if not (kind in _TEXT_TYPES and (_decode_text(kind, body) or ("",))[0] in gone)
    ]
    chunk = (b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))
    return write_chunks([*chunks[:-1], chunk, chunks[-1]])


def plain_png(width: int = 64, height: int = 64, rgb: tuple[int, int, int] = (96, 112, 160)) -> bytes:
    """A one-colour RGB picture, for a character card that needs a PNG to live in."""
    row = b"\0" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(row * height, 9)
    return write_chunks([(b"IHDR", header), (b"IDAT", pixels), (b"IEND", b"")])
