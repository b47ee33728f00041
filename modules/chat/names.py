"""Safe names for things stored as files: characters, templates and chat histories.

A name that reaches the file system must stay inside its folder, whatever the caller sends:
no separators, no `..`, no absolute paths, no NUL bytes, no hidden files. Every store checks
every name it is given, on every access, with these functions.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from modules.errors import InvalidRequest

MAX_NAME_LENGTH = 100

# History ids are made by the server, so they can be strict.
_HISTORY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# Windows refuses these as file names whatever the extension; refuse them everywhere so a
# folder copied between machines keeps working.
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}
_FORBIDDEN_CHARS = set('/\\:*?"<>|')


def validate_name(name: object, *, what: str = "character", param: str | None = None) -> str:
    """Return `name` if it can be a file name inside one folder, else raise InvalidRequest.

    Letters of any script, digits, spaces and ordinary punctuation are fine ("Chiharu Yamada",
    "Dr. Who (v2)"); separators, control characters and names like `..` are not.
    """
    param = param or what
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"The {what} name must be a non-empty string.", param=param)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"The {what} name is longer than {MAX_NAME_LENGTH} characters.", param=param)
    bad = [c for c in name if c in _FORBIDDEN_CHARS or unicodedata.category(c)[0] == "C"]
    if bad:
        raise InvalidRequest(
            f"The {what} name {name!r} contains {bad[0]!r}: names may not contain path "
            'separators, NUL or other control characters, or any of : * ? " < > |.',
            param=param,
        )
    if name.startswith(".") or name != name.strip() or name.endswith("."):
        raise InvalidRequest(
            f"The {what} name {name!r} may not start with a dot or start or end with a space or a dot.",
            param=param,
        )
    if name.split(".")[0].lower() in _RESERVED:
        raise InvalidRequest(f"The {what} name {name!r} is reserved.", param=param)
    return name


def validate_history_id(history_id: object, *, param: str = "history_id") -> str:
    """Return `history_id` if it is 1-128 of [A-Za-z0-9_-] (not starting with - or _)."""
    if not isinstance(history_id, str) or not _HISTORY_ID.fullmatch(history_id):
        raise InvalidRequest(
            f"Invalid history id {history_id!r}: use 1-128 letters, digits, '-' or '_'.",
            param=param,
        )
    return history_id


def child_path(folder: Path, file_name: str) -> Path:
    """`folder / file_name`, checked once more to lie directly inside `folder`.

    The name was validated already; this is the second lock on the same door, against a
    validation rule that someone loosens later.
    """
    path = folder / file_name
    if path.resolve().parent != folder.resolve():
        raise InvalidRequest(f"Invalid name {file_name!r}.")
    return path
