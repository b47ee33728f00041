"""Request bodies, as typed models. Each converts itself to the engine's `SamplingParams` once.

Unknown fields are ignored: OpenAI clients send fields Hearth has no use for
(`parallel_tool_calls`, `service_tier`, `store`, `metadata`, ...) and must keep working.
Known fields are strict: a wrong type or an out-of-range value is a 400 naming the field
(`"max_tokens": "50"` is refused, as OpenAI refuses it; `null` means "the default").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modules.chat.messages import ChatOptions
from modules.chat.names import validate_history_id
from modules.engines.base import SamplingParams
from modules.engines.load_args import LoadArgs
from modules.engines.residency import parse_keep_alive
from modules.errors import InvalidRequest
from modules.image_input import MARKER, ImageReader, escape_markers, unreadable

from .tools_wire import HearthTools

MAX_CHOICES = 128  # n (and best_of, and prompts x n) per request
MAX_STOP_STRINGS = 16
MAX_LOGPROBS = 20
COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's legacy default


class ApiModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


def _field(default: Any = None, description: str = "", **constraints: Any) -> Any:
    return Field(default, description=description, **constraints)


# --- Shared sampling fields ---------------------------------------------------------------------


class StreamOptions(ApiModel):
    include_usage: bool | None = _field(None, "Send a last chunk with the usage of the whole request.")


class LoraScale(ApiModel):
    id: int = _field(..., "The adapter's place in the model's list (/v1/internal/model/info `loras`).", ge=0)
    scale: float = _field(..., "Its scale for this request (0: off).", ge=-100, le=100)


class SamplingRequest(ApiModel):
    """The fields completions, chat completions and edits share."""

    model: str | None = _field(
        None, "Model id (see /v1/models). A known model is loaded if needed; none: the loaded model."
    )
    max_tokens: int | None = _field(None, "Most tokens to generate.", ge=0)
    temperature: float | None = _field(None, "0 to 2; 0 is greedy. Default 1.", ge=0, le=2)
    top_p: float | None = _field(None, "Nucleus sampling, 0 to 1. Default 1.", ge=0, le=1)
    top_k: int | None = _field(None, "Hearth: keep only the k most likely tokens (0: off).", ge=0)
    min_p: float | None = _field(
        None, "Hearth: drop tokens less likely than min_p times the best one (0: off).", ge=0, le=1
    )
    typical_p: float | None = _field(None, "Hearth: locally typical sampling (1: off).", gt=0, le=1)
    presence_penalty: float | None = _field(None, "-2 to 2.", ge=-2, le=2)
    frequency_penalty: float | None = _field(None, "-2 to 2.", ge=-2, le=2)
    repetition_penalty: float | None = _field(
        None, "Hearth: divide the logits of tokens already seen (1: off).", gt=0, le=10
    )
    repetition_penalty_range: int | None = _field(
        None, "Hearth: how many recent tokens the penalties look at (default 64, -1: all).", ge=-1
    )
    n: int | None = _field(None, f"Choices to generate, 1 to {MAX_CHOICES}.", ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = _field(
        None, f"Up to {MAX_STOP_STRINGS} strings that end the generation (not included in the text)."
    )
    stream: bool | None = _field(None, "Stream server-sent events.")
    stream_options: StreamOptions | None = None
    seed: int | None = _field(
        None,
        "Sampling seed; the same seed gives the same text. -1: random. With n > 1, choice i uses seed + i.",
        ge=-1,
        le=2**64 - 1,
    )
    logit_bias: dict[str, float] | None = _field(
        None, "Token id (as a string) -> bias from -100 to 100; -100 bans the token."
    )
    user: str | None = _field(None, "Accepted and ignored.")
    grammar_string: str | None = _field(
        None, "Hearth: a GBNF grammar (root rule `root`) the output must follow."
    )
    ignore_eos: bool | None = _field(None, "Hearth: keep generating past the end-of-text token.")
    speculative: bool | None = _field(
        None,
        "Hearth: prompt-lookup drafting (guess the next tokens from earlier text, check them in one "
        "step; the same text, faster where the output repeats the input). Default: on for a "
        "request generating alone; true: always; false: never.",
    )
    keep_alive: int | float | str | None = _field(
        None,
        "Hearth (Ollama's meaning): how long the model stays loaded once idle after this request: "
        'seconds, or a duration such as "5m" or "1h30m"; 0: unload it when the request ends; '
        "negative: keep it loaded. Default: --model-ttl.",
    )
    lora: list[LoraScale] | None = _field(
        None,
        'Hearth (llama-server\'s field): LoRA adapters for this request, [{"id", "scale"}]; '
        "adapters it does not list get scale 0. Default (or []): the model's adapters as loaded.",
        max_length=64,
    )

    @field_validator("keep_alive")
    @classmethod
    def _keep_alive(cls, value: int | float | str | None) -> int | float | str | None:
        if value is not None:
            parse_keep_alive(value)
        return value

    @property
    def keep_alive_seconds(self) -> float | None:
        return None if self.keep_alive is None else parse_keep_alive(self.keep_alive)

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not token.strip().isdigit():
                raise ValueError(f"keys must be token ids, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"bias {bias} for token {token} is outside -100..100")
        return value

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def sampling(
        self,
        *,
        max_tokens: int | None,
        n_vocab: int,
        logprobs: int | None = None,
        extra_stop: tuple[str, ...] = (),
        grammar: str | None = None,
        json_schema: dict | None = None,
    ) -> SamplingParams:
        """The engine's parameters for this request (choice i adds i to the seed: `choice_requests`)."""
        bias = {int(token): bias for token, bias in (self.logit_bias or {}).items()}
        for token in bias:
            if token >= n_vocab:
                raise InvalidRequest(
                    f"logit_bias names token {token}, but this model's vocabulary has {n_vocab} tokens.",
                    param="logit_bias",
                )
        if self.grammar_string and (grammar or json_schema is not None):
            raise InvalidRequest(
                "Use either grammar_string or response_format, not both.", param="grammar_string"
            )
        defaults = SamplingParams()
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=_or(self.temperature, defaults.temperature),
            top_p=_or(self.top_p, defaults.top_p),
            top_k=_or(self.top_k, defaults.top_k),
            min_p=_or(self.min_p, defaults.min_p),
            typical_p=_or(self.typical_p, defaults.typical_p),
            repetition_penalty=_or(self.repetition_penalty, defaults.repetition_penalty),
            presence_penalty=_or(self.presence_penalty, defaults.presence_penalty),
            frequency_penalty=_or(self.frequency_penalty, defaults.frequency_penalty),
            penalty_last_n=_or(self.repetition_penalty_range, defaults.penalty_last_n),
            seed=None if self.seed in (None, -1) else self.seed,
            stop=tuple(dict.fromkeys((*self.stop_strings(), *extra_stop))),
            logit_bias=bias,
            grammar=self.grammar_string or grammar,
            json_schema=json_schema,
            logprobs=logprobs,
            ignore_eos=bool(self.ignore_eos),
            speculative=self.speculative,
            lora=None if self.lora is None else tuple((entry.id, entry.scale) for entry in self.lora),
        )


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


# --- /v1/completions ----------------------------------------------------------------------------

TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class CompletionRequest(SamplingRequest):
    prompt: str | list[str] | TokenIds | list[TokenIds] | None = _field(
        None, "A string, a list of strings, a list of token ids, or a list of lists of token ids."
    )
    messages: list[ChatMessageIn] | None = _field(
        None,
        "Instead of prompt (text-generation-webui's form, for images): the text of these "
        "messages, joined, is the prompt as it is (no template), and `<__media__>` in it marks "
        "where each of their image_url parts goes, in order.",
        min_length=1,
    )
    echo: bool | None = _field(None, "Return the prompt before the completion (with its logprobs).")
    suffix: str | None = _field(None, "Text appended after the completion.")
    logprobs: int | None = _field(
        None,
        f"Return the logprobs of each token and of the N most likely ones (0 to {MAX_LOGPROBS}).",
        ge=0,
        le=MAX_LOGPROBS,
    )
    best_of: int | None = _field(
        None,
        "Generate best_of choices and return the n with the highest mean token logprob.",
        ge=1,
        le=MAX_CHOICES,
    )
    json_schema: dict[str, Any] | None = _field(
        None, "Hearth (as llama-server): a JSON schema the completion must follow, enforced by a grammar."
    )

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("the prompt list is empty")
        return value

    @model_validator(mode="after")
    def _choices(self) -> CompletionRequest:
        if (self.prompt is None) == (self.messages is None):
            raise InvalidRequest("Send a prompt, or messages (not both).", param="prompt")
        # InvalidRequest, not ValueError: pydantic passes it through, with the field named.
        if self.best_of is not None and self.best_of < self.choices:
            raise InvalidRequest("best_of must be at least n.", param="best_of")
        if self.best_of is not None and self.best_of > 1 and self.stream:
            raise InvalidRequest("best_of cannot be used with stream.", param="best_of")
        total = len(self.prompts()) * (self.best_of or self.choices)
        if total > MAX_CHOICES:
            raise InvalidRequest(
                f"{total} generations requested (prompts x n); the limit is {MAX_CHOICES}.", param="n"
            )
        return self

    def prompts(self) -> list[str | list[int]]:
        """The prompts, one per entry: strings or lists of token ids (with `messages`, one
        placeholder: the view reads the messages, images included)."""
        value = self.prompt
        if value is None:
            return [""]
        if isinstance(value, str):
            return [value]
        if all(isinstance(item, int) for item in value):
            return [list(value)]
        return list(value)

    @property
    def max_new_tokens(self) -> int:
        return COMPLETION_DEFAULT_MAX_TOKENS if self.max_tokens is None else self.max_tokens


class EditRequest(SamplingRequest):
    instruction: str = _field(..., "What to do with the input.")
    input: str | None = _field("", "The text to edit.")


# --- /v1/chat/completions -----------------------------------------------------------------------


class ImageUrl(ApiModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(ApiModel):
    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: str | None = None
    refusal: str | None = None
    image_url: ImageUrl | str | None = None  # a string: an older form some clients send


class FunctionCall(ApiModel):
    name: str
    arguments: str = ""


class ToolCall(ApiModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessageIn(ApiModel):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None  # the legacy form of one tool call

    @model_validator(mode="after")
    def _content(self) -> ChatMessageIn:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        return self

    def content_of(self, where: str, images: ImageReader, *, markers: bool = False) -> tuple[str, tuple]:
        """The message's text and its images, a marker in the text where each image goes.

        markers: the text places its images itself with `<__media__>` (text-generation-
        webui's completions form); otherwise text never places one and each image part
        puts a marker where it stands."""
        if self.content is None or isinstance(self.content, str):
            text = self.content or ""
            return (text if markers else escape_markers(text)), ()
        texts, found = [], []
        for i, part in enumerate(self.content):
            if part.type in ("text", "refusal"):
                text = part.text or part.refusal or ""
                texts.append(text if markers else escape_markers(text))
            elif part.type == "image_url" and part.image_url is not None:
                url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
                found.append(images.read(url, f"{where}.content.{i}"))
                if not markers:
                    texts.append(MARKER)
            else:
                raise unreadable(f"{where}.content.{i}", part.type)
        return "".join(texts), tuple(found)


class JsonSchemaFormat(ApiModel):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(ApiModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None
    schema_: dict[str, Any] | None = Field(
        None, alias="schema", description="llama-cpp-python's form: json_object with a schema."
    )

    def schema_for_grammar(self) -> dict | None:
        """The JSON schema the output must follow, or None for free text."""
        if self.type == "text":
            return None
        if self.type == "json_schema":
            if self.json_schema is None:
                raise InvalidRequest(
                    "response_format json_schema needs a json_schema object.",
                    param="response_format.json_schema",
                )
            return self.json_schema.schema_ or {}
        return self.schema_ or {"type": "object"}


class FunctionDefinition(ApiModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(ApiModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(ApiModel):
    name: str


class NamedToolChoice(ApiModel):
    type: Literal["function"]
    function: NamedFunction


class HearthChatFields(ApiModel):
    """Hearth's chat fields (text-generation-webui's), the same on every chat protocol."""

    mode: Literal["chat", "chat-instruct", "instruct"] | None = _field(
        None, "Hearth: how to build the prompt (default instruct: the model's own template)."
    )
    character: str | None = _field(None, "Hearth: character for chat and chat-instruct modes.")
    instruction_template: str | None = _field(
        None,
        "Hearth: instruction template by name (default: the model's own, or the one set "
        "with /v1/internal/model/load).",
    )
    instruction_template_str: str | None = _field(
        None, "Hearth: an instruction template as Jinja2 text (wins over instruction_template)."
    )
    name1: str | None = _field(None, "Hearth: the user's name (same as user_name).")
    user_name: str | None = _field(None, "Hearth: the user's name in chat modes.")
    name2: str | None = _field(None, "Hearth: the bot's name (same as bot_name).")
    bot_name: str | None = _field(None, "Hearth: the bot's name, overriding the character's.")
    context: str | None = _field(None, "Hearth: overrides the character's context.")
    greeting: str | None = _field(None, "Hearth: overrides the character's greeting.")
    user_bio: str | None = _field(None, "Hearth: a description of the user, added to the context.")
    chat_instruct_command: str | None = _field(
        None, "Hearth: the chat-instruct command (<|character|> and <|prompt|> are filled in)."
    )
    continue_: bool | None = _field(
        None, "Hearth: the last message is a partial assistant reply: continue it."
    )
    localdocs: list[str] | None = _field(
        None,
        "Hearth: LocalDocs collections to search for the last user message; the best excerpts "
        "go into the prompt and the response lists them (needs the localdocs extension).",
        max_length=32,
    )
    history_id: str | None = _field(
        None,
        "Hearth: save the conversation (these messages and the first choice's reply) as the chat "
        "with this id in user_data/logs/, created if new, where the browser UI lists it.",
    )

    @field_validator("history_id")
    @classmethod
    def _history_id(cls, value: str | None) -> str | None:
        if value is not None:
            validate_history_id(value)
        return value

    def chat_options(
        self,
        *,
        tools: tuple[dict, ...] = (),
        tool_choice: str | dict = "auto",
        reasoning_effort: str | None = None,
        enable_thinking: bool | None = None,
    ) -> ChatOptions:
        return ChatOptions(
            mode=self.mode or "instruct",
            character=self.character,
            instruction_template=self.instruction_template,
            instruction_template_str=self.instruction_template_str,
            user_name=self.user_name or self.name1,
            bot_name=self.bot_name or self.name2,
            context=self.context,
            greeting=self.greeting,
            user_bio=self.user_bio,
            chat_instruct_command=self.chat_instruct_command,
            continue_=bool(self.continue_),
            tools=tools,
            tool_choice=tool_choice,
            reasoning_effort=reasoning_effort,
            enable_thinking=enable_thinking,
        )


class ChatCompletionRequest(SamplingRequest, HearthChatFields):
    messages: list[ChatMessageIn] = _field(..., "The conversation so far.", min_length=1)
    hearth_tools: HearthTools | None = _field(
        None,
        "Tools Hearth runs itself (MCP servers of mcp.json, built-in and local tools; docs/tools.md). "
        "A tool that needs approval comes back as tool_calls. Not with stream or n > 1.",
    )
    max_completion_tokens: int | None = _field(
        None,
        "Most tokens to generate (wins over max_tokens). Default: until the model stops "
        "or the context is full.",
        ge=0,
    )
    logprobs: bool | None = _field(None, "Return the logprob of each generated token.")
    top_logprobs: int | None = _field(
        None,
        f"With logprobs: also the N most likely tokens at each position (0 to {MAX_LOGPROBS}).",
        ge=0,
        le=MAX_LOGPROBS,
    )
    response_format: ResponseFormat | None = _field(
        None, "text, json_object or json_schema; JSON is enforced by a grammar."
    )
    tools: list[Tool] | None = _field(None, "Functions the model may call.")
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = _field(
        None, "none, auto, required, or a named function."
    )
    functions: list[FunctionDefinition] | None = _field(None, "The legacy form of tools.")
    function_call: Literal["none", "auto"] | NamedFunction | None = _field(
        None, "The legacy form of tool_choice."
    )
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = _field(
        None, "For reasoning models whose template reads it (gpt-oss and others); others ignore it."
    )
    prompt_cache_key: str | None = _field(
        None,
        "Requests with the same key are served where the earlier ones were, so that their prompt "
        "cache is reused (with upstream servers: the same upstream).",
        max_length=1024,
    )

    @model_validator(mode="after")
    def _checked(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequest("top_logprobs needs logprobs: true.", param="top_logprobs")
        return self

    @property
    def max_new_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def logprob_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


# --- Internal endpoints -------------------------------------------------------------------------


class EncodeRequest(ApiModel):
    text: str = _field(..., "Text to tokenize.")
    add_bos: bool | None = _field(None, "Add the model's beginning-of-text token (default true).")
    model: str | None = _field(None, "Model whose tokenizer to use (default: the loaded one).")


class DecodeRequest(ApiModel):
    tokens: list[Annotated[int, Field(ge=0)]] = _field(..., "Token ids to turn into text.")
    model: str | None = None


class LogitsRequest(SamplingRequest):
    prompt: str = _field(..., "Text whose next token to predict.")
    use_samplers: bool | None = _field(
        None, "Apply temperature, top_k, top_p and min_p before listing (default false)."
    )
    top_logits: int | None = _field(None, "How many tokens to list (default 50).", ge=1, le=1000)


class ModelLoadArgs(LoadArgs):
    """text-generation-webui's llama.cpp args, with its names (modules/engines/load_args.py)."""


class ModelLoadSettings(ApiModel):
    instruction_template: str | None = None


class ModelLoadRequest(ApiModel):
    model_name: str = _field(..., "Model id (see /v1/internal/model/list).")
    args: ModelLoadArgs | None = _field(
        None,
        "Load arguments (text-generation-webui's names: ctx_size, cache_type, flash_attn, threads, ...); "
        "an unknown one is a 400 that lists them all. The model keeps them for later loads on demand.",
    )
    settings: ModelLoadSettings | None = _field(
        None, 'text-generation-webui\'s form: {"instruction_template": NAME}.'
    )
    instruction_template: str | None = _field(
        None, "Instruction template for chat requests to this model that name none."
    )

    @property
    def template(self) -> str | None:
        return self.instruction_template or (self.settings.instruction_template if self.settings else None)


class ModelUnloadRequest(ApiModel):
    model_name: str | None = _field(None, "Model to unload (default: every loaded model).")


class LoraLoadRequest(ApiModel):
    lora_names: list[str] = _field(
        ...,
        "Adapters in the LoRA folder (file names without .gguf); they replace the model's list.",
        max_length=64,
    )
    lora_scales: list[float] | None = _field(
        None,
        "Hearth: a scale per adapter, in the same order (default 1.0 each; 0: loaded but off).",
        max_length=64,
    )
    model_name: str | None = _field(None, "Hearth: the model (default: the one used last).")

    @model_validator(mode="after")
    def _scales(self) -> LoraLoadRequest:
        if self.lora_scales is not None and len(self.lora_scales) != len(self.lora_names):
            raise InvalidRequest("lora_scales needs one scale per name in lora_names.", param="lora_scales")
        return self

    @property
    def scales(self) -> list[float]:
        return list(self.lora_scales) if self.lora_scales is not None else [1.0] * len(self.lora_names)


class LoraUnloadRequest(ApiModel):
    model_name: str | None = _field(None, "Hearth: the model (default: the one used last).")


class StopRequest(ApiModel):
    id: str | None = _field(
        None, "Response id of the generation to stop. Without it, every generation stops (admin key only)."
    )
