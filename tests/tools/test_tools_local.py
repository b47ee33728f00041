"""The user's single-file Python tools (user_data/tools/*.py)."""

from __future__ import annotations

import logging
from typing import Literal

import pytest

from modules.tools.local import describe, load_local_tools
from modules.tools.registry import ToolRegistry

GOOD = '''
APPROVAL = {"shout": "never"}


def shout(text: str, times: int = 1) -> str:
    """Say the text in capitals.

    More words that the model does not need."""
    return (text.upper() + " ") * times


def add(a: float, b: float) -> dict:
    """Add two numbers."""
    return {"sum": a + b}


def _helper(x: int) -> int:
    """Private: not a tool."""
    return x


def undocumented(x: int) -> int:
    return x


def slow(seconds: float) -> str:
    """Sleep."""
    import time

    time.sleep(seconds)
    return "done"
'''


def test_public_documented_functions_become_tools(tmp_path, caplog):
    (tmp_path / "mine.py").write_text(GOOD)
    (tmp_path / "broken.py").write_text("def oops(:\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('no')\n")
    with caplog.at_level(logging.ERROR):
        found = {t.tool.name: t.tool for t in load_local_tools(tmp_path)}
    assert set(found) == {"shout", "add", "slow"}
    assert "broken.py" in caplog.text and "raises.py" in caplog.text
    shout = found["shout"]
    assert shout.description == "Say the text in capitals."
    assert shout.parameters == {
        "type": "object",
        "properties": {"text": {"type": "string"}, "times": {"type": "integer"}},
        "required": ["text"],
    }
    assert shout.approval == "never" and found["add"].approval == "always" and shout.source == "local"


def test_local_tools_run_with_a_timeout(tmp_path):
    tools_dir = tmp_path / "tools"
    tools_dir.mkdir()
    (tools_dir / "mine.py").write_text(GOOD)
    registry = ToolRegistry(tools_dir, tmp_path / "mcp.json")
    try:
        assert registry.run(registry.find("shout"), {"text": "hi", "times": 2}).output == "HI HI "
        assert registry.run(registry.find("add"), {"a": 1, "b": 2}).output == '{"sum": 3}'
        import dataclasses

        slow = dataclasses.replace(registry.find("slow"), timeout=0.2)
        outcome = registry.run(slow, {"seconds": 2})
        assert outcome.output is None and "within 0.2 seconds" in outcome.error
        assert outcome.message.startswith("The tool failed: ")
    finally:
        registry.close()


def test_type_hints_make_the_schema():
    def pick(color: Literal["red", "blue"], sizes: list[int], note: str | None = None) -> str:
        """Pick one."""
        return color

    assert describe(pick).parameters["properties"] == {
        "color": {"enum": ["red", "blue"]},
        "sizes": {"type": "array", "items": {"type": "integer"}},
        "note": {"type": "string"},
    }

    def no_hints(x):
        """Doc."""

    with pytest.raises(ValueError, match="type hint"):
        describe(no_hints)
