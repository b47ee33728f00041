"""The model table (`models.yaml`): settings by model name, text-generation-webui's format.

A mapping from a regular expression, searched case-insensitively in the model's name and
file name, to the settings of the models it matches:

    llama-?3: Llama-3                       # an instruction template, Hearth's short form
    qwen:                                   # text-generation-webui's form
      instruction_template: ChatML
      ctx_size: 32768
      cache_type: q8_0

`instruction_template` is the template chat requests get when the model's file carries
none (modules/chat/templates.py). Every other key is a load argument (load_args.py): it
applies whenever that model loads, above the server's flags and below a load request's
`args`. Shipped rules live in instruction-templates/models.yaml, the user's in
user_data/models.yaml; the user's are tried first. Where several rules match, each key
comes from the first rule that sets it. A bad rule or key is skipped with a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from .engines.load_args import LoadArgs
from .errors import InvalidRequest

log = logging.getLogger(__name__)

TEMPLATE_KEY = "instruction_template"


@dataclass(frozen=True)
class ModelRule:
    pattern: str  # a regex searched, case-insensitively, in the model's name and file name
    template: str | None = None
    settings: LoadArgs | None = None

    def matches(self, *names: str) -> bool:
        return any(re.search(self.pattern, name, re.IGNORECASE) for name in names if name)


def load_model_table(*paths: Path) -> tuple[ModelRule, ...]:
    """The rules of several `models.yaml` files; a later file's rules are tried first."""
    rules: list[ModelRule] = []
    for path in reversed(paths):
        if not Path(path).is_file():
            continue
        try:
            table = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            log.warning("Cannot read the model table %s: %s", path, e)
            continue
        if not isinstance(table, Mapping):
            log.warning("Ignoring the model table %s: it is not a mapping", path)
            continue
        for pattern, target in table.items():
            rule = _rule(str(pattern), target, path)
            if rule is not None:
                rules.append(rule)
    return tuple(rules)


def _rule(pattern: str, target: object, path: Path) -> ModelRule | None:
    try:
        re.compile(pattern)
    except re.error as e:
        log.warning("Ignoring model table entry %r in %s: %s", pattern, path, e)
        return None
    if isinstance(target, str) and target:
        return ModelRule(pattern, target)
    if not isinstance(target, Mapping):
        log.warning("Ignoring model table entry %r in %s: not a template name or a mapping", pattern, path)
        return None
    values = {str(key): value for key, value in target.items()}
    template = values.pop(TEMPLATE_KEY, None)
    settings = {}
    for key, value in values.items():
        if key not in LoadArgs.model_fields:
            log.warning("Model table %s, entry %r: %r is not a load argument; ignored", path, pattern, key)
            continue
        try:
            LoadArgs.model_validate({key: value})
        except ValidationError as e:
            reason = e.errors()[0]["msg"]
            log.warning("Model table %s, entry %r: bad %s (%s); ignored", path, pattern, key, reason)
            continue
        settings[key] = value
    return ModelRule(
        pattern,
        template if isinstance(template, str) and template else None,
        LoadArgs.model_validate(settings) if settings else None,
    )


def settings_for(rules: Sequence[ModelRule], *names: str) -> LoadArgs | None:
    """The load arguments the table gives a model: each from the first matching rule setting it."""
    merged: dict = {}
    for rule in rules:
        if rule.settings is not None and rule.matches(*names):
            for key, value in rule.settings.given().items():
                merged.setdefault(key, value)
    if not merged:
        return None
    try:
        return LoadArgs.model_validate(merged)
    except ValidationError as e:  # cannot happen: each value was validated on its own
        raise InvalidRequest(f"models.yaml: {e.errors()[0]['msg']}") from None
