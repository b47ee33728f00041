"""--public-api without --api-key: the key Hearth makes so that the API is never published open.

The key is made once and kept in USER_DATA_DIR/cache/public-api.key (mode 0600), so that the
clients given it keep working across restarts; delete the file for a new one. It is printed
in the banner and with the public URL: the user did not choose it and needs to see it.
`--public-api-without-key` publishes without one (the server then warns).
"""

from __future__ import annotations

import secrets

from ..keyfile import read_or_create
from ..settings import Settings

KEY_FILE = "public-api.key"


def with_public_key(settings: Settings) -> tuple[Settings, str | None]:
    """The settings to serve with, and the key made for the tunnel (None when none was)."""
    if not settings.tunnel_enabled or settings.api_key or settings.public_api_without_key:
        return settings, None
    key = read_or_create(
        settings.user_data_dir / "cache" / KEY_FILE, lambda: "hearth-" + secrets.token_urlsafe(32)
    )
    return settings.model_copy(update={"api_key": key}), key
