"""Serving the app as `python server.py` does: listeners, request guards, tunnel, shutdown.

- `listeners`: which addresses and ports to bind, TLS, and binding with one-line errors;
- `guards`: the Host check (against DNS rebinding) and the UI/API port separation;
- `traffic`: WSGI middleware counting requests in flight (for shutdown) and logging them;
- `tunnel`: the Cloudflare tunnel for --public-api, and `public_key`: the key it gets when
  the user set none;
- `access`: who is asking (this machine or elsewhere, which site, which key), for the API,
  the UI and /metrics;
- `banner`: what the server prints once it is ready;
- `runner`: `serve(settings)`, tying them together until SIGINT/SIGTERM.

Importing this package imports neither gevent nor Flask: the app factory uses `guards` and
`traffic` under any WSGI server (gunicorn included).
"""

from __future__ import annotations

from .runner import StartupError, configure_logging, serve

__all__ = ["StartupError", "configure_logging", "serve"]
