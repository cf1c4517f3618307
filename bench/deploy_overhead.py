"""Deploy overhead: `tritonops deploy` vs. the *safe* bound, measured in the same run.

Safe bound, against the same Triton, raw API calls only: copy the artefact into the repository,
load it under a staging name, one inference, unload the staging copy, load it as production, one
inference — the least any deploy must do to never show an unverified version to production
traffic (two loads). The one-load bound (copy + load + inference) is printed beside it. The deploy
does more (registry lookup and download, checks, parity and latency gates, journal), so the
difference says what that costs. Small model, and a model with ~1 GiB of external data
(`--big-gib 0` skips it).

The MLflow floor is what any deploy that takes its model from the registry pays on top of the
copy, measured in a new process like the deploy: import MLflow, open the registry, resolve the
alias and where the version's files are (the download itself stands against the bound's copy).
The deploy minus the safe bound minus that floor is tritonops' own work (download vs copy,
journal, checks, gates, tags, metrics).

    .venv/bin/python bench/deploy_overhead.py [--runs 5] [--big-gib 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
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


def _infer(url: str, name: str) -> None:
    body = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]
    }
    requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=60).raise_for_status()


def _load(url: str, name: str) -> None:
    requests.post(f"{url}/v2/repository/models/{name}/load", timeout=600).raise_for_status()


def _unload(url: str, name: str) -> None:
    requests.post(f"{url}/v2/repository/models/{name}/unload", timeout=600).raise_for_status()


def raw_deploy(url: str, repo: Path, source_dir: Path, name: str, version: int, safe: bool) -> float:
    started = time.perf_counter()
    vdir = repo / name / str(version)
    shutil.copytree(source_dir, vdir)
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, version=version))
    if safe:
        staging = f"_staging.{name}"
        (repo / staging).mkdir(exist_ok=True)
        shutil.copytree(vdir, repo / staging / str(version), copy_function=os.link)
        (repo / staging / "config.pbtxt").write_text(CONFIG.format(name=staging, version=version))
        _load(url, staging)
        _infer(url, staging)
        _unload(url, staging)
    _load(url, name)
    _infer(url, name)
    elapsed = time.perf_counter() - started
    _unload(url, name)
    if safe:
        shutil.rmtree(repo / f"_staging.{name}")
    return elapsed


MLFLOW_FLOOR = """
import os, sys
from mlflow import MlflowClient
name, uri = sys.argv[1], os.environ["MLFLOW_TRACKING_URI"]
client = MlflowClient(uri)
mv = client.get_model_version_by_alias(name, "champion")
print(client.get_model_version_download_uri(name, mv.version), flush=True)
os._exit(0)
"""


def mlflow_floor(s: Stack, model_name: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", MLFLOW_FLOOR, model_name], env=s.env(), check=True, capture_output=True
    )
    return time.perf_counter() - started


def measure(s: Stack, runs: int, label: str, extra_weights: int) -> dict[str, float]:
    raw, safe, deploy, floor, steps = [], [], [], [], {}
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
        # Each timing starts with nothing left to write back: the previous one's gigabyte of
        # dirty pages would otherwise land on whichever measurement comes next.
        os.sync()
        raw.append(raw_deploy(s.urls[0], s.repo, src, f"raw-{label}", i + 1, safe=False))
        shutil.rmtree(s.repo / f"raw-{label}" / str(i + 1))
        os.sync()
        safe.append(raw_deploy(s.urls[0], s.repo, src, f"raw-{label}", i + 1, safe=True))
        shutil.rmtree(src)
        s.registry.register(model_name, model)
        floor.append(mlflow_floor(s, model_name))
        os.sync()
        result, seconds = s.cli("deploy", "--model", model_name, "--alias", "champion", "--json")
        if result.returncode != 0:
            raise SystemExit(f"deploy failed: {result.stdout}{result.stderr}")
        deploy.append(seconds)
        steps = json.loads(result.stdout)["steps"]
        shutil.rmtree(s.repo / f"raw-{label}" / str(i + 1))  # keep disk use flat
    size = sum(p.stat().st_size for p in (s.repo / model_name / str(runs)).rglob("*") if p.is_file())
    print(f"\n{label}: {size / 2**20:.1f} MiB artefact, {runs} runs, one replica")
    print(f"  one-load bound (copy + load + 1 inference):          {fmt(raw)}")
    print(f"  safe bound (copy + staging load + production load):  {fmt(safe)}")
    print(f"  tritonops deploy (CLI, new process):                 {fmt(deploy)}")
    print(
        f"  vs safe bound: {median(deploy) / median(safe):.2f}x, difference {median(deploy) - median(safe):+.2f}s"
    )
    print(f"  MLflow floor (import, open registry, resolve):      {fmt(floor)}")
    own = median(deploy) - median(safe) - median(floor)
    print(f"  deploy - safe bound - MLflow floor (tritonops' own work): {own:+.2f}s")
    print(f"  last deploy by step: {json.dumps({k: round(v, 2) for k, v in steps.items()})}")
    return {"raw": median(raw), "safe": median(safe), "deploy": median(deploy), "floor": median(floor)}


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
