"""Runs a function in separate processes joined by a torch.distributed gloo group, bounded in
time: a process that fails raises in the caller with its traceback, one that hangs is killed."""

import os
import tempfile
import time
from datetime import timedelta

import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank, world, init_file, fn, args):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn_bounded(fn, args, nprocs, limit_s=240):
    """mp.spawn(fn, args, nprocs), joined within limit_s: a failed process raises here with
    its traceback; processes still running at the limit are killed (a hang fails the test)."""
    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + limit_s
    while not context.join(timeout=1):  # raises when a process failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"processes still running after {limit_s} s (hung)")


def run_processes(world, fn, *args, limit_s=240):
    """Calls fn(rank, world, *args) in `world` spawned processes (fn must be importable),
    joined by a gloo group."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        spawn_bounded(_entry, (world, init_file, fn, args), world, limit_s)
