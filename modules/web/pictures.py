"""Uploaded pictures: checked to be real images by decoding them, then re-encoded.

Re-encoding means what gets stored and served is an image Pillow wrote itself: no trailing
payloads, no metadata, no formats a browser might sniff as something else.
"""

from __future__ import annotations

import io
import warnings

from modules.errors import InvalidRequest, NotInstalled, PayloadTooLarge

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # decoding more could take gigabytes of memory
MAX_SIDE = 1024  # avatars and gallery cards never show more
ACCEPTED = {"PNG", "JPEG", "WEBP"}


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise NotInstalled("Picture uploads need Pillow: pip install -r requirements/base.txt") from exc
    return Image, ImageOps


def _open(data: bytes, accepted: set[str]):
    Image, _ = _pillow()
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"The picture is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    if not data:
        raise InvalidRequest("The picture file is empty.", param="picture")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in accepted:
                raise InvalidRequest(
                    f"The picture must be {', '.join(sorted(accepted))}; this is "
                    f"{image.format or 'not an image'}.",
                    param="picture",
                )
            if image.width * image.height > MAX_PIXELS:
                raise InvalidRequest("The picture has too many pixels.", param="picture")
            image.load()
    except InvalidRequest:
        raise
    except Exception as exc:  # Pillow raises many types for damaged or hostile files
        raise InvalidRequest(
            f"The file is not a readable picture ({type(exc).__name__}).", param="picture"
        ) from None
    return image


def normalized_picture(data: bytes) -> bytes:
    """A PNG of at most MAX_SIDE pixels a side from PNG, JPEG or WebP bytes."""
    Image, ImageOps = _pillow()
    image = _open(data, ACCEPTED)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF: keep the picture as it is
        pass
    image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def check_card_png(data: bytes) -> None:
    """A character card must be a PNG that decodes (its text chunks are kept as they are)."""
    _open(data, {"PNG"})
