"""Which projector (mmproj) goes with which model, by the names and places users give them."""

from __future__ import annotations

from pathlib import Path

from modules.engines.manager import discover
from modules.engines.registry import default_loaders


def touch(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"GGUF")


def pairs(folder: Path) -> dict[str, str | None]:
    return {s.id: s.mmproj.name if s.mmproj else None for s in discover(folder, default_loaders())}


def test_by_name_in_a_shared_folder(tmp_path):
    touch(
        tmp_path,
        "SmolVLM-256M-Instruct-Q8_0.gguf",
        "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf",
        "gemma-3-4b-it-Q4_K_M.gguf",
        "mmproj-gemma-3-4b-it-f16.gguf",
        "Phi-3 Mini Instruct.gguf",
    )
    assert pairs(tmp_path) == {
        "SmolVLM-256M-Instruct-Q8_0": "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf",
        "gemma-3-4b-it-Q4_K_M": "mmproj-gemma-3-4b-it-f16.gguf",
        "Phi-3 Mini Instruct": None,  # a projector is never paired with an unrelated model
    }


def test_the_only_projector_in_a_models_own_folder(tmp_path):
    touch(tmp_path, "vision/model-q4.gguf", "vision/mmproj-f16.gguf", "text/other.gguf")
    assert pairs(tmp_path) == {"model-q4": "mmproj-f16.gguf", "other": None}


def test_ambiguous_names_pair_nothing(tmp_path):
    touch(tmp_path, "a-model.gguf", "b-model.gguf", "mmproj-f16.gguf")
    assert pairs(tmp_path) == {"a-model": None, "b-model": None}
