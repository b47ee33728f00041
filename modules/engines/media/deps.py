"""Which optional packages each media feature needs, checked without importing them.

Without them the endpoints answer 501 naming what to install, instead of failing on import.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ...errors import NotInstalled

REQUIREMENTS_FILE = "requirements/media.txt"

# feature -> (import name, PyPI package) pairs
NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "embedding": (("torch", "torch"), ("sentence_transformers", "sentence-transformers")),
    "image": (
        ("torch", "torch"),
        ("diffusers", "diffusers"),
        ("transformers", "transformers"),
        ("PIL", "pillow"),
    ),
    "transcription": (("faster_whisper", "faster-whisper"), ("av", "av")),
    "speech": (("piper", "piper-tts"), ("onnxruntime", "onnxruntime"), ("av", "av")),
}

FEATURE_NAMES = {
    "embedding": "Embeddings and moderations",
    "image": "Image generation",
    "transcription": "Speech-to-text",
    "speech": "Text-to-speech",
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(feature: str) -> list[str]:
    """The PyPI packages `feature` needs that are not installed."""
    return [package for module, package in NEEDS[feature] if not installed(module)]


def require(feature: str) -> None:
    """Raise NotInstalled (501) naming the missing packages for `feature`."""
    packages = missing(feature)
    if packages:
        raise NotInstalled(
            f"{FEATURE_NAMES[feature]} need {', '.join(packages)}, which "
            f"{'is' if len(packages) == 1 else 'are'} not installed. Install the media "
            f"dependencies with: pip install -r {REQUIREMENTS_FILE}",
            code="dependency_missing",
        )


def package_dir(module: str) -> Path | None:
    """Where an installed package lies, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
