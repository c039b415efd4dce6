#!/usr/bin/env bash
# Install everything the hub needs on a Debian 12 machine: system packages,
# TimescaleDB (Apache-2 edition, built from Debian's trixie source package),
# the project virtualenv with the compiled core. Idempotent: each step is
# skipped when its result is already present.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$ROOT/.cache"
VENV="$ROOT/.venv"
PG_MAJOR=15
APT_PACKAGES=(
  "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" redis-server
  cmake make gcc libssl-dev libkrb5-dev dpkg-dev zstd curl ca-certificates
  chromium docker-compose tzdata prometheus
)
# chromium: the web page's browser test; docker-compose (v1): validates
# docker-compose.yml where the docker compose v2 plugin is not installed;
# prometheus: its promtool checks the alert rules and their unit tests.
# nodejs/npm (only where npm is missing): fetch the page's chart library (package.json).

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

missing_apt_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

install_system_packages() {
  local missing
  missing=$(missing_apt_packages)
  command -v npm >/dev/null 2>&1 || missing=$(printf '%s\nnodejs\nnpm' "$missing" | sed '/^$/d')
  if [ -z "$missing" ]; then
    log "system packages present"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "system packages missing ($(echo $missing)); installing them needs root: run as root or 'sudo apt-get update && sudo apt-get install $(echo $missing)'"
  log "installing system packages: $(echo $missing)"
  # A fresh machine has no package lists; apt-get install needs them.
  apt-get update -qq || die "apt-get update failed: the package registry is unreachable"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || die "apt-get install failed for: $(echo $missing)"
  # Debian starts the packaged services; the hub runs its own private instances.
  for svc in redis-server postgresql; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
  done
}

# The mirror the machine already uses for Debian's main archive (never a hard-coded host).
debian_mirror_uri() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || die "cannot find a Debian mirror URI in /etc/apt/sources.list or /etc/apt/sources.list.d/debian.sources"
  printf '%s\n' "$uri"
}

install_timescaledb() {
  local sharedir
  sharedir=$("/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" --sharedir)
  if [ -f "$sharedir/extension/timescaledb.control" ]; then
    log "timescaledb extension present"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "installing the timescaledb extension into PostgreSQL $PG_MAJOR needs root"
  local apt_dir="$CACHE/apt-trixie" src_dir="$CACHE/timescaledb-src"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$src_dir"
  local uri
  uri=$(debian_mirror_uri)
  printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$uri" >"$apt_dir/sources.list"
  # A private apt state directory: the system's package lists stay untouched.
  local apt_opts=(
    -o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::State::status=/var/lib/dpkg/status"
    -o "Dir::Cache=$apt_dir" -o "Dir::Cache::Archives=$apt_dir/archives"
    -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  )
  if ! ls "$src_dir"/timescaledb_*.orig.tar.* >/dev/null 2>&1; then
    log "fetching Debian trixie source package timescaledb"
    apt-get "${apt_opts[@]}" update -qq || die "apt-get update of the trixie deb-src list failed ($uri)"
    (cd "$src_dir" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root source --download-only timescaledb >/dev/null 2>"$src_dir/source.log") \
      || die "apt-get source --download-only timescaledb failed"
  fi
  local orig build
  orig=$(ls "$src_dir"/timescaledb_*.orig.tar.* | head -n 1)
  build="$src_dir/build"
  rm -rf "$build" && mkdir -p "$build"
  tar -xf "$orig" -C "$build" --strip-components=1
  log "building timescaledb (Apache-2 edition) from $(basename "$orig")"
  (
    cd "$build"
    export PATH="/usr/lib/postgresql/$PG_MAJOR/bin:$PATH"
    ./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
      -DWARNINGS_AS_ERRORS=OFF -DGENERATE_DOWNGRADE_SCRIPT=OFF \
      -DPG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" >"$src_dir/bootstrap.log" 2>&1
    cd build
    make -j"$(nproc)" >"$src_dir/make.log" 2>&1
    make install >>"$src_dir/make.log" 2>&1
  ) || die "timescaledb build failed; see $src_dir/bootstrap.log and $src_dir/make.log"
  log "timescaledb installed"
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      [ "$(id -u)" -eq 0 ] || die "python3 -m venv failed: install Debian's python3-venv (needs root)"
      log "installing python3-venv"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev >/dev/null \
        || die "apt-get install python3-venv failed"
      python3 -m venv "$VENV" || die "python3 -m venv failed"
    fi
  fi
  local stamp="$VENV/.installed" want
  # The order path's modules Cython compiles from their source (hub/compiled.py) count too.
  local plain
  plain=$(python3 -c 'import runpy, sys; print(*(n.replace(".", "/") + ".py" for n in runpy.run_path(sys.argv[1])["COMPILED"]))' "$ROOT/hub/compiled.py")
  want=$(cd "$ROOT" && cat pyproject.toml setup.py hub/compiled.py $plain orderbook_core/*.pyx orderbook_core/*.pxd orderbook_core/*.pxi orderbook_core/*.hpp 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import orderbook_core._book' 2>/dev/null; then
    log "python environment up to date"
    return
  fi
  log "installing the hub and its dependencies into $VENV (log: .cache/pip-install.log)"
  mkdir -p "$CACHE"
  if ! { "$VENV/bin/pip" install -q --upgrade pip setuptools wheel \
         && "$VENV/bin/pip" install -q -e "$ROOT[dev]"; } >"$CACHE/pip-install.log" 2>&1; then
    tail -n 30 "$CACHE/pip-install.log" >&2
    die "pip install -e .[dev] failed; full log in $CACHE/pip-install.log"
  fi
  printf '%s\n' "$want" >"$stamp"
}

# The live page's browser libraries (package.json, pinned by package-lock.json) from the
# npm registry, copied with their licence into fanout/web/vendor/ (git-ignored; the node
# serves it and the wheel ships it). $1 = soft: without npm, or offline, say so and go on
# (the page then shows everything but the candle chart, with a note saying why).
install_web() {
  local soft="${1:-}" vendor="$ROOT/fanout/web/vendor" pkg="$ROOT/node_modules/lightweight-charts"
  local stamp="$CACHE/web-vendor.installed" want
  want=$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$vendor/lightweight-charts.standalone.production.js" ]; then
    log "web page libraries up to date"
    return
  fi
  local why=""
  if ! command -v npm >/dev/null 2>&1; then
    why="npm not found (Debian: apt-get install npm)"
  else
    log "fetching the web page's chart library with npm ci (log: .cache/npm-install.log)"
    mkdir -p "$CACHE"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) >"$CACHE/npm-install.log" 2>&1 \
      || why="npm ci failed (registry unreachable?); see .cache/npm-install.log"
  fi
  if [ -n "$why" ]; then
    [ "$soft" = soft ] || die "$why"
    log "WARNING: $why: the live page will show everything but the candle chart"
    return
  fi
  mkdir -p "$vendor"
  cp "$pkg/dist/lightweight-charts.standalone.production.js" "$vendor/"
  cp "$pkg/LICENSE" "$vendor/lightweight-charts.LICENSE"
  # The package has no NOTICE file: its attribution notice is the bundle's @license header.
  sed -n '1,/\*\//p' "$pkg/dist/lightweight-charts.standalone.production.js" >"$vendor/lightweight-charts.NOTICE"
  printf '%s\n' "$want" >"$stamp"
}

main() {
  case "${1:-all}" in
    --python-only) install_python ;;
    --web) install_web ;;
    --demo)
      install_python
      install_web soft ;;
    all)
      install_system_packages
      install_timescaledb
      install_python
      install_web ;;
    *) die "usage: $0 [--python-only|--demo|--web]" ;;
  esac
  log "done"
}

main "$@"
