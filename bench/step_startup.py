"""Step start-up: cold start of `tritonops step ready` (what every Argo step container pays)
vs. `python -c pass`, and proof that steps which do not talk to MLflow never import it.

Also what a normal interpreter exit costs once MLflow is imported (the steps and the CLI that
talk to MLflow skip that teardown: `tritonops.cli._exit`): a process imports MLflow's client
and its SQL store, prints the time, and exits normally; teardown = wall time after the print.

    .venv/bin/python bench/step_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _harness import fmt, median, quiet_mlflow, stack

from tritonops.local.samples import linear_model


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


TEARDOWN_PROBE = "import time, mlflow, mlflow.store.tracking.sqlalchemy_store; print(time.time(), flush=True)"


def teardown() -> float:
    """Seconds a normal exit takes after the work is done, with MLflow imported."""
    out = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE], capture_output=True, text=True, check=True)
    return time.time() - float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    quiet_mlflow()
    with stack() as s:
        s.registry.register("st", linear_model(seed=1))
        env = s.env()
        for step in ("snapshot", "materialize", "load"):
            extra = ["--alias", "champion"] if step == "snapshot" else []
            result, _ = s.cli("step", step, "--model", "st", "--run-id", "bench-1", *extra)
            assert result.returncode == 0, result.stderr
        journal = s.state / "runs" / "st" / "bench-1" / "journal.json"
        loaded = journal.read_bytes()
        cli = [sys.executable, "-m", "tritonops.cli", "step", "ready", "--model", "st", "--run-id", "bench-1"]
        ready, baseline = [], []
        for _ in range(args.runs):
            journal.write_bytes(loaded)  # back to phase "loaded", so every run does the real step
            ready.append(timed(cli, env))
            baseline.append(timed([sys.executable, "-c", "pass"], env))
        journal.write_bytes(loaded)
        probe = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "tritonops.cli", *cli[3:]], env=env, capture_output=True, text=True
        )  # fmt: skip
        imported = {
            line.split("|")[-1].strip().split(".")[0] for line in probe.stderr.splitlines() if "|" in line
        }
        print(f"runs: {args.runs}")
        print(f"tritonops step ready (real step, one replica): {fmt(ready)}")
        print(f"python -c pass:                                {fmt(baseline)}")
        print(
            f"ratio {median(ready) / median(baseline):.1f}x, difference {median(ready) - median(baseline):+.3f}s"
        )
        print(f"imports mlflow: {'mlflow' in imported}; imports onnxruntime: {'onnxruntime' in imported}")
        exits = [teardown() for _ in range(args.runs)]
        print(f"normal exit after importing MLflow (teardown a tritonops step skips): {fmt(exits)}")


if __name__ == "__main__":
    main()
