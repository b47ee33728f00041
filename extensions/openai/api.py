"""The API blueprint: the endpoint table, keys, CORS and errors.

Every endpoint is one `Endpoint` row; the blueprint's routes and /openapi.json are both
built from the table, so the description cannot miss an endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel

from modules.app import health, services
from modules.errors import HearthError
from modules.serving.access import ACCESS_ATTRIBUTE

from . import (
    anthropic_messages,
    chat_completions,
    completions,
    internal,
    media,
    models,
    openapi,
    responses_api,
)
from .anthropic_wire import CountTokensRequest, MessageOut, MessagesRequest, MessageStreamEvent, TokenCount
from .bodies import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatPromptResponse,
    Completion,
    DecodeResponse,
    Edit,
    EncodeResponse,
    EngineCard,
    EngineList,
    HealthResponse,
    LogitsResponse,
    LoraListResponse,
    ModelCard,
    ModelInfoResponse,
    ModelList,
    ModelListResponse,
    StatusResponse,
    TokenCountResponse,
)
from .cors import add_cors_headers, check_origin
from .http import ErrorShape, check_admin, check_api_key, install_error_handlers, json_response
from .protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    DecodeRequest,
    EditRequest,
    EncodeRequest,
    LogitsRequest,
    LoraLoadRequest,
    LoraUnloadRequest,
    ModelLoadRequest,
    ModelUnloadRequest,
    StopRequest,
)
from .responses_wire import (
    DeletedResponse,
    InputItemList,
    InputTokensCount,
    InputTokensRequest,
    ResponseObject,
    ResponsesRequest,
    ResponseStreamEvent,
)
from .state import KEY, ApiState, StoredResponses
from .tools_wire import ToolsStatus

Access = Literal["public", "key", "admin"]
Protocol = Literal["openai", "anthropic"]  # whose error shape the endpoint answers in


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # a Flask rule
    view: Callable[..., Response]
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    stream: type[BaseModel] | None = None  # the chunk type, for endpoints that can stream
    access: Access = "key"
    protocol: Protocol = "openai"


def _json(make: Callable[..., BaseModel]) -> Callable[..., Response]:
    def view(**kwargs) -> Response:
        return json_response(make(**kwargs))

    view.__name__ = make.__name__
    return view


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/v1/models",
        _json(models.list_models),
        "Every model Hearth can serve: loaded ones first, then the model folder.",
        response=ModelList,
    ),
    Endpoint(
        "GET",
        "/v1/models/<path:model_id>",
        _json(models.find_model),
        "One model by id (URL-encode spaces: /v1/models/Phi-3%20Mini%20Instruct).",
        response=ModelCard,
    ),
    Endpoint(
        "POST",
        "/v1/completions",
        completions.completions,
        "Continue a prompt (OpenAI's legacy completions).",
        request=CompletionRequest,
        response=Completion,
        stream=Completion,
    ),
    Endpoint(
        "POST",
        "/v1/chat/completions",
        chat_completions.chat_completions,
        "Answer a conversation.",
        request=ChatCompletionRequest,
        response=ChatCompletion,
        stream=ChatCompletionChunk,
    ),
    Endpoint(
        "POST",
        "/v1/responses",
        responses_api.create_response,
        "Answer with OpenAI's Responses API: input items, tools, state (previous_response_id), background.",
        request=ResponsesRequest,
        response=ResponseObject,
        stream=ResponseStreamEvent,
    ),
    Endpoint(
        "POST",
        "/v1/responses/input_tokens",
        responses_api.count_input_tokens,
        "The number of input tokens a Responses API request would use.",
        request=InputTokensRequest,
        response=InputTokensCount,
    ),
    Endpoint(
        "GET",
        "/v1/responses/<response_id>",
        responses_api.get_response,
        "A stored response (a background one as it stands).",
        response=ResponseObject,
    ),
    Endpoint(
        "DELETE",
        "/v1/responses/<response_id>",
        responses_api.delete_response,
        "Delete a stored response.",
        response=DeletedResponse,
    ),
    Endpoint(
        "GET",
        "/v1/responses/<response_id>/input_items",
        responses_api.list_input_items,
        "The input items a stored response's prompt was made of (after, before, limit, order).",
        response=InputItemList,
    ),
    Endpoint(
        "POST",
        "/v1/responses/<response_id>/cancel",
        responses_api.cancel_response,
        "Cancel a background response.",
        response=ResponseObject,
    ),
    Endpoint(
        "POST",
        "/v1/messages",
        anthropic_messages.create_message,
        "Answer with Anthropic's Messages API (Claude Code, the anthropic SDK).",
        request=MessagesRequest,
        response=MessageOut,
        stream=MessageStreamEvent,
        protocol="anthropic",
    ),
    Endpoint(
        "POST",
        "/v1/messages/count_tokens",
        anthropic_messages.count_tokens,
        "The number of input tokens a Messages API request would use.",
        request=CountTokensRequest,
        response=TokenCount,
        protocol="anthropic",
    ),
    Endpoint(
        "POST",
        "/v1/edits",
        chat_completions.edits,
        "Apply an instruction to an input text (OpenAI's retired edits, as LocalAI serves them).",
        request=EditRequest,
        response=Edit,
    ),
    Endpoint(
        "GET",
        "/v1/engines",
        _json(models.list_engines),
        "The models, in the legacy engines shape.",
        response=EngineList,
    ),
    Endpoint(
        "GET",
        "/v1/engines/<path:engine_id>",
        _json(models.find_engine),
        "One model, in the legacy engine shape.",
        response=EngineCard,
    ),
    Endpoint(
        "POST",
        "/v1/internal/encode",
        internal.encode,
        "Tokenize a text.",
        request=EncodeRequest,
        response=EncodeResponse,
    ),
    Endpoint(
        "POST",
        "/v1/internal/decode",
        internal.decode,
        "Turn token ids back into text.",
        request=DecodeRequest,
        response=DecodeResponse,
    ),
    Endpoint(
        "POST",
        "/v1/internal/token-count",
        internal.token_count,
        "Count the tokens of a text.",
        request=EncodeRequest,
        response=TokenCountResponse,
    ),
    Endpoint(
        "POST",
        "/v1/internal/logits",
        internal.logits,
        "The most likely next tokens and their probabilities.",
        request=LogitsRequest,
        response=LogitsResponse,
    ),
    Endpoint(
        "POST",
        "/v1/internal/chat-prompt",
        internal.chat_prompt,
        "The exact prompt a chat completion with this body would use.",
        request=ChatCompletionRequest,
        response=ChatPromptResponse,
    ),
    Endpoint(
        "POST",
        "/v1/internal/stop-generation",
        internal.stop_generation,
        "Stop a generation by its response id (or, with the admin key, all of them).",
        request=StopRequest,
        response=StatusResponse,
    ),
    Endpoint(
        "GET",
        "/v1/internal/model/info",
        internal.model_info,
        "The model in use (or, with ?model=ID, that model, loaded if needed), its context, "
        "its chat template, and how busy it is.",
        response=ModelInfoResponse,
    ),
    Endpoint(
        "GET",
        "/v1/internal/model/list",
        internal.model_list,
        "Every model id that can be loaded.",
        response=ModelListResponse,
        access="admin",
    ),
    Endpoint(
        "POST",
        "/v1/internal/model/load",
        internal.model_load,
        "Load a model, with load options and an instruction template.",
        request=ModelLoadRequest,
        response=StatusResponse,
        access="admin",
    ),
    Endpoint(
        "POST",
        "/v1/internal/model/unload",
        internal.model_unload,
        "Unload one model, or all of them.",
        request=ModelUnloadRequest,
        response=StatusResponse,
        access="admin",
    ),
    Endpoint(
        "GET",
        "/v1/internal/lora/list",
        internal.lora_list,
        "The LoRA adapters in the LoRA folder.",
        response=LoraListResponse,
        access="admin",
    ),
    Endpoint(
        "POST",
        "/v1/internal/lora/load",
        internal.lora_load,
        "Make these LoRA adapters (with scales) a model's adapters.",
        request=LoraLoadRequest,
        response=StatusResponse,
        access="admin",
    ),
    Endpoint(
        "POST",
        "/v1/internal/lora/unload",
        internal.lora_unload,
        "Take every LoRA adapter off a model.",
        request=LoraUnloadRequest,
        response=StatusResponse,
        access="admin",
    ),
    Endpoint(
        "GET",
        "/v1/internal/tools",
        internal.tools,
        "The MCP servers of mcp.json (state, last error, tools), local and built-in tools.",
        response=ToolsStatus,
        access="admin",
    ),
    Endpoint(
        "GET",
        "/v1/internal/health",
        health,
        "ok, or 503 while a model loads (also at /health).",
        response=HealthResponse,
        access="public",
    ),
    *(Endpoint(**vars(route)) for route in media.ROUTES),  # embeddings, images, audio
    Endpoint(
        "GET", "/openapi.json", openapi.document_view, "This API's OpenAPI description.", access="public"
    ),
    Endpoint(
        "GET",
        "/docs",
        openapi.docs_page,
        "The API documentation, rendered in the browser (works offline).",
        access="public",
    ),
)

# Served by the core blueprint, documented here: /health answers without a key.
CORE_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/health", health, "ok, or 503 while a model loads.", response=HealthResponse, access="public"
    ),
)

PUBLIC_PATHS = frozenset(e.path for e in (*ENDPOINTS, *CORE_ENDPOINTS) if e.access == "public")
ANTHROPIC_PATHS = frozenset(e.path for e in ENDPOINTS if e.protocol == "anthropic")


def error_shape() -> ErrorShape:
    """Anthropic's error shape on its routes, OpenAI's everywhere else."""
    return anthropic_messages.error_body if request.path in ANTHROPIC_PATHS else HearthError.to_dict


ACCESS: dict[str, Access] = {"openai." + e.view.__name__: e.access for e in ENDPOINTS}


def is_api_request() -> bool:
    return request.path.startswith("/v1") or request.path in PUBLIC_PATHS


def route_access() -> Access:
    """Who may call the route of this request: the table says it for the API's endpoints;
    other extensions' routes inside the API are admin calls when marked so (`admin_only`)."""
    if request.endpoint in ACCESS:
        return ACCESS[request.endpoint]
    if request.path in PUBLIC_PATHS:
        return "public"
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, ACCESS_ATTRIBUTE, "key")


def create_blueprint(responses: StoredResponses, children: Sequence[Blueprint] = ()) -> Blueprint:
    """The API; `children` (other extensions' `api_blueprint`s) are mounted inside it, so their
    routes get the API's port, keys, CORS and error shape."""
    bp = Blueprint("openai", __name__)
    for endpoint in ENDPOINTS:
        bp.add_url_rule(
            endpoint.path, endpoint=endpoint.view.__name__, view_func=endpoint.view, methods=[endpoint.method]
        )
    for child in children:
        bp.register_blueprint(child)

    @bp.record_once
    def setup(state) -> None:
        state.app.extensions[KEY] = ApiState(responses, model_sources=[models.text_models, media.model_cards])

    bp.before_request(_check_access)
    bp.teardown_request(models.release_held_models)
    bp.after_app_request(_finish_response)
    install_error_handlers(bp, is_api_request, error_shape)
    return bp


def _check_access() -> None:
    """Every API request, before its view: the page it comes from, then the keys (and for
    admin calls, where it comes from). CORS preflights carry no credentials: they only get
    headers (`_finish_response`)."""
    access = route_access()
    if request.method == "OPTIONS" or access == "public":
        return
    if access == "key":
        check_origin(services().settings.cors_origins)
    check_api_key()
    if access == "admin":
        check_admin()


def _finish_response(response: Response) -> Response:
    # requests are logged (api_debug) by the server's traffic middleware
    if is_api_request() and route_access() != "admin":  # admin calls never answer other sites
        add_cors_headers(response, services().settings.cors_origins)
    return response
