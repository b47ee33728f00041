"""Hearth: flags -> settings -> create_app -> serve. Nothing else happens here."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    # gevent must patch the standard library before anything else imports it.
    from gevent import monkey

    monkey.patch_all()

    from modules.serving import StartupError, serve
    from modules.settings import SettingsError, load_settings

    try:
        return serve(load_settings(sys.argv[1:] if argv is None else argv))
    except SettingsError as error:
        print(f"hearth: error: {error}", file=sys.stderr)
        return 2
    except StartupError as error:
        print(f"hearth: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
