"""JSON schema -> GBNF, with integer bounds.

llama-cpp-python's converter handles objects, arrays, enums, patterns and string lengths,
but ignores `minimum`/`maximum` on integers, so `{"type": "integer", "maximum": 9}` could
produce 86924 and the "validated" output would not validate. Integers with bounds become
an exact grammar here; everything else goes to the library's converter, whose strings are
then kept free of raw control characters.
"""

from __future__ import annotations

import json
import re

from ...errors import InvalidRequest

MAX_DIGITS = 16  # like the library: longer integers are not generated
_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)


def json_schema_grammar(schema: object) -> str:
    from llama_cpp.llama_grammar import SchemaConverter

    class BoundedIntegerConverter(SchemaConverter):
        def visit(self, schema, name):
            bounded = isinstance(schema, dict) and schema.get("type") == "integer"
            if bounded and _bounds(schema) != (None, None):
                rule_name = name or "root"
                low, high = _bounds(schema)
                return self._add_rule(rule_name, f"({integer_rule(low, high)}) space")
            return super().visit(schema, name)

    try:
        converter = BoundedIntegerConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        resolved = converter.resolve_refs(json.loads(json.dumps(schema)), "request")
        converter.visit(resolved, "")
        grammar = _no_raw_control_characters(_join_surrogates(converter.format_grammar()))
    except InvalidRequest:
        raise
    except Exception as exc:  # the library reports unsupported schemas with plain exceptions
        raise InvalidRequest(f"Unsupported JSON schema: {exc}", param="response_format") from None
    return grammar


def _no_raw_control_characters(grammar: str) -> str:
    r"""The library's string character is `[^"\\]`, which lets a raw newline or tab into a
    string, and `json.loads` refuses that: JSON wants them escaped (`\n`, which `char`
    allows)."""
    return grammar.replace(r'char ::= [^"\\]', r'char ::= [^"\\\x00-\x1F]')


def _join_surrogates(grammar: str) -> str:
    """The library writes "🙂" as \\ud83d\\ude42; GBNF would generate two lone surrogates."""

    def join(match: re.Match) -> str:
        high, low = int(match.group(1), 16), int(match.group(2), 16)
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))

    return _SURROGATE_PAIR.sub(join, grammar)


def _bounds(schema: dict) -> tuple[int | None, int | None]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], int | float):
        low = schema["exclusiveMinimum"] + 1 if isinstance(schema["exclusiveMinimum"], int) else None
    if "exclusiveMaximum" in schema and isinstance(schema["exclusiveMaximum"], int | float):
        high = schema["exclusiveMaximum"] - 1 if isinstance(schema["exclusiveMaximum"], int) else None
    low = _ceil_int(low)
    high = _floor_int(high)
    if low is not None and high is not None and low > high:
        raise InvalidRequest(f"The integer range [{low}, {high}] is empty.", param="response_format")
    return low, high


def _ceil_int(value) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value == int(value) else int(value) + (1 if value > 0 else 0)


def _floor_int(value) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value == int(value) else int(value) - (1 if value < 0 else 0)


def integer_rule(low: int | None, high: int | None) -> str:
    """A GBNF expression matching exactly the integers in [low, high] (None: unbounded)."""
    alternatives: list[str] = []
    # Negative part: -n for n in [max(1, -high), -low]
    if low is None or low < 0:
        neg_low = 1 if high is None or high >= 0 else -high
        neg_high = None if low is None else -low
        alternatives += [f'"-" {alt}' for alt in _non_negative(neg_low, neg_high)]
    # Non-negative part: [max(0, low), high]
    if high is None or high >= 0:
        alternatives += _non_negative(max(0, low or 0), high)
    return " | ".join(f"({alt})" for alt in alternatives)


def _non_negative(low: int, high: int | None) -> list[str]:
    if high is not None:
        return [_digits_pattern(a, b) for a, b in _split_range(low, high)]
    width = len(str(low))
    upper = 10**width - 1
    alternatives = [_digits_pattern(a, b) for a, b in _split_range(low, upper)]
    if width < MAX_DIGITS:
        alternatives.append(f"[1-9] [0-9]{{{width},{MAX_DIGITS - 1}}}")
    return alternatives


def _split_range(low: int, high: int) -> list[tuple[int, int]]:
    """Split [low, high] into ranges whose ends share a prefix and then differ digit-wise."""
    stops = {high}
    nines = 1
    while True:
        stop = int(str(low)[:-nines] + "9" * nines) if nines <= len(str(low)) else 10**nines - 1
        if not low <= stop < high:
            break
        stops.add(stop)
        nines += 1
    zeros = 1
    while True:
        stop = (high + 1) - (high + 1) % 10**zeros - 1
        if not low < stop <= high:
            break
        stops.add(stop)
        zeros += 1
    ranges, start = [], low
    for stop in sorted(stops):
        ranges.append((start, stop))
        start = stop + 1
    return ranges


def _digits_pattern(low: int, high: int) -> str:
    a, b = str(low), str(high)
    if len(a) != len(b):  # only when low is 0..9 style splits fail; fall back to exact listing
        return " | ".join(f'"{n}"' for n in range(low, high + 1))
    parts = []
    for da, db in zip(a, b, strict=True):
        parts.append(f'"{da}"' if da == db else f"[{da}-{db}]")
    return " ".join(parts)
