"""Kubernetes manifests as kubectl renders them: each overlay through `kubectl kustomize`, parsed.

No cluster runs here: these helpers only render (kubectl's built-in kustomize, no API server) and
walk the rendered objects. tests/integration/k8s/ uses them.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from typing import Any

import yaml

from mlstack.runtime.k8s import JENKINS_POD_TEMPLATE, TRAIN_JOB, overlay_dir
from tests.support.binaries import require_binary

Obj = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def kustomize(path: str) -> str:
    """`kubectl kustomize <path>`'s output; a failed render fails the test with kubectl's message."""
    kubectl = require_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", path], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return result.stdout


@functools.cache
def _rendered(overlay: str) -> tuple[str, ...]:
    # Cached as YAML text (immutable); each caller gets fresh dicts it may modify.
    return tuple(yaml.safe_dump(doc) for doc in yaml.safe_load_all(kustomize(overlay_dir(overlay))) if doc)


def render(overlay: str) -> list[Obj]:
    """The overlay's rendered objects (rendered once per test session)."""
    return [yaml.safe_load(text) for text in _rendered(overlay)]


def pod_template() -> Obj:
    """The Jenkins agent pod template (deploy/k8s/jenkins/pod-template.yaml), not part of an overlay."""
    return dict(yaml.safe_load(JENKINS_POD_TEMPLATE.read_text()))


def train_job() -> Obj:
    """The one-off training Job (deploy/k8s/jobs/train.yaml), created with `kubectl create -f`."""
    return dict(yaml.safe_load(TRAIN_JOB.read_text()))


def one_off_pods() -> dict[str, Obj]:
    """Pod specs outside the overlays: the Jenkins agent pod template and the training Job."""
    specs = {"jenkins pod template": pod_spec(pod_template()), "train job": pod_spec(train_job())}
    return {where: spec for where, spec in specs.items() if spec is not None}


def key(obj: Obj) -> str:
    """`Kind/name`, how the report and failure messages name an object."""
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    """The one object of `kind` called `name` (generated ConfigMaps match by their name prefix)."""
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{kind}/{name} not rendered; have {sorted(key(o) for o in objects)}")


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec of a workload or a Pod; None for other kinds."""
    if obj["kind"] == "Pod":
        return dict(obj["spec"])
    if obj["kind"] in WORKLOAD_KINDS:
        return dict(obj["spec"]["template"]["spec"])
    return None


def containers(spec: Obj, init: bool = True) -> Iterator[Obj]:
    """A pod spec's containers, init containers too unless `init` is False."""
    yield from spec.get("containers", [])
    if init:
        yield from spec.get("initContainers", [])


def pod_specs(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) for every object that runs pods."""
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            yield obj, spec
