#!/usr/bin/env bash
# README command 2: install everything (system packages, TimescaleDB,
# virtualenv, compiled core), start the local services, run the whole test
# suite (ruff and mypy included), then the core-dependent tests again on the
# pure-Python twin of the book core. Services this script started are
# stopped again at the end; services that were already up are left alone.
# Extra arguments go to the first pytest run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

scripts/install.sh

started=0
if ! scripts/services.sh status >/dev/null 2>&1; then
  started=1
fi
cleanup() { [ "$started" -eq 1 ] && scripts/services.sh down || true; }
trap cleanup EXIT
scripts/services.sh up

PY=.venv/bin/python
mkdir -p test-output
WORKERS=${PYTEST_WORKERS:-2}
PARALLEL=()
[ "$WORKERS" = "0" ] || PARALLEL=(-n "$WORKERS")
echo "[test] whole suite on the compiled core"
$PY -m pytest -q -p no:cacheprovider "${PARALLEL[@]}" --durations=25 "$@"
echo "[test] book-core users again on the pure-Python twin (ORDERBOOK_CORE=python)"
ORDERBOOK_CORE=python $PY -m pytest -q -p no:cacheprovider "${PARALLEL[@]}" \
  tests/feedhandler tests/fanout tests/trading/test_venue.py tests/trading/test_venue_bounds.py \
  tests/trading/test_account_state.py tests/trading/test_gateway.py \
  tests/test_demo.py tests/test_end_to_end.py
