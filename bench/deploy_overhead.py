"""Deploy overhead: `tritonops deploy` of a small model vs. the physical lower bound.

Lower bound, measured in the same run against the same Triton: copy the artefact
into the repository + one raw HTTP load request + one raw inference.
Prints medians of N runs and their ratio.

    .venv/bin/python bench/deploy_overhead.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import Registry  # noqa: E402

from tritonops.local.processes import start_triton  # noqa: E402
from tritonops.local.samples import linear_model  # noqa: E402

CONFIG = """name: "{name}"
backend: "onnxruntime"
max_batch_size: 64
version_policy: {{ specific: {{ versions: [ {version} ] }} }}
input [ {{ name: "features" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] }} ]
"""


def raw_deploy(url: str, repo: Path, source: Path, name: str, version: int) -> float:
    started = time.perf_counter()
    vdir = repo / name / str(version)
    vdir.mkdir(parents=True)
    shutil.copy2(source, vdir / "model.onnx")
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, version=version))
    requests.post(f"{url}/v2/repository/models/{name}/load", timeout=300).raise_for_status()
    body = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]
    }
    requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=30).raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        repo, state = tmp / "pvc" / "models", tmp / "pvc" / "state"
        repo.mkdir(parents=True)
        registry = Registry(f"sqlite:///{tmp / 'mlflow.db'}", tmp / "artifacts")
        triton, url = start_triton(repo, tmp / "triton.log")
        env = dict(os.environ, MLFLOW_TRACKING_URI=registry.tracking_uri, TRITONOPS_REPO=str(repo),
                   TRITONOPS_STATE_DIR=str(state), TRITONOPS_TRITON_URL=url)  # fmt: skip
        try:
            raw, cli = [], []
            for i in range(args.runs):
                model = linear_model(seed=i + 1)
                source = tmp / f"raw-{i}.onnx"
                onnx.save(model, str(source))
                raw.append(raw_deploy(url, repo, source, "raw", i + 1))

                registry.register("bench", model)
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "-m", "tritonops.cli", "deploy", "--model", "bench", "--alias", "champion", "--json"],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                cli.append(time.perf_counter() - started)
                if result.returncode != 0:
                    raise SystemExit(f"deploy failed: {result.stderr}")
                steps = json.loads(result.stdout)["steps"]
            raw_med, cli_med = statistics.median(raw), statistics.median(cli)
            print(f"runs: {args.runs} (small model, {source.stat().st_size} bytes, one Triton replica)")
            print(
                f"lower bound (copy + raw load + 1 inference): median {raw_med:.3f}s  {np.round(raw, 3).tolist()}"
            )
            print(
                f"tritonops deploy (CLI, new process):         median {cli_med:.3f}s  {np.round(cli, 3).tolist()}"
            )
            print(
                f"ratio deploy / lower bound: {cli_med / raw_med:.2f}x   difference: {cli_med - raw_med:+.2f}s"
            )
            print(f"last deploy's steps: {json.dumps(steps)}")
        finally:
            triton.stop()


if __name__ == "__main__":
    main()
