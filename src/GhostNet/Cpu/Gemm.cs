using System.Runtime.Intrinsics;

namespace GhostNet.Cpu;

/// <summary>
/// Single-threaded SGEMM kernels on row-major matrices; callers split the output into tiles and
/// run the tiles on the worker pool.
/// <para>
/// <see cref="AB"/> computes C[M,N] (+)= A(i,k) B[k,N] where A(i,k) = A[i * aRow + k * aCol], so one
/// kernel serves both A and A^T. It keeps a 4 x 16 block of C in eight AVX registers and streams
/// B rows through them: two loads and eight FMAs per k. K is cut into blocks so that the slice of
/// B a tile reuses stays in L2.
/// </para>
/// <para><see cref="ABt"/> computes C[M,N] (+)= A[M,K] B[N,K]^T as dot products of contiguous rows.</para>
/// </summary>
internal static unsafe class Gemm
{
    private const int KBlock = 256;
    private const int V = 8;

    public static void AB(int m, int n, int k, float* a, long aRow, long aCol, float* b, long ldb, float* c, long ldc, bool accumulate)
    {
        if (k == 0)
        {
            if (!accumulate) for (int i = 0; i < m; i++) Simd.Clear(c + i * ldc, n);
            return;
        }
        for (int k0 = 0; k0 < k; k0 += KBlock)
        {
            int k1 = Math.Min(k, k0 + KBlock);
            bool store = k0 == 0 && !accumulate;
            int i = 0;
            for (; i <= m - 4; i += 4)
                Rows4(n, k0, k1, a + i * aRow, aRow, aCol, b, ldb, c + i * ldc, ldc, store);
            for (; i < m; i++)
                Rows1(n, k0, k1, a + i * aRow, aCol, b, ldb, c + i * ldc, store);
        }
    }

    private static void Rows4(int n, int k0, int k1, float* a, long aRow, long aCol, float* b, long ldb, float* c, long ldc, bool store)
    {
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        int j = 0;
        for (; j <= n - 2 * V; j += 2 * V)
        {
            Vector256<float> s00 = default, s01 = default, s10 = default, s11 = default;
            Vector256<float> s20 = default, s21 = default, s30 = default, s31 = default;
            float* bp = b + k0 * ldb + j;
            for (int kk = k0; kk < k1; kk++, bp += ldb)
            {
                var b0 = Vector256.Load(bp);
                var b1 = Vector256.Load(bp + V);
                long ak = kk * aCol;
                var v0 = Vector256.Create(a0[ak]);
                var v1 = Vector256.Create(a1[ak]);
                var v2 = Vector256.Create(a2[ak]);
                var v3 = Vector256.Create(a3[ak]);
                s00 = Vector256.FusedMultiplyAdd(v0, b0, s00); s01 = Vector256.FusedMultiplyAdd(v0, b1, s01);
                s10 = Vector256.FusedMultiplyAdd(v1, b0, s10); s11 = Vector256.FusedMultiplyAdd(v1, b1, s11);
                s20 = Vector256.FusedMultiplyAdd(v2, b0, s20); s21 = Vector256.FusedMultiplyAdd(v2, b1, s21);
                s30 = Vector256.FusedMultiplyAdd(v3, b0, s30); s31 = Vector256.FusedMultiplyAdd(v3, b1, s31);
            }
            Put(c0 + j, s00, store); Put(c0 + j + V, s01, store);
            Put(c1 + j, s10, store); Put(c1 + j + V, s11, store);
            Put(c2 + j, s20, store); Put(c2 + j + V, s21, store);
            Put(c3 + j, s30, store); Put(c3 + j + V, s31, store);
        }
        for (; j <= n - V; j += V)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            float* bp = b + k0 * ldb + j;
            for (int kk = k0; kk < k1; kk++, bp += ldb)
            {
                var b0 = Vector256.Load(bp);
                long ak = kk * aCol;
                s0 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[ak]), b0, s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Create(a1[ak]), b0, s1);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Create(a2[ak]), b0, s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[ak]), b0, s3);
            }
            Put(c0 + j, s0, store); Put(c1 + j, s1, store); Put(c2 + j, s2, store); Put(c3 + j, s3, store);
        }
        for (; j < n; j++)
        {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            float* bp = b + k0 * ldb + j;
            for (int kk = k0; kk < k1; kk++, bp += ldb)
            {
                long ak = kk * aCol;
                float bv = *bp;
                s0 += a0[ak] * bv; s1 += a1[ak] * bv; s2 += a2[ak] * bv; s3 += a3[ak] * bv;
            }
            if (store) { c0[j] = s0; c1[j] = s1; c2[j] = s2; c3[j] = s3; }
            else { c0[j] += s0; c1[j] += s1; c2[j] += s2; c3[j] += s3; }
        }
    }

    private static void Rows1(int n, int k0, int k1, float* a, long aCol, float* b, long ldb, float* c, bool store)
    {
        if (store) Simd.Clear(c, n);
        for (int kk = k0; kk < k1; kk++)
            Simd.Axpy(a[kk * aCol], b + kk * ldb, c, n);
    }

    public static void ABt(int m, int n, int k, float* a, long lda, float* b, long ldb, float* c, long ldc, bool accumulate)
    {
        for (int i = 0; i < m; i++)
        {
            float* ai = a + i * lda;
            float* ci = c + i * ldc;
            for (int j = 0; j < n; j++)
            {
                float s = Simd.Dot(ai, b + j * ldb, k);
                ci[j] = accumulate ? ci[j] + s : s;
            }
        }
    }

    private static void Put(float* c, Vector256<float> v, bool store) =>
        Vector256.Store(store ? v : Vector256.Load(c) + v, c);
}
