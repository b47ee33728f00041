"""Every UI route, every method, junk input: always an answer below 500 and nothing logged as
an error (an unexpected exception logs one, with a traceback)."""

from __future__ import annotations

import io
import logging
import re

PATH_VALUES = ["Ada", "..", "x" * 300, "%00", "a b", "20990101-000000-abcdef", "<script>", "con"]


def bodies() -> list[dict]:
    """Fresh each time: the test client closes uploaded files after a request."""
    return [
        {},
        {"data": b"", "content_type": "application/json"},
        {"data": b"{nope", "content_type": "application/json"},
        {"data": b"[1, 2, 3]", "content_type": "application/json"},
        {
            "data": b'{"mode": "chat", "character": "Ada", "title": 5, "name": null, "sampling": []}',
            "content_type": "application/json",
        },
        {"data": b"\xff\xfe\x00garbage", "content_type": "application/octet-stream"},
        {
            "data": {
                "name": "x" * 5000,
                "file": (io.BytesIO(b"\x89PNG\r\n\x1a\n\0\0"), "x.png"),
                "picture": (io.BytesIO(b"GIF89a"), "x.gif"),
            },
            "content_type": "multipart/form-data",
        },
        {"query_string": {"mode": "chat", "character": "../../x"}},
        {"query_string": {"mode": "instruct"}},
    ]


def concrete_paths(rule: str) -> list[str]:
    if "<" not in rule:
        return [rule]
    return [re.sub(r"<[^>]+>", lambda _, v=value: v, rule) for value in PATH_VALUES]


def test_junk_never_breaks_a_route(web_app, ui, caplog, monkeypatch):
    monkeypatch.setattr("modules.web.pages.LOGIN_FAILURE_DELAY", 0)
    caplog.set_level(logging.ERROR)
    routes = [
        (rule.rule, sorted(rule.methods - {"HEAD", "OPTIONS"}))
        for rule in web_app.url_map.iter_rules()
        if rule.endpoint.startswith("web.")
    ]
    checked = 0
    for rule, methods in routes:
        if rule == "/ui/ws":
            continue  # the socket has its own tests
        for path in concrete_paths(rule):
            for method in methods:
                for body in bodies():
                    response = ui.open(path, method=method, **body)
                    assert response.status_code < 500, (method, path, body, response.data[:300])
                    checked += 1
    assert checked > 1000
    assert not caplog.records, [r.getMessage() for r in caplog.records][:5]
