#!/usr/bin/env bash
# Fetches the NCCL that PyTorch users link: PyPI's nvidia-nccl-cu13 wheel (libnccl.so.2 and the
# device-API headers under nvidia/nccl), unpacked into a folder that, put on PYTHONPATH, makes
# `import nvidia.nccl` find it as on a machine with torch from PyPI.
# Usage: scripts/fetch_nccl_wheel.sh <folder> [version, default 2.30.7]
# Prints the folder's nvidia/nccl. Idempotent: an unpacked version is reused.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 <folder> [version]" >&2; exit 2; }
dest=$1
version=${2:-2.30.7}
root=$dest/nccl-$version
if [ ! -f "$root/nvidia/nccl/include/nccl_device.h" ]; then
  mkdir -p "$dest"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check --retries 5 \
    "nvidia-nccl-cu13==$version" -d "$dest" >&2
  python3 - "$dest" "$version" "$root" <<'PY'
import glob, sys, zipfile
dest, version, root = sys.argv[1:]
wheels = glob.glob(f"{dest}/nvidia_nccl_cu13-{version}-*.whl")
if not wheels:
    sys.exit(f"fetch_nccl_wheel: pip left no nvidia_nccl_cu13-{version} wheel in {dest}")
wheel = wheels[0]
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith("nvidia/nccl/include/") or name.startswith("nvidia/nccl/lib/libnccl.so"):
            archive.extract(name, root)
PY
fi
echo "$root/nvidia/nccl"
