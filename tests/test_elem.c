/* test_elem.c - elementwise ops, reductions, activations, normalisations
   (dev/elem.h): finite-difference gradients of every op, forward values
   against double-precision references, SIMD kernels against their scalar
   references, erf/GELU accuracy against libm, and 1 vs 2 threads.

   Gradient checks use zt_gradcheck (central differences, h = 1e-2 * max(1,|x|))
   with rtol 1e-2, atol 1e-3 unless stated: float forward passes give about
   1e-6 noise in the loss, i.e. 5e-5 in a difference quotient, and h^2 terms
   stay below 1e-3 relative for these smooth functions. */
#define ZSESBIR_IMPLEMENTATION
#include "zsesbir.h"
#include "zt.h"

#if defined(__FAST_MATH__)
#define ELEM_FAST_MATH 1
#else
#define ELEM_FAST_MATH 0
#endif

static zs_ctx *new_ctx(int threads) {
    zs_ctx_params p = zs_ctx_default_params();
    p.n_threads = threads;
    p.arena_bytes = (size_t)32 << 20;
    return zs_ctx_create(&p);
}

/* a tensor of random values that does not require grad */
static zs_tensor *rnd(zs_ctx *c, int ndim, const long long *shape, unsigned long long seed, float scale) {
    zs_tensor *t = zt_input(c, ndim, shape, seed, scale);
    if (t) t->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    return t;
}

/* max |a - b| / max(|b|, floor) */
static double max_err(const float *a, const float *b, long long n, double floor_) {
    double m = 0;
    long long i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), s = fabs((double)b[i]);
        double r = d / (s > floor_ ? s : floor_);
        if (r > m || r != r) m = r;
    }
    return m;
}

static float *fbuf(long long n) { return (float *)calloc((size_t)(n ? n : 1), sizeof(float)); }

/* ------------------------------------------------------------------ */
/* binary ops                                                           */
/* ------------------------------------------------------------------ */

static zs_tensor *apply_bin(zs_ctx *c, int op, zs_tensor *a, zs_tensor *b) {
    return op == 0 ? zs_add(c, a, b) : op == 1 ? zs_sub(c, a, b) : zs_mul(c, a, b);
}
static zs_tensor *f_bin(zs_ctx *c, zs_tensor **in, void *u) { return apply_bin(c, *(int *)u, in[0], in[1]); }
static zs_tensor *f_bin_t(zs_ctx *c, zs_tensor **in, void *u) {
    return apply_bin(c, *(int *)u, zs_transpose(c, in[0], 0, 1), in[1]);
}
static zs_tensor *f_bin_self(zs_ctx *c, zs_tensor **in, void *u) { return apply_bin(c, *(int *)u, in[0], in[0]); }

/* double reference of a broadcast binary op, read through zs_get */
static int bin_ref_check(const zs_tensor *a, const zs_tensor *b, const zs_tensor *y, int op) {
    int64_t sa[4], sb[4], sy[4], ta[4], tb[4], ty[4], i0, i1, i2, i3, k = 0;
    zs__align4(a, sa, ta);
    zs__align4(b, sb, tb);
    zs__align4(y, sy, ty);
    for (i0 = 0; i0 < sy[0]; i0++)
        for (i1 = 0; i1 < sy[1]; i1++)
            for (i2 = 0; i2 < sy[2]; i2++)
                for (i3 = 0; i3 < sy[3]; i3++) {
                    int64_t ia = (((sa[0] > 1 ? i0 : 0) * sa[1] + (sa[1] > 1 ? i1 : 0)) * sa[2] + (sa[2] > 1 ? i2 : 0)) * sa[3] + (sa[3] > 1 ? i3 : 0);
                    int64_t ib = (((sb[0] > 1 ? i0 : 0) * sb[1] + (sb[1] > 1 ? i1 : 0)) * sb[2] + (sb[2] > 1 ? i2 : 0)) * sb[3] + (sb[3] > 1 ? i3 : 0);
                    double va = zs_get(a, ia), vb = zs_get(b, ib);
                    double r = op == 0 ? va + vb : op == 1 ? va - vb : va * vb;
                    double v = zs_get(y, k++);
                    if (fabs(v - r) > 1e-7 * (fabs(r) > 1 ? fabs(r) : 1)) return 0;
                }
    return 1;
}

typedef struct { int na, nb; long long sa[4], sb[4]; int ny; long long sy[4]; } bcase;

static const bcase bcases[] = {
    {2, 1, {3, 5}, {5}, 2, {3, 5}},                 /* trailing bias */
    {3, 2, {2, 3, 5}, {3, 1}, 3, {2, 3, 5}},        /* column broadcast */
    {3, 2, {4, 1, 5}, {3, 5}, 3, {4, 3, 5}},        /* both sides broadcast */
    {1, 2, {1}, {3, 5}, 2, {3, 5}},                 /* scalar-like [1] on the left */
    {2, 2, {3, 1}, {1, 5}, 2, {3, 5}},              /* outer product shape */
    {4, 4, {2, 1, 5, 1}, {1, 3, 1, 4}, 4, {2, 3, 5, 4}},
    {2, 2, {7, 13}, {7, 13}, 2, {7, 13}},           /* same shape */
    {3, 3, {1, 1, 1}, {2, 1, 3}, 3, {2, 1, 3}},
    {0, 2, {1}, {3, 2}, 2, {3, 2}},                 /* ndim-0 scalar */
    {3, 1, {2, 3, 9}, {1}, 3, {2, 3, 9}},           /* [1] on the right */
};

static void test_elem_binary_forward(void) {
    zs_ctx *c = new_ctx(1);
    int op, k;
    ZT_REQUIRE(c != NULL, "ctx");
    for (op = 0; op < 3; op++)
        for (k = 0; k < (int)(sizeof bcases / sizeof bcases[0]); k++) {
            const bcase *bc = &bcases[k];
            zs_tensor *a = rnd(c, bc->na, bc->sa, 10 + (unsigned)k, 2.0f), *b = rnd(c, bc->nb, bc->sb, 20 + (unsigned)k, 2.0f);
            zs_tensor *y = apply_bin(c, op, a, b), *y2;
            int d;
            ZT_REQUIRE(y != NULL, "op %d case %d failed: %.300s", op, k, zs_last_error());
            ZT_CHECK(y->ndim == bc->ny, "op %d case %d ndim %d", op, k, y->ndim);
            for (d = 0; d < bc->ny; d++) ZT_CHECK(y->shape[d] == bc->sy[d], "op %d case %d dim %d = %lld", op, k, d, (long long)y->shape[d]);
            ZT_CHECK(bin_ref_check(a, b, y, op), "op %d case %d values differ from the double reference", op, k);
            /* swapped operands broadcast the same way */
            y2 = apply_bin(c, op, b, a);
            ZT_REQUIRE(y2 != NULL, "swapped op %d case %d", op, k);
            ZT_CHECK(bin_ref_check(b, a, y2, op), "swapped op %d case %d", op, k);
        }
    /* strided operands: a transposed view plus a row vector */
    {
        zs_tensor *a = rnd(c, 2, ZT_SHAPE(5, 3), 3, 1.0f), *b = rnd(c, 1, ZT_SHAPE(5), 4, 1.0f);
        zs_tensor *at = zs_transpose(c, a, 0, 1), *y = zs_mul(c, at, b);
        ZT_REQUIRE(y && y->shape[0] == 3 && y->shape[1] == 5, "transposed mul");
        ZT_CHECK(bin_ref_check(at, b, y, 2), "transposed mul values");
    }
    /* a large bias add takes the vector row path: exact against the reference */
    {
        zs_tensor *a = rnd(c, 3, ZT_SHAPE(4, 197, 77), 5, 1.0f), *b = rnd(c, 1, ZT_SHAPE(77), 6, 1.0f);
        zs_tensor *y = zs_add(c, a, b);
        ZT_REQUIRE(y != NULL, "bias add");
        ZT_CHECK(bin_ref_check(a, b, y, 0), "bias add values");
    }
    zs_ctx_free(c);
}

static void test_elem_binary_grad(void) {
    zs_ctx *c = new_ctx(1);
    int op, k;
    ZT_REQUIRE(c != NULL, "ctx");
    for (op = 0; op < 3; op++) {
        for (k = 0; k < (int)(sizeof bcases / sizeof bcases[0]); k++) {
            const bcase *bc = &bcases[k];
            zs_tensor *in[2];
            in[0] = zt_input(c, bc->na, bc->sa, 30 + (unsigned)k, 1.0f);
            in[1] = zt_input(c, bc->nb, bc->sb, 40 + (unsigned)k, 1.0f);
            ZT_GRADCHECK(c, f_bin, in, 2, &op, 1e-2, 1e-3, 0);
            if (zt_cur_failed) { printf("  (op %d, case %d)\n", op, k); return; }
        }
        { /* transposed (strided) left operand, broadcast right */
            zs_tensor *in[2];
            in[0] = zt_input(c, 2, ZT_SHAPE(5, 3), 50, 1.0f);
            in[1] = zt_input(c, 2, ZT_SHAPE(3, 1), 51, 1.0f);
            ZT_GRADCHECK(c, f_bin_t, in, 2, &op, 1e-2, 1e-3, 0);
        }
        { /* the same tensor on both sides: contributions add up */
            zs_tensor *in[1];
            in[0] = zt_input(c, 2, ZT_SHAPE(3, 7), 52, 1.0f);
            ZT_GRADCHECK(c, f_bin_self, in, 1, &op, 1e-2, 1e-3, 0);
        }
    }
    /* model-sized bias gradient (parallel column split), sampled elements */
    {
        zs_tensor *in[2];
        op = 0;
        in[0] = zt_input(c, 2, ZT_SHAPE(300, 77), 53, 1.0f);
        in[1] = zt_input(c, 1, ZT_SHAPE(77), 54, 1.0f);
        ZT_GRADCHECK(c, f_bin, in, 2, &op, 1e-2, 1e-3, 40);
    }
    zs_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* scale, add_scalar, reductions                                        */
/* ------------------------------------------------------------------ */

static zs_tensor *f_scale(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_scale(c, in[0], -1.7f); }
static zs_tensor *f_adds(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_add_scalar(c, in[0], 0.3f); }
static zs_tensor *f_sum(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_sum(c, in[0]); }
static zs_tensor *f_mean(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_mean(c, in[0]); }
static zs_tensor *f_sum_dim(zs_ctx *c, zs_tensor **in, void *u) { return zs_sum_dim(c, in[0], *(int *)u); }
static zs_tensor *f_mean_dim(zs_ctx *c, zs_tensor **in, void *u) { return zs_mean_dim(c, in[0], *(int *)u); }
static zs_tensor *f_sum_t(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_mean(c, zs_transpose(c, in[0], 0, 1)); }

static void test_elem_scale_grad(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[1];
    ZT_REQUIRE(c != NULL, "ctx");
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 3, 5), 1, 1.0f);
    ZT_GRADCHECK(c, f_scale, in, 1, NULL, 1e-2, 1e-3, 0);
    ZT_GRADCHECK(c, f_adds, in, 1, NULL, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 1, ZT_SHAPE(1), 2, 1.0f);
    ZT_GRADCHECK(c, f_scale, in, 1, NULL, 1e-2, 1e-3, 0);
    ZT_GRADCHECK(c, f_adds, in, 1, NULL, 1e-2, 1e-3, 0);
    { /* forward values */
        zs_tensor *x = rnd(c, 2, ZT_SHAPE(13, 9), 3, 3.0f), *y = zs_scale(c, x, 0.25f), *z = zs_add_scalar(c, x, -2.5f);
        int64_t i;
        int ok = 1;
        ZT_REQUIRE(y && z, "scale/add_scalar failed");
        for (i = 0; i < 117; i++) {
            float v = ((float *)x->data)[i];
            if (((float *)y->data)[i] != 0.25f * v || ((float *)z->data)[i] != v - 2.5f) ok = 0;
        }
        ZT_CHECK(ok, "scale/add_scalar values");
    }
    zs_ctx_free(c);
}

static void test_elem_reduce_forward(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *x, *s, *m;
    double ref = 0;
    int64_t i, n;
    int dim;
    ZT_REQUIRE(c != NULL, "ctx");
    /* sum/mean of 1e6 + 3 values vs a double sum (mean 0.5 offset stresses float accumulation) */
    x = rnd(c, 1, ZT_SHAPE(1000003), 7, 1.0f);
    n = zs_numel(x);
    for (i = 0; i < n; i++) { ((float *)x->data)[i] += 0.5f; ref += ((float *)x->data)[i]; }
    s = zs_sum(c, x);
    m = zs_mean(c, x);
    ZT_REQUIRE(s && m, "sum/mean failed");
    ZT_CHECK(s->ndim == 0 && m->ndim == 0, "sum/mean must be ndim 0");
    ZT_CHECK(fabs(((float *)s->data)[0] - ref) <= 1e-7 * fabs(ref) + 1e-6, "sum %.9g vs %.9g", ((float *)s->data)[0], ref);
    ZT_CHECK(fabs(((float *)m->data)[0] - ref / n) <= 1e-6 * fabs(ref / n), "mean %.9g vs %.9g", ((float *)m->data)[0], ref / n);
    /* sum_dim / mean_dim over every dim of a [3,5,7,2] tensor, and negative dims */
    x = rnd(c, 4, ZT_SHAPE(3, 5, 7, 2), 8, 1.0f);
    for (dim = -1; dim < 4; dim++) {
        zs_tensor *sd = zs_sum_dim(c, x, dim), *md = zs_mean_dim(c, x, dim);
        int d = dim < 0 ? dim + 4 : dim, ok = 1;
        int64_t o, l, k, outer = 1, inner = 1, L = x->shape[d];
        ZT_REQUIRE(sd && md, "sum_dim %d failed: %.300s", dim, zs_last_error());
        ZT_CHECK(sd->ndim == 3 && md->ndim == 3, "sum_dim keeps 3 dims");
        for (i = 0; i < d; i++) outer *= x->shape[i];
        for (i = d + 1; i < 4; i++) inner *= x->shape[i];
        for (o = 0; o < outer; o++)
            for (k = 0; k < inner; k++) {
                double r = 0;
                for (l = 0; l < L; l++) r += ((float *)x->data)[(o * L + l) * inner + k];
                if (fabs(((float *)sd->data)[o * inner + k] - r) > 1e-6 || fabs(((float *)md->data)[o * inner + k] - r / L) > 1e-6) ok = 0;
            }
        ZT_CHECK(ok, "sum_dim/mean_dim(%d) values", dim);
    }
    { /* 1-D -> scalar */
        zs_tensor *v = rnd(c, 1, ZT_SHAPE(9), 9, 1.0f), *sv = zs_sum_dim(c, v, 0);
        ZT_REQUIRE(sv && sv->ndim == 0, "sum_dim of 1-D gives a scalar");
    }
    zs_ctx_free(c);
}

static void test_elem_reduce_grad(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[1];
    int dim;
    ZT_REQUIRE(c != NULL, "ctx");
    in[0] = zt_input(c, 3, ZT_SHAPE(3, 5, 7), 11, 1.0f);
    ZT_GRADCHECK(c, f_sum, in, 1, NULL, 1e-2, 1e-3, 0);
    ZT_GRADCHECK(c, f_mean, in, 1, NULL, 1e-2, 1e-3, 0);
    for (dim = -3; dim < 3; dim++) {
        ZT_GRADCHECK(c, f_sum_dim, in, 1, &dim, 1e-2, 1e-3, 0);
        ZT_GRADCHECK(c, f_mean_dim, in, 1, &dim, 1e-2, 1e-3, 0);
    }
    in[0] = zt_input(c, 2, ZT_SHAPE(4, 3), 12, 1.0f);
    ZT_GRADCHECK(c, f_sum_t, in, 1, NULL, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 1, ZT_SHAPE(1), 13, 1.0f);
    dim = 0;
    ZT_GRADCHECK(c, f_sum_dim, in, 1, &dim, 1e-2, 1e-3, 0);
    ZT_GRADCHECK(c, f_mean, in, 1, NULL, 1e-2, 1e-3, 0);
    zs_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* activations                                                          */
/* ------------------------------------------------------------------ */

static zs_tensor *f_relu(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_relu(c, in[0]); }
static zs_tensor *f_gelu(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_gelu(c, in[0]); }
static zs_tensor *f_sigmoid(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_sigmoid(c, in[0]); }
static zs_tensor *f_softplus(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_softplus(c, in[0]); }
static zs_tensor *f_gelu_t(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_gelu(c, zs_transpose(c, in[0], 0, 1)); }

static void test_elem_activation_grad(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[1];
    int64_t i;
    ZT_REQUIRE(c != NULL, "ctx");
    /* relu: keep inputs 0.05 away from the kink (h = 1e-2) */
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 3, 7), 21, 2.0f);
    for (i = 0; i < 42; i++) {
        float *v = (float *)in[0]->data + i;
        if (fabsf(*v) < 0.05f) *v = *v < 0 ? -0.1f : 0.1f;
    }
    ZT_GRADCHECK(c, f_relu, in, 1, NULL, 1e-2, 1e-3, 0);
    /* gelu over [-6, 6] with odd sizes, including a 1-element tensor and a strided view */
    in[0] = zt_input(c, 2, ZT_SHAPE(5, 13), 22, 6.0f);
    ZT_GRADCHECK(c, f_gelu, in, 1, NULL, 1e-2, 1e-3, 0);
    ZT_GRADCHECK(c, f_gelu_t, in, 1, NULL, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 1, ZT_SHAPE(1), 23, 1.0f);
    ZT_GRADCHECK(c, f_gelu, in, 1, NULL, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 2, ZT_SHAPE(3, 11), 24, 8.0f);
    ZT_GRADCHECK(c, f_sigmoid, in, 1, NULL, 1e-2, 1e-3, 0);
    /* softplus on [-30, 30]: both sides of the threshold */
    in[0] = zt_input(c, 2, ZT_SHAPE(3, 17), 25, 30.0f);
    ZT_GRADCHECK(c, f_softplus, in, 1, NULL, 1e-2, 1e-3, 0);
    zs_ctx_free(c);
}

static void test_elem_activation_forward(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *x, *y;
    float *r;
    int64_t i, n = 1001;
    ZT_REQUIRE(c != NULL, "ctx");
    x = rnd(c, 1, ZT_SHAPE(1001), 31, 12.0f);
    r = fbuf(n);
    y = zs_relu(c, x);
    ZT_REQUIRE(y != NULL, "relu");
    zs__relu_ref(r, (const float *)x->data, n);
    ZT_CHECK(!memcmp(r, y->data, (size_t)n * 4), "relu values");
    { /* relu'(0) = 0 like torch; in a vector lane and in the scalar tail */
        float xv[9] = {-1, 0, 2, 0, -0.0f, 3, 0, 1e-30f, 0}, gy[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, gx[9];
        float want[9] = {0, 0, 1, 0, 0, 1, 0, 1, 0};
        memset(gx, 0, sizeof gx);
        zs__relu_bwd_n(gx, xv, gy, 9);
        ZT_CHECK(!memcmp(gx, want, sizeof gx), "relu derivative at 0 must be 0");
    }
    y = zs_gelu(c, x);
    ZT_REQUIRE(y != NULL, "gelu");
    zs__gelu_ref(r, (const float *)x->data, n);
    ZT_CHECK(max_err((const float *)y->data, r, n, 1e-30) < 1e-6, "gelu rel err %.3g", max_err((const float *)y->data, r, n, 1e-30));
    y = zs_sigmoid(c, x);
    ZT_REQUIRE(y != NULL, "sigmoid");
    zs__sigmoid_ref(r, (const float *)x->data, n);
    /* sigmoid through zs__expf (2e-7) and a divide: 1e-6 relative */
    ZT_CHECK(max_err((const float *)y->data, r, n, 1e-30) < 1e-6, "sigmoid rel err %.3g", max_err((const float *)y->data, r, n, 1e-30));
    y = zs_softplus(c, x);
    ZT_REQUIRE(y != NULL, "softplus");
    for (i = 0; i < n; i++) {
        double v = ((float *)x->data)[i];
        r[i] = (float)(v > 20 ? v : log1p(exp(v)));
    }
    ZT_CHECK(max_err((const float *)y->data, r, n, 1e-30) < 1e-6, "softplus rel err %.3g", max_err((const float *)y->data, r, n, 1e-30));
    free(r);
    zs_ctx_free(c);
}

static void test_elem_softplus_threshold(void) {
    zs_ctx *c = new_ctx(1);
    float xv[6] = {19.5f, 20.0f, 20.001f, 25.0f, 100.0f, -100.0f};
    zs_tensor *x, *y, *s;
    int i;
    ZT_REQUIRE(c != NULL, "ctx");
    x = zs_from_data(c, xv, 1, zs_f32_1d(c, 6)->shape);
    zs_requires_grad(x);
    y = zs_softplus(c, x);
    ZT_REQUIRE(y != NULL, "softplus");
    /* x > 20 returns x itself (torch threshold 20); 20 is not above it */
    ZT_CHECK(((float *)y->data)[2] == 20.001f && ((float *)y->data)[3] == 25.0f && ((float *)y->data)[4] == 100.0f, "above threshold: identity");
    ZT_CHECK(fabs(((float *)y->data)[1] - log1p(exp(20.0))) < 1e-5, "x = 20 uses log1p(exp)");
    ZT_CHECK(fabs(((float *)y->data)[0] - log1p(exp(19.5))) < 1e-5, "x = 19.5");
    /* 3.7e-44 is subnormal: 0 where denormals are flushed (-ffast-math) */
    ZT_CHECK(((float *)y->data)[5] >= 0.0f && ((float *)y->data)[5] < 1e-30f, "softplus(-100) ~ 3.7e-44, got %g", ((float *)y->data)[5]);
    s = zs_sum(c, y);
    ZT_REQUIRE(zs_backward(c, s) == ZS_OK, "backward");
    for (i = 2; i < 5; i++) ZT_CHECK(x->grad[i] == 1.0f, "gradient above threshold is 1 (element %d: %g)", i, x->grad[i]);
    ZT_CHECK(fabs(x->grad[0] - 1.0 / (1.0 + exp(-19.5))) < 1e-6, "gradient below threshold is sigmoid");
    ZT_CHECK(x->grad[5] >= 0.0f && x->grad[5] < 1e-30f, "gradient at -100 ~ 0");
    zs_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* dropout                                                              */
/* ------------------------------------------------------------------ */

static zs_tensor *f_dropout(zs_ctx *c, zs_tensor **in, void *u) { return zs_dropout(c, in[0], *(float *)u); }

/* the vector dropout kernel against the scalar definition: odd
   lengths and offsets, p at the edges, keys with high bits set, all modes */
static void test_elem_dropout_mask_simd(void) {
    static const int64_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 197, 1001};
    static const float ps[] = {0.0f, 0.1f, 0.5f, 0.9999f, 1.0f, 5.9604645e-8f};
    static const uint64_t keys[] = {0, 1, 0x9e3779b97f4a7c15ull, 0xffffffffffffffffull, 0x8000000000000001ull};
    static float x[1001], y[1001], g[1001], ye[1001], ge[1001];
    static unsigned char m[1001], me[1001];
    size_t a, b, c;
    int64_t i;
    int bad = 0, cases = 0;
    zt_fill(x, 1001, 5, 1.0f);
    for (a = 0; a < sizeof lens / sizeof lens[0]; a++)
        for (b = 0; b < sizeof ps / sizeof ps[0]; b++)
            for (c = 0; c < sizeof keys / sizeof keys[0]; c++) {
                int64_t first = (int64_t)(c * 1234567 + a * 3), n = lens[a];
                float p = ps[b], sc = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
                memset(m, 7, sizeof m);
                memset(me, 7, sizeof me);
                for (i = 0; i < 1001; i++) y[i] = ye[i] = -5.0f, g[i] = ge[i] = 0.25f * (float)(i % 9);
                for (i = 0; i < n; i++) { /* the definition */
                    me[i] = zs__hash_uniform(keys[c], (uint64_t)(first + i)) >= p;
                    ye[i] = me[i] ? x[i] * sc : 0.0f;
                    if (me[i]) ge[i] = ge[i] + x[i] * sc;
                }
                zs__dropout_apply(y, x, m, n, keys[c], first, p, sc, 0);
                zs__dropout_apply(g, x, NULL, n, keys[c], first, p, sc, 1);
                /* masks and forward values bit for bit; the accumulation within one
                   rounding (C++ and -ffast-math builds may fuse the scalar multiply-add) */
                bad += memcmp(m, me, sizeof m) != 0 || memcmp(y, ye, sizeof y) != 0 || zt_max_rel(g, ge, 1001) > 2e-7;
                cases++;
            }
    ZT_CHECK(bad == 0, "%d of %d dropout cases differ from the scalar definition", bad, cases);
}

static void test_elem_dropout(void) {
    zs_ctx *c = new_ctx(2);
    zs_tensor *x, *y, *y2, *y3;
    int64_t i, n = 200003, kept = 0;
    float p = 0.3f, scale = 1.0f / (1.0f - 0.3f);
    int ok = 1;
    ZT_REQUIRE(c != NULL, "ctx");
    x = rnd(c, 2, ZT_SHAPE(1, 200003), 41, 1.0f);
    for (i = 0; i < n; i++) ((float *)x->data)[i] += 2.0f; /* no zeros in x */
    /* eval: identity (the input itself) */
    ZT_CHECK(zs_dropout(c, x, 0.5f) == x, "eval mode must be identity");
    zs_set_training(c, 1);
    ZT_CHECK(zs_dropout(c, x, 0.0f) == x, "p = 0 must be identity");
    zs_ctx_seed(c, 1234);
    y = zs_dropout(c, x, p);
    ZT_REQUIRE(y != NULL && y != x, "train dropout");
    for (i = 0; i < n; i++) {
        float v = ((float *)y->data)[i];
        if (v != 0.0f) {
            kept++;
            if (v != ((float *)x->data)[i] * scale) ok = 0;
        }
    }
    /* binomial std sqrt(p(1-p)/n) = 1e-3: 0.01 is 10 sigma */
    ZT_CHECK(fabs((double)kept / n - (1.0 - p)) < 0.01, "kept fraction %.4f, expected %.2f", (double)kept / n, 1.0 - p);
    ZT_CHECK(ok, "kept values must be x / (1 - p)");
    /* same seed -> same mask; the next call -> a different one */
    zs_ctx_seed(c, 1234);
    y2 = zs_dropout(c, x, p);
    y3 = zs_dropout(c, x, p);
    ZT_REQUIRE(y2 && y3, "dropout");
    ZT_CHECK(!memcmp(y->data, y2->data, (size_t)n * 4), "same seed must give the same mask");
    ZT_CHECK(memcmp(y->data, y3->data, (size_t)n * 4) != 0, "a new call must draw a new mask");
    /* same mask with 1 thread */
    zs_ctx_set_threads(c, 1);
    zs_ctx_seed(c, 1234);
    y2 = zs_dropout(c, x, p);
    ZT_REQUIRE(y2 != NULL, "dropout 1 thread");
    ZT_CHECK(!memcmp(y->data, y2->data, (size_t)n * 4), "mask must not depend on the thread count");
    /* p = 1: zeros, and no gradient */
    y = zs_dropout(c, x, 1.0f);
    ZT_REQUIRE(y != NULL, "p = 1");
    for (i = 0, ok = 1; i < n; i++) if (((float *)y->data)[i] != 0.0f) ok = 0;
    ZT_CHECK(ok, "p = 1 must give zeros");
    /* invalid p */
    ZT_CHECK(zs_dropout(c, x, 1.5f) == NULL && strstr(zs_last_error(), "zs_dropout") != NULL, "p > 1 must fail");
    ZT_CHECK(zs_dropout(c, x, -0.1f) == NULL, "p < 0 must fail");
    zs_ctx_free(c);
}

static void test_elem_dropout_grad(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[1], *x, *y, *s;
    float p = 0.4f;
    int64_t i;
    int ok = 1;
    ZT_REQUIRE(c != NULL, "ctx");
    zs_set_training(c, 1);
    in[0] = zt_input(c, 3, ZT_SHAPE(3, 5, 7), 42, 1.0f);
    ZT_GRADCHECK(c, f_dropout, in, 1, &p, 1e-2, 1e-3, 0);
    p = 1.0f;
    ZT_GRADCHECK(c, f_dropout, in, 1, &p, 1e-2, 1e-3, 0);
    /* backward regenerates the forward mask: grad = y / x for sum(y) */
    x = zt_input(c, 1, ZT_SHAPE(1000), 43, 1.0f);
    for (i = 0; i < 1000; i++) ((float *)x->data)[i] += 2.0f;
    y = zs_dropout(c, x, 0.5f);
    s = zs_sum(c, y);
    ZT_REQUIRE(s && zs_backward(c, s) == ZS_OK, "backward");
    for (i = 0; i < 1000; i++) {
        float v = ((float *)y->data)[i];
        if ((v != 0.0f) != (x->grad[i] != 0.0f) || (v != 0.0f && x->grad[i] != 2.0f)) ok = 0;
    }
    ZT_CHECK(ok, "backward mask must equal the forward mask");
    zs_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* softmax / log-softmax                                                */
/* ------------------------------------------------------------------ */

static zs_tensor *f_softmax(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_softmax(c, in[0]); }
static zs_tensor *f_log_softmax(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_log_softmax(c, in[0]); }
static zs_tensor *f_softmax_t(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_softmax(c, zs_transpose(c, in[0], 0, 1)); }

static void test_elem_softmax(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[1], *x, *y, *ly;
    float *r;
    int k;
    static const long long Ds[] = {1, 3, 8, 13, 33};
    ZT_REQUIRE(c != NULL, "ctx");
    for (k = 0; k < 5; k++) {
        long long D = Ds[k];
        in[0] = zt_input(c, 2, ZT_SHAPE(3, D), 60 + (unsigned)k, 3.0f);
        ZT_GRADCHECK(c, f_softmax, in, 1, NULL, 1e-2, 1e-3, 0);
        ZT_GRADCHECK(c, f_log_softmax, in, 1, NULL, 1e-2, 1e-3, 0);
        /* forward vs double */
        x = in[0];
        y = zs_softmax(c, x);
        ly = zs_log_softmax(c, x);
        ZT_REQUIRE(y && ly, "softmax failed");
        r = fbuf(3 * D);
        memcpy(r, x->data, (size_t)(3 * D) * 4);
        zs__softmax_row_ref(r, D);
        zs__softmax_row_ref(r + D, D);
        zs__softmax_row_ref(r + 2 * D, D);
        ZT_CHECK(zt_max_rel((const float *)y->data, r, 3 * D) < 1e-6, "softmax D=%lld err %.3g", D, zt_max_rel((const float *)y->data, r, 3 * D));
        zs__logsoftmax_row_ref(r, (const float *)x->data, D);
        zs__logsoftmax_row_ref(r + D, (const float *)x->data + D, D);
        zs__logsoftmax_row_ref(r + 2 * D, (const float *)x->data + 2 * D, D);
        ZT_CHECK(zt_max_rel((const float *)ly->data, r, 3 * D) < 1e-6, "log_softmax D=%lld", D);
        free(r);
    }
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 3, 5), 70, 2.0f);
    ZT_GRADCHECK(c, f_softmax, in, 1, NULL, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 2, ZT_SHAPE(5, 4), 71, 2.0f);
    ZT_GRADCHECK(c, f_softmax_t, in, 1, NULL, 1e-2, 1e-3, 0);
    zs_ctx_free(c);
}

/* rows containing -inf (masked logits): finite results, zero probability */
static void test_elem_softmax_inf(void) {
    zs_ctx *c = new_ctx(1);
    float xv[2 * 11];
    zs_tensor *x, *y, *ly, *s;
    int i, ok = 1;
    if (ELEM_FAST_MATH) { zs_ctx_free(c); ZT_SKIP("-ffast-math assumes no infinities"); }
    ZT_REQUIRE(c != NULL, "ctx");
    for (i = 0; i < 22; i++) xv[i] = 0.1f * (float)i;
    xv[0] = -INFINITY;
    xv[5] = -INFINITY;
    xv[10] = -INFINITY;
    for (i = 11; i < 22; i++) xv[i] = -INFINITY; /* an all -inf row */
    x = zs_from_data(c, xv, 2, zs_f32_2d(c, 2, 11)->shape);
    zs_requires_grad(x);
    y = zs_softmax(c, x);
    ly = zs_log_softmax(c, x);
    ZT_REQUIRE(y && ly, "softmax");
    {
        double sum = 0;
        for (i = 0; i < 11; i++) {
            float v = ((float *)y->data)[i];
            if (!(v >= 0.0f && v <= 1.0f)) ok = 0;
            sum += v;
        }
        ZT_CHECK(ok, "softmax with -inf entries must stay finite");
        ZT_CHECK(((float *)y->data)[0] == 0.0f && ((float *)y->data)[5] == 0.0f, "-inf entries get probability 0");
        ZT_CHECK(fabs(sum - 1.0) < 1e-6, "row sums to 1 (%g)", sum);
        ZT_CHECK(((float *)ly->data)[0] == -INFINITY && ((float *)ly->data)[5] == -INFINITY, "log_softmax of -inf is -inf");
        ZT_CHECK(isfinite(((float *)ly->data)[1]), "log_softmax finite elsewhere");
        /* all -inf row: softmax is defined as 0 (zs__softmax_row), log_softmax NaN like torch */
        for (i = 11; i < 22; i++) if (((float *)y->data)[i] != 0.0f) ok = 0;
        ZT_CHECK(ok, "all -inf row gives zeros");
        ZT_CHECK(isnan(((float *)ly->data)[11]), "log_softmax of an all -inf row is NaN (torch)");
    }
    /* gradient through the finite row stays finite, 0 at the -inf entries */
    s = zs_sum(c, zs_mul(c, zs_slice(c, y, 0, 0, 1), zs_slice(c, y, 0, 0, 1)));
    ZT_REQUIRE(s && zs_backward(c, s) == ZS_OK, "backward: %.300s", zs_last_error());
    for (i = 0; i < 11; i++) if (!isfinite(x->grad[i])) ok = 0;
    ZT_CHECK(ok, "gradient must be finite");
    ZT_CHECK(x->grad[0] == 0.0f && x->grad[5] == 0.0f, "no gradient into -inf logits");
    zs_ctx_free(c);
}

/* NaN propagation through the activations and erf */
static void test_elem_nan(void) {
    zs_ctx *c = new_ctx(1);
    float xv[9];
    zs_tensor *x;
    int i;
    if (ELEM_FAST_MATH) { zs_ctx_free(c); ZT_SKIP("-ffast-math assumes no NaNs"); }
    ZT_REQUIRE(c != NULL, "ctx");
    for (i = 0; i < 9; i++) xv[i] = (float)i - 4.0f;
    xv[2] = NAN;  /* vector lane */
    xv[8] = NAN;  /* scalar tail */
    x = zs_from_data(c, xv, 1, zs_f32_1d(c, 9)->shape);
    {
        zs_tensor *g = zs_gelu(c, x), *r = zs_relu(c, x), *s = zs_sigmoid(c, x);
        float e[9];
        ZT_REQUIRE(g && r && s, "ops");
        ZT_CHECK(isnan(((float *)g->data)[2]) && isnan(((float *)g->data)[8]), "gelu(NaN) = NaN");
        ZT_CHECK(isnan(((float *)r->data)[2]) && isnan(((float *)r->data)[8]), "relu(NaN) = NaN");
        ZT_CHECK(isnan(((float *)s->data)[2]) && isnan(((float *)s->data)[8]), "sigmoid(NaN) = NaN");
        ZT_CHECK(!isnan(((float *)g->data)[3]), "neighbours unaffected");
        zs__erf_n(e, xv, 9);
        ZT_CHECK(isnan(e[2]) && isnan(e[8]), "erf(NaN) = NaN");
        ZT_CHECK(e[0] == -1.0f && fabs(e[7] - erf(3.0)) < 2e-7, "erf(-4) rounds to -1, erf(3) = %.9g", e[7]);
    }
    {   /* infinities: erf(+-inf) = +-1, gelu(+inf) = +inf */
        float iv[9], e[9], gv[9];
        for (i = 0; i < 9; i++) iv[i] = i % 2 ? INFINITY : -INFINITY;
        zs__erf_n(e, iv, 9);
        zs__gelu_n(gv, iv, 9);
        ZT_CHECK(e[0] == -1.0f && e[1] == 1.0f && e[8] == -1.0f, "erf(+-inf)");
        ZT_CHECK(gv[1] == INFINITY, "gelu(inf) = inf");
    }
    zs_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* layer norms, l2 normalize                                            */
/* ------------------------------------------------------------------ */

static zs_tensor *f_ln(zs_ctx *c, zs_tensor **in, void *u) {
    int mode = *(int *)u; /* 0: w,b  1: w  2: b  3: none */
    return zs_layer_norm(c, in[0], mode == 0 || mode == 1 ? in[1] : NULL, mode == 0 ? in[2] : mode == 2 ? in[1] : NULL, 1e-5f);
}
static zs_tensor *f_lnu(zs_ctx *c, zs_tensor **in, void *u) {
    int mode = *(int *)u;
    return zs_layer_norm_unbiased(c, in[0], mode == 0 ? in[1] : NULL, mode == 0 ? in[2] : NULL, 1e-6f);
}
static zs_tensor *f_l2n(zs_ctx *c, zs_tensor **in, void *u) { return zs_l2_normalize(c, in[0], *(float *)u); }

static void test_elem_layer_norm(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[3];
    int mode, k;
    static const long long Ds[] = {1, 2, 5, 9, 17};
    ZT_REQUIRE(c != NULL, "ctx");
    for (k = 0; k < 5; k++) {
        long long D = Ds[k];
        for (mode = 0; mode < 4; mode++) {
            int n = mode == 0 ? 3 : mode == 3 ? 1 : 2;
            in[0] = zt_input(c, 3, ZT_SHAPE(2, 3, D), 80 + (unsigned)k, 2.0f);
            in[1] = zt_input(c, 1, ZT_SHAPE(D), 90 + (unsigned)k, 1.0f);
            in[2] = zt_input(c, 1, ZT_SHAPE(D), 95 + (unsigned)k, 1.0f);
            ZT_GRADCHECK(c, f_ln, in, n, &mode, 1e-2, 1e-3, 0);
            if (zt_cur_failed) { printf("  (D %lld mode %d)\n", D, mode); return; }
        }
    }
    { /* forward vs double, 2-D and 4-D */
        zs_tensor *x = rnd(c, 4, ZT_SHAPE(2, 3, 4, 37), 100, 3.0f), *w = rnd(c, 1, ZT_SHAPE(37), 101, 1.0f);
        zs_tensor *b = rnd(c, 1, ZT_SHAPE(37), 102, 1.0f), *y = zs_layer_norm(c, x, w, b, 1e-5f);
        float *r = fbuf(24 * 37);
        int i;
        ZT_REQUIRE(y != NULL, "layer_norm");
        for (i = 0; i < 24; i++)
            zs__ln_row_ref(r + i * 37, NULL, (const float *)x->data + i * 37, (const float *)w->data, (const float *)b->data, 37, 1e-5f);
        /* float two-pass statistics: 2e-6 of the unit-scale outputs */
        ZT_CHECK(zt_max_rel((const float *)y->data, r, 24 * 37) < 2e-6, "layer_norm err %.3g", zt_max_rel((const float *)y->data, r, 24 * 37));
        free(r);
    }
    zs_ctx_free(c);
}

/* op-level forward + backward over many rows (several dw/db partial-sum
   chunks of ZS__LN_CHUNK rows) against the double-precision row references */
static void test_elem_layer_norm_rows(void) {
    zs_ctx *c = new_ctx(2);
    int unb;
    ZT_REQUIRE(c != NULL, "ctx");
    for (unb = 0; unb < 2; unb++) {
        const int64_t R = 150, D = 33;
        zs_tensor *x = zt_input(c, 3, ZT_SHAPE(2, 75, 33), 140, 2.0f), *w = zt_input(c, 1, ZT_SHAPE(33), 141, 1.0f);
        zs_tensor *b = zt_input(c, 1, ZT_SHAPE(33), 142, 1.0f), *r = rnd(c, 3, ZT_SHAPE(2, 75, 33), 143, 1.0f);
        zs_tensor *y = unb ? zs_layer_norm_unbiased(c, x, w, b, 1e-6f) : zs_layer_norm(c, x, w, b, 1e-5f);
        zs_tensor *loss = zs_sum(c, zs_mul(c, y, r));
        float *ry = fbuf(R * D), *gx = fbuf(R * D), *gw = fbuf(D), *gb = fbuf(D), st[3];
        int64_t i;
        ZT_REQUIRE(loss && zs_backward(c, loss) == ZS_OK, "ln %d: %.300s", unb, zs_last_error());
        for (i = 0; i < R; i++) {
            const float *xr = (const float *)x->data + i * D, *gr = (const float *)r->data + i * D;
            if (unb) {
                zs__lnu_row_ref(ry + i * D, st, xr, (const float *)w->data, (const float *)b->data, D, 1e-6f);
                zs__lnu_bwd_row_ref(gx + i * D, gw, gb, gr, xr, (const float *)w->data, st[0], st[1], st[2], D);
            } else {
                zs__ln_row_ref(ry + i * D, st, xr, (const float *)w->data, (const float *)b->data, D, 1e-5f);
                zs__ln_bwd_row_ref(gx + i * D, gw, gb, gr, xr, (const float *)w->data, st[0], st[1], D);
            }
        }
        ZT_CHECK(zt_max_rel((const float *)y->data, ry, R * D) < 2e-6, "ln %d forward", unb);
        ZT_CHECK(zt_max_rel(x->grad, gx, R * D) < 1e-4, "ln %d dx err %.3g", unb, zt_max_rel(x->grad, gx, R * D));
        ZT_CHECK(max_err(w->grad, gw, D, 1.0) < 1e-5 && max_err(b->grad, gb, D, 1.0) < 1e-5, "ln %d dw/db err %.3g %.3g", unb,
                 max_err(w->grad, gw, D, 1.0), max_err(b->grad, gb, D, 1.0));
        free(ry); free(gx); free(gw); free(gb);
    }
    zs_ctx_free(c);
}

/* SPEC 1.3: a (x - mean) / (std_unbiased + eps) + b, eps on the std */
static void test_elem_layer_norm_unbiased(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[3];
    int mode, k;
    static const long long Ds[] = {2, 3, 8, 13};
    ZT_REQUIRE(c != NULL, "ctx");
    { /* hand formula on a known row: x = 1..4, mean 2.5, unbiased std sqrt(5/3) */
        float xv[4] = {1, 2, 3, 4}, av[4] = {1, 2, 0.5f, -1}, bv[4] = {0, 0.1f, 0.2f, 0.3f};
        zs_tensor *x = zs_from_data(c, xv, 1, zs_f32_1d(c, 4)->shape), *a = zs_from_data(c, av, 1, x->shape);
        zs_tensor *b = zs_from_data(c, bv, 1, x->shape);
        zs_tensor *y = zs_layer_norm_unbiased(c, x, a, b, 1e-6f), *yb = zs_layer_norm(c, x, a, b, 1e-6f);
        double sd = sqrt(5.0 / 3.0);
        int i, ok = 1;
        ZT_REQUIRE(y && yb, "ln");
        for (i = 0; i < 4; i++) {
            double r = av[i] * (xv[i] - 2.5) / (sd + 1e-6) + bv[i];
            if (fabs(((float *)y->data)[i] - r) > 1e-6) ok = 0;
        }
        ZT_CHECK(ok, "unbiased layer norm vs hand formula");
        /* differs from the standard one (biased var 1.25, eps inside sqrt) */
        ZT_CHECK(fabs(((float *)yb->data)[0] - (-1.5 / sqrt(1.25 + 1e-6))) < 1e-6, "biased layer norm hand value");
        ZT_CHECK(fabs(((float *)y->data)[0] - ((float *)yb->data)[0]) > 0.1, "quirk must differ from LayerNorm");
        /* eps added to the std: a constant row gives exactly b (0 / (0 + eps)) */
        {
            float cv[4] = {3, 3, 3, 3};
            zs_tensor *xc = zs_from_data(c, cv, 1, x->shape), *yc = zs_layer_norm_unbiased(c, xc, a, b, 1e-6f);
            ZT_REQUIRE(yc != NULL, "constant row");
            for (i = 0; i < 4; i++) if (((float *)yc->data)[i] != bv[i]) ok = 0;
            ZT_CHECK(ok, "constant row gives b");
        }
    }
    for (k = 0; k < 4; k++)
        for (mode = 0; mode < 2; mode++) {
            long long D = Ds[k];
            in[0] = zt_input(c, 2, ZT_SHAPE(3, D), 110 + (unsigned)k, 2.0f);
            in[1] = zt_input(c, 1, ZT_SHAPE(D), 115 + (unsigned)k, 1.0f);
            in[2] = zt_input(c, 1, ZT_SHAPE(D), 120 + (unsigned)k, 1.0f);
            ZT_GRADCHECK(c, f_lnu, in, mode == 0 ? 3 : 1, &mode, 1e-2, 1e-3, 0);
            if (zt_cur_failed) { printf("  (D %lld mode %d)\n", D, mode); return; }
        }
    { /* forward vs double on model-like rows */
        zs_tensor *x = rnd(c, 2, ZT_SHAPE(5, 768), 125, 2.0f), *a = rnd(c, 1, ZT_SHAPE(768), 126, 1.0f);
        zs_tensor *b = rnd(c, 1, ZT_SHAPE(768), 127, 1.0f), *y = zs_layer_norm_unbiased(c, x, a, b, 1e-6f);
        float *r = fbuf(5 * 768);
        int i;
        ZT_REQUIRE(y != NULL, "lnu");
        for (i = 0; i < 5; i++)
            zs__lnu_row_ref(r + i * 768, NULL, (const float *)x->data + i * 768, (const float *)a->data, (const float *)b->data, 768, 1e-6f);
        ZT_CHECK(zt_max_rel((const float *)y->data, r, 5 * 768) < 2e-6, "lnu err %.3g", zt_max_rel((const float *)y->data, r, 5 * 768));
        free(r);
    }
    zs_ctx_free(c);
}

static void test_elem_l2_normalize(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *in[1], *x, *y;
    float eps = 1e-12f;
    float *r;
    ZT_REQUIRE(c != NULL, "ctx");
    in[0] = zt_input(c, 2, ZT_SHAPE(3, 7), 130, 1.0f);
    ZT_GRADCHECK(c, f_l2n, in, 1, &eps, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 2, 1), 131, 1.0f);
    ZT_GRADCHECK(c, f_l2n, in, 1, &eps, 1e-2, 1e-3, 0);
    /* clamped: every row norm below eps -> y = x / eps */
    eps = 10.0f;
    in[0] = zt_input(c, 2, ZT_SHAPE(3, 5), 132, 1.0f);
    ZT_GRADCHECK(c, f_l2n, in, 1, &eps, 1e-2, 1e-3, 0);
    /* mixed rows: one large (not clamped), one small (clamped) */
    in[0] = zt_input(c, 2, ZT_SHAPE(2, 4), 133, 1.0f);
    {
        int i;
        for (i = 0; i < 4; i++) ((float *)in[0]->data)[i] *= 40.0f;
    }
    ZT_GRADCHECK(c, f_l2n, in, 1, &eps, 1e-2, 1e-3, 0);
    /* forward */
    x = rnd(c, 2, ZT_SHAPE(4, 768), 134, 1.0f);
    y = zs_l2_normalize(c, x, 1e-12f);
    ZT_REQUIRE(y != NULL, "l2n");
    r = fbuf(4 * 768);
    {
        int i;
        for (i = 0; i < 4; i++) zs__l2n_row_ref(r + i * 768, NULL, (const float *)x->data + i * 768, 768, 1e-12f);
        ZT_CHECK(zt_max_rel((const float *)y->data, r, 4 * 768) < 1e-6, "l2n err");
    }
    free(r);
    zs_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* SIMD kernels vs scalar references                                    */
/* ------------------------------------------------------------------ */

static void test_elem_simd_vs_ref(void) {
    static const long long ns[] = {1, 7, 9, 33, 197 * 3072};
    int k;
    for (k = 0; k < 5; k++) {
        long long n = ns[k], i;
        float *x = fbuf(n), *b = fbuf(n), *y = fbuf(n), *r = fbuf(n), *g = fbuf(n), *g2 = fbuf(n);
        double e;
        int op;
        zt_fill(x, n, 200 + (unsigned)k, 8.0f);
        zt_fill(b, n, 300 + (unsigned)k, 1.0f);
        /* gelu: 1e-6 relative (the approximation is ~4e-7) */
        zs__gelu_n(y, x, n);
        zs__gelu_ref(r, x, n);
        e = max_err(y, r, n, 1e-30);
        ZT_CHECK(e < 1e-6, "gelu n=%lld rel err %.3g", n, e);
        /* gelu backward: 1e-6 relative + 3e-7 absolute (cancellation near the root of gelu') */
        for (i = 0; i < n; i++) g[i] = g2[i] = 0.5f * b[i];
        zs__gelu_bwd_n(g, x, b, n);
        zs__gelu_bwd_ref(g2, x, b, n);
        e = 0;
        for (i = 0; i < n; i++) {
            double d = fabs((double)g[i] - g2[i]) - 1e-6 * fabs((double)g2[i]);
            if (d > e) e = d;
        }
        ZT_CHECK(e < 3e-7, "gelu bwd n=%lld err %.3g", n, e);
        /* erf: 1.5e-7 absolute */
        zs__erf_n(y, x, n);
        zs__erf_ref(r, x, n);
        e = max_err(y, r, n, 1.0);
        ZT_CHECK(e < 1.5e-7, "erf n=%lld abs err %.3g", n, e);
        /* add / sub / mul rows: exact in every layout (plain, bias vector, scalar, strided) */
        for (op = 0; op < 3; op++) {
            zs__bin_row(op, y, x, 1, b, 1, n);
            zs__bin_row_ref(op, r, x, 1, b, 1, n);
            ZT_CHECK(!memcmp(y, r, (size_t)n * 4), "bin_row op %d n=%lld", op, n);
            zs__bin_row(op, y, x, 1, b + 3 % n, 0, n);
            zs__bin_row_ref(op, r, x, 1, b + 3 % n, 0, n);
            ZT_CHECK(!memcmp(y, r, (size_t)n * 4), "bin_row bias op %d n=%lld", op, n);
            zs__bin_row(op, y, b, 0, x, 1, n);
            zs__bin_row_ref(op, r, b, 0, x, 1, n);
            ZT_CHECK(!memcmp(y, r, (size_t)n * 4), "bin_row scalar-left op %d n=%lld", op, n);
            zs__bin_row(op, y, x, 1, b, 1, n / 2);
            zs__bin_row_ref(op, r, x, 1, b, 1, n / 2);
            ZT_CHECK(!memcmp(y, r, (size_t)(n / 2) * 4), "bin_row half op %d", op);
        }
        for (i = 0; i < n; i++) y[i] = r[i] = g[i];
        zs__bin_row(ZS__B_ACCMUL, y, x, 1, b, 1, n);
        zs__bin_row_ref(ZS__B_ACCMUL, r, x, 1, b, 1, n);
        ZT_CHECK(max_err(y, r, n, 1.0) < 1e-6, "bin_row accmul n=%lld", n);
        /* relu, scale: exact */
        zs__relu_n(y, x, n);
        zs__relu_ref(r, x, n);
        ZT_CHECK(!memcmp(y, r, (size_t)n * 4), "relu n=%lld", n);
        for (i = 0; i < n; i++) g[i] = g2[i] = b[i];
        zs__relu_bwd_n(g, x, b, n);
        zs__relu_bwd_ref(g2, x, b, n);
        ZT_CHECK(!memcmp(g, g2, (size_t)n * 4), "relu bwd n=%lld", n);
        zs__ew_scale_n(y, x, -0.37f, n);
        zs__ew_scale_ref(r, x, -0.37f, n);
        ZT_CHECK(!memcmp(y, r, (size_t)n * 4), "scale n=%lld", n);
        zs__sigmoid_n(y, x, n);
        zs__sigmoid_ref(r, x, n);
        ZT_CHECK(max_err(y, r, n, 1e-30) < 1e-6, "sigmoid n=%lld", n);
        free(x); free(b); free(y); free(r); free(g); free(g2);
    }
}

/* row kernels: layer norm (both kinds), softmax, log-softmax, l2 normalize */
static void test_elem_simd_rows(void) {
    static const long long Ds[] = {1, 7, 9, 33, 768, 3072};
    int k;
    for (k = 0; k < 6; k++) {
        long long D = Ds[k], R = D >= 768 ? (D == 768 ? 16 : 197) : 5, n = R * D, r0, i;
        float *x = fbuf(n), *w = fbuf(D), *b = fbuf(D), *gy = fbuf(n), *y = fbuf(n), *ry = fbuf(n);
        float *gx = fbuf(n), *rgx = fbuf(n), *dw = fbuf(D), *rdw = fbuf(D), *db = fbuf(D), *rdb = fbuf(D);
        float st[3], rst[3];
        double e1 = 0, e2 = 0, e3 = 0;
        zt_fill(x, n, 400 + (unsigned)k, 3.0f);
        zt_fill(w, D, 410 + (unsigned)k, 1.0f);
        zt_fill(b, D, 420 + (unsigned)k, 1.0f);
        zt_fill(gy, n, 430 + (unsigned)k, 1.0f);
        for (i = 0; i < n; i++) x[i] += 1.5f; /* nonzero mean */
        /* layer norm forward/backward: 1e-5 of unit-scale values (float sums over up to 3072) */
        for (r0 = 0; r0 < R; r0++) {
            zs__ln_row(y + r0 * D, st, x + r0 * D, w, b, D, 1e-5f);
            zs__ln_row_ref(ry + r0 * D, rst, x + r0 * D, w, b, D, 1e-5f);
            zs__ln_bwd_row(gx + r0 * D, dw, db, gy + r0 * D, x + r0 * D, w, st[0], st[1], D);
            zs__ln_bwd_row_ref(rgx + r0 * D, rdw, rdb, gy + r0 * D, x + r0 * D, w, rst[0], rst[1], D);
        }
        e1 = zt_max_rel(y, ry, n);
        e2 = zt_max_rel(gx, rgx, n);
        e3 = zt_max_rel(dw, rdw, D) + zt_max_rel(db, rdb, D) / (double)R;
        ZT_CHECK(e1 < 1e-5 && e2 < 1e-4 && e3 < 1e-4, "layer_norm D=%lld err y %.3g gx %.3g dw/db %.3g", D, e1, e2, e3);
        /* unbiased */
        memset(gx, 0, (size_t)n * 4); memset(rgx, 0, (size_t)n * 4);
        memset(dw, 0, (size_t)D * 4); memset(rdw, 0, (size_t)D * 4);
        for (r0 = 0; r0 < R && D > 1; r0++) {
            zs__lnu_row(y + r0 * D, st, x + r0 * D, w, b, D, 1e-6f);
            zs__lnu_row_ref(ry + r0 * D, rst, x + r0 * D, w, b, D, 1e-6f);
            zs__lnu_bwd_row(gx + r0 * D, dw, NULL, gy + r0 * D, x + r0 * D, w, st[0], st[1], st[2], D);
            zs__lnu_bwd_row_ref(rgx + r0 * D, rdw, NULL, gy + r0 * D, x + r0 * D, w, rst[0], rst[1], rst[2], D);
        }
        if (D > 1) {
            e1 = zt_max_rel(y, ry, n);
            e2 = zt_max_rel(gx, rgx, n);
            e3 = zt_max_rel(dw, rdw, D);
            ZT_CHECK(e1 < 1e-5 && e2 < 1e-4 && e3 < 1e-4, "lnu D=%lld err %.3g %.3g %.3g", D, e1, e2, e3);
        }
        /* softmax forward/backward, log-softmax, l2 normalize */
        memset(gx, 0, (size_t)n * 4); memset(rgx, 0, (size_t)n * 4);
        memcpy(y, x, (size_t)n * 4); memcpy(ry, x, (size_t)n * 4);
        for (r0 = 0; r0 < R; r0++) {
            zs__softmax_row(y + r0 * D, D);
            zs__softmax_row_ref(ry + r0 * D, D);
            zs__softmax_bwd_row(gx + r0 * D, y + r0 * D, gy + r0 * D, D);
            zs__softmax_bwd_row_ref(rgx + r0 * D, y + r0 * D, gy + r0 * D, D);
        }
        ZT_CHECK(zt_max_rel(y, ry, n) < 1e-6 && zt_max_rel(gx, rgx, n) < 1e-6, "softmax D=%lld err %.3g %.3g", D, zt_max_rel(y, ry, n), zt_max_rel(gx, rgx, n));
        memset(gx, 0, (size_t)n * 4); memset(rgx, 0, (size_t)n * 4);
        for (r0 = 0; r0 < R; r0++) {
            zs__logsoftmax_row(y + r0 * D, x + r0 * D, D);
            zs__logsoftmax_row_ref(ry + r0 * D, x + r0 * D, D);
            zs__logsoftmax_bwd_row(gx + r0 * D, y + r0 * D, gy + r0 * D, D);
            zs__logsoftmax_bwd_row_ref(rgx + r0 * D, y + r0 * D, gy + r0 * D, D);
        }
        /* log-probabilities up to ~10 in size: 1e-6 relative; gradients through exp: 1e-5 */
        ZT_CHECK(zt_max_rel(y, ry, n) < 1e-6 && zt_max_rel(gx, rgx, n) < 1e-5, "log_softmax D=%lld err %.3g %.3g", D, zt_max_rel(y, ry, n), zt_max_rel(gx, rgx, n));
        memset(gx, 0, (size_t)n * 4); memset(rgx, 0, (size_t)n * 4);
        for (r0 = 0; r0 < R; r0++) {
            zs__l2n_row(y + r0 * D, st, x + r0 * D, D, 1e-12f);
            zs__l2n_row_ref(ry + r0 * D, rst, x + r0 * D, D, 1e-12f);
            zs__l2n_bwd_row(gx + r0 * D, x + r0 * D, gy + r0 * D, st[0], 1e-12f, D);
            zs__l2n_bwd_row_ref(rgx + r0 * D, x + r0 * D, gy + r0 * D, rst[0], 1e-12f, D);
        }
        ZT_CHECK(zt_max_rel(y, ry, n) < 1e-6 && zt_max_rel(gx, rgx, n) < 1e-5, "l2n D=%lld err %.3g %.3g", D, zt_max_rel(y, ry, n), zt_max_rel(gx, rgx, n));
        free(x); free(w); free(b); free(gy); free(y); free(ry); free(gx); free(rgx); free(dw); free(rdw); free(db); free(rdb);
    }
}

/* erf and GELU against libm (double) on a dense grid over [-10, 10] */
static void test_elem_erf_gelu_accuracy(void) {
    long long n = 2000001, i;
    float *x = fbuf(n), *y = fbuf(n), *g = fbuf(n), *one = fbuf(n);
    double erf_abs = 0, erf_rel = 0, gelu_rel = 0, dg_abs = 0, dg_rel = 0, exp_rel = 0;
    for (i = 0; i < n; i++) { x[i] = -10.0f + 20.0f * (float)i / (float)(n - 1); one[i] = 1.0f; }
    zs__erf_n(y, x, n);
    for (i = 0; i < n; i++) {
        double r = erf((double)x[i]), d = fabs(y[i] - r);
        if (d > erf_abs) erf_abs = d;
        if (r != 0 && d / fabs(r) > erf_rel) erf_rel = d / fabs(r);
    }
    zs__gelu_n(y, x, n);
    for (i = 0; i < n; i++) {
        double v = x[i], r = 0.5 * v * erfc(-v * 0.70710678118654752440), d = fabs(y[i] - r);
        if (r != 0 && d / fabs(r) > gelu_rel) gelu_rel = d / fabs(r);
    }
    zs__gelu_bwd_n(g, x, one, n);
    for (i = 0; i < n; i++) {
        double v = x[i], r = 0.5 * erfc(-v * 0.70710678118654752440) + v * exp(-0.5 * v * v) * 0.39894228040143267794;
        double d = fabs(g[i] - r);
        if (d > dg_abs) dg_abs = d;
        if (fabs(r) > 1e-2 && d / fabs(r) > dg_rel) dg_rel = d / fabs(r);
    }
    /* exp(-z^2) of the split square, z in [0, 10] */
    for (i = 0; i < n; i++) {
        float a = 10.0f * (float)i / (float)(n - 1), ah = zs__u2f(zs__f2u(a) & 0xfffff000u), al = a - ah;
        double r = exp(-(double)a * a), e = zs__exp_hl(-(ah * ah), -(al * (a + ah)));
        if (r > 1e-37 && fabs(e - r) / r > exp_rel) exp_rel = fabs(e - r) / r;
    }
    printf("  erf: max abs err %.3g, max rel err %.3g | gelu: max rel err %.3g | gelu': max abs err %.3g, "
           "rel err (|gelu'| > 0.01) %.3g | exp(-z^2): max rel err %.3g\n",
           erf_abs, erf_rel, gelu_rel, dg_abs, dg_rel, exp_rel);
    ZT_CHECK(erf_abs < 1.5e-7, "erf abs err %.3g", erf_abs);
    ZT_CHECK(erf_rel < 3e-7, "erf rel err %.3g", erf_rel);
    ZT_CHECK(gelu_rel < 1e-6, "gelu rel err %.3g", gelu_rel);
    ZT_CHECK(dg_abs < 5e-7 && dg_rel < 1e-5, "gelu' err %.3g / %.3g", dg_abs, dg_rel);
    ZT_CHECK(exp_rel < 3e-7, "exp err %.3g", exp_rel);
    free(x); free(y); free(g); free(one);
}

/* ------------------------------------------------------------------ */
/* threads: 1 vs 2 must give the same bits                              */
/* ------------------------------------------------------------------ */

#define N_OUT 16
typedef struct { float *buf[N_OUT]; size_t len[N_OUT]; int n; } snap;

static void snap_add(snap *s, const float *p, int64_t n) {
    s->buf[s->n] = (float *)malloc((size_t)n * 4);
    memcpy(s->buf[s->n], p, (size_t)n * 4);
    s->len[s->n++] = (size_t)n * 4;
}
static void snap_free(snap *s) {
    int i;
    for (i = 0; i < s->n; i++) free(s->buf[i]);
    s->n = 0;
}

/* model-sized forward + backward through the hot ops; records every output and gradient */
static int run_model_ops(zs_ctx *c, snap *s) {
    zs_tensor *x = zt_input(c, 2, ZT_SHAPE(1576, 768), 500, 2.0f), *w = zt_input(c, 1, ZT_SHAPE(768), 501, 1.0f);
    zs_tensor *b = zt_input(c, 1, ZT_SHAPE(768), 502, 1.0f), *h = zt_input(c, 2, ZT_SHAPE(197, 3072), 503, 4.0f);
    zs_tensor *bias = zt_input(c, 1, ZT_SHAPE(3072), 504, 1.0f), *col = zt_input(c, 2, ZT_SHAPE(1576, 1), 505, 1.0f);
    zs_tensor *ln, *lnu, *gl, *sm, *ad, *mu, *dr, *loss;
    ln = zs_layer_norm(c, x, w, b, 1e-5f);
    lnu = zs_layer_norm_unbiased(c, x, w, b, 1e-6f);
    gl = zs_gelu(c, zs_add(c, h, bias));
    sm = zs_log_softmax(c, h);
    mu = zs_mul(c, ln, col);
    zs_set_training(c, 1);
    dr = zs_dropout(c, lnu, 0.1f);
    zs_set_training(c, 0);
    ad = zs_add(c, zs_sum_dim(c, mu, 0), zs_mean_dim(c, dr, 0));
    loss = zs_add(c, zs_add(c, zs_sum(c, zs_mul(c, gl, gl)), zs_mean(c, sm)), zs_sum(c, zs_mul(c, ad, ad)));
    if (!loss || zs_backward(c, loss) != ZS_OK) return 0;
    snap_add(s, (const float *)ln->data, zs_numel(ln));
    snap_add(s, (const float *)lnu->data, zs_numel(lnu));
    snap_add(s, (const float *)gl->data, zs_numel(gl));
    snap_add(s, (const float *)sm->data, zs_numel(sm));
    snap_add(s, (const float *)dr->data, zs_numel(dr));
    snap_add(s, (const float *)loss->data, 1);
    snap_add(s, x->grad, zs_numel(x));
    snap_add(s, w->grad, 768);
    snap_add(s, b->grad, 768);
    snap_add(s, h->grad, zs_numel(h));
    snap_add(s, bias->grad, 3072);
    snap_add(s, col->grad, 1576);
    return 1;
}

static void test_elem_threads_bitwise(void) {
    zs_ctx *c = new_ctx(1);
    snap s1, s2;
    int i;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    ZT_REQUIRE(c != NULL, "ctx");
    zs_ctx_seed(c, 77);
    ZT_REQUIRE(run_model_ops(c, &s1), "1 thread: %.300s", zs_last_error());
    zs_ctx_reset(c);
    ZT_REQUIRE(zs_ctx_set_threads(c, 2) == ZS_OK, "2 threads");
    zs_ctx_seed(c, 77);
    ZT_REQUIRE(run_model_ops(c, &s2), "2 threads: %.300s", zs_last_error());
    for (i = 0; i < s1.n; i++) ZT_CHECK(s1.len[i] == s2.len[i] && !memcmp(s1.buf[i], s2.buf[i], s1.len[i]), "output %d differs between 1 and 2 threads", i);
    snap_free(&s1);
    snap_free(&s2);
    zs_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* errors                                                               */
/* ------------------------------------------------------------------ */

static void test_elem_errors(void) {
    zs_ctx *c = new_ctx(1);
    zs_tensor *a, *b, *w;
    int64_t s3[1] = {3};
    ZT_REQUIRE(c != NULL, "ctx");
    a = rnd(c, 2, ZT_SHAPE(3, 4), 1, 1.0f);
    b = rnd(c, 1, ZT_SHAPE(5), 2, 1.0f);
    ZT_CHECK(zs_add(c, a, b) == NULL && zs_ctx_status(c) == ZS_ERR_SHAPE, "[3,4] + [5] must fail");
    ZT_CHECK(strstr(zs_last_error(), "zs_add") && strstr(zs_last_error(), "[3,4]") && strstr(zs_last_error(), "[5]"),
             "message names op and shapes: %.300s", zs_last_error());
    ZT_CHECK(zs_mul(c, rnd(c, 2, ZT_SHAPE(2, 3), 3, 1.0f), rnd(c, 2, ZT_SHAPE(3, 2), 4, 1.0f)) == NULL, "[2,3]*[3,2] must fail");
    zs_ctx_reset(c);
    a = rnd(c, 2, ZT_SHAPE(3, 4), 1, 1.0f);
    /* NULL inputs propagate silently */
    ZT_CHECK(zs_gelu(c, NULL) == NULL && zs_add(c, a, NULL) == NULL && zs_layer_norm(c, NULL, NULL, NULL, 1e-5f) == NULL, "NULL in, NULL out");
    ZT_CHECK(zs_ctx_status(c) == ZS_OK, "NULL propagation is not an error");
    /* layer norm weight shape */
    w = zs_from_data(c, NULL, 1, s3);
    ZT_CHECK(zs_layer_norm(c, a, w, NULL, 1e-5f) == NULL && strstr(zs_last_error(), "zs_layer_norm"), "weight [3] for D 4 must fail");
    ZT_CHECK(zs_layer_norm_unbiased(c, a, NULL, w, 1e-6f) == NULL, "bias [3] for D 4 must fail");
    ZT_CHECK(zs_layer_norm(c, rnd(c, 0, ZT_SHAPE(1), 5, 1.0f), NULL, NULL, 1e-5f) == NULL, "layer norm of a scalar must fail");
    /* dims */
    ZT_CHECK(zs_sum_dim(c, a, 2) == NULL && zs_mean_dim(c, a, -3) == NULL, "dim out of range must fail");
    /* non-f32 input */
    {
        zs_tensor *h = zs_tensor_new(c, ZS_F16, 2, a->shape);
        ZT_CHECK(zs_relu(c, h) == NULL && strstr(zs_last_error(), "f32"), "f16 input must fail: %.300s", zs_last_error());
    }
    /* empty tensors are fine */
    {
        zs_tensor *e = zs_zeros(c, 2, zs_f32_2d(c, 0, 4)->shape), *y = zs_add(c, e, rnd(c, 1, ZT_SHAPE(4), 6, 1.0f));
        zs_tensor *s = zs_sum(c, e), *g = zs_gelu(c, e), *l = zs_layer_norm(c, e, NULL, NULL, 1e-5f);
        ZT_CHECK(y && y->shape[0] == 0 && s && ((float *)s->data)[0] == 0.0f && g && l, "empty tensors: %.300s", zs_last_error());
    }
    zs_ctx_free(c);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_elem_binary_forward);
    ZT_RUN(test_elem_binary_grad);
    ZT_RUN(test_elem_scale_grad);
    ZT_RUN(test_elem_reduce_forward);
    ZT_RUN(test_elem_reduce_grad);
    ZT_RUN(test_elem_activation_grad);
    ZT_RUN(test_elem_activation_forward);
    ZT_RUN(test_elem_softplus_threshold);
    ZT_RUN(test_elem_dropout);
    ZT_RUN(test_elem_dropout_mask_simd);
    ZT_RUN(test_elem_dropout_grad);
    ZT_RUN(test_elem_softmax);
    ZT_RUN(test_elem_softmax_inf);
    ZT_RUN(test_elem_nan);
    ZT_RUN(test_elem_layer_norm);
    ZT_RUN(test_elem_layer_norm_rows);
    ZT_RUN(test_elem_layer_norm_unbiased);
    ZT_RUN(test_elem_l2_normalize);
    ZT_RUN(test_elem_simd_vs_ref);
    ZT_RUN(test_elem_simd_rows);
    ZT_RUN(test_elem_erf_gelu_accuracy);
    ZT_RUN(test_elem_threads_bitwise);
    ZT_RUN(test_elem_errors);
    return zt_finish();
}
