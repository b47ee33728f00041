"""Server-sent events in OpenAI's dialect: `data: {json}` events, then `data: [DONE]`.

`[DONE]` is left out for clients whose User-Agent starts with `python-requests/`: the
sseclient-py examples of text-generation-webui's docs call `json.loads` on every event and
would crash on it; their stream ends when the connection closes. The official clients
(`OpenAI/Python`, `OpenAI/JS`) and everything else get `[DONE]`.

A stream that fails after its headers went out ends with one `data: {"error": {...}}` event.
When the client goes away, the server closes the response iterator; `on_close` then runs
(the generator's `finally`, and the response's `call_on_close` in case it never started),
which cancels the generations.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator

from flask import Response, request
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


def wants_done() -> bool:
    return not request.headers.get("User-Agent", "").startswith("python-requests/")


def sse_response(payloads: Iterable[BaseModel | dict], on_close: Callable[[], None]) -> Response:
    done = wants_done()

    def body() -> Iterator[str]:
        try:
            for payload in payloads:
                yield event(payload)
            if done:
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
