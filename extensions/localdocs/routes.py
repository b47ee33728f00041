"""LocalDocs' endpoints, twice: in the API (`/v1/internal/localdocs`, admin calls, OpenAI's
error shape) and in the browser UI (`/ui/api/localdocs`, behind the UI's login). One set of
views; each side reads bodies and renders errors its own way (docs/api.md lists them).
`management` marks the routes each side's checks treat as managing Hearth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from modules.serving.access import management

from .library import MAX_FOLDERS, LocalDocs

Docs = Callable[[], LocalDocs]


class CreateCollection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="The collection's name (like a file name: no slashes).")
    folders: list[str] = Field(
        default_factory=list, max_length=MAX_FOLDERS, description="Absolute paths of existing folders."
    )
    index: bool = Field(True, description="Start indexing at once.")


class SetFolders(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folders: list[str] = Field(max_length=MAX_FOLDERS, description="The collection's folders.")


class Search(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collections: list[str] = Field(min_length=1, max_length=32)
    query: str = Field(min_length=1, max_length=100_000)
    top_k: int = Field(3, ge=1, le=100)
    min_score: float = Field(-1.0, ge=-1.0, le=1.0)


def _views(docs: Docs, read: Callable[[type[BaseModel]], Any]) -> dict[str, Callable]:
    def list_collections():
        return jsonify(object="list", data=docs().list())

    def create_collection():
        body = read(CreateCollection)
        library = docs()
        collection = library.create(body.name, body.folders)
        if body.index:
            library.start_index(collection.name)
        return jsonify(library.describe(library.collection(collection.name))), 201

    def get_collection(name: str):
        library = docs()
        return jsonify(library.describe(library.collection(name)))

    def set_folders(name: str):
        body = read(SetFolders)
        library = docs()
        collection = library.collection(name)
        wanted = [library.check_folder(f) for f in body.folders]
        for folder in collection.folders:
            if folder not in wanted:
                library.remove_folder(name, folder)
        for folder in wanted:
            library.add_folder(name, folder)
        return jsonify(library.describe(library.collection(name)))

    def index_collection(name: str):
        library = docs()
        library.start_index(name)
        return jsonify(library.describe(library.collection(name))), 202

    def delete_collection(name: str):
        docs().delete(name)
        return jsonify(deleted=name)

    def search():
        body = read(Search)
        hits = docs().search(body.collections, body.query, body.top_k, body.min_score)
        return jsonify(
            object="list",
            data=[
                {
                    "collection": h.collection,
                    "path": h.path,
                    "location": h.location,
                    "score": h.score,
                    "text": h.text,
                }
                for h in hits
            ],
        )

    return {name: view for name, view in locals().items() if callable(view) and name not in ("docs", "read")}


ROUTES = (  # (method, rule, view, whether it changes which folders are read)
    ("GET", "", "list_collections", False),
    ("POST", "", "create_collection", True),
    ("POST", "/search", "search", False),
    ("GET", "/<name>", "get_collection", False),
    ("PUT", "/<name>", "set_folders", True),
    ("DELETE", "/<name>", "delete_collection", True),
    ("POST", "/<name>/index", "index_collection", True),
)


def _blueprint(prefix: str, views: dict[str, Callable], manages: Callable[[str, bool], bool]) -> Blueprint:
    bp = Blueprint("localdocs", __name__, url_prefix=prefix)
    for method, rule, name, changes_folders in ROUTES:
        view = views[name]
        if manages(name, changes_folders):
            view = management(view)
        bp.add_url_rule(rule or "", endpoint=name, view_func=view, methods=[method], strict_slashes=False)
    return bp


def api_blueprint(docs: Docs) -> Blueprint:
    """Mounted inside the API: every route is an admin call (the admin key, or this machine)."""
    from extensions.openai.http import read_json

    return _blueprint("/v1/internal/localdocs", _views(docs, read_json), lambda name, changes: True)


def ui_blueprint(docs: Docs) -> Blueprint:
    """Mounted inside the browser UI (its login and same-origin checks apply). Changing which
    folders are read is a management action: the login, or this machine."""
    from modules.web.http import json_body

    return _blueprint("/ui/api/localdocs", _views(docs, json_body), lambda name, changes: changes)
