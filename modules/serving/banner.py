"""The block the server logs once it is ready. Key values are never printed."""

from __future__ import annotations

from ..settings import Settings
from .listeners import API, UI, Listener


def urls(listeners: list[Listener], side: str, scheme: str) -> str:
    suffix = "/v1" if side == API else ""
    shown = []
    for listener in listeners:
        if listener.side == side:
            note = " (all interfaces)" if listener.all_interfaces else ""
            shown.append(listener.url(scheme) + suffix + note)
    return ", ".join(shown)


def key_lines(settings: Settings) -> list[tuple[str, str]]:
    if settings.api_key:
        api = "required (Authorization: Bearer KEY)"
    else:
        api = "not required: anyone who can reach the API can use it"
    if settings.admin_key and settings.admin_key != settings.api_key:
        admin = "required for model loading (a separate admin key)"
    elif settings.api_key:
        admin = "the API key"
    else:
        admin = "not required"
    return [("API key", api), ("Admin key", admin)]


def banner(
    settings: Settings,
    listeners: list[Listener],
    *,
    scheme: str,
    model: str,
    extensions: list[str],
    public_url: str | None = None,
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
        rows += key_lines(settings)
    rows.append(("Model", model))
    rows.append(("Extensions", ", ".join(extensions) or "none"))
    width = max(len(label) for label, _ in rows)
    return "Hearth is ready\n" + "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)
