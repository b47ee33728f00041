"""Server-sent events, in the dialect of each protocol.

- Chat Completions and Completions: `data: {json}` events, then `data: [DONE]`.
- The Responses API and Anthropic Messages: each event named after its `type`
  (`event: response.created` then `data: {...}`), and no `[DONE]`.

Every client gets `[DONE]`, whatever its User-Agent: it is how a client knows the stream is
complete rather than cut short (OpenAI, llama-server, Ollama and text-generation-webui all
send it). Scripts that call `json.loads` on every event skip it (docs/api.md shows how).

A stream that fails after its headers went out ends with one error event in the dialect's
shape. When the client goes away, the server closes the response iterator; `on_close` then
runs (the generator's `finally`, and the response's `call_on_close` in case it never
started), which cancels the generations.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from flask import Response
from pydantic import BaseModel

from modules.errors import HearthError

log = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class Dialect:
    done: bool  # end with `data: [DONE]`
    named: bool  # write each event's `type` as its SSE event name
    error: Callable[[HearthError], dict]  # the last event of a stream that failed


OPENAI = Dialect(done=True, named=False, error=HearthError.to_dict)


def event(payload: BaseModel | dict, named: bool = False) -> str:
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json()
        name = getattr(payload, "type", None) if named else None
    else:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        name = payload.get("type") if named else None
    return f"event: {name}\ndata: {data}\n\n" if name else f"data: {data}\n\n"


def sse_response(
    payloads: Iterable[BaseModel | dict], on_close: Callable[[], None], dialect: Dialect = OPENAI
) -> Response:
    def body() -> Iterator[str]:
        try:
            for payload in payloads:
                yield event(payload, dialect.named)
            if dialect.done:
                yield DONE
        except HearthError as error:
            yield event(dialect.error(error), dialect.named)
        except Exception:
            log.exception("stream failed")
            yield event(dialect.error(HearthError("The server failed while streaming.")), dialect.named)
        finally:
            on_close()

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # proxies: pass each event on at once
    response.call_on_close(on_close)
    return response
