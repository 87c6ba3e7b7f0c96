// dropout.cu — inverted dropout on a contiguous tensor: keep element i when
// counter_uniform(seed, i) >= p (the CPU backend's CounterRng), scaling kept values by 1 / (1 - p).
// Backward recomputes the mask from the same seed. A dropped element is multiplied by 0, not
// replaced by 0, so NaN and Inf stay NaN as in PyTorch. One thread per element; bound by memory.
#include "common.cuh"

KERNEL void dropout(const float* __restrict__ x, float* __restrict__ y, i64 count, float p, u64 seed, int accumulate)
{
    float scale = 1.f / (1.f - p);
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < count; e += (i64)gridDim.x * blockDim.x)
    {
        float v = x[e] * (counter_uniform(seed, (u64)e) >= p ? scale : 0.f);
        y[e] = accumulate ? y[e] + v : v;
    }
}
