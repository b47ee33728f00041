"""Introspection: the table of settings that --help, the loader and the docs share."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_origin

from .model import Settings


def field_meta(name: str) -> dict[str, Any]:
    info = Settings.model_fields[name]
    extra = dict(info.json_schema_extra or {})
    return {
        "name": name,
        "help": info.description or "",
        "default": info.default,
        "annotation": info.annotation,
        "env": extra.get("env"),
        "cli": extra.get("cli", True),
        "yaml": extra.get("yaml", True),
        "metavar": extra.get("metavar"),
        "flag": "--" + name.replace("_", "-") if extra.get("cli", True) else None,
    }


def all_fields() -> list[dict[str, Any]]:
    return [field_meta(name) for name in Settings.model_fields]


def env_names() -> dict[str, str]:
    """Environment variable -> field name."""
    return {m["env"]: m["name"] for m in all_fields() if m["env"]}


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list


def reference_table() -> str:
    """The Markdown table of every setting that docs/configuration.md must contain."""
    rows = [
        "| setting (settings.yaml key) | flag | environment | default | description |",
        "|---|---|---|---|---|",
    ]
    for meta in all_fields():
        if not meta["cli"] and not meta["yaml"]:
            continue  # filled from other keys (extension parameters), described in the text
        default = meta["default"]
        if isinstance(default, Path):
            default = "USER_DATA_DIR" if meta["name"] != "user_data_dir" else "user_data"
        shown = "—" if default in (None, "", [], {}) else f"`{default}`"
        key = f"`{meta['name']}`" if meta["yaml"] else f"`{meta['name']}` (not in the file)"
        flag = f"`{meta['flag']}`" if meta["flag"] else "—"
        env = f"`{meta['env']}`" if meta["env"] else "—"
        rows.append(f"| {key} | {flag} | {env} | {shown} | {meta['help']} |")
    return "\n".join(rows)
