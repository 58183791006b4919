#!/usr/bin/env bash
# Installs the build tree into a fresh prefix and runs a dispatch/combine round trip with the
# installed Python package. Arguments: <build dir> <work dir> <python> <site-packages dir>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
work=$2
python=$3
site=$4
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
PYTHONPATH="$work/prefix/$site" "$python" "$here/roundtrip.py" "$work/prefix"
