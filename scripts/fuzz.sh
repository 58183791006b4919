#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time,
# starting from the seed corpus in fuzz/corpus/<target> (copied: the repository is not
# changed). FUSCO_FUZZ_SECONDS sets the time per target (default 30). Prints the number of
# executions each target ran; fails on a crash, a sanitizer report or a hang.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FUSCO_FUZZ_SECONDS:-30}

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFUSCO_FUZZ=ON -DFUSCO_SANITIZE=address,undefined,fuzzer-no-link -DFUSCO_BUILD_TESTS=OFF \
  -DFUSCO_BUILD_BENCH=OFF -DFUSCO_WITH_CUDA=OFF -DFUSCO_WITH_PYTHON=OFF -DFUSCO_WITH_MPI=OFF \
  -DFUSCO_WITH_UCX=OFF \
  >/dev/null
cmake --build build-fuzz -j "$(nproc)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in plan parse; do
  cp -r "fuzz/corpus/$target" "$work/$target"
  # -timeout: one input must not take longer (every wait inside fusco is bounded by 20 s).
  build-fuzz/fuzz/fusco_${target}_fuzzer -max_total_time="$seconds" -timeout=60 \
    -artifact_prefix="$work/" -print_final_stats=1 "$work/$target" >"$work/$target.log" 2>&1 || {
    tail -n 40 "$work/$target.log"
    echo "fuzz: fusco_${target}_fuzzer FAILED (artifact under $work is removed; rerun locally)"
    exit 1
  }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$')
  echo "fuzz: fusco_${target}_fuzzer: ${runs} executions in ${seconds} s, no crash"
done
