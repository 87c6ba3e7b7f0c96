// sgd.cu — torch.optim.SGD (dampening 0) over one contiguous run of the parameter arena, its
// gradients and momentum buffers: the fused multi-tensor update (at most two launches a step).
// d = g + wd p; buf = momentum buf + d; p -= lr (nesterov ? d + momentum buf : buf).
// One thread per parameter; bound by memory (12 bytes read, 8 written per parameter).
#include "common.cuh"

// With lr_at (v2.19), the learning rate is read from device memory when the kernel runs: a
// captured step (CUDA graph) replays with the rate its plan wrote there before the replay.
KERNEL void sgd_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ buf, i64 count,
                     float lr, float momentum, float weight_decay, int nesterov, const float* __restrict__ lr_at)
{
    if (lr_at) lr = *lr_at;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < count; e += (i64)gridDim.x * blockDim.x)
    {
        float d = fmaf(weight_decay, p[e], g[e]);
        float b = fmaf(momentum, buf[e], d);
        buf[e] = b;
        p[e] -= lr * (nesterov ? fmaf(momentum, b, d) : b);
    }
}
