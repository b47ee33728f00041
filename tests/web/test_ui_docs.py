"""docs/ui.md's endpoint table lists exactly the UI's routes."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "ui.md"


def documented() -> set[tuple[str, str]]:
    text = DOC.read_text()
    table = text.split("<!-- ui-endpoints:start -->")[1].split("<!-- ui-endpoints:end -->")[0]
    return {(m[0], m[1]) for m in re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", table, re.M)}


def test_every_ui_route_is_documented_and_nothing_else(web_app):
    routes = set()
    for rule in web_app.url_map.iter_rules():
        if not rule.endpoint.startswith("web.") or rule.endpoint == "web.api.no_such_endpoint":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, rule.rule))
    assert documented() == routes


def test_the_screenshots_in_the_docs_exist():
    for name in re.findall(r"\(screenshots/([^)]+\.png)\)", DOC.read_text()):
        assert (DOC.parent / "screenshots" / name).is_file(), name
