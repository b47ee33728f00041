"""The tool steps of a saved reply: what the model called while it wrote it, and what came back.

A reply written with tools (the chat UI's agent loop) is one message whose `tool_rounds` keep
every round of calls, in order, before its text:

    [{"text": "Let me look.", "calls": [{"id": "call_1", "name": "get_current_time",
      "source": "mcp", "server": "time", "arguments": "{\"timezone\": \"Europe/Paris\"}",
      "status": "ok" | "failed" | "rejected" | "stopped", "output": "...", "seconds": 0.12}]}]

Versions, edits and deletes treat the reply as one message. A prompt sees it as the turns the
model had (`expanded`): per round the assistant's text with its calls and a tool message per
call, then the reply's text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .messages import ChatMessage

STATUSES = ("ok", "failed", "rejected", "stopped")
MAX_ROUNDS = 64
MAX_CALLS = 32
_TEXTS = {"id": 100, "name": 200, "source": 20, "server": 200, "arguments": 100_000, "output": 100_000}
RESULT_TEXT = {
    "rejected": "The user did not approve this call.",
    "stopped": "The user stopped the reply before this call ran.",
}


def call_json(step: Any, status: str) -> dict:
    """A call that ran (or did not) as a round keeps it; `step` is the agent loop's ToolStep."""
    out = {
        "id": step.call_id,
        "name": step.name,
        "source": step.tool.source,
        "arguments": step.arguments,
        "status": status,
        "seconds": round(step.outcome.seconds, 3),
    }
    if step.tool.server:
        out["server"] = step.tool.server
    if status == "ok":
        out["output"] = step.outcome.output or ""
    elif status == "failed":
        out["output"] = step.outcome.error or ""
    return out


def result_text(call: Mapping) -> str:
    """What the model is told a call gave."""
    status = call.get("status")
    if status == "ok":
        return str(call.get("output") or "")
    if status == "failed":
        return f"The tool failed: {call.get('output') or 'no reason given'}"
    return RESULT_TEXT.get(str(status), RESULT_TEXT["stopped"])


def expanded(messages: Iterable[ChatMessage]) -> list[ChatMessage]:
    """The messages as a prompt sees them: a reply's rounds become the model's turns."""
    out: list[ChatMessage] = []
    for message in messages:
        if not message.tool_rounds:
            out.append(message)
            continue
        for round_ in message.tool_rounds:
            calls = round_["calls"]
            out.append(
                ChatMessage(
                    "assistant",
                    round_["text"],
                    tool_calls=tuple(
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ),
                )
            )
            out += [ChatMessage("tool", result_text(c), tool_call_id=c["id"]) for c in calls]
        out.append(dataclasses.replace(message, tool_rounds=()))
    return out


def checked_rounds(data: Any) -> tuple[dict, ...]:
    """Rounds read from a chat file: what is malformed is left out, texts are cut to size."""
    if not isinstance(data, Sequence) or isinstance(data, str):
        return ()
    rounds = []
    for item in list(data)[:MAX_ROUNDS]:
        if not isinstance(item, Mapping) or not isinstance(item.get("calls"), Sequence):
            continue
        calls = tuple(c for c in (_checked_call(c) for c in list(item["calls"])[:MAX_CALLS]) if c)
        if calls:
            rounds.append({"text": str(item.get("text") or "")[: _TEXTS["output"]], "calls": list(calls)})
    return tuple(rounds)


def _checked_call(data: Any) -> dict | None:
    if not isinstance(data, Mapping) or not data.get("id") or not data.get("name"):
        return None
    out: dict = {key: str(data[key])[:limit] for key, limit in _TEXTS.items() if data.get(key) is not None}
    out.setdefault("arguments", "")
    out["status"] = data.get("status") if data.get("status") in STATUSES else "stopped"
    seconds = data.get("seconds")
    out["seconds"] = float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else 0.0
    return out
