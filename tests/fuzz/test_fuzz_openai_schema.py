"""schemathesis against OpenAI's own description of the operations Hearth serves (vendored from
openai-openapi.yaml: tests/fuzz/openai_operations.py): requests that fit OpenAI's schemas
(positive) and requests that break them (negative), to a real server of the tiny model.

Checked for every answer: no 5xx (but the 503 `no_image_model` every image request gets here:
no image model is configured), errors in OpenAI's shape, and for a 200 with JSON, OpenAI's
response schema. Hearth refuses some requests OpenAI's schema allows (a context of 1024 tokens,
`n` up to 128 with the same limits on prompts) and accepts some it forbids (unknown fields are
ignored), so acceptance and rejection themselves are not checked.

Bounded in time: HEARTH_SCHEMA_EXAMPLES examples per operation and mode (default 15), and
generation limits kept small (max_tokens, n) so that one answer takes milliseconds.
"""

from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from fuzz_support import assert_error_shape
from hypothesis import HealthCheck, settings
from openai_operations import OPERATIONS, VENDORED, extract, vendored
from schemathesis.config import SchemathesisConfig

EXAMPLES = int(os.environ.get("HEARTH_SCHEMA_EXAMPLES", "15"))
NOT_CONFIGURED = {(503, "no_image_model")}  # a state of this test server, whatever the request


@pytest.fixture(scope="module")
def openai_server(start_fuzz_server):
    return start_fuzz_server("--request-timeout", "20")


def openai_schema():
    """The vendored operations; each request goes to the test's server (`base_url`)."""
    config = SchemathesisConfig.from_dict(
        {
            "generation": {"mode": "all", "max-examples": EXAMPLES},
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
        }
    )
    openai = schemathesis.openapi.from_dict(vendored(), config=config)
    openai.hook(map_body)
    return openai


def map_body(context, body):
    """Keep generations short: the tiny model answers 2 tokens in milliseconds, 1024 do not."""
    if isinstance(body, dict):
        for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            if isinstance(body.get(name), int) and body[name] > 4:
                body[name] = 4
        if isinstance(body.get("n"), int) and body["n"] > 2:
            body["n"] = 2
        if isinstance(body.get("best_of"), int) and body["best_of"] > 2:
            body["best_of"] = 2
    return body


schema = openai_schema()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_openai_operations(case, openai_server):
    response = case.call(base_url=openai_server.api_url, timeout=60)
    status, path = response.status_code, "/v1" + case.operation.path
    kind = content_type(response)
    if case.method.upper() == "OPTIONS":  # a preflight: no body, nothing to check
        assert status == 200, status
    elif status >= 400:
        if kind == "application/json":
            error = assert_error_shape(path, requests_like(response))
            assert status < 500 or (status, error["code"]) in NOT_CONFIGURED, (status, error)
        else:  # gevent's own refusal of what is not an HTTP request it can read
            assert status in (400, 414) and not response.content, (status, response.text[:300])
    elif kind == "application/json":
        if base64_embeddings(case):  # OpenAI answers these with strings too; its schema says
            return  # lists of floats only (openai-python decodes the strings)
        case.validate_response(response, checks=[schemathesis.checks.response_schema_conformance])
    else:
        assert kind == "text/event-stream", (status, response.headers)
        assert "server_error" not in response.text, response.text[-2000:]


def base64_embeddings(case) -> bool:
    return case.operation.path == "/embeddings" and (case.body or {}).get("encoding_format") == "base64"


def content_type(response) -> str:
    value = response.headers.get("content-type") or [""]
    return value[0].split(";")[0].strip()


def requests_like(response) -> requests.Response:
    """schemathesis' response as the shared checks read responses."""
    copy = requests.Response()
    copy.status_code, copy._content = response.status_code, response.content
    copy.headers.update({name: values[0] for name, values in response.headers.items()})
    return copy


def test_the_vendored_operations_are_openais():
    """The copy matches the official file when it is there (beside the checkout), and always
    holds every operation the test runs."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
    from openai_schemas import load_official, official_spec_path

    document = vendored()
    assert {(p, m) for p, ops in document["paths"].items() for m in ops} == set(OPERATIONS)
    source = official_spec_path()
    if source is not None:
        assert extract(load_official(source)) == document, f"regenerate {VENDORED.name}"
