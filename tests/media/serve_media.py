"""`python tests/media/serve_media.py FLAGS`: server.py's serving, with the media test app.

gevent patches the standard library first, exactly as server.py does, so the endpoints run
as greenlets and the model workers as real OS threads, as in production.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from gevent import monkey

    monkey.patch_all()
    import signal

    import gevent
    from gevent.pywsgi import WSGIServer

    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parents[1]), str(here.parent), str(here)]
    from media_app import create_media_app

    from modules.app import close_app
    from modules.serving import configure_logging
    from modules.settings import load_settings

    settings = load_settings(argv)
    configure_logging(settings.verbose)
    app = create_media_app(settings)
    server = WSGIServer(("127.0.0.1", settings.api_port), app, log=None)
    server.start()
    stop = gevent.event.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    server.stop(timeout=3)
    close_app(app)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
