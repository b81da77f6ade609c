"""Every Kustomize overlay rendered offline and checked against the Kubernetes 1.32 schemas and our policy."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO

K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
PRODUCTION = ("eu", "us", "apac")
K8S_VERSION = "1.32.0"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[dev]'")

Doc = dict[str, Any]


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it renders the overlays with `kubectl kustomize`)")
    return kubectl


@pytest.fixture(name="rendered", scope="module")
def _rendered() -> dict[str, list[Doc]]:
    """Each overlay's objects as `kubectl kustomize` renders them (no cluster needed)."""
    kubectl = _kubectl()
    out: dict[str, list[Doc]] = {}
    for overlay in OVERLAYS:
        result = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{overlay}: {result.stderr}"
        out[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return out


def _of(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for d in docs:
        if d["kind"] in WORKLOADS:
            spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
            yield d["metadata"]["name"], spec["template"]["spec"]


def test_overlays_exist() -> None:
    """There is a staging overlay and one per production region."""
    assert set(OVERLAYS) >= {"staging", *PRODUCTION}


def test_objects_match_the_kubernetes_schemas(rendered: dict[str, list[Doc]]) -> None:
    """Every rendered object validates strictly (no unknown fields) against the bundled 1.32 schemas."""
    problems = []
    for overlay, docs in rendered.items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(p) for p in getattr(exc, "path", []))
                problems.append(f"{overlay} {doc['kind']}/{doc['metadata']['name']} {where}: "
                                f"{getattr(exc, 'message', str(exc))[:200]}")
    assert not problems, "\n".join(problems)


def test_everything_is_in_the_region_namespace(rendered: dict[str, list[Doc]]) -> None:
    """Each overlay puts all its namespaced objects in bizfed-<overlay> and creates that namespace."""
    for overlay, docs in rendered.items():
        namespace = f"bizfed-{overlay}"
        assert _one(docs, "Namespace", namespace)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] \
            == "restricted"
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == namespace, f"{overlay} {doc['kind']}"


def test_pods_run_as_non_root_and_locked_down(rendered: dict[str, list[Doc]]) -> None:
    """Every pod runs as non-root with RuntimeDefault seccomp; every container drops all capabilities,
    cannot escalate and has a read-only root filesystem."""
    for overlay, docs in rendered.items():
        for name, pod in _pod_specs(docs):
            ctx = pod["securityContext"]
            assert ctx["runAsNonRoot"] is True, f"{overlay}/{name}"
            assert ctx.get("runAsUser", 1) != 0, f"{overlay}/{name}"
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
            assert pod.get("automountServiceAccountToken") is False
            for c in pod["containers"] + pod.get("initContainers", []):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, f"{overlay}/{name}/{c['name']}"
                assert sc["readOnlyRootFilesystem"] is True
                assert sc["capabilities"]["drop"] == ["ALL"]
                assert not sc.get("privileged", False)


def test_containers_have_resources_and_probes(rendered: dict[str, list[Doc]]) -> None:
    """Every container has CPU and memory requests and limits, and liveness and readiness probes."""
    for overlay, docs in rendered.items():
        for name, pod in _pod_specs(docs):
            for c in pod["containers"]:
                where = f"{overlay}/{name}/{c['name']}"
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c["resources"][kind]), where
                assert "livenessProbe" in c, where
                assert "readinessProbe" in c, where


def test_images_are_pinned(rendered: dict[str, list[Doc]]) -> None:
    """Every image has a registry-qualified or official name and an explicit version tag, never latest."""
    for overlay, docs in rendered.items():
        for name, pod in _pod_specs(docs):
            for c in pod["containers"]:
                image = c["image"]
                assert ":" in image.rsplit("/", 1)[-1], f"{overlay}/{name}: {image} has no tag"
                assert not image.endswith(":latest"), f"{overlay}/{name}: {image}"
                assert image.split(":")[0] not in ("bizfed", "bizfed-canary"), f"{overlay}: placeholder image"


def test_bizfed_probes_and_secrets(rendered: dict[str, list[Doc]]) -> None:
    """bizfed's probes use /health/ready and /health/live, and its DSNs, ODBC string and keys come from a Secret."""
    for overlay, docs in rendered.items():
        for deployment in ("bizfed", "bizfed-canary"):
            (c,) = _one(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
            assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
            assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
            assert c["startupProbe"]["httpGet"]["path"] == "/health/live"
            secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]
                          if "secretKeyRef" in e.get("valueFrom", {})}
            assert {"BIZFED_WAREHOUSE_DSN", "BIZFED_SALES_URL", "BIZFED_ACCOUNTING_ODBC",
                    "BIZFED_API_KEYS"} <= set(secret_env), overlay
            assert {ref["name"] for ref in secret_env.values()} == {"bizfed-secrets"}
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, f"{overlay}: no writable /tmp"
        assert not _of(docs, "Secret"), f"{overlay}: secret values must not be committed"


def test_settings_configmap_is_complete(rendered: dict[str, list[Doc]]) -> None:
    """The settings ConfigMap holds only BIZFED_* non-secret settings, and Redis is the region's own."""
    secret_names = {"BIZFED_WAREHOUSE_DSN", "BIZFED_SALES_URL", "BIZFED_ACCOUNTING_ODBC", "BIZFED_API_KEYS",
                    "BIZFED_CURSOR_SECRET"}
    for overlay, docs in rendered.items():
        (cm,) = [d for d in _of(docs, "ConfigMap") if d["metadata"]["name"].startswith("bizfed-settings-")]
        data = cm["data"]
        assert all(k.startswith("BIZFED_") for k in data)
        assert not secret_names & set(data)
        assert data["BIZFED_REDIS_URL"] == "redis://bizfed-redis:6379/0", overlay
        _one(docs, "Deployment", "bizfed-redis")
        _one(docs, "Service", "bizfed-redis")


def test_scaling_and_disruption(rendered: dict[str, list[Doc]]) -> None:
    """An autoscaling/v2 CPU HPA owns the replica count (at least 2), a PDB keeps pods up, canary idles at 0."""
    for docs in rendered.values():
        hpa = _one(docs, "HorizontalPodAutoscaler", "bizfed")
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] == "bizfed"
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert "replicas" not in _one(docs, "Deployment", "bizfed")["spec"], "the HPA owns the count"
        assert _one(docs, "Deployment", "bizfed-canary")["spec"]["replicas"] == 0
        pdb = _one(docs, "PodDisruptionBudget", "bizfed")
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "bizfed"


def test_canary_and_stable_split_one_service(rendered: dict[str, list[Doc]]) -> None:
    """The Service selects stable and canary pods, while each Deployment's selector keeps to its own track."""
    for docs in rendered.values():
        service = _one(docs, "Service", "bizfed")
        stable = _one(docs, "Deployment", "bizfed")["spec"]
        canary = _one(docs, "Deployment", "bizfed-canary")["spec"]
        for spec, track in ((stable, "stable"), (canary, "canary")):
            labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"]["track"] == track
            assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def test_network_policies(rendered: dict[str, list[Doc]]) -> None:
    """bizfed takes traffic only from the ingress controller and reaches only HQ's legacy ports, Redis and DNS;
    Redis takes traffic only from bizfed."""
    for overlay, docs in rendered.items():
        policy = _one(docs, "NetworkPolicy", "bizfed")["spec"]
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
        (ingress,) = policy["ingress"]
        (peer,) = ingress["from"]
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
        hq, redis, dns = policy["egress"]
        for block in hq["to"]:
            net = ipaddress.ip_network(block["ipBlock"]["cidr"])
            assert net.num_addresses <= 256, f"{overlay}: HQ range {net} is too wide"
        assert {p["port"] for p in hq["ports"]} == {5432, 3306}
        assert redis["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "bizfed-redis"}
        assert {p["port"] for p in dns["ports"]} == {53}
        redis_policy = _one(docs, "NetworkPolicy", "bizfed-redis")["spec"]
        assert redis_policy["egress"] == []
        assert redis_policy["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name":
                                                                                          "bizfed"}}}]


def test_regions_differ_where_they_should(rendered: dict[str, list[Doc]]) -> None:
    """Each overlay has its own Ingress host with TLS and its own HQ endpoints; production regions differ."""
    hosts, egress = set(), []
    for overlay, docs in rendered.items():
        ingress = _one(docs, "Ingress", "bizfed")["spec"]
        (rule,) = ingress["rules"]
        assert rule["host"] == f"bizfed.{overlay}.example.com"
        assert ingress["tls"][0]["hosts"] == [rule["host"]]
        hosts.add(rule["host"])
        if overlay in PRODUCTION:
            egress.append(str(_one(docs, "NetworkPolicy", "bizfed")["spec"]["egress"][0]["to"]))
    assert len(hosts) == len(rendered)
    assert len(set(egress)) == len(PRODUCTION)
