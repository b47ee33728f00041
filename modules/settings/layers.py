"""The one function that builds the settings, and the parsing of each of its layers.

Precedence, highest first: command-line flag > OPENEDAI_* environment variable >
settings.yaml (or --settings FILE) > default. Each layer is validated on its own so that
a bad value is reported with the layer and the key it came from, in one line.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import TypeAdapter, ValidationError

from .model import YAML_ALIASES, Settings, parse_ui_auth
from .reference import _is_bool, _is_list, all_fields, env_names, field_meta

EXTENSION_PARAM_KEY = re.compile(r"^(?P<ext>[A-Za-z0-9_]+)-(?P<param>[A-Za-z0-9_]+)$")


class SettingsError(Exception):
    """A bad setting: the message is one line naming the source and the key."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line, not usage plus an error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SettingsError(f"command line: {message}")


class _Switch(argparse.BooleanOptionalAction):
    """`--flag` / `--no-flag`, also for flags whose own name starts with "no" (`--no-mmap`,
    whose negation is `--no-no-mmap`): argparse's own action reads any `--no-` as off."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, option_string == self.option_strings[0])


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="server.py",
        description="Hearth: a local, private home for language models. Serves a browser "
        "chat UI and, with --api, an OpenAI-compatible API.",
        epilog="Every flag can also be set in settings.yaml under the same name with "
        "underscores (e.g. ctx_size: 8192); see docs/configuration.md.",
        argument_default=argparse.SUPPRESS,
    )
    for meta in all_fields():
        if not meta["cli"]:
            continue
        help_text = meta["help"].replace("%", "%%")  # argparse formats help with %
        if meta["env"]:
            help_text += f" [env: {meta['env']}]"
        annotation = meta["annotation"]
        if _is_bool(annotation):
            parser.add_argument(meta["flag"], dest=meta["name"], help=help_text, action=_Switch)
        elif _is_list(annotation):
            parser.add_argument(  # repeating the flag adds to the list
                meta["flag"],
                dest=meta["name"],
                help=help_text,
                nargs="*",
                action="extend",
                metavar=meta["metavar"],
            )
        else:
            default = meta["default"]
            if default not in (None, "", [], {}) and not isinstance(default, Path):
                help_text += f" (default: {default})"
            parser.add_argument(meta["flag"], dest=meta["name"], help=help_text, metavar=meta["metavar"])
    return parser


def _check(name: str, value: Any, source: str) -> Any:
    """Validate one value for one field; the error names the source and the key."""
    annotation = Settings.model_fields[name].annotation
    if _is_list(annotation) and isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value) if part]
    try:
        checked = TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise SettingsError(f"{source}: invalid value {value!r} for {name}: {reason}") from None
    _check_range(name, checked, source)
    return checked


_NON_NEGATIVE = {
    "ctx_size",
    "threads",
    "threads_batch",
    "queue_size",
    "request_timeout",
    "max_output_tokens",
    "prompt_cache_mb",
    "media_threads",
    "responses_store_days",
    "responses_store_mb",
    "ubatch_size",
    "rope_freq_base",
    "draft_max",
    "ctx_size_draft",
    "model_ttl",
    "main_gpu",
}
_POSITIVE = {
    "batch_size",
    "parallel",
    "embedding_batch_size",
    "models_max",
    "compress_pos_emb",
    "alpha_value",
}
_PORTS = {"listen_port", "api_port"}


def _check_range(name: str, value: Any, source: str) -> None:
    if name == "cors_origins":
        for entry in value:
            if not _is_origin_entry(entry):
                raise SettingsError(
                    f"{source}: invalid value {entry!r} for cors_origins: not an origin "
                    "(scheme://host[:port]), 'local' or '*'"
                )
    if name == "ui_auth":
        try:
            parse_ui_auth(value)
        except ValueError as exc:
            raise SettingsError(f"{source}: invalid value for ui_auth: {exc}") from None
    if name in _PORTS and not 1 <= value <= 65535:
        raise SettingsError(f"{source}: invalid value {value!r} for {name}: not a port (1-65535)")
    if name in _NON_NEGATIVE and value < 0:
        raise SettingsError(f"{source}: invalid value {value!r} for {name}: must be >= 0")
    if name in _POSITIVE and value < 1:
        raise SettingsError(f"{source}: invalid value {value!r} for {name}: must be >= 1")


def _cli_layer(argv: Sequence[str]) -> dict[str, Any]:
    parsed = vars(build_parser().parse_args(list(argv)))
    flags = {m["name"]: m["flag"] for m in all_fields()}
    return {name: _check(name, value, f"command line {flags[name]}") for name, value in parsed.items()}


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer = {}
    for env, name in env_names().items():
        raw = environ.get(env)
        if raw is None or raw == "":
            continue
        layer[name] = _check(name, raw, f"environment {env}")
    return layer


def _yaml_layer(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{source}: cannot read settings file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{source}: not UTF-8 text (byte {exc.start} cannot be read)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise SettingsError(f"{source}: malformed YAML{where}: {problem}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    yaml_fields = {m["name"] for m in all_fields() if m["yaml"]}
    layer: dict[str, Any] = {}
    extension_params: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        key = str(key)
        name = YAML_ALIASES.get(key, key)
        if name in yaml_fields:
            layer[name] = _check(name, value, f"{source}: key '{key}'")
        elif match := EXTENSION_PARAM_KEY.match(key):
            extension_params.setdefault(match["ext"], {})[match["param"]] = value
        else:
            raise SettingsError(f"{source}: unknown key '{key}'")
    return layer, extension_params


def _is_origin_entry(entry: str) -> bool:
    """`*`, `local`, or scheme://host[:port] (port `*`: any), as an Origin header names a site."""
    if entry in ("*", "local"):
        return True
    parts = urlsplit(entry.rstrip("/"))
    return bool(parts.scheme and parts.netloc) and not (parts.path or parts.query or parts.fragment)


def load_settings(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings: flag > OPENEDAI_* environment > settings.yaml > default."""
    environ = os.environ if environ is None else environ
    cli = _cli_layer(argv)
    env = _env_layer(environ)
    user_data_dir = Path(cli.get("user_data_dir", field_meta("user_data_dir")["default"]))
    settings_file = cli.get("settings")
    if settings_file is None and (user_data_dir / "settings.yaml").is_file():
        settings_file = user_data_dir / "settings.yaml"
    file_layer, extension_params = _yaml_layer(Path(settings_file)) if settings_file else ({}, {})
    merged = {**file_layer, **env, **cli, "extension_params": extension_params}
    if merged.get("listen_host"):
        merged["listen"] = True
    return Settings(**merged)
