"""Reading documents into chunks: which files, how each type is read, and how text is split.

Text, Markdown and source code are split by lines (prose at blank lines where it can),
HTML has its tags stripped (stdlib html.parser), PDFs are read page by page with pypdf.
A chunk is at most `size` characters; neighbouring chunks share about `overlap` characters,
so a sentence cut at a boundary is whole in one of them. Each chunk knows where it came
from ("lines 12-40", "page 3") for the sources list.
"""

from __future__ import annotations

import html.parser
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROSE = frozenset({".txt", ".md", ".markdown", ".rst", ".org", ".tex", ".csv", ".tsv", ".log"})
HTML = frozenset({".html", ".htm", ".xhtml"})
PDF = frozenset({".pdf"})
CODE = frozenset(
    {
        ".py",
        ".pyi",
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".cxx",
        ".hpp",
        ".hh",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".swift",
        ".m",
        ".mm",
        ".lua",
        ".r",
        ".jl",
        ".pl",
        ".pm",
        ".sh",
        ".bash",
        ".zsh",
        ".fish",
        ".ps1",
        ".sql",
        ".css",
        ".scss",
        ".less",
        ".vue",
        ".svelte",
        ".json",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".conf",
        ".xml",
        ".gradle",
        ".cmake",
        ".dart",
        ".ex",
        ".exs",
        ".erl",
        ".hs",
        ".ml",
        ".clj",
        ".el",
        ".vim",
        ".proto",
        ".graphql",
        ".tf",
        ".nix",
        ".zig",
    }
)
SUFFIXES = PROSE | HTML | PDF | CODE
EXACT_NAMES = frozenset({"Makefile", "Dockerfile", "README", "LICENSE", "CMakeLists.txt"})


def is_document(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES or path.name in EXACT_NAMES


@dataclass(frozen=True)
class Chunk:
    text: str
    location: str  # "lines 3-20", "page 2", "page 2, lines 1-30"


class UnreadableFile(Exception):
    """A file that cannot be read as a document (binary, a broken PDF): skipped, and shown."""


# --- Reading -------------------------------------------------------------------------------------


def read_chunks(path: Path, data: bytes, size: int, overlap: int) -> list[Chunk]:
    """The chunks of one file, from its bytes (read once, also for its hash)."""
    suffix = path.suffix.lower()
    if suffix in PDF:
        return list(_pdf_chunks(data, size, overlap))
    text = decode(data)
    if suffix in HTML:
        text = html_text(text)
        return split_text(text, size, overlap, prose=True)
    return split_text(text, size, overlap, prose=suffix not in CODE)


def decode(data: bytes) -> str:
    if b"\0" in data[:8192]:
        raise UnreadableFile("a binary file")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # never fails; old Windows text files are usually this


def _pdf_chunks(data: bytes, size: int, overlap: int) -> Iterator[Chunk]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("an encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableFile(f"an unreadable PDF ({exc})") from exc
    for number, text in enumerate(pages, 1):
        for chunk in split_text(text, size, overlap, prose=True):
            yield Chunk(chunk.text, f"page {number}" if len(pages) > 1 else chunk.location)


class _TextOfHtml(html.parser.HTMLParser):
    BLOCKS = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "pre",
            "section",
            "article",
            "header",
            "footer",
            "blockquote",
            "table",
            "ul",
            "ol",
            "dt",
            "dd",
            "hr",
            "title",
        }
    )
    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._title = True
        elif tag in self.SKIP:
            self._skipping += 1
        if tag in self.BLOCKS:
            self.parts.append(
                "\n\n" if tag in ("p", "div", "section", "article", "table") or tag.startswith("h") else "\n"
            )

    def handle_endtag(self, tag):
        if tag == "title":
            self._title = False
            self.parts.append("\n\n")
        elif tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._title or not self._skipping:
            self.parts.append(data)


def html_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


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
