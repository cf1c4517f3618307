"""Rollback time: from the failing check to the previous version verified on every replica.

Each run deploys a candidate that answers NaN, so smoke fails on Triton and the
engine rolls back. Measured from the journal: the rollback step's duration
(the failure was already detected when it starts). Baseline, same run: a raw
reload of the previous version on every replica (what restoring costs when the
previous version is no longer in memory).

    .venv/bin/python bench/rollback_time.py [--runs 5] [--replicas 2]
"""

from __future__ import annotations

import argparse
import json
import time

import requests
from _harness import fmt, median, quiet_mlflow, stack

from tritonops.local.samples import linear_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    quiet_mlflow()
    with stack(args.replicas) as s:
        s.registry.register("rb", linear_model(seed=1))
        result, _ = s.cli("deploy", "--model", "rb", "--alias", "champion")
        assert result.returncode == 0, result.stderr
        rollback, reload = [], []
        for i in range(args.runs):
            s.registry.register("rb", linear_model(seed=i + 2, produce_nan=True))
            result, _ = s.cli(
                "deploy", "--model", "rb", "--alias", "champion", "--json", "--latency-requests", "0"
            )
            assert result.returncode == 3, result.stdout + result.stderr
            record = json.loads(result.stdout)
            rollback.append(record["steps"]["rollback"])
            # Baseline: unload and load the committed version again on every replica.
            started = time.perf_counter()
            for url in s.urls:
                requests.post(f"{url}/v2/repository/models/rb/unload", timeout=60).raise_for_status()
            for url in s.urls:
                requests.post(f"{url}/v2/repository/models/rb/load", timeout=600).raise_for_status()
            reload.append(time.perf_counter() - started)
        print(f"replicas: {args.replicas}, runs: {args.runs}")
        print(f"rollback (failure detected -> previous verified on every replica): {fmt(rollback)}")
        print(f"baseline: raw unload + reload of the previous version everywhere: {fmt(reload)}")
        print(f"ratio rollback / reload: {median(rollback) / median(reload):.3f}x")


if __name__ == "__main__":
    main()
