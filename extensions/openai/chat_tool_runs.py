"""`hearth_tools` on /v1/chat/completions: Hearth runs the tools itself.

The request names MCP servers of mcp.json and built-in or local tools; the agent loop
(modules/tools/agent.py) runs whole model turns through `chat_turns`, calls the tools and
feeds their results back. The answer is the last turn's message, with the steps as chat
messages (`hearth_tool_messages`) for the client's history. A call whose tool needs approval
is not run here: the round's calls go back to the client as `tool_calls`, as without
`hearth_tools`.
"""

from __future__ import annotations

import dataclasses
import logging

from flask import Response

from modules.app import services
from modules.chat.messages import ChatMessage
from modules.errors import InvalidRequest
from modules.tools.agent import AgentLoop, Decision, LoopEnd, ModelReply, ToolStep, call_name, policy_decision
from modules.tools.registry import ToolSet
from modules.tools.tool import Tool

from . import chat_completions, chat_turns
from .bodies import ChatCompletion, UsageOut
from .chat_turns import collected_call
from .http import json_response
from .protocol import ChatCompletionRequest
from .streaming import Collected
from .tools_wire import HearthTools

log = logging.getLogger(__name__)


def chat_with_tools(body: ChatCompletionRequest) -> Response:
    assert body.hearth_tools is not None
    if body.stream:
        raise InvalidRequest("hearth_tools does not stream yet: send stream: false.", param="stream")
    if body.choices != 1:
        raise InvalidRequest("hearth_tools runs one conversation: n must be 1.", param="n")
    toolset = requested_tools(body.hearth_tools)
    base = chat_completions.chat_turn(body)
    options = dataclasses.replace(base.options, tools=(*base.options.tools, *toolset.chat_tools()))
    turn = dataclasses.replace(base, options=options)
    approved = tools_answered(turn.messages)

    def decide(tool: Tool, call: dict) -> Decision:
        return policy_decision(tool.approval, call_name(call) in approved)

    usages: list[UsageOut] = []
    last: list = []

    def generate(history: list[ChatMessage], step: int, tools_allowed: bool):
        this = turn
        if step > 0:
            choice = "auto" if tools_allowed else "none"
            this = dataclasses.replace(
                turn, messages=history, options=dataclasses.replace(options, tool_choice=choice)
            )
        started = chat_turns.start(this)
        try:
            collected = Collected.all(started.run)[0]
            usages.append(started.run.usage())
        finally:
            started.run.close()
        last[:] = [started, collected]
        calls = tuple(collected_call(i, c) for i, c in sorted(collected.calls.items()))
        return ModelReply("".join(collected.text), calls, collected.finish_reason)
        yield  # a generator, as the loop wants; this one yields no events

    loop = AgentLoop(services().tools, toolset, decide, body.hearth_tools.max_steps, hold_round=True)
    end, seconds = drive(loop.run(turn.messages, generate))
    started, collected = last
    started.keep(collected)
    choice = chat_completions.whole_choice(collected, bool(body.logprobs))
    usage = UsageOut.of(
        sum(u.prompt_tokens for u in usages),
        sum(u.completion_tokens for u in usages),
        sum(u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0 for u in usages),
    )
    run = started.run
    extras = chat_completions.response_extras(started.extras)
    return json_response(
        ChatCompletion(
            id=run.id,
            created=run.created,
            model=run.model,
            choices=[choice],
            usage=usage,
            hearth_tool_messages=[message_dict(m, seconds) for m in end.messages] or None,
            **extras,
        )
    )


def drive(run) -> tuple[LoopEnd, dict[str, float]]:
    """Run the loop to its end: how it ended, and how long each call took (by call id)."""
    seconds: dict[str, float] = {}
    while True:
        try:
            event = next(run)
        except StopIteration as stop:
            return stop.value, seconds
        if isinstance(event, ToolStep):
            seconds[event.call_id] = round(event.outcome.seconds, 3)


def requested_tools(spec: HearthTools) -> ToolSet:
    return services().tools.toolset(spec.tools, spec.servers, "hearth_tools")


def tools_answered(messages) -> set[str]:
    """The tools whose calls already have results in the conversation: approved once."""
    names = {}
    for message in messages:
        for call in message.tool_calls:
            names[call.get("id")] = (call.get("function") or {}).get("name")
    return {names[m.tool_call_id] for m in messages if m.role == "tool" and m.tool_call_id in names}


def message_dict(message: ChatMessage, seconds: dict[str, float]) -> dict:
    """A step as a chat message; a tool message says how long its call took (`seconds`, a
    field clients ignore when they send the message back)."""
    out: dict = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = list(message.tool_calls)
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
        if message.tool_call_id in seconds:
            out["seconds"] = seconds[message.tool_call_id]
    return out
