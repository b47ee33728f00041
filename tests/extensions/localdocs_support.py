"""Folders of mixed documents for the LocalDocs tests, and a tiny PDF writer."""

from __future__ import annotations

import time
from pathlib import Path


def pdf_bytes(lines: list[str]) -> bytes:
    """A one-page PDF showing `lines` in Helvetica (enough for pypdf to extract the text)."""
    text = (
        "BT /F1 12 Tf 72 720 Td 14 TL "
        + " ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '" for line in lines
        )
        + " ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode("latin-1")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


FILES = {
    "garden.txt": "The tomatoes in the back garden are watered every morning at seven.\n\n"
    "Slugs are kept away with copper tape around the raised beds.\n",
    "notes/dentist.md": "# Appointments\n\nThe dentist appointment is on Tuesday at 14:30 with Dr. Molar.\n",
    "site/bread.html": "<html><head><title>Baking</title><style>p {color: red}</style></head><body>"
    "<h1>Sourdough</h1><p>Feed the sourdough starter with rye flour the evening "
    "before baking.</p><script>alert('x')</script></body></html>",
    "src/billing.py": "def invoice_total(items, vat_rate=0.2):\n"
    '    """Sum the line items and add value-added tax."""\n'
    "    subtotal = sum(price * quantity for price, quantity in items)\n"
    "    return subtotal * (1 + vat_rate)\n",
}
PDF_LINES = [
    "The lighthouse keeper has a ginger cat named Biscuit.",
    "Biscuit sleeps on the lamp room stairs.",
]


def allow_folders(user_data: Path, *roots: Path) -> None:
    """settings.yaml letting LocalDocs read `roots` (the tests' documents live outside the home
    folder, LocalDocs' default root)."""
    listed = ", ".join(f'"{root}"' for root in roots)
    (user_data / "settings.yaml").write_text(f"localdocs-folder_roots: [{listed}]\n")


def make_documents(root: Path) -> Path:
    """A folder of mixed files, plus things that must be skipped."""
    folder = root / "docs"
    for name, text in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (folder / "lighthouse.pdf").write_bytes(pdf_bytes(PDF_LINES))
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))  # not a document type
    (folder / "blob.txt").write_bytes(b"\0\1\2binary" * 10)  # binary: fails, listed as failed
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.txt").write_text("The hidden password is swordfish.")
    outside = root / "outside.txt"
    outside.write_text("The launch code is kept outside the collection.")
    (folder / "link.txt").symlink_to(outside)  # leaves the folder: not followed
    (folder / "inside-link.txt").symlink_to(folder / "garden.txt")  # stays inside: read
    return folder


def bump(path: Path, text: str | None = None) -> None:
    """Change a file (or only its time) so that the next index run sees it."""
    if text is not None:
        path.write_text(text)
    later = time.time() + 5
    import os

    os.utime(path, (later, later))
