"""Secrets Hearth makes once and keeps in user_data, readable by this user only.

Several processes may ask at once (gunicorn's workers start together and share user_data):
the first to publish a secret wins and every other one reads that same secret. A secret is
written whole to a temporary file and then linked into place, which fails when the file
already exists, so nobody ever reads a half-written one or replaces another's.
"""

from __future__ import annotations

import contextlib
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
    for _ in range(5):
        secret = _read(path)
        if secret is not None and len(secret) >= MIN_LENGTH:
            return secret
        if secret is not None:
            log.warning("the secret in %s was too short; making a new one", path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        secret = make()
        if _publish(path, secret):
            return secret
    raise OSError(f"cannot create {path}: other processes keep replacing it")


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None


def _publish(path: Path, secret: str) -> bool:
    """Put `secret` in `path` unless another process got there first (False then)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
