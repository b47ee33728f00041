"""Tools in the chat UI: a turn whose model may call the chat's tools, with the user's approval.

The chat's tools come with the generate message (the page keeps the choice per chat). The
loop is the API's (modules/tools/agent.py): the model calls -> the arguments are checked ->
approval -> the call runs (timeout, size limit) -> the result goes back -> the model goes on.
Here the approval is the user's answer in the page: the loop waits for it, and Stop (or
closing the page) ends the wait and the loop. Every call, run or not, is kept in the reply's
`tool_rounds` (modules/chat/tool_rounds.py), so the steps are in the chat after a reload.

What the page is told (besides the reply's text, as without tools):

    {"type": "tool_round", "id", "text": "...", "calls": [{"id", "name", "server", "source", "arguments"}]}
    {"type": "tool_ask", "id", "call": "<call id>"}          (Approve or Reject, please)
    {"type": "tool_result", "id", "call": {...the call as saved: status, output, seconds}}
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from modules.chat.tool_rounds import call_json
from modules.engines.base import TextEngine
from modules.tools.agent import AgentLoop, Decision, ModelReply, ToolStep, policy_decision
from modules.tools.registry import ToolRegistry, ToolSet
from modules.tools.tool import Tool

from .turns import Turn, TurnEvent

MAX_STEPS = 8  # rounds of calls in one reply

Notify = Callable[..., Any]  # notify(type, **fields): a message to the page


class Approvals:
    """The page's answers to the calls that wait for approval, for one turn."""

    def __init__(self) -> None:
        self._answers: dict[str, bool] = {}
        self._waiting: set[str] = set()
        self._changed = threading.Condition()
        self.stopped = False

    def answer(self, call_id: str, approve: bool) -> None:
        """The user's answer; one for a call that does not wait (any more) is dropped."""
        with self._changed:
            if call_id in self._waiting:
                self._answers[call_id] = approve
                self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self.stopped = True
            self._changed.notify_all()

    def expect(self, call_id: str) -> None:
        """Take answers for this call from now on (before the page is asked)."""
        with self._changed:
            self._waiting.add(call_id)

    def wait(self, call_id: str) -> bool | None:
        """The answer for an expected call: True (approve), False (reject), None (stopped first)."""
        with self._changed:
            try:
                while call_id not in self._answers and not self.stopped:
                    self._changed.wait(timeout=1.0)
                return None if self.stopped else self._answers.pop(call_id)
            finally:
                self._waiting.discard(call_id)


def tool_key(server: str | None, name: str) -> str:
    """A tool's name for "approved once in this chat": its server's label and its name."""
    return f"{server}/{name}" if server else name


def approved_in_chat(turn: Turn) -> set[str]:
    """The tools whose calls the user let run earlier in this chat (for "once")."""
    keys = set()
    for message in turn.plan.messages:
        for round_ in message.tool_rounds:
            for call in round_["calls"]:
                if call["status"] in ("ok", "failed"):
                    keys.add(tool_key(call.get("server"), call["name"]))
    return keys


def tool_turn_events(
    turn: Turn,
    tools: ToolSet,
    registry: ToolRegistry,
    approvals: Approvals,
    notify: Notify,
    engine: Callable[[], AbstractContextManager[TextEngine]],
    max_steps: int = MAX_STEPS,
) -> Iterator[TurnEvent]:
    """The turn's text and reasoning, round after round, while its tools run in between.
    `engine()` holds the model for the start of each next round."""
    approved = approved_in_chat(turn)
    statuses: dict[str, str] = {}  # calls that did not run: "rejected" or "stopped"

    def decide(tool: Tool, call: dict) -> Decision:
        call_id, key = call["id"], tool_key(tool.server, tool.name)
        if not approvals.stopped and policy_decision(tool.approval, key in approved) == "run":
            return "run"
        answer = None
        if not approvals.stopped:
            approvals.expect(call_id)
            notify("tool_ask", call=call_id)
            answer = approvals.wait(call_id)
        if answer:
            approved.add(key)
            return "run"
        statuses[call_id] = "stopped" if answer is None else "rejected"
        return "reject"

    def generate(history, step: int, tools_allowed: bool):
        if step > 0:
            if approvals.stopped:
                return ModelReply("", (), "cancelled")
            with engine() as model:
                turn.next_round(history, "auto" if tools_allowed else "none", model)
            if approvals.stopped:  # Stop came while the round started
                turn.cancel()
        yield from turn.events()
        calls = turn.calls()
        if calls and all(tools.get(c["function"]["name"]) for c in calls) and step < max_steps:
            notify("tool_round", text=turn.content, calls=[announced(c, tools) for c in calls])
        return ModelReply(turn.content, calls, turn.finish_reason or "stop")

    loop = AgentLoop(registry, tools, decide, max_steps)
    for event in loop.run(turn.messages, generate):
        if isinstance(event, ToolStep):
            failed = event.outcome.error is not None
            status = statuses.get(event.call_id) or ("failed" if failed else "ok")
            call = call_json(event, status)
            turn.add_call(call)
            notify("tool_result", call=call)
        else:
            yield event


def announced(call: dict, tools: ToolSet) -> dict:
    function = call["function"]
    tool = tools.get(function["name"])
    assert tool is not None
    out = {
        "id": call["id"],
        "name": function["name"],
        "source": tool.source,
        "arguments": function["arguments"],
    }
    if tool.server:
        out["server"] = tool.server
    return out
