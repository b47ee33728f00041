"""Choosing the thread count of each decode step from measured speed.

llama.cpp takes a thread count per decode. More threads win on an idle machine, even for
one token: on the project's 2-core machine a one-token step of the default model took
~9.5 ms on 2 threads against ~14 on 1 (llama-server decodes on `--threads`, 1 there). But
OpenMP threads busy-wait for each other: when another program takes a core, a step on two
threads on a two-core machine runs two (one token) to twenty-five (4 batched sequences:
~145 to ~6 tokens/s) times slower than on one (../shared/FACTS.md). So the governor
measures the time per token of each kind of step (one token, a few tokens, a long prompt)
with each of the two counts, `threads` and `threads_batch`, and uses the faster one.

Each kind starts with its configured count: `threads` for one token, `threads_batch` for
more, so that a prompt never pays for a trial of the other count unless there is a reason.
Trying the other count costs a slow step (on a quiet machine 4 batched tokens: 45 ms on 1
thread against 28 ms on 2; a prompt of 4 x 23 tokens: ~500 ms against ~270 ms), so it is
tried once early for generation steps (one token, and a few at a time), as soon as the
configured count has a full window of steps (the first steps after a start pay for
building graphs and touching memory: a server's first step of four streams took 80 ms on
2 threads, and measured against that step alone, 1 thread won and kept the first
concurrent requests on it for 24 steps), then rarely while
more threads keep their pace (every `EXPLORE_QUIET` steps), at once when a step on more
threads takes much longer than usual (the machine may have got busier), and often while
fewer threads are in favour (after `EXPLORE_BUSY` steps), so that it returns soon after
the machine gets quiet again. Each try of more threads on a busy machine costs two slow
steps (see below), so while those tries keep losing they come less often: after 24 steps,
then 48, then every 96 (one-token steps: on to 192, then every 384, see `LONGEST_WAIT`).
More threads are taken only when clearly faster (`FASTER`): on a busy machine a step on
two threads is now and then as fast as on one, and the next ones are not.

Measurements are noisy, and two kinds of noise once kept a quiet machine on one thread for
seconds (docs/performance.md, "Threads"):
- Single slow steps: 3% of the steps of four streams took over 1.5 times the usual. The
  count in use is judged by the median of its last `WINDOW` steps, which one slow step does
  not move; the other count by its latest trial.
- Waking threads: the first step on more threads after a while on fewer took up to 240 ms
  instead of 30 (the threads that were not used had gone to sleep). So a try of more
  threads lasts two steps, and only the second is measured. (Steps of another kind that
  run on more threads now and then, such as a single stream's drafted steps between its
  one-token steps on one thread, are measured as they are: waking the threads is part of
  what they cost.)
"""

from __future__ import annotations

from collections import deque
from statistics import median

SMALL_STEP = 32  # tokens: generation steps (one token per sequence) and short prompts
WINDOW = 5  # latest steps of the count in use: their median is its time per token
EXPLORE_QUIET = 96  # steps between tries of fewer threads while more are in favour
EXPLORE_BUSY = 24  # steps before the first try of more threads once fewer are in favour
SLOWER = 2.5  # a step this many times its count's median looks like contention
FASTER = 0.9  # more threads are in favour only when this much faster than fewer

ONE, FEW, MANY = "one token", "a few tokens", "many tokens"  # the kinds of step
KINDS = (ONE, FEW, MANY)

# The longest wait between tries of more threads that keep losing, in steps. One-token
# steps are short (~17 ms on a busy 2-core machine) and a try costs much more than two of
# them (its steps took 100-180 ms with another program on the other core), so their tries
# back off further: a try every 384 steps costs ~2% of a busy machine's speed, and a
# quiet one gets its second thread back within ~6 s.
LONGEST_WAIT = {ONE: 4 * EXPLORE_QUIET, FEW: EXPLORE_QUIET, MANY: EXPLORE_QUIET}


def kind_of(n_tokens: int) -> str:
    return ONE if n_tokens <= 1 else FEW if n_tokens <= SMALL_STEP else MANY


class ThreadGovernor:
    def __init__(self, threads: int, threads_batch: int) -> None:
        self.threads = threads
        self.threads_batch = threads_batch
        self.more, self.fewer = max(threads, threads_batch), min(threads, threads_batch)
        # (kind, threads) -> seconds per token of its latest measured steps
        self._times: dict[tuple[str, int], deque[float]] = {}
        self._steps = dict.fromkeys(KINDS, 0)  # since the last try
        self._suspect = dict.fromkeys(KINDS, False)  # try fewer threads next
        self._trying: dict[str, int | None] = dict.fromkeys(KINDS)  # until measured
        self._unmeasured = dict.fromkeys(KINDS, 0)  # steps of a try not to measure
        self._busy_every = dict.fromkeys(KINDS, EXPLORE_BUSY)

    def choose(self, n_tokens: int) -> int:
        if self.threads == self.threads_batch:
            return self.threads
        kind = kind_of(n_tokens)
        if self._trying[kind] is not None:
            return self._trying[kind]
        more, fewer = self._times.get((kind, self.more)), self._times.get((kind, self.fewer))
        if not more and not fewer:
            return self._configured(kind)
        best = self.more if more and (not fewer or self._faster(median(more), fewer)) else self.fewer
        self._steps[kind] += 1
        if best == self.more:
            self._busy_every[kind] = EXPLORE_BUSY
        every = EXPLORE_QUIET if best == self.more else self._busy_every[kind]
        # Generation steps are many and cheap to try: the other count gets its first try once
        # the configured count has a full window. Prompt steps are few and dear: theirs
        # waits for a reason.
        configured = self._times.get((kind, self._configured(kind)), ())
        first_try = not (more and fewer) and kind != MANY and len(configured) >= WINDOW
        explore = first_try or self._steps[kind] >= every
        if self._suspect[kind]:  # a slow step on more threads: try fewer unless already on them
            self._suspect[kind] = False
            explore = explore or best == self.more
        if not explore:
            return best
        self._steps[kind] = 0
        trial = self.fewer if best == self.more else self.more
        self._times[(kind, trial)] = deque(maxlen=WINDOW)  # a trial replaces older figures
        self._trying[kind] = trial
        self._unmeasured[kind] = 1 if trial == self.more else 0  # its first step wakes threads
        return trial

    def record(self, n_tokens: int, threads: int, seconds: float) -> None:
        if self.threads == self.threads_batch:
            return
        kind = kind_of(n_tokens)
        if self._unmeasured[kind] and self._trying[kind] == threads:
            self._unmeasured[kind] -= 1
            return
        times = self._times.setdefault((kind, threads), deque(maxlen=WINDOW))
        per_token = seconds / n_tokens
        if times and threads == self.more and per_token > SLOWER * median(times):
            self._suspect[kind] = True
        times.append(per_token)
        if self._trying[kind] != threads:
            return
        self._trying[kind] = None
        fewer = self._times.get((kind, self.fewer))
        if threads == self.more and fewer and not self._faster(per_token, fewer):  # lost again
            self._busy_every[kind] = min(2 * self._busy_every[kind], LONGEST_WAIT[kind])

    def _configured(self, kind: str) -> int:
        return self.threads if kind == ONE else self.threads_batch

    @staticmethod
    def _faster(more: float, fewer: deque[float]) -> bool:
        """Whether more threads' time per token clearly beats fewer threads' median."""
        return more < FASTER * median(fewer)
