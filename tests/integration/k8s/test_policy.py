"""Policies over the rendered objects of every overlay: security, probes, resources, images, secrets,
network exposure, scaling and the deployer's permissions.

These read what `kubectl kustomize` rendered (no hand-parsed manifests). What only a cluster can show
(pods actually start, probes pass, policies are enforced by the CNI) is not checked here: no cluster
runs on this machine (docs/kubernetes.md#what-is-verified).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from mlstack.contract import config_env_var
from mlstack.runtime.k8s import (
    ACCESS,
    COMPONENT_LABEL,
    DEPLOYER_ACCOUNT,
    DEV_PREDICTION_STORE_URL,
    OVERLAYS,
    SECRETS,
)
from tests.support.k8s import (
    Obj,
    containers,
    find,
    key,
    one_off_pods,
    pod_spec,
    pod_specs,
    pod_template,
    render,
)

pytestmark = pytest.mark.integration

DOCUMENTED = {spec.name: set(spec.keys) for spec in SECRETS}
# The only pod that talks to the Kubernetes API (service discovery) and so mounts a token.
API_CLIENTS = {"Deployment/prometheus"}
ONE_OFF = set(one_off_pods())
IMAGE_RE = re.compile(r"^(?P<name>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?$")


def all_pods(overlay: str) -> Iterator[tuple[str, Obj]]:
    for obj, spec in pod_specs(render(overlay)):
        yield key(obj), spec


def with_template(overlay: str) -> Iterator[tuple[str, Obj]]:
    yield from all_pods(overlay)
    yield from one_off_pods().items()


def run_as_non_root(spec: Obj, container: Obj) -> bool:
    pod, own = spec.get("securityContext", {}), container.get("securityContext", {})
    non_root = own.get("runAsNonRoot", pod.get("runAsNonRoot"))
    user = own.get("runAsUser", pod.get("runAsUser"))
    return bool(non_root) and user is not None and user != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_non_root_read_only_without_privileges(overlay: str) -> None:
    for where, spec in with_template(overlay):
        pod_context = spec.get("securityContext", {})
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        for container in containers(spec):
            name = f"{where} container {container['name']}"
            context = container.get("securityContext", {})
            assert run_as_non_root(spec, container), name
            assert context.get("readOnlyRootFilesystem") is True, name
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not context.get("capabilities", {}).get("add"), name
            assert not context.get("privileged"), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_probes_requests_and_limits(overlay: str) -> None:
    # The one-off pods are exempt from probes only: the Jenkins agent container idles until Jenkins
    # execs each step, the training Job's pod runs to completion; neither serves anything.
    for where, spec in with_template(overlay):
        for container in containers(spec):
            name = f"{where} container {container['name']}"
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, f"{name}: {bound}"
            if where in ONE_OFF or container in spec.get("initContainers", []):
                continue
            assert "livenessProbe" in container, f"{name}: liveness"
            assert "readinessProbe" in container, f"{name}: readiness"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_predictor_probes_liveness_on_healthz_and_readiness_on_readyz(overlay: str) -> None:
    api = pod_spec(find(render(overlay), "Deployment", "api"))
    assert api is not None
    container = api["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # A startup probe, so a slow first import is not a liveness failure.
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_image_uses_latest_or_no_tag(overlay: str) -> None:
    for where, spec in with_template(overlay):
        for container in containers(spec):
            match = IMAGE_RE.match(container["image"])
            assert match, container["image"]
            assert match["tag"] or match["digest"], f"{where}: {container['image']} has no tag"
            assert match["tag"] != "latest", f"{where}: {container['image']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_prometheus_mounts_a_service_account_token(overlay: str) -> None:
    for where, spec in all_pods(overlay):
        assert spec.get("automountServiceAccountToken") is (where in API_CLIENTS), where


def secret_references(spec: Obj) -> Iterator[tuple[str, str | None]]:
    """(secret name, key or None for a whole Secret) for every way a pod can use a Secret."""
    for container in containers(spec):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref["key"]
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                yield source["secretRef"]["name"], None
    for volume in spec.get("volumes", []):
        sources = [volume, *volume.get("projected", {}).get("sources", [])]
        for source in sources:
            secret = source.get("secret")
            if secret:
                name = secret.get("secretName") or secret.get("name")
                items = secret.get("items")
                if not items:
                    yield name, None
                for item in items or []:
                    yield name, item["key"]
    for pull in spec.get("imagePullSecrets", []):
        yield pull["name"], None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_reference_names_a_documented_secret_and_key(overlay: str) -> None:
    seen: set[tuple[str, str]] = set()
    for where, spec in with_template(overlay):
        for name, item in secret_references(spec):
            assert name in DOCUMENTED, f"{where}: undocumented Secret {name!r}"
            assert item is not None, f"{where}: uses all of Secret {name!r}; reference its keys"
            assert item in DOCUMENTED[name], f"{where}: Secret {name!r} has no documented key {item!r}"
            seen.add((name, item))
    # Each Secret and key documented for this overlay is used by it (no stale documentation).
    assert {name for name, _ in seen} == {s.name for s in SECRETS if overlay in s.overlays}
    assert seen == {(s.name, item) for s in SECRETS for item in s.keys if overlay in s.overlays_of(item)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_object_and_no_secret_value_is_in_the_manifests(overlay: str) -> None:
    objects = render(overlay)
    assert not [key(o) for o in objects if o["kind"] == "Secret"]
    for where, spec in with_template(overlay):
        for container in containers(spec):
            for env in container.get("env", []):
                if re.search(r"PASSWORD|TOKEN|SECRET|KEY", env["name"]):
                    assert "value" not in env, f"{where}: {env['name']} has a literal value"


def _admits_outside_namespace(rule: Obj) -> bool:
    """True when an ingress rule lets in traffic from outside the policy's namespace."""
    peers = rule.get("from")
    if not peers:
        return True  # no `from`: every source
    return any("ipBlock" in peer or "namespaceSelector" in peer for peer in peers)


def _selects(policy: Obj, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    assert not selector.get("matchExpressions"), "policies here select by matchLabels only"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_predictor_is_reachable_from_outside_the_namespace(overlay: str) -> None:
    objects = render(overlay)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = find(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    open_to_outside = set()
    for obj, _spec in pod_specs(objects):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        for policy in policies:
            if _selects(policy, labels) and any(
                _admits_outside_namespace(rule) for rule in policy["spec"].get("ingress", [])
            ):
                open_to_outside.add(key(obj))
    assert open_to_outside == {"Deployment/api"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_served_port_is_allowed_to_someone(overlay: str) -> None:
    """Default deny plus a policy per service: no service is accidentally unreachable to its clients."""
    objects = render(overlay)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for obj, spec in pod_specs(objects):
        if obj["metadata"]["name"] == "grafana":
            continue  # people reach Grafana by port-forward (or an Ingress they add)
        labels = obj["spec"]["template"]["metadata"]["labels"]
        allowed = {
            port["port"]
            for policy in policies
            if _selects(policy, labels)
            for rule in policy["spec"].get("ingress", [])
            for port in rule.get("ports", [])
        }
        served = {p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
        assert served <= allowed, f"{key(obj)} serves {served}, policies allow {allowed}"


def test_prod_scales_the_predictor_with_an_hpa_and_keeps_it_with_a_pdb() -> None:
    objects = render("prod")
    api = find(objects, "Deployment", "api")
    hpa = find(objects, "HorizontalPodAutoscaler", "api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in api["spec"], "the HPA owns the replica count"
    pdb = find(objects, "PodDisruptionBudget", "api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "a drain must be able to proceed"
    affinity = api["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    # Utilisation is relative to requests: the HPA needs them.
    assert api["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def test_dev_runs_one_replica_of_everything_and_no_autoscaler() -> None:
    objects = render("dev")
    assert not [key(o) for o in objects if o["kind"] in {"HorizontalPodAutoscaler", "PodDisruptionBudget"}]
    for obj, _spec in pod_specs(objects):
        assert obj["spec"].get("replicas") == 1, key(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_exporter_is_one_replica_and_never_two_during_a_rollout(overlay: str) -> None:
    objects = render(overlay)
    exporter = find(objects, "Deployment", "exporter")
    assert exporter["spec"]["replicas"] == 1
    assert exporter["spec"]["strategy"]["type"] == "Recreate"
    targets = [o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert "exporter" not in targets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_predictor_replica_logs_to_postgresql(overlay: str) -> None:
    for name in ("api", "exporter"):
        spec = pod_spec(find(render(overlay), "Deployment", name))
        assert spec is not None
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        url = env[config_env_var("prediction_store.url")]
        if "value" in url:  # dev: the in-cluster database, where the pipeline pods' Secret points too
            assert url["value"].startswith("postgresql+psycopg2://"), url
            assert url["value"] == DEV_PREDICTION_STORE_URL, url
        else:  # prod: the external database's URL is a Secret
            assert url["valueFrom"]["secretKeyRef"]["name"] == "mlstack-postgres-external"
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mlstack-db"


def test_pipeline_pods_read_the_prediction_log_url_from_the_documented_secret() -> None:
    """The pod template and the training Job serve every overlay: no in-cluster URL written into them."""
    for where, spec in one_off_pods().items():
        env = {e["name"]: e for container in containers(spec) for e in container.get("env", [])}
        url = env[config_env_var("prediction_store.url")]
        assert "value" not in url, f"{where}: a literal prediction store URL is one overlay's"
        ref = url["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("mlstack-postgres-external", "prediction-store-url"), where
        # A missing Secret must stop the pod, not leave training on an empty local log.
        assert not ref.get("optional", False), where
        password = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": "mlstack-db", "key": "predictions-password"}, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_proxies_artifacts_into_a_volume_and_uses_postgresql(overlay: str) -> None:
    objects = render(overlay)
    spec = pod_spec(find(objects, "Deployment", "mlflow"))
    assert spec is not None
    volume = next(v for v in spec["volumes"] if v["name"] == "artifacts")
    find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert "MLFLOW_BACKEND_STORE_URI" in env
    assert find(objects, "Deployment", "mlflow")["spec"]["strategy"]["type"] == "Recreate"


# What each kind needs in the deployer's Role: `kubectl apply` (get, create, patch) and
# `kubectl rollout status` / port-forward lookups (list, watch).
APPLY_VERBS = {"get", "list", "watch", "create", "patch"}
KIND_RESOURCE = {
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "Service": ("", "services"),
    "ConfigMap": ("", "configmaps"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
}
# port-forward to a ready pod (healthcheck, smoke) and a failed rollout's logs.
RUNTIME_EXTRAS = {
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/portforward"): {"create"},
    ("", "pods/log"): {"get"},
}


def test_the_deployer_role_allows_exactly_what_the_pipeline_applies_and_nothing_else() -> None:
    needed: dict[tuple[str, str], set[str]] = dict(RUNTIME_EXTRAS)
    for overlay in OVERLAYS:
        objects = render(overlay)
        for obj in objects:
            if obj["metadata"]["labels"][COMPONENT_LABEL] != ACCESS:
                needed[KIND_RESOURCE[obj["kind"]]] = set(APPLY_VERBS)
    role = find(render("prod"), "Role", DEPLOYER_ACCOUNT)
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == needed
    flat = {item for pair in granted for item in pair} | {v for verbs in granted.values() for v in verbs}
    assert "*" not in flat
    assert ("", "secrets") not in granted
    binding = find(render("prod"), "RoleBinding", DEPLOYER_ACCOUNT)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": DEPLOYER_ACCOUNT,
    }
    assert pod_template()["spec"]["serviceAccountName"] == DEPLOYER_ACCOUNT


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_needs_a_cluster_role(overlay: str) -> None:
    kinds = {o["kind"] for o in render(overlay)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = find(render("prod"), "Namespace", "mlstack")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# Volume types the `restricted` Pod Security Standard admits.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_uses_only_volume_types_the_restricted_standard_admits(overlay: str) -> None:
    for where, spec in with_template(overlay):
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']} is {kinds}"
        for container in containers(spec):
            assert not any(p.get("hostPort") for p in container.get("ports", [])), where
