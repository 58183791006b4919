#!/usr/bin/env bash
# Installs what fusco's build, tests and benchmarks need on Debian 12, when missing.
# Idempotent; apt runs only when a package is absent. Never runs `apt-get clean` (the machine
# ships .debs in its apt cache).
set -euo pipefail

packages=(cmake g++ ninja-build pkg-config libgtest-dev libgmock-dev libbenchmark-dev
          clang-format clang-tidy python3 git
          python3-dev python3-venv pybind11-dev python3-pybind11 python3-pytest python3-numpy
          python3-torch libopenmpi-dev openmpi-bin clang libclang-rt-14-dev
          python3-matplotlib libucx-dev ucx-utils iproute2)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
echo "install_deps: all build dependencies present"
