"""Choosing the thread count of each decode step from measured speed.

llama.cpp uses `threads` for single-token steps and `threads_batch` for anything larger.
More threads win on an idle machine, but OpenMP threads busy-wait for each other: when
another program takes a core, a step on two threads on a two-core machine can run ten
times slower than on one (../shared/FACTS.md; measured here: 4 batched sequences went
from ~145 to ~6 tokens/s). So for multi-token steps the governor measures the time per
token with each thread count and uses the faster one.

It starts with `threads_batch`, the configured choice: a prompt never pays for a trial of
the other count unless there is a reason. Trying the other count costs a slow step when
the machine is quiet (4 batched tokens: 45 ms on 1 thread against 28 ms on 2; a prompt of
4 x 23 tokens: ~500 ms against ~270 ms), so it is tried once early for generation steps,
then rarely while `threads_batch` keeps its pace (every `EXPLORE_QUIET` steps), at once when a
step takes much longer than usual (the machine may have got busier), and often while the
governor has fallen back to `threads` (after `EXPLORE_BUSY` steps), so that it returns
soon after the machine gets quiet again. Each try of more threads on a busy machine costs
two slow steps (see below), so while those tries keep losing they come less often: after
24 steps, then 48, then every 96.

Measurements are noisy, and two kinds of noise once kept a quiet machine on one thread for
seconds (docs/performance.md, "Threads"):
- Single slow steps: 3% of the steps of four streams took over 1.5 times the usual. The
  count in use is judged by the median of its last `WINDOW` steps, which one slow step does
  not move; the other count by its latest trial.
- Waking threads: the first step on more threads after a while on fewer took up to 240 ms
  instead of 30 (the threads that were not used had gone to sleep). So a try of more
  threads lasts two steps, and only the second is measured. (Steps that run on more
  threads now and then, such as a single stream's drafted steps between its one-token
  steps, are measured as they are: waking the threads is part of what they cost.)
"""

from __future__ import annotations

from collections import deque
from statistics import median

SMALL_STEP = 32  # tokens: generation steps (one token per sequence) and short prompts
WINDOW = 5  # latest steps of the count in use: their median is its time per token
EXPLORE_QUIET = 96  # steps between tries of `threads` while `threads_batch` is in favour
EXPLORE_BUSY = 24  # steps before the first try of `threads_batch` once `threads` is in favour
SLOWER = 2.5  # a step this many times its count's median looks like contention


class ThreadGovernor:
    def __init__(self, threads: int, threads_batch: int) -> None:
        self.threads = threads
        self.threads_batch = threads_batch
        # (small step, threads) -> seconds per token of its latest measured steps
        self._times: dict[tuple[bool, int], deque[float]] = {}
        self._steps: dict[bool, int] = {True: 0, False: 0}  # since the last try, per class
        self._suspect: dict[bool, bool] = {True: False, False: False}  # try `threads` next
        self._trying: dict[bool, int | None] = {True: None, False: None}  # until measured
        self._unmeasured: dict[bool, int] = {True: 0, False: 0}  # steps of a try not to measure
        self._busy_every: dict[bool, int] = {True: EXPLORE_BUSY, False: EXPLORE_BUSY}

    def choose(self, n_tokens: int) -> int:
        if n_tokens <= 1 or self.threads == self.threads_batch:
            return self.threads if n_tokens <= 1 else self.threads_batch
        small = n_tokens <= SMALL_STEP
        if self._trying[small] is not None:
            return self._trying[small]
        preferred, other = self.threads_batch, self.threads
        if (small, preferred) not in self._times:
            return preferred
        measured = self._times.get((small, other))
        best = other if measured and median(measured) < median(self._times[(small, preferred)]) else preferred
        self._steps[small] += 1
        if best == preferred:
            self._busy_every[small] = EXPLORE_BUSY
        every = EXPLORE_QUIET if best == preferred else self._busy_every[small]
        # Generation steps are many and cheap to try: the other count gets its first try at
        # once. Prompt steps are few and dear: theirs waits for a reason.
        explore = (measured is None and small) or self._steps[small] >= every
        if self._suspect[small]:  # a slow step on `threads_batch`: try `threads` unless already on it
            self._suspect[small] = False
            explore = explore or best == preferred
        if not explore:
            return best
        self._steps[small] = 0
        trial = other if best == preferred else preferred
        self._times[(small, trial)] = deque(maxlen=WINDOW)  # a trial replaces older figures
        self._trying[small] = trial
        self._unmeasured[small] = 1 if trial > best else 0  # its first step wakes threads
        return trial

    def record(self, n_tokens: int, threads: int, seconds: float) -> None:
        if n_tokens <= 1 or self.threads == self.threads_batch:
            return
        small = n_tokens <= SMALL_STEP
        if self._unmeasured[small] and self._trying[small] == threads:
            self._unmeasured[small] -= 1
            return
        times = self._times.setdefault((small, threads), deque(maxlen=WINDOW))
        per_token = seconds / n_tokens
        if times and threads == self.threads_batch and per_token > SLOWER * median(times):
            self._suspect[small] = True
        times.append(per_token)
        if self._trying[small] != threads:
            return
        self._trying[small] = None
        in_favour = self._times.get((small, self.threads))
        if threads == self.threads_batch and in_favour and median(in_favour) < per_token:  # lost again
            self._busy_every[small] = min(2 * self._busy_every[small], EXPLORE_QUIET)
