"""Every overlay renders with `kubectl kustomize`, to exactly the objects docs/kubernetes.md describes.

No cluster runs here: rendering is kubectl's built-in kustomize, which needs no API server.
"""

from __future__ import annotations

import pytest

from mlstack.runtime.k8s import BASE_DIR, OVERLAYS
from tests.support.k8s import key, kustomize, render

pytestmark = pytest.mark.integration

COMMON = {
    "Namespace/mlstack",
    "ServiceAccount/mlstack-deployer",
    "ServiceAccount/prometheus",
    "Role/mlstack-deployer",
    "Role/prometheus-discovery",
    "RoleBinding/mlstack-deployer",
    "RoleBinding/prometheus-discovery",
    "ConfigMap/alertmanager-config",
    "ConfigMap/grafana-config",
    "ConfigMap/grafana-dashboards",
    "ConfigMap/grafana-provisioning",
    "ConfigMap/prometheus-config",
    "Service/alertmanager",
    "Service/api",
    "Service/exporter",
    "Service/grafana",
    "Service/jenkins",
    "Service/mlflow",
    "Service/prometheus",
    "PersistentVolumeClaim/alertmanager-data",
    "PersistentVolumeClaim/grafana-data",
    "PersistentVolumeClaim/mlflow-artifacts",
    "PersistentVolumeClaim/prometheus-data",
    "Deployment/alertmanager",
    "Deployment/api",
    "Deployment/exporter",
    "Deployment/grafana",
    "Deployment/mlflow",
    "Deployment/prometheus",
    "NetworkPolicy/default-deny-ingress",
    "NetworkPolicy/allow-alertmanager",
    "NetworkPolicy/allow-api",
    "NetworkPolicy/allow-exporter",
    "NetworkPolicy/allow-mlflow",
    "NetworkPolicy/allow-prometheus",
}
EXPECTED = {
    "dev": COMMON | {"StatefulSet/postgres", "Service/postgres", "NetworkPolicy/allow-postgres"},
    "prod": COMMON | {"HorizontalPodAutoscaler/api", "PodDisruptionBudget/api"},
}


def _stable_name(obj: dict) -> str:
    """`Kind/name` without the content hash configMapGenerator appends."""
    name = obj["metadata"]["name"]
    if obj["kind"] == "ConfigMap" and "-" in name:
        name = name.rsplit("-", 1)[0]
    return f"{obj['kind']}/{name}"


def test_base_renders() -> None:
    assert "kind: Deployment" in kustomize(str(BASE_DIR))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_documented_objects(overlay: str) -> None:
    objects = render(overlay)
    names = [_stable_name(o) for o in objects]
    assert len(names) == len(set(names)), f"duplicate objects: {sorted(names)}"
    assert set(names) == EXPECTED[overlay]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_namespaced_to_the_stack_and_labelled(overlay: str) -> None:
    for obj in render(overlay):
        meta = obj["metadata"]
        labels = meta.get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "mlstack", key(obj)
        assert labels.get("app.kubernetes.io/component") in {"platform", "serving", "access"}, key(obj)
        if obj["kind"] != "Namespace":
            assert meta.get("namespace") == "mlstack", key(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_generated_config_maps_are_hashed_so_a_config_change_rolls_the_pods(overlay: str) -> None:
    objects = render(overlay)
    config_maps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    referenced = {
        volume["configMap"]["name"]
        for o in objects
        if o["kind"] == "Deployment"
        for volume in o["spec"]["template"]["spec"].get("volumes", [])
        if "configMap" in volume
    }
    assert referenced == config_maps
    for name in config_maps:
        suffix = name.rsplit("-", 1)[1]
        assert len(suffix) == 10 and suffix.isalnum(), f"{name}: no content hash"
