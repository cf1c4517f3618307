"""Materialize throughput and memory: MLflow artifact store -> repository, vs. `cp` of the same files.

For each size, registers a model whose weights are external data, then times
`tritonops step materialize` (open the registry, resolve, download, ONNX checks,
atomic move; the sha256 is computed by the load step, while Triton loads) and
`cp -r` of the same stored artefact, and records the step's peak RSS.
Peak RSS must stay flat as the model grows: nothing reads a whole model into memory.

The step's time is a fixed part (importing MLflow and opening its registry, whatever the
size) plus a part that grows with the bytes; the last lines separate the two from the
smallest and largest sizes, and compare the growing part with `cp`.

    .venv/bin/python bench/materialize.py [--runs 5] [--sizes-mib 64,256,1024]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from _harness import fmt, median, quiet_mlflow, stack

from tritonops.local.samples import linear_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes-mib", default="64,256,1024")
    args = parser.parse_args()
    quiet_mlflow()
    measured: list[tuple[float, float, float]] = []  # (MiB, step s, cp s)
    with stack() as s:
        env = s.env()
        for mib in [int(x) for x in args.sizes_mib.split(",")]:
            model = f"mat-{mib}"
            version = s.registry.register(
                model, linear_model(seed=1, extra_weights=mib * 2**20 // 4), input_example=None
            )
            stored = max(
                (p.parent for p in s.tmp.joinpath("artifacts").rglob("*.data")),
                key=lambda d: d.stat().st_mtime,
            )
            nbytes = sum(p.stat().st_size for p in stored.rglob("*") if p.is_file())
            step_s, cp_s, rss = [], [], []
            for i in range(args.runs):
                run = f"m{mib}-{i}"
                for step in ("snapshot", "materialize"):
                    cmd = [
                        sys.executable,
                        "-m",
                        "tritonops.cli",
                        "step",
                        step,
                        "--model",
                        model,
                        "--run-id",
                        run,
                    ]
                    cmd += ["--alias", "champion"] if step == "snapshot" else []
                    timer = ["/usr/bin/time", "-f", "%M"] if step == "materialize" else []
                    out = subprocess.run(timer + cmd, env=env, capture_output=True, text=True, check=True)
                    if step == "materialize":
                        rss.append(int(out.stderr.strip().splitlines()[-1]) / 1024)
                journal = json.loads((s.state / "runs" / model / run / "journal.json").read_text())
                step_s.append(next(x["duration_s"] for x in journal["steps"] if x["name"] == "materialize"))
                # Undo, so the next run downloads again (a fresh version directory).
                assert s.cli("step", "rollback", "--model", model, "--run-id", run)[0].returncode == 0
                shutil.rmtree(s.state / "quarantine", ignore_errors=True)
                started = time.perf_counter()
                subprocess.run(["cp", "-r", str(stored), str(s.tmp / f"cp-{mib}-{i}")], check=True)
                cp_s.append(time.perf_counter() - started)
                shutil.rmtree(s.tmp / f"cp-{mib}-{i}")
            mibs = nbytes / 2**20
            print(f"\n{mibs:.0f} MiB artefact (version {version}), {args.runs} runs")
            print(f"  materialize step: {fmt(step_s)}  -> {mibs / median(step_s):7.1f} MiB/s")
            print(f"  cp -r:            {fmt(cp_s)}  -> {mibs / median(cp_s):7.1f} MiB/s")
            print(f"  throughput ratio materialize/cp: {median(cp_s) / median(step_s):.2f}x")
            print(
                f"  peak RSS of the materialize process: median {median(rss):.0f} MiB  runs {[round(x) for x in rss]}"
            )
            measured.append((mibs, median(step_s), median(cp_s)))
    if len(measured) >= 2:
        (m0, t0, c0), (m1, t1, c1) = measured[0], measured[-1]
        per_gib, cp_per_gib = (t1 - t0) / (m1 - m0) * 1024, (c1 - c0) / (m1 - m0) * 1024
        fixed = t0 - (t0 - t1) / (m0 - m1) * m0 if m1 != m0 else t0
        print(f"\nfrom {m0:.0f} MiB to {m1:.0f} MiB:")
        print(f"  fixed part of the step (size 0, extrapolated): {fixed:.3f}s")
        print(f"  each further GiB: materialize {per_gib:.3f}s, cp {cp_per_gib:.3f}s")
        print(f"  throughput ratio of the growing part materialize/cp: {cp_per_gib / per_gib:.2f}x")


if __name__ == "__main__":
    main()
