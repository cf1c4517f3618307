"""Materialize throughput and memory: MLflow artifact store -> repository, vs. `cp` of the same files.

For each size, registers a model whose weights are external data, then times
`tritonops step materialize` (open the registry, resolve, download, ONNX checks,
atomic move; the sha256 is computed by the load step, while Triton loads) and
`cp -r` of the same stored artefact, and records the step's peak RSS.
Peak RSS must stay flat as the model grows: nothing reads a whole model into memory.

The step's time is a fixed part (importing MLflow and opening its registry, whatever the
size) plus the download, the part that grows with the bytes: the step logs how long its
download took, and that is compared with `cp` too.

    .venv/bin/python bench/materialize.py [--runs 5] [--sizes-mib 64,256,1024]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time

from _harness import fmt, median, quiet_mlflow, stack

from tritonops.local.samples import linear_model

DOWNLOADED = re.compile(r"downloaded model=\S+ version=\d+ bytes=\d+ in ([\d.]+)s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes-mib", default="64,256,1024")
    args = parser.parse_args()
    quiet_mlflow()
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
            step_s, download_s, cp_s, rss = [], [], [], []
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
                        download_s.append(float(DOWNLOADED.findall(out.stderr)[-1]))
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
            print(f"  the step's download: {fmt(download_s)}  -> {mibs / median(download_s):7.1f} MiB/s")
            print(f"  throughput ratio download/cp: {median(cp_s) / median(download_s):.2f}x")
            print(
                f"  rest of the step (MLflow import, registry, checks): {median(step_s) - median(download_s):.3f}s"
            )
            print(
                f"  peak RSS of the materialize process: median {median(rss):.0f} MiB  runs {[round(x) for x in rss]}"
            )


if __name__ == "__main__":
    main()
