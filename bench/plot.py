#!/usr/bin/env python3
"""Turns fusco_bench JSON reports into a PNG: time and bandwidth against tokens per rank,
fused fusco against the unfused baseline, one colour per report.

    build/bench/fusco_bench -J inproc.json
    mpirun -np 8 build/bench/fusco_bench -t shm -J shm.json
    python3 bench/plot.py inproc.json shm.json -o docs/bench.png
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(report):
    return (f"{report.get('transport', 'inproc')}, {report['ranks']} ranks "
            f"({report['ranks_per_node']}/node), dedup {report['dedup']}")


def plot(reports, out, title):
    fig, (times, bandwidth) = plt.subplots(1, 2, figsize=(12, 4.8))
    for index, report in enumerate(reports):
        colour = f"C{index}"
        rows = report["results"]
        tokens = [r["tokens"] for r in rows]
        fused = [(r["dispatch_us"] + r["combine_us"]) / 1e3 for r in rows]
        base = [(r["baseline_dispatch_us"] + r["baseline_combine_us"]) / 1e3 for r in rows]
        times.plot(tokens, fused, "o-", color=colour, label=f"fusco, {label(report)}")
        if any(b > 0 for b in base):
            baseline = ("unfused (MPI_Alltoallv)" if report.get("transport") in ("shm", "ucx")
                        else "unfused")
            times.plot(tokens, base, "s--", color=colour, label=f"{baseline}, {label(report)}")
        bandwidth.plot(tokens, [r["dispatch_algbw"] for r in rows], "o-", color=colour,
                       label=f"dispatch, {label(report)}")
        bandwidth.plot(tokens, [r["combine_algbw"] for r in rows], "^:", color=colour,
                       label=f"combine, {label(report)}")
        # memcpy_gbps is all ranks together; per rank it is the bound dispatch is judged by.
        bandwidth.plot(tokens, [r["memcpy_gbps"] / report["ranks"] for r in rows], "x-.",
                       color=colour, alpha=0.5, label=f"memcpy per rank, {label(report)}")
    times.set(xscale="log", yscale="log", xlabel="tokens per rank",
              ylabel="dispatch + combine (ms, median)", title="time")
    bandwidth.set(xscale="log", xlabel="tokens per rank", ylabel="GB/s per rank (algbw)",
                  title="bandwidth")
    for axis in (times, bandwidth):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    first = reports[0]
    fig.suptitle(title or (f"fusco_bench {first['version']}: hidden {first['hidden']} "
                           f"{first['dtype']}, top-{first['topk']} of {first['experts']} "
                           f"experts, routing {first['routing']}"))
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="fusco_bench -J files")
    parser.add_argument("-o", "--output", default="fusco_bench.png", help="PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    reports = []
    for path in args.reports:
        with open(path, encoding="utf-8") as handle:
            reports.append(json.load(handle))
    plot(reports, args.output, args.title)
    print(f"plot: wrote {args.output}")


if __name__ == "__main__":
    main()
