"""The manifests run the images docker-compose.yaml builds and runs, with compose's default tag.

Compose's side comes from `docker-compose config` (the real compose CLI resolving MLSTACK_TAG's
default), the manifests' side from `kubectl kustomize`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mlstack.config import REPO_ROOT
from mlstack.runtime.k8s import OVERLAYS
from tests.support.compose import COMPOSE_FILE, require_compose, write_env_file
from tests.support.k8s import containers, key, pod_spec, pod_specs, pod_template, render, train_job

pytestmark = pytest.mark.integration

# Only in the Jenkins pod template: the official kubectl image, copied into the agent pod.
KUBECTL_IMAGE_PREFIX = "registry.k8s.io/kubectl:"


@pytest.fixture(scope="module")
def compose_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Service -> image as compose resolves them (MLSTACK_TAG unset: its default)."""
    compose = require_compose()
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    write_env_file(env_file)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path(env_file).parent)}
    result = subprocess.run(
        [
            *compose,
            "-f",
            str(COMPOSE_FILE),
            "-p",
            "mlstack-k8s",
            "--env-file",
            str(env_file),
            "--profile",
            "train",
            "--profile",
            "jenkins",
            "config",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    return {name: str(service["image"]) for name, service in services.items()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_workload_runs_the_image_of_its_compose_service(
    overlay: str, compose_images: dict[str, str]
) -> None:
    for obj, spec in pod_specs(render(overlay)):
        name = obj["metadata"]["name"]
        assert name in compose_images, f"{key(obj)} has no compose service of its name"
        assert [c["image"] for c in containers(spec)] == [compose_images[name]], key(obj)


def test_the_jenkins_pod_template_runs_the_trainer_image(compose_images: dict[str, str]) -> None:
    spec = pod_spec(pod_template())
    assert spec is not None
    images = [c["image"] for c in containers(spec)]
    assert compose_images["trainer"] in images
    others = [i for i in images if i != compose_images["trainer"]]
    assert all(i.startswith(KUBECTL_IMAGE_PREFIX) for i in others), others


def test_the_training_job_runs_the_trainer_image(compose_images: dict[str, str]) -> None:
    spec = pod_spec(train_job())
    assert spec is not None
    assert [c["image"] for c in containers(spec)] == [compose_images["trainer"]]
