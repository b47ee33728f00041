"""The UI's choices (mode, character, preset, template, the user's name and bio, theme).

They start from the settings; the browser remembers changes, and the settings page saves
them as the defaults in the settings file. Saving rewrites only these keys and keeps every
other key (and its order); the file is replaced atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from modules.chat.files import atomic_write, folder_lock
from modules.chat.names import validate_name
from modules.errors import InvalidRequest
from modules.settings import Settings

CHOICE_KEYS = ("mode", "character", "preset", "instruction_template", "user_name", "user_bio", "theme")


class UiChoices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["chat", "chat-instruct", "instruct"] = "chat"
    character: str = "Assistant"
    preset: str = "Default"
    instruction_template: str = ""  # empty: automatic
    user_name: str = Field("", max_length=100)
    user_bio: str = Field("", max_length=4000)
    theme: Literal["auto", "light", "dark"] = "auto"

    @field_validator("character")
    @classmethod
    def _character(cls, value: str) -> str:
        return validate_name(value)

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str) -> str:
        return validate_name(value, what="preset")

    @field_validator("instruction_template")
    @classmethod
    def _template(cls, value: str) -> str:
        return validate_name(value, what="instruction template") if value else value

    @field_validator("user_name")
    @classmethod
    def _user_name(cls, value: str) -> str:
        value = " ".join(value.split())
        if any(c in value for c in ":\n"):
            raise ValueError("the name may not contain ':'")
        return value


def choices_from(settings: Settings) -> UiChoices:
    """The start-up choices; a bad value in the settings falls back to the default for it."""
    values = {}
    for key in CHOICE_KEYS:
        try:
            values[key] = UiChoices.model_validate({key: getattr(settings, key)}).__dict__[key]
        except ValueError:
            continue
    return UiChoices(**values)


def settings_file(settings: Settings) -> Path:
    """Where the choices are saved: the file the settings came from, else the default one."""
    return settings.settings or settings.user_data_dir / "settings.yaml"


def save_choices(path: Path, choices: UiChoices) -> None:
    """Write the choices into the settings file, keeping its other keys. The folder's lock is
    held from reading to writing: two workers saving at once both keep their change."""
    with folder_lock(path.parent):
        _save_choices(path, choices)


def _save_choices(path: Path, choices: UiChoices) -> None:
    data: dict = {}
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InvalidRequest(
                f"{path.name} cannot be read, so it was left alone: {e}. Fix it by hand first."
            ) from None
        if not isinstance(data, dict):
            raise InvalidRequest(f"{path.name} is not a mapping of settings, so it was left alone.")
    for key, value in choices.model_dump().items():
        data[key] = value
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    atomic_write(path, text.encode("utf-8"))
