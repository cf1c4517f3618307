"""Serving impact: what a production client sees during deploys vs. the same client idle.

A client per replica sends unversioned requests back to back. Windows alternate: a busy window
while tritonops runs one deploy (good and failing ones alternately: a commit, or a rollback), then
an idle window of the same length with nothing else happening. Prints the median over the windows
of each window's p50 and p99, and every error.

    .venv/bin/python bench/serving_impact.py [--windows 5] [--replicas 2]
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
    parser.add_argument("--windows", type=int, default=5, help="busy windows (each followed by an idle one)")
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    quiet_mlflow()
    with stack(args.replicas) as s:
        s.registry.register("si", linear_model(seed=1))
        assert s.cli("deploy", "--model", "si", "--alias", "champion")[0].returncode == 0
        outcomes: list[int] = []
        busy_p, idle_p = [], []
        busy_errors = idle_errors = busy_requests = idle_requests = 0
        for i in range(args.windows):
            s.registry.register("si", linear_model(seed=i + 2, produce_nan=i % 2 == 1))

            def deploy() -> None:
                outcomes.append(s.cli("deploy", "--model", "si", "--alias", "champion")[0].returncode)

            busy = run_clients(s.urls, None, deploy)
            idle = run_clients(s.urls, busy[2])
            busy_p.append(describe(f"busy window {i + 1}", *busy))
            idle_p.append(describe(f"idle window {i + 1}", *idle))
            busy_errors, idle_errors = busy_errors + busy[1], idle_errors + idle[1]
            busy_requests, idle_requests = busy_requests + len(busy[0]), idle_requests + len(idle[0])
        b50, b99 = float(np.median([p[0] for p in busy_p])), float(np.median([p[1] for p in busy_p]))
        i50, i99 = float(np.median([p[0] for p in idle_p])), float(np.median([p[1] for p in idle_p]))
        print(f"replicas: {args.replicas}; one deploy per busy window (exit codes {outcomes})")
        print(
            f"medians over {args.windows} windows: busy p50 {b50:.2f} ms p99 {b99:.2f} ms; idle p50 {i50:.2f} ms p99 {i99:.2f} ms"
        )
        print(
            f"ratio busy/idle: p50 {b50 / i50:.2f}x, p99 {b99 / i99:.2f}x; "
            f"errors: {busy_errors} of {busy_requests} during deploys, {idle_errors} of {idle_requests} idle"
        )


if __name__ == "__main__":
    main()
