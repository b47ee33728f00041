"""POST /v1/chat/completions (and /v1/edits, which is a one-message chat)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from flask import Response, request
from pydantic import BaseModel

from modules.app import services
from modules.chat.chat_log import reply_message
from modules.chat.messages import ChatMessage, ChatOptions, PreparedPrompt
from modules.chat.tools import tool_choice_from_function_call, tools_from_functions
from modules.engines.base import Generation, TextEngine, new_request_id
from modules.errors import HearthError, InvalidRequest
from modules.serving.connection import client_gone_probe

from .bodies import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessageOut,
    ChunkChoice,
    ChunkDelta,
    ChunkMessage,
    Edit,
    EditChoice,
    FunctionDeltaOut,
    FunctionOut,
    LocalDocsOut,
    ToolCallDeltaOut,
    ToolCallOut,
    chat_logprobs,
)
from .http import json_response, read_json
from .models import engine_for
from .protocol import ChatCompletionRequest, ChatMessageIn, EditRequest, SamplingRequest
from .sse import sse_response
from .state import api_state
from .streaming import Collected, Piece, Run, chat_pieces, choice_requests

log = logging.getLogger(__name__)

ROLE_ALIASES = {"developer": "system", "function": "tool"}  # what chat templates know
PROMPT_RESERVE = 512  # tokens kept free for the reply when max_tokens is not given


def chat_completions() -> Response:
    body = read_json(ChatCompletionRequest)
    engine = engine_for(body.model)
    options = chat_options(body, engine)
    prepared = prepare_prompt(body, options, engine)
    run = start_chat(body, engine, options, prepared)
    extras = response_extras(prepared)
    keep = history_keeper(body, options, prepared)
    if body.stream:
        return stream_chat(run, body, extras, keep)
    try:
        return json_response(whole_chat(run, body, extras, keep))
    finally:
        run.close()


# --- Request -> prompt -> generations ---------------------------------------------------------------


def chat_messages(messages: list[ChatMessageIn]) -> list[ChatMessage]:
    return [
        ChatMessage(
            role=ROLE_ALIASES.get(m.role, m.role),
            content=m.text(f"messages.{i}"),
            name=m.name,
            tool_calls=message_calls(m),
            tool_call_id=m.tool_call_id,
        )
        for i, m in enumerate(messages)
    ]


def message_calls(message: ChatMessageIn) -> tuple[dict, ...]:
    """An assistant message's tool calls; the legacy `function_call` is one of them."""
    if message.tool_calls:
        return tuple(call.model_dump() for call in message.tool_calls)
    if message.function_call is not None:
        return ({"id": "call_0", "type": "function", "function": message.function_call.model_dump()},)
    return ()


def uses_legacy_functions(body: ChatCompletionRequest) -> bool:
    """Asked with `functions` (not `tools`): answer with `function_call`, as OpenAI did."""
    return bool(body.functions) and not body.tools


def chat_options(body: ChatCompletionRequest, engine: TextEngine) -> ChatOptions:
    remembered = api_state().templates.get(engine.info.name)
    tools = [tool.model_dump(exclude_none=True) for tool in body.tools or ()]
    tool_choice = body.tool_choice
    if body.functions and not tools:  # the legacy form of tools
        tools = list(tools_from_functions([f.model_dump(exclude_none=True) for f in body.functions]))
        if tool_choice is None:
            call = body.function_call
            tool_choice = tool_choice_from_function_call(
                call.model_dump() if isinstance(call, BaseModel) else call
            )
    if tool_choice is None:
        tool_choice = "auto"
    return ChatOptions(
        mode=body.mode or "instruct",
        character=body.character,
        instruction_template=body.instruction_template or remembered,
        instruction_template_str=body.instruction_template_str,
        user_name=body.user_name or body.name1,
        bot_name=body.bot_name or body.name2,
        context=body.context,
        greeting=body.greeting,
        user_bio=body.user_bio,
        chat_instruct_command=body.chat_instruct_command,
        continue_=bool(body.continue_),
        tools=tuple(tools),
        tool_choice=tool_choice.model_dump() if isinstance(tool_choice, BaseModel) else tool_choice,
    )


def prepare_prompt(body: ChatCompletionRequest, options: ChatOptions, engine: TextEngine) -> PreparedPrompt:
    reserve = body.max_new_tokens
    if reserve is None:
        reserve = min(PROMPT_RESERVE, engine.info.n_ctx // 4)
    return services().chat.prepare(
        chat_messages(body.messages),
        options,
        engine.info,
        count_tokens=engine.count_tokens,
        max_tokens=reserve,
        request_state=request_state(body),
    )


def request_state(body: ChatCompletionRequest) -> dict:
    """The request's fields for extensions' hooks (their `state`)."""
    if body.localdocs is None:
        return {}
    if services().extensions.get("localdocs") is None:
        raise InvalidRequest(
            "LocalDocs is not enabled on this server: start Hearth with --extensions localdocs.",
            param="localdocs",
        )
    return {"localdocs": list(body.localdocs)}


def response_extras(prepared: PreparedPrompt) -> dict:
    """Hearth's fields of the chat completion: what extensions added, and the truncation."""
    out: dict = {}
    extras = prepared.state.get("extras") or {}
    if extras.get("localdocs"):
        out["localdocs"] = LocalDocsOut.model_validate(extras["localdocs"])
    if prepared.dropped_messages:
        out["dropped_messages"] = prepared.dropped_messages
    return out


def history_keeper(
    body: ChatCompletionRequest, options: ChatOptions, prepared: PreparedPrompt
) -> Callable[[Collected], None] | None:
    """With `history_id`: a function that saves the conversation with the first choice's
    reply (whole, or as far as it got when a stream ends early). Saving never fails the
    response: an error is logged."""
    if body.history_id is None:
        return None
    chat, messages, history_id = services().chat, chat_messages(body.messages), body.history_id

    def keep(first: Collected) -> None:
        calls = [tool_call(i, c).model_dump() for i, c in sorted(first.calls.items())]
        text = "".join(first.text)
        reply = reply_message(text, prepared.state.get("extras"), calls) if text or calls else None
        try:
            chat.record(history_id, messages, options, prepared, reply)
        except (HearthError, OSError) as e:
            log.error("The chat %s could not be saved: %s", history_id, e)

    return keep


def start_chat(
    body: ChatCompletionRequest,
    engine: TextEngine,
    options: ChatOptions,
    prepared: PreparedPrompt,
    prefix: str = "chatcmpl",
) -> Run:
    schema = body.response_format.schema_for_grammar() if body.response_format else None
    if prepared.grammar and schema is not None:
        raise InvalidRequest(
            "A forced tool call and a JSON response_format cannot be combined.", param="response_format"
        )
    params = body.sampling(
        max_tokens=body.max_new_tokens,
        n_vocab=engine.info.n_vocab,
        logprobs=body.logprob_count,
        extra_stop=prepared.stop,
        grammar=prepared.grammar,
        json_schema=schema,
    )
    run_id = new_request_id(prefix)

    chat_service = services().chat

    def pieces(generation: Generation, index: int) -> Iterator[Piece]:
        return chat_pieces(generation, chat_service.reply_parser(options, prepared), index)

    requests = choice_requests(run_id, [prepared.prompt], params, body.choices)
    gone = client_gone_probe(request.environ)
    # n choices of one prompt: its tokens are counted once in usage
    return Run(
        run_id, engine, requests, pieces, api_state().running, per_prompt=body.choices, client_gone=gone
    )


# --- Pieces -> OpenAI shapes -------------------------------------------------------------------------


def chunk(run: Run, piece: Piece, logprobs: bool, legacy: bool = False) -> ChatCompletionChunk:
    """One piece as a chunk; with `legacy` (a `functions` request), the first call goes out
    as `function_call` deltas, the only call that shape has."""
    finish = piece.finish_reason
    calls, function_call = None, None
    if legacy:
        first = [c for c in piece.tool_calls if c.index == 0]  # its name and arguments deltas
        if first:
            name = next((c.name for c in first if c.name), None)
            function_call = FunctionDeltaOut(name=name, arguments="".join(c.arguments or "" for c in first))
        finish = "function_call" if finish == "tool_calls" else finish
    elif piece.tool_calls:
        calls = [
            ToolCallDeltaOut(
                index=c.index,
                id=c.id,
                type="function" if c.id else None,
                function=FunctionDeltaOut(name=c.name, arguments=c.arguments),
            )
            for c in piece.tool_calls
        ]
    choice = ChunkChoice(
        index=piece.index,
        delta=ChunkDelta(
            content=piece.text,
            reasoning_content=piece.reasoning or None,
            tool_calls=calls,
            function_call=function_call,
            annotations=[] if finish else None,
        ),
        message=ChunkMessage(content=piece.text),
        logprobs=chat_logprobs(piece.logprobs) if logprobs and piece.logprobs else None,
        finish_reason=finish,
    )
    return ChatCompletionChunk(id=run.id, created=run.created, model=run.model, choices=[choice])


def role_chunk(run: Run, index: int) -> ChatCompletionChunk:
    choice = ChunkChoice(
        index=index, delta=ChunkDelta(role="assistant", content=""), message=ChunkMessage(content="")
    )
    return ChatCompletionChunk(id=run.id, created=run.created, model=run.model, choices=[choice])


def tool_call(index: int, call: dict) -> ToolCallOut:
    """A collected tool call in OpenAI's shape."""
    return ToolCallOut(
        id=call["id"] or f"call_{index}",
        function=FunctionOut(name=call["name"], arguments=call["arguments"]),
    )


def whole_choice(collected: Collected, logprobs: bool, legacy: bool = False) -> ChatChoice:
    calls = [tool_call(i, c) for i, c in sorted(collected.calls.items())]
    text = "".join(collected.text)
    finish = collected.finish_reason
    if legacy and calls:  # a `functions` request: its one `function_call`
        function_call, calls = calls[0].function, []
        finish = "function_call" if finish == "tool_calls" else finish
    else:
        function_call = None
    message = ChatMessageOut(
        content=text if text or not (calls or function_call) else None,
        reasoning_content="".join(collected.reasoning) or None,
        tool_calls=calls or None,
        function_call=function_call,
    )
    return ChatChoice(
        index=collected.index,
        message=message,
        logprobs=chat_logprobs(tuple(collected.logprobs)) if logprobs else None,
        finish_reason=finish,
    )


def whole_chat(
    run: Run,
    body: ChatCompletionRequest,
    extras: dict | None = None,
    keep: Callable[[Collected], None] | None = None,
) -> ChatCompletion:
    collected = Collected.all(run)
    if keep is not None:
        keep(collected[0])
    legacy = uses_legacy_functions(body)
    choices = [whole_choice(c, bool(body.logprobs), legacy) for c in collected]
    return ChatCompletion(
        id=run.id, created=run.created, model=run.model, choices=choices, usage=run.usage(), **(extras or {})
    )


def stream_chat(
    run: Run,
    body: ChatCompletionRequest,
    extras: dict | None = None,
    keep: Callable[[Collected], None] | None = None,
) -> Response:
    pieces = run.started_pieces()

    legacy = uses_legacy_functions(body)

    def chunks() -> Iterator[ChatCompletionChunk]:
        current, first = None, Collected(0)
        try:
            for piece in pieces:
                if piece.index != current:
                    current = piece.index
                    yield role_chunk(run, piece.index)
                if piece.index == 0:
                    first.add(piece)
                out = chunk(run, piece, bool(body.logprobs), legacy)
                if piece.finish_reason and extras:
                    out = out.model_copy(update=extras)
                yield out
        finally:  # also when the client went away: keep what was said
            if keep is not None:
                keep(first)
        if body.include_usage:
            yield ChatCompletionChunk(
                id=run.id, created=run.created, model=run.model, choices=[], usage=run.usage()
            )

    return sse_response(chunks(), run.close)


# --- /v1/edits ---------------------------------------------------------------------------------------


def edits() -> Response:
    """An instruction and an input become one user message of an instruct-mode chat."""
    body = read_json(EditRequest)
    text = f"{body.instruction}\n\n{body.input}" if body.input else body.instruction
    shared = body.model_dump(include=set(SamplingRequest.model_fields), exclude_none=True)
    chat = ChatCompletionRequest.model_validate(
        {**shared, "stream": False, "messages": [{"role": "user", "content": text}]}
    )
    engine = engine_for(chat.model)
    options = chat_options(chat, engine)
    run = start_chat(chat, engine, options, prepare_prompt(chat, options, engine), prefix="edit")
    try:
        choices = [EditChoice(text="".join(c.text), index=c.index) for c in Collected.all(run)]
        return json_response(Edit(created=run.created, choices=choices, usage=run.usage()))
    finally:
        run.close()
