"""The built-in tools: the clock and a calculator that never evaluates code."""

from __future__ import annotations

import pytest

from modules.tools.builtin import calculator, current_time
from modules.tools.calculator import calculate
from modules.tools.tool import ToolFailed, truncated


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 * (3 + 4)", 14),
        ("7 // 2", 3),
        ("2 ** 10", 1024),
        ("sqrt(16)", 4.0),
        ("-3 + abs(-5)", 2),
        ("max(1, 9)", 9),
    ],
)
def test_calculator_computes(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "(1).__class__",
        "[x for x in range(3)]",
        "lambda: 1",
        "a + 1",
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(ToolFailed):
        calculate(expression)


def test_calculator_bounds_work_and_sizes():
    with pytest.raises(ToolFailed, match="exponents"):
        calculate("9 ** 9 ** 9")
    with pytest.raises(ToolFailed, match="digits"):
        calculate("999 ** 999 * 999 ** 999 * 999 ** 999 * 999 ** 999")
    with pytest.raises(ToolFailed, match="zero"):
        calculate("1 / 0")
    with pytest.raises(ToolFailed, match="longer"):
        calculate("1+" * 300 + "1")
    assert calculator({"expression": "1.5 * 2"}) == "3.0"


def test_current_time_in_a_time_zone():
    assert "+09:00" in current_time({"timezone": "Asia/Tokyo"}) and "Asia/Tokyo" in current_time(
        {"timezone": "Asia/Tokyo"}
    )
    assert "+00:00" in current_time({})
    with pytest.raises(ToolFailed, match="unknown time zone"):
        current_time({"timezone": "Mars/Olympus"})


def test_long_outputs_are_cut_with_a_note():
    assert truncated("abc", 5) == "abc"
    cut = truncated("x" * 50, 10)
    assert cut.startswith("x" * 10) and "40 more characters" in cut
