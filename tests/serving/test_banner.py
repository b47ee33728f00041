"""The start-up banner: URLs, whether keys are required (never their values), model, extensions."""

from __future__ import annotations

import re

from modules.serving.banner import banner
from modules.serving.listeners import plan
from modules.settings import load_settings


def render(
    *argv: str, model: str = "tiny (context 512 tokens)", public_url: str | None = None, scheme: str = "http"
) -> str:
    settings = load_settings(list(argv), {})
    return banner(
        settings,
        plan(settings),
        scheme=scheme,
        model=model,
        extensions=settings.enabled_extensions,
        public_url=public_url,
    )


def row(text: str, label: str) -> str:
    match = re.search(rf"^  {label} +(.*)$", text, re.MULTILINE)
    assert match, text
    return match.group(1)


def test_ui_only():
    text = render()
    assert text.startswith("Hearth is ready\n")
    assert row(text, "UI") == "http://127.0.0.1:7860"
    assert "API" not in text
    assert row(text, "Model") == "tiny (context 512 tokens)"
    assert row(text, "Extensions") == "none"


def test_api_without_keys():
    text = render("--api", "--api-enable-ipv6", scheme="https")
    assert row(text, "API") == "https://127.0.0.1:5000/v1, https://[::1]:5000/v1"
    assert row(text, "API key").startswith("not required")
    # without an admin key, nobody elsewhere may manage Hearth (modules/serving/access.py)
    assert row(text, "Admin key") == "not set: admin calls (model loading, LocalDocs) only from this machine"
    assert row(text, "Metrics") == "/metrics open, like the API (no API key)"
    assert row(text, "Extensions") == "openai"


def test_keys_are_described_never_shown():
    text = render("--api", "--api-key", "sk-secret-1")
    assert row(text, "API key").startswith("required")
    assert row(text, "Admin key") == "the API key"
    assert row(text, "Metrics") == "/metrics needs the API key"
    text = render("--api", "--api-key", "sk-secret-1", "--admin-key", "sk-admin-2")
    assert row(text, "Admin key").startswith("required for model loading")
    assert "sk-secret-1" not in text and "sk-admin-2" not in text
    text = render("--api", "--api-key", "sk-secret-1", "--metrics-public")
    assert row(text, "Metrics") == "/metrics open to anyone who can reach the API (--metrics-public)"


def test_the_key_made_for_the_public_api_is_shown():
    settings = load_settings(["--public-api", "--api-key", "hearth-made-key"], {})
    text = banner(
        settings, plan(settings), scheme="http", model="m", extensions=[], made_key="hearth-made-key"
    )
    assert row(text, "API key").startswith("required: hearth-made-key (made for --public-api, kept in ")
    assert row(text, "API key").endswith("public-api.key)")


def test_all_interfaces_and_the_public_url():
    text = render("--listen", "--public-api")
    assert row(text, "UI") == "http://127.0.0.1:7860 (all interfaces)"
    assert row(text, "Public API").startswith("starting the Cloudflare tunnel")
    text = render("--public-api", public_url="https://a-b.trycloudflare.com")
    assert row(text, "Public API") == "https://a-b.trycloudflare.com/v1"


def test_real_server_banner(serve):
    server = serve("--api", "--api-key", "sk-secret-1", "--admin-key", "sk-admin-2")
    log = server.log()
    assert f"  UI          http://127.0.0.1:{server.ui_port}\n" in log
    assert f"  API         http://127.0.0.1:{server.api_port}/v1\n" in log
    assert "  API key     required" in log
    assert "  Model       tiny (context 512 tokens)\n" in log
    assert "  Extensions  openai\n" in log
    assert "sk-secret-1" not in log and "sk-admin-2" not in log
