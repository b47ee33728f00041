"""Discovering and loading extensions (`extensions/<name>/script.py`).

An extension is a folder with a `script.py`, loaded as its own package so it can hold
several modules. Bundled extensions live in `extensions/`, the user's in
`user_data/extensions/` (which win on a name clash). A `params` dict in script.py holds
the extension's defaults; settings.yaml overrides them as `<name>-<param>`. The module's
own dict is never changed: the effective values live on the `Extension` object, which
belongs to one app.

An extension that fails to load is logged with its name and skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "hearth_extensions"


@dataclass
class Extension:
    name: str
    path: Path
    module: ModuleType
    params: dict[str, Any] = field(default_factory=dict)

    def hook(self, name: str):
        return getattr(self.module, name, None)


def extension_dirs(project_root: Path, user_data_dir: Path) -> list[Path]:
    """Where to look, lowest priority first."""
    return [project_root / "extensions", user_data_dir / "extensions"]


def find_extension(name: str, dirs: list[Path]) -> Path | None:
    if not name.replace("_", "").replace("-", "").isalnum():
        return None  # a name is a folder name, never a path
    for folder in reversed(dirs):
        if (folder / name / "script.py").is_file():
            return folder / name
    return None


def available_extensions(dirs: list[Path]) -> list[str]:
    names = {p.parent.name for folder in dirs if folder.is_dir() for p in folder.glob("*/script.py")}
    return sorted(names)


def _import_script(name: str, folder: Path) -> ModuleType:
    """Import folder/script.py as `hearth_extensions.<name>.script`, a package of its own."""
    if PACKAGE_PREFIX not in sys.modules:
        root = ModuleType(PACKAGE_PREFIX)
        root.__path__ = []
        sys.modules[PACKAGE_PREFIX] = root
    package_name = f"{PACKAGE_PREFIX}.{name}"
    if package_name not in sys.modules:
        init = folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(
                package_name, init, submodule_search_locations=[str(folder)])
            package = importlib.util.module_from_spec(spec)
            sys.modules[package_name] = package
            spec.loader.exec_module(package)
        else:  # a folder with only script.py (and maybe other modules) is a package too
            package = ModuleType(package_name)
            package.__path__ = [str(folder)]
            sys.modules[package_name] = package
    return importlib.import_module(f"{package_name}.script")


def load_extensions(names: list[str], dirs: list[Path],
                    overrides: dict[str, dict[str, Any]]) -> list[Extension]:
    loaded: list[Extension] = []
    for name in names:
        folder = find_extension(name, dirs)
        if folder is None:
            log.error("extension %s: not found in %s", name, ", ".join(map(str, dirs)))
            continue
        try:
            module = _import_script(name, folder)
            params = dict(getattr(module, "params", {}) or {})
            unknown = set(overrides.get(name, {})) - set(params)
            if unknown:
                raise ValueError(f"unknown parameter(s) in settings: {', '.join(sorted(unknown))}")
            params.update(overrides.get(name, {}))
            extension = Extension(name, folder, module, params)
            setup = extension.hook("setup")
            if setup is not None:
                setup()
        except Exception:
            log.exception("extension %s failed to load and is skipped", name)
            continue
        loaded.append(extension)
        log.info("extension %s loaded", name)
    return loaded
