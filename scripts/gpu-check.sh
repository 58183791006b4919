#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU, CUDA and no internet (issue 6): builds the
# CUDA code for this GPU's architecture, runs the GPU tests (kernels against the CPU, and the
# one-GPU engine and unfused baseline with W = 1, 2, 4, 8 logical ranks over every one-node
# routing case against the reference, plans made on the device, NCCL at world size 1; plain,
# under compute-sanitizer memcheck, and racecheck/synccheck on small cases, when present) and
# `fusco_bench -t gpu` (fused vs unfused vs copy; planning on the host vs on the device), and
# prints a summary. Meant to finish in a few minutes: it builds only what it runs. Prints what
# it skipped and why.
# Usage: scripts/gpu-check.sh [build dir, default build-gpu]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${1:-build-gpu}
start=$(date +%s)
summary=()
note() { summary+=("$1"); echo "== $1"; }
elapsed() { echo "$(($(date +%s) - start)) s"; }

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version \
  --format=csv,noheader || echo "(no nvidia-smi)"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
arch=${arch:-90}
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
jobs=$(nproc)

# GoogleTest may be missing on the GPU machine: then only the benchmark is built.
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# NCCL with its device API (2.28+): in the CUDA toolkit, else the one PyTorch's wheels bring.
nccl_args=()
cuda_root=$(dirname "$(dirname "$nvcc")")
if [ ! -f "$cuda_root/include/nccl_device.h" ]; then
  nccl_root=$(python3 -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null)
  if [ -n "$nccl_root" ] && [ -f "$nccl_root/include/nccl_device.h" ]; then
    nccl_args=(-DNCCL_ROOT="$nccl_root")
    [ -e "$nccl_root/lib/libnccl.so" ] || ln -sf libnccl.so.2 "$nccl_root/lib/libnccl.so" 2>/dev/null
  fi
fi
configure() {
  cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DFUSCO_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DFUSCO_BUILD_TESTS="$1" -DFUSCO_BUILD_BENCH=ON -DFUSCO_WITH_PYTHON=OFF \
    -DFUSCO_WITH_UCX=OFF -DFUSCO_WITH_MPI=OFF -DFUSCO_WERROR=ON "${nccl_args[@]}" \
    >"$build.configure.log" 2>&1
}
tests=ON
if ! configure ON; then
  tests=OFF
  rm -rf "$build"
  if ! configure OFF; then
    tail -n 30 "$build.configure.log"
    note "configure FAILED (sm_$arch; log: $build.configure.log)"
    printf '%s\n' "${summary[@]}"
    exit 1
  fi
fi
note "configured for sm_$arch, tests $tests, $(grep -o 'CUDA ON (NCCL [A-Z]*)' "$build.configure.log" || echo 'NCCL ?') ($(elapsed))"
targets=(fusco_bench)
[ "$tests" = ON ] && targets+=(fusco_gpu_tests)
if ! cmake --build "$build" -j "$jobs" --target "${targets[@]}" >"$build.build.log" 2>&1; then
  tail -n 40 "$build.build.log"
  note "build FAILED (log: $build.build.log)"
  printf '%s\n' "${summary[@]}"
  exit 1
fi
note "built ${targets[*]} ($(elapsed))"

status=0
if [ "$tests" = ON ]; then
  if timeout 300 "$build/tests/fusco_gpu_tests" --gtest_brief=1; then
    note "GPU tests passed ($(elapsed))"
  else
    note "GPU tests FAILED"
    status=1
  fi
  # sanitize TOOL SECONDS FILTER: the GPU tests of FILTER under compute-sanitizer's TOOL.
  sanitize() {
    if timeout "$2" compute-sanitizer --tool "$1" --error-exitcode 9 \
         "$build/tests/fusco_gpu_tests" --gtest_brief=1 --gtest_filter="$3" \
         >"$build.$1.log" 2>&1; then
      note "compute-sanitizer $1 clean ($(elapsed))"
    else
      tail -n 30 "$build.$1.log"
      note "compute-sanitizer $1 FAILED (log: $build.$1.log)"
      status=1
    fi
  }
  if command -v compute-sanitizer >/dev/null; then
    # Every kernel runs under memcheck; the sweeps of plan_on_device over every case and
    # layout and of random multi-node cases (hundreds of runs of the same kernels) run plain
    # only, to stay in time, and so do the barrier kernels of several logical ranks (memcheck
    # runs one kernel at a time, so they could only wait for each other until their timeout).
    sanitize memcheck 240 \
      '-PlanOnDevice.WorldSizes12348_*:DeviceGroupNodes.RandomCases*:NodeBarrier.MembersThatAllCome*'
    # Shared-memory races and warp-synchronisation misuse in the kernels (the layout's
    # __match_any_sync walk, the planning and combine kernels), on small cases.
    for tool in racecheck synccheck; do
      sanitize "$tool" 120 \
        'GpuLayout.*:GpuDirectCombine.*:GpuRowGather.*:PlanOnDevice.SamePlans*:PlanOnDevice.IdOutside*'
    done
  else
    note "compute-sanitizer not found: memcheck skipped"
  fi
else
  note "GoogleTest not found: GPU tests skipped"
fi
# The issue-6 measurement (DeepSeek-V3 shape, 8 logical ranks x 4096 tokens) and a skewed
# routing; each prints its goal line, which goes into the summary with the #wrong line.
for routing in uniform zipf:1.0; do
  if timeout 240 "$build/bench/fusco_bench" -t gpu -r 8 -b 4096 -e 4096 -H 7168 -k 8 -E 256 \
       -R "$routing" -n 20 -w 2 -J "$build.bench.$routing.json" | tee "$build.bench.$routing.txt"; then
    while read -r goal; do note "$routing: $goal"; done < <(grep -E "goal|planning from routing|Out of bounds" "$build.bench.$routing.txt")
  else
    note "benchmark ($routing) FAILED"
    status=1
  fi
done
# The staged path on one GPU: 2 nodes of 4 logical ranks, node dedup with relays.
if timeout 240 "$build/bench/fusco_bench" -t gpu -r 8 -p 4 -b 4096 -e 4096 -H 7168 -k 8 -E 256 \
     -D node -n 10 -w 2 -J "$build.bench.nodes.json" | tee "$build.bench.nodes.txt"; then
  while read -r goal; do note "2 nodes of 4: $goal"; done < <(grep -E "goal" "$build.bench.nodes.txt")
  note "2 nodes of 4: $(grep -E '^ +4096' "$build.bench.nodes.txt" | head -1)"
else
  note "benchmark (2 nodes of 4) FAILED"
  status=1
fi
note "benchmarks done ($(elapsed))"
echo
echo "== gpu-check summary ($(elapsed))"
printf '  %s\n' "${summary[@]}"
exit $status
