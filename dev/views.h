/* ==================================================================== */
/* [impl:views] reshape, transpose, slice, concat, gather, matmul       */
/* ==================================================================== */

/* dst (strided, 4-D aligned) += src (contiguous in logical order) */
ZS__PRIV void zs__strided_acc(float *dst, const int64_t *shape4, const int64_t *stride4, const float *src) {
    int64_t i0, i1, i2, i3, k = 0;
    ZS__FOR4(shape4, i0, i1, i2, i3) {
        dst[i0 * stride4[0] + i1 * stride4[1] + i2 * stride4[2] + i3 * stride4[3]] += src[k++];
    }
}

/* contiguous dst (logical order) = strided src */
ZS__PRIV void zs__strided_copy(float *dst, const float *src, const int64_t *shape4, const int64_t *stride4) {
    int64_t i0, i1, i2, i3, k = 0;
    if (stride4[3] == 1) {
        for (i0 = 0; i0 < shape4[0]; i0++)
            for (i1 = 0; i1 < shape4[1]; i1++)
                for (i2 = 0; i2 < shape4[2]; i2++) {
                    memcpy(dst + k, src + i0 * stride4[0] + i1 * stride4[1] + i2 * stride4[2], (size_t)shape4[3] * 4);
                    k += shape4[3];
                }
        return;
    }
    ZS__FOR4(shape4, i0, i1, i2, i3) { dst[k++] = src[i0 * stride4[0] + i1 * stride4[1] + i2 * stride4[2] + i3 * stride4[3]]; }
}

/* gradient of a view: accumulate into the source's gradient through the
   view's own strides relative to the source storage. Valid because every
   view op keeps src[0] contiguous (zs_reshape copies non-contiguous input,
   transpose/slice of a view compose through zs__view_base). */
ZS__PRIV int zs__view_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    float *ga;
    int64_t sh[4], st[4];
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (!ga) return ZS_OK;
    zs__align4(out, sh, st);
    /* out->data = a->data + ip[0]; grad of a is contiguous with a's logical
       layout, which equals a's storage layout (a is contiguous) */
    zs__strided_acc(ga + out->ip[0], sh, st, out->grad);
    return ZS_OK;
}

/* views are always taken of a contiguous tensor so their gradient maps
   one-to-one onto its storage */
ZS__PRIV zs_tensor *zs__contig(zs_ctx *ctx, zs_tensor *a);

ZS__FN zs_tensor *zs_reshape(zs_ctx *ctx, zs_tensor *a, int ndim, const int64_t *shape) {
    int64_t sh[ZS_MAX_DIMS], n = 1, na;
    int i, neg = -1;
    zs_tensor *t;
    if (!a || !ctx) return NULL;
    if (ndim < 0 || ndim > ZS_MAX_DIMS || (ndim && !shape)) { zs__fail(ZS_ERR_SHAPE, "zs_reshape: bad ndim %d", ndim); return zs__op_fail(ctx, ZS_ERR_SHAPE); }
    na = zs_numel(a);
    for (i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (sh[i] == -1 && neg < 0) neg = i;
        else if (sh[i] < 0) { zs__fail(ZS_ERR_SHAPE, "zs_reshape: bad dimension %lld", (long long)sh[i]); return zs__op_fail(ctx, ZS_ERR_SHAPE); }
        else n *= sh[i];
    }
    if (neg >= 0) {
        if (n == 0 || na % n) return zs__shape_fail(ctx, "zs_reshape", a, NULL, "cannot infer the -1 dimension");
        sh[neg] = na / n;
        n = na;
    }
    if (n != na) {
        char s[96];
        zs__fail(ZS_ERR_SHAPE, "zs_reshape: %s has %lld elements, the new shape %lld", zs_shape_str(a, s, sizeof s), (long long)na, (long long)n);
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    if (a->type == ZS_F32) a = zs__contig(ctx, a);
    else if (!zs_is_contiguous(a)) { zs__fail(ZS_ERR_ARG, "zs_reshape: non-contiguous %s tensor", zs_type_name(a->type)); return zs__op_fail(ctx, ZS_ERR_ARG); }
    if (!a) return NULL;
    t = zs__view_new(ctx, "reshape", zs__view_bwd, a);
    if (!t) return NULL;
    t->ndim = ndim;
    for (i = 0; i < ndim; i++) t->shape[i] = sh[i];
    zs__set_contig_strides(t);
    t->ip[0] = 0;
    return t;
}

ZS__FN zs_tensor *zs_reshape2(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1) {
    int64_t s[2]; s[0] = n0; s[1] = n1;
    return zs_reshape(ctx, a, 2, s);
}
ZS__FN zs_tensor *zs_reshape3(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1, int64_t n2) {
    int64_t s[3]; s[0] = n0; s[1] = n1; s[2] = n2;
    return zs_reshape(ctx, a, 3, s);
}
ZS__FN zs_tensor *zs_reshape4(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    int64_t s[4]; s[0] = n0; s[1] = n1; s[2] = n2; s[3] = n3;
    return zs_reshape(ctx, a, 4, s);
}

/* the contiguous tensor a view (chain) was taken of, and the view's offset */
ZS__PRIV zs_tensor *zs__view_base(zs_tensor *a, int64_t *off) {
    *off = 0;
    while (a->op && a->backward == zs__view_bwd && a->src[0]) { *off += a->ip[0]; a = a->src[0]; }
    /* views recorded without a tape (inference) have backward NULL: walk by op name */
    while (a->op && a->src[0] && (!strcmp(a->op, "transpose") || !strcmp(a->op, "slice") || !strcmp(a->op, "reshape"))) {
        *off += a->ip[0];
        a = a->src[0];
    }
    return a;
}

ZS__FN zs_tensor *zs_transpose(zs_ctx *ctx, zs_tensor *a, int d0, int d1) {
    zs_tensor *t, *base;
    int64_t tmp, off;
    if (!a || !ctx) return NULL;
    if (d0 < 0) d0 += a->ndim;
    if (d1 < 0) d1 += a->ndim;
    if (d0 < 0 || d1 < 0 || d0 >= a->ndim || d1 >= a->ndim) return zs__shape_fail(ctx, "zs_transpose", a, NULL, "dimension out of range");
    base = zs__view_base(a, &off);
    t = zs__view_new(ctx, "transpose", zs__view_bwd, base);
    if (!t) return NULL;
    t->ndim = a->ndim;
    memcpy(t->shape, a->shape, sizeof t->shape);
    memcpy(t->stride, a->stride, sizeof t->stride);
    t->data = a->data;
    t->ip[0] = off;
    tmp = t->shape[d0]; t->shape[d0] = t->shape[d1]; t->shape[d1] = tmp;
    tmp = t->stride[d0]; t->stride[d0] = t->stride[d1]; t->stride[d1] = tmp;
    return t;
}

ZS__FN zs_tensor *zs_slice(zs_ctx *ctx, zs_tensor *a, int dim, int64_t start, int64_t end) {
    zs_tensor *t, *base;
    int64_t off;
    if (!a || !ctx) return NULL;
    if (dim < 0) dim += a->ndim;
    if (dim < 0 || dim >= a->ndim) return zs__shape_fail(ctx, "zs_slice", a, NULL, "dimension out of range");
    if (start < 0 || end > a->shape[dim] || start > end) {
        char s[96];
        zs__fail(ZS_ERR_SHAPE, "zs_slice: range [%lld,%lld) outside dimension %d of %s", (long long)start, (long long)end, dim, zs_shape_str(a, s, sizeof s));
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    base = zs__view_base(a, &off);
    t = zs__view_new(ctx, "slice", zs__view_bwd, base);
    if (!t) return NULL;
    t->ndim = a->ndim;
    memcpy(t->shape, a->shape, sizeof t->shape);
    memcpy(t->stride, a->stride, sizeof t->stride);
    t->shape[dim] = end - start;
    t->data = (char *)a->data + start * a->stride[dim] * (int64_t)zs_type_size(a->type);
    t->ip[0] = off + start * a->stride[dim];
    return t;
}

/* -- contiguous copy -- */
ZS__PRIV int zs__contig_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    float *ga;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (ga) {
        int64_t i, n = zs_numel(a);
        for (i = 0; i < n; i++) ga[i] += out->grad[i];
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_contiguous(zs_ctx *ctx, zs_tensor *a) {
    zs_tensor *t;
    int64_t sh[4], st[4];
    if (!zs__ok1(ctx, a, "zs_contiguous")) return NULL;
    t = zs__op_new(ctx, "contiguous", zs__contig_bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!t) return NULL;
    zs__align4(a, sh, st);
    zs__strided_copy((float *)t->data, (const float *)a->data, sh, st);
    return t;
}

ZS__PRIV zs_tensor *zs__contig(zs_ctx *ctx, zs_tensor *a) {
    if (!a) return NULL;
    return zs_is_contiguous(a) ? a : zs_contiguous(ctx, a);
}

/* -- concat -- */
ZS__PRIV int zs__concat_bwd(zs_ctx *ctx, zs_tensor *out) {
    /* saved: array of n input pointers; ip[0] = n, ip[1] = dim */
    zs_tensor **xs = (zs_tensor **)out->saved;
    int n = (int)out->ip[0], dim = (int)out->ip[1], i;
    int64_t outer = 1, inner = 1, d, o, pos = 0, L = out->shape[dim];
    for (d = 0; d < dim; d++) outer *= out->shape[d];
    for (d = dim + 1; d < out->ndim; d++) inner *= out->shape[d];
    for (i = 0; i < n; i++) {
        int64_t li = xs[i]->shape[dim];
        float *g;
        ZS__GRAD_OR_FAIL(g, ctx, xs[i]);
        if (g)
            for (o = 0; o < outer; o++) {
                const float *src = out->grad + (o * L + pos) * inner;
                float *dst = g + o * li * inner;
                int64_t k;
                for (k = 0; k < li * inner; k++) dst[k] += src[k];
            }
        pos += li;
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_concat(zs_ctx *ctx, zs_tensor *const *xs, int n, int dim) {
    int64_t shape[ZS_MAX_DIMS], outer = 1, inner = 1, L, pos = 0, o;
    zs_tensor **cx, *t;
    int i, d, any_grad = 0;
    if (!ctx || !xs || n < 1) { zs__fail(ZS_ERR_ARG, "zs_concat: need at least one input"); return zs__op_fail(ctx, ZS_ERR_ARG); }
    for (i = 0; i < n; i++) if (!zs__ok1(ctx, xs[i], "zs_concat")) return NULL;
    if (dim < 0) dim += xs[0]->ndim;
    if (dim < 0 || dim >= xs[0]->ndim) return zs__shape_fail(ctx, "zs_concat", xs[0], NULL, "dimension out of range");
    memcpy(shape, xs[0]->shape, sizeof shape);
    L = 0;
    for (i = 0; i < n; i++) {
        if (xs[i]->ndim != xs[0]->ndim) return zs__shape_fail(ctx, "zs_concat", xs[0], xs[i], "inputs differ in rank");
        for (d = 0; d < xs[0]->ndim; d++)
            if (d != dim && xs[i]->shape[d] != shape[d]) return zs__shape_fail(ctx, "zs_concat", xs[0], xs[i], "inputs differ outside the concat dimension");
        L += xs[i]->shape[dim];
        any_grad |= zs__needs_grad(xs[i]);
    }
    shape[dim] = L;
    cx = (zs_tensor **)zs__arena_alloc(&ctx->arena, (size_t)n * sizeof(zs_tensor *));
    if (!cx) { zs__fail(ZS_ERR_NOMEM, "zs_concat: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    for (i = 0; i < n; i++) if (!(cx[i] = zs__contig(ctx, xs[i]))) return NULL;
    /* more than 4 sources: the tape link goes through src[0] for recording,
       the full list lives in saved */
    t = zs__op_new(ctx, "concat", zs__concat_bwd, xs[0]->ndim, shape, any_grad ? cx[0] : NULL, NULL, NULL, NULL);
    if (!t) return NULL;
    if (any_grad && !(t->flags & ZS_FLAG_ON_TAPE) && ctx->grad_enabled) {
        t->flags |= ZS_FLAG_REQUIRES_GRAD | ZS_FLAG_ON_TAPE;
        t->backward = zs__concat_bwd;
        t->tape_prev = ctx->tape;
        ctx->tape = t;
    }
    t->src[0] = cx[0];
    t->saved = cx;
    t->ip[0] = n;
    t->ip[1] = dim;
    for (d = 0; d < dim; d++) outer *= shape[d];
    for (d = dim + 1; d < xs[0]->ndim; d++) inner *= shape[d];
    for (i = 0; i < n; i++) {
        int64_t li = cx[i]->shape[dim];
        for (o = 0; o < outer; o++)
            memcpy((float *)t->data + (o * L + pos) * inner, (const float *)cx[i]->data + o * li * inner, (size_t)(li * inner) * 4);
        pos += li;
    }
    return t;
}

/* -- gather rows along dim 0 -- */
ZS__PRIV int zs__gather_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    const int32_t *idx = (const int32_t *)out->saved;
    int64_t i, k, n = out->shape[0], row = zs_numel(a) / (a->shape[0] ? a->shape[0] : 1);
    float *ga;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (ga)
        for (i = 0; i < n; i++)
            for (k = 0; k < row; k++) ga[(int64_t)idx[i] * row + k] += out->grad[i * row + k];
    return ZS_OK;
}

ZS__FN zs_tensor *zs_gather(zs_ctx *ctx, zs_tensor *a, const int32_t *idx, int64_t n) {
    int64_t shape[ZS_MAX_DIMS], i, row;
    int32_t *cidx;
    zs_tensor *t;
    if (!zs__ok1(ctx, a, "zs_gather")) return NULL;
    if (a->ndim < 1 || n < 0 || (n && !idx)) return zs__shape_fail(ctx, "zs_gather", a, NULL, "need rank >= 1 and an index array");
    for (i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= a->shape[0]) {
            zs__fail(ZS_ERR_ARG, "zs_gather: index %lld = %d outside [0,%lld)", (long long)i, (int)idx[i], (long long)a->shape[0]);
            return zs__op_fail(ctx, ZS_ERR_ARG);
        }
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = n;
    row = a->shape[0] ? zs_numel(a) / a->shape[0] : 0;
    t = zs__op_new(ctx, "gather", zs__gather_bwd, a->ndim, shape, a, NULL, NULL, NULL);
    if (!t) return NULL;
    cidx = (int32_t *)zs__arena_alloc(&ctx->arena, (size_t)(n ? n : 1) * 4);
    if (!cidx) { zs__fail(ZS_ERR_NOMEM, "zs_gather: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    if (n) memcpy(cidx, idx, (size_t)n * 4);
    t->saved = cidx;
    for (i = 0; i < n; i++) memcpy((float *)t->data + i * row, (const float *)a->data + (int64_t)idx[i] * row, (size_t)row * 4);
    return t;
}

/* -- storage conversion -- */
ZS__FN zs_tensor *zs_to_f32(zs_ctx *ctx, zs_tensor *a) {
    zs_tensor *t;
    if (!a || !ctx) return NULL;
    if (a->type == ZS_F32) return zs__contig(ctx, a);
    if (a->type != ZS_F16 && a->type != ZS_BF16) { zs__fail(ZS_ERR_ARG, "zs_to_f32: cannot convert %s", zs_type_name(a->type)); return zs__op_fail(ctx, ZS_ERR_ARG); }
    t = zs_tensor_new(ctx, ZS_F32, a->ndim, a->shape);
    if (!t) return NULL;
    t->op = "to_f32";
    if (zs_tensor_copy_out(t->data, ZS_F32, a) != ZS_OK) return zs__op_fail(ctx, ZS_ERR_ARG);
    return t;
}

/* -- matmul -- */
/* A matmul operand as (pointer, leading dimension, transposed flag) without
   copying: a 2-D slice of a tensor whose last or second-to-last dim has
   stride 1 maps straight onto SGEMM's transpose flags. */
typedef struct zs__mm_arg { const float *p; int64_t ld, bstride; int trans; } zs__mm_arg;

/* rows, cols = the stored matrix dims of the last two axes of t */
ZS__PRIV int zs__mm_view(const zs_tensor *t, int want_trans, zs__mm_arg *m) {
    int r = t->ndim - 2, c = t->ndim - 1;
    int64_t bs = t->ndim >= 3 ? t->stride[t->ndim - 3] : 0;
    if (t->stride[c] == 1 || t->shape[c] == 1) {
        m->ld = t->shape[r] == 1 ? (t->shape[c] > 0 ? t->shape[c] : 1) : t->stride[r];
        if (m->ld < t->shape[c]) return 0;
        m->trans = want_trans;
    } else if (t->stride[r] == 1 || t->shape[r] == 1) {
        m->ld = t->shape[c] == 1 ? (t->shape[r] > 0 ? t->shape[r] : 1) : t->stride[c];
        if (m->ld < t->shape[r]) return 0;
        m->trans = !want_trans;
    } else {
        return 0;
    }
    /* batch dims must collapse to one stride */
    if (t->ndim == 4 && t->stride[0] != t->stride[1] * t->shape[1] && t->shape[0] > 1 && t->shape[1] > 1) return 0;
    m->bstride = bs;
    m->p = (const float *)t->data;
    return 1;
}

ZS__PRIV int64_t zs__batch_count(const zs_tensor *t) {
    int64_t b = 1;
    int i;
    for (i = 0; i + 2 < t->ndim; i++) b *= t->shape[i];
    return b;
}

/* C_b (+)= op(A_b) op(B_b) for all batches; A/B given as tensors with flags */
ZS__PRIV int zs__mm_run(zs_ctx *ctx, zs_tensor *A, int ta, zs_tensor *B, int tb, float beta, float *C,
                        int64_t M, int64_t N, int64_t K, int64_t batch, int b_shared) {
    zs__mm_arg a, b;
    if (!zs__mm_view(A, ta, &a) || !zs__mm_view(B, tb, &b)) return ZS_ERR_STATE;
    return zs__sgemm_batched(&ctx->pool, a.trans, b.trans, M, N, K, 1.0f, a.p, a.ld, a.bstride,
                             b.p, b.ld, b_shared ? 0 : b.bstride, beta, C, N, M * N, batch);
}

ZS__PRIV int zs__matmul_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int ta = (int)out->ip[0], tb = (int)out->ip[1], b_shared = (int)out->ip[2];
    int64_t M = out->shape[out->ndim - 2], N = out->shape[out->ndim - 1];
    int64_t K = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t batch = zs__batch_count(out), i;
    float *ga, *gb;
    zs_tensor G;
    int rc;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    /* a header over out->grad so the same stride logic applies */
    G = *out;
    G.data = out->grad;
    zs__set_contig_strides(&G);
    if (ga) {
        /* dA = dC op(B)^T  (ta=0: [M,K]);  ta=1: dA = op(B) dC^T ([K,M]) */
        zs__mm_arg g, bb;
        if (!zs__mm_view(&G, 0, &g) || !zs__mm_view(b, 0, &bb)) return ZS_ERR_STATE;
        if (!ta) {
            /* [M,N] x op(B)^T[N,K]: B stored [K,N] (tb=0) -> use B^T; stored [N,K] (tb=1) -> plain */
            zs__mm_arg bt;
            if (!zs__mm_view(b, !tb, &bt)) return ZS_ERR_STATE;
            for (i = 0; i < batch; i++) {
                rc = zs__sgemm(&ctx->pool, 0, bt.trans, M, K, N, 1.0f, g.p + i * M * N, N,
                               bt.p + (b_shared ? 0 : i * bt.bstride), bt.ld, 1.0f, ga + i * M * K, K);
                if (rc) return rc;
            }
        } else {
            /* dA [K,M] = op(B)[K,N] dC^T [N,M] */
            zs__mm_arg bo;
            if (!zs__mm_view(b, tb, &bo)) return ZS_ERR_STATE;
            for (i = 0; i < batch; i++) {
                rc = zs__sgemm(&ctx->pool, bo.trans, 1, K, M, N, 1.0f, bo.p + (b_shared ? 0 : i * bo.bstride), bo.ld,
                               g.p + i * M * N, N, 1.0f, ga + i * M * K, M);
                if (rc) return rc;
            }
        }
        (void)bb;
    }
    if (gb) {
        zs__mm_arg ao;
        if (!zs__mm_view(a, ta, &ao)) return ZS_ERR_STATE;
        for (i = 0; i < batch; i++) {
            const float *ap = ao.p + i * ao.bstride, *gp = out->grad + i * M * N;
            float *gbp = gb + (b_shared ? 0 : i * K * N);
            if (!tb) /* dB [K,N] = op(A)^T [K,M] dC [M,N] */
                rc = zs__sgemm(&ctx->pool, !ao.trans, 0, K, N, M, 1.0f, ap, ao.ld, gp, N, 1.0f, gbp, N);
            else     /* dB [N,K] = dC^T [N,M] op(A) [M,K] */
                rc = zs__sgemm(&ctx->pool, 1, ao.trans, N, K, M, 1.0f, gp, N, ap, ao.ld, 1.0f, gbp, K);
            if (rc) return rc;
        }
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_matmul(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, int ta, int tb) {
    int64_t shape[ZS_MAX_DIMS], M, K, K2, N;
    int i, b_shared;
    zs_tensor *t;
    zs__mm_arg tmp;
    if (!zs__ok2(ctx, a, b, "zs_matmul")) return NULL;
    if (a->ndim < 2 || b->ndim < 2) return zs__shape_fail(ctx, "zs_matmul", a, b, "both operands need rank >= 2");
    b_shared = b->ndim == 2 && a->ndim > 2;
    if (!b_shared) {
        if (a->ndim != b->ndim) return zs__shape_fail(ctx, "zs_matmul", a, b, "batch dims differ (b may be 2-D to share it)");
        for (i = 0; i + 2 < a->ndim; i++)
            if (a->shape[i] != b->shape[i]) return zs__shape_fail(ctx, "zs_matmul", a, b, "batch dims differ");
    }
    M = ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    K = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    K2 = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    N = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    if (K != K2) return zs__shape_fail(ctx, "zs_matmul", a, b, "inner dimensions differ");
    /* operands SGEMM cannot address in place are made contiguous */
    if (!zs__mm_view(a, ta, &tmp)) a = zs_contiguous(ctx, a);
    if (!zs__mm_view(b, tb, &tmp)) b = zs_contiguous(ctx, b);
    if (!a || !b) return NULL;
    for (i = 0; i + 2 < a->ndim; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    t = zs__op_new(ctx, "matmul", zs__matmul_bwd, a->ndim, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = ta; t->ip[1] = tb; t->ip[2] = b_shared;
    if (b_shared && !ta && zs_is_contiguous(a)) {
        /* fold the batch into M: one big GEMM */
        zs__mm_arg bb;
        zs__mm_view(b, tb, &bb);
        if (zs__sgemm(&ctx->pool, 0, bb.trans, zs__batch_count(a) * M, N, K, 1.0f, (const float *)a->data, K,
                      bb.p, bb.ld, 0.0f, (float *)t->data, N) != ZS_OK)
            return zs__op_fail(ctx, ZS_ERR_NOMEM);
        return t;
    }
    if (zs__mm_run(ctx, a, ta, b, tb, 0.0f, (float *)t->data, M, N, K, zs__batch_count(a), b_shared) != ZS_OK) {
        zs__fail(ZS_ERR_NOMEM, "zs_matmul: kernel failed");
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    return t;
}

/* -- linear: x [.., in] w [out, in] b [out] -- */
ZS__PRIV int zs__linear_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    int64_t O = w->shape[0], I = w->shape[1], R = zs_numel(x) / (I ? I : 1), r, o;
    float *gx, *gw, *gb;
    int rc;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gw, ctx, w);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    if (gx) { /* dX [R,I] += dY [R,O] W [O,I] */
        rc = zs__sgemm(&ctx->pool, 0, 0, R, I, O, 1.0f, out->grad, O, (const float *)w->data, I, 1.0f, gx, I);
        if (rc) return rc;
    }
    if (gw) { /* dW [O,I] += dY^T [O,R] X [R,I] */
        rc = zs__sgemm(&ctx->pool, 1, 0, O, I, R, 1.0f, out->grad, O, (const float *)x->data, I, 1.0f, gw, I);
        if (rc) return rc;
    }
    if (gb) /* fixed row order: identical for every thread count */
        for (r = 0; r < R; r++)
            for (o = 0; o < O; o++) gb[o] += out->grad[r * O + o];
    return ZS_OK;
}

ZS__FN zs_tensor *zs_linear(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b) {
    int64_t shape[ZS_MAX_DIMS], O, I, R, r;
    zs_tensor *t;
    if (!zs__ok2(ctx, x, w, "zs_linear") || (b && !zs__ok1(ctx, b, "zs_linear"))) return NULL;
    if (w->ndim != 2) return zs__shape_fail(ctx, "zs_linear", w, NULL, "weight must be [out,in]");
    if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1]) return zs__shape_fail(ctx, "zs_linear", x, w, "last dim of x must equal weight's in");
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) return zs__shape_fail(ctx, "zs_linear", b, w, "bias must be [out]");
    x = zs__contig(ctx, x);
    w = zs__contig(ctx, w);
    if (!x || !w) return NULL;
    O = w->shape[0]; I = w->shape[1];
    R = I ? zs_numel(x) / I : 0;
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = O;
    t = zs__op_new(ctx, "linear", zs__linear_bwd, x->ndim, shape, x, w, b, NULL);
    if (!t) return NULL;
    if (b) {
        float *y = (float *)t->data;
        for (r = 0; r < R; r++) memcpy(y + r * O, b->data, (size_t)O * 4);
    }
    if (zs__sgemm(&ctx->pool, 0, 1, R, O, I, 1.0f, (const float *)x->data, I, (const float *)w->data, I,
                  b ? 1.0f : 0.0f, (float *)t->data, O) != ZS_OK) {
        zs__fail(ZS_ERR_NOMEM, "zs_linear: kernel failed");
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    return t;
}
