"""The contract module is the one definition: its values agree with each other, with the files that
cannot import Python (mlstack.yaml, Dockerfiles, docker-compose.yaml), and no Python module of the
project writes them as literals. The Jenkinsfile and the seed job are evaluated with Groovy in
tests/integration/contract/test_jenkins_vocabulary.py.
"""

from __future__ import annotations

import ast
import json
import re
import typing
from pathlib import Path

import pytest
import yaml

from mlstack import contract
from mlstack.config import DEFAULT_CONFIG_PATH, REPO_ROOT, Config, load_config
from mlstack.contract import TriggerReason

# --------------------------------------------------------------------------- internal consistency


def test_trigger_names_and_priority() -> None:
    assert typing.get_args(TriggerReason) == contract.TRIGGERS
    names = [
        n for n in dir(contract) if n.startswith("TRIGGER_") and n not in {"TRIGGER_PORT", "TRIGGER_PRIORITY"}
    ]
    named = {getattr(contract, n) for n in names}
    assert named == set(contract.TRIGGERS)
    assert set(contract.ALERT_TRIGGERS) <= set(contract.TRIGGERS)
    assert contract.DEFAULT_TRIGGER in contract.TRIGGERS
    assert set(contract.TRIGGER_PRIORITY) == set(contract.TRIGGERS)
    # Labels beat distributions; both beat anything a person or a clock starts.
    assert contract.most_urgent(["drift", "accuracy"]) == "accuracy"
    assert contract.most_urgent(["drift", "schedule"]) == "drift"
    assert contract.most_urgent(["bogus"]) is None
    assert contract.most_urgent([]) is None
    assert contract.trigger_priority("bogus") == 0


def test_every_stage_is_a_pipeline_method() -> None:
    from mlstack.pipeline import Pipeline

    assert len(set(contract.STAGES)) == len(contract.STAGES)
    for stage in contract.STAGES:
        assert callable(getattr(Pipeline, contract.stage_method(stage))), stage
    assert set(contract.STAGES) >= contract.POST_PROMOTE_STAGES


def test_config_env_var_names() -> None:
    assert contract.config_env_var("api.workers") == "MLSTACK__API__WORKERS"
    assert contract.config_env_var("prediction_store.url") == "MLSTACK__PREDICTION_STORE__URL"
    from mlstack.config import env_overrides

    overrides = env_overrides({contract.config_env_var("gate.floor"): "0.5"})
    assert overrides == {"gate.floor": 0.5}


def test_every_service_has_one_port() -> None:
    assert set(contract.CONTAINER_PORTS) == set(typing.get_args(contract.Service))
    assert len(set(contract.CONTAINER_PORTS.values())) == len(contract.CONTAINER_PORTS)
    assert contract.TRIGGER_PORT not in contract.CONTAINER_PORTS.values()


# --------------------------------------------------------------------------- mlstack.yaml and defaults


def test_mlstack_yaml_and_config_defaults_use_the_contract_ports() -> None:
    for config in (load_config(DEFAULT_CONFIG_PATH, environ={}), Config.model_validate({"training": {
        "candidates": [{"name": "lr", "estimator": "LogisticRegression"}]
    }})):  # fmt: skip
        for service in contract.HTTP_SERVICES:
            assert getattr(config.services, f"{service}_port") == contract.CONTAINER_PORTS[service], service
        assert config.services.trigger_port == contract.TRIGGER_PORT
        assert config.mlflow.tracking_uri.endswith(f":{contract.CONTAINER_PORTS[contract.MLFLOW]}")
        assert set(config.ct.triggers_requiring_new_data) <= set(contract.TRIGGERS)


# --------------------------------------------------------------------------- Dockerfiles


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


# The images built from this repository; mlflow-db and jenkins inherit EXPOSE from their base images.
DOCKERFILE_SERVICES = {
    "api/Dockerfile": contract.API,
    "exporter/Dockerfile": contract.EXPORTER,
    "mlflow-container/Dockerfile": contract.MLFLOW,
    "mlflow-db/Dockerfile": contract.POSTGRES,
    "jenkins/Dockerfile": contract.JENKINS,
}
SERVICE_PORT = re.compile(r"\b(" + "|".join(contract.CONTAINER_PORTS) + r"):(\d{2,5})\b")


@pytest.mark.parametrize(("path", "service"), DOCKERFILE_SERVICES.items())
def test_dockerfile_exposes_and_checks_the_contract_port(path: str, service: contract.Service) -> None:
    port = contract.CONTAINER_PORTS[service]
    instructions = _instructions(REPO_ROOT / path)
    exposed = [int(p.split("/")[0]) for k, v in instructions if k == "EXPOSE" for p in v.split()]
    assert exposed in ([port], []), f"{path}: EXPOSE {exposed}, contract says {port}"
    if service in contract.HTTP_SERVICES:
        assert exposed == [port], f"{path} must EXPOSE {port}"
    for keyword, args in instructions:
        for found in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", args):
            assert int(found) == port, f"{path}: {keyword} uses port {found}, contract says {port}"
        for other, found in SERVICE_PORT.findall(args) if keyword != "FROM" else ():  # FROM postgres:15
            assert int(found) == contract.CONTAINER_PORTS[other], f"{path}: {other}:{found}"


# --------------------------------------------------------------------------- docker-compose.yaml


def _compose() -> dict[str, typing.Any]:
    data: dict[str, typing.Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
    return data


@pytest.mark.parametrize("service", list(contract.CONTAINER_PORTS))
def test_compose_publishes_the_contract_port(service: contract.Service) -> None:
    port = contract.CONTAINER_PORTS[service]
    spec = _compose()["services"][service]
    (published,) = spec["ports"]
    match = re.fullmatch(r"127\.0\.0\.1:\$\{(\w+)_HOST_PORT:-(\d+)\}:(\d+)", published)
    assert match, published
    assert match[1] == service.upper()
    assert int(match[2]) == int(match[3]) == port


def test_compose_urls_name_the_contract_ports() -> None:
    text = (REPO_ROOT / "docker-compose.yaml").read_text()
    found = SERVICE_PORT.findall(text)
    assert found
    for service, port in found:
        assert int(port) == contract.CONTAINER_PORTS[service], f"{service}:{port}"


# --------------------------------------------------------------------------- no literal copies

SOURCE_ROOTS = ("mlstack", "api/mlstack_api", "exporter/mlstack_exporter")
# Modules allowed to keep `:port` literals for now, with the reason (none left).
PENDING: dict[str, str] = {}
# MLflow client calls whose argument at this index is a tag key.
TAG_KEY_ARGUMENT = {"set_tag": 1, "set_registered_model_tag": 1, "set_model_version_tag": 2}


def _contract_strings() -> set[str]:
    """Contract values distinctive enough that equal text elsewhere is a copy, not a coincidence."""
    values = {
        value
        for name, value in vars(contract).items()
        if name.isupper()
        and isinstance(value, str)
        and (
            name.startswith(("STATE_", "RUN_TAG_", "RUN_METRIC_"))
            or name.endswith(("_ENV", "_ARTIFACT", "_PREFIX"))
        )
    }
    values |= {s for s in contract.STAGES if "-" in s}
    values |= {contract.CT_LABEL, contract.METADATA_FEATURE_SCHEMA, *contract.REQUIRED_SECRETS}
    return {v for v in values if "_" in v or "/" in v or "." in v or "-" in v}


def _docstrings(tree: ast.AST) -> set[int]:
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def _tag_keys(tree: ast.AST) -> list[ast.expr]:
    """MLflow tag keys: client.set_*tag(..., KEY, ...), x.tags.get(KEY), x.tags[KEY], tags={KEY: ...}."""
    keys: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            index = TAG_KEY_ARGUMENT.get(node.func.attr)
            if index is not None and len(node.args) > index:
                keys.append(node.args[index])
            owner = node.func.value
            if (
                node.func.attr == "get"
                and isinstance(owner, ast.Attribute)
                and owner.attr == "tags"
                and node.args
            ):
                keys.append(node.args[0])
            if node.func.attr == "set_tags" and node.args and isinstance(node.args[0], ast.Dict):
                keys.extend(k for k in node.args[0].keys if k is not None)
            for keyword in node.keywords:
                if keyword.arg == "tags" and isinstance(keyword.value, ast.Dict):
                    keys.extend(k for k in keyword.value.keys if k is not None)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "tags"
        ):
            keys.append(node.slice)
    return keys


def _copies(path: Path, relative: str, strings: set[str], port_in_text: re.Pattern[str]) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = _docstrings(tree)
    found = [
        f"{relative}:{key.lineno}: tag key {key.value!r}"
        for key in _tag_keys(tree)
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    ]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        if node.value in strings or (relative not in PENDING and port_in_text.search(node.value)):
            found.append(f"{relative}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_copies_a_contract_value() -> None:
    """Tag keys, artifact and state paths, env var names, hyphenated stage names and `:port`s."""
    strings = _contract_strings()
    ports = {*contract.CONTAINER_PORTS.values(), contract.TRIGGER_PORT}
    port_in_text = re.compile(r":(" + "|".join(str(p) for p in ports) + r")\b")
    copies = []
    for root in SOURCE_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            relative = str(path.relative_to(REPO_ROOT))
            if relative != "mlstack/contract.py":
                copies += _copies(path, relative, strings, port_in_text)
    assert not copies, "import these from mlstack.contract:\n" + "\n".join(copies)


def test_the_copy_finder_finds_copies(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "client.set_model_version_tag(name, version, 'approval', 'pending')\n"
        "ok = version.tags.get('gate') == 'passed'\n"
        "path = 'onnx/model.onnx'\n"
        "url = 'http://mlflow:5000'\n"
        "env = os.environ.get('MLSTACK_FAIL_STAGE')\n"
    )
    strings = _contract_strings()
    port_in_text = re.compile(r":(5000)\b")
    assert len(_copies(planted, "planted.py", strings, port_in_text)) == 5


@pytest.mark.parametrize(
    ("path", "service", "package"),
    [
        ("api/Dockerfile", contract.API, "mlstack_api"),
        ("exporter/Dockerfile", contract.EXPORTER, "mlstack_exporter"),
    ],
)
def test_service_images_start_the_entry_point_the_local_runtime_starts(
    path: str, service: contract.Service, package: str
) -> None:
    """One command line per service: the image's CMD is the local runtime's command, bound to 0.0.0.0."""
    from mlstack.runtime.local import api_command, exporter_command

    (cmd,) = [json.loads(args) for keyword, args in _instructions(REPO_ROOT / path) if keyword == "CMD"]
    port = contract.CONTAINER_PORTS[service]
    local = (api_command if service == contract.API else exporter_command)(port, host="0.0.0.0")
    assert cmd[:3] == ["python", "-m", package] and local[1:3] == ["-m", package]
    image_options = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    local_options = dict(zip(local[3::2], local[4::2], strict=True))
    assert image_options.items() <= local_options.items(), (image_options, local_options)
    assert image_options["--port"] == str(port)
