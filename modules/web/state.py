"""The UI's state on the app: presets, the login guard, the current default choices, the
notebooks and the incognito chats."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from modules.notebooks import NotebookStore

from .choices import UiChoices
from .incognito import IncognitoChats
from .presets import PresetStore
from .security import Guard

EXTENSION_KEY = "hearth_web"


@dataclass
class WebState:
    presets: PresetStore
    guard: Guard
    choices: UiChoices  # the defaults a new page starts from; replaced when saved
    notebooks: NotebookStore
    incognito: IncognitoChats = field(default_factory=IncognitoChats)
    # Whether the mode was chosen (a flag, the environment, settings.yaml, or saved from the
    # settings page); if not, a newcomer's page starts where the model answers best.
    mode_chosen: bool = False


def web_state() -> WebState:
    return current_app.extensions[EXTENSION_KEY]
