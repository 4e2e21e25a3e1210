/* ==================================================================== */
/* [impl:optim] optimisers                                              */
/* ==================================================================== */
/* torch.optim semantics (1.13 single-tensor code paths), per parameter p
   with gradient g, learning rate lr of p's group, weight decay wd:

     SGD    d = g + wd p;  buf = d on p's first step, else momentum buf + d;
            p -= lr buf  (momentum 0: no buffer, p -= lr d). No dampening,
            no Nesterov.
     Adam   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
            p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
     AdamW  p *= 1 - lr wd;  then Adam without the L2 term.

   t counts the steps THIS parameter has taken (torch keeps state['step']
   per parameter), so a parameter that was frozen for a while resumes its
   own bias correction. Scalars (1-b1, bias corrections, lr*wd) are computed
   in double and rounded to float once, as torch's Python code does; the
   element updates run in float in torch's operation order. The AVX2 update
   uses the same IEEE operations (mul, add, div, sqrt, no FMA) in the same
   order as the scalar reference beside it.

   Frozen parameters (ZS_FLAG_FROZEN, checked at every step) are skipped:
   neither the parameter nor its state changes. Gradients are not zeroed.
   State for every parameter of the store lives in ONE allocation (with the
   optimiser itself), so freezing and unfreezing later works. */

struct zs_optim {
    zs_optim_params p;
    zs_params *params;
    void *user;
    int n_params, n_groups;
    int *group;        /* [n_params] */
    float *lr;         /* [n_groups] */
    int64_t *pstep;    /* [n_params] steps taken per parameter */
    size_t *off;       /* [n_params] element offset into the store */
    float *m, *v;      /* SGD: m = momentum buffer; Adam: first/second moments */
    int64_t steps;     /* zs_optim_step calls */
};

ZS__FN zs_optim_params zs_optim_default_params(zs_optim_kind kind) {
    zs_optim_params p;
    memset(&p, 0, sizeof p);
    p.kind = kind;
    p.lr = 1e-3f;
    p.momentum = 0.0f;
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.eps = 1e-8f;
    p.weight_decay = kind == ZS_OPTIM_ADAMW ? 1e-2f : 0.0f;
    return p;
}

/* -- element kernels (scalar reference + vector path, same op order) -- */

/* SGD. first: buf = d (torch clones d into a new buffer). buf NULL: no momentum. */
ZS__PRIV void zs__sgd_update_ref(float *p, const float *g, float *buf, int64_t n, float lr, float mom, float wd, int first) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * p[i];
        if (buf) {
            if (first) buf[i] = d;
            else buf[i] = buf[i] * mom + d;
            d = buf[i];
        }
        p[i] = p[i] + (-lr) * d;
    }
}

ZS__PRIV void zs__sgd_update(float *p, const float *g, float *buf, int64_t n, float lr, float mom, float wd, int first) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    {
        const __m256 vwd = _mm256_set1_ps(wd), vmom = _mm256_set1_ps(mom), vnlr = _mm256_set1_ps(-lr);
        for (; i + 8 <= n; i += 8) {
            __m256 vp = _mm256_loadu_ps(p + i), d = _mm256_loadu_ps(g + i);
            if (wd != 0.0f) d = _mm256_add_ps(d, _mm256_mul_ps(vwd, vp));
            if (buf) {
                if (!first) d = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(buf + i), vmom), d);
                _mm256_storeu_ps(buf + i, d);
            }
            _mm256_storeu_ps(p + i, _mm256_add_ps(vp, _mm256_mul_ps(vnlr, d)));
        }
    }
#endif
    zs__sgd_update_ref(p + i, g + i, buf ? buf + i : NULL, n - i, lr, mom, wd, first);
}

/* Adam / AdamW element update.
   decay: multiply p by it first (AdamW's 1 - lr wd; 1 for Adam: skipped)
   l2:    g += l2 p (Adam's weight decay; 0 for AdamW: skipped)
   c1 = 1-b1, c2 = 1-b2, step = lr / bias_correction1, bc2s = sqrt(bias_correction2) */
typedef struct zs__adam_k { float decay, l2, b1, c1, b2, c2, step, bc2s, eps; } zs__adam_k;

ZS__PRIV void zs__adam_update_ref(float *p, const float *g, float *m, float *v, int64_t n, const zs__adam_k *k) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float gi = g[i], pi = p[i], den;
        if (k->decay != 1.0f) pi = pi * k->decay;
        if (k->l2 != 0.0f) gi = gi + k->l2 * pi;
        m[i] = m[i] * k->b1 + k->c1 * gi;
        v[i] = v[i] * k->b2 + (k->c2 * gi) * gi;
        den = sqrtf(v[i]) / k->bc2s + k->eps;
        p[i] = pi + ((-k->step) * m[i]) / den;
    }
}

ZS__PRIV void zs__adam_update(float *p, const float *g, float *m, float *v, int64_t n, const zs__adam_k *k) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    {
        const __m256 decay = _mm256_set1_ps(k->decay), l2 = _mm256_set1_ps(k->l2);
        const __m256 b1 = _mm256_set1_ps(k->b1), c1 = _mm256_set1_ps(k->c1);
        const __m256 b2 = _mm256_set1_ps(k->b2), c2 = _mm256_set1_ps(k->c2);
        const __m256 nstep = _mm256_set1_ps(-k->step), bc2s = _mm256_set1_ps(k->bc2s), eps = _mm256_set1_ps(k->eps);
        const int do_decay = k->decay != 1.0f, do_l2 = k->l2 != 0.0f;
        for (; i + 8 <= n; i += 8) {
            __m256 vp = _mm256_loadu_ps(p + i), vg = _mm256_loadu_ps(g + i), vm, vv, den;
            if (do_decay) vp = _mm256_mul_ps(vp, decay);
            if (do_l2) vg = _mm256_add_ps(vg, _mm256_mul_ps(l2, vp));
            vm = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(c1, vg));
            vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(c2, vg), vg));
            _mm256_storeu_ps(m + i, vm);
            _mm256_storeu_ps(v + i, vv);
            den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2s), eps);
            _mm256_storeu_ps(p + i, _mm256_add_ps(vp, _mm256_div_ps(_mm256_mul_ps(nstep, vm), den)));
        }
    }
#endif
    zs__adam_update_ref(p + i, g + i, m + i, v + i, n - i, k);
}

/* -- life cycle -- */

ZS__PRIV size_t zs__optim_align_up(size_t x) { return (x + ZS__ALIGN - 1) & ~(size_t)(ZS__ALIGN - 1); }

ZS__FN zs_optim *zs_optim_create(const zs_optim_params *p, zs_params *params, const int *group) {
    zs_optim *o;
    size_t n, nbuf, o_group, o_lr, o_step, o_off, o_m, total, mom_bytes, off;
    int i, ng = 1;
    unsigned char *base;
    if (!p || !params) { zs__fail(ZS_ERR_ARG, "zs_optim_create: NULL %s", p ? "parameter store" : "params"); return NULL; }
    if (p->kind != ZS_OPTIM_SGD && p->kind != ZS_OPTIM_ADAM && p->kind != ZS_OPTIM_ADAMW) {
        zs__fail(ZS_ERR_ARG, "zs_optim_create: unknown kind %d", (int)p->kind);
        return NULL;
    }
    if (!(p->lr >= 0.0f) || !(p->weight_decay >= 0.0f) || !(p->momentum >= 0.0f) || !(p->eps >= 0.0f) ||
        !(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f)) {
        zs__fail(ZS_ERR_ARG, "zs_optim_create: bad hyper-parameters (lr %g, momentum %g, betas %g/%g, eps %g, weight decay %g)",
                 (double)p->lr, (double)p->momentum, (double)p->beta1, (double)p->beta2, (double)p->eps, (double)p->weight_decay);
        return NULL;
    }
    if (params->count > 0 && !params->data) {
        zs__fail(ZS_ERR_STATE, "zs_optim_create: parameter store not allocated (call zs_params_alloc)");
        return NULL;
    }
    for (i = 0; group && i < params->count; i++) {
        if (group[i] < 0) { zs__fail(ZS_ERR_ARG, "zs_optim_create: group[%d] = %d is negative", i, group[i]); return NULL; }
        if (group[i] + 1 > ng) ng = group[i] + 1;
    }
    n = params->numel;
    nbuf = p->kind == ZS_OPTIM_SGD ? (p->momentum != 0.0f ? 1 : 0) : 2;
    /* one block: header | group | lr | pstep | off | moments (64-byte aligned) */
    o_group = zs__optim_align_up(sizeof(zs_optim));
    o_lr = o_group + zs__optim_align_up((size_t)params->count * sizeof(int) + 1);
    o_step = o_lr + zs__optim_align_up((size_t)ng * sizeof(float));
    o_off = o_step + zs__optim_align_up((size_t)params->count * sizeof(int64_t) + 1);
    o_m = o_off + zs__optim_align_up((size_t)params->count * sizeof(size_t) + 1);
    if (!zs__mul_ok(n, nbuf * sizeof(float), &mom_bytes) || o_m + mom_bytes + ZS__ALIGN < o_m) {
        zs__fail(ZS_ERR_NOMEM, "zs_optim_create: size overflow");
        return NULL;
    }
    total = o_m + mom_bytes + ZS__ALIGN;
    base = (unsigned char *)zs__malloc(total, params->alloc_user);
    if (!base) { zs__fail(ZS_ERR_NOMEM, "zs_optim_create: cannot allocate %zu bytes", total); return NULL; }
    /* the header sits at the block start; everything else is aligned from
       an aligned origin inside the block */
    o = (zs_optim *)base;
    memset(o, 0, sizeof *o);
    {
        unsigned char *org = (unsigned char *)(((uintptr_t)base + ZS__ALIGN - 1) & ~(uintptr_t)(ZS__ALIGN - 1));
        o->group = (int *)(org + o_group);
        o->lr = (float *)(org + o_lr);
        o->pstep = (int64_t *)(org + o_step);
        o->off = (size_t *)(org + o_off);
        o->m = nbuf ? (float *)(org + o_m) : NULL;
        o->v = nbuf == 2 ? o->m + n : NULL;
        if (mom_bytes) memset(org + o_m, 0, mom_bytes);
    }
    o->p = *p;
    o->params = params;
    o->user = params->alloc_user;
    o->n_params = params->count;
    o->n_groups = ng;
    for (i = 0; i < ng; i++) o->lr[i] = p->lr;
    off = 0;
    for (i = 0; i < params->count; i++) {
        o->group[i] = group ? group[i] : 0;
        o->pstep[i] = 0;
        o->off[i] = off;
        off += (size_t)zs_numel(&params->t[i]);
    }
    return o;
}

ZS__FN void zs_optim_free(zs_optim *o) {
    if (o) zs__free(o, o->user);
}

ZS__FN int zs_optim_set_lr(zs_optim *o, int group, float lr) {
    int i;
    if (!o) return zs__fail(ZS_ERR_ARG, "zs_optim_set_lr: NULL optimiser");
    if (!(lr >= 0.0f)) return zs__fail(ZS_ERR_ARG, "zs_optim_set_lr: learning rate %g must be >= 0", (double)lr);
    if (group < -1 || group >= o->n_groups)
        return zs__fail(ZS_ERR_ARG, "zs_optim_set_lr: group %d outside [-1,%d)", group, o->n_groups);
    for (i = 0; i < o->n_groups; i++)
        if (group < 0 || i == group) o->lr[i] = lr;
    return ZS_OK;
}

ZS__FN int zs_optim_step(zs_optim *o) {
    zs_params *ps;
    int i;
    if (!o) return zs__fail(ZS_ERR_ARG, "zs_optim_step: NULL optimiser");
    ps = o->params;
    if (ps->count != o->n_params || (o->n_params > 0 && !ps->data))
        return zs__fail(ZS_ERR_STATE, "zs_optim_step: the parameter store changed since zs_optim_create");
    for (i = 0; i < o->n_params; i++) {
        zs_tensor *t = &ps->t[i];
        int64_t n = zs_numel(t);
        size_t off = o->off[i];
        float *pd = ps->data + off;
        const float *g = ps->grad + off;
        double lr = (double)o->lr[o->group[i]];
        int64_t st;
        if (t->flags & ZS_FLAG_FROZEN) continue;
        st = ++o->pstep[i];
        if (n == 0) continue;
        if (o->p.kind == ZS_OPTIM_SGD) {
            zs__sgd_update(pd, g, o->m ? o->m + off : NULL, n, (float)lr, o->p.momentum, o->p.weight_decay, st == 1);
        } else {
            zs__adam_k k;
            double b1 = o->p.beta1, b2 = o->p.beta2, wd = o->p.weight_decay;
            double bc1 = 1.0 - pow(b1, (double)st), bc2 = 1.0 - pow(b2, (double)st);
            if (o->p.kind == ZS_OPTIM_ADAMW) { k.decay = (float)(1.0 - lr * wd); k.l2 = 0.0f; }
            else { k.decay = 1.0f; k.l2 = (float)wd; }
            k.b1 = o->p.beta1; k.c1 = (float)(1.0 - b1);
            k.b2 = o->p.beta2; k.c2 = (float)(1.0 - b2);
            k.step = (float)(lr / bc1);
            k.bc2s = (float)sqrt(bc2);
            k.eps = o->p.eps;
            zs__adam_update(pd, g, o->m + off, o->v + off, n, &k);
        }
    }
    o->steps++;
    return ZS_OK;
}

ZS__FN int64_t zs_optim_steps(const zs_optim *o) { return o ? o->steps : 0; }
