#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint and type-check (ruff, mypy: configured in pyproject.toml),
# then run the whole test suite, real embedded models included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The web page's browser test drives Debian's headless Chromium (a browser build cannot be
# downloaded here); without it that one test is skipped with its reason.
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
            >/dev/null 2>&1 || echo "warning: could not install chromium; the browser test will be skipped" >&2
    fi
fi
echo "- ruff check src tests benches"
.venv/bin/python -m ruff check src tests benches
echo "- mypy (src/knowbase)"
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
