"""Sampling a step's sequences on two threads.

llama.cpp's sampler chain builds a candidate entry for every token of the vocabulary and
runs each sampler over them: with temperature and `dist` over SmolLM2's 49,152 tokens that
is ~0.46 ms per sequence, three quarters of what a step of four streams spends outside
`llama_decode` (docs/performance.md, "Profile of a step"). Each sequence has its own chain
and reads only its own row of logits, so when several sequences sample in one step, a
helper thread samples half of them while the scheduler's thread samples the other half.
Both threads leave Python inside the C calls, so the halves run on two cores; after a
decode llama.cpp's own worker threads are idle. Plain temperature sampling draws with
numpy instead (softmax_draw.py, 0.17-0.25 ms), whose array operations leave Python too:
four sequences took 0.66-0.72 ms paired against 0.82-1.08 ms in turn.

The only state of the context that sampling changes is settled first, on the scheduler's
thread: the first `llama_get_logits_ith` after a decode puts the outputs in batch order
(`output_reorder`); later calls only read. A step with one sequence samples in place.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..crossthread import Inbox, start_thread
from .library import llama_library
from .sampler import SequenceSampler

_STOP = object()


class PairedSampling:
    def __init__(self) -> None:
        self._lib = llama_library()
        self._work = Inbox()
        self._done = Inbox()
        self._started = False

    def sample(self, ctx: int, work: Sequence[tuple[SequenceSampler, int]]) -> list[int]:
        """The next token of each (sampler, batch index), in order. Scheduler's thread only."""
        if len(work) < 2:
            return [sampler.sample(ctx, index) for sampler, index in work]
        if not self._started:
            start_thread(self._serve, name="llama-sampler")
            self._started = True
        self._lib.llama_get_logits_ith(ctx, work[0][1])  # reorders the outputs, once
        half = len(work) // 2
        self._work.put((ctx, work[:half]))
        mine = [sampler.sample(ctx, index) for sampler, index in work[half:]]
        theirs = self._done.get()
        if isinstance(theirs, BaseException):
            raise theirs
        return theirs + mine

    def close(self) -> None:
        if self._started:
            self._work.put(_STOP)
            self._done.get()
            self._started = False

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is _STOP:
                self._done.put(None)
                return
            ctx, work = item
            try:
                self._done.put([sampler.sample(ctx, index) for sampler, index in work])
            except BaseException as exc:  # the scheduler's thread raises it
                self._done.put(exc)
