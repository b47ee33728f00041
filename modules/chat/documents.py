"""Reading files into text: plain text, Markdown, source code, HTML, PDF and Word (.docx).

Used for the files a user attaches to a chat message, and by LocalDocs. Every failure is an
`UnreadableFile` that says what is wrong in words a user can act on; nothing here trusts
the bytes it is given (a PDF that is not one, a zip bomb, XML with entities, a binary file
with a text name).

- Text is UTF-8 (a BOM is dropped), else Latin-1 (old Windows files); NUL bytes near the
  start mean a binary file.
- PDF: pypdf, page by page; an encrypted PDF is refused.
- .docx: the zip's `word/document.xml`, read with the standard library: paragraphs, tabs,
  line breaks, and tables as `a | b | c` rows. The XML may not declare a DTD or entities.
- HTML: the text, without scripts and styles (stdlib html.parser).
"""

from __future__ import annotations

import html.parser
import io
import re
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree

MAX_DOCX_XML = 32 * 1024 * 1024  # bytes of document.xml, unpacked

PDF = frozenset({".pdf"})
DOCX = frozenset({".docx"})
HTML = frozenset({".html", ".htm", ".xhtml"})
MARKDOWN = frozenset({".md", ".markdown", ".mdx", ".rst", ".org"})
PROSE = frozenset({".txt", ".text", ".tex", ".csv", ".tsv", ".log"}) | MARKDOWN
CODE = frozenset(
    [
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
        ".ipynb",
        ".bat",
        ".diff",
        ".patch",
    ]
)
SUFFIXES = PROSE | HTML | PDF | DOCX | CODE


class UnreadableFile(Exception):
    """A file that cannot be read as text; the message says why."""


@dataclass(frozen=True)
class Document:
    kind: str  # "text" | "markdown" | "code" | "html" | "pdf" | "docx"
    text: str
    pages: int | None = None  # PDFs


def kind_of(name: str) -> str:
    suffix = _suffix(name)
    if suffix in PDF:
        return "pdf"
    if suffix in DOCX:
        return "docx"
    if suffix in HTML:
        return "html"
    if suffix in MARKDOWN:
        return "markdown"
    if suffix in CODE:
        return "code"
    return "text"


def read_document(name: str, data: bytes) -> Document:
    """The text of a file, chosen by its name's extension (anything else must be text)."""
    kind = kind_of(name)
    if kind == "pdf":
        pages = pdf_pages(data)
        return Document("pdf", "\n\n".join(p.strip() for p in pages if p.strip()), len(pages))
    if kind == "docx":
        return Document("docx", docx_text(data))
    if data.startswith(b"%PDF-"):
        raise UnreadableFile("it is a PDF with another name: rename it to .pdf")
    if data.startswith(b"PK\x03\x04"):
        raise UnreadableFile("it is a zip archive (an Office file, an archive), not text")
    text = decode(data)
    return Document(kind, html_text(text) if kind == "html" else text)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def decode(data: bytes) -> str:
    if b"\0" in data[:8192]:
        raise UnreadableFile("it is a binary file, not text")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # never fails; old Windows text files are usually this


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page of a PDF."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.lstrip()[:5] == b"%PDF-":
        raise UnreadableFile("it is not a PDF (a PDF starts with %PDF-)")
    quiet = logging.getLogger("pypdf")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # pypdf warns about every oddity of a damaged file
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("it is an encrypted PDF")
        return [page.extract_text() or "" for page in reader.pages]
    except UnreadableFile:
        raise
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        OSError,
        RecursionError,
    ) as exc:
        raise UnreadableFile(f"it is a damaged PDF ({_short(exc)})") from exc
    finally:
        quiet.setLevel(level)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def docx_text(data: bytes) -> str:
    """The text of a Word document's body: paragraphs, and table rows as `a | b`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        info = archive.getinfo("word/document.xml")
        if info.file_size > MAX_DOCX_XML:
            raise UnreadableFile("its text is too large to read")
        with archive.open(info) as part:
            xml = part.read(MAX_DOCX_XML + 1)
    except UnreadableFile:
        raise
    except KeyError:
        raise UnreadableFile("it is a zip file but not a Word document (no word/document.xml)") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise UnreadableFile(f"it is not a Word document that can be read ({_short(exc)})") from None
    if len(xml) > MAX_DOCX_XML:
        raise UnreadableFile("its text is too large to read")
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise UnreadableFile("its XML declares entities, which Hearth does not read")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise UnreadableFile(f"its XML is damaged ({_short(exc)})") from None
    body = root.find(f"{_W}body")
    if body is None:
        return ""
    lines: list[str] = []
    for block in body:
        if block.tag == f"{_W}p":
            lines.append(_paragraph(block))
        elif block.tag == f"{_W}tbl":
            for row in block.iter(f"{_W}tr"):
                cells = [
                    " ".join(_paragraph(p) for p in cell.iter(f"{_W}p")).strip()
                    for cell in row.iter(f"{_W}tc")
                ]
                lines.append(" | ".join(cells))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _paragraph(paragraph: ElementTree.Element) -> str:
    parts = []
    for node in paragraph.iter():
        if node.tag == f"{_W}t" and node.text:
            parts.append(node.text)
        elif node.tag == f"{_W}tab":
            parts.append("\t")
        elif node.tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
    return "".join(parts)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:119] + "…"


class _TextOfHtml(html.parser.HTMLParser):
    BLOCKS = frozenset(
        [
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
        ]
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
