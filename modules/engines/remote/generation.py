"""One generation on an upstream server: sent when it is created, read as its consumer asks.

A request that fails before its first byte reaches the consumer (the upstream refuses the
connection, answers 5xx or 429, breaks the stream early, or is ejected meanwhile) is sent
once more, to another upstream of the pool; one that fails later ends with an error naming
the upstream. Cancelling shuts the upstream connection down at once, which stops the
generation there (llama-server, vLLM, Ollama and Hearth all stop when their client goes).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...errors import ContextOverflow, HearthError, InvalidRequest, Unavailable, UpstreamFailed
from ..base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Delta,
    Generation,
    GenerationRequest,
    SamplingParams,
    Usage,
)
from .dialects import Chunk
from .http import HttpError, StreamBroken, Unreachable
from .pool import Member, affinity_key

if TYPE_CHECKING:
    from .engine import RemoteEngine

log = logging.getLogger(__name__)

ATTEMPTS = 2  # a request that fails before its first byte is retried once, elsewhere
AFTER_FINISH_SECONDS = 2.0  # for the usage event after the last token


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
        timeout = request.timeout or engine.options.request_timeout
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
                self._engine.fleet.events.retried(self._tried[-1].upstream.name)
            self._tried.append(member)
            dialect = member.upstream.dialect
            n_ctx = self._engine.context(member)
            params = self._upstream_params(member)
            call = dialect.generation(member.model, self._prompt(member), params, n_ctx)
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
            room = self._engine.context(member) - self._prompt_tokens() - 1
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
                f"The upstream servers of {self._engine.name} failed before answering: {self._failure}"
            )
        return self._engine.none_up()

    def _failed(self, member: Member, reason: str, *, kind: str) -> None:
        self._failure = f"{member.upstream.name}: {reason}"
        self._let_go(member)
        self._engine.fleet.failed(member.upstream, reason, kind=kind)

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
        self._member.upstream.last_seen = time.monotonic()  # alive, whatever its checks say
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
                f"The request timed out waiting for {self._engine.name}'s upstream to answer.",
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
                f"The upstream server {upstream} serving {self._engine.name} failed in the middle of "
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
                    f"Every upstream server of {self._engine.name} is busy: {error.message}",
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
                self._engine.fleet.succeeded(member.upstream)
            self._let_go(member)
            outcome = outcome or ("cancelled" if reason == FINISH_CANCELLED else "ok")
            self._engine.fleet.events.request_finished(
                member.upstream.name,
                self._engine.name,
                outcome,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.first_token_seconds,
                time.monotonic() - self._started,
            )
        self._engine.running(self, False)
        self._engine.finished(self._engine.name, reason, usage)

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
