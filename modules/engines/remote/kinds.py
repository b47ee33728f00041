"""The kinds of upstream servers Hearth knows, and telling which one answers.

- llama-server: /v1/completions with its own sampling fields, `grammar`, `json_schema` and
  `n_probs`; /tokenize and /detokenize; /props (context per slot, slots, chat template,
  BOS and EOS); /health.
- hearth: /v1/completions with `grammar_string` and `json_schema`; /v1/internal/encode and
  /decode; /v1/internal/model/info?model=ID; /health (503 "loading" is alive).
- vllm: /v1/completions with `top_k`, `min_p` and structured outputs; /tokenize and
  /detokenize; the context from /v1/models (`max_model_len`); /health.
- llama-cpp-python: /v1/completions with `grammar` (a JSON schema becomes one here);
  /extras/tokenize and /extras/detokenize; no details (context 2048, one slot); /docs.
- ollama: /api/generate with `raw: true` (its /v1/completions would wrap Hearth's prompt in
  the model's own template); no tokenizer; /api/show; /api/version. No grammars.
- openai (any other server): /v1/completions with `response_format`; no tokenizer, no
  details, no grammars; /v1/models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import InvalidRequest
from ..base import SamplingParams
from .dialects import (
    DISCOVERY_TIMEOUT,
    TOKENIZE_TIMEOUT,
    Call,
    Chunk,
    Dialect,
    Listing,
    ModelDetails,
    as_int,
    model_entries,
    ollama_logprobs,
    quoted,
)
from .http import Endpoint, HttpError, StreamBroken


class LlamaServer(Dialect):
    kind = "llama-server"
    health_path = "/health"
    default_capacity = 1  # llama-server's --parallel default; /props says how many it has
    grammar = True

    def listing(self, entry: dict) -> Listing:
        meta = entry.get("meta") or {}
        trained, vocabulary = as_int(meta.get("n_ctx_train")), as_int(meta.get("n_vocab"))
        return Listing(id=str(entry["id"]), n_ctx_train=trained, n_vocab=vocabulary)

    def details(self, endpoint: Endpoint, model: str, listing: Listing) -> ModelDetails:
        props = endpoint.call("GET", f"/props?model={quoted(model)}", timeout=DISCOVERY_TIMEOUT) or {}
        settings = props.get("default_generation_settings") or {}
        return ModelDetails(
            n_ctx=as_int(settings.get("n_ctx")),
            n_ctx_train=listing.n_ctx_train,
            n_vocab=listing.n_vocab,
            chat_template=props.get("chat_template") or None,
            bos_token=props.get("bos_token") or "",
            eos_token=props.get("eos_token") or "",
            slots=as_int(props.get("total_slots")),
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


class Hearth(Dialect):
    kind = "hearth"
    health_path = "/health"
    grammar = True
    open_ended = False  # its completions default to 16 tokens (OpenAI's legacy value)

    def check_health(self, endpoint: Endpoint, timeout: float) -> None:
        try:
            endpoint.ping(self.health_path, timeout=timeout)
        except HttpError as error:  # 503 "loading": busy loading a model, alive
            body = error.body if isinstance(error.body, dict) else {}
            if not (error.status == 503 and body.get("status") == "loading"):
                raise

    def listings(self, listed: Any) -> list[Listing]:
        return [self.listing(entry) for entry in model_entries(listed) if entry.get("kind", "text") == "text"]

    def details(self, endpoint: Endpoint, model: str, listing: Listing) -> ModelDetails:
        # Loads the model upstream if it is not loaded: the front asks when it first routes to it.
        info = endpoint.call(
            "GET", f"/v1/internal/model/info?model={quoted(model)}", timeout=DISCOVERY_TIMEOUT * 30
        )
        stats = info.get("stats") or {}
        return ModelDetails(
            n_ctx=as_int(info.get("n_ctx")),
            n_ctx_train=as_int(info.get("n_ctx_train")),
            n_vocab=as_int(info.get("n_vocab")),
            chat_template=info.get("chat_template") or None,
            bos_token=info.get("bos_token") or "",
            eos_token=info.get("eos_token") or "",
            slots=as_int(stats.get("slots")),
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
        return Listing(id=str(entry["id"]), n_ctx=as_int(entry.get("max_model_len")))

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
    # Every endpoint of its own waits while it generates; FastAPI's page does not.
    health_path = "/docs"
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
        trained = next((as_int(v) for k, v in info.items() if k.endswith(".context_length")), None)
        return ModelDetails(n_ctx_train=trained)

    def generation(self, model: str, prompt: str | list[int], params: SamplingParams, n_ctx: int) -> Call:
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
            "num_ctx": n_ctx,  # Ollama's own default would cut prompts Hearth fitted to n_ctx
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
            raise StreamBroken(str(event["error"])[:500])
        if not event.get("done"):
            return Chunk(text=event.get("response") or "", logprobs=ollama_logprobs(event.get("logprobs")))
        usage = {
            "prompt_tokens": as_int(event.get("prompt_eval_count")) or 0,
            "completion_tokens": as_int(event.get("eval_count")) or 0,
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
    owners = {str(entry.get("owned_by")) for entry in model_entries(listed)}
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
