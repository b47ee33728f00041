"""The llama.cpp text engine: the `TextEngine` interface over the scheduler."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ...errors import ContextOverflow, InvalidRequest, Unavailable
from ..base import (
    Delta,
    EngineStats,
    Generation,
    GenerationObserver,
    GenerationRequest,
    ModelInfo,
    SamplingParams,
    TopLogprob,
)
from ..crossthread import Mailer
from .jobs import Job, Probe
from .scheduler import ContextOptions, Scheduler


class JobGeneration(Generation):
    """Reads one job's deltas from its channel; closing it early cancels the job."""

    def __init__(
        self, job: Job, scheduler: Scheduler, model: str, observer: GenerationObserver | None
    ) -> None:
        self.request_id = job.id
        self._job = job
        self._scheduler = scheduler
        self._model = model
        self._observer = observer
        self._done = False

    def __next__(self) -> Delta:
        if self._done:
            raise StopIteration
        item = self._job.channel.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item.finish_reason:
            self._done = True
            if self._observer is not None and item.usage is not None:
                self._observer.generation_finished(self._model, item.finish_reason, item.usage)
        return item

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._scheduler.cancel(self.request_id)


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
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    # --- Generation ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        job = self._job(request)
        self._scheduler.submit(job)
        return JobGeneration(job, self._scheduler, self._info.name, self._observer)

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
        )

    def _prompt_tokens(self, prompt: str | Sequence[int]) -> list[int]:
        if isinstance(prompt, str):
            bos = self._info.bos_token
            tokens = self.tokenize(prompt, add_bos=not (bos and prompt.startswith(bos)))
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
        if prompt_tokens >= n_ctx:
            raise ContextOverflow(
                f"This model's context holds {n_ctx} tokens, but the prompt alone is "
                f"{prompt_tokens} tokens. Shorten the prompt or load the model with a larger "
                "ctx_size.",
                param="messages",
            )
        if max_tokens is None:
            return n_ctx - prompt_tokens
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

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = True) -> list[int]:
        self._check_open()
        return self._model.tokenize(text, add_bos=add_bos, special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._check_open()
        return self._model.detokenize(list(tokens))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, add_bos=False))

    # --- Lifetime --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"The model {self._info.name} was unloaded.")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._scheduler.stop()
