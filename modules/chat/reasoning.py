"""`<think>...</think>` blocks: the model's reasoning, returned apart as `reasoning_content`.

The streaming split itself is done by the reply parser; this module holds the markers and
the two questions asked around it.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_BLOCK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)


def prompt_opens_reasoning(prompt: str) -> bool:
    """Whether the prompt ends inside a `<think>` block (some templates open it for the
    model, e.g. DeepSeek-R1's and Qwen3's), so the reply starts as reasoning."""
    tail = prompt.rstrip()
    return tail.endswith(THINK_OPEN)


def strip_reasoning(text: str) -> str:
    """`text` without its reasoning, for putting an earlier reply back into a prompt.

    Removes `<think>...</think>` blocks, an unterminated `<think>` to the end, and everything
    before a `</think>` that has no opening (the prompt opened that block).
    """
    return split_reasoning(text)[1]


def split_reasoning(text: str) -> tuple[str, str]:
    """An earlier reply's reasoning and the rest of it (`strip_reasoning`'s result).

    Chat templates get the reasoning as the message's `reasoning_content`, as transformers and
    llama.cpp pass it, and decide themselves whether the model sees it again."""
    if THINK_OPEN not in text and THINK_CLOSE not in text:
        return "", text
    thoughts = []
    close = text.find(THINK_CLOSE)
    if close >= 0 and (THINK_OPEN not in text[:close]):
        thoughts.append(text[:close])
        text = text[close + len(THINK_CLOSE) :]
    thoughts += [block.removeprefix(THINK_OPEN).removesuffix(THINK_CLOSE) for block in _BLOCK.findall(text)]
    reasoning = "\n\n".join(t.strip() for t in thoughts if t.strip())
    return reasoning, _BLOCK.sub("", text).strip()
