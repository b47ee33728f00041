"""Serving the app: gevent's WSGI server on the UI and API ports, until a signal."""

from __future__ import annotations

import errno
import logging
import signal
import socket

from .errors import HearthError
from .settings import Settings

log = logging.getLogger("hearth")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def serve(settings: Settings) -> int:
    import gevent
    from gevent.pywsgi import WSGIServer

    from .app import close_app, create_app

    configure_logging(settings.verbose)
    app = create_app(settings)
    services = app.extensions["hearth"]
    try:
        services.models.engine()
    except HearthError as error:
        log.error("could not load the default model: %s", error.message)

    host = settings.listen_host or ("0.0.0.0" if settings.listen else "127.0.0.1")
    listeners = []
    if not settings.nowebui:
        listeners.append(("UI", settings.listen_port, "--listen-port"))
    if settings.api_enabled:
        listeners.append(("API", settings.api_port, "--api-port"))
    servers = []
    for name, port, flag in listeners:
        server = WSGIServer((host, port), app, log=None, error_log=log)
        try:
            server.start()
        except OSError as exc:
            for started in servers:
                started.stop()
            close_app(app)
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            log.error("port %d for the %s %s: choose another with %s", port, name, reason, flag)
            return 1
        # Answers go out as separate writes (headers, then body): with Nagle's algorithm a
        # kept-alive connection then waits for the client's delayed ACK, 40 ms per request.
        # Accepted sockets inherit TCP_NODELAY from the listening one.
        server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        servers.append(server)
        suffix = "/v1" if name == "API" else ""
        log.info("%s listening on http://%s:%d%s", name, host, port, suffix)

    stop = gevent.event.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    log.info("shutting down")
    for server in servers:
        server.stop(timeout=3)
    close_app(app)
    return 0
