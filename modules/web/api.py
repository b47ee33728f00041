"""The UI's own JSON endpoints, under /ui/api/ (see docs/ui.md for the list).

Every input is validated (names through the chat module's validators, bodies through
pydantic models, pictures by decoding them), and every failure is a JSON message,
`{"error": {"message": ...}}`, that the page shows to the user. Characters and chats have
modules of their own; the model, preset and settings endpoints are here.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Literal, get_args, get_origin

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from modules.app import Services, load_options, services
from modules.chat.templates import FALLBACK_TEMPLATE, reasoning_switches
from modules.chat.templates import MODEL as MODEL_TEMPLATE
from modules.engines.base import ModelInfo
from modules.engines.load_args import LoadArgs
from modules.engines.registry import LoadOptions
from modules.errors import HearthError, NotFound
from modules.extensions import available_extensions, extension_dirs
from modules.serving.access import management
from modules.settings import PROJECT_ROOT

from .characters import register_character_routes
from .chat_edits import register_edit_routes
from .chat_transfer import MAX_IMPORT_BYTES, register_transfer_routes
from .chats import register_chat_routes
from .choices import UiChoices, save_choices, settings_file
from .files import MAX_FILE_BYTES, register_file_routes
from .http import MAX_TEXT_JSON_BYTES, install_error_handlers, json_body
from .images import register_image_routes
from .notebook import register_notebook_routes
from .pictures import MAX_UPLOAD_BYTES
from .presets import Sampling
from .state import web_state
from .tools import register_tool_routes

log = logging.getLogger(__name__)

BODY_LIMITS = {
    "web.api.read_file": MAX_FILE_BYTES,
    "web.api.import_chat": MAX_IMPORT_BYTES,
    "web.api.new_notebook": MAX_TEXT_JSON_BYTES,
    "web.api.save_notebook": MAX_TEXT_JSON_BYTES,
    "web.api.prompt": MAX_TEXT_JSON_BYTES,
}


def create_api_blueprint() -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/ui/api")

    @api.before_request
    def limit_body_size():
        # the upload an endpoint takes (a picture by default), plus room for form fields
        limit = BODY_LIMITS.get(request.endpoint or "", MAX_UPLOAD_BYTES)
        request.max_content_length = limit + 1024 * 1024

    install_error_handlers(api)
    _status_routes(api)
    register_character_routes(api)
    register_chat_routes(api)
    register_edit_routes(api)
    register_transfer_routes(api)
    register_file_routes(api)
    register_image_routes(api)
    register_tool_routes(api)
    register_notebook_routes(api)
    _preset_routes(api)
    _settings_routes(api)

    @api.route("/<path:_rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def no_such_endpoint(_rest: str):
        """Unknown paths (and known ones with another method) answer in JSON like the rest."""
        raise NotFound(f"There is no {request.method} {request.path} in the UI's API.")

    return api


# --- Status and models -----------------------------------------------------------------------------


def automatic_template(hearth: Services, info: ModelInfo) -> str:
    """The template a request naming none gets (TemplateStore.choose's order), without the
    warning `choose` logs on its fallback: the page asks for this every few seconds."""
    if info.chat_template:
        return MODEL_TEMPLATE
    return hearth.chat.templates.match_model(info) or FALLBACK_TEMPLATE


def automatic_switches(hearth: Services, info: ModelInfo, template: str) -> list[str]:
    """The reasoning switches the automatic template reads (see templates.reasoning_switches)."""
    if template == MODEL_TEMPLATE and info.chat_template:
        return list(reasoning_switches(info.chat_template))
    try:
        return list(hearth.chat.templates.get(template).reasoning_switches)
    except HearthError:
        return []


def template_switches(hearth: Services) -> dict[str, list[str]]:
    """For each named template, the reasoning switches it reads (only those that read any)."""
    out = {}
    for name in hearth.chat.templates.names():
        try:
            switches = hearth.chat.templates.get(name).reasoning_switches
        except HearthError:
            continue
        if switches:
            out[name] = list(switches)
    return out


def instruction_tuned(hearth: Services) -> bool:
    """Whether the model the chat uses answers instructions (it has a chat template, or its
    name says so): the UI then opens in instruct mode for a newcomer."""
    engine = hearth.models.get_loaded()
    if engine is not None:
        return bool(engine.info.chat_template) or INSTRUCT_NAME.search(engine.info.name) is not None
    try:
        return INSTRUCT_NAME.search(hearth.models.default_spec().id) is not None
    except HearthError:
        return False


INSTRUCT_NAME = re.compile(r"instruct|chat|-it\b|\bit\b", re.IGNORECASE)


def status_json(hearth: Services) -> dict:
    models = hearth.models
    loaded = models.loaded_ids()
    current = None
    engine = models.get_loaded()
    if engine is not None:
        info = engine.info
        template = automatic_template(hearth, info)
        current = {
            "id": info.name,
            "n_ctx": info.n_ctx,
            "template": template,
            "has_own_template": bool(info.chat_template),
            "vision": info.vision,
            "cache_type": info.cache_type,
            "kv_cache_bytes": info.kv_cache_bytes,
            "loras": [a.name for a in getattr(engine, "adapters", ())],
            "template_switches": automatic_switches(hearth, info, template),
        }
    return {
        "model": current,
        "loaded": loaded,
        "loading": models.load_progress(),
        "states": models.model_states(),
    }


def load_form(options: LoadOptions) -> list[dict]:
    """The load arguments as the model page's form shows them: name, kind, help, choices,
    and the value a load without it gets (the server's)."""
    fields = []
    for name, info in LoadArgs.model_fields.items():
        kinds = [a for a in get_args(info.annotation) if a is not type(None)]
        kind = kinds[0] if kinds else info.annotation
        entry = {"name": name, "help": info.description or "", "default": getattr(options, name, None)}
        if get_origin(kind) is Literal:
            entry.update(kind="choice", choices=list(get_args(kind)))
        else:
            entry["kind"] = {bool: "bool", int: "int", float: "float"}.get(kind, "text")
        if isinstance(entry["default"], Path):
            entry["default"] = entry["default"].name
        fields.append(entry)
    return fields


class LoadRequest(LoadArgs):
    """The model page's load form: a model and its load arguments (load_args.py)."""

    name: str = Field(min_length=1, max_length=500)

    def args(self) -> LoadArgs:
        return LoadArgs.model_validate(self.model_dump(exclude={"name"}, exclude_none=True))


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=500)


def _status_routes(api: Blueprint) -> None:
    @api.get("/status")
    def status():
        return jsonify(status_json(services()))

    @api.get("/models")
    def models():
        hearth = services()
        states = hearth.models.model_states()
        catalog = []
        for spec in hearth.models.catalog():
            try:
                size = spec.path.stat().st_size if spec.path is not None else None
            except OSError:
                size = None
            state = states.get(spec.id, {"state": "unloaded"})
            args = hearth.models.args_of(spec.id)
            catalog.append(
                {
                    "id": spec.id,
                    "file": spec.file_name,
                    "source": spec.source,
                    "vision": spec.mmproj is not None,
                    "loader": spec.loader,
                    "size": size,
                    "loaded": state["state"] == "loaded",
                    **state,
                    "args": args.given() if args is not None else {},
                    "upstreams": hearth.fleet.upstream_names(spec.id)
                    if hearth.fleet is not None and spec.path is None
                    else None,
                }
            )
        options = load_options(hearth.settings)  # what a load without arguments uses
        return jsonify(
            models=catalog,
            status=status_json(hearth),
            defaults={"ctx_size": options.ctx_size, "threads": options.threads},
            arguments=load_form(options),
        )

    @api.post("/models/load")
    @management
    def load_model():
        body = json_body(LoadRequest)
        hearth = services()
        spec = hearth.models.resolve(body.name)
        hearth.models.load(spec.id, body.args())
        return jsonify(status_json(hearth))

    @api.post("/models/unload")
    @management
    def unload_model():
        body = json_body(UnloadRequest)
        hearth = services()
        name = hearth.models.resolve(body.name).id if body.name else None
        hearth.models.unload(name)
        return jsonify(status_json(hearth))

    @api.get("/templates")
    def templates():
        return jsonify(templates=services().chat.templates.names())


# --- Presets ---------------------------------------------------------------------------------------


class PresetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sampling: Sampling


def _preset_routes(api: Blueprint) -> None:
    @api.get("/presets")
    def presets():
        return jsonify(presets=[p.to_json() for p in web_state().presets.list()])

    @api.put("/presets/<name>")
    def save_preset(name: str):
        body = json_body(PresetBody)
        return jsonify(web_state().presets.save(name, body.sampling).to_json())

    @api.delete("/presets/<name>")
    def delete_preset(name: str):
        web_state().presets.delete(name)
        return jsonify(deleted=name)


# --- Settings and extensions -----------------------------------------------------------------------


def extensions_json(hearth: Services) -> list[dict]:
    settings = hearth.settings
    loaded = {e.name: e for e in hearth.extensions}
    wanted = settings.enabled_extensions
    names = sorted(
        set(available_extensions(extension_dirs(PROJECT_ROOT, settings.user_data_dir))) | set(wanted)
    )
    panels = hearth.extensions.panels()
    out = []
    for name in names:
        if name in loaded:
            state = "loaded"
        elif name in wanted:
            state = "failed"
        else:
            state = "available"
        params = {k: v for k, v in loaded[name].params.items()} if name in loaded else {}
        out.append(
            {
                "name": name,
                "state": state,
                "params": json.loads(json.dumps(params, default=str)),
                "panel": panels.get(name, []),
            }
        )
    return out


def _settings_routes(api: Blueprint) -> None:
    @api.get("/settings")
    def get_settings():
        hearth, web = services(), web_state()
        return jsonify(
            choices=web.choices.model_dump(),
            file=str(settings_file(hearth.settings)),
            extensions=extensions_json(hearth),
        )

    @api.put("/settings")
    @management
    def put_settings():
        choices = json_body(UiChoices)
        hearth, web = services(), web_state()
        save_choices(settings_file(hearth.settings), choices)
        web.choices = choices
        web.mode_chosen = True
        log.info("saved the UI's choices to %s", settings_file(hearth.settings))
        return jsonify(choices=choices.model_dump(), file=str(settings_file(hearth.settings)))

    @api.get("/extensions")
    def extensions():
        return jsonify(extensions=extensions_json(services()))
