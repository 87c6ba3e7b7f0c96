// elementwise.cu — one thread per element (grid-stride) over views: the residual sum, gradient
// copies, ReLU, hard-sigmoid (timm's relu6(x + 3) / 6), clamp(0, 1), hard-swish and the
// squeeze-excite channel scale.
// Every tensor argument is (pointer to the window's first element, image stride); per_image
// = C * H * W of the view. Bound by memory. Activations are act (common.cuh); the squeeze-excite
// gate and the pooled values are activations too, as PyTorch's autocast keeps them.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void fill(T* __restrict__ y, i64 ys, i64 per_image, i64 total, float value)
{
    FOR_EACH(total) y[view_offset(e, per_image, ys)] = value;
}

// An fp32 view (parameters, momentum, statistics) and an activation view: one kernel each, the same
// two in an fp32 backend.
KERNEL void fill_view(float* __restrict__ y, i64 ys, i64 per_image, i64 total, float value) { fill(y, ys, per_image, total, value); }
KERNEL void fill_act(act* __restrict__ y, i64 ys, i64 per_image, i64 total, float value) { fill(y, ys, per_image, total, value); }

KERNEL void add_views(const act* __restrict__ a, i64 as, const act* __restrict__ b, i64 bs,
                      act* __restrict__ y, i64 ys, i64 per_image, i64 total)
{
    FOR_EACH(total) y[view_offset(e, per_image, ys)] = a[view_offset(e, per_image, as)] + b[view_offset(e, per_image, bs)];
}

KERNEL void copy_or_accumulate(const act* __restrict__ x, i64 xs, act* __restrict__ y, i64 ys,
                               i64 per_image, i64 total, int accumulate)
{
    FOR_EACH(total)
    {
        float v = x[view_offset(e, per_image, xs)];
        act* p = y + view_offset(e, per_image, ys);
        *p = accumulate ? *p + v : v;
    }
}

KERNEL void relu_fwd(const act* __restrict__ x, i64 xs, act* __restrict__ y, i64 ys, i64 per_image, i64 total)
{
    FOR_EACH(total) y[view_offset(e, per_image, ys)] = relu(x[view_offset(e, per_image, xs)]);
}

KERNEL void relu_bwd(const act* __restrict__ y, i64 ys, const act* __restrict__ dy, i64 dys,
                     act* __restrict__ dx, i64 dxs, i64 per_image, i64 total, int accumulate)
{
    FOR_EACH(total)
    {
        float g = relu_grad(y[view_offset(e, per_image, ys)], dy[view_offset(e, per_image, dys)]);
        act* p = dx + view_offset(e, per_image, dxs);
        *p = accumulate ? *p + g : g;
    }
}

// The activations whose backward reads their input x: hard-sigmoid (timm's squeeze-excite gate),
// clamp(0, 1) (the seed's gate, issue 14) and hard-swish (MobileNetV3, issue 14), one body each
// way by kind (common.cuh's activation and activation_grad; each kernel passes a constant, so
// the branches fold away). NaN at a NaN x in every backward (PyTorch gives 0 or dy there), so
// that a poisoned forward gives no finite gradient. The kernels stay spelled out: the host finds
// them by their KERNEL lines.
__device__ __forceinline__ void activate_view(int kind, const act* __restrict__ x, i64 xs, act* __restrict__ y, i64 ys, i64 per_image, i64 total)
{
    FOR_EACH(total) y[view_offset(e, per_image, ys)] = activation(kind, x[view_offset(e, per_image, xs)]);
}

__device__ __forceinline__ void activation_grad_view(int kind, const act* __restrict__ x, i64 xs, const act* __restrict__ dy, i64 dys,
                                                     act* __restrict__ dx, i64 dxs, i64 per_image, i64 total, int accumulate)
{
    FOR_EACH(total)
    {
        float g = activation_grad(kind, x[view_offset(e, per_image, xs)], dy[view_offset(e, per_image, dys)]);
        act* p = dx + view_offset(e, per_image, dxs);
        *p = accumulate ? *p + g : g;
    }
}

#define ACTIVATION_FWD_PARAMS const act* __restrict__ x, i64 xs, act* __restrict__ y, i64 ys, i64 per_image, i64 total
#define ACTIVATION_BWD_PARAMS                                                                                              \
    const act* __restrict__ x, i64 xs, const act* __restrict__ dy, i64 dys, act* __restrict__ dx, i64 dxs, i64 per_image, \
        i64 total, int accumulate
#define ACTIVATION_BWD_ARGS x, xs, dy, dys, dx, dxs, per_image, total, accumulate
KERNEL void hard_sigmoid_fwd(ACTIVATION_FWD_PARAMS) { activate_view(2, x, xs, y, ys, per_image, total); }
KERNEL void hard_sigmoid_bwd(ACTIVATION_BWD_PARAMS) { activation_grad_view(2, ACTIVATION_BWD_ARGS); }
KERNEL void clamp01_fwd(ACTIVATION_FWD_PARAMS) { activate_view(3, x, xs, y, ys, per_image, total); }
KERNEL void clamp01_bwd(ACTIVATION_BWD_PARAMS) { activation_grad_view(3, ACTIVATION_BWD_ARGS); }
KERNEL void hard_swish_fwd(ACTIVATION_FWD_PARAMS) { activate_view(4, x, xs, y, ys, per_image, total); }
KERNEL void hard_swish_bwd(ACTIVATION_BWD_PARAMS) { activation_grad_view(4, ACTIVATION_BWD_ARGS); }

// y[n, c, :] = x[n, c, :] * s[n * C + c]  (s contiguous N x C), and dx = dy * s likewise; added
// with an explicit fmaf, as channel_scale_pool_bwd adds it (v2.15: no contraction choice of the
// compiler can tell the two apart).
KERNEL void channel_scale(const act* __restrict__ x, i64 xs, const act* __restrict__ s,
                          act* __restrict__ y, i64 ys, int C, int P, i64 total, int accumulate)
{
    i64 per_image = (i64)C * P;
    FOR_EACH(total)
    {
        i64 nc = (e / per_image) * C + (e % per_image) / P;
        float v = x[view_offset(e, per_image, xs)];
        act* p = y + view_offset(e, per_image, ys);
        *p = accumulate ? fmaf(v, s[nc], *p) : v * s[nc];
    }
}

// v2.15: the input gradient of squeeze-excite's y = x * s(avgpool(x)) through both of its paths
// at once: dx (+)= dy * s + dp / P, dp the pooled input's gradient (scale = 1 / P). The same
// operations as channel_scale (dx) then broadcast_plane (accumulating), without the second pass
// over dx.
KERNEL void channel_scale_pool_bwd(const act* __restrict__ dy, i64 dys, const act* __restrict__ s,
                                   const act* __restrict__ dp, float scale, act* __restrict__ dx, i64 dxs,
                                   int C, int P, i64 total, int accumulate)
{
    i64 per_image = (i64)C * P;
    FOR_EACH(total)
    {
        i64 nc = (e / per_image) * C + (e % per_image) / P;
        float g = dy[view_offset(e, per_image, dys)];
        act* p = dx + view_offset(e, per_image, dxs);
        float v = accumulate ? fmaf(g, s[nc], *p) : g * s[nc];
        *p = fmaf(dp[nc], scale, v);
    }
}

// out[n * C + c] = scale * sum_p a[n, c, p] (* b[n, c, p] when b is given): the pool of
// squeeze-excite and of the head (scale 1 / P), and the gate gradient of the channel scale.
// One warp per (n, c) plane, THREADS / 32 planes a block: these planes are small (7x7 to 28x28),
// so a block per plane would leave most of its threads idle and pay two block barriers.
KERNEL void plane_reduce(const act* __restrict__ a, i64 as, const act* __restrict__ b, i64 bs,
                         int planes, int C, int P, float scale, act* __restrict__ out)
{
    int plane = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (plane >= planes) return; // a whole warp leaves together, so the shuffles below stay full
    int n = plane / C, c = plane % C;
    const act* ap = a + n * as + (i64)c * P;
    const act* bp = b ? b + n * bs + (i64)c * P : 0;
    double s = 0;
    for (int p = lane; p < P; p += 32) s += bp ? (double)ap[p] * (float)bp[p] : (double)ap[p];
    s = warp_sum(s);
    if (lane == 0) out[plane] = (float)(s * scale);
}

// dx[n, c, p] (+)= g[n * C + c] * scale: the backward of a global average pool.
KERNEL void broadcast_plane(const act* __restrict__ g, float scale, act* __restrict__ dx, i64 dxs,
                            int C, int P, i64 total, int accumulate)
{
    i64 per_image = (i64)C * P;
    FOR_EACH(total)
    {
        float v = g[(e / per_image) * C + (e % per_image) / P];
        act* p = dx + view_offset(e, per_image, dxs);
        *p = accumulate ? fmaf(v, scale, *p) : v * scale; // fmaf: as channel_scale_pool_bwd
    }
}

// nn.MaxPool2d (VGG's 2x2, stride 2): the input a window (oh, ow) of a k x k stride-s window
// grid passes on, as its index in the plane: the first largest in row-major order, or the last
// NaN (PyTorch's `v > max || isnan(v)`), so NaN propagates. Padding is no candidate. The CPU
// twin is CpuBackend.MaxPoolArgmax; the backward recomputes it from x, so no index is stored.
__device__ __forceinline__ int max_pool_argmax(const act* __restrict__ xp, int H, int W, int oh, int ow, int k, int stride, int pad, float* best)
{
    int h0 = oh * stride - pad, w0 = ow * stride - pad, arg = -1;
    int h_end = h0 + k < H ? h0 + k : H, w_end = w0 + k < W ? w0 + k : W;
    float m = __int_as_float(0xff800000); // -Inf
    for (int ih = h0 > 0 ? h0 : 0; ih < h_end; ih++)
        for (int iw = w0 > 0 ? w0 : 0; iw < w_end; iw++)
        {
            float v = xp[ih * W + iw];
            if (arg < 0 || v > m || isnan(v)) { m = v; arg = ih * W + iw; }
        }
    *best = m;
    return arg;
}

// One thread per output of N x C x Ho x Wo; x and y may be channel windows (image strides xs, ys).
KERNEL void max_pool(const act* __restrict__ x, i64 xs, act* __restrict__ y, i64 ys, int N, int C, int H, int W,
                     int Ho, int Wo, int k, int stride, int pad)
{
    FOR_EACH_NCHW(at, N, C, Ho, Wo)
    {
        float m;
        max_pool_argmax(x + at.n * xs + (i64)at.c * H * W, H, W, at.h, at.w, k, stride, pad, &m);
        y[at.n * ys + ((i64)at.c * Ho + at.h) * Wo + at.w] = m;
    }
}

// dx (+)= the gradient of each input: one thread per input gathers, in row-major window order,
// dy of the windows that hold it and chose it (no atomics; the CPU twin adds in the same order).
KERNEL void max_pool_bwd(const act* __restrict__ x, i64 xs, const act* __restrict__ dy, i64 dys, act* __restrict__ dx, i64 dxs,
                         int N, int C, int H, int W, int Ho, int Wo, int k, int stride, int pad, int accumulate)
{
    FOR_EACH_NCHW(at, N, C, H, W)
    {
        const act* xp = x + at.n * xs + (i64)at.c * H * W;
        const act* g = dy + at.n * dys + (i64)at.c * Ho * Wo;
        int p = at.h * W + at.w;
        // The windows holding (h, w) start at oh * stride - pad in [h - k + 1, h].
        int a = at.h + pad - k + 1, b = at.w + pad - k + 1;
        int oh0 = a <= 0 ? 0 : (a + stride - 1) / stride, ow0 = b <= 0 ? 0 : (b + stride - 1) / stride;
        int oh1 = (at.h + pad) / stride, ow1 = (at.w + pad) / stride;
        oh1 = oh1 < Ho ? oh1 : Ho - 1;
        ow1 = ow1 < Wo ? ow1 : Wo - 1;
        float sum = 0.f, m;
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++)
                if (max_pool_argmax(xp, H, W, oh, ow, k, stride, pad, &m) == p) sum += (float)g[oh * Wo + ow];
        act* d = dx + at.n * dxs + (i64)at.c * H * W + p;
        *d = accumulate ? (float)*d + sum : sum;
    }
}

// ToTensor and Normalize on the device: pixels are the batch's HWC RGB bytes, image after image
// (3 H W bytes each), images the N x 3 x H x W floats. y = v * scale[c] + shift[c], the product
// and the sum rounded apart as the CPU twin (Normalization.Normalize) rounds them, so both give
// the same bits. One thread per pixel: three byte loads, three float stores into three planes.
// The host uploads a quarter of the bytes that floats would take.
KERNEL void normalize_images(const unsigned char* __restrict__ pixels, i64 plane, i64 pixels_total,
                             float s0, float s1, float s2, float b0, float b1, float b2, act* __restrict__ images)
{
    FOR_EACH(pixels_total)
    {
        i64 n = e / plane, i = e - n * plane;
        const unsigned char* p = pixels + 3 * e;
        act* y = images + 3 * n * plane + i;
        y[0] = __fadd_rn(__fmul_rn((float)p[0], s0), b0);
        y[plane] = __fadd_rn(__fmul_rn((float)p[1], s1), b1);
        y[2 * plane] = __fadd_rn(__fmul_rn((float)p[2], s2), b2);
    }
}
