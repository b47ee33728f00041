"""The agent loop: the model calls tools, Hearth runs them and the model goes on.

One implementation for every caller (the API's protocols now, the chat UI later). A caller
gives the messages, the tools the model may call, a `decide` callback (run, reject, or ask
the user first) and a `generate` generator that runs one model turn: it may yield anything
(a protocol's stream events), and returns the turn's `ModelReply`. The loop yields what
`generate` yields and a `ToolStep` for every call it ran, and returns a `LoopEnd`:

    call -> check the arguments against the tool's schema -> approval -> run (timeout, size
    limit) -> a tool message -> the model continues, up to `max_steps` rounds of calls.

A failed call (bad arguments, a crashed or hanging server) is a result the model sees,
"The tool failed: ...", and the loop goes on. Calls that need the user's approval end the
loop with them `pending`; the caller asks and resumes with `resume()`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modules.chat.messages import ChatMessage

from .registry import ToolOutcome, ToolRegistry, ToolSet
from .tool import Approval, Tool, ToolFailed

log = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 8
Decision = Literal["run", "reject", "ask"]
DECLINED = "the user did not approve this call"


@dataclass(frozen=True)
class ModelReply:
    text: str
    calls: tuple[dict, ...]  # OpenAI's shape: {"id", "type": "function", "function": {"name", "arguments"}}
    finish_reason: str


@dataclass(frozen=True)
class ToolStep:
    """One call that ran (or was declined): kept in the history, shown by the protocols."""

    call_id: str
    name: str  # as the model called it
    tool: Tool
    arguments: str
    outcome: ToolOutcome
    declined: bool = False

    def message(self) -> ChatMessage:
        text = "The user did not approve this call." if self.declined else self.outcome.message
        return ChatMessage("tool", text, tool_call_id=self.call_id)


@dataclass(frozen=True)
class PendingCall:
    """A call that waits for the user's approval."""

    call_id: str
    name: str
    tool: Tool
    arguments: str


@dataclass(frozen=True)
class LoopEnd:
    reply: ModelReply  # the last turn's
    messages: tuple[ChatMessage, ...]  # what the loop added: calls and results, not `reply`'s text
    pending: tuple[PendingCall, ...] = ()
    steps: int = 0


# (history, step, tools allowed) -> a generator of the protocol's events returning the reply
Generate = Callable[[list[ChatMessage], int, bool], Generator[Any, None, ModelReply]]


def policy_decision(approval: Approval, approved_before: bool = False) -> Decision:
    """What a tool's policy says about a call: "never" runs, "always" asks, "once" asks until
    the user approved the tool once in this chat."""
    if approval == "never" or (approval == "once" and approved_before):
        return "run"
    return "ask"


def call_name(call: dict) -> str:
    return str((call.get("function") or {}).get("name") or "")


def call_arguments(call: dict) -> str:
    return str((call.get("function") or {}).get("arguments") or "")


class AgentLoop:
    def __init__(
        self,
        registry: ToolRegistry,
        tools: ToolSet,
        decide: Callable[[Tool, dict], Decision],  # (the tool, the model's call)
        max_steps: int = DEFAULT_MAX_STEPS,
        *,
        hold_round: bool = False,
    ) -> None:
        self.registry = registry
        self.tools = tools
        self.decide = decide
        self.max_steps = max_steps
        # When one call of a round waits for approval, run none of the round's calls (a client
        # that answers tool_calls runs them all); otherwise the others run at once.
        self.hold_round = hold_round

    def run(self, messages: Sequence[ChatMessage], generate: Generate) -> Generator[Any, None, LoopEnd]:
        history = list(messages)
        added: list[ChatMessage] = []
        step = 0
        while True:
            reply = yield from generate(history, step, step < self.max_steps)
            ours = [call for call in reply.calls if self.tools.get(call_name(call)) is not None]
            # no calls, the client's own calls (function tools), or out of steps: the end
            if not reply.calls or len(ours) < len(reply.calls) or step >= self.max_steps:
                return LoopEnd(reply, tuple(added), (), step)
            decisions = []
            for call in reply.calls:
                tool = self.tools.get(call_name(call))
                assert tool is not None
                decisions.append((call, tool, self.decide(tool, call)))
            if self.hold_round and any(decision == "ask" for _, _, decision in decisions):
                held = tuple(
                    PendingCall(c["id"], call_name(c), t, call_arguments(c)) for c, t, _ in decisions
                )
                return LoopEnd(reply, tuple(added), held, step)
            step += 1
            assistant = ChatMessage("assistant", reply.text, tool_calls=tuple(reply.calls))
            results: list[ChatMessage] = []
            pending: list[PendingCall] = []
            for call, tool, decision in decisions:
                if decision == "ask":
                    pending.append(PendingCall(call["id"], call_name(call), tool, call_arguments(call)))
                    continue
                done = yield from self.run_call(
                    call["id"], call_name(call), call_arguments(call), decision == "run"
                )
                results.append(done.message())
            added += [assistant, *results]
            history += [assistant, *results]
            if pending:
                return LoopEnd(reply, tuple(added), tuple(pending), step)

    def run_call(
        self, call_id: str, name: str, arguments: str, approved: bool = True
    ) -> Generator[ToolStep, None, ToolStep]:
        """Run one call (or decline it): its step is yielded and returned."""
        tool = self.tools.get(name)
        if tool is None:
            outcome = ToolOutcome(None, f"there is no tool named {name!r}", 0.0)
        elif not approved:
            outcome = ToolOutcome(None, DECLINED, 0.0)
        else:
            try:
                outcome = self.registry.run(tool, checked_arguments(tool, arguments))
            except ToolFailed as e:
                outcome = ToolOutcome(None, str(e), 0.0)
        step = ToolStep(
            call_id, name, tool or Tool(name, "", {}, "unknown"), arguments, outcome, not approved
        )
        log.info(
            "tool %s (%s): %s in %.2fs",
            name,
            step.tool.source,
            "declined" if not approved else ("failed: " + outcome.error if outcome.error else "ok"),
            outcome.seconds,
        )
        yield step
        return step


def checked_arguments(tool: Tool, text: str) -> dict:
    """A call's arguments, parsed and checked against the tool's JSON schema."""
    try:
        arguments = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise ToolFailed(f"the arguments are not JSON ({e.msg})") from None
    if not isinstance(arguments, dict):
        raise ToolFailed("the arguments must be a JSON object")
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_class = validator_for(tool.parameters)
        validator_class.check_schema(tool.parameters)
    except SchemaError:
        log.warning("the tool %s has an invalid schema: its arguments are not checked", tool.name)
        return arguments
    errors = sorted(validator_class(tool.parameters).iter_errors(arguments), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(p) for p in errors[0].path) or "arguments"
        raise ToolFailed(f"the arguments do not match the tool's schema: {where}: {errors[0].message}")
    return arguments
