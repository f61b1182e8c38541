#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint and type-check (ruff, mypy: configured in pyproject.toml),
# then run the whole test suite, real embedded models included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "- ruff check src tests benches"
.venv/bin/python -m ruff check src tests benches
echo "- mypy (src/knowbase)"
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
