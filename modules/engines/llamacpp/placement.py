"""Which sequence slot a new job takes, and which cached prefix of its prompt it starts from.

Each slot remembers the tokens whose KV cells it holds. A new job takes the free slot that
shares the longest prefix with its prompt; a longer prefix held by a busy slot is copied
(`llama_memory_seq_cp`), or one saved in the prompt cache is restored. Whatever cache the
job overwrites is saved first when it is long enough to be worth keeping.

Cells are only reused under the LoRA adapters that computed them: a slot and a saved state
carry their adapter key (adapters.py), and a prefix counts only when the keys are equal.
Use on the scheduler's thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .jobs import Job
from .prompt_cache import PromptCache, common_prefix

MIN_GAIN = 16  # prefix tokens a copy or a restore must save to be worth its cost
# llama.cpp computes a sequence's single query row on another path than several rows, with
# slightly different floats. Generation always feeds one token per sequence, alone or
# batched; prompts are evaluated at least two tokens at a time, so that the same prompt
# gives the same logits however it was cut into chunks or reused from the cache.
MIN_CHUNK = 2


@dataclass
class Slot:
    seq_id: int
    cached: list[int]  # the tokens whose KV this sequence holds, positions 0..n-1
    job: Job | None = None
    adapters: tuple = field(default=())  # the adapter key the cached cells were computed under


class Placer:
    def __init__(self, lib, slots: list[Slot], prompt_cache: PromptCache) -> None:
        self._lib = lib
        self._slots = slots
        self._prompt_cache = prompt_cache
        self._ctx = None
        self._memory = None

    def bind(self, ctx: int, memory: int) -> None:
        self._ctx, self._memory = ctx, memory

    def place(self, job: Job, free: list[Slot]) -> tuple[Slot, int]:
        """Put the job's prefix into a free slot; the slot and how many prompt tokens it
        already holds (the rest is evaluated)."""
        limit = 0 if job.wants_echo_logprobs else max(0, len(job.prompt) - MIN_CHUNK)
        key = job.adapters

        def shared(slot: Slot) -> int:
            if slot.adapters != key:
                return 0
            return min(common_prefix(slot.cached, job.prompt), limit)

        target = max(free, key=lambda slot: (shared(slot), -len(slot.cached)))
        reuse = shared(target)
        source: Slot | int | None = None
        for slot in self._slots:
            if slot.job is not None and shared(slot) >= reuse + MIN_GAIN:
                reuse, source = shared(slot), slot
        saved_key, saved = self._prompt_cache.best(job.prompt, key)
        if saved_key is not None and min(saved, limit) >= reuse + MIN_GAIN:
            reuse, source = min(saved, limit), saved_key
        if source is not None:  # sacrifice the free slot whose cache is worth least
            target = min(free, key=lambda slot: len(slot.cached))
        kept = reuse if source is None else 0
        if len(target.cached) - kept >= MIN_GAIN:
            self._prompt_cache.save(self._ctx, target.seq_id, target.cached, target.adapters)
        if source is not None:
            self.forget(target.seq_id)
            if isinstance(source, Slot):
                self._lib.llama_memory_seq_cp(self._memory, source.seq_id, target.seq_id, -1, -1)
                target.cached = list(source.cached)
            else:
                target.cached = self._prompt_cache.restore(self._ctx, source, target.seq_id) or []
                reuse = min(reuse, len(target.cached))
        if job.media is not None:
            reuse = job.media.start_of_image_at(reuse)  # never half an image
        if not self._lib.llama_memory_seq_rm(self._memory, target.seq_id, reuse, -1):
            self.forget(target.seq_id)
            reuse = 0
        del target.cached[reuse:]
        target.adapters = key
        return target, reuse

    def forget(self, seq_id: int) -> None:
        """Drop a sequence's cells (after a failure, or before taking over another prefix)."""
        self._lib.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
        self._slots[seq_id].cached.clear()
