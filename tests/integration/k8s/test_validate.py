"""Every rendered object validates against the Kubernetes 1.32 OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors, as `kubectl apply --validate=strict` makes them). The schemas ship
with the package, so this runs offline; no API server is involved (none runs here).
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from mlstack.runtime.k8s import OVERLAYS
from tests.support.k8s import find, key, pod_template, render, train_job

pytestmark = pytest.mark.integration

KUBERNETES_VERSION = "1.32.0"


def validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_against_kubernetes_1_32(overlay: str) -> None:
    failures = []
    for obj in render(overlay):
        try:
            validate(obj)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{key(obj)}: {exc.message} at {'.'.join(map(str, exc.path))}")
    assert not failures, "\n".join(failures)


def test_the_jenkins_pod_template_validates_against_kubernetes_1_32() -> None:
    validate(pod_template())


def test_the_training_job_validates_against_kubernetes_1_32() -> None:
    job = train_job()
    # The API server names it from generateName; the validator wants a name.
    job["metadata"]["name"] = job["metadata"]["generateName"] + "x"
    validate(job)


def test_the_validator_rejects_an_unknown_field_and_a_wrong_type() -> None:
    """The check is live: the mistakes the schemas exist for are caught."""
    api = find(render("dev"), "Deployment", "api")
    typo = copy.deepcopy(api)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {
        "httpGet": {"path": "/readyz", "port": 1}
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(typo)
    wrong_type = copy.deepcopy(api)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong_type)
