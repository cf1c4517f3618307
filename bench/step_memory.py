"""Peak memory of every step, 64 MiB to 1 GiB models: what the WorkflowTemplate's limits must fit.

Each size is deployed step by step (`tritonops step <name>`, one process per step, as Argo runs
them) against a real Triton and MLflow registry; each step's peak RSS is its own, read from the
kernel when the process is reaped (`/usr/bin/time`). Medians of --runs deploys per size. The parity gate
runs the model inside the `smoke` step (and computes its reference inside `load`, while Triton
loads): those two grow with the model; `--parity-max-bytes` bounds them.

    .venv/bin/python bench/step_memory.py [--runs 5] [--sizes-mib 64,256,1024]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _harness import median, quiet_mlflow, stack

from tritonops.local.samples import linear_model

STEPS = ("snapshot", "materialize", "load", "ready", "smoke", "commit")


def run_step(env: dict[str, str], step: str, model: str, run: str) -> float:
    """Peak RSS (MiB) of one step process.

    Through /usr/bin/time: a peak read straight from this process's child would include the
    pages it inherited from this (large) benchmark process before exec.
    """
    cmd = [sys.executable, "-m", "tritonops.cli", "step", step, "--model", model, "--run-id", run]
    cmd += ["--alias", "champion"] if step == "snapshot" else []
    out = subprocess.run(
        ["/usr/bin/time", "-f", "peak_kib=%M", *cmd], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed: {out.stdout}{out.stderr[-2000:]}")
    return int(out.stderr.rsplit("peak_kib=", 1)[1].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes-mib", default="64,256,1024")
    args = parser.parse_args()
    quiet_mlflow()
    sizes = [int(x) for x in args.sizes_mib.split(",")]
    table: dict[int, dict[str, float]] = {}
    with stack() as s:
        env = s.env(TRITONOPS_LATENCY_REQUESTS="5")
        for mib in sizes:
            model = f"mem-{mib}"
            peaks: dict[str, list[float]] = {step: [] for step in STEPS}
            for i in range(args.runs):
                s.registry.register(
                    model, linear_model(seed=i + 1, extra_weights=mib * 2**20 // 4), input_example=None
                )
                for step in STEPS:
                    peaks[step].append(run_step(env, step, model, f"mem{mib}-{i}"))
            table[mib] = {step: median(values) for step, values in peaks.items()}
    print(f"peak RSS per step (MiB, median of {args.runs} deploys per size)")
    print("  model size  " + "".join(f"{step:>12}" for step in STEPS))
    for mib, row in table.items():
        print(f"  {mib:>6} MiB  " + "".join(f"{row[step]:>12.0f}" for step in STEPS))
    largest = max(max(row.values()) for row in table.values())
    print(f"largest step peak: {largest:.0f} MiB (at {sizes[-1]} MiB model)")


if __name__ == "__main__":
    main()
