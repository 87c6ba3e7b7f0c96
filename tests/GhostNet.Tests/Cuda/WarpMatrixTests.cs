using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The tensor-core and async-copy instructions of kernels/mma.cuh (mma.sync m16n8k8 tf32 and
/// m16n8k16 bf16, ldmatrix x1/x2/x4 and .trans, cp.async 4/8/16 with zero-fill and commit groups,
/// cvt.rna.tf32.f32, cvt.rn.bf16x2.f32) lane by lane against scalar references written from the
/// PTX ISA's fragment layouts, and the one-warp GEMM tiles that a tensor-core GEMM is built from
/// against a double-precision product. On the emulator this proves emu_warp_matrix.h; on a GPU the
/// same tests prove the references (the emulator-only assertions say so where they are).
/// </summary>
[Category("Gpu")]
public unsafe class WarpMatrixTests
{
    /// <summary>The test kernels; KernelCompileTests also compiles them with the real NVRTC (sm_80, sm_90).</summary>
    internal const string Source = """
        #include "common.cuh"
        #include "mma.cuh"

        __device__ __forceinline__ int clamp_to(int v, int hi) { return v < 0 ? 0 : v > hi ? hi : v; }

        KERNEL void write_at(float* p, int offset) { if (threadIdx.x == 0) p[offset] = 1.f; }

        // Each lane's fragment registers come in and its d registers go out: the fragment layout is
        // only in the test's reference, so the reference is what the hardware gets checked against.
        KERNEL void mma_tf32(const unsigned* a, const unsigned* b, const float* c, float* d)
        {
            int l = threadIdx.x;
            unsigned ar[4], br[2];
            float cr[4], dr[4];
            for (int i = 0; i < 4; i++) ar[i] = a[l * 4 + i], cr[i] = c[l * 4 + i];
            for (int i = 0; i < 2; i++) br[i] = b[l * 2 + i];
            mma_tf32_16x8x8(dr, ar, br, cr);
            for (int i = 0; i < 4; i++) d[l * 4 + i] = dr[i];
        }

        KERNEL void mma_bf16(const unsigned* a, const unsigned* b, const float* c, float* d)
        {
            int l = threadIdx.x;
            unsigned ar[4], br[2];
            float cr[4], dr[4];
            for (int i = 0; i < 4; i++) ar[i] = a[l * 4 + i], cr[i] = c[l * 4 + i];
            for (int i = 0; i < 2; i++) br[i] = b[l * 2 + i];
            mma_bf16_16x8x16(dr, ar, br, cr);
            for (int i = 0; i < 4; i++) d[l * 4 + i] = dr[i];
        }

        KERNEL void convert(const float* x, const float* y, unsigned* tf32, unsigned* bf16, float* unpacked, int n)
        {
            for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
            {
                tf32[i] = to_tf32(x[i]);
                unsigned p = pack_bf16x2(x[i], y[i]);
                bf16[i] = p;
                unpacked[2 * i] = bf16_lo(p);
                unpacked[2 * i + 1] = bf16_hi(p);
            }
        }

        // 64 rows of eight 16-bit elements in shared memory; lane l passes the address of row rows[l].
        KERNEL void ldmatrix_rows(const unsigned short* tile, const int* rows, unsigned* out, int kind)
        {
            __shared__ __align__(16) unsigned short s[64 * 8];
            int l = threadIdx.x;
            for (int i = l; i < 64 * 8; i += 32) s[i] = tile[i];
            __syncthreads();
            const unsigned short* row = s + rows[l] * 8;
            unsigned r[4] = {0u, 0u, 0u, 0u};
            switch (kind)
            {
            case 0: ldmatrix_x1(r, row); break;
            case 1: ldmatrix_x2(r, row); break;
            case 2: ldmatrix_x4(r, row); break;
            case 3: ldmatrix_x1_trans(r, row); break;
            case 4: ldmatrix_x2_trans(r, row); break;
            default: ldmatrix_x4_trans(r, row); break;
            }
            for (int i = 0; i < 4; i++) out[l * 4 + i] = r[i];
        }

        // Lane l copies `size` bytes (src-size `bytes`) from src + 4l + offset into its 16-byte slot at
        // float `offset`; the slot starts as -1. After the wait and a barrier each lane reads its
        // neighbour's slot, so the copy is also checked as seen by another thread.
        KERNEL void cp_async_copy(const float* src, float* out, int size, int bytes, int offset)
        {
            __shared__ __align__(16) float s[32 * 4];
            int l = threadIdx.x;
            for (int i = 0; i < 4; i++) s[l * 4 + i] = -1.f;
            float* dst = s + l * 4 + offset;
            const float* from = src + l * 4 + offset;
            if (size == 4) cp_async_4(dst, from, bytes);
            else if (size == 8) cp_async_8(dst, from, bytes);
            else cp_async_16(dst, from, bytes);
            cp_async_commit();
            cp_async_wait<0>();
            __syncthreads();
            int n = (l + 1) & 31;
            for (int i = 0; i < 4; i++) out[l * 4 + i] = s[n * 4 + i];
        }

        // The destination (first set to -1) read before and after the wait (before: NaN on the
        // emulator, which poisons it when the copy is issued; undefined on a GPU).
        KERNEL void cp_async_early_read(const float* src, float* before, float* after)
        {
            __shared__ __align__(16) float s[32 * 4];
            int l = threadIdx.x;
            for (int i = 0; i < 4; i++) s[l * 4 + i] = -1.f;
            cp_async_16(s + l * 4, src + l * 4);
            cp_async_commit();
            for (int i = 0; i < 4; i++) before[l * 4 + i] = s[l * 4 + i];
            cp_async_wait<0>();
            for (int i = 0; i < 4; i++) after[l * 4 + i] = s[l * 4 + i];
        }

        // Four committed groups of one 16-byte copy each (slots 0-3, first set to -1) and a fifth
        // copy left uncommitted (slot 4), then wait_group n (n = 5: wait_all); out gets the five
        // slots as they are then.
        KERNEL void cp_async_groups(const float* src, float* out, int n)
        {
            __shared__ __align__(16) float s[32 * 5 * 4];
            int l = threadIdx.x;
            float* mine = s + l * 20;
            for (int i = 0; i < 20; i++) mine[i] = -1.f;
            for (int g = 0; g < 5; g++)
            {
                cp_async_16(mine + g * 4, src + (l * 5 + g) * 4);
                if (g < 4) cp_async_commit();
            }
            switch (n)
            {
            case 0: cp_async_wait<0>(); break;
            case 1: cp_async_wait<1>(); break;
            case 2: cp_async_wait<2>(); break;
            case 3: cp_async_wait<3>(); break;
            case 4: cp_async_wait<4>(); break;
            default: cp_async_wait_all(); break;
            }
            for (int i = 0; i < 20; i++) out[l * 20 + i] = mine[i];
            cp_async_wait_all(); // nothing in flight at exit
        }

        // Faults the emulator must catch (kind 11 and 12 must not fail).
        KERNEL void misaligned(const float* src, float* out, int kind)
        {
            __shared__ __align__(16) float s[64];
            __shared__ __align__(16) unsigned short h[16 * 8];
            int l = threadIdx.x;
            unsigned r[4];
            for (int i = l; i < 16 * 8; i += 32) h[i] = (unsigned short)i;
            __syncthreads();
            const unsigned short* row = h + (l % 16) * 8;
            switch (kind)
            {
            case 0: if (l == 0) cp_async_16(s + 2, src); break;        // destination 8-byte aligned only
            case 1: if (l == 0) cp_async_16(s, src + 1); break;        // source 4-byte aligned only
            case 2: if (l == 0) cp_async_8(s, src + 1); break;         // 8-byte copy from a 4-byte aligned source
            case 3: if (l == 0) cp_async_16(out, src); break;          // destination in global memory
            case 4: if (l == 0) cp_async_16(s, src, 20); break;        // src-size > cp-size
            case 5: ldmatrix_x4(r, l == 5 ? row + 1 : row); break;     // one row address 2-byte aligned
            case 6: ldmatrix_x1(r, l == 3 ? (const void*)out : row); break; // one row address in global memory
            case 7: out[0] = load_float4(src + 1).x; break;            // the helper's check
            case 8: out[0] = reinterpret_cast<const float4*>(src + 1)->y; break; // a raw float4 load: the alignment sanitizer
            case 9: *reinterpret_cast<float4*>(out + 2) = make_float4(1.f, 2.f, 3.f, 4.f); break; // a raw float4 store
            case 10: if (l < 16) ldmatrix_x2(r, row); else ldmatrix_x4(r, row); break; // the warp split over two instructions
            case 11: ldmatrix_x1(r, l >= 8 ? row + 1 : row); break;    // lanes 8-31's addresses are ignored: no error
            default: ldmatrix_x4(r, row); cp_async_16(s + (l % 4) * 4, src + 4 * l); cp_async_wait_all(); store_float4(out + 4 * l, load_float4(src + 4 * l)); break;
            }
            (void)r;
        }

        // One warp computes C (m x 8, m <= 16) = A (m x k, row-major, leading dimension lda) * B, B given
        // n-major (8 x k, ldb): the tf32 building block of a tensor-core GEMM. The 16 x 32 tile comes in
        // two cp.async stages of 16 columns (the second in flight while the first is multiplied); rows
        // >= m and columns >= k are zero-filled through src-size. ldmatrix.x4 gives the A fragments of
        // an 8-column step, .x2 the B fragments (32-bit elements as pairs of b16), to_tf32 rounds them.
        KERNEL void gemm_tf32_tile(const float* A, int lda, const float* Bt, int ldb, float* C, int ldc, int m, int k)
        {
            __shared__ __align__(16) float As[2][16][16 + 4]; // rows padded by 16 bytes, still 16-byte aligned
            __shared__ __align__(16) float Bs[2][8][16 + 4];
            int l = threadIdx.x;
            for (int stage = 0; stage < 2; stage++)
            {
                for (int j = 0; j < 2; j++)
                {
                    int chunk = l + 32 * j, row = chunk / 4, col = stage * 16 + (chunk % 4) * 4;
                    int valid = row < m ? clamp_to(k - col, 4) : 0;
                    cp_async_16(&As[stage][row][(chunk % 4) * 4], valid > 0 ? A + row * lda + col : A, valid * 4);
                }
                int n = l / 4, col = stage * 16 + (l % 4) * 4;
                int valid = clamp_to(k - col, 4);
                cp_async_16(&Bs[stage][n][(l % 4) * 4], valid > 0 ? Bt + n * ldb + col : Bt, valid * 4);
                cp_async_commit();
            }
            float acc[4] = {0.f, 0.f, 0.f, 0.f};
            for (int stage = 0; stage < 2; stage++)
            {
                if (stage == 0) cp_async_wait<1>();
                else cp_async_wait<0>();
                __syncthreads();
                for (int step = 0; step < 2; step++)
                {
                    unsigned a[4], b[2];
                    ldmatrix_x4(a, &As[stage][l % 16][step * 8 + (l / 16) * 4]);
                    ldmatrix_x2(b, &Bs[stage][l % 8][step * 8 + ((l / 8) % 2) * 4]);
                    for (int i = 0; i < 4; i++) a[i] = to_tf32(__int_as_float(a[i]));
                    for (int i = 0; i < 2; i++) b[i] = to_tf32(__int_as_float(b[i]));
                    mma_tf32_16x8x8(acc, a, b, acc);
                }
            }
            int g = l / 4, t = l % 4;
            for (int i = 0; i < 4; i++)
            {
                int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
                if (row < m) C[row * ldc + col] = acc[i];
            }
        }

        // The bf16 building block: C (m x 8) = A (m x k, bf16 row-major) * B (k x 8, bf16 row-major), k <= 32
        // in two k16 steps; ldmatrix.x4 for A, ldmatrix.x2.trans for the k-major B.
        KERNEL void gemm_bf16_tile(const unsigned short* A, int lda, const unsigned short* B, int ldb, float* C, int ldc, int m, int k)
        {
            __shared__ __align__(16) unsigned short As[16][32 + 8];
            __shared__ __align__(16) unsigned short Bs[32][8];
            int l = threadIdx.x;
            for (int j = 0; j < 2; j++)
            {
                int chunk = l + 32 * j, row = chunk / 4, col = (chunk % 4) * 8;
                int valid = row < m ? clamp_to(k - col, 8) : 0;
                cp_async_16(&As[row][col], valid > 0 ? A + row * lda + col : A, valid * 2);
            }
            cp_async_16(&Bs[l][0], l < k ? B + l * ldb : B, l < k ? 16 : 0);
            cp_async_wait_all();
            __syncthreads();
            float acc[4] = {0.f, 0.f, 0.f, 0.f};
            for (int step = 0; step < 2; step++)
            {
                unsigned a[4], b[2];
                ldmatrix_x4(a, &As[l % 16][step * 16 + (l / 16) * 8]);
                ldmatrix_x2_trans(b, &Bs[step * 16 + l % 16][0]);
                mma_bf16_16x8x16(acc, a, b, acc);
            }
            int g = l / 4, t = l % 4;
            for (int i = 0; i < 4; i++)
            {
                int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
                if (row < m) C[row * ldc + col] = acc[i];
            }
        }
        """;

    /// <summary>
    /// |d - reference| may be this times (|c| + the sum of |a_k b_k|): fp32 accumulation of 8-32
    /// exact products is good to K * 2^-24 of that sum; the GPU's adder tree is allowed 4x more.
    /// On the emulator the result must also equal the fp32 sum in k order bit for bit.
    /// </summary>
    private const double Tolerance = 4e-6;

    private CudaBackend _backend = null!;
    private CudaModule _module = null!;
    private bool _emulator;

    [OneTimeSetUp]
    public void Load()
    {
        GpuHarness.RequireGpu();
        _backend = new CudaBackend(0);
        _emulator = CudaProbe.Status.Devices[0].Name.Contains("emulator");
        var image = RuntimeCompiler.Compile("warp_matrix.cu", Source, KernelSources.Headers, CudaProbe.Status.Devices[0].Architecture);
        _module = new CudaModule("warp_matrix.cu", image);
    }

    // NUnit may run a test on another thread than the fixture's set-up; these tests call the
    // driver directly, so they make the backend's context current on theirs, as its own calls do.
    [SetUp]
    public void MakeContextCurrent() => _backend.MakeCurrent();

    [OneTimeTearDown]
    public void Unload()
    {
        _module?.Dispose();
        _backend?.Dispose();
    }

    // ---- Device memory and launches ----

    private sealed class Device : IDisposable
    {
        private readonly List<ulong> _buffers = [];

        public ulong Upload<T>(T[] values) where T : unmanaged
        {
            ulong p = Allocate<T>(values.Length);
            fixed (T* h = values) CudaException.Check(Driver.cuMemcpyHtoDAsync(p, h, (nuint)(values.Length * sizeof(T)), IntPtr.Zero), "cuMemcpyHtoD");
            return p;
        }

        /// <summary>A buffer filled with NaN bytes (0xFF), so an element nobody wrote reads as NaN on a GPU too.</summary>
        public ulong Allocate<T>(int count) where T : unmanaged
        {
            CudaException.Check(Driver.cuMemAlloc(out ulong p, (nuint)(count * sizeof(T))), "cuMemAlloc");
            _buffers.Add(p);
            var poison = new byte[count * sizeof(T)];
            Array.Fill(poison, (byte)0xFF);
            fixed (byte* h = poison) CudaException.Check(Driver.cuMemcpyHtoDAsync(p, h, (nuint)poison.Length, IntPtr.Zero), "cuMemcpyHtoD");
            return p;
        }

        public static T[] Read<T>(ulong p, int count) where T : unmanaged
        {
            var v = new T[count];
            fixed (T* h = v) CudaException.Check(Driver.cuMemcpyDtoHAsync(h, p, (nuint)(count * sizeof(T)), IntPtr.Zero), "cuMemcpyDtoH");
            CudaException.Check(Driver.cuCtxSynchronize(), "cuCtxSynchronize");
            return v;
        }

        public void Dispose()
        {
            foreach (var p in _buffers) Driver.cuMemFree(p);
        }
    }

    /// <summary>One block of 32 threads; the int arguments travel as 64-bit slots whose low 32 bits the kernel reads.</summary>
    private int Launch(string kernel, params ulong[] args)
    {
        void** pointers = stackalloc void*[args.Length];
        fixed (ulong* values = args)
        {
            for (int i = 0; i < args.Length; i++) pointers[i] = values + i;
            int result = Driver.cuLaunchKernel(_module.Function(kernel), 1, 1, 1, 32, 1, 1, 0, IntPtr.Zero, pointers, null);
            return result == Driver.Success ? Driver.cuCtxSynchronize() : result;
        }
    }

    private void Run(string kernel, params ulong[] args)
    {
        int result = Launch(kernel, args);
        Assert.That(result, Is.Zero, $"{kernel}: {CuResultNames.Of(result)}");
    }

    private static ulong Arg(int v) => (ulong)(uint)v;

    // ---- Scalar references (PTX ISA) ----

    private static uint Bits(float f) => BitConverter.SingleToUInt32Bits(f);
    private static float Float(uint u) => BitConverter.UInt32BitsToSingle(u);

    /// <summary>x rounded to a significand of <paramref name="bits"/> bits after the point (10: tf32, 7: bf16), in float's exponent range.</summary>
    private static float Round(float x, int bits, MidpointRounding mode)
    {
        if (!float.IsFinite(x) || x == 0) return x;
        int exponent = Math.Max(Math.ILogB((double)x), -126); // subnormals keep float's smallest ulp scale
        double ulp = Math.ScaleB(1.0, exponent - bits);
        return (float)(Math.Round(x / ulp, mode) * ulp); // exact in double; past float's range it becomes Inf
    }

    /// <summary>cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits.</summary>
    private static uint Tf32(float x) => Bits(Round(x, 10, MidpointRounding.AwayFromZero));

    /// <summary>cvt.rn.bf16.f32: round to nearest even to 7 mantissa bits; the bf16 is the top half.</summary>
    private static uint Bf16(float x) => Bits(Round(x, 7, MidpointRounding.ToEven)) >> 16;

    private static float Bf16Value(uint half) => Float(half << 16);

    /// <summary>The tensor core reads the top 19 bits of a .tf32 operand.</summary>
    private static float Tf32Operand(uint u) => Float(u & 0xffffe000u);

    /// <summary>
    /// D = A * B + C for one warp from each lane's registers: A is m x k, B k x n (16 x 8 output),
    /// placed by the ISA's fragment layouts (groupID = lane >> 2, threadID_in_group = lane % 4).
    /// Returns, per lane and register, the double-precision value, the sum of magnitudes (for the
    /// tolerance) and the fp32 sum in k order (what the emulator computes).
    /// </summary>
    private static (double Exact, double Magnitude, float Sequential)[] Reference(float[,] a, float[,] b, float[] c, int k)
    {
        var cm = new float[16, 8];
        for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 4; i++)
            cm[(lane >> 2) + 8 * (i >> 1), (lane & 3) * 2 + (i & 1)] = c[lane * 4 + i];
        var result = new (double, double, float)[128];
        for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 4; i++)
        {
            int row = (lane >> 2) + 8 * (i >> 1), col = (lane & 3) * 2 + (i & 1);
            double exact = cm[row, col], magnitude = Math.Abs(cm[row, col]);
            float sequential = cm[row, col];
            for (int kk = 0; kk < k; kk++)
            {
                exact += (double)a[row, kk] * b[kk, col];
                magnitude += Math.Abs((double)a[row, kk] * b[kk, col]);
                sequential += a[row, kk] * b[kk, col];
            }
            result[lane * 4 + i] = (exact, magnitude, sequential);
        }
        return result;
    }

    private void CompareMma(string what, float[] d, (double Exact, double Magnitude, float Sequential)[] reference, List<string> failures)
    {
        for (int j = 0; j < 128; j++)
        {
            var (exact, magnitude, sequential) = reference[j];
            if (!(Math.Abs(d[j] - exact) <= Tolerance * magnitude))
                failures.Add($"{what}: lane {j / 4} d[{j % 4}] = {d[j]:R}, expected {exact:R} (within {Tolerance * magnitude:E2})");
            else if (_emulator && Bits(d[j]) != Bits(sequential))
                failures.Add($"{what}: lane {j / 4} d[{j % 4}] = {d[j]:R}, the fp32 sum in k order is {sequential:R} (emulator)");
        }
    }

    /// <summary>Random values of varied magnitude (2^-4 .. 2^4) and sign.</summary>
    private static float[] Values(Random rng, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)((rng.NextDouble() + 0.5) * Math.ScaleB(rng.Next(2) == 0 ? 1.0 : -1.0, rng.Next(-4, 5)))).ToArray();

    private static Random NewRandom()
    {
        int seed = TestContext.CurrentContext.Random.Next();
        TestContext.Out.WriteLine($"seed {seed}");
        return new Random(seed);
    }

    // ---- Conversions ----

    [Test]
    public void To_tf32_rounds_to_nearest_ties_away_and_pack_bf16x2_to_nearest_even()
    {
        var rng = NewRandom();
        var x = new List<float>
        {
            0f, -0f, 1f, -1f, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -float.MaxValue, float.Epsilon, 1e-40f, -3e-39f,
            Float(0x3f801000u), Float(0xbf801000u), Float(0x3f803000u), Float(0x3f800fffu), Float(0x3f8017ffu), Float(0x7f7ff000u), // tf32 ties, below and above
            Float(0x3f808000u), Float(0x3f818000u), Float(0xbf818000u), Float(0x3f807fffu), Float(0x3f808001u), Float(0x7f7f8000u), // bf16 ties (to even), below and above
        };
        x.AddRange(Values(rng, 256 - x.Count));
        var y = x.Select((_, i) => x[(i * 7 + 3) % x.Count]).ToArray(); // every value also as the high half
        using var device = new Device();
        ulong px = device.Upload(x.ToArray()), py = device.Upload(y), tf32 = device.Allocate<uint>(x.Count), bf16 = device.Allocate<uint>(x.Count);
        ulong unpacked = device.Allocate<float>(2 * x.Count);
        Run("convert", px, py, tf32, bf16, unpacked, Arg(x.Count));
        var gotTf32 = Device.Read<uint>(tf32, x.Count);
        var gotBf16 = Device.Read<uint>(bf16, x.Count);
        var gotUnpacked = Device.Read<float>(unpacked, 2 * x.Count);
        var failures = new List<string>();
        for (int i = 0; i < x.Count; i++)
        {
            uint expectedPair = Bf16(y[i]) << 16 | Bf16(x[i]);
            if (gotTf32[i] != Tf32(x[i])) failures.Add($"to_tf32({x[i]:R} = 0x{Bits(x[i]):x8}) = 0x{gotTf32[i]:x8}, expected 0x{Tf32(x[i]):x8}");
            if (gotBf16[i] != expectedPair) failures.Add($"pack_bf16x2({x[i]:R}, {y[i]:R}) = 0x{gotBf16[i]:x8}, expected 0x{expectedPair:x8}");
            if (Bits(gotUnpacked[2 * i]) != Bits(Bf16Value(Bf16(x[i]))) || Bits(gotUnpacked[2 * i + 1]) != Bits(Bf16Value(Bf16(y[i]))))
                failures.Add($"bf16_lo / bf16_hi of pack_bf16x2({x[i]:R}, {y[i]:R}) = {gotUnpacked[2 * i]:R}, {gotUnpacked[2 * i + 1]:R}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));

        // NaN stays NaN (the exact pattern is the hardware's: the canonical one on the emulator).
        using var nan = new Device();
        ulong n = nan.Upload(new[] { float.NaN }), nt = nan.Allocate<uint>(1), nb = nan.Allocate<uint>(1), nu = nan.Allocate<float>(2);
        Run("convert", n, n, nt, nb, nu, Arg(1));
        Assert.That(Float(Device.Read<uint>(nt, 1)[0]), Is.NaN, "to_tf32(NaN)");
        Assert.That(Device.Read<float>(nu, 2), Has.All.NaN, "pack_bf16x2(NaN, NaN)");
    }

    // ---- mma.sync ----

    [TestCase(true)]
    [TestCase(false)]
    public void Mma_tf32_m16n8k8_matches_the_fragment_layout_reference(bool rounded)
    {
        // rounded: operands through cvt.rna.tf32 first (as kernels must); otherwise raw fp32 bits,
        // whose low 13 bits the tensor core ignores (truncation), and the reference does the same.
        var rng = NewRandom();
        var failures = new List<string>();
        for (int trial = 0; trial < 4; trial++)
        {
            var raw = Values(rng, 32 * 4 + 32 * 2);
            uint[] regs = raw.Select(v => rounded ? Tf32(v) : Bits(v)).ToArray();
            uint[] a = regs[..128], b = regs[128..];
            float[] c = Values(rng, 128);
            // ISA, "Matrix Fragments for mma.m16n8k8", .tf32: a_i at (g + 8 (i & 1), t + 4 (i >> 1)); b_i at (t + 4 i, g).
            var am = new float[16, 8];
            var bm = new float[8, 8];
            for (int lane = 0; lane < 32; lane++)
            {
                int g = lane >> 2, t = lane & 3;
                for (int i = 0; i < 4; i++) am[g + 8 * (i & 1), t + 4 * (i >> 1)] = Tf32Operand(a[lane * 4 + i]);
                for (int i = 0; i < 2; i++) bm[t + 4 * i, g] = Tf32Operand(b[lane * 2 + i]);
            }
            using var device = new Device();
            ulong pa = device.Upload(a), pb = device.Upload(b), pc = device.Upload(c), pd = device.Allocate<float>(128);
            Run("mma_tf32", pa, pb, pc, pd);
            CompareMma($"trial {trial}", Device.Read<float>(pd, 128), Reference(am, bm, c, 8), failures);
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }

    [Test]
    public void Mma_bf16_m16n8k16_matches_the_fragment_layout_reference()
    {
        var rng = NewRandom();
        var failures = new List<string>();
        for (int trial = 0; trial < 4; trial++)
        {
            // Two bf16 per register, the lower-numbered element in the low half.
            var halves = Values(rng, 2 * (32 * 4 + 32 * 2)).Select(Bf16).ToArray();
            uint[] regs = Enumerable.Range(0, halves.Length / 2).Select(r => halves[2 * r + 1] << 16 | halves[2 * r]).ToArray();
            uint[] a = regs[..128], b = regs[128..];
            float[] c = Values(rng, 128);
            // ISA, "Matrix Fragments for mma.m16n8k16 with floating point type", .bf16:
            // a_i at (g for i in {0, 1, 4, 5}, else g + 8; 2t + (i & 1) + 8 for i >= 4); b_i at (2t + (i & 1) + 8 for i >= 2, g).
            var am = new float[16, 16];
            var bm = new float[16, 8];
            for (int lane = 0; lane < 32; lane++)
            {
                int g = lane >> 2, t = lane & 3;
                for (int i = 0; i < 8; i++)
                {
                    int row = i is < 2 or (>= 4 and < 6) ? g : g + 8, col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
                    am[row, col] = Bf16Value(halves[2 * (lane * 4) + i]);
                }
                for (int i = 0; i < 4; i++) bm[t * 2 + (i & 1) + (i >= 2 ? 8 : 0), g] = Bf16Value(halves[2 * (128 + lane * 2) + i]);
            }
            using var device = new Device();
            ulong pa = device.Upload(a), pb = device.Upload(b), pc = device.Upload(c), pd = device.Allocate<float>(128);
            Run("mma_bf16", pa, pb, pc, pd);
            CompareMma($"trial {trial}", Device.Read<float>(pd, 128), Reference(am, bm, c, 16), failures);
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }

    // ---- ldmatrix ----

    [TestCase(0, 1, false)]
    [TestCase(1, 2, false)]
    [TestCase(2, 4, false)]
    [TestCase(3, 1, true)]
    [TestCase(4, 2, true)]
    [TestCase(5, 4, true)]
    public void Ldmatrix_gives_each_lane_its_elements_of_the_rows_the_lanes_address(int kind, int count, bool trans)
    {
        var rng = NewRandom();
        var tile = Enumerable.Range(0, 64 * 8).Select(_ => (ushort)rng.Next(65536)).ToArray();
        var rows = Enumerable.Range(0, 32).Select(_ => rng.Next(64)).ToArray(); // any row, in any order, repeats allowed
        using var device = new Device();
        ulong pt = device.Upload(tile), pr = device.Upload(rows), po = device.Allocate<uint>(128);
        Run("ldmatrix_rows", pt, pr, po, Arg(kind));
        var got = Device.Read<uint>(po, 128);
        // ISA, "Warp-level matrix load instruction: ldmatrix": row i of matrix j comes from the address of
        // thread 8j + i; thread l gets (row l / 4, cols 2 (l % 4), +1) of each matrix, or with .trans
        // (rows 2 (l % 4), +1, col l / 4); the lower element in the low 16 bits.
        uint Element(int matrix, int row, int col) => tile[rows[8 * matrix + row] * 8 + col];
        var failures = new List<string>();
        for (int lane = 0; lane < 32; lane++)
        for (int j = 0; j < 4; j++)
        {
            uint expected = j >= count ? 0u
                : trans ? Element(j, 2 * (lane % 4), lane / 4) | Element(j, 2 * (lane % 4) + 1, lane / 4) << 16
                : Element(j, lane / 4, 2 * (lane % 4)) | Element(j, lane / 4, 2 * (lane % 4) + 1) << 16;
            if (got[lane * 4 + j] != expected) failures.Add($"x{count}{(trans ? ".trans" : "")} lane {lane} r[{j}] = 0x{got[lane * 4 + j]:x8}, expected 0x{expected:x8}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }

    // ---- cp.async ----

    [TestCase(4, 0, 0), TestCase(4, 4, 0), TestCase(4, 4, 1), TestCase(4, 0, 3), TestCase(4, 4, 3)]
    [TestCase(8, 0, 0), TestCase(8, 4, 2), TestCase(8, 8, 2), TestCase(8, 8, 0)]
    [TestCase(16, 0, 0), TestCase(16, 4, 0), TestCase(16, 8, 0), TestCase(16, 12, 0), TestCase(16, 16, 0)]
    public void Cp_async_copies_src_size_bytes_and_zero_fills_the_rest(int size, int bytes, int offset)
    {
        var rng = NewRandom();
        var src = Values(rng, 32 * 4);
        using var device = new Device();
        ulong ps = device.Upload(src), po = device.Allocate<float>(128);
        Run("cp_async_copy", ps, po, Arg(size), Arg(bytes), Arg(offset));
        var got = Device.Read<float>(po, 128);
        var failures = new List<string>();
        for (int lane = 0; lane < 32; lane++)
        {
            int from = (lane + 1) & 31; // each lane reads its neighbour's slot
            for (int i = 0; i < 4; i++)
            {
                float expected = i < offset || i >= offset + size / 4 ? -1f : (i - offset) * 4 < bytes ? src[from * 4 + i] : 0f;
                if (Bits(got[lane * 4 + i]) != Bits(expected)) failures.Add($"slot of lane {from}, float {i}: {got[lane * 4 + i]:R}, expected {expected:R}");
            }
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }

    [Test]
    public void Cp_async_destination_is_poisoned_until_the_wait()
    {
        var rng = NewRandom();
        var src = Values(rng, 128);
        using var device = new Device();
        ulong ps = device.Upload(src), before = device.Allocate<float>(128), after = device.Allocate<float>(128);
        Run("cp_async_early_read", ps, before, after);
        Assert.That(Device.Read<float>(after, 128), Is.EqualTo(src), "after cp.async.wait_group 0");
        if (!_emulator) return; // on a GPU the early read is a race: any value
        Assert.That(Device.Read<float>(before, 128), Has.All.NaN, "read before the wait: NaN, not the -1 written before the copy (emulator)");
    }

    [TestCase(0), TestCase(1), TestCase(2), TestCase(3), TestCase(4), TestCase(5)]
    public void Cp_async_wait_group_n_completes_all_but_the_n_most_recent_groups(int n)
    {
        // Groups 0-3 committed, a fifth copy uncommitted; n = 5 is cp.async.wait_all.
        var rng = NewRandom();
        var src = Values(rng, 32 * 5 * 4);
        using var device = new Device();
        ulong ps = device.Upload(src), po = device.Allocate<float>(32 * 20);
        Run("cp_async_groups", ps, po, Arg(n));
        var got = Device.Read<float>(po, 32 * 20);
        var failures = new List<string>();
        for (int lane = 0; lane < 32; lane++)
        for (int g = 0; g < 5; g++)
        {
            bool complete = n == 5 || g < 4 - n; // the uncommitted copy (g = 4) only with wait_all
            for (int i = 0; i < 4; i++)
            {
                int at = (lane * 5 + g) * 4 + i;
                if (complete && got[at] != src[at]) failures.Add($"lane {lane} group {g}: {got[at]:R}, expected {src[at]:R} (complete after wait_group {n})");
                if (!complete && _emulator && !float.IsNaN(got[at])) failures.Add($"lane {lane} group {g}: {got[at]:R}, expected NaN (poisoned by the copy, not the -1 before it): still in flight after wait_group {n} (emulator)");
            }
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }

    [TestCase(0, "cp.async 16: destination 8-byte aligned")]
    [TestCase(1, "cp.async 16: source 4-byte aligned")]
    [TestCase(2, "cp.async 8: source 4-byte aligned")]
    [TestCase(3, "cp.async: destination in global memory")]
    [TestCase(4, "cp.async 16: src-size 20")]
    [TestCase(5, "ldmatrix.x4: one row address 2-byte aligned")]
    [TestCase(6, "ldmatrix.x1: one row address in global memory")]
    [TestCase(7, "load_float4 from a 4-byte aligned pointer")]
    [TestCase(8, "a float4 load from a 4-byte aligned pointer (alignment sanitizer)")]
    [TestCase(9, "a float4 store to an 8-byte aligned pointer (alignment sanitizer)")]
    [TestCase(10, "half the warp at ldmatrix.x2, half at .x4")]
    public void A_misaligned_or_misplaced_access_fails_the_launch(int kind, string what)
    {
        if (!_emulator) Assert.Ignore("undefined behaviour on a GPU: checked on the emulator");
        using var device = new Device();
        ulong src = device.Upload(Enumerable.Range(0, 256).Select(i => (float)i).ToArray()), output = device.Allocate<float>(256);
        Assert.That(Launch("misaligned", src, output, Arg(kind)), Is.EqualTo(719), $"{what}: CUDA_ERROR_LAUNCH_FAILED");
    }

    [TestCase(11, "ldmatrix.x1 ignores the addresses of lanes 8-31")]
    [TestCase(12, "aligned ldmatrix, cp.async and float4 accesses")]
    public void Aligned_accesses_do_not_fail(int kind, string what)
    {
        if (kind == 11 && !_emulator) Assert.Ignore("kept off GPUs: a fault there would end the context for the tests after it");
        using var device = new Device();
        ulong src = device.Upload(Enumerable.Range(0, 256).Select(i => (float)i).ToArray()), output = device.Allocate<float>(256);
        Assert.That(Launch("misaligned", src, output, Arg(kind)), Is.Zero, what);
        if (kind == 12) Assert.That(Device.Read<float>(output, 128), Is.EqualTo(Enumerable.Range(0, 128).Select(i => (float)i).ToArray()), "store_float4(load_float4)");
    }

    // ---- Allocations (float4 and cp.async 16 need 16-byte aligned buffers) ----

    [Test]
    public void Allocations_are_256_byte_aligned()
    {
        var pointers = new List<ulong>();
        try
        {
            foreach (int bytes in new[] { 1, 4, 12, 100, 4000, 4096, 12345 })
            {
                CudaException.Check(Driver.cuMemAlloc(out ulong p, (nuint)bytes), "cuMemAlloc");
                pointers.Add(p);
                Assert.That(p % 256, Is.Zero, $"cuMemAlloc({bytes})");
            }
        }
        finally
        {
            foreach (var p in pointers) Driver.cuMemFree(p);
        }
    }

    [Test]
    public void A_write_into_the_alignment_slack_after_a_buffer_is_an_illegal_address()
    {
        if (!_emulator) Assert.Ignore("the emulator's overrun check");
        // 1000 floats end 96 bytes before the guard page: the slack's canary catches the write.
        CudaException.Check(Driver.cuMemAlloc(out ulong p, 4000), "cuMemAlloc");
        try
        {
            Assert.That(Launch("write_at", p, Arg(999)), Is.Zero, "the last element");
            Assert.That(Launch("write_at", p, Arg(1000)), Is.EqualTo(700), "one past the end: CUDA_ERROR_ILLEGAL_ADDRESS");
            Assert.That(Launch("write_at", p, Arg(999)), Is.Zero, "the canary is restored: the next launch is not blamed");
            Assert.That(Launch("write_at", p, Arg(1024)), Is.EqualTo(700), "past the slack: the guard page");
            var four = new float[1001];
            fixed (float* h = four) Assert.That(Driver.cuMemcpyHtoDAsync(p, h, 4004, IntPtr.Zero), Is.EqualTo(1), "a host copy past the end: CUDA_ERROR_INVALID_VALUE");
        }
        finally
        {
            Driver.cuMemFree(p);
        }
    }

    // ---- One-warp GEMM tiles: cp.async + ldmatrix + mma ----

    [TestCase(16, 32)]
    [TestCase(13, 30)]
    public void A_tf32_gemm_tile_matches_the_double_product_of_the_rounded_inputs(int m, int k)
    {
        const int ld = 32; // leading dimension of A and of the n-major B: 128-byte rows
        var rng = NewRandom();
        var a = Values(rng, 16 * ld);
        var bt = Values(rng, 8 * ld);
        for (int r = 0; r < 16; r++)
        for (int c = 0; c < ld; c++)
            if (r >= m || c >= k) a[r * ld + c] = float.NaN; // outside the matrix: zero-filled, never read
        for (int n = 0; n < 8; n++)
        for (int c = k; c < ld; c++)
            bt[n * ld + c] = float.NaN;
        using var device = new Device();
        ulong pa = device.Upload(a), pb = device.Upload(bt), pc = device.Allocate<float>(16 * 8);
        Run("gemm_tf32_tile", pa, Arg(ld), pb, Arg(ld), pc, Arg(8), Arg(m), Arg(k));
        var got = Device.Read<float>(pc, 16 * 8);
        var failures = new List<string>();
        for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++)
        {
            double exact = 0, magnitude = 0;
            for (int kk = 0; kk < k; kk++)
            {
                double p = (double)Float(Tf32(a[r * ld + kk])) * Float(Tf32(bt[n * ld + kk]));
                exact += p;
                magnitude += Math.Abs(p);
            }
            float v = got[r * 8 + n];
            if (r >= m) { if (!float.IsNaN(v)) failures.Add($"C[{r}, {n}] = {v:R}: row {r} >= m = {m} was written"); }
            else if (!(Math.Abs(v - exact) <= 2 * Tolerance * magnitude)) failures.Add($"C[{r}, {n}] = {v:R}, expected {exact:R}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }

    [TestCase(16, 32)]
    [TestCase(11, 26)]
    public void A_bf16_gemm_tile_matches_the_double_product(int m, int k)
    {
        const int lda = 32;
        var rng = NewRandom();
        var a = Values(rng, 16 * lda).Select(v => (ushort)Bf16(v)).ToArray();
        var b = Values(rng, 32 * 8).Select(v => (ushort)Bf16(v)).ToArray();
        for (int r = 0; r < 16; r++)
        for (int c = 0; c < lda; c++)
            if (r >= m || c >= k) a[r * lda + c] = 0x7fc0; // NaN outside the matrix
        for (int kk = k; kk < 32; kk++)
        for (int n = 0; n < 8; n++)
            b[kk * 8 + n] = 0x7fc0;
        using var device = new Device();
        ulong pa = device.Upload(a), pb = device.Upload(b), pc = device.Allocate<float>(16 * 8);
        Run("gemm_bf16_tile", pa, Arg(lda), pb, Arg(8), pc, Arg(8), Arg(m), Arg(k));
        var got = Device.Read<float>(pc, 16 * 8);
        var failures = new List<string>();
        for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++)
        {
            double exact = 0, magnitude = 0;
            for (int kk = 0; kk < k; kk++)
            {
                double p = (double)Bf16Value(a[r * lda + kk]) * Bf16Value(b[kk * 8 + n]);
                exact += p;
                magnitude += Math.Abs(p);
            }
            float v = got[r * 8 + n];
            if (r >= m) { if (!float.IsNaN(v)) failures.Add($"C[{r}, {n}] = {v:R}: row {r} >= m = {m} was written"); }
            else if (!(Math.Abs(v - exact) <= 2 * Tolerance * magnitude)) failures.Add($"C[{r}, {n}] = {v:R}, expected {exact:R}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }
}
