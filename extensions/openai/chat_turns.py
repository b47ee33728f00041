"""One chat request, whatever protocol it came in: the layer under every chat endpoint.

Chat Completions, the Responses API and Anthropic Messages each translate their request
into a `ChatTurn` and read back the `Piece`s of its run (see streaming.py). Everything
else happens here, once: the model, the prompt (templates, characters, tools, LocalDocs and
the extensions' hooks, through the chat service), the room left for the reply, the grammar,
the generations and their registration for stop and cancel, and saving a `history_id` chat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from flask import request

from modules.app import services
from modules.chat.chat_log import reply_message
from modules.chat.messages import ChatMessage, ChatOptions, PreparedPrompt
from modules.chat.service import ChatService
from modules.engines.base import (
    Generation,
    SamplingParams,
    TextEngine,
    most_tokens,
    new_request_id,
)
from modules.errors import ContextOverflow, HearthError, InvalidRequest
from modules.image_input import ImageLimits, ImageReader, engine_prompt
from modules.serving.connection import client_gone_probe

from .models import engine_for
from .protocol import SamplingRequest
from .state import api_state
from .streaming import Collected, Piece, Run, chat_pieces, choice_requests

log = logging.getLogger(__name__)

PROMPT_RESERVE = 512  # tokens kept free for the reply when the request sets no smaller limit


@dataclass(frozen=True)
class ChatTurn:
    """One request to the chat service, in Hearth's terms."""

    model: str | None
    messages: Sequence[ChatMessage]
    options: ChatOptions
    sampling: SamplingRequest  # temperature, top_p, stop, seed, penalties, grammar_string, ...
    max_tokens: int | None = None
    # Chat Completions refuses a max_tokens the context cannot hold, as OpenAI does. Anthropic
    # clients send more than a small model's whole context (Claude Code: 32000), so there
    # max_tokens is a ceiling: the reply gets what room the prompt leaves.
    max_tokens_is_ceiling: bool = False
    # Drop the oldest turns when the conversation does not fit; otherwise it is a
    # context_length_exceeded error (the Responses API's `truncation: disabled`).
    drop_old_turns: bool = True
    choices: int = 1
    logprobs: int | None = None
    json_schema: dict | None = None
    localdocs: Sequence[str] | None = None
    history_id: str | None = None
    id_prefix: str = "chatcmpl"
    # Stop when the client goes away; a background response has no client to follow.
    follow_client: bool = True
    # The conversation the turn belongs to, when the protocol says (history_id, a Responses
    # chain, prompt_cache_key, Anthropic's metadata.user_id): its turns are kept together on
    # one engine slot or upstream server, where their prompt cache is.
    affinity: str | None = None


@dataclass
class StartedTurn:
    """A turn whose generations run: its pieces, and what the protocols report besides."""

    turn: ChatTurn
    engine: TextEngine
    prepared: PreparedPrompt
    params: SamplingParams
    run: Run
    chat: ChatService  # kept for `keep`, which may run after the request's context is gone
    # What extensions added (LocalDocs' sources) and how many old messages were left out.
    extras: dict = field(default_factory=dict)
    counted: int | None = None  # the prompt's tokens, once someone needed them

    @property
    def prompt_tokens(self) -> int:
        """The prompt's tokens, counted when first asked (Anthropic's message_start asks;
        chat completions take the count from the engine's usage at the end)."""
        if self.counted is None:
            self.counted = self.engine.count_tokens(self.prepared.prompt)
        return self.counted

    def keep(self, first: Collected) -> None:
        """With `history_id`: save the conversation with the first choice's reply (whole, or
        as far as it got when a stream ends early). Saving never fails the response."""
        turn = self.turn
        if turn.history_id is None:
            return
        calls = [collected_call(i, c) for i, c in sorted(first.calls.items())]
        text = "".join(first.text)
        extras = self.prepared.state.get("extras")
        reply = reply_message(text, extras, calls, model=self.engine.info.name) if text or calls else None
        try:
            self.chat.record(turn.history_id, turn.messages, turn.options, self.prepared, reply)
        except (HearthError, OSError) as e:
            log.error("The chat %s could not be saved: %s", turn.history_id, e)


def collected_call(index: int, call: dict) -> dict:
    """A collected tool call in the message shape history and prompts use (OpenAI's)."""
    return {
        "id": call["id"] or f"call_{index}",
        "type": "function",
        "function": {"name": call["name"], "arguments": call["arguments"]},
    }


def prepare(turn: ChatTurn, engine: TextEngine) -> PreparedPrompt:
    """The prompt of `turn`, fitted to the room the reply leaves."""
    default_reserve = min(PROMPT_RESERVE, engine.info.n_ctx // 4)
    if turn.max_tokens is None:
        reserve = default_reserve
    elif turn.max_tokens_is_ceiling:
        reserve = min(turn.max_tokens, default_reserve)
    else:
        reserve = turn.max_tokens
    prepared = services().chat.prepare(
        turn.messages,
        with_remembered_template(turn.options, engine),
        engine.info,
        count_tokens=engine.count_tokens,
        max_tokens=reserve,
        request_state=request_state(turn.localdocs),
    )
    if prepared.dropped_messages and not turn.drop_old_turns:
        raise ContextOverflow(
            f"The input does not fit this model's context window of {engine.info.n_ctx} tokens "
            f"(with {reserve} kept for the reply).",
            param="input",
        )
    return prepared


def with_remembered_template(options: ChatOptions, engine: TextEngine) -> ChatOptions:
    """The instruction template set with /v1/internal/model/load, unless the request names one."""
    remembered = api_state().templates.get(engine.info.name)
    if options.instruction_template or not remembered:
        return options
    return replace(options, instruction_template=remembered)


def request_state(localdocs: Sequence[str] | None) -> dict:
    """The request's fields for extensions' hooks (their `state`)."""
    if localdocs is None:
        return {}
    if services().extensions.get("localdocs") is None:
        raise InvalidRequest(
            "LocalDocs is not enabled on this server: start Hearth with --extensions localdocs.",
            param="localdocs",
        )
    return {"localdocs": list(localdocs)}


def turn_engine(turn: ChatTurn) -> TextEngine:
    """The turn's model, held for the request, with the request's keep_alive."""
    return engine_for(turn.model, turn.sampling.keep_alive_seconds)


def start(turn: ChatTurn) -> StartedTurn:
    """Choose the model, build the prompt and start the generations."""
    engine = turn_engine(turn)
    prepared = prepare(turn, engine)
    if prepared.grammar and turn.json_schema is not None:
        raise InvalidRequest(
            "A forced tool call and a JSON response format cannot be combined.", param="response_format"
        )
    prompt_tokens = None
    max_tokens = turn.max_tokens
    n_ctx = engine.info.n_ctx
    if (
        max_tokens is not None
        and turn.max_tokens_is_ceiling
        and most_tokens(prepared.prompt) + max_tokens >= n_ctx
    ):
        prompt_tokens = engine.count_tokens(prepared.prompt)  # only when it may not all fit
        room = n_ctx - prompt_tokens - 1  # the engine may add a BOS token
        if room <= 0:
            raise ContextOverflow(
                f"The prompt ({prompt_tokens} tokens) fills this model's context window "
                f"of {engine.info.n_ctx} tokens."
            )
        max_tokens = min(max_tokens, room)
    params = turn.sampling.sampling(
        max_tokens=max_tokens,
        n_vocab=engine.info.n_vocab,
        logprobs=turn.logprobs,
        extra_stop=prepared.stop,
        grammar=prepared.grammar,
        json_schema=turn.json_schema,
    )
    run_id = new_request_id(turn.id_prefix)
    chat_service = services().chat

    def pieces(generation: Generation, index: int) -> Iterator[Piece]:
        return chat_pieces(generation, chat_service.reply_parser(turn.options, prepared), index)

    affinity = turn.affinity or (f"history:{turn.history_id}" if turn.history_id else None)
    requests = choice_requests(
        run_id, [engine_prompt(prepared.prompt, prepared.images)], params, turn.choices, affinity=affinity
    )
    gone = client_gone_probe(request.environ) if turn.follow_client else never
    # n choices of one prompt: its tokens are counted once in usage
    run = Run(
        run_id, engine, requests, pieces, api_state().running, per_prompt=turn.choices, client_gone=gone
    )
    return StartedTurn(
        turn, engine, prepared, params, run, chat_service, turn_extras(prepared), prompt_tokens
    )


def image_reader() -> ImageReader:
    """Reads one request's images, within the limits and the server's remote-URL setting."""
    return ImageReader(ImageLimits(allow_remote=services().settings.allow_remote_images))


def never() -> bool:
    return False


def turn_extras(prepared: PreparedPrompt) -> dict:
    """What extensions added to the turn (LocalDocs' sources), and the truncation."""
    out: dict = {}
    extras = prepared.state.get("extras") or {}
    if extras.get("localdocs"):
        out["localdocs"] = extras["localdocs"]
    if prepared.dropped_messages:
        out["dropped_messages"] = prepared.dropped_messages
    return out
