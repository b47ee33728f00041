"""create_app(settings): build the services and the Flask app that serves them.

All runtime state lives on the app (`app.extensions["hearth"]`, a `Services`), never in
module globals, so every test can build a fresh app.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, current_app, jsonify

from .chat.characters import CharacterStore
from .chat.history import HistoryStore
from .chat.service import ChatService
from .chat.templates import TemplateStore
from .engines.crossthread import Mailer, make_mailer
from .engines.idle_unload import IdleUnloader
from .engines.load_args import FILES, LoadArgs, apply_args
from .engines.manager import ModelManager
from .engines.media.manager import MediaConfig, MediaModels
from .engines.registry import LoadOptions, default_loaders
from .engines.remote.config import fleet_config
from .engines.remote.fleet import Fleet
from .errors import HearthError, NotFound
from .extensions import Extensions, extension_dirs, load_extensions
from .inbound import HearthRequest
from .metrics import Metrics
from .model_table import ModelRule, load_model_table
from .serving.guards import install_guards
from .serving.traffic import Traffic
from .settings import PROJECT_ROOT, Settings, load_settings
from .tools.registry import ToolRegistry

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    models: ModelManager
    chat: ChatService
    mailer: Mailer
    metrics: Metrics
    media: MediaModels
    idle_unload: IdleUnloader
    tools: ToolRegistry
    fleet: Fleet | None = None  # the upstream servers, when there are any
    extensions: Extensions = field(default_factory=Extensions)

    def close(self) -> None:
        self.extensions.close()
        self.tools.close()
        self.idle_unload.close()
        self.models.close()
        if self.fleet is not None:
            self.fleet.close()
        self.media.close()
        self.mailer.close()


def services() -> Services:
    """The services of the app handling the current request."""
    return current_app.extensions["hearth"]


def load_options(settings: Settings) -> LoadOptions:
    """What every load starts from: the flags (load_args.py's arguments among them)."""
    cpus = os.cpu_count() or 1
    options = LoadOptions(
        ctx_size=settings.ctx_size,
        threads=settings.threads or max(1, cpus // 2),
        threads_batch=settings.threads_batch or cpus,
        batch_size=settings.batch_size,
        parallel=settings.parallel,
        queue_size=settings.queue_size,
        request_timeout=settings.request_timeout,
        max_output_tokens=settings.max_output_tokens,
        prompt_cache_mb=settings.prompt_cache_mb,
        flash_attn=settings.flash_attn,
    )
    flags = {
        name: getattr(settings, name)
        for name in LoadArgs.model_fields
        if name not in FILES
        and name not in ("threads", "threads_batch")
        and getattr(settings, name) != Settings.model_fields[name].default
    }
    options = apply_args(options, LoadArgs.model_validate(flags), _no_file, "flags")
    if settings.model_draft:
        options = dataclasses.replace(options, model_draft=Path(settings.model_draft))
    return options


def _no_file(name: str, param: str) -> Path:  # pragma: no cover - FILES are left out above
    raise AssertionError(param)


def build_services(settings: Settings) -> Services:
    from .engines.media.runtime import prefer_passive_openmp

    prefer_passive_openmp()  # before llama.cpp loads the process's one OpenMP runtime
    mailer = make_mailer()
    if settings.local_model:  # a front end for upstream servers never loads llama.cpp
        from .engines.llamacpp.library import set_library_logging

        set_library_logging(settings.verbose)
    metrics = Metrics()
    model_table = load_model_table(TEMPLATES_DIR / "models.yaml", settings.user_data_dir / "models.yaml")
    chat = build_chat(settings, model_table)  # first: a bad --character fails before any thread starts
    fleet = build_fleet(settings, metrics)
    try:
        models = ModelManager(
            model_dir=settings.models_path,
            preferred=settings.model,
            loaders=default_loaders(fleet),
            default_loader=settings.loader,
            options=load_options(settings),
            mailer=mailer,
            observer=metrics,
            max_loaded=settings.models_max,
            mmproj=settings.mmproj,
            ttl=settings.model_ttl,
            model_table=model_table,
            lora_dir=settings.loras_path,
            loras=settings.lora,
            local=settings.local_model,
            remote=fleet,
        )
    except BaseException:
        if fleet is not None:
            fleet.close()
        raise
    metrics.watch(models)
    media = MediaModels(MediaConfig.from_settings(settings), mailer)
    idle_unload = IdleUnloader(models.unload_expired)
    models.on_change = idle_unload.wake
    idle_unload.start()
    tools = ToolRegistry(settings.tools_path, settings.mcp_config_path, mailer=mailer)  # servers start on use
    return Services(
        settings=settings,
        models=models,
        chat=chat,
        mailer=mailer,
        metrics=metrics,
        media=media,
        idle_unload=idle_unload,
        tools=tools,
        fleet=fleet,
    )


def build_fleet(settings: Settings, metrics: Metrics) -> Fleet | None:
    """The upstream servers (--upstream, upstreams.yaml), probed and watched; None without any."""
    config = fleet_config(settings)
    if not config:
        return None
    fleet = Fleet(config, metrics.upstream_events())
    metrics.watch_fleet(fleet)
    fleet.start()
    return fleet


TEMPLATES_DIR = PROJECT_ROOT / "instruction-templates"


def build_chat(settings: Settings, model_table: tuple[ModelRule, ...]) -> ChatService:
    """Shipped characters and templates, with the user's (which win) from user_data."""
    user = settings.user_data_dir
    templates_dir = TEMPLATES_DIR
    characters = CharacterStore(builtin_dir=PROJECT_ROOT / "characters", user_dir=user / "characters")
    if not characters.exists(settings.character):  # a typo in --character, not a blank assistant
        names = ", ".join(c.key for c in characters.list())
        raise NotFound(f"--character: there is no character '{settings.character}' (there are: {names}).")
    return ChatService(
        characters=characters,
        templates=TemplateStore(
            dirs=[templates_dir, user / "instruction-templates"],
            model_table=model_table,
        ),
        history=HistoryStore(root=user / "logs"),
        default_character=settings.character,
    )


def create_app(settings: Settings | None = None) -> Flask:
    """The WSGI app. Without settings (under gunicorn) they come from the flags in the
    HEARTH_ARGS environment variable, OPENEDAI_* variables and settings.yaml."""
    settings = settings or load_settings(shlex.split(os.environ.get("HEARTH_ARGS", "")))
    app = Flask("hearth", root_path=str(PROJECT_ROOT))
    app.request_class = HearthRequest  # form fields follow the text rule as they are parsed
    app.json.sort_keys = False
    hearth = build_services(settings)
    app.extensions["hearth"] = hearth
    install_guards(app, settings)  # first, so that they run before any other check
    app.wsgi_app = app.extensions["hearth.traffic"] = Traffic(app.wsgi_app, log_requests=settings.api_debug)
    hearth.metrics.install(app)
    app.register_blueprint(_core_blueprint())
    load_app_extensions(app, hearth)
    return app


def load_app_extensions(app: Flask, hearth: Services) -> None:
    """Load the enabled extensions, let the chat service call their hooks, and register
    their blueprints: `ui_blueprint`s inside the UI's, `blueprint`s on the app (in app
    context, so that the API's can mount the other extensions' `api_blueprint`s)."""
    settings = hearth.settings
    dirs = extension_dirs(PROJECT_ROOT, settings.user_data_dir)
    hearth.extensions = Extensions(
        load_extensions(settings.enabled_extensions, dirs, settings.extension_params, hearth)
    )
    hearth.chat.hooks = hearth.extensions.chat_hooks()
    with app.app_context():
        if not settings.nowebui:
            from .web import init_web

            init_web(app, hearth, extension_blueprints=hearth.extensions.blueprints("ui_blueprint"))
        for blueprint in hearth.extensions.blueprints("blueprint"):
            _register(app, blueprint)


def _register(app: Flask, blueprint) -> None:
    try:
        app.register_blueprint(blueprint)
    except Exception:
        log.exception("the blueprint %s failed to register and is skipped", blueprint.name)


def _core_blueprint():
    from flask import Blueprint

    from .serving.access import require_api_key

    core = Blueprint("core", __name__)

    core.get("/health")(health)

    @core.get("/metrics")
    def metrics():
        """Model names, request and token counts: the API key's business when there is one
        (a scraper holds that key, never the admin key), unless --metrics-public."""
        settings = services().settings
        if not settings.metrics_public:
            require_api_key(settings)
        return services().metrics.render()

    @core.errorhandler(HearthError)
    def refused(error: HearthError):
        return jsonify(error.to_dict()), error.status

    return core


def health():
    """ok, or 503 while a model loads. The API serves the same answer at /v1/internal/health.
    With upstream servers it lists their state; a front end with no local models answers
    503 "no_upstream" while none of them is up (a load balancer then skips it)."""
    hearth = services()
    models = hearth.models
    if models.loading:
        return jsonify(status="loading"), 503
    if hearth.fleet is None:
        return jsonify(status="ok", models=models.loaded_ids())
    upstreams = hearth.fleet.status()
    if not hearth.settings.local_model and "up" not in upstreams.values():
        return jsonify(status="no_upstream", upstreams=upstreams), 503
    return jsonify(status="ok", models=models.loaded_ids(), upstreams=upstreams)


def close_app(app: Flask) -> None:
    app.extensions["hearth"].close()
