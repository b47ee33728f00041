"""Which models the API offers, and which one a request gets.

Model selection follows LocalAI: a known name is loaded if needed; an unknown one is a 404
naming the available models, unless only one model exists (it then serves every request);
no name means the loaded model. When no API key is configured, a bearer token that names
an available model selects it, if the body names no model or one that does not exist:
apps that hard-code `gpt-3.5-turbo` and only let users set a key still reach local models.
"""

from __future__ import annotations

from pathlib import Path

from flask import g
from pydantic import BaseModel

from modules.app import services
from modules.engines.base import TextEngine
from modules.errors import ModelNotFound

from .bodies import EngineCard, EngineList, ModelCard, ModelList
from .http import presented_key
from .state import api_state


def text_models() -> list[ModelCard]:
    """Every text model: loaded ones first, then --model, the upstream servers' models, the
    model folder, the built-in one; each with its state (loaded, loading with its progress,
    or unloaded). A remote model lists its upstreams; it counts as loaded while one of them
    is up."""
    manager, fleet = services().models, services().fleet
    states = manager.model_states()
    cards = []
    for spec in manager.catalog():
        if fleet is not None and spec.path is None:
            up = any(m.up for m in fleet.members(spec.id))
            card = ModelCard(
                id=spec.id,
                created=0,
                kind="text",
                loaded=up,
                state="loaded" if up else "unloaded",
                upstreams=fleet.upstream_names(spec.id),
            )
        else:
            card = ModelCard(
                id=spec.id,
                created=_created(spec.path),
                kind="text",
                loaded=states.get(spec.id, {}).get("state") == "loaded",
                input_modalities=["text", "image"] if spec.mmproj else ["text"],
                **_state(states.get(spec.id)),
            )
        cards.append(card)
    return cards


def _state(state: dict | None) -> dict:
    if state is None:
        return {"state": "unloaded"}
    return {key: value for key, value in state.items() if key in ("state", "progress", "keep_alive")}


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


HOLDS = "hearth_model_holds"


def engine_for(name: str | None, keep_alive: float | None = None) -> TextEngine:
    """The model a request names (loaded if needed), held until the request's view has
    returned, so that no other request unloads it meanwhile; a stream's generations keep it
    busy from then on. `keep_alive` (seconds, Ollama's meaning): how long it may then idle."""
    engine, release = services().models.acquire(requested_model(name), keep_alive)
    g.setdefault(HOLDS, []).append(release)
    return engine


def release_held_models(_error: BaseException | None = None) -> None:
    """At the end of each API request: let go of the models it held."""
    for release in g.pop(HOLDS, []):
        release()
