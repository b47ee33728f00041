"""The UI's state on the app: presets, the login guard and the current default choices."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from .choices import UiChoices
from .presets import PresetStore
from .security import Guard

EXTENSION_KEY = "hearth_web"


@dataclass
class WebState:
    presets: PresetStore
    guard: Guard
    choices: UiChoices  # the defaults a new page starts from; replaced when saved


def web_state() -> WebState:
    return current_app.extensions[EXTENSION_KEY]
