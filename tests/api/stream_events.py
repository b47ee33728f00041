"""Reading a server-sent event stream the plain way, to check exactly what went over the wire."""

from __future__ import annotations

import json

import requests


def events(response: requests.Response) -> list[str]:
    """The `data:` payloads of a stream, in order (comments and blank lines skipped)."""
    out, data = [], []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and data:
            out.append("\n".join(data))
            data = []
    if data:
        out.append("\n".join(data))
    return out


def chunks(response: requests.Response) -> tuple[list[dict], bool]:
    """The JSON chunks of a stream, and whether it ended with `[DONE]`."""
    payloads = events(response)
    done = bool(payloads) and payloads[-1] == "[DONE]"
    if done:
        payloads = payloads[:-1]
    assert "[DONE]" not in payloads, "[DONE] must be the last event"
    return [json.loads(p) for p in payloads], done
