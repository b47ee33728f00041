"""The one place that lists the tools of every source and runs them: built-in tools, the
user's Python tools (user_data/tools/) and the MCP servers of user_data/mcp.json. It lives
on the app's services, built at start-up and closed at shutdown."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modules.engines.crossthread import Empty, Mailer, make_mailer, start_thread
from modules.errors import InvalidRequest

from .builtin import BUILTIN_TOOLS
from .local import load_local_tools
from .mcp_config import load_mcp_config
from .mcp_servers import McpServers, describe
from .tool import MAX_OUTPUT_CHARS, Tool, ToolFailed, truncated

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolOutcome:
    """What one call gave: its output, or the error the model is told, and how long it took."""

    output: str | None
    error: str | None
    seconds: float

    @property
    def message(self) -> str:
        """The tool message's text for the model."""
        return self.output if self.error is None else f"The tool failed: {self.error}"  # type: ignore[return-value]


@dataclass(frozen=True)
class ToolSet:
    """The tools one request (or chat) lets the model call, by the name the model uses."""

    tools: dict[str, Tool] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: Iterable[Tool]) -> ToolSet:
        named: dict[str, Tool] = {}
        for tool in tools:
            name = tool.name if tool.name not in named else f"{tool.server or tool.source}_{tool.name}"
            named[name] = tool
        return cls(named)

    def get(self, name: str | None) -> Tool | None:
        return self.tools.get(name or "")

    def chat_tools(self) -> tuple[dict, ...]:
        out = []
        for name, tool in self.tools.items():
            definition = tool.chat_tool()
            definition["function"]["name"] = name
            out.append(definition)
        return tuple(out)

    def __bool__(self) -> bool:
        return bool(self.tools)


class ToolRegistry:
    def __init__(
        self,
        tools_dir: Path,
        mcp_file: Path,
        *,
        max_output: int = MAX_OUTPUT_CHARS,
        mailer: Mailer | None = None,
    ) -> None:
        self.max_output = max_output
        self._builtin: dict[str, tuple[Tool, Callable[[dict], str]]] = {
            t.name: (t, f) for t, f in BUILTIN_TOOLS
        }
        self._local = {found.tool.name: found for found in load_local_tools(tools_dir)}
        configs, errors = load_mcp_config(mcp_file)
        self._mailer = mailer or make_mailer()
        self.servers = McpServers(configs, errors, self._mailer)

    # --- listing ---------------------------------------------------------------------------------

    def builtin_tools(self) -> list[Tool]:
        return [tool for tool, _ in self._builtin.values()]

    def local_tools(self) -> list[Tool]:
        return [found.tool for found in self._local.values()]

    def find(self, name: str) -> Tool | None:
        """A built-in or local tool by name (the user's tools win)."""
        if name in self._local:
            return self._local[name].tool
        entry = self._builtin.get(name)
        return entry[0] if entry else None

    def server_tools(self, label: str) -> tuple[Tool, ...]:
        """An MCP server's tools, starting it when needed; `ToolFailed` when it cannot."""
        if self.servers.config(label) is None:
            raise ToolFailed(f"no MCP server is named {label!r} in mcp.json")
        return self.servers.list_tools(label)

    def toolset(self, names: Sequence[str], labels: Sequence[str], field: str) -> ToolSet:
        """The tools a request or chat names: built-in or local tools by name, and every tool
        of the MCP servers it names by label (a server that cannot start is left out, and
        logged). An unknown name or label is an InvalidRequest about `field`.tools/.servers."""
        tools: list[Tool] = []
        for i, name in enumerate(names):
            tool = self.find(name)
            if tool is None:
                known = ", ".join(t.name for t in (*self.local_tools(), *self.builtin_tools()))
                raise InvalidRequest(
                    f"There is no built-in or local tool {name!r} (there are: {known}).",
                    param=f"{field}.tools.{i}",
                )
            tools.append(tool)
        for i, label in enumerate(labels):
            if self.servers.config(label) is None:
                raise InvalidRequest(
                    f"No MCP server is labelled {label!r} in user_data/mcp.json.",
                    param=f"{field}.servers.{i}",
                )
            try:
                tools += self.server_tools(label)
            except ToolFailed as e:  # the model goes on without that server's tools
                log.warning("the tools of the MCP server %s are left out: %s", label, e)
        return ToolSet.of(tools)

    def status(self) -> dict:
        return {
            "servers": [server.to_dict() for server in self.servers.status()],
            "local": [tool.to_dict() for tool in self.local_tools()],
            "builtin": [tool.to_dict() for tool in self.builtin_tools()],
        }

    # --- running ---------------------------------------------------------------------------------

    def run(self, tool: Tool, arguments: dict) -> ToolOutcome:
        """Run a tool: its output cut to the size limit, or its error; never raises."""
        start = time.monotonic()
        try:
            output = truncated(self._run(tool, arguments), self.max_output)
            return ToolOutcome(output, None, time.monotonic() - start)
        except ToolFailed as e:
            return ToolOutcome(None, str(e), time.monotonic() - start)
        except Exception as e:  # a user's tool may raise anything: the model hears of it
            log.warning("the tool %s failed", tool.name, exc_info=True)
            return ToolOutcome(None, f"{type(e).__name__}: {describe(e)}", time.monotonic() - start)

    def _run(self, tool: Tool, arguments: dict) -> str:
        if tool.source == "mcp":
            assert tool.server is not None
            return self.servers.call(tool.server, tool.name, arguments, tool.timeout)
        if tool.source == "builtin":
            return self._builtin[tool.name][1](arguments)
        return self._run_local(tool, arguments)

    def _run_local(self, tool: Tool, arguments: dict) -> str:
        """A local tool on a real OS thread of its own (a request handler is a greenlet in
        the server: a tool that computes must not hold up the others), within its timeout."""
        function = self._local[tool.name].function
        channel = self._mailer.channel()

        def work() -> None:
            try:
                channel.put((True, function(**arguments)))
            except BaseException as e:  # the caller reports it
                channel.put((False, e))

        start_thread(work, f"tool-{tool.name}")
        try:
            ok, value = channel.get(timeout=tool.timeout)
        except Empty:
            raise ToolFailed(f"the tool {tool.name} gave no answer within {tool.timeout:g} seconds") from None
        if not ok:
            raise value
        return as_text(value)

    def close(self) -> None:
        self.servers.close()


def as_text(value: object) -> str:
    """A local tool's return value as text for the model."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
