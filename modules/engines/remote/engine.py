"""A model on other machines: the `TextEngine` interface over a pool of upstream servers.

Routing, health and retries are this engine's business, invisible above it: the chat
service builds the prompt as for a local model and reads `Delta`s back. Which upstream a
request goes to is pool.py's; sending it and reading it back, generation.py's. Tokens are
counted by an upstream of the pool (remembered, since the chat layer counts a prompt twice),
or estimated where the upstream cannot count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

from ...errors import InvalidRequest, NotInstalled, TooManyTokens, Unavailable, UpstreamFailed
from ..base import (
    EngineStats,
    Generation,
    GenerationObserver,
    GenerationRequest,
    ModelInfo,
    SamplingParams,
    TopLogprob,
    Usage,
)
from ..registry import LoadOptions
from .dialects import NoTokenizer, estimate_tokens
from .generation import ATTEMPTS, RemoteGeneration
from .http import HttpError, StreamBroken, Unreachable
from .pool import Member, choose

log = logging.getLogger(__name__)

UNKNOWN_VOCABULARY = 2**31 - 1  # token ids are then checked by the upstream
COUNT_CACHE = 512  # texts whose token count is remembered (a prompt is counted twice)


class RemoteEngine:
    """One model served by the upstreams of its pool."""

    def __init__(
        self, name: str, fleet, options: LoadOptions, observer: GenerationObserver | None = None
    ) -> None:
        self.name = name
        self.fleet = fleet
        self.options = options
        self._observer = observer
        self._running: dict[str, RemoteGeneration] = {}
        self._counts: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._info: ModelInfo | None = None
        self._info_version = -1
        self.info  # noqa: B018 - fails now (503) when no upstream of the pool answers

    # --- what the model is ----------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        version = self.fleet.version
        if self._info is None or self._info_version != version:
            info = self._read_info()
            if info is not None:
                self._info, self._info_version = info, version
            elif self._info is None:
                raise self.none_up()
        return self._info

    def _read_info(self) -> ModelInfo | None:
        members = [m for m in self.fleet.members(self.name) if m.up]
        known = [m for m in members if self._details(m) is not None]
        if not known:
            return None
        first = next((m for m in known if m.details.chat_template), known[0])
        contexts = [self.context(m) for m in known]
        trained = [m.details.n_ctx_train for m in known if m.details.n_ctx_train]
        vocabularies = [m.details.n_vocab for m in known if m.details.n_vocab]
        return ModelInfo(
            name=self.name,
            path="",
            loader="remote",
            n_ctx=min(contexts),
            n_ctx_train=max(trained) if trained else min(contexts),
            n_vocab=vocabularies[0] if vocabularies else UNKNOWN_VOCABULARY,
            chat_template=first.details.chat_template,
            bos_token=first.details.bos_token,
            eos_token=first.details.eos_token,
            metadata={
                "upstreams": ", ".join(f"{m.upstream.name} ({m.upstream.dialect.kind})" for m in members)
            },
        )

    def _details(self, member: Member):
        if member.details is None:
            upstream = member.upstream
            try:
                member.details = upstream.dialect.details(upstream.endpoint, member.model, member.listing)
            except (HttpError, Unreachable, StreamBroken, KeyError, TypeError, ValueError) as error:
                log.warning("upstream %s: no details of %s: %s", upstream.name, member.model, error)
                return None
        return member.details

    def context(self, member: Member) -> int:
        """The context a request to `member` may use."""
        return (
            member.upstream.config.ctx_size
            or member.details.n_ctx
            or member.listing.n_ctx
            or member.upstream.dialect.default_n_ctx
            or self.options.ctx_size
            or 4096
        )

    def none_up(self) -> Unavailable:
        names = self.fleet.upstream_names(self.name)
        reasons = [f"{u.name}: {u.last_error or u.state}" for u in self.fleet.upstreams if u.name in names]
        detail = "; ".join(reasons) or "none offers it now"
        return Unavailable(
            f"No upstream server serving {self.name} can take requests ({detail}).",
            headers={"Retry-After": str(max(1, int(self.fleet.policy.interval)))},
        )

    # --- generation --------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        self._check_open()
        params = request.params
        if params.max_tokens is not None and params.max_tokens < 0:
            raise InvalidRequest("max_tokens must not be negative.", param="max_tokens")
        cap = self.options.max_output_tokens
        if cap and (params.max_tokens is None or params.max_tokens > cap):
            params = dataclasses.replace(params, max_tokens=cap)
        if isinstance(request.prompt, str) and not request.prompt:
            raise InvalidRequest("The prompt is empty.", param="prompt")
        return RemoteGeneration(self, request, params)

    def choose(self, key: str, tried: list[Member]) -> Member | None:
        return choose(self.fleet.members(self.name), key, tried)

    def running(self, generation: RemoteGeneration, alive: bool) -> None:
        with self._lock:
            if alive:
                self._running[generation.request_id] = generation
            elif self._running.get(generation.request_id) is generation:
                del self._running[generation.request_id]

    def finished(self, model: str, finish_reason: str, usage: Usage) -> None:
        if self._observer is not None:
            self._observer.generation_finished(model, finish_reason, usage)

    def token_logprobs(
        self, prompt: str | Sequence[int], params: SamplingParams, top_n: int, use_samplers: bool
    ) -> list[TopLogprob]:
        """The upstream's top tokens for one step (before its samplers, whatever `use_samplers`)."""
        params = dataclasses.replace(params, max_tokens=1, logprobs=top_n, stop=())
        completion = self.generate(GenerationRequest(prompt=prompt, params=params)).collect()
        return list(completion.logprobs[0].top) if completion.logprobs else []

    def cancel(self, request_id: str) -> bool:
        generation = self._running.get(request_id)
        if generation is None:
            return False
        generation.stop()
        return True

    def cancel_all(self) -> int:
        running = list(self._running.values())
        for generation in running:
            generation.stop()
        return len(running)

    def stats(self) -> EngineStats:
        members = [m for m in self.fleet.members(self.name) if m.up]
        slots = sum(m.capacity for m in members)
        busy = sum(min(m.in_flight, m.capacity) for m in members)
        queued = sum(max(0, m.in_flight - m.capacity) for m in members)
        return EngineStats(slots=slots, busy_slots=busy, queued=queued)

    # --- tokens -------------------------------------------------------------------------------------

    def tokenize(
        self, text: str, *, add_bos: bool = True, special: bool = True, limit: int | None = None
    ) -> list[int]:
        self._check_open()
        tokens = self._on_an_upstream(
            lambda m: m.upstream.dialect.tokenize(m.upstream.endpoint, m.model, text, add_bos)
        )
        if limit is not None and len(tokens) > limit:
            raise TooManyTokens(len(tokens), limit)
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._check_open()
        return self._on_an_upstream(
            lambda m: m.upstream.dialect.detokenize(m.upstream.endpoint, m.model, tokens)
        )

    def count_tokens(self, text: str) -> int:
        """The upstream's count, remembered (the chat layer counts a prompt when fitting it and
        again when starting it); estimated where the upstream cannot count (dialects.py)."""
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            if digest in self._counts:
                self._counts.move_to_end(digest)
                return self._counts[digest]
        try:
            count = len(self.tokenize(text, add_bos=False))
        except NotInstalled:
            count = estimate_tokens(text)
        except (UpstreamFailed, Unavailable) as error:
            log.info("counting tokens on %s's upstreams failed (%s); estimating", self.name, error.message)
            return estimate_tokens(text)
        with self._lock:
            self._counts[digest] = count
            while len(self._counts) > COUNT_CACHE:
                self._counts.popitem(last=False)
        return count

    def _on_an_upstream(self, work):
        tried: list[Member] = []
        failure = None
        while len(tried) < ATTEMPTS:
            member = self.choose("tokens", tried)
            if member is None:
                break
            tried.append(member)
            try:
                return work(member)
            except NoTokenizer:
                raise NotInstalled(
                    f"The upstream server of {self.name} ({member.upstream.dialect.kind}) has no "
                    "tokenizer endpoint: token ids are not available for this model.",
                    code="no_tokenizer",
                ) from None
            except HttpError as error:
                if 400 <= error.status < 500 and error.status not in (404, 408, 429):
                    raise InvalidRequest(f"Upstream {member.upstream.name}: {error.message}") from None
                failure = f"{member.upstream.name}: {error}"
                self.fleet.failed(member.upstream, str(error), kind=f"http_{error.status}")
            except (Unreachable, StreamBroken, KeyError, TypeError) as error:
                failure = f"{member.upstream.name}: {error}"
                self.fleet.failed(member.upstream, str(error), kind="connect")
        if failure is None:
            raise self.none_up()
        raise UpstreamFailed(f"The upstream servers of {self.name} failed: {failure}")

    # --- lifetime ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"The model {self.name} was unloaded.")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cancel_all()
