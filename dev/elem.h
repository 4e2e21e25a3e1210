/* ==================================================================== */
/* [impl:elem] elementwise, reductions, activations, norms              */
/* ==================================================================== */
/* Every kernel here that has a vector path has a plain scalar reference
   (zs__X_ref, double precision where it matters) beside it; the tests compare
   the two on odd sizes and on model-sized shapes.

   Threads and determinism. Results are bit-identical for any thread count:
   - flat elementwise loops are cut at fixed multiples of ZS__EBLK elements
     (zs__ew_run), so whether an element goes through the vector body or the
     scalar tail depends on its index only, never on the split;
   - row ops (softmax, norms) give each row wholly to one thread;
   - reductions never split a sum across threads: broadcast gradients are
     split over the dimensions that are NOT summed; sum/mean use fixed
     chunks of ZS__EBLK elements summed in double, then the chunk sums in
     order; LayerNorm dw/db use per-chunk partial sums over ZS__LN_CHUNK rows,
     combined in chunk order.

   Accuracy of the special functions (measured by tests/test_elem.c against
   libm in double over [-10, 10], AVX2 and scalar paths alike):
     zs__erff / zs__erf_n   max abs error ~1e-7 (a few ulp of 1), rel error
                            <= ~3e-7 where |erf| >= 1e-3, ~1e-7 near 0
     GELU forward           max rel error ~3e-7 (x in [-10, 10], all outputs
                            down to -7.6e-23 at x = -10)
     GELU derivative        max error ~3e-7 relative (+ 1e-7 abs near its root)
   See test_elem_erf_gelu_accuracy for the figures of the current build. */

#define ZS__EBLK 4096          /* elements per flat work block (multiple of every vector width) */
#define ZS__EW_MIN 32768       /* elements a thread should get before splitting is worth it */
#define ZS__LN_CHUNK 32        /* rows per LayerNorm dw/db partial sum */

/* -- flat loops over fixed blocks ------------------------------------- */

/* elementwise job ops (zs__ew_task) */
enum {
    ZS__U_ACC = 0, ZS__U_NACC,  /* y += x, y -= x */
    ZS__U_AXPY, ZS__U_SCALE, ZS__U_ADDS, ZS__U_ADDC,
    ZS__U_RELU, ZS__U_RELU_BWD, ZS__U_GELU, ZS__U_GELU_BWD,
    ZS__U_SIGMOID, ZS__U_SIGMOID_BWD, ZS__U_SOFTPLUS, ZS__U_SOFTPLUS_BWD,
    ZS__U_DROPOUT, ZS__U_DROPOUT_BWD
};

typedef struct zs__ew_job {
    int op;
    float *y;            /* output, or the gradient accumulated into */
    const float *x, *g;  /* operand; output gradient (backward) */
    float s, s2;         /* scalar parameters */
    uint64_t key;        /* dropout */
} zs__ew_job;

ZS__PRIV void zs__ew_task(void *arg, int64_t lo, int64_t hi);

typedef void (*zs__ew_fn)(void *arg, int64_t lo, int64_t hi);
typedef struct zs__ew_run_job { zs__ew_fn fn; void *arg; int64_t n; } zs__ew_run_job;

ZS__PRIV void zs__ew_run_task(void *a, int64_t blo, int64_t bhi, zs__arena *ws) {
    zs__ew_run_job *j = (zs__ew_run_job *)a;
    int64_t lo = blo * ZS__EBLK, hi = bhi * ZS__EBLK;
    (void)ws;
    if (hi > j->n) hi = j->n;
    if (hi > lo) j->fn(j->arg, lo, hi);
}

/* fn(arg, lo, hi) over [0, n), cut at multiples of ZS__EBLK; min_elems is
   the work one thread should at least get (cheap ops: ZS__EW_MIN) */
ZS__PRIV void zs__ew_run(zs_ctx *ctx, int64_t n, int64_t min_elems, zs__ew_fn fn, void *arg) {
    zs__ew_run_job j;
    int64_t nb = (n + ZS__EBLK - 1) / ZS__EBLK, minb = (min_elems + ZS__EBLK - 1) / ZS__EBLK;
    j.fn = fn; j.arg = arg; j.n = n;
    if (n <= 0) return;
    zs__parallel_rows(ctx, nb, minb > 0 ? minb : 1, zs__ew_run_task, &j);
}

/* -- row helpers (vector macro layer; fixed summation order) ----------- */

/* sum x[0..n): two ZS__VW-lane accumulators, lane sum, then the tail */
ZS__PRIV float zs__row_sum(const float *x, int64_t n) {
    int64_t i = 0;
    float s;
    zs__vf a0 = zs__vzero(), a1 = zs__vzero();
    for (; i + 2 * ZS__VW <= n; i += 2 * ZS__VW) {
        a0 = zs__vadd(a0, zs__vload(x + i));
        a1 = zs__vadd(a1, zs__vload(x + i + ZS__VW));
    }
    for (; i + ZS__VW <= n; i += ZS__VW) a0 = zs__vadd(a0, zs__vload(x + i));
    s = zs__vhsum(zs__vadd(a0, a1));
    for (; i < n; i++) s += x[i];
    return s;
}

/* sum x[i] * y[i] */
ZS__PRIV float zs__row_dot(const float *x, const float *y, int64_t n) {
    int64_t i = 0;
    float s;
    zs__vf a0 = zs__vzero(), a1 = zs__vzero();
    for (; i + 2 * ZS__VW <= n; i += 2 * ZS__VW) {
        a0 = zs__vfma(zs__vload(x + i), zs__vload(y + i), a0);
        a1 = zs__vfma(zs__vload(x + i + ZS__VW), zs__vload(y + i + ZS__VW), a1);
    }
    for (; i + ZS__VW <= n; i += ZS__VW) a0 = zs__vfma(zs__vload(x + i), zs__vload(y + i), a0);
    s = zs__vhsum(zs__vadd(a0, a1));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* sum (x[i] - m)^2 */
ZS__PRIV float zs__row_sqdev(const float *x, float m, int64_t n) {
    int64_t i = 0;
    float s;
    zs__vf a0 = zs__vzero(), a1 = zs__vzero(), vm = zs__vset1(m);
    for (; i + 2 * ZS__VW <= n; i += 2 * ZS__VW) {
        zs__vf d0 = zs__vsub(zs__vload(x + i), vm), d1 = zs__vsub(zs__vload(x + i + ZS__VW), vm);
        a0 = zs__vfma(d0, d0, a0);
        a1 = zs__vfma(d1, d1, a1);
    }
    for (; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf d0 = zs__vsub(zs__vload(x + i), vm);
        a0 = zs__vfma(d0, d0, a0);
    }
    s = zs__vhsum(zs__vadd(a0, a1));
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return s;
}

/* y[i] += x[i] (neg: -=); exact, so vector and scalar paths agree bit for bit */
ZS__PRIV void zs__ew_acc_n(float *y, const float *x, int64_t n, int neg) {
    int64_t i = 0;
    if (neg) {
        for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vsub(zs__vload(y + i), zs__vload(x + i)));
        for (; i < n; i++) y[i] -= x[i];
    } else {
        for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vadd(zs__vload(y + i), zs__vload(x + i)));
        for (; i < n; i++) y[i] += x[i];
    }
}

/* y[i] += s * x[i] */
ZS__PRIV void zs__ew_axpy_n(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    zs__vf vs = zs__vset1(s);
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vfma(zs__vload(x + i), vs, zs__vload(y + i)));
    for (; i < n; i++) y[i] += s * x[i];
}

/* y[i] = s * x[i] (y may alias x) */
ZS__PRIV void zs__ew_scale_n(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    zs__vf vs = zs__vset1(s);
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vmul(zs__vload(x + i), vs));
    for (; i < n; i++) y[i] = s * x[i];
}
ZS__PRIV void zs__ew_scale_ref(float *y, const float *x, float s, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = s * x[i];
}

/* y[i] = x[i] + s; with x == NULL: y[i] += s */
ZS__PRIV void zs__ew_adds_n(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    zs__vf vs = zs__vset1(s);
    if (!x) x = y;
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vadd(zs__vload(x + i), vs));
    for (; i < n; i++) y[i] = x[i] + s;
}

/* ==================================================================== */
/* binary ops with numpy broadcasting                                   */
/* ==================================================================== */
/* Shapes are right-aligned to 4 dims; a dim of size 1 broadcasts (stride 0).
   Adjacent dims whose strides chain in every operand are merged, so
   [B,T,D] + [D] runs as rows [B*T, D] + one vector row (the bias fast path)
   and same-shape contiguous operands run as one flat row. */

enum { ZS__B_ADD = 0, ZS__B_SUB = 1, ZS__B_MUL = 2, ZS__B_ACCMUL = 3 /* y += a*b */ };

#define ZS__BIN_ROW(VEXPR, SEXPR)                                                            \
    do {                                                                                     \
        if (sa == 1 && sb == 1) {                                                            \
            for (; i + ZS__VW <= n; i += ZS__VW) {                                           \
                zs__vf va = zs__vload(a + i), vb = zs__vload(b + i);                         \
                zs__vstore(y + i, VEXPR);                                                    \
            }                                                                                \
            for (; i < n; i++) { float xa = a[i], xb = b[i]; y[i] = SEXPR; }                 \
        } else if (sa == 1 && sb == 0) {                                                     \
            float xb = b[0];                                                                 \
            zs__vf vb = zs__vset1(xb);                                                       \
            for (; i + ZS__VW <= n; i += ZS__VW) {                                           \
                zs__vf va = zs__vload(a + i);                                                \
                zs__vstore(y + i, VEXPR);                                                    \
            }                                                                                \
            for (; i < n; i++) { float xa = a[i]; y[i] = SEXPR; }                            \
        } else if (sa == 0 && sb == 1) {                                                     \
            float xa = a[0];                                                                 \
            zs__vf va = zs__vset1(xa);                                                       \
            for (; i + ZS__VW <= n; i += ZS__VW) {                                           \
                zs__vf vb = zs__vload(b + i);                                                \
                zs__vstore(y + i, VEXPR);                                                    \
            }                                                                                \
            for (; i < n; i++) { float xb = b[i]; y[i] = SEXPR; }                            \
        } else {                                                                             \
            for (; i < n; i++) { float xa = a[i * sa], xb = b[i * sb]; y[i] = SEXPR; }       \
        }                                                                                    \
    } while (0)

/* y[i] = a[i*sa] op b[i*sb] for i < n (sa, sb of 0 or 1 take vector paths).
   add/sub/mul round once in either path, so the results are exact matches
   of zs__bin_row_ref. */
ZS__PRIV void zs__bin_row(int op, float *y, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n) {
    int64_t i = 0;
    switch (op) {
    case ZS__B_ADD: ZS__BIN_ROW(zs__vadd(va, vb), xa + xb); break;
    case ZS__B_SUB: ZS__BIN_ROW(zs__vsub(va, vb), xa - xb); break;
    case ZS__B_MUL: ZS__BIN_ROW(zs__vmul(va, vb), xa * xb); break;
    default: ZS__BIN_ROW(zs__vadd(zs__vload(y + i), zs__vmul(va, vb)), y[i] + xa * xb); break;
    }
}

ZS__PRIV void zs__bin_row_ref(int op, float *y, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float xa = a[i * sa], xb = b[i * sb];
        switch (op) {
        case ZS__B_ADD: y[i] = xa + xb; break;
        case ZS__B_SUB: y[i] = xa - xb; break;
        case ZS__B_MUL: y[i] = xa * xb; break;
        default: y[i] = y[i] + xa * xb; break;
        }
    }
}

/* numpy broadcast shape of a and b: right-aligned, sizes equal or one is 1 */
ZS__PRIV int zs__bcast_shape(const zs_tensor *a, const zs_tensor *b, int *ndim, int64_t *sh4) {
    int64_t sa[4], sb[4], ta[4], tb[4];
    int i;
    zs__align4(a, sa, ta);
    zs__align4(b, sb, tb);
    *ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (i = 0; i < 4; i++) {
        if (sa[i] == sb[i] || sb[i] == 1) sh4[i] = sa[i];
        else if (sa[i] == 1) sh4[i] = sb[i];
        else return 0;
    }
    return 1;
}

/* t's data strides right-aligned to 4 dims, 0 where t has size 1 */
ZS__PRIV void zs__bcast_strides(const zs_tensor *t, int64_t *st) {
    int i, off = 4 - t->ndim;
    for (i = 0; i < 4; i++) st[i] = 0;
    for (i = 0; i < t->ndim; i++) st[off + i] = t->shape[i] == 1 ? 0 : t->stride[i];
}

/* the same for t's gradient buffer (contiguous in t's logical shape) */
ZS__PRIV void zs__bcast_gstrides(const zs_tensor *t, int64_t *st) {
    int64_t s = 1;
    int i, off = 4 - t->ndim;
    for (i = 0; i < 4; i++) st[i] = 0;
    for (i = t->ndim - 1; i >= 0; i--) {
        st[off + i] = t->shape[i] == 1 ? 0 : s;
        s *= t->shape[i];
    }
}

/* Drop size-1 dims and merge neighbours whose strides chain in all k stride
   arrays; the result stays right-aligned in 4 slots (leading 1s, stride 0). */
ZS__PRIV void zs__collapse(int64_t *sh, int64_t **st, int k) {
    int64_t csh[4], cst[3][4];
    int d, j, m = 0;
    for (d = 3; d >= 0; d--) {
        int merge = m > 0;
        if (sh[d] == 1) continue;
        for (j = 0; j < k && merge; j++)
            if (st[j][d] != cst[j][m - 1] * csh[m - 1]) merge = 0;
        if (merge) {
            csh[m - 1] *= sh[d];
        } else {
            csh[m] = sh[d];
            for (j = 0; j < k; j++) cst[j][m] = st[j][d];
            m++;
        }
    }
    for (d = 0; d < 4; d++) {
        sh[d] = 1;
        for (j = 0; j < k; j++) st[j][d] = 0;
    }
    for (d = 0; d < m; d++) {
        sh[3 - d] = csh[d];
        for (j = 0; j < k; j++) st[j][3 - d] = cst[j][d];
    }
}

typedef struct zs__bin_job {
    int op;
    float *y;               /* contiguous in sh */
    const float *a, *b;
    int64_t sh[4], sa[4], sb[4];
    int64_t nb;             /* blocks of ZS__EBLK per row */
} zs__bin_job;

/* work item = (row, block of the row); rows are the collapsed outer dims */
ZS__PRIV void zs__bin_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__bin_job *j = (zs__bin_job *)arg;
    int64_t it;
    (void)ws;
    for (it = lo; it < hi; it++) {
        int64_t r = it / j->nb, c0 = (it % j->nb) * ZS__EBLK, c1 = c0 + ZS__EBLK;
        int64_t i2 = r % j->sh[2], t = r / j->sh[2], i1 = t % j->sh[1], i0 = t / j->sh[1];
        int64_t oa = i0 * j->sa[0] + i1 * j->sa[1] + i2 * j->sa[2] + c0 * j->sa[3];
        int64_t ob = i0 * j->sb[0] + i1 * j->sb[1] + i2 * j->sb[2] + c0 * j->sb[3];
        if (c1 > j->sh[3]) c1 = j->sh[3];
        zs__bin_row(j->op, j->y + r * j->sh[3] + c0, j->a + oa, j->sa[3], j->b + ob, j->sb[3], c1 - c0);
    }
}

/* y (contiguous, 4-D shape sh4) = a op b; a, b given by data and 4-D strides
   aligned to sh4 (0 = broadcast) */
ZS__PRIV void zs__bin_exec(zs_ctx *ctx, int op, float *y, const int64_t *sh4, const float *a, const int64_t *sa4,
                           const float *b, const int64_t *sb4) {
    zs__bin_job j;
    int64_t *st[2], rows, per;
    int d;
    j.op = op; j.y = y; j.a = a; j.b = b;
    for (d = 0; d < 4; d++) {
        j.sh[d] = sh4[d]; j.sa[d] = sa4[d]; j.sb[d] = sb4[d];
        if (sh4[d] == 0) return;
    }
    st[0] = j.sa; st[1] = j.sb;
    zs__collapse(j.sh, st, 2);
    rows = j.sh[0] * j.sh[1] * j.sh[2];
    j.nb = (j.sh[3] + ZS__EBLK - 1) / ZS__EBLK;
    per = j.sh[3] < ZS__EBLK ? j.sh[3] : ZS__EBLK;
    zs__parallel_rows(ctx, rows * j.nb, (ZS__EW_MIN + per - 1) / per, zs__bin_task, &j);
}

/* gradient reduction: dst (+/-)= src summed over the dims where ds is 0.
   src is contiguous in sh. Threads split one dim that is NOT summed, so every
   dst element is summed by one thread in one fixed order. */
typedef struct zs__bred_job {
    float *dst;
    const float *src;
    int neg, pd;
    int64_t sh[4], ds[4];
} zs__bred_job;

ZS__PRIV void zs__bred_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__bred_job *j = (zs__bred_job *)arg;
    int64_t b[4], e[4], i0, i1, i2, L = j->sh[3];
    int d;
    (void)ws;
    for (d = 0; d < 4; d++) { b[d] = 0; e[d] = j->sh[d]; }
    if (j->pd >= 0) { b[j->pd] = lo; e[j->pd] = hi; }
    for (i0 = b[0]; i0 < e[0]; i0++)
        for (i1 = b[1]; i1 < e[1]; i1++)
            for (i2 = b[2]; i2 < e[2]; i2++) {
                const float *s = j->src + ((i0 * j->sh[1] + i1) * j->sh[2] + i2) * L;
                float *o = j->dst + i0 * j->ds[0] + i1 * j->ds[1] + i2 * j->ds[2];
                if (j->ds[3] == 0) {
                    float v = zs__row_sum(s, L);
                    o[0] = j->neg ? o[0] - v : o[0] + v;
                } else {
                    zs__ew_acc_n(o + b[3], s + b[3], e[3] - b[3], j->neg);
                }
            }
}

ZS__PRIV void zs__bred_exec(zs_ctx *ctx, float *dst, const int64_t *ds4, const float *src, const int64_t *sh4, int neg) {
    zs__bred_job j;
    int64_t cs[4], *st[2], n = 1, best = 1;
    int d;
    j.dst = dst; j.src = src; j.neg = neg; j.pd = -1;
    for (d = 0; d < 4; d++) { j.sh[d] = sh4[d]; j.ds[d] = ds4[d]; n *= sh4[d]; }
    if (n == 0) return;
    cs[3] = 1;
    for (d = 3; d > 0; d--) cs[d - 1] = cs[d] * sh4[d];
    st[0] = j.ds; st[1] = cs;
    zs__collapse(j.sh, st, 2);
    for (d = 0; d < 4; d++)
        if (j.ds[d] != 0 && j.sh[d] > best) { best = j.sh[d]; j.pd = d; }
    if (j.pd < 0) {
        zs__bred_task(&j, 0, 1, NULL);
        return;
    }
    zs__parallel_rows(ctx, j.sh[j.pd], (ZS__EW_MIN + n / best - 1) / (n / best), zs__bred_task, &j);
}

/* contribution of out->grad (shape out) to the gradient gx of input x:
   gx (+/-)= reduce(g * other) where other (may be NULL) is the second operand
   of a product, read through its broadcast data strides */
ZS__PRIV int zs__bin_grad(zs_ctx *ctx, zs_tensor *out, zs_tensor *x, float *gx, zs_tensor *other, int neg) {
    int64_t sh[4], gs[4], os[4], xs[4], n = zs_numel(out), i;
    const float *src = out->grad;
    zs__amark m = zs__arena_mark(&ctx->arena);
    float *tmp = NULL;
    if (n == 0) return ZS_OK;
    for (i = 0; i < 4; i++) sh[i] = 1;
    for (i = 0; i < out->ndim; i++) sh[4 - out->ndim + i] = out->shape[i];
    zs__bcast_gstrides(out, gs);
    if (other) {
        zs__bcast_strides(other, os);
        if (zs_numel(x) == n) { /* no reduction: gx += g * other in one pass */
            zs__bin_exec(ctx, ZS__B_ACCMUL, gx, sh, out->grad, gs, (const float *)other->data, os);
            return ZS_OK;
        }
        tmp = (float *)zs__arena_alloc(&ctx->arena, (size_t)n * sizeof(float));
        if (!tmp) return zs__fail(ZS_ERR_NOMEM, "%s backward: arena exhausted (%lld floats)", out->op, (long long)n);
        zs__bin_exec(ctx, ZS__B_MUL, tmp, sh, out->grad, gs, (const float *)other->data, os);
        src = tmp;
    }
    if (zs_numel(x) == n) {
        zs__ew_job j;
        memset(&j, 0, sizeof j);
        j.op = neg ? ZS__U_NACC : ZS__U_ACC;
        j.y = gx; j.x = src;
        zs__ew_run(ctx, n, ZS__EW_MIN, zs__ew_task, &j);
    } else {
        zs__bcast_gstrides(x, xs);
        zs__bred_exec(ctx, gx, xs, src, sh, neg);
    }
    if (tmp) zs__arena_release(&ctx->arena, m);
    return ZS_OK;
}

ZS__PRIV int zs__bin_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int op = (int)out->ip[0], rc = ZS_OK;
    float *ga, *gb;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    if (ga) rc = zs__bin_grad(ctx, out, a, ga, op == ZS__B_MUL ? b : NULL, 0);
    if (gb && rc == ZS_OK) rc = zs__bin_grad(ctx, out, b, gb, op == ZS__B_MUL ? a : NULL, op == ZS__B_SUB);
    return rc;
}

ZS__PRIV zs_tensor *zs__binary(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, int op, const char *who, const char *name) {
    int64_t sh4[4], sa[4], sb[4];
    int nd;
    zs_tensor *out;
    if (!zs__ok2(ctx, a, b, who)) return NULL;
    if (!zs__bcast_shape(a, b, &nd, sh4)) return zs__shape_fail(ctx, who, a, b, "shapes do not broadcast");
    out = zs__op_new(ctx, name, zs__bin_bwd, nd, sh4 + 4 - nd, a, b, NULL, NULL);
    if (!out) return NULL;
    out->ip[0] = op;
    zs__bcast_strides(a, sa);
    zs__bcast_strides(b, sb);
    zs__bin_exec(ctx, op, (float *)out->data, sh4, (const float *)a->data, sa, (const float *)b->data, sb);
    return out;
}

ZS__FN zs_tensor *zs_add(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) { return zs__binary(ctx, a, b, ZS__B_ADD, "zs_add", "add"); }
ZS__FN zs_tensor *zs_sub(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) { return zs__binary(ctx, a, b, ZS__B_SUB, "zs_sub", "sub"); }
ZS__FN zs_tensor *zs_mul(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) { return zs__binary(ctx, a, b, ZS__B_MUL, "zs_mul", "mul"); }

/* ==================================================================== */
/* erf and GELU                                                         */
/* ==================================================================== */
/* erfc(z) for z in [0, 10]:  erfc(z) = exp(-z^2) * H(w) / (z + K),
   w = (z - K) / (z + K), K = 3. H is a degree-9 polynomial, a Chebyshev fit
   of erfc(z) exp(z^2) (z + K) over w in [-1, 7/13] (z in [0, 10]); its max
   absolute error is 4.7e-9 where H >= 0.73, i.e. 6.4e-9 relative.
   exp(-z^2) is formed from an exact split of the square: zh = z rounded to
   12 significant bits, so zh*zh is exact, and z^2 = zh^2 + (z - zh)(z + zh);
   the small part joins the exponent after the range reduction. A rounded z^2
   would cost up to z^2 * 2^-24 relative error (3e-6 at z = 7).
   erf(z) for |z| < 0.84375: z * P(z^2), P of degree 6 (Chebyshev fit,
   1.4e-10 relative); above: 1 - erfc(|z|) with the sign of z (erfc <= 0.24
   there, so its relative error costs little absolute error).
   GELU(x) = x * Phi(x), Phi(x) = 0.5 erfc(-x/sqrt2): for x < 0 this is
   0.5 erfc(|x|/sqrt2) (relative accuracy even for tiny Phi), for x >= 0
   1 - 0.5 erfc(x/sqrt2). The exponent -x^2/2 is split from x directly, so the
   rounding of x/sqrt2 only reaches the smooth H(w) and 1/(z+K) factors.
   Beyond |x| = 10 sqrt2 (z = 10), Phi is 0 or 1 (erfc(10) = 2e-45). */

#define ZS__ERF_K 3.0f
#define ZS__GELU_XMAX 14.1421356f /* 10 * sqrt(2) */
#define ZS__INV_SQRT2 0.707106781186547524f
#define ZS__INV_SQRT2PI 0.398942280401432678f

/* H(w), highest power first */
#define ZS__ERFC_H9 -3.34224406e-4f
#define ZS__ERFC_H8 -5.00258783e-4f
#define ZS__ERFC_H7 3.07705800e-3f
#define ZS__ERFC_H6 -1.21688907e-3f
#define ZS__ERFC_H5 -2.68362173e-2f
#define ZS__ERFC_H4 1.19527333e-1f
#define ZS__ERFC_H3 -3.10466659e-1f
#define ZS__ERFC_H2 5.90228410e-1f
#define ZS__ERFC_H1 -8.83394460e-1f
#define ZS__ERFC_H0 1.07400691f
/* P(t), t = z^2, |z| < ZS__ERF_SMALL */
#define ZS__ERF_SMALL 0.84375f
#define ZS__ERF_P6 8.88962567e-5f
#define ZS__ERF_P5 -8.25512094e-4f
#define ZS__ERF_P4 5.21012041e-3f
#define ZS__ERF_P3 -2.68627684e-2f
#define ZS__ERF_P2 1.12837516e-1f
#define ZS__ERF_P1 -3.76126371e-1f
#define ZS__ERF_P0 1.12837917f

/* -ffast-math may reassociate (hi - n*C1) + n*C2 into hi - n*(C1 - C2),
   which loses the exact first step; this barrier keeps the order there */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__FAST_MATH__)
#define ZS__FP_KEEP(x) __asm__("" : "+m"(x))
#else
#define ZS__FP_KEEP(x) ((void)0)
#endif

/* exp(hi + lo) for hi in [-104, 0] whose bits must not be rounded away and
   |lo| << 1: Cody-Waite reduction of hi (exact), lo added to the reduced
   argument, Cephes polynomial, 2^n in two steps (n down to -150). */
ZS__PRIV float zs__exp_hl(float hi, float lo) {
    float n = floorf(hi * 1.44269504088896341f + 0.5f), r, p;
    int32_t e = (int32_t)n;
    r = hi - n * 0.693359375f;
    ZS__FP_KEEP(r);
    r = r + n * 2.12194440e-4f;
    r = r + lo;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * zs__u2f((uint32_t)(127 + e / 2) << 23) * zs__u2f((uint32_t)(127 + e - e / 2) << 23);
}

ZS__PRIV float zs__erfc_h(float w) {
    float p = ZS__ERFC_H9;
    p = p * w + ZS__ERFC_H8;
    p = p * w + ZS__ERFC_H7;
    p = p * w + ZS__ERFC_H6;
    p = p * w + ZS__ERFC_H5;
    p = p * w + ZS__ERFC_H4;
    p = p * w + ZS__ERFC_H3;
    p = p * w + ZS__ERFC_H2;
    p = p * w + ZS__ERFC_H1;
    return p * w + ZS__ERFC_H0;
}

/* erfc(z) * exp(z^2)... times exp(-z^2) given as e: z in [0, 10] */
ZS__PRIV float zs__erfc_tail(float z, float e) {
    float d = 1.0f / (z + ZS__ERF_K), w = (z - ZS__ERF_K) * d;
    return e * d * zs__erfc_h(w);
}

/* scalar erf (NaN in, NaN out) */
ZS__PRIV float zs__erff(float x) {
    float ax = fabsf(x), a, ah, al, r;
    if (!(ax >= ZS__ERF_SMALL)) {
        float t = x * x, p = ZS__ERF_P6;
        p = p * t + ZS__ERF_P5;
        p = p * t + ZS__ERF_P4;
        p = p * t + ZS__ERF_P3;
        p = p * t + ZS__ERF_P2;
        p = p * t + ZS__ERF_P1;
        p = p * t + ZS__ERF_P0;
        return x * p;
    }
    if (ax > 10.0f) return x < 0 ? -1.0f : 1.0f;
    a = ax;
    ah = zs__u2f(zs__f2u(a) & 0xfffff000u);
    al = a - ah;
    r = 1.0f - zs__erfc_tail(a, zs__exp_hl(-(ah * ah), -(al * (a + ah))));
    return x < 0 ? -r : r;
}

/* Phi(x) = P(N(0,1) <= x); *e = exp(-x^2/2) (0 beyond |x| = 10 sqrt2) */
ZS__PRIV float zs__phi(float x, float *e_out) {
    float ax = fabsf(x), a = ax < ZS__GELU_XMAX ? ax : ZS__GELU_XMAX; /* NaN -> XMAX */
    float ah = zs__u2f(zs__f2u(a) & 0xfffff000u), al = a - ah;
    float e = zs__exp_hl(-0.5f * (ah * ah), -0.5f * (al * (a + ah)));
    float h;
    if (!(ax <= ZS__GELU_XMAX)) e = 0.0f;
    h = 0.5f * zs__erfc_tail(a * ZS__INV_SQRT2, e);
    *e_out = e;
    return x < 0 ? h : 1.0f - h;
}

#if defined(ZS__AVX2)
ZS__PRIV __m256 zs__vexp_hl(__m256 hi, __m256 lo) {
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(hi, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), hi);
    __m256 p, s1, s2;
    __m256i e, e1, e2;
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    r = _mm256_add_ps(r, lo);
    p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    e = _mm256_cvtps_epi32(n);
    e1 = _mm256_srai_epi32(e, 1);
    e2 = _mm256_sub_epi32(e, e1);
    s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, _mm256_set1_epi32(127)), 23));
    s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

ZS__PRIV __m256 zs__verfc_tail(__m256 z, __m256 e) {
    __m256 d = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(z, _mm256_set1_ps(ZS__ERF_K)));
    __m256 w = _mm256_mul_ps(_mm256_sub_ps(z, _mm256_set1_ps(ZS__ERF_K)), d);
    __m256 p = _mm256_set1_ps(ZS__ERFC_H9);
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H8));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H7));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H6));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H5));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H4));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H3));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H2));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H1));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H0));
    return _mm256_mul_ps(_mm256_mul_ps(e, d), p);
}

ZS__PRIV __m256 zs__verf(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 ax = _mm256_andnot_ps(sign, x), t = _mm256_mul_ps(x, x), p, a, ah, al, e, big, small;
    p = _mm256_set1_ps(ZS__ERF_P6);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P5));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P1));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P0));
    small = _mm256_mul_ps(x, p);
    a = _mm256_min_ps(ax, _mm256_set1_ps(10.0f));
    ah = _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-4096)));
    al = _mm256_sub_ps(a, ah);
    e = zs__vexp_hl(_mm256_xor_ps(sign, _mm256_mul_ps(ah, ah)), _mm256_xor_ps(sign, _mm256_mul_ps(al, _mm256_add_ps(a, ah))));
    e = _mm256_and_ps(e, _mm256_cmp_ps(ax, _mm256_set1_ps(10.0f), _CMP_LE_OQ));
    big = _mm256_sub_ps(one, zs__verfc_tail(a, e));
    big = _mm256_or_ps(big, _mm256_and_ps(x, sign));
    /* NaN takes the small branch, which propagates it */
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(ZS__ERF_SMALL), _CMP_NGE_UQ));
}

ZS__PRIV __m256 zs__vphi(__m256 x, __m256 *e_out) {
    const __m256 xmax = _mm256_set1_ps(ZS__GELU_XMAX), mhalf = _mm256_set1_ps(-0.5f);
    __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    __m256 a = _mm256_min_ps(ax, xmax); /* NaN -> xmax */
    __m256 ah = _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-4096)));
    __m256 al = _mm256_sub_ps(a, ah);
    __m256 e = zs__vexp_hl(_mm256_mul_ps(mhalf, _mm256_mul_ps(ah, ah)), _mm256_mul_ps(mhalf, _mm256_mul_ps(al, _mm256_add_ps(a, ah))));
    __m256 h;
    e = _mm256_and_ps(e, _mm256_cmp_ps(ax, xmax, _CMP_LE_OQ));
    h = _mm256_mul_ps(_mm256_set1_ps(0.5f), zs__verfc_tail(_mm256_mul_ps(a, _mm256_set1_ps(ZS__INV_SQRT2)), e));
    *e_out = e;
    return _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), h), h, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
}
#endif

/* y[i] = erf(x[i]) */
ZS__PRIV void zs__erf_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, zs__verf(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] = zs__erff(x[i]);
}
ZS__PRIV void zs__erf_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = (float)erf((double)x[i]);
}

/* y[i] = gelu(x[i]) = x Phi(x) */
ZS__PRIV void zs__gelu_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), e;
        _mm256_storeu_ps(y + i, _mm256_mul_ps(v, zs__vphi(v, &e)));
    }
#endif
    for (; i < n; i++) {
        float e;
        y[i] = x[i] * zs__phi(x[i], &e);
    }
}
/* double-precision reference: 0.5 x erfc(-x/sqrt2) (no cancellation for x << 0) */
ZS__PRIV void zs__gelu_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
    }
}

/* gx[i] += gy[i] * gelu'(x[i]), gelu'(x) = Phi(x) + x exp(-x^2/2) / sqrt(2 pi) */
ZS__PRIV void zs__gelu_bwd_n(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), e, p = zs__vphi(v, &e);
        __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(v, e), _mm256_set1_ps(ZS__INV_SQRT2PI), p);
        _mm256_storeu_ps(gx + i, _mm256_fmadd_ps(_mm256_loadu_ps(gy + i), d, _mm256_loadu_ps(gx + i)));
    }
#endif
    for (; i < n; i++) {
        float e, p = zs__phi(x[i], &e);
        gx[i] += gy[i] * (p + x[i] * e * ZS__INV_SQRT2PI);
    }
}
ZS__PRIV void zs__gelu_bwd_ref(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double v = x[i];
        double d = 0.5 * erfc(-v * 0.70710678118654752440) + v * exp(-0.5 * v * v) * 0.39894228040143267794;
        gx[i] = (float)((double)gx[i] + (double)gy[i] * d);
    }
}

/* -- relu, sigmoid, softplus, dropout kernels ------------------------- */

/* y = max(0, x); NaN propagates */
ZS__PRIV void zs__relu_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    zs__vf z = zs__vzero();
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vmax(z, zs__vload(x + i)));
    for (; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
ZS__PRIV void zs__relu_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* gx += x > 0 ? gy : 0 */
ZS__PRIV void zs__relu_bwd_n(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 m = _mm256_cmp_ps(_mm256_loadu_ps(x + i), _mm256_setzero_ps(), _CMP_GT_OQ);
        _mm256_storeu_ps(gx + i, _mm256_add_ps(_mm256_loadu_ps(gx + i), _mm256_and_ps(m, _mm256_loadu_ps(gy + i))));
    }
#endif
    for (; i < n; i++) gx[i] += x[i] > 0.0f ? gy[i] : 0.0f;
}
ZS__PRIV void zs__relu_bwd_ref(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) gx[i] += x[i] > 0.0f ? gy[i] : 0.0f;
}

/* y = 1 / (1 + exp(-x)), from t = exp(-|x|) so neither side overflows */
ZS__PRIV void zs__sigmoid_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 t = zs__vexp(_mm256_or_ps(v, _mm256_set1_ps(-0.0f)));
        __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
        _mm256_storeu_ps(y + i, _mm256_blendv_ps(r, _mm256_mul_ps(t, r), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ)));
    }
#endif
    for (; i < n; i++) {
        float t = zs__expf(-fabsf(x[i])), r = 1.0f / (1.0f + t);
        y[i] = x[i] < 0.0f ? t * r : r;
    }
}
ZS__PRIV void zs__sigmoid_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
}

/* gx += gy * y (1 - y), y the sigmoid output */
ZS__PRIV void zs__sigmoid_bwd_n(float *gx, const float *y, const float *gy, int64_t n) {
    int64_t i = 0;
    zs__vf one = zs__vset1(1.0f);
    for (; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf v = zs__vload(y + i);
        zs__vstore(gx + i, zs__vfma(zs__vmul(zs__vload(gy + i), v), zs__vsub(one, v), zs__vload(gx + i)));
    }
    for (; i < n; i++) gx[i] += gy[i] * y[i] * (1.0f - y[i]);
}

/* softplus, torch beta = 1, threshold = 20: x > 20 -> x (scalar; libm) */
ZS__PRIV void zs__softplus_n(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
}
ZS__PRIV void zs__softplus_bwd_n(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) gx[i] += x[i] > 20.0f ? gy[i] : gy[i] / (1.0f + expf(-x[i]));
}

/* inverted dropout over elements [first, first + n) of a tensor: element i
   is kept when zs__hash_uniform(key, i) >= p, and scaled */
ZS__PRIV void zs__dropout_n(float *y, const float *x, int64_t n, uint64_t key, int64_t first, float p, float scale) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = zs__hash_uniform(key, (uint64_t)(first + i)) >= p ? x[i] * scale : 0.0f;
}
ZS__PRIV void zs__dropout_bwd_n(float *gx, const float *gy, int64_t n, uint64_t key, int64_t first, float p, float scale) {
    int64_t i;
    for (i = 0; i < n; i++)
        if (zs__hash_uniform(key, (uint64_t)(first + i)) >= p) gx[i] += gy[i] * scale;
}

/* -- elementwise job dispatch ----------------------------------------- */

ZS__PRIV void zs__ew_task(void *arg, int64_t lo, int64_t hi) {
    zs__ew_job *j = (zs__ew_job *)arg;
    int64_t n = hi - lo;
    float *y = j->y + lo;
    const float *x = j->x ? j->x + lo : NULL, *g = j->g ? j->g + lo : NULL;
    switch (j->op) {
    case ZS__U_ACC: zs__ew_acc_n(y, x, n, 0); break;
    case ZS__U_NACC: zs__ew_acc_n(y, x, n, 1); break;
    case ZS__U_AXPY: zs__ew_axpy_n(y, x, j->s, n); break;
    case ZS__U_SCALE: zs__ew_scale_n(y, x, j->s, n); break;
    case ZS__U_ADDS: zs__ew_adds_n(y, x, j->s, n); break;
    case ZS__U_ADDC: zs__ew_adds_n(y, NULL, j->s, n); break;
    case ZS__U_RELU: zs__relu_n(y, x, n); break;
    case ZS__U_RELU_BWD: zs__relu_bwd_n(y, x, g, n); break;
    case ZS__U_GELU: zs__gelu_n(y, x, n); break;
    case ZS__U_GELU_BWD: zs__gelu_bwd_n(y, x, g, n); break;
    case ZS__U_SIGMOID: zs__sigmoid_n(y, x, n); break;
    case ZS__U_SIGMOID_BWD: zs__sigmoid_bwd_n(y, x, g, n); break;
    case ZS__U_SOFTPLUS: zs__softplus_n(y, x, n); break;
    case ZS__U_SOFTPLUS_BWD: zs__softplus_bwd_n(y, x, g, n); break;
    case ZS__U_DROPOUT: zs__dropout_n(y, x, n, j->key, lo, j->s, j->s2); break;
    case ZS__U_DROPOUT_BWD: zs__dropout_bwd_n(y, g, n, j->key, lo, j->s, j->s2); break;
    default: break;
    }
}

/* minimum elements per thread: cheap streaming ops vs transcendental ones */
ZS__PRIV int64_t zs__ew_min(int op) {
    switch (op) {
    case ZS__U_GELU: case ZS__U_GELU_BWD: case ZS__U_SIGMOID: case ZS__U_SOFTPLUS:
    case ZS__U_SOFTPLUS_BWD: case ZS__U_DROPOUT: case ZS__U_DROPOUT_BWD: return 2 * ZS__EBLK;
    default: return ZS__EW_MIN;
    }
}

/* out = op(a) elementwise; a is made contiguous first */
ZS__PRIV zs_tensor *zs__unary(zs_ctx *ctx, zs_tensor *a, const char *who, const char *name, zs_backward_fn bwd, int op, float s) {
    zs_tensor *out;
    zs__ew_job j;
    if (!zs__ok1(ctx, a, who)) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, name, bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    out->fp[0] = s;
    memset(&j, 0, sizeof j);
    j.op = op; j.y = (float *)out->data; j.x = (const float *)a->data; j.s = s;
    zs__ew_run(ctx, zs_numel(a), zs__ew_min(op), zs__ew_task, &j);
    return out;
}

/* gradient of a unary op: ga (op)= ... with x the saved operand */
ZS__PRIV int zs__unary_bwd(zs_ctx *ctx, zs_tensor *out, int op, const float *x, float s) {
    float *ga;
    zs__ew_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    memset(&j, 0, sizeof j);
    j.op = op; j.y = ga; j.x = x; j.g = out->grad; j.s = s;
    zs__ew_run(ctx, zs_numel(out->src[0]), zs__ew_min(op), zs__ew_task, &j);
    return ZS_OK;
}

ZS__PRIV int zs__scale_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__unary_bwd(ctx, out, ZS__U_AXPY, out->grad, out->fp[0]); }
ZS__PRIV int zs__adds_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__unary_bwd(ctx, out, ZS__U_ACC, out->grad, 0.0f); }
ZS__PRIV int zs__relu_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_RELU_BWD, (const float *)out->src[0]->data, 0.0f);
}
ZS__PRIV int zs__gelu_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_GELU_BWD, (const float *)out->src[0]->data, 0.0f);
}
ZS__PRIV int zs__sigmoid_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_SIGMOID_BWD, (const float *)out->data, 0.0f);
}
ZS__PRIV int zs__softplus_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_SOFTPLUS_BWD, (const float *)out->src[0]->data, 0.0f);
}

ZS__FN zs_tensor *zs_scale(zs_ctx *ctx, zs_tensor *a, float s) {
    return zs__unary(ctx, a, "zs_scale", "scale", zs__scale_bwd, ZS__U_SCALE, s);
}
ZS__FN zs_tensor *zs_add_scalar(zs_ctx *ctx, zs_tensor *a, float s) {
    return zs__unary(ctx, a, "zs_add_scalar", "add_scalar", zs__adds_bwd, ZS__U_ADDS, s);
}
ZS__FN zs_tensor *zs_relu(zs_ctx *ctx, zs_tensor *a) { return zs__unary(ctx, a, "zs_relu", "relu", zs__relu_bwd, ZS__U_RELU, 0.0f); }
ZS__FN zs_tensor *zs_gelu(zs_ctx *ctx, zs_tensor *a) { return zs__unary(ctx, a, "zs_gelu", "gelu", zs__gelu_bwd, ZS__U_GELU, 0.0f); }
ZS__FN zs_tensor *zs_sigmoid(zs_ctx *ctx, zs_tensor *a) {
    return zs__unary(ctx, a, "zs_sigmoid", "sigmoid", zs__sigmoid_bwd, ZS__U_SIGMOID, 0.0f);
}
ZS__FN zs_tensor *zs_softplus(zs_ctx *ctx, zs_tensor *a) {
    return zs__unary(ctx, a, "zs_softplus", "softplus", zs__softplus_bwd, ZS__U_SOFTPLUS, 0.0f);
}

/* -- dropout: key in ip[0], p in fp[0], scale in fp[1] -- */
ZS__PRIV int zs__dropout_bwd(zs_ctx *ctx, zs_tensor *out) {
    float *ga;
    zs__ew_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    memset(&j, 0, sizeof j);
    j.op = ZS__U_DROPOUT_BWD; j.y = ga; j.g = out->grad; j.s = out->fp[0]; j.s2 = out->fp[1];
    memcpy(&j.key, &out->ip[0], sizeof j.key);
    zs__ew_run(ctx, zs_numel(out), zs__ew_min(j.op), zs__ew_task, &j);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_dropout(zs_ctx *ctx, zs_tensor *a, float p) {
    zs_tensor *out;
    zs__ew_job j;
    if (!zs__ok1(ctx, a, "zs_dropout")) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        zs__fail(ZS_ERR_ARG, "zs_dropout: p must be in [0,1], got %g", (double)p);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (!ctx->training || p == 0.0f) return a; /* identity: the input itself */
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, "dropout", zs__dropout_bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    memset(&j, 0, sizeof j);
    j.op = ZS__U_DROPOUT; j.y = (float *)out->data; j.x = (const float *)a->data;
    j.key = zs__rng_key(ctx);
    j.s = p;
    j.s2 = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; /* p = 1: every element dropped */
    memcpy(&out->ip[0], &j.key, sizeof j.key);
    out->fp[0] = j.s;
    out->fp[1] = j.s2;
    zs__ew_run(ctx, zs_numel(a), zs__ew_min(j.op), zs__ew_task, &j);
    return out;
}

/* ==================================================================== */
/* reductions                                                           */
/* ==================================================================== */

/* sum of n floats in double: 8 lanes in two 4-double accumulators (AVX2),
   lanes combined in a fixed order, then the tail */
ZS__PRIV double zs__sum_d(const float *x, int64_t n) {
    int64_t i = 0;
    double s = 0.0;
#if defined(ZS__AVX2)
    if (n >= 8) {
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
        double t[4];
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
            a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
        }
        _mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
        s = (t[0] + t[1]) + (t[2] + t[3]);
    }
#endif
    for (; i < n; i++) s += (double)x[i];
    return s;
}

typedef struct zs__sumall_job { const float *x; double *part; int64_t n; } zs__sumall_job;
ZS__PRIV void zs__sumall_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__sumall_job *j = (zs__sumall_job *)arg;
    int64_t c;
    (void)ws;
    for (c = lo; c < hi; c++) {
        int64_t a = c * ZS__EBLK, b = a + ZS__EBLK;
        j->part[c] = zs__sum_d(j->x + a, (b < j->n ? b : j->n) - a);
    }
}

/* ga += g * (1 or 1/n) */
ZS__PRIV int zs__sumall_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_ADDC, NULL, out->grad[0] * out->fp[0]);
}

/* sum (mean = 0) or mean (mean = 1) of every element -> scalar */
ZS__PRIV zs_tensor *zs__sumall(zs_ctx *ctx, zs_tensor *a, int mean) {
    const char *who = mean ? "zs_mean" : "zs_sum";
    zs_tensor *out;
    zs__sumall_job j;
    zs__amark m;
    int64_t n, nc, c;
    double s = 0.0;
    if (!zs__ok1(ctx, a, who)) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, mean ? "mean" : "sum", zs__sumall_bwd, 0, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    n = zs_numel(a);
    nc = (n + ZS__EBLK - 1) / ZS__EBLK;
    out->fp[0] = mean ? (float)(1.0 / (double)n) : 1.0f; /* n = 0: mean is NaN like torch */
    m = zs__arena_mark(&ctx->arena);
    j.x = (const float *)a->data; j.n = n;
    j.part = (double *)zs__arena_alloc(&ctx->arena, (size_t)(nc ? nc : 1) * sizeof(double));
    if (!j.part) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    zs__parallel_rows(ctx, nc, ZS__EW_MIN / ZS__EBLK, zs__sumall_task, &j);
    for (c = 0; c < nc; c++) s += j.part[c];
    zs__arena_release(&ctx->arena, m);
    ((float *)out->data)[0] = (float)(mean ? s / (double)n : s);
    return out;
}

ZS__FN zs_tensor *zs_sum(zs_ctx *ctx, zs_tensor *a) { return zs__sumall(ctx, a, 0); }
ZS__FN zs_tensor *zs_mean(zs_ctx *ctx, zs_tensor *a) { return zs__sumall(ctx, a, 1); }

/* -- sum / mean over one dim: a viewed as [outer, L, inner] -- */
#define ZS__SDIM_COLS 64
typedef struct zs__sdim_job {
    float *y;
    const float *x;
    int64_t outer, L, inner, ncb;
    double scale;
} zs__sdim_job;

/* item = (o, block of ZS__SDIM_COLS columns): double sums over l in order */
ZS__PRIV void zs__sdim_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__sdim_job *j = (zs__sdim_job *)arg;
    double acc[ZS__SDIM_COLS];
    int64_t it, l, k;
    (void)ws;
    for (it = lo; it < hi; it++) {
        int64_t o = it / j->ncb, c0 = (it % j->ncb) * ZS__SDIM_COLS, c1 = c0 + ZS__SDIM_COLS;
        if (c1 > j->inner) c1 = j->inner;
        for (k = 0; k < c1 - c0; k++) acc[k] = 0.0;
        for (l = 0; l < j->L; l++) {
            const float *p = j->x + (o * j->L + l) * j->inner + c0;
            for (k = 0; k < c1 - c0; k++) acc[k] += (double)p[k];
        }
        for (k = 0; k < c1 - c0; k++) j->y[o * j->inner + c0 + k] = (float)(acc[k] * j->scale);
    }
}

typedef struct zs__sdimb_job { float *gx; const float *g; int64_t L, inner; float s; } zs__sdimb_job;
ZS__PRIV void zs__sdimb_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__sdimb_job *j = (zs__sdimb_job *)arg;
    int64_t r;
    (void)ws;
    for (r = lo; r < hi; r++) {
        float *d = j->gx + r * j->inner;
        const float *s = j->g + (r / j->L) * j->inner;
        if (j->s == 1.0f) zs__ew_acc_n(d, s, j->inner, 0);
        else zs__ew_axpy_n(d, s, j->s, j->inner);
    }
}

/* ip[0] outer, ip[1] L, ip[2] inner; fp[0] scale */
ZS__PRIV int zs__sdim_bwd(zs_ctx *ctx, zs_tensor *out) {
    float *ga;
    zs__sdimb_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    j.gx = ga; j.g = out->grad; j.L = out->ip[1]; j.inner = out->ip[2]; j.s = out->fp[0];
    if (j.inner > 0)
        zs__parallel_rows(ctx, out->ip[0] * j.L, (ZS__EW_MIN + j.inner - 1) / j.inner, zs__sdimb_task, &j);
    return ZS_OK;
}

ZS__PRIV zs_tensor *zs__sumdim(zs_ctx *ctx, zs_tensor *a, int dim, int mean) {
    const char *who = mean ? "zs_mean_dim" : "zs_sum_dim";
    int64_t shape[ZS_MAX_DIMS], per;
    zs__sdim_job j;
    zs_tensor *out;
    int i, k = 0;
    if (!zs__ok1(ctx, a, who)) return NULL;
    if (dim < 0) dim += a->ndim;
    if (dim < 0 || dim >= a->ndim) return zs__shape_fail(ctx, who, a, NULL, "dimension out of range");
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    j.outer = 1; j.inner = 1; j.L = a->shape[dim];
    for (i = 0; i < a->ndim; i++) {
        if (i < dim) j.outer *= a->shape[i];
        if (i > dim) j.inner *= a->shape[i];
        if (i != dim) shape[k++] = a->shape[i];
    }
    out = zs__op_new(ctx, mean ? "mean_dim" : "sum_dim", zs__sdim_bwd, a->ndim - 1, shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    j.scale = mean ? 1.0 / (double)j.L : 1.0; /* L = 0: mean is NaN like torch */
    out->ip[0] = j.outer; out->ip[1] = j.L; out->ip[2] = j.inner;
    out->fp[0] = (float)j.scale;
    j.y = (float *)out->data; j.x = (const float *)a->data;
    j.ncb = (j.inner + ZS__SDIM_COLS - 1) / ZS__SDIM_COLS;
    per = (j.inner < ZS__SDIM_COLS ? j.inner : ZS__SDIM_COLS) * (j.L > 0 ? j.L : 1);
    if (j.inner > 0 && j.outer > 0) zs__parallel_rows(ctx, j.outer * j.ncb, (ZS__EW_MIN + per - 1) / per, zs__sdim_task, &j);
    return out;
}

ZS__FN zs_tensor *zs_sum_dim(zs_ctx *ctx, zs_tensor *a, int dim) { return zs__sumdim(ctx, a, dim, 0); }
ZS__FN zs_tensor *zs_mean_dim(zs_ctx *ctx, zs_tensor *a, int dim) { return zs__sumdim(ctx, a, dim, 1); }

/* ==================================================================== */
/* row ops over the last dim: softmax, log-softmax, norms               */
/* ==================================================================== */

/* softmax backward: gx += y (gy - <gy, y>) */
ZS__PRIV void zs__softmax_bwd_row(float *gx, const float *y, const float *gy, int64_t n) {
    float dot = zs__row_dot(gy, y, n);
    int64_t i = 0;
    zs__vf vd = zs__vset1(dot);
    for (; i + ZS__VW <= n; i += ZS__VW)
        zs__vstore(gx + i, zs__vfma(zs__vload(y + i), zs__vsub(zs__vload(gy + i), vd), zs__vload(gx + i)));
    for (; i < n; i++) gx[i] += y[i] * (gy[i] - dot);
}
ZS__PRIV void zs__softmax_bwd_row_ref(float *gx, const float *y, const float *gy, int64_t n) {
    double dot = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) dot += (double)gy[i] * y[i];
    for (i = 0; i < n; i++) gx[i] = (float)(gx[i] + (double)y[i] * (gy[i] - dot));
}

/* y = x - logsumexp(x) (y may not alias x) */
ZS__PRIV void zs__logsoftmax_row(float *y, const float *x, int64_t n) {
    float lse;
    int64_t i = 0;
    zs__vf vl;
    memcpy(y, x, (size_t)n * sizeof(float));
    lse = zs__softmax_row(y, n);
    vl = zs__vset1(lse);
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vsub(zs__vload(x + i), vl));
    for (; i < n; i++) y[i] = x[i] - lse;
}
ZS__PRIV void zs__logsoftmax_row_ref(float *y, const float *x, int64_t n) {
    double mx = -INFINITY, s = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (i = 0; i < n; i++) y[i] = (float)((double)x[i] - mx - log(s));
}

/* log-softmax backward: gx += gy - exp(y) sum(gy) */
ZS__PRIV void zs__logsoftmax_bwd_row(float *gx, const float *y, const float *gy, int64_t n) {
    float sg = zs__row_sum(gy, n);
    int64_t i = 0;
#if defined(ZS__AVX2)
    __m256 vs = _mm256_set1_ps(sg);
    for (; i + 8 <= n; i += 8) {
        __m256 p = zs__vexp(_mm256_loadu_ps(y + i));
        _mm256_storeu_ps(gx + i, _mm256_add_ps(_mm256_loadu_ps(gx + i), _mm256_fnmadd_ps(p, vs, _mm256_loadu_ps(gy + i))));
    }
#endif
    for (; i < n; i++) gx[i] += gy[i] - zs__expf(y[i]) * sg;
}
ZS__PRIV void zs__logsoftmax_bwd_row_ref(float *gx, const float *y, const float *gy, int64_t n) {
    double sg = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) sg += gy[i];
    for (i = 0; i < n; i++) gx[i] = (float)(gx[i] + (double)gy[i] - exp((double)y[i]) * sg);
}

/* LayerNorm row: y = (x - mean) rstd w + b, biased variance, eps inside the
   sqrt; w, b may be NULL; st (may be NULL) gets mean, rstd */
ZS__PRIV void zs__ln_row(float *y, float *st, const float *x, const float *w, const float *b, int64_t n, float eps) {
    float mean = zs__row_sum(x, n) / (float)n;
    float rstd = 1.0f / sqrtf(zs__row_sqdev(x, mean, n) / (float)n + eps);
    int64_t i = 0;
    zs__vf vm = zs__vset1(mean), vr = zs__vset1(rstd);
    if (w && b) {
        for (; i + ZS__VW <= n; i += ZS__VW)
            zs__vstore(y + i, zs__vfma(zs__vmul(zs__vsub(zs__vload(x + i), vm), vr), zs__vload(w + i), zs__vload(b + i)));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
    } else if (w) {
        for (; i + ZS__VW <= n; i += ZS__VW)
            zs__vstore(y + i, zs__vmul(zs__vmul(zs__vsub(zs__vload(x + i), vm), vr), zs__vload(w + i)));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i];
    } else if (b) {
        for (; i + ZS__VW <= n; i += ZS__VW)
            zs__vstore(y + i, zs__vfma(zs__vsub(zs__vload(x + i), vm), vr, zs__vload(b + i)));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd + b[i];
    } else {
        for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vmul(zs__vsub(zs__vload(x + i), vm), vr));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd;
    }
    if (st) { st[0] = mean; st[1] = rstd; }
}
ZS__PRIV void zs__ln_row_ref(float *y, float *st, const float *x, const float *w, const float *b, int64_t n, float eps) {
    double mean = 0.0, var = 0.0, rstd;
    int64_t i;
    for (i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    rstd = 1.0 / sqrt(var / (double)n + (double)eps);
    for (i = 0; i < n; i++) y[i] = (float)(((double)x[i] - mean) * rstd * (w ? (double)w[i] : 1.0) + (b ? (double)b[i] : 0.0));
    if (st) { st[0] = (float)mean; st[1] = (float)rstd; }
}

/* LayerNorm row backward (gx, dw, db each may be NULL; all accumulate):
   xhat = (x - mean) rstd, g = gy w;
   gx += rstd (g - mean(g) - xhat mean(g xhat)), dw += gy xhat, db += gy */
ZS__PRIV void zs__ln_bwd_row(float *gx, float *dw, float *db, const float *gy, const float *x, const float *w,
                             float mean, float rstd, int64_t n) {
    int64_t i;
    zs__vf vm = zs__vset1(mean), vr = zs__vset1(rstd);
    if (gx) {
        float s1, s2, c1, c2;
        zs__vf a1 = zs__vzero(), a2 = zs__vzero(), vc1, vc2;
        i = 0;
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf g = w ? zs__vmul(zs__vload(gy + i), zs__vload(w + i)) : zs__vload(gy + i);
            zs__vf xh = zs__vmul(zs__vsub(zs__vload(x + i), vm), vr);
            a1 = zs__vadd(a1, g);
            a2 = zs__vfma(g, xh, a2);
        }
        s1 = zs__vhsum(a1);
        s2 = zs__vhsum(a2);
        for (; i < n; i++) {
            float g = w ? gy[i] * w[i] : gy[i], xh = (x[i] - mean) * rstd;
            s1 += g;
            s2 += g * xh;
        }
        c1 = s1 / (float)n;
        c2 = s2 / (float)n;
        vc1 = zs__vset1(c1);
        vc2 = zs__vset1(c2);
        i = 0;
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf g = w ? zs__vmul(zs__vload(gy + i), zs__vload(w + i)) : zs__vload(gy + i);
            zs__vf xh = zs__vmul(zs__vsub(zs__vload(x + i), vm), vr);
            zs__vf t = zs__vsub(zs__vsub(g, vc1), zs__vmul(xh, vc2));
            zs__vstore(gx + i, zs__vfma(vr, t, zs__vload(gx + i)));
        }
        for (; i < n; i++) {
            float g = w ? gy[i] * w[i] : gy[i], xh = (x[i] - mean) * rstd;
            gx[i] += rstd * (g - c1 - xh * c2);
        }
    }
    if (dw) {
        i = 0;
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf xh = zs__vmul(zs__vsub(zs__vload(x + i), vm), vr);
            zs__vstore(dw + i, zs__vfma(zs__vload(gy + i), xh, zs__vload(dw + i)));
        }
        for (; i < n; i++) dw[i] += gy[i] * ((x[i] - mean) * rstd);
    }
    if (db) zs__ew_acc_n(db, gy, n, 0);
}
ZS__PRIV void zs__ln_bwd_row_ref(float *gx, float *dw, float *db, const float *gy, const float *x, const float *w,
                                 float mean, float rstd, int64_t n) {
    double s1 = 0.0, s2 = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (w ? (double)w[i] : 1.0), xh = ((double)x[i] - mean) * rstd;
        s1 += g;
        s2 += g * xh;
    }
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (w ? (double)w[i] : 1.0), xh = ((double)x[i] - mean) * rstd;
        if (gx) gx[i] = (float)(gx[i] + rstd * (g - s1 / (double)n - xh * s2 / (double)n));
        if (dw) dw[i] = (float)(dw[i] + (double)gy[i] * xh);
        if (db) db[i] = (float)(db[i] + (double)gy[i]);
    }
}

/* SPEC 1.3 LayerNorm quirk row: y = a (x - mean) / (std + eps) + b with std
   the UNBIASED standard deviation (n - 1; n = 1 gives NaN like torch) and eps
   added to std. st gets mean, std, inv = 1 / (std + eps). */
ZS__PRIV void zs__lnu_row(float *y, float *st, const float *x, const float *a, const float *b, int64_t n, float eps) {
    float mean = zs__row_sum(x, n) / (float)n;
    float sd = sqrtf(zs__row_sqdev(x, mean, n) / (float)(n - 1));
    float inv = 1.0f / (sd + eps);
    int64_t i = 0;
    zs__vf vm = zs__vset1(mean), vi = zs__vset1(inv);
    for (; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf t = zs__vmul(zs__vsub(zs__vload(x + i), vm), vi);
        if (a) t = zs__vmul(zs__vload(a + i), t);
        if (b) t = zs__vadd(t, zs__vload(b + i));
        zs__vstore(y + i, t);
    }
    for (; i < n; i++) {
        float t = (x[i] - mean) * inv;
        if (a) t = a[i] * t;
        if (b) t = t + b[i];
        y[i] = t;
    }
    if (st) { st[0] = mean; st[1] = sd; st[2] = inv; }
}
ZS__PRIV void zs__lnu_row_ref(float *y, float *st, const float *x, const float *a, const float *b, int64_t n, float eps) {
    double mean = 0.0, ss = 0.0, sd;
    int64_t i;
    for (i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (i = 0; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    sd = sqrt(ss / (double)(n - 1));
    for (i = 0; i < n; i++)
        y[i] = (float)((a ? (double)a[i] : 1.0) * ((double)x[i] - mean) / (sd + (double)eps) + (b ? (double)b[i] : 0.0));
    if (st) { st[0] = (float)mean; st[1] = (float)sd; st[2] = (float)(1.0 / (sd + (double)eps)); }
}

/* backward of the quirk, c = x - mean, g = gy a, inv = 1/(std + eps):
   gx += inv (g - mean(g)) - inv^2 <g, c> c / ((n - 1) std)   (second term 0
   when std = 0, where torch would give NaN); da += gy c inv; db += gy */
ZS__PRIV void zs__lnu_bwd_row(float *gx, float *da, float *db, const float *gy, const float *x, const float *a,
                              float mean, float sd, float inv, int64_t n) {
    int64_t i;
    zs__vf vm = zs__vset1(mean), vi = zs__vset1(inv);
    if (gx) {
        float s1, s2, mg, k;
        zs__vf a1 = zs__vzero(), a2 = zs__vzero(), vmg, vk;
        i = 0;
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf g = a ? zs__vmul(zs__vload(gy + i), zs__vload(a + i)) : zs__vload(gy + i);
            a1 = zs__vadd(a1, g);
            a2 = zs__vfma(g, zs__vsub(zs__vload(x + i), vm), a2);
        }
        s1 = zs__vhsum(a1);
        s2 = zs__vhsum(a2);
        for (; i < n; i++) {
            float g = a ? gy[i] * a[i] : gy[i];
            s1 += g;
            s2 += g * (x[i] - mean);
        }
        mg = s1 / (float)n;
        k = sd > 0.0f ? inv * inv * s2 / ((float)(n - 1) * sd) : 0.0f;
        vmg = zs__vset1(mg);
        vk = zs__vset1(k);
        i = 0;
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf g = a ? zs__vmul(zs__vload(gy + i), zs__vload(a + i)) : zs__vload(gy + i);
            zs__vf t = zs__vsub(zs__vmul(vi, zs__vsub(g, vmg)), zs__vmul(vk, zs__vsub(zs__vload(x + i), vm)));
            zs__vstore(gx + i, zs__vadd(zs__vload(gx + i), t));
        }
        for (; i < n; i++) {
            float g = a ? gy[i] * a[i] : gy[i];
            gx[i] += inv * (g - mg) - k * (x[i] - mean);
        }
    }
    if (da) {
        i = 0;
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf c = zs__vmul(zs__vsub(zs__vload(x + i), vm), vi);
            zs__vstore(da + i, zs__vfma(zs__vload(gy + i), c, zs__vload(da + i)));
        }
        for (; i < n; i++) da[i] += gy[i] * ((x[i] - mean) * inv);
    }
    if (db) zs__ew_acc_n(db, gy, n, 0);
}
ZS__PRIV void zs__lnu_bwd_row_ref(float *gx, float *da, float *db, const float *gy, const float *x, const float *a,
                                  float mean, float sd, float inv, int64_t n) {
    double s1 = 0.0, s2 = 0.0, k;
    int64_t i;
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (a ? (double)a[i] : 1.0);
        s1 += g;
        s2 += g * ((double)x[i] - mean);
    }
    k = sd > 0.0f ? (double)inv * inv * s2 / ((double)(n - 1) * sd) : 0.0;
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (a ? (double)a[i] : 1.0), c = (double)x[i] - mean;
        if (gx) gx[i] = (float)(gx[i] + inv * (g - s1 / (double)n) - k * c);
        if (da) da[i] = (float)(da[i] + (double)gy[i] * c * inv);
        if (db) db[i] = (float)(db[i] + (double)gy[i]);
    }
}

/* F.normalize row: y = x / max(|x|, eps); st gets |x| */
ZS__PRIV void zs__l2n_row(float *y, float *st, const float *x, int64_t n, float eps) {
    float nrm = sqrtf(zs__row_dot(x, x, n));
    float den = nrm < eps ? eps : nrm; /* NaN norm stays NaN */
    zs__ew_scale_n(y, x, 1.0f / den, n);
    if (st) st[0] = nrm;
}
ZS__PRIV void zs__l2n_row_ref(float *y, float *st, const float *x, int64_t n, float eps) {
    double s = 0.0, den;
    int64_t i;
    for (i = 0; i < n; i++) s += (double)x[i] * x[i];
    s = sqrt(s);
    den = s < (double)eps ? (double)eps : s;
    for (i = 0; i < n; i++) y[i] = (float)(x[i] / den);
    if (st) st[0] = (float)s;
}

/* |x| >= eps: gx += g/|x| - x <x,g> / |x|^3; clamped: gx += g / eps */
ZS__PRIV void zs__l2n_bwd_row(float *gx, const float *x, const float *gy, float nrm, float eps, int64_t n) {
    if (nrm >= eps) {
        float inv = 1.0f / nrm, k = -zs__row_dot(x, gy, n) * inv * inv * inv;
        zs__ew_axpy_n(gx, gy, inv, n);
        zs__ew_axpy_n(gx, x, k, n);
    } else {
        zs__ew_axpy_n(gx, gy, 1.0f / eps, n);
    }
}
ZS__PRIV void zs__l2n_bwd_row_ref(float *gx, const float *x, const float *gy, float nrm, float eps, int64_t n) {
    double dot = 0.0, s = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) { dot += (double)x[i] * gy[i]; s += (double)x[i] * x[i]; }
    s = sqrt(s);
    for (i = 0; i < n; i++) {
        if (nrm >= eps) gx[i] = (float)(gx[i] + gy[i] / s - x[i] * dot / (s * s * s));
        else gx[i] = (float)(gx[i] + gy[i] / (double)eps);
    }
}

enum { ZS__RW_SOFTMAX = 0, ZS__RW_LOGSOFTMAX, ZS__RW_LN, ZS__RW_LNU, ZS__RW_L2N,
       ZS__RW_SOFTMAX_BWD, ZS__RW_LOGSOFTMAX_BWD, ZS__RW_L2N_BWD };

typedef struct zs__rw_job {
    int op;
    int64_t D;
    float eps;
    float *y;           /* forward output, or the input gradient in backward */
    const float *x;     /* input (backward: softmax/log-softmax output, or x) */
    const float *g;     /* output gradient (backward) */
    const float *w, *b;
    float *st;          /* per-row statistics (may be NULL in forward) */
} zs__rw_job;

ZS__PRIV void zs__rw_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__rw_job *j = (zs__rw_job *)arg;
    int64_t r, D = j->D;
    (void)ws;
    for (r = lo; r < hi; r++) {
        float *y = j->y + r * D;
        const float *x = j->x + r * D;
        switch (j->op) {
        case ZS__RW_SOFTMAX: memcpy(y, x, (size_t)D * sizeof(float)); zs__softmax_row(y, D); break;
        case ZS__RW_LOGSOFTMAX: zs__logsoftmax_row(y, x, D); break;
        case ZS__RW_LN: zs__ln_row(y, j->st ? j->st + 2 * r : NULL, x, j->w, j->b, D, j->eps); break;
        case ZS__RW_LNU: zs__lnu_row(y, j->st ? j->st + 3 * r : NULL, x, j->w, j->b, D, j->eps); break;
        case ZS__RW_L2N: zs__l2n_row(y, j->st ? j->st + r : NULL, x, D, j->eps); break;
        case ZS__RW_SOFTMAX_BWD: zs__softmax_bwd_row(y, x, j->g + r * D, D); break;
        case ZS__RW_LOGSOFTMAX_BWD: zs__logsoftmax_bwd_row(y, x, j->g + r * D, D); break;
        case ZS__RW_L2N_BWD: zs__l2n_bwd_row(y, x, j->g + r * D, j->st[r], j->eps, D); break;
        default: break;
        }
    }
}

ZS__PRIV void zs__rw_run(zs_ctx *ctx, zs__rw_job *j, int64_t rows) {
    int64_t D = j->D > 0 ? j->D : 1;
    if (rows > 0 && j->D > 0) zs__parallel_rows(ctx, rows, (ZS__EW_MIN / 2 + D - 1) / D, zs__rw_task, j);
}

/* rows of the last dim (a scalar is one row of one) */
ZS__PRIV void zs__rows_of(const zs_tensor *t, int64_t *R, int64_t *D) {
    *D = t->ndim ? t->shape[t->ndim - 1] : 1;
    *R = *D ? zs_numel(t) / *D : 0;
}

ZS__PRIV int zs__rowop_bwd(zs_ctx *ctx, zs_tensor *out, int op, const float *x) {
    float *ga;
    zs__rw_job j;
    int64_t R;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    memset(&j, 0, sizeof j);
    zs__rows_of(out, &R, &j.D);
    j.op = op; j.y = ga; j.x = x; j.g = out->grad; j.st = (float *)out->saved; j.eps = out->fp[0];
    zs__rw_run(ctx, &j, R);
    return ZS_OK;
}
ZS__PRIV int zs__softmax_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__rowop_bwd(ctx, out, ZS__RW_SOFTMAX_BWD, (const float *)out->data); }
ZS__PRIV int zs__logsoftmax_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__rowop_bwd(ctx, out, ZS__RW_LOGSOFTMAX_BWD, (const float *)out->data);
}
ZS__PRIV int zs__l2n_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__rowop_bwd(ctx, out, ZS__RW_L2N_BWD, (const float *)out->src[0]->data);
}

/* row op forward for a single input; nst statistics floats per row saved */
ZS__PRIV zs_tensor *zs__rowop(zs_ctx *ctx, zs_tensor *a, int op, int nst, float eps, const char *who, const char *name,
                              zs_backward_fn bwd) {
    zs_tensor *out;
    zs__rw_job j;
    int64_t R;
    if (!zs__ok1(ctx, a, who)) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, name, bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    memset(&j, 0, sizeof j);
    zs__rows_of(a, &R, &j.D);
    j.op = op; j.eps = eps; j.y = (float *)out->data; j.x = (const float *)a->data;
    out->fp[0] = eps;
    if (nst && (out->flags & ZS_FLAG_ON_TAPE)) {
        j.st = (float *)zs__arena_alloc(&ctx->arena, (size_t)(R ? R : 1) * (size_t)nst * sizeof(float));
        if (!j.st) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        out->saved = j.st;
    }
    zs__rw_run(ctx, &j, R);
    return out;
}

ZS__FN zs_tensor *zs_softmax(zs_ctx *ctx, zs_tensor *a) {
    return zs__rowop(ctx, a, ZS__RW_SOFTMAX, 0, 0.0f, "zs_softmax", "softmax", zs__softmax_bwd);
}
ZS__FN zs_tensor *zs_log_softmax(zs_ctx *ctx, zs_tensor *a) {
    return zs__rowop(ctx, a, ZS__RW_LOGSOFTMAX, 0, 0.0f, "zs_log_softmax", "log_softmax", zs__logsoftmax_bwd);
}
ZS__FN zs_tensor *zs_l2_normalize(zs_ctx *ctx, zs_tensor *x, float eps) {
    return zs__rowop(ctx, x, ZS__RW_L2N, 1, eps, "zs_l2_normalize", "l2_normalize", zs__l2n_bwd);
}

/* -- layer norms: x [.., D], w/a [D], b [D]; saved: per-row statistics -- */

typedef struct zs__lnb_job {
    int unbiased;
    int64_t R, D;
    const float *x, *w, *gy, *st;
    float *gx, *pw, *pb; /* pw/pb: [chunks, D] partial sums (may be NULL) */
} zs__lnb_job;

ZS__PRIV void zs__lnb_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__lnb_job *j = (zs__lnb_job *)arg;
    int64_t c, r, D = j->D;
    (void)ws;
    for (c = lo; c < hi; c++) {
        int64_t r1 = (c + 1) * ZS__LN_CHUNK < j->R ? (c + 1) * ZS__LN_CHUNK : j->R;
        float *pw = j->pw ? j->pw + c * D : NULL, *pb = j->pb ? j->pb + c * D : NULL;
        for (r = c * ZS__LN_CHUNK; r < r1; r++) {
            float *gx = j->gx ? j->gx + r * D : NULL;
            if (j->unbiased)
                zs__lnu_bwd_row(gx, pw, pb, j->gy + r * D, j->x + r * D, j->w, j->st[3 * r], j->st[3 * r + 1], j->st[3 * r + 2], D);
            else
                zs__ln_bwd_row(gx, pw, pb, j->gy + r * D, j->x + r * D, j->w, j->st[2 * r], j->st[2 * r + 1], D);
        }
    }
}

ZS__PRIV int zs__ln_bwd_common(zs_ctx *ctx, zs_tensor *out, int unbiased) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    float *gx, *gw, *gb;
    zs__lnb_job j;
    zs__amark m;
    int64_t nch, c;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gw, ctx, w);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    memset(&j, 0, sizeof j);
    zs__rows_of(x, &j.R, &j.D);
    if ((!gx && !gw && !gb) || j.R == 0 || j.D == 0) return ZS_OK;
    j.unbiased = unbiased;
    j.x = (const float *)x->data; j.w = w ? (const float *)w->data : NULL;
    j.gy = out->grad; j.st = (const float *)out->saved; j.gx = gx;
    nch = (j.R + ZS__LN_CHUNK - 1) / ZS__LN_CHUNK;
    m = zs__arena_mark(&ctx->arena);
    if (gw) j.pw = (float *)zs__arena_calloc(&ctx->arena, (size_t)(nch * j.D) * sizeof(float));
    if (gb) j.pb = (float *)zs__arena_calloc(&ctx->arena, (size_t)(nch * j.D) * sizeof(float));
    if ((gw && !j.pw) || (gb && !j.pb)) {
        zs__arena_release(&ctx->arena, m);
        return zs__fail(ZS_ERR_NOMEM, "%s backward: arena exhausted", out->op);
    }
    zs__parallel_rows(ctx, nch, 1, zs__lnb_task, &j);
    /* partial sums combined in chunk order: the same bits for any thread count */
    for (c = 1; c < nch; c++) {
        if (j.pw) zs__ew_acc_n(j.pw, j.pw + c * j.D, j.D, 0);
        if (j.pb) zs__ew_acc_n(j.pb, j.pb + c * j.D, j.D, 0);
    }
    if (gw) zs__ew_acc_n(gw, j.pw, j.D, 0);
    if (gb) zs__ew_acc_n(gb, j.pb, j.D, 0);
    zs__arena_release(&ctx->arena, m);
    return ZS_OK;
}
ZS__PRIV int zs__ln_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__ln_bwd_common(ctx, out, 0); }
ZS__PRIV int zs__lnu_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__ln_bwd_common(ctx, out, 1); }

ZS__PRIV zs_tensor *zs__ln_common(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b, float eps, int unbiased) {
    const char *who = unbiased ? "zs_layer_norm_unbiased" : "zs_layer_norm";
    int nst = unbiased ? 3 : 2;
    zs_tensor *out;
    zs__rw_job j;
    int64_t R, D;
    if (!x || !zs__ok(ctx, who, x, w, b)) return NULL;
    if (x->ndim < 1) return zs__shape_fail(ctx, who, x, NULL, "input needs at least one dimension");
    D = x->shape[x->ndim - 1];
    if (w && (w->ndim != 1 || w->shape[0] != D)) return zs__shape_fail(ctx, who, x, w, "weight must be [D], D the last dim of x");
    if (b && (b->ndim != 1 || b->shape[0] != D)) return zs__shape_fail(ctx, who, x, b, "bias must be [D], D the last dim of x");
    x = zs__contig(ctx, x);
    if (!x || (w && !(w = zs__contig(ctx, w))) || (b && !(b = zs__contig(ctx, b)))) return NULL;
    out = zs__op_new(ctx, unbiased ? "layer_norm_unbiased" : "layer_norm", unbiased ? zs__lnu_bwd : zs__ln_bwd,
                     x->ndim, x->shape, x, w, b, NULL);
    if (!out) return NULL;
    zs__rows_of(x, &R, &D);
    memset(&j, 0, sizeof j);
    j.op = unbiased ? ZS__RW_LNU : ZS__RW_LN; j.D = D; j.eps = eps;
    j.y = (float *)out->data; j.x = (const float *)x->data;
    j.w = w ? (const float *)w->data : NULL; j.b = b ? (const float *)b->data : NULL;
    out->fp[0] = eps;
    if (out->flags & ZS_FLAG_ON_TAPE) {
        j.st = (float *)zs__arena_alloc(&ctx->arena, (size_t)(R ? R : 1) * (size_t)nst * sizeof(float));
        if (!j.st) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        out->saved = j.st;
    }
    zs__rw_run(ctx, &j, R);
    return out;
}

ZS__FN zs_tensor *zs_layer_norm(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b, float eps) {
    return zs__ln_common(ctx, x, w, b, eps, 0);
}
ZS__FN zs_tensor *zs_layer_norm_unbiased(zs_ctx *ctx, zs_tensor *x, zs_tensor *a, zs_tensor *b, float eps) {
    return zs__ln_common(ctx, x, a, b, eps, 1);
}
