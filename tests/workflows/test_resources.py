"""Every step's memory limit fits what the step was measured to use (bench/step_memory.py).

Measured here (bench/RESULTS.md, "Peak RSS per step"): steps that talk to the registry stay flat at
about 240 MiB whatever the model's size; the steps that run the golden-parity gate in their own
process (load computes onnxruntime's reference, smoke when it has to, rollback --to runs both) hold
the model: about 220 MiB + 2 x its size (1 GiB model: 2141 MiB), up to TRITONOPS_PARITY_MAX_BYTES (bigger models skip the
gate). A limit below that is an out-of-memory kill the retry policy cannot recognise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tritonops.engine.settings import GateSettings

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
FLAT_PEAK = 240 * MIB
PARITY_BASE, PARITY_FACTOR = 220 * MIB, 2.0
PARITY_STEPS = {"load", "smoke", "rollback-to-version"}
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _bytes(quantity: str) -> int:
    for suffix, factor in UNITS.items():
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(quantity)


def _containers() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((ROOT / "k8s" / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("WorkflowTemplate", "CronWorkflow"):
                continue
            spec = doc["spec"].get("workflowSpec", doc["spec"])
            out += [(t["name"], t["container"]) for t in spec["templates"] if "container" in t]
    return out


def _parity_max_bytes() -> int:
    """The largest model any overlay lets the gate run on (the CLI default unless a ConfigMap says)."""
    values = [GateSettings().parity_max_bytes]
    for path in (ROOT / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "TRITONOPS_PARITY_MAX_BYTES" in str(doc.get("data", {})):
                values.append(int(doc["data"]["TRITONOPS_PARITY_MAX_BYTES"]))
    return max(values)


@pytest.mark.parametrize(("name", "container"), _containers(), ids=lambda v: v if isinstance(v, str) else "")
def test_memory_limit_fits_the_measured_peak(name: str, container: dict) -> None:
    limits = container.get("resources", {}).get("limits", {})
    assert "memory" in limits, f"{name}: no memory limit"
    limit = _bytes(limits["memory"])
    need = PARITY_BASE + PARITY_FACTOR * _parity_max_bytes() if name in PARITY_STEPS else 2 * FLAT_PEAK
    assert limit >= need, f"{name}: limit {limits['memory']} < {need / MIB:.0f} MiB measured need"
    assert _bytes(container["resources"]["requests"]["memory"]) <= limit


def test_the_parity_steps_are_in_the_template() -> None:
    assert {name for name, _ in _containers()} >= PARITY_STEPS
