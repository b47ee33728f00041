"""Secrets made once: processes starting together (gunicorn's workers) all get the same one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from modules.keyfile import read_or_create

REPO = Path(__file__).resolve().parents[2]

RACER = """
import json, secrets, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from modules.keyfile import read_or_create
folder = Path({folder!r})
print("ready", flush=True)
sys.stdin.readline()
got = [read_or_create(folder / f"secret{{i}}.key", lambda: secrets.token_hex(32)) for i in range(40)]
print(json.dumps(got), flush=True)
"""


def test_processes_racing_for_a_new_secret_all_get_the_same(tmp_path):
    script = RACER.format(repo=str(REPO), folder=str(tmp_path))
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for racer in racers:
        assert racer.stdout.readline().strip() == "ready"
    for racer in racers:
        racer.stdin.write("go\n")
        racer.stdin.flush()
    results = [json.loads(racer.stdout.readline()) for racer in racers]
    for racer in racers:
        assert racer.wait(timeout=30) == 0
    assert results[0] == results[1] == results[2] == results[3]
    for i, secret in enumerate(results[0]):
        path = tmp_path / f"secret{i}.key"
        assert path.read_text().strip() == secret and len(secret) == 64
        assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_short_secret_is_replaced_and_a_loose_mode_tightened(tmp_path):
    path = tmp_path / "k"
    path.write_text("short\n")
    os.chmod(path, 0o644)
    secret = read_or_create(path, lambda: "x" * 40)
    assert secret == "x" * 40 and path.stat().st_mode & 0o777 == 0o600
    assert read_or_create(path, lambda: "y" * 40) == "x" * 40
