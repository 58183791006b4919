#!/usr/bin/env bash
# Installs the build tree into a fresh prefix, builds examples/cpp_trainer against it with
# find_package(fusco), and runs it. Arguments: <build dir> <source dir> <work dir> [flags],
# where flags are extra compile and link flags (the sanitizers the library was built with).
set -euo pipefail
build=$1
source=$2
work=$3
flags=${4:-}
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/examples/cpp_trainer" -B "$work/example" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$work/example" >/dev/null
"$work/example/cpp_trainer"
# With the GPU engine installed, a program linking fusco::fusco_gpu builds and runs too.
if ls "$work"/prefix/lib*/libfusco_gpu.a >/dev/null 2>&1; then
  cmake -S "$source/tests/install/gpu_consumer" -B "$work/gpu_consumer" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
  cmake --build "$work/gpu_consumer" >/dev/null
  "$work/gpu_consumer/gpu_consumer"
fi
