"""Serving impact: what a production client sees during deploys vs. the same client idle.

A client sends unversioned requests back to back to every replica for the same
wall time twice: once with nothing else happening, once while tritonops runs
deploys (a good one, a failing one, alternately). Prints p50/p99 and errors.

    .venv/bin/python bench/serving_impact.py [--deploys 5] [--replicas 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _harness import quiet_mlflow, stack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.test_replicas import Traffic  # noqa: E402

from tritonops.local.samples import linear_model  # noqa: E402


def run_clients(urls: list[str], seconds: float | None, during=None) -> tuple[list[float], int, float]:
    clients = [Traffic(u, "si") for u in urls]
    for c in clients:
        c.start()
    started = time.perf_counter()
    if during:
        during()
    else:
        time.sleep(seconds or 1)
    elapsed = time.perf_counter() - started
    for c in clients:
        c.halt.set()
    for c in clients:
        c.join()
    return [x for c in clients for x in c.latencies], sum(c.failed for c in clients), elapsed


def describe(label: str, lat: list[float], errors: int, elapsed: float) -> tuple[float, float]:
    a = np.asarray(lat) * 1000
    p50, p99 = float(np.percentile(a, 50)), float(np.percentile(a, 99))
    print(
        f"{label:<22} {len(a):6d} requests in {elapsed:5.1f}s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}"
    )
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    quiet_mlflow()
    with stack(args.replicas) as s:
        s.registry.register("si", linear_model(seed=1))
        assert s.cli("deploy", "--model", "si", "--alias", "champion")[0].returncode == 0
        outcomes: list[int] = []

        def deploys() -> None:
            for i in range(args.deploys):
                s.registry.register("si", linear_model(seed=i + 2, produce_nan=i % 2 == 1))
                outcomes.append(s.cli("deploy", "--model", "si", "--alias", "champion")[0].returncode)

        busy = run_clients(s.urls, None, deploys)
        idle = run_clients(s.urls, busy[2])
        print(
            f"replicas: {args.replicas}; deploys during the busy window: {args.deploys} (exit codes {outcomes})"
        )
        i50, i99 = describe("no deploy running", *idle)
        b50, b99 = describe("deploys running", *busy)
        print(
            f"ratio busy/idle: p50 {b50 / i50:.2f}x, p99 {b99 / i99:.2f}x; errors during deploys: {busy[1]}"
        )


if __name__ == "__main__":
    main()
