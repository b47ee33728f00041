"""MCP tools on `/v1/responses`: the request's `{"type": "mcp"}` tools, run by Hearth.

`prepare` resolves the request's servers (mcp.json by label; by URL only with
--allow-remote-mcp), lists their tools and runs the calls a `mcp_approval_response` input
approved. `McpRun.events` then drives the agent loop (modules/tools/agent.py) over chat
turns and turns its steps into `mcp_list_tools`, `mcp_call` and `mcp_approval_request`
output items. Nothing here runs a tool or a model by itself: the tool registry and the chat
turns do.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import Flask, current_app, has_app_context

from modules.app import services
from modules.chat.messages import ChatMessage
from modules.errors import InvalidRequest
from modules.image_input import escape_markers
from modules.tools.agent import AgentLoop, Decision, LoopEnd, ModelReply, ToolStep
from modules.tools.registry import ToolRegistry, ToolSet
from modules.tools.tool import Tool, ToolFailed

from . import chat_turns
from .bodies import UsageOut
from .chat_turns import ChatTurn, StartedTurn, collected_call
from .mcp_wire import (
    McpApprovalRequestItem,
    McpCallItem,
    McpChoice,
    McpListedTool,
    McpTool,
    OutputMcpApprovalRequest,
    OutputMcpCall,
    OutputMcpListTools,
)
from .responses_events import ResponseBuilder, item_id
from .streaming import Collected

MAX_TOOL_ROUNDS = 8  # rounds of calls in one response, unless max_tool_calls says fewer


@dataclass
class McpRun:
    """The MCP side of one response: its servers' tools and what happened before the model's
    first turn (the listings, the calls the client approved)."""

    registry: ToolRegistry
    specs: dict[str, McpTool]  # by server label
    labels: dict[str, str]  # the registry's server key -> the request's label
    toolset: ToolSet
    approved_once: set[tuple[str, str]]  # (label, tool) approved earlier in the conversation
    max_rounds: int
    app: Flask | None = None  # later turns start where no request is (a background job)
    early_items: list = field(default_factory=list)  # output items made before the first turn
    messages: list[ChatMessage] = field(default_factory=list)  # the approved calls and their results

    def label_of(self, tool: Tool) -> str:
        return self.labels.get(tool.server or "", tool.server or "")

    def chat_tools(self) -> tuple[dict, ...]:
        return self.toolset.chat_tools()

    def tool_choice(self, choice: McpChoice) -> str | dict:
        if choice.name is None:
            return "required"
        for name, tool in self.toolset.tools.items():
            if self.label_of(tool) == choice.server_label and tool.name == choice.name:
                return {"type": "function", "function": {"name": name}}
        raise InvalidRequest(
            f"The MCP server {choice.server_label!r} has no tool {choice.name!r} this request allows.",
            param="tool_choice",
        )

    def decide(self, tool: Tool, call: dict) -> Decision:
        """Run without asking only when both the server's policy (mcp.json) and the request's
        require_approval allow it."""
        label = self.label_of(tool)
        read_only = bool(tool.annotations.get("read_only_hint") or tool.annotations.get("readOnlyHint"))
        server_allows = tool.approval == "never" or (
            tool.approval == "once" and (label, tool.name) in self.approved_once
        )
        if server_allows and not self.specs[label].wants_approval(tool.name, read_only):
            return "run"
        return "ask"

    def loop(self) -> AgentLoop:
        return AgentLoop(self.registry, self.toolset, self.decide, self.max_rounds)

    # --- items -----------------------------------------------------------------------------------

    def call_item(self, step: ToolStep, approval_request_id: str | None = None) -> OutputMcpCall:
        outcome = step.outcome
        return OutputMcpCall(
            id=item_id("mcp"),  # the model's call ids (call_0, ...) repeat from turn to turn
            status="failed" if outcome.error else "completed",
            server_label=self.label_of(step.tool),
            name=step.tool.name,
            arguments=step.arguments,
            output=outcome.output,
            error={"type": "mcp_tool_execution_error", "content": outcome.error} if outcome.error else None,
            approval_request_id=approval_request_id,
        )

    # --- the response ----------------------------------------------------------------------------

    def events(
        self, first: StartedTurn, turn: ChatTurn, builder: ResponseBuilder, usages: list[UsageOut]
    ) -> Generator[dict, None, LoopEnd]:
        """The events of the loop, from the first (started) turn to the last."""
        for item in self.early_items:
            yield from builder.add_whole(item)

        def generate(history: list[ChatMessage], step: int, tools_allowed: bool) -> Iterator:
            started = first
            if step > 0:
                options = dataclasses.replace(turn.options, tool_choice="auto" if tools_allowed else "none")
                started = self._start(dataclasses.replace(turn, messages=history, options=options))
            reply = yield from self._turn(started, builder)
            usages.append(started.run.usage())
            if step > 0:
                started.run.close()
            return reply

        run = self.loop().run([*turn.messages], generate)
        while True:
            try:
                event = next(run)
            except StopIteration as stop:
                end: LoopEnd = stop.value
                break
            if isinstance(event, ToolStep):
                yield from builder.add_whole(self.call_item(event))
            else:
                yield event
        for call in end.pending:
            request = OutputMcpApprovalRequest(
                id=item_id("mcpr"),
                server_label=self.label_of(call.tool),
                name=call.tool.name,
                arguments=call.arguments,
            )
            yield from builder.add_whole(request)
        return end

    def _start(self, turn: ChatTurn) -> StartedTurn:
        if has_app_context() or self.app is None:
            return chat_turns.start(turn)
        with self.app.app_context():
            return chat_turns.start(turn)

    def _turn(self, started: StartedTurn, builder: ResponseBuilder) -> Generator[dict, None, ModelReply]:
        """One model turn through the builder; the calls of MCP tools are not shown as
        function_call items (they become mcp_call items once run)."""
        collected = Collected(0)
        hidden: set[int] = set()
        for piece in started.run.pieces():
            collected.add(piece)
            for call in piece.tool_calls:
                if call.name and self.toolset.get(call.name) is not None:
                    hidden.add(call.index)
            shown = tuple(call for call in piece.tool_calls if call.index not in hidden)
            yield from builder.feed(dataclasses.replace(piece, tool_calls=shown))
        calls = tuple(collected_call(i, c) for i, c in sorted(collected.calls.items()))
        return ModelReply("".join(collected.text), calls, collected.finish_reason)


def prepare(body, items: list[dict], first_new: int) -> McpRun | None:
    """The request's MCP servers and tools, and the calls its approval responses decide."""
    specs_list = body.mcp_tools()
    if not specs_list:
        return None
    registry = services().tools
    specs: dict[str, McpTool] = {}
    labels: dict[str, str] = {}
    tools: list[Tool] = []
    listings = []
    listed_before = {
        item.get("server_label") for item in items[:first_new] if item.get("type") == "mcp_list_tools"
    }
    for i, spec in enumerate(body.tools or ()):
        if not isinstance(spec, McpTool):
            continue
        if spec.server_label in specs:
            raise InvalidRequest(f"Two MCP tools have the label {spec.server_label!r}.", param=f"tools.{i}")
        key = server_key(spec, registry, f"tools.{i}")
        specs[spec.server_label] = spec
        labels[key] = spec.server_label
        try:
            found = registry.servers.list_tools(key)
            error = None
        except ToolFailed as e:
            found, error = (), str(e)
        allowed = [tool for tool in found if spec.allows(tool.name, _read_only(tool))]
        tools += allowed
        if spec.server_label not in listed_before or error:
            listings.append(
                OutputMcpListTools(
                    id=item_id("mcpl"),
                    server_label=spec.server_label,
                    tools=[
                        McpListedTool(
                            name=tool.name,
                            description=tool.description or None,
                            input_schema=tool.parameters,
                            annotations=tool.annotations or None,
                        )
                        for tool in allowed
                    ],
                    error=error,
                )
            )
    run = McpRun(
        registry,
        specs,
        labels,
        ToolSet.of(tools),
        approved_once(items),
        max_rounds=min(body.max_tool_calls or MAX_TOOL_ROUNDS, MAX_TOOL_ROUNDS),
        app=current_app._get_current_object(),  # type: ignore[attr-defined]
        early_items=listings,
    )
    run_approved_calls(run, items, first_new)
    return run


def run_approved_calls(run: McpRun, items: list[dict], first_new: int) -> None:
    """The calls this request's `mcp_approval_response` items answer: run (or declined), their
    items and messages kept for the response."""
    requests = {item["id"]: item for item in items[:first_new] if item.get("type") == "mcp_approval_request"}
    answered = {
        item.get("approval_request_id") for item in items[:first_new] if item.get("type") == "mcp_call"
    }
    loop = run.loop()
    for i, item in enumerate(items[first_new:]):
        if item.get("type") != "mcp_approval_response":
            continue
        where = f"input.{i}.approval_request_id"
        request_id = item["approval_request_id"]
        request = requests.get(request_id)
        if request is None:
            raise InvalidRequest(f"No earlier mcp_approval_request has the id {request_id!r}.", param=where)
        if request_id in answered:
            raise InvalidRequest(f"The approval request {request_id!r} was answered already.", param=where)
        asked = McpApprovalRequestItem.model_validate(request)
        name = next(
            (
                model_name
                for model_name, tool in run.toolset.tools.items()
                if run.label_of(tool) == asked.server_label and tool.name == asked.name
            ),
            None,
        )
        if name is None:
            raise InvalidRequest(
                f"The tool {asked.name!r} of {asked.server_label!r} is not among this request's tools.",
                param=where,
            )
        steps = list(loop.run_call(request_id, name, asked.arguments, approved=bool(item.get("approve"))))
        step = steps[-1]
        call = {
            "id": request_id,
            "type": "function",
            "function": {"name": name, "arguments": asked.arguments},
        }
        run.messages += [ChatMessage("assistant", "", tool_calls=(call,)), step.message()]
        if not step.declined:
            run.early_items.append(run.call_item(step, approval_request_id=request_id))


def call_messages(item: McpCallItem) -> list[ChatMessage]:
    """An earlier `mcp_call` in a prompt: the assistant's call, then its result."""
    call_id = item.approval_request_id or item.id or item_id("mcp")
    call = {"id": call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
    return [
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", escape_markers(item.result_text()), tool_call_id=call_id),
    ]


def public_tool(tool: McpTool) -> dict:
    """The request's MCP tool as the response echoes (and the store keeps) it: without the
    server's credentials."""
    return tool.model_dump(mode="json", exclude_none=True, exclude={"authorization", "headers"})


def approved_once(items: list[dict]) -> set[tuple[str, str]]:
    """The (server, tool) pairs the user approved in this conversation."""
    requests = {item["id"]: item for item in items if item.get("type") == "mcp_approval_request"}
    approved = set()
    for item in items:
        if item.get("type") == "mcp_approval_response" and item.get("approve"):
            request = requests.get(item.get("approval_request_id"))
            if request is not None:
                approved.add((request["server_label"], request["name"]))
    return approved


def _read_only(tool: Tool) -> bool:
    return bool(tool.annotations.get("read_only_hint") or tool.annotations.get("readOnlyHint"))


def server_key(spec: McpTool, registry: ToolRegistry, where: str) -> str:
    """The registry's key of the request's server: a label of mcp.json, or a URL the settings
    allow (stdio servers come from mcp.json only, never from a request)."""
    if spec.connector_id is not None:
        raise InvalidRequest("Connectors are an OpenAI service: name a server of mcp.json.", param=where)
    if spec.server_url is None:
        if registry.servers.config(spec.server_label) is None:
            known = ", ".join(registry.servers.labels()) or "none"
            raise InvalidRequest(
                f"No MCP server is labelled {spec.server_label!r} in user_data/mcp.json "
                f"(there are: {known}).",
                param=f"{where}.server_label",
            )
        return spec.server_label
    settings = services().settings
    if not settings.allow_remote_mcp:
        raise InvalidRequest(
            "Hearth does not connect to MCP servers named by URL: add the server to user_data/mcp.json, "
            "or start Hearth with --allow-remote-mcp.",
            param=f"{where}.server_url",
        )
    check_remote_url(spec.server_url, settings.allow_private_mcp, f"{where}.server_url")
    headers = dict(spec.headers or {})
    if spec.authorization:
        headers["Authorization"] = f"Bearer {spec.authorization}"
    try:
        return registry.servers.add_request_server(spec.server_url, headers)
    except ToolFailed as e:
        raise InvalidRequest(str(e), param=f"{where}.server_url") from None


def check_remote_url(url: str, allow_private: bool, where: str) -> None:
    """An http(s) URL whose host resolves to public addresses only (unless allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("An MCP server URL must be an http(s) URL.", param=where)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        raise InvalidRequest(
            f"The MCP server host {parts.hostname!r} cannot be resolved.", param=where
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global and not allow_private:
            raise InvalidRequest(
                f"The MCP server URL points at a private or local address ({address}); Hearth connects "
                "to public addresses only (--allow-private-mcp allows others).",
                param=where,
            )
