"""Reading documents into chunks: which files, how each type is read, and how text is split.

Text, Markdown and source code are split by lines (prose at blank lines where it can);
HTML, PDF and Word files are read into text by modules/chat/documents.py (PDFs page by page).
A chunk is at most `size` characters; neighbouring chunks share about `overlap` characters,
so a sentence cut at a boundary is whole in one of them. Each chunk knows where it came
from ("lines 12-40", "page 3") for the sources list.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from modules.chat.documents import (
    CODE,
    SUFFIXES,
    UnreadableFile,
    decode,
    docx_text,
    html_text,
    kind_of,
    pdf_pages,
)

log = logging.getLogger(__name__)

__all__ = ["Chunk", "UnreadableFile", "is_document", "read_chunks", "split_text"]

EXACT_NAMES = frozenset({"Makefile", "Dockerfile", "README", "LICENSE", "CMakeLists.txt"})


def is_document(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES or path.name in EXACT_NAMES


@dataclass(frozen=True)
class Chunk:
    text: str
    location: str  # "lines 3-20", "page 2", "page 2, lines 1-30"


# --- Reading (modules/chat/documents.py reads each kind of file) ---------------------------------


def read_chunks(path: Path, data: bytes, size: int, overlap: int) -> list[Chunk]:
    """The chunks of one file, from its bytes (read once, also for its hash)."""
    kind = kind_of(path.name)
    if kind == "pdf":
        pages = pdf_pages(data)
        return [
            Chunk(chunk.text, f"page {number}" if len(pages) > 1 else chunk.location)
            for number, text in enumerate(pages, 1)
            for chunk in split_text(text, size, overlap, prose=True)
        ]
    if kind == "docx":
        return split_text(docx_text(data), size, overlap, prose=True)
    text = decode(data)
    if kind == "html":
        return split_text(html_text(text), size, overlap, prose=True)
    return split_text(text, size, overlap, prose=path.suffix.lower() not in CODE)


# --- Splitting -----------------------------------------------------------------------------------


def _blocks(text: str, prose: bool) -> list[tuple[int, int, str]]:
    """(first line, last line, text) pieces that are kept whole where possible: paragraphs for
    prose, single lines for code. Line numbers start at 1."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[tuple[int, int, str]] = []
    if not prose:
        return [(i, i, line) for i, line in enumerate(lines, 1) if line.strip()]
    start, current = 0, []
    for i, line in enumerate(lines, 1):
        if line.strip():
            if not current:
                start = i
            current.append(line.rstrip())
        elif current:
            blocks.append((start, i - 1, "\n".join(current)))
            current = []
    if current:
        blocks.append((start, len(lines), "\n".join(current)))
    return blocks


def _fit(block: tuple[int, int, str], size: int) -> list[tuple[int, int, str]]:
    """A block longer than `size` as several: by lines, then by words, then cut."""
    first, last, text = block
    if len(text) <= size:
        return [block]
    lines = text.split("\n")
    if len(lines) > 1:
        out = []
        for offset, line in enumerate(lines):
            out.extend(_fit((first + offset, first + offset, line), size))
        return out
    pieces, current = [], ""
    for word in re.split(r"(?<=\s)", text):
        while len(word) > size:  # one enormous "word" (minified code, base64): cut it
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:size])
            word = word[size:]
        if len(current) + len(word) > size and current:
            pieces.append(current)
            current = ""
        current += word
    if current:
        pieces.append(current)
    return [(first, last, p) for p in pieces]


def split_text(text: str, size: int, overlap: int, *, prose: bool) -> list[Chunk]:
    """Pack blocks into chunks of at most about `size` characters; each chunk starts with the
    last blocks of the one before, up to `overlap` characters."""
    blocks = [piece for block in _blocks(text, prose) for piece in _fit(block, size)]
    chunks: list[Chunk] = []
    current: list[tuple[int, int, str]] = []
    length = 0
    fresh = False  # the current chunk holds more than the overlap carried over
    joiner = "\n\n" if prose else "\n"

    def emit() -> None:
        body = joiner.join(b[2] for b in current).strip()
        if body:
            chunks.append(Chunk(body, _lines(current[0][0], current[-1][1])))

    for block in blocks:
        if current and length + len(joiner) + len(block[2]) > size:
            emit()
            carried: list[tuple[int, int, str]] = []
            kept = 0
            for previous in reversed(current):
                if kept + len(previous[2]) > overlap:
                    break
                carried.insert(0, previous)
                kept += len(previous[2]) + len(joiner)
            if carried and kept + len(block[2]) > size:
                carried = []  # no room for the overlap next to this block
            current, length, fresh = carried, max(0, kept - len(joiner)) if carried else 0, False
        current.append(block)
        length += len(block[2]) + (len(joiner) if len(current) > 1 else 0)
        fresh = True
    if current and fresh:
        emit()
    return chunks


def _lines(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"
