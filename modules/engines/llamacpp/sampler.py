"""One sampler per sequence, and log-probabilities straight from the logits.

Every sequence owns its sampler (its own penalties history, grammar state and random
generator), so a request samples the same tokens whether it runs alone or batched with
others, as far as the logits allow (softmax_draw.py). Logprobs are a log-softmax of the
raw logits of the step, computed only when asked for: no `logits_all` buffer of n_ctx x
n_vocab floats (../shared/FACTS.md).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

from ...errors import InvalidRequest
from ..base import SamplingParams, TopLogprob
from .json_grammar import json_schema_grammar
from .library import llama_library
from .model import LlamaModel
from .softmax_draw import SoftmaxDraw

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: pick a random seed
BAN = -100.0  # OpenAI: a bias of -100 bans the token


def grammar_for(params: SamplingParams) -> str | None:
    if params.grammar:
        return params.grammar
    if params.json_schema is not None:
        return json_schema_grammar(params.json_schema)
    return None


def keeps_the_logits(params: SamplingParams) -> bool:
    """No biases, penalties or grammar: the model's logits alone decide."""
    return (
        not params.logit_bias
        and not params.grammar  # an empty grammar is none, as in grammar_for
        and params.json_schema is None
        and params.repetition_penalty == 1.0
        and not params.presence_penalty
        and not params.frequency_penalty
    )


def draws_plainly(params: SamplingParams) -> bool:
    """Only a temperature: softmax(logits / temperature), drawn without a chain (softmax_draw.py)."""
    return (
        params.temperature > 0
        and params.top_k <= 0
        and params.top_p >= 1.0
        and params.min_p <= 0.0
        and params.typical_p >= 1.0
        and keeps_the_logits(params)
    )


def seed64(seed: int | None) -> int | None:
    """A seed numpy takes: any int as 64 bits (None: fresh entropy)."""
    return None if seed is None else seed & 0xFFFFFFFFFFFFFFFF


class SequenceSampler:
    """How one sequence picks its tokens: the argmax, a plain softmax draw (softmax_draw.py) or
    llama.cpp's sampler chain. Build and use it on the scheduler's thread."""

    def __init__(self, model: LlamaModel, params: SamplingParams, prompt: Sequence[int]) -> None:
        lib = llama_library()
        self._lib = lib
        self._n_vocab = model.n_vocab
        # Plain greedy needs no chain: the argmax of the logits is the same token, without
        # building a candidate array of the whole vocabulary every step.
        self._argmax_only = params.temperature <= 0 and keeps_the_logits(params)
        self._draw = None
        self.chain = None
        if draws_plainly(params):  # plain temperature sampling needs no chain either
            self._draw = SoftmaxDraw(params.temperature, seed64(params.seed), model.n_vocab)
            return
        self.chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        try:
            self._build(model, params, prompt)
        except BaseException:
            self.free()
            raise

    def _add(self, sampler: int) -> None:
        self._lib.llama_sampler_chain_add(self.chain, sampler)

    def _build(self, model: LlamaModel, params: SamplingParams, prompt: Sequence[int]) -> None:
        lib = self._lib
        if params.logit_bias:
            biases = (lib.llama_logit_bias * len(params.logit_bias))()
            for i, (token, bias) in enumerate(params.logit_bias.items()):
                biases[i].token = token
                biases[i].bias = float("-inf") if bias <= BAN else bias
            self._add(lib.llama_sampler_init_logit_bias(model.n_vocab, len(biases), biases))
        if params.repetition_penalty != 1.0 or params.presence_penalty or params.frequency_penalty:
            penalties = lib.llama_sampler_init_penalties(
                model.n_vocab,
                params.penalty_last_n,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
            last_n = params.penalty_last_n
            history = prompt if last_n < 0 else prompt[max(0, len(prompt) - last_n) :]
            for token in history:  # the prompt counts as history, as in llama.cpp's server
                if token >= 0:  # not an image's placeholder (media.py)
                    lib.llama_sampler_accept(penalties, token)
            self._add(penalties)
        grammar = grammar_for(params)
        if grammar:
            sampler = lib.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
            if not sampler:
                raise InvalidRequest(
                    "The grammar could not be parsed (GBNF with a 'root' rule).", param="grammar"
                )
            self._add(sampler)
        if params.temperature <= 0:
            self._add(lib.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            self._add(lib.llama_sampler_init_top_k(params.top_k))
        if params.typical_p < 1.0:
            self._add(lib.llama_sampler_init_typical(params.typical_p, 1))
        if params.top_p < 1.0:
            self._add(lib.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            self._add(lib.llama_sampler_init_min_p(params.min_p, 1))
        self._add(lib.llama_sampler_init_temp(params.temperature))
        seed = RANDOM_SEED if params.seed is None else params.seed & 0xFFFFFFFF
        self._add(lib.llama_sampler_init_dist(seed))

    def sample(self, ctx: int, index: int) -> int:
        """Pick the next token from the logits at batch `index` (and record it)."""
        if self._argmax_only:
            return int(np.argmax(logits_at(ctx, index, self._n_vocab)))
        if self._draw is not None:
            return self._draw.draw(logits_at(ctx, index, self._n_vocab))
        return self._lib.llama_sampler_sample(self.chain, ctx, index)

    def free(self) -> None:
        if self.chain:
            self._lib.llama_sampler_free(self.chain)
            self.chain = None


def logits_at(ctx: int, index: int, n_vocab: int) -> np.ndarray:
    """A read-only view of the logits llama.cpp produced at batch `index`."""
    ptr = llama_library().llama_get_logits_ith(ctx, index)
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - float(logits.max())
    return shifted - np.log(np.exp(shifted).sum())


def filtered_logprobs(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """The distribution after temperature, top-k, top-p and min-p (filtered tokens: -inf)."""
    if params.temperature <= 0:
        out = np.full(logits.shape, -np.inf)
        out[int(np.argmax(logits))] = 0.0
        return out
    logprobs = log_softmax(logits / params.temperature)
    keep = np.ones(logits.shape, dtype=bool)
    order = np.argsort(-logprobs, kind="stable")
    if params.top_k > 0:
        keep[order[params.top_k :]] = False
    if params.top_p < 1.0:
        cumulative = np.cumsum(np.exp(logprobs[order]))
        cut = int(np.searchsorted(cumulative, params.top_p)) + 1
        keep[order[cut:]] = False
    if params.min_p > 0.0:
        keep &= logprobs >= logprobs.max() + np.log(params.min_p)
    kept = np.where(keep, logprobs, -np.inf)
    return kept - np.log(np.exp(kept[keep]).sum())


def top_logprobs(model: LlamaModel, logprobs: np.ndarray, n: int) -> tuple[TopLogprob, ...]:
    if n <= 0:
        return ()
    n = min(n, logprobs.shape[0])
    best = np.argpartition(-logprobs, n - 1)[:n]
    best = best[np.argsort(-logprobs[best], kind="stable")]
    return tuple(entry(model, int(t), float(logprobs[t])) for t in best)


def entry(model: LlamaModel, token: int, logprob: float) -> TopLogprob:
    raw = model.token_text(token)
    return TopLogprob(raw.decode("utf-8", "replace"), raw, logprob, token)
