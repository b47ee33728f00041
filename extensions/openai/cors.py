"""Which web pages may call the API from the user's browser (CORS), and refusing the others.

A page the user visits can send requests to the API through the user's browser; its
`Origin` header names the page's site. The inference endpoints answer the origins of
`--cors-origins`: by default `local`, the machine's own pages (http or https on localhost,
127.0.0.1 or [::1], any port), like Ollama; `*` admits any site. A request whose Origin is
not admitted is refused (403) rather than run with its answer hidden by the browser: a
request can change things (a chat saved under `history_id`) before anyone reads its answer.
Admin calls never answer another site (no CORS at all; `access.require_admin` refuses such
requests without the admin key). Public routes (/health, /docs, /openapi.json) answer
everyone, with CORS only for admitted origins.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from flask import Response, request

from modules.errors import Forbidden
from modules.serving.access import same_origin

LOCAL = "local"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def origin_admitted(origin: str, allowed: Sequence[str]) -> bool:
    """Whether `origin` (an Origin header) is one of the `--cors-origins` entries."""
    if "*" in allowed:
        return True
    scheme, host, port = split_origin(origin)
    for entry in allowed:
        if entry == LOCAL:
            if scheme in ("http", "https") and host in LOCAL_HOSTS:
                return True
            continue
        want_scheme, want_host, want_port = split_origin(entry)
        if (scheme, host) == (want_scheme, want_host) and want_port in ("*", port) and host:
            return True
    return False


def split_origin(origin: str) -> tuple[str, str, str]:
    """'HTTP://LocalHost:3000' -> ('http', 'localhost', '3000'); '[::1]' keeps its brackets."""
    parts = urlsplit(origin.strip().lower().rstrip("/"))
    netloc = parts.netloc
    if netloc.startswith("["):
        host, _, rest = netloc.partition("]")
        return parts.scheme, host + "]", rest.removeprefix(":")
    host, _, port = netloc.partition(":")
    return parts.scheme, host, port


def check_origin(allowed: Sequence[str]) -> None:
    """Refuse a request from a page whose site is not admitted (programs send no Origin)."""
    origin = request.headers.get("Origin")
    if origin is None or same_origin() or origin_admitted(origin, allowed):
        return
    raise Forbidden(
        f"Requests from web pages of {origin} are not allowed. To let that site's pages use this "
        f"API in the browser, start Hearth with --cors-origins local {origin} (or '*' for any site).",
        code="origin_not_allowed",
    )


def add_cors_headers(response: Response, allowed: Sequence[str]) -> None:
    """CORS headers for an admitted Origin (never called for admin calls)."""
    origin = request.headers.get("Origin")
    response.headers.add("Vary", "Origin")
    if not origin or not origin_admitted(origin, allowed):
        return
    response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Authorization, Content-Type, x-api-key"
        )
        response.headers["Access-Control-Max-Age"] = "600"
