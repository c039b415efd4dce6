#!/usr/bin/env bash
# README command 1: the all-in-one hub on its embedded default.
# Builds the virtualenv and compiled core if needed (no services, no root
# needed when python3-venv is present) and, with npm, the page's chart library,
# then runs `hub demo`. Extra arguments
# go to `hub demo` (for example --port 9000 or --symbols BTC-USD).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install.sh" --demo
exec "$ROOT/.venv/bin/hub" demo "$@"
