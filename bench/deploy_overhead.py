"""Deploy overhead: `tritonops deploy` vs. the physical lower bound, measured in the same run.

Lower bound, against the same Triton: copy the artefact into the repository + one
raw HTTP load request + one raw inference. The deploy does strictly more (registry
lookup and download, checks, a staging load, parity and latency gates, the switch),
so the ratio says what safety costs. Small model, and a model with ~1 GiB of
external data (`--big-gib 0` skips it).

    .venv/bin/python bench/deploy_overhead.py [--runs 5] [--big-gib 1.0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import onnx
import requests
from _harness import Stack, fmt, median, quiet_mlflow, stack

from tritonops.local.samples import linear_model

CONFIG = """name: "{name}"
backend: "onnxruntime"
max_batch_size: 64
version_policy: {{ specific: {{ versions: [ {version} ] }} }}
input [ {{ name: "features" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] }} ]
"""


def raw_deploy(url: str, repo: Path, source_dir: Path, name: str, version: int) -> float:
    started = time.perf_counter()
    vdir = repo / name / str(version)
    shutil.copytree(source_dir, vdir)
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, version=version))
    requests.post(f"{url}/v2/repository/models/{name}/load", timeout=600).raise_for_status()
    body = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]
    }
    requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=60).raise_for_status()
    elapsed = time.perf_counter() - started
    requests.post(f"{url}/v2/repository/models/{name}/unload", timeout=600).raise_for_status()
    return elapsed


def measure(s: Stack, runs: int, label: str, extra_weights: int) -> dict[str, float]:
    raw, deploy, steps = [], [], {}
    model_name = f"bench-{label}"
    for i in range(runs):
        model = linear_model(seed=i + 1, extra_weights=extra_weights)
        src = s.tmp / f"src-{label}-{i}"
        src.mkdir()
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # onnx.save with external data rewrites the proto it is given
        onnx.save(
            copy, str(src / "model.onnx"), save_as_external_data=extra_weights > 0, location="weights.data"
        )
        raw.append(raw_deploy(s.urls[0], s.repo, src, f"raw-{label}", i + 1))
        shutil.rmtree(src)
        s.registry.register(model_name, model)
        result, seconds = s.cli("deploy", "--model", model_name, "--alias", "champion", "--json")
        if result.returncode != 0:
            raise SystemExit(f"deploy failed: {result.stdout}{result.stderr}")
        deploy.append(seconds)
        steps = json.loads(result.stdout)["steps"]
        shutil.rmtree(s.repo / f"raw-{label}" / str(i + 1))  # keep disk use flat
    size = sum(p.stat().st_size for p in (s.repo / model_name / str(runs)).rglob("*") if p.is_file())
    print(f"\n{label}: {size / 2**20:.1f} MiB artefact, {runs} runs, one replica")
    print(f"  lower bound (copy + raw load + 1 inference): {fmt(raw)}")
    print(f"  tritonops deploy (CLI, new process):         {fmt(deploy)}")
    print(f"  ratio {median(deploy) / median(raw):.2f}x, difference {median(deploy) - median(raw):+.2f}s")
    print(f"  last deploy by step: {json.dumps({k: round(v, 2) for k, v in steps.items()})}")
    return {"raw": median(raw), "deploy": median(deploy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big-gib", type=float, default=1.0)
    args = parser.parse_args()
    quiet_mlflow()
    with stack() as s:
        measure(s, args.runs, "small", 0)
        if args.big_gib > 0:
            measure(s, args.runs, "big", int(args.big_gib * 2**30 / 4))


if __name__ == "__main__":
    main()
