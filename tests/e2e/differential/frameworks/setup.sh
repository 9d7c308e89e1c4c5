#!/usr/bin/env bash
# Installs the web frameworks of tests/e2e/differential/test_frameworks.py (`make frameworks`),
# pinned:
#   Debian: tomcat10, golang-go, nginx-light (apt-get update once, only if one is missing)
#   npm:    Express 4 and 5 (node/package-lock.json, `npm ci`)
#   PyPI:   Flask, Django, gunicorn, FastAPI, uvicorn into the e2e venv (requirements.txt)
#   Go:     net/http test server (stdlib only, no module download) -> target/frameworks/goapp
#   cargo:  axum test server (axum/Cargo.lock, --locked, release)
# Idempotent: each step is skipped when its output is newer than its inputs.
# Run as root on Debian (CI and the dev machines are); VENV defaults to <repo>/.venv.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../../.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
CARGO="${CARGO:-cargo}"

need_apt=()
for pkg in tomcat10 golang-go nginx-light; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "frameworks: apt-get install ${need_apt[*]}"
  apt-get update -qq
  # RUNLEVEL=1 (and Debian images' policy-rc.d): the packages' own services are not started.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi
for cmd in node npm; do
  command -v "$cmd" >/dev/null || { echo "frameworks: $cmd missing (node 20+ with npm)" >&2; exit 1; }
done

if [ ! -f "$HERE/node/node_modules/.package-lock.json" ] \
   || [ "$HERE/node/package-lock.json" -nt "$HERE/node/node_modules/.package-lock.json" ]; then
  echo "frameworks: npm ci (Express 4, 5)"
  (cd "$HERE/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

stamp="$VENV/.frameworks-installed"
if [ ! -f "$stamp" ] || [ "$HERE/requirements.txt" -nt "$stamp" ]; then
  [ -x "$VENV/bin/pip" ] || { echo "frameworks: no venv at $VENV (run make envoy)" >&2; exit 1; }
  echo "frameworks: pip install -r tests/e2e/differential/frameworks/requirements.txt"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  touch "$stamp"
fi

goapp="$REPO/target/frameworks/goapp"
if [ ! -x "$goapp" ] || [ "$HERE/go/main.go" -nt "$goapp" ]; then
  echo "frameworks: go build (net/http)"
  mkdir -p "$REPO/target/frameworks"
  (cd "$HERE/go" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local go build -o "$goapp" .)
fi

echo "frameworks: cargo build axum (release)"
(cd "$HERE/axum" && "$CARGO" build --release --locked --quiet)
echo "frameworks: ready"
