"""The user's single-file Python tools: every public function of `user_data/tools/*.py`
with a docstring and type hints becomes a tool. The docstring's first paragraph is the
description; the hints make the JSON schema. A module may set `APPROVAL = "never"` (or a
dict by function name) to run its tools without asking; the default is "always".

A file that fails to import, or a function that cannot be described, is logged and skipped.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .tool import APPROVALS, Tool

log = logging.getLogger(__name__)

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True)
class LocalTool:
    tool: Tool
    function: Callable[..., object]


def load_local_tools(folder: Path) -> list[LocalTool]:
    """The tools of every `*.py` in `folder` (none when it does not exist)."""
    if not folder.is_dir():
        return []
    found: list[LocalTool] = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            found.extend(_file_tools(path))
        except Exception as e:  # a user's file: any error is theirs to fix, never fatal here
            log.error("the tool file %s is skipped: %s: %s", path, type(e).__name__, e)
    return found


def _file_tools(path: Path) -> list[LocalTool]:
    spec = importlib.util.spec_from_file_location(f"hearth_user_tools.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError("not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    approval = getattr(module, "APPROVAL", "always")
    out = []
    for name, function in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != module.__name__:
            continue
        try:
            out.append(LocalTool(describe(function, _approval_of(approval, name)), function))
        except (TypeError, ValueError) as e:
            log.warning("%s: the function %s is not a tool: %s", path, name, e)
    return out


def _approval_of(approval: object, name: str) -> str:
    value = approval.get(name, "always") if isinstance(approval, dict) else approval
    if value not in APPROVALS:
        raise ValueError(f"APPROVAL must be one of {', '.join(APPROVALS)}")
    return str(value)


def describe(function: Callable[..., object], approval: str = "always") -> Tool:
    """A function as a tool: its docstring and the JSON schema of its parameters."""
    doc = inspect.getdoc(function)
    if not doc:
        raise ValueError("it has no docstring")
    hints = typing.get_type_hints(function)
    properties: dict[str, dict] = {}
    required = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError("*args and **kwargs cannot be described")
        if parameter.name not in hints:
            raise ValueError(f"the parameter {parameter.name} has no type hint")
        properties[parameter.name] = json_type(hints[parameter.name])
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    description = doc.split("\n\n")[0].replace("\n", " ")
    return Tool(function.__name__, description, schema, source="local", approval=approval)  # type: ignore[arg-type]


def json_type(hint: object) -> dict:
    """The JSON schema of a type hint: str, int, float, bool, list[...], dict, Literal and
    optional values."""
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        kept = [arg for arg in args if arg is not type(None)]
        if len(kept) == 1:
            return json_type(kept[0])
        return {"anyOf": [json_type(arg) for arg in kept]}
    if origin is list:
        return {"type": "array", "items": json_type(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    raise TypeError(f"the type {hint!r} has no JSON schema here")
