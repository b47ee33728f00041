"""Images a request brings, checked where they enter: decoded, bounded, turned into pixels.

Every protocol and the UI name images the same ways: a `data:image/...;base64,` URL, raw
base64, or an `http(s)` URL. Remote URLs are fetched only when the user allows it
(`--allow-remote-images`): an offline, private server must not fetch arbitrary addresses
for a client. When allowed, a fetch follows no redirect and never reaches this machine or
a private network (every address a name resolves to is checked, redirects included), and
it is bounded in bytes and time.

Limits (`ImageLimits`): images per request, bytes per image, pixels per image. Each
breach is a 400 naming the part (`messages.0.content.1`). Pillow decodes PNG, JPEG, GIF
(its first frame), WebP and BMP; anything else is refused. Larger images are scaled down
to `MAX_SIDE` (projectors resize to a few hundred pixels anyway), keeping memory bounded.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import socket
import time
import urllib.parse
from dataclasses import dataclass

from .engines.base import ImageInput, MediaPrompt
from .errors import InvalidRequest

MARKER = "<__media__>"  # an image's place in a prompt (llama.cpp's multimodal marker)
FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP", "MPO"})  # MPO: a JPEG with extras
MAX_SIDE = 2048


@dataclass(frozen=True)
class ImageLimits:
    max_images: int = 8  # per request
    max_bytes: int = 20 * 1024 * 1024  # per image, encoded
    max_pixels: int = 50_000_000  # per image, decoded (width x height)
    allow_remote: bool = False  # fetch http(s) URLs
    fetch_seconds: float = 10.0
    allow_private: bool = False  # tests only: fetch from loopback / private addresses


def media_prompt(text: str, images: tuple[ImageInput, ...]) -> MediaPrompt:
    """A prompt whose `MARKER`s each take the next image (as many markers as images)."""
    pieces = text.split(MARKER)
    if len(pieces) - 1 != len(images):
        raise InvalidRequest(
            f"The prompt has {len(pieces) - 1} image markers ({MARKER}) for {len(images)} images.",
            param="messages",
        )
    parts: list[str | ImageInput] = []
    for piece, image in zip(pieces, (*images, None), strict=True):
        if piece:
            parts.append(piece)
        if image is not None:
            parts.append(image)
    return MediaPrompt(tuple(parts))


def engine_prompt(text: str, images: tuple[ImageInput, ...]) -> str | MediaPrompt:
    """What the engine gets: the prompt's text, or with images its text cut at each marker,
    the images between."""
    return media_prompt(text, images) if images else text


def unreadable(where: str, kind: str) -> InvalidRequest:
    """The error for a content part no model here reads (audio, files, documents)."""
    return InvalidRequest(f"Hearth reads text and images; {where} is of type {kind!r}.", param=where)


def escape_markers(text: str) -> str:
    """Text from a request never places an image: a literal marker is broken up."""
    return text.replace(MARKER, "<__media_>") if MARKER in text else text


class ImageReader:
    """Reads the images of one request, counting them against the per-request limit."""

    def __init__(self, limits: ImageLimits) -> None:
        self.limits = limits
        self.count = 0

    def read(self, source: str, where: str) -> ImageInput:
        """An image from a data: URL, raw base64, or (when allowed) an http(s) URL."""
        self.count += 1
        if self.count > self.limits.max_images:
            raise InvalidRequest(
                f"Too many images: at most {self.limits.max_images} per request.", param=where
            )
        if not isinstance(source, str) or not source:
            raise InvalidRequest("An image needs a URL or base64 data.", param=where)
        scheme = source.split(":", 1)[0].lower() if ":" in source[:16] else ""
        if scheme == "data":
            return decode_image(data_url_bytes(source, where, self.limits), where, self.limits)
        if scheme in ("http", "https"):
            return decode_image(fetch(source, where, self.limits), where, self.limits)
        if scheme:
            raise InvalidRequest(
                f"Images come as data: URLs, base64 or http(s) URLs, not {scheme}:.", param=where
            )
        return decode_image(base64_bytes(source, where, self.limits), where, self.limits)

    def read_base64(self, data: str, where: str) -> ImageInput:
        """Anthropic's `{"type": "base64", "data": ...}` source."""
        self.count += 1
        if self.count > self.limits.max_images:
            raise InvalidRequest(
                f"Too many images: at most {self.limits.max_images} per request.", param=where
            )
        return decode_image(base64_bytes(data, where, self.limits), where, self.limits)


def data_url_bytes(url: str, where: str, limits: ImageLimits) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().startswith("data:image/"):
        raise InvalidRequest("An image data URL must look like data:image/png;base64,...", param=where)
    if not header.lower().endswith(";base64"):
        raise InvalidRequest("An image data URL must be base64-encoded (;base64,).", param=where)
    return base64_bytes(payload, where, limits)


def base64_bytes(text: str, where: str, limits: ImageLimits) -> bytes:
    if len(text) > limits.max_bytes * 4 // 3 + 4:
        raise InvalidRequest(f"The image is larger than {limits.max_bytes} bytes.", param=where)
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("The image is not valid base64.", param=where) from None


def decode_image(data: bytes, where: str, limits: ImageLimits) -> ImageInput:
    from PIL import Image, UnidentifiedImageError

    if len(data) > limits.max_bytes:
        raise InvalidRequest(f"The image is larger than {limits.max_bytes} bytes.", param=where)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in FORMATS:
                raise InvalidRequest(
                    f"Unsupported image format {image.format}: use PNG, JPEG, GIF, WebP or BMP.",
                    param=where,
                )
            width, height = image.size  # read from the header: nothing is decoded yet
            if width * height > limits.max_pixels:
                raise InvalidRequest(
                    f"The image is {width}x{height}: it has more pixels than the limit of "
                    f"{limits.max_pixels}.",
                    param=where,
                )
            image.seek(0)  # an animation's first frame
            rgb = image.convert("RGB")
            if max(rgb.size) > MAX_SIDE:
                rgb.thumbnail((MAX_SIDE, MAX_SIDE))
            return ImageInput.from_rgb(rgb.tobytes(), rgb.width, rgb.height)
    except InvalidRequest:
        raise
    except Image.DecompressionBombError:  # Pillow's own check, before ours could read the size
        raise InvalidRequest(
            f"The image has more pixels than the limit of {limits.max_pixels}.", param=where
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidRequest(
            "The image cannot be read (not an image, or a damaged one).", param=where
        ) from None


# --- Remote images -------------------------------------------------------------------------------


def fetch(url: str, where: str, limits: ImageLimits) -> bytes:
    """GET an http(s) URL for an image, if allowed: public addresses only, no redirects.

    The name is resolved once and the connection goes to the address that was checked (the
    Host header and TLS name stay the URL's), so a name cannot switch to a private address
    between the check and the fetch."""
    import urllib3

    if not limits.allow_remote:
        raise InvalidRequest(
            "This server does not fetch images from URLs (start Hearth with --allow-remote-images "
            "to allow it); send the image as a data: URL or base64.",
            param=where,
        )
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise InvalidRequest("The image URL has no host.", param=where)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    address = public_address(parts.hostname, port, where, limits)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    timeout = urllib3.Timeout(total=limits.fetch_seconds)
    if https:
        pool = urllib3.HTTPSConnectionPool(
            address, port, server_hostname=parts.hostname, assert_hostname=parts.hostname, timeout=timeout
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout)
    deadline = time.monotonic() + limits.fetch_seconds
    try:
        response = pool.request(
            "GET",
            target,
            headers={"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "image/*"},
            redirect=False,
            retries=False,
            preload_content=False,
        )
        try:
            if 300 <= response.status < 400:
                raise InvalidRequest("The image URL redirects; Hearth follows no redirect.", param=where)
            if response.status != 200:
                raise InvalidRequest(f"Fetching the image gave HTTP {response.status}.", param=where)
            body = bytearray()
            for piece in response.stream(64 * 1024):
                body += piece
                if len(body) > limits.max_bytes:
                    raise InvalidRequest(f"The image is larger than {limits.max_bytes} bytes.", param=where)
                if time.monotonic() > deadline:
                    raise InvalidRequest("Fetching the image took too long.", param=where)
            return bytes(body)
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise InvalidRequest(f"The image could not be fetched: {type(exc).__name__}.", param=where) from None
    finally:
        pool.close()


def public_address(host: str, port: int, where: str, limits: ImageLimits) -> str:
    """The address to connect to: `host` resolved, every address it has public (not
    loopback, private, link-local, ...)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidRequest(f"The image host {host!r} cannot be resolved.", param=where) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not address.is_global and not limits.allow_private:
            raise InvalidRequest(
                f"The image URL points at a private or local address ({address}); Hearth fetches "
                "images from public addresses only.",
                param=where,
            )
    return str(addresses[0])
