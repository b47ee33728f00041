"""Hostile input through every JSON field of every endpoint of a real server, driven by the
endpoint table (extensions/openai/api.py ENDPOINTS and their request models): an endpoint added
to the table is fuzzed without a change here.

- Every field path of every request model gets a lone surrogate: a 400 naming that path; and
  text that is hostile but valid (controls, NUL, RTL marks): never a 5xx. Every text field
  gets a megabyte: answered within the hang limit.
- Hypothesis sends generated hostile values (lone surrogates, control characters, RTL marks,
  NUL, 1 MB strings, deep and wide structures, wrong types) into one field, an unknown field,
  a key, the whole body, or a path parameter: never a 5xx (but the "not configured" 501/503 an
  endpoint gives to a valid request too), never a hang, errors in the path's protocol's shape,
  streams without a server error event.
- Afterwards the server answers a normal request, and its log has no traceback.

HEARTH_FUZZ_EXAMPLES sets the number of generated requests (default 400).
"""

from __future__ import annotations

import json
import os
import reprlib
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
import requests
from fuzz_support import assert_error_shape, error_param
from hostile_values import big_string, encode, texts, values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from request_bodies import TEXT_FIELDS, base_body, dotted, field_paths, put

from extensions.openai.api import ENDPOINTS, Endpoint
from extensions.openai.openapi import openapi_path

EXAMPLES = int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "400"))
TIMEOUT = (5, 60)  # connect, read: a request still unanswered after a minute has hung
STREAM_LIMIT = 1 << 20  # bytes of a streamed answer read before hanging up (audio streams long)
WITH_BODY = [e for e in ENDPOINTS if e.method in ("POST", "PUT", "PATCH")]
WITH_PATH_PARAMS = [e for e in ENDPOINTS if "<" in e.path]
UNAVAILABLE = (501, 503)  # "not installed" / "not configured": a state of the server, not of the input


@dataclass
class Fuzz:
    server: object
    unavailable: dict[str, set[tuple[int, str | None]]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.server.api_base + path


@pytest.fixture(scope="module")
def fuzz(start_fuzz_server) -> Fuzz:
    server = start_fuzz_server("--extensions", "localdocs")
    fuzz = Fuzz(server)
    for endpoint in WITH_BODY:  # what each endpoint answers a plain request
        body = encode(base_body(endpoint.request)) if endpoint.request else b"{}"
        response = send(fuzz, endpoint, endpoint.path, body)
        answered = answer(endpoint.path, response)
        status = response.status_code
        if status in UNAVAILABLE:
            fuzz.unavailable[endpoint.path] = {(status, answered.get("code"))}
        assert status < 500 or status in UNAVAILABLE, (endpoint.path, status, answered)
    return fuzz


def send(fuzz: Fuzz, endpoint: Endpoint, path: str, body: bytes | None) -> requests.Response:
    response = requests.request(
        endpoint.method,
        fuzz.url(path),
        data=body,
        headers={"Content-Type": "application/json"} if body is not None else {},
        timeout=TIMEOUT,
        stream=True,
    )
    streamed = not response.headers.get("Content-Type", "").startswith("application/json")
    response.raw_content = b""
    for chunk in response.iter_content(1 << 16):
        response.raw_content += chunk
        if streamed and len(response.raw_content) > STREAM_LIMIT:
            break  # enough of an event or audio stream: hang up
    response.close()
    return response


def answer(path: str, response: requests.Response) -> dict:
    """The error object of an error response (checked against the protocol's shape); for a
    stream, that no event reports a server error."""
    if response.status_code == 414:  # gevent's own answer to a request line over 8 KiB: no
        assert not response.raw_content  # request was read, so no protocol shape applies
        return {}
    if response.status_code >= 400:
        response._content = response.raw_content
        return assert_error_shape(path, response)
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        for line in response.raw_content.decode("utf-8", "replace").splitlines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                error = event.get("error") if isinstance(event, dict) else None
                assert not error or error.get("type") != "server_error", (path, event)
    return {}


def check(fuzz: Fuzz, endpoint: Endpoint, path: str, response: requests.Response, what: str) -> dict:
    error = answer(endpoint.path, response)
    status = response.status_code
    if status >= 500:
        allowed = fuzz.unavailable.get(endpoint.path, set())
        assert (status, error.get("code")) in allowed, (what, status, error)
    assert fuzz.server.process.poll() is None, f"the server died on {what}"
    return error


# --- Every field: the text rule names it ---------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint", [e for e in WITH_BODY if e.request], ids=lambda e: f"{e.method} {e.path}"
)
def test_a_lone_surrogate_in_any_field_is_a_400_naming_it(fuzz, endpoint):
    base = base_body(endpoint.request)
    paths = field_paths(endpoint.request)
    assert paths, endpoint.path
    for path in paths:
        body = put(base, path, "a\udc80b", endpoint.request)
        response = send(fuzz, endpoint, endpoint.path, encode(body))
        error = check(fuzz, endpoint, endpoint.path, response, dotted(path))
        assert response.status_code == 400, (dotted(path), response.status_code, error)
        where = error_param(endpoint.path, error)
        assert where == dotted(path) or dotted(path) in (where or ""), (dotted(path), error)


HOSTILE_TEXT = "a\x00\x01\x1b[31m\x7f\u202e\u200f\ufeff\U0010ffff\u0301{{ x }}%s\r\nb"
BIG_UNITS = ["\x00", "\u202e", "x"]


@pytest.mark.parametrize(
    "endpoint", [e for e in WITH_BODY if e.request], ids=lambda e: f"{e.method} {e.path}"
)
def test_hostile_but_valid_text_in_any_field_is_never_a_server_error(fuzz, endpoint):
    """Controls, NUL, bidirectional marks, noncharacters and template syntax are text: each
    field either takes them or refuses them, never fails on them."""
    base = base_body(endpoint.request)
    for path in field_paths(endpoint.request):
        body = put(base, path, HOSTILE_TEXT, endpoint.request)
        check(fuzz, endpoint, endpoint.path, send(fuzz, endpoint, endpoint.path, encode(body)), dotted(path))


@pytest.mark.parametrize(
    "endpoint", [e for e in WITH_BODY if e.request], ids=lambda e: f"{e.method} {e.path}"
)
def test_a_megabyte_in_the_text_fields_is_answered_in_time(fuzz, endpoint):
    """1 MB of what tokenizers spell byte by byte, and of plain letters, in every text field
    (`content`, `prompt`, `input`, ...): answered within the hang limit, never a 5xx."""
    base = base_body(endpoint.request)
    for path in field_paths(endpoint.request):
        if path[-1] not in TEXT_FIELDS and not (len(path) > 1 and path[-2] in TEXT_FIELDS):
            continue
        for unit in BIG_UNITS:
            body = put(base, path, big_string(unit), endpoint.request)
            try:
                response = send(fuzz, endpoint, endpoint.path, encode(body))
            except requests.Timeout:
                pytest.fail(f"no answer within {TIMEOUT[1]} s: {dotted(path)} = 1 MB of {unit!r}")
            check(fuzz, endpoint, endpoint.path, response, f"{dotted(path)} = 1 MB of {unit!r}")


# --- Generated hostile input ---------------------------------------------------------------------------


class Case:
    """One request; shown by its description (the body can be megabytes)."""

    def __init__(self, endpoint: Endpoint, path: str, body: bytes | None, what: str) -> None:
        self.endpoint, self.path, self.body, self.what = endpoint, path, body, what

    def __repr__(self) -> str:
        return f"Case({self.what!r})"


@st.composite
def hostile_requests(draw) -> Case:
    """One hostile value in one place of one endpoint's request."""
    endpoint = draw(st.sampled_from([*WITH_BODY, *WITH_PATH_PARAMS]))
    if endpoint in WITH_PATH_PARAMS and (endpoint.method == "GET" or draw(st.booleans())):
        text = draw(texts())[: draw(st.sampled_from([600, 600, 600, 3000]))]  # 3000: over 8 KiB
        raw = quote(text.encode("utf-8", "surrogatepass"), safe="")
        path = openapi_path(endpoint.path).split("{")[0] + raw
        body = encode(base_body(endpoint.request)) if endpoint.request else None
        return Case(endpoint, path, body, f"{endpoint.method} {path[:120]}")
    base = base_body(endpoint.request) if endpoint.request else {}
    places = ["extra field", "key", "whole body"]
    if endpoint.request:
        places += [dotted(p) for p in field_paths(endpoint.request)] * 3
    place = draw(st.sampled_from(places))
    value = draw(values())
    if place == "extra field":
        body = {**base, "hearth_fuzz_extra": value}
    elif place == "key":
        body = {**base, draw(texts())[:200]: value}
    elif place == "whole body":
        body = value
    else:
        path = next(p for p in field_paths(endpoint.request) if dotted(p) == place)
        body = put(base, path, value, endpoint.request)
    return Case(endpoint, endpoint.path, encode(body), f"{endpoint.path} {place}: {reprlib.repr(value)}")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
@given(case=hostile_requests())
def test_hostile_input_never_breaks_the_server(fuzz, case):
    try:
        response = send(fuzz, case.endpoint, case.path, case.body)
    except requests.Timeout:
        pytest.fail(f"no answer within {TIMEOUT[1]} s (a hang): {case.what}")
    check(fuzz, case.endpoint, case.path, response, case.what)


def test_the_server_still_answers_afterwards(fuzz):
    server = fuzz.server
    assert requests.get(server.api_base + "/health", timeout=10).json()["status"] == "ok"
    reply = requests.post(
        server.api_url + "/chat/completions",
        json={"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] is not None
    log = server.log()
    assert "Traceback" not in log and "unexpected error" not in log, log[-5000:]
