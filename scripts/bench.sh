#!/usr/bin/env bash
# Installs what is missing, builds, and runs fusco_bench on the default shape: 8 in-process
# ranks in 2 nodes of 4, DeepSeek-V3 layer (hidden 7168 bf16, top-8 of 256 experts).
# Extra arguments go to fusco_bench (see build/bench/fusco_bench --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install_deps.sh
scripts/configure.sh build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target fusco_bench
build/bench/fusco_bench "$@"
