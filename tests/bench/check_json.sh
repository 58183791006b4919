#!/usr/bin/env bash
# fusco_bench -J writes valid JSON with one result per size and no wrong value, and
# bench/plot.py draws it.
# Arguments: <fusco_bench> <work dir>.
set -euo pipefail
bench=$1
json=$2/fusco_bench.json
mkdir -p "$2"
"$bench" -r 3 -p 2 -b 4 -e 16 -f 2 -H 9 -k 2 -E 6 -n 1 -w 0 -J "$json" >/dev/null
python3 - "$json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
sizes = [row["tokens"] for row in data["results"]]
assert sizes == [4, 8, 16], sizes
assert all(row["wrong"] == 0 for row in data["results"]), data["results"]
assert data["ranks"] == 3 and data["dedup"] == "node", data
print("fusco_bench JSON OK:", len(sizes), "sizes")
PY
# bench/plot.py turns it into a PNG (matplotlib from Debian's python3-matplotlib).
/usr/bin/python3 "$(dirname "$0")/../../bench/plot.py" "$json" -o "$2/fusco_bench.png"
test -s "$2/fusco_bench.png"
python3 -c "import sys; assert open(sys.argv[1], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'" "$2/fusco_bench.png"
echo "bench/plot.py PNG OK"
