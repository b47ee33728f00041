"""Server-sent events in OpenAI's dialect: `data: {json}` events, then `data: [DONE]`.

Every client gets `[DONE]`, whatever its User-Agent: it is how a client knows the stream is
complete rather than cut short (OpenAI, llama-server, Ollama and text-generation-webui all
send it). Scripts that call `json.loads` on every event skip it (docs/api.md shows how).

A stream that fails after its headers went out ends with one `data: {"error": {...}}` event.
When the client goes away, the server closes the response iterator; `on_close` then runs
(the generator's `finally`, and the response's `call_on_close` in case it never started),
which cancels the generations.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator

from flask import Response
from pydantic import BaseModel

from modules.errors import HearthError

log = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"


def event(payload: BaseModel | dict) -> str:
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json()
    else:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n"


def sse_response(payloads: Iterable[BaseModel | dict], on_close: Callable[[], None]) -> Response:
    def body() -> Iterator[str]:
        try:
            for payload in payloads:
                yield event(payload)
            yield DONE
        except HearthError as error:
            yield event(error.to_dict())
        except Exception:
            log.exception("stream failed")
            yield event(HearthError("The server failed while streaming.").to_dict())
        finally:
            on_close()

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # proxies: pass each event on at once
    response.call_on_close(on_close)
    return response
