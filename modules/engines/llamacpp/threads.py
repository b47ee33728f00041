"""Choosing the thread count of each decode step from measured speed.

llama.cpp uses `threads` for single-token steps and `threads_batch` for anything larger.
More threads win on an idle machine, but OpenMP threads busy-wait for each other: when
another program takes a core, a step on two threads on a two-core machine can run ten
times slower than on one (../shared/FACTS.md; measured here: 4 batched sequences went
from ~145 to ~6 tokens/s). So for multi-token steps the governor keeps a moving average
of the time per token with each thread count, uses the faster one, and tries the other
now and then in case the machine got quieter or busier.
"""

from __future__ import annotations

SMALL_STEP = 32  # tokens: generation steps (one token per sequence) and short prompts
EXPLORE_EVERY = 24  # steps between tries of the thread count that is not in favour
ALPHA = 0.3  # weight of the newest measurement in the moving average


class ThreadGovernor:
    def __init__(self, threads: int, threads_batch: int) -> None:
        self.threads = threads
        self.threads_batch = threads_batch
        self._average: dict[tuple[bool, int], float] = {}  # (small step, threads) -> s/token
        self._steps: dict[bool, int] = {True: 0, False: 0}

    def choose(self, n_tokens: int) -> int:
        if n_tokens <= 1 or self.threads == self.threads_batch:
            return self.threads if n_tokens <= 1 else self.threads_batch
        small = n_tokens <= SMALL_STEP
        options = (self.threads_batch, self.threads)
        for option in options:
            if (small, option) not in self._average:
                return option
        self._steps[small] += 1
        best = min(options, key=lambda option: self._average[(small, option)])
        if self._steps[small] % EXPLORE_EVERY == 0:
            return next(option for option in options if option != best)
        return best

    def record(self, n_tokens: int, threads: int, seconds: float) -> None:
        if n_tokens <= 1 or self.threads == self.threads_batch:
            return
        key = (n_tokens <= SMALL_STEP, threads)
        per_token = seconds / n_tokens
        previous = self._average.get(key)
        self._average[key] = per_token if previous is None else (1 - ALPHA) * previous + ALPHA * per_token
