#!/usr/bin/env bash
# Sets up everything the test suite needs, on a fresh machine or an existing checkout:
# the virtualenv with requirements/dev.txt (llama-cpp-python built with lean, portable
# flags; pip reuses the built wheel afterwards), Debian's Chromium for the browser tests,
# the Node openai client for the Node compatibility test, the agent CLIs (Codex, Claude
# Code), and llama.cpp's real chat templates.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" \
    .venv/bin/pip install --quiet -r requirements/dev.txt
# pip's wheel cache ignores CMAKE_ARGS: a wheel once built without the multimodal library
# (libmtmd, for images) would come back. Rebuild it then, without the cache.
if ! compgen -G ".venv/lib/python3*/site-packages/llama_cpp/lib/libmtmd.so*" >/dev/null; then
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/pip install --quiet --no-cache-dir \
        --force-reinstall --no-deps "$(grep '^llama-cpp-python==' requirements/base.txt)"
fi
# Data-only packages whose declared dependencies Hearth does not want (see the file).
.venv/bin/pip install --quiet --no-deps -r requirements/mpnet.txt

if ! command -v chromium >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

if [ -f tests/node/package.json ] && command -v npm >/dev/null 2>&1; then
    (cd tests/node && npm install --silent --no-audit --no-fund >/dev/null)
fi

# The coding agents the API tests drive (Codex CLI, Claude Code): ~800 MB, installed once
# and reused (npm skips what is already there).
if [ -f tests/agent_clis/package.json ] && command -v npm >/dev/null 2>&1; then
    (cd tests/agent_clis && npm install --silent --no-audit --no-fund >/dev/null 2>&1)
fi

# llama.cpp's collection of real chat templates (tests/chat/test_real_templates.py), from the
# llama-cpp-python sdist that requirements/base.txt pins: downloaded once, templates only kept.
llama_version="$(sed -n 's/^llama-cpp-python==\([^ ;]*\).*/\1/p' requirements/base.txt)"
templates_dir="tests/.artifacts/llama-cpp-templates/$llama_version"
if ! compgen -G "$templates_dir/*.jinja" >/dev/null; then
    downloads="tests/.artifacts/downloads"
    sdist="$downloads/llama_cpp_python-$llama_version.tar.gz"
    [ -f "$sdist" ] || .venv/bin/pip download --quiet --no-binary :all: --no-deps \
        "llama-cpp-python==$llama_version" -d "$downloads"
    rm -rf "$templates_dir.part" && mkdir -p "$templates_dir.part"
    tar -xzf "$sdist" -C "$templates_dir.part" --strip-components=5 \
        --wildcards "*/vendor/llama.cpp/models/templates/*.jinja"
    rm -rf "$templates_dir" && mv "$templates_dir.part" "$templates_dir"
fi
