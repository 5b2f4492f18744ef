"""Flask metrics exporter: MLflow registry state, drift and live accuracy as Prometheus metrics."""
