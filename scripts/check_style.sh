#!/usr/bin/env bash
# clang-format (Google base, 100 columns) and clang-tidy on fusco's own code.
# Usage: scripts/check_style.sh <build dir with compile_commands.json>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
cd "$root"
mapfile -t sources < <(git ls-files '*.cpp' '*.hpp' '*.cu' | grep -v '^third_party/')
echo "check_style: clang-format on ${#sources[@]} files"
clang-format --dry-run -Werror "${sources[@]}"
mapfile -t tidy_sources < <(git ls-files 'src/*.cpp' 'bench/*.cpp' 'python/src/*.cpp')
echo "check_style: clang-tidy on ${#tidy_sources[@]} files"
printf '%s\n' "${tidy_sources[@]}" | xargs -P 2 -n 4 clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option \
  --warnings-as-errors='*' 2>/dev/null
echo "check_style: OK"
