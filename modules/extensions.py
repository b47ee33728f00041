"""Extensions: discovering, loading, and calling their hooks, all from here.

An extension is a folder with a `script.py` (shaped like text-generation-webui's), loaded as
a package of its own so it can hold several modules. Bundled extensions live in
`extensions/`, the user's in `user_data/extensions/` (which win on a name clash). They are
enabled with `--extensions a b` or `default_extensions` in settings.yaml, and their hooks run
in that order.

`HOOKS` below is the one list of hooks: docs/extensions.md documents each of them (a test
checks), and `ExtensionHooks` is the one place that calls the chat hooks. Built-in features
(the API, LocalDocs) are extensions and use the same hooks as anyone's.

**State.** script.py is executed afresh for every app, so its globals belong to one app: the
`params` dict in it starts as the script's defaults, is updated with settings.yaml's
`<name>-<param>` keys, and *is* `Extension.params` (the settings page changes it there).
Tests build fresh apps and never see another app's values.

**Failures.** An extension that fails to load (a syntax error, an import error, a raising
`setup`) is logged with its name and skipped. A hook that raises, or returns the wrong type,
is logged with the extension's and the hook's name (once; later failures go to the debug
log) and skipped for that call: the chat goes on with the value as it was before that hook.
A `HearthError` is different: it is a deliberate answer to the request (e.g. LocalDocs'
"unknown collection", a 404) and reaches the caller like any other error of the request.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modules.chat.hooks import ChatHooks
from modules.chat.messages import ChatMessage
from modules.errors import HearthError

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "hearth_extensions"


# --- The hooks: one declaration ------------------------------------------------------------------


@dataclass(frozen=True)
class HookSpec:
    name: str
    signature: str  # as docs/extensions.md shows it
    returns: tuple[type, ...] | None  # the types a result may have (None: not checked here)
    when: str


HOOKS: tuple[HookSpec, ...] = (
    HookSpec(
        "setup",
        "setup() or setup(context)",
        None,
        "once, when the app is built, after `params` got the settings.yaml values",
    ),
    HookSpec(
        "state_modifier",
        "state_modifier(state) -> dict",
        (dict,),
        "first, for every chat request: the state dict the other hooks get",
    ),
    HookSpec(
        "chat_input_modifier",
        "chat_input_modifier(text, visible_text, state) -> (str, str)",
        (tuple, list),
        "on a new user message: the text for the prompt, and the text the UI saves",
    ),
    HookSpec(
        "input_modifier",
        "input_modifier(string, state, is_chat=True) -> str",
        (str,),
        "on the new user message, before it goes into the prompt",
    ),
    HookSpec(
        "history_modifier",
        "history_modifier(history, state) -> list[ChatMessage]",
        (list,),
        "on the whole conversation, before the prompt is built",
    ),
    HookSpec(
        "bot_prefix_modifier",
        "bot_prefix_modifier(string, state) -> str",
        (str,),
        "chat modes: the `Bot:` prefix the reply starts after",
    ),
    HookSpec(
        "custom_generate_chat_prompt",
        "custom_generate_chat_prompt(user_input, state, **kwargs) -> Optional[str]",
        (str, type(None)),
        "last: a prompt to use instead of the built one; the first extension to return a string wins",
    ),
    HookSpec(
        "output_modifier",
        "output_modifier(string, state, is_chat=True) -> str",
        (str,),
        "on each piece of the reply's content, as it streams",
    ),
    HookSpec(
        "custom_css",
        "custom_css() -> str",
        (str,),
        "once, at start-up: CSS the UI's pages load from /ui/extensions.css",
    ),
    HookSpec(
        "custom_js",
        "custom_js() -> str",
        (str,),
        "once, at start-up: JavaScript the UI's pages load from /ui/extensions.js",
    ),
    HookSpec(
        "ui",
        "ui() -> list[dict]",
        (list,),
        "once, at start-up: the controls of the extension's panel on the settings page",
    ),
    HookSpec(
        "blueprint",
        "blueprint() -> flask.Blueprint",
        None,
        "once, at start-up: routes registered on the app as they are",
    ),
    HookSpec(
        "ui_blueprint",
        "ui_blueprint() -> flask.Blueprint",
        None,
        "once, at start-up: routes mounted inside the browser UI (its login and checks)",
    ),
    HookSpec(
        "api_blueprint",
        "api_blueprint() -> flask.Blueprint",
        None,
        "once, at start-up: routes mounted inside the API (its keys and error shape)",
    ),
)
HOOK_NAMES = tuple(spec.name for spec in HOOKS)
_SPECS = {spec.name: spec for spec in HOOKS}


# --- Loading -------------------------------------------------------------------------------------


@dataclass
class Extension:
    name: str
    path: Path
    module: ModuleType
    params: dict[str, Any] = field(default_factory=dict)  # the same dict as module.params

    def hook(self, name: str) -> Callable | None:
        found = getattr(self.module, name, None)
        return found if callable(found) else None


@dataclass
class ExtensionContext:
    """What `setup(context)` gets: this app's services and a way to clean up at close."""

    name: str
    path: Path
    params: dict[str, Any]
    services: Any  # modules.app.Services
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self):
        return self.services.settings

    def on_close(self, close: Callable[[], None]) -> None:
        self.closers.append(close)


def extension_dirs(project_root: Path, user_data_dir: Path) -> list[Path]:
    """Where to look, lowest priority first."""
    return [project_root / "extensions", user_data_dir / "extensions"]


def find_extension(name: str, dirs: list[Path]) -> Path | None:
    if not name.replace("_", "").replace("-", "").isalnum():
        return None  # a name is a folder name, never a path
    for folder in reversed(dirs):
        if (folder / name / "script.py").is_file():
            return folder / name
    return None


def available_extensions(dirs: list[Path]) -> list[str]:
    names = {p.parent.name for folder in dirs if folder.is_dir() for p in folder.glob("*/script.py")}
    return sorted(names)


def _package(name: str, folder: Path) -> str:
    """Make `hearth_extensions.<name>` a package over `folder` (its other modules import as
    usual, and are shared by every app: keep per-app state out of them)."""
    if PACKAGE_PREFIX not in sys.modules:
        root = ModuleType(PACKAGE_PREFIX)
        root.__path__ = []
        sys.modules[PACKAGE_PREFIX] = root
    package_name = f"{PACKAGE_PREFIX}.{name}"
    known = sys.modules.get(package_name)
    if known is None or list(getattr(known, "__path__", [])) != [str(folder)]:
        init = folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(
                package_name, init, submodule_search_locations=[str(folder)]
            )
            package = importlib.util.module_from_spec(spec)
            sys.modules[package_name] = package
            spec.loader.exec_module(package)
        else:  # a folder with only script.py (and maybe other modules) is a package too
            package = ModuleType(package_name)
            package.__path__ = [str(folder)]
            sys.modules[package_name] = package
        for key in [k for k in sys.modules if k.startswith(package_name + ".")]:
            del sys.modules[key]  # another folder of the same name was loaded before
    return package_name


def _import_script(name: str, folder: Path) -> ModuleType:
    """A fresh `hearth_extensions.<name>.script` module: one per app."""
    module_name = f"{_package(name, folder)}.script"
    spec = importlib.util.spec_from_file_location(module_name, folder / "script.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # what dataclasses and pickling look up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _call_setup(setup: Callable, context: ExtensionContext) -> None:
    if _positional_capacity(setup) >= 1:
        setup(context)
    else:
        setup()


def load_extensions(
    names: Sequence[str], dirs: list[Path], overrides: dict[str, dict[str, Any]], services: Any = None
) -> list[tuple[Extension, ExtensionContext]]:
    loaded: list[tuple[Extension, ExtensionContext]] = []
    for name in names:
        folder = find_extension(name, dirs)
        if folder is None:
            log.error("extension %s: not found in %s", name, ", ".join(map(str, dirs)))
            continue
        try:
            module = _import_script(name, folder)
            params = getattr(module, "params", None)
            if params is None:
                params = module.params = {}
            if not isinstance(params, dict):
                raise TypeError("`params` must be a dict")
            unknown = set(overrides.get(name, {})) - set(params)
            if unknown:
                raise ValueError(f"unknown parameter(s) in settings: {', '.join(sorted(unknown))}")
            params.update(overrides.get(name, {}))
            extension = Extension(name, folder, module, params)
            context = ExtensionContext(name, folder, params, services)
            setup = extension.hook("setup")
            if setup is not None:
                _call_setup(setup, context)
        except (Exception, SystemExit):  # an extension's sys.exit() does not end Hearth
            log.exception("extension %s failed to load and is skipped", name)
            continue
        loaded.append((extension, context))
        log.info("extension %s loaded", name)
    return loaded


# --- Calling hooks -------------------------------------------------------------------------------


def _positional_capacity(function: Callable) -> int:
    """How many positional arguments `function` takes (a large number for *args)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 99
    count = 0
    for p in parameters:
        if p.kind == p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _keyword_filter(function: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments `function` accepts (all of them with **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in parameters}


class HookFailed(Exception):
    """A hook raised (not a HearthError) or returned the wrong type: skip its result."""


class Extensions:
    """The app's loaded extensions, in the order they were enabled (`app.extensions["hearth"]
    .extensions`). Iterating gives the `Extension`s."""

    def __init__(self, loaded: Sequence[tuple[Extension, ExtensionContext]] = ()) -> None:
        self.loaded = [extension for extension, _ in loaded]
        self._contexts = [context for _, context in loaded]
        self._reported: set[tuple[str, str]] = set()
        self._arity: dict[tuple[str, str], int] = {}
        self._asked: dict[str, Any] = {}  # what the hooks asked once at start-up answered

    def __iter__(self) -> Iterator[Extension]:
        return iter(self.loaded)

    def __len__(self) -> int:
        return len(self.loaded)

    def get(self, name: str) -> Extension | None:
        return next((e for e in self.loaded if e.name == name), None)

    def names(self) -> list[str]:
        return [e.name for e in self.loaded]

    # --- The one place hooks are called ---------------------------------------------------------

    def implementing(self, hook: str) -> list[tuple[Extension, Callable]]:
        return [(e, f) for e in self.loaded if (f := e.hook(hook)) is not None]

    def call(self, extension: Extension, hook: str, function: Callable, *args: Any, **kwargs: Any) -> Any:
        """Call one extension's hook with as many of `args` as it takes (older
        text-generation-webui hooks take fewer); raises HookFailed after logging."""
        key = (extension.name, hook)
        if key not in self._arity:
            self._arity[key] = _positional_capacity(function)
        try:
            result = function(*args[: self._arity[key]], **_keyword_filter(function, kwargs))
        except HearthError:
            raise
        except (Exception, SystemExit) as exc:
            self._report(key, f"raised {type(exc).__name__}: {exc}", exc)
            raise HookFailed from exc
        expected = _SPECS[hook].returns
        if expected is not None and not isinstance(result, expected):
            self._report(
                key,
                f"returned {type(result).__name__}, not {' or '.join(t.__name__ for t in expected)}",
                None,
            )
            raise HookFailed
        return result

    def _report(self, key: tuple[str, str], what: str, exc: Exception | None) -> None:
        name, hook = key
        if key in self._reported:
            log.debug("extension %s: %s %s (again; skipped)", name, hook, what)
            return
        self._reported.add(key)
        log.error(
            "extension %s: its %s hook %s; the hook is skipped (further failures of "
            "this hook are logged at debug level)",
            name,
            hook,
            what,
            exc_info=exc is not None and (type(exc), exc, exc.__traceback__),
        )

    def chain(self, hook: str, value: Any, *rest: Any, **kwargs: Any) -> Any:
        """Pass `value` through every extension's hook in order (modifiers)."""
        for extension, function in self.implementing(hook):
            try:
                value = self.call(extension, hook, function, value, *rest, **kwargs)
            except HookFailed:
                continue
        return value

    def collect(self, hook: str) -> list[tuple[Extension, Any]]:
        """Every extension's answer to a hook without arguments (failures left out)."""
        out = []
        for extension, function in self.implementing(hook):
            try:
                out.append((extension, self.call(extension, hook, function)))
            except HookFailed:
                continue
        return out

    def chat_hooks(self) -> ChatHooks:
        return ExtensionHooks(self)

    # --- What the UI and the app take from extensions ----------------------------------------

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._asked:
            self._asked[key] = make()
        return self._asked[key]

    def css(self) -> str:
        return self._once(
            "css",
            lambda: "".join(f"/* extension {e.name} */\n{text}\n" for e, text in self.collect("custom_css")),
        )

    def js(self) -> str:
        return self._once(
            "js",
            lambda: "".join(f"// extension {e.name}\n;{text}\n" for e, text in self.collect("custom_js")),
        )

    def panels(self) -> dict[str, list[dict]]:
        """The settings page's panels: {extension: [control, ...]}, controls checked."""
        return self._once("panels", self._panels)

    def _panels(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for extension, controls in self.collect("ui"):
            try:
                out[extension.name] = [c.model_dump() for c in _controls(controls, extension.params)]
            except (ValidationError, ValueError) as exc:
                self._report((extension.name, "ui"), f"described an invalid panel: {exc}", None)
        return out

    def blueprints(self, hook: str) -> list:
        from flask import Blueprint

        out = []
        for extension, made in self.collect(hook):
            if isinstance(made, Blueprint):
                out.append(made)
            else:
                self._report(
                    (extension.name, hook), f"returned {type(made).__name__}, not a flask.Blueprint", None
                )
        return out

    def close(self) -> None:
        for context in reversed(self._contexts):
            for close in reversed(context.closers):
                try:
                    close()
                except (Exception, SystemExit):
                    log.exception("extension %s: failed while closing", context.name)


# --- The settings page's panels ------------------------------------------------------------------


class UiControl(BaseModel):
    """One control of an extension's panel, bound to one of its params."""

    model_config = ConfigDict(extra="forbid")
    param: str
    type: Literal["checkbox", "text", "textarea", "number", "select"]
    label: str = Field("", max_length=200)
    help: str = Field("", max_length=1000)
    choices: list[str] = Field(default_factory=list)  # select
    min: float | None = None  # number
    max: float | None = None
    step: float | None = None


_TYPES = {"checkbox": (bool,), "text": (str,), "textarea": (str,), "select": (str,), "number": (int, float)}


def _controls(controls: list, params: dict[str, Any]) -> list[UiControl]:
    out = []
    for raw in controls:
        control = UiControl.model_validate(raw)
        if control.param not in params:
            raise ValueError(f"the control for {control.param!r} names no param")
        value = params[control.param]
        if not isinstance(value, _TYPES[control.type]) or (
            control.type == "number" and isinstance(value, bool)
        ):
            raise ValueError(f"a {control.type} cannot show {control.param}={value!r}")
        if not control.label:
            control.label = control.param.replace("_", " ").capitalize()
        out.append(control)
    return out


def set_param(extension: Extension, panels: dict[str, list[dict]], param: str, value: Any) -> Any:
    """Change a param from the settings page: only those its panel shows, of the same type.
    Raises ValueError with a message for the user."""
    control = next((c for c in panels.get(extension.name, ()) if c["param"] == param), None)
    if control is None:
        raise ValueError(f"{extension.name} has no setting {param!r} on its panel.")
    current = extension.params[param]
    if control["type"] == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{param} must be a number.")
        if isinstance(current, int) and not float(value).is_integer():
            raise ValueError(f"{param} must be a whole number.")
        value = int(value) if isinstance(current, int) else float(value)
        if (control["min"] is not None and value < control["min"]) or (
            control["max"] is not None and value > control["max"]
        ):
            raise ValueError(f"{param} must be between {control['min']} and {control['max']}.")
    elif not isinstance(value, type(current)):
        raise ValueError(f"{param} must be a {type(current).__name__}.")
    if control["type"] == "select" and value not in control["choices"]:
        raise ValueError(f"{param} must be one of {', '.join(control['choices'])}.")
    if isinstance(value, str) and len(value) > 100_000:
        raise ValueError(f"{param} is too long.")
    extension.params[param] = value
    return value


# --- The chat engine's hooks, from the extensions ------------------------------------------------


class ExtensionHooks(ChatHooks):
    """`ChatHooks` for the chat service: every enabled extension's hooks, in order, guarded.

    Adapts the engine's arguments to text-generation-webui's signatures: `is_chat` is True
    (everything through the chat service is a chat); `history` is a list of `ChatMessage`
    (not text-generation-webui's {"internal", "visible"} pairs).
    """

    def __init__(self, extensions: Extensions) -> None:
        self.extensions = extensions

    def state_modifier(self, state: dict[str, Any]) -> dict[str, Any]:
        return self.extensions.chain("state_modifier", state)

    def chat_input_modifier(self, text: str, visible_text: str, state: dict[str, Any]) -> tuple[str, str]:
        ext = self.extensions
        for extension, function in ext.implementing("chat_input_modifier"):
            try:
                result = ext.call(extension, "chat_input_modifier", function, text, visible_text, state)
            except HookFailed:
                continue
            if len(result) != 2 or not all(isinstance(part, str) for part in result):
                ext._report(
                    (extension.name, "chat_input_modifier"), "returned something other than two strings", None
                )
                continue
            text, visible_text = result
        return text, visible_text

    def input_modifier(self, text: str, state: dict[str, Any]) -> str:
        return self.extensions.chain("input_modifier", text, state, True)

    def history_modifier(self, messages: list[ChatMessage], state: dict[str, Any]) -> list[ChatMessage]:
        ext = self.extensions
        for extension, function in ext.implementing("history_modifier"):
            try:
                result = ext.call(extension, "history_modifier", function, list(messages), state)
                result = [_as_message(m) for m in result]
            except HookFailed:
                continue
            except (TypeError, ValueError, AttributeError) as exc:
                ext._report((extension.name, "history_modifier"), f"returned a bad message: {exc}", None)
                continue
            messages = result
        return messages

    def bot_prefix_modifier(self, prefix: str, state: dict[str, Any]) -> str:
        return self.extensions.chain("bot_prefix_modifier", prefix, state)

    def custom_generate_chat_prompt(
        self, messages: Sequence[ChatMessage], state: dict[str, Any]
    ) -> str | None:
        ext = self.extensions
        history = list(messages)
        last_user = next((m.content for m in reversed(history) if m.role == "user"), "")
        kwargs = {
            "history": history,
            "_continue": bool(state.get("continue")),
            "impersonate": bool(state.get("impersonate")),
        }
        for extension, function in ext.implementing("custom_generate_chat_prompt"):
            try:
                prompt = ext.call(
                    extension, "custom_generate_chat_prompt", function, last_user, state, **kwargs
                )
            except HookFailed:
                continue
            if prompt is not None:
                return prompt
        return None

    def output_modifier(self, text: str, state: dict[str, Any]) -> str:
        return self.extensions.chain("output_modifier", text, state, True)


def _as_message(value: Any) -> ChatMessage:
    """history_modifier may return ChatMessages or OpenAI-shaped dicts."""
    if isinstance(value, ChatMessage):
        if not isinstance(value.content, str):
            raise TypeError("content must be a string")
        return value
    if isinstance(value, dict):
        return ChatMessage.from_dict(value)
    raise TypeError(f"{type(value).__name__} is not a ChatMessage")
