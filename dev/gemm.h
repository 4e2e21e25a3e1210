/* ==================================================================== */
/* [impl:gemm] SGEMM kernels (scalar reference, AVX2, NEON)             */
/* ==================================================================== */
/* Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
   op(A) = A (lda >= K) or A^T (A stored [K,M], lda >= M); same for B.
   beta == 0 means C is written without being read (NaNs in C ignored);
   alpha == 0 or K == 0 gives C = beta * C without reading A or B (BLAS).

   Design (GotoBLAS / BLIS):
     for jc over N in NC columns            B block kc x nc  (L2/L3)
       for pc over K in KC steps            A block mc x kc  (L2)
         pack op(B)[pc:, jc:] into NR-column micro-panels (k-major)
         for ic over M in MC rows
           pack op(A)[ic:, pc:] into MR-row micro-panels (k-major)
           for jr over NR panels, ir over MR panels:
             micro-kernel: MR x NR register tile += A panel * B panel
   The packing routines absorb the four transpose cases and the leading
   dimensions, and zero-pad edge panels, so the micro-kernels only ever see
   full MR x NR tiles; edge tiles are stored through a small buffer with the
   same vector arithmetic.
   Register tiles: AVX2+FMA 6x16 (12 ymm accumulators, 2 B loads and a
   broadcast per k), NEON (AArch64) 8x12 (24 accumulators,
   vfmaq_laneq_f32), scalar 4x8. KC = 256 (kc x NR B micro-panel stays in
   L1), MC <= 264 rows (A block in L2), NC <= 1024 columns; the block sizes
   are balanced to the problem (K = 300 -> two blocks of 152).

   Summation order: every C element is sum over KC-blocks, each block an FMA
   chain in k order from zero, then C = alpha*acc (+ beta*C) for the first
   block and C += alpha*acc for the others. KC depends on K only, so the
   result of an element does not depend on how M and N are cut into tiles or
   threads: results are bit-identical for every thread count.

   Threads: a problem (or a batch of problems) is cut into units = batch x
   tm x tn rectangles of C, rows in MR panels and columns in NR panels, K is
   never split. Each thread takes a contiguous run of units and packs its own
   A and B blocks (no barrier, no shared scratch): the grid is chosen by a
   small cost model that weighs the per-thread tile work against the packing
   duplicated across rectangles and the dispatch cost, so small problems run
   on the calling thread and M = 197 ViT shapes split over N. */

/* scalar reference: plain triple loop, float accumulation in k order */
ZS__PRIV void zs__sgemm_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int64_t ldc) {
    int64_t i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            float s = 0.0f;
            for (k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = alpha * s + (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]);
        }
}

/* -- block sizes ----------------------------------------------------------- */
#if defined(ZS__AVX2)
#define ZS__GEMM_MR 6
#define ZS__GEMM_NR 16
#elif defined(ZS__NEON) && defined(__aarch64__)
#define ZS__GEMM_NEON 1
#define ZS__GEMM_MR 8
#define ZS__GEMM_NR 12
#else
#define ZS__GEMM_MR 4
#define ZS__GEMM_NR 8
#endif
#define ZS__GEMM_KC 256
#define ZS__GEMM_MC 264
#define ZS__GEMM_NC 1024

/* how C is updated by a micro-tile: C = alpha*acc / C = alpha*acc + C /
   C = alpha*acc + beta*C (first K block with beta 0 / 1 / other) */
enum { ZS__GEMM_SET = 0, ZS__GEMM_ACC = 1, ZS__GEMM_SCALE = 2 };

/* -- packing --------------------------------------------------------------- */
/* One micro-panel: dst[k*W + r] = src[r*rs + k*ks] for r < w, 0 for w <= r < W,
   k < kc. ks == 1: the panel's rows run along memory (a transpose);
   rs == 1: each k is a contiguous run of w floats (a copy). */
ZS__PRIV void zs__gemm_pack_panel(float *ZS__RESTRICT dst, int W, int w, int64_t kc,
                                  const float *ZS__RESTRICT src, int64_t rs, int64_t ks) {
    int64_t k = 0;
    int r;
    if (rs == 1 && w == W) {
        for (k = 0; k < kc; k++) memcpy(dst + k * W, src + k * ks, (size_t)W * sizeof(float));
        return;
    }
#if defined(ZS__AVX2)
    if (ks == 1 && w == W && (W == 16 || W == 8)) {
        /* 8x8 transposes: 8 rows x 8 k -> 8 k x 8 rows */
        int h;
        for (; k + 8 <= kc; k += 8)
            for (h = 0; h < W; h += 8) {
                const float *s = src + h * rs + k;
                __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + rs);
                __m256 r2 = _mm256_loadu_ps(s + 2 * rs), r3 = _mm256_loadu_ps(s + 3 * rs);
                __m256 r4 = _mm256_loadu_ps(s + 4 * rs), r5 = _mm256_loadu_ps(s + 5 * rs);
                __m256 r6 = _mm256_loadu_ps(s + 6 * rs), r7 = _mm256_loadu_ps(s + 7 * rs);
                __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
                __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
                __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
                __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
                float *d = dst + k * W + h;
                _mm256_storeu_ps(d + 0 * W, _mm256_permute2f128_ps(s0, s4, 0x20));
                _mm256_storeu_ps(d + 1 * W, _mm256_permute2f128_ps(s1, s5, 0x20));
                _mm256_storeu_ps(d + 2 * W, _mm256_permute2f128_ps(s2, s6, 0x20));
                _mm256_storeu_ps(d + 3 * W, _mm256_permute2f128_ps(s3, s7, 0x20));
                _mm256_storeu_ps(d + 4 * W, _mm256_permute2f128_ps(s0, s4, 0x31));
                _mm256_storeu_ps(d + 5 * W, _mm256_permute2f128_ps(s1, s5, 0x31));
                _mm256_storeu_ps(d + 6 * W, _mm256_permute2f128_ps(s2, s6, 0x31));
                _mm256_storeu_ps(d + 7 * W, _mm256_permute2f128_ps(s3, s7, 0x31));
            }
    } else if (ks == 1 && w == W && W == 6) {
        /* 6 rows (+2 zero rows) x 8 k, transposed; 6 floats stored per k */
        const __m256 z = _mm256_setzero_ps();
        for (; k + 8 <= kc; k += 8) {
            const float *s = src + k;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + rs);
            __m256 r2 = _mm256_loadu_ps(s + 2 * rs), r3 = _mm256_loadu_ps(s + 3 * rs);
            __m256 r4 = _mm256_loadu_ps(s + 4 * rs), r5 = _mm256_loadu_ps(s + 5 * rs);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
            __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
            __m256 s4 = _mm256_shuffle_ps(t4, z, 0x44), s5 = _mm256_shuffle_ps(t4, z, 0xee);
            __m256 s6 = _mm256_shuffle_ps(t5, z, 0x44), s7 = _mm256_shuffle_ps(t5, z, 0xee);
            __m256 c[8];
            float *d = dst + k * 6;
            int j;
            c[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
            c[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
            c[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
            c[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
            c[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
            c[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
            c[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
            c[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
            for (j = 0; j < 8; j++) {
                _mm_storeu_ps(d + 6 * j, _mm256_castps256_ps128(c[j]));
                _mm_storel_pi((__m64 *)(void *)(d + 6 * j + 4), _mm256_extractf128_ps(c[j], 1));
            }
        }
    }
#endif
    for (; k < kc; k++) {
        float *d = dst + k * W;
        const float *s = src + k * ks;
        for (r = 0; r < w; r++) d[r] = s[r * rs];
        for (; r < W; r++) d[r] = 0.0f;
    }
}

/* Copy case of a whole block (rows of the source run along the panels'
   width): dst panel p, row k = src[k*ks + p*W .. +W]. Walks the source in
   chunks of 8 k-rows across all panels: reads stay sequential and each
   panel gets a contiguous run of writes. W is a compile-time constant in
   each instance so the row copies become vector moves. */
#define ZS__GEMM_PACK_ROWS(name, W)                                                           \
    ZS__PRIV void name(float *ZS__RESTRICT dst, int64_t n, int64_t kc, const float *ZS__RESTRICT src, \
                       int64_t ks) {                                                          \
        int64_t k0, k, p, full = n / (W), rest = n - full * (W), pstride = (int64_t)(W) * kc;  \
        for (k0 = 0; k0 < kc; k0 += 8) {                                                      \
            int64_t k1 = k0 + 8 < kc ? k0 + 8 : kc;                                           \
            for (p = 0; p < full; p++)                                                        \
                for (k = k0; k < k1; k++)                                                     \
                    memcpy(dst + p * pstride + k * (W), src + k * ks + p * (W), (W) * sizeof(float)); \
            if (rest)                                                                         \
                for (k = k0; k < k1; k++) {                                                   \
                    float *d = dst + full * pstride + k * (W);                                \
                    const float *s = src + k * ks + full * (W);                               \
                    int r;                                                                    \
                    for (r = 0; r < rest; r++) d[r] = s[r];                                   \
                    for (; r < (W); r++) d[r] = 0.0f;                                         \
                }                                                                             \
        }                                                                                     \
    }
ZS__GEMM_PACK_ROWS(zs__gemm_pack_rows_mr, ZS__GEMM_MR)
ZS__GEMM_PACK_ROWS(zs__gemm_pack_rows_nr, ZS__GEMM_NR)
#undef ZS__GEMM_PACK_ROWS

/* op(A)[i0:i0+mc, p0:p0+kc] -> ceil(mc/MR) panels of MR x kc */
ZS__PRIV void zs__gemm_pack_a(float *dst, int ta, const float *A, int64_t lda, int64_t i0, int64_t mc,
                              int64_t p0, int64_t kc) {
    int64_t i;
    if (ta) {
        zs__gemm_pack_rows_mr(dst, mc, kc, A + p0 * lda + i0, lda);
        return;
    }
    for (i = 0; i < mc; i += ZS__GEMM_MR) {
        int w = mc - i < ZS__GEMM_MR ? (int)(mc - i) : ZS__GEMM_MR;
        zs__gemm_pack_panel(dst + i * kc, ZS__GEMM_MR, w, kc, A + (i0 + i) * lda + p0, lda, 1);
    }
}

/* op(B)[p0:p0+kc, j0:j0+nc] -> ceil(nc/NR) panels of kc x NR */
ZS__PRIV void zs__gemm_pack_b(float *dst, int tb, const float *B, int64_t ldb, int64_t j0, int64_t nc,
                              int64_t p0, int64_t kc) {
    int64_t j;
    if (!tb) {
        zs__gemm_pack_rows_nr(dst, nc, kc, B + p0 * ldb + j0, ldb);
        return;
    }
    for (j = 0; j < nc; j += ZS__GEMM_NR) {
        int w = nc - j < ZS__GEMM_NR ? (int)(nc - j) : ZS__GEMM_NR;
        zs__gemm_pack_panel(dst + j * kc, ZS__GEMM_NR, w, kc, B + (j0 + j) * ldb + p0, ldb, 1);
    }
}

/* -- micro-kernels ----------------------------------------------------------
   zs__gemm_ukr(kc, a, b, c, ldc, mr, nr, alpha, beta, mode):
   acc[MR][NR] = sum_k a[k*MR+i] * b[k*NR+j] (FMA chain from zero, k order),
   then the mr x nr corner of C is updated according to mode. */

#if defined(ZS__AVX2)

/* C row update of 8 floats, one rounding pattern for full and edge tiles */
#define ZS__GEMM_UPD8(p, acc)                                                         \
    do {                                                                              \
        if (mode == ZS__GEMM_SET) _mm256_storeu_ps(p, _mm256_mul_ps(va, acc));        \
        else if (mode == ZS__GEMM_ACC)                                                \
            _mm256_storeu_ps(p, _mm256_fmadd_ps(va, acc, _mm256_loadu_ps(p)));         \
        else                                                                          \
            _mm256_storeu_ps(p, _mm256_fmadd_ps(va, acc, _mm256_mul_ps(vb, _mm256_loadu_ps(p)))); \
    } while (0)

#define ZS__GEMM_K6x16(o)                                                             \
    do {                                                                              \
        b0 = _mm256_load_ps(b + 16 * (o));                                            \
        b1 = _mm256_load_ps(b + 16 * (o) + 8);                                        \
        av = _mm256_broadcast_ss(a + 6 * (o) + 0);                                    \
        c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 1);                                    \
        c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 2);                                    \
        c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 3);                                    \
        c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 4);                                    \
        c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 5);                                    \
        c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);       \
    } while (0)

ZS__PRIV void zs__gemm_ukr(int64_t kc, const float *ZS__RESTRICT a, const float *ZS__RESTRICT b,
                           float *c, int64_t ldc, int mr, int nr, float alpha, float beta, int mode) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m256 b0, b1, av;
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    int64_t k = kc;
    int i;
    for (i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);
    }
    for (; k >= 4; k -= 4) {
        ZS__GEMM_K6x16(0);
        ZS__GEMM_K6x16(1);
        ZS__GEMM_K6x16(2);
        ZS__GEMM_K6x16(3);
        a += 24;
        b += 64;
    }
    for (; k > 0; k--) {
        ZS__GEMM_K6x16(0);
        a += 6;
        b += 16;
    }
    if (mr == 6 && nr == 16) {
        ZS__GEMM_UPD8(c, c00); ZS__GEMM_UPD8(c + 8, c01); c += ldc;
        ZS__GEMM_UPD8(c, c10); ZS__GEMM_UPD8(c + 8, c11); c += ldc;
        ZS__GEMM_UPD8(c, c20); ZS__GEMM_UPD8(c + 8, c21); c += ldc;
        ZS__GEMM_UPD8(c, c30); ZS__GEMM_UPD8(c + 8, c31); c += ldc;
        ZS__GEMM_UPD8(c, c40); ZS__GEMM_UPD8(c + 8, c41); c += ldc;
        ZS__GEMM_UPD8(c, c50); ZS__GEMM_UPD8(c + 8, c51);
    } else {
        float acc[6 * 16], row[16];
        _mm256_storeu_ps(acc + 0, c00); _mm256_storeu_ps(acc + 8, c01);
        _mm256_storeu_ps(acc + 16, c10); _mm256_storeu_ps(acc + 24, c11);
        _mm256_storeu_ps(acc + 32, c20); _mm256_storeu_ps(acc + 40, c21);
        _mm256_storeu_ps(acc + 48, c30); _mm256_storeu_ps(acc + 56, c31);
        _mm256_storeu_ps(acc + 64, c40); _mm256_storeu_ps(acc + 72, c41);
        _mm256_storeu_ps(acc + 80, c50); _mm256_storeu_ps(acc + 88, c51);
        for (i = 0; i < mr; i++) {
            float *p = nr == 16 ? c + i * ldc : row;
            __m256 x0 = _mm256_loadu_ps(acc + 16 * i), x1 = _mm256_loadu_ps(acc + 16 * i + 8);
            if (nr < 16 && mode != ZS__GEMM_SET) memcpy(row, c + i * ldc, (size_t)nr * sizeof(float));
            ZS__GEMM_UPD8(p, x0);
            ZS__GEMM_UPD8(p + 8, x1);
            if (nr < 16) memcpy(c + i * ldc, row, (size_t)nr * sizeof(float));
        }
    }
}
#undef ZS__GEMM_K6x16

#elif defined(ZS__GEMM_NEON)

#define ZS__GEMM_UPD4(p, acc)                                                         \
    do {                                                                              \
        if (mode == ZS__GEMM_SET) vst1q_f32(p, vmulq_f32(va, acc));                   \
        else if (mode == ZS__GEMM_ACC) vst1q_f32(p, vfmaq_f32(vld1q_f32(p), va, acc)); \
        else vst1q_f32(p, vfmaq_f32(vmulq_f32(vb, vld1q_f32(p)), va, acc));            \
    } while (0)

#define ZS__GEMM_ROW12(r, av, lane)                                                   \
    c##r##0 = vfmaq_laneq_f32(c##r##0, b0, av, lane);                                 \
    c##r##1 = vfmaq_laneq_f32(c##r##1, b1, av, lane);                                 \
    c##r##2 = vfmaq_laneq_f32(c##r##2, b2, av, lane)

ZS__PRIV void zs__gemm_ukr(int64_t kc, const float *ZS__RESTRICT a, const float *ZS__RESTRICT b,
                           float *c, int64_t ldc, int mr, int nr, float alpha, float beta, int mode) {
    float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    float32x4_t c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    float32x4_t c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    float32x4_t c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    const float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    float acc[8 * 12], row[12];
    int64_t k;
    int i, j;
    for (k = 0; k < kc; k++) {
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        ZS__GEMM_ROW12(0, a0, 0);
        ZS__GEMM_ROW12(1, a0, 1);
        ZS__GEMM_ROW12(2, a0, 2);
        ZS__GEMM_ROW12(3, a0, 3);
        ZS__GEMM_ROW12(4, a1, 0);
        ZS__GEMM_ROW12(5, a1, 1);
        ZS__GEMM_ROW12(6, a1, 2);
        ZS__GEMM_ROW12(7, a1, 3);
        a += 8;
        b += 12;
    }
    vst1q_f32(acc + 0, c00); vst1q_f32(acc + 4, c01); vst1q_f32(acc + 8, c02);
    vst1q_f32(acc + 12, c10); vst1q_f32(acc + 16, c11); vst1q_f32(acc + 20, c12);
    vst1q_f32(acc + 24, c20); vst1q_f32(acc + 28, c21); vst1q_f32(acc + 32, c22);
    vst1q_f32(acc + 36, c30); vst1q_f32(acc + 40, c31); vst1q_f32(acc + 44, c32);
    vst1q_f32(acc + 48, c40); vst1q_f32(acc + 52, c41); vst1q_f32(acc + 56, c42);
    vst1q_f32(acc + 60, c50); vst1q_f32(acc + 64, c51); vst1q_f32(acc + 68, c52);
    vst1q_f32(acc + 72, c60); vst1q_f32(acc + 76, c61); vst1q_f32(acc + 80, c62);
    vst1q_f32(acc + 84, c70); vst1q_f32(acc + 88, c71); vst1q_f32(acc + 92, c72);
    for (i = 0; i < mr; i++) {
        float *p = nr == 12 ? c + i * ldc : row;
        if (nr < 12 && mode != ZS__GEMM_SET) memcpy(row, c + i * ldc, (size_t)nr * sizeof(float));
        for (j = 0; j < 12; j += 4) {
            float32x4_t x = vld1q_f32(acc + 12 * i + j);
            ZS__GEMM_UPD4(p + j, x);
        }
        if (nr < 12) memcpy(c + i * ldc, row, (size_t)nr * sizeof(float));
    }
}
#undef ZS__GEMM_ROW12

#else /* scalar micro-kernel */

ZS__PRIV void zs__gemm_ukr(int64_t kc, const float *ZS__RESTRICT a, const float *ZS__RESTRICT b,
                           float *c, int64_t ldc, int mr, int nr, float alpha, float beta, int mode) {
    float acc[ZS__GEMM_MR * ZS__GEMM_NR];
    int64_t k;
    int i, j;
    for (i = 0; i < ZS__GEMM_MR * ZS__GEMM_NR; i++) acc[i] = 0.0f;
    for (k = 0; k < kc; k++) {
        for (i = 0; i < ZS__GEMM_MR; i++) {
            float ai = a[i];
            for (j = 0; j < ZS__GEMM_NR; j++) acc[i * ZS__GEMM_NR + j] += ai * b[j];
        }
        a += ZS__GEMM_MR;
        b += ZS__GEMM_NR;
    }
    for (i = 0; i < mr; i++) {
        float *p = c + i * ldc;
        const float *x = acc + i * ZS__GEMM_NR;
        if (mode == ZS__GEMM_SET) for (j = 0; j < nr; j++) p[j] = alpha * x[j];
        else if (mode == ZS__GEMM_ACC) for (j = 0; j < nr; j++) p[j] = alpha * x[j] + p[j];
        else for (j = 0; j < nr; j++) p[j] = alpha * x[j] + beta * p[j];
    }
}

#endif

/* -- blocked driver ---------------------------------------------------------- */

typedef struct zs__gemm_prob {
    int ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
} zs__gemm_prob;

/* n split into ceil(n/max) near-equal blocks, rounded up to a multiple of q */
ZS__PRIV int64_t zs__gemm_blk(int64_t n, int64_t max, int64_t q) {
    int64_t nb = (n + max - 1) / max, b;
    if (nb < 1) nb = 1;
    b = (n + nb - 1) / nb;
    return (b + q - 1) / q * q;
}

/* the K block size: a function of K alone (this fixes the summation order) */
ZS__PRIV int64_t zs__gemm_kc(int64_t K) {
    int64_t kc = zs__gemm_blk(K, ZS__GEMM_KC, 8);
    return kc > K ? K : kc;
}

ZS__PRIV int64_t zs__gemm_rup(int64_t n, int64_t q) { return (n + q - 1) / q * q; }

/* C = beta * C on a block (K == 0 or alpha == 0); beta == 0 writes zeros */
ZS__PRIV void zs__gemm_scale(const zs__gemm_prob *p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    int64_t i, j;
    for (i = m0; i < m1; i++) {
        float *c = p->C + i * p->ldc;
        if (p->beta == 0.0f) for (j = n0; j < n1; j++) c[j] = 0.0f;
        else if (p->beta != 1.0f) for (j = n0; j < n1; j++) c[j] *= p->beta;
    }
}

/* Whole-K packings of a row band / column band, reusable across the
   rectangles of C that share it. Layout: K block pc (size kc) at offset
   pc * rup(rows, MR) (resp. NR), inside it the panels of the band, so the
   block of rows [ic, ic+mc) starts at + (ic - m0) * kc. */
ZS__PRIV void zs__gemm_pack_a_all(float *dst, const zs__gemm_prob *p, int64_t m0, int64_t m1) {
    int64_t kcb = zs__gemm_kc(p->K), pad = zs__gemm_rup(m1 - m0, ZS__GEMM_MR), pc;
    for (pc = 0; pc < p->K; pc += kcb)
        zs__gemm_pack_a(dst + pc * pad, p->ta, p->A, p->lda, m0, m1 - m0, pc, p->K - pc < kcb ? p->K - pc : kcb);
}
ZS__PRIV void zs__gemm_pack_b_all(float *dst, const zs__gemm_prob *p, int64_t n0, int64_t n1) {
    int64_t kcb = zs__gemm_kc(p->K), pad = zs__gemm_rup(n1 - n0, ZS__GEMM_NR), pc;
    for (pc = 0; pc < p->K; pc += kcb)
        zs__gemm_pack_b(dst + pc * pad, p->tb, p->B, p->ldb, n0, n1 - n0, pc, p->K - pc < kcb ? p->K - pc : kcb);
}

/* C[m0:m1, n0:n1] of one problem, all of K, on the calling thread. Block
   edges m0, n0 must be multiples of MR, NR (or the matrix edge). apk / bpk:
   the band already packed by zs__gemm_pack_a_all / _b_all, or NULL. */
ZS__PRIV int zs__gemm_part(zs__arena *ws, const zs__gemm_prob *p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                           const float *apk, const float *bpk) {
    int64_t kcb, mcb, ncb, jc, pc, ic, jr, ir, mpad, npad;
    float *ap = NULL, *bp = NULL;
    zs__amark mk;
    if (m1 <= m0 || n1 <= n0) return ZS_OK;
    if (p->K == 0 || p->alpha == 0.0f) {
        zs__gemm_scale(p, m0, m1, n0, n1);
        return ZS_OK;
    }
    kcb = zs__gemm_kc(p->K);
    mcb = zs__gemm_blk(m1 - m0, ZS__GEMM_MC, ZS__GEMM_MR);
    ncb = zs__gemm_blk(n1 - n0, ZS__GEMM_NC, ZS__GEMM_NR);
    mpad = zs__gemm_rup(m1 - m0, ZS__GEMM_MR);
    npad = zs__gemm_rup(n1 - n0, ZS__GEMM_NR);
    mk = zs__arena_mark(ws);
    if (!apk) ap = (float *)zs__arena_alloc(ws, (size_t)(mcb * kcb) * sizeof(float));
    if (!bpk) bp = (float *)zs__arena_alloc(ws, (size_t)(ncb * kcb) * sizeof(float));
    if ((!apk && !ap) || (!bpk && !bp)) {
        zs__arena_release(ws, mk);
        return zs__fail(ZS_ERR_NOMEM, "zs__sgemm: scratch arena exhausted (%lld bytes of packing buffers)",
                        (long long)((mcb + ncb) * kcb * (int64_t)sizeof(float)));
    }
    for (jc = n0; jc < n1; jc += ncb) {
        int64_t nc = n1 - jc < ncb ? n1 - jc : ncb;
        for (pc = 0; pc < p->K; pc += kcb) {
            int64_t kc = p->K - pc < kcb ? p->K - pc : kcb;
            int mode = pc > 0 ? ZS__GEMM_ACC
                       : p->beta == 0.0f ? ZS__GEMM_SET : p->beta == 1.0f ? ZS__GEMM_ACC : ZS__GEMM_SCALE;
            const float *bb = bpk ? bpk + pc * npad + (jc - n0) * kc : bp;
            if (!bpk) zs__gemm_pack_b(bp, p->tb, p->B, p->ldb, jc, nc, pc, kc);
            for (ic = m0; ic < m1; ic += mcb) {
                int64_t mc = m1 - ic < mcb ? m1 - ic : mcb;
                const float *ab = apk ? apk + pc * mpad + (ic - m0) * kc : ap;
                if (!apk) zs__gemm_pack_a(ap, p->ta, p->A, p->lda, ic, mc, pc, kc);
                for (jr = 0; jr < nc; jr += ZS__GEMM_NR) {
                    int nr = nc - jr < ZS__GEMM_NR ? (int)(nc - jr) : ZS__GEMM_NR;
                    for (ir = 0; ir < mc; ir += ZS__GEMM_MR) {
                        int mr = mc - ir < ZS__GEMM_MR ? (int)(mc - ir) : ZS__GEMM_MR;
                        zs__gemm_ukr(kc, ab + ir * kc, bb + jr * kc, p->C + (ic + ir) * p->ldc + jc + jr, p->ldc,
                                     mr, nr, p->alpha, p->beta, mode);
                    }
                }
            }
        }
    }
    zs__arena_release(ws, mk);
    return ZS_OK;
}

/* argument checks shared by the entry points */
ZS__PRIV int zs__gemm_check(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
                            const float *B, int64_t ldb, int tb, const float *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0)
        return zs__fail(ZS_ERR_ARG, "zs__sgemm: negative size M=%lld N=%lld K=%lld", (long long)M, (long long)N, (long long)K);
    if (M == 0 || N == 0) return ZS_OK;
    if (!C || (K > 0 && (!A || !B))) return zs__fail(ZS_ERR_ARG, "zs__sgemm: NULL matrix");
    if ((ta ? K : M) > 1 && lda < (ta ? M : K))
        return zs__fail(ZS_ERR_ARG, "zs__sgemm: lda %lld < %lld", (long long)lda, (long long)(ta ? M : K));
    if ((tb ? N : K) > 1 && ldb < (tb ? K : N))
        return zs__fail(ZS_ERR_ARG, "zs__sgemm: ldb %lld < %lld", (long long)ldb, (long long)(tb ? K : N));
    if (M > 1 && ldc < N) return zs__fail(ZS_ERR_ARG, "zs__sgemm: ldc %lld < %lld", (long long)ldc, (long long)N);
    return ZS_OK;
}

/* single-threaded entry: scratch from ws (mark/release inside) */
ZS__PRIV int zs__sgemm_st(zs__arena *ws, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb,
                          float beta, float *C, int64_t ldc) {
    zs__gemm_prob p;
    int rc = zs__gemm_check(M, N, K, A, lda, ta, B, ldb, tb, C, ldc);
    if (rc || M == 0 || N == 0) return rc;
    if (!ws) return zs__fail(ZS_ERR_ARG, "zs__sgemm_st: NULL scratch arena");
    p.ta = ta; p.tb = tb; p.M = M; p.N = N; p.K = K; p.alpha = alpha; p.beta = beta;
    p.A = A; p.B = B; p.C = C; p.lda = lda; p.ldb = ldb; p.ldc = ldc;
    return zs__gemm_part(ws, &p, 0, M, 0, N, NULL, NULL);
}

/* -- threading ------------------------------------------------------------- */

/* A whole-K band is kept packed (and shared by the rectangles of a thread
   that use it) when it takes at most this many bytes. */
#define ZS__GEMM_CACHE_BYTES ((int64_t)6 << 20)

typedef struct zs__gemm_job {
    zs__gemm_prob p;             /* batch item 0 */
    int64_t sA, sB, sC, batch;
    int64_t tm, tn;              /* per-item grid of rectangles */
    int64_t mpan, npan;          /* MR / NR panels per item */
    int cache_a, cache_b;        /* keep whole-K packed bands */
    int64_t next;                /* next unit to hand out (atomic) */
    int rc[ZS_MAX_THREADS];
} zs__gemm_job;

/* pointers of batch item b (NULL operands, allowed when K == 0, stay NULL) */
ZS__PRIV void zs__gemm_item(zs__gemm_prob *q, int64_t b, int64_t sA, int64_t sB, int64_t sC) {
    if (q->A) q->A += b * sA;
    if (q->B) q->B += b * sB;
    q->C += b * sC;
}

/* rows (or columns) of rectangle i of t over n panels of q */
ZS__PRIV void zs__gemm_range(int64_t npan, int64_t q, int64_t n, int64_t i, int64_t t, int64_t *lo, int64_t *hi) {
    int64_t a, b;
    zs__split(npan, (int)i, (int)t, &a, &b);
    *lo = a * q;
    *hi = b * q < n ? b * q : n;
}

/* Units are handed out one at a time from an atomic counter (threads that
   start late or get descheduled simply take fewer); without atomics each
   thread takes a fixed contiguous share. Either way a unit's result does
   not depend on who computes it. */
#if !defined(ZSESBIR_NO_THREADS) && (defined(__GNUC__) || defined(__clang__))
#define ZS__GEMM_DYNAMIC 1
#endif

ZS__PRIV void zs__gemm_task(void *arg, int ith, int nth, zs__arena *ws) {
    zs__gemm_job *j = (zs__gemm_job *)arg;
    int64_t per = j->tm * j->tn, units = j->batch * per, lo = 0, hi;
    int64_t rows_max = (j->mpan + j->tm - 1) / j->tm * ZS__GEMM_MR;
    int64_t cols_max = (j->npan + j->tn - 1) / j->tn * ZS__GEMM_NR;
    const float *akey = NULL, *bkey = NULL;
    int64_t ak0 = -1, bk0 = -1;
    float *abuf = NULL, *bbuf = NULL;
    zs__amark mk = zs__arena_mark(ws);
    j->rc[ith] = ZS_OK;
    if (j->cache_a) abuf = (float *)zs__arena_alloc(ws, (size_t)(rows_max * j->p.K) * sizeof(float));
    if (j->cache_b) bbuf = (float *)zs__arena_alloc(ws, (size_t)(cols_max * j->p.K) * sizeof(float));
#ifdef ZS__GEMM_DYNAMIC
    (void)nth;
    (void)lo;
    hi = units;
#else
    zs__split(units, ith, nth, &lo, &hi);
#endif
    for (;;) {
        int64_t u, b, im, in, m0, m1, n0, n1;
        const float *apk = NULL, *bpk = NULL;
        zs__gemm_prob q = j->p;
        int rc;
#ifdef ZS__GEMM_DYNAMIC
        u = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
#else
        u = lo++;
#endif
        if (u >= hi) break;
        b = u / per;
        im = (u % per) / j->tn;
        in = u % j->tn;
        zs__gemm_range(j->mpan, ZS__GEMM_MR, q.M, im, j->tm, &m0, &m1);
        zs__gemm_range(j->npan, ZS__GEMM_NR, q.N, in, j->tn, &n0, &n1);
        zs__gemm_item(&q, b, j->sA, j->sB, j->sC);
        if (abuf) {
            if (q.A != akey || m0 != ak0) { zs__gemm_pack_a_all(abuf, &q, m0, m1); akey = q.A; ak0 = m0; }
            apk = abuf;
        }
        if (bbuf) {
            if (q.B != bkey || n0 != bk0) { zs__gemm_pack_b_all(bbuf, &q, n0, n1); bkey = q.B; bk0 = n0; }
            bpk = bbuf;
        }
        rc = zs__gemm_part(ws, &q, m0, m1, n0, n1, apk, bpk);
        if (rc) { j->rc[ith] = rc; break; }
    }
    zs__arena_release(ws, mk);
}

/* Cost model in FMA lane-ops (16 per cycle with AVX2): tile work, packing
   (~8 per packed float), a small per-rectangle overhead, half a rectangle
   of expected imbalance at the end, and ~10 us for a parallel dispatch.
   Chooses tm x tn rectangles per item, which bands stay packed, and
   whether to run in parallel at all. */
#define ZS__GEMM_PACK_COST 8.0
#define ZS__GEMM_UNIT_COST 2.0e4
#define ZS__GEMM_DISPATCH_COST 2.0e5

typedef struct zs__gemm_plan { int64_t tm, tn; int cache_a, cache_b, par; double cost; } zs__gemm_plan;

ZS__PRIV zs__gemm_plan zs__gemm_cost(int64_t mpan, int64_t npan, int64_t K, int64_t batch, int b_shared,
                                     int64_t tm, int64_t tn, int nth) {
    zs__gemm_plan pl;
    int64_t rows = (mpan + tm - 1) / tm * ZS__GEMM_MR, cols = (npan + tn - 1) / tn * ZS__GEMM_NR;
    int64_t units = batch * tm * tn, per = (units + nth - 1) / nth, na = per, nb = per;
    double tile = (double)rows * (double)cols * (double)K;
    pl.tm = tm; pl.tn = tn; pl.par = nth > 1;
    pl.cache_a = tn > 1 && rows * K * (int64_t)sizeof(float) <= ZS__GEMM_CACHE_BYTES;
    pl.cache_b = tn == 1 && (tm > 1 || (b_shared && batch > 1)) &&
                 cols * K * (int64_t)sizeof(float) <= ZS__GEMM_CACHE_BYTES;
    if (pl.cache_a) na = per / tn + 1 < per ? per / tn + 1 : per;
    if (pl.cache_b) nb = b_shared ? 1 : (per / tm + 1 < per ? per / tm + 1 : per);
    pl.cost = (double)per * (tile + ZS__GEMM_UNIT_COST) + ZS__GEMM_PACK_COST * (double)K * ((double)na * (double)rows + (double)nb * (double)cols) +
              (nth > 1 ? 0.5 * tile + ZS__GEMM_DISPATCH_COST : 0.0);
    return pl;
}

ZS__PRIV zs__gemm_plan zs__gemm_choose(int64_t M, int64_t N, int64_t K, int64_t batch, int b_shared, int nth) {
    int64_t mpan = (M + ZS__GEMM_MR - 1) / ZS__GEMM_MR, npan = (N + ZS__GEMM_NR - 1) / ZS__GEMM_NR, tm, tn;
    zs__gemm_plan best = zs__gemm_cost(mpan, npan, K, batch, b_shared, 1, 1, 1), c;
    best.par = 0;
    if (nth <= 1) return best;
    for (tm = 1; tm <= mpan && tm <= 16 * (int64_t)nth; tm++)
        for (tn = 1; tn <= npan && tm * tn <= 16 * (int64_t)nth; tn++) {
            if (batch * tm * tn < nth) continue;
            c = zs__gemm_cost(mpan, npan, K, batch, b_shared, tm, tn, nth);
            if (c.cost < best.cost * 0.999) best = c;
        }
    return best;
}

/* job for a batch of problems; the grid is chosen by the caller */
ZS__PRIV void zs__gemm_job_init(zs__gemm_job *job, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                                float beta, float *C, int64_t ldc, int64_t sC, int64_t batch) {
    memset(job, 0, sizeof *job);
    job->p.ta = ta; job->p.tb = tb; job->p.M = M; job->p.N = N; job->p.K = K;
    job->p.alpha = alpha; job->p.beta = beta;
    job->p.A = A; job->p.B = B; job->p.C = C; job->p.lda = lda; job->p.ldb = ldb; job->p.ldc = ldc;
    job->sA = sA; job->sB = sB; job->sC = sC; job->batch = batch;
    job->mpan = (M + ZS__GEMM_MR - 1) / ZS__GEMM_MR;
    job->npan = (N + ZS__GEMM_NR - 1) / ZS__GEMM_NR;
    job->tm = job->tn = 1;
}

/* run a job's units over the pool (any grid and caching gives the same bits) */
ZS__PRIV int zs__gemm_run(zs__pool *pool, zs__gemm_job *job) {
    int i;
    job->next = 0;
    if (job->p.K == 0 || job->p.alpha == 0.0f) job->cache_a = job->cache_b = 0; /* nothing to pack */
    for (i = 0; i < ZS_MAX_THREADS; i++) job->rc[i] = ZS_OK;
    zs__pool_run(pool, zs__gemm_task, job);
    for (i = 0; i < ZS_MAX_THREADS; i++)
        if (job->rc[i]) return zs__fail(job->rc[i], "zs__sgemm: thread %d failed: %s", i, zs_status_str(job->rc[i]));
    return ZS_OK;
}

/* batched: for b in [0,batch): C_b = alpha op(A_b) op(B_b) + beta C_b with
   element strides sA, sB, sC between batch items (sB = 0 shares B). */
ZS__PRIV int zs__sgemm_batched(zs__pool *pool, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                               float beta, float *C, int64_t ldc, int64_t sC, int64_t batch) {
    zs__gemm_job job;
    zs__gemm_plan pl;
    int nth, rc;
    int64_t b;
    if (batch < 0) return zs__fail(ZS_ERR_ARG, "zs__sgemm_batched: negative batch %lld", (long long)batch);
    rc = zs__gemm_check(M, N, K, A, lda, ta, B, ldb, tb, C, ldc);
    if (rc || M == 0 || N == 0 || batch == 0) return rc;
    zs__gemm_job_init(&job, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
    nth = (pool && !zs__tls_ws) ? pool->nth : 1;
    pl = zs__gemm_choose(M, N, (K == 0 || alpha == 0.0f) ? 1 : K, batch, sB == 0, nth);
    if (pl.par) {
        job.tm = pl.tm;
        job.tn = pl.tn;
        job.cache_a = pl.cache_a;
        job.cache_b = pl.cache_b;
        return zs__gemm_run(pool, &job);
    }
    {   /* on the calling thread (or inside a pool task: its scratch) */
        zs__arena local, *ws = zs__tls_ws ? zs__tls_ws : pool ? &pool->ws[0] : NULL;
        if (!ws) zs__arena_init(ws = &local, (size_t)1 << 20, NULL);
        for (b = 0; b < batch && rc == ZS_OK; b++) {
            zs__gemm_prob q = job.p;
            zs__gemm_item(&q, b, sA, sB, sC);
            rc = zs__gemm_part(ws, &q, 0, M, 0, N, NULL, NULL);
        }
        if (ws == &local) zs__arena_free(&local);
        return rc;
    }
}

/* multi-threaded entry over the pool; bit-identical for any thread count */
ZS__PRIV int zs__sgemm(zs__pool *pool, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb,
                       float beta, float *C, int64_t ldc) {
    return zs__sgemm_batched(pool, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
