#!/usr/bin/env bash
# Set up (scripts/setup.sh), build the demo knowledge base from the bundled Kubernetes sample
# (incremental) and serve it on http://127.0.0.1:8000 (OpenAI-compatible /v1, native /api, /docs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/knowbase demo --serve "${PORT:-8000}" "$@"
