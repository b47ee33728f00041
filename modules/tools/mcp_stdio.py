"""A stdio transport for the `mcp` SDK's session where the SDK's own cannot run: under
gevent's monkey-patching (the server's), `subprocess.Popen` is gevent's, which refuses to
start a process from any thread but the main one, and the MCP loop has a thread of its own.

The process is started with the original `Popen` and its pipes are read and written by the
asyncio loop; messages are the SDK's (`SessionMessage`, one JSON-RPC message a line), so the
session above cannot tell the difference. Elsewhere the SDK's `stdio_client` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator

import anyio

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024 * 1024  # bytes of one message
STOP_SECONDS = 2.0


def subprocess_is_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("subprocess")


def _original_popen():
    from gevent import monkey

    return monkey.get_original("subprocess", "Popen")


@contextlib.asynccontextmanager
async def native_stdio_client(
    command: str, args: list[str], env: dict[str, str] | None, cwd: str | None
) -> AsyncIterator[tuple]:
    from mcp.client.stdio import _parse_line, get_default_environment
    from mcp.shared.message import SessionMessage

    popen = _original_popen()
    process = popen(
        [command, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=get_default_environment() | (env or {}),
        cwd=cwd,
        start_new_session=True,  # its children stop with it
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, process.stdin)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    read_send, read_receive = anyio.create_memory_object_stream(0)
    write_send, write_receive = anyio.create_memory_object_stream(0)

    async def read_lines() -> None:
        async with read_send:
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").strip()
                if text:
                    await read_send.send(_parse_line(text))

    async def write_lines() -> None:
        async with write_receive:
            async for message in write_receive:
                if not isinstance(message, SessionMessage):  # pragma: no cover - the session sends these
                    continue
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                writer.write(data.encode("utf-8"))
                await writer.drain()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_lines)
            tasks.start_soon(write_lines)
            try:
                yield read_receive, write_send
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with contextlib.suppress(Exception):
            writer.close()
        await _stop(process)


async def _stop(process: subprocess.Popen) -> None:
    """Close its stdin, give it a moment, then end its whole session."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
        for _ in range(int(STOP_SECONDS / 0.05)):
            if process.poll() is not None:
                return
            await asyncio.sleep(0.05)
    log.warning("the MCP server process %s did not stop", process.pid)
