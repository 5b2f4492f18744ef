"""Monitoring config from mlstack.yaml: Prometheus, its rules and promtool tests, Alertmanager, Grafana.

One source for every target (`mlstack render monitoring --target local|compose|k8s`); the committed
files under `prometheus/`, `alertmanager/` and `grafana/` are the compose render, those under
`deploy/k8s/base/monitoring/` the k8s render, and tests keep both equal to a fresh one.

Modules, each importing only those above it:

- `promql`: durations, numbers and selectors as Prometheus reads them.
- `names`: scrape jobs, recording-rule names, alert routing labels: what rules, dashboards and the
  trigger agree on.
- `promtool`: promtool unit-test cases and the test files built from them.
- `recording`: the recording rules, with the promtool test that checks their arithmetic.
- `alerts`: every alert, each with the promtool cases that prove it fires and stays quiet.
- `endpoints`: where each target's services are (static addresses today); one builder per target.
- `servers`: prometheus.yml and alertmanager.yml for a target's endpoints.
- `dashboards`: the Grafana dashboards, panels querying the recording rules.
- `grafana`: Grafana provisioning (the datasource the dashboards name, the dashboard provider).
- `render`: writes all of the above for one target.
"""
