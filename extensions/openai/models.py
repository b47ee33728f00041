"""Which models the API offers, and which one a request gets.

Model selection follows LocalAI: a known name is loaded if needed; an unknown one is a 404
naming the available models, unless only one model exists (it then serves every request);
no name means the loaded model. When no API key is configured, a bearer token that names
an available model selects it, if the body names no model or one that does not exist:
apps that hard-code `gpt-3.5-turbo` and only let users set a key still reach local models.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from modules.app import services
from modules.engines.base import TextEngine
from modules.errors import ModelNotFound

from .bodies import EngineCard, EngineList, ModelCard, ModelList
from .http import presented_key
from .state import api_state


def text_models() -> list[ModelCard]:
    """Every text model: loaded ones first, then --model, the upstream servers' models, the
    model folder, the built-in one. A remote model lists its upstreams; it counts as loaded
    while one of them is up."""
    manager, fleet = services().models, services().fleet
    loaded = set(manager.loaded_ids())
    cards = []
    for spec in manager.catalog():
        card = ModelCard(id=spec.id, created=_created(spec.path), kind="text", loaded=spec.id in loaded)
        if fleet is not None and spec.path is None:
            names = fleet.upstream_names(spec.id)
            card = ModelCard(
                id=spec.id,
                created=0,
                kind="text",
                loaded=any(m.up for m in fleet.members(spec.id)),
                upstreams=names,
            )
        cards.append(card)
    return cards


def _created(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return 0


def all_models() -> list[ModelCard]:
    return [_card(entry) for source in api_state().model_sources for entry in source()]


def _card(entry: ModelCard | BaseModel | dict) -> ModelCard:
    """Sources may return plain dicts (`id`, `created`, `kind`, extra fields) or cards."""
    if isinstance(entry, ModelCard):
        return entry
    return ModelCard.model_validate(entry.model_dump() if isinstance(entry, BaseModel) else entry)


def list_models() -> ModelList:
    return ModelList(data=all_models())


def find_model(model_id: str) -> ModelCard:
    cards = all_models()
    for card in cards:
        if card.id == model_id:
            return card
    try:  # the text catalog also knows file names and case-insensitive ids
        spec = services().models.resolve(model_id)
    except ModelNotFound:
        raise ModelNotFound(model_id, [card.id for card in cards]) from None
    return next(card for card in cards if card.id == spec.id)


def list_engines() -> EngineList:
    return EngineList(data=[EngineCard(id=card.id, created=card.created) for card in all_models()])


def find_engine(engine_id: str) -> EngineCard:
    card = find_model(engine_id)
    return EngineCard(id=card.id, created=card.created)


def _exists(name: str) -> bool:
    try:
        services().models.resolve(name)
    except ModelNotFound:
        return False
    return True


def requested_model(name: str | None) -> str | None:
    """The body's model, or the one the bearer token names (only when no API key is set)."""
    if services().settings.api_key:
        return name
    token = presented_key()
    if token and (not name or not _exists(name)) and _exists(token):
        return token
    return name


def engine_for(name: str | None) -> TextEngine:
    return services().models.engine(requested_model(name))
