/* Core engine tests: errors, half precision, arena, thread pool, context,
   tensors and views, matmul/linear gradients, vectorised exp and softmax. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

/* ---- half precision ----------------------------------------------------- */

static void test_core_f16_roundtrip(void) {
    uint32_t h;
    /* every f16 bit pattern survives f16 -> f32 -> f16 (NaNs stay NaN) */
    for (h = 0; h < 65536; h++) {
        float f = zs_f16_to_f32((uint16_t)h);
        uint16_t back = zs_f32_to_f16(f);
        /* NaN checked on the bit patterns: f != f is folded away by -ffast-math */
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
            ZT_REQUIRE((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu), "NaN %04x lost (%04x)", (unsigned)h, (unsigned)back);
            continue;
        }
        ZT_REQUIRE(back == (uint16_t)h, "f16 %04x -> %g -> %04x", (unsigned)h, (double)f, (unsigned)back);
    }
    /* known values and rounding to nearest even */
    ZT_CHECK(zs_f32_to_f16(1.0f) == 0x3c00, "1.0");
    ZT_CHECK(zs_f32_to_f16(-2.0f) == 0xc000, "-2.0");
    ZT_CHECK(zs_f32_to_f16(65504.0f) == 0x7bff, "max");
    ZT_CHECK(zs_f32_to_f16(65520.0f) == 0x7c00, "overflow to inf");
    ZT_CHECK(zs_f32_to_f16(1.0f + 1.0f / 2048.0f) == 0x3c00, "tie rounds to even (down)");
    ZT_CHECK(zs_f32_to_f16(1.0f + 3.0f / 2048.0f) == 0x3c02, "tie rounds to even (up)");
    ZT_CHECK(zs_f32_to_f16(5.9604644775390625e-8f) == 0x0001, "smallest subnormal");
    ZT_CHECK(zs_f32_to_f16(2.0e-8f) == 0x0000, "underflow to zero");
}

static void test_core_bf16(void) {
    ZT_CHECK(zs_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    ZT_CHECK(zs_bf16_to_f32(0x3f80) == 1.0f, "back");
    /* 1 + 2^-8 is a tie between 1 and 1+2^-7: even -> 1 */
    ZT_CHECK(zs_f32_to_bf16(1.0f + 1.0f / 256.0f) == 0x3f80, "tie to even");
    ZT_CHECK(zs_f32_to_bf16(1.0f + 3.0f / 256.0f) == 0x3f82, "tie to even up");
    ZT_CHECK(zs_bf16_to_f32(zs_f32_to_bf16(NAN)) != zs_bf16_to_f32(zs_f32_to_bf16(NAN)), "NaN stays NaN");
    {
        float src[5] = {0.1f, -3.5f, 1000.0f, 1e-3f, 0.0f}, back[5];
        uint16_t mid[5];
        int i;
        ZT_REQUIRE(zs_convert(mid, ZS_BF16, src, ZS_F32, 5) == ZS_OK, "convert");
        ZT_REQUIRE(zs_convert(back, ZS_F32, mid, ZS_BF16, 5) == ZS_OK, "convert back");
        for (i = 0; i < 5; i++) ZT_CHECK(fabsf(back[i] - src[i]) <= fabsf(src[i]) / 128.0f, "bf16 precision %d", i);
        ZT_CHECK(zs_convert(mid, ZS_I32, src, ZS_F32, 5) == ZS_ERR_UNSUPPORTED, "i32 conversion refused");
    }
}

/* ---- arena, context ----------------------------------------------------- */

static void test_core_arena_marks(void) {
    zs_ctx_params p = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_mark m;
    size_t used0;
    int i;
    p.arena_bytes = 1 << 16; /* small chunks: force growth */
    ctx = zs_ctx_create(&p);
    ZT_REQUIRE(ctx != NULL, "create: %s", zs_last_error());
    ZT_REQUIRE(zs_f32_1d(ctx, 10) != NULL, "alloc");
    m = zs_ctx_mark(ctx);
    used0 = zs_ctx_arena_used(ctx);
    for (i = 0; i < 50; i++) ZT_REQUIRE(zs_f32_1d(ctx, 5000) != NULL, "alloc %d", i); /* 20 KB each: several chunks */
    ZT_CHECK(zs_ctx_arena_used(ctx) > used0 + 50 * 20000, "used grows");
    zs_ctx_release(ctx, m);
    ZT_CHECK(zs_ctx_arena_used(ctx) == used0, "release restores used (%zu vs %zu)", zs_ctx_arena_used(ctx), used0);
    /* reuse after release: no new chunks, same addresses */
    {
        zs_tensor *a = zs_f32_1d(ctx, 5000);
        zs_ctx_release(ctx, m);
        ZT_CHECK(zs_f32_1d(ctx, 5000)->data == a->data, "same memory reused");
    }
    /* a request bigger than a chunk gets its own chunk */
    ZT_CHECK(zs_f32_1d(ctx, 100000) != NULL, "big alloc");
    zs_ctx_reset(ctx);
    ZT_CHECK(zs_ctx_arena_used(ctx) == 0, "reset");
    zs_ctx_free(ctx);
}

static void test_core_fixed_buffer(void) {
    static unsigned char buf[1 << 16];
    zs_ctx_params p = zs_ctx_default_params();
    zs_ctx *ctx;
    p.arena_buffer = buf;
    p.arena_buffer_bytes = sizeof buf;
    ctx = zs_ctx_create(&p);
    ZT_REQUIRE(ctx != NULL, "create: %s", zs_last_error());
    ZT_CHECK(zs_f32_1d(ctx, 1000) != NULL, "fits");
    ZT_CHECK(zs_f32_1d(ctx, 100000) == NULL, "too big for the caller buffer");
    ZT_CHECK(strstr(zs_last_error(), "arena") != NULL, "message: %s", zs_last_error());
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_NOMEM, "sticky status");
    zs_ctx_free(ctx);
    p.arena_buffer_bytes = 16;
    ZT_CHECK(zs_ctx_create(&p) == NULL, "tiny buffer refused");
}

/* ---- thread pool -------------------------------------------------------- */

typedef struct { int64_t n; double *out; int calls[ZS_MAX_THREADS]; } pool_job;
static void pool_task(void *arg, int ith, int nth, zs__arena *ws) {
    pool_job *j = (pool_job *)arg;
    int64_t lo, hi, i;
    zs__amark m = zs__arena_mark(ws);
    double *tmp = (double *)zs__arena_alloc(ws, 64 * sizeof(double));
    zs__split(j->n, ith, nth, &lo, &hi);
    for (i = lo; i < hi; i++) { tmp[i % 64] = sqrt((double)i); j->out[i] = tmp[i % 64]; }
    zs__arena_release(ws, m);
    j->calls[ith]++;
}

static void test_core_pool(void) {
    int nth;
    for (nth = 1; nth <= 4; nth++) {
        zs_ctx_params p = zs_ctx_default_params();
        zs_ctx *ctx;
        pool_job j;
        int rep, i, ok = 1;
        p.n_threads = nth;
        ctx = zs_ctx_create(&p);
        ZT_REQUIRE(ctx != NULL, "create %d threads", nth);
        memset(&j, 0, sizeof j);
        j.n = 1001;
        j.out = (double *)calloc((size_t)j.n, sizeof(double));
        for (rep = 0; rep < 200; rep++) zs__pool_run(&ctx->pool, pool_task, &j);
        for (i = 0; i < j.n; i++) ok &= j.out[i] == sqrt((double)i);
        ZT_CHECK(ok, "results with %d threads", nth);
        for (i = 0; i < zs_ctx_threads(ctx); i++) ZT_CHECK(j.calls[i] == 200, "thread %d ran %d times", i, j.calls[i]);
        free(j.out);
        zs_ctx_free(ctx);
    }
    {
        int64_t lo, hi, total = 0;
        int i;
        for (i = 0; i < 7; i++) { zs__split(100, i, 7, &lo, &hi); total += hi - lo; ZT_CHECK(hi - lo == 14 || hi - lo == 15, "balanced"); }
        ZT_CHECK(total == 100, "split covers all");
    }
}

/* zs_ctx_parallel_for: every index exactly once, any thread count, n below and
   above the thread count, NULL ctx */
typedef struct { int *hits; double *out; } pfor_job;
static void pfor_fn(void *user, int64_t i) {
    pfor_job *j = (pfor_job *)user;
    j->hits[i]++;
    j->out[i] = sqrt((double)i) + 1.0;
}

static void test_core_parallel_for(void) {
    static const int64_t sizes[4] = {1, 2, 7, 1001};
    int nth, s;
    for (nth = 0; nth <= 3; nth++) {
        zs_ctx *ctx = NULL;
        if (nth) {
            zs_ctx_params p = zs_ctx_default_params();
            p.n_threads = nth;
            ctx = zs_ctx_create(&p);
            ZT_REQUIRE(ctx != NULL, "create %d threads", nth);
        }
        for (s = 0; s < 4; s++) {
            pfor_job j;
            int64_t i, n = sizes[s];
            int ok = 1;
            j.hits = (int *)calloc((size_t)n, sizeof(int));
            j.out = (double *)calloc((size_t)n, sizeof(double));
            ZT_REQUIRE(j.hits && j.out, "alloc");
            zs_ctx_parallel_for(ctx, n, pfor_fn, &j);
            for (i = 0; i < n; i++) ok &= j.hits[i] == 1 && j.out[i] == sqrt((double)i) + 1.0;
            ZT_CHECK(ok, "n %lld, %d threads: some index not run exactly once", (long long)n, nth);
            free(j.hits);
            free(j.out);
        }
        zs_ctx_parallel_for(ctx, 0, pfor_fn, NULL); /* nothing to do: fn not called */
        zs_ctx_parallel_for(ctx, 5, NULL, NULL);    /* no fn: no crash */
        zs_ctx_free(ctx);
    }
}

/* ---- errors --------------------------------------------------------------- */

static void test_core_errors(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *a = zs_f32_2d(ctx, 2, 3), *b = zs_f32_2d(ctx, 4, 5);
    zs_tensor *c;
    ZT_REQUIRE(a && b, "alloc");
    c = zs_matmul(ctx, a, b, 0, 0);
    ZT_CHECK(c == NULL, "mismatch refused");
    ZT_CHECK(strstr(zs_last_error(), "[2,3]") && strstr(zs_last_error(), "[4,5]"), "message names shapes: %s", zs_last_error());
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_SHAPE, "sticky shape error");
    /* NULL propagates without overwriting the first message */
    ZT_CHECK(zs_relu(ctx, zs_linear(ctx, c, b, NULL)) == NULL, "NULL propagates");
    ZT_CHECK(strstr(zs_last_error(), "[2,3]") != NULL, "first message kept: %s", zs_last_error());
    ZT_CHECK(zs_backward(ctx, NULL) == ZS_ERR_STATE, "backward of NULL");
    ZT_CHECK(zs_reshape2(ctx, a, 4, 2) == NULL && zs_ctx_status(ctx) != ZS_OK, "bad reshape");
    ZT_CHECK(zs_slice(ctx, a, 1, 2, 5) == NULL, "bad slice");
    ZT_CHECK(strstr(zs_last_error(), "[2,5)") != NULL, "slice message: %s", zs_last_error());
    {
        int32_t idx[2] = {0, 7};
        ZT_CHECK(zs_gather(ctx, a, idx, 2) == NULL && strstr(zs_last_error(), "index"), "gather range: %s", zs_last_error());
    }
    {
        int64_t s[1] = {-3};
        ZT_CHECK(zs_tensor_new(ctx, ZS_F32, 1, s) == NULL, "negative dim");
        ZT_CHECK(zs_tensor_new(ctx, ZS_F32, 5, s) == NULL, "too many dims");
    }
    zs_ctx_reset(ctx);
    ZT_CHECK(zs_ctx_status(ctx) == ZS_OK, "reset clears status");
    {
        zs_tensor h;
        int64_t s[2] = {2, 2};
        uint16_t d[4] = {0x3c00, 0x4000, 0, 0};
        zs_tensor_wrap(&h, ZS_F16, 2, s, d);
        ZT_CHECK(zs_relu(ctx, &h) == NULL && strstr(zs_last_error(), "f16"), "f16 into an op refused: %s", zs_last_error());
        c = zs_to_f32(ctx, &h);
        ZT_CHECK(c && ((float *)c->data)[1] == 2.0f, "zs_to_f32");
    }
    zs_ctx_free(ctx);
    ZT_CHECK(zs_ctx_set_threads(NULL, 2) == ZS_ERR_ARG, "NULL ctx");
}

/* ---- views and matmul gradients --------------------------------------- */

static zs_tensor *f_matmul(zs_ctx *c, zs_tensor **in, void *u) { int *t = (int *)u; return zs_matmul(c, in[0], in[1], t[0], t[1]); }
static zs_tensor *f_linear(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_linear(c, in[0], in[1], in[2]); }
static zs_tensor *f_linear_nob(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_linear(c, in[0], in[1], NULL); }
static zs_tensor *f_views(zs_ctx *c, zs_tensor **in, void *u) {
    /* transpose of a slice, matmul with a reshaped input: exercises view chains */
    (void)u;
    return zs_matmul(c, zs_transpose(c, zs_slice(c, in[0], 2, 1, 4), 1, 2), zs_reshape2(c, in[1], 5, 3), 0, 0);
}
static zs_tensor *f_concat(zs_ctx *c, zs_tensor **in, void *u) {
    zs_tensor *xs[3];
    int dim = *(int *)u;
    xs[0] = in[0]; xs[1] = in[1]; xs[2] = in[0];
    return zs_concat(c, xs, 3, dim);
}
static zs_tensor *f_gather(zs_ctx *c, zs_tensor **in, void *u) {
    static const int32_t idx[6] = {2, 0, 2, 4, 1, 2};
    (void)u;
    return zs_gather(c, zs_transpose(c, in[0], 0, 1), idx, 6);
}
static zs_tensor *f_contig(zs_ctx *c, zs_tensor **in, void *u) { (void)u; return zs_contiguous(c, zs_transpose(c, in[0], 0, 2)); }

static void test_core_matmul_grad(void) {
    zs_ctx *c = zs_ctx_create(NULL);
    int t[2], ta, tb;
    /* tolerance: float forward, h = 1e-2 central differences of a bilinear
       function are exact up to rounding: rtol 1e-2, atol 1e-3 */
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++) {
            zs_tensor *in[2];
            t[0] = ta; t[1] = tb;
            in[0] = ta ? zt_input(c, 3, ZT_SHAPE(2, 7, 3), 1, 1) : zt_input(c, 3, ZT_SHAPE(2, 3, 7), 1, 1);
            in[1] = tb ? zt_input(c, 3, ZT_SHAPE(2, 5, 7), 2, 1) : zt_input(c, 3, ZT_SHAPE(2, 7, 5), 2, 1);
            ZT_GRADCHECK(c, f_matmul, in, 2, t, 1e-2, 1e-3, 0);
            in[1] = tb ? zt_input(c, 2, ZT_SHAPE(5, 7), 2, 1) : zt_input(c, 2, ZT_SHAPE(7, 5), 2, 1);
            ZT_GRADCHECK(c, f_matmul, in, 2, t, 1e-2, 1e-3, 0);
            in[0] = ta ? zt_input(c, 4, ZT_SHAPE(2, 3, 7, 1), 1, 1) : zt_input(c, 4, ZT_SHAPE(2, 3, 1, 7), 1, 1);
            in[1] = tb ? zt_input(c, 4, ZT_SHAPE(2, 3, 5, 7), 2, 1) : zt_input(c, 4, ZT_SHAPE(2, 3, 7, 5), 2, 1);
            ZT_GRADCHECK(c, f_matmul, in, 2, t, 1e-2, 1e-3, 0);
            zs_ctx_reset(c);
        }
    zs_ctx_free(c);
}

static void test_core_linear_grad(void) {
    zs_ctx *c = zs_ctx_create(NULL);
    zs_tensor *in[3];
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 3, 13), 3, 1);
    in[1] = zt_input(c, 2, ZT_SHAPE(5, 13), 4, 1);
    in[2] = zt_input(c, 1, ZT_SHAPE(5), 5, 1);
    ZT_GRADCHECK(c, f_linear, in, 3, NULL, 1e-2, 1e-3, 0);
    ZT_GRADCHECK(c, f_linear_nob, in, 2, NULL, 1e-2, 1e-3, 0);
    /* forward value vs a hand loop */
    {
        zs_tensor *y = zs_linear(c, in[0], in[1], in[2]);
        const float *x = (const float *)in[0]->data, *w = (const float *)in[1]->data, *b = (const float *)in[2]->data;
        double md = 0;
        int r, o, k;
        for (r = 0; r < 6; r++)
            for (o = 0; o < 5; o++) {
                double s = b[o];
                for (k = 0; k < 13; k++) s += (double)x[r * 13 + k] * w[o * 13 + k];
                s -= ((float *)y->data)[r * 5 + o];
                md = fabs(s) > md ? fabs(s) : md;
            }
        ZT_CHECK(md < 1e-5, "linear forward max diff %g", md);
    }
    zs_ctx_free(c);
}

static void test_core_view_grads(void) {
    zs_ctx *c = zs_ctx_create(NULL);
    zs_tensor *in[2];
    int dim;
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 5, 6), 6, 1);
    in[1] = zt_input(c, 1, ZT_SHAPE(15), 7, 1);
    ZT_GRADCHECK(c, f_views, in, 2, NULL, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 3, 5), 8, 1);
    in[1] = zt_input(c, 3, ZT_SHAPE(2, 3, 5), 9, 1);
    for (dim = 0; dim < 3; dim++) ZT_GRADCHECK(c, f_concat, in, 2, &dim, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 2, ZT_SHAPE(3, 5), 10, 1);
    ZT_GRADCHECK(c, f_gather, in, 1, NULL, 1e-2, 1e-3, 0);
    in[0] = zt_input(c, 3, ZT_SHAPE(2, 3, 4), 11, 1);
    ZT_GRADCHECK(c, f_contig, in, 1, NULL, 1e-2, 1e-3, 0);
    /* views share memory; reshape of a transposed view copies */
    {
        zs_tensor *a = zt_input(c, 2, ZT_SHAPE(3, 4), 12, 1);
        zs_tensor *t = zs_transpose(c, a, 0, 1), *s = zs_slice(c, a, 1, 1, 3), *r;
        ZT_CHECK(t->data == a->data && !zs_is_contiguous(t), "transpose is a view");
        ZT_CHECK(s->data == (float *)a->data + 1 && s->shape[1] == 2, "slice is a view");
        ZT_CHECK(zs_get(t, 1) == ((float *)a->data)[4], "strided get");
        r = zs_reshape2(c, t, 2, 6);
        ZT_CHECK(r && zs_is_contiguous(r) && r->data != a->data, "reshape of a transposed view copies");
        ZT_CHECK(r && zs_get(r, 1) == ((float *)a->data)[4], "copied in logical order");
    }
    zs_ctx_free(c);
}

/* ---- exp and softmax ---------------------------------------------------- */

static void test_core_exp_accuracy(void) {
    /* max relative error of zs__exp_n (SIMD path when built) vs libm exp in
       double over [-87, 88]; documented bound 2.0e-7 (we require < 3e-7) */
    enum { N = 200001 };
    float *x = (float *)malloc(N * sizeof(float)), *y = (float *)malloc(N * sizeof(float));
    double maxrel = 0;
    int i;
    for (i = 0; i < N; i++) x[i] = -87.0f + 175.0f * (float)i / (N - 1);
    zs__exp_n(y, x, N);
    for (i = 0; i < N; i++) {
        double r = exp((double)x[i]), e = fabs(y[i] - r) / r;
        if (e > maxrel) maxrel = e;
    }
    printf("  exp max relative error %.3g\n", maxrel);
    ZT_CHECK(maxrel < 3e-7, "exp max rel error %g", maxrel);
    /* scalar path agrees with the vector path within 1 ulp-ish */
    for (i = 0; i < N; i += 97) ZT_CHECK(fabsf(zs__expf(x[i]) - y[i]) <= 2.5e-7f * y[i], "scalar vs vector at %g", (double)x[i]);
    {
        float s[4] = {-100.0f, 100.0f, NAN, 0.0f}, d[4];
        zs__exp_n(d, s, 4);
        uint32_t b1, b2;
        memcpy(&b1, &d[1], 4);
        memcpy(&b2, &d[2], 4);
        ZT_CHECK(d[0] == 0.0f && b1 == 0x7f800000u && d[3] == 1.0f, "edge cases");
#ifndef __FAST_MATH__ /* NaN semantics are the user's to give up with -ffast-math */
        ZT_CHECK((b2 & 0x7f800000u) == 0x7f800000u && (b2 & 0x7fffffu), "NaN propagates");
#endif
        (void)b2;
    }
    free(x);
    free(y);
}

static void test_core_softmax_row(void) {
    static const int sizes[] = {1, 3, 7, 8, 9, 33, 197, 1000};
    unsigned k;
    for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int n = sizes[k];
        float *a = (float *)malloc((size_t)n * 4), *b = (float *)malloc((size_t)n * 4);
        zt_fill(a, n, 100 + k, 20.0f);
        memcpy(b, a, (size_t)n * 4);
        zs__softmax_row(a, n);
        zs__softmax_row_ref(b, n);
        ZT_CHECK(zt_max_rel(a, b, n) < 1e-6, "softmax n=%d diff %g", n, zt_max_rel(a, b, n));
        free(a);
        free(b);
    }
}

/* ---- tape semantics ------------------------------------------------------ */

static void test_core_tape(void) {
    zs_ctx *c = zs_ctx_create(NULL);
    zs_params ps;
    int64_t s[2] = {2, 3};
    zs_tensor *w, *x, *y;
    zs_params_init(&ps, NULL);
    zs_params_add(&ps, "w", 2, s);
    ZT_REQUIRE(zs_params_alloc(&ps) == ZS_OK, "alloc");
    w = &ps.t[0];
    zs_tensor_fill(w, 1.0f);
    x = zs_f32_2d(c, 4, 3);
    zs_tensor_fill(x, 2.0f);
    /* inference: nothing recorded */
    zs_set_grad_enabled(c, 0);
    y = zs_linear(c, x, w, NULL);
    ZT_CHECK(y && !(y->flags & ZS_FLAG_ON_TAPE) && c->tape == NULL, "no tape in inference");
    zs_set_grad_enabled(c, 1);
    /* grads accumulate across two backward passes */
    y = zt_dot_random(c, zs_linear(c, x, w, NULL), 5);
    ZT_REQUIRE(zs_backward(c, y) == ZS_OK, "backward: %s", zs_last_error());
    {
        float g1 = w->grad[0];
        ZT_REQUIRE(zs_backward(c, y) == ZS_OK, "second backward");
        ZT_CHECK(fabsf(w->grad[0] - 2 * g1) <= 1e-6f * fabsf(g1), "accumulates: %g vs 2*%g", (double)w->grad[0], (double)g1);
    }
    /* frozen parameters receive nothing */
    zs_params_zero_grad(&ps);
    zs_param_set_frozen(w, 1);
    y = zs_linear(c, x, w, NULL);
    ZT_CHECK(!(y->flags & ZS_FLAG_ON_TAPE), "frozen input: not recorded");
    ZT_CHECK(zs_backward(c, zt_dot_random(c, y, 3)) == ZS_ERR_STATE, "nothing to differentiate");
    zs_params_free(&ps);
    zs_ctx_free(c);
}

/* ---- activation checkpointing ------------------------------------------ */

typedef struct { zs_tensor *w, *b; } ck_user;
static zs_tensor *ck_fn(zs_ctx *c, void *u, zs_tensor *x) {
    ck_user *p = (ck_user *)u;
    /* smooth (GELU) so the finite differences do not straddle a kink */
    return zs_dropout(c, zs_gelu(c, zs_linear(c, zs_gelu(c, zs_linear(c, x, p->w, p->b)), p->w, NULL)), 0.3f);
}
static zs_tensor *f_ck(zs_ctx *c, zs_tensor **in, void *u) {
    ck_user p;
    (void)u;
    p.w = in[1]; p.b = in[2];
    /* user data must live until backward: keep it in the arena */
    {
        ck_user *keep = (ck_user *)zs__arena_alloc(&c->arena, sizeof *keep);
        *keep = p;
        return zs_checkpoint(c, ck_fn, keep, zs_checkpoint(c, ck_fn, keep, in[0]));
    }
}

static void test_core_checkpoint(void) {
    zs_ctx *c = zs_ctx_create(NULL);
    zs_params ps;
    int64_t sw[2] = {6, 6}, sb[1] = {6};
    ck_user u;
    float g_plain[3][64], g_ck[3][64];
    int pass;
    zs_tensor *in[3];
    size_t peak_plain = 0, peak_ck = 0;
    zs_set_training(c, 1);
    zs_params_init(&ps, NULL);
    zs_params_add(&ps, "w", 2, sw);
    zs_params_add(&ps, "b", 1, sb);
    ZT_REQUIRE(zs_params_alloc(&ps) == ZS_OK, "params");
    zt_fill((float *)ps.t[0].data, 36, 3, 0.5f);
    zt_fill((float *)ps.t[1].data, 6, 4, 0.5f);
    u.w = &ps.t[0]; u.b = &ps.t[1];
    in[0] = zt_input(c, 2, ZT_SHAPE(5, 6), 5, 1.0f);
    in[1] = u.w; in[2] = u.b;
    /* gradients with and without checkpointing are bit-identical (same ops in
       the same order, the dropout masks replayed) */
    for (pass = 0; pass < 2; pass++) {
        zs_mark m = zs_ctx_mark(c);
        zs_tensor *y, *loss;
        zs_params_zero_grad(&ps);
        in[0]->grad = NULL;
        zs_ctx_seed(c, 77);
        y = pass ? f_ck(c, in, NULL) : ck_fn(c, &u, ck_fn(c, &u, in[0]));
        loss = zt_dot_random(c, y, 9);
        ZT_REQUIRE(zs_backward(c, loss) == ZS_OK, "backward: %s", zs_last_error());
        memcpy(pass ? g_ck[0] : g_plain[0], in[0]->grad, 30 * 4);
        memcpy(pass ? g_ck[1] : g_plain[1], ps.t[0].grad, 36 * 4);
        memcpy(pass ? g_ck[2] : g_plain[2], ps.t[1].grad, 6 * 4);
        if (pass) peak_ck = zs_ctx_arena_used(c); else peak_plain = zs_ctx_arena_used(c);
        zs_ctx_release(c, m);
    }
    ZT_CHECK(!memcmp(g_plain[0], g_ck[0], 30 * 4), "dx differs with checkpointing");
    ZT_CHECK(!memcmp(g_plain[1], g_ck[1], 36 * 4), "dw differs with checkpointing");
    ZT_CHECK(!memcmp(g_plain[2], g_ck[2], 6 * 4), "db differs with checkpointing");
    ZT_CHECK(peak_ck < peak_plain, "checkpointing keeps less (%zu vs %zu bytes)", peak_ck, peak_plain);
    ZT_GRADCHECK(c, f_ck, in, 3, NULL, 1e-2, 1e-3, 0);
    /* without gradients it is just fn */
    zs_set_grad_enabled(c, 0);
    {
        zs_tensor *tape = c->tape, *y = f_ck(c, in, NULL);
        ZT_CHECK(y != NULL && c->tape == tape && !(y->flags & ZS_FLAG_ON_TAPE), "inference: nothing recorded");
    }
    zs_params_free(&ps);
    zs_ctx_free(c);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_core_f16_roundtrip);
    ZT_RUN(test_core_bf16);
    ZT_RUN(test_core_arena_marks);
    ZT_RUN(test_core_fixed_buffer);
    ZT_RUN(test_core_pool);
    ZT_RUN(test_core_parallel_for);
    ZT_RUN(test_core_errors);
    ZT_RUN(test_core_matmul_grad);
    ZT_RUN(test_core_linear_grad);
    ZT_RUN(test_core_view_grads);
    ZT_RUN(test_core_exp_accuracy);
    ZT_RUN(test_core_softmax_row);
    ZT_RUN(test_core_tape);
    ZT_RUN(test_core_checkpoint);
    return zt_finish();
}
