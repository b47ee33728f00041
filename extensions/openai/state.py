"""What the API remembers while the app runs. One `ApiState` per app, never a module global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from .bodies import ModelCard
    from .response_jobs import BackgroundJobs
    from .response_store import ResponseStore
    from .streaming import Run

KEY = "openai"


@dataclass
class StoredResponses:
    """The Responses API's state: stored responses, and the background ones generating."""

    store: ResponseStore
    jobs: BackgroundJobs

    def close(self) -> None:
        self.jobs.close()


@dataclass
class ApiState:
    responses: StoredResponses
    # Requests generating now, by response id (what /v1/internal/stop-generation stops).
    running: dict[str, Run] = field(default_factory=dict)
    # Instruction template set with /v1/internal/model/load, by model id.
    templates: dict[str, str] = field(default_factory=dict)
    # Where /v1/models gets its entries, in order: text models first. Other model kinds
    # (embeddings, audio, images) append a function returning their entries: dicts with
    # `id`, `created` and `kind` (plus any fields of their own), or ModelCards.
    model_sources: list[Callable[[], list[ModelCard | dict]]] = field(default_factory=list)


def api_state() -> ApiState:
    return current_app.extensions[KEY]
