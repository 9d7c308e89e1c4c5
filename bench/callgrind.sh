#!/usr/bin/env bash
# Instruction counts (callgrind) and heap allocations per call of the native core, next to plain
# MD5 over the same canonical bytes. Usage: bench/callgrind.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
cargo bench --bench profile --no-run >/dev/null 2>&1
BIN=$(cargo bench --bench profile --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)
BIN=$(realpath "$BIN")
out=$(mktemp -d)
printf '| operation | body | Ir per call | allocations per call |\n|---|---:|---:|---:|\n'
for what in md5 forged cube plain; do
  for size in 256 1024 16384; do
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" --toggle-collect='*_loop*' \
      "$BIN" "$what" "$size" "$N" >"$out/stdout" 2>/dev/null
    ir=$(callgrind_annotate "$out/cg" | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
    if ! [[ "$ir" =~ ^[0-9]+$ ]] || (( ir == 0 )); then
      echo "callgrind counted no instructions in *_loop* ($what $size): is $BIN stripped?" >&2
      exit 1
    fi
    allocs=$(sed -n 's/.*allocations per call: \([0-9.]*\).*/\1/p' "$out/stdout")
    printf '| %s | %s | %d | %s |\n' "$what" "$size" "$((ir / N))" "${allocs:-0 (plain MD5)}"
  done
done
rm -rf "$out"
