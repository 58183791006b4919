#!/usr/bin/env bash
# scripts/gpu-check.sh end to end on a machine without a GPU (issue 16), as on the GPU image:
# NCCL from PyPI's nvidia-nccl-cu13 wheel found through `import nvidia.nccl`, GoogleTest from
# third_party/, warnings not errors. Checks the flow, the summary and the files it returns:
#   1. a whole run: the build passes, every GPU step says NO-DEVICE (the GPU tests fail under
#      FUSCO_REQUIRE_GPU=1 rather than skip), the Python step has nothing to run, exit 1;
#   2. a budget too small for any step: every step NOT-RUN, exit 1;
#   3. a build step limit too short: the build is TIMEOUT and the steps after it say why they
#      have nothing to run;
#   4. a build that fails in a folder that holds an earlier build: the earlier binaries are
#      removed, not run.
# Usage: tests/scripts/check_gpu_check.sh <work folder>
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 <work folder>" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$root"
nccl=$(scripts/fetch_nccl_wheel.sh "$work/wheels")
export PYTHONPATH=$(dirname "$(dirname "$nccl")")
# This machine has 2 cores: the build gets the time it needs here (about 140 s).
export FUSCO_CHECK_BUILD=$work/build FUSCO_CHECK_BUILD_S=2400 FUSCO_CHECK_BUDGET_S=3000
unset OUT FUSCO_CHECK_OUT FUSCO_NCCL_ROOT

fail() { echo "check_gpu_check: $*" >&2; exit 1; }
# expect OUT_DIR STEP STATE [DETAIL REGEX]: the summary has STEP in STATE (detail matching).
expect() {
  local line
  line=$(grep -E "^$2 " "$1/summary.txt") || fail "no '$2' line in $1/summary.txt"
  [[ $(awk '{print $2}' <<<"$line") == "$3" ]] || fail "'$2' is not $3: $line"
  [ $# -lt 4 ] || grep -qE -- "$4" <<<"$line" || fail "'$2' does not say /$4/: $line"
}
# run OUT_DIR ENV=VALUE...: the script into OUT_DIR; it must exit 1 (a step failed).
run() {
  local dir=$1 rc=0
  shift
  rm -rf "$dir"
  env "$@" scripts/gpu-check.sh "$dir" >"$dir.stdout" 2>&1 || rc=$?
  [ "$rc" -eq 1 ] || { tail -n 30 "$dir.stdout"; fail "exit $rc from the run into $dir, not 1"; }
}
steps=(build bench-uniform bench-zipf gpu-tests python-gpu memcheck synccheck bench-nodes)

echo "== 1. a whole run without a GPU"
run "$work/out"
cat "$work/out/summary.txt"
summary=$work/out/summary.txt
grep -q "^machine: no GPU.*NCCL 2\.30\.7 from torch's nvidia-nccl wheel" "$summary" ||
  fail "the machine line does not name the wheel's NCCL 2.30.7"
mapfile -t order < <(sed -n '5,$p' "$summary" | awk '{print $1}')
[ "${order[*]}" = "${steps[*]}" ] || fail "steps in the summary: ${order[*]}"
# Headers and library both from the wheel (a system libnccl.so must not be linked instead).
expect "$work/out" build pass "sm_90, NCCL ON \($nccl/lib/libnccl\.so\.2\)"
for bench in bench-uniform bench-zipf bench-nodes; do
  expect "$work/out" "$bench" NO-DEVICE "no usable CUDA device"
done
expect "$work/out" gpu-tests NO-DEVICE "of [0-9]+ tests need a GPU \(cudaGetDeviceCount"
expect "$work/out" python-gpu none
expect "$work/out" memcheck NO-DEVICE "compute-sanitizer"  # not found, or no device
expect "$work/out" synccheck NO-DEVICE "compute-sanitizer"
for step in "${steps[@]}"; do
  grep -q "^===== $step (limit" "$work/out/gpu-check.log" || fail "no '$step' in gpu-check.log"
done
python3 - "$work/out/gpu-tests.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
assert cases and not any(c.find("skipped") is not None for c in cases), "a GPU test skipped"
assert not any("WithoutAGpu" in c.get("name") for c in cases), "the no-GPU tests ran"
PY
# What the device tool returns: at most 8 files of at most 16 MiB (here: no benchmark JSON).
mapfile -t files < <(cd "$work/out" && find . -type f | sort)
[ "${files[*]}" = "./gpu-check.log ./gpu-tests.xml ./summary.txt" ] || fail "files: ${files[*]}"
if find "$work/out" -type f -size +15M | grep -q .; then fail "a file over 15 MiB"; fi
grep -q "^(no GPU here: .* as expected)" "$work/out.stdout" || fail "no word that NO-DEVICE is expected"

echo "== 2. a budget too small for any step"
run "$work/out-budget" FUSCO_CHECK_BUDGET_S=12
for step in "${steps[@]}"; do expect "$work/out-budget" "$step" NOT-RUN "budget spent"; done

echo "== 3. a build step cut at its limit"
run "$work/out-timeout" FUSCO_CHECK_BUILD="$work/build-cut" FUSCO_CHECK_BUILD_S=1
expect "$work/out-timeout" build TIMEOUT "cmake killed at the step's limit"
expect "$work/out-timeout" bench-uniform FAIL "no fusco_bench"
expect "$work/out-timeout" gpu-tests FAIL "no fusco_gpu_tests"
rm -rf "$work/build-cut"

echo "== 4. a build that fails in run 1's folder: its binaries are not judged"
run "$work/out-stale" FUSCO_GTEST_SOURCE_DIR=/nonexistent-googletest
expect "$work/out-stale" build FAIL "configure failed"
expect "$work/out-stale" bench-uniform FAIL "no fusco_bench"
expect "$work/out-stale" gpu-tests FAIL "no fusco_gpu_tests"
echo "check_gpu_check: OK"
