#!/usr/bin/env bash
# Line coverage of the GPU engine's host-side code (src/gpu/*.cpp) by what runs without a GPU:
# fusco_gpu_tests on the host backend (and the GPU tests' CPU-only checks). Not part of CI (a
# separate --coverage build of the CUDA targets takes minutes here); docs/design.md records
# its result. Usage: scripts/gpu-coverage.sh [build dir, default build-coverage]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-coverage}
cd "$root"
scripts/configure.sh "$build" -DCMAKE_BUILD_TYPE=Debug -DFUSCO_WERROR=OFF \
  -DCMAKE_CXX_FLAGS=--coverage -DCMAKE_EXE_LINKER_FLAGS=--coverage \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DFUSCO_BUILD_BENCH=OFF -DFUSCO_WITH_PYTHON=OFF
cmake --build "$build" -j "$(nproc)" --target fusco_gpu_tests
find "$build" -name '*.gcda' -delete
"$build/tests/fusco_gpu_tests" --gtest_brief=1 >/dev/null
total=0 covered=0
printf '%-34s %7s %7s\n' file lines covered
for source in src/gpu/*.cpp; do
  name=$(basename "$source")
  data=$(find "$build" -name "$name.gcda" -path '*src/gpu*' | head -n 1)
  [ -n "$data" ] || { printf '%-34s %7s\n' "$name" "(not run)"; continue; }
  # gcov's summary for the source itself (not the headers it includes): "Lines executed:P% of N"
  report=$(cd "$(dirname "$data")" && gcov -n -o . "$name.gcda" 2>/dev/null)
  line=$(awk -v f="$root/$source" '$0 == "File '\''" f "'\''" {getline; print; exit}' <<<"$report")
  percent=$(sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\1/' <<<"$line")
  lines=$(sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\2/' <<<"$line")
  hit=$(awk -v p="$percent" -v n="$lines" 'BEGIN { printf "%d", p * n / 100 + 0.5 }')
  total=$((total + lines)) covered=$((covered + hit))
  printf '%-34s %7d %7d\n' "$name" "$lines" "$hit"
done
awk -v c="$covered" -v t="$total" 'BEGIN { printf "src/gpu/*.cpp: %d of %d lines (%.1f%%)\n", c, t, 100 * c / t }'
