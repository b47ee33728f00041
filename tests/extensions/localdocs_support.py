"""Folders of mixed documents for the LocalDocs tests."""

from __future__ import annotations

import time
from pathlib import Path

from document_files import pdf_bytes

__all__ = ["pdf_bytes"]


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
