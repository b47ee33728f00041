"""docs/media.md against the code: every media endpoint and setting is described, and its
curl examples run against a real server."""

from __future__ import annotations

import re
import subprocess

import pytest

from extensions.openai.media import ROUTES
from modules.settings import field_meta

pytestmark = pytest.mark.media

DOC = (__import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "media.md").read_text()
MEDIA_SETTINGS = (
    "embedding_model",
    "embedding_models",
    "embedding_device",
    "embedding_batch_size",
    "image_model",
    "image_device",
    "whisper_model",
    "tts_voice",
    "media_threads",
)


def test_every_media_endpoint_is_documented():
    documented = set(re.findall(r"`((?:GET|POST) /[^`]*)`", DOC))
    assert {f"{route.method} {route.path}" for route in ROUTES} <= documented


def test_every_media_setting_is_documented_with_its_flag_and_default():
    for name in MEDIA_SETTINGS:
        meta = field_meta(name)
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row, name
        assert f"`{meta['flag']}" in row, name
        if meta["env"]:
            assert meta["env"] in row, name
        default = meta["default"]
        if default not in (None, "", [], {}):
            assert f"`{default}`" in row, name


def curl_blocks() -> list[str]:
    return [b for b in re.findall(r"```bash\n(.*?)```", DOC, flags=re.S) if "curl " in b]


@pytest.mark.parametrize("block", curl_blocks(), ids=lambda b: re.search(r"/v1/[\w/]+", b)[0])
def test_curl_examples_run(media_server, auth, tmp_path, block):
    script = block.replace("http://127.0.0.1:5000", media_server.api_base).replace(
        "curl ", f"curl -sS --fail-with-body -H 'Authorization: {auth['Authorization']}' "
    )
    result = subprocess.run(
        ["bash", "-ec", script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, f"{script}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
    assert '"error"' not in result.stdout
    assert result.stdout.strip() or any(tmp_path.iterdir())
