"""The per-model worker: one OS thread that owns the llama.cpp context.

Request handlers never call into the context. They hand a `Job` to the scheduler and read
deltas from its channel. The scheduler keeps `parallel` sequence slots in one context;
each step it builds one batch holding the next token of every generating sequence plus a
chunk of any prompt still being evaluated, runs one `llama_decode`, and samples each
sequence with its own sampler chain. New jobs join between steps; a cancelled job leaves
between steps, so its slot is free within one decode. Each slot remembers the tokens in
its part of the cache, and a new job takes the free slot that shares the longest prefix
with its prompt: the next turn of a conversation only evaluates what is new.

The ideas live in modules of their own: the context and its options (context.py), where a
job starts and which prefix it reuses (placement.py), what one step's batch holds
(steps.py), LoRA adapters (adapters.py). This module runs them: the thread, the commands,
the decode, and what becomes of each sampled token.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from ...errors import EngineFailure, HearthError, Overloaded, Unavailable
from ..base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Delta,
    EngineStats,
    TokenLogprob,
    Usage,
)
from ..crossthread import Empty, Inbox, Mailer, start_thread
from ..manager import LOAD_PROGRESS
from ..text_assembler import TextAssembler
from .adapters import ActiveAdapter, AdapterLibrary
from .context import Context, ContextOptions, open_context
from .drafting import PromptLookup
from .jobs import Job, probe_entries
from .library import llama_library
from .media import Projector
from .model import LlamaModel
from .paired_sampling import PairedSampling
from .placement import Placer, Slot
from .prompt_cache import PromptCache
from .sampler import SequenceSampler, filtered_logprobs, log_softmax, logits_at, top_logprobs
from .steps import StepBuilder
from .threads import ThreadGovernor

__all__ = ["ContextOptions", "Scheduler", "llama_library"]

log = logging.getLogger(__name__)


# Requests that come together (clients started at once) arrive a few milliseconds apart,
# each read and checked in turn by the server. An idle scheduler waits this long after the
# first for the others, so that their prompts share one step instead of queueing behind
# each other's: first tokens come sooner for all but the first, by at most this for it.
# Each job takes its slot as soon as it arrives, so whatever placing it costs (saving the
# slot's old cache, prompt_cache.py) is spent while the server still reads the others.
GATHER_SECONDS = 0.004


_WAKE = object()
_STOP = object()
_CALL = object()


class Scheduler:
    def __init__(self, path: Path, options: ContextOptions, mailer: Mailer) -> None:
        self._path = path
        self._model: LlamaModel | None = None
        self._mailer = mailer
        self._options = options
        self._inbox = Inbox()
        self._waiting: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}  # every job not yet finished, by request id
        self._slots = [Slot(i, []) for i in range(options.parallel)]
        self._prompt_cache = PromptCache(options.prompt_cache_bytes)
        self._lib = llama_library()
        self._placer = Placer(self._lib, self._slots, self._prompt_cache)
        self._context: Context | None = None
        self._ctx = None  # the context pointer, for the calls that take it
        self._projector: Projector | None = None
        self._adapters: AdapterLibrary | None = None
        self.n_ctx = options.n_ctx
        self._ready = mailer.channel()
        self._on_progress = LOAD_PROGRESS.get()  # read here: the new thread has no context
        start_thread(self._run, name=f"llama:{path.name}")
        outcome = self._ready.get()  # waits without blocking gevent's loop
        if isinstance(outcome, BaseException):
            raise outcome

    @property
    def model(self) -> LlamaModel:
        assert self._model is not None
        return self._model

    # --- Any thread ----------------------------------------------------------------------

    @property
    def reads_images(self) -> bool:
        return self._projector is not None

    @property
    def context(self) -> Context:
        assert self._context is not None
        return self._context

    def set_adapters(self, entries: Sequence[tuple[str, Path, float]]) -> tuple[ActiveAdapter, ...]:
        """Make these (name, file, scale) the model's LoRA adapters (adapters.py); the jobs
        already submitted keep the adapters they started with."""
        return self._call(lambda: self._adapters.set_active(entries))

    def _call(self, work: Callable[[], object]):
        """Run `work` on the scheduler's thread, between two steps, and return its result."""
        reply = self._mailer.channel()
        self._inbox.put((_CALL, work, reply))
        outcome = reply.get()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def submit_media(self, job: Job, parts, limit: Callable[[int], int]) -> None:
        """A prompt with images: the projector's thread cuts it into chunks first (`limit`
        gives the job's token limit for its prompt's length, or raises), then it queues."""
        assert self._projector is not None
        self._check_room()
        self._jobs[job.id] = job

        def tokenized(result) -> None:  # on the projector's thread
            try:
                if isinstance(result, HearthError):
                    raise result
                job.media, job.prompt = result, result.tokens
                job.limit = limit(len(job.prompt))
            except HearthError as exc:
                if job.media is not None:
                    self._projector.free_tokens(job.media)
                self._jobs.pop(job.id, None)
                job.channel.put(exc)
                return
            self._inbox.put(job)

        self._projector.tokenize(parts, tokenized)

    def _check_room(self) -> None:
        waiting = self._queued()
        if waiting >= self._options.queue_size:
            raise Overloaded(
                f"The model is busy: {waiting} requests are already waiting. Retry shortly.",
                retry_after=max(1, waiting // max(1, len(self._slots))),
            )

    def submit(self, job: Job) -> None:
        self._check_room()
        self._jobs[job.id] = job
        self._inbox.put(job)

    def cancel(self, request_id: str) -> bool:
        job = self._jobs.get(request_id)
        if job is None:
            return False
        job.cancelled = True
        self._inbox.put(_WAKE)
        return True

    def cancel_all(self) -> int:
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancelled = True
        self._inbox.put(_WAKE)
        return len(jobs)

    def stats(self) -> EngineStats:
        busy = sum(1 for slot in self._slots if slot.job is not None)
        return EngineStats(
            slots=len(self._slots),
            busy_slots=busy,
            queued=self._queued(),
            cached_prompts=len(self._prompt_cache),
        )

    def _queued(self) -> int:
        """Jobs that wait for a slot: those beyond the slots (one on its way to a free slot,
        gathered with its burst, does not wait for one)."""
        return max(0, len(self._jobs) - len(self._slots))

    def stop(self) -> None:
        """Cancel everything, free the context, and end the thread."""
        done = self._mailer.channel()
        self._inbox.put((_STOP, done))
        done.get()

    # --- The scheduler's thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            # loaded on this thread, like every other call
            o = self._options
            self._model = LlamaModel(
                self._path, gpu_layers=o.gpu_layers, load_mode=o.load_mode, progress=self._on_progress
            )
            self.n_ctx = o.n_ctx or self._model.n_ctx_train
            self._context = open_context(self._lib, self._model, o, self.n_ctx)
            context = self._context
            self._ctx, self._memory, self._batch = context.ptr, context.memory, context.batch
            self._placer.bind(self._ctx, self._memory)
            self._stepper = StepBuilder(self._slots, self._batch, self.n_ctx, o.batch_size)
            self._governor = ThreadGovernor(o.threads, o.threads_batch)
            self._sampling = PairedSampling()
            self._threads_in_use = -1
            self._adapters = AdapterLibrary(self._lib, self._model.ptr)
            if o.mmproj is not None:
                self._projector = self._open_projector()
        except BaseException as exc:  # report load failures to the caller, do not die silently
            if self._ctx:
                self._lib.llama_free(self._ctx)
                self._ctx = None
            if self._model is not None:
                self._model.close()
            self._ready.put(
                exc
                if isinstance(exc, HearthError)
                else EngineFailure(f"Could not load {self._path.name}: {exc}")
            )
            return
        self._ready.put(True)
        stopped_by = None
        while stopped_by is None:
            try:
                stopped_by = self._serve_once()
            except Exception:  # a bug must not leave callers waiting forever
                log.exception("scheduler step failed; failing the running requests")
                self._fail_active(EngineFailure("The engine failed while generating."))
        self._shutdown(stopped_by)

    def _open_projector(self) -> Projector | None:
        o = self._options
        try:
            return Projector(o.mmproj, self._model.ptr, self._model.n_embd, o.threads)
        except HearthError as exc:
            if not o.mmproj_optional:
                raise
            log.warning("%s: the projector found beside it is not used: %s", self._path.name, exc.message)
            return None

    def _serve_once(self):
        """Take commands, admit waiting jobs, run one step. Returns the stop reply, if any."""
        idle = not self._waiting and all(slot.job is None for slot in self._slots)
        command = self._inbox.get() if idle else _WAKE
        gathering = idle and isinstance(command, Job)
        gather_until = time.monotonic() + GATHER_SECONDS if gathering else 0.0
        while True:
            if isinstance(command, Job):
                self._waiting.append(command)
                if gathering:  # placed at once: saving a slot's old cache overlaps the wait
                    self._admit()
            elif isinstance(command, tuple) and command[0] is _STOP:
                return command[1]
            elif isinstance(command, tuple) and command[0] is _CALL:
                self._run_call(*command[1:])
            try:
                wait = gather_until - time.monotonic()
                command = self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
            except Empty:
                break
        self._drop_cancelled()
        self._admit()
        if any(slot.job is not None for slot in self._slots):
            self._step()
        return None

    @staticmethod
    def _run_call(work: Callable[[], object], reply) -> None:
        try:
            reply.put(work())
        except Exception as exc:  # the caller gets the error, the scheduler goes on
            reply.put(exc if isinstance(exc, HearthError) else EngineFailure(str(exc)))

    def _drop_cancelled(self) -> None:
        now = time.monotonic()
        free = sum(1 for slot in self._slots if slot.job is None)
        for job in list(self._waiting):
            if job.cancelled:
                self._waiting.remove(job)
                self._finish(job, FINISH_CANCELLED)
            elif job.deadline and now > job.deadline and free == 0:  # else it starts, and ends
                self._waiting.remove(job)
                self._fail(
                    job,
                    Unavailable(
                        "The request timed out waiting for a free slot.", headers={"Retry-After": "5"}
                    ),
                )
        for slot in self._slots:
            job = slot.job
            if job and job.cancelled:
                self._finish(job, FINISH_CANCELLED)
            elif job and job.deadline and now > job.deadline:
                log.warning("request %s reached its time limit; ending it", job.id)
                self._finish(job, FINISH_LENGTH)

    def _admit(self) -> None:
        while self._waiting:
            free = [slot for slot in self._slots if slot.job is None]
            if not free:
                return
            job = self._waiting.popleft()
            try:
                job.sampler = SequenceSampler(self._model, job.params, job.prompt)
            except HearthError as exc:
                self._fail(job, exc)
                continue
            self._start(job, free)

    def _start(self, job: Job, free: list[Slot]) -> None:
        """Start the job in a free slot, from the longest cached prefix of its prompt."""
        target, reuse = self._placer.place(job, free)
        target.job = job
        job.started_at = time.monotonic()
        job.seq_id = target.seq_id
        job.prefilled = job.reused = reuse
        job.assembler = TextAssembler(job.params.stop)
        if self._options.draft_max and job.params.speculative is not False and job.probe is None:
            job.lookup = PromptLookup(job.prompt, self._options.draft_max, asked=bool(job.params.speculative))

    def _step(self) -> None:
        adapters, slots = self._stepper.group()
        newcomers_first = self._stepper.newcomers_first(slots)
        self._images(adapters, slots)
        step = self._stepper.fill(adapters, slots, newcomers_first)
        batch = self._batch
        if batch.size == 0:
            return
        self._adapters.apply(self._ctx, step.adapters)
        threads = self._governor.choose(batch.size)
        beside = self._cores_beside_projector()
        if beside < threads:  # an image is being encoded: leave its core to it
            threads = beside
        if threads != self._threads_in_use:
            self._lib.llama_set_n_threads(self._ctx, threads, threads)
            self._threads_in_use = threads
        started = time.perf_counter()
        code = self._lib.llama_decode(self._ctx, batch.as_struct())
        if beside >= threads:  # a step squeezed beside the projector says nothing of the machine
            self._governor.record(batch.size, threads, time.perf_counter() - started)
        if code != 0:
            jobs = {job for job, _, _ in step.to_sample} | {job for job, _, _ in step.prefill}
            for job in jobs:
                self._placer.forget(job.seq_id)
                self._fail(job, EngineFailure(f"llama_decode failed with code {code}."))
            return
        for job, index, length in step.prefill:
            if job.wants_echo_logprobs:
                self._collect_echo_logprobs(job, index, length)
        sampled = self._sample_together(step)
        for job, index, draft in step.to_sample:
            if self._slots[job.seq_id].job is not job:
                continue
            if draft:
                self._verify(job, index, draft)
            else:
                self._advance(job, index, token=sampled.get(job))

    def _sample_together(self, step) -> dict[Job, int]:
        """The next token of every plain generating sequence of the step, sampled on two
        threads (paired_sampling.py). A first token (which may be a probe, or not wanted)
        and drafted positions (sampled in turn, each after the previous) are left out."""
        jobs = [
            (job, index)
            for job, index, draft in step.to_sample
            if not draft and job.first_token_at is not None and self._slots[job.seq_id].job is job
        ]
        tokens = self._sampling.sample(self._ctx, [(job.sampler, index) for job, index in jobs])
        return {job: token for (job, _), token in zip(jobs, tokens, strict=True)}

    def _cores_beside_projector(self) -> int:
        """The cores a step may use: all, or while the projector encodes an image, those it
        leaves. OpenMP threads wait for each other: a step on as many threads as cores, with
        a core taken by the encoder, stalls at every barrier (3 streams kept about half
        their speed while images came; docs/media.md)."""
        projector = self._projector
        if projector is None or not projector.encoding:
            return 1 << 16
        return max(1, (os.cpu_count() or 2) - projector.threads)

    def _images(self, adapters: tuple, slots: list[Slot]) -> None:
        """Sequences whose prompt has reached an image: have it encoded (on the projector's
        thread, while this one goes on), then decode its embeddings in a decode of their own
        (token and embedding entries cannot share one batch), under the step's adapters."""
        for slot in slots:
            job = slot.job
            if job is None or job.media is None or not job.in_prefill:
                continue
            image = job.media.image_at(job.prefilled)
            if image is None:
                continue
            if image.failed is not None:
                self._placer.forget(slot.seq_id)
                self._fail(job, image.failed)
            elif image.embeddings is None:
                if not image.requested:
                    self._projector.encode(image, done=lambda: self._inbox.put(_WAKE))
            else:
                self._adapters.apply(self._ctx, adapters)
                code = self._projector.decode(self._ctx, image, slot.seq_id, self._batch.capacity)
                image.embeddings = None  # decoded: free the memory
                if code != 0:
                    self._placer.forget(slot.seq_id)
                    self._fail(job, EngineFailure(f"Decoding an image failed with code {code}."))
                    continue
                slot.cached.extend(job.prompt[job.prefilled : job.prefilled + image.n_pos])
                job.prefilled += image.n_pos

    def _verify(self, job: Job, index: int, draft: list[int]) -> None:
        """Sample each position of a drafted step in turn; keep the drafted tokens the sampler
        agrees with, and drop the KV cells of the rest."""
        slot = self._slots[job.seq_id]
        first = len(slot.cached) - len(draft)  # the position of draft[0]
        accepted = 0
        for i in range(len(draft) + 1):
            token = self._advance(job, index + i, position=first + i)
            if token is None or i == len(draft) or token != draft[i]:
                break
            accepted += 1  # already in the cache: it is not fed again
            job.next_token = None
        if job.lookup is not None:
            job.lookup.record(len(draft), accepted)
        keep = first + accepted
        if len(slot.cached) > keep:
            self._lib.llama_memory_seq_rm(self._memory, job.seq_id, keep, -1)
            del slot.cached[keep:]

    def _advance(
        self, job: Job, index: int, position: int | None = None, token: int | None = None
    ) -> int | None:
        """Sample the next token of `job` from the logits at batch `index` (unless `token`
        was sampled already), and emit it. Returns the token when the job goes on (it is
        then `next_token`), None when it ended. `position`: where the sampled token will sit
        (default: after the slot's cache)."""
        model = self._model
        if job.first_token_at is None:
            job.first_token_at = time.monotonic()
            if job.probe:
                self._answer_probe(job, index)
                return None
            if job.echo_text is not None:
                job.channel.put(Delta(text=job.echo_text, logprobs=tuple(job.echo_logprobs)))
            if job.limit <= 0:  # max_tokens=0: only the prompt (and its logprobs) was wanted
                self._finish(job, FINISH_LENGTH)
                return None
        logprobs = None
        if job.wants_logprobs:
            logprobs = log_softmax(logits_at(self._ctx, index, model.n_vocab))
        if token is None:
            token = job.sampler.sample(self._ctx, index)
        if model.is_end_of_generation(token) and not job.params.ignore_eos:
            self._finish(job, FINISH_STOP)
            return None
        job.generated += 1
        if job.lookup is not None:
            job.lookup.append(token)
        entry = None
        if logprobs is not None:
            piece = model.token_text(token)
            entry = TokenLogprob(
                piece.decode("utf-8", "replace"),
                piece,
                float(logprobs[token]),
                top_logprobs(model, logprobs, job.params.logprobs),
                id=token,
            )
        text, ready = job.assembler.feed(model.piece(token), entry)
        if text or ready:
            job.channel.put(Delta(text=text, logprobs=tuple(ready)))
        if position is None:
            position = len(self._slots[job.seq_id].cached)
        if job.assembler.stopped:
            self._finish(job, FINISH_STOP)
        elif job.generated >= job.limit or position + 1 > self.n_ctx:
            self._finish(job, FINISH_LENGTH)
        else:
            job.next_token = token
            return token
        return None

    def _collect_echo_logprobs(self, job: Job, index: int, length: int) -> None:
        """Prompt token p gets its logprob from the logits at position p - 1."""
        model, n = self._model, job.params.logprobs or 0
        first = job.prefilled - length
        for i in range(length):
            position = first + i
            token = job.prompt[position]
            piece = model.token_text(token)
            if position == 0 or job.last_logprobs is None:
                if not (position == 0 and token == model.bos and model.add_bos):
                    job.echo_logprobs.append(
                        TokenLogprob(piece.decode("utf-8", "replace"), piece, None, id=token)
                    )
            else:
                lp = job.last_logprobs
                job.echo_logprobs.append(
                    TokenLogprob(
                        piece.decode("utf-8", "replace"),
                        piece,
                        float(lp[token]),
                        top_logprobs(model, lp, n),
                        id=token,
                    )
                )
            job.last_logprobs = log_softmax(logits_at(self._ctx, index + i, model.n_vocab))

    def _answer_probe(self, job: Job, index: int) -> None:
        logits = logits_at(self._ctx, index, self._model.n_vocab)
        logprobs = filtered_logprobs(logits, job.params) if job.probe.use_samplers else log_softmax(logits)
        top = top_logprobs(self._model, logprobs, job.probe.top_n)
        job.channel.put(Delta(logprobs=probe_entries(top)))
        self._finish(job, FINISH_STOP)

    def _finish(self, job: Job, reason: str) -> None:
        text, ready = ("", [])
        if job.assembler is not None and reason != FINISH_CANCELLED:
            text, ready = job.assembler.finish()
        now = time.monotonic()
        first = job.first_token_at
        usage = Usage(
            prompt_tokens=len(job.prompt),
            completion_tokens=job.generated,
            cached_tokens=job.reused,
            queued_seconds=(job.started_at or now) - job.submitted,
            first_token_seconds=None if first is None else first - job.submitted,
            generation_seconds=0.0 if first is None else now - first,
            drafted_tokens=job.lookup.drafted if job.lookup else 0,
            accepted_draft_tokens=job.lookup.accepted if job.lookup else 0,
        )
        self._release(job)  # before the last delta: once a caller sees the end, the job is gone
        stop = job.assembler.stop_string if job.assembler is not None and job.assembler.stopped else None
        job.channel.put(
            Delta(text=text, logprobs=tuple(ready), finish_reason=reason, usage=usage, stop_sequence=stop)
        )

    def _fail(self, job: Job, error: HearthError) -> None:
        self._release(job)
        job.channel.put(error)

    def _release(self, job: Job) -> None:
        if job.media is not None and self._projector is not None:
            self._projector.free_tokens(job.media)
            job.media = None
        if job.sampler is not None:
            job.sampler.free()
            job.sampler = None
        if 0 <= job.seq_id < len(self._slots) and self._slots[job.seq_id].job is job:
            self._slots[job.seq_id].job = None
        self._jobs.pop(job.id, None)

    def _fail_active(self, error: HearthError) -> None:
        for slot in self._slots:
            if slot.job is not None:
                self._placer.forget(slot.seq_id)
                self._fail(slot.job, error)

    def _shutdown(self, reply) -> None:
        for job in list(self._waiting):
            self._finish(job, FINISH_CANCELLED)
        self._waiting.clear()
        for slot in self._slots:
            if slot.job is not None:
                self._finish(slot.job, FINISH_CANCELLED)
        if self._projector is not None:
            self._projector.close()
        self._sampling.close()
        if self._ctx:
            self._lib.llama_free(self._ctx)
            self._ctx = None
        self._model.close()
        reply.put(True)
