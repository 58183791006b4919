#!/usr/bin/env bash
# fusco_bench -J writes valid JSON with one result per size and no wrong value.
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
