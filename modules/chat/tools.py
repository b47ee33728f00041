"""Tool definitions: checking them, the legacy `functions` fields, and putting them in a prompt.

Templates that read the `tools` variable render tools themselves. For every other template
(and in the chat modes) we add a generic system preamble in the Hermes/Qwen format, which
small models follow best, and render earlier calls and results back as plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from modules.chat.messages import ChatMessage
from modules.errors import InvalidRequest

_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")

PREAMBLE = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


@dataclass(frozen=True)
class ToolSetup:
    """The tools of one request, checked: what goes in the prompt and what may be called."""

    tools: tuple[dict, ...]  # OpenAI tool definitions, to show the model (empty: none)
    choice: str  # "none" | "auto" | "required" | "function"
    forced_name: str | None = None  # the function tool_choice names

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t["function"]["name"] for t in self.tools)

    @property
    def parse_calls(self) -> bool:
        return bool(self.tools) and self.choice != "none"


def tools_from_functions(functions: Sequence[Mapping] | None) -> tuple[dict, ...]:
    """The legacy `functions` field as `tools`."""
    return tuple({"type": "function", "function": dict(f)} for f in functions or ())


def tool_choice_from_function_call(function_call: str | Mapping | None) -> str | dict:
    """The legacy `function_call` field ("none" | "auto" | {"name": f}) as `tool_choice`."""
    if function_call is None:
        return "auto"
    if isinstance(function_call, str):
        return function_call
    return {"type": "function", "function": {"name": function_call.get("name")}}


def setup_tools(tools: Iterable[Mapping], tool_choice: str | Mapping | None) -> ToolSetup:
    """Check tool definitions and tool_choice; InvalidRequest names what is wrong."""
    checked = tuple(_check_tool(i, t) for i, t in enumerate(tools))
    names = [t["function"]["name"] for t in checked]
    if len(set(names)) != len(names):
        raise InvalidRequest("Tool function names must be unique.", param="tools")
    choice = tool_choice if tool_choice is not None else "auto"
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise InvalidRequest(
                f"Invalid tool_choice {choice!r}: use 'none', 'auto', 'required' or "
                '{"type": "function", "function": {"name": ...}}.',
                param="tool_choice",
            )
        if choice == "required" and not checked:
            raise InvalidRequest("tool_choice 'required' needs tools.", param="tool_choice")
        return ToolSetup(checked if choice != "none" else (), choice)
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or name not in names:
        raise InvalidRequest(
            f"tool_choice names the function {name!r}, which is not among the tools "
            f"({', '.join(names) or 'none'}).",
            param="tool_choice",
        )
    return ToolSetup(checked, "function", name)


def _check_tool(index: int, tool: Mapping) -> dict:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
        raise InvalidRequest(f"tools[{index}] must be of type 'function'.", param="tools")
    if not isinstance(function, Mapping):
        raise InvalidRequest(f"tools[{index}] has no 'function' object.", param="tools")
    name = function.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
        raise InvalidRequest(
            f"tools[{index}].function.name must be 1-64 letters, digits, '_', '.' or '-'.",
            param="tools",
        )
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, Mapping):
        raise InvalidRequest(
            f"tools[{index}].function.parameters must be a JSON schema object.",
            param="tools",
        )
    return {
        "type": "function",
        "function": {**function, "parameters": dict(parameters)},
    }


def preamble(tools: Sequence[Mapping]) -> str:
    """The generic system text that shows the model its tools (Hermes/Qwen format)."""
    listing = "\n".join(json.dumps(dict(t), ensure_ascii=False) for t in tools)
    return PREAMBLE.format(tools=listing)


def call_as_text(call: Mapping) -> str:
    """One earlier tool call, the way the preamble asks the model to write it."""
    function = call.get("function", call)
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    body = json.dumps({"name": function.get("name"), "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def result_as_text(message: ChatMessage) -> str:
    return f"<tool_response>\n{message.content}\n</tool_response>"


def flatten_tool_messages(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Tool calls and results as plain assistant and user text, for templates without tools.

    An assistant message's calls follow its text in <tool_call> tags; consecutive tool
    results become one user message of <tool_response> blocks.
    """
    out: list[ChatMessage] = []
    previous_role = None
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            parts = [m.content] if m.content else []
            parts += [call_as_text(call) for call in m.tool_calls]
            text = "\n".join(parts)
            out.append(ChatMessage("assistant", text))
        elif m.role == "tool":
            if previous_role == "tool":
                out[-1] = ChatMessage("user", out[-1].content + "\n" + result_as_text(m))
            else:
                out.append(ChatMessage("user", result_as_text(m)))
        else:
            out.append(m)
        previous_role = m.role
    return out


def template_message(message: ChatMessage) -> dict:
    """A message for a template that renders tools: arguments as objects, as HF templates
    expect (`arguments | tojson`), where they are valid JSON. Extensions' `extras` stay out."""
    out = message.to_dict()
    out.pop("extras", None)
    if message.tool_calls:
        calls = []
        for call in message.tool_calls:
            function = dict(call.get("function", {}))
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    function["arguments"] = json.loads(arguments)
                except json.JSONDecodeError:
                    pass
            calls.append({**call, "function": function})
        out["tool_calls"] = calls
    return out
