"""llama.cpp's own llama-server, built from the sources Hearth's engine is built from.

The llama-cpp-python sdist that requirements/base.txt pins vendors llama.cpp
(`vendor/llama.cpp`); this builds its `llama-server` with the same portable flags as the
wheel (`GGML_NATIVE=OFF`), once, into a cache folder, and reuses it (~7 minutes on 2 cores):

    .venv/bin/python bench/llama_server.py          # build (or find) it, print its path

The cache folder is `$HEARTH_BENCH_CACHE` or `~/.cache/hearth-bench`. No test depends on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",  # as the wheel in the README's install command
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # ON would download the web UI
)


def pinned_version() -> str:
    text = (ROOT / "requirements" / "base.txt").read_text()
    match = re.search(r"^llama-cpp-python==([^\s;]+)", text, re.MULTILINE)
    if not match:
        raise SystemExit("requirements/base.txt pins no llama-cpp-python version")
    return match.group(1)


def cache_dir() -> Path:
    return Path(os.environ.get("HEARTH_BENCH_CACHE", Path.home() / ".cache" / "hearth-bench"))


def sdist(version: str) -> Path:
    """The sdist: tests/setup.sh keeps it in tests/.artifacts/downloads; else pip fetches it."""
    for folder in (ROOT / "tests" / ".artifacts" / "downloads", cache_dir()):
        path = folder / f"llama_cpp_python-{version}.tar.gz"
        if path.is_file():
            return path
    cache_dir().mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
         f"llama-cpp-python=={version}", "-d", str(cache_dir())],
        check=True,
    )  # fmt: skip
    return cache_dir() / f"llama_cpp_python-{version}.tar.gz"


def llama_server() -> Path:
    """The llama-server binary for the pinned version, built if it is not there yet."""
    version = pinned_version()
    build = cache_dir() / f"llama-server-{version}-portable"
    binary = build / "build" / "bin" / "llama-server"
    if binary.is_file():
        return binary
    source = build / "src"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    with tarfile.open(sdist(version)) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        for member in members:
            member.name = member.name[len(prefix) :]
        archive.extractall(source, members=[m for m in members if m.name], filter="data")
    print(f"building llama-server {version} into {build} (about 7 minutes on 2 cores)", file=sys.stderr)
    subprocess.run(["cmake", "-S", source, "-B", build / "build", "-G", "Ninja", *CMAKE_FLAGS], check=True)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["cmake", "--build", build / "build", "--target", "llama-server", "-j", jobs], check=True)
    return binary


if __name__ == "__main__":
    print(llama_server())
