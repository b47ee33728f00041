"""The MCP servers' sessions, through the official `mcp` SDK.

Every session lives on one asyncio loop in one real OS thread that this object owns: a
server starts on first use, stays up, is started again when it died, and all stop at
`close()`. Callers are request handlers (greenlets under gevent, threads elsewhere): each
call is handed to the loop and its answer comes back through the app's mailer
(engines/crossthread.py), with a timeout. A server that crashes or hangs gives a
`ToolFailed` that says so, never an exception of the SDK's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import AsyncExitStack
from dataclasses import dataclass

from modules.engines.crossthread import Empty, Inbox, Mailer, make_mailer, start_thread

from .mcp_config import ServerConfig
from .mcp_stdio import native_stdio_client, subprocess_is_patched
from .tool import Tool, ToolFailed

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # seconds a server may take to start and answer `initialize`
STOP_TIMEOUT = 5.0
MAX_REQUEST_SERVERS = 16  # servers named by URL in requests, kept alive like the user's


@dataclass(frozen=True)
class ServerStatus:
    label: str
    transport: str  # "stdio" | "http"
    state: str  # "stopped" | "running" | "failed"
    error: str | None
    tools: tuple[Tool, ...]

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "transport": self.transport,
            "state": self.state,
            "error": self.error,
            "tools": [tool.to_dict() for tool in self.tools],
        }


class _Connection:
    """One server's session, held open by its own task on the loop."""

    def __init__(self, label: str, config: ServerConfig) -> None:
        self.label = label
        self.config = config
        self.session = None
        self.tools: tuple[Tool, ...] | None = None
        self.error: str | None = None
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.finished = False
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        from mcp import ClientSession

        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(stack))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self.session = session
                self.ready.set()
                await self.stop.wait()
        except BaseException as e:  # the SDK's task groups raise groups; the loop must go on
            if self.error is None and not isinstance(e, asyncio.CancelledError):
                self.error = describe(e)
                log.warning("the MCP server %s stopped: %s", self.label, self.error)
        finally:
            self.session = None
            self.finished = True
            self.ready.set()

    def _transport(self, stack: AsyncExitStack):
        config = self.config
        if config.command is not None and subprocess_is_patched():
            return native_stdio_client(config.command, config.args, config.env, config.cwd)
        if config.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=config.command, args=config.args, env=config.env or None, cwd=config.cwd
            )
            return stdio_client(params)
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        assert config.url is not None
        client = create_mcp_http_client(headers=config.headers or None)
        stack.push_async_callback(client.aclose)
        return streamable_http_client(config.url, http_client=client)

    def fail(self, error: str) -> None:
        self.error = error
        self.stop.set()


def describe(error: BaseException) -> str:
    """The innermost message of an error (the SDK raises exception groups)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error) or type(error).__name__
    return text if len(text) < 500 else text[:500] + "..."


class McpServers:
    def __init__(
        self,
        configs: dict[str, ServerConfig],
        errors: dict[str, str] | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self._mailer = mailer or make_mailer()
        self._configs = dict(configs)
        self._errors = dict(errors or {})  # entries of mcp.json that were left out
        self._request_servers: set[str] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: Inbox | None = None  # gets an item when the loop's thread ends
        self._connections: dict[str, _Connection] = {}  # touched on the loop only
        self._closed = False

    # --- what there is ---------------------------------------------------------------------------

    def labels(self) -> list[str]:
        return [label for label in self._configs if label not in self._request_servers]

    def config(self, label: str) -> ServerConfig | None:
        return self._configs.get(label)

    def add_request_server(self, url: str, headers: dict[str, str]) -> str:
        """A server a request named by URL (checked by the caller): its key among the servers."""
        key = f"{url} {sorted(headers.items())}"
        with self._lock:
            if key not in self._configs:
                if len(self._request_servers) >= MAX_REQUEST_SERVERS:
                    raise ToolFailed(f"Hearth keeps at most {MAX_REQUEST_SERVERS} servers named by URL")
                # no policy of the user's: the request's require_approval decides
                self._configs[key] = ServerConfig(url=url, headers=headers, approval="never")
                self._request_servers.add(key)
        return key

    def status(self) -> list[ServerStatus]:
        out = []
        for label in self.labels():
            connection = self._connections.get(label)
            transport = self._configs[label].transport
            if connection is None:
                out.append(ServerStatus(label, transport, "stopped", None, ()))
                continue
            running = (
                connection.session is not None and not connection.finished and not connection.stop.is_set()
            )
            state = "running" if running else ("failed" if connection.error else "stopped")
            out.append(ServerStatus(label, transport, state, connection.error, connection.tools or ()))
        out += [ServerStatus(label, "?", "failed", error, ()) for label, error in self._errors.items()]
        return out

    # --- calls from any thread -------------------------------------------------------------------

    def list_tools(self, label: str) -> tuple[Tool, ...]:
        """The server's tools (starting it when it is not running)."""
        return self._wait(self._list_tools(label), START_TIMEOUT + 30)

    def call(self, label: str, name: str, arguments: dict, timeout: float | None = None) -> str:
        """Run a tool; its text output, or `ToolFailed`."""
        config = self._configs[label]
        seconds = timeout or config.timeout
        return self._wait(self._call(label, name, arguments, seconds), START_TIMEOUT + seconds + 5)

    def close(self) -> None:
        """Stop every server and the loop (blocks this thread for at most a few seconds)."""
        with self._lock:
            self._closed = True
            loop, stopped = self._loop, self._stopped
            self._loop = self._stopped = None
        if loop is None or stopped is None:
            return
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._stop_all(loop)))
        try:
            stopped.get(timeout=STOP_TIMEOUT * 3)
        except Empty:
            log.warning("the MCP servers did not all stop in time")

    def _wait(self, coroutine, timeout: float):
        """Run a coroutine on the loop; its result here, or `ToolFailed` after `timeout`."""
        loop = self._running_loop()
        channel = self._mailer.channel()
        tasks: list[asyncio.Task] = []

        def submit() -> None:
            task = loop.create_task(coroutine)
            tasks.append(task)
            task.add_done_callback(channel.put)

        loop.call_soon_threadsafe(submit)
        try:
            task = channel.get(timeout=timeout)
        except Empty:
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in tasks])
            raise ToolFailed(f"no answer within {timeout:g} seconds") from None
        if task.cancelled():
            raise ToolFailed("the call was cancelled")
        error = task.exception()
        if error is not None:
            raise error
        return task.result()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ToolFailed("the server is shutting down")
            if self._loop is None:
                ready, stopped = Inbox(), Inbox()
                start_thread(lambda: _serve(ready, stopped), "mcp-servers")
                try:
                    self._loop, self._stopped = ready.get(timeout=STOP_TIMEOUT), stopped
                except Empty:
                    raise ToolFailed("the MCP servers' thread did not start") from None
            return self._loop

    # --- on the loop -----------------------------------------------------------------------------

    async def _connected(self, label: str) -> _Connection:
        connection = self._connections.get(label)
        if connection is not None and connection.stop.is_set() and connection.task is not None:
            await asyncio.wait({connection.task}, timeout=STOP_TIMEOUT)  # a failed one winding down
        if connection is None or connection.finished or connection.stop.is_set():
            if connection is not None:
                log.info("starting the MCP server %s again (it stopped: %s)", label, connection.error)
            connection = _Connection(label, self._configs[label])
            self._connections[label] = connection
            connection.task = asyncio.create_task(connection.run())
        try:
            await asyncio.wait_for(connection.ready.wait(), START_TIMEOUT)
        except TimeoutError:
            connection.fail(f"it did not start within {START_TIMEOUT:g} seconds")
            raise ToolFailed(
                f"the MCP server {label} did not start within {START_TIMEOUT:g} seconds"
            ) from None
        if connection.session is None:
            raise ToolFailed(f"the MCP server {label} did not start: {connection.error}")
        return connection

    async def _list_tools(self, label: str) -> tuple[Tool, ...]:
        connection = await self._connected(label)
        if connection.tools is None:
            try:
                async with asyncio.timeout(connection.config.timeout):
                    listed = await connection.session.list_tools()
            except TimeoutError:
                raise ToolFailed(f"the MCP server {label} did not list its tools in time") from None
            except Exception as e:
                connection.fail(describe(e))
                raise ToolFailed(f"the MCP server {label} failed: {describe(e)}") from None
            config = connection.config
            connection.tools = tuple(
                Tool(
                    name=tool.name,
                    description=tool.description or "",
                    parameters=dict(tool.input_schema or {"type": "object", "properties": {}}),
                    source="mcp",
                    approval=config.approval_of(tool.name),
                    server=label,
                    timeout=config.timeout,
                    annotations=_annotations(tool),
                )
                for tool in listed.tools
            )
        return connection.tools

    async def _call(self, label: str, name: str, arguments: dict, timeout: float) -> str:
        connection = await self._connected(label)
        try:
            async with asyncio.timeout(timeout):
                result = await connection.session.call_tool(name, arguments)
        except TimeoutError:
            raise ToolFailed(f"the tool {name} gave no answer within {timeout:g} seconds") from None
        except Exception as e:
            if not _refused(e):  # the session may be broken: the next call starts it again
                connection.fail(describe(e))
                raise ToolFailed(f"the MCP server {label} failed: {describe(e)}") from None
            raise ToolFailed(f"the MCP server {label} refused the call: {e.error.message}") from None
        text = result_text(result)
        if getattr(result, "is_error", False):
            raise ToolFailed(text or "the tool reported an error")
        return text

    async def _stop_all(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._stop_connections()
        finally:
            loop.stop()

    async def _stop_connections(self) -> None:
        tasks = []
        for connection in self._connections.values():
            connection.stop.set()
            if connection.task is not None:
                tasks.append(connection.task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            for task in pending:
                task.cancel()


def _refused(error: Exception) -> bool:
    """An error answer of a live server (bad arguments, unknown tool), not a broken session."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    return isinstance(error, MCPError) and error.code != CONNECTION_CLOSED


def _annotations(tool) -> dict:
    """A listed tool's hints (readOnlyHint, ...), as the MCP wire names them."""
    annotations = getattr(tool, "annotations", None)
    return annotations.model_dump(by_alias=True, exclude_none=True) if annotations is not None else {}


def result_text(result) -> str:
    """A tool result's content as text: the text parts; other parts are named."""
    parts = []
    for block in getattr(result, "content", None) or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and getattr(block.resource, "text", None) is not None:
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind or 'content'} not shown]")
    if not parts and getattr(result, "structured_content", None) is not None:
        import json

        return json.dumps(result.structured_content)
    return "\n".join(parts)


def _serve(ready: Inbox, stopped: Inbox) -> None:
    """The loop's thread: the loop is made here, so that everything it owns belongs to it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ready.put(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
        stopped.put(True)
