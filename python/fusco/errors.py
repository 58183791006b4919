"""Exceptions raised by fusco. Each carries the C++ status code and message."""


class FuscoError(Exception):
    """A fusco call failed. ``code`` is the status code name, ``message`` the C++ message."""

    code = "internal"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class InvalidArgumentError(FuscoError, ValueError):
    """An argument is out of range or inconsistent (the message names it, its value and the limit)."""

    code = "invalid_argument"


class MismatchError(FuscoError, ValueError):
    """Ranks disagree on something that must be equal on all of them."""

    code = "mismatch"


class FuscoTimeoutError(FuscoError, TimeoutError):
    """A bounded wait expired; the message names the rank waited for."""

    code = "timeout"


class AbortedError(FuscoError):
    """The group is unusable after an earlier failure; recreate it."""

    code = "aborted"


class UnsupportedError(FuscoError):
    """The request is valid but not offered (for example fp8 combine)."""

    code = "unsupported"


class FuscoMemoryError(FuscoError, MemoryError):
    """An allocation failed."""

    code = "out_of_memory"


class InternalError(FuscoError):
    """A broken invariant inside fusco: a bug, please report it."""

    code = "internal"


class CapacityExceededError(FuscoError):
    """A capacity-bounded receive layout with overflow="error" got more rows for an expert
    than its capacity; the message names the rank, the expert, its rows and the capacity."""

    code = "capacity_exceeded"


# Index = fusco::StatusCode value.
_BY_CODE = [None, InvalidArgumentError, MismatchError, FuscoTimeoutError, AbortedError,
            UnsupportedError, FuscoMemoryError, InternalError, CapacityExceededError]


def check(status):
    """Raises the exception for a (code, message) status tuple from fusco._C; ok does nothing."""
    code, message = status
    if code == 0:
        return
    cls = _BY_CODE[code] if 0 < code < len(_BY_CODE) else InternalError
    raise cls(message)
