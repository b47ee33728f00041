"""A fake model description for prompt tests, which count tokens as words: no model needed."""

from __future__ import annotations

from modules.engines.base import ModelInfo

MODEL = ModelInfo(
    name="test-model",
    path="/models/test-model.gguf",
    loader="fake",
    n_ctx=4096,
    n_ctx_train=4096,
    n_vocab=1000,
    chat_template=None,
    bos_token="<s>",
    eos_token="</s>",
)


def words(text: str) -> int:
    return len(text.split())
