/* ==================================================================== */
/* [impl:loss] distances and losses                                     */
/* ==================================================================== */
/* Every op here computes its own forward and backward (no composition), so
   the losses do not depend on the elementwise fragment. Reductions run in a
   fixed order (double accumulators; large sums in fixed 16384-element chunks
   combined in chunk order), so every result is identical for any thread
   count: threads only ever split independent rows or columns.

   Definitions (PyTorch names in brackets):
     cosine_matrix  S[i,j] = <a_i,b_j> / (|a_i| |b_j|), and S[i,j] = 0 with a
                    zero gradient wherever |a_i| |b_j| == 0 (the NaN -> 0 of
                    torch.nan_to_num on the plain division).
     pairwise_dist  d[i,j] = sqrt(|a_i - b_j|^2 + eps), eps >= 0.
     row_dist       d_i = |a_i - b_i + eps|_2 [F.pairwise_distance]; gradient
                    0 where d_i == 0 (as torch's norm backward).
     frobenius      sqrt(sum a^2); gradient a / norm, 0 at norm 0.
     mse_loss       mean((a - t)^2) [F.mse_loss], shapes must be equal.
     triplet_loss   mean(max(0, d(a,p) - d(a,n) + margin)) [TripletMarginLoss,
                    p = 2, swap off], d = row_dist(eps). At exactly the hinge
                    (argument == 0) the subgradient is 0 here; torch's
                    clamp_min passes 1 there. Measure-zero either way.
     cross_entropy  mean over B of logsumexp(x_i) - x_i[y_i]; labels outside
                    [0,C) are an error (no ignore_index).
     soft_cross_entropy  -sum(t * log_softmax(x)) / B. */

#define ZS__LS_CHUNK 16384

/* sum of squares in double, fixed order */
ZS__PRIV double zs__ls_sumsq_d(const float *x, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * x[i];
        s1 += (double)x[i + 1] * x[i + 1];
        s2 += (double)x[i + 2] * x[i + 2];
        s3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++) s0 += (double)x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

/* sum of (a-b)^2 in double, fixed order */
ZS__PRIV double zs__ls_sqdiff_d(const float *a, const float *b, int64_t n) {
    double s0 = 0, s1 = 0;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        double d0 = (double)a[i] - b[i], d1 = (double)a[i + 1] - b[i + 1];
        s0 += d0 * d0;
        s1 += d1 * d1;
    }
    for (; i < n; i++) { double d = (double)a[i] - b[i]; s0 += d * d; }
    return s0 + s1;
}

/* -- deterministic chunked reduction: part[c] = fn(chunk c), summed in order -- */
typedef double (*zs__ls_chunk_fn)(const void *arg, int64_t lo, int64_t hi);
typedef struct zs__ls_red_job { zs__ls_chunk_fn fn; const void *arg; int64_t n; double *part; } zs__ls_red_job;

ZS__PRIV void zs__ls_red_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__ls_red_job *j = (zs__ls_red_job *)varg;
    int64_t c;
    (void)ws;
    for (c = lo; c < hi; c++) {
        int64_t e = (c + 1) * ZS__LS_CHUNK;
        j->part[c] = j->fn(j->arg, c * ZS__LS_CHUNK, e < j->n ? e : j->n);
    }
}

/* The chunking depends only on n, so the result is the same for any thread
   count. Uses (and gives back) scratch from the context arena. */
ZS__PRIV int zs__ls_reduce(zs_ctx *ctx, int64_t n, zs__ls_chunk_fn fn, const void *arg, double *out) {
    int64_t nc = (n + ZS__LS_CHUNK - 1) / ZS__LS_CHUNK, c;
    zs__amark m;
    zs__ls_red_job j;
    double s = 0;
    if (nc <= 1) { *out = n > 0 ? fn(arg, 0, n) : 0.0; return ZS_OK; }
    m = zs__arena_mark(&ctx->arena);
    j.part = (double *)zs__arena_alloc(&ctx->arena, (size_t)nc * sizeof(double));
    if (!j.part) return zs__fail(ZS_ERR_NOMEM, "arena exhausted (reduction scratch)");
    j.fn = fn; j.arg = arg; j.n = n;
    zs__parallel_rows(ctx, nc, 1, zs__ls_red_rows, &j);
    for (c = 0; c < nc; c++) s += j.part[c];
    zs__arena_release(&ctx->arena, m);
    *out = s;
    return ZS_OK;
}

/* -- SIMD kernels with their scalar references -- */

/* sum_k (a[k]-b[k])^2 in float */
ZS__PRIV float zs__ls_sqdist_ref(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    int64_t k;
    for (k = 0; k < n; k++) { float d = a[k] - b[k]; s += d * d; }
    return s;
}

ZS__PRIV float zs__ls_sqdist(const float *a, const float *b, int64_t n) {
    int64_t k = 0;
    float s = 0.0f;
#if ZS__VW > 1
    if (n >= 2 * ZS__VW) {
        zs__vf s0 = zs__vzero(), s1 = zs__vzero();
        for (; k + 2 * ZS__VW <= n; k += 2 * ZS__VW) {
            zs__vf d0 = zs__vsub(zs__vload(a + k), zs__vload(b + k));
            zs__vf d1 = zs__vsub(zs__vload(a + k + ZS__VW), zs__vload(b + k + ZS__VW));
            s0 = zs__vfma(d0, d0, s0);
            s1 = zs__vfma(d1, d1, s1);
        }
        for (; k + ZS__VW <= n; k += ZS__VW) {
            zs__vf d0 = zs__vsub(zs__vload(a + k), zs__vload(b + k));
            s0 = zs__vfma(d0, d0, s0);
        }
        s = zs__vhsum(zs__vadd(s0, s1));
    }
#endif
    for (; k < n; k++) { float d = a[k] - b[k]; s += d * d; }
    return s;
}

/* y[k] += w * (a[k] - b[k]) */
ZS__PRIV void zs__ls_axpy_diff_ref(float *y, float w, const float *a, const float *b, int64_t n) {
    int64_t k;
    for (k = 0; k < n; k++) y[k] += w * (a[k] - b[k]);
}

ZS__PRIV void zs__ls_axpy_diff(float *y, float w, const float *a, const float *b, int64_t n) {
    int64_t k = 0;
#if ZS__VW > 1
    zs__vf vw = zs__vset1(w);
    for (; k + ZS__VW <= n; k += ZS__VW)
        zs__vstore(y + k, zs__vfma(vw, zs__vsub(zs__vload(a + k), zs__vload(b + k)), zs__vload(y + k)));
#endif
    for (; k < n; k++) y[k] += w * (a[k] - b[k]);
}

/* ---------------------------------------------------------------------- */
/* cosine similarity matrix                                               */
/* ---------------------------------------------------------------------- */

typedef struct zs__cos_job {
    const float *a, *b;   /* [R,D] rows of a (or b) */
    float *norm;          /* [R] */
    int64_t D;
    /* division / backward */
    float *S;             /* [batch*M, N] */
    const float *g;       /* [batch*M, N] upstream gradient */
    float *W, *ra, *rb;   /* W = g / (|a||b|); ra, rb: the diagonal coefficients */
    const float *na, *nb;
    int64_t M, N;
} zs__cos_job;

ZS__PRIV void zs__cos_norms(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t r;
    (void)ws;
    for (r = lo; r < hi; r++) j->norm[r] = (float)sqrt(zs__ls_sumsq_d(j->a + r * j->D, j->D));
}

/* rows r of [batch*M, N]: S <- S / (|a_r| |b_j|), 0 where the product is 0 */
ZS__PRIV void zs__cos_div(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t r, c;
    (void)ws;
    for (r = lo; r < hi; r++) {
        const float *nb = j->nb + (r / j->M) * j->N;
        float na = j->na[r], *s = j->S + r * j->N;
        for (c = 0; c < j->N; c++) {
            float den = na * nb[c];
            s[c] = den != 0.0f ? s[c] / den : 0.0f;
        }
    }
}

ZS__PRIV void zs__cos_bwd_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t r, c;
    (void)ws;
    for (r = lo; r < hi; r++) {
        const float *nb = j->nb + (r / j->M) * j->N, *s = j->S + r * j->N, *g = j->g + r * j->N;
        float na = j->na[r], *w = j->W + r * j->N;
        double acc = 0;
        for (c = 0; c < j->N; c++) {
            float den = na * nb[c];
            w[c] = den != 0.0f ? g[c] / den : 0.0f;
            acc += (double)g[c] * s[c];
        }
        j->ra[r] = na != 0.0f ? (float)(acc / ((double)na * na)) : 0.0f;
    }
}

/* columns q of [batch, N]: rb[q] = sum_i g S over the batch's M rows, in i order */
ZS__PRIV void zs__cos_bwd_cols(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t q, i;
    (void)ws;
    for (q = lo; q < hi; q++) {
        int64_t bi = q / j->N, c = q % j->N;
        const float *s = j->S + bi * j->M * j->N + c, *g = j->g + bi * j->M * j->N + c;
        float nb = j->nb[q];
        double acc = 0;
        for (i = 0; i < j->M; i++) acc += (double)g[i * j->N] * s[i * j->N];
        j->rb[q] = nb != 0.0f ? (float)(acc / ((double)nb * nb)) : 0.0f;
    }
}

/* x[r] -= c[r] * row r of X (rows of length D) */
ZS__PRIV void zs__ls_sub_scaled_rows(float *gx, const float *c, const float *x, int64_t R, int64_t D) {
    int64_t r, k;
    for (r = 0; r < R; r++) {
        float cr = c[r];
        if (cr == 0.0f) continue;
        for (k = 0; k < D; k++) gx[r * D + k] -= cr * x[r * D + k];
    }
}

ZS__PRIV int zs__cosine_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int64_t M = out->shape[out->ndim - 2], N = out->shape[out->ndim - 1], D = a->shape[a->ndim - 1];
    int64_t batch = zs__batch_count(out);
    float *ga, *gb, *W, *coef;
    zs__cos_job j;
    zs__amark mk;
    int rc = ZS_OK;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    if (!ga && !gb) return ZS_OK;
    /* scratch after the gradient buffers, so releasing it keeps them */
    mk = zs__arena_mark(&ctx->arena);
    W = (float *)zs__arena_alloc(&ctx->arena, (size_t)(batch * M * N + batch * (M > N ? M : N) + 1) * sizeof(float));
    if (!W) return zs__fail(ZS_ERR_NOMEM, "zs_cosine_matrix backward: arena exhausted");
    coef = W + batch * M * N;
    memset(&j, 0, sizeof j);
    j.S = (float *)out->data;
    j.g = out->grad;
    j.na = (const float *)out->saved;
    j.nb = j.na + batch * M;
    j.M = M; j.N = N; j.D = D;
    j.W = W;
    j.ra = coef;
    /* W = g / (|a||b|) and the a-side coefficients */
    zs__parallel_rows(ctx, batch * M, 16, zs__cos_bwd_rows, &j);
    if (ga) {
        /* ga += W B - diag(sum_j g S / |a|^2) A */
        zs__ls_sub_scaled_rows(ga, coef, (const float *)a->data, batch * M, D);
        rc = zs__sgemm_batched(&ctx->pool, 0, 0, M, D, N, 1.0f, W, N, M * N, (const float *)b->data, D, N * D,
                               1.0f, ga, D, M * D, batch);
    }
    if (gb && rc == ZS_OK) {
        /* gb += W^T A - diag(sum_i g S / |b|^2) B */
        rc = zs__sgemm_batched(&ctx->pool, 1, 0, N, D, M, 1.0f, W, N, M * N, (const float *)a->data, D, M * D,
                               1.0f, gb, D, N * D, batch);
        if (rc == ZS_OK) {
            j.rb = coef; /* the a-side coefficients are no longer needed */
            zs__parallel_rows(ctx, batch * N, 16, zs__cos_bwd_cols, &j);
            zs__ls_sub_scaled_rows(gb, coef, (const float *)b->data, batch * N, D);
        }
    }
    zs__arena_release(&ctx->arena, mk);
    return rc;
}

ZS__FN zs_tensor *zs_cosine_matrix(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) {
    int64_t shape[ZS_MAX_DIMS], M, N, D, batch;
    float *norms;
    zs_tensor *t;
    zs__cos_job j;
    zs__amark mk;
    int i, nd;
    if (!zs__ok2(ctx, a, b, "zs_cosine_matrix")) return NULL;
    nd = a->ndim;
    if (nd < 2 || b->ndim != nd) return zs__shape_fail(ctx, "zs_cosine_matrix", a, b, "need [..,M,D] and [..,N,D] of the same rank >= 2");
    for (i = 0; i + 2 < nd; i++)
        if (a->shape[i] != b->shape[i]) return zs__shape_fail(ctx, "zs_cosine_matrix", a, b, "batch dims differ");
    if (a->shape[nd - 1] != b->shape[nd - 1]) return zs__shape_fail(ctx, "zs_cosine_matrix", a, b, "feature (last) dims differ");
    a = zs__contig(ctx, a);
    b = zs__contig(ctx, b);
    if (!a || !b) return NULL;
    M = a->shape[nd - 2]; N = b->shape[nd - 2]; D = a->shape[nd - 1];
    batch = zs__batch_count(a);
    for (i = 0; i + 2 < nd; i++) shape[i] = a->shape[i];
    shape[nd - 2] = M;
    shape[nd - 1] = N;
    t = zs__op_new(ctx, "cosine_matrix", zs__cosine_bwd, nd, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    /* norms [batch*M] then [batch*N]: kept for backward when recorded */
    mk = zs__arena_mark(&ctx->arena);
    norms = (float *)zs__arena_alloc(&ctx->arena, (size_t)(batch * (M + N) + 1) * sizeof(float));
    if (!norms) { zs__fail(ZS_ERR_NOMEM, "zs_cosine_matrix: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    memset(&j, 0, sizeof j);
    j.D = D;
    j.a = (const float *)a->data; j.norm = norms;
    zs__parallel_rows(ctx, batch * M, 16, zs__cos_norms, &j);
    j.a = (const float *)b->data; j.norm = norms + batch * M;
    zs__parallel_rows(ctx, batch * N, 16, zs__cos_norms, &j);
    /* dot products, then the division row by row */
    if (zs__sgemm_batched(&ctx->pool, 0, 1, M, N, D, 1.0f, (const float *)a->data, D, M * D,
                          (const float *)b->data, D, N * D, 0.0f, (float *)t->data, N, M * N, batch) != ZS_OK) {
        zs__fail(ZS_ERR_NOMEM, "zs_cosine_matrix: kernel failed");
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    j.S = (float *)t->data;
    j.na = norms; j.nb = norms + batch * M;
    j.M = M; j.N = N;
    zs__parallel_rows(ctx, batch * M, 16, zs__cos_div, &j);
    if (t->flags & ZS_FLAG_ON_TAPE) t->saved = norms;
    else zs__arena_release(&ctx->arena, mk);
    return t;
}

/* ---------------------------------------------------------------------- */
/* pairwise distance matrix                                               */
/* ---------------------------------------------------------------------- */

typedef struct zs__pd_job {
    const float *a, *b, *g, *d;
    float *out, *ga, *gb;
    int64_t M, N, D;
    float eps;
} zs__pd_job;

ZS__PRIV void zs__pd_fwd_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__pd_job *j = (zs__pd_job *)varg;
    int64_t i, c;
    (void)ws;
    for (i = lo; i < hi; i++)
        for (c = 0; c < j->N; c++)
            j->out[i * j->N + c] = sqrtf(zs__ls_sqdist(j->a + i * j->D, j->b + c * j->D, j->D) + j->eps);
}

/* ga_i += sum_j g_ij / d_ij (a_i - b_j), j in order */
ZS__PRIV void zs__pd_bwd_a(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__pd_job *j = (zs__pd_job *)varg;
    int64_t i, c;
    (void)ws;
    for (i = lo; i < hi; i++)
        for (c = 0; c < j->N; c++) {
            float d = j->d[i * j->N + c], g = j->g[i * j->N + c];
            if (d != 0.0f && g != 0.0f) zs__ls_axpy_diff(j->ga + i * j->D, g / d, j->a + i * j->D, j->b + c * j->D, j->D);
        }
}

/* gb_j += sum_i g_ij / d_ij (b_j - a_i), i in order */
ZS__PRIV void zs__pd_bwd_b(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__pd_job *j = (zs__pd_job *)varg;
    int64_t i, c;
    (void)ws;
    for (c = lo; c < hi; c++)
        for (i = 0; i < j->M; i++) {
            float d = j->d[i * j->N + c], g = j->g[i * j->N + c];
            if (d != 0.0f && g != 0.0f) zs__ls_axpy_diff(j->gb + c * j->D, g / d, j->b + c * j->D, j->a + i * j->D, j->D);
        }
}

ZS__PRIV int zs__pairwise_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    zs__pd_job j;
    ZS__GRAD_OR_FAIL(j.ga, ctx, a);
    ZS__GRAD_OR_FAIL(j.gb, ctx, b);
    j.a = (const float *)a->data; j.b = (const float *)b->data;
    j.g = out->grad; j.d = (const float *)out->data; j.out = NULL;
    j.M = out->shape[0]; j.N = out->shape[1]; j.D = a->shape[1];
    j.eps = out->fp[0];
    if (j.ga) zs__parallel_rows(ctx, j.M, 4, zs__pd_bwd_a, &j);
    if (j.gb) zs__parallel_rows(ctx, j.N, 4, zs__pd_bwd_b, &j);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_pairwise_dist(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, float eps) {
    int64_t shape[2];
    zs_tensor *t;
    zs__pd_job j;
    if (!zs__ok2(ctx, a, b, "zs_pairwise_dist")) return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1])
        return zs__shape_fail(ctx, "zs_pairwise_dist", a, b, "need [M,D] and [N,D]");
    if (!(eps >= 0.0f)) {
        zs__fail(ZS_ERR_ARG, "zs_pairwise_dist: eps %g must be >= 0", (double)eps);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    a = zs__contig(ctx, a);
    b = zs__contig(ctx, b);
    if (!a || !b) return NULL;
    shape[0] = a->shape[0];
    shape[1] = b->shape[0];
    t = zs__op_new(ctx, "pairwise_dist", zs__pairwise_bwd, 2, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->fp[0] = eps;
    j.a = (const float *)a->data; j.b = (const float *)b->data;
    j.out = (float *)t->data;
    j.M = shape[0]; j.N = shape[1]; j.D = a->shape[1];
    j.eps = eps;
    zs__parallel_rows(ctx, j.M, 4, zs__pd_fwd_rows, &j);
    return t;
}

/* ---------------------------------------------------------------------- */
/* row distance |a_i - b_i + eps|_2                                       */
/* ---------------------------------------------------------------------- */

/* sqrt(sum_k (a_k - b_k + eps)^2) with the difference and the sum in double
   (torch rounds a - b + eps in float; double keeps the result at or below
   that rounding and immune to reassociation, e.g. -ffast-math turning
   (a - b) + eps into a + (eps - b), which loses eps when a == b) */
ZS__PRIV float zs__row_dist1(const float *a, const float *b, int64_t D, float eps) {
    double s = 0;
    int64_t k;
    for (k = 0; k < D; k++) {
        double d = ((double)a[k] - (double)b[k]) + (double)eps;
        s += d * d;
    }
    return (float)sqrt(s);
}

/* ga += c (a - b + eps), gb -= c (a - b + eps) */
ZS__PRIV void zs__row_dist1_bwd(float *ga, float *gb, const float *a, const float *b, int64_t D, float eps, float c) {
    int64_t k;
    for (k = 0; k < D; k++) {
        float v = (float)((double)c * (((double)a[k] - (double)b[k]) + (double)eps));
        if (ga) ga[k] += v;
        if (gb) gb[k] -= v;
    }
}

ZS__PRIV int zs__row_dist_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int64_t D = a->ndim ? a->shape[a->ndim - 1] : 1, R = zs_numel(out), r;
    const float *d = (const float *)out->data, *A = (const float *)a->data, *B = (const float *)b->data;
    float *ga, *gb, eps = out->fp[0];
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    for (r = 0; r < R; r++) {
        if (d[r] == 0.0f) continue; /* torch: norm backward is 0 at 0 */
        zs__row_dist1_bwd(ga ? ga + r * D : NULL, gb ? gb + r * D : NULL, A + r * D, B + r * D, D, eps, out->grad[r] / d[r]);
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_row_dist(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, float eps) {
    zs_tensor *t;
    int64_t D, R, r;
    int i;
    if (!zs__ok2(ctx, a, b, "zs_row_dist")) return NULL;
    if (a->ndim < 1 || a->ndim != b->ndim) return zs__shape_fail(ctx, "zs_row_dist", a, b, "need equal shapes [..,D]");
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return zs__shape_fail(ctx, "zs_row_dist", a, b, "need equal shapes [..,D]");
    a = zs__contig(ctx, a);
    b = zs__contig(ctx, b);
    if (!a || !b) return NULL;
    t = zs__op_new(ctx, "row_dist", zs__row_dist_bwd, a->ndim - 1, a->shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->fp[0] = eps;
    D = a->shape[a->ndim - 1];
    R = zs_numel(t);
    for (r = 0; r < R; r++)
        ((float *)t->data)[r] = zs__row_dist1((const float *)a->data + r * D, (const float *)b->data + r * D, D, eps);
    return t;
}

/* ---------------------------------------------------------------------- */
/* Frobenius norm                                                         */
/* ---------------------------------------------------------------------- */

ZS__PRIV double zs__ls_sumsq_chunk(const void *arg, int64_t lo, int64_t hi) {
    return zs__ls_sumsq_d((const float *)arg + lo, hi - lo);
}

typedef struct zs__ls_scale_job { float *y; const float *x; float c; } zs__ls_scale_job;
/* rows are 16384-element chunks: y += c x */
ZS__PRIV void zs__ls_axpy_chunks(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__ls_scale_job *j = (zs__ls_scale_job *)varg;
    int64_t k, e = hi * ZS__LS_CHUNK;
    (void)ws;
    for (k = lo * ZS__LS_CHUNK; k < e; k++) j->y[k] += j->c * j->x[k];
}

ZS__PRIV int zs__frobenius_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    float *ga, norm = ((const float *)out->data)[0];
    int64_t n = zs_numel(a), full = n / ZS__LS_CHUNK, k;
    zs__ls_scale_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (!ga || norm == 0.0f) return ZS_OK;
    j.y = ga; j.x = (const float *)a->data; j.c = out->grad[0] / norm;
    zs__parallel_rows(ctx, full, 4, zs__ls_axpy_chunks, &j);
    for (k = full * ZS__LS_CHUNK; k < n; k++) ga[k] += j.c * j.x[k];
    return ZS_OK;
}

ZS__FN zs_tensor *zs_frobenius(zs_ctx *ctx, zs_tensor *a) {
    zs_tensor *t;
    double s;
    int rc;
    if (!zs__ok1(ctx, a, "zs_frobenius")) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    t = zs__op_new(ctx, "frobenius", zs__frobenius_bwd, 0, NULL, a, NULL, NULL, NULL);
    if (!t) return NULL;
    rc = zs__ls_reduce(ctx, zs_numel(a), zs__ls_sumsq_chunk, a->data, &s);
    if (rc != ZS_OK) return zs__op_fail(ctx, rc);
    ((float *)t->data)[0] = (float)sqrt(s);
    return t;
}

/* ---------------------------------------------------------------------- */
/* mean squared error                                                     */
/* ---------------------------------------------------------------------- */

typedef struct zs__ls_pair_arg { const float *a, *b; } zs__ls_pair_arg;
ZS__PRIV double zs__ls_sqdiff_chunk(const void *arg, int64_t lo, int64_t hi) {
    const zs__ls_pair_arg *p = (const zs__ls_pair_arg *)arg;
    return zs__ls_sqdiff_d(p->a + lo, p->b + lo, hi - lo);
}

ZS__PRIV int zs__mse_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *tg = out->src[1];
    const float *A = (const float *)a->data, *T = (const float *)tg->data;
    int64_t n = zs_numel(a), k;
    float *ga, *gt, c;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gt, ctx, tg);
    if (n == 0) return ZS_OK;
    c = (float)(2.0 * (double)out->grad[0] / (double)n);
    for (k = 0; k < n; k++) {
        float v = c * (A[k] - T[k]);
        if (ga) ga[k] += v;
        if (gt) gt[k] -= v;
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_mse_loss(zs_ctx *ctx, zs_tensor *a, zs_tensor *target) {
    zs_tensor *t;
    zs__ls_pair_arg p;
    double s;
    int64_t n;
    int i, rc;
    if (!zs__ok2(ctx, a, target, "zs_mse_loss")) return NULL;
    if (a->ndim != target->ndim) return zs__shape_fail(ctx, "zs_mse_loss", a, target, "input and target shapes differ");
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != target->shape[i]) return zs__shape_fail(ctx, "zs_mse_loss", a, target, "input and target shapes differ");
    a = zs__contig(ctx, a);
    target = zs__contig(ctx, target);
    if (!a || !target) return NULL;
    n = zs_numel(a);
    if (n == 0) return zs__shape_fail(ctx, "zs_mse_loss", a, NULL, "mean of an empty tensor");
    t = zs__op_new(ctx, "mse_loss", zs__mse_bwd, 0, NULL, a, target, NULL, NULL);
    if (!t) return NULL;
    p.a = (const float *)a->data; p.b = (const float *)target->data;
    rc = zs__ls_reduce(ctx, n, zs__ls_sqdiff_chunk, &p, &s);
    if (rc != ZS_OK) return zs__op_fail(ctx, rc);
    ((float *)t->data)[0] = (float)(s / (double)n);
    return t;
}

/* ---------------------------------------------------------------------- */
/* triplet margin loss                                                    */
/* ---------------------------------------------------------------------- */

ZS__PRIV int zs__triplet_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *p = out->src[1], *n = out->src[2];
    const float *sv = (const float *)out->saved; /* [R] dp, [R] dn, [R] active */
    int64_t R = out->ip[0], D = out->ip[1], r;
    const float *A = (const float *)a->data, *P = (const float *)p->data, *N = (const float *)n->data;
    float *ga, *gp, *gn, eps = out->fp[0], c;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gp, ctx, p);
    ZS__GRAD_OR_FAIL(gn, ctx, n);
    c = out->grad[0] / (float)R;
    for (r = 0; r < R; r++) {
        float dp = sv[r], dn = sv[R + r];
        if (sv[2 * R + r] == 0.0f) continue;
        /* d/da dp = (a-p+eps)/dp, d/dp dp = -(...); d/da (-dn) = -(a-n+eps)/dn */
        if (dp != 0.0f) zs__row_dist1_bwd(ga ? ga + r * D : NULL, gp ? gp + r * D : NULL, A + r * D, P + r * D, D, eps, c / dp);
        if (dn != 0.0f) zs__row_dist1_bwd(ga ? ga + r * D : NULL, gn ? gn + r * D : NULL, A + r * D, N + r * D, D, eps, -c / dn);
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_triplet_loss(zs_ctx *ctx, zs_tensor *anchor, zs_tensor *pos, zs_tensor *neg, float margin, float eps) {
    zs_tensor *t;
    float *sv;
    zs__amark mk;
    int64_t R, D, r;
    double s = 0;
    int i;
    if (!zs__ok3(ctx, anchor, pos, neg, "zs_triplet_loss")) return NULL;
    if (anchor->ndim < 1 || anchor->ndim != pos->ndim) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, pos, "anchor and positive shapes differ");
    if (anchor->ndim != neg->ndim) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, neg, "anchor and negative shapes differ");
    for (i = 0; i < anchor->ndim; i++) {
        if (anchor->shape[i] != pos->shape[i]) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, pos, "anchor and positive shapes differ");
        if (anchor->shape[i] != neg->shape[i]) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, neg, "anchor and negative shapes differ");
    }
    D = anchor->shape[anchor->ndim - 1];
    R = D ? zs_numel(anchor) / D : 0;
    if (R == 0) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, NULL, "mean over an empty batch");
    anchor = zs__contig(ctx, anchor);
    pos = zs__contig(ctx, pos);
    neg = zs__contig(ctx, neg);
    if (!anchor || !pos || !neg) return NULL;
    t = zs__op_new(ctx, "triplet_loss", zs__triplet_bwd, 0, NULL, anchor, pos, neg, NULL);
    if (!t) return NULL;
    mk = zs__arena_mark(&ctx->arena);
    sv = (float *)zs__arena_alloc(&ctx->arena, (size_t)(3 * R) * sizeof(float));
    if (!sv) { zs__fail(ZS_ERR_NOMEM, "zs_triplet_loss: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    for (r = 0; r < R; r++) {
        float dp = zs__row_dist1((const float *)anchor->data + r * D, (const float *)pos->data + r * D, D, eps);
        float dn = zs__row_dist1((const float *)anchor->data + r * D, (const float *)neg->data + r * D, D, eps);
        float l = (dp - dn) + margin; /* torch: margin + d_p - d_n */
        sv[r] = dp;
        sv[R + r] = dn;
        sv[2 * R + r] = l > 0.0f ? 1.0f : 0.0f;
        if (l > 0.0f) s += l;
    }
    ((float *)t->data)[0] = (float)(s / (double)R);
    t->fp[0] = eps;
    t->ip[0] = R;
    t->ip[1] = D;
    if (t->flags & ZS_FLAG_ON_TAPE) t->saved = sv;
    else zs__arena_release(&ctx->arena, mk);
    return t;
}

/* ---------------------------------------------------------------------- */
/* cross-entropy (hard labels) and soft cross-entropy                     */
/* ---------------------------------------------------------------------- */

typedef struct zs__ce_job {
    const float *x;       /* [B,C] logits */
    const float *t;       /* [B,C] soft targets or NULL */
    const int32_t *y;     /* [B] labels or NULL */
    float *P;             /* [B,C] softmax out */
    float *lse;           /* [B] */
    double *loss;         /* [B] per-row loss */
    int64_t C;
} zs__ce_job;

ZS__PRIV void zs__ce_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__ce_job *j = (zs__ce_job *)varg;
    int64_t r, c, C = j->C;
    (void)ws;
    for (r = lo; r < hi; r++) {
        const float *x = j->x + r * C;
        float *p = j->P + r * C, l;
        memcpy(p, x, (size_t)C * sizeof(float));
        l = zs__softmax_row(p, C);
        j->lse[r] = l;
        if (j->y) {
            j->loss[r] = (double)l - (double)x[j->y[r]];
        } else {
            const float *t = j->t + r * C;
            double s = 0;
            for (c = 0; c < C; c++) s -= (double)t[c] * ((double)x[c] - (double)l);
            j->loss[r] = s;
        }
    }
}

/* forward shared by both losses. One block: [B] doubles (per-row loss,
   scratch), then the saved part: [B*C] probabilities, [B] lse, [B] labels. */
ZS__PRIV zs_tensor *zs__ce_forward(zs_ctx *ctx, const char *who, const char *name, zs_backward_fn bwd,
                                   zs_tensor *x, zs_tensor *tg, const int32_t *labels) {
    int64_t B = x->shape[0], C = x->shape[1], r;
    zs_tensor *t;
    zs__ce_job j;
    zs__amark mk;
    float *blk;
    double s = 0;
    t = zs__op_new(ctx, name, bwd, 0, NULL, x, tg, NULL, NULL);
    if (!t) return NULL;
    mk = zs__arena_mark(&ctx->arena);
    j.loss = (double *)zs__arena_alloc(&ctx->arena, (size_t)B * sizeof(double) + (size_t)(B * C + 2 * B) * sizeof(float));
    if (!j.loss) {
        zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who);
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    blk = (float *)(j.loss + B);
    j.x = (const float *)x->data;
    j.t = tg ? (const float *)tg->data : NULL;
    j.P = blk;
    j.lse = blk + B * C;
    j.y = NULL;
    if (labels) {
        int32_t *yc = (int32_t *)(blk + B * C + B);
        memcpy(yc, labels, (size_t)B * sizeof(int32_t));
        j.y = yc;
    }
    j.C = C;
    zs__parallel_rows(ctx, B, C >= 4096 ? 1 : 4096 / C, zs__ce_rows, &j);
    for (r = 0; r < B; r++) s += j.loss[r];
    ((float *)t->data)[0] = (float)(s / (double)B);
    t->ip[0] = B;
    t->ip[1] = C;
    if (t->flags & ZS_FLAG_ON_TAPE) t->saved = blk;
    else zs__arena_release(&ctx->arena, mk);
    return t;
}

ZS__PRIV int zs__ce_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0];
    int64_t B = out->ip[0], C = out->ip[1], r, c;
    const float *P = (const float *)out->saved;
    const int32_t *y = (const int32_t *)(P + B * C + B);
    float *gx, k;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    if (!gx) return ZS_OK;
    k = out->grad[0] / (float)B;
    for (r = 0; r < B; r++) {
        for (c = 0; c < C; c++) gx[r * C + c] += k * P[r * C + c];
        gx[r * C + y[r]] -= k;
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_cross_entropy(zs_ctx *ctx, zs_tensor *logits, const int32_t *labels) {
    int64_t B, C, r;
    if (!zs__ok1(ctx, logits, "zs_cross_entropy")) return NULL;
    if (logits->ndim != 2 || logits->shape[0] < 1 || logits->shape[1] < 1)
        return zs__shape_fail(ctx, "zs_cross_entropy", logits, NULL, "logits must be [B,C] with B, C >= 1");
    B = logits->shape[0];
    C = logits->shape[1];
    if (!labels) {
        zs__fail(ZS_ERR_ARG, "zs_cross_entropy: NULL labels");
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    for (r = 0; r < B; r++)
        if (labels[r] < 0 || labels[r] >= C) {
            zs__fail(ZS_ERR_ARG, "zs_cross_entropy: label %lld = %d outside [0,%lld)", (long long)r, (int)labels[r], (long long)C);
            return zs__op_fail(ctx, ZS_ERR_ARG);
        }
    logits = zs__contig(ctx, logits);
    if (!logits) return NULL;
    return zs__ce_forward(ctx, "zs_cross_entropy", "cross_entropy", zs__ce_bwd, logits, NULL, labels);
}

ZS__PRIV int zs__soft_ce_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *tg = out->src[1];
    int64_t B = out->ip[0], C = out->ip[1], r, c;
    const float *P = (const float *)out->saved, *lse = P + B * C;
    const float *X = (const float *)x->data, *T = (const float *)tg->data;
    float *gx, *gt, k;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gt, ctx, tg);
    k = out->grad[0] / (float)B;
    for (r = 0; r < B; r++) {
        const float *t = T + r * C, *p = P + r * C;
        if (gx) {
            /* d/dx_c = k (p_c sum(t) - t_c) */
            double ts = 0;
            float kt;
            for (c = 0; c < C; c++) ts += t[c];
            kt = k * (float)ts;
            for (c = 0; c < C; c++) gx[r * C + c] += kt * p[c] - k * t[c];
        }
        if (gt) /* d/dt_c = -k log_softmax_c */
            for (c = 0; c < C; c++) gt[r * C + c] -= k * (X[r * C + c] - lse[r]);
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_soft_cross_entropy(zs_ctx *ctx, zs_tensor *logits, zs_tensor *target) {
    if (!zs__ok2(ctx, logits, target, "zs_soft_cross_entropy")) return NULL;
    if (logits->ndim != 2 || logits->shape[0] < 1 || logits->shape[1] < 1)
        return zs__shape_fail(ctx, "zs_soft_cross_entropy", logits, NULL, "logits must be [B,C] with B, C >= 1");
    if (target->ndim != 2 || target->shape[0] != logits->shape[0] || target->shape[1] != logits->shape[1])
        return zs__shape_fail(ctx, "zs_soft_cross_entropy", logits, target, "target must have the logits' shape [B,C]");
    logits = zs__contig(ctx, logits);
    target = zs__contig(ctx, target);
    if (!logits || !target) return NULL;
    return zs__ce_forward(ctx, "zs_soft_cross_entropy", "soft_cross_entropy", zs__soft_ce_bwd, logits, target, NULL);
}
