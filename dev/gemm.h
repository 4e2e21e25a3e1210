/* ==================================================================== */
/* [impl:gemm] SGEMM kernels (scalar reference, AVX2, NEON)             */
/* ==================================================================== */
/* Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
   op(A) = A (lda >= K) or A^T (A stored [K,M], lda >= M); same for B.
   beta == 0 means C is written without being read (NaNs in C ignored).
   PLACEHOLDER naive implementation: the packed kernels replace it. */

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

/* single-threaded entry: scratch from ws (mark/release inside) */
ZS__PRIV int zs__sgemm_st(zs__arena *ws, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb,
                          float beta, float *C, int64_t ldc) {
    (void)ws;
    zs__sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return ZS_OK;
}

/* multi-threaded entry over the pool; bit-identical for any thread count */
ZS__PRIV int zs__sgemm(zs__pool *pool, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb,
                       float beta, float *C, int64_t ldc) {
    (void)pool;
    zs__sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return ZS_OK;
}

/* batched: for b in [0,batch): C_b = alpha op(A_b) op(B_b) + beta C_b with
   element strides sA, sB, sC between batch items (sB = 0 shares B). */
ZS__PRIV int zs__sgemm_batched(zs__pool *pool, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                               float beta, float *C, int64_t ldc, int64_t sC, int64_t batch) {
    int64_t b;
    for (b = 0; b < batch; b++) {
        int r = zs__sgemm(pool, ta, tb, M, N, K, alpha, A + b * sA, lda, B + b * sB, ldb, beta, C + b * sC, ldc);
        if (r) return r;
    }
    return ZS_OK;
}
