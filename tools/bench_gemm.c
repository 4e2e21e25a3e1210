/* bench_gemm.c - SGEMM throughput of zsesbir (zs__sgemm) against OpenBLAS.

   Build and run from the repository root:
     gcc -std=c99 -O2 -mavx2 -mfma -I. tools/bench_gemm.c -o build/bench_gemm -lm -lpthread
     build/bench_gemm [--quick]
   With OpenBLAS measured in the same run (Debian: apt-get install libopenblas-dev):
     gcc -std=c99 -O2 -mavx2 -mfma -DZS_BENCH_OPENBLAS -I. tools/bench_gemm.c \
         -o build/bench_gemm_ob -lopenblas -lm -lpthread
     build/bench_gemm_ob [--quick]

   Prints a markdown table: shape M x N x K (C[M,N] = op(A)[M,K] op(B)[K,N]),
   transposes, threads (1 and 2), zsesbir GFLOP/s and OpenBLAS GFLOP/s, each
   the median and then the best of the repetitions (each library timed in
   its own block right after the other's, with a pause between), and the
   ratio of the medians; then the naive reference loop on one small shape. --quick runs fewer shapes and repetitions.
   The machine should be otherwise idle: with other load the 2-thread
   numbers mostly measure the scheduler. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#ifdef ZS_BENCH_OPENBLAS
#include <cblas.h>
#endif

typedef struct bench_shape {
    const char *what;
    int64_t M, N, K;
    int ta, tb;
    int64_t batch; /* > 1: zs__sgemm_batched (OpenBLAS: a loop of calls) */
    int quick;     /* part of --quick */
} bench_shape;

static const bench_shape shapes[] = {
    {"ViT qkv", 197, 2304, 768, 0, 1, 1, 1},
    {"ViT qkv", 197, 2304, 768, 0, 0, 1, 0},
    {"ViT proj", 197, 768, 768, 0, 1, 1, 1},
    {"ViT proj", 197, 768, 768, 0, 0, 1, 0},
    {"ViT fc1", 197, 3072, 768, 0, 1, 1, 1},
    {"ViT fc1", 197, 3072, 768, 0, 0, 1, 0},
    {"ViT fc2", 197, 768, 3072, 0, 1, 1, 1},
    {"ViT fc2", 197, 768, 3072, 0, 0, 1, 0},
    {"ViT qkv b8", 1576, 2304, 768, 0, 1, 1, 0},
    {"ViT proj b8", 1576, 768, 768, 0, 1, 1, 1},
    {"ViT fc1 b8", 1576, 3072, 768, 0, 1, 1, 0},
    {"ViT fc2 b8", 1576, 768, 3072, 0, 1, 1, 0},
    {"fc1 dX (bwd)", 197, 768, 3072, 0, 0, 1, 0},
    {"fc1 dW b8 (bwd)", 3072, 768, 1576, 1, 0, 1, 1},
    {"attn QK^T", 197, 197, 64, 0, 1, 1, 1},
    {"attn PV", 197, 64, 197, 0, 0, 1, 1},
    {"attn QK^T x12 heads", 197, 197, 64, 0, 1, 12, 1},
    {"attn PV x12 heads", 197, 64, 197, 0, 0, 12, 0},
    {"square", 1024, 1024, 1024, 0, 0, 1, 1},
    {"square", 2048, 2048, 2048, 0, 0, 1, 0},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#ifdef ZS_BENCH_OPENBLAS
static void pause_s(double s) {
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}
#endif

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* sorts v; median, and v[0] is then the fastest */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *p, size_t n, unsigned seed) {
    size_t i;
    unsigned s = seed * 2654435761u + 1u;
    for (i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
}

static int run_zs(zs_ctx *ctx, const bench_shape *s, const float *A, const float *B, float *C) {
    int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    if (s->batch > 1)
        return zs__sgemm_batched(&ctx->pool, s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, s->M * s->K, B, ldb, s->K * s->N,
                                 0.0f, C, s->N, s->M * s->N, s->batch);
    return zs__sgemm(&ctx->pool, s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
}

#ifdef ZS_BENCH_OPENBLAS
static void run_ob(const bench_shape *s, const float *A, const float *B, float *C) {
    int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N, b;
    for (b = 0; b < s->batch; b++)
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                    (int)s->M, (int)s->N, (int)s->K, 1.0f, A + b * s->M * s->K, (int)lda, B + b * s->K * s->N, (int)ldb, 0.0f,
                    C + b * s->M * s->N, (int)s->N);
}
#endif

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    double budget = quick ? 0.15 : 0.6; /* seconds per measurement */
    size_t si, nshapes = sizeof shapes / sizeof shapes[0];
    int nt;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    cp.arena_bytes = (size_t)1 << 20;
    ctx = zs_ctx_create(&cp);
    if (!ctx) { fprintf(stderr, "zs_ctx_create: %s\n", zs_last_error()); return 1; }
    printf("SGEMM GFLOP/s (median of repetitions)%s\n\n", quick ? " --quick" : "");
#ifdef ZS_BENCH_OPENBLAS
    printf("| shape | M x N x K | ta tb | threads | zsesbir | (best) | OpenBLAS | (best) | ratio |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
#else
    printf("| shape | M x N x K | ta tb | threads | zsesbir | (best) |\n");
    printf("|---|---|---|---|---|---|\n");
#endif
    for (si = 0; si < nshapes; si++) {
        const bench_shape *s = &shapes[si];
        size_t na = (size_t)(s->M * s->K * s->batch), nb = (size_t)(s->K * s->N * s->batch), nc = (size_t)(s->M * s->N * s->batch);
        float *A, *B, *C;
        double flop = 2.0 * (double)s->M * (double)s->N * (double)s->K * (double)s->batch;
        if (quick && !s->quick) continue;
        A = (float *)malloc(na * sizeof(float));
        B = (float *)malloc(nb * sizeof(float));
        C = (float *)malloc(nc * sizeof(float));
        if (!A || !B || !C) { fprintf(stderr, "out of memory\n"); return 1; }
        fill(A, na, 1);
        fill(B, nb, 2);
        for (nt = 1; nt <= 2; nt++) {
            double tz[64], to[64], t0, t1, zs_gf;
            int r, reps;
            if (zs_ctx_set_threads(ctx, nt) != ZS_OK) { fprintf(stderr, "threads: %s\n", zs_last_error()); return 1; }
#ifdef ZS_BENCH_OPENBLAS
            openblas_set_num_threads(nt);
#endif
            /* zsesbir block: warm-up, then as many repetitions as fit the
               budget (3..64); then the same for OpenBLAS. The blocks are
               separated by a pause: OpenBLAS's idle workers busy-wait for a
               while after a call and would steal a core from the next block. */
            t0 = now_s();
            if (run_zs(ctx, s, A, B, C) != ZS_OK) { fprintf(stderr, "zs__sgemm: %s\n", zs_last_error()); return 1; }
            t1 = now_s() - t0;
            reps = (int)(budget / (t1 > 1e-6 ? t1 : 1e-6));
            if (reps < 3) reps = 3;
            if (reps > 64) reps = 64;
            for (r = 0; r < reps; r++) {
                t0 = now_s();
                run_zs(ctx, s, A, B, C);
                tz[r] = now_s() - t0;
            }
#ifdef ZS_BENCH_OPENBLAS
            pause_s(0.3);
            run_ob(s, A, B, C);
            for (r = 0; r < reps; r++) {
                t0 = now_s();
                run_ob(s, A, B, C);
                to[r] = now_s() - t0;
            }
            pause_s(0.3);
#else
            (void)to;
#endif
            zs_gf = flop / median(tz, reps) * 1e-9;
#ifdef ZS_BENCH_OPENBLAS
            {
                double ob_gf = flop / median(to, reps) * 1e-9;
                printf("| %s%s | %lldx%lldx%lld | %d %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f |\n", s->what,
                       s->batch > 1 ? " (batched)" : "", (long long)s->M, (long long)s->N, (long long)s->K, s->ta,
                       s->tb, nt, zs_gf, flop / tz[0] * 1e-9, ob_gf, flop / to[0] * 1e-9, zs_gf / ob_gf);
            }
#else
            printf("| %s%s | %lldx%lldx%lld | %d %d | %d | %.1f | %.1f |\n", s->what, s->batch > 1 ? " (batched)" : "",
                   (long long)s->M, (long long)s->N, (long long)s->K, s->ta, s->tb, nt, zs_gf, flop / tz[0] * 1e-9);
#endif
            fflush(stdout);
        }
        free(A);
        free(B);
        free(C);
    }
    { /* naive reference loop on one small shape */
        int64_t M = 197, N = 197, K = 64;
        float *A = (float *)malloc((size_t)(M * K) * sizeof(float)), *B = (float *)malloc((size_t)(N * K) * sizeof(float));
        float *C = (float *)malloc((size_t)(M * N) * sizeof(float));
        double t[5], t0;
        int r;
        if (!A || !B || !C) return 1;
        fill(A, (size_t)(M * K), 3);
        fill(B, (size_t)(N * K), 4);
        for (r = 0; r < 5; r++) {
            t0 = now_s();
            zs__sgemm_ref(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
            t[r] = now_s() - t0;
        }
        printf("\nnaive zs__sgemm_ref 197x197x64 (ta=0 tb=1, 1 thread): %.2f GFLOP/s\n",
               2.0 * (double)(M * N * K) / median(t, 5) * 1e-9);
        free(A);
        free(B);
        free(C);
    }
    zs_ctx_free(ctx);
    return 0;
}
