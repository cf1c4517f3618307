"""Build the kustomize overlays the way ArgoCD and `kubectl apply -k` do, and look things up in them."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ["dev", "prod"]


def kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize PATH` (kubectl's built-in kustomize), parsed."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is required to build the kustomize overlays (Debian package kubectl)"
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def build(overlay: str, k8s: Path = K8S) -> list[dict[str, Any]]:
    """The overlay's objects (a fresh copy each time: tests mutate them)."""
    return copy.deepcopy(_build(overlay, k8s))


@functools.cache
def _build(overlay: str, k8s: Path) -> list[dict[str, Any]]:
    return kustomize(k8s / "overlays" / overlay)


def by_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def one(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in by_kind(resources, kind) if r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def kustomization(overlay: str, k8s: Path = K8S) -> dict[str, Any]:
    return yaml.safe_load((k8s / "overlays" / overlay / "kustomization.yaml").read_text())


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions) against a set of labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True
