/* Fused multi-head attention (zs_attention, zs_attention_ex): forward against
   the double-precision reference zs__attention_ref, gradients by central
   differences and against zs__attention_bwd_ref at model sizes, dropout,
   strided q/k/v (slices of one fused qkv tensor, transposed layouts), the
   cls_attn/probs outputs, thread-count invariance and shape errors.

   Tolerances (all measured as max |a-b| / max(1,|b|), see zt_max_rel; the
   largest errors measured, AVX2 and scalar builds, are in brackets):
     forward vs reference        1e-5 (<= 2.1e-7: float GEMM accumulation
                                 over dh or Tk <= 197 terms, exp to 2 ulp)
     probs, cls_attn vs ref      2e-6 (<= 1.8e-7, softmax only)
     gradients vs reference      2e-5 (<= 3.3e-7 at model size: float GEMMs
                                 over <= 197 terms, one cancellation in
                                 dP - rowsum(dP o P))
     gradcheck                   rtol 1e-2, atol 1e-3 (central differences of a
                                 float forward with h = 1e-2)
     dropout kept fraction       1-p +- 0.015 (6 sigma at n = 32768)
     thread counts               bit-identical (memcmp) */
#include <stdlib.h>
#include <stddef.h>
/* allocator that can be told to fail (test_attn_alloc_failure); with a NULL
   user pointer it is plain malloc */
typedef struct attn_alloc { int fail; long long refused; } attn_alloc;
static void *attn_malloc(size_t n, void *u) {
    attn_alloc *a = (attn_alloc *)u;
    if (a && a->fail) { a->refused++; return NULL; }
    return malloc(n);
}
#define ZS_MALLOC(sz, u) attn_malloc(sz, u)
#define ZS_FREE(p, u) ((void)(u), free(p))
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct attn_cfg { int heads; float scale, p; int64_t D; } attn_cfg;

static attn_cfg cfg_make(int heads, float scale, float p) {
    attn_cfg c;
    c.heads = heads; c.scale = scale; c.p = p; c.D = 0;
    return c;
}

static zs_tensor *f_attn(zs_ctx *ctx, zs_tensor **in, void *u) {
    attn_cfg *c = (attn_cfg *)u;
    return zs_attention(ctx, in[0], in[1], in[2], c->heads, c->scale, c->p);
}

/* one tensor as query, key and value */
static zs_tensor *f_self(zs_ctx *ctx, zs_tensor **in, void *u) {
    attn_cfg *c = (attn_cfg *)u;
    return zs_attention(ctx, in[0], in[0], in[0], c->heads, c->scale, c->p);
}

/* q, k, v = the three column slices of a fused qkv [B,T,3D] (SPEC 1.2) */
static zs_tensor *f_qkv(zs_ctx *ctx, zs_tensor **in, void *u) {
    attn_cfg *c = (attn_cfg *)u;
    zs_tensor *x = in[0];
    return zs_attention(ctx, zs_slice(ctx, x, 2, 0, c->D), zs_slice(ctx, x, 2, c->D, 2 * c->D),
                        zs_slice(ctx, x, 2, 2 * c->D, 3 * c->D), c->heads, c->scale, c->p);
}

/* q given as [B,W,Tq] (transposed: column stride != 1, must be copied),
   k as [Tk,B,W] (transposed to [B,Tk,W]: addressable in place), v plain */
static zs_tensor *f_layouts(zs_ctx *ctx, zs_tensor **in, void *u) {
    attn_cfg *c = (attn_cfg *)u;
    return zs_attention(ctx, zs_transpose(ctx, in[0], 1, 2), zs_transpose(ctx, in[1], 0, 1), in[2], c->heads, c->scale, c->p);
}

/* only some inputs require grad: constants come through the user pointer */
typedef struct attn_part { attn_cfg c; zs_tensor *q, *k, *v; } attn_part;
static zs_tensor *f_partial(zs_ctx *ctx, zs_tensor **in, void *u) {
    attn_part *a = (attn_part *)u;
    return zs_attention(ctx, a->q ? a->q : in[0], a->k ? a->k : in[0], a->v ? a->v : in[0], a->c.heads, a->c.scale, a->c.p);
}

static float *fdup(const float *p, int64_t n) {
    float *r = (float *)malloc((size_t)(n ? n : 1) * sizeof(float));
    if (n) memcpy(r, p, (size_t)n * sizeof(float));
    return r;
}

static float *fzeros(int64_t n) { return (float *)calloc((size_t)(n ? n : 1), sizeof(float)); }

static uint64_t key_of(const zs_tensor *out) {
    uint64_t key;
    memcpy(&key, &out->ip[1], sizeof key);
    return key;
}

/* forward (and probs / cls_attn) of random inputs against the reference */
static void check_forward(zs_ctx *ctx, int64_t B, int64_t Tq, int64_t Tk, int H, int64_t dh, float in_scale,
                          float p, int training, double tol, unsigned long long seed) {
    int64_t W = H * dh, no = B * Tq * W, np = B * H * Tq * Tk;
    float scale = 1.0f / sqrtf((float)dh);
    zs_tensor *q = zt_input(ctx, 3, ZT_SHAPE(B, Tq, W), seed, in_scale);
    zs_tensor *k = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), seed + 1, in_scale);
    zs_tensor *v = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), seed + 2, 1.0f);
    float *probs = fzeros(np), *cls = fzeros(B * Tk), *rout = fzeros(no), *rprobs = fzeros(np), *rcls = fzeros(B * Tk);
    double *work = (double *)malloc((size_t)((Tq + 1) * Tk + 1) * sizeof(double));
    zs_tensor *o;
    int old = zs_set_training(ctx, training);
    o = zs_attention_ex(ctx, q, k, v, H, scale, p, cls, probs);
    zs_set_training(ctx, old);
    if (!o) { ZT_CHECK(0, "attention failed: %.300s", zs_last_error()); goto out; }
    ZT_CHECK(o->ndim == 3 && o->shape[0] == B && o->shape[1] == Tq && o->shape[2] == W, "output shape");
    zs__attention_ref((const float *)q->data, (const float *)k->data, (const float *)v->data, rout, B, Tq, Tk, H, dh,
                      scale, training ? p : 0.0f, key_of(o), rcls, rprobs, work);
    {
        double eo = zt_max_rel((const float *)o->data, rout, no), ep = zt_max_rel(probs, rprobs, np), ec = zt_max_rel(cls, rcls, B * Tk);
        ZT_CHECK(eo <= tol, "B%lld Tq%lld Tk%lld H%d dh%lld p%g: output err %.3g > %.3g", (long long)B, (long long)Tq,
                 (long long)Tk, H, (long long)dh, (double)p, eo, tol);
        ZT_CHECK(ep <= 2e-6, "B%lld Tq%lld Tk%lld H%d dh%lld: probs err %.3g", (long long)B, (long long)Tq, (long long)Tk, H, (long long)dh, ep);
        ZT_CHECK(ec <= 2e-6, "B%lld Tq%lld Tk%lld H%d dh%lld: cls_attn err %.3g", (long long)B, (long long)Tq, (long long)Tk, H, (long long)dh, ec);
    }
out:
    free(probs); free(cls); free(rout); free(rprobs); free(rcls); free(work);
}

/* zs_backward gradients of q, k, v (loss = sum out * r) against the reference */
static void check_grad_ref(zs_ctx *ctx, int64_t B, int64_t Tq, int64_t Tk, int H, int64_t dh, float p, double tol,
                           unsigned long long seed) {
    int64_t W = H * dh, nq = B * Tq * W, nk = B * Tk * W, i;
    float scale = 1.0f / sqrtf((float)dh);
    const unsigned long long rseed = 4242;
    zs_tensor *q = zt_input(ctx, 3, ZT_SHAPE(B, Tq, W), seed, 1.5f);
    zs_tensor *k = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), seed + 1, 1.5f);
    zs_tensor *v = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), seed + 2, 1.0f);
    float *gout = fzeros(nq), *gq = fzeros(nq), *gk = fzeros(nk), *gv = fzeros(nk);
    double *work = (double *)malloc((size_t)(2 * Tq * Tk + 1) * sizeof(double));
    zs_tensor *o, *loss;
    int old = zs_set_training(ctx, p > 0.0f);
    o = zs_attention(ctx, q, k, v, H, scale, p);
    loss = zt_dot_random(ctx, o, rseed);
    zs_set_training(ctx, old);
    if (!loss || zs_backward(ctx, loss) != ZS_OK) { ZT_CHECK(0, "forward/backward failed: %.300s", zs_last_error()); goto out; }
    for (i = 0; i < nq; i++) gout[i] = zt_rand(rseed, (unsigned long long)i);
    zs__attention_bwd_ref((const float *)q->data, (const float *)k->data, (const float *)v->data, gout, gq, gk, gv,
                          B, Tq, Tk, H, dh, scale, p, key_of(o), work);
    {
        double eq = zt_max_rel(q->grad, gq, nq), ek = zt_max_rel(k->grad, gk, nk), ev = zt_max_rel(v->grad, gv, nk);
        ZT_CHECK(eq <= tol && ek <= tol && ev <= tol, "B%lld T%lld/%lld H%d dh%lld p%g: grad err q %.3g k %.3g v %.3g > %.3g",
                 (long long)B, (long long)Tq, (long long)Tk, H, (long long)dh, (double)p, eq, ek, ev, tol);
    }
out:
    free(gout); free(gq); free(gk); free(gv); free(work);
}

/* ---- forward ------------------------------------------------------------ */

static void test_attn_forward_ref(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    ZT_REQUIRE(ctx != NULL, "ctx");
    check_forward(ctx, 2, 5, 7, 3, 4, 1.0f, 0.0f, 0, 1e-5, 1);
    check_forward(ctx, 1, 1, 1, 1, 1, 1.0f, 0.0f, 0, 1e-5, 2);
    check_forward(ctx, 3, 13, 13, 5, 7, 2.0f, 0.0f, 0, 1e-5, 3);  /* peaky softmax */
    check_forward(ctx, 2, 9, 9, 2, 3, 1.0f, 0.3f, 1, 1e-5, 4);    /* dropout */
    check_forward(ctx, 2, 9, 9, 2, 3, 1.0f, 0.3f, 0, 1e-5, 5);    /* eval: p ignored */
    check_forward(ctx, 1, 197, 197, 12, 64, 1.5f, 0.0f, 0, 1e-5, 6); /* SA block (SPEC 1.2) */
    check_forward(ctx, 1, 197, 197, 8, 96, 1.5f, 0.1f, 1, 1e-5, 7);  /* CA module (SPEC 1.3), training */
    zs_ctx_free(ctx);
}

static void test_attn_cross_len(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    attn_cfg c;
    zs_tensor *in[3];
    ZT_REQUIRE(ctx != NULL, "ctx");
    check_forward(ctx, 2, 3, 11, 2, 3, 1.0f, 0.0f, 0, 1e-5, 10);
    check_forward(ctx, 2, 13, 1, 3, 5, 1.0f, 0.0f, 0, 1e-5, 11); /* one key: P = 1, out = v */
    check_forward(ctx, 3, 1, 5, 1, 7, 1.0f, 0.2f, 1, 1e-5, 12);
    check_forward(ctx, 1, 37, 197, 4, 16, 1.5f, 0.0f, 0, 1e-5, 13);
    /* one key: the output is v broadcast over queries */
    {
        zs_tensor *q = zt_input(ctx, 3, ZT_SHAPE(2, 13, 15), 20, 1), *k = zt_input(ctx, 3, ZT_SHAPE(2, 1, 15), 21, 1);
        zs_tensor *v = zt_input(ctx, 3, ZT_SHAPE(2, 1, 15), 22, 1), *o = zs_attention(ctx, q, k, v, 3, 0.5f, 0.0f);
        int64_t b, i, d;
        ZT_REQUIRE(o != NULL, "%.300s", zs_last_error());
        for (b = 0; b < 2; b++)
            for (i = 0; i < 13; i++)
                for (d = 0; d < 15; d++)
                    ZT_CHECK(((float *)o->data)[(b * 13 + i) * 15 + d] == ((float *)v->data)[b * 15 + d], "single key");
    }
    c = cfg_make(2, 0.6f, 0.0f);
    in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 3, 6), 30, 1);
    in[1] = zt_input(ctx, 3, ZT_SHAPE(2, 5, 6), 31, 1);
    in[2] = zt_input(ctx, 3, ZT_SHAPE(2, 5, 6), 32, 1);
    ZT_GRADCHECK(ctx, f_attn, in, 3, &c, 1e-2, 1e-3, 0);
    c = cfg_make(1, 0.5f, 0.0f);
    in[0] = zt_input(ctx, 3, ZT_SHAPE(1, 7, 3), 33, 1);
    in[1] = zt_input(ctx, 3, ZT_SHAPE(1, 1, 3), 34, 1);
    in[2] = zt_input(ctx, 3, ZT_SHAPE(1, 1, 3), 35, 1);
    ZT_GRADCHECK(ctx, f_attn, in, 3, &c, 1e-2, 1e-3, 0);
    zs_ctx_free(ctx);
}

/* zero-sized dimensions: nothing to attend to gives zeros, no crash */
static void test_attn_empty(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *q, *k, *v, *o, *loss;
    float cls[3] = {7, 7, 7};
    ZT_REQUIRE(ctx != NULL, "ctx");
    q = zt_input(ctx, 3, ZT_SHAPE(1, 4, 6), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(1, 0, 6), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(1, 0, 6), 3, 1);
    o = zs_attention(ctx, q, k, v, 2, 0.5f, 0.0f);
    ZT_REQUIRE(o != NULL && o->shape[1] == 4, "Tk = 0: %.300s", zs_last_error());
    ZT_CHECK(zs_get(o, 0) == 0.0f && zs_get(o, 23) == 0.0f, "Tk = 0 gives zeros");
    loss = zt_dot_random(ctx, o, 1);
    if (loss) ZT_CHECK(zs_backward(ctx, loss) == ZS_OK, "backward with Tk = 0: %.300s", zs_last_error());
    q = zt_input(ctx, 3, ZT_SHAPE(1, 0, 6), 4, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(1, 3, 6), 5, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(1, 3, 6), 6, 1);
    o = zs_attention_ex(ctx, q, k, v, 3, 0.5f, 0.0f, cls, NULL);
    ZT_REQUIRE(o != NULL && zs_numel(o) == 0, "Tq = 0: %.300s", zs_last_error());
    ZT_CHECK(cls[0] == 0.0f && cls[2] == 0.0f, "Tq = 0: cls_attn zeroed");
    zs_ctx_free(ctx);
}

/* ---- gradients ---------------------------------------------------------- */

static void test_attn_gradcheck(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    attn_cfg c = cfg_make(3, 0.5f, 0.0f);
    zs_tensor *in[3];
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 5, 12), 1, 1);
    in[1] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 2, 1);
    in[2] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 3, 1);
    ZT_GRADCHECK(ctx, f_attn, in, 3, &c, 1e-2, 1e-3, 0);
    /* odd sizes, one head, head dim 1 */
    c = cfg_make(1, 1.0f, 0.0f);
    in[0] = zt_input(ctx, 3, ZT_SHAPE(3, 7, 1), 4, 1);
    in[1] = zt_input(ctx, 3, ZT_SHAPE(3, 13, 1), 5, 1);
    in[2] = zt_input(ctx, 3, ZT_SHAPE(3, 13, 1), 6, 1);
    ZT_GRADCHECK(ctx, f_attn, in, 3, &c, 1e-2, 1e-3, 0);
    /* sharper softmax, 5 heads of 3 */
    c = cfg_make(5, 1.3f, 0.0f);
    in[0] = zt_input(ctx, 3, ZT_SHAPE(1, 5, 15), 7, 1);
    in[1] = zt_input(ctx, 3, ZT_SHAPE(1, 3, 15), 8, 1);
    in[2] = zt_input(ctx, 3, ZT_SHAPE(1, 3, 15), 9, 1);
    ZT_GRADCHECK(ctx, f_attn, in, 3, &c, 1e-2, 1e-3, 0);
    zs_ctx_free(ctx);
}

static void test_attn_gradcheck_dropout(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    attn_cfg c = cfg_make(3, 0.5f, 0.3f);
    zs_tensor *in[3];
    ZT_REQUIRE(ctx != NULL, "ctx");
    zs_set_training(ctx, 1);
    in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 5, 12), 11, 1);
    in[1] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 12, 1);
    in[2] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 13, 1);
    ZT_GRADCHECK(ctx, f_attn, in, 3, &c, 1e-2, 1e-3, 0);
    c = cfg_make(2, 0.7f, 0.3f);
    in[0] = zt_input(ctx, 3, ZT_SHAPE(3, 13, 6), 14, 1);
    in[1] = zt_input(ctx, 3, ZT_SHAPE(3, 3, 6), 15, 1);
    in[2] = zt_input(ctx, 3, ZT_SHAPE(3, 3, 6), 16, 1);
    ZT_GRADCHECK(ctx, f_attn, in, 3, &c, 1e-2, 1e-3, 0);
    zs_ctx_free(ctx);
}

/* the same tensor as q, k and v: the three gradient roles accumulate */
static void test_attn_gradcheck_self(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    attn_cfg c = cfg_make(2, 0.5f, 0.0f);
    zs_tensor *in[1];
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 10), 21, 1);
    ZT_GRADCHECK(ctx, f_self, in, 1, &c, 1e-2, 1e-3, 0);
    zs_set_training(ctx, 1);
    c.p = 0.3f;
    ZT_GRADCHECK(ctx, f_self, in, 1, &c, 1e-2, 1e-3, 0);
    zs_ctx_free(ctx);
}

/* only some of q, k, v require grad */
static void test_attn_gradcheck_partial(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    attn_part a;
    zs_tensor *in[1], *q, *k, *v;
    int which;
    ZT_REQUIRE(ctx != NULL, "ctx");
    a.c = cfg_make(3, 0.5f, 0.2f);
    zs_set_training(ctx, 1);
    q = zt_input(ctx, 3, ZT_SHAPE(2, 5, 9), 31, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 7, 9), 32, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 7, 9), 33, 1);
    q->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    k->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    v->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    for (which = 0; which < 3; which++) {
        a.q = q; a.k = k; a.v = v;
        if (which == 0) { in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 5, 9), 34, 1); a.q = NULL; }
        if (which == 1) { in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 9), 35, 1); a.k = NULL; }
        if (which == 2) { in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 9), 36, 1); a.v = NULL; }
        ZT_GRADCHECK(ctx, f_partial, in, 1, &a, 1e-2, 1e-3, 0);
        ZT_CHECK(q->grad == NULL && k->grad == NULL && v->grad == NULL, "constants got a gradient (%d)", which);
    }
    zs_ctx_free(ctx);
}

/* backward ACCUMULATES: a second backward over a second forward adds the
   same gradient again (exactly, the op being deterministic) */
static void test_attn_grad_accumulates(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *q, *k, *v, *o, *loss;
    float *g1[3];
    zs_tensor *xs[3];
    int r, i;
    int64_t e;
    ZT_REQUIRE(ctx != NULL, "ctx");
    zs_set_training(ctx, 1);
    q = zt_input(ctx, 3, ZT_SHAPE(2, 5, 12), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 3, 1);
    xs[0] = q; xs[1] = k; xs[2] = v;
    for (r = 0; r < 2; r++) {
        zs_ctx_seed(ctx, 17);
        o = zs_attention(ctx, q, k, v, 3, 0.5f, 0.25f);
        loss = zt_dot_random(ctx, o, 3);
        ZT_REQUIRE(loss && zs_backward(ctx, loss) == ZS_OK, "backward: %.300s", zs_last_error());
        if (r == 0)
            for (i = 0; i < 3; i++) g1[i] = fdup(xs[i]->grad, zs_numel(xs[i]));
    }
    for (i = 0; i < 3; i++) {
        for (e = 0; e < zs_numel(xs[i]); e++)
            if (xs[i]->grad[e] != 2.0f * g1[i][e]) break;
        ZT_CHECK(e == zs_numel(xs[i]), "input %d element %lld: %g after two backwards, %g after one", i, (long long)e,
                 (double)xs[i]->grad[e], (double)g1[i][e]);
        free(g1[i]);
    }
    zs_ctx_free(ctx);
}

/* model sizes: zs_backward against the double reference */
static void test_attn_grad_model_ref(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    ZT_REQUIRE(ctx != NULL, "ctx");
    check_grad_ref(ctx, 2, 5, 7, 3, 4, 0.0f, 2e-5, 40);
    check_grad_ref(ctx, 2, 5, 7, 3, 4, 0.3f, 2e-5, 41);
    check_grad_ref(ctx, 1, 197, 197, 12, 64, 0.0f, 2e-5, 42); /* SA */
    check_grad_ref(ctx, 1, 197, 197, 8, 96, 0.1f, 2e-5, 43);  /* CA, training */
    zs_ctx_free(ctx);
}

/* ---- strided inputs ----------------------------------------------------- */

static void test_attn_qkv_slices(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    attn_cfg c = cfg_make(3, 0.5f, 0.0f);
    zs_tensor *in[1], *x, *o, *qc, *kc, *vc;
    int64_t B = 2, T = 5, D = 12;
    float *ref = fzeros(B * T * D);
    double work[64];
    ZT_REQUIRE(ctx != NULL, "ctx");
    c.D = D;
    x = zt_input(ctx, 3, ZT_SHAPE(B, T, 3 * D), 51, 1);
    /* forward: same as contiguous copies, and no copy is made */
    o = f_qkv(ctx, &x, &c);
    ZT_REQUIRE(o != NULL, "%.300s", zs_last_error());
    ZT_CHECK(o->src[0]->op && !strcmp(o->src[0]->op, "slice") && o->src[1]->op && !strcmp(o->src[1]->op, "slice") &&
             o->src[2]->op && !strcmp(o->src[2]->op, "slice"), "slices are read in place (no contiguous copy)");
    qc = zs_contiguous(ctx, o->src[0]);
    kc = zs_contiguous(ctx, o->src[1]);
    vc = zs_contiguous(ctx, o->src[2]);
    ZT_REQUIRE(qc && kc && vc, "copies");
    zs__attention_ref((const float *)qc->data, (const float *)kc->data, (const float *)vc->data, ref, B, T, T, 3, 4,
                      0.5f, 0.0f, 0, NULL, NULL, work);
    ZT_CHECK(zt_max_rel((const float *)o->data, ref, B * T * D) <= 1e-5, "strided forward");
    /* gradients through the views into the fused tensor */
    in[0] = x;
    ZT_GRADCHECK(ctx, f_qkv, in, 1, &c, 1e-2, 1e-3, 0);
    zs_set_training(ctx, 1);
    c.p = 0.3f;
    ZT_GRADCHECK(ctx, f_qkv, in, 1, &c, 1e-2, 1e-3, 0);
    zs_set_training(ctx, 0);
    /* odd sizes: 1 head of 7 over 3 tokens */
    c = cfg_make(1, 0.4f, 0.0f);
    c.D = 7;
    in[0] = zt_input(ctx, 3, ZT_SHAPE(3, 3, 21), 52, 1);
    ZT_GRADCHECK(ctx, f_qkv, in, 1, &c, 1e-2, 1e-3, 0);
    free(ref);
    zs_ctx_free(ctx);
}

static void test_attn_layouts(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    attn_cfg c = cfg_make(2, 0.5f, 0.0f);
    zs_tensor *in[3], *o, *qc, *kc;
    float *ref = fzeros(2 * 5 * 6);
    double work[64];
    ZT_REQUIRE(ctx != NULL, "ctx");
    in[0] = zt_input(ctx, 3, ZT_SHAPE(2, 6, 5), 61, 1); /* q^T: [B,W,Tq] */
    in[1] = zt_input(ctx, 3, ZT_SHAPE(7, 2, 6), 62, 1); /* k as [Tk,B,W] */
    in[2] = zt_input(ctx, 3, ZT_SHAPE(2, 7, 6), 63, 1);
    o = f_layouts(ctx, in, &c);
    ZT_REQUIRE(o != NULL, "%.300s", zs_last_error());
    ZT_CHECK(o->src[0]->op && !strcmp(o->src[0]->op, "contiguous"), "column-strided q is copied");
    ZT_CHECK(o->src[1]->op && !strcmp(o->src[1]->op, "transpose"), "batch-strided k is read in place");
    qc = o->src[0];
    kc = zs_contiguous(ctx, o->src[1]);
    ZT_REQUIRE(kc != NULL, "copy");
    zs__attention_ref((const float *)qc->data, (const float *)kc->data, (const float *)in[2]->data, ref, 2, 5, 7, 2, 3,
                      0.5f, 0.0f, 0, NULL, NULL, work);
    ZT_CHECK(zt_max_rel((const float *)o->data, ref, 2 * 5 * 6) <= 1e-5, "strided forward");
    ZT_GRADCHECK(ctx, f_layouts, in, 3, &c, 1e-2, 1e-3, 0);
    free(ref);
    zs_ctx_free(ctx);
}

/* ---- extra outputs, dropout --------------------------------------------- */

static void test_attn_cls_probs(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    int64_t B = 2, Tq = 6, Tk = 9, H = 3, dh = 5, W = 15, b, h, i, j;
    zs_tensor *q, *k, *v, *o1, *o2, *o3;
    float probs[2 * 3 * 6 * 9], probs2[2 * 3 * 6 * 9], cls[2 * 9], cls2[2 * 9];
    ZT_REQUIRE(ctx != NULL, "ctx");
    /* against the reference (also covered at model size in forward_ref) */
    check_forward(ctx, B, Tq, Tk, (int)H, dh, 2.0f, 0.0f, 0, 1e-5, 70);
    q = zt_input(ctx, 3, ZT_SHAPE(B, Tq, W), 71, 2);
    k = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), 72, 2);
    v = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), 73, 1);
    /* cls alone (scratch path) equals cls with probs (reduction from probs) */
    o1 = zs_attention_ex(ctx, q, k, v, (int)H, 0.4f, 0.0f, cls, probs);
    o2 = zs_attention_ex(ctx, q, k, v, (int)H, 0.4f, 0.0f, cls2, NULL);
    ZT_REQUIRE(o1 && o2, "%.300s", zs_last_error());
    ZT_CHECK(!memcmp(cls, cls2, sizeof cls), "cls_attn with and without probs");
    ZT_CHECK(!memcmp(o1->data, o2->data, (size_t)(B * Tq * W) * 4), "outputs equal");
    /* rows of probs sum to one; cls_attn is the head mean of query 0 */
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (i = 0; i < Tq; i++) {
                double s = 0;
                for (j = 0; j < Tk; j++) s += probs[((b * H + h) * Tq + i) * Tk + j];
                ZT_CHECK(fabs(s - 1.0) < 1e-5, "row sum %g", s);
            }
    for (b = 0; b < B; b++)
        for (j = 0; j < Tk; j++) {
            double s = 0;
            for (h = 0; h < H; h++) s += probs[(b * H + h) * Tq * Tk + j];
            ZT_CHECK(fabs(s / 3.0 - cls[b * Tk + j]) < 1e-6, "cls = head mean of P[b,h,0,:]");
        }
    /* in training they are the pre-dropout probabilities */
    zs_set_training(ctx, 1);
    o3 = zs_attention_ex(ctx, q, k, v, (int)H, 0.4f, 0.5f, cls2, probs2);
    zs_set_training(ctx, 0);
    ZT_REQUIRE(o3 != NULL, "%.300s", zs_last_error());
    ZT_CHECK(!memcmp(probs, probs2, sizeof probs) && !memcmp(cls, cls2, sizeof cls), "probs are pre-dropout");
    ZT_CHECK(memcmp(o1->data, o3->data, (size_t)(B * Tq * W) * 4) != 0, "dropout changed the output");
    zs_ctx_free(ctx);
}

static void test_attn_dropout_stats(void) {
    /* v one-hot over keys (dh = Tk): out[b,i,h*dh+j] = P_drop[b,h,i,j], so the
       output exposes the dropped probabilities */
    const int64_t B = 2, H = 4, T = 64, W = H * T, n = B * H * T * T;
    const float p = 0.3f;
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *q, *k, *v, *o, *oe, *o0, *o2;
    float *probs = fzeros(n), *vd;
    int64_t b, h, i, j, kept = 0, bad_mask = 0, bad_val = 0;
    double sum_drop = 0, sum_p = 0, frac;
    uint64_t key;
    ZT_REQUIRE(ctx != NULL, "ctx");
    q = zt_input(ctx, 3, ZT_SHAPE(B, T, W), 81, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(B, T, W), 82, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(B, T, W), 83, 1);
    vd = (float *)v->data;
    for (b = 0; b < B; b++)
        for (j = 0; j < T; j++)
            for (i = 0; i < W; i++) vd[(b * T + j) * W + i] = (i % T) == j ? 1.0f : 0.0f;
    zs_set_training(ctx, 1);
    o = zs_attention_ex(ctx, q, k, v, (int)H, 0.125f, p, NULL, probs);
    ZT_REQUIRE(o != NULL, "%.300s", zs_last_error());
    key = key_of(o);
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (i = 0; i < T; i++)
                for (j = 0; j < T; j++) {
                    float od = ((float *)o->data)[(b * T + i) * W + h * T + j], pp = probs[((b * H + h) * T + i) * T + j];
                    int keep = zs__attn_keep(key, H, T, T, b, h, i, j, p);
                    kept += od != 0.0f;
                    bad_mask += (od != 0.0f) != keep;
                    if (keep && fabs(od - pp / (1.0 - p)) > 1e-6 * fabs(pp / (1.0 - p))) bad_val++;
                    sum_drop += od;
                    sum_p += pp;
                }
    frac = (double)kept / (double)n;
    ZT_CHECK(fabs(frac - (1.0 - p)) < 0.015, "fraction kept %.4f, expected %.2f (n = %lld, 6 sigma)", frac, 1.0 - p, (long long)n);
    ZT_CHECK(bad_mask == 0, "%lld elements disagree with the documented mask", (long long)bad_mask);
    ZT_CHECK(bad_val == 0, "%lld kept values are not P/(1-p)", (long long)bad_val);
    ZT_CHECK(fabs(sum_drop / sum_p - 1.0) < 0.03, "inverted dropout keeps the mean: ratio %.4f", sum_drop / sum_p);
    /* a second call draws a new mask */
    o2 = zs_attention(ctx, q, k, v, (int)H, 0.125f, p);
    ZT_REQUIRE(o2 != NULL, "%.300s", zs_last_error());
    ZT_CHECK(key_of(o2) != key && memcmp(o->data, o2->data, (size_t)(B * T * W) * 4) != 0, "new mask per call");
    /* p = 0 in training == eval; eval ignores p */
    o0 = zs_attention(ctx, q, k, v, (int)H, 0.125f, 0.0f);
    zs_set_training(ctx, 0);
    oe = zs_attention(ctx, q, k, v, (int)H, 0.125f, p);
    ZT_REQUIRE(o0 && oe, "%.300s", zs_last_error());
    ZT_CHECK(!memcmp(o0->data, oe->data, (size_t)(B * T * W) * 4), "eval ignores dropout");
    /* p = 1 drops everything */
    zs_set_training(ctx, 1);
    o = zs_attention(ctx, q, k, v, (int)H, 0.125f, 1.0f);
    ZT_REQUIRE(o != NULL, "%.300s", zs_last_error());
    for (i = 0, kept = 0; i < B * T * W; i++) kept += ((float *)o->data)[i] != 0.0f;
    ZT_CHECK(kept == 0, "p = 1: %lld non-zero outputs", (long long)kept);
    free(probs);
    zs_ctx_free(ctx);
}

/* ---- threads ------------------------------------------------------------ */

typedef struct attn_run { float *out, *gq, *gk, *gv, *probs, *cls; } attn_run;

static int run_threads(int nth, int64_t B, int64_t Tq, int64_t Tk, int H, int64_t dh, float p, attn_run *r) {
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_tensor *q, *k, *v, *o, *loss;
    int64_t W = H * dh;
    int ok = 0;
    cp.n_threads = nth;
    ctx = zs_ctx_create(&cp);
    if (!ctx) return 0;
    zs_set_training(ctx, 1);
    q = zt_input(ctx, 3, ZT_SHAPE(B, Tq, W), 91, 1.5f);
    k = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), 92, 1.5f);
    v = zt_input(ctx, 3, ZT_SHAPE(B, Tk, W), 93, 1);
    r->probs = fzeros(B * H * Tq * Tk);
    r->cls = fzeros(B * Tk);
    o = zs_attention_ex(ctx, q, k, v, H, 1.0f / sqrtf((float)dh), p, r->cls, r->probs);
    loss = zt_dot_random(ctx, o, 5);
    if (loss && zs_backward(ctx, loss) == ZS_OK) {
        r->out = fdup((const float *)o->data, B * Tq * W);
        r->gq = fdup(q->grad, B * Tq * W);
        r->gk = fdup(k->grad, B * Tk * W);
        r->gv = fdup(v->grad, B * Tk * W);
        ok = 1;
    }
    zs_ctx_free(ctx);
    return ok;
}

static void free_run(attn_run *r) { free(r->out); free(r->gq); free(r->gk); free(r->gv); free(r->probs); free(r->cls); }

static void check_threads(int64_t B, int64_t Tq, int64_t Tk, int H, int64_t dh, float p) {
    attn_run r1, r2;
    int64_t W = H * dh;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    if (!run_threads(1, B, Tq, Tk, H, dh, p, &r1) || !run_threads(2, B, Tq, Tk, H, dh, p, &r2)) {
        ZT_CHECK(0, "run failed: %.300s", zs_last_error());
    } else {
        ZT_CHECK(!memcmp(r1.out, r2.out, (size_t)(B * Tq * W) * 4), "output differs (H%d)", H);
        ZT_CHECK(!memcmp(r1.gq, r2.gq, (size_t)(B * Tq * W) * 4), "dq differs (H%d)", H);
        ZT_CHECK(!memcmp(r1.gk, r2.gk, (size_t)(B * Tk * W) * 4), "dk differs (H%d)", H);
        ZT_CHECK(!memcmp(r1.gv, r2.gv, (size_t)(B * Tk * W) * 4), "dv differs (H%d)", H);
        ZT_CHECK(!memcmp(r1.probs, r2.probs, (size_t)(B * H * Tq * Tk) * 4), "probs differ (H%d)", H);
        ZT_CHECK(!memcmp(r1.cls, r2.cls, (size_t)(B * Tk) * 4), "cls_attn differs (H%d)", H);
    }
    free_run(&r1);
    free_run(&r2);
}

static void test_attn_threads_bitident(void) {
    check_threads(1, 13, 7, 3, 5, 0.3f);     /* 3 pairs over 2 threads: uneven split */
    check_threads(1, 197, 197, 12, 64, 0.1f); /* SA size, with dropout */
    check_threads(2, 197, 197, 8, 96, 0.1f);  /* CA size, batch 2 */
}

/* scratch allocation failing inside the worker tasks comes back as an error */
static void test_attn_alloc_failure(void) {
    attn_alloc al;
    zs_ctx_params cp = zs_ctx_default_params();
    size_t bytes = (size_t)8 << 20;
    void *buf = malloc(bytes);
    zs_ctx *ctx;
    zs_tensor *q, *k, *v, *o, *loss;
    int rc;
    al.fail = 0; al.refused = 0;
    cp.arena_buffer = buf; /* the context arena never mallocs */
    cp.arena_buffer_bytes = bytes;
    cp.alloc_user = &al;
    cp.n_threads = 2;
    ctx = zs_ctx_create(&cp);
    if (!ctx) { free(buf); ZT_REQUIRE(0, "ctx: %.300s", zs_last_error()); }
    q = zt_input(ctx, 3, ZT_SHAPE(2, 9, 8), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 11, 8), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 11, 8), 3, 1);
    /* forward: the per-thread scratch arenas are still empty and cannot grow */
    al.fail = 1;
    o = zs_attention(ctx, q, k, v, 2, 0.5f, 0.0f);
    al.fail = 0;
    ZT_CHECK(o == NULL && al.refused > 0, "forward without scratch memory succeeded");
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_NOMEM, "status %d", zs_ctx_status(ctx));
    ZT_CHECK(strstr(zs_last_error(), "zs_attention") != NULL, "message: %.300s", zs_last_error());
    /* backward: forward succeeds, then fresh (empty) scratch arenas fail */
    zs_ctx_reset(ctx);
    q = zt_input(ctx, 3, ZT_SHAPE(2, 9, 8), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 11, 8), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 11, 8), 3, 1);
    o = zs_attention(ctx, q, k, v, 2, 0.5f, 0.0f);
    loss = zt_dot_random(ctx, o, 1);
    ZT_REQUIRE(loss != NULL, "forward: %.300s", zs_last_error());
    ZT_REQUIRE(zs_ctx_set_threads(ctx, 2) == ZS_OK, "new pool"); /* drops the scratch chunks */
    al.fail = 1;
    al.refused = 0;
    rc = zs_backward(ctx, loss);
    al.fail = 0;
    ZT_CHECK(rc == ZS_ERR_NOMEM && al.refused > 0, "backward without scratch memory: rc %d", rc);
    ZT_CHECK(strstr(zs_last_error(), "zs_attention backward") != NULL, "message: %.300s", zs_last_error());
    /* and everything works again once memory is back */
    zs_ctx_reset(ctx);
    q = zt_input(ctx, 3, ZT_SHAPE(2, 9, 8), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 11, 8), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 11, 8), 3, 1);
    loss = zt_dot_random(ctx, zs_attention(ctx, q, k, v, 2, 0.5f, 0.0f), 1);
    ZT_CHECK(loss && zs_backward(ctx, loss) == ZS_OK, "recovery: %.300s", zs_last_error());
    zs_ctx_free(ctx);
    free(buf);
}

/* ---- errors ------------------------------------------------------------- */

static void test_attn_errors(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *q, *k, *v, *k3, *k8, *v6, *q2, *h;
    const char *e;
    ZT_REQUIRE(ctx != NULL, "ctx");
    q = zt_input(ctx, 3, ZT_SHAPE(2, 5, 12), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 3, 1);
    k3 = zt_input(ctx, 3, ZT_SHAPE(3, 7, 12), 4, 1);
    k8 = zt_input(ctx, 3, ZT_SHAPE(2, 7, 8), 5, 1);
    v6 = zt_input(ctx, 3, ZT_SHAPE(2, 6, 12), 6, 1);
    q2 = zt_input(ctx, 2, ZT_SHAPE(5, 12), 7, 1);

    ZT_CHECK(zs_attention(ctx, q, k3, k3, 3, 0.5f, 0.0f) == NULL, "batch mismatch accepted");
    e = zs_last_error();
    ZT_CHECK(strstr(e, "zs_attention") && strstr(e, "[2,5,12]") && strstr(e, "[3,7,12]") && strstr(e, "batch"), "message: %.300s", e);
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_SHAPE, "sticky status");
    zs_ctx_reset(ctx);
    q = zt_input(ctx, 3, ZT_SHAPE(2, 5, 12), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 3, 1);
    k8 = zt_input(ctx, 3, ZT_SHAPE(2, 7, 8), 5, 1);
    v6 = zt_input(ctx, 3, ZT_SHAPE(2, 6, 12), 6, 1);
    q2 = zt_input(ctx, 2, ZT_SHAPE(5, 12), 7, 1);

    ZT_CHECK(zs_attention(ctx, q, k8, k8, 2, 0.5f, 0.0f) == NULL, "width mismatch accepted");
    e = zs_last_error();
    ZT_CHECK(strstr(e, "[2,5,12]") && strstr(e, "[2,7,8]") && strstr(e, "width"), "message: %.300s", e);
    ZT_CHECK(zs_attention(ctx, q, k, v6, 3, 0.5f, 0.0f) == NULL, "k/v length mismatch accepted");
    e = zs_last_error();
    ZT_CHECK(strstr(e, "[2,7,12]") && strstr(e, "[2,6,12]"), "message: %.300s", e);
    ZT_CHECK(zs_attention(ctx, q, k, v, 5, 0.5f, 0.0f) == NULL, "heads not dividing the width accepted");
    e = zs_last_error();
    ZT_CHECK(strstr(e, "[2,5,12]") && strstr(e, "heads 5"), "message: %.300s", e);
    ZT_CHECK(zs_attention(ctx, q2, k, v, 3, 0.5f, 0.0f) == NULL, "2-D q accepted");
    e = zs_last_error();
    ZT_CHECK(strstr(e, "[5,12]"), "message: %.300s", e);
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_SHAPE, "shape status");
    zs_ctx_reset(ctx);
    q = zt_input(ctx, 3, ZT_SHAPE(2, 5, 12), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 3, 1);
    ZT_CHECK(zs_attention(ctx, q, k, v, 0, 0.5f, 0.0f) == NULL && zs_ctx_status(ctx) == ZS_ERR_ARG, "heads 0 accepted");
    ZT_CHECK(zs_attention(ctx, q, k, v, 3, 0.5f, 1.5f) == NULL, "dropout 1.5 accepted");
    ZT_CHECK(zs_attention(ctx, q, k, v, 3, 0.5f, NAN) == NULL, "dropout NaN accepted");
    ZT_CHECK(strstr(zs_last_error(), "dropout"), "message: %.300s", zs_last_error());
    /* NULL input: NULL out, no new error */
    ZT_CHECK(zs_attention(ctx, q, NULL, v, 3, 0.5f, 0.0f) == NULL, "NULL input");
    ZT_CHECK(strstr(zs_last_error(), "dropout"), "NULL input set an error: %.300s", zs_last_error());
    /* half precision input is refused */
    h = zs_tensor_new(ctx, ZS_F16, 3, k->shape);
    ZT_REQUIRE(h != NULL, "f16 tensor");
    ZT_CHECK(zs_attention(ctx, q, h, v, 3, 0.5f, 0.0f) == NULL && strstr(zs_last_error(), "f32"), "f16 accepted: %.300s", zs_last_error());
    /* still works after errors */
    zs_ctx_reset(ctx);
    q = zt_input(ctx, 3, ZT_SHAPE(2, 5, 12), 1, 1);
    k = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 2, 1);
    v = zt_input(ctx, 3, ZT_SHAPE(2, 7, 12), 3, 1);
    ZT_CHECK(zs_attention(ctx, q, k, v, 3, 0.5f, 0.0f) != NULL, "valid call after errors: %.300s", zs_last_error());
    zs_ctx_free(ctx);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_attn_forward_ref);
    ZT_RUN(test_attn_cross_len);
    ZT_RUN(test_attn_empty);
    ZT_RUN(test_attn_gradcheck);
    ZT_RUN(test_attn_gradcheck_dropout);
    ZT_RUN(test_attn_gradcheck_self);
    ZT_RUN(test_attn_gradcheck_partial);
    ZT_RUN(test_attn_grad_accumulates);
    ZT_RUN(test_attn_grad_model_ref);
    ZT_RUN(test_attn_qkv_slices);
    ZT_RUN(test_attn_layouts);
    ZT_RUN(test_attn_cls_probs);
    ZT_RUN(test_attn_dropout_stats);
    ZT_RUN(test_attn_threads_bitident);
    ZT_RUN(test_attn_alloc_failure);
    ZT_RUN(test_attn_errors);
    return zt_finish();
}
