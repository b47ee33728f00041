"""--public-api: a Cloudflare tunnel to the API port, run by `cloudflared`.

The binary is `cloudflared` on PATH when there is one; otherwise the one pycloudflared
keeps in its package folder, which it downloads from GitHub on first use (that fails
offline: the server says so and keeps serving locally). Hearth runs the process itself
rather than through `pycloudflared.try_cloudflare`, so that it can read the URL from
cloudflared's stderr, restart it, and stop it with the server.

A quick tunnel prints `https://<random words>.trycloudflare.com`; a named tunnel
(--public-api-id) serves the hostnames routed to it in the user's Cloudflare account,
and is ready once cloudflared reports a registered connection.

The process never outlives the server: it is stopped at shutdown (SIGTERM, then SIGKILL),
and on Linux it is also told to get SIGTERM when the server process dies
(prctl PR_SET_PDEATHSIG), even on `kill -9`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("hearth.tunnel")

QUICK_URL = re.compile(r"https://[-a-z0-9]+(?:\.[-a-z0-9]+)*\.trycloudflare\.com", re.IGNORECASE)
NOT_A_TUNNEL = "https://api.trycloudflare.com"  # the service cloudflared asks for a quick tunnel
NAMED_READY = "Registered tunnel connection"
PR_SET_PDEATHSIG = 1
STABLE_SECONDS = 60  # a tunnel up this long that then ends is restarted with fresh attempts


class TunnelError(Exception):
    """The tunnel could not start (this time); the message is one line."""


def find_cloudflared(download_timeout: float = 120) -> str:
    """cloudflared on PATH, else pycloudflared's copy (downloaded now if it is missing)."""
    on_path = shutil.which("cloudflared")
    if on_path:
        return on_path
    try:
        from pycloudflared.util import download, get_info
    except ImportError:
        raise TunnelError("no cloudflared on PATH, and pycloudflared is not installed") from None
    try:
        info = get_info()
    except RuntimeError as exc:
        raise TunnelError(
            f"no cloudflared on PATH, and pycloudflared has none for this machine: {exc}"
        ) from None
    if Path(info.executable).is_file():
        return info.executable
    import gevent

    log.info("public API: no cloudflared on PATH; downloading it from GitHub (pycloudflared)")
    try:
        with gevent.Timeout(download_timeout, TimeoutError("timed out")):
            return download(info)
    except Exception as exc:
        Path(info.executable).unlink(missing_ok=True)  # never leave a half-written binary behind
        reason = getattr(exc, "reason", None) or exc
        raise TunnelError(
            f"no cloudflared on PATH, and downloading it failed ({reason}); "
            "install cloudflared and put it on PATH"
        ) from None


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls into it
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class Tunnel:
    """cloudflared for the API at `origin`, restarted when it fails, until `stop()`."""

    def __init__(
        self,
        origin: str,
        *,
        tunnel_id: str | None,
        on_ready: Callable[[str | None], None],
        attempts: int = 3,
        backoff: float = 1.0,
        ready_timeout: float = 30.0,
    ) -> None:
        self.origin = origin
        self.tunnel_id = tunnel_id
        self.on_ready = on_ready
        self.attempts = attempts
        self.backoff = backoff
        self.ready_timeout = ready_timeout
        self.url: str | None = None
        self._process: subprocess.Popen | None = None
        self._greenlet = None
        self._stopping = False

    def command(self, executable: str) -> list[str]:
        command = [executable, "tunnel", "--no-autoupdate"]
        if self.origin.startswith("https:"):
            # Our own certificate (often self-signed, rarely for 127.0.0.1), over loopback.
            command.append("--no-tls-verify")
        if self.tunnel_id:
            return [*command, "run", "--url", self.origin, self.tunnel_id]
        return [*command, "--url", self.origin]

    def start(self) -> None:
        import gevent

        self._greenlet = gevent.spawn(self._run)

    def stop(self, timeout: float = 3) -> None:
        self._stopping = True
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=timeout)
        self._end_process(timeout)

    def _run(self) -> None:
        import gevent

        failures = 0
        while not self._stopping:
            started = time.monotonic()
            try:
                self._run_once()
                message = "the tunnel ended"
                # It was up, then ended by itself: start a new one. One that ends at once
                # counts as a failure, so that it is not restarted forever.
                failures = 0 if time.monotonic() - started > STABLE_SECONDS else failures + 1
            except TunnelError as exc:
                failures += 1
                message = str(exc)
            if failures >= self.attempts:
                log.error(
                    "public API: %s. Gave up after %d attempts; the API is still served locally.",
                    message,
                    failures,
                )
                return
            delay = self.backoff * 2 ** max(0, failures - 1)
            log.warning("public API: %s; trying again in %g s", message, delay)
            gevent.sleep(delay)

    def _run_once(self) -> None:
        """Start cloudflared, report it ready, and return when it ends (TunnelError: never ready)."""
        import gevent

        command = self.command(find_cloudflared())
        log.debug("starting %s", " ".join(command))
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            raise TunnelError(f"cannot run {command[0]} ({exc.strerror})") from None
        self._process = process
        try:
            last_error = ""
            with gevent.Timeout(
                self.ready_timeout, TunnelError(f"cloudflared gave no tunnel within {self.ready_timeout:g} s")
            ):
                for line in process.stderr:
                    log.debug("cloudflared: %s", line.rstrip())
                    if self._ready(line):
                        break
                    if " ERR " in line:
                        last_error = line.split(" ERR ", 1)[1].strip()
                else:
                    code = process.wait()
                    raise TunnelError(
                        f"cloudflared exited with status {code}" + (f": {last_error}" if last_error else "")
                    )
            for line in process.stderr:  # keep reading, or cloudflared blocks on a full pipe
                log.debug("cloudflared: %s", line.rstrip())
            process.wait()
        finally:
            self._end_process()

    def _ready(self, line: str) -> bool:
        if self.tunnel_id:
            if NAMED_READY not in line:
                return False
            self.url = None
        else:
            match = QUICK_URL.search(line)
            if match is None or match.group(0).lower() == NOT_A_TUNNEL:
                return False
            self.url = match.group(0)
        self.on_ready(self.url)
        return True

    def _end_process(self, timeout: float = 3) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
