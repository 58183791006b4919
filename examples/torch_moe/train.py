"""Trains fusco.nn.MoELayer for a few steps across processes and prints the loss.

    torchrun --standalone --nproc_per_node 4 examples/torch_moe/train.py [--steps 20]

Every process owns EXPERTS / world experts; tokens move between processes through fusco
(fusco.init_process_group: the gloo group torchrun sets up, then from_torch). The router is
replicated, so its gradient is all-reduced before the optimizer step, as in data parallelism.
Exits with status 1 if the loss did not go down.
"""

import argparse
import os
import sys

import torch
import torch.distributed as dist

import fusco
from fusco.nn import MoELayer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per process and step")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--ffn", type=int, default=64)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--topk", type=int, default=2)
    parser.add_argument("--ranks-per-node", type=int, default=None)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--transport", default="shm", choices=["shm", "ucx"],
                        help="how fusco moves rows between the processes")
    args = parser.parse_args()

    # torchrun's environment -> a gloo group -> this process's fusco communicator.
    comm = fusco.init_process_group("gloo", ranks_per_node=args.ranks_per_node,
                                    transport=args.transport)
    rank, world = comm.rank, comm.world_size
    layer = MoELayer(comm, args.hidden, args.ffn, args.experts, args.topk, seed=0)
    optimizer = torch.optim.SGD(layer.parameters(), lr=args.lr)

    # A fixed regression task: each process has its own tokens and targets.
    gen = torch.Generator().manual_seed(1000 + rank)
    x = torch.randn(args.tokens, args.hidden, generator=gen)
    target = torch.tanh(x @ torch.randn(args.hidden, args.hidden, generator=gen) / 4)

    losses = []
    for step in range(args.steps):
        optimizer.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        dist.all_reduce(layer.router.grad)
        layer.router.grad /= world
        optimizer.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(float(mean) / world)
        if rank == 0:
            print(f"step {step:3d}  loss {losses[-1]:.6f}", flush=True)
    if rank == 0:
        print(f"{world} processes, {comm.ranks_per_node} per node, fusco {fusco.__version__}: "
              f"loss {losses[0]:.6f} -> {losses[-1]:.6f}", flush=True)
    dist.destroy_process_group()
    # os._exit skips interpreter finalization, where PyTorch 2.15's CPU wheels abort about one
    # run in three ("terminate called without an active exception"), with or without fusco.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if losses[-1] < losses[0] else 1)


if __name__ == "__main__":
    main()
