// dropout.cu — inverted dropout on a contiguous tensor: keep element i when
// counter_uniform(seed, i) >= p (the CPU backend's CounterRng), scaling kept values by 1 / (1 - p).
// Backward recomputes the mask from the same seed. A dropped element is multiplied by 0, not
// replaced by 0, so NaN and Inf stay NaN as in PyTorch. One thread per element; bound by memory.
#include "common.cuh"

// With seed_at (v2.19), the seed is read from device memory when the kernel runs (a captured
// step's, written before each replay).
KERNEL void dropout(const act* __restrict__ x, act* __restrict__ y, i64 count, float p, u64 seed, int accumulate, const u64* __restrict__ seed_at)
{
    if (seed_at) seed = *seed_at;
    float scale = 1.f / (1.f - p);
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < count; e += (i64)gridDim.x * blockDim.x)
    {
        float v = x[e] * (counter_uniform(seed, (u64)e) >= p ? scale : 0.f);
        y[e] = accumulate ? y[e] + v : v;
    }
}
