"""Building one decode step: which sequences take part, and what each puts in the batch.

Each step is one `llama_decode` of one batch: the next token of every generating sequence
(with its drafted tokens, drafting.py) plus a chunk of any prompt still being evaluated.

LoRA adapters apply to the whole context, not to a sequence, so one step serves only the
sequences that run under the same adapters (adapters.py). When sequences under different
adapters are active, steps take turns between them: each step serves the group served
least recently, so every group advances and none waits for another to finish. Alone, a
group gets every step, as if adapters did not exist. Sequences of one group are batched
together exactly as before, so a request's text under its adapters is the same batched
or alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .batch import Batch
from .jobs import Job
from .placement import MIN_CHUNK, Slot

SHORT_PROMPT = 64  # tokens: a newcomer's prompt this short is evaluated in a step of its own


@dataclass
class Step:
    """What one batch holds, to read back after the decode."""

    adapters: tuple = ()
    to_sample: list[tuple[Job, int, list[int]]] = field(default_factory=list)  # job, index, draft
    prefill: list[tuple[Job, int, int]] = field(default_factory=list)  # job, index, length


class StepBuilder:
    def __init__(self, slots: list[Slot], batch: Batch, n_ctx: int, batch_size: int) -> None:
        self._slots = slots
        self._batch = batch
        self._n_ctx = n_ctx
        self._batch_size = batch_size
        self._last_was_newcomers = False
        self._steps = 0
        self._served: dict[tuple, int] = {}  # adapter key -> the step that last served it

    def group(self) -> tuple[tuple, list[Slot]]:
        """The adapter key this step serves, and the slots whose jobs run under it."""
        active = [slot for slot in self._slots if slot.job is not None]
        keys = list(dict.fromkeys(slot.job.adapters for slot in active))
        self._steps += 1
        if len(keys) <= 1:
            self._served.clear()
            return (keys[0] if keys else ()), self._slots
        self._served = {key: step for key, step in self._served.items() if key in keys}
        chosen = min(keys, key=lambda key: self._served.get(key, 0))  # first seen first, on ties
        self._served[chosen] = self._steps
        return chosen, [slot for slot in self._slots if slot.job is not None and slot.job.adapters == chosen]

    def newcomers_first(self, slots: list[Slot]) -> bool:
        """A step costs about the same per token whoever the tokens belong to, so a newcomer
        with a short prompt gets a step of its own: its first token comes after its own
        prompt instead of after its prompt plus everyone's next token, and the running
        streams lose one step. Such steps alternate with normal ones, so a stream of
        newcomers cannot stall running generations."""
        return not self._last_was_newcomers and any(
            slot.job is not None
            and slot.job.prefilled == slot.job.reused
            and len(slot.job.prompt) - slot.job.prefilled <= SHORT_PROMPT
            for slot in slots
        )

    def fill(self, adapters: tuple, slots: list[Slot], newcomers_first: bool) -> Step:
        batch = self._batch
        batch.clear()
        step = Step(adapters)
        generating = [slot for slot in slots if slot.job is not None and slot.job.next_token is not None]
        self._last_was_newcomers = newcomers_first and bool(generating)
        alone = len(generating) == 1
        for slot in generating if not self._last_was_newcomers else ():
            job = slot.job
            draft = self._draft(job, slot, alone)
            tokens = [job.next_token, *draft]
            index = batch.add(tokens, len(slot.cached), slot.seq_id, "all" if draft else "last")
            slot.cached.extend(tokens)
            job.next_token = None
            step.to_sample.append((job, index, draft))
        budget = batch.room if not step.to_sample else min(batch.room, self._prefill_chunk())
        for slot in slots:
            job = slot.job
            if job is None or not job.in_prefill or budget <= 0:
                continue
            if self._last_was_newcomers and len(job.prompt) - job.prefilled > SHORT_PROMPT:
                continue
            remaining = len(job.prompt) - job.prefilled
            if job.media is not None:  # text up to the next image, which is decoded on its own
                if job.media.image_at(job.prefilled) is not None:
                    continue
                remaining = job.media.text_before_next_image(job.prefilled, len(job.prompt))
            take = min(budget, remaining)
            if remaining - take == 1:
                take -= 1  # never leave a single token for the last chunk
            if take < min(MIN_CHUNK, remaining):
                continue
            chunk = job.prompt[job.prefilled : job.prefilled + take]
            last = job.prefilled + len(chunk) == len(job.prompt)
            outputs = "all" if job.wants_echo_logprobs else ("last" if last else "none")
            index = batch.add(chunk, len(slot.cached), slot.seq_id, outputs)
            slot.cached.extend(chunk)
            job.prefilled += len(chunk)
            budget -= len(chunk)
            step.prefill.append((job, index, len(chunk)))
            if last:
                step.to_sample.append((job, index + len(chunk) - 1, []))
        return step

    def _prefill_chunk(self) -> int:
        """While others generate, evaluate prompts in small bites so their tokens keep flowing."""
        return max(16, self._batch_size // 4)

    def _draft(self, job: Job, slot: Slot, alone: bool) -> list[int]:
        """Drafted tokens to check with the job's next token (drafting.py): by default only
        for a sequence generating alone, where a step has cores to spare; a request can ask
        for it always (`speculative: true`) or never."""
        wanted = job.params.speculative
        if job.lookup is None or (wanted is None and not alone):
            return []
        room = min(job.limit - job.generated, self._n_ctx - len(slot.cached) - 2, self._batch.room - 1)
        return job.lookup.propose(room)
