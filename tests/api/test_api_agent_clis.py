"""The coding agents, pointed at Hearth the way docs/api.md tells users to: Codex CLI (only
the Responses API) and Claude Code (only Anthropic's Messages API), with their real requests
(Codex ~40 KB and nine tools, Claude Code 50-75 KB and a dozen or more tools).

Both treat a reply cut by the length limit as an error, so the model must end its turn.
The default model does not reliably: Claude Code's prompt (~12,000 of its tokens) is beyond
its training context (8,192), where it writes until any limit, and on Codex's it stops by
itself only most of the time. The model here is the tiny test model made to answer in one
word and end its turn (tests/tiny_model.py, `answers_briefly`), with a context large enough
for the whole requests: what is tested is the protocol, end to end, every time.
tests/setup.sh installs both CLIs (npm).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tiny_model import write_tiny_model

MODEL = "brief"
CLIS = Path(__file__).resolve().parents[1] / "agent_clis" / "node_modules" / ".bin"


def cli(name: str) -> Path:
    path = CLIS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run tests/setup.sh (it installs the agent CLIs with npm)")
    return path


@pytest.fixture(scope="module")
def server(start_api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("brief-model")
    write_tiny_model(folder / "brief.gguf", name=MODEL, n_ctx_train=65536, answers_briefly=True)
    return start_api("--ctx-size", "65536", "--parallel", "1", models=folder, model=MODEL)


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


def test_codex_exec_completes_a_turn(server, tmp_path):
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\n'
        'model_provider = "hearth"\n\n'
        "[model_providers.hearth]\n"
        'name = "Hearth"\n'
        f'base_url = "{server.api_url}"\n'
        'wire_api = "responses"\n'
        'env_key = "HEARTH_API_KEY"\n'
    )
    result = run(
        [cli("codex"), "exec", "--skip-git-repo-check", "Say hello."],
        cwd=tmp_path,
        env={"CODEX_HOME": str(home), "HEARTH_API_KEY": "not-needed"},
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "\ncodex\n" in output and "tokens used" in output, output[-3000:]
    answer = output.split("\ncodex\n", 1)[1].split("tokens used", 1)[0].strip()
    assert answer, output[-3000:]
    for failure in ("stream error", "unexpected status", "error sending request", "Reconnecting"):
        assert failure not in output, output[-3000:]
    assert "Traceback" not in server.log()


def test_claude_code_answers(server, tmp_path):
    home = tmp_path / "claude-home"
    home.mkdir()
    result = run(
        [cli("claude"), "-p", "Say hello", "--model", MODEL],
        cwd=tmp_path,
        env={
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": server.api_base,
            "ANTHROPIC_API_KEY": "not-needed",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
        timeout=240,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert result.stdout.strip(), result.stderr[-2000:]
    assert "issue with the selected model" not in result.stdout + result.stderr
    assert "Traceback" not in server.log()
