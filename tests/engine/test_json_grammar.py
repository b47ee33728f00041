"""Integer bounds in JSON schemas become exact grammars."""

from __future__ import annotations

import random
import re

import pytest

from modules.engines.llamacpp.json_grammar import integer_rule, json_schema_grammar
from modules.errors import InvalidRequest


def as_regex(gbnf: str) -> re.Pattern:
    """The GBNF subset integer_rule emits, as a Python regex (for checking it exhaustively)."""
    pattern = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), gbnf)
    return re.compile(pattern.replace(" ", ""))


CASES = [
    (0, 9),
    (0, 120),
    (5, 5),
    (17, 2310),
    (-50, 50),
    (-999, -12),
    (1, 10**6),
    (0, None),
    (7, None),
    (123, None),
    (None, 0),
    (None, 42),
    (None, -3),
    (-7, None),
]


@pytest.mark.parametrize(("low", "high"), CASES)
def test_integer_rule_matches_exactly_the_range(low, high):
    regex = as_regex(integer_rule(low, high))
    rng = random.Random(f"{low}:{high}")
    candidates = set(range(-1200, 1200)) | {rng.randint(-(10**7), 10**7) for _ in range(2000)}
    for lo_edge in (low, high):
        if lo_edge is not None:
            candidates |= {lo_edge - 1, lo_edge, lo_edge + 1}
    for n in candidates:
        inside = (low is None or n >= low) and (high is None or n <= high)
        assert bool(regex.fullmatch(str(n))) == inside, (low, high, n)
    assert not regex.fullmatch("007") and not regex.fullmatch("-0") and not regex.fullmatch("+5")


def test_schema_with_bounds_uses_the_exact_rule():
    grammar = json_schema_grammar(
        {
            "type": "object",
            "properties": {"age": {"type": "integer", "minimum": 0, "maximum": 120}},
            "required": ["age"],
        }
    )
    assert "[0-9]" in grammar and "integral-part" not in grammar.split("age ::=")[1].split("\n")[0]


def test_exclusive_bounds_and_empty_ranges():
    regex = as_regex(integer_rule(1, 9))
    grammar = json_schema_grammar({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})
    assert regex.fullmatch("9") and not regex.fullmatch("10")
    assert "root ::=" in grammar
    with pytest.raises(InvalidRequest):
        json_schema_grammar({"type": "integer", "minimum": 5, "maximum": 4})


def test_unsupported_schema_is_a_clear_error():
    with pytest.raises(InvalidRequest):
        json_schema_grammar({"type": "string", "pattern": "no-anchors"})
