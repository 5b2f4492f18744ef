#!/usr/bin/env bash
# Restore what backup.sh wrote in SRC. Stop MLflow, the predictor and the exporter first
# (`mlstack services stop`, or `docker compose stop mlflow api exporter`); start them afterwards.
#
#   scripts/restore.sh [options] SRC
#     the same --state-dir, --mlflow-db, --mlflow-url, --artifacts, --predictions as backup.sh
#
# Checks SHA256SUMS first. SQLite files and the artifact dir are replaced (the old ones are kept
# next to them as *.before-restore); PostgreSQL databases are restored with
# `pg_restore --clean --if-exists` into the existing database (create it first if it is gone).
set -o errexit -o pipefail -o nounset

# shellcheck source=scripts/options.sh
source "$(dirname "$0")/options.sh"
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
parse_options "$@"
src=$TARGET

[[ -f $src/SHA256SUMS ]] || { echo "restore.sh: $src/SHA256SUMS not found: not a backup.sh backup" >&2; exit 1; }
(cd "$src" && sha256sum --check --quiet SHA256SUMS) || { echo "restore.sh: checksum mismatch in $src" >&2; exit 1; }

replace_file() {  # replace_file BACKUP TARGET: keep the old target aside, drop stale WAL files
  mkdir -p "$(dirname "$2")"
  if [[ -e $2 ]]; then mv -f "$2" "$2.before-restore"; fi
  rm -f "$2-wal" "$2-shm"
  cp "$1" "$2"
}

pg_restore_into() {
  pg_restore --dbname="$1" --clean --if-exists --no-owner --no-privileges --exit-on-error "$2"
}

if [[ -f $src/mlflow.dump ]]; then
  [[ -n $mlflow_url ]] || { echo "restore.sh: the backup holds a PostgreSQL MLflow dump: pass --mlflow-url" >&2; exit 1; }
  pg_restore_into "$mlflow_url" "$src/mlflow.dump"
else
  replace_file "$src/mlflow.db" "$mlflow_db"
fi

if [[ -e $artifacts ]]; then rm -rf "$artifacts.before-restore"; mv "$artifacts" "$artifacts.before-restore"; fi
mkdir -p "$artifacts"
tar --extract --gzip --file "$src/mlartifacts.tar.gz" --directory "$artifacts"

if [[ -f $src/predictions.dump ]]; then
  [[ $predictions == postgresql* ]] || { echo "restore.sh: the backup holds a PostgreSQL prediction dump: pass --predictions postgresql://..." >&2; exit 1; }
  pg_restore_into "$predictions" "$src/predictions.dump"
elif [[ -f $src/predictions.db ]]; then
  replace_file "$src/predictions.db" "$predictions"
fi

echo "restore.sh: restored from $src; start the services again (mlstack services start / docker compose start)"
