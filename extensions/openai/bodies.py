"""Response bodies, as typed models in OpenAI's shapes.

Optional fields OpenAI omits when empty are dropped from the JSON when None (`_omit`);
fields OpenAI always sends, even as null (`finish_reason`, `logprobs`), stay.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modules.engines.base import TokenLogprob, TopLogprob, Usage


def _omit(default: Any = None, description: str = "") -> Any:
    return Field(default, description=description, exclude_if=lambda value: value is None)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Usage and logprobs ---------------------------------------------------------------------------


class PromptTokensDetails(Out):
    cached_tokens: int = 0


class UsageOut(Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = _omit()

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int = 0) -> UsageOut:
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        )


def total_usage(prompt_usages: list[Usage], completion_tokens: int) -> UsageOut:
    """Prompt tokens once per prompt (as OpenAI counts them), completion tokens of every choice."""
    return UsageOut.of(
        sum(u.prompt_tokens for u in prompt_usages),
        completion_tokens,
        sum(u.cached_tokens for u in prompt_usages),
    )


class TopLogprobOut(Out):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatTokenLogprob(Out):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprobOut]


class ChatLogprobs(Out):
    content: list[ChatTokenLogprob] | None
    refusal: list[ChatTokenLogprob] | None = None


def _top(entry: TopLogprob) -> TopLogprobOut:
    return TopLogprobOut(token=entry.token, logprob=entry.logprob, bytes=list(entry.bytes))


def chat_logprobs(entries: tuple[TokenLogprob, ...]) -> ChatLogprobs:
    return ChatLogprobs(
        content=[
            ChatTokenLogprob(
                token=e.token,
                logprob=e.logprob if e.logprob is not None else -9999.0,
                bytes=list(e.bytes),
                top_logprobs=[_top(t) for t in e.top],
            )
            for e in entries
        ]
    )


class LegacyLogprobs(Out):
    """The completions endpoint's logprobs: parallel lists, one entry per token."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


def legacy_logprobs(entries: tuple[TokenLogprob, ...], offsets: list[int]) -> LegacyLogprobs:
    return LegacyLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=[None if e.logprob is None else {t.token: t.logprob for t in e.top} for e in entries],
        text_offset=offsets,
    )


# --- Chat completions ---------------------------------------------------------------------------


class FunctionOut(Out):
    name: str
    arguments: str


class ToolCallOut(Out):
    id: str
    type: Literal["function"] = "function"
    function: FunctionOut


class UrlCitation(Out):
    start_index: int
    end_index: int
    url: str
    title: str


class Annotation(Out):
    """OpenAI's annotation of a message (a web search's citation). Hearth makes none, but sends
    the empty list where OpenAI does, for clients that check the shape."""

    type: Literal["url_citation"] = "url_citation"
    url_citation: UrlCitation


class ChatMessageOut(Out):
    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning_content: str | None = _omit(description="Hearth: the model's reasoning, if it shows any.")
    tool_calls: list[ToolCallOut] | None = _omit()
    function_call: FunctionOut | None = _omit(description="A request with the legacy `functions`: the call.")
    refusal: str | None = None
    annotations: list[Annotation] = Field(default_factory=list, description="Always empty: no web search.")


class ChatChoice(Out):
    index: int
    message: ChatMessageOut
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "function_call"]


class LocalDocsSource(Out):
    collection: str
    path: str
    score: float = Field(description="Cosine similarity of the chunk to the user's message (-1 to 1).")
    location: str = Field("", description="Where in the file: lines 12-40, or page 3 of a PDF.")


class LocalDocsOut(Out):
    collections: list[str] = Field(description="The collections searched.")
    sources: list[LocalDocsSource] = Field(description="The chunks put into the prompt, best first.")


class ChatCompletion(Out):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut
    localdocs: LocalDocsOut | None = _omit(
        description="Hearth: with the `localdocs` field, the excerpts used (from the LocalDocs extension)."
    )
    dropped_messages: int | None = _omit(
        description="Hearth: the conversation did not fit the context window, so this many of its "
        "oldest messages were left out of the prompt (absent when nothing was)."
    )
    hearth_tool_messages: list[dict] | None = _omit(
        description="Hearth: with `hearth_tools`, the calls Hearth ran and their results, as chat "
        "messages to keep in the history before this reply's message."
    )


class FunctionDeltaOut(Out):
    name: str | None = _omit()
    arguments: str | None = _omit()


class ToolCallDeltaOut(Out):
    index: int
    id: str | None = _omit()
    type: Literal["function"] | None = _omit()
    function: FunctionDeltaOut


class ChunkDelta(Out):
    role: Literal["assistant"] | None = _omit()
    content: str | None = _omit()
    reasoning_content: str | None = _omit()
    tool_calls: list[ToolCallDeltaOut] | None = _omit()
    function_call: FunctionDeltaOut | None = _omit()
    annotations: list[Annotation] | None = _omit(
        description="On each choice's last chunk (the one with finish_reason): [], as OpenAI sends "
        "a message's annotations at its end."
    )


class ChunkMessage(Out):
    """text-generation-webui's older streaming example reads `message.content` from each chunk."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChunkChoice(Out):
    index: int
    delta: ChunkDelta
    message: ChunkMessage | None = _omit()
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "function_call"] | None = None


class ChatCompletionChunk(Out):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | None = _omit()
    localdocs: LocalDocsOut | None = _omit(
        description="Hearth: on each choice's last chunk, the LocalDocs excerpts used."
    )
    dropped_messages: int | None = _omit(
        description="Hearth: on each choice's last chunk, how many of the oldest messages were left out."
    )


# --- Completions and edits ----------------------------------------------------------------------


class CompletionChoice(Out):
    text: str
    index: int
    logprobs: LegacyLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class Completion(Out):
    """The whole response, and (with finish_reason null until the last) each stream chunk."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut | None = _omit()


class EditChoice(Out):
    text: str
    index: int


class Edit(Out):
    object: Literal["edit"] = "edit"
    created: int
    choices: list[EditChoice]
    usage: UsageOut


# --- Models -------------------------------------------------------------------------------------


class ModelCard(Out):
    model_config = ConfigDict(extra="allow")  # other model kinds may add their own fields

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "hearth"
    kind: str = Field("text", description="Hearth: text, embedding, audio, image, ...")
    loaded: bool = Field(False, description="Hearth: whether the model is in memory now.")
    input_modalities: list[str] | None = _omit(
        None, "Hearth (text models): what the model reads: text, and image when it has a projector (mmproj)."
    )
    state: Literal["loaded", "loading", "unloaded"] | None = _omit(
        None, "Hearth (text models): loaded, loading (see progress) or unloaded."
    )
    progress: float | None = _omit(None, "Hearth: while loading, the fraction loaded (0 to 1).")
    keep_alive: float | None = _omit(
        None, "Hearth: how long a loaded model may stay idle, in seconds (-1: forever)."
    )
    upstreams: list[str] | None = _omit(None, "Hearth (remote models): the upstream servers that serve it.")


class ModelList(Out):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EngineCard(Out):
    """The legacy /v1/engines shape (openai-python 0.x `Engine`)."""

    id: str
    object: Literal["engine"] = "engine"
    created: int
    owner: str = "hearth"
    ready: bool = True


class EngineList(Out):
    object: Literal["list"] = "list"
    data: list[EngineCard]


# --- Internal endpoints -------------------------------------------------------------------------


class EncodeResponse(Out):
    tokens: list[int]
    length: int


class DecodeResponse(Out):
    text: str


class TokenCountResponse(Out):
    length: int


class LogitsResponse(Out):
    logits: dict[str, float] = Field(description="Token -> probability (0 to 1), most likely first.")


class ChatPromptResponse(Out):
    prompt: str
    dropped_messages: int = Field(
        description="How many of the oldest messages were left out to fit the context window."
    )


class EngineStatsOut(Out):
    slots: int
    busy_slots: int
    queued: int


class LoraOut(Out):
    id: int
    name: str
    scale: float


class ModelInfoResponse(Out):
    model_name: str | None
    lora_names: list[str] = []
    loras: list[LoraOut] = []
    loader: str | None = None
    n_ctx: int | None = None
    n_ctx_train: int | None = None
    n_vocab: int | None = None
    instruction_template: str | None = None
    has_chat_template: bool | None = None
    cache_type: str | None = None
    flash_attn: bool | None = None
    kv_cache_bytes: int | None = None
    kv_bytes_per_token: int | None = None
    args: dict | None = None
    chat_template: str | None = Field(None, description="Hearth: the model's own chat template (Jinja).")
    bos_token: str | None = None
    eos_token: str | None = None
    stats: EngineStatsOut | None = None
    loaded: list[str] = []


class LoraListResponse(Out):
    lora_names: list[str]


class ModelListResponse(Out):
    model_names: list[str]


class StatusResponse(Out):
    status: Literal["ok"] = "ok"
    model_name: str | None = _omit()
    unloaded: list[str] | None = _omit()
    stopped: int | None = _omit()
    lora_names: list[str] | None = _omit()


class HealthResponse(Out):
    status: Literal["ok", "loading"]
    models: list[str] | None = _omit()


class ErrorBody(Out):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(Out):
    error: ErrorBody
