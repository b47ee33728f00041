"""What each kind of upstream server speaks, beyond the OpenAI API they share.

Hearth builds every prompt itself (characters, the three chat modes, templates, tools,
LocalDocs, the extensions' hooks) and sends the text to the upstream's completions
endpoint, so that a remote model gets exactly the prompt a local one would; see
docs/deployment.md ("What is routed where") for why. The kinds differ in the rest:

- llama-server: /v1/completions with its own sampling fields, `grammar`, `json_schema` and
  `n_probs`; /tokenize and /detokenize; /props (context per slot, slots, chat template,
  BOS and EOS); /health.
- hearth: /v1/completions with `grammar_string` and `json_schema`; /v1/internal/encode and
  /decode; /v1/internal/model/info?model=ID; /health (503 "loading" is alive).
- vllm: /v1/completions with `top_k`, `min_p` and structured outputs; /tokenize and
  /detokenize; the context from /v1/models (`max_model_len`); /health.
- llama-cpp-python: /v1/completions with `grammar` (a JSON schema becomes one here);
  /extras/tokenize and /extras/detokenize; no details (context 2048, one slot); /v1/models.
- ollama: /api/generate with `raw: true` (its /v1/completions would wrap Hearth's prompt in
  the model's own template); no tokenizer; /api/show; /api/version. No grammars.
- openai (any other server): /v1/completions with `response_format`; no tokenizer, no
  details, no grammars; /v1/models.

Without a tokenizer endpoint, token counts are estimated (see `estimate_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidRequest
from ..base import SamplingParams, TokenLogprob, TopLogprob
from .http import Endpoint, HttpError

DISCOVERY_TIMEOUT = 10.0  # seconds for /v1/models, /props and the like
TOKENIZE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Listing:
    """One model as an upstream's model list describes it."""

    id: str
    n_ctx: int | None = None
    n_ctx_train: int | None = None
    n_vocab: int | None = None


@dataclass(frozen=True)
class ModelDetails:
    """What Hearth needs to know about a model to build its prompts."""

    n_ctx: int | None = None  # the context one request may use
    n_ctx_train: int | None = None
    n_vocab: int | None = None
    chat_template: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    slots: int | None = None  # requests it generates at once


@dataclass(frozen=True)
class Chunk:
    """One event of an upstream's stream, in Hearth's terms."""

    text: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: str | None = None
    usage: dict | None = None  # prompt_tokens, completion_tokens, cached_tokens
    stop_sequence: str | None = None
    done: bool = False  # the stream's last event


@dataclass(frozen=True)
class Call:
    """An upstream request: where, what, and how its answer streams."""

    path: str
    body: dict
    framing: str = "sse"  # "sse" or "ndjson"


class NoTokenizer(Exception):
    """The upstream has no endpoint that turns text into token ids."""


def estimate_tokens(text: str) -> int:
    """A token count for upstreams that cannot count: one token per 3 bytes of UTF-8, rounded
    up. English averages about 4 bytes a token and code about 3, so prompts are fitted with a
    margin; CJK text is about 3 bytes a token, so the estimate stays close there too."""
    return math.ceil(len(text.encode("utf-8")) / 3)


class Dialect:
    """A plain OpenAI-compatible server: completions, no tokenizer, no details."""

    kind = "openai"
    health_path = "/v1/models"
    default_capacity = 4
    default_n_ctx: int | None = None
    grammar = False  # follows a GBNF grammar
    open_ended = True  # without max_tokens it generates until the context is full

    # --- discovery ---------------------------------------------------------------------------

    def listings(self, listed: Any) -> list[Listing]:
        """The models of a /v1/models answer."""
        return [self.listing(entry) for entry in _entries(listed)]

    def listing(self, entry: dict) -> Listing:
        return Listing(id=str(entry["id"]))

    def details(self, endpoint: Endpoint, model: str, listing: Listing) -> ModelDetails:
        return ModelDetails(n_ctx=listing.n_ctx, n_ctx_train=listing.n_ctx_train, n_vocab=listing.n_vocab)

    def check_health(self, endpoint: Endpoint, timeout: float) -> None:
        """Raises when the upstream cannot serve (HttpError, Unreachable, StreamBroken)."""
        endpoint.call("GET", self.health_path, timeout=timeout)

    # --- tokens ------------------------------------------------------------------------------

    def tokenize(self, endpoint: Endpoint, model: str, text: str, add_bos: bool) -> list[int]:
        raise NoTokenizer

    def detokenize(self, endpoint: Endpoint, model: str, tokens: Sequence[int]) -> str:
        raise NoTokenizer

    # --- generation --------------------------------------------------------------------------

    def generation(self, model: str, prompt: str | list[int], params: SamplingParams) -> Call:
        body = self.common_body(model, prompt, params)
        self.add_constraints(body, params)
        return Call("/v1/completions", body)

    def common_body(self, model: str, prompt: str | list[int], p: SamplingParams) -> dict:
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompt,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": p.temperature,
            "top_p": p.top_p,
        }
        if p.max_tokens is not None:
            body["max_tokens"] = p.max_tokens
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        if p.presence_penalty:
            body["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            body["frequency_penalty"] = p.frequency_penalty
        if p.logit_bias:
            body["logit_bias"] = {str(token): bias for token, bias in p.logit_bias.items()}
        if p.logprobs is not None:
            body["logprobs"] = p.logprobs
        return body

    def add_constraints(self, body: dict, p: SamplingParams) -> None:
        """The grammar or JSON schema the reply must follow, in this upstream's words."""
        if p.grammar:
            if not self.grammar:
                raise InvalidRequest(
                    f"This model runs on an upstream server ({self.kind}) that cannot follow a "
                    "grammar: grammar_string and forced tool calls (tool_choice required or a "
                    "named function) are not available for it.",
                    param="grammar_string",
                )
            body["grammar"] = p.grammar
        elif p.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": dict(p.json_schema)},
            }

    def chunk(self, event: dict) -> Chunk:
        """An OpenAI completions stream event."""
        usage = _usage(event.get("usage"))
        choices = event.get("choices") or []
        if not choices:
            return Chunk(usage=usage)
        choice = choices[0]
        return Chunk(
            text=choice.get("text") or "",
            logprobs=self.logprobs(choice.get("logprobs")),
            finish_reason=choice.get("finish_reason"),
            usage=usage,
            stop_sequence=_stop_string(choice.get("stop_reason")),
        )

    def logprobs(self, data: Any) -> tuple[TokenLogprob, ...]:
        return _logprobs(data)


class LlamaServer(Dialect):
    kind = "llama-server"
    health_path = "/health"
    default_capacity = 1  # llama-server's --parallel default; /props says how many it has
    grammar = True

    def listing(self, entry: dict) -> Listing:
        meta = entry.get("meta") or {}
        return Listing(
            id=str(entry["id"]), n_ctx_train=_int(meta.get("n_ctx_train")), n_vocab=_int(meta.get("n_vocab"))
        )

    def details(self, endpoint: Endpoint, model: str, listing: Listing) -> ModelDetails:
        props = endpoint.call("GET", f"/props?model={_quoted(model)}", timeout=DISCOVERY_TIMEOUT) or {}
        settings = props.get("default_generation_settings") or {}
        return ModelDetails(
            n_ctx=_int(settings.get("n_ctx")),
            n_ctx_train=listing.n_ctx_train,
            n_vocab=listing.n_vocab,
            chat_template=props.get("chat_template") or None,
            bos_token=props.get("bos_token") or "",
            eos_token=props.get("eos_token") or "",
            slots=_int(props.get("total_slots")),
        )

    def tokenize(self, endpoint: Endpoint, model: str, text: str, add_bos: bool) -> list[int]:
        body = {"model": model, "content": text, "add_special": add_bos, "parse_special": True}
        return list(endpoint.call("POST", "/tokenize", body, timeout=TOKENIZE_TIMEOUT)["tokens"])

    def detokenize(self, endpoint: Endpoint, model: str, tokens: Sequence[int]) -> str:
        body = {"model": model, "tokens": list(tokens)}
        return endpoint.call("POST", "/detokenize", body, timeout=TOKENIZE_TIMEOUT)["content"]

    def common_body(self, model: str, prompt: str | list[int], p: SamplingParams) -> dict:
        body = super().common_body(model, prompt, p)
        body.pop("logprobs", None)
        body.update(
            top_k=p.top_k,
            min_p=p.min_p,
            typical_p=p.typical_p,
            repeat_penalty=p.repetition_penalty,
            repeat_last_n=p.penalty_last_n,
            presence_penalty=p.presence_penalty,
            frequency_penalty=p.frequency_penalty,
            cache_prompt=True,
        )
        if p.ignore_eos:
            body["ignore_eos"] = True
        if p.logprobs is not None:
            body["n_probs"] = max(1, p.logprobs)  # 0 would turn them off; the extra one is dropped
        return body

    def add_constraints(self, body: dict, p: SamplingParams) -> None:
        if p.grammar:
            body["grammar"] = p.grammar
        elif p.json_schema is not None:
            body["json_schema"] = dict(p.json_schema)

    def logprobs(self, data: Any) -> tuple[TokenLogprob, ...]:
        return _logprobs(data)


class Hearth(Dialect):
    kind = "hearth"
    health_path = "/health"
    grammar = True
    open_ended = False  # its completions default to 16 tokens (OpenAI's legacy value)

    def check_health(self, endpoint: Endpoint, timeout: float) -> None:
        try:
            endpoint.call("GET", self.health_path, timeout=timeout)
        except HttpError as error:  # 503 "loading": busy loading a model, alive
            body = error.body if isinstance(error.body, dict) else {}
            if not (error.status == 503 and body.get("status") == "loading"):
                raise

    def listings(self, listed: Any) -> list[Listing]:
        return [self.listing(entry) for entry in _entries(listed) if entry.get("kind", "text") == "text"]

    def details(self, endpoint: Endpoint, model: str, listing: Listing) -> ModelDetails:
        # Loads the model upstream if it is not loaded: the front asks when it first routes to it.
        info = endpoint.call(
            "GET", f"/v1/internal/model/info?model={_quoted(model)}", timeout=DISCOVERY_TIMEOUT * 30
        )
        stats = info.get("stats") or {}
        return ModelDetails(
            n_ctx=_int(info.get("n_ctx")),
            n_ctx_train=_int(info.get("n_ctx_train")),
            n_vocab=_int(info.get("n_vocab")),
            chat_template=info.get("chat_template") or None,
            bos_token=info.get("bos_token") or "",
            eos_token=info.get("eos_token") or "",
            slots=_int(stats.get("slots")),
        )

    def tokenize(self, endpoint: Endpoint, model: str, text: str, add_bos: bool) -> list[int]:
        body = {"model": model, "text": text, "add_bos": add_bos}
        return list(endpoint.call("POST", "/v1/internal/encode", body, timeout=TOKENIZE_TIMEOUT)["tokens"])

    def detokenize(self, endpoint: Endpoint, model: str, tokens: Sequence[int]) -> str:
        body = {"model": model, "tokens": list(tokens)}
        return endpoint.call("POST", "/v1/internal/decode", body, timeout=TOKENIZE_TIMEOUT)["text"]

    def common_body(self, model: str, prompt: str | list[int], p: SamplingParams) -> dict:
        body = super().common_body(model, prompt, p)
        body.update(
            top_k=p.top_k,
            min_p=p.min_p,
            typical_p=p.typical_p,
            repetition_penalty=p.repetition_penalty,
            repetition_penalty_range=p.penalty_last_n,
        )
        if p.ignore_eos:
            body["ignore_eos"] = True
        return body

    def add_constraints(self, body: dict, p: SamplingParams) -> None:
        if p.grammar:
            body["grammar_string"] = p.grammar
        elif p.json_schema is not None:
            body["json_schema"] = dict(p.json_schema)


class VLLM(Dialect):
    kind = "vllm"
    health_path = "/health"
    default_capacity = 16  # vLLM batches many more; declare `capacity` to say how many
    grammar = True

    def listing(self, entry: dict) -> Listing:
        return Listing(id=str(entry["id"]), n_ctx=_int(entry.get("max_model_len")))

    def tokenize(self, endpoint: Endpoint, model: str, text: str, add_bos: bool) -> list[int]:
        body = {"model": model, "prompt": text, "add_special_tokens": add_bos}
        return list(endpoint.call("POST", "/tokenize", body, timeout=TOKENIZE_TIMEOUT)["tokens"])

    def detokenize(self, endpoint: Endpoint, model: str, tokens: Sequence[int]) -> str:
        body = {"model": model, "tokens": list(tokens)}
        return endpoint.call("POST", "/detokenize", body, timeout=TOKENIZE_TIMEOUT)["prompt"]

    def common_body(self, model: str, prompt: str | list[int], p: SamplingParams) -> dict:
        body = super().common_body(model, prompt, p)
        if p.top_k > 0:
            body["top_k"] = p.top_k
        if p.min_p:
            body["min_p"] = p.min_p
        if p.repetition_penalty != 1.0:
            body["repetition_penalty"] = p.repetition_penalty
        if p.ignore_eos:
            body["ignore_eos"] = True
        return body

    def add_constraints(self, body: dict, p: SamplingParams) -> None:
        # `structured_outputs` is vLLM's field since 0.10.2; `guided_*` the older releases' own.
        if p.grammar:
            body["structured_outputs"] = {"grammar": p.grammar}
            body["guided_grammar"] = p.grammar
        elif p.json_schema is not None:
            body["structured_outputs"] = {"json": dict(p.json_schema)}
            body["guided_json"] = dict(p.json_schema)


class LlamaCppPython(Dialect):
    """llama-cpp-python's server (`python -m llama_cpp.server`)."""

    kind = "llama-cpp-python"
    default_capacity = 1  # it generates one request at a time
    default_n_ctx = 2048  # its --n_ctx default; it does not say which it uses
    grammar = True

    def tokenize(self, endpoint: Endpoint, model: str, text: str, add_bos: bool) -> list[int]:
        # It always adds the model's BOS token (when the model has one): an empty text's
        # tokens are exactly what it adds, and come off when the caller wants none.
        tokens = self._tokens(endpoint, model, text)
        if not add_bos:
            added = self._tokens(endpoint, model, "")
            if added and tokens[: len(added)] == added:
                tokens = tokens[len(added) :]
        return tokens

    @staticmethod
    def _tokens(endpoint: Endpoint, model: str, text: str) -> list[int]:
        body = {"model": model, "input": text}
        return list(endpoint.call("POST", "/extras/tokenize", body, timeout=TOKENIZE_TIMEOUT)["tokens"])

    def detokenize(self, endpoint: Endpoint, model: str, tokens: Sequence[int]) -> str:
        body = {"model": model, "tokens": list(tokens)}
        return endpoint.call("POST", "/extras/detokenize", body, timeout=TOKENIZE_TIMEOUT)["text"]

    def common_body(self, model: str, prompt: str | list[int], p: SamplingParams) -> dict:
        body = super().common_body(model, prompt, p)
        body.update(top_k=p.top_k, min_p=p.min_p, typical_p=p.typical_p, repeat_penalty=p.repetition_penalty)
        return body

    def add_constraints(self, body: dict, p: SamplingParams) -> None:
        if p.grammar:
            body["grammar"] = p.grammar
        elif p.json_schema is not None:
            from ..llamacpp.json_grammar import json_schema_grammar

            body["grammar"] = json_schema_grammar(p.json_schema)


class Ollama(Dialect):
    kind = "ollama"
    health_path = "/api/version"
    default_capacity = 1  # OLLAMA_NUM_PARALLEL's default
    default_n_ctx = 4096  # Ollama's default num_ctx; /api/show says what the model could take

    def details(self, endpoint: Endpoint, model: str, listing: Listing) -> ModelDetails:
        shown = endpoint.call("POST", "/api/show", {"model": model}, timeout=DISCOVERY_TIMEOUT) or {}
        info = shown.get("model_info") or {}
        trained = next((_int(v) for k, v in info.items() if k.endswith(".context_length")), None)
        return ModelDetails(n_ctx_train=trained)

    def generation(self, model: str, prompt: str | list[int], params: SamplingParams) -> Call:
        if not isinstance(prompt, str):
            raise InvalidRequest(
                "This model runs on Ollama, which takes prompts as text, not token ids.", param="prompt"
            )
        p = params
        options: dict[str, Any] = {
            "temperature": p.temperature,
            "top_p": p.top_p,
            "top_k": p.top_k,
            "min_p": p.min_p,
            "typical_p": p.typical_p,
            "repeat_penalty": p.repetition_penalty,
            "repeat_last_n": p.penalty_last_n,
            "presence_penalty": p.presence_penalty,
            "frequency_penalty": p.frequency_penalty,
            "num_predict": -1 if p.max_tokens is None else p.max_tokens,
        }
        if p.stop:
            options["stop"] = list(p.stop)
        if p.seed is not None:
            options["seed"] = p.seed
        body: dict[str, Any] = {"model": model, "prompt": prompt, "raw": True, "stream": True}
        body["options"] = options
        if p.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = p.logprobs
        if p.grammar:
            self.add_constraints(body, p)  # refuses: Ollama has no grammar
        elif p.json_schema is not None:
            body["format"] = dict(p.json_schema)
        return Call("/api/generate", body, framing="ndjson")

    def chunk(self, event: dict) -> Chunk:
        if event.get("error"):
            from .http import StreamBroken

            raise StreamBroken(str(event["error"])[:500])
        if not event.get("done"):
            return Chunk(text=event.get("response") or "", logprobs=_ollama_logprobs(event.get("logprobs")))
        usage = {
            "prompt_tokens": _int(event.get("prompt_eval_count")) or 0,
            "completion_tokens": _int(event.get("eval_count")) or 0,
        }
        reason = "length" if event.get("done_reason") == "length" else "stop"
        return Chunk(text=event.get("response") or "", finish_reason=reason, usage=usage, done=True)


DIALECTS: dict[str, Dialect] = {
    dialect.kind: dialect
    for dialect in (LlamaServer(), Hearth(), VLLM(), LlamaCppPython(), Ollama(), Dialect())
}
KINDS = tuple(DIALECTS)
OWNERS = {"llamacpp": "llama-server", "vllm": "vllm", "hearth": "hearth", "me": "llama-cpp-python"}


def detect(endpoint: Endpoint, listed: Any) -> Dialect:
    """The kind of server behind `endpoint`, from its /v1/models answer, then by asking."""
    owners = {str(entry.get("owned_by")) for entry in _entries(listed)}
    for owner, kind in OWNERS.items():
        if owner in owners:
            return DIALECTS[kind]
    for path, kind in (("/props", "llama-server"), ("/api/version", "ollama")):
        try:
            endpoint.call("GET", path, timeout=DISCOVERY_TIMEOUT)
        except Exception:  # any failure just means "not this kind"
            continue
        return DIALECTS[kind]
    return DIALECTS["openai"]


# --- parsing helpers --------------------------------------------------------------------------------


def _entries(listed: Any) -> list[dict]:
    data = listed.get("data") if isinstance(listed, dict) else None
    return [entry for entry in data or [] if isinstance(entry, dict) and entry.get("id")]


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _quoted(model: str) -> str:
    from urllib.parse import quote

    return quote(model, safe="")


def _stop_string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _usage(data: Any) -> dict | None:
    if not isinstance(data, dict):
        return None
    details = data.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": int(data.get("prompt_tokens") or 0),
        "completion_tokens": int(data.get("completion_tokens") or 0),
        "cached_tokens": int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    }


def _logprobs(data: Any) -> tuple[TokenLogprob, ...]:
    """Logprobs in the completions' legacy shape (parallel lists: vLLM, Hearth, llama-cpp-python)
    or in the chat shape llama-server uses on every endpoint (`content`: one entry a token)."""
    if not isinstance(data, dict):
        return ()
    if isinstance(data.get("content"), list):
        return tuple(_chat_entry(entry) for entry in data["content"] if isinstance(entry, dict))
    tokens = data.get("tokens") or []
    values = data.get("token_logprobs") or []
    tops = data.get("top_logprobs") or []
    entries = []
    for i, token in enumerate(tokens):
        value = values[i] if i < len(values) else None
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        entries.append(
            TokenLogprob(
                token=str(token),
                bytes=str(token).encode(),
                logprob=None if value is None else float(value),
                top=tuple(TopLogprob(str(t), str(t).encode(), float(v)) for t, v in top.items()),
            )
        )
    return tuple(entries)


def _chat_entry(entry: dict) -> TokenLogprob:
    def value(item: dict) -> float:
        if "logprob" in item:
            return float(item["logprob"])
        probability = float(item.get("prob") or 0.0)  # llama-server's post_sampling_probs
        return math.log(probability) if probability > 0 else -math.inf

    def raw(item: dict) -> bytes:
        data = item.get("bytes")
        return bytes(data) if isinstance(data, list) else str(item.get("token", "")).encode()

    top_items = entry.get("top_logprobs") or entry.get("top_probs") or []
    return TokenLogprob(
        token=str(entry.get("token", "")),
        bytes=raw(entry),
        logprob=value(entry),
        top=tuple(
            TopLogprob(str(t.get("token", "")), raw(t), value(t), int(t.get("id", -1)))
            for t in top_items
            if isinstance(t, dict)
        ),
        id=int(entry.get("id", -1)),
    )


def _ollama_logprobs(data: Any) -> tuple[TokenLogprob, ...]:
    if not isinstance(data, list):
        return ()
    return tuple(_chat_entry(entry) for entry in data if isinstance(entry, dict))
