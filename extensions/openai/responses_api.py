"""POST /v1/responses and its family: OpenAI's Responses API, with state.

This module only translates: a request's input items (after those of the response it
continues) become the chat messages of a `ChatTurn`; the turn's pieces become output items
and events (responses_events.py). Stored responses live in response_store.py; background
ones run in response_jobs.py.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence

from flask import Response, request, stream_with_context
from pydantic import TypeAdapter, ValidationError

from modules.chat.messages import ChatMessage
from modules.errors import HearthError, InvalidRequest, NotFound
from modules.image_input import ImageReader

from . import chat_turns, responses_mcp
from .bodies import UsageOut
from .chat_turns import ChatTurn, StartedTurn
from .http import invalid_field, json_response, read_json, validate
from .mcp_wire import (
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    McpCallItem,
    McpChoice,
    McpListToolsItem,
    McpTool,
)
from .response_jobs import Job
from .responses_events import ResponseBuilder, item_id
from .responses_mcp import McpRun
from .responses_wire import (
    AllowedToolsChoice,
    DeletedResponse,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    InputItemList,
    InputItemsQuery,
    InputTokensCount,
    InputTokensRequest,
    ItemReference,
    MessageItem,
    NamedFunctionChoice,
    ReasoningItem,
    ReasoningOut,
    ResponseObject,
    ResponsesRequest,
)
from .sse import Dialect, sse_response
from .state import api_state
from .streaming import Collected

log = logging.getLogger(__name__)

ROLES = {"developer": "system"}  # what chat templates know
ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
    "mcp_list_tools": "mcpl",
    "mcp_call": "mcp",
    "mcp_approval_request": "mcpr",
    "mcp_approval_response": "mcpa",
}
_ITEMS = TypeAdapter(list[InputItem])


def error_event(error: HearthError) -> dict:
    return {"type": "error", "code": error.code, "message": error.message, "param": error.param}


RESPONSES = Dialect(done=False, named=True, error=error_event)


# --- POST /v1/responses ---------------------------------------------------------------------------


def create_response() -> Response:
    body = read_json(ResponsesRequest)
    store = body.store is not False
    if body.background and not store:
        raise InvalidRequest("A background response must be stored (store: true).", param="background")
    if body.background and body.stream:
        raise InvalidRequest(
            "Hearth does not stream background responses: poll GET /v1/responses/{id}.", param="stream"
        )
    refuse_unserved(body)
    items = conversation_items(body)
    mcp = responses_mcp.prepare(body, items, first_new=len(items) - len(body.input_items()))
    started = chat_turns.start(chat_turn(body, items, follow_client=not body.background, mcp=mcp))
    builder = ResponseBuilder(
        initial_response(body, started),
        count_tokens=started.engine.count_tokens,
        logprobs=body.top_logprobs is not None,
    )
    ignored = body.other_tools()
    if ignored:
        log.info("response %s: tools of types %s are not used", builder.response.id, ", ".join(ignored))
    saved = items if store else None
    if body.background:
        return start_background(started, builder, saved, mcp)
    if body.stream:
        return stream_response(started, builder, saved, mcp)
    try:
        return json_response(whole_response(started, builder, saved, mcp))
    finally:
        started.run.close()


def refuse_unserved(body: ResponsesRequest) -> None:
    """Fields whose meaning Hearth cannot give: ignoring them would lose the conversation."""
    if body.conversation is not None:
        raise InvalidRequest(
            "Hearth does not serve the Conversations API: continue with previous_response_id.",
            param="conversation",
        )
    if body.prompt is not None:
        raise InvalidRequest(
            "Stored prompts are an OpenAI service: send the text as instructions and input.", param="prompt"
        )


def conversation_items(body: ResponsesRequest) -> list[dict]:
    """Every input item of the prompt, as dicts with ids: the previous response's items and
    output, then this request's input."""
    earlier: list[dict] = []
    if body.previous_response_id is not None:
        stored = api_state().responses.store.get(body.previous_response_id)
        if stored is None:
            raise NotFound(
                f"No stored response with id {body.previous_response_id!r}.", param="previous_response_id"
            )
        earlier = [*stored.items, *stored.response.get("output", [])]
    new = []
    for i, item in enumerate(body.input_items()):
        if isinstance(item, ItemReference):
            found = next((old for old in earlier if old.get("id") == item.id), None)
            if found is None:
                raise InvalidRequest(f"No earlier item has the id {item.id!r}.", param=f"input.{i}.id")
            new.append(found)
            continue
        new.append(stored_item(item))
    return [*earlier, *new]


def stored_item(item) -> dict:
    """An input item as the store keeps it and input_items lists it: with an id and a
    status, a message's text as parts (`input_text`, or `output_text` for the assistant's)."""
    data = item.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["id"] = data.get("id") or item_id(ITEM_PREFIXES[item.type])
    data.setdefault("status", "completed")
    if isinstance(item, MessageItem):
        assistant = item.role == "assistant"
        parts = (
            [{"type": "input_text", "text": item.content}]
            if isinstance(item.content, str)
            else data["content"]
        )
        data["content"] = [_as_output_text(p) if assistant else _as_input_text(p) for p in parts]
    return data


def _as_input_text(part: dict) -> dict:
    return {"type": "input_text", "text": part["text"]} if "text" in part else part


def _as_output_text(part: dict) -> dict:
    if "text" not in part:
        return part
    return {"type": "output_text", "text": part["text"], "annotations": [], "logprobs": []}


def chat_turn(
    body: ResponsesRequest, items: list[dict], *, follow_client: bool = True, mcp: McpRun | None = None
) -> ChatTurn:
    messages = chat_messages(items, first_new=len(items) - len(body.input_items()))
    if body.instructions:
        messages = [ChatMessage("system", body.instructions), *messages]
    tools, choice = chat_tools(body, mcp)
    if mcp is not None:
        messages += mcp.messages  # the calls this request approved, with their results
    effort = body.reasoning.effort if body.reasoning else None
    text_format = body.text.format if body.text else None
    return ChatTurn(
        model=body.model,
        messages=messages,
        options=body.chat_options(tools=tools, tool_choice=choice, reasoning_effort=effort),
        sampling=body,
        max_tokens=body.max_output_tokens if body.max_output_tokens is not None else body.max_tokens,
        max_tokens_is_ceiling=True,
        drop_old_turns=body.truncation == "auto",
        logprobs=body.top_logprobs,
        json_schema=text_format.schema_for_grammar() if text_format else None,
        localdocs=body.localdocs,
        history_id=body.history_id,
        id_prefix="resp_",
        follow_client=follow_client,
        affinity=responses_affinity(body, items),
    )


EARLIER_IMAGES = 64  # images of the turns a previous_response_id brings back


def responses_affinity(body: ResponsesRequest, items: list[dict]) -> str | None:
    """The client's prompt_cache_key; else, for a stored conversation, its first item's id,
    which every response continuing it (previous_response_id) carries along."""
    if body.prompt_cache_key:
        return f"key:{body.prompt_cache_key}"
    if (body.previous_response_id is not None or body.store is not False) and items and items[0].get("id"):
        return f"chain:{items[0]['id']}"
    return None


def chat_messages(items: Sequence[dict], first_new: int = 0) -> list[ChatMessage]:
    """Input items as chat messages: function calls join the assistant message before them,
    each function output is a tool message, reasoning stays out of the prompt. The request's
    own images count against the per-request limit; earlier turns' against their own."""
    try:
        parsed = _ITEMS.validate_python(list(items))
    except ValidationError as exc:
        raise invalid_field(exc) from None
    messages: list[ChatMessage] = []
    calls: set[str] = set()
    new_images = chat_turns.image_reader()
    earlier_images = ImageReader(dataclasses.replace(new_images.limits, max_images=EARLIER_IMAGES))
    for i, item in enumerate(parsed):
        where = f"input.{i - first_new}" if i >= first_new else "previous_response_id"
        images = new_images if i >= first_new else earlier_images
        if isinstance(item, MessageItem):
            text, found = item.content_of(where, images)
            messages.append(ChatMessage(ROLES.get(item.role, item.role), text, images=found))
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            calls.add(item.call_id)
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                messages[-1] = ChatMessage("assistant", last.content, tool_calls=(*last.tool_calls, call))
            else:
                messages.append(ChatMessage("assistant", "", tool_calls=(call,)))
        elif isinstance(item, FunctionCallOutputItem):
            if item.call_id not in calls:
                raise InvalidRequest(
                    f"No function_call before this output has the call_id {item.call_id!r}.",
                    param=f"{where}.call_id",
                )
            text, found = item.content_of(where, images)
            messages.append(ChatMessage("tool", text, tool_call_id=item.call_id, images=found))
        elif isinstance(item, McpCallItem):
            messages += responses_mcp.call_messages(item)
        elif isinstance(item, McpListToolsItem | McpApprovalRequestItem | McpApprovalResponseItem):
            continue  # listings and approvals are not the model's business; the calls are
        elif not isinstance(item, ReasoningItem):  # pragma: no cover - the adapter knows every type
            raise InvalidRequest(f"Unsupported input item {item.type!r}.", param=where)
    if not messages:
        raise InvalidRequest("The input holds no message.", param="input")
    return messages


def chat_tools(body: ResponsesRequest, mcp: McpRun | None = None) -> tuple[tuple[dict, ...], str | dict]:
    """The function tools (and the MCP servers' tools) in the chat service's shape, and tool_choice."""
    tools = [tool.as_chat_tool() for tool in body.function_tools()]
    if mcp is not None:
        tools += mcp.chat_tools()
    choice = body.tool_choice
    if isinstance(choice, McpChoice):
        return tuple(tools), mcp.tool_choice(choice) if mcp is not None else "auto"
    if isinstance(choice, NamedFunctionChoice):
        return tuple(tools), {"type": "function", "function": {"name": choice.name}}
    if isinstance(choice, AllowedToolsChoice):
        allowed = {tool.get("name") for tool in choice.tools}
        tools = [tool for tool in tools if tool["function"]["name"] in allowed]
        return tuple(tools), choice.mode
    return tuple(tools), choice or "auto"


def initial_response(body: ResponsesRequest, started: StartedTurn) -> ResponseObject:
    text = body.text.model_dump(mode="json", by_alias=True, exclude_none=True) if body.text else None
    sampling = started.params
    return ResponseObject(
        id=started.run.id,
        created_at=started.run.created,
        status="queued" if body.background else "in_progress",
        background=bool(body.background),
        instructions=body.instructions,
        max_output_tokens=body.max_output_tokens,
        model=started.run.model,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        previous_response_id=body.previous_response_id,
        reasoning=ReasoningOut(**(body.reasoning.model_dump() if body.reasoning else {})),
        store=body.store is not False,
        temperature=sampling.temperature,
        text=text or {"format": {"type": "text"}},
        tool_choice=_dumped(body.tool_choice) or "auto",
        tools=[_dumped_tool(tool) for tool in body.tools or ()],
        top_p=sampling.top_p,
        truncation=body.truncation or "disabled",
        user=body.user,
        metadata=body.metadata or {},
        ignored_tools=body.other_tools() or None,
    )


def _dumped_tool(tool) -> dict:
    return responses_mcp.public_tool(tool) if isinstance(tool, McpTool) else _dumped(tool)


def _dumped(value):
    return (
        value.model_dump(mode="json", by_alias=True, exclude_none=True)
        if hasattr(value, "model_dump")
        else value
    )


# --- The three ways to answer --------------------------------------------------------------------


def pieces_to_end(
    started: StartedTurn, builder: ResponseBuilder, job: Job | None = None, mcp: McpRun | None = None
) -> Iterator[dict]:
    """The events of the whole turn, from `response.created` to its last."""
    yield from builder.opening()
    if mcp is not None:  # turns and tool calls, until the model is done or waits for approval
        usages: list[UsageOut] = []
        end = yield from mcp.events(started, started.turn, builder, usages)
        usage = UsageOut.of(
            sum(u.prompt_tokens for u in usages),
            sum(u.completion_tokens for u in usages),
            sum(u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0 for u in usages),
        )
        yield from builder.finish(end.reply.finish_reason, usage, cancelled=bool(job and job.cancelled))
        return
    first = Collected(0)
    try:
        for piece in started.run.pieces():
            first.add(piece)
            yield from builder.feed(piece)
    finally:
        started.keep(first)
    yield from builder.finish(first.finish_reason, started.run.usage(), cancelled=bool(job and job.cancelled))


def whole_response(
    started: StartedTurn, builder: ResponseBuilder, items: list[dict] | None, mcp: McpRun | None = None
) -> ResponseObject:
    for _ in pieces_to_end(started, builder, mcp=mcp):
        pass
    if items is not None:
        api_state().responses.store.save(builder.response.model_dump(mode="json"), items)
    return builder.response


def stream_response(
    started: StartedTurn, builder: ResponseBuilder, items: list[dict] | None, mcp: McpRun | None = None
) -> Response:
    store = api_state().responses.store
    events = pieces_to_end(started, builder, mcp=mcp)
    opening = [next(events), next(events)]
    try:  # a request that fails at once (a bad grammar, ...) is still a plain HTTP error
        first_piece = next(events)
    except StopIteration:
        first_piece = None
    except BaseException:
        started.run.close()
        raise

    def all_events() -> Iterator[dict]:
        yield from opening
        try:
            if first_piece is not None:
                yield first_piece
                yield from events
        except HearthError as error:
            yield from builder.fail(error)
        except Exception:
            log.exception("response %s failed while streaming", builder.response.id)
            yield from builder.fail(HearthError("The server failed while streaming."))
        finally:
            if items is not None and builder.response.status != "in_progress":
                store.save(builder.response.model_dump(mode="json"), items)

    # With MCP tools, later turns start while streaming: they need the request's context.
    stream = stream_with_context(all_events()) if mcp is not None else all_events()
    return sse_response(stream, started.run.close, RESPONSES)


def start_background(
    started: StartedTurn, builder: ResponseBuilder, items: list[dict], mcp: McpRun | None = None
) -> Response:
    responses = api_state().responses
    queued = builder.response.model_dump(mode="json")
    responses.store.save(queued, items)

    def work(job: Job) -> None:
        try:
            for _ in pieces_to_end(started, builder, job, mcp):
                pass
        except HearthError as error:
            builder.fail(error)
        finally:
            started.run.close()
            responses.store.update(builder.response.model_dump(mode="json"))

    responses.jobs.start(
        Job(
            builder.response.id,
            work,
            cancel_generation=started.run.cancel,
            snapshot=lambda: builder.response.model_dump(mode="json"),
        )
    )
    return json_response(ResponseObject.model_validate(queued))


# --- The stored responses ------------------------------------------------------------------------


def stored_or_404(response_id: str):
    stored = api_state().responses.store.get(response_id)
    if stored is None:
        raise NotFound(f"No stored response with id {response_id!r}.", param="response_id")
    return stored


def get_response(response_id: str) -> Response:
    job = api_state().responses.jobs.get(response_id)
    if job is not None:  # still generating here: the freshest state
        return json_response(ResponseObject.model_validate(job.snapshot()))
    return json_response(ResponseObject.model_validate(stored_or_404(response_id).response))


def delete_response(response_id: str) -> Response:
    responses = api_state().responses
    responses.jobs.cancel(response_id)
    if not responses.store.delete(response_id):
        raise NotFound(f"No stored response with id {response_id!r}.", param="response_id")
    return json_response(DeletedResponse(id=response_id))


def cancel_response(response_id: str) -> Response:
    """Cancel a background response; one that already ended is returned as it is."""
    responses = api_state().responses
    stored = stored_or_404(response_id)
    if not stored.response.get("background"):
        raise InvalidRequest("Only background responses can be cancelled.", param="response_id")
    responses.jobs.cancel(response_id)
    return json_response(ResponseObject.model_validate(stored_or_404(response_id).response))


def list_input_items(response_id: str) -> Response:
    query = validate(InputItemsQuery, request.args.to_dict())
    items = list(stored_or_404(response_id).items)
    if query.order == "desc":
        items.reverse()
    ids = [item.get("id") for item in items]
    if query.after is not None:
        items = items[ids.index(query.after) + 1 :] if query.after in ids else []
    if query.before is not None:
        cut = [item.get("id") for item in items]
        items = items[: cut.index(query.before)] if query.before in cut else items
    page = items[: query.limit]
    return json_response(
        InputItemList(
            data=page,
            first_id=page[0].get("id") if page else None,
            last_id=page[-1].get("id") if page else None,
            has_more=len(items) > len(page),
        )
    )


def count_input_tokens() -> Response:
    """POST /v1/responses/input_tokens: the prompt's tokens, without generating."""
    body = read_json(InputTokensRequest)
    if body.input is None:
        body = body.model_copy(update={"input": []})
    items = conversation_items(body)
    turn = chat_turn(body, items)
    engine = chat_turns.turn_engine(turn)
    prepared = chat_turns.prepare(turn, engine)
    return json_response(InputTokensCount(input_tokens=engine.count_tokens(prepared.prompt)))
