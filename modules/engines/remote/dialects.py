"""What Hearth asks of an upstream server, whatever its kind, and how it reads the answers.

Hearth builds every prompt itself (characters, the three chat modes, templates, tools,
LocalDocs, the extensions' hooks) and sends the text to the upstream's completions
endpoint, so that a remote model gets exactly the prompt a local one would; see
docs/deployment.md ("What is routed where") for why. `Dialect` is a plain OpenAI-compatible
server; kinds.py has what llama-server, vLLM, Ollama, Hearth and llama-cpp-python's server
speak beyond that. Without a tokenizer endpoint, token counts are estimated
(`estimate_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidRequest
from ..base import SamplingParams, TokenLogprob, TopLogprob
from .http import Endpoint

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
        return [self.listing(entry) for entry in model_entries(listed)]

    def listing(self, entry: dict) -> Listing:
        return Listing(id=str(entry["id"]))

    def details(self, endpoint: Endpoint, model: str, listing: Listing) -> ModelDetails:
        return ModelDetails(n_ctx=listing.n_ctx, n_ctx_train=listing.n_ctx_train, n_vocab=listing.n_vocab)

    def check_health(self, endpoint: Endpoint, timeout: float) -> None:
        """Raises when the upstream cannot serve (HttpError, Unreachable, StreamBroken)."""
        endpoint.ping(self.health_path, timeout=timeout)

    # --- tokens ------------------------------------------------------------------------------

    def tokenize(self, endpoint: Endpoint, model: str, text: str, add_bos: bool) -> list[int]:
        raise NoTokenizer

    def detokenize(self, endpoint: Endpoint, model: str, tokens: Sequence[int]) -> str:
        raise NoTokenizer

    # --- generation --------------------------------------------------------------------------

    def generation(self, model: str, prompt: str | list[int], params: SamplingParams, n_ctx: int) -> Call:
        """The request that generates from `prompt` (`n_ctx`: the context Hearth fitted it to)."""
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
        usage = usage_of(event.get("usage"))
        choices = event.get("choices") or []
        if not choices:
            return Chunk(usage=usage)
        choice = choices[0]
        return Chunk(
            text=choice.get("text") or "",
            logprobs=self.logprobs(choice.get("logprobs")),
            finish_reason=choice.get("finish_reason"),
            usage=usage,
            stop_sequence=stop_string(choice.get("stop_reason")),
        )

    def logprobs(self, data: Any) -> tuple[TokenLogprob, ...]:
        return parse_logprobs(data)


# --- parsing helpers --------------------------------------------------------------------------------


def model_entries(listed: Any) -> list[dict]:
    data = listed.get("data") if isinstance(listed, dict) else None
    return [entry for entry in data or [] if isinstance(entry, dict) and entry.get("id")]


def as_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def quoted(model: str) -> str:
    from urllib.parse import quote

    return quote(model, safe="")


def stop_string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def usage_of(data: Any) -> dict | None:
    if not isinstance(data, dict):
        return None
    details = data.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": int(data.get("prompt_tokens") or 0),
        "completion_tokens": int(data.get("completion_tokens") or 0),
        "cached_tokens": int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    }


def parse_logprobs(data: Any) -> tuple[TokenLogprob, ...]:
    """Logprobs in the completions' legacy shape (parallel lists: vLLM, Hearth, llama-cpp-python)
    or in the chat shape llama-server uses on every endpoint (`content`: one entry a token)."""
    if not isinstance(data, dict):
        return ()
    if isinstance(data.get("content"), list):
        return tuple(chat_logprob(entry) for entry in data["content"] if isinstance(entry, dict))
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


def chat_logprob(entry: dict) -> TokenLogprob:
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


def ollama_logprobs(data: Any) -> tuple[TokenLogprob, ...]:
    if not isinstance(data, list):
        return ()
    return tuple(chat_logprob(entry) for entry in data if isinstance(entry, dict))
