"""A model on other machines: the `TextEngine` interface over a pool of upstream servers.

Routing, health and retries are this engine's business, invisible above it: the chat
service builds the prompt as for a local model and reads `Delta`s back. A generation is
sent to an upstream when it is created (see pool.py for which one) and read as its
consumer asks. A request that fails before its first byte reaches the consumer (the
upstream refuses the connection, answers 5xx or 429, breaks the stream early, or is
ejected meanwhile) is sent once more, to another upstream; one that fails later ends with
an error naming the upstream. Cancelling closes the upstream connection at once, which
stops the generation there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from ...errors import ContextOverflow, HearthError, InvalidRequest, NotInstalled, TooManyTokens, Unavailable
from ..base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Delta,
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
from .dialects import Chunk, NoTokenizer, estimate_tokens
from .http import HttpError, StreamBroken, Unreachable
from .pool import Member, affinity_key, choose

log = logging.getLogger(__name__)

ATTEMPTS = 2  # a request that fails before its first byte is retried once, elsewhere
UNKNOWN_VOCABULARY = 2**31 - 1  # token ids are then checked by the upstream
COUNT_CACHE = 512  # texts whose token count is remembered (a prompt is counted twice)
AFTER_FINISH_SECONDS = 2.0  # for the usage event after the last token


class UpstreamFailed(HearthError):
    """An upstream server failed (or none could be reached) while serving a request."""

    status = 502
    type = "server_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="upstream_error")


class RemoteEngine:
    """One model served by the upstreams of its pool."""

    def __init__(
        self, name: str, fleet, options: LoadOptions, observer: GenerationObserver | None = None
    ) -> None:
        self._name = name
        self._fleet = fleet
        self._options = options
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
        version = self._fleet.version
        if self._info is None or self._info_version != version:
            info = self._read_info()
            if info is not None:
                self._info, self._info_version = info, version
            elif self._info is None:
                raise self._none_up()
        return self._info

    def _read_info(self) -> ModelInfo | None:
        members = [m for m in self._fleet.members(self._name) if m.up]
        known = [m for m in members if self._details(m) is not None]
        if not known:
            return None
        first = next((m for m in known if m.details.chat_template), known[0])
        contexts = [self._context(m) for m in known]
        trained = [m.details.n_ctx_train for m in known if m.details.n_ctx_train]
        vocabularies = [m.details.n_vocab for m in known if m.details.n_vocab]
        return ModelInfo(
            name=self._name,
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

    def _context(self, member: Member) -> int:
        return (
            member.upstream.config.ctx_size
            or member.details.n_ctx
            or member.listing.n_ctx
            or member.upstream.dialect.default_n_ctx
            or self._options.ctx_size
            or 4096
        )

    def _none_up(self) -> Unavailable:
        names = self._fleet.upstream_names(self._name)
        reasons = [f"{u.name}: {u.last_error or u.state}" for u in self._fleet.upstreams if u.name in names]
        detail = "; ".join(reasons) or "none offers it now"
        return Unavailable(
            f"No upstream server serving {self._name} can take requests ({detail}).",
            headers={"Retry-After": str(max(1, int(self._fleet.policy.interval)))},
        )

    # --- generation --------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        self._check_open()
        params = request.params
        if params.max_tokens is not None and params.max_tokens < 0:
            raise InvalidRequest("max_tokens must not be negative.", param="max_tokens")
        cap = self._options.max_output_tokens
        if cap and (params.max_tokens is None or params.max_tokens > cap):
            params = dataclasses.replace(params, max_tokens=cap)
        if isinstance(request.prompt, str) and not request.prompt:
            raise InvalidRequest("The prompt is empty.", param="prompt")
        return RemoteGeneration(self, request, params)

    def choose(self, key: str, tried: list[Member]) -> Member | None:
        return choose(self._fleet.members(self._name), key, tried)

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
        members = [m for m in self._fleet.members(self._name) if m.up]
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
            log.info("counting tokens on %s's upstreams failed (%s); estimating", self._name, error.message)
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
                    f"The upstream server of {self._name} ({member.upstream.dialect.kind}) has no "
                    "tokenizer endpoint: token ids are not available for this model.",
                    code="no_tokenizer",
                ) from None
            except HttpError as error:
                if 400 <= error.status < 500 and error.status not in (404, 408, 429):
                    raise InvalidRequest(f"Upstream {member.upstream.name}: {error.message}") from None
                failure = f"{member.upstream.name}: {error}"
                self._fleet.failed(member.upstream, str(error), kind=f"http_{error.status}")
            except (Unreachable, StreamBroken, KeyError, TypeError) as error:
                failure = f"{member.upstream.name}: {error}"
                self._fleet.failed(member.upstream, str(error), kind="connect")
        if failure is None:
            raise self._none_up()
        raise UpstreamFailed(f"The upstream servers of {self._name} failed: {failure}")

    # --- lifetime ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"The model {self._name} was unloaded.")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cancel_all()


class RemoteGeneration(Generation):
    """One generation on an upstream. Reading and closing belong to the consumer; `stop()`
    (an engine cancel) and `upstream_lost()` (its upstream was ejected) come from anywhere."""

    def __init__(self, engine: RemoteEngine, request: GenerationRequest, params: SamplingParams) -> None:
        self.request_id = request.request_id
        self._engine = engine
        self._request = request
        self._params = params
        self._key = affinity_key(request.affinity, request.prompt)
        self._tried: list[Member] = []
        self._member: Member | None = None
        self._exchange = None
        self._events: Iterator | None = None
        self._failure = ""
        self._given = False  # a delta with text (or logprobs) went to the consumer
        self._stopping = False  # stop(): end with a "cancelled" last delta
        self._closed = False  # cancel()/close(): end now
        self._lost = False  # the upstream was ejected meanwhile
        self._done = False
        self._echo = request.echo
        self._chars = 0
        self._chunks = 0
        self._started = time.monotonic()
        self._first: float | None = None
        timeout = request.timeout or engine._options.request_timeout
        self._deadline = self._started + timeout if timeout else None
        engine.running(self, True)
        try:
            self._send()
        except BaseException:
            engine.running(self, False)
            raise

    # --- sending ----------------------------------------------------------------------------------

    def _send(self) -> None:
        """Send the request to the best upstream left; once more elsewhere if it cannot be sent."""
        while True:
            member = self._engine.choose(self._key, self._tried)
            if member is None or len(self._tried) >= ATTEMPTS:
                raise self._no_upstream()
            if self._tried:
                self._engine._fleet.events.retried(self._tried[-1].upstream.name)
            self._tried.append(member)
            dialect = member.upstream.dialect
            call = dialect.generation(member.model, self._prompt(member), self._upstream_params(member))
            self._lost = False
            member.acquire(self)
            self._member = member
            try:
                self._exchange = member.upstream.endpoint.send(
                    "POST", call.path, call.body, timeout=self._timeout()
                )
            except Unreachable as error:
                self._failed(member, f"cannot connect ({error})", kind="connect")
                continue
            self._events = self._exchange.events() if call.framing == "sse" else self._exchange.lines()
            if self._stopping or self._closed:
                self._exchange.abort()
            return

    def _prompt(self, member: Member) -> str | list[int]:
        prompt = self._request.prompt
        if not isinstance(prompt, str):
            return list(prompt)
        bos = self._engine.info.bos_token
        # The upstream adds the BOS token itself, as it tokenizes: a template's BOS text
        # would make two.
        return prompt[len(bos) :] if bos and prompt.startswith(bos) else prompt

    def _upstream_params(self, member: Member) -> SamplingParams:
        params = self._params
        if params.max_tokens is None and not member.upstream.dialect.open_ended:
            room = self._engine._context(member) - self._prompt_tokens() - 1
            params = dataclasses.replace(params, max_tokens=max(1, room))
        return params

    def _prompt_tokens(self) -> int:
        prompt = self._request.prompt
        return self._engine.count_tokens(prompt) if isinstance(prompt, str) else len(prompt)

    def _timeout(self) -> float:
        if self._deadline is None:
            return 24 * 3600.0
        return max(0.1, self._deadline - time.monotonic())

    def _no_upstream(self) -> HearthError:
        if self._failure:
            return UpstreamFailed(
                f"The upstream servers of {self._engine._name} failed before answering: {self._failure}"
            )
        return self._engine._none_up()

    def _failed(self, member: Member, reason: str, *, kind: str) -> None:
        self._failure = f"{member.upstream.name}: {reason}"
        self._let_go(member)
        self._engine._fleet.failed(member.upstream, reason, kind=kind)

    def _let_go(self, member: Member | None) -> None:
        if member is not None:
            member.release(self)
        if self._exchange is not None:
            self._exchange.abort()
            self._exchange.close()
            self._exchange = None
        self._member = None

    # --- reading ------------------------------------------------------------------------------------

    def __next__(self) -> Delta:
        if self._done:
            raise StopIteration
        if self._closed:
            self._end(FINISH_CANCELLED, None)
            raise StopIteration
        if self._echo:
            self._echo = False
            text = self._request.prompt
            if not isinstance(text, str):
                text = self._engine.detokenize(text)
            return Delta(text=text)
        while True:
            try:
                chunk = self._next_chunk()
            except (StreamBroken, Unreachable) as error:
                if self._stopping or self._closed:
                    return self._last(FINISH_CANCELLED, None)
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    return self._timed_out()
                self._broken(str(error), kind="stream")
                continue
            except HttpError as error:
                self._refused(error)
                continue
            if chunk.finish_reason or chunk.done:
                return self._finish(chunk)
            if chunk.text or chunk.logprobs:
                return self._delta(chunk)

    def _next_chunk(self) -> Chunk:
        event = next(self._events, StopIteration)
        if event is StopIteration:
            raise StreamBroken("the stream ended without its last event")
        if event is None:  # [DONE] before any finish_reason
            return Chunk(finish_reason=FINISH_STOP, done=True)
        return self._member.upstream.dialect.chunk(event)

    def _delta(self, chunk: Chunk) -> Delta:
        if self._first is None:
            self._first = time.monotonic()
        logprobs = chunk.logprobs
        if logprobs:
            placed = []
            position = self._chars
            for entry in logprobs:
                placed.append(dataclasses.replace(entry, offset=position))
                position += len(entry.token)
            logprobs = tuple(placed)
            if self._params.logprobs is not None:
                logprobs = tuple(dataclasses.replace(e, top=e.top[: self._params.logprobs]) for e in logprobs)
        self._chars += len(chunk.text)
        self._chunks += 1 if chunk.text else 0
        self._given = True
        return Delta(text=chunk.text, logprobs=logprobs)

    def _finish(self, chunk: Chunk) -> Delta:
        """The last event: wait for the usage that may follow it, then the last delta."""
        usage = chunk.usage
        if not chunk.done:
            limit = time.monotonic() + AFTER_FINISH_SECONDS
            try:
                while time.monotonic() < limit:
                    event = next(self._events, None)
                    if event is None:
                        break
                    usage = self._member.upstream.dialect.chunk(event).usage or usage
            except (StreamBroken, HttpError):
                pass
        reason = FINISH_LENGTH if chunk.finish_reason == "length" else FINISH_STOP
        if self._stopping:
            reason = FINISH_CANCELLED
        delta = self._delta(chunk) if chunk.text or chunk.logprobs else Delta()
        final = self._usage(usage)
        self._complete(reason, final, clean=True)
        return dataclasses.replace(
            delta, finish_reason=reason, usage=final, stop_sequence=chunk.stop_sequence
        )

    def _last(self, reason: str, usage: dict | None) -> Delta:
        final = self._usage(usage)
        self._complete(reason, final, clean=False)
        return Delta(finish_reason=reason, usage=final)

    def _timed_out(self) -> Delta:
        if not self._given:
            self._complete(FINISH_CANCELLED, self._usage(None), clean=False)
            raise Unavailable(
                f"The request timed out waiting for {self._engine._name}'s upstream to answer.",
                headers={"Retry-After": "5"},
            )
        log.warning("request %s reached its time limit; ending it", self.request_id)
        return self._last(FINISH_LENGTH, None)

    def _broken(self, reason: str, *, kind: str) -> None:
        """The stream failed: before anything reached the consumer, send it elsewhere."""
        member = self._member
        upstream = member.upstream.name if member else "?"
        lost = self._lost
        if member is not None:
            if lost:  # ejected by the checks: they counted the failure already
                self._let_go(member)
            else:
                self._failed(member, reason, kind=kind)
        if self._given:
            self._complete(FINISH_CANCELLED, self._usage(None), clean=False, outcome="error")
            raise UpstreamFailed(
                f"The upstream server {upstream} serving {self._engine._name} failed in the middle of "
                f"the reply ({'ejected: ' if lost else ''}{reason}); the reply is incomplete."
            )
        try:
            self._send()
        except HearthError:
            self._complete(FINISH_CANCELLED, self._usage(None), clean=False, outcome="error")
            raise

    def _refused(self, error: HttpError) -> None:
        """An error status: the request's fault (4xx) is the caller's; others go elsewhere."""
        member = self._member
        if 400 <= error.status < 500 and error.status not in (404, 408, 429):
            self._let_go(member)
            self._complete(FINISH_CANCELLED, self._usage(None), clean=False, outcome="refused")
            raise _client_error(error, member.upstream.name)
        if error.status == 429 or (error.status == 503 and member is not None):
            self._failure = f"{member.upstream.name}: {error}"
            self._let_go(member)  # busy, not broken: no failure counted
        else:
            self._failed(member, str(error), kind=f"http_{error.status}")
        try:
            self._send()
        except HearthError:
            self._complete(FINISH_CANCELLED, self._usage(None), clean=False, outcome="error")
            if error.status == 429:
                raise Unavailable(
                    f"Every upstream server of {self._engine._name} is busy: {error.message}",
                    headers={"Retry-After": "1"},
                ) from None
            raise

    # --- the end ----------------------------------------------------------------------------------

    def _usage(self, upstream: dict | None) -> Usage:
        upstream = upstream or {}
        now = time.monotonic()
        prompt_tokens = upstream.get("prompt_tokens") or 0
        if not prompt_tokens:
            try:
                prompt_tokens = self._prompt_tokens()
            except HearthError:
                prompt_tokens = 0
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=upstream.get("completion_tokens") or self._chunks,
            cached_tokens=upstream.get("cached_tokens") or 0,
            first_token_seconds=None if self._first is None else self._first - self._started,
            generation_seconds=0.0 if self._first is None else now - self._first,
        )

    def _complete(self, reason: str, usage: Usage, *, clean: bool, outcome: str | None = None) -> None:
        """Count the generation once, give its upstream connection back (or close it)."""
        if self._done:
            return
        self._done = True
        member = self._member
        if member is not None:
            if clean and self._exchange is not None:
                self._exchange.finish()
                self._exchange = None
                self._engine._fleet.succeeded(member.upstream)
            self._let_go(member)
            outcome = outcome or ("cancelled" if reason == FINISH_CANCELLED else "ok")
            self._engine._fleet.events.request_finished(
                member.upstream.name,
                self._engine._name,
                outcome,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.first_token_seconds,
                time.monotonic() - self._started,
            )
        self._engine.running(self, False)
        self._engine.finished(self._engine._name, reason, usage)

    def _end(self, reason: str, usage: dict | None) -> None:
        self._complete(reason, self._usage(usage), clean=False)

    # --- from elsewhere ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel at the engine: the consumer reads a last delta, "cancelled", with usage."""
        self._stopping = True
        exchange = self._exchange
        if exchange is not None:
            exchange.abort()

    def upstream_lost(self) -> None:
        """The upstream was ejected: a request still waiting for its first byte moves on."""
        if not self._given:
            self._lost = True
            exchange = self._exchange
            if exchange is not None:
                exchange.abort()

    def cancel(self) -> None:
        if not self._done and not self._closed:
            self._closed = True
            exchange = self._exchange
            if exchange is not None:
                exchange.abort()

    def close(self) -> None:
        self.cancel()
        if not self._done:
            self._end(FINISH_CANCELLED, None)


def _client_error(error: HttpError, upstream: str) -> HearthError:
    message = f"Upstream {upstream}: {error.message}"
    lowered = error.message.lower()
    if "context" in lowered and any(word in lowered for word in ("exceed", "too long", "larger", "maximum")):
        return ContextOverflow(message, param="messages")
    return InvalidRequest(message)
