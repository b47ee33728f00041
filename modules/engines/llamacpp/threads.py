"""Choosing the thread count of each decode step from measured speed.

llama.cpp uses `threads` for single-token steps and `threads_batch` for anything larger.
More threads win on an idle machine, but OpenMP threads busy-wait for each other: when
another program takes a core, a step on two threads on a two-core machine can run ten
times slower than on one (../shared/FACTS.md; measured here: 4 batched sequences went
from ~145 to ~6 tokens/s). So for multi-token steps the governor keeps a moving average
of the time per token with each thread count and uses the faster one.

It starts with `threads_batch`, the configured choice: a prompt never pays for a trial of
the other count unless there is a reason. Trying the other count costs a slow step when
the machine is quiet (4 batched tokens: 45 ms on 1 thread against 28 ms on 2; a prompt of
4 x 23 tokens: ~500 ms against ~270 ms), so it is tried once early for generation steps,
then rarely while `threads_batch` keeps its pace (every `EXPLORE_QUIET` steps), at once when a step takes
much longer than its average (the machine may have got busier), and often while the
governor has fallen back to `threads` (every `EXPLORE_BUSY` steps), so that it returns
soon after the machine gets quiet again.
"""

from __future__ import annotations

SMALL_STEP = 32  # tokens: generation steps (one token per sequence) and short prompts
EXPLORE_QUIET = 96  # steps between tries of `threads` while `threads_batch` is in favour
EXPLORE_BUSY = 24  # steps between tries of `threads_batch` while `threads` is in favour
SLOWER = 1.5  # a step this many times its average time per token looks like contention
ALPHA = 0.3  # weight of the newest measurement in the moving average


class ThreadGovernor:
    def __init__(self, threads: int, threads_batch: int) -> None:
        self.threads = threads
        self.threads_batch = threads_batch
        self._average: dict[tuple[bool, int], float] = {}  # (small step, threads) -> s/token
        self._steps: dict[bool, int] = {True: 0, False: 0}  # since the last try, per class
        self._suspect: dict[bool, bool] = {True: False, False: False}  # try the other next

    def choose(self, n_tokens: int) -> int:
        if n_tokens <= 1 or self.threads == self.threads_batch:
            return self.threads if n_tokens <= 1 else self.threads_batch
        small = n_tokens <= SMALL_STEP
        preferred, other = self.threads_batch, self.threads
        if (small, preferred) not in self._average:
            return preferred
        measured = self._average.get((small, other))
        best = other if measured is not None and measured < self._average[(small, preferred)] else preferred
        self._steps[small] += 1
        every = EXPLORE_QUIET if best == preferred else EXPLORE_BUSY
        # Generation steps are many and cheap to try: the other count gets its first try at
        # once. Prompt steps are few and dear: theirs waits for a reason.
        explore = (measured is None and small) or self._steps[small] >= every
        if self._suspect[small]:  # a slow step on `threads_batch`: try `threads` unless already on it
            self._suspect[small] = False
            explore = explore or best == preferred
        if explore:
            self._steps[small] = 0
            return other if best == preferred else preferred
        return best

    def record(self, n_tokens: int, threads: int, seconds: float) -> None:
        if n_tokens <= 1 or self.threads == self.threads_batch:
            return
        key = (n_tokens <= SMALL_STEP, threads)
        per_token = seconds / n_tokens
        previous = self._average.get(key)
        if previous is not None and threads == self.threads_batch and per_token > SLOWER * previous:
            self._suspect[key[0]] = True
        self._average[key] = per_token if previous is None else (1 - ALPHA) * previous + ALPHA * per_token
