"""The code stays ruff-clean and ruff-formatted (pyproject.toml holds the rules)."""

import subprocess
import sys

from modules.settings import PROJECT_ROOT


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_check_passes():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format_is_applied():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:]
