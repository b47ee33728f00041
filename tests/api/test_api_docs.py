"""/openapi.json and /docs describe every endpoint and field; docs/api.md documents every
endpoint and every field beyond OpenAI's, and its curl examples run."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests
from openai_schemas import request_fields
from pydantic import BaseModel
from tiny_model import write_tiny_model

from extensions.openai.api import CORE_ENDPOINTS, ENDPOINTS
from extensions.openai.openapi import openapi_path
from extensions.openai.protocol import (
    ModelLoadArgs,
    ModelLoadSettings,
)

PROJECT_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
API_MD = PROJECT_ROOT / "docs" / "api.md"
ALL_ENDPOINTS = (*ENDPOINTS, *CORE_ENDPOINTS)


def request_models() -> list[type[BaseModel]]:
    """Every request body, and the nested ones whose fields are Hearth's own."""
    models = {e.request for e in ALL_ENDPOINTS if e.request}
    return [*models, ModelLoadArgs, ModelLoadSettings]


def field_names(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


@pytest.fixture(scope="module")
def openapi(api) -> dict:
    return requests.get(api.api_base + "/openapi.json", timeout=10).json()


def test_openapi_lists_every_route_the_app_serves(app, openapi):
    served = {
        (method, openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("openai.") or rule.rule == "/health"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {(method.upper(), path) for path, ops in openapi["paths"].items() for method in ops}
    assert served == described
    assert len(described) == len(ALL_ENDPOINTS)


def test_openapi_describes_every_request_field(openapi):
    schemas = openapi["components"]["schemas"]
    for model in request_models():
        properties = schemas[model.__name__]["properties"]
        assert field_names(model) <= set(properties), model.__name__
    for path, ops in openapi["paths"].items():
        for op in ops.values():
            assert op["summary"] and op["responses"]["200"], path
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', __import__("json").dumps(openapi))
    assert refs and all(ref in schemas for ref in refs)


def test_docs_page_renders_openapi_offline(api):
    response = requests.get(api.api_base + "/docs", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    page = response.text
    assert "openapi.json" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), (
        "the page must not load anything remote"
    )
    assert "<script src" not in page and "<link" not in page


def test_api_md_lists_every_endpoint():
    doc = API_MD.read_text()

    def normalise(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)

    documented = {normalise(m) for m in re.findall(r"`((?:GET|POST|DELETE) /[^`]*)`", doc)}
    for endpoint in ALL_ENDPOINTS:
        assert normalise(f"{endpoint.method} {openapi_path(endpoint.path)}") in documented, endpoint.path


def test_api_md_documents_every_field_beyond_openai():
    doc = API_MD.read_text()
    openai_fields = (
        request_fields("CreateChatCompletionRequest")
        | request_fields("CreateCompletionRequest")
        | request_fields("CreateResponse")
    )
    ours = set().union(*(field_names(m) for m in request_models()))
    beyond = ours - openai_fields
    assert {"mode", "character", "top_k", "min_p", "use_samplers", "ctx_size"} <= beyond
    missing = sorted(f for f in beyond if f"`{f}`" not in doc)
    assert not missing, f"docs/api.md does not document: {missing}"
    # one protocol for every client: no User-Agent gets a different stream
    assert "[DONE]` for every client" in doc and "python-requests/" not in doc


def curl_blocks() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", API_MD.read_text(), flags=re.S)
    return [b for b in blocks if "curl " in b]


@pytest.fixture(scope="module")
def docs_server(start_api, tmp_path_factory):
    """The docs name the built-in model; a tiny stand-in of that name keeps the test fast. Its
    attention heads have 32 values, as the real model's have 64, so that a quantized KV
    cache (the documented cache_type q8_0) fits them."""
    folder = tmp_path_factory.mktemp("docs-models")
    write_tiny_model(folder / "SmolLM2-135M-Instruct.gguf", heads=2)
    return start_api(models=folder, model="SmolLM2-135M-Instruct")


@pytest.mark.parametrize("block", curl_blocks(), ids=lambda b: b.split("\n")[0][:60])
def test_api_md_curl_examples_run(docs_server, block):
    script = block.replace("http://127.0.0.1:5000", docs_server.api_base).replace(
        "curl ", "curl -sS --fail-with-body "
    )
    result = subprocess.run(["bash", "-ec", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{script}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
    # an error body (a Responses API object says "error": null when all went well)
    assert result.stdout.strip() and not re.search(r'"error":\s*\{', result.stdout)


def test_there_are_curl_examples_for_the_main_endpoints():
    text = "\n".join(curl_blocks())
    for path in (
        "/v1/models",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/edits",
        "/v1/internal/logits",
        "/v1/internal/model/load",
        "/v1/internal/stop-generation",
        "/v1/responses",
        "/v1/messages",
        "/health",
    ):
        assert path in text, path


@pytest.mark.browser
def test_docs_page_shows_the_endpoints_in_a_browser(api, browser):
    """Rendered by headless Chromium with the network limited to the server itself."""
    outside = []
    page = browser.new_page()
    page.on("request", lambda r: None if r.url.startswith(api.api_base) else outside.append(r.url))
    page.goto(api.api_base + "/docs")
    page.wait_for_selector("section#post-v1-chat-completions")
    text = page.inner_text("main")
    page.close()
    assert not outside, outside
    for endpoint in ALL_ENDPOINTS:
        assert openapi_path(endpoint.path) in text
    assert "instruction_template_str" in text and "use_samplers" in text
