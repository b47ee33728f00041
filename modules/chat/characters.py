"""Characters: who the model plays in chat modes, stored as YAML or JSON files.

Shipped characters live in `characters/`; the user's in `user_data/characters/`, which wins
on a name clash. The file name (without extension) is the character's key; the picture is
`<key>.png` or `<key>.jpg` beside it. Only the user folder is ever written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from modules.chat import cards, png
from modules.chat.files import atomic_write
from modules.chat.names import child_path, validate_name
from modules.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

DATA_EXTENSIONS = (".yaml", ".yml", ".json")
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_PICTURE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Character:
    key: str  # the file name without extension: what requests name
    name: str  # the name the character speaks under (the file's `name`)
    context: str = ""
    greeting: str = ""
    example_dialogue: str = ""
    user_name: str | None = None  # the user's name this character expects, if any
    picture: Path | None = None
    builtin: bool = False


class CharacterFile(BaseModel):
    """A character file as users write it: ours, text-generation-webui's or Pygmalion's."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    name: str | None = None
    greeting: str | None = None
    context: str | None = None
    example_dialogue: str | None = None
    your_name: str | None = None
    user: str | None = None
    # Pygmalion
    char_name: str | None = None
    char_persona: str | None = None
    world_scenario: str | None = None
    char_greeting: str | None = None

    def to_character(self, key: str, *, picture: Path | None, builtin: bool) -> Character:
        name = (self.name or self.char_name or key).strip()
        context = self.context
        if context is None:  # a Pygmalion file: build the context from its parts
            parts = [
                f"{name}'s Persona: {self.char_persona.strip()}" if self.char_persona else "",
                f"Scenario: {self.world_scenario.strip()}" if self.world_scenario else "",
            ]
            context = "\n".join(p for p in parts if p)
        return Character(
            key=key,
            name=name,
            context=context.strip(),
            greeting=(self.greeting if self.greeting is not None else self.char_greeting or "").strip(),
            example_dialogue=(self.example_dialogue or "").strip(),
            user_name=(self.your_name or self.user or "").strip() or None,
            picture=picture,
            builtin=builtin,
        )


class CharacterStore:
    def __init__(self, *, builtin_dir: Path, user_dir: Path) -> None:
        self.builtin_dir = Path(builtin_dir)
        self.user_dir = Path(user_dir)

    # --- reading -------------------------------------------------------------------------

    def list(self) -> list[Character]:
        """Every character, sorted by key; a user's file hides a shipped one of that key."""
        found: dict[str, Character] = {}
        for folder, builtin in ((self.builtin_dir, True), (self.user_dir, False)):
            for key in self._keys_in(folder):
                try:
                    found[key] = self._load(folder, key, builtin=builtin)
                except InvalidRequest as e:
                    log.warning("Skipping character %r: %s", key, e.message)
        return sorted(found.values(), key=lambda c: c.key.lower())

    def get(self, key: str) -> Character:
        validate_name(key)
        for folder, builtin in ((self.user_dir, False), (self.builtin_dir, True)):
            if self._data_file(folder, key):
                return self._load(folder, key, builtin=builtin)
        raise NotFound(f"The character '{key}' does not exist.", param="character")

    def exists(self, key: str) -> bool:
        validate_name(key)
        return any(self._data_file(f, key) for f in (self.user_dir, self.builtin_dir))

    # --- writing (the user folder only) -------------------------------------------------

    def save(
        self,
        key: str,
        *,
        name: str | None = None,
        context: str = "",
        greeting: str = "",
        example_dialogue: str = "",
        user_name: str | None = None,
        picture: bytes | None = None,
        overwrite: bool = False,
    ) -> Character:
        """Create (or with `overwrite`, replace) the user's character `key`.

        Saving under the key of a shipped character makes a user copy that hides it.
        `picture` is PNG or JPEG bytes; None keeps the current user picture.
        """
        validate_name(key)
        if not overwrite and self._data_file(self.user_dir, key):
            raise InvalidRequest(f"The character '{key}' already exists.", param="character")
        data: dict = {
            "name": (name or key).strip(),
            "greeting": greeting,
            "context": context,
        }
        if example_dialogue:
            data["example_dialogue"] = example_dialogue
        if user_name:
            data["user"] = user_name
        if picture is not None:
            self._write_picture(key, picture)
        for old in self._user_data_files(key):
            if old.suffix != ".yaml":
                old.unlink()
        atomic_write(child_path(self.user_dir, f"{key}.yaml"), _dump_yaml(data))
        return self.get(key)

    def delete(self, key: str) -> None:
        """Delete the user's character `key` (its picture too). Shipped ones stay."""
        validate_name(key)
        files = self._user_data_files(key)
        if not files:
            if self._data_file(self.builtin_dir, key):
                raise InvalidRequest(
                    f"The character '{key}' ships with Hearth and cannot be deleted.",
                    param="character",
                )
            raise NotFound(f"The character '{key}' does not exist.", param="character")
        for path in files + self._user_pictures(key):
            path.unlink()

    # --- cards ----------------------------------------------------------------------------

    def import_card(self, data: bytes, *, key: str | None = None, overwrite: bool = False) -> Character:
        """Save a TavernAI / Character Card V2 PNG as a user character (the PNG is its picture)."""
        fields = cards.card_fields(cards.read_card(data))
        return self.save(
            key or _key_from_name(fields.name),
            name=fields.name,
            context=fields.context,
            greeting=fields.greeting,
            example_dialogue=fields.example_dialogue,
            picture=data,
            overwrite=overwrite,
        )

    def export_card(self, key: str) -> bytes:
        """The character as a Character Card V2 PNG (its own PNG picture, or a plain one)."""
        character = self.get(key)
        picture = png.plain_png()
        if character.picture and character.picture.suffix.lower() == ".png":
            picture = character.picture.read_bytes()
        fields = cards.CardFields(
            character.name,
            character.context,
            character.greeting,
            character.example_dialogue,
        )
        return cards.write_card(picture, cards.make_card(fields))

    # --- files -------------------------------------------------------------------------------

    @staticmethod
    def _keys_in(folder: Path) -> set[str]:
        if not folder.is_dir():
            return set()
        keys = set()
        for path in folder.iterdir():
            if path.suffix.lower() in DATA_EXTENSIONS and path.is_file():
                try:
                    keys.add(validate_name(path.stem))
                except InvalidRequest:
                    log.warning("Ignoring character file with an unsafe name: %s", path.name)
        return keys

    @staticmethod
    def _data_file(folder: Path, key: str) -> Path | None:
        for ext in DATA_EXTENSIONS:
            path = child_path(folder, key + ext)
            if path.is_file():
                return path
        return None

    def _user_data_files(self, key: str) -> list[Path]:
        return [p for e in DATA_EXTENSIONS if (p := child_path(self.user_dir, key + e)).is_file()]

    def _user_pictures(self, key: str) -> list[Path]:
        return [p for e in PICTURE_EXTENSIONS if (p := child_path(self.user_dir, key + e)).is_file()]

    def _load(self, folder: Path, key: str, *, builtin: bool) -> Character:
        path = self._data_file(folder, key)
        if path is None:
            raise NotFound(f"The character '{key}' does not exist.", param="character")
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            parsed = CharacterFile.model_validate(raw or {})
        except (
            OSError,
            UnicodeDecodeError,
            ValueError,
            yaml.YAMLError,
            ValidationError,
        ) as e:
            raise InvalidRequest(f"The character file {path.name} cannot be read: {e}") from e
        picture = next(
            (p for e in PICTURE_EXTENSIONS if (p := child_path(folder, key + e)).is_file()),
            None,
        )
        return parsed.to_character(key, picture=picture, builtin=builtin)

    def _write_picture(self, key: str, picture: bytes) -> None:
        if len(picture) > MAX_PICTURE_BYTES:
            raise InvalidRequest("The picture is larger than 20 MB.", param="picture")
        if picture.startswith(png.SIGNATURE):
            ext = ".png"
        elif picture.startswith(b"\xff\xd8\xff"):
            ext = ".jpg"
        else:
            raise InvalidRequest("The picture must be a PNG or JPEG file.", param="picture")
        for old in self._user_pictures(key):
            old.unlink()
        atomic_write(child_path(self.user_dir, key + ext), picture)


def _key_from_name(name: str) -> str:
    """A safe file name for an imported card's character name."""
    cleaned = "".join(c if c.isalnum() or c in " -_()'," else "_" for c in name).strip(" ._")
    return validate_name(cleaned[:100] or "Character")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks, the way people write character files."""

    yaml_representers: ClassVar[dict] = {
        **yaml.SafeDumper.yaml_representers,
        str: _represent_str,
    }


def _dump_yaml(data: dict) -> bytes:
    text = yaml.dump(data, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=100)
    return text.encode("utf-8")
