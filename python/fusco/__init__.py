"""fusco: fused token dispatch and combine for expert-parallel Mixture-of-Experts layers.

    comms = fusco.local_group(world_size, ranks_per_node=None)   # in-process ranks (threads)
    comm  = fusco.Communicator.from_torch(process_group=None)     # processes (torch.distributed)
    comm  = fusco.init_process_group()                            # the same, under torchrun
    plan  = comm.plan(topk_idx, num_experts, expert_map=None, dedup="node")   # collective
    recv  = comm.dispatch(plan, x)                        # [plan.num_recv_rows, H], expert-major
    out   = comm.combine(plan, expert_out, topk_weights)  # [T, H]

Every call of a group is collective: each rank makes it (from its own thread for a local
group, from its own process for a torch group); the GIL is released inside. Arrays are numpy arrays or torch CPU tensors, C-contiguous, never copied;
outputs are of the same kind as the input.
"""

import operator
import os
import secrets
import socket
import time

import numpy as np

from . import _C
from ._arrays import FP32, FP64, INT32, INT64, empty_like_kind, view
from .errors import (AbortedError, CapacityExceededError, FuscoError, FuscoMemoryError,
                     FuscoTimeoutError, InternalError, InvalidArgumentError, MismatchError,
                     UnsupportedError, check)

__version__ = _C.__version__

__all__ = ["local_group", "init_process_group", "Communicator", "Plan", "Work", "FuscoError", "InvalidArgumentError",
           "MismatchError", "FuscoTimeoutError", "AbortedError", "UnsupportedError",
           "FuscoMemoryError", "InternalError", "CapacityExceededError"]

_OPTIONS = ("chunk_bytes", "timeout_ms", "combine_buffer_bytes")

# What a rank passes for an array it rejected: pointer, dtype code, shape that fusco._C
# refuses locally. The rank still takes part in the collective call, so no peer waits for it;
# the peers fail with "rank r rejected its arguments" and the group stays usable.
_REJECTED = (0, -1, [])
_ARGUMENT_ERRORS = (TypeError, ValueError, OverflowError, MemoryError)


_INT32 = (-2**31, 2**31 - 1)
_INT64 = (-2**63, 2**63 - 1)
_BY_MACHINE = -1  # Topology::kByMachine: one node per machine


def _integer(value, name, bounds=_INT64):
    """value as an int, or TypeError / ValueError naming the argument: floats (even whole
    ones), bools and strings are refused, not truncated; integer numpy scalars and one-element
    integer tensors are taken. bounds: the C++ type's range (the C++ side checks the limits
    that matter)."""
    if isinstance(value, bool) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool"):
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") \
            from None
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} = {value} is outside [{bounds[0]}, {bounds[1]}]")
    return value


def _text(value, name, optional=True):
    """value if it is a str (or None, when optional), else TypeError naming the argument."""
    if not (isinstance(value, str) or (optional and value is None)):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value


def _all_gather_objects(obj, group, deadline, timeout_ms):
    """torch.distributed.all_gather_object over `group`, bounded by `deadline` (time.monotonic)
    instead of the group's own timeout (minutes by default): the pickled objects go through
    two tensor all_gathers (sizes, then bytes) whose waits end at the deadline. A process that
    does not come makes FuscoTimeoutError, naming the wait."""
    import pickle

    import torch
    import torch.distributed as dist
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend(group) == "nccl" else torch.device("cpu"))
    world = dist.get_world_size(group)
    data = torch.tensor(list(pickle.dumps(obj)), dtype=torch.uint8, device=device)

    def gathered(tensor):
        out = [torch.empty_like(tensor) for _ in range(world)]
        work = dist.all_gather(out, tensor, group=group, async_op=True)
        # Polled, not work.wait(timeout): an NCCL group's wait(timeout) does not block the host.
        while not work.is_completed():
            if time.monotonic() > deadline:
                raise FuscoTimeoutError(
                    f"Communicator.from_torch: rank {dist.get_rank(group)} timed out after "
                    f"{timeout_ms} ms (timeout_ms) waiting for every process of the torch "
                    f"group to join; recreate the torch group too (its all_gather is pending)")
            time.sleep(0.0005)
        try:
            work.wait()
        except RuntimeError as exc:  # a peer that crashed, a broken connection
            raise AbortedError(f"Communicator.from_torch: the torch group's all_gather failed "
                               f"while joining ({exc})") from None
        return out

    sizes = [int(size) for size in gathered(torch.tensor([data.numel()], device=device))]
    padded = torch.zeros(max(sizes), dtype=torch.uint8, device=device)
    padded[:data.numel()] = data
    return [pickle.loads(bytes(chunk[:size].cpu().tolist()))
            for chunk, size in zip(gathered(padded), sizes)]


def _expert_map_lists(expert_map):
    """(owners, replicas) for the C++ plan call: None, a list of owner ranks, or a list of
    replica lists (an entry that is itself a sequence makes the map a replica map)."""
    if expert_map is None:
        return None, None
    entries = list(expert_map)

    def is_list(entry):
        return isinstance(entry, (list, tuple)) or getattr(entry, "ndim", 0) >= 1

    if any(is_list(e) for e in entries):
        return None, [[_integer(r, f"expert_map[{e}][{i}]", _INT32)
                       for i, r in enumerate(entry if is_list(entry) else [entry])]
                      for e, entry in enumerate(entries)]
    return [_integer(r, f"expert_map[{e}]", _INT32) for e, r in enumerate(entries)], None


class Plan:
    """The immutable result of Communicator.plan; reuse it for combine and backward."""

    def __init__(self, plan, topk_idx=None, world_size=1):
        self._plan = plan
        self._topk_idx = topk_idx      # int64 numpy copy, for fusco.torch's row metadata
        self._world_size = world_size
        self._row_slots = None         # per received row: the source's top-k slot (cached)

    @property
    def tokens_per_expert(self):
        """int64 numpy array: rows per local expert, in local expert order."""
        return np.asarray(self._plan.tokens_per_expert, dtype=np.int64)

    @property
    def local_experts(self):
        """int64 numpy array: the logical expert id of each local slot (ascending); with
        replicated experts, the experts this rank holds a copy of."""
        return np.asarray(self._plan.local_experts, dtype=np.int64)

    def combine_rounds(self, row_bytes):
        """Rounds this rank's combine takes for expert-output rows of row_bytes bytes under the
        combine_buffer_bytes option (1 without a bound; a call runs the group's most)."""
        return self._plan.combine_rounds(int(row_bytes))

    @property
    def padded_tokens_per_expert(self):
        """int64 numpy array: rows of each local expert's block in the receive buffer (with
        padding; equal to tokens_per_expert without alignment or capacity)."""
        return np.asarray(self._plan.padded_tokens_per_expert, dtype=np.int64)

    @property
    def dropped_per_expert(self):
        """int64 numpy array: rows each local expert did not receive (capacity layouts)."""
        return np.asarray(self._plan.dropped_per_expert, dtype=np.int64)

    @property
    def recv_local_experts(self):
        """int32 numpy array [num_recv_rows]: each row's local expert slot (rank-major
        layouts; empty otherwise)."""
        return np.asarray(self._plan.recv_local_experts, dtype=np.int32)

    @property
    def slot_ranks(self):
        """int32 numpy array [T, k]: the rank each (token, slot) row goes to (with replicated
        experts, the copy the planner chose), -1 for unused slots."""
        return np.asarray(self._plan.slot_ranks, dtype=np.int32).reshape(self.num_tokens,
                                                                          self.topk)

    @property
    def num_recv_rows(self):
        """Rows dispatch writes on this rank."""
        return self._plan.num_recv_rows

    @property
    def num_tokens(self):
        """Tokens of this rank (T)."""
        return self._plan.num_tokens

    @property
    def topk(self):
        """Slots per token (k)."""
        return self._plan.topk

    @property
    def num_experts(self):
        """Logical experts (E)."""
        return self._plan.num_experts

    @property
    def stats(self):
        """dict of row counts: rows_per_destination, wire_rows_per_destination,
        intra_node_rows, inter_node_rows, inter_node_rows_without_dedup,
        relay_forwarded_rows, received_rows, dedup_ratio, direct_peers (rows to this node's
        ranks stored straight into their buffers, or through staging windows). Bytes are rows * H * element
        size (the plan does not know H)."""
        return self._plan.stats

    def __repr__(self):
        return (f"fusco.Plan(tokens={self.num_tokens}, topk={self.topk}, "
                f"recv_rows={self.num_recv_rows})")


class Work:
    """A dispatch or combine in flight (async_op=True), like torch.distributed's work handles.

    The call runs on the communicator's progress thread, GIL released, while the caller
    computes; do not modify its input arrays until wait() returns. Calls of one communicator
    run in the order they were made (a later call, asynchronous or not, starts after this one).
    """

    def __init__(self, work, result, inputs):
        self._work = work
        self._result = result
        self._inputs = inputs  # kept alive until the call finished

    def wait(self):
        """Blocks (GIL released) until the call finished; returns its result (recv or out) or
        raises its error. Bounded by the call's timeout."""
        check(self._work.wait())
        self._inputs = None
        return self._result

    def is_completed(self):
        """True once the call finished (wait() then returns at once)."""
        return self._work.done()


class Communicator:
    """One rank of a group. Make groups with fusco.local_group (threads) or
    Communicator.from_torch (processes)."""

    def __init__(self, comm, options):
        self._comm = comm
        self._options = dict(options)

    @classmethod
    def from_torch(cls, process_group=None, ranks_per_node=None, transport="shm", **options):
        """Collective over a torch.distributed group (None: the default group). Every process
        of the group calls it; each gets the Communicator of its rank in the group.

        transport="shm" (default): the processes must run on one machine; rows move through a
        POSIX shared-memory segment (/dev/shm) whose name rank 0 picks and hands out through the
        group (all_gather_object, so gloo on CPU works); processes on several machines raise
        UnsupportedError. transport="ucx": processes on any machines, connected by UCX
        (UCX_TLS chooses shared memory, tcp, RDMA); the worker addresses go through the group.
        ranks_per_node groups ranks into logical nodes; None (default): one node per machine,
        which must hold consecutive ranks, as many on each (UnsupportedError otherwise). A
        logical node that spans two machines is refused (ValueError). Options as for
        local_group; timeout_ms also bounds the wait for every process to join."""
        _check_options("from_torch", options)
        if transport not in ("shm", "ucx"):
            raise ValueError(f"transport = {transport!r} is not one of 'shm', 'ucx'")
        import torch.distributed as dist
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("Communicator.from_torch needs torch.distributed initialised "
                               "(call torch.distributed.init_process_group first)")
        group = process_group if process_group is not None else dist.group.WORLD
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        rpn = (_BY_MACHINE if ranks_per_node is None
               else _integer(ranks_per_node, "ranks_per_node", _INT32))
        status, timeout_ms = _C.join_timeout_ms(options.get("timeout_ms"))
        check(status)
        if timeout_ms < 1:
            raise ValueError(f"timeout_ms = {timeout_ms} is outside [1, 86400000]")
        deadline = time.monotonic() + timeout_ms / 1000
        if transport == "ucx":
            def allgather(mine):
                return _all_gather_objects(bytes(mine), group, deadline, timeout_ms)

            status, comm = _C.ucx_group(rank, world, rpn, allgather, options.get("timeout_ms"))
            check(status)
            return cls(comm, options)
        # One exchange: rank 0's fresh segment name, and every process's machine.
        mine = (f"/fusco-{os.getpid()}-{secrets.token_hex(8)}" if rank == 0 else None,
                _machine_id())
        gathered = _all_gather_objects(mine, group, deadline, timeout_ms)
        machines = sorted({machine for _, machine in gathered})
        if len(machines) > 1:
            raise UnsupportedError(
                f"Communicator.from_torch: the {world} processes run on {len(machines)} "
                f"machines; the shared-memory transport joins processes of one machine only "
                f"(use transport='ucx')")
        left_ms = max(1, int((deadline - time.monotonic()) * 1000))  # one bound for the join
        status, comm = _C.shared_memory_group(gathered[0][0], rank, world, rpn, left_ms)
        check(status)
        return cls(comm, options)

    @property
    def rank(self):
        return self._comm.rank

    @property
    def world_size(self):
        return self._comm.world_size

    @property
    def ranks_per_node(self):
        return self._comm.ranks_per_node

    @property
    def usable(self):
        """False once a failure (a timeout, a dead peer, abort) broke the group; recreate it
        then."""
        return self._comm.usable

    def abort(self, reason=""):
        """Breaks the group on purpose (for example from a watchdog thread): every rank waiting
        inside plan, dispatch or combine raises AbortedError carrying "rank r aborted the
        group: reason" at once; the group must be recreated. Not collective; any thread."""
        self._comm.abort(str(reason))

    def plan(self, topk_idx, num_experts, expert_map=None, dedup="node", relay=None,
             layout=None, alignment=1, capacity=None, overflow="drop", process_relays=None):
        """Collective. Plans the shuffle of this rank's tokens.

        topk_idx: [T, k] int32 or int64 (numpy or torch), -1 for an unused slot.
        num_experts: E. expert_map: None (contiguous: E divisible by world size), a sequence
        of E owner ranks, or a sequence of E sequences of ranks (redundant experts: every rank
        listed holds a copy, the first is the primary; the planner picks a copy per row, see
        plan.stats["received_rows_per_rank"]). dedup: "none", "rank" or "node". relay:
        "rail" or "balanced" (None: FUSCO_RELAY, default "rail"). process_relays: "auto",
        "on" or "off": node dedup's relays between processes, which park and forward their
        node peers' rows in a second hop (None: FUSCO_PROCESS_RELAYS, default "auto": only
        when the processes' nodes are separate machines).

        Receive layout: layout="expert-major" (default; alignment=m pads each expert's block
        with zero rows to a multiple of m, see plan.padded_tokens_per_expert),
        "rank-major" (rows by source rank, token, slot; plan.recv_local_experts gives each
        row's local expert), or "capacity" with capacity=C (static [local experts, C, H]
        blocks; rows past C are dropped and counted in plan.dropped_per_expert, or with
        overflow="error" the plan raises CapacityExceededError on every rank). Passing
        capacity alone selects "capacity".
        """
        # Every argument is converted here, inside the rejection path: a rank whose arguments
        # fail still joins the collective call (with arguments fusco._C refuses locally).
        try:
            idx = view(topk_idx, "topk_idx", allowed=(INT32, INT64))
            owners, replicas = _expert_map_lists(expert_map)
            args = (idx.ptr, idx.dtype, idx.shape, _integer(num_experts, "num_experts"), owners,
                    replicas, _text(dedup, "dedup"), _text(relay, "relay"),
                    _text(layout, "layout"), _integer(alignment, "alignment"),
                    None if capacity is None else _integer(capacity, "capacity"),
                    _text(overflow, "overflow", optional=False),
                    _text(process_relays, "process_relays"))
            error = None
        except _ARGUMENT_ERRORS as exc:
            args = (*_REJECTED, 1, None, None, None, None, None, 1, None, "drop", None)
            error = exc
        *plan_args, process_mode = args
        status, plan = self._comm.plan(*plan_args, self._options.get("chunk_bytes"),
                                       self._options.get("timeout_ms"),
                                       self._options.get("combine_buffer_bytes"), process_mode)
        if error is not None:
            raise error
        check(status)
        routing = np.array(idx.array, dtype=np.int64, copy=True) if not idx.is_torch else \
            idx.array.detach().to("cpu").numpy().astype(np.int64)
        return Plan(plan, routing, self.world_size)

    def dispatch(self, plan, x, async_op=False, extra=None):
        """Collective. Sends each row of x [T, H] (any fusco dtype) to its experts. x may be a
        column slice of a wider array (rows contiguous but spread apart: no copy is made).

        Returns recv [plan.num_recv_rows, H] of x's kind and dtype, in the plan's receive
        layout (expert-major by default: rows sorted by (local expert, source rank, source
        token, slot); padding rows are zero). With extra [T, E2] (any dtype: fp8 scales,
        token ids, ...) each row's companion travels with it and the result is the pair
        (recv, extra_recv [plan.num_recv_rows, E2]). With async_op=True it returns at once a
        fusco.Work whose wait() returns the result (see Work).
        """
        try:
            _check_plan(plan)
            xa = view(x, "x", strided_rows=True)
            hidden = xa.shape[1] if len(xa.shape) == 2 else 0
            recv = empty_like_kind(xa, (plan.num_recv_rows, hidden), xa.dtype)
            ra = view(recv, "recv")
            args, error = (plan._plan, xa.ptr, xa.dtype, xa.shape, xa.row_stride, ra.ptr,
                           ra.dtype, ra.shape), None
            if extra is not None:
                ea = view(extra, "extra", strided_rows=True)
                cols = ea.shape[1] if len(ea.shape) == 2 else 0
                extra_recv = empty_like_kind(ea, (plan.num_recv_rows, cols), ea.dtype)
                era = view(extra_recv, "extra_recv")
                args += (ea.ptr, ea.dtype, ea.shape, ea.row_stride, era.ptr, era.dtype, era.shape)
        except _ARGUMENT_ERRORS as exc:
            args, error = (_C.Plan(), *_REJECTED, 0, *_REJECTED), exc
            if extra is not None:
                args += (*_REJECTED, 0, *_REJECTED)
        if extra is None:
            status, work = self._comm.dispatch(*args, bool(async_op))
        else:
            status, work = self._comm.dispatch_with_extra(*args, bool(async_op))
        if error is not None:
            raise error
        check(status)
        result = recv if extra is None else (recv, extra_recv)
        keep = (x,) if extra is None else (x, extra)
        return Work(work, result, keep) if async_op else result

    def combine(self, plan, expert_out, topk_weights, async_op=False):
        """Collective. out[t] = sum over valid slots j of topk_weights[t, j] * expert_out[row(t, j)].

        expert_out: [plan.num_recv_rows, H] float32, float16 or bfloat16 (accumulated in fp32),
        or float64 (accumulated in fp64), rows possibly spread apart; topk_weights: [T, k] float32 (float64 with float64
        expert_out). Sums in a fixed order; returns out [T, H] of expert_out's kind and dtype
        (zero rows for tokens without valid slots). With async_op=True it returns at once a
        fusco.Work whose wait() returns out.
        """
        try:
            _check_plan(plan)
            ya = view(expert_out, "expert_out", strided_rows=True)
            wa = view(topk_weights, "topk_weights", allowed=(FP32, FP64))
            hidden = ya.shape[1] if len(ya.shape) == 2 else 0
            out = empty_like_kind(ya, (plan.num_tokens, hidden), ya.dtype)
            oa = view(out, "out")
            args, error = (plan._plan, ya.ptr, ya.dtype, ya.shape, ya.row_stride, wa.ptr,
                           wa.dtype, wa.shape, oa.ptr, oa.dtype, oa.shape), None
        except _ARGUMENT_ERRORS as exc:
            args, error = (_C.Plan(), *_REJECTED, 0, *_REJECTED, *_REJECTED), exc
        status, work = self._comm.combine(*args, bool(async_op))
        if error is not None:
            raise error
        check(status)
        return Work(work, out, (expert_out, topk_weights)) if async_op else out

    def __repr__(self):
        return (f"fusco.Communicator(rank={self.rank}, world_size={self.world_size}, "
                f"ranks_per_node={self.ranks_per_node})")


def _check_plan(plan):
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be a fusco.Plan, got {type(plan).__name__}")


def _machine_id():
    """This machine (host name and boot id): processes that share it share /dev/shm."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def _check_options(caller, options):
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"{caller} got unknown options {unknown}; known: {list(_OPTIONS)}")


def init_process_group(backend="gloo", init_method=None, transport="shm", ranks_per_node=None,
                       **options):
    """The communicator of this process in a new process group, for scripts started by
    torchrun (or anything that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT).

    Initialises torch.distributed (backend, init_method: as torch.distributed's; env:// by
    default) unless it already is, then returns Communicator.from_torch(None, ranks_per_node,
    transport, **options) over the default group."""
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method=init_method)
    return Communicator.from_torch(None, ranks_per_node=ranks_per_node, transport=transport,
                                   **options)


def local_group(world_size, ranks_per_node=None, **options):
    """world_size in-process ranks (one per thread), grouped into nodes of ranks_per_node
    (None: one node). Options: chunk_bytes, timeout_ms, combine_buffer_bytes (defaults and
    FUSCO_* environment variables as in docs/api.md). Returns the communicators, element r being rank r."""
    _check_options("local_group", options)
    rpn = 0 if ranks_per_node is None else _integer(ranks_per_node, "ranks_per_node", _INT32)
    status, comms = _C.local_group(_integer(world_size, "world_size", _INT32), rpn)
    check(status)
    return [Communicator(comm, options) for comm in comms]

