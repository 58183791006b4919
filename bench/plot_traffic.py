#!/usr/bin/env python3
"""Draws fusco_plan's per-pair traffic matrices (--csv PREFIX) as heatmaps: one panel per
plan, bytes sent from each rank (rows) to each rank (columns), on one colour scale.

    build/bench/fusco_plan --preset fusco -T 4096 --csv /tmp/traffic
    python3 bench/plot_traffic.py /tmp/traffic_*_T4096.csv -o docs/fusco_plan_traffic.png
"""

import argparse
import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", help="matrices written by fusco_plan --csv")
    parser.add_argument("-o", "--out", required=True, help="PNG to write")
    args = parser.parse_args()
    matrices = [np.loadtxt(path, delimiter=",", ndmin=2) / 1e9 for path in args.csv]
    top = max(float(m.max()) for m in matrices) or 1.0
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 4), squeeze=False)
    for ax, path, matrix in zip(axes[0], args.csv, matrices):
        image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
        ax.set_title(os.path.basename(path).rsplit(".", 1)[0], fontsize=9)
        ax.set_xlabel("to rank")
        ax.set_ylabel("from rank")
    fig.subplots_adjust(wspace=0.35)
    fig.colorbar(image, ax=axes[0].tolist(), label="GB per dispatch", shrink=0.8)
    fig.savefig(args.out, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
