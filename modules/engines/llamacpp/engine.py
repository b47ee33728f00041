"""The llama.cpp text engine: the `TextEngine` interface over the scheduler."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from ...errors import ContextOverflow, InvalidRequest, TooManyTokens, Unavailable
from ..base import (
    Delta,
    EngineStats,
    Generation,
    GenerationObserver,
    GenerationRequest,
    MediaPrompt,
    ModelInfo,
    SamplingParams,
    TopLogprob,
)
from ..crossthread import Empty, Mailer
from .adapters import ActiveAdapter, adapter_key
from .context import UNQUANTIZED
from .jobs import Job, Probe
from .scheduler import ContextOptions, Scheduler

log = logging.getLogger(__name__)

# A cancelled job leaves the scheduler after the step in progress; this only bounds the
# wait should something go wrong (the generation is then left uncounted).
_LET_GO_SECONDS = 30.0


class JobGeneration(Generation):
    """Reads one job's deltas from its channel; closing it early cancels the job.

    The observer hears of every job that ends exactly once, from whoever reads its last
    delta: `__next__` at the end of the stream, or `close()` (and the read after a
    `cancel()`), which wait for the scheduler to let go of the job (one step at most) so
    that an abandoned generation is counted too, with the tokens it really generated.
    Reading and closing belong to the consumer; any thread may `cancel()`.
    """

    def __init__(
        self, job: Job, scheduler: Scheduler, model: str, observer: GenerationObserver | None
    ) -> None:
        self.request_id = job.id
        self._job = job
        self._scheduler = scheduler
        self._model = model
        self._observer = observer
        self._done = False  # the last delta (or an error) was read, or given up on
        self._cancelled = False

    def __next__(self) -> Delta:
        if self._done:
            raise StopIteration
        if self._cancelled:  # the consumer sees the end at once; the job's end is still counted
            self._read_to_end()
            raise StopIteration
        item = self._job.channel.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item.finish_reason:
            self._finished(item)
        return item

    def cancel(self) -> None:
        if not self._done and not self._cancelled:
            self._cancelled = True
            self._scheduler.cancel(self.request_id)

    def close(self) -> None:
        self.cancel()
        self._read_to_end()

    def _read_to_end(self) -> None:
        """Skip the deltas still on their way, up to the last one, and report it."""
        deadline = time.monotonic() + _LET_GO_SECONDS
        while not self._done:
            try:
                item = self._job.channel.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                log.warning("request %s was cancelled but did not end; not counted", self.request_id)
                self._done = True
                return
            if isinstance(item, BaseException):
                self._done = True
            elif item.finish_reason:
                self._finished(item)

    def _finished(self, last: Delta) -> None:
        self._done = True
        if self._observer is not None and last.usage is not None:
            self._observer.generation_finished(self._model, last.finish_reason, last.usage)


class LlamaCppEngine:
    """One loaded GGUF model, served by one scheduler thread."""

    def __init__(
        self,
        name: str,
        path: Path,
        options: ContextOptions,
        mailer: Mailer,
        observer: GenerationObserver | None = None,
    ) -> None:
        self._mailer = mailer
        self._observer = observer
        self._timeout = options.request_timeout
        self._max_output_tokens = options.max_output_tokens
        self._scheduler = Scheduler(path, options, mailer)
        self._model = self._scheduler.model
        self._closed = False
        model = self._model
        self._info = ModelInfo(
            name=name,
            path=str(path),
            loader="llama.cpp",
            n_ctx=self._scheduler.n_ctx,
            n_ctx_train=model.n_ctx_train,
            n_vocab=model.n_vocab,
            chat_template=model.chat_template,
            bos_token=model.token_text(model.bos).decode("utf-8", "replace") if model.bos >= 0 else "",
            eos_token=model.token_text(model.eos).decode("utf-8", "replace") if model.eos >= 0 else "",
            metadata=dict(model.metadata),
            vision=self._scheduler.reads_images,
            cache_type=options.cache_type,
            flash_attn=options.uses_flash_attn,
            kv_bytes_per_token=self._scheduler.context.kv_bytes_per_token,
            kv_cache_bytes=self._scheduler.context.kv_cache_bytes,
        )
        self._adapters: tuple[ActiveAdapter, ...] = ()
        if options.cache_type not in UNQUANTIZED and not options.flash_attn:
            log.info("%s: cache_type %s needs flash attention: it is on", name, options.cache_type)

    @property
    def info(self) -> ModelInfo:
        return self._info

    # --- LoRA adapters (adapters.py) ----------------------------------------------------------

    @property
    def adapters(self) -> tuple[ActiveAdapter, ...]:
        """The model's adapters, in id order, each with the scale requests get by default."""
        return self._adapters

    def set_adapters(self, entries: Sequence[tuple[str, Path, float]]) -> tuple[ActiveAdapter, ...]:
        """Make these (name, file, scale) the model's adapters; generations already submitted
        keep the ones they started with."""
        self._check_open()
        self._adapters = self._scheduler.set_adapters(entries)
        return self._adapters

    # --- Generation ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        if isinstance(request.prompt, MediaPrompt):
            job = self._media_job(request)
        else:
            job = self._job(request)
            self._scheduler.submit(job)
        return JobGeneration(job, self._scheduler, self._info.name, self._observer)

    def _media_job(self, request: GenerationRequest) -> Job:
        """A prompt with images: cut into chunks by the projector before it queues."""
        self._check_open()
        prompt = request.prompt
        assert isinstance(prompt, MediaPrompt)
        if not self._scheduler.reads_images:
            raise InvalidRequest(
                f"The model {self._info.name} reads text only: it has no projector (mmproj) loaded.",
                param="messages",
            )
        if request.echo:
            raise InvalidRequest("echo cannot be used with images.", param="echo")
        parts = list(prompt.parts)
        if parts and not isinstance(parts[-1], str):
            parts.append("\n")  # an image is never the last chunk: its logits are not kept
        timeout = request.timeout or self._timeout
        job = Job(
            request=request,
            prompt=[],
            channel=self._mailer.channel(),
            limit=0,
            deadline=time.monotonic() + timeout if timeout else None,
            adapters=adapter_key(self._adapters, request.params.lora),
        )
        max_tokens = request.params.max_tokens
        self._scheduler.submit_media(job, parts, lambda length: self._limit(length, max_tokens))
        return job

    def _job(self, request: GenerationRequest, probe: Probe | None = None) -> Job:
        self._check_open()
        prompt = self._prompt_tokens(request.prompt)
        limit = self._limit(len(prompt), request.params.max_tokens)
        echo_text = None
        if request.echo:
            echo_text = request.prompt if isinstance(request.prompt, str) else self._model.detokenize(prompt)
        timeout = request.timeout or self._timeout
        deadline = time.monotonic() + timeout if timeout else None
        return Job(
            request=request,
            prompt=prompt,
            channel=self._mailer.channel(),
            limit=limit,
            echo_text=echo_text,
            probe=probe,
            deadline=deadline,
            adapters=adapter_key(self._adapters, request.params.lora),
        )

    def _prompt_tokens(self, prompt: str | Sequence[int]) -> list[int]:
        if isinstance(prompt, str):
            bos = self._info.bos_token
            try:
                tokens = self.tokenize(
                    prompt, add_bos=not (bos and prompt.startswith(bos)), limit=self._info.n_ctx
                )
            except TooManyTokens as too_many:
                raise ContextOverflow(
                    f"This model's context holds {self._info.n_ctx} tokens, but the prompt alone is "
                    f"more than that (at least {too_many.at_least} tokens). Shorten the prompt or "
                    "load the model with a larger ctx_size.",
                    param="messages",
                ) from None
        else:
            tokens = list(prompt)
            self._model.check_tokens(tokens)
        if not tokens:
            raise InvalidRequest("The prompt is empty.", param="prompt")
        return tokens

    def _limit(self, prompt_tokens: int, max_tokens: int | None) -> int:
        n_ctx = self._info.n_ctx
        if max_tokens is not None and max_tokens < 0:
            raise InvalidRequest("max_tokens must not be negative.", param="max_tokens")
        cap = self._max_output_tokens  # the server's bound (--max-output-tokens): llama-server's -n
        if cap and max_tokens is not None:
            max_tokens = min(max_tokens, cap)
        if prompt_tokens >= n_ctx:
            raise ContextOverflow(
                f"This model's context holds {n_ctx} tokens, but the prompt alone is "
                f"{prompt_tokens} tokens. Shorten the prompt or load the model with a larger "
                "ctx_size.",
                param="messages",
            )
        if max_tokens is None:
            return min(n_ctx - prompt_tokens, cap) if cap else n_ctx - prompt_tokens
        if prompt_tokens + max_tokens > n_ctx:
            raise ContextOverflow(
                f"This model's context holds {n_ctx} tokens, but you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
                f"{max_tokens} to generate). Reduce the prompt or max_tokens."
            )
        return max_tokens

    def token_logprobs(
        self, prompt: str | Sequence[int], params: SamplingParams, top_n: int, use_samplers: bool
    ) -> list[TopLogprob]:
        request = GenerationRequest(prompt=prompt, params=params)
        job = self._job(request, Probe(top_n=top_n, use_samplers=use_samplers))
        self._scheduler.submit(job)
        completion = JobGeneration(job, self._scheduler, self._info.name, None).collect()
        return list(completion.logprobs[0].top) if completion.logprobs else []

    def cancel(self, request_id: str) -> bool:
        return self._scheduler.cancel(request_id)

    def cancel_all(self) -> int:
        return self._scheduler.cancel_all()

    def stats(self) -> EngineStats:
        return self._scheduler.stats()

    # --- Vocabulary (read-only: safe from any thread) ---------------------------------------

    def tokenize(
        self, text: str, *, add_bos: bool = True, special: bool = True, limit: int | None = None
    ) -> list[int]:
        self._check_open()
        return self._model.tokenize(text, add_bos=add_bos, special=special, limit=limit)

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._check_open()
        return self._model.detokenize(list(tokens))

    def count_tokens(self, text: str) -> int:
        """Exact up to the context size; beyond it, a lower bound (nothing that long fits)."""
        try:
            return len(self.tokenize(text, add_bos=False, limit=self._info.n_ctx))
        except TooManyTokens as too_many:
            return too_many.at_least

    # --- Lifetime --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"The model {self._info.name} was unloaded.")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._scheduler.stop()
