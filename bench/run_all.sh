#!/usr/bin/env bash
# `make bench`: every benchmark once, in order, their output written verbatim to bench/RESULTS.md
# (and to the terminal) under a header that says which machine, versions and commit ran them.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-../.venv/bin/python}
out=RESULTS.md.new
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` (bench/run_all.sh): the verbatim output of one run, nothing edited."
  echo "Every benchmark prints medians of several runs next to a baseline measured in the same run."
  echo
  echo '```'
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:   $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- ../src ../bench || echo ' (with uncommitted changes)')"
  echo "machine:  $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -m)"
  echo "python:   $($PY -c 'import sys; print(sys.version.split()[0])')"
  echo "packages: $($PY -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("nvidia-pytriton", "onnxruntime", "mlflow", "tritonclient", "numpy")))')"
  echo '```'
} > "$out"
for script in deploy_overhead fleet_scaling materialize step_memory rollback_time step_startup serving_impact peer_baseline; do
  {
    echo
    echo "## $script"
    echo
    echo '```'
    echo "\$ python bench/$script.py"
  } >> "$out"
  # MLflow's own chatter (registrations, run links) goes to stderr; the benchmark's lines to stdout.
  "$PY" "$script.py" 2>>"../.bench-stderr.log" | tee -a "$out"
  echo '```' >> "$out"
done
mv "$out" RESULTS.md
echo "wrote bench/RESULTS.md"
