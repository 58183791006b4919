"""Helpers for the fusco Python tests: run one function per rank, each on its own thread."""

import threading

import pytest


def run_ranks(comms, fn):
    """Calls fn(comm) for every communicator concurrently; returns the results in rank order
    and re-raises the first exception (after every thread finished)."""
    results = [None] * len(comms)
    errors = [None] * len(comms)

    def body(rank):
        try:
            results[rank] = fn(comms[rank])
        except BaseException as exc:  # noqa: B902 - reported to the caller below
            errors[rank] = exc

    threads = [threading.Thread(target=body, args=(r,)) for r in range(len(comms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a rank did not finish within 120 s"
    for exc in errors:
        if exc is not None:
            raise exc
    return results


def run_ranks_catching(comms, fn):
    """Like run_ranks, but returns each rank's result or exception instead of raising."""
    outcomes = [None] * len(comms)

    def body(rank):
        try:
            outcomes[rank] = fn(comms[rank])
        except BaseException as exc:  # noqa: B902 - returned to the caller
            outcomes[rank] = exc

    threads = [threading.Thread(target=body, args=(r,)) for r in range(len(comms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a rank did not finish within 120 s"
    return outcomes


@pytest.fixture
def ranks():
    return run_ranks
