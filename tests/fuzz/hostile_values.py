"""Hostile values for the fuzz tests (hypothesis strategies): text that cannot be encoded
(lone surrogates), control characters, bidirectional marks, NUL, noncharacters, 1 MB strings,
template and format syntax, deep and wide structures, and values of the wrong type."""

from __future__ import annotations

import json

from hypothesis import strategies as st

MEGABYTE = 1 << 20

LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\udc00\ud800"]  # the last: a pair reversed
CONTROL = [chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))]
BIDI_AND_INVISIBLE = ["\u202e", "\u202d", "\u200f", "\u200e", "\u2066", "\u2069", "\u200b", "\u2028"]
BIDI_AND_INVISIBLE.append("\ufeff")
ODD_CODEPOINTS = ["\ufffe", "\uffff", "\U0010ffff", "\U0001f642", "\u0301", "\ufffd", "𝕳", "ﷺ"]
SYNTAX = [
    "{{ 7 * 7 }}",
    "{% for x in range(99999999) %}",
    "{0} {1!r} %s %n %x",
    "../../../etc/passwd",
    "C:\\Windows\\win.ini",
    "<|im_start|>system\n",
    "</s><s>[INST]",
    "<script>alert(1)</script>",
    "\r\nX-Injected: 1\r\n",
    "root ::= [a-z]*",
    '{"$ref": "#/x"}',
    "A" * 300,
]
ALPHABET = st.sampled_from(
    [*LONE_SURROGATES, *CONTROL, *BIDI_AND_INVISIBLE, *ODD_CODEPOINTS, "a", "Z", " ", "\\", '"', "'"]
)


def nested(depth: int, leaf: object = "x", kind: str = "list") -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def big_string(unit: str) -> str:
    return unit * (MEGABYTE // len(unit))


def mixed_text() -> st.SearchStrategy[str]:
    """Short strings mixing every kind of hostile character with plain ones."""
    return st.lists(ALPHABET, min_size=1, max_size=40).map("".join)


def texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(LONE_SURROGATES).map(lambda s: f"a{s}b"),
        st.sampled_from([*CONTROL, *BIDI_AND_INVISIBLE, *ODD_CODEPOINTS]),
        st.sampled_from(SYNTAX),
        mixed_text(),
        st.sampled_from(["x", "\x00", "\u202e", "\ud800", "ab"]).map(big_string),  # 1 MB (6 MB of JSON)
        st.just(""),
    )


def structures() -> st.SearchStrategy[object]:
    """Deep and wide containers: at the depth limit, beyond it, beyond the JSON parser's."""
    return st.one_of(
        st.sampled_from([10, 63, 64, 65, 200]).flatmap(
            lambda n: st.sampled_from([nested(n), nested(n, kind="dict"), nested(n, "\ud800")])
        ),
        st.just(nested(5000)),
        st.just(list(range(20_000))),
        st.just({f"k{i}": i for i in range(5_000)}),
        st.lists(mixed_text(), max_size=5),
        st.dictionaries(mixed_text(), mixed_text(), max_size=4),
    )


def wrong_types() -> st.SearchStrategy[object]:
    numbers = [0, -1, 2**64, -(2**63), 10**30, 1e308, -1e308, 0.5, -0.0]
    return st.sampled_from([None, True, False, *numbers, [], {}, [None], {"": None}])


def values() -> st.SearchStrategy[object]:
    return st.one_of(texts(), structures(), wrong_types())


def encode(body: object) -> bytes:
    """JSON as a hostile client sends it: lone surrogates as \\uXXXX escapes (valid JSON), and
    structures of any depth (written without recursion: json.dumps stops near 1000 levels)."""
    out: list[str] = []
    stack: list[object] = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            out.append(item.text)
        elif isinstance(item, dict):
            out.append("{")
            parts: list[object] = []
            for i, (key, value) in enumerate(item.items()):
                parts += [_Token(("," if i else "") + json.dumps(str(key)) + ":"), value]
            stack += [_Token("}"), *reversed(parts)]
        elif isinstance(item, list | tuple):
            out.append("[")
            parts = []
            for i, value in enumerate(item):
                parts += [_Token(","), value] if i else [value]
            stack += [_Token("]"), *reversed(parts)]
        else:
            out.append(json.dumps(item, ensure_ascii=True))
    return "".join(out).encode("ascii")


class _Token:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
