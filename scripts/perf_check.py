#!/usr/bin/env python3
"""Runs fusco's CPU speed goals side by side on this machine and prints each ratio with its
goal: the median of FUSCO_PERF_RUNS runs (3 by default) and the spread (lowest..highest).

Not a CI gate (these machines are noisy): run it after every change to a hot path and paste
its output, with the date and machine, into docs/benchmarks.md. Exit status 0 when every
goal holds, 1 when one is missed, 2 when a run failed.

Arguments: [build directory] (default: build). Environment: FUSCO_PERF_RUNS, FUSCO_PERF_NP
(processes of the MPI runs, 8), FUSCO_PERF_TOKENS (2048).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
RUNS = int(os.environ.get("FUSCO_PERF_RUNS", "3"))
NP = os.environ.get("FUSCO_PERF_NP", "8")
TOKENS = os.environ.get("FUSCO_PERF_TOKENS", "2048")
BENCH = os.path.join(BUILD, "bench", "fusco_bench")
MICRO = os.path.join(BUILD, "bench", "fusco_plan_microbench")
PLAN_CASE = "BM_PlanOneRank/16384/8/256/64/8/1$"


def run(command, env=None):
    """Runs `command`; returns its stdout, or raises with its output on failure."""
    merged = dict(os.environ, **(env or {}))
    done = subprocess.run(command, env=merged, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def bench_row(prefix, flags, env=None):
    """One fusco_bench run at TOKENS tokens: its JSON result row."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.json")
        run(prefix + [BENCH, "-b", TOKENS, "-e", TOKENS, "-n", "3", "-w", "1", "-J", path] + flags,
            env)
        with open(path, encoding="utf-8") as f:
            return json.load(f)["results"][0]


def mpi_prefix():
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        return None
    return [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", NP]


def plan_case():
    """One micro-benchmark run of the planning case: (ms, peak MB)."""
    out = run([MICRO, f"--benchmark_filter={PLAN_CASE}", "--benchmark_format=json"])
    case = json.loads(out)["benchmarks"][0]
    return case["real_time"], case["peak_MB"]


class Goal:
    """A measured quantity, its goal, and the runs so far."""

    def __init__(self, name, limit, at_least):
        self.name, self.limit, self.at_least, self.values = name, limit, at_least, []

    def holds(self):
        median = statistics.median(self.values)
        return median >= self.limit if self.at_least else median <= self.limit

    def line(self):
        median = statistics.median(self.values)
        goal = (">= " if self.at_least else "<= ") + f"{self.limit:g}"
        spread = f"{min(self.values):.2f}..{max(self.values):.2f}"
        mark = "ok" if self.holds() else "MISSED"
        return f"{self.name:<44} {median:>8.2f}  {spread:>13}  {goal:>8}  {mark}"


def main():
    goals = {
        "fused": Goal(f"in-process fused vs unfused, {TOKENS} tokens (x)", 2.0, True),
        "bound": Goal("in-process dispatch / memcpy bound", 1.25, False),
        "shm": Goal(f"shm vs MPI_Alltoallv pipeline, {TOKENS} tokens (x)", 1.5, True),
        "shm_comb": Goal("shm combine / dispatch", 1.0, False),
        "ucx": Goal(f"UCX vs MPI_Alltoallv pipeline, {TOKENS} tokens (x)", 1.5, True),
        "ucx_comb": Goal("UCX combine / dispatch", 1.0, False),
        "plan_ms": Goal("planning, 16K tokens k=8 E=256 W=64 (ms)", 5.0, False),
        "plan_mb": Goal("planning peak heap (MB)", 32.0, False),
    }
    mpi = mpi_prefix()
    try:
        for _ in range(RUNS):
            row = bench_row([], [])
            goals["fused"].values.append(row["speedup"])
            goals["bound"].values.append(row["bound_ratio"])
            if mpi is not None:
                for transport, env in (("shm", {}), ("ucx", {"UCX_TLS": "shm,self"})):
                    row = bench_row(mpi + ["-x", "UCX_TLS"] if env else mpi, ["-t", transport], env)
                    goals[transport].values.append(row["speedup"])
                    goals[transport + "_comb"].values.append(row["combine_us"] /
                                                             row["dispatch_us"])
            ms, mb = plan_case()
            goals["plan_ms"].values.append(ms)
            goals["plan_mb"].values.append(mb)
    except RuntimeError as error:
        print(f"perf-check: a run failed: {error}", file=sys.stderr)
        return 2
    print(f"# perf-check: median of {RUNS} runs, spread = lowest..highest")
    print(f"{'goal':<44} {'median':>8}  {'spread':>13}  {'goal':>8}")
    missed = 0
    for goal in goals.values():
        if not goal.values:
            print(f"{goal.name:<44} not run (no mpirun)")
            continue
        print(goal.line())
        missed += 0 if goal.holds() else 1
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
