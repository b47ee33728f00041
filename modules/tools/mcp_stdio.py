"""A stdio transport for the `mcp` SDK's session where the SDK's own cannot run: under
gevent's monkey-patching (the server's), `subprocess.Popen` (and `os.posix_spawn`) are
gevent's, which refuse to start a process from any thread but the main one, and the MCP
loop has a thread of its own.

The process is started with the original `os.posix_spawn` and its pipes are read and
written by the asyncio loop; messages are the SDK's (`SessionMessage`, one JSON-RPC message
a line), so the session above cannot tell the difference. Elsewhere the SDK's
`stdio_client` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

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


def _original(name: str):
    """`os.<name>` as Python has it, not gevent's."""
    try:
        from gevent import monkey
    except ImportError:
        return getattr(os, name)
    return monkey.get_original("os", name)


@dataclass
class SpawnedProcess:
    pid: int
    stdin: int  # the write end of its stdin
    stdout: int  # the read end of its stdout
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = _original("waitpid")(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def spawn(command: str, args: list[str], env: dict[str, str], cwd: str | None) -> SpawnedProcess:
    """Start a process in a session of its own, its stdin and stdout piped, stderr ours."""
    argv = [command, *args]
    if cwd:  # posix_spawn has no working directory of its own here
        argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv]
    executable = shutil.which(argv[0], path=env.get("PATH", os.defpath)) or argv[0]
    stdin_read, stdin_write = os.pipe()  # both ends close on exec; dup2 clears it for 0 and 1
    stdout_read, stdout_write = os.pipe()
    try:
        pid = _original("posix_spawn")(
            executable,
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, stdin_read, 0), (os.POSIX_SPAWN_DUP2, stdout_write, 1)],
            setsid=True,  # its children stop with it
        )
    except BaseException:
        for fd in (stdin_write, stdout_read):
            os.close(fd)
        raise
    finally:
        os.close(stdin_read)
        os.close(stdout_write)
    return SpawnedProcess(pid, stdin_write, stdout_read)


@contextlib.asynccontextmanager
async def native_stdio_client(
    command: str, args: list[str], env: dict[str, str] | None, cwd: str | None
) -> AsyncIterator[tuple]:
    from mcp.client.stdio import _parse_line, get_default_environment
    from mcp.shared.message import SessionMessage

    process = spawn(command, args, get_default_environment() | (env or {}), cwd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    stdout, stdin = os.fdopen(process.stdout, "rb", 0), os.fdopen(process.stdin, "wb", 0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdout)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdin)
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
        with contextlib.suppress(Exception):
            stdout.close()


async def _stop(process: SpawnedProcess) -> None:
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
