"""The block the server logs once it is ready. Key values are never printed, except the one
Hearth made for --public-api (the user did not choose it, and needs it)."""

from __future__ import annotations

from ..settings import Settings
from .listeners import API, UI, Listener
from .public_key import KEY_FILE


def urls(listeners: list[Listener], side: str, scheme: str) -> str:
    suffix = "/v1" if side == API else ""
    shown = []
    for listener in listeners:
        if listener.side == side:
            note = " (all interfaces)" if listener.all_interfaces else ""
            shown.append(listener.url(scheme) + suffix + note)
    return ", ".join(shown)


def key_lines(settings: Settings, made_key: str | None = None) -> list[tuple[str, str]]:
    if made_key:
        kept = settings.user_data_dir / "cache" / KEY_FILE
        api = f"required: {made_key} (made for --public-api, kept in {kept})"
    elif settings.api_key:
        api = "required (Authorization: Bearer KEY)"
    else:
        api = "not required: anyone who can reach the API can use it"
    if settings.admin_key and settings.admin_key != settings.api_key:
        admin = "required for model loading (a separate admin key)"
    elif settings.api_key:
        admin = "the API key"
    else:
        admin = "not set: admin calls (model loading, LocalDocs) only from this machine"
    if settings.metrics_public:
        metrics = "/metrics open to anyone who can reach the API (--metrics-public)"
    elif settings.api_key:
        metrics = "/metrics needs the API key"
    else:
        metrics = "/metrics open, like the API (no API key)"
    return [("API key", api), ("Admin key", admin), ("Metrics", metrics)]


def banner(
    settings: Settings,
    listeners: list[Listener],
    *,
    scheme: str,
    model: str,
    extensions: list[str],
    public_url: str | None = None,
    made_key: str | None = None,
) -> str:
    rows: list[tuple[str, str]] = []
    if any(listener.side == UI for listener in listeners):
        rows.append(("UI", urls(listeners, UI, scheme)))
    if any(listener.side == API for listener in listeners):
        rows.append(("API", urls(listeners, API, scheme)))
        if settings.tunnel_enabled:
            rows.append(
                (
                    "Public API",
                    f"{public_url}/v1" if public_url else "starting the Cloudflare tunnel (its URL follows)",
                )
            )
        rows += key_lines(settings, made_key)
    rows.append(("Model", model))
    rows.append(("Extensions", ", ".join(extensions) or "none"))
    width = max(len(label) for label, _ in rows)
    return "Hearth is ready\n" + "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)
