using System.Runtime.CompilerServices;
using GhostNet.Backends;

namespace GhostNet.Cpu;

/// <summary>
/// Every <see cref="Activation"/> and its gradient from its input, one element at a time: the
/// twins of kernels/common.cuh's activation and activation_grad, operation for operation, so the
/// two backends round alike. NaN stays NaN forward, and every gradient is NaN at a NaN input (a
/// poisoned forward gives no finite gradient; PyTorch gives 0 or dy there). ReLU's vector forms
/// stay in <see cref="Simd"/>; its gradient from the input is its gradient from the output
/// (relu(x) &gt; 0 exactly where x &gt; 0).
/// </summary>
internal static class ActivationMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Apply(Activation kind, float x) => kind switch
    {
        Activation.None => x,
        Activation.Relu => Simd.Relu(x),
        // Math.Clamp keeps NaN, as the kernels' comparisons do.
        Activation.HardSigmoid => Math.Clamp(x + 3f, 0f, 6f) / 6f,
        Activation.Clamp01 => Math.Clamp(x, 0f, 1f),
        // Times 1/6, not over 6, as the kernel (no division there).
        Activation.HardSwish => x * Math.Clamp(x + 3f, 0f, 6f) * (1f / 6f),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Grad(Activation kind, float x, float dy) => kind switch
    {
        Activation.None => dy,
        Activation.Relu => Simd.ReluGrad(x, dy),
        // 1/6 strictly inside (-3, 3), as PyTorch's hardsigmoid_backward.
        Activation.HardSigmoid => x > -3f && x < 3f ? dy / 6f : float.IsNaN(x) ? x : 0f,
        // dy on [0, 1], ends included, as PyTorch's clamp_backward.
        Activation.Clamp01 => x >= 0f && x <= 1f ? dy : float.IsNaN(x) ? x : 0f,
        // 0 below -3, dy (x / 3 + 1/2) on [-3, 3], dy above, as PyTorch's hardswish_backward.
        Activation.HardSwish => x < -3f ? 0f : x <= 3f ? dy * MathF.FusedMultiplyAdd(x, 1f / 3f, 0.5f) : x > 3f ? dy : x,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };
}
