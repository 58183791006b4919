#!/usr/bin/env bash
# The CPU speed goals side by side on this machine (scripts/perf_check.py): in-process fused
# vs unfused and the memcpy bound, shm and UCX processes vs the MPI pipeline, planning time
# and memory. Builds what it runs (Release, in build/ unless a directory is given). Not a CI
# gate; paste its output into docs/benchmarks.md with the date and machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build}
scripts/install_deps.sh
scripts/configure.sh "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)" --target fusco_bench fusco_plan_microbench
exec python3 scripts/perf_check.py "$build"
