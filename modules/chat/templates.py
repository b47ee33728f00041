"""Instruction templates: the store of Jinja2 templates in YAML, and choosing one for a request.

A template file is text-generation-webui's format: `instruction_template: |-` followed by a
Hugging Face style chat template; we also read an optional `aliases:` list. Later folders
win on a name clash (shipped first, then the user's).

Choice order: the request's `instruction_template_str`, its `instruction_template` name, the
model's own template from the GGUF metadata, the first model-name regex in the model table
that matches, and Alpaca (with a warning) when nothing else applies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modules.chat import sandbox, system_role
from modules.chat.messages import ChatOptions
from modules.chat.names import child_path, validate_name
from modules.engines.base import ModelInfo
from modules.errors import InvalidRequest, NotFound
from modules.model_table import ModelRule, load_model_table

__all__ = ["InstructionTemplate", "ModelRule", "TemplateStore", "load_model_table"]

log = logging.getLogger(__name__)

FALLBACK_TEMPLATE = "Alpaca"
CUSTOM = "custom"  # the name of a template sent in the request
MODEL = "model"  # the name of the model's own (GGUF) template


@dataclass(frozen=True)
class InstructionTemplate:
    name: str
    source: str
    aliases: tuple[str, ...] = ()
    trusted: bool = True  # False for the model's own and for request-supplied templates

    @property
    def renders_tools(self) -> bool:
        """Whether the template puts the `tools` variable into the prompt itself."""
        return "tools" in sandbox.variables_used(self.source)

    @property
    def reasoning_switches(self) -> tuple[str, ...]:
        """Which reasoning switches the template reads: `enable_thinking` (Qwen3 and others),
        `reasoning_effort` (gpt-oss). The UI offers only those."""
        return reasoning_switches(self.source)

    @property
    def renders_tool_messages(self) -> bool:
        """Whether the template handles `tool` messages and assistant `tool_calls`."""
        return "tool_calls" in self.source and "tool" in self.source.replace("tool_calls", "")


REASONING_SWITCHES = ("enable_thinking", "reasoning_effort")


@functools.lru_cache(maxsize=64)
def reasoning_switches(source: str) -> tuple[str, ...]:
    used = sandbox.variables_used(source)
    return tuple(name for name in REASONING_SWITCHES if name in used)


class TemplateStore:
    def __init__(self, *, dirs: Sequence[Path], model_table: Iterable[ModelRule] = ()) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.model_table = tuple(model_table)

    def names(self) -> list[str]:
        names: dict[str, str] = {}
        for folder in self.dirs:
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.suffix in (".yaml", ".yml") and path.stem != "models":
                        names[path.stem.lower()] = path.stem
        return sorted(names.values(), key=str.lower)

    def get(self, name: str) -> InstructionTemplate:
        """The template called `name` (or having it as an alias), case-insensitively."""
        validate_name(name, what="instruction template", param="instruction_template")
        wanted = name.lower()
        for folder in reversed(self.dirs):
            for ext in (".yaml", ".yml"):
                path = child_path(folder, name + ext)
                if path.is_file():
                    return self._load(path)
        for stem in self.names():  # case-insensitive names and aliases
            template = self._find(stem)
            if template and (stem.lower() == wanted or wanted in map(str.lower, template.aliases)):
                return template
        raise NotFound(
            f"The instruction template '{name}' does not exist. "
            f"Available: {', '.join(self.names()) or 'none'}.",
            param="instruction_template",
        )

    def choose(self, options: ChatOptions, model: ModelInfo) -> InstructionTemplate:
        """The template for a request, in the documented order."""
        if options.instruction_template_str:
            return InstructionTemplate(CUSTOM, options.instruction_template_str, trusted=False)
        if options.instruction_template:
            return self.get(options.instruction_template)
        if model.chat_template:
            return InstructionTemplate(MODEL, model.chat_template, trusted=False)
        if name := self.match_model(model):
            return self.get(name)
        log.warning(
            "No instruction template for model %r (none in the GGUF, no model table match): using %s.",
            model.name,
            FALLBACK_TEMPLATE,
        )
        return self.get(FALLBACK_TEMPLATE)

    def match_model(self, model: ModelInfo) -> str | None:
        """The template name of the first model table rule matching the model, if any."""
        candidates = [model.name, Path(model.path).name if model.path else ""]
        for rule in self.model_table:
            if rule.template and rule.matches(*candidates):
                return rule.template
        return None

    @staticmethod
    def render(
        template: InstructionTemplate,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool,
        model: ModelInfo,
        tools: Sequence[Mapping[str, Any]] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """`extra`: more variables for templates that read them (`reasoning_effort`, ...)."""
        variables: dict[str, Any] = {
            **(extra or {}),
            "messages": [dict(m) for m in messages],
            "add_generation_prompt": add_generation_prompt,
            "bos_token": model.bos_token,
            "eos_token": model.eos_token,
        }
        if tools:
            variables["tools"] = [dict(t) for t in tools]
        leads_with_system = bool(messages) and messages[0].get("role") == "system"
        if leads_with_system and system_role.refuses_system_role(template.source, variables):
            variables["messages"] = system_role.fold_system_message(variables["messages"])
        what = f"instruction template '{template.name}'"
        return sandbox.render(template.source, variables, what=what)

    def _find(self, stem: str) -> InstructionTemplate | None:
        for folder in reversed(self.dirs):
            for ext in (".yaml", ".yml"):
                path = folder / (stem + ext)
                if path.is_file():
                    return self._load(path)
        return None

    @staticmethod
    def _load(path: Path) -> InstructionTemplate:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InvalidRequest(f"The template file {path.name} cannot be read: {e}") from e
        source = data.get("instruction_template") if isinstance(data, dict) else None
        if not isinstance(source, str):
            raise InvalidRequest(
                f"The template file {path.name} has no 'instruction_template' text (the old "
                "turn_template format is not supported).",
                param="instruction_template",
            )
        aliases = data.get("aliases") or ()
        return InstructionTemplate(path.stem, source, tuple(str(a) for a in aliases))
