/* test_conv.c - conv2d, max/avg pooling and batch norm ([impl:conv]).

   Forward results are compared with plain double-precision references
   written here (direct convolution, naive pooling, naive batch norm);
   gradients with finite differences (zt_gradcheck) on small odd shapes and
   with direct double-precision backward formulas on larger ones; and the
   results with 1 and 2 threads must be bit-identical. */
#define ZSESBIR_IMPLEMENTATION
#include "zsesbir.h"
#include "tests/zt.h"

/* ---- references --------------------------------------------------------- */

typedef struct conv_cfg {
    int B, C, H, W, O, KH, KW, sh, sw, ph, pw, bias;
} conv_cfg;

static conv_cfg mkcfg(int B, int C, int H, int W, int O, int KH, int KW, int sh, int sw, int ph, int pw, int bias) {
    conv_cfg c;
    c.B = B; c.C = C; c.H = H; c.W = W; c.O = O; c.KH = KH; c.KW = KW;
    c.sh = sh; c.sw = sw; c.ph = ph; c.pw = pw; c.bias = bias;
    return c;
}
static int cfg_oh(const conv_cfg *c) { return (c->H + 2 * c->ph - c->KH) / c->sh + 1; }
static int cfg_ow(const conv_cfg *c) { return (c->W + 2 * c->pw - c->KW) / c->sw + 1; }

/* y[bi,o,oh,ow] by the definition (zero padding), in double */
static double ref_conv_at(const conv_cfg *c, const float *x, const float *w, const float *b, int bi, int o, int oh, int ow) {
    double s = b ? b[o] : 0.0;
    int ci, kh, kw;
    for (ci = 0; ci < c->C; ci++)
        for (kh = 0; kh < c->KH; kh++)
            for (kw = 0; kw < c->KW; kw++) {
                int ih = oh * c->sh - c->ph + kh, iw = ow * c->sw - c->pw + kw;
                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                s += (double)x[((bi * c->C + ci) * c->H + ih) * c->W + iw] * w[((o * c->C + ci) * c->KH + kh) * c->KW + kw];
            }
    return s;
}

/* dL/dw[o,ci,kh,kw] = sum over images and outputs of dy * x */
static double ref_conv_dw_at(const conv_cfg *c, const float *x, const float *dy, int o, int ci, int kh, int kw) {
    int OH = cfg_oh(c), OW = cfg_ow(c), bi, oh, ow;
    double s = 0.0;
    for (bi = 0; bi < c->B; bi++)
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                int ih = oh * c->sh - c->ph + kh, iw = ow * c->sw - c->pw + kw;
                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                s += (double)dy[((bi * c->O + o) * OH + oh) * OW + ow] * x[((bi * c->C + ci) * c->H + ih) * c->W + iw];
            }
    return s;
}

/* dL/dx[bi,ci,ih,iw] = sum over the outputs that read it of dy * w */
static double ref_conv_dx_at(const conv_cfg *c, const float *w, const float *dy, int bi, int ci, int ih, int iw) {
    int OH = cfg_oh(c), OW = cfg_ow(c), o, kh, kw;
    double s = 0.0;
    for (o = 0; o < c->O; o++)
        for (kh = 0; kh < c->KH; kh++)
            for (kw = 0; kw < c->KW; kw++) {
                int th = ih + c->ph - kh, tw = iw + c->pw - kw, oh, ow;
                if (th < 0 || tw < 0 || th % c->sh || tw % c->sw) continue;
                oh = th / c->sh; ow = tw / c->sw;
                if (oh >= OH || ow >= OW) continue;
                s += (double)dy[((bi * c->O + o) * OH + oh) * OW + ow] * w[((o * c->C + ci) * c->KH + kh) * c->KW + kw];
            }
    return s;
}

static double ref_conv_db_at(const conv_cfg *c, const float *dy, int o) {
    int OHW = cfg_oh(c) * cfg_ow(c), bi, i;
    double s = 0.0;
    for (bi = 0; bi < c->B; bi++)
        for (i = 0; i < OHW; i++) s += dy[(bi * c->O + o) * OHW + i];
    return s;
}

/* naive max pool (padding = -inf, first maximum wins); also the argmax */
static float ref_max_pool_at(const float *plane, int H, int W, int k, int s, int p, int oh, int ow, int *arg) {
    float m = -INFINITY;
    int ih, iw, first = 1;
    for (ih = oh * s - p; ih < oh * s - p + k; ih++)
        for (iw = ow * s - p; iw < ow * s - p + k; iw++) {
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            if (first || plane[ih * W + iw] > m) { m = plane[ih * W + iw]; *arg = ih * W + iw; }
            first = 0;
        }
    return m;
}

/* naive batch norm in double: y, and (training) the batch mean and biased var */
static void ref_batch_norm(const float *x, int B, int C, int HW, const float *w, const float *b, const float *rm,
                           const float *rv, int training, double eps, double *y, double *mean, double *var) {
    int c, bi, i, n = B * HW;
    for (c = 0; c < C; c++) {
        double m = 0, v = 0;
        if (training) {
            for (bi = 0; bi < B; bi++)
                for (i = 0; i < HW; i++) m += x[(bi * C + c) * HW + i];
            m /= n;
            for (bi = 0; bi < B; bi++)
                for (i = 0; i < HW; i++) v += (x[(bi * C + c) * HW + i] - m) * (x[(bi * C + c) * HW + i] - m);
            v /= n;
        } else {
            m = rm[c];
            v = rv[c];
        }
        mean[c] = m;
        var[c] = v;
        for (bi = 0; bi < B; bi++)
            for (i = 0; i < HW; i++) {
                int k = (bi * C + c) * HW + i;
                y[k] = (x[k] - m) / sqrt(v + eps) * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
            }
    }
}

/* |a - r| / max(1, |r|) */
static double rel_err(double a, double r) { return fabs(a - r) / (fabs(r) > 1.0 ? fabs(r) : 1.0); }

static zs_ctx *new_ctx(int nth) {
    zs_ctx_params cp = zs_ctx_default_params();
    cp.n_threads = nth;
    return zs_ctx_create(&cp);
}

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* malloc copy of n floats (all-ones bits when p is NULL, so a missing
   gradient never compares equal to a present one) */
static float *dup_floats(const float *p, long long n) {
    float *q = (float *)malloc((size_t)(n ? n : 1) * 4);
    if (p) memcpy(q, p, (size_t)n * 4);
    else memset(q, 0xff, (size_t)(n ? n : 1) * 4);
    return q;
}

/* ---- conv2d forward ----------------------------------------------------- */

/* Forward of cfg against the direct reference at every (step-th) output.
   Returns the max relative error, or -1 on failure. */
static double conv_forward_err(zs_ctx *ctx, const conv_cfg *c, int step, unsigned long long seed) {
    zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(c->B, c->C, c->H, c->W), seed, 1.0f);
    zs_tensor *w = zt_input(ctx, 4, ZT_SHAPE(c->O, c->C, c->KH, c->KW), seed + 1, 1.0f);
    zs_tensor *b = c->bias ? zt_input(ctx, 1, ZT_SHAPE(c->O), seed + 2, 1.0f) : NULL;
    zs_tensor *y;
    int OH = cfg_oh(c), OW = cfg_ow(c);
    long long i, n;
    double worst = 0;
    if (!x || !w || (c->bias && !b)) return -1;
    y = zs_conv2d(ctx, x, w, b, c->sh, c->sw, c->ph, c->pw);
    if (!y || y->ndim != 4 || y->shape[0] != c->B || y->shape[1] != c->O || y->shape[2] != OH || y->shape[3] != OW) return -1;
    n = zs_numel(y);
    for (i = 0; i < n; i += step) {
        int ow = (int)(i % OW), oh = (int)(i / OW % OH), o = (int)(i / ((long long)OW * OH) % c->O), bi = (int)(i / ((long long)OW * OH * c->O));
        double r = ref_conv_at(c, (const float *)x->data, (const float *)w->data, b ? (const float *)b->data : NULL, bi, o, oh, ow);
        double e = rel_err(((const float *)y->data)[i], r);
        if (e > worst || e != e) worst = e;
    }
    return worst;
}

static void test_conv_forward_odd(void) {
    /* B=2,C=3,H=7,W=5,O=4 with every kernel/stride/padding combination that
       fits. Tolerance: float accumulation of <= 3*5*5 terms of size <= 1,
       relative error <= 2e-5. */
    static const int ks[][2] = {{3, 2}, {1, 1}, {2, 3}, {5, 5}, {7, 5}, {2, 2}};
    static const int ss[][2] = {{1, 1}, {2, 1}, {1, 2}, {2, 2}, {3, 2}};
    static const int ps[][2] = {{0, 0}, {1, 1}, {2, 2}, {0, 1}, {2, 0}};
    zs_ctx *ctx = new_ctx(1);
    int ki, si, pi, bias, runs = 0;
    for (ki = 0; ki < 6; ki++)
        for (si = 0; si < 5; si++)
            for (pi = 0; pi < 5; pi++)
                for (bias = 0; bias < 2; bias++) {
                    conv_cfg c = mkcfg(2, 3, 7, 5, 4, ks[ki][0], ks[ki][1], ss[si][0], ss[si][1], ps[pi][0], ps[pi][1], bias);
                    zs_mark m = zs_ctx_mark(ctx);
                    double e;
                    if (7 + 2 * c.ph < c.KH || 5 + 2 * c.pw < c.KW) continue;
                    e = conv_forward_err(ctx, &c, 1, 100 + (unsigned long long)runs);
                    ZT_REQUIRE(e >= 0, "k%dx%d s%dx%d p%dx%d: %.300s", c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, zs_last_error());
                    ZT_CHECK(e <= 2e-5, "k%dx%d s%dx%d p%dx%d bias %d: rel err %.3g", c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, bias, e);
                    zs_ctx_release(ctx, m);
                    runs++;
                }
    ZT_CHECK(runs > 250, "only %d configurations ran", runs);
    /* batches that split into several GEMM groups (20x20 output: 3 images a
       group, B = 7 -> 3+3+1) and a single-image 1x1 conv (direct path) */
    {
        conv_cfg cs[4];
        int i;
        cs[0] = mkcfg(7, 3, 20, 20, 5, 3, 3, 1, 1, 1, 1, 1);
        cs[1] = mkcfg(1, 6, 9, 11, 5, 1, 1, 1, 1, 0, 0, 1);
        cs[2] = mkcfg(5, 6, 9, 11, 5, 1, 1, 1, 1, 0, 0, 0);
        cs[3] = mkcfg(3, 4, 35, 33, 3, 1, 1, 1, 1, 0, 0, 1); /* 1155 outputs: one image a group */
        for (i = 0; i < 4; i++) {
            double e = conv_forward_err(ctx, &cs[i], 1, 7 + (unsigned long long)i);
            ZT_CHECK(e >= 0 && e <= 2e-5, "extra config %d: rel err %.3g (%.300s)", i, e, zs_last_error());
        }
    }
    zs_ctx_free(ctx);
}

static void test_conv_forward_model_shapes(void) {
    /* The model's convolutions, checked against the direct reference at a
       deterministic sample of ~3000 outputs each. Tolerance: relative error
       (to max(1,|ref|)) <= 1e-4 for sums of up to 3072 products. */
    conv_cfg cs[4];
    zs_ctx *ctx = new_ctx(2);
    int i;
    cs[0] = mkcfg(1, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 0);    /* ResNet-50 conv1, tokenizer conv 1 */
    cs[1] = mkcfg(1, 3, 224, 224, 768, 16, 16, 16, 16, 0, 0, 1); /* ViT patch embedding */
    cs[2] = mkcfg(2, 768, 14, 14, 512, 2, 2, 2, 2, 0, 0, 1);   /* ZSE-SBIR token head */
    cs[3] = mkcfg(1, 64, 56, 56, 256, 1, 1, 1, 1, 0, 0, 0);    /* ResNet-50 bottleneck 1x1 */
    for (i = 0; i < 4; i++) {
        zs_mark m = zs_ctx_mark(ctx);
        conv_cfg *c = &cs[i];
        long long n = (long long)c->B * c->O * cfg_oh(c) * cfg_ow(c);
        double e = conv_forward_err(ctx, c, (int)(n / 3000) | 1, 40 + (unsigned long long)i);
        ZT_CHECK(e >= 0 && e <= 1e-4, "model shape %d (%d->%d k%d s%d): rel err %.3g (%.300s)", i, c->C, c->O, c->KH, c->sh, e, zs_last_error());
        zs_ctx_release(ctx, m);
    }
    zs_ctx_free(ctx);
}

/* ---- conv2d backward ---------------------------------------------------- */

/* Runs forward + backward of loss = sum(y * r) (r = zt_rand(77, i)) and
   compares dx, dw, db with the double references at every step-th element.
   need: bit 0 x requires grad, bit 1 w, bit 2 b. Returns max rel err or -1. */
static double conv_backward_err(zs_ctx *ctx, const conv_cfg *c, int need, int step) {
    zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(c->B, c->C, c->H, c->W), 11, 1.0f);
    zs_tensor *w = zt_input(ctx, 4, ZT_SHAPE(c->O, c->C, c->KH, c->KW), 12, 1.0f);
    zs_tensor *b = c->bias ? zt_input(ctx, 1, ZT_SHAPE(c->O), 13, 1.0f) : NULL;
    zs_tensor *y, *loss;
    float *dy;
    long long i, n;
    double worst = 0;
    if (!(need & 1)) x->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    if (!(need & 2)) w->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    if (b && !(need & 4)) b->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    y = zs_conv2d(ctx, x, w, b, c->sh, c->sw, c->ph, c->pw);
    loss = zt_dot_random(ctx, y, 77);
    if (!loss || zs_backward(ctx, loss) != ZS_OK) return -1;
    n = zs_numel(y);
    dy = (float *)malloc((size_t)n * 4);
    for (i = 0; i < n; i++) dy[i] = zt_rand(77, (unsigned long long)i);
    if ((need & 1) ? !x->grad : x->grad != NULL) worst = 1e9;
    if ((need & 2) ? !w->grad : w->grad != NULL) worst = 1e9;
    if (b && ((need & 4) ? !b->grad : b->grad != NULL)) worst = 1e9;
    if (x->grad)
        for (i = 0, n = zs_numel(x); i < n; i += step) {
            int iw = (int)(i % c->W), ih = (int)(i / c->W % c->H), ci = (int)(i / ((long long)c->W * c->H) % c->C);
            int bi = (int)(i / ((long long)c->W * c->H * c->C));
            double e = rel_err(x->grad[i], ref_conv_dx_at(c, (const float *)w->data, dy, bi, ci, ih, iw));
            if (e > worst || e != e) worst = e;
        }
    if (w->grad)
        for (i = 0, n = zs_numel(w); i < n; i += step) {
            int kw = (int)(i % c->KW), kh = (int)(i / c->KW % c->KH), ci = (int)(i / ((long long)c->KW * c->KH) % c->C);
            int o = (int)(i / ((long long)c->KW * c->KH * c->C));
            double e = rel_err(w->grad[i], ref_conv_dw_at(c, (const float *)x->data, dy, o, ci, kh, kw));
            if (e > worst || e != e) worst = e;
        }
    if (b && b->grad)
        for (i = 0; i < c->O; i++) {
            double e = rel_err(b->grad[i], ref_conv_db_at(c, dy, (int)i));
            if (e > worst || e != e) worst = e;
        }
    free(dy);
    return worst;
}

static void test_conv_backward_vs_reference(void) {
    /* Analytic dx, dw, db against direct double-precision sums, including
       batches split into several GEMM groups with a remainder, the 1x1
       direct path, and only some inputs requiring grad. Tolerance: relative
       (to max(1,|ref|)) 5e-5 on small shapes, 2e-4 on model shapes. */
    zs_ctx *ctx = new_ctx(2);
    conv_cfg cs[8];
    int i, need;
    cs[0] = mkcfg(2, 3, 7, 5, 4, 3, 2, 1, 1, 0, 0, 1);
    cs[1] = mkcfg(2, 3, 7, 5, 4, 3, 2, 2, 1, 2, 1, 1);
    cs[2] = mkcfg(7, 3, 20, 20, 5, 3, 3, 1, 1, 1, 1, 1);   /* groups of 3: 3+3+1 */
    cs[3] = mkcfg(5, 2, 21, 19, 3, 3, 3, 1, 2, 1, 0, 0);   /* 210 outputs: groups of 5 */
    cs[4] = mkcfg(1, 6, 9, 11, 5, 1, 1, 1, 1, 0, 0, 1);    /* 1x1 direct */
    cs[5] = mkcfg(3, 4, 35, 33, 3, 1, 1, 1, 1, 0, 0, 1);   /* 1x1, one image a group: direct */
    cs[6] = mkcfg(4, 6, 9, 11, 5, 1, 1, 1, 1, 0, 0, 1);    /* 1x1 in a group */
    cs[7] = mkcfg(3, 5, 12, 8, 4, 4, 4, 4, 4, 0, 0, 1);    /* non-overlapping patches */
    for (i = 0; i < 8; i++)
        for (need = 1; need < 8; need++) {
            zs_mark m;
            double e;
            if (need == 4 && !cs[i].bias) continue; /* nothing would need a gradient */
            m = zs_ctx_mark(ctx);
            e = conv_backward_err(ctx, &cs[i], need, 1);
            ZT_CHECK(e >= 0 && e <= 5e-5, "config %d need %d: rel err %.3g (%.300s)", i, need, e, zs_last_error());
            zs_ctx_release(ctx, m);
        }
    {
        conv_cfg big[2];
        big[0] = mkcfg(2, 768, 14, 14, 512, 2, 2, 2, 2, 0, 0, 1); /* token head, one group */
        big[1] = mkcfg(1, 3, 64, 64, 64, 7, 7, 2, 2, 3, 3, 0);    /* conv1 geometry, 1024 outputs */
        for (i = 0; i < 2; i++) {
            zs_mark m = zs_ctx_mark(ctx);
            double e = conv_backward_err(ctx, &big[i], 7, 997);
            ZT_CHECK(e >= 0 && e <= 2e-4, "big config %d: rel err %.3g (%.300s)", i, e, zs_last_error());
            zs_ctx_release(ctx, m);
        }
    }
    zs_ctx_free(ctx);
}

typedef struct conv_user { conv_cfg c; zs_tensor *fixed_x; } conv_user;

static zs_tensor *build_conv(zs_ctx *ctx, zs_tensor **in, void *user) {
    const conv_user *u = (const conv_user *)user;
    zs_tensor *x = u->fixed_x ? u->fixed_x : in[0];
    zs_tensor *w = u->fixed_x ? in[0] : in[1];
    zs_tensor *b = u->c.bias ? (u->fixed_x ? in[1] : in[2]) : NULL;
    return zs_conv2d(ctx, x, w, b, u->c.sh, u->c.sw, u->c.ph, u->c.pw);
}

static void test_conv_gradcheck(void) {
    /* Central differences (h = 1e-2) against zs_backward for x, w, b.
       conv is linear in each input, so the difference quotient is exact up
       to float rounding of the loss: rtol 1e-2, atol 1e-3. */
    zs_ctx *ctx = new_ctx(1);
    conv_user u;
    conv_cfg cs[7];
    int i;
    cs[0] = mkcfg(2, 3, 5, 4, 2, 3, 2, 1, 1, 0, 0, 1);  /* plain, bias */
    cs[1] = mkcfg(1, 2, 5, 5, 3, 3, 3, 2, 2, 1, 1, 0);  /* strided, padded, no bias */
    cs[2] = mkcfg(2, 3, 4, 3, 2, 1, 1, 1, 1, 0, 0, 1);  /* 1x1 in a group */
    cs[3] = mkcfg(1, 3, 3, 5, 2, 1, 1, 1, 1, 0, 0, 1);  /* 1x1 direct */
    cs[4] = mkcfg(3, 2, 6, 6, 2, 2, 2, 2, 2, 0, 0, 1);  /* patches */
    cs[5] = mkcfg(1, 2, 7, 5, 2, 3, 3, 2, 1, 2, 1, 1);  /* padding wider than half the kernel */
    cs[6] = mkcfg(2, 1, 5, 7, 1, 3, 3, 1, 3, 1, 1, 0);  /* stride 3 along W, one channel */
    for (i = 0; i < 7; i++) {
        zs_mark m = zs_ctx_mark(ctx);
        zs_tensor *in[3];
        const conv_cfg *c = &cs[i];
        u.c = *c;
        u.fixed_x = NULL;
        in[0] = zt_input(ctx, 4, ZT_SHAPE(c->B, c->C, c->H, c->W), 21 + (unsigned long long)i, 1.0f);
        in[1] = zt_input(ctx, 4, ZT_SHAPE(c->O, c->C, c->KH, c->KW), 31 + (unsigned long long)i, 1.0f);
        in[2] = zt_input(ctx, 1, ZT_SHAPE(c->O), 41 + (unsigned long long)i, 1.0f);
        ZT_GRADCHECK(ctx, build_conv, in, c->bias ? 3 : 2, &u, 1e-2, 1e-3, 0);
        /* x as a constant: only w (and b) get gradients */
        in[0]->flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
        u.fixed_x = in[0];
        ZT_GRADCHECK(ctx, build_conv, in + 1, c->bias ? 2 : 1, &u, 1e-2, 1e-3, 0);
        zs_ctx_release(ctx, m);
    }
    zs_ctx_free(ctx);
}

static void test_conv_grads_accumulate(void) {
    /* backward ACCUMULATES: a second zs_backward over the same tape doubles
       every leaf gradient (conv grouped and 1x1 direct paths, batch norm,
       pooling), up to rounding (col2im adds overlapping contributions one
       by one): relative 1e-5 */
    zs_ctx *ctx = new_ctx(1);
    conv_cfg cs[2];
    int i, mode;
    cs[0] = mkcfg(3, 4, 6, 5, 3, 3, 3, 1, 2, 1, 1, 1);
    cs[1] = mkcfg(1, 4, 6, 5, 3, 1, 1, 1, 1, 0, 0, 1);
    for (i = 0; i < 4; i++) {
        const conv_cfg *c = &cs[i < 2 ? i : 0];
        zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(c->B, c->C, c->H, c->W), 1, 1.0f);
        zs_tensor *w = zt_input(ctx, 4, ZT_SHAPE(c->O, c->C, c->KH, c->KW), 2, 1.0f);
        zs_tensor *b = zt_input(ctx, 1, ZT_SHAPE(c->O), 3, 1.0f);
        zs_tensor *rm = zt_input(ctx, 1, ZT_SHAPE(c->C), 4, 0.1f), *rv = zt_input(ctx, 1, ZT_SHAPE(c->C), 4, 0.1f), *y, *loss;
        float *g1[3];
        zs_tensor *ts[3];
        int k;
        ts[0] = x; ts[1] = w; ts[2] = b;
        zs_tensor_fill(rv, 1.0f);
        mode = i == 3;
        zs_set_training(ctx, mode);
        if (i < 2) y = zs_conv2d(ctx, x, w, b, c->sh, c->sw, c->ph, c->pw);
        else {
            ts[1] = w = zt_input(ctx, 1, ZT_SHAPE(c->C), 5, 1.0f);
            ts[2] = b = zt_input(ctx, 1, ZT_SHAPE(c->C), 6, 1.0f);
            y = zs_avg_pool_global(ctx, zs_max_pool2d(ctx, zs_batch_norm(ctx, x, w, b, rm, rv, 0.1f, 1e-5f), 3, 2, 1));
        }
        loss = zt_dot_random(ctx, y, 5);
        ZT_REQUIRE(loss && zs_backward(ctx, loss) == ZS_OK, "case %d: %.300s", i, zs_last_error());
        for (k = 0; k < 3; k++) g1[k] = dup_floats(ts[k]->grad, zs_numel(ts[k]));
        ZT_REQUIRE(zs_backward(ctx, loss) == ZS_OK, "case %d second backward: %.300s", i, zs_last_error());
        for (k = 0; k < 3; k++) {
            long long j, n = zs_numel(ts[k]), bad = 0;
            for (j = 0; j < n; j++) bad += rel_err(ts[k]->grad[j], 2.0 * g1[k][j]) > 1e-5;
            ZT_CHECK(bad == 0, "case %d input %d: %lld gradients not doubled", i, k, bad);
            free(g1[k]);
        }
    }
    zs_set_training(ctx, 0);
    zs_ctx_free(ctx);
}

/* ---- threads: bit-identical results ------------------------------------ */

typedef struct run_out { float *y, *gx, *gw, *gb; long long ny, nx, nw, nb; } run_out;

static void run_free(run_out *r) { free(r->y); free(r->gx); free(r->gw); free(r->gb); memset(r, 0, sizeof *r); }

/* op 0: conv2d(cfg), op 1: batch norm train, op 2: batch norm eval, op 3: max pool */
static int run_case(int nth, int op, const conv_cfg *c, run_out *r) {
    zs_ctx *ctx = new_ctx(nth);
    zs_tensor *x, *w = NULL, *b = NULL, *y = NULL, *loss;
    int ok;
    memset(r, 0, sizeof *r);
    if (!ctx) return 0;
    x = zt_input(ctx, 4, ZT_SHAPE(c->B, c->C, c->H, c->W), 5, 1.0f);
    if (op == 0) {
        w = zt_input(ctx, 4, ZT_SHAPE(c->O, c->C, c->KH, c->KW), 6, 0.3f);
        b = zt_input(ctx, 1, ZT_SHAPE(c->O), 7, 1.0f);
        y = zs_conv2d(ctx, x, w, b, c->sh, c->sw, c->ph, c->pw);
    } else if (op == 1 || op == 2) {
        zs_tensor *rm = zt_input(ctx, 1, ZT_SHAPE(c->C), 8, 0.2f), *rv = zt_input(ctx, 1, ZT_SHAPE(c->C), 9, 0.2f);
        zs_tensor_fill(rv, 1.3f);
        w = zt_input(ctx, 1, ZT_SHAPE(c->C), 6, 1.0f);
        b = zt_input(ctx, 1, ZT_SHAPE(c->C), 7, 1.0f);
        zs_set_training(ctx, op == 1);
        y = zs_batch_norm(ctx, x, w, b, rm, rv, 0.1f, 1e-5f);
    } else {
        y = zs_max_pool2d(ctx, x, 3, 2, 1);
    }
    loss = zt_dot_random(ctx, y, 3);
    ok = loss && zs_backward(ctx, loss) == ZS_OK;
    if (ok) {
        r->ny = zs_numel(y); r->y = dup_floats((const float *)y->data, r->ny);
        r->nx = zs_numel(x); r->gx = dup_floats(x->grad, r->nx);
        if (w) { r->nw = zs_numel(w); r->gw = dup_floats(w->grad, r->nw); }
        if (b) { r->nb = zs_numel(b); r->gb = dup_floats(b->grad, r->nb); }
    }
    zs_ctx_free(ctx);
    return ok;
}

static int same(const float *a, const float *b, long long n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, (size_t)n * 4) == 0;
}

static void test_conv_threads_bit_identical(void) {
    /* forward output and every gradient must be byte-equal with 1 and 2
       threads: conv2d (grouped, single-image, 1x1 direct and grouped, patch),
       batch norm (training, eval), max pool */
    conv_cfg cs[9];
    int ops[9], i;
    cs[0] = mkcfg(5, 8, 20, 20, 16, 3, 3, 1, 1, 1, 1, 1); ops[0] = 0; /* groups 3+2 */
    cs[1] = mkcfg(2, 3, 64, 64, 16, 7, 7, 2, 2, 3, 3, 1); ops[1] = 0; /* one image a group */
    cs[2] = mkcfg(2, 16, 40, 40, 32, 1, 1, 1, 1, 0, 0, 1); ops[2] = 0; /* 1x1 direct */
    cs[3] = mkcfg(6, 16, 10, 10, 24, 1, 1, 1, 1, 0, 0, 1); ops[3] = 0; /* 1x1 grouped */
    cs[4] = mkcfg(3, 32, 14, 14, 16, 2, 2, 2, 2, 0, 0, 1); ops[4] = 0; /* patches */
    cs[5] = mkcfg(4, 24, 64, 63, 0, 1, 1, 1, 1, 0, 0, 0); ops[5] = 1; /* big enough to split channels */
    cs[6] = mkcfg(4, 24, 64, 63, 0, 1, 1, 1, 1, 0, 0, 0); ops[6] = 2;
    cs[7] = mkcfg(3, 24, 33, 31, 0, 1, 1, 1, 1, 0, 0, 0); ops[7] = 3;
    cs[8] = mkcfg(2, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1); ops[8] = 0; /* GEMMs big enough to split */
    for (i = 0; i < 9; i++) {
        run_out r1, r2;
        int ok1 = run_case(1, ops[i], &cs[i], &r1), ok2 = run_case(2, ops[i], &cs[i], &r2);
        ZT_CHECK(ok1 && ok2, "case %d failed: %.300s", i, zs_last_error());
        if (ok1 && ok2) {
            ZT_CHECK(same(r1.y, r2.y, r1.ny), "case %d: forward differs between 1 and 2 threads", i);
            ZT_CHECK(same(r1.gx, r2.gx, r1.nx), "case %d: dx differs between 1 and 2 threads", i);
            ZT_CHECK(same(r1.gw, r2.gw, r1.nw), "case %d: dw differs between 1 and 2 threads", i);
            ZT_CHECK(same(r1.gb, r2.gb, r1.nb), "case %d: db differs between 1 and 2 threads", i);
        }
        run_free(&r1);
        run_free(&r2);
    }
}

/* ---- errors ------------------------------------------------------------- */

static void test_conv_shape_errors(void) {
    zs_ctx *ctx = new_ctx(1);
    zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(2, 3, 7, 5), 1, 1.0f);
    zs_tensor *w = zt_input(ctx, 4, ZT_SHAPE(4, 2, 3, 2), 2, 1.0f);
    zs_tensor *w3 = zt_input(ctx, 4, ZT_SHAPE(4, 3, 3, 2), 2, 1.0f);
    zs_tensor *b5 = zt_input(ctx, 1, ZT_SHAPE(5), 3, 1.0f);
    zs_tensor *x3 = zt_input(ctx, 3, ZT_SHAPE(3, 7, 5), 4, 1.0f);
    zs_tensor *v3 = zt_input(ctx, 1, ZT_SHAPE(3), 5, 1.0f), *v4 = zt_input(ctx, 1, ZT_SHAPE(4), 6, 1.0f);
    zs_tensor *x11 = zt_input(ctx, 2, ZT_SHAPE(1, 3), 7, 1.0f);
    /* channel mismatch */
    ZT_CHECK(zs_conv2d(ctx, x, w, NULL, 1, 1, 0, 0) == NULL, "channel mismatch accepted");
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_SHAPE, "status %d", zs_ctx_status(ctx));
    ZT_CHECK(has(zs_last_error(), "zs_conv2d") && has(zs_last_error(), "[2,3,7,5]") && has(zs_last_error(), "[4,2,3,2]"),
             "message: %.300s", zs_last_error());
    zs_ctx_reset(ctx);
    x = zt_input(ctx, 4, ZT_SHAPE(2, 3, 7, 5), 1, 1.0f);
    w3 = zt_input(ctx, 4, ZT_SHAPE(4, 3, 3, 2), 2, 1.0f);
    b5 = zt_input(ctx, 1, ZT_SHAPE(5), 3, 1.0f);
    x3 = zt_input(ctx, 3, ZT_SHAPE(3, 7, 5), 4, 1.0f);
    v3 = zt_input(ctx, 1, ZT_SHAPE(3), 5, 1.0f);
    v4 = zt_input(ctx, 1, ZT_SHAPE(4), 6, 1.0f);
    x11 = zt_input(ctx, 2, ZT_SHAPE(1, 3), 7, 1.0f);
    /* bias of the wrong size */
    ZT_CHECK(zs_conv2d(ctx, x, w3, b5, 1, 1, 0, 0) == NULL && has(zs_last_error(), "[5]") && has(zs_last_error(), "bias"),
             "bias [5] for O=4: %.300s", zs_last_error());
    /* x not 4-D */
    ZT_CHECK(zs_conv2d(ctx, x3, w3, NULL, 1, 1, 0, 0) == NULL && has(zs_last_error(), "[3,7,5]"), "3-D x: %.300s", zs_last_error());
    /* kernel larger than the padded input */
    {
        zs_tensor *wbig = zt_input(ctx, 4, ZT_SHAPE(4, 3, 9, 2), 2, 1.0f);
        ZT_CHECK(zs_conv2d(ctx, x, wbig, NULL, 1, 1, 0, 0) == NULL && has(zs_last_error(), "[4,3,9,2]"), "9x2 kernel on 7x5: %.300s", zs_last_error());
        ZT_CHECK(zs_conv2d(ctx, x, wbig, NULL, 1, 1, 1, 0) != NULL, "9x2 kernel on 7x5 padded by 1 must work: %.300s", zs_last_error());
    }
    ZT_CHECK(zs_ctx_status(ctx) == ZS_ERR_SHAPE, "sticky status %d", zs_ctx_status(ctx));
    /* bad stride / padding are argument errors */
    zs_ctx_reset(ctx);
    x = zt_input(ctx, 4, ZT_SHAPE(2, 3, 7, 5), 1, 1.0f);
    w3 = zt_input(ctx, 4, ZT_SHAPE(4, 3, 3, 2), 2, 1.0f);
    ZT_CHECK(zs_conv2d(ctx, x, w3, NULL, 0, 1, 0, 0) == NULL && zs_ctx_status(ctx) == ZS_ERR_ARG, "stride 0 accepted");
    ZT_CHECK(zs_conv2d(ctx, x, w3, NULL, 1, 1, -1, 0) == NULL, "negative padding accepted");
    /* NULL inputs propagate silently */
    zs_ctx_reset(ctx);
    x = zt_input(ctx, 4, ZT_SHAPE(2, 3, 7, 5), 1, 1.0f);
    w3 = zt_input(ctx, 4, ZT_SHAPE(4, 3, 3, 2), 2, 1.0f);
    x3 = zt_input(ctx, 3, ZT_SHAPE(3, 7, 5), 4, 1.0f);
    v3 = zt_input(ctx, 1, ZT_SHAPE(3), 5, 1.0f);
    v4 = zt_input(ctx, 1, ZT_SHAPE(4), 6, 1.0f);
    x11 = zt_input(ctx, 2, ZT_SHAPE(1, 3), 7, 1.0f);
    ZT_CHECK(zs_conv2d(ctx, NULL, w3, NULL, 1, 1, 0, 0) == NULL && zs_max_pool2d(ctx, NULL, 3, 2, 1) == NULL &&
                 zs_avg_pool_global(ctx, NULL) == NULL && zs_batch_norm(ctx, NULL, NULL, NULL, NULL, NULL, 0.1f, 1e-5f) == NULL &&
                 zs_ctx_status(ctx) == ZS_OK,
             "NULL input: status %d", zs_ctx_status(ctx));
    /* pooling */
    ZT_CHECK(zs_max_pool2d(ctx, x, 3, 2, 2) == NULL && zs_ctx_status(ctx) == ZS_ERR_ARG, "max pool padding > k/2 accepted");
    ZT_CHECK(zs_max_pool2d(ctx, x3, 3, 2, 1) == NULL && has(zs_last_error(), "[3,7,5]"), "max pool 3-D: %.300s", zs_last_error());
    ZT_CHECK(zs_max_pool2d(ctx, x, 9, 1, 0) == NULL && has(zs_last_error(), "[2,3,7,5]"), "max pool 9 on 7x5: %.300s", zs_last_error());
    ZT_CHECK(zs_avg_pool_global(ctx, x3) == NULL && has(zs_last_error(), "[3,7,5]"), "avg pool 3-D: %.300s", zs_last_error());
    /* batch norm */
    zs_set_training(ctx, 1);
    ZT_CHECK(zs_batch_norm(ctx, x, v4, NULL, NULL, NULL, 0.1f, 1e-5f) == NULL && has(zs_last_error(), "[2,3,7,5]") &&
                 has(zs_last_error(), "[4]"),
             "bn weight [4] for C=3: %.300s", zs_last_error());
    ZT_CHECK(zs_batch_norm(ctx, x, v3, v3, v4, NULL, 0.1f, 1e-5f) == NULL && has(zs_last_error(), "running_mean"),
             "bn running_mean [4]: %.300s", zs_last_error());
    ZT_CHECK(zs_batch_norm(ctx, x11, NULL, NULL, NULL, NULL, 0.1f, 1e-5f) == NULL && has(zs_last_error(), "[1,3]"),
             "bn training with one value per channel: %.300s", zs_last_error());
    ZT_CHECK(zs_batch_norm(ctx, x, v3, v3, NULL, NULL, 0.1f, 1e-5f) != NULL, "bn training without running stats: %.300s", zs_last_error());
    zs_set_training(ctx, 0);
    ZT_CHECK(zs_batch_norm(ctx, x, v3, v3, NULL, NULL, 0.1f, 1e-5f) == NULL && has(zs_last_error(), "running"),
             "bn eval without running stats: %.300s", zs_last_error());
    ZT_CHECK(zs_batch_norm(ctx, x11, NULL, NULL, v3, v3, 0.1f, 1e-5f) != NULL, "bn eval on [1,3]: %.300s", zs_last_error());
    zs_ctx_free(ctx);
}

/* ---- pooling ------------------------------------------------------------ */

static void test_conv_max_pool_forward(void) {
    /* values must equal the naive reference exactly; the gradient (dy = r)
       must land on the reference argmax (first maximum on ties) */
    static const int kc[][5] = {{7, 5, 3, 2, 1}, {7, 5, 2, 2, 0}, {7, 5, 3, 1, 1}, {7, 5, 3, 3, 0},
                                {1, 1, 1, 1, 0}, {6, 9, 4, 3, 2}, {112, 112, 3, 2, 1}};
    zs_ctx *ctx = new_ctx(2);
    int t;
    for (t = 0; t < 7; t++) {
        int H = kc[t][0], W = kc[t][1], k = kc[t][2], s = kc[t][3], p = kc[t][4];
        int B = H > 100 ? 1 : 2, C = H > 100 ? 64 : 3;
        int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1, pl, oh, ow, bad = 0;
        zs_mark m = zs_ctx_mark(ctx);
        zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(B, C, H, W), 50 + (unsigned long long)t, 1.0f);
        zs_tensor *y = zs_max_pool2d(ctx, x, k, s, p);
        float *g;
        ZT_REQUIRE(y && y->shape[2] == OH && y->shape[3] == OW, "case %d: %.300s", t, zs_last_error());
        ZT_REQUIRE(zs_backward(ctx, zt_dot_random(ctx, y, 9)) == ZS_OK, "backward: %.300s", zs_last_error());
        g = (float *)calloc((size_t)zs_numel(x), 4);
        for (pl = 0; pl < B * C; pl++)
            for (oh = 0; oh < OH; oh++)
                for (ow = 0; ow < OW; ow++) {
                    int arg = -1, j = (pl * OH + oh) * OW + ow;
                    float r = ref_max_pool_at((const float *)x->data + pl * H * W, H, W, k, s, p, oh, ow, &arg);
                    if (((const float *)y->data)[j] != r) bad++;
                    g[pl * H * W + arg] += zt_rand(9, (unsigned long long)j);
                }
        ZT_CHECK(bad == 0, "case %d: %d values differ", t, bad);
        ZT_CHECK(memcmp(g, x->grad, (size_t)zs_numel(x) * 4) == 0, "case %d: gradient not at the argmax", t);
        free(g);
        zs_ctx_release(ctx, m);
    }
    /* ties: every value equal (also all -inf), the gradient goes to the first
       element of each window (row-major), padding never counts */
    for (t = 0; t < 2; t++) {
        zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(1, 1, 4, 4), 1, 1.0f), *y;
        float want[16], v = t ? -INFINITY : -2.0f;
        int i;
        zs_tensor_fill(x, v);
        y = zs_max_pool2d(ctx, x, 3, 2, 1); /* windows start at rows/cols -1, 1 */
        ZT_REQUIRE(y && zs_backward(ctx, zt_dot_random(ctx, y, 4)) == ZS_OK, "%.300s", zs_last_error());
        for (i = 0; i < 4; i++) ZT_CHECK(((float *)y->data)[i] == v, "tie value %g", (double)((float *)y->data)[i]);
        memset(want, 0, sizeof want);
        want[0] += zt_rand(4, 0); want[1] += zt_rand(4, 1); want[4] += zt_rand(4, 2); want[5] += zt_rand(4, 3);
        ZT_CHECK(memcmp(want, x->grad, sizeof want) == 0, "ties (%g): gradient not on the first maximum", (double)v);
    }
    zs_ctx_free(ctx);
}

/* the fast max-pool kernel (column maxima, vectorised with AVX2) against
   the plain loop zs__max_pool_ref, both in dev/conv.h: values equal (==, or
   both NaN) and argmax indices identical, on odd shapes with random values,
   heavy ties (values in {-1, 0, 1}, +0/-0 mixed), and NaN/inf sprinkled */
static void test_conv_max_pool_kernel_vs_ref(void) {
    static const int kc[][5] = {{7, 5, 3, 2, 1}, {7, 5, 2, 2, 0}, {7, 5, 3, 1, 1}, {7, 5, 3, 3, 0}, {1, 1, 1, 1, 0},
                                {6, 9, 4, 3, 2}, {13, 21, 5, 2, 2}, {17, 19, 2, 1, 1}, {112, 112, 3, 2, 1}};
    zs__arena ws;
    int t, kind;
    zs__arena_init(&ws, (size_t)1 << 16, NULL);
    for (t = 0; t < 9; t++)
        for (kind = 0; kind < 3; kind++) {
            int H = kc[t][0], W = kc[t][1], P = H > 100 ? 64 : 6;
            long long n = (long long)P * H * W, no, i, bad = 0, badi = 0;
            zs__pool_arg a1, a2;
            float *x;
#ifdef __FAST_MATH__
            if (kind == 2) continue; /* -ffast-math assumes no NaN/inf */
#endif
            x = (float *)malloc((size_t)n * 4);
            memset(&a1, 0, sizeof a1);
            a1.H = H; a1.W = W; a1.k = kc[t][2]; a1.s = kc[t][3]; a1.p = kc[t][4];
            a1.OH = (H + 2 * a1.p - a1.k) / a1.s + 1;
            a1.OW = (W + 2 * a1.p - a1.k) / a1.s + 1;
            no = (long long)P * a1.OH * a1.OW;
            for (i = 0; i < n; i++) {
                float r = zt_rand(90 + (unsigned long long)kind, (unsigned long long)i);
                if (kind == 0) x[i] = r;
                else if (kind == 1) x[i] = r < -0.33f ? -1.0f : (r < 0.0f ? -0.0f : (r < 0.33f ? 0.0f : 1.0f));
                else x[i] = r < -0.9f ? NAN : (r < -0.8f ? -INFINITY : (r > 0.9f ? INFINITY : r));
            }
            a2 = a1;
            a1.x = a2.x = x;
            a1.y = (float *)malloc((size_t)no * 4); a2.y = (float *)malloc((size_t)no * 4);
            a1.idx = (int32_t *)malloc((size_t)no * 4); a2.idx = (int32_t *)malloc((size_t)no * 4);
            zs__max_pool_rows(&a1, 0, P, &ws);
            zs__max_pool_ref(&a2, 0, P);
            for (i = 0; i < no; i++) {
                if (!(a1.y[i] == a2.y[i] || (a1.y[i] != a1.y[i] && a2.y[i] != a2.y[i]))) bad++;
                if (a1.idx[i] != a2.idx[i]) badi++;
            }
            ZT_CHECK(bad == 0 && badi == 0, "case %d data %d: %lld values, %lld indices differ", t, kind, bad, badi);
            /* values only (inference) */
            free(a1.idx);
            a1.idx = NULL;
            zs__max_pool_rows(&a1, 0, P, &ws);
            for (i = 0, bad = 0; i < no; i++)
                if (!(a1.y[i] == a2.y[i] || (a1.y[i] != a1.y[i] && a2.y[i] != a2.y[i]))) bad++;
            ZT_CHECK(bad == 0, "case %d data %d without indices: %lld values differ", t, kind, bad);
            free(x); free(a1.y); free(a2.y); free(a2.idx);
        }
    zs__arena_free(&ws);
}

/* distinct values at least 0.05 apart (so h = 1e-2 never changes an argmax) */
static void fill_distinct(zs_tensor *t, unsigned seed) {
    long long i, n = zs_numel(t);
    for (i = 0; i < n; i++) ((float *)t->data)[i] = (float)((i * 7919 + seed) % n) * 0.05f - 0.025f * (float)n;
}

static zs_tensor *build_max_pool(zs_ctx *ctx, zs_tensor **in, void *user) {
    const int *p = (const int *)user;
    return zs_max_pool2d(ctx, in[0], p[0], p[1], p[2]);
}
static zs_tensor *build_avg_pool(zs_ctx *ctx, zs_tensor **in, void *user) {
    (void)user;
    return zs_avg_pool_global(ctx, in[0]);
}

static void test_conv_pool_gradcheck(void) {
    /* max pool is piecewise linear, inputs have no ties within 0.05: the
       difference quotient is exact up to rounding (rtol 1e-2, atol 1e-3);
       the same for the linear global average pool */
    static const int pc[][3] = {{3, 2, 1}, {2, 2, 0}, {3, 1, 1}, {3, 3, 0}};
    zs_ctx *ctx = new_ctx(1);
    int i;
    for (i = 0; i < 4; i++) {
        zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(2, 3, 7, 5), 1, 1.0f);
        fill_distinct(x, (unsigned)i * 13u + 1u);
        ZT_GRADCHECK(ctx, build_max_pool, &x, 1, (void *)pc[i], 1e-2, 1e-3, 0);
    }
    {
        zs_tensor *x = zt_input(ctx, 4, ZT_SHAPE(3, 5, 7, 3), 2, 1.0f), *y;
        int bi, c, k, bad = 0;
        ZT_GRADCHECK(ctx, build_avg_pool, &x, 1, NULL, 1e-2, 1e-3, 0);
        y = zs_avg_pool_global(ctx, x);
        ZT_REQUIRE(y && y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 5, "avg pool shape: %.300s", zs_last_error());
        for (bi = 0; bi < 3; bi++)
            for (c = 0; c < 5; c++) {
                double s = 0;
                for (k = 0; k < 21; k++) s += ((const float *)x->data)[(bi * 5 + c) * 21 + k];
                if (fabs(((const float *)y->data)[bi * 5 + c] - s / 21) > 1e-6) bad++;
            }
        ZT_CHECK(bad == 0, "avg pool: %d values differ from the reference", bad);
        x = zt_input(ctx, 4, ZT_SHAPE(1, 2, 1, 1), 3, 1.0f);
        ZT_GRADCHECK(ctx, build_avg_pool, &x, 1, NULL, 1e-2, 1e-3, 0);
    }
    zs_ctx_free(ctx);
}

/* ---- batch norm --------------------------------------------------------- */

static void test_conv_batch_norm_forward(void) {
    /* training (batch statistics) and eval (running statistics) against the
       double reference, for [B,C], [B,C,L], [B,C,H,W], with and without w/b.
       Tolerance: 2e-5 relative to max(1, |ref|). */
    static const int shapes[][4] = {{5, 3, 1, 1}, {3, 4, 5, 7}, {2, 6, 9, 0}, {16, 64, 1, 1}, {2, 5, 13, 11}};
    zs_ctx *ctx = new_ctx(2);
    int si, mode, aff;
    for (si = 0; si < 5; si++)
        for (mode = 0; mode < 2; mode++)
            for (aff = 0; aff < 3; aff++) {
                int B = shapes[si][0], C = shapes[si][1], H = shapes[si][2], W = shapes[si][3];
                int nd = H == 1 && W == 1 ? 2 : (W == 0 ? 3 : 4), HW = nd == 2 ? 1 : (nd == 3 ? H : H * W);
                zs_mark m = zs_ctx_mark(ctx);
                zs_tensor *x = nd == 2 ? zt_input(ctx, 2, ZT_SHAPE(B, C), 60, 2.0f)
                             : nd == 3 ? zt_input(ctx, 3, ZT_SHAPE(B, C, H), 60, 2.0f)
                                       : zt_input(ctx, 4, ZT_SHAPE(B, C, H, W), 60, 2.0f);
                zs_tensor *w = aff ? zt_input(ctx, 1, ZT_SHAPE(C), 61, 1.5f) : NULL;
                zs_tensor *b = aff == 1 ? zt_input(ctx, 1, ZT_SHAPE(C), 62, 1.0f) : NULL;
                zs_tensor *rm = zt_input(ctx, 1, ZT_SHAPE(C), 63, 0.5f), *rv = zt_input(ctx, 1, ZT_SHAPE(C), 64, 0.5f), *y;
                double *ry = (double *)malloc((size_t)zs_numel(x) * sizeof(double)), mean[64], var[64], worst = 0;
                float rv0[64];
                long long i;
                int c;
                for (i = 0; i < zs_numel(x); i++) ((float *)x->data)[i] += 0.7f; /* nonzero mean */
                for (c = 0; c < C; c++) ((float *)rv->data)[c] += 1.0f;           /* positive variance */
                memcpy(rv0, rv->data, (size_t)C * 4);
                zs_set_training(ctx, mode);
                ref_batch_norm((const float *)x->data, B, C, HW, w ? (const float *)w->data : NULL, b ? (const float *)b->data : NULL,
                               (const float *)rm->data, (const float *)rv->data, mode, 1e-5, ry, mean, var);
                y = zs_batch_norm(ctx, x, w, b, rm, rv, 0.1f, 1e-5f);
                ZT_REQUIRE(y && y->ndim == nd, "shape %d mode %d: %.300s", si, mode, zs_last_error());
                for (i = 0; i < zs_numel(x); i++) {
                    double e = rel_err(((const float *)y->data)[i], ry[i]);
                    if (e > worst || e != e) worst = e;
                }
                ZT_CHECK(worst <= 2e-5, "shape %d mode %d affine %d: rel err %.3g", si, mode, aff, worst);
                if (!mode) ZT_CHECK(memcmp(rv0, rv->data, (size_t)C * 4) == 0, "eval changed the running stats");
                free(ry);
                zs_ctx_release(ctx, m);
            }
    zs_set_training(ctx, 0);
    zs_ctx_free(ctx);
}

static void test_conv_batch_norm_running_stats(void) {
    /* torch: running = (1 - m) * running + m * stat, var unbiased (n/(n-1)) */
    zs_ctx *ctx = new_ctx(1);
    static const float x1v[4] = {1, 2, 3, 4}, x2v[4] = {2, 4, 6, 8};
    zs_tensor *x1, *x2, *rm, *rv, *y;
    int64_t s2[2], s1[1];
    zs_set_training(ctx, 1);
    s2[0] = 4; s2[1] = 1; s1[0] = 1;
    x1 = zs_from_data(ctx, x1v, 2, s2);
    x2 = zs_from_data(ctx, x2v, 2, s2);
    rm = zs_zeros(ctx, 1, s1);
    rv = zs_zeros(ctx, 1, s1);
    zs_tensor_fill(rv, 1.0f);
    /* call 1: mean 2.5, var 1.25 (unbiased 5/3): rm = 0.25, rv = 0.9 + 1/6 */
    y = zs_batch_norm(ctx, x1, NULL, NULL, rm, rv, 0.1f, 1e-5f);
    ZT_REQUIRE(y != NULL, "%.300s", zs_last_error());
    ZT_CHECK(fabs(((float *)rm->data)[0] - 0.25) < 1e-7 && fabs(((float *)rv->data)[0] - 1.0666667) < 1e-6,
             "after call 1: %.8g %.8g", ((float *)rm->data)[0], ((float *)rv->data)[0]);
    ZT_CHECK(fabs(((float *)y->data)[0] - (1 - 2.5) / sqrt(1.25 + 1e-5)) < 1e-6, "normalised value %.8g", ((float *)y->data)[0]);
    /* call 2: mean 5, unbiased var 20/3: rm = 0.225 + 0.5, rv = 0.96 + 2/3 */
    y = zs_batch_norm(ctx, x2, NULL, NULL, rm, rv, 0.1f, 1e-5f);
    ZT_REQUIRE(y != NULL, "%.300s", zs_last_error());
    ZT_CHECK(fabs(((float *)rm->data)[0] - 0.725) < 1e-7 && fabs(((float *)rv->data)[0] - 1.6266667) < 1e-6,
             "after call 2: %.8g %.8g", ((float *)rm->data)[0], ((float *)rv->data)[0]);
    /* random [B,C,H,W], momentum 0.3, two calls, against the formula in double */
    {
        zs_tensor *xa = zt_input(ctx, 4, ZT_SHAPE(3, 5, 4, 6), 70, 2.0f), *xb = zt_input(ctx, 4, ZT_SHAPE(3, 5, 4, 6), 71, 1.0f);
        zs_tensor *m5 = zt_input(ctx, 1, ZT_SHAPE(5), 72, 1.0f), *v5 = zt_input(ctx, 1, ZT_SHAPE(5), 73, 0.5f);
        double em[5], ev[5], mean[5], var[5], *tmp = (double *)malloc(360 * sizeof(double)), worst = 0;
        int c, call;
        for (c = 0; c < 5; c++) {
            ((float *)v5->data)[c] += 1.0f;
            em[c] = ((float *)m5->data)[c];
            ev[c] = ((float *)v5->data)[c];
        }
        for (call = 0; call < 2; call++) {
            zs_tensor *xx = call ? xb : xa;
            ref_batch_norm((const float *)xx->data, 3, 5, 24, NULL, NULL, NULL, NULL, 1, 1e-5, tmp, mean, var);
            for (c = 0; c < 5; c++) {
                em[c] = 0.7 * em[c] + 0.3 * mean[c];
                ev[c] = 0.7 * ev[c] + 0.3 * var[c] * 72.0 / 71.0;
            }
            ZT_CHECK(zs_batch_norm(ctx, xx, NULL, NULL, m5, v5, 0.3f, 1e-5f) != NULL, "%.300s", zs_last_error());
        }
        for (c = 0; c < 5; c++) {
            double e1 = rel_err(((float *)m5->data)[c], em[c]), e2 = rel_err(((float *)v5->data)[c], ev[c]);
            if (e1 > worst) worst = e1;
            if (e2 > worst) worst = e2;
        }
        ZT_CHECK(worst < 1e-6, "running stats after 2 calls: rel err %.3g", worst);
        free(tmp);
    }
    zs_set_training(ctx, 0);
    zs_ctx_free(ctx);
}

typedef struct bn_user { zs_tensor *rm, *rv; int has_w, has_b; } bn_user;

static zs_tensor *build_bn(zs_ctx *ctx, zs_tensor **in, void *user) {
    const bn_user *u = (const bn_user *)user;
    return zs_batch_norm(ctx, in[0], u->has_w ? in[1] : NULL, u->has_b ? in[1 + u->has_w] : NULL, u->rm, u->rv, 0.1f, 1e-5f);
}

static void test_conv_batch_norm_gradcheck(void) {
    /* training (through the batch statistics) and eval (affine) for [B,C],
       [B,C,H,W], w and b present, only w, neither. Training is nonlinear:
       with h = 1e-2 and unit-scale inputs the central-difference error is
       O(h^2) relative, so rtol 2e-2, atol 2e-3; eval is linear: 1e-2/1e-3. */
    zs_ctx *ctx = new_ctx(1);
    int mode, sh, aff;
    for (mode = 0; mode < 2; mode++)
        for (sh = 0; sh < 3; sh++)
            for (aff = 0; aff < 3; aff++) {
                zs_mark m = zs_ctx_mark(ctx);
                int C = sh == 0 ? 3 : (sh == 1 ? 2 : 4);
                zs_tensor *in[3];
                bn_user u;
                in[0] = sh == 0 ? zt_input(ctx, 2, ZT_SHAPE(7, 3), 80, 1.0f)
                      : sh == 1 ? zt_input(ctx, 4, ZT_SHAPE(2, 2, 3, 5), 81, 1.0f)
                                : zt_input(ctx, 3, ZT_SHAPE(3, 4, 5), 82, 1.0f);
                in[1] = zt_input(ctx, 1, ZT_SHAPE(C), 83, 1.0f);
                in[2] = zt_input(ctx, 1, ZT_SHAPE(C), 84, 1.0f);
                u.rm = zt_input(ctx, 1, ZT_SHAPE(C), 85, 0.3f);
                u.rv = zt_input(ctx, 1, ZT_SHAPE(C), 86, 0.3f);
                u.rm->flags = u.rv->flags = 0;
                zs_tensor_fill(u.rv, 0.8f);
                u.has_w = aff < 2;
                u.has_b = aff == 0;
                if (mode == 1 && aff == 2) u.rm = u.rv = NULL; /* training without running stats */
                zs_set_training(ctx, mode);
                if (mode) ZT_GRADCHECK(ctx, build_bn, in, 1 + u.has_w + u.has_b, &u, 2e-2, 2e-3, 0);
                else ZT_GRADCHECK(ctx, build_bn, in, 1 + u.has_w + u.has_b, &u, 1e-2, 1e-3, 0);
                zs_ctx_release(ctx, m);
            }
    zs_set_training(ctx, 0);
    zs_ctx_free(ctx);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_conv_forward_odd);
    ZT_RUN(test_conv_forward_model_shapes);
    ZT_RUN(test_conv_backward_vs_reference);
    ZT_RUN(test_conv_gradcheck);
    ZT_RUN(test_conv_grads_accumulate);
    ZT_RUN(test_conv_threads_bit_identical);
    ZT_RUN(test_conv_shape_errors);
    ZT_RUN(test_conv_max_pool_forward);
    ZT_RUN(test_conv_max_pool_kernel_vs_ref);
    ZT_RUN(test_conv_pool_gradcheck);
    ZT_RUN(test_conv_batch_norm_forward);
    ZT_RUN(test_conv_batch_norm_running_stats);
    ZT_RUN(test_conv_batch_norm_gradcheck);
    return zt_finish();
}
