"""Helpers for the serving tests: certificates, a fake cloudflared, listening sockets, processes."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The deployment command of docs/deployment.md, as the gunicorn test runs it.
GUNICORN_COMMAND = "gunicorn -k gevent -w 1 -b 127.0.0.1:{port} 'modules.app:create_app()'"

FAKE_TUNNEL_URL = "https://quiet-river-lantern-test.trycloudflare.com"

# What cloudflared prints on stderr for a quick tunnel (a real run's lines, shortened).
_FAKE_CLOUDFLARED = r'''#!PYTHON
"""A stand-in for cloudflared: prints its lines to stderr and runs until SIGTERM."""
import json, os, signal, sys, time

record = os.environ["FAKE_CLOUDFLARED_RECORD"]
with open(record, "a") as out:
    out.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:]}) + "\n")
runs = sum(1 for _ in open(record))
failures = int(os.environ.get("FAKE_CLOUDFLARED_FAILURES", "0"))
log = lambda level, text: print(f"2025-01-01T00:00:00Z {level} {text}", file=sys.stderr, flush=True)

log("INF", "Thank you for trying Cloudflare Tunnel.")
log("INF", "Requesting new quick Tunnel on trycloudflare.com...")
if runs <= failures:
    log("ERR", 'failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": '
               "dial tcp: lookup api.trycloudflare.com: no such host")
    sys.exit(1)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if "run" in sys.argv:
    log("INF", "Starting tunnel tunnelID=" + sys.argv[-1])
    log("INF", "Registered tunnel connection connIndex=0 event=0 ip=198.41.200.13 "
               "location=ams08 protocol=quic")
else:
    log("INF", "+" + "-" * 60 + "+")
    log("INF", "|  Your quick Tunnel has been created! Visit it at "
               "(it may take some time to be reachable):  |")
    log("INF", "|  URL                                  |")
    log("INF", "+" + "-" * 60 + "+")
    log("INF", "Starting metrics server on 127.0.0.1:45678/metrics")
lifetime = float(os.environ.get("FAKE_CLOUDFLARED_LIFETIME", "0"))  # 0: until SIGTERM
started = time.monotonic()
while not lifetime or time.monotonic() - started < lifetime:
    time.sleep(0.1)
log("INF", "Tunnel server stopped")
'''


def write_fake_cloudflared(folder: Path) -> Path:
    """An executable `cloudflared` in `folder` (put it first on PATH); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "cloudflared"
    text = _FAKE_CLOUDFLARED.replace("PYTHON", sys.executable).replace("URL", FAKE_TUNNEL_URL)
    script.write_text(text)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def fake_runs(record: Path) -> list[dict]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def path_without_cloudflared() -> str:
    """PATH minus every folder that holds a cloudflared."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not (Path(f) / "cloudflared").exists())


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] != "Z"


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# --- Listening sockets, read from /proc/net (what `ss -ltn` shows) ------------------------------


def _decode(address: str, family: int) -> str:
    raw = bytes.fromhex(address)
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listening_addresses(port: int) -> set[str]:
    """Every local address with a TCP socket listening on `port`, IPv4 and IPv6."""
    found = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        table = Path(f"/proc/net/{name}")
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(_decode(address, family))
    return found


# --- Certificates --------------------------------------------------------------------------------


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, 127.0.0.1 and ::1; returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hearth test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# --- A UI-side extension with a websocket, until the browser UI lands ----------------------------

WS_EXTENSION = """
from flask import Blueprint
from flask_sock import Sock


def blueprint():
    bp = Blueprint("ws_echo", __name__)
    sock = Sock()

    @sock.route("/ws/echo", bp=bp)
    def echo(ws):
        while True:
            ws.send(ws.receive())

    @bp.get("/ui-page")
    def page():
        return "a UI page"

    return bp
"""


def install_ws_extension(user_data: Path) -> str:
    """A `ws_echo` extension in user_data: a websocket echo and a page, both UI routes."""
    folder = user_data / "extensions" / "ws_echo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    (folder / "script.py").write_text(WS_EXTENSION)
    return "ws_echo"
