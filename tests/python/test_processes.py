"""fusco across processes: Communicator.from_torch over a gloo group (torch.multiprocessing),
every process checking its own rank against the numpy reference; bad input on one process
fails every process and leaves the group usable; the MoE layer across 4 processes equals the
same layer computed densely in one process."""

import os
import socket
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist

import fusco
import reference
from dense_moe import dense_forward
from fusco.nn import MoELayer
from spawn import run_processes, spawn_bounded
from test_dispatch_combine import make_case

WORLD = 4


def _routing_cases(rank, world, seeds, transport):
    for seed in seeds:
        case = make_case(seed, world)
        comm = fusco.Communicator.from_torch(ranks_per_node=case["ranks_per_node"],
                                             transport=transport, chunk_bytes=case["chunk_bytes"])
        assert (comm.rank, comm.world_size) == (rank, world)
        convert = torch.from_numpy if seed % 2 else (lambda a: a)
        # Every third seed with node dedup's relays between processes (second hop).
        plan = comm.plan(convert(case["ids"][rank]), case["experts"], case["expert_map"],
                         dedup=case["dedup"], process_relays="on" if seed % 3 == 0 else None)
        recv = comm.dispatch(plan, convert(case["x"][rank]))
        recv = recv.numpy() if seed % 2 else recv
        dtype = np.dtype(case["dtype"])
        out = comm.combine(plan, convert((recv * np.float32(0.5)).astype(dtype)),
                           convert(case["w"][rank]))
        out = out.numpy() if seed % 2 else out

        rows, counts = reference.receive_rows(case["ids"], case["experts"], world,
                                              case["expert_map"])
        want_recv = reference.dispatch(rows, case["x"])
        np.testing.assert_array_equal(plan.tokens_per_expert, counts[rank])
        np.testing.assert_array_equal(recv, want_recv[rank], err_msg=f"seed {seed}")
        ys = [(r * np.float32(0.5)).astype(dtype) for r in want_recv]
        round_to = None if dtype == np.float32 else (lambda p: p.astype(dtype).astype(np.float32))
        want = reference.combine(rows, case["ids"], case["w"], ys, case["experts"], world,
                                 case["ranks_per_node"], case["dedup"], case["expert_map"],
                                 to_float=lambda a: a.astype(np.float32), round_to=round_to)
        np.testing.assert_array_equal(out, want[rank][0].astype(dtype), err_msg=f"seed {seed}")


def _bad_input_then_usable(rank, world):
    comm = fusco.Communicator.from_torch(timeout_ms=20000)
    ids = np.arange(2 * world, dtype=np.int64).reshape(world, 2) % (2 * world)
    bad = ids.copy()
    if rank == 1:
        bad[0, 0] = 2 * world  # expert id out of range
    with pytest.raises(fusco.InvalidArgumentError) as raised:
        comm.plan(bad, 2 * world)
    assert ("topk_idx" if rank == 1 else "rank 1") in str(raised.value)
    x = np.full((world, 3), rank, dtype=np.float32)
    plan = comm.plan(ids, 2 * world)
    with pytest.raises((TypeError, ValueError, fusco.FuscoError)):
        comm.dispatch(plan, x[:, :2] if rank == 2 else x)  # rank 2: wrong hidden size
    recv = comm.dispatch(plan, x)
    assert comm.usable and recv.shape == (plan.num_recv_rows, 3)


@pytest.mark.parametrize("seeds,transport", [(range(0, 12), "shm"), (range(12, 24), "shm"),
                                             (range(0, 12), "ucx")])
def test_random_routing_cases_across_processes_match_the_reference(seeds, transport):
    run_processes(WORLD, _routing_cases, list(seeds), transport)


def test_bad_input_on_one_process_fails_all_and_leaves_the_group_usable():
    run_processes(3, _bad_input_then_usable)


HIDDEN, FFN, EXPERTS, TOPK = 8, 12, 8, 2
TOKENS = (6, 0, 9, 5)


def _moe_rank(rank, world, dedup, transport):
    comm = fusco.Communicator.from_torch(ranks_per_node=2, transport=transport)
    layer = MoELayer(comm, HIDDEN, FFN, EXPERTS, TOPK, dedup=dedup, seed=3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(11)
    xs = [torch.randn(t, HIDDEN, dtype=torch.float64, generator=gen) for t in TOKENS]
    cs = [torch.randn(t, HIDDEN, dtype=torch.float64, generator=gen) for t in TOKENS]
    x = xs[rank].clone().requires_grad_()
    out = layer(x)
    (out * cs[rank]).sum().backward()

    # Dense: every expert in this process, parameters initialised as every rank's layer is.
    dense_layers = [MoELayer(SimpleNamespace(rank=r, world_size=world), HIDDEN, FFN, EXPERTS,
                             TOPK, seed=3, dtype=torch.float64) for r in range(world)]
    dense_x = [x_r.clone().requires_grad_() for x_r in xs]
    dense_out = [dense_forward(x_r, dense_layers, EXPERTS, TOPK) for x_r in dense_x]
    sum((o * c).sum() for o, c in zip(dense_out, cs)).backward()

    torch.testing.assert_close(out.detach(), dense_out[rank].detach())
    grad_x = x.grad if x.grad is not None else torch.zeros_like(x)
    dense_grad_x = dense_x[rank].grad if dense_x[rank].grad is not None else torch.zeros_like(x)
    torch.testing.assert_close(grad_x, dense_grad_x)
    torch.testing.assert_close(layer.w1.grad, dense_layers[rank].w1.grad)
    torch.testing.assert_close(layer.w2.grad, dense_layers[rank].w2.grad)
    router = layer.router.grad.clone()
    dist.all_reduce(router)  # the router is replicated: its gradient sums over processes
    torch.testing.assert_close(router, dense_layers[0].router.grad)


@pytest.mark.parametrize("dedup,transport", [("none", "shm"), ("node", "shm"), ("node", "ucx")])
def test_moe_layer_across_4_processes_equals_the_dense_layer(dedup, transport):
    run_processes(WORLD, _moe_rank, dedup, transport)


def test_from_torch_needs_an_initialised_group():
    if dist.is_initialized():
        pytest.skip("a default group exists in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        fusco.Communicator.from_torch()
    with pytest.raises(TypeError, match="unknown options"):
        fusco.Communicator.from_torch(chunk=1)
    with pytest.raises(ValueError, match="transport = 'nccl'"):
        fusco.Communicator.from_torch(transport="nccl")


def _on_two_machines(rank, world):
    fusco._machine_id = lambda: f"host-{rank % 2}"   # pretend: two machines
    with pytest.raises(fusco.UnsupportedError, match="run on 2 machines"):
        fusco.Communicator.from_torch()


def test_from_torch_refuses_processes_on_several_machines():
    run_processes(2, _on_two_machines)


def _one_process_never_joins(rank, world, transport):
    if rank == 1:
        time.sleep(5)                       # never calls from_torch
        return
    start = time.monotonic()
    with pytest.raises(fusco.FuscoTimeoutError, match=r"timed out after 1000 ms \(timeout_ms\)"):
        fusco.Communicator.from_torch(transport=transport, timeout_ms=1000)
    assert time.monotonic() - start < 4     # not the torch group's own timeout (60 s here)


@pytest.mark.parametrize("transport", ["shm", "ucx"])
def test_from_torch_join_is_bounded_by_timeout_ms(transport):
    """Issue 18, class 16: the join waits timeout_ms for the other processes, as documented,
    not the torch group's timeout."""
    run_processes(2, _one_process_never_joins, transport)


def _bad_chunk_bytes_on_rank_1(rank, world):
    if rank == 1:
        os.environ["FUSCO_CHUNK_BYTES"] = "lots"   # read by plan, not by joining
    comm = fusco.Communicator.from_torch(timeout_ms=20000)
    ids = np.arange(2 * world, dtype=np.int64).reshape(world, 2) % world
    if rank == 1:
        with pytest.raises(fusco.InvalidArgumentError, match="FUSCO_CHUNK_BYTES='lots'"):
            comm.plan(ids, world)
    else:
        with pytest.raises(fusco.InvalidArgumentError, match="rank 1 rejected its arguments"):
            comm.plan(ids, world)


def test_a_bad_plan_variable_does_not_stop_a_process_from_joining():
    """Joining reads only FUSCO_TIMEOUT_MS: a bad FUSCO_CHUNK_BYTES on one process is its plan's
    argument error (its peers learn it at once), not a process that never joins."""
    run_processes(2, _bad_chunk_bytes_on_rank_1)


def _init_from_environment(rank, world, port):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    comm = fusco.init_process_group()       # env://, as under torchrun
    assert (comm.rank, comm.world_size) == (rank, world)
    ids = np.arange(2 * world, dtype=np.int64).reshape(world, 2) % world
    plan = comm.plan(ids, world)
    recv = comm.dispatch(plan, np.full((world, 3), rank, dtype=np.float32))
    assert recv.shape == (plan.num_recv_rows, 3)
    dist.destroy_process_group()


def test_init_process_group_reads_the_torchrun_environment():
    with socket.socket() as probe:          # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spawn_bounded(_init_from_environment, (3, port), 3)


def _nodes_from_machines(rank, world, transport):
    # ranks_per_node=None: one node per machine; all processes here share this machine.
    comm = fusco.Communicator.from_torch(transport=transport)
    assert comm.ranks_per_node == world
    # An explicit value may divide the machine into logical nodes (how tests emulate several).
    assert fusco.Communicator.from_torch(ranks_per_node=1, transport=transport).ranks_per_node == 1
    with pytest.raises(TypeError, match="ranks_per_node must be an integer, got float 2.0"):
        fusco.Communicator.from_torch(ranks_per_node=2.0, transport=transport)


@pytest.mark.parametrize("transport", ["shm", "ucx"])
def test_from_torch_takes_nodes_from_machines_by_default(transport):
    run_processes(2, _nodes_from_machines, transport)


def test_local_group_ranks_per_node_is_an_integer():
    with pytest.raises(TypeError, match="ranks_per_node must be an integer, got float 1.5"):
        fusco.local_group(2, ranks_per_node=1.5)
    with pytest.raises(TypeError, match="world_size must be an integer"):
        fusco.local_group(2.0)
    assert fusco.local_group(3)[0].ranks_per_node == 3
