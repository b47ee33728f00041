"""Secrets Hearth makes once and keeps in user_data, readable by this user only."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MIN_LENGTH = 32


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret in `path`; made with `make()` (and written with mode 0600) when the file is
    missing or holds something too short to be one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) >= MIN_LENGTH:
            return secret
        log.warning("the secret in %s was too short; making a new one", path)
        path.unlink()
        return read_or_create(path, make)
    secret = make()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    return secret
