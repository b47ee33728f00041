"""POST /v1/completions: plain text continuation, OpenAI's legacy endpoint."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, request

from modules.engines.base import Generation, MediaPrompt, new_request_id
from modules.image_input import media_prompt
from modules.serving.connection import client_gone_probe

from .bodies import Completion, CompletionChoice, legacy_logprobs
from .chat_turns import image_reader
from .http import json_response, read_json
from .models import engine_for
from .protocol import CompletionRequest
from .sse import sse_response
from .state import api_state
from .streaming import Collected, Piece, Run, choice_requests, text_pieces


def completions() -> Response:
    body = read_json(CompletionRequest)
    engine = engine_for(body.model, body.keep_alive_seconds)
    per_prompt = body.best_of or body.choices
    # best_of ranks choices by their mean logprob, so it needs logprobs even if not asked.
    wants_logprobs = body.logprobs
    if wants_logprobs is None and per_prompt > body.choices:
        wants_logprobs = 0
    params = body.sampling(
        max_tokens=body.max_new_tokens,
        n_vocab=engine.info.n_vocab,
        logprobs=wants_logprobs,
        json_schema=body.json_schema,
    )
    run_id = new_request_id("cmpl")
    echo, suffix = bool(body.echo), body.suffix or ""

    def pieces(generation: Generation, index: int) -> Iterator[Piece]:
        return text_pieces(generation, index, echo=echo, suffix=suffix)

    prompts = [messages_prompt(body)] if body.messages is not None else body.prompts()
    requests = choice_requests(run_id, prompts, params, per_prompt, echo=echo)
    gone = client_gone_probe(request.environ)
    run = Run(run_id, engine, requests, pieces, api_state().running, per_prompt=per_prompt, client_gone=gone)
    if body.stream:
        return stream_completion(run, body)
    try:
        return json_response(whole_completion(run, body, per_prompt))
    finally:
        run.close()


def messages_prompt(body: CompletionRequest) -> str | MediaPrompt:
    """text-generation-webui's form: the messages' text as the prompt, images at its markers."""
    images = image_reader()
    texts, found = [], []
    for i, message in enumerate(body.messages or ()):
        text, message_images = message.content_of(f"messages.{i}", images, markers=True)
        texts.append(text)
        found += message_images
    text = "".join(texts)
    return media_prompt(text, tuple(found)) if found else text


def choice(
    index: int, text: str, finish_reason: str | None, logprobs: bool, entries: tuple, offsets: list[int]
) -> CompletionChoice:
    return CompletionChoice(
        text=text,
        index=index,
        finish_reason=finish_reason,
        logprobs=legacy_logprobs(entries, offsets) if logprobs else None,
    )


def chunk(run: Run, piece: Piece, logprobs: bool) -> Completion:
    item = choice(piece.index, piece.text, piece.finish_reason, logprobs, piece.logprobs, list(piece.offsets))
    return Completion(id=run.id, created=run.created, model=run.model, choices=[item])


def whole_completion(run: Run, body: CompletionRequest, per_prompt: int) -> Completion:
    collected = Collected.all(run)
    if per_prompt > body.choices:
        collected = best_of(collected, per_prompt, body.choices)
    logprobs = body.logprobs is not None
    choices = [
        choice(i, "".join(c.text), c.finish_reason, logprobs, tuple(c.logprobs), c.offsets)
        for i, c in enumerate(collected)
    ]
    return Completion(id=run.id, created=run.created, model=run.model, choices=choices, usage=run.usage())


def best_of(collected: list[Collected], per_prompt: int, n: int) -> list[Collected]:
    """Of each prompt's candidates, the n with the highest mean logprob of generated tokens."""
    kept = []
    for start in range(0, len(collected), per_prompt):
        candidates = collected[start : start + per_prompt]
        kept.extend(sorted(candidates, key=Collected.mean_logprob, reverse=True)[:n])
    return kept


def stream_completion(run: Run, body: CompletionRequest) -> Response:
    logprobs = body.logprobs is not None
    pieces = run.started_pieces()

    def chunks() -> Iterator[Completion]:
        for piece in pieces:
            yield chunk(run, piece, logprobs)
        if body.include_usage:
            yield Completion(id=run.id, created=run.created, model=run.model, choices=[], usage=run.usage())

    return sse_response(chunks(), run.close)
