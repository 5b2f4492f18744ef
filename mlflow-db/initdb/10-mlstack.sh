#!/usr/bin/env bash
# First-init hook (the postgres image runs /docker-entrypoint-initdb.d/* once, on an empty volume):
# create the mlflow and predictions roles/databases with passwords taken from the environment.
set -o errexit -o pipefail -o nounset

: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD must be set (see .env.example)}"
: "${PREDICTIONS_DB_PASSWORD:?PREDICTIONS_DB_PASSWORD must be set (see .env.example)}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" \
  -v predictions_password="$PREDICTIONS_DB_PASSWORD" \
  -f /usr/local/share/mlstack/init.sql
