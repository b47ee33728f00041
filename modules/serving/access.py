"""Who is asking: a program on this machine or something elsewhere, a page of which site,
holding which key. The API, the UI and /metrics decide with these, each in one place.

**Management** — loading and unloading models, the settings, extensions' parameters,
LocalDocs folders (the API's admin calls and the UI's management actions) — needs a key
unless it comes from this machine: without an admin key (API) or a login (UI), it is allowed
only from a loopback address, and only when nothing says the request was passed on from
elsewhere. A reverse proxy and the Cloudflare tunnel's `cloudflared` on this machine
connect from loopback too, so:

- a request carrying a forwarding header (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`,
  `CF-Connecting-IP`, `Via`, ...) is remote;
- with --public-api, nothing on the API port counts as local (the tunnel adds such headers,
  but a loopback address proves nothing there).

**Origins.** A page of another site can make the user's browser send requests here; its
`Origin` says so. `same_origin()` is true for requests from our own pages and from programs
(which send no Origin).

**Keys** are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from flask import request

from ..errors import Forbidden, Unauthorized
from ..settings import Settings
from .listeners import API, LISTENER

# WSGI names of the headers proxies and tunnels add (plus every X-Forwarded-*).
FORWARDING_HEADERS = frozenset(
    {
        "HTTP_FORWARDED",
        "HTTP_X_REAL_IP",
        "HTTP_CF_CONNECTING_IP",
        "HTTP_CF_RAY",
        "HTTP_CDN_LOOP",
        "HTTP_TRUE_CLIENT_IP",
        "HTTP_X_CLIENT_IP",
        "HTTP_X_CLUSTER_CLIENT_IP",
        "HTTP_FASTLY_CLIENT_IP",
        "HTTP_VIA",
    }
)
ACCESS_ATTRIBUTE = "hearth_access"  # "admin" on views that manage Hearth (see `management`)


# --- Where the request comes from ---------------------------------------------------------------


def remote_reason(environ: Mapping, settings: Settings) -> str | None:
    """None for a program on this machine; otherwise why the request counts as remote."""
    if settings.tunnel_enabled and environ.get(LISTENER) in (API, None):
        return "the API is published through the Cloudflare tunnel (--public-api)"
    forwarded = sorted(
        name for name in environ if name in FORWARDING_HEADERS or name.startswith("HTTP_X_FORWARDED_")
    )
    if forwarded:
        header = forwarded[0].removeprefix("HTTP_").replace("_", "-").title()
        return f"it was passed on by a proxy or tunnel (it carries {header})"
    address = str(environ.get("REMOTE_ADDR") or "")
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"its address ({address or 'none'}) is not this machine's"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return None if ip.is_loopback else f"it comes from {address}, not from this machine"


def same_origin() -> bool:
    """Whether the request comes from a page of this server (or from no page at all)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc.lower() == request.host.lower()
    site = request.headers.get("Sec-Fetch-Site")
    return site in (None, "same-origin", "none")


# --- Keys ------------------------------------------------------------------------------------------


def presented_key() -> str | None:
    """The key the client sent: `Authorization: Bearer KEY`, or `x-api-key: KEY`."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def key_matches(expected: str, presented: str | None) -> bool:
    if not expected:
        return True
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())


def require_api_key(settings: Settings) -> None:
    """With --api-key, the API key (or the admin key); without one, nothing."""
    if not settings.api_key:
        return
    presented = presented_key()
    if not (key_matches(settings.api_key, presented) or key_matches(settings.effective_admin_key, presented)):
        raise Unauthorized()


# --- Management -------------------------------------------------------------------------------------


def management(view: Callable) -> Callable:
    """Mark a view as managing Hearth: an admin call in the API, a management action in the UI.
    The blueprint's checks read the mark (the API's own endpoints say it in its table)."""
    setattr(view, ACCESS_ATTRIBUTE, "admin")
    return view


def require_admin(settings: Settings) -> None:
    """An API admin call: the admin key when there is one; otherwise this machine, and never a
    page of another site."""
    key = settings.effective_admin_key
    if key and key_matches(key, presented_key()):
        return
    if not same_origin():
        raise Forbidden(
            f"Cross-site request refused: admin calls cannot come from a web page of another site "
            f"(Origin: {request.headers.get('Origin', 'none')}).",
            code="cross_site",
        )
    if key:
        raise Unauthorized("This endpoint needs the admin key.")
    reason = remote_reason(request.environ, settings)
    if reason is not None:
        raise Forbidden(
            f"Admin calls (loading and unloading models, LocalDocs collections, stopping every "
            f"generation) are only accepted from this machine while Hearth has no admin key, and "
            f"{reason}. To allow them from elsewhere, start Hearth with --admin-key KEY (or "
            "--api-key KEY) and send it as Authorization: Bearer KEY.",
            code="local_only",
        )


def require_local_management(settings: Settings, logged_in: bool) -> None:
    """A UI management action: from anywhere after a login, else only from this machine."""
    if logged_in:
        return
    reason = remote_reason(request.environ, settings)
    if reason is not None:
        raise Forbidden(
            f"Models, settings, extensions and LocalDocs folders can only be changed from this "
            f"machine while the UI has no login, and {reason}. To allow it from elsewhere, start "
            "Hearth with --ui-auth USER:PASSWORD.",
            code="local_only",
        )
