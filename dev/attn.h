/* ==================================================================== */
/* [impl:attn] fused multi-head attention kernels                       */
/* ==================================================================== */
/* q [B,Tq,W], k and v [B,Tk,W], W = H*dh; head h owns columns
   h*dh..h*dh+dh-1 of q, k, v and of the output (PyTorch's MHA after the
   in-projection, before the out-projection).

   Forward, one task per (b,h) pair:
       S = scale * Q_h K_h^T          [Tq,Tk] in per-thread scratch
       P = softmax(S) row by row       (stable: max subtracted)
       P <- P * keep / (1-p)           training with p > 0 (inverted dropout)
       O_h = P V_h                     into the output's column block
   The GEMMs read each head in place through the leading dimension (the
   row stride: W for a contiguous tensor, 3W for a slice of a fused qkv),
   so q, k, v are never copied. keep(b,h,i,j) = hash_uniform(key, flat
   index of (b,h,i,j)) >= p, with key drawn once per call and saved in
   out->ip[1]: backward regenerates the mask instead of storing it.

   Backward recomputes S and P from the inputs (flash-attention style:
   nothing but the inputs and the key is kept), then per (b,h)
       dV_h += P_drop^T dO_h
       dP    = (dO_h V_h^T) * keep / (1-p)
       dS    = P o (dP - rowsum(dP o P))
       dQ_h += scale * dS K_h,   dK_h += scale * dS^T Q_h
   Every task writes a disjoint column block of the output (forward) or of
   dQ, dK, dV (backward) and reduces only inside itself, so results are
   bit-identical for any thread count. Scratch per thread: two [Tq,Tk]
   float matrices and a [Tq,Tk] byte mask (backward), one matrix (forward).

   Saved for backward: src = q, k, v (as given, or their contiguous copies),
   ip[0] = heads, ip[1] = the dropout key's bits, fp[0] = scale,
   fp[1] = the effective dropout (0 unless training).

   cls_attn and probs report the softmax probabilities BEFORE dropout (the
   attention the model computed, not the random mask it trained with). */

/* where one operand's rows live: p + b*sb + t*ld + column */
typedef struct zs__attn_in { const float *p; int64_t sb, ld; } zs__attn_in;

/* Can the GEMM address t [B,T,W] in place? Needs unit column stride and a
   row stride of at least W; the batch stride is free. */
ZS__PRIV int zs__attn_geom(const zs_tensor *t, zs__attn_in *g) {
    int64_t T = t->shape[1], W = t->shape[2];
    if (W > 1 && t->stride[2] != 1) return 0;
    g->ld = T > 1 ? t->stride[1] : (W > 0 ? W : 1);
    if (g->ld < W || g->ld < 1) return 0;
    g->sb = t->stride[0];
    g->p = (const float *)t->data;
    return 1;
}

typedef struct zs__attn_job {
    zs__attn_in q, k, v;
    float *out;          /* forward output [B,Tq,W], contiguous */
    const float *gout;   /* backward: dO [B,Tq,W], contiguous */
    float *gq, *gk, *gv; /* backward: contiguous gradients; NULL = not wanted; may alias */
    float *probs;        /* [B,H,Tq,Tk] or NULL */
    float *cls;          /* [B,H,Tk] scratch for P[b,h,0,:] or NULL */
    int64_t B, Tq, Tk, H, dh, W;
    float scale, p, inv; /* p = effective dropout (0: none), inv = 1/(1-p) */
    uint64_t key;
    int fail[ZS_MAX_THREADS];
} zs__attn_job;

/* row i of P (pre-dropout) -> dropped and rescaled; keep flags into m (may be NULL) */
ZS__PRIV void zs__attn_drop_row(float *row, unsigned char *m, int64_t n, uint64_t key, uint64_t base, float p, float inv) {
    int64_t j;
    for (j = 0; j < n; j++) {
        int keep = zs__hash_uniform(key, base + (uint64_t)j) >= p;
        if (m) m[j] = (unsigned char)keep;
        row[j] *= keep ? inv : 0.0f; /* a select, not a branch: ~2x faster at p = 0.1 */
    }
}

/* S = scale Q_h K_h^T then row softmax, into S [Tq,Tk] */
ZS__PRIV int zs__attn_scores(const zs__attn_job *j, zs__arena *ws, const float *Q, const float *K, float *S) {
    int64_t i;
    if (j->dh == 0) {
        memset(S, 0, (size_t)(j->Tq * j->Tk) * sizeof(float));
    } else {
        int rc = zs__sgemm_st(ws, 0, 1, j->Tq, j->Tk, j->dh, j->scale, Q, j->q.ld, K, j->k.ld, 0.0f, S, j->Tk);
        if (rc) return rc;
    }
    for (i = 0; i < j->Tq; i++) zs__softmax_row(S + i * j->Tk, j->Tk);
    return ZS_OK;
}

ZS__PRIV int zs__attn_fwd_pair(zs__attn_job *j, int64_t b, int64_t h, zs__arena *ws) {
    const int64_t Tq = j->Tq, Tk = j->Tk, dh = j->dh, bh = b * j->H + h;
    const float *Q = j->q.p + b * j->q.sb + h * dh;
    const float *K = j->k.p + b * j->k.sb + h * dh;
    const float *V = j->v.p + b * j->v.sb + h * dh;
    float *O = j->out + b * Tq * j->W + h * dh, *S;
    zs__amark m = zs__arena_mark(ws);
    int64_t i;
    int rc = ZS_OK;
    S = (float *)zs__arena_alloc(ws, (size_t)(Tq * Tk) * sizeof(float));
    if (!S) return ZS_ERR_NOMEM;
    rc = zs__attn_scores(j, ws, Q, K, S);
    if (rc) goto done;
    if (j->probs) memcpy(j->probs + bh * Tq * Tk, S, (size_t)(Tq * Tk) * sizeof(float));
    if (j->cls) memcpy(j->cls + bh * Tk, S, (size_t)Tk * sizeof(float));
    if (j->p > 0.0f)
        for (i = 0; i < Tq; i++) zs__attn_drop_row(S + i * Tk, NULL, Tk, j->key, (uint64_t)((bh * Tq + i) * Tk), j->p, j->inv);
    if (dh) rc = zs__sgemm_st(ws, 0, 0, Tq, dh, Tk, 1.0f, S, Tk, V, j->v.ld, 0.0f, O, j->W);
done:
    zs__arena_release(ws, m);
    return rc;
}

ZS__PRIV void zs__attn_fwd_task(void *arg, int ith, int nth, zs__arena *ws) {
    zs__attn_job *j = (zs__attn_job *)arg;
    int64_t lo, hi, t;
    zs__split(j->B * j->H, ith, nth, &lo, &hi);
    for (t = lo; t < hi && !j->fail[ith]; t++) j->fail[ith] = zs__attn_fwd_pair(j, t / j->H, t % j->H, ws);
}

ZS__PRIV int zs__attn_bwd_pair(zs__attn_job *j, int64_t b, int64_t h, zs__arena *ws) {
    const int64_t Tq = j->Tq, Tk = j->Tk, dh = j->dh, W = j->W, bh = b * j->H + h;
    const float *Q = j->q.p + b * j->q.sb + h * dh;
    const float *K = j->k.p + b * j->k.sb + h * dh;
    const float *V = j->v.p + b * j->v.sb + h * dh;
    const float *dO = j->gout + b * Tq * W + h * dh;
    const int64_t off_q = b * Tq * W + h * dh, off_k = b * Tk * W + h * dh;
    float *P, *D;
    unsigned char *mask = NULL;
    zs__amark m = zs__arena_mark(ws);
    int64_t i, c;
    int rc;
    const int drop = j->p > 0.0f;
    P = (float *)zs__arena_alloc(ws, (size_t)(Tq * Tk) * sizeof(float));
    D = (float *)zs__arena_alloc(ws, (size_t)(Tq * Tk) * sizeof(float));
    if (drop) mask = (unsigned char *)zs__arena_alloc(ws, (size_t)(Tq * Tk));
    if (!P || !D || (drop && !mask)) { zs__arena_release(ws, m); return ZS_ERR_NOMEM; }
    rc = zs__attn_scores(j, ws, Q, K, P);
    if (rc) goto done;
    if (drop) {
        /* D = dropped P (for dV), mask remembered for dP */
        memcpy(D, P, (size_t)(Tq * Tk) * sizeof(float));
        for (i = 0; i < Tq; i++)
            zs__attn_drop_row(D + i * Tk, mask + i * Tk, Tk, j->key, (uint64_t)((bh * Tq + i) * Tk), j->p, j->inv);
    }
    if (j->gv && dh) { /* dV_h [Tk,dh] += P_drop^T [Tk,Tq] dO_h [Tq,dh] */
        rc = zs__sgemm_st(ws, 1, 0, Tk, dh, Tq, 1.0f, drop ? D : P, Tk, dO, W, 1.0f, j->gv + off_k, W);
        if (rc) goto done;
    }
    if (!j->gq && !j->gk) goto done;
    /* D = dP_drop = dO_h V_h^T [Tq,Tk] */
    if (dh) {
        rc = zs__sgemm_st(ws, 0, 1, Tq, Tk, dh, 1.0f, dO, W, V, j->v.ld, 0.0f, D, Tk);
        if (rc) goto done;
    } else {
        memset(D, 0, (size_t)(Tq * Tk) * sizeof(float));
    }
    /* D <- dS = P o (dP - rowsum(dP o P)), dP = dP_drop * keep / (1-p) */
    for (i = 0; i < Tq; i++) {
        float *d = D + i * Tk;
        const float *pr = P + i * Tk;
        float s = 0.0f;
        if (drop) {
            const unsigned char *mr = mask + i * Tk;
            const float f[2] = {0.0f, j->inv};
            for (c = 0; c < Tk; c++) d[c] *= f[mr[c]];
        }
        for (c = 0; c < Tk; c++) s += d[c] * pr[c];
        for (c = 0; c < Tk; c++) d[c] = pr[c] * (d[c] - s);
    }
    if (j->gq && dh) { /* dQ_h [Tq,dh] += scale dS [Tq,Tk] K_h [Tk,dh] */
        rc = zs__sgemm_st(ws, 0, 0, Tq, dh, Tk, j->scale, D, Tk, K, j->k.ld, 1.0f, j->gq + off_q, W);
        if (rc) goto done;
    }
    if (j->gk && dh) /* dK_h [Tk,dh] += scale dS^T [Tk,Tq] Q_h [Tq,dh] */
        rc = zs__sgemm_st(ws, 1, 0, Tk, dh, Tq, j->scale, D, Tk, Q, j->q.ld, 1.0f, j->gk + off_k, W);
done:
    zs__arena_release(ws, m);
    return rc;
}

ZS__PRIV void zs__attn_bwd_task(void *arg, int ith, int nth, zs__arena *ws) {
    zs__attn_job *j = (zs__attn_job *)arg;
    int64_t lo, hi, t;
    zs__split(j->B * j->H, ith, nth, &lo, &hi);
    for (t = lo; t < hi && !j->fail[ith]; t++) j->fail[ith] = zs__attn_bwd_pair(j, t / j->H, t % j->H, ws);
}

ZS__PRIV int zs__attn_job_fail(const zs__attn_job *j) {
    int i;
    for (i = 0; i < ZS_MAX_THREADS; i++)
        if (j->fail[i]) return j->fail[i];
    return ZS_OK;
}

/* the geometry and parameters shared by forward and backward */
ZS__PRIV void zs__attn_job_init(zs__attn_job *j, const zs_tensor *q, const zs_tensor *k, const zs_tensor *v,
                                int64_t heads, float scale, float p, uint64_t key) {
    memset(j, 0, sizeof *j);
    zs__attn_geom(q, &j->q);
    zs__attn_geom(k, &j->k);
    zs__attn_geom(v, &j->v);
    j->B = q->shape[0];
    j->Tq = q->shape[1];
    j->Tk = k->shape[1];
    j->W = q->shape[2];
    j->H = heads;
    j->dh = j->W / heads;
    j->scale = scale;
    j->p = p;
    j->inv = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    j->key = key;
}

ZS__PRIV int zs__attn_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    float *gq, *gk, *gv;
    zs__attn_job j;
    uint64_t key;
    int rc;
    ZS__GRAD_OR_FAIL(gq, ctx, q);
    ZS__GRAD_OR_FAIL(gk, ctx, k);
    ZS__GRAD_OR_FAIL(gv, ctx, v);
    if (!gq && !gk && !gv) return ZS_OK;
    if (zs_numel(out) == 0 || k->shape[1] == 0) return ZS_OK; /* no contributions */
    memcpy(&key, &out->ip[1], sizeof key);
    zs__attn_job_init(&j, q, k, v, out->ip[0], out->fp[0], out->fp[1], key);
    j.gout = out->grad;
    j.gq = gq;
    j.gk = gk;
    j.gv = gv;
    zs__pool_run(&ctx->pool, zs__attn_bwd_task, &j);
    rc = zs__attn_job_fail(&j);
    if (rc) return zs__fail(rc, "zs_attention backward: kernel failed (%s; per-thread scratch exhausted?)", zs_status_str(rc));
    return ZS_OK;
}

ZS__FN zs_tensor *zs_attention_ex(zs_ctx *ctx, zs_tensor *q, zs_tensor *k, zs_tensor *v,
                                  int heads, float scale, float dropout_p,
                                  float *cls_attn, float *probs) {
    static const char *who = "zs_attention";
    zs__attn_in g;
    zs__attn_job j;
    zs__amark am;
    zs_tensor *out, *qc, *kc, *vc;
    int64_t shape[3], B, Tq, Tk, W, H, i, c;
    float p;
    uint64_t key = 0;
    int rc;
    if (!zs__ok3(ctx, q, k, v, who)) return NULL;
    if (q->ndim != 3) return zs__shape_fail(ctx, who, q, NULL, "q must be [B,Tq,heads*head_dim]");
    if (k->ndim != 3) return zs__shape_fail(ctx, who, k, NULL, "k must be [B,Tk,heads*head_dim]");
    if (v->ndim != 3) return zs__shape_fail(ctx, who, v, NULL, "v must be [B,Tk,heads*head_dim]");
    if (heads < 1) {
        zs__fail(ZS_ERR_ARG, "%s: heads must be >= 1, got %d", who, heads);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    /* NaN test on the bits: -ffast-math may fold a NaN comparison away */
    if ((zs__f2u(dropout_p) & 0x7f800000u) == 0x7f800000u || dropout_p < 0.0f || dropout_p > 1.0f) {
        zs__fail(ZS_ERR_ARG, "%s: dropout_p must be in [0,1], got %g", who, (double)dropout_p);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    B = q->shape[0]; Tq = q->shape[1]; W = q->shape[2]; Tk = k->shape[1]; H = heads;
    if (W % H) {
        char why[96];
        snprintf(why, sizeof why, "width %lld is not a multiple of heads %d", (long long)W, heads);
        return zs__shape_fail(ctx, who, q, NULL, why);
    }
    if (k->shape[0] != B) return zs__shape_fail(ctx, who, q, k, "q and k batch sizes differ");
    if (k->shape[2] != W) return zs__shape_fail(ctx, who, q, k, "q and k widths differ");
    if (v->shape[0] != B || v->shape[1] != Tk) return zs__shape_fail(ctx, who, k, v, "k and v need the same batch and length");
    if (v->shape[2] != W) return zs__shape_fail(ctx, who, q, v, "q and v widths differ");
    /* operands the GEMM cannot address in place get a (differentiable) copy;
       one tensor passed several times is copied once */
    qc = zs__attn_geom(q, &g) ? q : zs_contiguous(ctx, q);
    kc = k == q ? qc : (zs__attn_geom(k, &g) ? k : zs_contiguous(ctx, k));
    vc = v == q ? qc : v == k ? kc : (zs__attn_geom(v, &g) ? v : zs_contiguous(ctx, v));
    if (!qc || !kc || !vc) return NULL;
    shape[0] = B; shape[1] = Tq; shape[2] = W;
    out = zs__op_new(ctx, "attention", zs__attn_bwd, 3, shape, qc, kc, vc, NULL);
    if (!out) return NULL;
    p = ctx->training ? dropout_p : 0.0f;
    if (p > 0.0f) key = zs__rng_key(ctx);
    out->ip[0] = H;
    memcpy(&out->ip[1], &key, sizeof key);
    out->fp[0] = scale;
    out->fp[1] = p;
    if (B == 0 || W == 0) return out;
    if (Tq == 0 || Tk == 0) { /* nothing to attend to / no query 0 */
        memset(out->data, 0, (size_t)zs_numel(out) * sizeof(float));
        if (cls_attn) memset(cls_attn, 0, (size_t)(B * Tk) * sizeof(float));
        return out;
    }
    zs__attn_job_init(&j, qc, kc, vc, H, scale, p, key);
    j.out = (float *)out->data;
    j.probs = probs;
    am = zs__arena_mark(&ctx->arena);
    if (cls_attn && !probs) { /* P[b,h,0,:] lands here, reduced below */
        j.cls = (float *)zs__arena_alloc(&ctx->arena, (size_t)(B * H * Tk) * sizeof(float));
        if (!j.cls) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    }
    zs__pool_run(&ctx->pool, zs__attn_fwd_task, &j);
    rc = zs__attn_job_fail(&j);
    if (!rc && cls_attn) /* head mean of P[b,h,0,:], heads summed in order */
        for (i = 0; i < B; i++)
            for (c = 0; c < Tk; c++) {
                float s = 0.0f;
                int64_t h;
                for (h = 0; h < H; h++) s += probs ? probs[(i * H + h) * Tq * Tk + c] : j.cls[(i * H + h) * Tk + c];
                cls_attn[i * Tk + c] = s / (float)H;
            }
    zs__arena_release(&ctx->arena, am);
    if (rc) {
        zs__fail(rc, "%s: kernel failed (%s; per-thread scratch exhausted?)", who, zs_status_str(rc));
        return zs__op_fail(ctx, rc);
    }
    return out;
}

ZS__FN zs_tensor *zs_attention(zs_ctx *ctx, zs_tensor *q, zs_tensor *k, zs_tensor *v,
                               int heads, float scale, float dropout_p) {
    return zs_attention_ex(ctx, q, k, v, heads, scale, dropout_p, NULL, NULL);
}

/* -- scalar references (plain loops, double accumulation), for the tests -- */

/* the dropout keep decision of element (b,h,i,j), as the kernels make it */
ZS__PRIV int zs__attn_keep(uint64_t key, int64_t H, int64_t Tq, int64_t Tk, int64_t b, int64_t h, int64_t i, int64_t j, float p) {
    return zs__hash_uniform(key, (uint64_t)(((b * H + h) * Tq + i) * Tk + j)) >= p;
}

/* P[b,h,:,:] in double into P [Tq,Tk]; q, k contiguous */
ZS__PRIV void zs__attn_ref_probs(const float *q, const float *k, int64_t Tq, int64_t Tk, int64_t H, int64_t dh,
                                 float scale, int64_t b, int64_t h, double *P) {
    int64_t W = H * dh, i, j, c;
    for (i = 0; i < Tq; i++) {
        double *pr = P + i * Tk, mx = -INFINITY, s = 0.0;
        for (j = 0; j < Tk; j++) {
            double d = 0.0;
            for (c = 0; c < dh; c++) d += (double)q[(b * Tq + i) * W + h * dh + c] * (double)k[(b * Tk + j) * W + h * dh + c];
            pr[j] = d * (double)scale;
            if (pr[j] > mx) mx = pr[j];
        }
        for (j = 0; j < Tk; j++) { pr[j] = exp(pr[j] - mx); s += pr[j]; }
        for (j = 0; j < Tk; j++) pr[j] /= s;
    }
}

/* Forward reference. q [B,Tq,H*dh], k, v [B,Tk,H*dh], all contiguous; p is
   the effective dropout (0 in eval), key the op's key. out [B,Tq,H*dh];
   cls_attn [B,Tk] and probs [B,H,Tq,Tk] (pre-dropout) may be NULL.
   work: (Tq+1)*Tk doubles. */
ZS__PRIV void zs__attention_ref(const float *q, const float *k, const float *v, float *out,
                                int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t dh,
                                float scale, float p, uint64_t key, float *cls_attn, float *probs, double *work) {
    int64_t W = H * dh, b, h, i, j, c;
    double inv = p < 1.0f ? 1.0 / (1.0 - (double)p) : 0.0, *P = work, *acc = work + Tq * Tk;
    for (b = 0; b < B; b++) {
        for (j = 0; j < Tk; j++) acc[j] = 0.0;
        for (h = 0; h < H; h++) {
            zs__attn_ref_probs(q, k, Tq, Tk, H, dh, scale, b, h, P);
            for (j = 0; j < Tk && Tq > 0; j++) acc[j] += P[j];
            for (i = 0; i < Tq; i++)
                for (j = 0; j < Tk; j++) {
                    double *pij = P + i * Tk + j;
                    if (probs) probs[((b * H + h) * Tq + i) * Tk + j] = (float)*pij;
                    if (p > 0.0f) *pij = zs__attn_keep(key, H, Tq, Tk, b, h, i, j, p) ? *pij * inv : 0.0;
                }
            for (i = 0; i < Tq; i++)
                for (c = 0; c < dh; c++) {
                    double s = 0.0;
                    for (j = 0; j < Tk; j++) s += P[i * Tk + j] * (double)v[(b * Tk + j) * W + h * dh + c];
                    out[(b * Tq + i) * W + h * dh + c] = (float)s;
                }
        }
        if (cls_attn)
            for (j = 0; j < Tk; j++) cls_attn[b * Tk + j] = (float)(acc[j] / (double)H);
    }
}

/* Backward reference: accumulates (+=) into gq, gk, gv (each may be NULL)
   from gout [B,Tq,H*dh]; same conventions as zs__attention_ref.
   work: 2*Tq*Tk doubles. */
ZS__PRIV void zs__attention_bwd_ref(const float *q, const float *k, const float *v, const float *gout,
                                    float *gq, float *gk, float *gv,
                                    int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t dh,
                                    float scale, float p, uint64_t key, double *work) {
    int64_t W = H * dh, b, h, i, j, c;
    double inv = p < 1.0f ? 1.0 / (1.0 - (double)p) : 0.0, *P = work, *dS = work + Tq * Tk, s;
#define ZS__ATTN_M(i_, j_) (p > 0.0f ? (zs__attn_keep(key, H, Tq, Tk, b, h, i_, j_, p) ? inv : 0.0) : 1.0)
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++) {
            zs__attn_ref_probs(q, k, Tq, Tk, H, dh, scale, b, h, P);
            for (i = 0; i < Tq; i++) {
                double rs = 0.0;
                for (j = 0; j < Tk; j++) {
                    double d = 0.0;
                    for (c = 0; c < dh; c++) d += (double)gout[(b * Tq + i) * W + h * dh + c] * (double)v[(b * Tk + j) * W + h * dh + c];
                    dS[i * Tk + j] = d * ZS__ATTN_M(i, j); /* dP */
                    rs += dS[i * Tk + j] * P[i * Tk + j];
                }
                for (j = 0; j < Tk; j++) dS[i * Tk + j] = P[i * Tk + j] * (dS[i * Tk + j] - rs);
            }
            for (j = 0; j < Tk; j++)
                for (c = 0; c < dh; c++) {
                    if (gv) {
                        for (s = 0.0, i = 0; i < Tq; i++) s += P[i * Tk + j] * ZS__ATTN_M(i, j) * (double)gout[(b * Tq + i) * W + h * dh + c];
                        gv[(b * Tk + j) * W + h * dh + c] += (float)s;
                    }
                    if (gk) {
                        for (s = 0.0, i = 0; i < Tq; i++) s += dS[i * Tk + j] * (double)q[(b * Tq + i) * W + h * dh + c];
                        gk[(b * Tk + j) * W + h * dh + c] += (float)(s * (double)scale);
                    }
                }
            if (gq)
                for (i = 0; i < Tq; i++)
                    for (c = 0; c < dh; c++) {
                        for (s = 0.0, j = 0; j < Tk; j++) s += dS[i * Tk + j] * (double)k[(b * Tk + j) * W + h * dh + c];
                        gq[(b * Tq + i) * W + h * dh + c] += (float)(s * (double)scale);
                    }
        }
#undef ZS__ATTN_M
}
