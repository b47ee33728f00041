"""POST /v1/chat/completions (and /v1/edits, which is a one-message chat)."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response
from pydantic import BaseModel

from modules.chat.messages import ChatMessage, ChatOptions
from modules.chat.tools import tool_choice_from_function_call, tools_from_functions
from modules.image_input import ImageReader

from . import chat_turns
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
from .chat_turns import ChatTurn, StartedTurn
from .http import json_response, read_json
from .protocol import ChatCompletionRequest, ChatMessageIn, EditRequest, SamplingRequest
from .sse import sse_response
from .streaming import Collected, Piece, Run

ROLE_ALIASES = {"developer": "system", "function": "tool"}  # what chat templates know


def chat_completions() -> Response:
    body = read_json(ChatCompletionRequest)
    if body.hearth_tools is not None:
        from .chat_tool_runs import chat_with_tools  # it imports this module

        return chat_with_tools(body)
    started = chat_turns.start(chat_turn(body))
    extras = response_extras(started.extras)
    if body.stream:
        return stream_chat(started, body, extras)
    try:
        return json_response(whole_chat(started, body, extras))
    finally:
        started.run.close()


# --- Request -> chat turn ---------------------------------------------------------------------------


def chat_turn(body: ChatCompletionRequest, prefix: str = "chatcmpl") -> ChatTurn:
    schema = body.response_format.schema_for_grammar() if body.response_format else None
    return ChatTurn(
        model=body.model,
        messages=chat_messages(body.messages, chat_turns.image_reader()),
        options=chat_options(body),
        sampling=body,
        max_tokens=body.max_new_tokens,
        choices=body.choices,
        logprobs=body.logprob_count,
        json_schema=schema,
        localdocs=body.localdocs,
        history_id=body.history_id,
        id_prefix=prefix,
        affinity=f"key:{body.prompt_cache_key}" if body.prompt_cache_key else None,
    )


def chat_messages(messages: list[ChatMessageIn], images: ImageReader) -> list[ChatMessage]:
    out = []
    for i, m in enumerate(messages):
        text, found = m.content_of(f"messages.{i}", images)
        out.append(
            ChatMessage(
                role=ROLE_ALIASES.get(m.role, m.role),
                content=text,
                name=m.name,
                tool_calls=message_calls(m),
                tool_call_id=m.tool_call_id,
                images=found,
            )
        )
    return out


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


def chat_options(body: ChatCompletionRequest) -> ChatOptions:
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
    return body.chat_options(
        tools=tuple(tools),
        tool_choice=tool_choice.model_dump() if isinstance(tool_choice, BaseModel) else tool_choice,
        reasoning_effort=body.reasoning_effort,
    )


def response_extras(extras: dict) -> dict:
    """Hearth's fields of the chat completion: what extensions added, and the truncation."""
    out: dict = dict(extras)
    if "localdocs" in out:
        out["localdocs"] = LocalDocsOut.model_validate(out["localdocs"])
    return out


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


def whole_chat(started: StartedTurn, body: ChatCompletionRequest, extras: dict) -> ChatCompletion:
    run = started.run
    collected = Collected.all(run)
    started.keep(collected[0])
    legacy = uses_legacy_functions(body)
    choices = [whole_choice(c, bool(body.logprobs), legacy) for c in collected]
    return ChatCompletion(
        id=run.id, created=run.created, model=run.model, choices=choices, usage=run.usage(), **extras
    )


def stream_chat(started: StartedTurn, body: ChatCompletionRequest, extras: dict) -> Response:
    run = started.run
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
            started.keep(first)
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
    run = chat_turns.start(chat_turn(chat, prefix="edit")).run
    try:
        choices = [EditChoice(text="".join(c.text), index=c.index) for c in Collected.all(run)]
        return json_response(Edit(created=run.created, choices=choices, usage=run.usage()))
    finally:
        run.close()
