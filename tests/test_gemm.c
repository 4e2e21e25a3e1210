/* test_gemm.c - the packed SGEMM (dev/gemm.h) against the naive reference.

   zs__sgemm (thread pool) and zs__sgemm_st (one thread) are compared with
   zs__sgemm_ref, the plain triple loop. Tolerance, per element (i,j):
       |C - C_ref| <= 2 (K+2) 2^-24 (|alpha| |a_i|_2 |b_j|_2 + |beta| |C0_ij|) + 1e-30
   where a_i is row i of op(A) and b_j column j of op(B). Both results are
   within (K+1) 2^-24 sum_k |a_ik b_kj| (+ the beta term) of the exact value
   whatever their summation order (standard float dot product error bound),
   and sum_k |a_ik b_kj| <= |a_i|_2 |b_j|_2 (Cauchy-Schwarz), so the bound is
   rigorous; a single missing or doubled product of average size still
   exceeds it for the K used here. Results for 1, 2 and 3 threads (and every
   way of cutting C into rectangles) must be bit-identical: checked with
   memcmp over the whole C buffer, including the gaps beyond N in each row
   (ldc > N), which must keep their sentinel values. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

static zs__pool g_pool[4]; /* g_pool[n]: n threads */

/* a test matrix problem with padded leading dimensions */
typedef struct gcase {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0; /* C0: C before the call (NaN when beta == 0) */
    size_t na, nb, nc;
} gcase;

#define SENTINEL 12345.0f

static int gcase_make(gcase *g, int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t pad, float alpha,
                      float beta, unsigned long long seed) {
    size_t i;
    memset(g, 0, sizeof *g);
    g->ta = ta; g->tb = tb; g->M = M; g->N = N; g->K = K;
    g->alpha = alpha; g->beta = beta;
    g->lda = (ta ? M : K) + pad;
    g->ldb = (tb ? K : N) + pad;
    g->ldc = N + pad;
    if (g->lda < 1) g->lda = 1;
    if (g->ldb < 1) g->ldb = 1;
    if (g->ldc < 1) g->ldc = 1;
    g->na = (size_t)((ta ? K : M) * g->lda) + 1;
    g->nb = (size_t)((tb ? N : K) * g->ldb) + 1;
    g->nc = (size_t)(M * g->ldc) + 1;
    g->A = (float *)malloc(g->na * sizeof(float));
    g->B = (float *)malloc(g->nb * sizeof(float));
    g->C0 = (float *)malloc(g->nc * sizeof(float));
    if (!g->A || !g->B || !g->C0) return 0;
    zt_fill(g->A, (long long)g->na, seed, 1.0f);
    zt_fill(g->B, (long long)g->nb, seed + 1, 1.0f);
    zt_fill(g->C0, (long long)g->nc, seed + 2, 1.0f);
    for (i = 0; i < g->nc; i++) {
        int64_t r = (int64_t)i / g->ldc, c = (int64_t)i % g->ldc;
        if (r >= M || c >= N) g->C0[i] = SENTINEL;       /* gaps: must stay */
        else if (beta == 0.0f) g->C0[i] = (float)NAN;    /* must not be read */
    }
    return 1;
}

static void gcase_free(gcase *g) {
    free(g->A);
    free(g->B);
    free(g->C0);
}

static float *dup_c(const gcase *g) {
    float *c = (float *)malloc(g->nc * sizeof(float));
    if (c) memcpy(c, g->C0, g->nc * sizeof(float));
    return c;
}

/* max over elements of |C - Cref| / bound (<= 1 passes); also checks the gaps */
static double gcase_err(const gcase *g, const float *C, const float *Cref, int *gaps_ok) {
    double *an = (double *)calloc((size_t)(g->M ? g->M : 1), sizeof(double));
    double *bn = (double *)calloc((size_t)(g->N ? g->N : 1), sizeof(double));
    double worst = 0.0, u = 2.0 * ((double)g->K + 2.0) * (1.0 / 16777216.0);
    int64_t i, j, k;
    *gaps_ok = 1;
    if (!an || !bn) { free(an); free(bn); return 1e30; }
    for (i = 0; i < g->M; i++)
        for (k = 0; k < g->K; k++) {
            double a = g->ta ? g->A[k * g->lda + i] : g->A[i * g->lda + k];
            an[i] += a * a;
        }
    for (j = 0; j < g->N; j++)
        for (k = 0; k < g->K; k++) {
            double b = g->tb ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j];
            bn[j] += b * b;
        }
    for (i = 0; i < (int64_t)g->nc; i++) {
        int64_t r = i / g->ldc, c = i % g->ldc;
        if (r >= g->M || c >= g->N) {
            if (C[i] != SENTINEL) *gaps_ok = 0;
            continue;
        }
        {
            double c0 = g->beta == 0.0f ? 0.0 : fabs((double)g->C0[i]);
            double tol = u * (fabs((double)g->alpha) * sqrt(an[r] * bn[c]) + fabs((double)g->beta) * c0) + 1e-30;
            double d = fabs((double)C[i] - (double)Cref[i]) / tol;
            if (!(d <= worst)) worst = d; /* NaN propagates */
        }
    }
    free(an);
    free(bn);
    return worst;
}

static int run_pool(const gcase *g, zs__pool *pool, float *C) {
    return zs__sgemm(pool, g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, C, g->ldc);
}

static int run_st(const gcase *g, float *C) {
    return zs__sgemm_st(&g_pool[1].ws[1], g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb,
                        g->beta, C, g->ldc);
}

/* explicit grid tm x tn on a pool (whole-K band caches on or off):
   exercises the parallel split on any size */
static int run_grid(const gcase *g, zs__pool *pool, int64_t tm, int64_t tn, int cache, float *C) {
    zs__gemm_job job;
    zs__gemm_job_init(&job, g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, 0, g->B, g->ldb, 0, g->beta,
                      C, g->ldc, 0, 1);
    job.tm = tm;
    job.tn = tn;
    job.cache_a = cache & 1;
    job.cache_b = (cache >> 1) & 1;
    return zs__gemm_run(pool, &job);
}

/* Compare st, pool(1,2,3) and forced grids against the reference; all the
   optimised results must be identical bit for bit. */
static void check_case(int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t pad, float alpha, float beta,
                       int grids) {
    /* tm, tn, caches (1: A band, 2: B band) */
    static const int64_t grid[][3] = {{1, 2, 0}, {2, 1, 0}, {1, 3, 1}, {3, 1, 2}, {2, 2, 3}, {1, 5, 1}, {4, 1, 2}};
    gcase g;
    float *ref, *c1, *cx;
    int gaps_ok, n, rc;
    size_t gi;
    double e;
    ZT_REQUIRE(gcase_make(&g, ta, tb, M, N, K, pad, alpha, beta, (unsigned long long)(M * 1000003 + N * 1009 + K + ta * 7 + tb * 13)),
               "out of memory");
    ref = dup_c(&g);
    c1 = dup_c(&g);
    cx = dup_c(&g);
    if (!ref || !c1 || !cx) { ZT_CHECK(0, "out of memory"); goto done; }
    zs__sgemm_ref(ta, tb, M, N, K, alpha, g.A, g.lda, g.B, g.ldb, beta, ref, g.ldc);
    rc = run_st(&g, c1);
    ZT_CHECK(rc == ZS_OK, "sgemm_st failed: %.200s", zs_last_error());
    e = gcase_err(&g, c1, ref, &gaps_ok);
    ZT_CHECK(e <= 1.0, "st ta=%d tb=%d %lldx%lldx%lld pad %lld alpha %g beta %g: error %.3g x bound", ta, tb,
             (long long)M, (long long)N, (long long)K, (long long)pad, alpha, beta, e);
    ZT_CHECK(gaps_ok, "st ta=%d tb=%d %lldx%lldx%lld: wrote outside C (ldc gap)", ta, tb, (long long)M, (long long)N,
             (long long)K);
    for (n = 1; n <= 3; n++) {
        memcpy(cx, g.C0, g.nc * sizeof(float));
        rc = run_pool(&g, &g_pool[n], cx);
        ZT_CHECK(rc == ZS_OK, "sgemm failed: %.200s", zs_last_error());
        ZT_CHECK(!memcmp(cx, c1, g.nc * sizeof(float)), "ta=%d tb=%d %lldx%lldx%lld: %d threads differ from st", ta,
                 tb, (long long)M, (long long)N, (long long)K, n);
    }
    for (gi = 0; grids && gi < sizeof grid / sizeof grid[0]; gi++)
        for (n = 2; n <= 3; n++) {
            memcpy(cx, g.C0, g.nc * sizeof(float));
            rc = run_grid(&g, &g_pool[n], grid[gi][0], grid[gi][1], (int)grid[gi][2], cx);
            ZT_CHECK(rc == ZS_OK, "grid run failed: %.200s", zs_last_error());
            ZT_CHECK(!memcmp(cx, c1, g.nc * sizeof(float)),
                     "ta=%d tb=%d %lldx%lldx%lld: grid %lldx%lld cache %d on %d threads differs from st", ta, tb,
                     (long long)M, (long long)N, (long long)K, (long long)grid[gi][0], (long long)grid[gi][1],
                     (int)grid[gi][2], n);
        }
done:
    free(ref);
    free(c1);
    free(cx);
    gcase_free(&g);
}

/* all four transpose cases on small and block-crossing sizes (MR/NR edges,
   KC = 256, MC = 264, NC = 1024 boundaries) */
static void test_gemm_shapes(void) {
    static const int64_t sz[][3] = {
        {1, 1, 1}, {3, 5, 7}, {13, 17, 19}, {1, 64, 300}, {300, 1, 64}, {6, 16, 8}, {7, 17, 9},
        {5, 15, 257}, {12, 32, 512}, {265, 19, 9}, {19, 1031, 5}, {2, 3, 600}, {61, 47, 263}};
    size_t i;
    int ta, tb;
    for (i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++) check_case(ta, tb, sz[i][0], sz[i][1], sz[i][2], 0, 1.0f, 0.0f, 1);
}

/* leading dimensions larger than minimal, alpha != 1, beta 0 (C = NaN), 1, 0.5 */
static void test_gemm_ld_alpha_beta(void) {
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    static const int64_t sz[][3] = {{29, 45, 37}, {70, 50, 300}, {8, 33, 17}};
    size_t i, b;
    int ta, tb;
    for (i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (b = 0; b < 3; b++)
            for (ta = 0; ta < 2; ta++)
                for (tb = 0; tb < 2; tb++) {
                    check_case(ta, tb, sz[i][0], sz[i][1], sz[i][2], 3, -0.75f, betas[b], i == 0);
                    check_case(ta, tb, sz[i][0], sz[i][1], sz[i][2], 0, 2.0f, betas[b], 0);
                }
}

/* beta == 0 must not read C: a NaN-filled C gives finite results */
static void test_gemm_beta0_nan(void) {
    int64_t M = 23, N = 41, K = 30, i;
    float A[23 * 30], B[30 * 41], C[23 * 41];
    int n;
    zt_fill(A, M * K, 5, 1.0f);
    zt_fill(B, K * N, 6, 1.0f);
    for (n = 0; n < 2; n++) {
        int bad = 0;
        for (i = 0; i < M * N; i++) C[i] = (float)NAN;
        if (n == 0) ZT_CHECK(zs__sgemm(&g_pool[2], 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N) == ZS_OK, "sgemm");
        else ZT_CHECK(zs__sgemm_st(&g_pool[1].ws[0], 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N) == ZS_OK, "st");
        for (i = 0; i < M * N; i++) bad += !(C[i] == C[i]);
        ZT_CHECK(bad == 0, "%d NaNs leaked from C with beta = 0 (%s)", bad, n ? "st" : "pool");
    }
}

/* M, N or K = 0, and alpha = 0 */
static void test_gemm_zero_sizes(void) {
    float A[12], B[12], C[12], C0[12];
    int i, bad;
    zt_fill(A, 12, 7, 1.0f);
    zt_fill(B, 12, 8, 1.0f);
    zt_fill(C0, 12, 9, 1.0f);
    /* M = 0 / N = 0: nothing touched, NULL operands accepted */
    memcpy(C, C0, sizeof C);
    ZT_CHECK(zs__sgemm(&g_pool[2], 0, 0, 0, 3, 4, 1.0f, NULL, 4, B, 3, 0.0f, C, 3) == ZS_OK, "M=0");
    ZT_CHECK(zs__sgemm(&g_pool[2], 1, 1, 3, 0, 4, 1.0f, A, 3, NULL, 4, 0.0f, C, 1) == ZS_OK, "N=0");
    ZT_CHECK(zs__sgemm_st(&g_pool[1].ws[0], 0, 1, 0, 0, 0, 1.0f, NULL, 1, NULL, 1, 0.0f, NULL, 1) == ZS_OK, "0x0x0");
    ZT_CHECK(!memcmp(C, C0, sizeof C), "M=0 or N=0 modified C");
    /* K = 0: C = beta * C; beta = 0 gives zeros even over NaN */
    ZT_CHECK(zs__sgemm(&g_pool[2], 0, 0, 3, 4, 0, 1.0f, NULL, 1, NULL, 4, 0.5f, C, 4) == ZS_OK, "K=0");
    for (i = 0, bad = 0; i < 12; i++) bad += C[i] != 0.5f * C0[i];
    ZT_CHECK(bad == 0, "K=0 beta=0.5: C != 0.5 C0");
    for (i = 0; i < 12; i++) C[i] = (float)NAN;
    ZT_CHECK(zs__sgemm_st(&g_pool[1].ws[0], 1, 1, 3, 4, 0, 1.0f, NULL, 3, NULL, 1, 0.0f, C, 4) == ZS_OK, "K=0 st");
    for (i = 0, bad = 0; i < 12; i++) bad += C[i] != 0.0f;
    ZT_CHECK(bad == 0, "K=0 beta=0: C not zeroed");
    /* alpha = 0: A and B are not read (NaN there does not matter) */
    for (i = 0; i < 12; i++) A[i] = (float)NAN;
    memcpy(C, C0, sizeof C);
    ZT_CHECK(zs__sgemm(&g_pool[2], 0, 0, 3, 4, 2, 0.0f, A, 2, B, 4, 1.0f, C, 4) == ZS_OK, "alpha=0");
    ZT_CHECK(!memcmp(C, C0, sizeof C), "alpha=0 beta=1 changed C");
    /* K = 1 and M = N = 1 against the reference */
    check_case(0, 0, 9, 21, 1, 2, 1.5f, 0.5f, 1);
    check_case(1, 1, 1, 1, 33, 1, 1.0f, 1.0f, 1);
}

/* argument errors are returned, never asserted */
static void test_gemm_errors(void) {
    float A[16], B[16], C[16];
    memset(A, 0, sizeof A); memset(B, 0, sizeof B); memset(C, 0, sizeof C);
    ZT_CHECK(zs__sgemm(&g_pool[2], 0, 0, -1, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2) == ZS_ERR_ARG, "negative M");
    ZT_CHECK(zs__sgemm(&g_pool[2], 0, 0, 2, 2, 4, 1.0f, A, 3, B, 2, 0.0f, C, 2) == ZS_ERR_ARG, "lda < K");
    ZT_CHECK(strstr(zs_last_error(), "lda") != NULL, "message names lda: %.200s", zs_last_error());
    ZT_CHECK(zs__sgemm(&g_pool[2], 0, 1, 2, 3, 2, 1.0f, A, 2, B, 1, 0.0f, C, 3) == ZS_ERR_ARG, "ldb < K");
    ZT_CHECK(zs__sgemm_st(&g_pool[1].ws[0], 0, 0, 2, 3, 2, 1.0f, A, 2, B, 3, 0.0f, C, 2) == ZS_ERR_ARG, "ldc < N");
    ZT_CHECK(zs__sgemm(&g_pool[2], 0, 0, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, NULL, 2) == ZS_ERR_ARG, "NULL C");
    ZT_CHECK(zs__sgemm_batched(&g_pool[2], 0, 0, 2, 2, 2, 1.0f, A, 2, 4, B, 2, 0, 0.0f, C, 2, 4, -1) == ZS_ERR_ARG,
             "negative batch");
}

/* the ViT qkv projection 197x2304x768 (x @ W^T), once, plus bit-identity */
static void test_gemm_vit_shape(void) {
    check_case(0, 1, 197, 2304, 768, 0, 1.0f, 0.0f, 0);
}

/* model-sized shapes on 1, 2, 3 threads and forced grids: identical bits
   (includes parallel splits of the M = 197 rows and K > KC) */
static void test_gemm_threads_bitwise(void) {
    static const int64_t sz[][3] = {{197, 197, 64}, {197, 64, 197}, {100, 70, 513}, {37, 45, 300}};
    size_t i;
    int ta, tb;
    for (i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++) check_case(ta, tb, sz[i][0], sz[i][1], sz[i][2], 1, 1.0f, 0.5f, 1);
}

/* batched, per-item and shared B (sB = 0), small items spread over threads */
static void test_gemm_batched(void) {
    const int64_t batch = 7, M = 19, N = 23, K = 29;
    int ta, tb, shared, n;
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++)
            for (shared = 0; shared < 2; shared++) {
                int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
                int64_t sA = (ta ? K : M) * lda + 5, sB = shared ? 0 : (tb ? N : K) * ldb + 3, sC = M * ldc + 4;
                size_t na = (size_t)(batch * sA), nb = (size_t)(shared ? (tb ? N : K) * ldb : batch * sB),
                       nc = (size_t)(batch * sC);
                float *A = (float *)malloc(na * sizeof(float)), *B = (float *)malloc(nb * sizeof(float));
                float *C = (float *)malloc(nc * sizeof(float)), *R = (float *)malloc(nc * sizeof(float));
                float *C1 = (float *)malloc(nc * sizeof(float));
                int64_t b;
                if (!A || !B || !C || !R || !C1) {
                    ZT_CHECK(0, "out of memory");
                } else {
                    zt_fill(A, (long long)na, 11, 1.0f);
                    zt_fill(B, (long long)nb, 12, 1.0f);
                    zt_fill(R, (long long)nc, 13, 1.0f);
                    for (b = 0; b < batch; b++)
                        zs__sgemm_ref(ta, tb, M, N, K, 0.5f, A + b * sA, lda, B + b * sB, ldb, 0.25f, R + b * sC, ldc);
                    for (n = 1; n <= 3; n++) {
                        double e;
                        zt_fill(C, (long long)nc, 13, 1.0f);
                        ZT_CHECK(zs__sgemm_batched(&g_pool[n], ta, tb, M, N, K, 0.5f, A, lda, sA, B, ldb, sB, 0.25f, C,
                                                   ldc, sC, batch) == ZS_OK, "batched: %.200s", zs_last_error());
                        if (n == 1) memcpy(C1, C, nc * sizeof(float));
                        else ZT_CHECK(!memcmp(C, C1, nc * sizeof(float)), "batched ta=%d tb=%d shared=%d: %d threads differ from 1",
                                      ta, tb, shared, n);
                        /* per item against the reference */
                        for (b = 0; b < batch; b++) {
                            int64_t i, j;
                            double w = 0.0;
                            for (i = 0; i < M; i++)
                                for (j = 0; j < N; j++) {
                                    double d = fabs((double)C[b * sC + i * ldc + j] - (double)R[b * sC + i * ldc + j]);
                                    if (!(d <= w)) w = d;
                                }
                            /* |a|,|b| < 1: sum |a b| < K; bound 2(K+2)u(0.5 K + 0.25) */
                            e = w / (2.0 * (double)(K + 2) / 16777216.0 * (0.5 * (double)K + 0.25));
                            ZT_CHECK(e <= 1.0, "batched ta=%d tb=%d shared=%d item %lld: error %.3g x bound", ta, tb,
                                     shared, (long long)b, e);
                        }
                    }
                }
                free(A); free(B); free(C); free(R); free(C1);
            }
    /* attention-like batch (12 heads of 197x197x64): identical for 1, 2, 3 threads */
    {
        const int64_t hb = 12, hm = 197, hk = 64;
        float *Q = (float *)malloc((size_t)(hb * hm * hk) * sizeof(float));
        float *Kt = (float *)malloc((size_t)(hb * hm * hk) * sizeof(float));
        float *S1 = (float *)malloc((size_t)(hb * hm * hm) * sizeof(float));
        float *S = (float *)malloc((size_t)(hb * hm * hm) * sizeof(float));
        if (!Q || !Kt || !S1 || !S) {
            ZT_CHECK(0, "out of memory");
        } else {
            zt_fill(Q, hb * hm * hk, 14, 1.0f);
            zt_fill(Kt, hb * hm * hk, 15, 1.0f);
            for (n = 1; n <= 3; n++) {
                ZT_CHECK(zs__sgemm_batched(&g_pool[n], 0, 1, hm, hm, hk, 0.125f, Q, hk, hm * hk, Kt, hk, hm * hk, 0.0f,
                                           n == 1 ? S1 : S, hm, hm * hm, hb) == ZS_OK, "heads: %.200s", zs_last_error());
                if (n > 1) ZT_CHECK(!memcmp(S, S1, (size_t)(hb * hm * hm) * sizeof(float)), "heads: %d threads differ", n);
            }
            /* one item against the reference */
            zs__sgemm_ref(0, 1, hm, hm, hk, 0.125f, Q + 5 * hm * hk, hk, Kt + 5 * hm * hk, hk, 0.0f, S, hm);
            ZT_CHECK(zt_max_rel(S1 + 5 * hm * hm, S, hm * hm) < 2.0 * (hk + 2) / 16777216.0 * 0.125 * hk,
                     "heads: item 5 differs from the reference");
        }
        free(Q); free(Kt); free(S1); free(S);
    }
}

/* the packing routines (AVX2 transposes and copies) against their definition */
static void test_gemm_pack(void) {
    static const int64_t kcs[] = {1, 7, 8, 9, 17, 64};
    int W, w, side, bad = 0;
    size_t ki;
    /* sized for the widest panel (the AVX-512 kernel's NR = 32) */
    static float src[100 * 80], dst[32 * 64 + 16];
    zt_fill(src, 100 * 80, 21, 1.0f);
    for (side = 0; side < 2; side++) {
        W = side ? ZS__GEMM_NR : ZS__GEMM_MR;
        for (w = 1; w <= W; w++)
            for (ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
                int64_t kc = kcs[ki], k, trans;
                for (trans = 0; trans < 2; trans++) {
                    /* trans: rows along memory (rs = 80, ks = 1); else copy (rs = 1, ks = 40) */
                    int64_t rs = trans ? 80 : 1, ks = trans ? 1 : 40;
                    int r;
                    for (k = 0; k < 32 * 64 + 16; k++) dst[k] = -99.0f;
                    zs__gemm_pack_panel(dst, W, w, kc, src + 3, rs, ks);
                    for (k = 0; k < kc; k++)
                        for (r = 0; r < W; r++) bad += dst[k * W + r] != (r < w ? src[3 + r * rs + k * ks] : 0.0f);
                    for (k = kc * W; k < 32 * 64 + 16; k++) bad += dst[k] != -99.0f;
                }
            }
    }
    ZT_CHECK(bad == 0, "%d packed values wrong", bad);
    /* block packers, both orientations with a ragged edge panel */
    {
        int64_t n = 2 * ZS__GEMM_NR + 3, kc = 11, i, k;
        float *d = (float *)malloc((size_t)(3 * ZS__GEMM_NR * kc) * sizeof(float));
        float *d2 = (float *)malloc((size_t)(3 * ZS__GEMM_NR * kc) * sizeof(float));
        bad = 0;
        if (d && d2) {
            zs__gemm_pack_b(d, 0, src, 80, 2, n, 1, kc);  /* B [K,N] rows: copy */
            zs__gemm_pack_b(d2, 1, src, 80, 1, n, 2, kc); /* B stored [N,K]: transpose */
            for (i = 0; i < 3 * ZS__GEMM_NR; i++)
                for (k = 0; k < kc; k++) {
                    int64_t p = i / ZS__GEMM_NR, j = i % ZS__GEMM_NR, at = p * ZS__GEMM_NR * kc + k * ZS__GEMM_NR + j;
                    bad += d[at] != (i < n ? src[(1 + k) * 80 + 2 + i] : 0.0f);
                    bad += d2[at] != (i < n ? src[(1 + i) * 80 + 2 + k] : 0.0f);
                }
            n = 3 * ZS__GEMM_MR + 1;
            zs__gemm_pack_a(d, 0, src, 80, 1, n, 2, kc); /* A [M,K]: transpose */
            zs__gemm_pack_a(d2, 1, src, 80, 2, n, 1, kc); /* A stored [K,M]: copy */
            for (i = 0; i < 4 * ZS__GEMM_MR; i++)
                for (k = 0; k < kc; k++) {
                    int64_t p = i / ZS__GEMM_MR, r = i % ZS__GEMM_MR, at = p * ZS__GEMM_MR * kc + k * ZS__GEMM_MR + r;
                    bad += d[at] != (i < n ? src[(1 + i) * 80 + 2 + k] : 0.0f);
                    bad += d2[at] != (i < n ? src[(1 + k) * 80 + 2 + i] : 0.0f);
                }
        } else {
            bad = -1;
        }
        ZT_CHECK(bad == 0, "block packers: %d values wrong", bad);
        free(d);
        free(d2);
    }
}

/* called from inside a pool task, zs__sgemm runs inline on that thread */
typedef struct nest_arg { const float *A, *B; float *C; int rc[4]; } nest_arg;
static void nest_task(void *arg, int ith, int nth, zs__arena *ws) {
    nest_arg *a = (nest_arg *)arg;
    int64_t lo, hi, b;
    (void)ws;
    zs__split(4, ith, nth, &lo, &hi);
    for (b = lo; b < hi; b++)
        a->rc[b] = zs__sgemm(&g_pool[2], 0, 1, 40, 50, 60, 1.0f, a->A + b * 40 * 60, 60, a->B, 60, 0.0f,
                             a->C + b * 40 * 50, 50);
}
static void test_gemm_nested(void) {
    float *A = (float *)malloc(4 * 40 * 60 * sizeof(float)), *B = (float *)malloc(50 * 60 * sizeof(float));
    float *C = (float *)malloc(4 * 40 * 50 * sizeof(float)), *R = (float *)malloc(4 * 40 * 50 * sizeof(float));
    nest_arg na;
    int b;
    ZT_REQUIRE(A && B && C && R, "out of memory");
    zt_fill(A, 4 * 40 * 60, 31, 1.0f);
    zt_fill(B, 50 * 60, 32, 1.0f);
    for (b = 0; b < 4; b++)
        ZT_CHECK(zs__sgemm_st(&g_pool[1].ws[0], 0, 1, 40, 50, 60, 1.0f, A + b * 40 * 60, 60, B, 60, 0.0f,
                              R + b * 40 * 50, 50) == ZS_OK, "st");
    na.A = A; na.B = B; na.C = C;
    zs__pool_run(&g_pool[2], nest_task, &na);
    for (b = 0; b < 4; b++) ZT_CHECK(na.rc[b] == ZS_OK, "nested call %d failed", b);
    ZT_CHECK(!memcmp(C, R, 4 * 40 * 50 * sizeof(float)), "nested results differ from st");
    free(A); free(B); free(C); free(R);
}

/* scratch comes from the per-thread arenas with mark/release: nothing stays
   allocated and no new chunk appears after the first call */
static int chunk_count(const zs__arena *a) {
    int n = 0;
    const zs__chunk *c;
    for (c = a->first; c; c = c->next) n++;
    return n;
}
static void test_gemm_scratch_reuse(void) {
    const int64_t M = 197, N = 768, K = 600;
    float *A = (float *)malloc((size_t)(M * K) * sizeof(float)), *B = (float *)malloc((size_t)(N * K) * sizeof(float));
    float *C = (float *)malloc((size_t)(M * N) * sizeof(float));
    int r, i, before[4];
    ZT_REQUIRE(A && B && C, "out of memory");
    zt_fill(A, M * K, 41, 1.0f);
    zt_fill(B, N * K, 42, 1.0f);
    for (r = 0; r < 3; r++) {
        ZT_CHECK(zs__sgemm(&g_pool[2], 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N) == ZS_OK, "sgemm");
        for (i = 0; i < 2; i++) {
            ZT_CHECK(g_pool[2].ws[i].used_total == 0, "thread %d scratch not released (%zu bytes)", i,
                     g_pool[2].ws[i].used_total);
            if (r == 0) before[i] = chunk_count(&g_pool[2].ws[i]);
            else ZT_CHECK(chunk_count(&g_pool[2].ws[i]) == before[i], "thread %d arena grew on call %d", i, r + 1);
        }
    }
    free(A); free(B); free(C);
}

int main(int argc, char **argv) {
    int n;
    zt_select(argc, argv);
    for (n = 1; n <= 3; n++)
        if (zs__pool_init(&g_pool[n], n, NULL) != ZS_OK) { printf("pool: %s\n", zs_last_error()); return 1; }
    ZT_RUN(test_gemm_pack);
    ZT_RUN(test_gemm_shapes);
    ZT_RUN(test_gemm_ld_alpha_beta);
    ZT_RUN(test_gemm_beta0_nan);
    ZT_RUN(test_gemm_zero_sizes);
    ZT_RUN(test_gemm_errors);
    ZT_RUN(test_gemm_threads_bitwise);
    ZT_RUN(test_gemm_batched);
    ZT_RUN(test_gemm_nested);
    ZT_RUN(test_gemm_scratch_reuse);
    ZT_RUN(test_gemm_vit_shape);
    for (n = 1; n <= 3; n++) zs__pool_shutdown(&g_pool[n]);
    return zt_finish();
}
