"""Zero-copy views of numpy arrays and torch tensors for fusco._C, and output allocation."""

import sys

import numpy as np

# fusco::DType codes.
FP32, FP16, BF16, FP8_E4M3, FP8_E5M2, INT8, INT32, INT64, FP64 = range(9)

_NUMPY_CODES = {
    np.dtype(np.float32): FP32,
    np.dtype(np.float16): FP16,
    np.dtype(np.int8): INT8,
    np.dtype(np.int32): INT32,
    np.dtype(np.int64): INT64,
    np.dtype(np.float64): FP64,
}
_NUMPY_DTYPES = {code: dtype for dtype, code in _NUMPY_CODES.items()}


def _torch():
    """torch if the program imported it (a tensor cannot exist otherwise), else None."""
    return sys.modules.get("torch")


def _torch_codes(torch):
    codes = {torch.float32: FP32, torch.float16: FP16, torch.bfloat16: BF16, torch.int8: INT8,
             torch.int32: INT32, torch.int64: INT64, torch.float64: FP64}
    for name, code in (("float8_e4m3fn", FP8_E4M3), ("float8_e5m2", FP8_E5M2)):
        if hasattr(torch, name):
            codes[getattr(torch, name)] = code
    return codes


class ArrayArg:
    """What fusco._C needs of an array: pointer, dtype code and shape."""

    __slots__ = ("array", "ptr", "dtype", "shape", "is_torch", "row_stride")

    def __init__(self, array, ptr, dtype, shape, is_torch, row_stride=0):
        self.array = array  # keeps the memory alive for the call
        self.ptr = ptr
        self.dtype = dtype
        self.shape = shape
        self.is_torch = is_torch
        self.row_stride = row_stride  # elements between rows; 0: contiguous


def _row_stride(shape, element_strides):
    """Elements between rows of a 2-D array whose rows are contiguous but may be spread
    (a column slice of a wider array), or None for any other layout."""
    if len(shape) != 2 or (shape[1] > 1 and element_strides[1] != 1):
        return None
    stride = element_strides[0]
    return stride if stride >= shape[1] and stride > 0 else None


def view(array, name, allowed=None, strided_rows=False):
    """An ArrayArg for a numpy array or a torch tensor (CPU, C-contiguous), no copy.

    With ``strided_rows`` a 2-D array whose rows are contiguous but spread apart (for example
    ``big[:, :hidden]``) is also accepted, as a row stride. Raises TypeError for anything else
    or for a dtype fusco does not move, ValueError for a non-contiguous array or a tensor on
    another device. ``allowed``: accepted dtype codes.
    """
    torch = _torch()
    if isinstance(array, np.ndarray):
        code = _NUMPY_CODES.get(array.dtype)
        if code is None:
            raise TypeError(f"{name} has numpy dtype {array.dtype}, which fusco does not move")
        stride = 0
        if not array.flags.c_contiguous:
            items = [s // array.itemsize if s % array.itemsize == 0 else -1
                     for s in array.strides]
            stride = _row_stride(array.shape, items) if strided_rows else None
            if stride is None:
                raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray makes a "
                                 f"copy)" + (" or have contiguous rows" if strided_rows else ""))
        arg = ArrayArg(array, array.__array_interface__["data"][0], code, list(array.shape),
                       False, stride)
    elif torch is not None and isinstance(array, torch.Tensor):
        code = _torch_codes(torch).get(array.dtype)
        if code is None:
            raise TypeError(f"{name} has torch dtype {array.dtype}, which fusco does not move")
        if array.device.type != "cpu":
            raise ValueError(f"{name} is on {array.device}; this communicator takes CPU tensors")
        stride = 0
        if not array.is_contiguous():
            stride = _row_stride(list(array.shape), list(array.stride())) if strided_rows \
                else None
            if stride is None:
                raise ValueError(f"{name} must be contiguous (tensor.contiguous() makes a copy)"
                                 + (" or have contiguous rows" if strided_rows else ""))
        arg = ArrayArg(array, array.data_ptr(), code, list(array.shape), True, stride)
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got "
                        f"{type(array).__name__}")
    if allowed is not None and arg.dtype not in allowed:
        raise TypeError(f"{name} has dtype {array.dtype}; expected one of "
                        f"{sorted(_name(c) for c in allowed)}")
    return arg


def _name(code):
    return ["float32", "float16", "bfloat16", "float8_e4m3", "float8_e5m2", "int8", "int32",
            "int64", "float64"][code]


def empty_like_kind(like, shape, dtype_code):
    """A new uninitialised array of ``like``'s kind (numpy or torch) and the given dtype."""
    if like.is_torch:
        torch = _torch()
        dtype = {code: dtype for dtype, code in _torch_codes(torch).items()}[dtype_code]
        return torch.empty(shape, dtype=dtype)
    return np.empty(shape, dtype=_NUMPY_DTYPES[dtype_code])
