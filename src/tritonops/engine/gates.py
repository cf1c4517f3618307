"""Verification gates beyond the smoke test: golden parity and latency.

Both measure, record what they measured, and say pass or fail; the engine
records the report in the journal (and so in history) either way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritonops.adapters.triton import TritonReplica
from tritonops.core.signature import Array, Signature
from tritonops.errors import SetupIncomplete


@dataclass(frozen=True)
class GateReport:
    passed: bool
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "detail": self.detail, **self.measured}


def reference_outputs(version_dir: Path, inputs: dict[str, Array]) -> dict[str, Array]:
    """What onnxruntime, run here on the same files, answers for ``inputs`` (model-shaped)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        # The environment's fault, not the candidate's: a verification failure would make the
        # follower hold this version back for good.
        raise SetupIncomplete(
            "the golden-parity gate needs onnxruntime in this environment; install it "
            "or turn the gate off with --no-parity-gate"
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(version_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, (np.asarray(a) for a in session.run(names, inputs)), strict=True))


def parity(
    reference: dict[str, Array],
    answers: Sequence[dict[str, Array]],
    rtol: float,
    atol: float,
) -> GateReport:
    """Every replica's answer must match onnxruntime's on the same files (``reference``).

    Catches what still "infers fine" but is wrong: a config that reorders or
    retypes tensors, a backend that converts dtypes, a replica with other files.
    """
    worst = 0.0
    problems = []
    for i, answer in enumerate(answers):
        for name, expected in reference.items():
            got = answer.get(name)
            if got is not None and got.shape != np.shape(expected) and got.size == np.size(expected):
                got = got.reshape(np.shape(expected))  # the config's reshape: clients see other dims
            if got is None or got.shape != np.shape(expected):
                problems.append(f"replica {i} output {name!r} shape {None if got is None else got.shape}")
                continue
            if np.issubdtype(np.asarray(expected).dtype, np.number):
                diff = float(
                    np.max(np.abs(got.astype(np.float64) - np.asarray(expected, np.float64)), initial=0.0)
                )
                worst = max(worst, diff)
                if not np.allclose(got, expected, rtol=rtol, atol=atol):
                    problems.append(f"replica {i} output {name!r} differs by up to {diff:.3g}")
            elif not np.array_equal(got, expected):
                problems.append(f"replica {i} output {name!r} differs")
    measured = {"max_abs_diff": worst, "rtol": rtol, "atol": atol, "replicas": len(answers)}
    if problems:
        return GateReport(False, "; ".join(problems), measured)
    return GateReport(True, f"matches onnxruntime within rtol={rtol}, atol={atol}", measured)


def _p95_ms(samples: list[float]) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, 95)) if samples else 0.0


def latency(
    replicas: Sequence[TritonReplica],
    candidate: tuple[str, int],
    production: tuple[str, int] | None,
    signature: Signature,
    inputs: dict[str, Array],
    requests: int,
    budget_ms: float,
    factor: float,
    floor_ms: float = 5.0,
    warmup: int = 3,
) -> GateReport:
    """p95 of the candidate under an absolute budget and under ``factor`` x production's p95.

    Both are measured now, interleaved request by request on each replica, one replica after
    another, so they share whatever else the machine is doing. The slowest replica counts.
    """
    outputs = [o.name for o in signature.outputs]
    targets = [candidate] + ([production] if production else [])

    def measure(replica: TritonReplica) -> tuple[float, float]:
        for name, version in targets:
            for _ in range(warmup):
                replica.infer(name, version, inputs, outputs)
        samples: dict[str, list[float]] = {"candidate": [], "production": []}
        for _ in range(requests):
            for label, (name, version) in zip(("candidate", "production"), targets, strict=False):
                started = time.perf_counter()
                replica.infer(name, version, inputs, outputs)
                samples[label].append(time.perf_counter() - started)
        return _p95_ms(samples["candidate"]), _p95_ms(samples["production"])

    # One replica at a time, on purpose: replicas that share CPUs (co-located pods, this test
    # rig) measured together slow each other's production requests and hide a regression.
    per_replica = [measure(replica) for replica in replicas]
    cand_p95 = max((c for c, _ in per_replica), default=0.0)
    prod_p95 = max((p for _, p in per_replica), default=0.0)
    measured = {
        "requests_per_replica": requests,
        "candidate_p95_ms": round(cand_p95, 3),
        "production_p95_ms": round(prod_p95, 3) if production else None,
        "budget_ms": budget_ms,
        "factor": factor,
        "floor_ms": floor_ms,
    }
    if cand_p95 > budget_ms:
        return GateReport(
            False, f"candidate p95 {cand_p95:.1f} ms exceeds the budget of {budget_ms:.0f} ms", measured
        )
    if production and cand_p95 > floor_ms and cand_p95 > factor * prod_p95:
        return GateReport(
            False,
            f"candidate p95 {cand_p95:.1f} ms is more than {factor:g}x production's {prod_p95:.1f} ms",
            measured,
        )
    return GateReport(True, f"candidate p95 {cand_p95:.1f} ms (production {prod_p95:.1f} ms)", measured)
