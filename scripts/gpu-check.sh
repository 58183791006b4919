#!/usr/bin/env bash
# The GPU check (issue 16): one prepared run of at most 9 minutes on the GPU machine (no
# network, no GoogleTest, NCCL perhaps only in torch's wheel), from a clean copy of the tree.
#
#   scripts/gpu-check.sh [OUT_DIR]     OUT_DIR: the argument, else $FUSCO_CHECK_OUT, else $OUT
#                                      (the device tool's return folder), else gpu-check-out
#
# With the device tool: command `scripts/gpu-check.sh`, timeout_s 600 (the script keeps to
# FUSCO_CHECK_BUDGET_S = 540 s, leaving time for the tool). Steps, in this order, each under
# its own limit and never past the whole budget:
#   build          configure + build fusco_bench and fusco_gpu_tests for this GPU's arch on all
#                  cores, warnings not errors, GoogleTest from third_party/googletest; if NCCL's
#                  headers do not compile, again without NCCL (the detail says so)
#   bench-uniform  fusco_bench -t gpu, default shape (8 logical ranks, DeepSeek-V3 layer) up to
#   bench-zipf     4096 tokens, reference check on; uniform, then zipf:1.0 routing
#   gpu-tests      fusco_gpu_tests under FUSCO_REQUIRE_GPU=1 (no device = failure); a skipped
#                  test is a failure
#   python-gpu     tests/python/gpu/test_*.py (pytest), when there are any
#   memcheck       compute-sanitizer memcheck on the GPU tests but NCCL's and the sweeps
#   synccheck      compute-sanitizer synccheck on the kernels' own tests
#   bench-nodes    with what time is left: fusco_bench -t gpu, 2 nodes of 4 (the staged path)
#
# As each step ends, its output is in OUT_DIR/gpu-check.log (it streams there as it runs, at
# most 4 MB a step) and OUT_DIR/summary.txt is rewritten: one line per step with its state,
# seconds and detail; the step under way shows as RUNNING, so a run killed at the limit still
# returns everything that finished. States in capitals are failures: FAIL, TIMEOUT, SKIPPED (a
# test skipped), NO-DEVICE, NOT-RUN (budget spent); "pass" and "none" (nothing to run) are
# not. Exit 0 only when no step failed. On a machine without a GPU (CI) every step still runs,
# the GPU ones say NO-DEVICE, and the exit status is 1. At most 6 files land in OUT_DIR:
# summary.txt, gpu-check.log, gpu-tests.xml and the benchmarks' JSON.
#
# Environment: FUSCO_CHECK_BUDGET_S (whole run, default 540), FUSCO_CHECK_BUILD_S (the build
# step's limit, default 180), FUSCO_CHECK_BUILD (build folder, default build-gpu),
# FUSCO_CHECK_ARCH (CUDA arch, default: the GPU's, else 90), FUSCO_NCCL_ROOT (a folder with
# include/nccl_device.h and lib/; default: torch's nvidia-nccl wheel, else the CUDA toolkit's),
# FUSCO_GTEST_SOURCE_DIR (default third_party/googletest), FUSCO_CHECK_JOBS (default nproc).
set -uo pipefail
out=${1:-${FUSCO_CHECK_OUT:-${OUT:-gpu-check-out}}}
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
build=${FUSCO_CHECK_BUILD:-build-gpu}
mkdir -p "$build" && build=$(cd "$build" && pwd) || exit 2
budget=${FUSCO_CHECK_BUDGET_S:-540}
jobs=${FUSCO_CHECK_JOBS:-$(nproc)}
gtest_source=${FUSCO_GTEST_SOURCE_DIR:-$root/third_party/googletest}
log=$out/gpu-check.log
summary=$out/summary.txt
start=$(date +%s)
: >"$log"
lines=()
failed=0
step_out=$(mktemp)
summary_tmp=$(mktemp)
trap 'rm -f "$step_out" "$summary_tmp"' EXIT

now() { echo $(($(date +%s) - start)); }
write_summary() {  # write_summary [LINE OF THE RUNNING STEP]
  {
    echo "gpu-check $(date -u +%FT%TZ) $revision"
    echo "machine: $machine"
    echo "budget ${budget} s, used $(now) s; states in capitals are failures"
    printf '%-14s %-9s %5s  %s\n' step state sec detail
    if [ ${#lines[@]} -gt 0 ]; then printf '%s\n' "${lines[@]}"; fi
    if [ $# -gt 0 ]; then echo "$1"; fi
  } >"$summary_tmp"
  cp "$summary_tmp" "$summary.part" && mv "$summary.part" "$summary"
}

# step NAME LIMIT FUNCTION: runs FUNCTION until step_deadline (LIMIT seconds, or what is left
# of the whole budget); FUNCTION sets state and detail, its commands' output goes to the log.
step() {
  local name=$1 want=$2 fn=$3 begin left line
  begin=$(now)
  left=$((budget - begin - 5))
  state=NOT-RUN detail="budget spent (${begin} s of ${budget} s)"
  if [ "$left" -ge 10 ]; then
    local limit=$((want < left ? want : left))
    step_deadline=$((begin + limit))
    echo "$name: running (limit ${limit} s)"
    write_summary "$(printf '%-14s %-9s %5s  %s' "$name" RUNNING - "since ${begin} s, limit ${limit} s")"
    echo "===== $name (limit ${limit} s, at ${begin} s)" >>"$log"
    state=FAIL detail=""
    "$fn"
    echo "===== $name: $state ($(($(now) - begin)) s) $detail" >>"$log"
  fi
  line=$(printf '%-14s %-9s %5s  %s' "$name" "$state" "$(($(now) - begin))" "$detail")
  lines+=("$line")
  echo "$line"
  case $state in pass | none) ;; *) failed=1 ;; esac
  write_summary
}

# bounded CMD...: CMD until the step's deadline; its output streams to the log (at most 4 MB a
# step) and to $step_out for the step to judge. Returns CMD's status; a kill at the deadline
# sets state TIMEOUT.
bounded() {
  local limit=$((step_deadline - $(now)))
  [ "$limit" -ge 1 ] || limit=1
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$step_out" |
    awk -v max=4000000 '{ n += length($0) + 1 }
      n <= max { print; fflush(); next }
      !cut { print "... (the rest of this step'"'"'s output is cut here)"; cut = 1; fflush() }' >>"$log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$(now)" -ge "$step_deadline" ]; }; then
    state=TIMEOUT detail="$(basename "$1") killed at the step's limit"
  elif [ "$rc" -gt 128 ]; then
    detail="$(basename "$1") killed by signal $((rc - 128)); "
  fi
  return "$rc"
}

# What machine this is, and which NCCL, compilers and Python the build will use.
gpu="" arch=${FUSCO_CHECK_ARCH:-}
if smi=$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version \
         --format=csv,noheader 2>/dev/null) && [[ $(cut -d, -f2 <<<"${smi%%$'\n'*}") =~ ^\ *([0-9]+)\.([0-9]+)$ ]]; then
  gpu=${smi%%$'\n'*}
  arch=${arch:-${BASH_REMATCH[1]}${BASH_REMATCH[2]}}
fi
arch=${arch:-90}
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
cuda_bin=$(dirname "$nvcc")
sanitizer_bin=$(command -v compute-sanitizer || echo "$cuda_bin/compute-sanitizer")
nccl_root=${FUSCO_NCCL_ROOT:-}
nccl_from="FUSCO_NCCL_ROOT"
if [ -z "$nccl_root" ]; then
  wheel=$(python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null)
  if [ -n "$wheel" ] && [ -f "$wheel/include/nccl_device.h" ]; then
    nccl_root=$wheel nccl_from="torch's nvidia-nccl wheel"
  else
    nccl_root=$(dirname "$cuda_bin") nccl_from="CUDA toolkit"
  fi
fi
nccl_version=$(sed -n 's/^#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' \
               "$nccl_root/include/nccl.h" 2>/dev/null | paste -sd.)
revision=$(git -C "$root" describe --always --dirty 2>/dev/null || echo "(no git: a copy of the tree)")
machine="${gpu:-no GPU (nvidia-smi found none)}; $(nproc) cores; sm_$arch; nvcc $("$nvcc" --version \
  2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p'); $(c++ --version 2>/dev/null | head -1); \
$(cmake --version 2>/dev/null | head -1); NCCL ${nccl_version:-?} from $nccl_from ($nccl_root); \
$(python3 -c 'import sys; print("python", sys.version.split()[0], end="")
try:
    import torch; print(", torch", torch.__version__, end="")
except Exception: pass' 2>/dev/null)"
echo "gpu-check: $machine" | tee -a "$log"
write_summary

python_tests=()
for test in tests/python/gpu/test_*.py; do [ -f "$test" ] && python_tests+=("$test"); done

configure() {  # configure NCCL(ON|OFF)
  local python=OFF generator=() pybind=() pybind_dir=""
  [ ${#python_tests[@]} -gt 0 ] && pybind_dir=$(python3 -m pybind11 --cmakedir 2>/dev/null)
  if [ -n "$pybind_dir" ]; then python=ON pybind=("-Dpybind11_DIR=$pybind_dir"); fi
  command -v ninja >/dev/null && generator=(-G Ninja)
  bounded cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DFUSCO_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DFUSCO_WITH_NCCL="$1" -DNCCL_ROOT="$nccl_root" -DFUSCO_BUILD_TESTS=ON -DFUSCO_BUILD_BENCH=ON \
    -DFUSCO_WITH_PYTHON=$python "${pybind[@]}" -DPython_EXECUTABLE="$(command -v python3)" \
    -DFUSCO_WITH_UCX=OFF -DFUSCO_WITH_MPI=OFF -DFUSCO_WERROR=OFF \
    -DFUSCO_GTEST_SOURCE_DIR="$gtest_source"
}
# The binaries the later steps run; removed first, so that a failed build never leaves the
# previous run's binaries to be judged.
bench_bin=$build/bench/fusco_bench
tests_bin=$build/tests/fusco_gpu_tests
remove_binaries() { rm -f "$bench_bin" "$tests_bin" "$build"/python/fusco/_C*.so; }
compile() {  # compile: every target that builds (ninja -k 0), judged one by one
  local targets=(fusco_bench fusco_gpu_tests)
  grep -q '^FUSCO_WITH_PYTHON:BOOL=ON' "$build/CMakeCache.txt" && targets+=(fusco_python_package)
  remove_binaries
  local keep_going=()
  [ -f "$build/build.ninja" ] && keep_going=(-- -k 0)
  bounded cmake --build "$build" -j "$jobs" --target "${targets[@]}" "${keep_going[@]}"
}
nccl_setting() {
  sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null
}
build_step() {
  remove_binaries  # also when configure fails: never judge an older build's
  if ! configure ON; then
    [ "$state" = TIMEOUT ] || detail="configure failed (see the log)"
    return
  fi
  local nccl="NCCL $(nccl_setting FUSCO_WITH_NCCL) ($(nccl_setting NCCL_LIBRARY))"
  if ! compile && [ "$state" != TIMEOUT ] && [ "$(nccl_setting FUSCO_WITH_NCCL)" = ON ] &&
     grep -qE 'nccl|gin_puts|nccl_lsa' <(grep -E 'FAILED:' "$step_out"); then
    # One NCCL we did not foresee must not cost the whole run: the rest, without NCCL.
    nccl="NCCL OFF after NCCL's code failed to build with it (see the log)"
    configure OFF && compile
  fi
  [ "$state" = TIMEOUT ] && return
  local missing=()
  [ -x "$bench_bin" ] || missing+=(fusco_bench)
  [ -x "$tests_bin" ] || missing+=(fusco_gpu_tests)
  if [ ${#missing[@]} -eq 0 ] && [[ $nccl != *"after NCCL"* ]]; then state=pass; fi
  [ ${#missing[@]} -eq 0 ] || detail="${missing[*]} did not build (see the log); "
  detail+="sm_$arch, $nccl, $(grep -c 'warning' "$log") lines with warnings"
}

bench() {  # bench NAME FLAGS...: fusco_bench -t gpu with the reference check on
  local name=$1
  shift
  [ -x "$bench_bin" ] || { detail="no fusco_bench (the build failed)"; return; }
  rm -f "$out/$name.json"
  bounded "$bench_bin" -t gpu -c 1 -J "$out/$name.json" "$@"
  local rc=$?
  if grep -q -- "-t gpu: no usable CUDA device" "$step_out"; then
    state=NO-DEVICE detail=$(grep -o -- "-t gpu: no usable CUDA device.*" "$step_out" | head -1)
  elif [ "$state" != TIMEOUT ]; then
    [ "$rc" -eq 0 ] && state=pass
    detail+="exit $rc; $(grep -o 'Out of bounds values : .*' "$step_out" | tail -1); \
$(grep -E '^# [0-9]+ tokens on .*goal' "$step_out" | tail -1 | sed 's/^# //')"
  fi
}
bench_uniform() { bench bench-uniform -e 4096 -R uniform -n 10 -w 2; }
bench_zipf() { bench bench-zipf -e 4096 -R zipf:1.0 -n 10 -w 2; }
bench_nodes() { bench bench-nodes -p 4 -b 4096 -e 4096 -D node -n 10 -w 2; }

# judge_tests XML CMD...: a test run under FUSCO_REQUIRE_GPU=1 that writes the JUnit-style
# report XML (GoogleTest's or pytest's), judged by scripts/gtest_outcome.py.
judge_tests() {
  local xml=$1
  shift
  rm -f "$xml"
  bounded env FUSCO_REQUIRE_GPU=1 "$@"
  local rc=$? verdict
  if [ "$state" = TIMEOUT ] || [ ! -f "$xml" ]; then
    detail+="; last test started: $(grep -o '\[ RUN      \] .*' "$step_out" | tail -1 | cut -c14-)"
    [ "$state" = TIMEOUT ] && return
  fi
  verdict=$(python3 "$root/scripts/gtest_outcome.py" "$xml" "$rc" 2>&1 | tail -1)
  case $verdict in
    pass\ * | FAIL\ * | SKIPPED\ * | NO-DEVICE\ *) state=${verdict%% *} detail+=${verdict#* } ;;
    *) state=FAIL detail+="exit $rc; gtest_outcome.py: $verdict" ;;
  esac
}
# The tests of the no-GPU error path skip where there is a GPU: left out; so are the host
# backend's runs (CI runs them; they would only spend this step's time).
gpu_filter='-*WithoutAGpu*:*/Host:HostStreams.*:HostBackend.*:NcclOnHost*:*/NcclOnHost*'
gpu_tests() {
  [ -x "$tests_bin" ] || { detail="no fusco_gpu_tests (the build failed)"; return; }
  judge_tests "$out/gpu-tests.xml" "$tests_bin" --gtest_filter="$gpu_filter" \
    --gtest_output="xml:$out/gpu-tests.xml"
}

python_gpu() {
  if [ ${#python_tests[@]} -eq 0 ]; then
    state=none detail="no tests/python/gpu/test_*.py yet"
    return
  fi
  if ! python3 -c 'import pytest' 2>/dev/null; then
    detail="pytest is not importable by $(command -v python3)"
    return
  fi
  ls "$build"/python/fusco/_C*.so >/dev/null 2>&1 ||
    { detail="no fusco._C (pybind11 missing for $(command -v python3), or the build failed)"; return; }
  judge_tests "$build/python-gpu.xml" env PYTHONPATH="$build/python:$root/tests/python" \
    python3 -m pytest -q -rs -p no:cacheprovider --junitxml="$build/python-gpu.xml" "${python_tests[@]}"
}

sanitizer() {  # sanitizer TOOL GTEST_FILTER
  if [ ! -x "$sanitizer_bin" ]; then
    [ -z "$gpu" ] && state=NO-DEVICE  # the CPU machine has neither
    detail="compute-sanitizer not found"
    return
  fi
  [ -x "$tests_bin" ] || { detail="no fusco_gpu_tests (the build failed)"; return; }
  judge_tests "$build/$1.xml" "$sanitizer_bin" --tool "$1" --error-exitcode 9 --print-limit 50 \
    "$tests_bin" --gtest_filter="$2" --gtest_output="xml:$build/$1.xml"
  local errors
  errors=$(grep -o 'ERROR SUMMARY: [0-9]* errors\?' "$step_out" | tail -1)
  [ -n "$errors" ] || errors="$(grep -c '^========= [A-Z]' "$step_out") sanitizer lines"
  if [ "$state" != TIMEOUT ] && ! grep -q 'ERROR SUMMARY: 0 errors' "$step_out"; then
    [ "$state" = NO-DEVICE ] || state=FAIL
  fi
  detail="compute-sanitizer $1: $errors; tests: $detail"
}
# memcheck leaves out NCCL (its init and proxy threads are slow under memcheck), the sweeps
# that run the same kernels over every case and world size, and several logical ranks' barrier
# kernels (memcheck serialises kernels, so they could only wait for each other).
memcheck() {
  sanitizer memcheck "$gpu_filter:NcclCommunicator.*:NcclWatch.*:*WorldSizes*:*RandomCases*:*EveryDedupAndRelayPolicy*:NodeBarrier.MembersThatAllCome*"
}
# Warp-synchronisation misuse in the kernels (the layout's __match_any_sync walk, planning,
# combine), on small cases.
synccheck() {
  sanitizer synccheck 'GpuLayout.*:GpuDirectCombine.*:GpuRowGather.*:*PlanOnDevice.SamePlans*/Cuda:*PlanOnDevice.IdOutside*/Cuda'
}

step build "${FUSCO_CHECK_BUILD_S:-180}" build_step
step bench-uniform 50 bench_uniform
step bench-zipf 50 bench_zipf
step gpu-tests 100 gpu_tests
step python-gpu 60 python_gpu
step memcheck 70 memcheck
step synccheck 40 synccheck
step bench-nodes 60 bench_nodes
echo
cat "$summary"
[ -n "$gpu" ] || echo "(no GPU here: the GPU steps say NO-DEVICE and the exit status is 1, as expected)"
exit $failed
