"""Kubernetes manifests: every overlay builds, core resources validate against Kubernetes
schemas (unknown fields rejected), and every pod runs with least privilege."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.workflows import argo_local

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["dev", "prod"]
K8S_VERSION = "1.30"
CORE_KINDS = {
    "Namespace", "PersistentVolumeClaim", "ServiceAccount", "Role", "RoleBinding",
    "ConfigMap", "Deployment", "Service",
}  # fmt: skip


def build(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is required to build the kustomize overlays"
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def resources(request: pytest.FixtureRequest) -> list[dict]:
    return build(request.param)


def by_kind(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["kind"] == kind]


def test_core_resources_validate_strictly(resources: list[dict]) -> None:
    import kubernetes_validate

    seen = set()
    for r in resources:
        if r["kind"] in CORE_KINDS:
            kubernetes_validate.validate(r, K8S_VERSION, strict=True)
            seen.add(r["kind"])
    assert seen == CORE_KINDS


def test_schema_validation_catches_a_typo() -> None:
    import kubernetes_validate

    svc = by_kind(build("dev"), "Service")[0]
    svc["spec"]["clusterIPP"] = "None"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, K8S_VERSION, strict=True)


def test_workflowtemplate_survives_the_overlay(resources: list[dict]) -> None:
    [wt] = by_kind(resources, "WorkflowTemplate")
    argo_local.strict_parse(wt)
    assert wt["metadata"]["namespace"] == "tritonops"
    images = {t["container"]["image"] for t in wt["spec"]["templates"] if "container" in t}
    assert images == {"ghcr.io/tritonops/tritonops:0.1.0"}


def _pods(resources: list[dict]) -> list[dict]:
    return [d["spec"]["template"]["spec"] for d in by_kind(resources, "Deployment")]


def test_pods_run_with_least_privilege(resources: list[dict]) -> None:
    for pod in _pods(resources):
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "limits" in c["resources"] and "requests" in c["resources"]
    assert not by_kind(resources, "Secret"), "secrets never live in Git"
    [role] = by_kind(resources, "Role")
    assert role["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]
    assert not by_kind(resources, "ClusterRole") and not by_kind(resources, "ClusterRoleBinding")


def test_triton_is_explicit_and_reachable_per_replica(resources: list[dict]) -> None:
    [triton] = [d for d in by_kind(resources, "Deployment") if d["metadata"]["name"] == "triton"]
    script = triton["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for flag in (
        "--model-control-mode=explicit",
        "--exit-on-error=false",
        "--metrics-config=summary_latencies=true",
        "--strict-readiness=false",
    ):
        assert flag in script
    mount = triton["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "volume", "mountPath": "/pvc", "readOnly": True}
    headless = [s for s in by_kind(resources, "Service") if s["metadata"]["name"] == "triton-headless"]
    assert headless and headless[0]["spec"]["clusterIP"] == "None"
    [config] = [c for c in by_kind(resources, "ConfigMap") if c["metadata"]["name"] == "tritonops-config"]
    assert config["data"]["TRITONOPS_TRITON_URL"].startswith("dns+http://triton-headless.")
    [pvc] = [
        p for p in by_kind(resources, "PersistentVolumeClaim") if p["metadata"]["name"] == "tritonops-volume"
    ]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_triton_start_script_loads_only_committed_models(tmp_path: Path) -> None:
    """Run the Deployment's shell script with a stub `tritonserver` that prints its argv."""
    [triton] = [d for d in by_kind(build("dev"), "Deployment") if d["metadata"]["name"] == "triton"]
    script = triton["spec"]["template"]["spec"]["containers"][0]["args"][0]
    pvc = tmp_path / "pvc" / "models"
    for model, committed in (("fraud", True), ("churn", True), ("half-done", False)):
        (pvc / model).mkdir(parents=True)
        if committed:
            (pvc / model / "current.json").write_text("{}")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "tritonserver"
    stub.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    stub.chmod(0o755)
    out = subprocess.run(
        ["/bin/sh", "-c", script.replace("/pvc/", f"{tmp_path}/pvc/")],
        env={"PATH": f"{bindir}:/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    args = out.stdout.split()
    assert [a for a in args if a.startswith("--load-model")] == ["--load-model=churn", "--load-model=fraud"]
    assert not [a for a in args if "restricted" in a]  # no key in the Secret: API open
    locked = subprocess.run(
        ["/bin/sh", "-c", script.replace("/pvc/", f"{tmp_path}/pvc/")],
        env={"PATH": f"{bindir}:/usr/bin:/bin", "TRITON_API_KEY": "k3y"}, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "--http-restricted-api=model-repository:triton-api-key=k3y" in locked
    assert "--grpc-restricted-protocol=model-repository:triton-api-key=k3y" in locked


def test_argocd_application_points_at_an_overlay() -> None:
    app = yaml.safe_load((ROOT / "k8s" / "argocd" / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert (ROOT / app["spec"]["source"]["path"] / "kustomization.yaml").is_file()
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
