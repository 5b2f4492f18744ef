#!/usr/bin/env bash
# CI scaffolding: start a Docker engine in the background unless one already answers.
# CI machines have docker.io installed but no running daemon (no systemd). Idempotent.
# Log: $MLSTACK_DOCKERD_LOG (default /tmp/mlstack-dockerd.log).
set -o errexit -o pipefail -o nounset

LOG="${MLSTACK_DOCKERD_LOG:-/tmp/mlstack-dockerd.log}"

if docker info >/dev/null 2>&1; then
  echo "[dockerd] engine already running" >&2
  exit 0
fi
command -v dockerd >/dev/null || { echo "[dockerd] dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
[[ "$(id -u)" == "0" ]] || { echo "[dockerd] starting dockerd needs root" >&2; exit 1; }

echo "[dockerd] starting dockerd (log: $LOG)" >&2
# setsid: the daemon outlives this script and the CI step that ran it.
setsid dockerd >"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "[dockerd] engine ready" >&2
    exit 0
  fi
  sleep 1
done
echo "[dockerd] engine not ready after 60s; last log lines:" >&2
tail -n 30 "$LOG" >&2
exit 1
