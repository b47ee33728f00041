"""The text rule and the depth limit, checked once where requests are parsed (modules/inbound.py):
JSON bodies (API and UI), websocket messages (tests/web/test_ui_socket.py) and form fields."""

from __future__ import annotations

import json

import pytest
from werkzeug.datastructures import FileStorage, MultiDict

from modules.errors import InvalidRequest
from modules.inbound import MAX_DEPTH, HearthRequest, check_inbound, json_object


def refused(value) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check_inbound(value)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ('{"messages": [{"role": "user", "content": "a\\udc80b"}]}', "messages.0.content"),
        ('{"input": [{"content": [{"text": "ok"}, {"text": "\\ud800"}]}]}', "input.0.content.1.text"),
        ('{"a": "\\ud800", "b": "\\udc00"}', "a"),  # the first in document order
        (
            '{"tools": [{"function": {"arguments": "{\\"x\\": \\"\\udfff\\"}"}}]}',
            "tools.0.function.arguments",
        ),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_its_place(raw, param):
    error = refused(json.loads(raw))
    assert error.param == param and error.code == "invalid_text"
    assert f"'{param}' holds text that cannot be encoded as UTF-8" in error.message


def test_keys_and_the_body_itself():
    assert refused({"logit_bias": {"\ud800": 1}}).message.startswith("A key in 'logit_bias'")
    assert refused("\ud800").param is None


@pytest.mark.parametrize(
    "text",
    [
        "\U0001f642",
        json.loads('"\\ud83d\\ude42"'),
        "\x00",
        "\u202e\u200f",
        "\x1b[31m",
        "\ufeff",
        "x" * 1_000_000,
    ],
)
def test_text_that_is_hostile_but_encodable_passes(text):
    check_inbound({"content": text, text[:10]: [text]})


def test_nesting_is_limited():
    deep: list = []
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    check_inbound(deep)  # MAX_DEPTH levels: fine
    error = refused({"x": deep})
    assert error.code == "too_deep" and error.param.startswith("x.0.0")


def test_json_object_is_the_one_parser():
    assert json_object(b'{"a": [1, 2,],}') == {"a": [1, 2]}  # GPT4All's trailing commas
    for raw, says in [
        (b"\xff", "not valid UTF-8"),
        (b"[1]", "must be a JSON object"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"a": "\\ud800"}', "cannot be encoded"),
    ]:
        with pytest.raises(InvalidRequest) as caught:
            json_object(raw)
        assert says in caught.value.message


def test_form_fields_and_file_names_follow_the_rule(monkeypatch):
    """Werkzeug's parser replaces bytes that are not UTF-8; the rule holds whatever a parser
    lets through: here one that hands over a lone surrogate."""

    def parsed(self):
        upload = FileStorage(filename="ok.wav", name="file")
        self.__dict__.update(form=MultiDict([("prompt", "a\udc80")]), files=MultiDict([("file", upload)]))

    monkeypatch.setattr("werkzeug.wrappers.request.Request._load_form_data", parsed)
    request = HearthRequest.from_values(method="POST", data=b"")
    with pytest.raises(InvalidRequest) as caught:
        request.form  # noqa: B018 - parsing is the point
    assert caught.value.param == "prompt"
    assert not request.form and not request.files  # nothing unchecked stays readable


def test_ui_json_bodies_follow_the_rule(open_app, make_settings):
    ui = open_app(make_settings()).test_client()
    ui.environ_base["HTTP_ORIGIN"] = "http://localhost"
    response = ui.put("/ui/api/settings", data=b'{"user_name": "\\ud800"}', content_type="application/json")
    assert response.status_code == 400
    assert "'user_name' holds text that cannot be encoded" in response.get_json()["error"]["message"]


def test_api_form_uploads_follow_the_rule(open_app, make_settings, monkeypatch):
    def parsed(self):
        upload = FileStorage(filename="\udcff.wav", name="file")
        self.__dict__.update(form=MultiDict(), files=MultiDict([("file", upload)]))

    monkeypatch.setattr("werkzeug.wrappers.request.Request._load_form_data", parsed)
    client = open_app(make_settings("--api")).test_client()
    response = client.post(
        "/v1/audio/transcriptions", data=b"x", content_type="multipart/form-data; boundary=x"
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_text" and "cannot be encoded" in error["message"]
