"""deploy/k8s: rendered with kustomize and validated against the Kubernetes JSON schemas.

The validator is PyPI's ``kubernetes-validate`` (it bundles the schemas: nothing is fetched at
run time), in strict mode, so unknown or misspelt fields fail. The kustomizations are rendered
with ``kubectl kustomize`` (or ``kustomize build``) where one is installed, and always with the
small renderer below, which covers exactly what our kustomizations use (resources, images, JSON
6902 patches and ``$patch: delete``); where both run, their outputs must be identical.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from hearth.config import Settings, default_models, load_settings
from tests.deploy.helpers import DEPLOY, run, tool

K8S = DEPLOY / "k8s"
KUBERNETES_VERSIONS = ("1.30.0", "1.32.0")
Doc = dict[str, Any]


# --- a minimal kustomize ----------------------------------------------------------------------


def render(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "resources", "images", "patches"}
    assert set(kustomization) <= known, f"the test renderer does not handle {set(kustomization) - known}"
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in kustomization.get("patches", []):
        body = yaml.safe_load((directory / patch["path"]).read_text())
        if isinstance(body, list):
            target = patch["target"]
            for doc in docs:
                if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]:
                    for op in body:
                        json_patch(doc, op)
        elif body.get("$patch") == "delete":
            docs = [
                d
                for d in docs
                if (d["kind"], d["metadata"]["name"]) != (body["kind"], body["metadata"]["name"])
            ]
        else:
            raise AssertionError(f"the test renderer does not handle the patch {patch}")
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    return docs


def json_patch(doc: Doc, op: dict[str, Any]) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    value = copy.deepcopy(op.get("value"))
    if isinstance(node, list):
        if op["op"] == "add":
            node.insert(len(node) if last == "-" else int(last), value)
        elif op["op"] == "replace":
            node[int(last)] = value
        else:
            del node[int(last)]
    elif op["op"] in {"add", "replace"}:
        assert op["op"] == "add" or last in node, op
        node[last] = value
    else:
        del node[last]


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl") and run("kubectl", "kustomize", "--help").returncode == 0:
        return ["kubectl", "kustomize"]
    return None


def key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


@pytest.fixture(scope="module", params=["base", "ha", "upstream-vllm"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    directory = K8S if request.param == "base" else K8S / "overlays" / request.param
    docs = sorted(render(directory), key=key)
    command = kustomize_command()
    if command is not None:
        result = run(*command, str(directory))
        assert result.returncode == 0, result.stderr
        assert sorted((d for d in yaml.safe_load_all(result.stdout) if d), key=key) == docs
    return request.param, docs


# --- validation --------------------------------------------------------------------------------


def validate(paths: list[Path]) -> None:
    validator = tool("kubernetes-validate")
    for version in KUBERNETES_VERSIONS:
        result = run(validator, "--strict", "--kubernetes-version", version, *map(str, paths))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "passed" in result.stdout and "failed" not in result.stdout.lower()


def test_rendered_manifests_validate(rendered: tuple[str, list[Doc]], tmp_path: Path) -> None:
    name, docs = rendered
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    validate([out])


def test_each_resource_file_validates() -> None:
    files = [
        p
        for p in sorted(K8S.rglob("*.yaml"))
        # Patches are fragments; the InferencePool needs the Inference Extension's CRDs.
        if p.name
        not in {
            "kustomization.yaml",
            "deployment-patch.yaml",
            "delete-pvc.yaml",
            "configmap-patch.yaml",
            "inference-pool.yaml",
        }
    ]
    assert len(files) == 10
    validate(files)


# --- what the manifests must say -----------------------------------------------------------------


def by_kind(docs: list[Doc]) -> dict[str, Doc]:
    return {d["kind"]: d for d in docs if d["kind"] != "Secret"} | {
        f"Secret/{d['metadata']['name']}": d for d in docs if d["kind"] == "Secret"
    }


def container_env(deployment: Doc) -> dict[str, Any]:
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def test_single_replica_base() -> None:
    docs = by_kind(render(K8S))
    assert set(docs) == {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "Secret/hearth-admin"}
    deployment = docs["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # A Service named hearth would otherwise inject HEARTH_PORT=tcp://...: not a port.
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER (deploy/Containerfile)
    assert "USER 10001:10001" in (DEPLOY / "Containerfile").read_text()
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["ports"][0]["containerPort"] == 8000
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert docs["Service"]["spec"]["selector"] == spec["selector"]["matchLabels"]
    env = container_env(deployment)
    assert env["HEARTH_PORT"] == str(container["ports"][0]["containerPort"])
    assert env["HEARTH_ADMIN_KEY"] == {"secretKeyRef": {"name": "hearth-admin", "key": "admin-key"}}
    assert "admin-key" in docs["Secret/hearth-admin"]["stringData"]
    assert container["envFrom"] == [{"configMapRef": {"name": "hearth-config"}}]
    # The models file: ConfigMap key -> volume -> mount -> HEARTH_CONFIG.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_item = volumes["config"]["configMap"]["items"][0]
    assert env["HEARTH_CONFIG"] == f"{mounts['config']}/{config_item['path']}"
    assert config_item["key"] in docs["ConfigMap"]["data"]
    assert mounts["data"] == "/data"
    assert (
        volumes["data"]["persistentVolumeClaim"]["claimName"]
        == docs["PersistentVolumeClaim"]["metadata"]["name"]
    )
    assert container["image"] == "registry.example.com/hearth:0.1.0"


def test_configmap_models_file_is_a_valid_hearth_config(tmp_path: Path) -> None:
    configmap = next(d for d in render(K8S) if d["kind"] == "ConfigMap")
    path = tmp_path / "models.yaml"
    path.write_text(configmap["data"]["models.yaml"])
    settings = load_settings(config=path)
    assert [m.model_dump(exclude={"description"}) for m in settings.models] == [
        m.model_dump(exclude={"description"}) for m in default_models()
    ]
    for name, value in configmap["data"].items():
        assert name == "models.yaml" or name.startswith("HEARTH_"), (name, value)


def test_ha_overlay() -> None:
    docs = by_kind(render(K8S / "overlays" / "ha"))
    assert "PersistentVolumeClaim" not in docs  # per-pod /data, nothing shared on disk
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = container_env(deployment)
    ha_secret = docs["Secret/hearth-ha"]["stringData"]
    for variable, secret_key in (("HEARTH_DATABASE_URL", "database-url"), ("HEARTH_REDIS_URL", "redis-url")):
        assert env[variable] == {"secretKeyRef": {"name": "hearth-ha", "key": secret_key}}
        assert secret_key in ha_secret
    assert ha_secret["database-url"].startswith("postgresql+psycopg://")
    data = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert "emptyDir" in data and "persistentVolumeClaim" not in data
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hearth"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert docs["PodDisruptionBudget"]["spec"]["selector"] == deployment["spec"]["selector"]


def test_upstream_overlay_serves_vllm_through_hearth(tmp_path: Path) -> None:
    overlay = K8S / "overlays" / "upstream-vllm"
    docs = render(overlay)
    hearth = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "hearth")
    vllm = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "vllm")
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "vllm")
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    path = tmp_path / "models.yaml"
    path.write_text(configmap["data"]["models.yaml"])
    upstream = next(m for m in load_settings(config=path).models if m.upstream)
    # The model's URL is the vLLM Service; its key, an env var from the Secret vLLM reads too.
    assert upstream.source == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/v1"
    assert upstream.api_key_env is not None and upstream.fallbacks == ["smollm2-135m-instruct"]
    secret_ref = container_env(hearth)[upstream.api_key_env]["secretKeyRef"]
    assert container_env(vllm)["VLLM_API_KEY"]["secretKeyRef"] == secret_ref
    assert any(d["kind"] == "Secret" and d["metadata"]["name"] == secret_ref["name"] for d in docs)
    assert service["spec"]["selector"] == vllm["spec"]["selector"]["matchLabels"]
    pool = yaml.safe_load((overlay / "inference-pool.yaml").read_text())
    assert (pool["apiVersion"], pool["kind"]) == ("inference.networking.k8s.io/v1", "InferencePool")
    assert pool["spec"]["selector"]["matchLabels"] == hearth["spec"]["selector"]["matchLabels"]
    assert pool["spec"]["targetPorts"] == [
        {"number": hearth["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]}
    ]


# --- one shutdown design for Kubernetes and compose -----------------------------------------


def seconds(value: str | int) -> float:
    """``45s``, ``1m30s`` or a bare number of seconds (compose durations, Kubernetes ints)."""
    if isinstance(value, int):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms)?", value)
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "": 1}
    return sum(float(n) * scale[u] for n, u in parts)


def compose_setting(environment: list[str], name: str) -> float:
    """A ``NAME=${NAME:-default}`` entry of compose's environment list, at its default."""
    entry = next(e for e in environment if e.startswith(f"{name}="))
    match = re.fullmatch(rf"{name}=\$\{{{name}:-([\d.]+)\}}", entry)
    assert match, entry
    return float(match.group(1))


def test_shutdown_design_is_the_same_in_kubernetes_and_compose() -> None:
    """PodDisruptionBudget, readiness on /ready, a preStop wait, and a grace period longer than
    the wait, hearth's own shutdown delay and its drain time-out together, in both files."""
    docs = by_kind(render(K8S / "overlays" / "ha"))
    deployment, config = docs["Deployment"], docs["ConfigMap"]["data"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and len(pre_stop) == 2
    wait = float(pre_stop[1])
    delay, drain = float(config["HEARTH_SHUTDOWN_DELAY_S"]), float(config["HEARTH_DRAIN_TIMEOUT_S"])
    settings = Settings(shutdown_delay_s=delay, drain_timeout_s=drain)  # values hearth accepts
    assert wait > 0 and settings.shutdown_delay_s > 0 and settings.drain_timeout_s >= 10
    assert pod["terminationGracePeriodSeconds"] > wait + delay + drain
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    budget = docs["PodDisruptionBudget"]["spec"]
    assert budget["selector"] == deployment["spec"]["selector"]
    assert 1 <= budget["minAvailable"] < deployment["spec"]["replicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The single-replica base shuts down the same way (and has no budget: it would block drains).
    base = by_kind(render(K8S))
    assert "PodDisruptionBudget" not in base
    base_pod = base["Deployment"]["spec"]["template"]["spec"]
    assert base_pod["terminationGracePeriodSeconds"] == pod["terminationGracePeriodSeconds"]
    for part in ("lifecycle", "readinessProbe"):
        assert base_pod["containers"][0][part] == container[part]

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    hearth = compose["services"]["hearth"]
    environment = hearth["environment"]
    assert compose_setting(environment, "HEARTH_SHUTDOWN_DELAY_S") == delay
    assert compose_setting(environment, "HEARTH_DRAIN_TIMEOUT_S") == drain
    # Compose has no preStop hook: hearth's own delay is the wait there (/ready fails at once).
    assert seconds(hearth["stop_grace_period"]) > delay + drain
    assert "/ready" in " ".join(hearth["healthcheck"]["test"])
    # Compose's stand-in for the budget: one replica at a time, the new one started first.
    ha_replicas = int(
        next(
            line.split("=", 1)[1]
            for line in (DEPLOY / "ha.env").read_text().splitlines()
            if line.startswith("HEARTH_REPLICAS=")
        )
    )
    update = hearth["deploy"]["update_config"]
    assert update["order"] == "start-first" and 1 == update["parallelism"] < ha_replicas
    assert ha_replicas == deployment["spec"]["replicas"]
