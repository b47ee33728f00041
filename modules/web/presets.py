"""Sampling presets: YAML files of sampling settings the UI offers by name.

Shipped presets live in the project's `user_data/presets/`; the user's in
`USER_DATA_DIR/presets/` (the same folder in a normal install), which win on a name clash.
text-generation-webui presets load too: keys we do not use are ignored, and its
`max_new_tokens` and `stopping_strings` are read as `max_tokens` and `stop`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modules.chat.files import atomic_write
from modules.chat.names import child_path, validate_name
from modules.engines.base import SamplingParams
from modules.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

MAX_STOP_STRINGS = 16
MAX_STOP_LENGTH = 200
MAX_PRESET_BYTES = 64 * 1024


class Sampling(BaseModel):
    """The sampling settings the UI shows; each bounded to what makes sense."""

    model_config = ConfigDict(extra="ignore")

    temperature: float = Field(0.7, ge=0, le=5)
    top_p: float = Field(0.9, ge=0, le=1)
    top_k: int = Field(40, ge=0, le=1000)
    min_p: float = Field(0.05, ge=0, le=1)
    repetition_penalty: float = Field(1.1, ge=0.5, le=3)
    max_tokens: int = Field(512, ge=1, le=1_000_000)
    seed: int = Field(-1, ge=-1, le=2**32 - 1)  # -1: a new random seed each time
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_STRINGS)

    @model_validator(mode="before")
    @classmethod
    def _textgen_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "max_tokens" not in data and "max_new_tokens" in data:
                data["max_tokens"] = data["max_new_tokens"]
            if "stop" not in data and "stopping_strings" in data:
                data["stop"] = data["stopping_strings"]
        return data

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: list[str]) -> list[str]:
        cleaned = [s for s in value if s]
        if any(len(s) > MAX_STOP_LENGTH for s in cleaned):
            raise ValueError(f"each stop string may have at most {MAX_STOP_LENGTH} characters")
        return cleaned

    def params(
        self, *, max_tokens: int | None, stop: tuple[str, ...] = (), grammar: str | None = None
    ) -> SamplingParams:
        """Engine parameters: these settings plus what the prompt needs (its stops, grammar)."""
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            seed=None if self.seed < 0 else self.seed,
            stop=tuple(dict.fromkeys((*stop, *self.stop))),
            grammar=grammar,
        )


@dataclass(frozen=True)
class Preset:
    name: str
    sampling: Sampling
    builtin: bool  # shipped, and not overridden by a file of the user's

    def to_json(self) -> dict:
        return {"name": self.name, "builtin": self.builtin, "sampling": self.sampling.model_dump()}


class PresetStore:
    def __init__(self, *, shipped_dir: Path, user_dir: Path) -> None:
        self.shipped_dir = Path(shipped_dir)
        self.user_dir = Path(user_dir)

    def _folders(self) -> list[tuple[Path, bool]]:
        """Lowest priority first; the shipped folder counts as the user's when they are one."""
        if self.shipped_dir.resolve() == self.user_dir.resolve():
            return [(self.user_dir, False)]
        return [(self.shipped_dir, True), (self.user_dir, False)]

    def list(self) -> list[Preset]:
        found: dict[str, Preset] = {}
        for folder, builtin in self._folders():
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.yaml")):
                try:
                    name = validate_name(path.stem, what="preset")
                    found[name.lower()] = Preset(name, self._read(path), builtin)
                except InvalidRequest as e:
                    log.warning("Skipping preset %s: %s", path.name, e.message)
        return sorted(found.values(), key=lambda p: (p.name != "Default", p.name.lower()))

    def get(self, name: str) -> Preset:
        validate_name(name, what="preset")
        for folder, builtin in reversed(self._folders()):
            path = child_path(folder, f"{name}.yaml")
            if path.is_file():
                return Preset(name, self._read(path), builtin)
        raise NotFound(f"The preset '{name}' does not exist.", param="preset")

    def save(self, name: str, sampling: Sampling) -> Preset:
        validate_name(name, what="preset")
        text = yaml.safe_dump(sampling.model_dump(), sort_keys=False, allow_unicode=True)
        atomic_write(child_path(self.user_dir, f"{name}.yaml"), text.encode("utf-8"))
        return Preset(name, sampling, builtin=False)

    def delete(self, name: str) -> None:
        validate_name(name, what="preset")
        path = child_path(self.user_dir, f"{name}.yaml")
        if not path.is_file():
            shipped = any(child_path(f, f"{name}.yaml").is_file() for f, b in self._folders() if b)
            if shipped:
                raise InvalidRequest(f"The preset '{name}' ships with Hearth and cannot be deleted.")
            raise NotFound(f"The preset '{name}' does not exist.", param="preset")
        path.unlink()

    @staticmethod
    def _read(path: Path) -> Sampling:
        try:
            if path.stat().st_size > MAX_PRESET_BYTES:
                raise InvalidRequest(f"The preset file {path.name} is too large.")
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise InvalidRequest(f"The preset file {path.name} is not a mapping of settings.")
            return Sampling.model_validate(data)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InvalidRequest(f"The preset file {path.name} cannot be read: {e}") from e
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "value"
            raise InvalidRequest(f"The preset file {path.name} is invalid: {where}: {first['msg']}") from e
