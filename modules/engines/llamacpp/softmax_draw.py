"""Plain temperature sampling, without llama.cpp's sampler chain.

A request that sets only a temperature (OpenAI's defaults: no top-k, top-p, min-p,
penalties, grammar or biases; sampler.draws_plainly) draws its token from softmax(logits / temperature).
llama.cpp's chain does that by building a candidate entry for every token of the
vocabulary and walking the running sum of their probabilities to a uniform draw: 0.46 ms
per token for SmolLM2's 49,152 tokens on the project's machine, 3-4% of a step. numpy
draws the same distribution with the Gumbel-max rule in 0.17-0.25 ms (docs/performance.md,
"Sampling"): the token is

    argmax_i  logit_i / temperature - log(-log(u_i)),   u_i uniform in (0, 1),

which is token i with probability exactly softmax(logits / temperature)_i.

Each sequence has its own generator (numpy's PCG64, seeded with the request's seed) and
draws one number per vocabulary entry at every token, so a seed gives the same text
every time, alone or batched; not the text llama.cpp's generator gives for that seed.
The argmax also depends less on the last bits of the logits, which differ when the same
sequence is computed in a batch with others: the walk moves to another token whenever
such a difference moves the running sum past the draw, the argmax only when its two best
scores are that close (tests/engine/test_softmax_draw.py).
"""

from __future__ import annotations

import numpy as np

# u = 0 would make log(-log(u)) infinite; draws below this count as this (bias: nil).
SMALLEST_UNIFORM = np.float32(2.0**-25)


class SoftmaxDraw:
    def __init__(self, temperature: float, seed: int | None, n_vocab: int) -> None:
        self._temperature = np.float32(temperature)
        self._rng = np.random.default_rng(seed)  # None: fresh entropy
        self._noise = np.empty(n_vocab, dtype=np.float32)
        self._scores = np.empty(n_vocab, dtype=np.float32)

    def draw(self, logits: np.ndarray) -> int:
        """A token drawn with probability softmax(logits / temperature)."""
        noise, scores = self._noise, self._scores
        self._rng.random(out=noise, dtype=np.float32)
        np.maximum(noise, SMALLEST_UNIFORM, out=noise)
        np.log(noise, out=noise)
        np.negative(noise, out=noise)
        np.log(noise, out=noise)  # log(-log(u)): minus Gumbel noise
        np.divide(logits, self._temperature, out=scores)
        scores -= noise
        return int(scores.argmax())
