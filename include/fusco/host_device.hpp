#pragma once

/// Marks functions that compile for the host and, under nvcc, for the device too, so the CPU
/// tests cover the index arithmetic the GPU kernels run.
#if defined(__CUDACC__)
#define FUSCO_HOST_DEVICE __host__ __device__
#else
#define FUSCO_HOST_DEVICE
#endif
