"""Peer baseline: the same update done with NVIDIA's MLflow deployment plugin for Triton.

`mlflow-tritonserver` (the PyPI packaging of the plugin) needs MLflow < 3, so it
gets its own virtualenv (`.bench-peer-venv`, created on first use) and its own
sqlite registry. Both tools update the same local Triton; each run registers a
new version and times the update command. A last round deploys a model that
answers NaN with both tools and reports what each left in production.

The plugin writes a config.pbtxt with no inputs/outputs and relies on Triton's
config auto-completion, which the local Python-based onnxruntime backend cannot
do; so the registered artefact carries a full config.pbtxt, which the plugin
copies (its documented path for preconfigured models).

    .venv/bin/python bench/peer_baseline.py [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
import requests
from _harness import ROOT, fmt, median, quiet_mlflow, stack

from tritonops.local.samples import linear_model

PEER_VENV = ROOT / ".bench-peer-venv"
PEER_PKGS = [
    "mlflow-tritonserver==1.1.0",  # pins tritonclient[all]==2.35.0, whose gRPC side needs protobuf < 5
    "mlflow<3",
    "sqlalchemy<2.1",  # MLflow 2.x breaks on SQLAlchemy 2.1
    "protobuf==3.20.3",
    "onnx==1.17.0",
    "onnxruntime==1.26.0",  # mlflow.onnx.log_model validates with it; the newest that fits protobuf 3
    "numpy<2",
]
CONFIG = """name: "peer"
backend: "onnxruntime"
max_batch_size: 64
input [ { name: "features" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] } ]
"""

REGISTER = textwrap.dedent(
    """
    import sys, mlflow, onnx
    from pathlib import Path
    uri, path, config = sys.argv[1], sys.argv[2], sys.argv[3]
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        mlflow.onnx.log_model(onnx.load(path), artifact_path="model", registered_model_name="peer")
        mlflow.log_artifact(config, "model")
    """
)


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / f".installed-{hashlib.sha256(' '.join(PEER_PKGS).encode()).hexdigest()[:12]}"
    if not stamp.exists():  # a half-made venv (an install that failed) is made again
        print(f"creating {PEER_VENV} with {PEER_PKGS} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PKGS], check=True)
        stamp.touch()
    return python


def infer(url: str, model: str) -> list[float]:
    body = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]
    }
    return requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30).json()["outputs"][0]["data"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    quiet_mlflow()
    python = peer_python()
    for n in args.replicas:
        compare(python, n, args.runs, show_nan=n == args.replicas[-1])


def compare(python: Path, replicas: int, runs: int, show_nan: bool) -> None:
    """The same job on ``replicas`` Tritons: every replica serves the new version.

    The plugin updates one Triton per call (its TRITON_URL), so it runs once per replica;
    tritonops deploys to every replica in one run, with every gate on.
    """
    with stack(replicas) as s:
        peer_uri = f"sqlite:///{s.tmp / 'peer.db'}"
        # The plugin's MLflow 2 puts artefacts under ./mlruns: it runs in the scratch dir.
        peer_env = dict(os.environ, MLFLOW_TRACKING_URI=peer_uri, TRITON_MODEL_REPO=str(s.repo))
        # The previous round's registry set an experiment id in this process's environment;
        # it names nothing in this round's fresh registry.
        for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            peer_env.pop(key, None)
        (s.tmp / "config.pbtxt").write_text(CONFIG)

        def peer_register(model: onnx.ModelProto, i: int) -> None:
            path = s.tmp / f"peer-{i}.onnx"
            onnx.save(model, str(path))
            out = subprocess.run([str(python), "-c", REGISTER, peer_uri, str(path), str(s.tmp / "config.pbtxt")],
                           env=peer_env, cwd=s.tmp, check=False, capture_output=True, text=True)  # fmt: skip
            if out.returncode != 0:
                raise SystemExit(f"registering the plugin's model failed: {out.stderr[-2000:]}")

        def peer_update(version: int, verb: str = "update") -> tuple[int, float, str]:
            started, code, err = time.perf_counter(), 0, ""
            for url in s.urls:  # one plugin call per Triton
                out = subprocess.run(
                    [str(PEER_VENV / "bin" / "mlflow"), "deployments", verb, "-t", "triton", "--name", "peer",
                     "-m", f"models:/peer/{version}", "--flavor", "onnx"],
                    env=dict(peer_env, TRITON_URL=url.removeprefix("http://")), cwd=s.tmp,
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                code, err = code or out.returncode, err or out.stderr[-300:]
            return code, time.perf_counter() - started, err

        peer_register(linear_model(seed=1), 0)
        code, _, err = peer_update(1, "create")
        if code != 0:
            raise SystemExit(f"the plugin could not create the deployment: {err}")
        s.registry.register("ours", linear_model(seed=1))
        assert s.cli("deploy", "--model", "ours", "--alias", "champion")[0].returncode == 0

        peer_t, ours_t = [], []
        for i in range(runs):
            model = linear_model(seed=i + 2)
            peer_register(model, i + 1)
            code, seconds, err = peer_update(i + 2)
            assert code == 0, err
            peer_t.append(seconds)
            s.registry.register("ours", model)
            result, seconds = s.cli("deploy", "--model", "ours", "--alias", "champion")
            assert result.returncode == 0, result.stderr
            ours_t.append(seconds)
        print(f"\nruns: {runs}, small model, {replicas} replica(s)")
        print(f"mlflow deployments update -t triton (plugin, once per replica): {fmt(peer_t)}")
        print(f"tritonops deploy (every replica, every gate):                 {fmt(ours_t)}")
        print(f"ratio tritonops / plugin: {median(ours_t) / median(peer_t):.2f}x")
        if not show_nan:
            return

        # The same broken model (answers NaN) through both.
        url = s.urls[0]
        bad = linear_model(seed=99, produce_nan=True)
        peer_register(bad, 99)
        code, _, _ = peer_update(runs + 2)
        peer_out = infer(url, "peer")
        s.registry.register("ours", bad)
        result, _ = s.cli("deploy", "--model", "ours", "--alias", "champion", "--json")
        ours_out = infer(url, "ours")
        print("\na version that answers NaN:")
        print(f"  plugin:    exit {code}; production now answers {np.round(peer_out, 4).tolist()}")
        outcome = json.loads(result.stdout)["outcome"]
        print(
            f"  tritonops: exit {result.returncode} ({outcome}); production answers {np.round(ours_out, 4).tolist()}"
        )


if __name__ == "__main__":
    main()
