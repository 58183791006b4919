"""Helpers for the fusco Python tests: run one function per rank, each on its own thread."""

import threading


def run_ranks_catching(comms, fn):
    """Calls fn(comm) for every communicator concurrently; returns each rank's result or the
    exception it raised, in rank order."""
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


def run_ranks(comms, fn):
    """Like run_ranks_catching, but returns the results and re-raises the first exception."""
    outcomes = run_ranks_catching(comms, fn)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes
