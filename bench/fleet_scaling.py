"""Every replica at once: a deploy's replica steps on 1, 2, 3 and 4 replicas, same run, same machine.

What is timed is what touches the replicas: the load, ready, smoke (with its gates) and commit
steps, from the deploy's own step record (the registry and the download do not scale with
replicas). A sequential fleet would take N times the one-replica time; the target is that 3
replicas cost at most 1.8x and 4 at most 2x one replica, on this 2-core machine where four Triton
processes share two cores.

    .venv/bin/python bench/fleet_scaling.py [--runs 5] [--replicas 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json

from _harness import fmt, median, quiet_mlflow, stack

from tritonops.local.samples import linear_model

REPLICA_STEPS = ("load", "ready", "smoke", "commit")


def measure(replicas: int, runs: int) -> list[float]:
    with stack(replicas=replicas) as s:
        s.registry.register("fleet", linear_model(seed=1))
        first, _ = s.cli("deploy", "--model", "fleet", "--alias", "champion", "--json")
        if first.returncode != 0:
            raise SystemExit(f"first deploy failed: {first.stdout}{first.stderr}")
        totals = []
        for i in range(runs):
            s.registry.register("fleet", linear_model(seed=i + 2))
            result, _ = s.cli("deploy", "--model", "fleet", "--alias", "champion", "--json")
            if result.returncode != 0:
                raise SystemExit(f"deploy failed: {result.stdout}{result.stderr}")
            steps = json.loads(result.stdout)["steps"]
            totals.append(sum(steps[name] for name in REPLICA_STEPS))
        return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args()
    quiet_mlflow()
    results = {}
    print(f"steps timed: {' + '.join(REPLICA_STEPS)} (from each deploy's record); {args.runs} runs each")
    for n in args.replicas:
        results[n] = measure(n, args.runs)
        print(f"  {n} replica(s): {fmt(results[n])}")
    base = median(results[args.replicas[0]])
    for n in args.replicas[1:]:
        print(
            f"  {n} replicas / {args.replicas[0]}: {median(results[n]) / base:.2f}x (sequential would be {n}x)"
        )


if __name__ == "__main__":
    main()
