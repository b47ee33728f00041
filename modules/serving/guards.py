"""Two checks every request passes before its view: the Host guard and the port separation.

**Host guard.** A web page on another site can make the browser send requests to
127.0.0.1 by pointing its own name at that address (DNS rebinding); the browser then
treats our answers as that site's. The request still names the attacker's host in its
Host header, so Hearth answers only requests addressed to `localhost`, to an IP address
(a rebinding attack needs a name), or to a name listed with --allowed-hosts (`*`: any).
With --listen, and on the API port with --public-api, the guard is off unless
--allowed-hosts lists names: the machine's names on the network (LAN names, mDNS,
reverse proxies, the tunnel's hostname) cannot be known in advance. The quick tunnel's
hostname is added once known.

**Port separation.** `server.py` serves the UI and the API on two ports. Each WSGI server
tags its requests (`environ[LISTENER]` = "ui" or "api"), and a route is served only on its
side's port: the `openai` blueprint (and its children) and /metrics on the API port,
/health and app-level routes on both, every other blueprint on the UI port (`SIDES`). Under a
WSGI server that sets no tag (gunicorn), one port serves everything.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, Response, abort, jsonify, request

from ..errors import HearthError, InvalidRequest, NotFound
from ..settings import Settings
from .listeners import API, LISTENER, UI

LOCAL_NAMES = frozenset({"localhost"})

# Which port serves which routes, by endpoint or by (top-level) blueprint name.
SIDES = {
    "core.metrics": API,  # Prometheus scrapes the API port
    "core": None,  # /health: both ports
    "openai": API,  # the API and its child blueprints (openai.media, ...)
}


def route_side(endpoint: str | None) -> str | None:
    """UI or API for the route of an endpoint ('openai.chat_completions'); None: both ports."""
    if endpoint is None or "." not in endpoint:
        return None  # no route matched, or an app-level route (static files)
    if endpoint in SIDES:
        return SIDES[endpoint]
    return SIDES.get(endpoint.split(".", 1)[0], UI)


def split_host(value: str) -> tuple[str, str | None]:
    """'Example.com:80' -> ('example.com', '80'); '[::1]:5000' -> ('::1', '5000')."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") and len(rest) > 1 else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host.rstrip("."), port or None
    return value.rstrip("."), None


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostGuard:
    def __init__(self, settings: Settings) -> None:
        entries = [entry.strip().lower() for entry in settings.allowed_hosts if entry.strip()]
        self.any_host = "*" in entries
        self._explicit = bool(entries)
        self._listen = settings.listen
        self._tunnel = settings.tunnel_enabled
        self._allowed = {split_host(entry) for entry in entries if entry != "*"}

    def active_on(self, listener: str | None) -> bool:
        if self.any_host:
            return False
        if self._explicit:
            return True
        if self._listen:
            return False
        return not (self._tunnel and listener == API)

    def allows(self, host_header: str) -> bool:
        host, port = split_host(host_header)
        if host in LOCAL_NAMES or is_ip_address(host):
            return True
        return (host, None) in self._allowed or (host, port) in self._allowed

    def allow(self, host: str) -> None:
        """Answer this name from now on (the quick tunnel's hostname, once known)."""
        self._allowed.add((split_host(host)[0], None))


def install_guards(app: Flask, settings: Settings) -> None:
    """Register both checks before any blueprint's own (so a bad Host never reaches a view).
    The guard is kept on the app, where the tunnel adds its hostname."""
    guard = HostGuard(settings)
    app.extensions["hearth.host_guard"] = guard

    @app.before_request
    def check_request() -> Response | None:
        listener = request.environ.get(LISTENER)
        host = request.environ.get("HTTP_HOST")
        if host is not None and guard.active_on(listener) and not guard.allows(host):
            name = split_host(host)[0]
            return _refuse(
                listener,
                InvalidRequest(
                    f"Host '{name}' is not allowed: Hearth answers requests addressed to localhost "
                    "or an IP address (a guard against DNS rebinding). To use this name, start Hearth "
                    f"with --allowed-hosts {name}.",
                    code="host_not_allowed",
                ),
            )
        side = route_side(request.endpoint)
        if listener is not None and side is not None and side != listener:
            return _refuse(listener, NotFound(wrong_port(settings, listener), code="wrong_port"))
        return None


def wrong_port(settings: Settings, listener: str) -> str:
    """Say where the route is: clients pointed at the wrong port are a common mistake."""
    route = f"{request.method} {request.path}"
    if listener == UI:
        return f"{route} is an API route: the API is on port {settings.api_port}, not the UI's."
    ui = "off (--nowebui)" if settings.nowebui else f"on port {settings.listen_port}"
    return f"Unknown route {route} on the API port (see /docs); the browser UI is {ui}."


def _refuse(listener: str | None, error: HearthError) -> Response:
    """OpenAI's error shape for API requests; the UI's own error pages otherwise."""
    if listener == API or request.path.startswith("/v1"):
        response = jsonify(error.to_dict())
        response.status_code = error.status
        return response
    if error.status == 404:
        abort(404)
    return Response(error.message + "\n", status=error.status, mimetype="text/plain")
