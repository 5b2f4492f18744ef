#!/usr/bin/env bash
# Back up the MLflow registry (SQLite or PostgreSQL), its artifacts and the prediction store into DEST.
#
#   scripts/backup.sh [options] DEST
#     --state-dir DIR      local runtime state dir (default: .mlops); the defaults below live in it
#     --mlflow-db PATH     MLflow SQLite file        (default: STATE/mlflow.db)
#     --mlflow-url URL     MLflow on PostgreSQL instead: postgresql://user@host:port/mlflow
#     --artifacts DIR      MLflow artifact root      (default: STATE/mlartifacts)
#     --predictions X      prediction store: a SQLite file (default: STATE/predictions.db)
#                          or postgresql://user@host:port/predictions
#
# SQLite files are copied with SQLite's online backup API and PostgreSQL databases with
# `pg_dump --format=custom`, so both may stay in use. Passwords come from PGPASSWORD or ~/.pgpass,
# never from the command line. DEST gets one file per part and SHA256SUMS; restore.sh checks them.
# docs/operations.md#backup-and-restore has the compose variant and the schedule.
set -o errexit -o pipefail -o nounset

PYTHON=${PYTHON:-python3}
# shellcheck source=scripts/options.sh
source "$(dirname "$0")/options.sh"
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
parse_options "$@"
dest=$TARGET

sqlite_backup() {  # online, consistent copy of a live SQLite database (WAL included)
  [[ -f $1 ]] || { echo "backup.sh: SQLite database $1 not found" >&2; exit 1; }
  "$PYTHON" - "$1" "$2" <<'PY'
import sqlite3, sys
source, target = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
with target:
    source.backup(target)
source.close(); target.close()
PY
}

pg_backup() {
  pg_dump --dbname="$1" --format=custom --no-owner --no-privileges --file="$2"
}

mkdir -p "$dest"
[[ -z "$(ls -A "$dest")" ]] || { echo "backup.sh: $dest is not empty" >&2; exit 1; }

if [[ -n $mlflow_url ]]; then
  pg_backup "$mlflow_url" "$dest/mlflow.dump"
else
  sqlite_backup "$mlflow_db" "$dest/mlflow.db"
fi

[[ -d $artifacts ]] || { echo "backup.sh: artifact dir $artifacts not found" >&2; exit 1; }
tar --create --gzip --file "$dest/mlartifacts.tar.gz" --directory "$artifacts" .

if [[ $predictions == postgresql* ]]; then
  pg_backup "$predictions" "$dest/predictions.dump"
elif [[ -f $predictions ]]; then
  sqlite_backup "$predictions" "$dest/predictions.db"
else
  echo "backup.sh: no prediction store at $predictions (nothing served yet?): skipped" >&2
fi

(cd "$dest" && sha256sum -- * > SHA256SUMS)
echo "backup.sh: wrote $(cd "$dest" && ls | grep -v SHA256SUMS | tr '\n' ' ')to $dest"
