"""serve(settings): bind the ports, build the app, serve until SIGINT/SIGTERM, shut down.

Order matters: the ports are bound (and TLS files checked) before the app and its model
are built, so a busy port fails at once; the servers start before the default model
loads, so /health says "loading" meanwhile; the banner follows the model.

Shutdown: stop accepting connections, answer 503 to new requests on open connections,
cancel running generations (streams then end with their final chunk), wait a few seconds
for the requests in flight, close what is left (idle keep-alive connections, websockets),
stop the tunnel, close the app, exit 0.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import HearthError
from ..settings import Settings
from .banner import banner
from .listeners import API, LISTENER, Listener, StartupError, bind_all, plan, tls_context
from .public_key import with_public_key
from .traffic import Traffic

if TYPE_CHECKING:
    from flask import Flask

    from ..app import Services
    from .tunnel import Tunnel

__all__ = ["StartupError", "configure_logging", "serve"]

log = logging.getLogger("hearth")

GRACE_SECONDS = 5.0  # for requests in flight to end after a signal


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def serve(settings: Settings) -> int:
    """Run the server; StartupError (one line, an exit status) when it cannot start."""
    import gevent
    from gevent.event import Event
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer

    from ..app import close_app, create_app

    configure_logging(settings.verbose)
    settings, made_key = with_public_key(settings)
    listeners = plan(settings)
    context = tls_context(settings)
    sockets = bind_all(listeners)
    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    try:
        app = create_app(settings)
    except HearthError as error:  # a model, loader or character that is not there
        for sock in sockets:
            sock.close()
        raise StartupError(error.message) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    services = app.extensions["hearth"]
    traffic = app.extensions["hearth.traffic"]
    tls = {"ssl_context": context} if context else {}
    servers = [
        WSGIServer(sock, app, spawn=Pool(), log=None, error_log=log, environ={LISTENER: listener.side}, **tls)
        for sock, listener in zip(sockets, listeners, strict=True)
    ]
    scheme = "https" if context else "http"
    tunnel = None

    def announce() -> None:
        model = load_default_model(services)
        extensions = [extension.name for extension in services.extensions]
        public_url = tunnel.url if tunnel else None
        log.info(
            "%s",
            banner(
                settings,
                listeners,
                scheme=scheme,
                model=model,
                extensions=extensions,
                public_url=public_url,
                made_key=made_key,
            ),
        )

    # Spawned before the servers start, so that it marks the model as loading before the
    # first request is read: /health answers "loading" (503) until the banner is out.
    announcer = gevent.spawn(announce)
    for server in servers:
        server.start()
    tunnel = start_tunnel(settings, app, listeners, scheme, made_key)
    stop.wait()

    log.info("shutting down")
    announcer.kill(block=False)
    shut_down(servers, traffic, services)
    if tunnel:
        tunnel.stop()
    close_app(app)
    log.info("stopped")
    return 0


def shut_down(servers: list, traffic: Traffic, services: Services) -> None:
    """Stop taking work, let what runs end with its final chunk, then close every connection."""
    import gevent

    deadline = time.monotonic() + GRACE_SECONDS
    for server in servers:
        server.close()  # no new connections
    traffic.drain()  # no new requests on open connections
    if cancel_generations(services):
        log.info("cancelled the running generations")
    # HTTP requests are counted; websockets (the UI) are not, so wait for the engines to be
    # idle too: a UI handler then has its last delta and a moment to save the chat.
    while busy(services) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    gevent.sleep(0.1)
    if not traffic.wait_idle(max(0.0, deadline - time.monotonic())):
        log.warning("%d request(s) still running after %g s; closing them", traffic.in_flight, GRACE_SECONDS)
    for server in servers:
        server.stop(timeout=0)  # closes idle keep-alive connections and websockets


def load_default_model(services: Services) -> str:
    """Load the default model now, and describe it for the banner."""
    try:
        info = services.models.engine().info
    except HearthError as error:
        log.error("could not load the default model: %s", error.message)
        return f"none loaded ({error.message})"
    return f"{info.name} (context {info.n_ctx} tokens)"


def cancel_generations(services: Services) -> int:
    """Cancel every running generation: each stream then ends with its final chunk."""
    return sum(engine.cancel_all() for _, engine in services.models.loaded_engines())


def busy(services: Services) -> bool:
    for _, engine in services.models.loaded_engines():
        stats = engine.stats()
        if stats.busy_slots or stats.queued:
            return True
    return False


def start_tunnel(
    settings: Settings, app: Flask, listeners: list[Listener], scheme: str, made_key: str | None = None
) -> Tunnel | None:
    if not settings.tunnel_enabled:
        return None
    from .tunnel import Tunnel

    api = next(listener for listener in listeners if listener.side == API)
    guard = app.extensions["hearth.host_guard"]

    def ready(url: str | None) -> None:
        key_note = f" (API key: {made_key})" if made_key else ""
        if url:
            guard.allow(urlsplit(url).hostname or "")
            log.info("Public API: %s/v1%s", url, key_note)
        else:
            log.info(
                "Public API: the named tunnel %s is connected; it serves the hostnames you "
                "routed to it (see docs/deployment.md)%s",
                settings.public_api_id,
                key_note,
            )
        if not settings.api_key:
            log.warning(
                "the API is public and has no key (--public-api-without-key): anyone who finds "
                "the URL can use it"
            )

    tunnel = Tunnel(api.url(scheme), tunnel_id=settings.public_api_id, on_ready=ready)
    tunnel.start()
    return tunnel
