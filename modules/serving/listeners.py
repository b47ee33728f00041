"""Where the servers listen: one listener per (side, address), TLS, and binding.

Loopback only unless told otherwise. The UI listens on --listen-host, or every interface
with --listen, else 127.0.0.1. The API does the same for IPv4 and, with --api-enable-ipv6,
adds ::1 (:: with --listen); --api-disable-ipv4 drops the IPv4 address. An explicit
--listen-host is the API's only address too.

Everything here fails before the app is built, with a `StartupError` whose message is one
line naming the flag to change.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass

from ..settings import Settings

UI, API = "ui", "api"
LISTENER = "hearth.listener"  # the environ key each port's WSGI server sets to UI or API
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # what a local client connects to instead


class StartupError(Exception):
    """The server cannot start: one line for the user, and the exit status."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Listener:
    side: str  # UI or API: every request is tagged with it (guards.LISTENER)
    host: str  # the address to bind, as configured
    port: int
    flag: str  # the flag that changes the port

    @property
    def name(self) -> str:
        return self.side.upper()

    @property
    def all_interfaces(self) -> bool:
        return self.host in WILDCARDS

    def url(self, scheme: str) -> str:
        """The URL a client on this machine uses."""
        host = WILDCARDS.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"


def plan(settings: Settings) -> list[Listener]:
    ui, api = not settings.nowebui, settings.api_enabled
    if ui and api and settings.listen_port == settings.api_port:
        raise StartupError(
            f"the UI and the API need different ports (both are {settings.api_port}); "
            "change --listen-port or --api-port"
        )
    listeners = []
    if ui:
        host = settings.listen_host or ("0.0.0.0" if settings.listen else "127.0.0.1")
        listeners.append(Listener(UI, host, settings.listen_port, "--listen-port"))
    if api:
        listeners += [Listener(API, host, settings.api_port, "--api-port") for host in api_hosts(settings)]
    return listeners


def api_hosts(settings: Settings) -> list[str]:
    if settings.listen_host:
        return [settings.listen_host]
    hosts = []
    if not settings.api_disable_ipv4:
        hosts.append("0.0.0.0" if settings.listen else "127.0.0.1")
    if settings.api_enable_ipv6:
        hosts.append("::" if settings.listen else "::1")
    if not hosts:
        raise StartupError("--api-disable-ipv4 leaves the API no address; add --api-enable-ipv6")
    return hosts


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context with --ssl-keyfile/--ssl-certfile, None without them."""
    keyfile, certfile = settings.ssl_keyfile, settings.ssl_certfile
    if keyfile is None and certfile is None:
        return None
    if keyfile is None or certfile is None:
        given, missing = (
            ("--ssl-certfile", "--ssl-keyfile") if keyfile is None else ("--ssl-keyfile", "--ssl-certfile")
        )
        raise StartupError(f"{given} needs {missing} too")
    for flag, path in (("--ssl-keyfile", keyfile), ("--ssl-certfile", certfile)):
        try:
            path.open("rb").close()
        except OSError as exc:
            raise StartupError(f"{flag}: cannot read {path} ({exc.strerror})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback, so that an encrypted key fails here instead of prompting.
        context.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise StartupError(
            f"--ssl-certfile/--ssl-keyfile: {certfile} and {keyfile} are not a "
            f"usable certificate and unencrypted private key ({reason})"
        ) from None
    return context


def bind(listener: Listener) -> socket.socket:
    """A listening socket for `listener`, or a StartupError naming the flag to change."""
    try:
        infos = socket.getaddrinfo(
            listener.host, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(f"--listen-host: cannot resolve {listener.host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(bind_error(listener, exc), exit_code=1) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Answers go out as separate writes (headers, then body): with Nagle's algorithm a
        # kept-alive connection then waits for the client's delayed ACK, 40 ms per request.
        # Accepted sockets inherit TCP_NODELAY from the listening one.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            # Otherwise "::" would also take the IPv4 port, which 0.0.0.0 may hold.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise StartupError(bind_error(listener, exc), exit_code=1) from None
    return sock


def bind_error(listener: Listener, exc: OSError) -> str:
    where = f"port {listener.port} ({listener.name} on {listener.host})"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use; choose another with {listener.flag}"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied; choose a port above 1023 with {listener.flag}"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) and listener.host in ("::1", "::"):
        return f"cannot listen on {listener.host}: IPv6 is not available here; drop --api-enable-ipv6"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {listener.host}: no such address on this machine; check --listen-host"
    return f"{where}: cannot listen ({exc.strerror}); choose another with {listener.flag}"


def bind_all(listeners: list[Listener]) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            sockets.append(bind(listener))
    except StartupError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
