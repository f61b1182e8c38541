#!/usr/bin/env bash
# Set up (scripts/setup.sh), ingest the bundled Kubernetes sample and answer one English
# and one Chinese question with citations, offline, with the embedded models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/knowbase demo "$@"
