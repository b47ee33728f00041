"""text-generation-webui's internal endpoints (`/v1/internal/...`), with the same shapes."""

from __future__ import annotations

import math

from flask import Response, request

from modules.app import services
from modules.errors import InvalidRequest, NotFound, TooManyTokens

from . import chat_completions, chat_turns
from .bodies import (
    ChatPromptResponse,
    DecodeResponse,
    EncodeResponse,
    EngineStatsOut,
    LogitsResponse,
    LoraListResponse,
    LoraOut,
    ModelInfoResponse,
    ModelListResponse,
    StatusResponse,
    TokenCountResponse,
)
from .http import check_admin, json_response, read_json
from .models import engine_for
from .protocol import (
    ChatCompletionRequest,
    DecodeRequest,
    EncodeRequest,
    LogitsRequest,
    LoraLoadRequest,
    LoraUnloadRequest,
    ModelLoadArgs,
    ModelLoadRequest,
    ModelUnloadRequest,
    StopRequest,
)
from .state import api_state
from .tools_wire import ToolsStatus

DEFAULT_TOP_LOGITS = 50


def encode() -> Response:
    body = read_json(EncodeRequest)
    engine = engine_for(body.model)
    tokens = counted(engine, body.text, add_bos=body.add_bos is not False)
    return json_response(EncodeResponse(tokens=tokens, length=len(tokens)))


COUNTED_CONTEXTS = 4  # encode and token-count count texts up to 4 contexts long


def counted(engine, text: str, *, add_bos: bool = True) -> list[int]:
    """The tokens of a text to count: at most COUNTED_CONTEXTS times the largest context the
    model knows, so that no request makes the tokenizer work for minutes."""
    limit = COUNTED_CONTEXTS * max(engine.info.n_ctx, engine.info.n_ctx_train or 0)
    try:
        return engine.tokenize(text, add_bos=add_bos, limit=limit)
    except TooManyTokens as too_many:
        raise InvalidRequest(
            f"The text has more than {limit} tokens (at least {too_many.at_least}): Hearth counts "
            f"texts up to {COUNTED_CONTEXTS} times the model's context.",
            param="text",
            code="context_length_exceeded",
        ) from None


def decode() -> Response:
    body = read_json(DecodeRequest)
    engine = engine_for(body.model)
    if any(token >= engine.info.n_vocab for token in body.tokens):
        raise InvalidRequest(f"Token ids must be below {engine.info.n_vocab} for this model.", param="tokens")
    return json_response(DecodeResponse(text=engine.detokenize(body.tokens)))


def token_count() -> Response:
    body = read_json(EncodeRequest)
    engine = engine_for(body.model)
    return json_response(TokenCountResponse(length=len(counted(engine, body.text))))


def logits() -> Response:
    """The most likely next tokens and their probabilities, before or after the samplers."""
    body = read_json(LogitsRequest)
    engine = engine_for(body.model, body.keep_alive_seconds)
    params = body.sampling(max_tokens=None, n_vocab=engine.info.n_vocab)
    top = engine.token_logprobs(
        body.prompt, params, body.top_logits or DEFAULT_TOP_LOGITS, bool(body.use_samplers)
    )
    probabilities: dict[str, float] = {}
    for entry in top:
        if entry.logprob > -math.inf and entry.token not in probabilities:
            probabilities[entry.token] = math.exp(entry.logprob)
    return json_response(LogitsResponse(logits=probabilities))


def chat_prompt() -> Response:
    """Exactly the prompt a chat completion with this body would send to the model."""
    body = read_json(ChatCompletionRequest)
    turn = chat_completions.chat_turn(body)
    prepared = chat_turns.prepare(turn, chat_turns.turn_engine(turn))
    return json_response(
        ChatPromptResponse(prompt=prepared.prompt, dropped_messages=prepared.dropped_messages)
    )


def stop_generation() -> Response:
    """Stop one request by its response id (any key holder: ids are unguessable), or with no
    id, every generation (admin key only)."""
    body = read_json(StopRequest, allow_empty=True)
    if body.id is None:
        check_admin()  # stopping everyone's generations manages Hearth
        stopped = sum(engine.cancel_all() for _, engine in services().models.loaded_engines())
        return json_response(StatusResponse(stopped=stopped))
    runs = [run for run in list(api_state().running.values()) if run.owns(body.id)]
    if not runs:
        raise NotFound(f"No generation with id {body.id!r} is running.", param="id")
    for run in runs:
        run.cancel(body.id)
    return json_response(StatusResponse(stopped=len(runs)))


def model_info() -> Response:
    """The model in use; with `?model=ID`, that one (loaded if needed, as a request for it
    would): a Hearth in front of this one reads how to build its prompts here."""
    manager = services().models
    name = request.args.get("model")
    engine = engine_for(name) if name else manager.get_loaded()
    loaded = manager.loaded_ids()
    if engine is None:
        return json_response(ModelInfoResponse(model_name=None, loaded=loaded))
    info, stats = engine.info, engine.stats()
    adapters = getattr(engine, "adapters", ())
    args = manager.args_of(info.name)
    return json_response(
        ModelInfoResponse(
            model_name=info.name,
            lora_names=[adapter.name for adapter in adapters],
            loras=[LoraOut(id=a.id, name=a.name, scale=a.scale) for a in adapters],
            loader=info.loader,
            n_ctx=info.n_ctx,
            n_ctx_train=info.n_ctx_train,
            n_vocab=info.n_vocab,
            instruction_template=api_state().templates.get(info.name),
            has_chat_template=bool(info.chat_template),
            cache_type=info.cache_type,
            flash_attn=info.flash_attn,
            kv_cache_bytes=info.kv_cache_bytes,
            kv_bytes_per_token=info.kv_bytes_per_token,
            args=args.given() if args is not None else {},
            chat_template=info.chat_template,
            bos_token=info.bos_token,
            eos_token=info.eos_token,
            stats=EngineStatsOut(slots=stats.slots, busy_slots=stats.busy_slots, queued=stats.queued),
            loaded=loaded,
        )
    )


def model_list() -> Response:
    return json_response(ModelListResponse(model_names=[spec.id for spec in services().models.catalog()]))


def model_load() -> Response:
    """Load a model with `args` (kept for its later loads on demand; none: the server's and
    models.yaml's settings alone) and remember its instruction template."""
    body = read_json(ModelLoadRequest)
    manager = services().models
    spec = manager.resolve(body.model_name)
    if body.template:
        services().chat.templates.get(body.template)  # an unknown name is a 404 now, not per chat
    manager.load(spec.id, body.args or ModelLoadArgs())
    templates = api_state().templates
    if body.template:
        templates[spec.id] = body.template
    else:
        templates.pop(spec.id, None)
    return json_response(StatusResponse(model_name=spec.id))


def model_unload() -> Response:
    body = read_json(ModelUnloadRequest, allow_empty=True)
    manager, media = services().models, services().media
    if body.model_name and media.knows(body.model_name):  # an embedding, image or audio model
        return json_response(StatusResponse(unloaded=media.unload(body.model_name)))
    name = manager.resolve(body.model_name).id if body.model_name else None
    unloaded = manager.unload(name)
    if name is None:
        unloaded += media.unload_all()
    return json_response(StatusResponse(unloaded=unloaded))


# --- LoRA adapters (text-generation-webui's endpoints) ------------------------------------------


def lora_list() -> Response:
    """The adapters in the LoRA folder (GGUF files), by name."""
    return json_response(LoraListResponse(lora_names=list(services().models.lora_files())))


def lora_load() -> Response:
    """Make these adapters (with their scales) the model's list, replacing the one it had."""
    body = read_json(LoraLoadRequest)
    manager = services().models
    name = manager.engine(body.model_name).info.name
    names = manager.set_adapters(name, body.lora_names, body.scales)
    return json_response(StatusResponse(model_name=name, lora_names=names))


def lora_unload() -> Response:
    """Take every adapter off the model."""
    body = read_json(LoraUnloadRequest, allow_empty=True)
    manager = services().models
    name = manager.engine(body.model_name).info.name
    manager.set_adapters(name, [], [])
    return json_response(StatusResponse(model_name=name, lora_names=[]))


def tools() -> Response:
    """The MCP servers (state, last error, tools once started), local and built-in tools."""
    return json_response(ToolsStatus.model_validate(services().tools.status()))
