"""The manifests cannot import mlstack/contract.py: their ports, service names and env var names are
checked against it here, on the objects `kubectl kustomize` renders.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from mlstack.contract import (
    ADMIN_TOKEN_ENV,
    CONTAINER_PORTS,
    FEEDBACK_TOKEN_ENV,
    JENKINS,
    MLFLOW,
    POSTGRES,
    TRACKING_URI_ENV,
    config_env_var,
)
from mlstack.runtime.k8s import OVERLAYS
from tests.support.k8s import Obj, containers, key, one_off_pods, pod_specs, render

pytestmark = pytest.mark.integration

STORE_URL_ENV = config_env_var("prediction_store.url")
# Variables the manifests set that belong to other programs (libpq, MLflow's server, the shell, the
# downward API); every other name must be the contract's.
FOREIGN_ENV = {"PGPASSWORD", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_SERVER_ALLOWED_HOSTS", "POD_IP", "PATH"}
OUR_ENV = {TRACKING_URI_ENV, ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV, STORE_URL_ENV}
# Images configured by their vendors' variables (GF_*, POSTGRES_*), not by mlstack.
VENDOR_IMAGES = {"grafana", "postgres"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_and_container_port_is_the_contracts(overlay: str) -> None:
    objects = render(overlay)
    checked = set()
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Service":
            assert name in CONTAINER_PORTS, f"{key(obj)} is not a contract service"
            assert [p["port"] for p in obj["spec"]["ports"]] == [CONTAINER_PORTS[name]], key(obj)
            checked.add(name)
        elif obj["kind"] == "NetworkPolicy" and name.startswith("allow-"):
            service = name.removeprefix("allow-")
            ports = [p["port"] for rule in obj["spec"]["ingress"] for p in rule["ports"]]
            assert ports == [CONTAINER_PORTS[service]], key(obj)
    for obj, spec in pod_specs(objects):
        name = obj["metadata"]["name"]
        ports = [p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])]
        assert ports == [CONTAINER_PORTS[name]], key(obj)
    assert JENKINS in checked


def _env(spec: Obj) -> dict[str, Obj]:
    return {e["name"]: e for c in containers(spec) for e in c.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlstack_env_var_names_are_the_contracts(overlay: str) -> None:
    specs = [(key(obj), spec) for obj, spec in pod_specs(render(overlay))]
    specs += list(one_off_pods().items())
    for where, spec in specs:
        if where.split("/")[-1] in VENDOR_IMAGES:
            continue
        for name in _env(spec):
            assert name in OUR_ENV | FOREIGN_ENV, f"{where}: {name} is neither the contract's nor foreign"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_in_cluster_urls_use_the_contracts_names_and_ports(overlay: str) -> None:
    specs = [(key(obj), spec) for obj, spec in pod_specs(render(overlay))]
    specs += list(one_off_pods().items())
    for where, spec in specs:
        env = _env(spec)
        if TRACKING_URI_ENV in env:
            assert env[TRACKING_URI_ENV]["value"] == f"http://{MLFLOW}:{CONTAINER_PORTS[MLFLOW]}", where
        for name in (STORE_URL_ENV, "MLFLOW_BACKEND_STORE_URI"):
            value = env.get(name, {}).get("value")
            if value:  # prod takes them from a Secret
                url = urlsplit(value)
                assert (url.hostname, url.port) == (POSTGRES, CONTAINER_PORTS[POSTGRES]), f"{where}: {name}"
                assert url.password is None, f"{where}: {name} carries a password"
