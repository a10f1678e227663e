#!/usr/bin/env bash
# The demo: a central (id 1, proxy) driving a poller (id 2) over Gorgone's ZMQ protocol,
# with a private PostgreSQL started on the fly. Runs in the foreground until Ctrl-C, which
# stops everything it started. Run from anywhere; state goes to .state/demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/support/install-deps.sh
[[ -d build ]] || meson setup build --wrap-mode=nodownload >/dev/null
echo "building into build/ (the first build takes a few minutes)..."
ninja -C build >/dev/null

state=.state/demo
mkdir -p "$state"
chmod 755 .state "$state" 2>/dev/null || true
pgdir=$(mktemp -d /tmp/gorgone-demo-pg.XXXXXX)
chmod 755 "$pgdir"
conninfo=$(bash tests/support/pg-private.sh start "$pgdir")
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash tests/support/pg-private.sh stop "$pgdir" >/dev/null 2>&1 || true
  rm -rf "$pgdir"
}
trap cleanup INT TERM EXIT

# libpq takes the socket folder and user from the environment; the central's config names its
# database (the poller keeps its history in SQLite, under .state/demo/poller).
eval "export $(echo "$conninfo" | tr ' ' '\n' | grep -E '^(host|port|user)=' | sed 's/^host=/PGHOST=/;s/^port=/PGPORT=/;s/^user=/PGUSER=/' | tr '\n' ' ')"
psql -q -d "$conninfo" -c "CREATE DATABASE gorgone_central" 2>/dev/null || true
export GORGONE_MODULE_PATH="$root/build/plugin/proxy:$root/build/examples/action"

./build/host_api/core/gorgone-host --config examples/config/poller.yaml --logfile "$state/poller.log" &
pids+=($!)
./build/host_api/core/gorgone-host --config examples/config/central.yaml --logfile "$state/central.log" &
pids+=($!)

api=http://127.0.0.1:8085/api
for _ in $(seq 1 50); do curl -sf "$api/internal/constatus" >/dev/null 2>&1 && break; sleep 0.2; done
cat <<TXT
Gorgone demo running: central (id 1) -> poller (id 2), private PostgreSQL at $pgdir.
REST API: $api   logs: $state/central.log, $state/poller.log
  curl $api/internal/constatus
  curl -X POST $api/nodes/2/core/action/command -d '[{"command":"echo hello"}]'
  curl "$api/nodes/2/log/<token>"
Ctrl-C stops everything.
TXT
sleep 8
echo "constatus: $(curl -s "$api/internal/constatus")"
token=$(curl -s -X POST "$api/nodes/2/core/action/command" -d '[{"command":"echo hello"}]' | sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p')
echo "command sent to node 2, token $token"
sleep 2
echo "result: $(curl -s "$api/nodes/2/log/$token?sync_wait=2000000")"
wait
