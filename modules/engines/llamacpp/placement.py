"""Which sequence slot a new job takes, and which cached prefix of its prompt it starts from.

Each slot remembers the tokens whose KV cells it holds. A new job takes the free slot
whose cache it continues (it throws away less of it than is worth keeping, MIN_KEPT) with
the longest shared prefix; an empty slot counts as such. Failing that, it takes the free
slot that loses least: it does not overwrite another conversation while a slot is empty.
A longer prefix held by another slot, busy or free, is copied (`llama_memory_seq_cp`), or
one saved in the prompt cache is restored. Whatever cache the job overwrites is saved
first when it is long enough to be worth keeping.

Cells are only reused under the LoRA adapters that computed them: a slot and a saved state
carry their adapter key (adapters.py), and a prefix counts only when the keys are equal.
Use on the scheduler's thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .jobs import Job
from .prompt_cache import PromptCache, common_prefix

# Copying a prefix's cells or restoring a saved state costs well under a millisecond per
# hundred tokens (SmolLM2-135M: 0.4 ms for 118 tokens); evaluating them costs milliseconds
# each. So a copy or a restore that saves a few tokens pays; below this it is not bothered.
MIN_GAIN = 8
MIN_KEPT = 16  # a slot's cache is saved before it is overwritten when it loses this much
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

        shared = {  # by seq_id: the prompt tokens each slot's cache could serve
            slot.seq_id: min(common_prefix(slot.cached, job.prompt), limit) if slot.adapters == key else 0
            for slot in self._slots
        }

        def rank(slot: Slot) -> tuple[bool, int, int]:
            held = shared[slot.seq_id]
            lost = len(slot.cached) - held
            continued = lost < MIN_KEPT  # what the job throws away is not worth keeping
            return continued, held if continued else -lost, held

        # The free slot whose cache the job continues, with the longest prefix (the next
        # turn of its conversation, or an empty slot); else the one that loses least.
        target = max(free, key=rank)
        reuse = shared[target.seq_id]
        source: Slot | int | None = None
        for slot in self._slots:  # a longer prefix elsewhere, busy or free, is copied
            if slot is not target and shared[slot.seq_id] >= reuse + MIN_GAIN:
                reuse, source = shared[slot.seq_id], slot
        saved_key, saved = self._prompt_cache.best(job.prompt, key)
        if saved_key is not None and min(saved, limit) >= reuse + MIN_GAIN:
            reuse, source = min(saved, limit), saved_key
        if source is not None:  # sacrifice the free slot whose cache is worth least
            target = min((slot for slot in free if slot is not source), key=lambda slot: len(slot.cached))
        kept = reuse if source is None else 0
        if len(target.cached) - kept >= MIN_KEPT:
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
