"""What every piece of data a request brings must be, checked once where it is parsed.

**The text rule.** JSON may spell a lone UTF-16 surrogate (`"\\ud800"`, `"a\\udc80b"`): it
is valid JSON, but the string it decodes to cannot be encoded as UTF-8, so it would fail
wherever it is next written (a tokenizer, a file, a log line, a response) and end in a 500.
Every string of a request, keys included, is checked where the request is parsed: the API's
JSON bodies (`extensions/openai/http.py`), the UI's JSON bodies and websocket messages
(`modules/web`), and the form fields and file names of uploads (`HearthRequest`, for the
whole app). A string that breaks the rule is a 400 naming its place (`messages.0.content`).

**Depth.** Nesting deeper than `MAX_DEPTH` is refused at the same place: nothing Hearth
reads is that deep, and code further in (JSON schema to grammar, templates, `json.dumps`)
recurses on it.

**JSON.** `json_object` is the one parser of JSON bodies and messages: strict JSON (NaN and
Infinity refused), except that trailing commas are forgiven, then both checks above.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from flask import Request

from .errors import InvalidRequest

MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")  # after decoding, a valid pair is one character


def json_object(raw: bytes | str, what: str = "the request body") -> dict:
    """A JSON object from a body or message, checked (`check_inbound`); InvalidRequest if not."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{what.capitalize()} is not valid UTF-8 JSON.") from None
    data = parse_json(raw, what)
    if not isinstance(data, dict):
        raise InvalidRequest(f"{what.capitalize()} must be a JSON object.")
    check_inbound(data)
    return data


def parse_json(text: str, what: str = "the request body") -> object:
    """Strict JSON, except that trailing commas are forgiven: GPT4All's documented cURL
    example has one (`"top_p": 0.95,\n}`). NaN and Infinity are not JSON and are refused."""
    first_error = None
    for _ in range(MAX_FORGIVEN_COMMAS + 1):
        try:
            return _loads(text)
        except json.JSONDecodeError as exc:
            first_error = first_error or exc
            comma = _trailing_comma_before(text, exc.pos)
            if comma is None:
                break
            text = text[:comma] + text[comma + 1 :]
        except ValueError as exc:  # NaN / Infinity
            raise InvalidRequest(f"{what.capitalize()} is not valid JSON: {exc}.") from None
        except RecursionError:
            raise InvalidRequest(f"{what.capitalize()} is not valid JSON: it is nested too deeply.") from None
    raise InvalidRequest(
        f"{what.capitalize()} is not valid JSON: {first_error.msg} "
        f"(line {first_error.lineno}, column {first_error.colno})."
    )


MAX_FORGIVEN_COMMAS = 16


def _loads(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(text, parse_constant=refuse)


def _trailing_comma_before(text: str, pos: int) -> int | None:
    """Where the parser stopped at `}` or `]` right after a comma: that comma's index."""
    if text[pos : pos + 1] not in ("}", "]"):
        return None
    before = text[:pos].rstrip()
    return len(before) - 1 if before.endswith(",") else None


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def check_inbound(value: object, where: str = "") -> None:
    """Raise InvalidRequest for the first string (in document order) that cannot be encoded
    as UTF-8, or for nesting deeper than MAX_DEPTH. `where` prefixes the paths named."""
    stack: list[tuple[object, str, int]] = [(value, where, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if has_surrogate(node):
                raise unencodable(path)
        elif isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise InvalidRequest(
                    f"{_subject(path)} is nested more than {MAX_DEPTH} levels deep.",
                    param=path or None,
                    code="too_deep",
                )
            items = node.items() if isinstance(node, dict) else enumerate(node)
            children = []
            for key, item in items:
                if isinstance(key, str) and has_surrogate(key):
                    raise unencodable(path, key=True)
                children.append((item, _join(path, key), depth + 1))
            stack.extend(reversed(children))


def check_fields(fields: Iterable[tuple[str, str]]) -> None:
    """Form fields (name, value) and the like: each name and value follows the text rule."""
    for name, value in fields:
        if has_surrogate(name):
            raise unencodable("", key=True)
        if has_surrogate(value):
            raise unencodable(name)


def unencodable(path: str, *, key: bool = False) -> InvalidRequest:
    what = f"A key in {_subject(path, lower=True)}" if key else _subject(path)
    return InvalidRequest(
        f"{what} holds text that cannot be encoded as UTF-8 (a lone UTF-16 surrogate such as "
        "\\ud800). Send valid Unicode text.",
        param=path or None,
        code="invalid_text",
    )


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _subject(path: str, *, lower: bool = False) -> str:
    if path:
        return f"'{path}'"
    return "the body" if lower else "The body"


class HearthRequest(Request):
    """Flask's request, with the text rule applied to form fields and upload file names as
    they are parsed (werkzeug replaces bytes that are not UTF-8; this keeps the rule whole
    whatever the parser lets through)."""

    def _load_form_data(self) -> None:
        super()._load_form_data()
        try:
            check_fields(self.form.items(multi=True))
            check_fields((name, upload.filename or "") for name, upload in self.files.items(multi=True))
        except InvalidRequest:
            empty = self.parameter_storage_class()
            self.__dict__.update(form=empty, files=empty)  # nothing unchecked stays readable
            raise
