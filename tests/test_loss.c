/* test_loss.c - distances and losses ([impl:loss], dev/loss.h).

   Tolerances:
   - gradchecks: |analytic - numeric| <= 1e-3 + 1e-2 * max(|analytic|,|numeric|)
     (central differences in float with h = 1e-2: truncation O(h^2) plus
     float rounding ~1e-7 |f| / h);
   - forward values against double-precision references: relative 1e-5
     (float inputs, float outputs; the references see the same float inputs),
     cosines absolute 1e-5 (they are bounded by 1; float dot products);
   - SIMD kernels against their scalar references: relative 1e-5 (same
     operations, different summation order);
   - thread counts: bit-identical (memcmp). */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

static zs_ctx *new_ctx(int threads) {
    zs_ctx_params p = zs_ctx_default_params();
    p.n_threads = threads;
    p.arena_bytes = (size_t)16 << 20;
    return zs_ctx_create(&p);
}

static zs_tensor *mk(zs_ctx *ctx, int ndim, const long long *shape, unsigned long long seed, float scale) {
    return zt_input(ctx, ndim, shape, seed, scale);
}

static float *fp(zs_tensor *t) { return (float *)t->data; }

/* relative difference against a double reference: |a-b| / max(1e-3, |b|) */
static double rel_err(double a, double b) {
    double s = fabs(b) > 1e-3 ? fabs(b) : 1e-3;
    return fabs(a - b) / s;
}

/* ---------------------------------------------------------------- builders */

static zs_tensor *f_cos(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_cosine_matrix(c, in[0], in[1]); }
/* only b varies; a (fixed, with a zero row) comes through user */
static zs_tensor *f_cos_b(zs_ctx *c, zs_tensor **in, void *u) { return zs_cosine_matrix(c, (zs_tensor *)u, in[0]); }
static zs_tensor *f_cos_a(zs_ctx *c, zs_tensor **in, void *u) { return zs_cosine_matrix(c, in[0], (zs_tensor *)u); }
static zs_tensor *f_cos_tr(zs_ctx *c, zs_tensor **in, void *u) {
    (void)u; /* non-contiguous inputs: [D,M] transposed */
    return zs_cosine_matrix(c, zs_transpose(c, in[0], 0, 1), in[1]);
}
static zs_tensor *f_cos_self(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_cosine_matrix(c, in[0], in[0]); }
static zs_tensor *f_pd_self(zs_ctx *c, zs_tensor **in, void *u) { return zs_pairwise_dist(c, in[0], in[0], *(float *)u); }
static zs_tensor *f_pd(zs_ctx *c, zs_tensor **in, void *u) { return zs_pairwise_dist(c, in[0], in[1], *(float *)u); }
static zs_tensor *f_rd(zs_ctx *c, zs_tensor **in, void *u) { return zs_row_dist(c, in[0], in[1], *(float *)u); }
static zs_tensor *f_frob(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_frobenius(c, in[0]); }
static zs_tensor *f_mse(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_mse_loss(c, in[0], in[1]); }
static zs_tensor *f_trip(zs_ctx *c, zs_tensor **in, void *u) { return zs_triplet_loss(c, in[0], in[1], in[2], *(float *)u, 1e-6f); }
static zs_tensor *f_ce(zs_ctx *c, zs_tensor **in, void *u) { return zs_cross_entropy(c, in[0], (const int32_t *)u); }
static zs_tensor *f_sce(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_soft_cross_entropy(c, in[0], in[1]); }

/* ---------------------------------------------------------------- references */

static void ref_cosine(const float *a, const float *b, int64_t M, int64_t N, int64_t D, double *S) {
    int64_t i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double d = 0, na = 0, nb = 0;
            for (k = 0; k < D; k++) {
                d += (double)a[i * D + k] * b[j * D + k];
                na += (double)a[i * D + k] * a[i * D + k];
                nb += (double)b[j * D + k] * b[j * D + k];
            }
            S[i * N + j] = na * nb == 0 ? 0.0 : d / (sqrt(na) * sqrt(nb));
        }
}

static double ref_row_dist(const float *a, const float *b, int64_t D, double eps) {
    double s = 0;
    int64_t k;
    for (k = 0; k < D; k++) { double d = (double)a[k] - b[k] + eps; s += d * d; }
    return sqrt(s);
}

static double ref_lse(const float *x, int64_t C) {
    double mx = -INFINITY, s = 0;
    int64_t c;
    for (c = 0; c < C; c++) mx = x[c] > mx ? x[c] : mx;
    for (c = 0; c < C; c++) s += exp((double)x[c] - mx);
    return mx + log(s);
}

/* ---------------------------------------------------------------- cosine */

static void test_loss_cosine_forward(void) {
    zs_ctx *ctx = new_ctx(1);
    static const long long dims[][3] = {{1, 1, 3}, {5, 3, 7}, {13, 7, 1}, {3, 13, 33}, {49, 49, 512}};
    int t;
    double S[49 * 49], worst = 0;
    ZT_REQUIRE(ctx != NULL, "ctx");
    for (t = 0; t < (int)(sizeof dims / sizeof dims[0]); t++) {
        long long M = dims[t][0], N = dims[t][1], D = dims[t][2], i;
        zs_tensor *a = mk(ctx, 2, ZT_SHAPE(M, D), 10 + t, 1.0f), *b = mk(ctx, 2, ZT_SHAPE(N, D), 20 + t, 2.0f);
        zs_tensor *o = zs_cosine_matrix(ctx, a, b);
        ZT_REQUIRE(o && o->ndim == 2 && o->shape[0] == M && o->shape[1] == N, "cosine shape: %.300s", zs_last_error());
        ref_cosine(fp(a), fp(b), M, N, D, S);
        for (i = 0; i < M * N; i++) {
            double e = fabs(fp(o)[i] - S[i]);
            if (e > worst) worst = e;
        }
    }
    /* cosines are bounded by 1: absolute error (float dot products over D) */
    ZT_CHECK(worst < 1e-5, "cosine vs double reference: abs err %.3g", worst);
    /* known values: a with itself -> 1 on the diagonal, with -a -> -1, orthogonal -> 0 */
    {
        float av[6] = {1, 2, 3, -4, 0.5f, 2}, bv[6] = {-1, -2, -3, 2, 4, 0}; /* b0 = -a0, b1 . a1 = -8+2 = -6 */
        float ov[4] = {3, 0, 0, 0}, ow[4] = {0, 5, 0, 0};
        int64_t s23[2] = {2, 3}, s12[2] = {1, 4};
        zs_tensor *a = zs_from_data(ctx, av, 2, s23), *b = zs_from_data(ctx, bv, 2, s23);
        zs_tensor *aa = zs_cosine_matrix(ctx, a, a), *ab = zs_cosine_matrix(ctx, a, b);
        zs_tensor *oo = zs_cosine_matrix(ctx, zs_from_data(ctx, ov, 2, s12), zs_from_data(ctx, ow, 2, s12));
        ZT_REQUIRE(aa && ab && oo, "known: %.300s", zs_last_error());
        ZT_CHECK(fabsf(fp(aa)[0] - 1.0f) < 1e-6f && fabsf(fp(aa)[3] - 1.0f) < 1e-6f, "self cosine %g %g", fp(aa)[0], fp(aa)[3]);
        ZT_CHECK(fabsf(fp(ab)[0] + 1.0f) < 1e-6f, "cos(a,-a) = %g", fp(ab)[0]);
        ZT_CHECK(fabs(fp(ab)[3] - (-6.0 / (sqrt(20.25) * sqrt(20.0)))) < 1e-6, "cos(a1,b1) = %g", fp(ab)[3]);
        ZT_CHECK(fp(oo)[0] == 0.0f, "orthogonal cosine %g", fp(oo)[0]);
    }
    zs_ctx_free(ctx);
}

static void test_loss_cosine_batched(void) {
    zs_ctx *ctx = new_ctx(1);
    double S[5 * 4];
    int64_t bi, i;
    zs_tensor *a, *b, *o, *in[2];
    ZT_REQUIRE(ctx != NULL, "ctx");
    a = mk(ctx, 3, ZT_SHAPE(3, 5, 13), 1, 1.0f);
    b = mk(ctx, 3, ZT_SHAPE(3, 4, 13), 2, 1.0f);
    o = zs_cosine_matrix(ctx, a, b);
    ZT_REQUIRE(o && o->ndim == 3 && o->shape[0] == 3 && o->shape[1] == 5 && o->shape[2] == 4, "batched shape: %.300s", zs_last_error());
    for (bi = 0; bi < 3; bi++) {
        ref_cosine(fp(a) + bi * 5 * 13, fp(b) + bi * 4 * 13, 5, 4, 13, S);
        for (i = 0; i < 20; i++) ZT_CHECK(fabs(fp(o)[bi * 20 + i] - S[i]) < 1e-5, "batch %d entry %d: %g vs %g", (int)bi, (int)i, fp(o)[bi * 20 + i], S[i]);
    }
    in[0] = a; in[1] = b;
    ZT_GRADCHECK(ctx, f_cos, in, 2, NULL, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 4, ZT_SHAPE(2, 1, 3, 5), 3, 1.0f);
    in[1] = mk(ctx, 4, ZT_SHAPE(2, 1, 7, 5), 4, 1.0f);
    ZT_GRADCHECK(ctx, f_cos, in, 2, NULL, 1e-2, 1e-3, 0);
    zs_ctx_free(ctx);
}

static void test_loss_cosine_grad(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *in[2];
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = mk(ctx, 2, ZT_SHAPE(5, 7), 5, 1.0f); in[1] = mk(ctx, 2, ZT_SHAPE(3, 7), 6, 1.0f);
    ZT_GRADCHECK(ctx, f_cos, in, 2, NULL, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 2, ZT_SHAPE(1, 3), 7, 1.0f); in[1] = mk(ctx, 2, ZT_SHAPE(13, 3), 8, 1.0f);
    ZT_GRADCHECK(ctx, f_cos, in, 2, NULL, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 2, ZT_SHAPE(7, 13), 9, 1.0f); in[1] = mk(ctx, 2, ZT_SHAPE(1, 13), 10, 1.0f);
    ZT_GRADCHECK(ctx, f_cos, in, 2, NULL, 1e-2, 1e-3, 0);
    /* a non-contiguous (transposed) input */
    in[0] = mk(ctx, 2, ZT_SHAPE(5, 3), 11, 1.0f); in[1] = mk(ctx, 2, ZT_SHAPE(7, 5), 12, 1.0f);
    ZT_GRADCHECK(ctx, f_cos_tr, in, 2, NULL, 1e-2, 1e-3, 0);
    /* the same tensor on both sides: both gradient paths accumulate into one buffer */
    in[0] = mk(ctx, 2, ZT_SHAPE(7, 5), 13, 1.0f);
    ZT_GRADCHECK(ctx, f_cos_self, in, 1, NULL, 1e-2, 1e-3, 0);
    zs_ctx_free(ctx);
}

/* zero rows: entries 0, gradients finite and 0 for the zero rows, and the
   other input's gradient still exact */
static void test_loss_cosine_zero_row(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *a, *b, *o, *loss, *in[1];
    int64_t i, k;
    ZT_REQUIRE(ctx != NULL, "ctx");
    a = mk(ctx, 2, ZT_SHAPE(3, 5), 21, 1.0f);
    b = mk(ctx, 2, ZT_SHAPE(4, 5), 22, 1.0f);
    for (k = 0; k < 5; k++) { fp(a)[1 * 5 + k] = 0.0f; fp(b)[2 * 5 + k] = 0.0f; }
    o = zs_cosine_matrix(ctx, a, b);
    ZT_REQUIRE(o != NULL, "cosine: %.300s", zs_last_error());
    for (k = 0; k < 4; k++) ZT_CHECK(fp(o)[1 * 4 + k] == 0.0f, "zero row entry (1,%d) = %g", (int)k, fp(o)[4 + k]);
    for (i = 0; i < 3; i++) ZT_CHECK(fp(o)[i * 4 + 2] == 0.0f, "zero column entry (%d,2) = %g", (int)i, fp(o)[i * 4 + 2]);
    for (i = 0; i < 12; i++) ZT_CHECK(fp(o)[i] == fp(o)[i], "NaN at %d", (int)i);
    loss = zt_dot_random(ctx, o, 5);
    ZT_REQUIRE(zs_backward(ctx, loss) == ZS_OK, "backward: %.300s", zs_last_error());
    for (i = 0; i < 15; i++) ZT_CHECK(isfinite(a->grad[i]), "ga[%d] not finite", (int)i);
    for (i = 0; i < 20; i++) ZT_CHECK(isfinite(b->grad[i]), "gb[%d] not finite", (int)i);
    for (k = 0; k < 5; k++) ZT_CHECK(a->grad[5 + k] == 0.0f && b->grad[10 + k] == 0.0f, "zero-row gradients %g %g", a->grad[5 + k], b->grad[10 + k]);
    /* gradient w.r.t. b with a zero row in a (a fixed), and w.r.t. a with a zero row in b */
    {
        zs_tensor *bf = mk(ctx, 2, ZT_SHAPE(4, 5), 23, 1.0f), *af = mk(ctx, 2, ZT_SHAPE(3, 5), 24, 1.0f);
        a->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
        b->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
        in[0] = bf;
        ZT_GRADCHECK(ctx, f_cos_b, in, 1, a, 1e-2, 1e-3, 0);
        in[0] = af;
        ZT_GRADCHECK(ctx, f_cos_a, in, 1, b, 1e-2, 1e-3, 0);
    }
    zs_ctx_free(ctx);
}

/* ---------------------------------------------------------------- distances */

static void test_loss_pairwise_dist(void) {
    zs_ctx *ctx = new_ctx(1);
    static const long long dims[][3] = {{5, 3, 7}, {1, 13, 1}, {13, 1, 3}, {7, 5, 33}};
    float eps = 1e-16f, eps2 = 1e-3f;
    int t;
    zs_tensor *in[2];
    ZT_REQUIRE(ctx != NULL, "ctx");
    for (t = 0; t < 4; t++) {
        long long M = dims[t][0], N = dims[t][1], D = dims[t][2], i, j;
        zs_tensor *o;
        in[0] = mk(ctx, 2, ZT_SHAPE(M, D), 30 + t, 1.0f);
        in[1] = mk(ctx, 2, ZT_SHAPE(N, D), 40 + t, 1.0f);
        o = zs_pairwise_dist(ctx, in[0], in[1], eps2);
        ZT_REQUIRE(o && o->shape[0] == M && o->shape[1] == N, "pairwise: %.300s", zs_last_error());
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                double s = 0, r;
                long long k;
                for (k = 0; k < D; k++) { double d = (double)fp(in[0])[i * D + k] - fp(in[1])[j * D + k]; s += d * d; }
                r = sqrt(s + (double)eps2);
                ZT_CHECK(rel_err(fp(o)[i * N + j], r) < 1e-5, "pairwise (%lld,%lld): %g vs %g", i, j, fp(o)[i * N + j], r);
            }
        ZT_GRADCHECK(ctx, f_pd, in, 2, &eps, 1e-2, 1e-3, 0);
        ZT_GRADCHECK(ctx, f_pd, in, 2, &eps2, 1e-2, 1e-3, 0);
    }
    in[0] = mk(ctx, 2, ZT_SHAPE(7, 5), 44, 1.0f); /* self distances (diagonal sqrt(eps)) */
    ZT_GRADCHECK(ctx, f_pd_self, in, 1, &eps2, 1e-2, 1e-3, 0);
    /* identical rows: d = sqrt(eps), gradient 0 (also with eps = 0: no NaN) */
    {
        float v[6] = {0.5f, -1, 2, 0.5f, -1, 2}, z = 0.0f;
        int64_t s[2] = {2, 3};
        zs_tensor *a = zs_from_data(ctx, v, 2, s), *o, *l;
        zs_requires_grad(a);
        o = zs_pairwise_dist(ctx, a, a, z);
        ZT_REQUIRE(o != NULL, "%.300s", zs_last_error());
        ZT_CHECK(fp(o)[0] == 0.0f && fp(o)[1] == 0.0f, "identical rows distance %g %g", fp(o)[0], fp(o)[1]);
        l = zt_dot_random(ctx, o, 3);
        ZT_REQUIRE(zs_backward(ctx, l) == ZS_OK, "%.300s", zs_last_error());
        ZT_CHECK(a->grad[0] == 0.0f && a->grad[4] == 0.0f, "grad at d = 0: %g %g", a->grad[0], a->grad[4]);
        o = zs_pairwise_dist(ctx, a, a, 1e-16f);
        ZT_CHECK(o && fabsf(fp(o)[0] - 1e-8f) < 1e-14f, "sqrt(eps) = %g", o ? fp(o)[0] : -1.0f);
        ZT_CHECK(zs_pairwise_dist(ctx, a, a, -1.0f) == NULL, "negative eps accepted");
    }
    zs_ctx_free(ctx);
}

static void test_loss_row_dist(void) {
    zs_ctx *ctx = new_ctx(1);
    float eps = 1e-6f, eps2 = 0.25f;
    zs_tensor *in[2], *o;
    int64_t r;
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = mk(ctx, 2, ZT_SHAPE(7, 5), 50, 1.0f);
    in[1] = mk(ctx, 2, ZT_SHAPE(7, 5), 51, 1.0f);
    o = zs_row_dist(ctx, in[0], in[1], eps2);
    ZT_REQUIRE(o && o->ndim == 1 && o->shape[0] == 7, "row_dist: %.300s", zs_last_error());
    for (r = 0; r < 7; r++) {
        double d = ref_row_dist(fp(in[0]) + r * 5, fp(in[1]) + r * 5, 5, 0.25);
        ZT_CHECK(rel_err(fp(o)[r], d) < 1e-5, "row %d: %g vs %g", (int)r, fp(o)[r], d);
    }
    ZT_GRADCHECK(ctx, f_rd, in, 2, &eps, 1e-2, 1e-3, 0);
    ZT_GRADCHECK(ctx, f_rd, in, 2, &eps2, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 3, ZT_SHAPE(2, 3, 13), 52, 1.0f);
    in[1] = mk(ctx, 3, ZT_SHAPE(2, 3, 13), 53, 1.0f);
    o = zs_row_dist(ctx, in[0], in[1], eps);
    ZT_CHECK(o && o->ndim == 2 && o->shape[0] == 2 && o->shape[1] == 3, "row_dist 3-D shape");
    ZT_GRADCHECK(ctx, f_rd, in, 2, &eps, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 2, ZT_SHAPE(1, 1), 54, 1.0f);
    in[1] = mk(ctx, 2, ZT_SHAPE(1, 1), 55, 1.0f);
    ZT_GRADCHECK(ctx, f_rd, in, 2, &eps, 1e-2, 1e-3, 0);
    /* torch semantics: eps is added to the difference: |a - a + eps| = sqrt(D) eps */
    {
        float v[3] = {1, 2, 3};
        int64_t s[2] = {1, 3};
        zs_tensor *a = zs_from_data(ctx, v, 2, s);
        o = zs_row_dist(ctx, a, a, 1e-6f);
        ZT_CHECK(o && fabs(fp(o)[0] - sqrt(3.0) * 1e-6) < 1e-12, "|a-a+eps| = %g", o ? fp(o)[0] : -1.0f);
    }
    zs_ctx_free(ctx);
}

/* ---------------------------------------------------------------- norms, mse */

static void test_loss_frobenius(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *in[1], *o, *big;
    double s = 0;
    int64_t i, n;
    float b1, b2;
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = mk(ctx, 3, ZT_SHAPE(3, 5, 7), 60, 1.0f);
    ZT_GRADCHECK(ctx, f_frob, in, 1, NULL, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 1, ZT_SHAPE(1), 61, 1.0f);
    ZT_GRADCHECK(ctx, f_frob, in, 1, NULL, 1e-2, 1e-3, 0);
    /* large (several reduction chunks) vs double; 1 vs 2 threads identical */
    big = mk(ctx, 2, ZT_SHAPE(301, 170), 62, 1.0f);
    n = zs_numel(big);
    for (i = 0; i < n; i++) s += (double)fp(big)[i] * fp(big)[i];
    o = zs_frobenius(ctx, big);
    ZT_REQUIRE(o && o->ndim == 0, "frobenius: %.300s", zs_last_error());
    ZT_CHECK(rel_err(fp(o)[0], sqrt(s)) < 1e-6, "frobenius %g vs %g", fp(o)[0], sqrt(s));
    b1 = fp(o)[0];
    ZT_REQUIRE(zs_ctx_set_threads(ctx, 2) == ZS_OK, "threads");
    o = zs_frobenius(ctx, big);
    b2 = o ? fp(o)[0] : -1.0f;
    ZT_CHECK(memcmp(&b1, &b2, 4) == 0, "1 vs 2 threads: %.9g %.9g", b1, b2);
    {   /* gradient of a large input: a / |a| */
        zs_tensor *l;
        big->grad = NULL;
        l = zs_frobenius(ctx, big);
        ZT_REQUIRE(zs_backward(ctx, l) == ZS_OK, "%.300s", zs_last_error());
        for (i = 0; i < n; i += 997) ZT_CHECK(rel_err(big->grad[i], fp(big)[i] / sqrt(s)) < 1e-5, "grad[%d]", (int)i);
    }
    /* zero tensor: norm 0, gradient 0 (not NaN) */
    {
        zs_tensor *z = mk(ctx, 2, ZT_SHAPE(3, 3), 63, 1.0f), *l;
        zs_tensor_fill(z, 0.0f);
        l = zs_frobenius(ctx, z);
        ZT_REQUIRE(l && fp(l)[0] == 0.0f, "norm of zeros");
        ZT_REQUIRE(zs_backward(ctx, l) == ZS_OK, "%.300s", zs_last_error());
        for (i = 0; i < 9; i++) ZT_CHECK(z->grad[i] == 0.0f, "grad of zero norm %g", z->grad[i]);
    }
    /* ||(3,4)|| = 5 */
    {
        float v[2] = {3, 4};
        int64_t s2[1] = {2};
        o = zs_frobenius(ctx, zs_from_data(ctx, v, 1, s2));
        ZT_CHECK(o && fp(o)[0] == 5.0f, "|(3,4)| = %g", o ? fp(o)[0] : -1.0f);
    }
    zs_ctx_free(ctx);
}

static void test_loss_mse(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *in[2], *o;
    double s = 0;
    int64_t i;
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = mk(ctx, 2, ZT_SHAPE(13, 3), 70, 1.0f);
    in[1] = mk(ctx, 2, ZT_SHAPE(13, 3), 71, 1.0f);
    o = zs_mse_loss(ctx, in[0], in[1]);
    ZT_REQUIRE(o && o->ndim == 0, "mse: %.300s", zs_last_error());
    for (i = 0; i < 39; i++) { double d = (double)fp(in[0])[i] - fp(in[1])[i]; s += d * d; }
    ZT_CHECK(rel_err(fp(o)[0], s / 39) < 1e-6, "mse %g vs %g", fp(o)[0], s / 39);
    ZT_GRADCHECK(ctx, f_mse, in, 2, NULL, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 1, ZT_SHAPE(1), 72, 1.0f);
    in[1] = mk(ctx, 1, ZT_SHAPE(1), 73, 1.0f);
    ZT_GRADCHECK(ctx, f_mse, in, 2, NULL, 1e-2, 1e-3, 0);
    {   /* mse(a, a+1) = 1; mse(a, a) = 0 */
        float v[5] = {0.5f, -2, 3, 0.25f, 8}, w[5];
        int64_t s1[1] = {5};
        for (i = 0; i < 5; i++) w[i] = v[i] + 1.0f;
        o = zs_mse_loss(ctx, zs_from_data(ctx, v, 1, s1), zs_from_data(ctx, w, 1, s1));
        ZT_CHECK(o && fp(o)[0] == 1.0f, "mse(a,a+1) = %g", o ? fp(o)[0] : -1.0f);
        o = zs_mse_loss(ctx, zs_from_data(ctx, v, 1, s1), zs_from_data(ctx, v, 1, s1));
        ZT_CHECK(o && fp(o)[0] == 0.0f, "mse(a,a) = %g", o ? fp(o)[0] : -1.0f);
    }
    zs_ctx_free(ctx);
}

/* ---------------------------------------------------------------- triplet */

/* picks a margin so that every sample is at least 0.1 away from the hinge and
   both active and inactive samples exist; returns 0 if none is found */
static int pick_margin(const float *a, const float *p, const float *n, int64_t R, int64_t D, float *margin) {
    int k;
    for (k = 0; k < 400; k++) {
        double m = -2.0 + 0.01 * k;
        int64_t r, on = 0, ok = 1;
        for (r = 0; r < R; r++) {
            double l = ref_row_dist(a + r * D, p + r * D, D, 1e-6) - ref_row_dist(a + r * D, n + r * D, D, 1e-6) + m;
            if (fabs(l) < 0.1) ok = 0;
            on += l > 0;
        }
        if (ok && on > 0 && on < R) { *margin = (float)m; return 1; }
    }
    return 0;
}

static void test_loss_triplet(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *in[3], *o;
    float margin = 0;
    int64_t r, R = 7, D = 5;
    double s = 0;
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = mk(ctx, 2, ZT_SHAPE(7, 5), 80, 1.0f);
    in[1] = mk(ctx, 2, ZT_SHAPE(7, 5), 81, 1.0f);
    in[2] = mk(ctx, 2, ZT_SHAPE(7, 5), 82, 1.0f);
    ZT_REQUIRE(pick_margin(fp(in[0]), fp(in[1]), fp(in[2]), R, D, &margin), "no margin keeps samples off the hinge");
    o = zs_triplet_loss(ctx, in[0], in[1], in[2], margin, 1e-6f);
    ZT_REQUIRE(o && o->ndim == 0, "triplet: %.300s", zs_last_error());
    for (r = 0; r < R; r++) {
        double l = ref_row_dist(fp(in[0]) + r * D, fp(in[1]) + r * D, D, 1e-6) - ref_row_dist(fp(in[0]) + r * D, fp(in[2]) + r * D, D, 1e-6) + margin;
        s += l > 0 ? l : 0;
    }
    ZT_CHECK(rel_err(fp(o)[0], s / R) < 1e-5, "triplet %g vs %g (margin %g)", fp(o)[0], s / R, margin);
    ZT_GRADCHECK(ctx, f_trip, in, 3, &margin, 1e-2, 1e-3, 0);
    /* margin 1 (the SPEC value) with every sample active, and margin -10 with none */
    {
        float m1 = 10.0f, m0 = -10.0f;
        ZT_GRADCHECK(ctx, f_trip, in, 3, &m1, 1e-2, 1e-3, 0);
        o = zs_triplet_loss(ctx, in[0], in[1], in[2], m0, 1e-6f);
        ZT_CHECK(o && fp(o)[0] == 0.0f, "all inactive: %g", o ? fp(o)[0] : -1.0f);
    }
    /* odd shapes: one sample; 13 features */
    in[0] = mk(ctx, 2, ZT_SHAPE(1, 13), 83, 1.0f);
    in[1] = mk(ctx, 2, ZT_SHAPE(1, 13), 84, 0.3f);
    in[2] = mk(ctx, 2, ZT_SHAPE(1, 13), 85, 2.0f);
    {
        double l = ref_row_dist(fp(in[0]), fp(in[1]), 13, 1e-6) - ref_row_dist(fp(in[0]), fp(in[2]), 13, 1e-6);
        float m = (float)(0.5 - l); /* argument 0.5: active, far from the hinge */
        ZT_GRADCHECK(ctx, f_trip, in, 3, &m, 1e-2, 1e-3, 0);
        o = zs_triplet_loss(ctx, in[0], in[1], in[2], m, 1e-6f);
        ZT_CHECK(o && fabs(fp(o)[0] - 0.5) < 1e-5, "single sample loss %g", o ? fp(o)[0] : -1.0f);
    }
    zs_ctx_free(ctx);
}

/* ---------------------------------------------------------------- cross-entropy */

static void test_loss_cross_entropy(void) {
    zs_ctx *ctx = new_ctx(1);
    int32_t lab[7] = {0, 12, 5, 7, 3, 12, 1};
    zs_tensor *in[1], *o;
    double s = 0;
    int64_t r;
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = mk(ctx, 2, ZT_SHAPE(7, 13), 90, 3.0f);
    o = zs_cross_entropy(ctx, in[0], lab);
    ZT_REQUIRE(o && o->ndim == 0, "ce: %.300s", zs_last_error());
    for (r = 0; r < 7; r++) s += ref_lse(fp(in[0]) + r * 13, 13) - fp(in[0])[r * 13 + lab[r]];
    ZT_CHECK(rel_err(fp(o)[0], s / 7) < 1e-5, "ce %g vs %g", fp(o)[0], s / 7);
    ZT_GRADCHECK(ctx, f_ce, in, 1, lab, 1e-2, 1e-3, 0);
    in[0] = mk(ctx, 2, ZT_SHAPE(3, 1), 91, 3.0f); /* C = 1: loss 0, gradient 0 */
    {
        int32_t z[3] = {0, 0, 0};
        o = zs_cross_entropy(ctx, in[0], z);
        ZT_CHECK(o && fp(o)[0] == 0.0f, "C = 1 loss %g", o ? fp(o)[0] : -1.0f);
        ZT_GRADCHECK(ctx, f_ce, in, 1, z, 1e-2, 1e-3, 0);
    }
    /* uniform logits: log C; C = 1001 exercises the vector path and tails */
    {
        zs_tensor *u = zs_f32_2d(ctx, 2, 1001);
        int32_t l2[2] = {0, 1000};
        zs_tensor_fill(u, 0.3f);
        o = zs_cross_entropy(ctx, u, l2);
        ZT_CHECK(o && fabs(fp(o)[0] - log(1001.0)) < 1e-5, "uniform CE %g vs log C %g", o ? fp(o)[0] : -1.0f, log(1001.0));
        in[0] = mk(ctx, 2, ZT_SHAPE(2, 1001), 92, 5.0f);
        s = 0;
        o = zs_cross_entropy(ctx, in[0], l2);
        for (r = 0; r < 2; r++) s += ref_lse(fp(in[0]) + r * 1001, 1001) - fp(in[0])[r * 1001 + l2[r]];
        ZT_CHECK(o && rel_err(fp(o)[0], s / 2) < 1e-5, "C=1001 ce %g vs %g", o ? fp(o)[0] : -1.0f, s / 2);
        ZT_GRADCHECK(ctx, f_ce, in, 1, l2, 1e-2, 1e-3, 200);
    }
    /* stable with huge logits */
    {
        float v[4] = {1000.0f, 0.0f, -1000.0f, 500.0f};
        int64_t sh[2] = {2, 2};
        int32_t l2[2] = {1, 1};
        o = zs_cross_entropy(ctx, zs_from_data(ctx, v, 2, sh), l2);
        /* row 0: lse 1000, loss 1000; row 1: lse 500, loss 0 */
        ZT_CHECK(o && fabs(fp(o)[0] - 500.0) < 1e-3, "huge logits CE %g (expected 500)", o ? fp(o)[0] : -1.0f);
    }
    zs_ctx_free(ctx);
}

static void test_loss_cross_entropy_labels(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *x;
    int32_t bad1[3] = {0, 5, 1}, bad2[3] = {-1, 0, 0};
    ZT_REQUIRE(ctx != NULL, "ctx");
    x = mk(ctx, 2, ZT_SHAPE(3, 5), 93, 1.0f);
    ZT_CHECK(zs_cross_entropy(ctx, x, bad1) == NULL, "label == C accepted");
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_ARG, "status %d", zs_ctx_status(ctx));
    ZT_CHECK(strstr(zs_last_error(), "label 1 = 5") != NULL, "message: %.300s", zs_last_error());
    zs_ctx_reset(ctx);
    x = mk(ctx, 2, ZT_SHAPE(3, 5), 93, 1.0f);
    ZT_CHECK(zs_cross_entropy(ctx, x, bad2) == NULL, "label -1 accepted");
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_ARG, "status %d", zs_ctx_status(ctx));
    ZT_CHECK(zs_cross_entropy(ctx, x, NULL) == NULL, "NULL labels accepted");
    zs_ctx_free(ctx);
}

static void test_loss_soft_cross_entropy(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *in[2], *o;
    double s = 0;
    int64_t r, c, B = 7, C = 3;
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = mk(ctx, 2, ZT_SHAPE(7, 3), 100, 3.0f);
    in[1] = mk(ctx, 2, ZT_SHAPE(7, 3), 101, 1.0f);
    /* random probability rows */
    for (r = 0; r < B; r++) {
        double z = 0;
        for (c = 0; c < C; c++) { fp(in[1])[r * C + c] = fabsf(fp(in[1])[r * C + c]) + 0.05f; z += fp(in[1])[r * C + c]; }
        for (c = 0; c < C; c++) fp(in[1])[r * C + c] = (float)(fp(in[1])[r * C + c] / z);
    }
    o = zs_soft_cross_entropy(ctx, in[0], in[1]);
    ZT_REQUIRE(o && o->ndim == 0, "soft ce: %.300s", zs_last_error());
    for (r = 0; r < B; r++) {
        double l = ref_lse(fp(in[0]) + r * C, C);
        for (c = 0; c < C; c++) s -= (double)fp(in[1])[r * C + c] * (fp(in[0])[r * C + c] - l);
    }
    ZT_CHECK(rel_err(fp(o)[0], s / B) < 1e-5, "soft ce %g vs %g", fp(o)[0], s / B);
    ZT_GRADCHECK(ctx, f_sce, in, 2, NULL, 1e-2, 1e-3, 0);
    /* one-hot targets give the hard cross-entropy; uniform logits give log C */
    {
        int32_t lab[7] = {0, 2, 1, 1, 0, 2, 2};
        zs_tensor *oh = zs_zeros(ctx, 2, in[0]->shape), *h, *u;
        for (r = 0; r < B; r++) fp(oh)[r * C + lab[r]] = 1.0f;
        o = zs_soft_cross_entropy(ctx, in[0], oh);
        h = zs_cross_entropy(ctx, in[0], lab);
        ZT_CHECK(o && h && fabsf(fp(o)[0] - fp(h)[0]) < 1e-5f, "one-hot soft %g vs hard %g", o ? fp(o)[0] : -1.0f, h ? fp(h)[0] : -1.0f);
        u = zs_zeros(ctx, 2, in[0]->shape);
        o = zs_soft_cross_entropy(ctx, u, in[1]);
        ZT_CHECK(o && fabs(fp(o)[0] - log(3.0)) < 1e-6, "uniform soft CE %g", o ? fp(o)[0] : -1.0f);
    }
    /* odd sizes: one row, 13 classes */
    in[0] = mk(ctx, 2, ZT_SHAPE(1, 13), 102, 2.0f);
    in[1] = mk(ctx, 2, ZT_SHAPE(1, 13), 103, 1.0f);
    for (c = 0; c < 13; c++) fp(in[1])[c] = (fp(in[1])[c] + 1.0f) / 13.0f;
    ZT_GRADCHECK(ctx, f_sce, in, 2, NULL, 1e-2, 1e-3, 0);
    zs_ctx_free(ctx);
}

/* ---------------------------------------------------------------- errors */

static void test_loss_shape_errors(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *a, *b, *c;
    ZT_REQUIRE(ctx != NULL, "ctx");
    a = mk(ctx, 2, ZT_SHAPE(5, 7), 1, 1.0f);
    b = mk(ctx, 2, ZT_SHAPE(3, 6), 2, 1.0f);
    c = mk(ctx, 3, ZT_SHAPE(2, 3, 7), 3, 1.0f);
#define EXPECT_SHAPE(call, s1, s2)                                                               \
    do {                                                                                         \
        zs_ctx_reset(ctx);                                                                       \
        a = mk(ctx, 2, ZT_SHAPE(5, 7), 1, 1.0f);                                                 \
        b = mk(ctx, 2, ZT_SHAPE(3, 6), 2, 1.0f);                                                 \
        c = mk(ctx, 3, ZT_SHAPE(2, 3, 7), 3, 1.0f);                                              \
        ZT_CHECK((call) == NULL, "%s accepted", #call);                                          \
        ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_SHAPE, "%s: status %d", #call, zs_ctx_status(ctx)); \
        ZT_CHECK(strstr(zs_last_error(), s1) && strstr(zs_last_error(), s2), "%s: message '%.300s'", #call, zs_last_error()); \
    } while (0)
    EXPECT_SHAPE(zs_cosine_matrix(ctx, a, b), "[5,7]", "[3,6]");
    EXPECT_SHAPE(zs_cosine_matrix(ctx, a, c), "[5,7]", "[2,3,7]");
    EXPECT_SHAPE(zs_pairwise_dist(ctx, a, b, 0.0f), "[5,7]", "[3,6]");
    EXPECT_SHAPE(zs_row_dist(ctx, a, b, 1e-6f), "[5,7]", "[3,6]");
    EXPECT_SHAPE(zs_mse_loss(ctx, a, b), "[5,7]", "[3,6]");
    EXPECT_SHAPE(zs_triplet_loss(ctx, a, a, b, 1.0f, 1e-6f), "[5,7]", "[3,6]");
    EXPECT_SHAPE(zs_triplet_loss(ctx, a, b, a, 1.0f, 1e-6f), "[5,7]", "[3,6]");
    EXPECT_SHAPE(zs_soft_cross_entropy(ctx, a, b), "[5,7]", "[3,6]");
    EXPECT_SHAPE(zs_cross_entropy(ctx, c, NULL), "[2,3,7]", "cross_entropy");
    EXPECT_SHAPE(zs_pairwise_dist(ctx, c, c, 0.0f), "[2,3,7]", "pairwise");
    {   /* batched cosine with different batch dims */
        zs_tensor *d;
        zs_ctx_reset(ctx);
        c = mk(ctx, 3, ZT_SHAPE(2, 3, 7), 3, 1.0f);
        d = mk(ctx, 3, ZT_SHAPE(3, 3, 7), 4, 1.0f);
        ZT_CHECK(zs_cosine_matrix(ctx, c, d) == NULL && zs_ctx_status(ctx) == ZS_ERR_SHAPE, "batch mismatch accepted");
        ZT_CHECK(strstr(zs_last_error(), "[2,3,7]") && strstr(zs_last_error(), "[3,3,7]"), "message '%.300s'", zs_last_error());
    }
#undef EXPECT_SHAPE
    /* NULL inputs propagate quietly */
    zs_ctx_reset(ctx);
    a = mk(ctx, 2, ZT_SHAPE(5, 7), 1, 1.0f);
    ZT_CHECK(zs_cosine_matrix(ctx, a, NULL) == NULL && zs_frobenius(ctx, NULL) == NULL && zs_mse_loss(ctx, NULL, a) == NULL &&
             zs_triplet_loss(ctx, a, NULL, a, 1, 0) == NULL && zs_soft_cross_entropy(ctx, NULL, a) == NULL,
             "NULL input not propagated");
    ZT_CHECK(zs_ctx_status(ctx) == ZS_OK, "NULL input set status %d", zs_ctx_status(ctx));
    zs_ctx_free(ctx);
}

/* ---------------------------------------------------------------- kernels, threads */

static void test_loss_kernels_vs_ref(void) {
    float a[1031], b[1031], y1[1031], y2[1031];
    int64_t n;
    double worst = 0;
    zt_fill(a, 1031, 1, 1.0f);
    zt_fill(b, 1031, 2, 1.0f);
    for (n = 0; n <= 1031; n += (n < 40 ? 1 : 331)) {
        float s1 = zs__ls_sqdist(a, b, n), s2 = zs__ls_sqdist_ref(a, b, n);
        int64_t k;
        double e = rel_err(s1, s2);
        if (e > worst) worst = e;
        zt_fill(y1, n, 3, 1.0f);
        memcpy(y2, y1, (size_t)n * 4);
        zs__ls_axpy_diff(y1, 0.37f, a, b, n);
        zs__ls_axpy_diff_ref(y2, 0.37f, a, b, n);
        for (k = 0; k < n; k++) ZT_CHECK(fabsf(y1[k] - y2[k]) <= 1e-6f * (1.0f + fabsf(y2[k])), "axpy_diff n=%d k=%d", (int)n, (int)k);
    }
    ZT_CHECK(worst < 1e-5, "sqdist vs reference: rel err %.3g", worst);
}

/* forward + gradients of an op for a thread count, into malloc'd buffers */
static int run_threads(int threads, int which, float **out, float **ga, float **gb, int64_t *no, int64_t *na, int64_t *nb) {
    zs_ctx *ctx = new_ctx(threads);
    zs_tensor *a, *b, *o, *l;
    if (!ctx) return 0;
    if (which == 0) { a = mk(ctx, 2, ZT_SHAPE(49, 512), 7, 1.0f); b = mk(ctx, 2, ZT_SHAPE(49, 512), 8, 1.0f); o = zs_cosine_matrix(ctx, a, b); }
    else { a = mk(ctx, 2, ZT_SHAPE(64, 64), 9, 1.0f); b = mk(ctx, 2, ZT_SHAPE(128, 64), 10, 1.0f); o = zs_pairwise_dist(ctx, a, b, 1e-16f); }
    l = zt_dot_random(ctx, o, 11);
    if (!l || zs_backward(ctx, l) != ZS_OK) { zs_ctx_free(ctx); return 0; }
    *no = zs_numel(o); *na = zs_numel(a); *nb = zs_numel(b);
    *out = (float *)malloc((size_t)*no * 4);
    *ga = (float *)malloc((size_t)*na * 4);
    *gb = (float *)malloc((size_t)*nb * 4);
    memcpy(*out, o->data, (size_t)*no * 4);
    memcpy(*ga, a->grad, (size_t)*na * 4);
    memcpy(*gb, b->grad, (size_t)*nb * 4);
    zs_ctx_free(ctx);
    return 1;
}

static void test_loss_threads_identical(void) {
    int which;
    for (which = 0; which < 2; which++) {
        float *o1 = NULL, *a1 = NULL, *b1 = NULL, *o2 = NULL, *a2 = NULL, *b2 = NULL;
        int64_t no, na, nb;
        int ok1 = run_threads(1, which, &o1, &a1, &b1, &no, &na, &nb);
        int ok2 = run_threads(2, which, &o2, &a2, &b2, &no, &na, &nb);
        ZT_CHECK(ok1 && ok2, "run failed: %.300s", zs_last_error());
        if (ok1 && ok2) {
            ZT_CHECK(!memcmp(o1, o2, (size_t)no * 4), "%s forward differs between 1 and 2 threads", which ? "pairwise" : "cosine");
            ZT_CHECK(!memcmp(a1, a2, (size_t)na * 4), "%s grad a differs between 1 and 2 threads", which ? "pairwise" : "cosine");
            ZT_CHECK(!memcmp(b1, b2, (size_t)nb * 4), "%s grad b differs between 1 and 2 threads", which ? "pairwise" : "cosine");
        }
        free(o1); free(a1); free(b1); free(o2); free(a2); free(b2);
    }
    /* cross-entropy over many rows: forward and gradient */
    {
        float v[2], *g[2];
        int t;
        int32_t lab[300];
        for (t = 0; t < 300; t++) lab[t] = (t * 7) % 37;
        for (t = 0; t < 2; t++) {
            zs_ctx *ctx = new_ctx(t + 1);
            zs_tensor *x = mk(ctx, 2, ZT_SHAPE(300, 37), 12, 4.0f), *l = zs_cross_entropy(ctx, x, lab);
            g[t] = NULL;
            v[t] = -1;
            if (l && zs_backward(ctx, l) == ZS_OK) {
                v[t] = fp(l)[0];
                g[t] = (float *)malloc(300 * 37 * 4);
                memcpy(g[t], x->grad, 300 * 37 * 4);
            }
            zs_ctx_free(ctx);
        }
        ZT_CHECK(g[0] && g[1] && !memcmp(&v[0], &v[1], 4) && !memcmp(g[0], g[1], 300 * 37 * 4), "cross-entropy differs between 1 and 2 threads");
        free(g[0]); free(g[1]);
    }
}

/* the SPEC 1.5 loss on a small batch: 2 * triplet + 4 * mse, gradients flow
   into the shared anchor through both */
static void test_loss_spec_combination(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *a, *p, *n, *s, *t, *l1, *l2;
    float tv[4] = {0.99f, 0.99f, 0.01f, 0.01f};
    int64_t s4[1] = {4};
    ZT_REQUIRE(ctx != NULL, "ctx");
    a = mk(ctx, 2, ZT_SHAPE(3, 11), 110, 1.0f);
    p = mk(ctx, 2, ZT_SHAPE(3, 11), 111, 1.0f);
    n = mk(ctx, 2, ZT_SHAPE(3, 11), 112, 1.0f);
    s = mk(ctx, 1, ZT_SHAPE(4), 113, 0.5f);
    t = zs_from_data(ctx, tv, 1, s4);
    l1 = zs_triplet_loss(ctx, a, p, n, 1.0f, 1e-6f);
    l2 = zs_mse_loss(ctx, s, t);
    ZT_REQUIRE(l1 && l2, "%.300s", zs_last_error());
    ZT_REQUIRE(zs_backward(ctx, l1) == ZS_OK && zs_backward(ctx, l2) == ZS_OK, "%.300s", zs_last_error());
    ZT_CHECK(a->grad && p->grad && n->grad && s->grad && !t->grad, "gradients reached the inputs");
    ZT_CHECK(fabsf(s->grad[0] - 2.0f * (fp(s)[0] - 0.99f) / 4.0f) < 1e-6f, "mse grad %g", s->grad[0]);
    zs_ctx_free(ctx);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_loss_cosine_forward);
    ZT_RUN(test_loss_cosine_batched);
    ZT_RUN(test_loss_cosine_grad);
    ZT_RUN(test_loss_cosine_zero_row);
    ZT_RUN(test_loss_pairwise_dist);
    ZT_RUN(test_loss_row_dist);
    ZT_RUN(test_loss_frobenius);
    ZT_RUN(test_loss_mse);
    ZT_RUN(test_loss_triplet);
    ZT_RUN(test_loss_cross_entropy);
    ZT_RUN(test_loss_cross_entropy_labels);
    ZT_RUN(test_loss_soft_cross_entropy);
    ZT_RUN(test_loss_shape_errors);
    ZT_RUN(test_loss_kernels_vs_ref);
    ZT_RUN(test_loss_threads_identical);
    ZT_RUN(test_loss_spec_combination);
    return zt_finish();
}
