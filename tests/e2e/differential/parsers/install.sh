#!/usr/bin/env bash
# Installs the runtimes of tests/e2e/differential/test_parsers.py: PHP (php-cli), Go (golang-go),
# Node (nodejs + npm) from Debian, and the pinned npm packages (package-lock.json) into
# tests/e2e/differential/parsers/node/node_modules. Idempotent: apt-get runs only when a runtime is missing,
# npm only when node_modules does not match the lock. Run as root on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v php >/dev/null || need+=(php-cli)
command -v go >/dev/null || need+=(golang-go)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  echo "parsers: installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# npm ci only when the installed tree does not satisfy the lock.
if ! (cd node && [ -d node_modules ] && npm ls --all >/dev/null 2>&1); then
  echo "parsers: npm ci (tests/e2e/differential/parsers/node)"
  (cd node && npm ci --no-audit --no-fund --loglevel=error)
fi
php --version | sed -n 1p
go version
echo "node $(node --version)"
