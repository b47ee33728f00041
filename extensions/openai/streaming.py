"""From engine deltas to pieces of choices: the one mapping behind streamed and whole answers.

A request runs one generation per choice (a `Run`). Each engine `Delta` becomes at most
one `Piece` of its choice; a stream sends every piece as a chunk, a whole response is the
same pieces collected (`Collected`). Neither path has a mapping of its own.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain

from modules.chat.replies import ContentDelta, ReasoningDelta, ToolCallDelta
from modules.engines.base import (
    FINISH_LENGTH,
    Generation,
    GenerationRequest,
    SamplingParams,
    TextEngine,
    TokenLogprob,
    Usage,
)

from .bodies import UsageOut, total_usage


@dataclass(frozen=True)
class Piece:
    """One step of one choice, in the API's terms."""

    index: int
    text: str = ""  # completion text, or chat content
    reasoning: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()
    offsets: tuple[int, ...] = ()  # completions: each logprob's character offset in the choice's text
    finish_reason: str | None = None  # "stop", "length" or "tool_calls" on the last piece
    usage: Usage | None = None
    echoed: bool = False  # completions with echo: this piece is the prompt itself
    stop_sequence: str | None = None  # on the last piece: the stop string that ended the choice


def client_finish_reason(engine_reason: str) -> str:
    """Clients know "stop" and "length"; a cancelled generation simply stopped."""
    return FINISH_LENGTH if engine_reason == FINISH_LENGTH else "stop"


# --- The two mappings ---------------------------------------------------------------------------


def chat_pieces(generation: Generation, parser, index: int) -> Iterator[Piece]:
    """Deltas through the chat engine's reply parser: content, reasoning and tool calls."""
    called = False
    for delta in generation:
        events = parser.feed(delta.text)
        if delta.finish_reason:
            events = [*events, *parser.finish()]
        content = "".join(e.text for e in events if isinstance(e, ContentDelta))
        reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
        calls = tuple(e for e in events if isinstance(e, ToolCallDelta))
        called = called or bool(calls)
        finish = None
        if delta.finish_reason:
            # A call whose arguments are complete is a call, even when the length limit
            # ended the reply right after it (inside its closing tag).
            finish = "tool_calls" if called else client_finish_reason(delta.finish_reason)
        if content or reasoning or calls or delta.logprobs or finish:
            yield Piece(
                index,
                content,
                reasoning,
                calls,
                delta.logprobs,
                (),
                finish,
                delta.usage,
                stop_sequence=delta.stop_sequence,
            )


def text_pieces(generation: Generation, index: int, *, echo: bool, suffix: str) -> Iterator[Piece]:
    """Deltas of a plain completion. With echo, the first delta is the prompt itself."""
    base = 0  # characters of echoed prompt before the generated text
    for position, delta in enumerate(generation):
        echoed = echo and position == 0
        if echoed:
            offsets = _echo_offsets(delta.text, delta.logprobs)
            base = len(delta.text)
        else:
            offsets = tuple(base + entry.offset for entry in delta.logprobs)
        finish = client_finish_reason(delta.finish_reason) if delta.finish_reason else None
        text = delta.text + (suffix if finish else "")
        if text or delta.logprobs or finish:
            yield Piece(
                index,
                text,
                logprobs=delta.logprobs,
                offsets=offsets,
                finish_reason=finish,
                usage=delta.usage,
                echoed=echoed,
            )


def _echo_offsets(text: str, entries: tuple[TokenLogprob, ...]) -> tuple[int, ...]:
    """Offsets of the prompt's tokens in the prompt text. Token texts may carry a leading space
    the prompt does not have (SentencePiece), so they are aligned at the end of the text."""
    starts, position = [], 0
    for entry in entries:
        starts.append(position)
        position += len(entry.token)
    shift = max(0, position - len(text))
    return tuple(max(0, start - shift) for start in starts)


# --- A request's generations ----------------------------------------------------------------------


def choice_requests(
    run_id: str,
    prompts: list,
    params: SamplingParams,
    per_prompt: int,
    *,
    echo: bool = False,
    affinity: str | None = None,
) -> list[GenerationRequest]:
    """One generation per choice. Choice 0 has the run's id, choice i the id `<run id>-<i>`;
    with a seed, choice i uses seed + i so that choices differ but stay reproducible."""
    requests = []
    for p, prompt in enumerate(prompts):
        for j in range(per_prompt):
            index = p * per_prompt + j
            seed = None if params.seed is None else (params.seed + index) & 0xFFFFFFFFFFFFFFFF
            requests.append(
                GenerationRequest(
                    prompt=prompt,
                    params=dataclasses.replace(params, seed=seed),
                    echo=echo,
                    request_id=run_id if index == 0 else f"{run_id}-{index}",
                    affinity=affinity,
                )
            )
    return requests


CLIENT_CHECK_SECONDS = 0.02  # how often a run asks whether its client is still there


class Run:
    """The generations of one request, registered by id so /v1/internal/stop-generation finds them.

    Closing the run (when the response ends, or the client goes away) cancels what still runs.
    `client_gone` tells a whole response, which writes nothing until the end, that nobody
    waits for it any more (see modules/serving/connection.py).
    """

    def __init__(
        self,
        run_id: str,
        engine: TextEngine,
        requests: list[GenerationRequest],
        to_pieces: Callable[[Generation, int], Iterator[Piece]],
        registry: dict[str, Run],
        per_prompt: int = 1,
        client_gone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.id = run_id
        self.created = int(time.time())
        self.model = engine.info.name
        self._engine = engine
        self._to_pieces = to_pieces
        self._registry = registry
        self._per_prompt = per_prompt
        self._client_gone = client_gone
        self._next_check = 0.0
        self.usages: dict[int, Usage] = {}
        self.generations: list[Generation] = []
        try:
            for request in requests:
                self.generations.append(engine.generate(request))
        except BaseException:
            self.close()
            raise
        registry[run_id] = self

    def pieces(self) -> Iterator[Piece]:
        """Every piece of every choice, choice after choice (all choices run from the start).
        When the client has gone away, the run closes and the pieces end."""
        for index, generation in enumerate(self.generations):
            for piece in self._to_pieces(generation, index):
                if piece.usage is not None:
                    self.usages[index] = piece.usage
                yield piece
                now = time.monotonic()
                if now >= self._next_check:  # a peek at the socket, every few steps at most
                    self._next_check = now + CLIENT_CHECK_SECONDS
                    if self._client_gone():
                        self.close()
                        return

    def started_pieces(self) -> Iterator[Piece]:
        """`pieces()` with the first piece already taken, for streams: a request that fails
        at once (a grammar that cannot be built, ...) raises here, while a plain HTTP error
        can still be sent; later failures become an error event."""
        pieces = self.pieces()
        try:
            first = next(pieces, None)
        except BaseException:
            self.close()
            raise
        return chain([] if first is None else [first], pieces)

    def usage(self) -> UsageOut:
        """Prompt tokens once per prompt, completion tokens of every generation (best_of too)."""
        firsts = [usage for index, usage in sorted(self.usages.items()) if index % self._per_prompt == 0]
        return total_usage(firsts, sum(u.completion_tokens for u in self.usages.values()))

    def owns(self, request_id: str) -> bool:
        return request_id == self.id or any(g.request_id == request_id for g in self.generations)

    def cancel(self, request_id: str | None = None) -> None:
        """Stop generating (all choices, or the one with `request_id`). Unlike `close`, the
        pieces keep coming to the end: the stopped choices finish with "stop" and usage."""
        for generation in self.generations:
            if request_id in (None, self.id, generation.request_id):
                self._engine.cancel(generation.request_id)

    def close(self) -> None:
        for generation in self.generations:  # all stop in the same step...
            generation.cancel()
        for generation in self.generations:  # ...then each is let go of
            generation.close()
        if self._registry.get(self.id) is self:
            del self._registry[self.id]


@dataclass
class Collected:
    """The pieces of one choice, put together."""

    index: int
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, dict] = field(default_factory=dict)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    echoed_logprobs: int = 0  # how many of `logprobs` belong to the echoed prompt
    stop_sequence: str | None = None

    def add(self, piece: Piece) -> None:
        if piece.echoed:
            self.echoed_logprobs += len(piece.logprobs)
        self.text.append(piece.text)
        self.reasoning.append(piece.reasoning)
        self.logprobs.extend(piece.logprobs)
        self.offsets.extend(piece.offsets)
        for call in piece.tool_calls:
            entry = self.calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = entry["id"] or call.id
            entry["name"] += call.name or ""
            entry["arguments"] += call.arguments or ""
        if piece.finish_reason:
            self.finish_reason = piece.finish_reason
            self.stop_sequence = piece.stop_sequence

    @staticmethod
    def all(run: Run) -> list[Collected]:
        choices = [Collected(i) for i in range(len(run.generations))]
        for piece in run.pieces():
            choices[piece.index].add(piece)
        return choices

    def mean_logprob(self) -> float:
        """Mean logprob of the generated tokens (the echoed prompt does not count)."""
        values = [e.logprob for e in self.logprobs[self.echoed_logprobs :] if e.logprob is not None]
        return sum(values) / len(values) if values else float("-inf")
