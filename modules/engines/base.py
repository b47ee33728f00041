"""The text engine interface, in plain types.

Engines never see Flask or OpenAI types: the API and the UI turn their requests into a
`GenerationRequest` once, and read back `Delta`s. Streaming is the primitive; a whole
answer is the collected stream (`Generation.collect`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CANCELLED = "cancelled"


def new_request_id(prefix: str = "gen") -> str:
    """A unique, unguessable id for a generation (stop-generation takes it as a capability).
    A prefix that ends in `_` is used as it is (`resp_…`, `msg_…`), others get a `-`."""
    separator = "" if prefix.endswith("_") else "-"
    return f"{prefix}{separator}{secrets.token_hex(12)}"


def most_tokens(text: str) -> int:
    """At least `count_tokens(text)`, for any engine, without asking it: no tokenizer makes
    more tokens of a text than it has UTF-8 bytes, plus one for a leading space marker
    (SentencePiece). Counting can cost a round trip to another machine; a text shorter than
    the room it needs does not have to be counted."""
    return len(text.encode("utf-8", "surrogatepass")) + 1


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens and when to stop. Defaults mean "no effect"."""

    max_tokens: int | None = None  # None: until the context is full
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables
    min_p: float = 0.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_last_n: int = 64
    seed: int | None = None  # None: a fresh random seed per request
    stop: tuple[str, ...] = ()
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    grammar: str | None = None  # GBNF text
    json_schema: Mapping | None = None  # turned into a grammar by the engine
    logprobs: int | None = None  # None: off; N >= 0: the chosen token plus N alternatives
    ignore_eos: bool = False
    # Prompt-lookup drafting (the engine guesses the next tokens from earlier ones, checks
    # them in one step: the same text, in fewer steps). None: where it pays; True; False.
    speculative: bool | None = None
    # LoRA adapters by id (the model's list) with their scales, as llama-server's `lora`;
    # unlisted adapters get 0. None: the model's list as it is.
    lora: tuple[tuple[int, float], ...] | None = None


@dataclass(frozen=True)
class ImageInput:
    """An image for a model with a projector: RGB pixels, row by row, 3 bytes each."""

    rgb: bytes
    width: int
    height: int
    digest: bytes  # of the size and the pixels: the same image has the same digest

    @classmethod
    def from_rgb(cls, rgb: bytes, width: int, height: int) -> ImageInput:
        size = width.to_bytes(4, "little") + height.to_bytes(4, "little")
        return cls(rgb, width, height, hashlib.sha256(size + rgb).digest())


@dataclass(frozen=True)
class MediaPrompt:
    """A prompt of text and images, in their order."""

    parts: tuple[str | ImageInput, ...]

    @property
    def images(self) -> tuple[ImageInput, ...]:
        return tuple(part for part in self.parts if isinstance(part, ImageInput))


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a prompt (text, token ids, or text and images) and how to continue it."""

    prompt: str | Sequence[int] | MediaPrompt
    params: SamplingParams = field(default_factory=SamplingParams)
    echo: bool = False  # first emit the prompt itself (with its logprobs, if asked)
    request_id: str = field(default_factory=new_request_id)
    timeout: float | None = None  # seconds from submission until the request is cancelled
    # Requests with the same key belong together (one conversation): an engine with several
    # places to run them (a pool of upstream servers) keeps them in one place, where the
    # prompt cache of the earlier turns is. A hint; engines with one place ignore it.
    affinity: str | None = None


@dataclass(frozen=True)
class TopLogprob:
    token: str
    bytes: bytes
    logprob: float
    id: int = -1  # the token id in the model's vocabulary


@dataclass(frozen=True)
class TokenLogprob:
    """The log-probability of one generated (or echoed) token and its best alternatives."""

    token: str
    bytes: bytes
    logprob: float | None  # None for the first echoed prompt token
    top: tuple[TopLogprob, ...] = ()
    offset: int = 0  # character offset of this token in the generated text
    id: int = -1  # the token id in the model's vocabulary


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose evaluation was reused from the cache
    queued_seconds: float = 0.0  # from submission until a sequence slot took the request
    first_token_seconds: float | None = None  # from submission until the first token
    generation_seconds: float = 0.0  # from the first token until the last
    drafted_tokens: int = 0  # prompt-lookup drafting: tokens guessed and checked
    accepted_draft_tokens: int = 0  # of those, the ones the sampler agreed with

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Delta:
    """A piece of a generation. The last one has `finish_reason` and `usage` set.

    `text` is always whole characters and never holds any part of a stop string.
    """

    text: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    stop_sequence: str | None = None  # on the last delta: the stop string that ended it, if one did


@dataclass(frozen=True)
class Completion:
    """A whole generation: the collected deltas."""

    text: str
    finish_reason: str
    usage: Usage
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    loader: str
    n_ctx: int  # the context one request may use
    n_ctx_train: int
    n_vocab: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    vision: bool = False  # a projector is loaded: the model reads images
    cache_type: str = "fp16"  # the KV cache's type
    flash_attn: bool = False
    kv_bytes_per_token: int = 0  # measured: what one token of one sequence takes in the KV cache
    kv_cache_bytes: int = 0  # the whole cache: per token x tokens per sequence x sequences


@dataclass(frozen=True)
class EngineStats:
    slots: int
    busy_slots: int
    queued: int
    cached_prompts: int = 0


class GenerationObserver(Protocol):
    """Told about every generation that ends (metrics); called in the consumer's thread."""

    def generation_finished(self, model: str, finish_reason: str, usage: Usage) -> None: ...


class Generation(Iterator[Delta]):
    """A running generation: iterate it for deltas, or `collect()` the whole answer.

    Closing it (or leaving a `with` block) before the end cancels the work.
    """

    request_id: str

    def __next__(self) -> Delta:  # pragma: no cover - interface
        raise NotImplementedError

    def cancel(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        self.cancel()

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def collect(self) -> Completion:
        text: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish, usage = None, None
        with self:
            for delta in self:
                text.append(delta.text)
                logprobs.extend(delta.logprobs)
                if delta.finish_reason:
                    finish, usage = delta.finish_reason, delta.usage
        assert finish is not None and usage is not None, "stream ended without a final delta"
        return Completion("".join(text), finish, usage, tuple(logprobs))


@runtime_checkable
class TextEngine(Protocol):
    """What every text backend offers. One instance serves one loaded model."""

    @property
    def info(self) -> ModelInfo: ...

    def generate(self, request: GenerationRequest) -> Generation:
        """Queue a generation and return its stream at once (raises on invalid requests)."""

    def tokenize(
        self, text: str, *, add_bos: bool = True, special: bool = True, limit: int | None = None
    ) -> list[int]:
        """With `limit`: TooManyTokens for a longer text, without tokenizing all of it."""

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def count_tokens(self, text: str) -> int:
        """Exact up to the context size; beyond it, a lower bound (a prompt that long fits nowhere)."""

    def token_logprobs(
        self, prompt: str | Sequence[int], params: SamplingParams, top_n: int, use_samplers: bool
    ) -> list[TopLogprob]:
        """The most likely next tokens after `prompt`, before or after sampling filters."""

    def cancel(self, request_id: str) -> bool:
        """Stop one generation; False when no such generation is running."""

    def cancel_all(self) -> int: ...

    def stats(self) -> EngineStats: ...

    def close(self) -> None:
        """Cancel everything and free the model."""
