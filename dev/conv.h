/* ==================================================================== */
/* [impl:conv] conv2d, pooling, batch norm                              */
/* ==================================================================== */
/* conv2d is im2col + SGEMM. Images are processed in GROUPS of G images
   whose column matrices sit side by side, col [C*KH*KW, G*OH*OW], so that
   small feature maps (7x7, 14x14) still give the GEMM a wide N:
       forward   Y_g  [O, G*OHW]   = W [O, CKK] x col_g
       backward  dW  [O, CKK]     += dY_g x col_g^T   (groups in order)
                 dcol_g [CKK, G*OHW] = W^T x dY_g, then col2im (+=) into dX
   G depends on the shapes only (never on the thread count), every GEMM is
   zs__sgemm over the pool (bit-identical for any thread count), and the
   copies around it (im2col, col2im, gather/scatter) split independent rows,
   so results are bit-identical for any number of threads. One group's column
   buffer (at most ZS__CONV_COL_MAX floats, or one image) lives in the calling
   thread's scratch arena. Fast path: a 1x1 stride-1 unpadded conv of a
   single image multiplies the image itself ([C, H*W]) without im2col. */

#define ZS__CONV_GROUP_COLS 1024               /* target GEMM width per group */
#define ZS__CONV_COL_MAX ((int64_t)8 << 20)    /* floats in a group's col buffer (32 MB) */

typedef struct zs__conv_geom {
    int64_t B, C, H, W, O, KH, KW, OH, OW; /* x [B,C,H,W], w [O,C,KH,KW], y [B,O,OH,OW] */
    int64_t sh, sw, ph, pw;
    int64_t CKK, OHW, G; /* rows of col, columns per image, images per group */
    int pointwise;       /* 1x1 kernel, stride 1, no padding */
} zs__conv_geom;

ZS__PRIV void zs__conv_geom_init(zs__conv_geom *g, const zs_tensor *x, const zs_tensor *w,
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    int64_t G = 1, cap;
    g->B = x->shape[0]; g->C = x->shape[1]; g->H = x->shape[2]; g->W = x->shape[3];
    g->O = w->shape[0]; g->KH = w->shape[2]; g->KW = w->shape[3];
    g->sh = sh; g->sw = sw; g->ph = ph; g->pw = pw;
    g->OH = (g->H + 2 * ph - g->KH) / sh + 1;
    g->OW = (g->W + 2 * pw - g->KW) / sw + 1;
    g->CKK = g->C * g->KH * g->KW;
    g->OHW = g->OH * g->OW;
    g->pointwise = g->KH == 1 && g->KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    if (g->OHW > 0 && g->OHW < ZS__CONV_GROUP_COLS) G = (ZS__CONV_GROUP_COLS + g->OHW - 1) / g->OHW;
    cap = g->CKK * g->OHW > 0 ? ZS__CONV_COL_MAX / (g->CKK * g->OHW) : G;
    if (G > cap) G = cap;
    if (G > g->B) G = g->B;
    g->G = G < 1 ? 1 : G;
}

/* Double-precision sums over n floats with 8 interleaved accumulators
   (a fixed order: the result depends on n only). */
#define ZS__CONV_SUM8(expr_i, n, out)                                                       \
    do {                                                                                    \
        double s_[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                            \
        int64_t i_, j_;                                                                     \
        for (i_ = 0; i_ + 8 <= (n); i_ += 8)                                                \
            for (j_ = 0; j_ < 8; j_++) {                                                    \
                int64_t i = i_ + j_;                                                        \
                s_[j_] += (expr_i);                                                         \
            }                                                                               \
        for (; i_ < (n); i_++) {                                                            \
            int64_t i = i_;                                                                 \
            s_[0] += (expr_i);                                                              \
        }                                                                                   \
        (out) = ((s_[0] + s_[1]) + (s_[2] + s_[3])) + ((s_[4] + s_[5]) + (s_[6] + s_[7]));  \
    } while (0)

/* sum p[i] */
ZS__PRIV double zs__conv_sum(const float *p, int64_t n) {
    double r;
    ZS__CONV_SUM8((double)p[i], n, r);
    return r;
}
/* sum (p[i] - c)^2 */
ZS__PRIV double zs__conv_sumsq(const float *p, int64_t n, double c) {
    double r;
    ZS__CONV_SUM8(((double)p[i] - c) * ((double)p[i] - c), n, r);
    return r;
}
/* sum d[i] * (p[i] - c) */
ZS__PRIV double zs__conv_dotc(const float *d, const float *p, int64_t n, double c) {
    double r;
    ZS__CONV_SUM8((double)d[i] * ((double)p[i] - c), n, r);
    return r;
}

/* [lo, hi) of output columns ow whose input column ow*s - p + k lies in [0, n) */
ZS__PRIV void zs__conv_valid(int64_t n, int64_t nout, int64_t s, int64_t p, int64_t k, int64_t *lo, int64_t *hi) {
    int64_t a = p - k, b = n - 1 + p - k;
    *lo = a > 0 ? (a + s - 1) / s : 0;
    *hi = b < 0 ? 0 : b / s + 1;
    if (*hi > nout) *hi = nout;
    if (*lo > *hi) *lo = *hi;
}

/* -- im2col: col [CKK, ng*OHW] from ng images x [ng, C, H, W] -- */
typedef struct zs__col_arg {
    const zs__conv_geom *g;
    const float *x; /* first image of the group, [ng,C,H,W] */
    float *gx;      /* col2im target, first image of the group */
    float *col;     /* [CKK, ng*OHW] */
    int64_t ng;
} zs__col_arg;

ZS__PRIV void zs__im2col_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__col_arg *a = (const zs__col_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t ncols = a->ng * g->OHW, r, gi, oh, ow;
    (void)ws;
    for (r = lo; r < hi; r++) {
        int64_t c = r / (g->KH * g->KW), kh = (r / g->KW) % g->KH, kw = r % g->KW, wlo, whi;
        zs__conv_valid(g->W, g->OW, g->sw, g->pw, kw, &wlo, &whi);
        for (gi = 0; gi < a->ng; gi++) {
            const float *xp = a->x + (gi * g->C + c) * g->H * g->W; /* plane [H,W] */
            float *d = a->col + r * ncols + gi * g->OHW;
            for (oh = 0; oh < g->OH; oh++, d += g->OW) {
                int64_t ih = oh * g->sh - g->ph + kh;
                const float *src;
                if (ih < 0 || ih >= g->H || whi == wlo) { memset(d, 0, (size_t)g->OW * 4); continue; }
                for (ow = 0; ow < wlo; ow++) d[ow] = 0.0f;
                src = xp + ih * g->W + (wlo * g->sw - g->pw + kw); /* input of column wlo */
                if (g->sw == 1) memcpy(d + wlo, src, (size_t)(whi - wlo) * 4);
                else
                    for (ow = wlo; ow < whi; ow++) d[ow] = src[(ow - wlo) * g->sw];
                for (ow = whi; ow < g->OW; ow++) d[ow] = 0.0f;
            }
        }
    }
}

/* d[i] += s[i] (separate arrays: lets the compiler vectorise) */
ZS__PRIV void zs__conv_add(float *ZS__RESTRICT d, const float *ZS__RESTRICT s, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) d[i] += s[i];
}

/* col2im: gx planes (gi, c) += every column entry that came from them, in a
   fixed (kh, kw, oh, ow) order; planes are independent rows. */
ZS__PRIV void zs__col2im_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__col_arg *a = (const zs__col_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t ncols = a->ng * g->OHW, p, kh, kw, oh, ow;
    (void)ws;
    for (p = lo; p < hi; p++) {
        int64_t gi = p / g->C, c = p % g->C;
        float *gp = a->gx + p * g->H * g->W; /* plane (gi, c) of [ng,C,H,W] */
        for (kh = 0; kh < g->KH; kh++)
            for (kw = 0; kw < g->KW; kw++) {
                const float *src = a->col + ((c * g->KH + kh) * g->KW + kw) * ncols + gi * g->OHW;
                int64_t wlo, whi;
                zs__conv_valid(g->W, g->OW, g->sw, g->pw, kw, &wlo, &whi);
                for (oh = 0; oh < g->OH; oh++) {
                    int64_t ih = oh * g->sh - g->ph + kh;
                    int64_t base = ih * g->W - g->pw + kw; /* input index of column ow: base + ow*sw */
                    const float *s = src + oh * g->OW;
                    if (ih < 0 || ih >= g->H) continue;
                    if (g->sw == 1) zs__conv_add(gp + base + wlo, s + wlo, whi - wlo);
                    else
                        for (ow = wlo; ow < whi; ow++) gp[base + ow * g->sw] += s[ow];
                }
            }
    }
}

/* -- moving rows between a group matrix [O, ng*OHW] and y [ng, O, OHW] -- */
typedef struct zs__grp_arg {
    const zs__conv_geom *g;
    float *y;         /* [ng, O, OHW] (first image of the group) */
    float *m;         /* [O, ng*OHW] */
    const float *bias; /* [O] or NULL */
    int64_t ng;
} zs__grp_arg;

/* y = m + bias (in place when m == y, i.e. ng == 1) */
ZS__PRIV void zs__conv_scatter_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__grp_arg *a = (const zs__grp_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t o, gi, i, n = g->OHW;
    (void)ws;
    for (o = lo; o < hi; o++) {
        float bo = a->bias ? a->bias[o] : 0.0f;
        for (gi = 0; gi < a->ng; gi++) {
            const float *s = a->m + o * a->ng * n + gi * n;
            float *d = a->y + (gi * g->O + o) * n;
            if (a->bias)
                for (i = 0; i < n; i++) d[i] = s[i] + bo;
            else if (d != s)
                memcpy(d, s, (size_t)n * 4);
        }
    }
}

/* m = y rearranged (gather dY of a group) */
ZS__PRIV void zs__conv_gather_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__grp_arg *a = (const zs__grp_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t o, gi, n = g->OHW;
    (void)ws;
    for (o = lo; o < hi; o++)
        for (gi = 0; gi < a->ng; gi++)
            memcpy(a->m + o * a->ng * n + gi * n, a->y + (gi * g->O + o) * n, (size_t)n * 4);
}

/* db[o] += sum over images and positions of dy, per channel in a fixed order */
typedef struct zs__cbias_arg { const zs__conv_geom *g; const float *dy; float *gb; } zs__cbias_arg;
ZS__PRIV void zs__conv_bias_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__cbias_arg *a = (const zs__cbias_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t o, bi;
    (void)ws;
    for (o = lo; o < hi; o++) {
        double s = 0.0;
        for (bi = 0; bi < g->B; bi++) s += zs__conv_sum(a->dy + (bi * g->O + o) * g->OHW, g->OHW);
        a->gb[o] += (float)s;
    }
}

/* rows per thread so that each thread moves at least ~32K floats */
ZS__PRIV int64_t zs__conv_min_rows(int64_t row_len) {
    int64_t m = row_len > 0 ? 32768 / row_len : 1;
    return m < 1 ? 1 : m;
}

ZS__PRIV void zs__im2col(zs_ctx *ctx, const zs__conv_geom *g, const float *x, int64_t ng, float *col) {
    zs__col_arg a;
    a.g = g; a.x = x; a.gx = NULL; a.col = col; a.ng = ng;
    zs__parallel_rows(ctx, g->CKK, zs__conv_min_rows(ng * g->OHW), zs__im2col_rows, &a);
}

ZS__PRIV void zs__col2im(zs_ctx *ctx, const zs__conv_geom *g, const float *col, int64_t ng, float *gx) {
    zs__col_arg a;
    a.g = g; a.x = NULL; a.gx = gx; a.col = (float *)col; a.ng = ng;
    zs__parallel_rows(ctx, ng * g->C, zs__conv_min_rows(g->CKK * g->OHW / (g->C ? g->C : 1)), zs__col2im_rows, &a);
}

ZS__PRIV zs__arena *zs__scratch(zs_ctx *ctx) { return zs__tls_ws ? zs__tls_ws : &ctx->pool.ws[0]; }

ZS__PRIV int zs__conv2d_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    const float *xd = (const float *)x->data, *wd = (const float *)w->data, *dy = out->grad;
    float *gx, *gw, *gb, *col = NULL, *dyg = NULL;
    zs__conv_geom g;
    zs__arena *ws;
    zs__amark mk;
    int64_t b0;
    int rc = ZS_OK;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gw, ctx, w);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    zs__conv_geom_init(&g, x, w, out->ip[0], out->ip[1], out->ip[2], out->ip[3]);
    if (gb) {
        zs__cbias_arg a;
        a.g = &g; a.dy = dy; a.gb = gb;
        zs__parallel_rows(ctx, g.O, zs__conv_min_rows(g.B * g.OHW), zs__conv_bias_rows, &a);
    }
    if ((!gx && !gw) || g.B == 0) return ZS_OK;
    ws = zs__scratch(ctx);
    mk = zs__arena_mark(ws);
    if (!g.pointwise || g.G > 1) col = (float *)zs__arena_alloc(ws, (size_t)(g.CKK * g.G * g.OHW) * 4);
    if (g.G > 1) dyg = (float *)zs__arena_alloc(ws, (size_t)(g.O * g.G * g.OHW) * 4);
    if (((!g.pointwise || g.G > 1) && !col) || (g.G > 1 && !dyg)) {
        zs__arena_release(ws, mk);
        return zs__fail(ZS_ERR_NOMEM, "zs_conv2d backward: cannot allocate the column buffer (%lld floats)",
                        (long long)(g.CKK * g.G * g.OHW));
    }
    for (b0 = 0; b0 < g.B && rc == ZS_OK; b0 += g.G) {
        int64_t ng = g.B - b0 < g.G ? g.B - b0 : g.G, ncols = ng * g.OHW;
        const float *xb = xd + b0 * g.C * g.H * g.W; /* [ng,C,H,W] */
        const float *dyp = dy + b0 * g.O * g.OHW;     /* [O, ncols] once gathered */
        int direct = g.pointwise && ng == 1;
        if (ng > 1) {
            zs__grp_arg a;
            a.g = &g; a.y = (float *)dyp; a.m = dyg; a.bias = NULL; a.ng = ng;
            zs__parallel_rows(ctx, g.O, zs__conv_min_rows(ncols), zs__conv_gather_rows, &a);
            dyp = dyg;
        }
        if (gw) { /* dW [O,CKK] += dY [O,ncols] x col^T */
            const float *cm = xb;
            if (!direct) { zs__im2col(ctx, &g, xb, ng, col); cm = col; }
            rc = zs__sgemm(&ctx->pool, 0, 1, g.O, g.CKK, ncols, 1.0f, dyp, ncols, cm, ncols, 1.0f, gw, g.CKK);
            if (rc) break;
        }
        if (gx) { /* dcol [CKK,ncols] = W^T x dY, then col2im */
            float *gxb = gx + b0 * g.C * g.H * g.W;
            if (direct) {
                rc = zs__sgemm(&ctx->pool, 1, 0, g.CKK, ncols, g.O, 1.0f, wd, g.CKK, dyp, ncols, 1.0f, gxb, ncols);
            } else {
                rc = zs__sgemm(&ctx->pool, 1, 0, g.CKK, ncols, g.O, 1.0f, wd, g.CKK, dyp, ncols, 0.0f, col, ncols);
                if (rc == ZS_OK) zs__col2im(ctx, &g, col, ng, gxb);
            }
        }
    }
    zs__arena_release(ws, mk);
    return rc;
}

ZS__FN zs_tensor *zs_conv2d(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b,
                            int stride_h, int stride_w, int pad_h, int pad_w) {
    int64_t shape[4], b0;
    zs__conv_geom g;
    zs_tensor *t;
    zs__arena *ws;
    zs__amark mk;
    float *col = NULL, *tmp = NULL, *y;
    int rc = ZS_OK;
    if (!zs__ok2(ctx, x, w, "zs_conv2d") || (b && !zs__ok1(ctx, b, "zs_conv2d"))) return NULL;
    if (x->ndim != 4) return zs__shape_fail(ctx, "zs_conv2d", x, w, "x must be [B,C,H,W]");
    if (w->ndim != 4) return zs__shape_fail(ctx, "zs_conv2d", x, w, "weight must be [O,C,KH,KW]");
    if (x->shape[1] != w->shape[1]) return zs__shape_fail(ctx, "zs_conv2d", x, w, "input channels of x and weight differ");
    if (zs_numel(w) == 0) return zs__shape_fail(ctx, "zs_conv2d", x, w, "empty weight");
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) return zs__shape_fail(ctx, "zs_conv2d", b, w, "bias must be [O]");
    if (stride_h < 1 || stride_w < 1 || pad_h < 0 || pad_w < 0) {
        zs__fail(ZS_ERR_ARG, "zs_conv2d: stride %dx%d must be >= 1 and padding %dx%d >= 0", stride_h, stride_w, pad_h, pad_w);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (x->shape[2] + 2 * (int64_t)pad_h < w->shape[2] || x->shape[3] + 2 * (int64_t)pad_w < w->shape[3]) {
        char sx[96], sw[96];
        zs__fail(ZS_ERR_SHAPE, "zs_conv2d: kernel larger than the input padded by %dx%d (shapes %s and %s)", pad_h, pad_w,
                 zs_shape_str(x, sx, sizeof sx), zs_shape_str(w, sw, sizeof sw));
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    {
        int has_b = b != NULL;
        x = zs__contig(ctx, x);
        w = zs__contig(ctx, w);
        if (has_b) b = zs__contig(ctx, b);
        if (!x || !w || (has_b && !b)) return NULL;
    }
    zs__conv_geom_init(&g, x, w, stride_h, stride_w, pad_h, pad_w);
    shape[0] = g.B; shape[1] = g.O; shape[2] = g.OH; shape[3] = g.OW;
    t = zs__op_new(ctx, "conv2d", zs__conv2d_bwd, 4, shape, x, w, b, NULL);
    if (!t) return NULL;
    t->ip[0] = stride_h; t->ip[1] = stride_w; t->ip[2] = pad_h; t->ip[3] = pad_w;
    if (g.B == 0) return t;
    y = (float *)t->data;
    ws = zs__scratch(ctx);
    mk = zs__arena_mark(ws);
    if (!g.pointwise || g.G > 1) col = (float *)zs__arena_alloc(ws, (size_t)(g.CKK * g.G * g.OHW) * 4);
    if (g.G > 1) tmp = (float *)zs__arena_alloc(ws, (size_t)(g.O * g.G * g.OHW) * 4);
    if (((!g.pointwise || g.G > 1) && !col) || (g.G > 1 && !tmp)) {
        zs__arena_release(ws, mk);
        zs__fail(ZS_ERR_NOMEM, "zs_conv2d: cannot allocate the column buffer (%lld floats)", (long long)(g.CKK * g.G * g.OHW));
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    for (b0 = 0; b0 < g.B; b0 += g.G) {
        int64_t ng = g.B - b0 < g.G ? g.B - b0 : g.G, ncols = ng * g.OHW;
        const float *xb = (const float *)x->data + b0 * g.C * g.H * g.W; /* [ng,C,H,W] */
        const float *cm = xb;                                             /* [CKK, ncols] */
        float *yb = y + b0 * g.O * g.OHW;                                 /* [ng,O,OHW] */
        float *dst = ng == 1 ? yb : tmp;                                  /* [O, ncols] */
        if (!(g.pointwise && ng == 1)) { zs__im2col(ctx, &g, xb, ng, col); cm = col; }
        rc = zs__sgemm(&ctx->pool, 0, 0, g.O, ncols, g.CKK, 1.0f, (const float *)w->data, g.CKK, cm, ncols, 0.0f, dst, ncols);
        if (rc) break;
        if (ng > 1 || b) {
            zs__grp_arg a;
            a.g = &g; a.y = yb; a.m = dst; a.bias = b ? (const float *)b->data : NULL; a.ng = ng;
            zs__parallel_rows(ctx, g.O, zs__conv_min_rows(ncols), zs__conv_scatter_rows, &a);
        }
    }
    zs__arena_release(ws, mk);
    if (rc) {
        zs__fail(rc, "zs_conv2d: GEMM failed (%s)", zs_status_str(rc));
        return zs__op_fail(ctx, rc);
    }
    return t;
}

/* -- max pooling (torch semantics: padding is -inf, floor output size,
      first maximum wins, NaN propagates) -- */
typedef struct zs__pool_arg {
    const float *x; /* [P, H, W] planes */
    float *y;       /* [P, OH, OW] */
    int32_t *idx;   /* [P, OH, OW] argmax within the plane, or NULL */
    const float *dy;
    float *gx;
    int64_t H, W, OH, OW, k, s, p;
} zs__pool_arg;

/* Every output visits its window in row-major order; the first maximum
   (or a NaN) wins, its index within the plane goes to idx when not NULL. */
ZS__PRIV void zs__max_pool_ref(const zs__pool_arg *a, int64_t lo, int64_t hi) {
    int64_t pl, oh, ow, ih, iw;
    for (pl = lo; pl < hi; pl++)
        for (oh = 0; oh < a->OH; oh++)
            for (ow = 0; ow < a->OW; ow++) {
                int64_t h0 = oh * a->s - a->p, w0 = ow * a->s - a->p, h1 = h0 + a->k, w1 = w0 + a->k;
                const float *xp = a->x + pl * a->H * a->W;
                float m = -INFINITY;
                int32_t b;
                h0 = h0 < 0 ? 0 : h0; w0 = w0 < 0 ? 0 : w0;
                h1 = h1 > a->H ? a->H : h1; w1 = w1 > a->W ? a->W : w1;
                b = (int32_t)(h0 * a->W + w0);
                for (ih = h0; ih < h1; ih++)
                    for (iw = w0; iw < w1; iw++) {
                        float v = xp[ih * a->W + iw];
                        if (v > m || v != v) { m = v; b = (int32_t)(ih * a->W + iw); } /* as torch: a NaN wins */
                    }
                a->y[(pl * a->OH + oh) * a->OW + ow] = m;
                if (a->idx) a->idx[(pl * a->OH + oh) * a->OW + ow] = b;
            }
}

/* vm[i] = r[i] if r[i] > vm[i] or r[i] is NaN (earlier rows win ties, the
   last NaN is taken): the column maxima of a window's rows; vr[i] (when not
   NULL) records the row the maximum came from. */
ZS__PRIV void zs__pool_colmax(float *ZS__RESTRICT vm, int32_t *ZS__RESTRICT vr, const float *ZS__RESTRICT r, int64_t n, int32_t row) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    const __m256 rowv = _mm256_castsi256_ps(_mm256_set1_epi32(row));
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(vm + i), v = _mm256_loadu_ps(r + i);
        __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, a, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        _mm256_storeu_ps(vm + i, _mm256_blendv_ps(a, v, take));
        if (vr) {
            __m256 ri = _mm256_loadu_ps((const float *)(vr + i)); /* int32 bits moved as floats */
            _mm256_storeu_ps((float *)(vr + i), _mm256_blendv_ps(ri, rowv, take));
        }
    }
#endif
    for (; i < n; i++)
        if (r[i] > vm[i] || r[i] != r[i]) {
            vm[i] = r[i];
            if (vr) vr[i] = row;
        }
}

/* Fast forward over planes [lo, hi): per output row, the column maxima of
   the window rows (vectorised, with the row each came from), then the
   maximum of k columns per output (branch-free). The index is the smallest
   row-major index among the columns holding the maximum (the first element
   equal to it, which torch's strict-> scan picks), or the largest among NaN
   columns (torch keeps the last NaN). Same values and indices as
   zs__max_pool_ref, except that a zero's sign may differ when +0 and -0 tie. */
ZS__PRIV void zs__max_pool_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    const int64_t H = a->H, W = a->W, OH = a->OH, OW = a->OW, k = a->k, s = a->s, p = a->p;
    int64_t pl, oh, ow, ih, iw;
    zs__amark mk = zs__arena_mark(ws);
    float *vm = (float *)zs__arena_alloc(ws, (size_t)W * 4);       /* [W] column maxima */
    int32_t *vr = (int32_t *)zs__arena_alloc(ws, (size_t)W * 4);   /* [W] their rows */
    if (!vm || !vr) { /* scratch exhausted: the plain loop */
        zs__arena_release(ws, mk);
        zs__max_pool_ref(a, lo, hi);
        return;
    }
    for (pl = lo; pl < hi; pl++) {
        const float *xp = a->x + pl * H * W; /* [H,W] */
        for (oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * s - p, h1 = h0 + k;
            float *yp = a->y + (pl * OH + oh) * OW;
            int32_t *ip = a->idx ? a->idx + (pl * OH + oh) * OW : NULL;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            memcpy(vm, xp + h0 * W, (size_t)W * 4);
            if (ip)
                for (iw = 0; iw < W; iw++) vr[iw] = (int32_t)h0;
            for (ih = h0 + 1; ih < h1; ih++) zs__pool_colmax(vm, ip ? vr : NULL, xp + ih * W, W, (int32_t)ih);
            for (ow = 0; ow < OW; ow++) {
                int64_t w0 = ow * s - p, w1 = w0 + k;
                float m;
                int nan;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                m = vm[w0];
                nan = m != m;
                for (iw = w0 + 1; iw < w1; iw++) {
                    float v = vm[iw];
                    m = v > m ? v : m; /* maxss */
                    nan |= v != v;
                }
                yp[ow] = nan ? NAN : m;
                if (ip) {
                    int64_t b;
                    if (!nan) { /* masks instead of branches: the winning column is random */
                        b = INT64_MAX;
                        for (iw = w0; iw < w1; iw++) {
                            int64_t eq = -(int64_t)(vm[iw] == m);
                            int64_t c = ((vr[iw] * W + iw) & eq) | (INT64_MAX & ~eq);
                            b = c < b ? c : b;
                        }
                    } else {
                        b = -1;
                        for (iw = w0; iw < w1; iw++) {
                            int64_t c = vm[iw] != vm[iw] ? vr[iw] * W + iw : -1;
                            b = c > b ? c : b;
                        }
                    }
                    ip[ow] = (int32_t)b;
                }
            }
        }
    }
    zs__arena_release(ws, mk);
}

ZS__PRIV void zs__max_pool_bwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    int64_t pl, i, n = a->OH * a->OW;
    (void)ws;
    for (pl = lo; pl < hi; pl++) {
        const int32_t *ip = a->idx + pl * n;
        const float *d = a->dy + pl * n;
        float *g = a->gx + pl * a->H * a->W;
        for (i = 0; i < n; i++) g[ip[i]] += d[i];
    }
}

ZS__PRIV int zs__max_pool_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0];
    zs__pool_arg a;
    float *gx;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    if (!gx) return ZS_OK;
    memset(&a, 0, sizeof a);
    a.idx = (int32_t *)out->saved; a.dy = out->grad; a.gx = gx;
    a.H = x->shape[2]; a.W = x->shape[3]; a.OH = out->shape[2]; a.OW = out->shape[3];
    zs__parallel_rows(ctx, x->shape[0] * x->shape[1], zs__conv_min_rows(a.OH * a.OW), zs__max_pool_bwd_rows, &a);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_max_pool2d(zs_ctx *ctx, zs_tensor *x, int k, int stride, int pad) {
    int64_t shape[4];
    zs_tensor *t;
    zs__pool_arg a;
    if (!zs__ok1(ctx, x, "zs_max_pool2d")) return NULL;
    if (x->ndim != 4) return zs__shape_fail(ctx, "zs_max_pool2d", x, NULL, "x must be [B,C,H,W]");
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2) {
        zs__fail(ZS_ERR_ARG, "zs_max_pool2d: kernel %d, stride %d, padding %d (need k >= 1, stride >= 1, 0 <= pad <= k/2)", k, stride, pad);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (x->shape[2] + 2 * (int64_t)pad < k || x->shape[3] + 2 * (int64_t)pad < k) {
        char sx[96];
        zs__fail(ZS_ERR_SHAPE, "zs_max_pool2d: kernel %d larger than the input %s padded by %d", k, zs_shape_str(x, sx, sizeof sx), pad);
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    if (x->shape[2] * x->shape[3] > INT32_MAX) return zs__shape_fail(ctx, "zs_max_pool2d", x, NULL, "plane too large for int32 indices");
    x = zs__contig(ctx, x);
    if (!x) return NULL;
    memset(&a, 0, sizeof a);
    a.H = x->shape[2]; a.W = x->shape[3]; a.k = k; a.s = stride; a.p = pad;
    a.OH = (a.H + 2 * a.p - a.k) / a.s + 1;
    a.OW = (a.W + 2 * a.p - a.k) / a.s + 1;
    shape[0] = x->shape[0]; shape[1] = x->shape[1]; shape[2] = a.OH; shape[3] = a.OW;
    t = zs__op_new(ctx, "max_pool2d", zs__max_pool_bwd, 4, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = k; t->ip[1] = stride; t->ip[2] = pad;
    if (t->flags & ZS_FLAG_ON_TAPE) {
        a.idx = (int32_t *)zs__arena_alloc(&ctx->arena, (size_t)zs_numel(t) * 4);
        if (!a.idx) { zs__fail(ZS_ERR_NOMEM, "zs_max_pool2d: arena exhausted (indices)"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        t->saved = a.idx;
    }
    a.x = (const float *)x->data; a.y = (float *)t->data;
    zs__parallel_rows(ctx, shape[0] * shape[1], zs__conv_min_rows(a.H * a.W), zs__max_pool_rows, &a);
    return t;
}

/* -- global average pooling [B,C,H,W] -> [B,C] -- */
ZS__PRIV void zs__avg_pool_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    int64_t pl, n = a->H * a->W;
    (void)ws;
    for (pl = lo; pl < hi; pl++) a->y[pl] = (float)(zs__conv_sum(a->x + pl * n, n) / (double)n);
}

ZS__PRIV void zs__avg_pool_bwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    int64_t pl, i, n = a->H * a->W;
    (void)ws;
    for (pl = lo; pl < hi; pl++) {
        float d = a->dy[pl] / (float)n, *g = a->gx + pl * n;
        for (i = 0; i < n; i++) g[i] += d;
    }
}

ZS__PRIV int zs__avg_pool_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0];
    zs__pool_arg a;
    float *gx;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    if (!gx) return ZS_OK;
    memset(&a, 0, sizeof a);
    a.dy = out->grad; a.gx = gx; a.H = x->shape[2]; a.W = x->shape[3];
    zs__parallel_rows(ctx, x->shape[0] * x->shape[1], zs__conv_min_rows(a.H * a.W), zs__avg_pool_bwd_rows, &a);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_avg_pool_global(zs_ctx *ctx, zs_tensor *x) {
    zs_tensor *t;
    zs__pool_arg a;
    if (!zs__ok1(ctx, x, "zs_avg_pool_global")) return NULL;
    if (x->ndim != 4) return zs__shape_fail(ctx, "zs_avg_pool_global", x, NULL, "x must be [B,C,H,W]");
    if (x->shape[2] * x->shape[3] == 0) return zs__shape_fail(ctx, "zs_avg_pool_global", x, NULL, "empty spatial plane");
    x = zs__contig(ctx, x);
    if (!x) return NULL;
    t = zs__op_new(ctx, "avg_pool_global", zs__avg_pool_bwd, 2, x->shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    memset(&a, 0, sizeof a);
    a.x = (const float *)x->data; a.y = (float *)t->data; a.H = x->shape[2]; a.W = x->shape[3];
    zs__parallel_rows(ctx, x->shape[0] * x->shape[1], zs__conv_min_rows(a.H * a.W), zs__avg_pool_rows, &a);
    return t;
}

/* -- batch norm over channel dim 1 of x [B,C] / [B,C,L] / [B,C,H,W] --
   Per channel c over its n = B*HW values (torch semantics):
     training: mean, var_biased of the batch; running_mean = (1-m) rm + m mean,
               running_var = (1-m) rv + m var * n/(n-1) (in place, not recorded)
     eval:     mean = running_mean, var = running_var
     y = (x - mean) rstd w + b, rstd = 1/sqrt(var + eps), computed as
     y = x*scale + shift (scale = w rstd, shift = b - mean scale) like torch.
   Statistics are summed in double per channel, in a fixed order; threads
   split channels, so results do not depend on the thread count. The mean
   and rstd used are saved for backward (the running stats may change before
   backward runs). */
typedef struct zs__bn_arg {
    const float *x, *w, *b, *dy; /* x, dy [B,C,HW]; w, b [C] or NULL */
    float *y, *rm, *rv, *gx, *gw, *gb;
    float *stat;                 /* [2,C]: mean, rstd (saved for backward) or NULL */
    int64_t B, C, HW;
    int training;
    double momentum, eps;
} zs__bn_arg;

ZS__PRIV void zs__bn_fwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__bn_arg *a = (const zs__bn_arg *)arg;
    int64_t c, bi, i, n = a->B * a->HW;
    (void)ws;
    for (c = lo; c < hi; c++) {
        double mean, var, rstd;
        float scale, shift;
        if (a->training) {
            double s = 0.0, v = 0.0;
            for (bi = 0; bi < a->B; bi++) s += zs__conv_sum(a->x + (bi * a->C + c) * a->HW, a->HW);
            mean = s / (double)n;
            for (bi = 0; bi < a->B; bi++) v += zs__conv_sumsq(a->x + (bi * a->C + c) * a->HW, a->HW, mean);
            var = v / (double)n;
            if (a->rm) a->rm[c] = (float)((1.0 - a->momentum) * (double)a->rm[c] + a->momentum * mean);
            if (a->rv) a->rv[c] = (float)((1.0 - a->momentum) * (double)a->rv[c] + a->momentum * (v / (double)(n - 1)));
        } else {
            mean = a->rm[c];
            var = a->rv[c];
        }
        rstd = 1.0 / sqrt(var + a->eps);
        scale = (float)((a->w ? (double)a->w[c] : 1.0) * rstd);
        shift = (float)((a->b ? (double)a->b[c] : 0.0) - mean * (double)scale);
        if (a->stat) { a->stat[c] = (float)mean; a->stat[a->C + c] = (float)rstd; }
        for (bi = 0; bi < a->B; bi++) {
            const float *p = a->x + (bi * a->C + c) * a->HW;
            float *q = a->y + (bi * a->C + c) * a->HW;
            for (i = 0; i < a->HW; i++) q[i] = p[i] * scale + shift;
        }
    }
}

ZS__PRIV void zs__bn_bwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__bn_arg *a = (const zs__bn_arg *)arg;
    int64_t c, bi, i, n = a->B * a->HW;
    (void)ws;
    for (c = lo; c < hi; c++) {
        float mean = a->stat[c], rstd = a->stat[a->C + c];
        double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy * xhat */
        for (bi = 0; bi < a->B; bi++) {
            const float *p = a->x + (bi * a->C + c) * a->HW, *d = a->dy + (bi * a->C + c) * a->HW;
            sdy += zs__conv_sum(d, a->HW);
            sdyx += zs__conv_dotc(d, p, a->HW, mean);
        }
        sdyx *= rstd;
        if (a->gb) a->gb[c] += (float)sdy;
        if (a->gw) a->gw[c] += (float)sdyx;
        if (a->gx) {
            float k = (a->w ? a->w[c] : 1.0f) * rstd;
            float mdy = a->training ? (float)(sdy / (double)n) : 0.0f;
            float mdx = a->training ? (float)(sdyx / (double)n) : 0.0f;
            for (bi = 0; bi < a->B; bi++) {
                const float *p = a->x + (bi * a->C + c) * a->HW, *d = a->dy + (bi * a->C + c) * a->HW;
                float *g = a->gx + (bi * a->C + c) * a->HW;
                if (a->training)
                    for (i = 0; i < a->HW; i++) g[i] += k * (d[i] - mdy - (p[i] - mean) * rstd * mdx);
                else
                    for (i = 0; i < a->HW; i++) g[i] += k * d[i];
            }
        }
    }
}

ZS__PRIV void zs__bn_dims(const zs_tensor *x, int64_t *B, int64_t *C, int64_t *HW) {
    int i;
    *B = x->shape[0];
    *C = x->shape[1];
    *HW = 1;
    for (i = 2; i < x->ndim; i++) *HW *= x->shape[i];
}

ZS__PRIV int zs__bn_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    zs__bn_arg a;
    memset(&a, 0, sizeof a);
    ZS__GRAD_OR_FAIL(a.gx, ctx, x);
    ZS__GRAD_OR_FAIL(a.gw, ctx, w);
    ZS__GRAD_OR_FAIL(a.gb, ctx, b);
    zs__bn_dims(x, &a.B, &a.C, &a.HW);
    a.x = (const float *)x->data;
    a.w = w ? (const float *)w->data : NULL;
    a.dy = out->grad;
    a.stat = (float *)out->saved;
    a.training = (int)out->ip[0];
    zs__parallel_rows(ctx, a.C, zs__conv_min_rows(a.B * a.HW), zs__bn_bwd_rows, &a);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_batch_norm(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b,
                                zs_tensor *running_mean, zs_tensor *running_var,
                                float momentum, float eps) {
    static const char *who = "zs_batch_norm";
    zs_tensor *t, *vecs[4];
    zs__bn_arg a;
    int i;
    if (!zs__ok1(ctx, x, who) || !zs__ok(ctx, who, w, b, NULL) || !zs__ok(ctx, who, running_mean, running_var, NULL)) return NULL;
    if (x->ndim < 2 || x->ndim > 4) return zs__shape_fail(ctx, who, x, NULL, "x must be [B,C], [B,C,L] or [B,C,H,W]");
    vecs[0] = w; vecs[1] = b; vecs[2] = running_mean; vecs[3] = running_var;
    for (i = 0; i < 4; i++)
        if (vecs[i] && (vecs[i]->ndim != 1 || vecs[i]->shape[0] != x->shape[1])) {
            static const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
            char sx[96], sv[96];
            zs__fail(ZS_ERR_SHAPE, "%s: %s must be [C] (shapes %s and %s)", who, names[i],
                     zs_shape_str(x, sx, sizeof sx), zs_shape_str(vecs[i], sv, sizeof sv));
            return zs__op_fail(ctx, ZS_ERR_SHAPE);
        }
    for (i = 2; i < 4; i++)
        if (vecs[i] && !zs_is_contiguous(vecs[i])) {
            zs__fail(ZS_ERR_ARG, "%s: running statistics must be contiguous (they are updated in place)", who);
            return zs__op_fail(ctx, ZS_ERR_ARG);
        }
    if (!ctx->training && (!running_mean || !running_var)) {
        zs__fail(ZS_ERR_ARG, "%s: eval mode needs running_mean and running_var", who);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (!(eps >= 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        zs__fail(ZS_ERR_ARG, "%s: momentum %g must be in [0,1] and eps %g >= 0", who, (double)momentum, (double)eps);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    memset(&a, 0, sizeof a);
    zs__bn_dims(x, &a.B, &a.C, &a.HW);
    if (ctx->training && a.B * a.HW < 2 && a.C > 0)
        return zs__shape_fail(ctx, who, x, NULL, "training needs more than one value per channel");
    x = zs__contig(ctx, x);
    if (w) w = zs__contig(ctx, w);
    if (b) b = zs__contig(ctx, b);
    if (!x || (vecs[0] && !w) || (vecs[1] && !b)) return NULL;
    t = zs__op_new(ctx, "batch_norm", zs__bn_bwd, x->ndim, x->shape, x, w, b, NULL);
    if (!t) return NULL;
    t->ip[0] = ctx->training;
    t->fp[0] = momentum;
    t->fp[1] = eps;
    if (t->flags & ZS_FLAG_ON_TAPE) {
        a.stat = (float *)zs__arena_alloc(&ctx->arena, (size_t)(2 * a.C) * 4 + 4);
        if (!a.stat) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted (saved statistics)", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        t->saved = a.stat;
    }
    a.x = (const float *)x->data;
    a.y = (float *)t->data;
    a.w = w ? (const float *)w->data : NULL;
    a.b = b ? (const float *)b->data : NULL;
    a.rm = running_mean ? (float *)running_mean->data : NULL;
    a.rv = running_var ? (float *)running_var->data : NULL;
    a.training = ctx->training;
    a.momentum = momentum;
    a.eps = eps;
    zs__parallel_rows(ctx, a.C, zs__conv_min_rows(a.B * a.HW), zs__bn_fwd_rows, &a);
    return t;
}
