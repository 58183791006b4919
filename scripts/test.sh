#!/usr/bin/env bash
# Builds fusco and runs every test: style checks, the release build's tests (unit, in-process
# multi-rank, Python package, installed-package, public headers, GPU tests that skip without a
# GPU), a benchmark smoke run that must report no wrong value, the GPU check script in its
# no-GPU mode (built against the NCCL wheel PyTorch users have), then the unit and multi-rank tests
# and the GPU engine on its host backend (ranks as threads, lazy streams) again under
# AddressSanitizer + UndefinedBehaviorSanitizer and under ThreadSanitizer, and the libFuzzer
# targets for a bounded time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

scripts/install_deps.sh
# CI runs as root, where the simulated-machine tests (network namespaces) must run, not skip.
if [ "$(id -u)" -eq 0 ]; then export FUSCO_REQUIRE_NAMESPACES=1; fi

echo "== release build"
scripts/configure.sh build -DCMAKE_BUILD_TYPE=Release -DFUSCO_WERROR=ON
cmake --build build -j "$jobs"

echo "== style"
scripts/check_style.sh build

echo "== benchmark smoke runs"
build/bench/fusco_bench -r 6 -p 4 -b 16 -e 64 -f 4 -H 1000 -k 6 -E 48 -n 2 -w 1 -c 1
build/bench/fusco_bench -r 5 -p 2 -b 33 -e 33 -H 7 -k 3 -E 10 -d fp16 -D rank -R zipf:1.1 -n 1 -c 1
build/bench/fusco_plan_microbench --benchmark_min_time=0.05
if [ "$(id -u)" -eq 0 ]; then  # simulated machines need root
  build/tests/fusco_machines_bench --tokens 64 --runs 1 --iters 1 --rate 200mbit
fi

echo "== GPU check without a GPU (scripts/gpu-check.sh end to end; NCCL from PyPI's wheel)"
# (outside the source tree: CMake refuses to export an NCCL include folder inside it; one
# folder per checkout, so that two checkouts never share a build folder)
tests/scripts/check_gpu_check.sh "${TMPDIR:-/tmp}/fusco-gpu-check-$(printf %s "$root" | cksum | cut -d' ' -f1)"

echo "== sanitizers: address + undefined"
# (CUDA on, one architecture: the kernels are not sanitized, the host code driving them is)
scripts/configure.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSCO_SANITIZE=address,undefined \
  -DFUSCO_BUILD_BENCH=OFF -DFUSCO_WITH_PYTHON=OFF -DCMAKE_CUDA_ARCHITECTURES=90
cmake --build build-asan -j "$jobs"
(cd build-asan && ctest --output-on-failure -j "$jobs")

echo "== sanitizers: thread"
scripts/configure.sh build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSCO_SANITIZE=thread \
  -DFUSCO_WITH_UCX=OFF -DFUSCO_WITH_MPI=OFF \
  -DFUSCO_BUILD_BENCH=OFF -DFUSCO_WITH_PYTHON=OFF -DCMAKE_CUDA_ARCHITECTURES=90
cmake --build build-tsan -j "$jobs" --target fusco_multirank_tests fusco_gpu_tests
(cd build-tsan && ctest --output-on-failure -j "$jobs" -R '^(DispatchCombine|Errors|UnfusedBaseline|PlanStats|IdentityExperts|PeerQuiet|Abort|StoppedRank|Async|Replicas|Relay|Layout|StridedRows|Companion|CombineRounds|ConcurrentCalls|MovedFromCommunicator)\.')
# The GPU engine's host backend where ranks are threads forcing each other's lazy streams (the
# NCCL engine, the node barrier; DeviceGroup drives all its ranks from one thread).
(cd build-tsan && ctest --output-on-failure -j "$jobs" \
  -R '(NcclOnHost|^Backends/(NcclCommunicatorRuns|NodeBarrierRuns)\..*/Host( |$)|^HostStreams\.)')

echo "== fuzzing (libFuzzer, clang, ASan + UBSan; 30 s per target)"
scripts/fuzz.sh

echo "== release tests"
(cd build && ctest --output-on-failure -j "$jobs")
