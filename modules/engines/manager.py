"""Which text models exist, which are loaded, and loading/unloading them on demand.

The catalog (catalog.py) is the built-in model plus every model file in the model folder,
and the models of the upstream servers (modules/engines/remote), unless Hearth serves no
local models (--no-local-model). A model the upstreams serve wins over a local one of the
same id (the upstreams were asked for; a local file stays reachable by its file name).

A request for a model loads it if needed; one for a model that is loading waits for that
load. At most `max_loaded` models stay loaded: loading another unloads the least recently
used one that is idle, and waits while every loaded model is busy (residency.py). Remote
models hold no memory here and do not count. An idle model also goes once its keep-alive
has passed (`unload_expired`, which the app's IdleUnloader calls).

A load's options are layered: the server's (flags), the model's entry in models.yaml
(model_table.py), and the `args` of the last load request for that model, which it keeps
when it is unloaded and loaded again on demand.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ..errors import HearthError, InvalidRequest, ModelNotFound, Unavailable, shown
from ..model_table import ModelRule, settings_for
from .base import GenerationObserver, TextEngine
from .catalog import (
    BUILTIN_FILE,
    BUILTIN_ID,
    BUILTIN_PACKAGE,
    ModelSpec,
    builtin_model_path,
    discover,
    is_projector,
    pair_projector,
)
from .crossthread import Mailer
from .load_args import LoadArgs, apply_args
from .registry import REMOTE, Loader, LoadOptions
from .residency import Residency

__all__ = [
    "BUILTIN_FILE",
    "BUILTIN_ID",
    "BUILTIN_PACKAGE",
    "LOAD_PROGRESS",
    "ModelManager",
    "ModelSpec",
    "builtin_model_path",
    "discover",
    "is_projector",
    "pair_projector",
]

log = logging.getLogger(__name__)

# How far the load in progress has got (0.0 to 1.0). The loader interface has no progress
# parameter, so `ModelManager.load` sets this for the duration of the loader call; a loader
# that can report progress reads it on the calling thread (or greenlet) before starting work
# elsewhere, and may call it from any thread.
LOAD_PROGRESS: contextvars.ContextVar[Callable[[float], None] | None] = contextvars.ContextVar(
    "hearth_load_progress", default=None
)

ROOM_POLL_SECONDS = 0.05  # how often a load waiting for room looks again
ROOM_WAIT_SECONDS = 600.0  # how long at most (the request's timeout when it has one)


class ModelSource(Protocol):
    """Models served elsewhere (the fleet of upstream servers)."""

    def model_names(self) -> list[str]: ...


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
        mmproj: Path | None = None,
        ttl: float = 0.0,
        model_table: Sequence[ModelRule] = (),
        lora_dir: Path | None = None,
        loras: Sequence[str] = (),
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
        self._max_loaded = max(1, max_loaded)
        self._model_table = tuple(model_table)
        self._lora_dir = lora_dir
        self._loras = tuple(loras)  # adapters every model runs under when it loads
        self._local = local
        self._remote = remote
        self._lock = threading.Lock()
        self._room = threading.Lock()  # one load at a time chooses whom to unload for room
        self._loaded: OrderedDict[str, TextEngine] = OrderedDict()  # least recently used first
        self._loading: dict[str, threading.Event] = {}
        self._admitted: set[str] = set()  # loading, past the room check: they count as resident
        self._errors: dict[str, HearthError] = {}
        self._progress: dict[str, float] = {}  # model id -> fraction loaded, while loading
        self._args: dict[str, LoadArgs] = {}  # each model's last load request's args
        self._adapter_lists: dict[str, tuple[list[str], list[float]]] = {}  # set with lora/load
        self._residency = Residency(ttl)
        self.on_change: Callable[[], None] = lambda: None  # the idle unloader's wake-up
        self._preferred: ModelSpec | None = None
        self._mmproj = mmproj  # --mmproj: the projector of the --model (or default) model
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
            path = path.resolve()
            beside = [p for p in path.parent.glob(f"*{path.suffix}") if is_projector(p)]
            found = pair_projector(path, beside, 1)
            return ModelSpec(path.stem, path, self._loader_for(path), "path", found, found is not None)
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
            if self._mmproj is not None:  # --mmproj names the default model's projector
                first = self._preferred.id if self._preferred else BUILTIN_ID
                if first in specs:
                    specs[first] = dataclasses.replace(specs[first], mmproj=self._mmproj, mmproj_found=False)
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

    def model_file(self, name: str, param: str = "args.mmproj") -> Path:
        """A file named in a load request (a projector, a draft model): a .gguf file in the
        model folder, by its name or its path below the folder (nothing outside it)."""
        root = self._model_dir.resolve()
        try:
            path = (root / name).resolve()
            found = path.is_relative_to(root) and path.is_file() and path.suffix.lower() == ".gguf"
        except (OSError, ValueError):  # a NUL byte, a name too long, ...
            found = False
        if not found:
            raise InvalidRequest(
                f"There is no file {shown(name)!r} in the model folder (a .gguf file below it).", param=param
            )
        return path

    projector_file = model_file

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

    def lora_files(self) -> dict[str, Path]:
        """LoRA adapters (GGUF files in the LoRA folder), by name: the file name without .gguf."""
        folder = self._lora_dir
        if folder is None or not folder.is_dir():
            return {}
        return {path.stem: path for path in sorted(folder.rglob("*.gguf")) if path.is_file()}

    # --- State -----------------------------------------------------------------------------------

    def loaded_ids(self) -> list[str]:
        return list(reversed(self._loaded))

    @property
    def loading(self) -> bool:
        return bool(self._loading)

    def load_progress(self) -> dict[str, float]:
        """The models being loaded, each with the fraction loaded so far (0.0 to 1.0)."""
        return dict(self._progress)

    def model_states(self) -> dict[str, dict]:
        """Each loaded or loading model's state: `loaded` (with its keep-alive and idle
        seconds) or `loading` (with its progress); models not listed are unloaded."""
        with self._lock:
            states = {name: {"state": "loaded", **self._residency.state(name)} for name in self._loaded}
        for name, fraction in self.load_progress().items():
            states[name] = {"state": "loading", "progress": round(fraction, 4)}
        return states

    def loaded_engines(self) -> list[tuple[str, TextEngine]]:
        return list(self._loaded.items())

    def get_loaded(self, name: str | None = None) -> TextEngine | None:
        if name is None:
            return self._loaded[next(reversed(self._loaded))] if self._loaded else None
        return self._loaded.get(name)

    def args_of(self, name: str) -> LoadArgs | None:
        """The args of the last load request for this model, kept for its loads on demand."""
        return self._args.get(name)

    # --- Choosing an engine ----------------------------------------------------------------------

    def engine(self, name: str | None = None, keep_alive: float | None = None) -> TextEngine:
        """The engine a request asks for: by name; else the last used; else the default.

        As in LocalAI, when only one model exists it serves every request, whatever the name.
        """
        engine, release = self.acquire(name, keep_alive)
        release()
        return engine

    def acquire(self, name: str | None = None, keep_alive: float | None = None):
        """`engine(name)` held until the returned release function is called: a held model is
        never unloaded. `keep_alive`: how long it may then stay idle (residency.py)."""
        spec_id = self._choose(name)
        while True:
            engine = self.load(spec_id)
            with self._lock:
                if self._loaded.get(spec_id) is engine:  # not unloaded since
                    self._loaded.move_to_end(spec_id)
                    self._residency.used(spec_id, keep_alive)
                    self._residency.hold(spec_id)
                    break
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                with self._lock:
                    self._residency.release(spec_id)
                self.on_change()

        return engine, release

    @contextmanager
    def using(self, name: str | None = None, keep_alive: float | None = None) -> Iterator[TextEngine]:
        engine, release = self.acquire(name, keep_alive)
        try:
            yield engine
        finally:
            release()

    def _choose(self, name: str | None) -> str:
        if name:
            try:
                return self.resolve(name).id
            except ModelNotFound:
                specs = self.catalog()
                if len(specs) != 1:
                    raise
                return specs[0].id
        with self._lock:
            if self._loaded:
                return next(reversed(self._loaded))
        return self.default_spec().id

    # --- Loading and unloading -----------------------------------------------------------------

    def load(self, name: str, args: LoadArgs | None = None) -> TextEngine:
        """Load a model (if it is not loaded yet, or with new args) and return its engine."""
        spec = self.resolve(name)
        if args is None:
            return self._load(spec, self._options_for(spec, self._args.get(spec.id)))
        # A load request: its args replace the model's, reloading it. Arguments the model
        # cannot take fail its load; the model then keeps the args it had.
        options = self._options_for(spec, args)
        previous = self._args.pop(spec.id, LoadArgs())
        if args.given():
            self._args[spec.id] = args
        if args != previous:
            self.unload(spec.id)
        try:
            return self._load(spec, options)
        except HearthError:
            self._args.pop(spec.id, None)
            if previous.given():
                self._args[spec.id] = previous
            raise

    def _load(self, spec: ModelSpec, options: LoadOptions) -> TextEngine:
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
                with self._room:
                    self._make_room(spec.id, options.request_timeout or ROOM_WAIT_SECONDS)
                    with self._lock:
                        self._admitted.add(spec.id)
            log.info("loading model %s from %s", spec.id, spec.path or "its upstream servers")
            engine = self._loaders[spec.loader].load(
                spec.id, spec.path, options, self._mailer, self._observer
            )
            self._start_adapters(spec.id, engine)
            log.info("loaded model %s (context %d tokens)", spec.id, engine.info.n_ctx)
        except HearthError as exc:
            self._errors[spec.id] = exc
            raise
        finally:
            LOAD_PROGRESS.reset(reporter)
            with self._lock:
                self._progress.pop(spec.id, None)
                self._admitted.discard(spec.id)
                done = self._loading.pop(spec.id)
            done.set()
        with self._lock:
            self._errors.pop(spec.id, None)
            self._loaded[spec.id] = engine
            self._residency.used(spec.id, None)
        self.on_change()
        return engine

    def _options_for(self, spec: ModelSpec, args: LoadArgs | None) -> LoadOptions:
        """The server's options, then the model's models.yaml settings, then the request's."""
        options = dataclasses.replace(self._options, mmproj=spec.mmproj, mmproj_optional=spec.mmproj_found)
        for layer in (settings_for(self._model_table, spec.id, spec.file_name), args):
            if layer is not None:
                options = apply_args(options, layer, self.model_file, spec.id)
        return options

    def _make_room(self, loading: str, patience: float) -> None:
        """Unload idle models, least recently used first, until one more fits; wait (at most
        `patience` seconds) while every other resident model is busy."""
        deadline = time.monotonic() + patience
        while True:
            with self._lock:
                resident = [n for n in self._loaded if self._is_resident(n)]
                others = len(resident) + len(self._admitted - {loading})
                if others < self._max_loaded:
                    return
                victim = next((n for n in resident if not self._residency.busy(n, self._loaded[n])), None)
            if victim is not None:
                log.info("unloading %s to make room for %s", victim, loading)
                self.unload(victim)
                continue
            if time.monotonic() >= deadline:
                raise Unavailable(
                    f"Every loaded model is busy (at most {self._max_loaded} stay loaded: --models-max); "
                    f"{loading} cannot load now. Retry shortly.",
                    headers={"Retry-After": "5"},
                )
            time.sleep(ROOM_POLL_SECONDS)

    def _is_resident(self, name: str) -> bool:
        loader = self._loaders.get(self._loaded[name].info.loader) if name in self._loaded else None
        return loader.resident if loader is not None else True

    def unload(self, name: str | None = None) -> list[str]:
        """Unload one model (or all of them); their running generations are cancelled."""
        with self._lock:
            names = [name] if name else list(self._loaded)
            engines = [(n, self._loaded.pop(n)) for n in names if n in self._loaded]
            for n, _ in engines:
                self._residency.forget(n)
        for engine_name, engine in engines:
            engine.close()
            log.info("unloaded model %s", engine_name)
        return [n for n, _ in engines]

    def unload_expired(self) -> bool:
        """Unload the models idle past their keep-alive; whether a loaded one may expire later."""
        with self._lock:
            expired = [(n, e) for n, e in self._loaded.items() if self._residency.expired(n, e)]
            for n, _ in expired:
                del self._loaded[n]
                self._residency.forget(n)
            pending = any(self._residency.keep_alive(n) >= 0 for n in self._loaded)
        for name, engine in expired:
            engine.close()
            log.info("unloaded model %s: idle past its keep-alive", name)
        return pending

    def close(self) -> None:
        self.unload()

    # --- LoRA adapters -------------------------------------------------------------------------

    def set_adapters(self, name: str, names: Sequence[str], scales: Sequence[float]) -> list[str]:
        """Make these adapters (names in the LoRA folder, with scales) a loaded model's list;
        the model keeps it when it is unloaded and loaded again on demand."""
        engine = self._loaded.get(name)
        if engine is None:
            raise InvalidRequest(f"The model {name} is not loaded.", param="model_name")
        adapters = self._apply_adapters(engine, names, scales, "lora_names")
        self._adapter_lists[name] = (list(names), list(scales))
        return [adapter.name for adapter in adapters]

    def _start_adapters(self, name: str, engine: TextEngine) -> None:
        """The adapters a model runs under when it loads: its list from lora/load, else --lora."""
        names, scales = self._adapter_lists.get(name, (list(self._loras), [1.0] * len(self._loras)))
        if names:
            try:
                self._apply_adapters(
                    engine, names, scales, "lora_names" if name in self._adapter_lists else "--lora"
                )
            except HearthError:
                engine.close()
                raise

    def _apply_adapters(self, engine: TextEngine, names: Sequence[str], scales: Sequence[float], where: str):
        if not hasattr(engine, "set_adapters"):
            raise InvalidRequest(f"The model {engine.info.name} takes no LoRA adapters.", param="model_name")
        files = self.lora_files()
        for i, adapter in enumerate(names):
            if adapter not in files:
                raise InvalidRequest(
                    f"{where}: there is no LoRA adapter {shown(adapter)!r} in the LoRA folder "
                    f"(there are: {', '.join(files) or 'none'}).",
                    param=f"lora_names.{i}",
                )
        return engine.set_adapters([(a, files[a], float(s)) for a, s in zip(names, scales, strict=True)])
