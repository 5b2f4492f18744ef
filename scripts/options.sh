# Option parsing shared by backup.sh and restore.sh (sourced, not run).
# Sets state, mlflow_db, mlflow_url, artifacts, predictions and TARGET (the one positional argument);
# the sourcing script defines usage().

state=.mlops
mlflow_db="" mlflow_url="" artifacts="" predictions=""

parse_options() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --state-dir) state=$2; shift 2 ;;
      --mlflow-db) mlflow_db=$2; shift 2 ;;
      --mlflow-url) mlflow_url=$2; shift 2 ;;
      --artifacts) artifacts=$2; shift 2 ;;
      --predictions) predictions=$2; shift 2 ;;
      -h|--help) usage 0 ;;
      -*) echo "$(basename "$0"): unknown option $1" >&2; usage ;;
      *) break ;;
    esac
  done
  [[ $# -eq 1 ]] || usage
  TARGET=$1
  mlflow_db=${mlflow_db:-$state/mlflow.db}
  artifacts=${artifacts:-$state/mlartifacts}
  predictions=${predictions:-$state/predictions.db}
}
