#!/usr/bin/env bash
# A local three-member etcd v3 cluster on loopback for the fleet de-duplication store
# (docs/fleet.md, envoy/envoy-fleet.yaml). Debian etcd-server 3.4: `make etcd` installs it.
#
#   envoy/etcd-cluster.sh start        start members 1..3, wait until the cluster has a leader
#   envoy/etcd-cluster.sh stop         stop every member (by its recorded pid), remove the data
#   envoy/etcd-cluster.sh status       health of each member (JSON gateway /health)
#   envoy/etcd-cluster.sh kill N       SIGKILL member N (1..3): a crashed member, data kept
#   envoy/etcd-cluster.sh restore N    start member N again on its kept data (rejoins)
#   envoy/etcd-cluster.sh run          start, wait for Ctrl-C, stop (`make etcd-run`)
#
# Defaults are the demo contract (client URLs http://127.0.0.1:2379, :22379, :32379; peers on
# :2380, :22380, :32380). The tests pick free ports and their own directory:
#   ETCD_DIR           data, logs and pid files (default /tmp/lf-webhook-guard-etcd)
#   ETCD_CLIENT_PORTS  three client ports, space separated
#   ETCD_PEER_PORTS    three peer ports, space separated
#   ETCD_BIN           etcd binary (default: `etcd` on PATH)
# Only processes whose pid this script recorded are ever signalled.
set -euo pipefail

ETCD_DIR=${ETCD_DIR:-/tmp/lf-webhook-guard-etcd}
read -r -a CLIENT <<<"${ETCD_CLIENT_PORTS:-2379 22379 32379}"
read -r -a PEER <<<"${ETCD_PEER_PORTS:-2380 22380 32380}"
ETCD_BIN=${ETCD_BIN:-etcd}
TOKEN=lf-webhook-guard-fleet

die() { echo "etcd-cluster: $*" >&2; exit 1; }

[[ ${#CLIENT[@]} -eq 3 && ${#PEER[@]} -eq 3 ]] || die "need three client and three peer ports"
command -v "$ETCD_BIN" >/dev/null ||
  die "etcd not found: run \`make etcd\` (installs Debian etcd-server 3.4; root) or set ETCD_BIN"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"

member_ok() { [[ $1 =~ ^[123]$ ]] || die "member must be 1, 2 or 3 (got '$1')"; }
client_url() { echo "http://127.0.0.1:${CLIENT[$1 - 1]}"; }
pid_of() { cat "$ETCD_DIR/m$1.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

initial_cluster() {
  local i out=""
  for i in 1 2 3; do out+="${out:+,}m$i=http://127.0.0.1:${PEER[$i - 1]}"; done
  echo "$out"
}

# Start member N (new cluster if its data dir is empty, else it rejoins with its data).
start_member() {
  local n=$1 state=new
  alive "$n" && die "member $n already running (pid $(pid_of "$n"))"
  [[ -d $ETCD_DIR/m$n.etcd/member ]] && state=existing
  # Small heartbeat/election timings: a killed leader is replaced within ~1 s on loopback.
  "$ETCD_BIN" --name "m$n" --data-dir "$ETCD_DIR/m$n.etcd" \
    --listen-client-urls "$(client_url "$n")" --advertise-client-urls "$(client_url "$n")" \
    --listen-peer-urls "http://127.0.0.1:${PEER[$n - 1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PEER[$n - 1]}" \
    --initial-cluster "$(initial_cluster)" --initial-cluster-token "$TOKEN" \
    --initial-cluster-state "$state" \
    --heartbeat-interval 50 --election-timeout 500 \
    --snapshot-count 10000 --quota-backend-bytes 268435456 \
    --log-level warn --logger zap \
    >>"$ETCD_DIR/m$n.log" 2>&1 </dev/null &
  echo $! >"$ETCD_DIR/m$n.pid"
}

healthy() { curl -fsS --max-time 1 "$(client_url "$1")/health" 2>/dev/null | grep -q '"health":"true"'; }

# Wait until member N answers /health (it has a leader), at most $2 seconds.
wait_healthy() {
  local n=$1 deadline=$((SECONDS + $2))
  until healthy "$n"; do
    alive "$n" || die "member $n exited; log tail:$(printf '\n'; tail -5 "$ETCD_DIR/m$n.log")"
    ((SECONDS < deadline)) || die "member $n not healthy after $2 s (log: $ETCD_DIR/m$n.log)"
    sleep 0.2
  done
}

stop_member() {
  local n=$1 sig=${2:-TERM} p i
  p=$(pid_of "$n")
  [[ -n $p ]] || return 0
  kill -"$sig" "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  rm -f "$ETCD_DIR/m$n.pid"
}

stop_all() {
  local n
  for n in 1 2 3; do stop_member "$n"; done
  rm -rf "$ETCD_DIR"
}

cmd=${1:-}
case $cmd in
  start)
    for n in 1 2 3; do alive "$n" && die "member $n already running: $0 stop first"; done
    rm -rf "$ETCD_DIR"
    mkdir -p "$ETCD_DIR"
    for n in 1 2 3; do start_member "$n"; done
    for n in 1 2 3; do wait_healthy "$n" 20; done
    echo "etcd cluster up: $(client_url 1) $(client_url 2) $(client_url 3) (data $ETCD_DIR)"
    ;;
  stop)
    stop_all
    echo "etcd cluster stopped"
    ;;
  status)
    rc=0
    for n in 1 2 3; do
      if healthy "$n"; then echo "m$n $(client_url "$n") healthy (pid $(pid_of "$n"))"
      else echo "m$n $(client_url "$n") DOWN"; rc=1; fi
    done
    exit $rc
    ;;
  kill)
    member_ok "${2:-}"
    stop_member "$2" KILL
    echo "member $2 killed"
    ;;
  restore)
    member_ok "${2:-}"
    start_member "$2"
    wait_healthy "$2" 20
    echo "member $2 back"
    ;;
  run)
    "$0" start
    trap 'stop_all; echo; echo "etcd cluster stopped"' EXIT
    trap 'exit 0' INT TERM
    echo "Ctrl-C stops the cluster"
    while true; do sleep 1; done
    ;;
  *)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
