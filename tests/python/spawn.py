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


def run_processes(world, fn, *args, limit_s=240):
    """Calls fn(rank, world, *args) in `world` spawned processes (fn must be importable)."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        context = mp.spawn(_entry, args=(world, init_file, fn, args), nprocs=world, join=False)
        deadline = time.monotonic() + limit_s
        while not context.join(timeout=1):  # raises when a process failed
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                raise AssertionError(f"processes still running after {limit_s} s (hung)")
