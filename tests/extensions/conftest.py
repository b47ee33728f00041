"""Fixtures for extension tests: extensions written into a temporary user_data/extensions,
and apps built with them (each test gets a fresh app)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modules.app import close_app, create_app


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
def build_app(make_settings, user_data) -> Iterator[Callable[..., object]]:
    """create_app with `--extensions NAMES` (and settings.yaml text, if given)."""
    apps = []

    def build(*names: str, yaml: str | None = None, flags: tuple[str, ...] = ("--api",)):
        if yaml is not None:
            (user_data / "settings.yaml").write_text(textwrap.dedent(yaml))
        argv = [*flags, "--extensions", *names] if names else list(flags)
        app = create_app(make_settings(*argv))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_app(app)
