"""The Notebook: free text completion on a page of text, kept on the server.

Routes (under /ui/api/notebooks) list, create, read, save, rename, delete and undo; the
generation itself runs over the chat websocket (`{"type": "complete"}`, socket.py), so it
streams and stops like a chat reply. A completion first saves the page as sent (and keeps
it for Undo), then saves the page with the model's text when it ends, is stopped, or the
page goes away: what was written is never lost.

The prompt is the page's text as it is (no template). When it is longer than the context
leaves room for (the context minus max new tokens, at most half the context), only its end
is given to the model, and the page is told so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from modules.engines.base import Generation, GenerationRequest, TextEngine, Usage
from modules.errors import InvalidRequest
from modules.notebooks import MAX_TEXT, MAX_TITLE, Notebook, NotebookStore, checked_text

from .http import MAX_TEXT_JSON_BYTES, json_body
from .presets import Sampling
from .state import web_state
from .turns import TurnEvent

MAX_TEXT_NOTEBOOK = MAX_TEXT


def notebook_json(notebook: Notebook, *, text: bool = True) -> dict:
    out = {
        "id": notebook.id,
        "title": notebook.display_title,
        "named": bool(notebook.title),
        "updated": notebook.updated,
        "can_undo": notebook.before is not None,
    }
    if text:
        out["text"] = notebook.text
    return out


class NotebookNew(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field("", max_length=MAX_TITLE)
    text: str = Field("", max_length=MAX_TEXT)


class NotebookEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=MAX_TITLE)
    text: str | None = Field(None, max_length=MAX_TEXT)


def register_notebook_routes(api: Blueprint) -> None:
    @api.get("/notebooks")
    def notebooks():
        return jsonify(notebooks=[notebook_json(n, text=False) for n in web_state().notebooks.list()])

    @api.post("/notebooks")
    def new_notebook():
        body = json_body(NotebookNew, MAX_TEXT_JSON_BYTES)
        return jsonify(notebook_json(web_state().notebooks.new(title=body.title, text=body.text))), 201

    @api.get("/notebooks/<notebook_id>")
    def get_notebook(notebook_id: str):
        return jsonify(notebook_json(web_state().notebooks.load(notebook_id)))

    @api.put("/notebooks/<notebook_id>")
    def save_notebook(notebook_id: str):
        """Save the text and/or the title (the page saves as you type)."""
        body = json_body(NotebookEdit, MAX_TEXT_JSON_BYTES)

        def change(n: Notebook) -> Notebook:
            return dataclasses.replace(
                n,
                title=n.title if body.title is None else body.title,
                text=n.text if body.text is None else body.text,
            )

        return jsonify(notebook_json(web_state().notebooks.update(notebook_id, change), text=False))

    @api.post("/notebooks/<notebook_id>/undo")
    def undo(notebook_id: str):
        """Put back the text as it was before the last generation."""

        def change(n: Notebook) -> Notebook:
            if n.before is None:
                raise InvalidRequest("There is no generation to undo.", param="notebook")
            return dataclasses.replace(n, text=n.before, before=None)

        return jsonify(notebook_json(web_state().notebooks.update(notebook_id, change)))

    @api.delete("/notebooks/<notebook_id>")
    def delete_notebook(notebook_id: str):
        web_state().notebooks.delete(notebook_id)
        return jsonify(deleted=notebook_id)


# --- Generating --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletionRequest:
    notebook: str
    text: str
    sampling: Sampling


def completion_request(message) -> CompletionRequest:
    return CompletionRequest(message.notebook, checked_text(message.text), message.sampling)


class NotebookTurn:
    """A running completion: iterate `events()`, then `save()` (also after a stop or error)."""

    def __init__(self, store: NotebookStore, notebook: str, base: str, generation: Generation, cut: bool):
        self.store = store
        self.notebook = notebook
        self.base = base
        self.generation = generation
        self.cut = cut  # only the end of the text was given to the model
        self.content = ""
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.started = time.monotonic()
        self.first_text_at: float | None = None

    @property
    def text(self) -> str:
        return self.base + self.content

    def events(self) -> Iterator[TurnEvent]:
        for delta in self.generation:
            if delta.text:
                self.content += delta.text
                self.first_text_at = self.first_text_at or time.monotonic()
                yield TurnEvent("content", delta.text)
            if delta.finish_reason:
                self.finish_reason, self.usage = delta.finish_reason, delta.usage

    def cancel(self) -> None:
        self.generation.cancel()

    def save(self) -> Notebook | None:
        if not self.content:
            return None
        text = self.text[:MAX_TEXT]
        return self.store.update(self.notebook, lambda n: dataclasses.replace(n, text=text))

    def stats(self) -> dict:
        out: dict = {"seconds": round(time.monotonic() - self.started, 3)}
        if self.usage:
            out["prompt_tokens"] = self.usage.prompt_tokens
            out["completion_tokens"] = self.usage.completion_tokens
            if self.first_text_at and self.usage.completion_tokens > 1:
                generating = max(time.monotonic() - self.first_text_at, 1e-3)
                out["tokens_per_second"] = round(self.usage.completion_tokens / generating, 1)
        return out


def start_completion(store: NotebookStore, engine: TextEngine, request: CompletionRequest) -> NotebookTurn:
    """Save the page (keeping it for Undo), then start continuing it."""
    store.load(request.notebook)  # a missing notebook is a 404 before anything runs
    n_ctx = engine.info.n_ctx
    wanted = request.sampling.max_tokens
    max_tokens = min(wanted, n_ctx // 2)
    prompt, cut = prompt_for(engine, request.text, n_ctx - max_tokens - 1)
    params = request.sampling.params(max_tokens=max_tokens)
    generation = engine.generate(GenerationRequest(prompt, params))
    text = request.text
    try:
        store.update(request.notebook, lambda n: dataclasses.replace(n, text=text, before=text))
    except Exception:
        generation.close()
        raise
    return NotebookTurn(store, request.notebook, text, generation, cut)


def prompt_for(engine: TextEngine, text: str, room: int) -> tuple[str | list[int], bool]:
    """The text, or when it is longer than `room` tokens its last `room` tokens (after the
    model's BOS), and whether it was cut."""
    if engine.count_tokens(text) < room:
        return text, False
    tail = text[-room * 8 :]  # tokens are rarely shorter than a character: 8 is plenty
    tokens = engine.tokenize(tail, add_bos=False, special=False)[-(room - 2) :]
    return [*engine.tokenize("", add_bos=True, special=False), *tokens], True
