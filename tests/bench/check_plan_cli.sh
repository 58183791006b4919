#!/usr/bin/env bash
# fusco_plan through its command line: a small group with every plan and the CSV matrices,
# a routing file written by numpy.save, bench/plot_traffic.py, and a bad topology.
# Arguments: <fusco_plan> <work dir>.
set -euo pipefail
plan=$1
work=$2
mkdir -p "$work"
"$plan" --topology nodes=2,ranks_per_node=3,nics_per_node=3 -T 40,80 -E 12 -k 4 -H 64 \
  -R zipf:1.1 --redundant 3 --csv "$work/traffic" >"$work/out.txt"
cat "$work/out.txt"
for name in flat rank deepep fusco; do
  grep -q "$(case $name in flat) echo 'flat all-to-all' ;; rank) echo 'rank dedup' ;;
    deepep) echo 'rail relay (DeepEP)' ;; fusco) echo 'fusco (balanced' ;; esac)" "$work/out.txt"
  test "$(wc -l <"$work/traffic_${name}_T80.csv")" -eq 6
done
# A routing file: 6 ranks x 5 tokens x 2 slots.
/usr/bin/python3 - "$work/routing.npy" <<'PY'
import sys
import numpy as np
ids = np.arange(60, dtype=np.int32).reshape(6, 5, 2) % 12
ids[0, 0, 1] = -1
np.save(sys.argv[1], ids)
PY
"$plan" --topology nodes=2,ranks_per_node=3 -E 12 --routing-file "$work/routing.npy" \
  >"$work/file.txt"
grep -q "# 5 tokens per rank" "$work/file.txt"
/usr/bin/python3 "$(dirname "$0")/../../bench/plot_traffic.py" "$work"/traffic_*_T80.csv \
  -o "$work/traffic.png"
python3 -c "import sys; assert open(sys.argv[1], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'" \
  "$work/traffic.png"
if "$plan" --topology nodes=0 2>"$work/err.txt"; then exit 1; fi
grep -q "nodes=0 is not an integer in \[1, 65536\]" "$work/err.txt"
# Input files are read with a bound: a topology file over 1 MiB is refused, naming it.
head -c 1048577 /dev/zero | tr '\0' ' ' >"$work/huge_topology.txt"
if "$plan" --topology "@$work/huge_topology.txt" 2>"$work/err.txt"; then exit 1; fi
grep -q "huge_topology.txt: larger than the 1048576 bytes read at most" "$work/err.txt"
echo "fusco_plan CLI OK"
