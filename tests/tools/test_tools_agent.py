"""The agent loop, with a scripted model: schema checks, approval, failures, the step limit."""

from __future__ import annotations

import json

import pytest

from modules.chat.messages import ChatMessage
from modules.tools.agent import DECLINED, AgentLoop, ModelReply, ToolStep, policy_decision
from modules.tools.registry import ToolRegistry, ToolSet


@pytest.fixture
def registry(tmp_path):
    registry = ToolRegistry(tmp_path / "tools", tmp_path / "mcp.json")
    yield registry
    registry.close()


def call(name: str, arguments: dict | str, call_id: str = "call_1") -> dict:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def scripted(*replies: ModelReply):
    """A model that gives these replies in turn and remembers what it was shown."""
    seen: list[tuple[list[ChatMessage], int, bool]] = []

    def generate(history, step, tools_allowed):
        seen.append((list(history), step, tools_allowed))
        yield f"turn {step}"
        return replies[min(step, len(replies) - 1)]

    return generate, seen


def drive(run):
    events = []
    while True:
        try:
            events.append(next(run))
        except StopIteration as stop:
            return events, stop.value


def test_a_call_runs_and_the_model_sees_its_result(registry):
    generate, seen = scripted(
        ModelReply("", (call("calculator", {"expression": "6 * 7"}),), "tool_calls"),
        ModelReply("It is 42.", (), "stop"),
    )
    loop = AgentLoop(registry, ToolSet.of(registry.builtin_tools()), lambda tool, call: "run")
    events, end = drive(loop.run([ChatMessage("user", "6 times 7?")], generate))
    steps = [e for e in events if isinstance(e, ToolStep)]
    assert [e for e in events if isinstance(e, str)] == ["turn 0", "turn 1"]
    assert len(steps) == 1 and steps[0].outcome.output == "42" and steps[0].outcome.seconds >= 0
    assert end.reply.text == "It is 42." and not end.pending and end.steps == 1
    assert [m.role for m in end.messages] == ["assistant", "tool"]
    assert end.messages[1].content == "42" and end.messages[1].tool_call_id == "call_1"
    assert seen[1][0][-1].content == "42"  # the second turn's prompt has the result


def test_bad_arguments_are_an_error_the_model_sees(registry):
    generate, _ = scripted(
        ModelReply(
            "", (call("calculator", {"expr": "1"}), call("calculator", "{not json", "call_2")), "tool_calls"
        ),
        ModelReply("Sorry.", (), "stop"),
    )
    loop = AgentLoop(registry, ToolSet.of(registry.builtin_tools()), lambda tool, call: "run")
    _, end = drive(loop.run([ChatMessage("user", "?")], generate))
    first, second = end.messages[1].content, end.messages[2].content
    assert first.startswith("The tool failed: the arguments do not match") and "expression" in first
    assert second.startswith("The tool failed: the arguments are not JSON")
    assert end.reply.text == "Sorry."


def test_approval_asked_then_declined(registry):
    generate, _ = scripted(ModelReply("", (call("calculator", {"expression": "1+1"}),), "tool_calls"))
    ask = AgentLoop(registry, ToolSet.of(registry.builtin_tools()), lambda tool, call: "ask")
    events, end = drive(ask.run([ChatMessage("user", "?")], generate))
    assert not [e for e in events if isinstance(e, ToolStep)]
    assert [p.name for p in end.pending] == ["calculator"] and end.pending[0].call_id == "call_1"

    generate, _ = scripted(
        ModelReply("", (call("calculator", {"expression": "1+1"}),), "tool_calls"),
        ModelReply("ok", (), "stop"),
    )
    reject = AgentLoop(registry, ToolSet.of(registry.builtin_tools()), lambda tool, call: "reject")
    events, end = drive(reject.run([ChatMessage("user", "?")], generate))
    step = next(e for e in events if isinstance(e, ToolStep))
    assert step.declined and step.outcome.error == DECLINED and end.reply.text == "ok"


def test_held_rounds_run_nothing_when_one_call_needs_approval(registry):
    tools = ToolSet.of(registry.builtin_tools())
    reply = ModelReply(
        "", (call("current_time", {}, "a"), call("calculator", {"expression": "1"}, "b")), "tool_calls"
    )
    generate, _ = scripted(reply)
    loop = AgentLoop(
        registry, tools, lambda tool, call: "ask" if tool.name == "calculator" else "run", hold_round=True
    )
    events, end = drive(loop.run([ChatMessage("user", "?")], generate))
    assert not [e for e in events if isinstance(e, ToolStep)]
    assert [p.call_id for p in end.pending] == ["a", "b"] and end.messages == ()


def test_the_step_limit_ends_the_loop_without_tools(registry):
    generate, seen = scripted(ModelReply("", (call("current_time", {}),), "tool_calls"))
    loop = AgentLoop(registry, ToolSet.of(registry.builtin_tools()), lambda tool, call: "run", max_steps=2)
    events, _ = drive(loop.run([ChatMessage("user", "?")], generate))
    assert len([e for e in events if isinstance(e, ToolStep)]) == 2
    assert [allowed for _, _, allowed in seen] == [True, True, False]


def test_calls_of_the_clients_own_tools_end_the_loop(registry):
    generate, _ = scripted(ModelReply("", (call("get_weather", {"city": "Paris"}),), "tool_calls"))
    loop = AgentLoop(registry, ToolSet.of(registry.builtin_tools()), lambda tool, call: "run")
    _, end = drive(loop.run([ChatMessage("user", "?")], generate))
    assert end.reply.calls[0]["function"]["name"] == "get_weather" and end.messages == ()


def test_policies():
    assert policy_decision("never") == "run"
    assert policy_decision("always", approved_before=True) == "ask"
    assert policy_decision("once") == "ask" and policy_decision("once", approved_before=True) == "run"
