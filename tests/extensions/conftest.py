"""Fixtures for extension tests: extensions written into a temporary user_data/extensions,
and apps built with them (each test gets a fresh app)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_extension(user_data: Path) -> Callable[[str, str], Path]:
    """Write user_data/extensions/<name>/script.py (dedented); returns the folder."""

    def write(name: str, source: str, **other_files: str) -> Path:
        folder = user_data / "extensions" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "script.py").write_text(textwrap.dedent(source))
        for filename, text in other_files.items():
            (folder / filename).write_text(textwrap.dedent(text))
        return folder

    return write


@pytest.fixture
def build_app(open_app, make_settings, user_data) -> Callable[..., object]:
    """create_app with `--extensions NAMES` (and settings.yaml text, if given)."""

    def build(*names: str, yaml: str | None = None, flags: tuple[str, ...] = ("--api",)):
        if yaml is not None:
            (user_data / "settings.yaml").write_text(textwrap.dedent(yaml))
        argv = [*flags, "--extensions", *names] if names else list(flags)
        return open_app(make_settings(*argv))

    return build
