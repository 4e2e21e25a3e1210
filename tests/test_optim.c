/* test_optim.c - SGD, Adam, AdamW ([impl:optim], dev/optim.h).

   References:
   - a double-precision reimplementation of the torch.optim formulas (below,
     ref_step), compared after EVERY step: |zs - ref| <= 5e-7 (1 + |ref|)
     (measured: <= 1e-7, float rounding);
   - final parameters hard-coded from PyTorch 1.13 (CPU, float32), produced
     by this script, compared with the same tolerance (measured <= 4e-8):

        import torch
        def p0(i): return ((i*5) % 11 - 5) / 4.0
        def g(t, i): return ((i*7 + t*13) % 19 - 9) / 8.0
        def run(kind, lr0, lr1, steps, setlr=None, **kw):
            w = torch.tensor([p0(i) for i in range(15)], dtype=torch.float32).reshape(3,5).requires_grad_()
            b = torch.tensor([p0(15+i) for i in range(3)], dtype=torch.float32).requires_grad_()
            groups = [{'params':[w], 'lr':lr0}, {'params':[b], 'lr':lr1}]
            opt = {'sgd':torch.optim.SGD, 'adam':torch.optim.Adam,
                   'adamw':torch.optim.AdamW}[kind](groups, lr=lr0, **kw)
            for t in range(steps):
                if setlr is not None and t == setlr[0]:
                    opt.param_groups[1]['lr'] = setlr[1]
                w.grad = torch.tensor([g(t, i) for i in range(15)], dtype=torch.float32).reshape(3,5)
                b.grad = torch.tensor([g(t, 15+i) for i in range(3)], dtype=torch.float32)
                opt.step()
            vals = torch.cat([w.detach().reshape(-1), b.detach()]).tolist()
            print('{' + ', '.join('%.9gf' % v for v in vals) + '}')
        run('sgd', 0.1, 0.05, 4, momentum=0.9, weight_decay=0.01)
        run('sgd', 0.1, 0.05, 4, momentum=0.0, weight_decay=0.0)
        run('adam', 0.01, 0.03, 5, setlr=(3, 0.002), betas=(0.9,0.999), eps=1e-8, weight_decay=0.05)
        run('adamw', 0.01, 0.03, 5, setlr=(3, 0.002), betas=(0.9,0.999), eps=1e-8, weight_decay=0.1)

   Every p0 and g value is a multiple of 1/8 or 1/4, exact in float, so C and
   PyTorch start from identical bits. The C store additionally holds a frozen
   tensor between w and b (torch does not see it) that must stay unchanged. */
#include <stdlib.h>

/* counting allocator: the optimiser must make exactly one allocation with
   the store's alloc_user */
typedef struct zt_alloc_stats { long mallocs, frees; } zt_alloc_stats;
static void *zt_counting_malloc(size_t sz, void *u) {
    if (u) ((zt_alloc_stats *)u)->mallocs++;
    return malloc(sz);
}
static void zt_counting_free(void *p, void *u) {
    if (u) ((zt_alloc_stats *)u)->frees++;
    free(p);
}
#define ZS_MALLOC(sz, u) zt_counting_malloc(sz, u)
#define ZS_FREE(p, u) zt_counting_free(p, u)

#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

static double p0v(int i) { return ((i * 5) % 11 - 5) / 4.0; }
static double gv(int t, int i) { return ((i * 7 + t * 13) % 19 - 9) / 8.0; }

/* PyTorch 1.13 results (see the header comment), w (15 values) then b (3) */
static const float torch_sgd_mom[18] = {-0.840668857f, 0.250182003f, 1.14932251f, -0.0755834132f, 1.01526737f, -0.810745299f, 0.689502001f, -0.944800496f, 0.191840127f, -0.627843201f, 0.271297425f, -0.953608453f, 0.137242272f, 1.03638291f, -0.188523129f, 0.951166511f, -0.712077558f, 0.663275123f};
static const float torch_sgd_plain[18] = {-1.0625f, 0.075000003f, 1.21249998f, -0.162499994f, 0.975000083f, -0.637499988f, 0.737500012f, -0.875f, 0.5f, -0.875f, 0.262500018f, -1.11249995f, 0.0250000004f, 1.16250002f, -0.212499976f, 0.962499976f, -0.59375f, 0.71875f};
static const float torch_adam[18] = {-1.22216427f, 0.0290296655f, 1.23139179f, -0.236195907f, 0.993358135f, -0.527116835f, 0.747798681f, -0.766379654f, 0.476453364f, -0.964584887f, 0.24253504f, -1.22740984f, 0.0230864082f, 1.22466314f, -0.243019015f, 0.973736584f, -0.564712524f, 0.750652909f};
static const float torch_adamw[18] = {-1.21846712f, 0.0289831087f, 1.22896266f, -0.235644728f, 1.00124717f, -0.525704682f, 0.745913565f, -0.764878035f, 0.474941522f, -0.961244404f, 0.242148444f, -1.22417557f, 0.0230484754f, 1.22167134f, -0.242472604f, 0.969167888f, -0.561279297f, 0.745923281f};

typedef struct ocfg {
    zs_optim_kind kind;
    double lr0, lr1, mom, wd;
    int steps, setlr_at; /* before step setlr_at, group 1 gets lr setlr (-1: never) */
    double setlr;
} ocfg;

/* double-precision torch formulas; state per element */
typedef struct oref { double p[18], m[18], v[18]; } oref;

static void ref_init(oref *r) {
    int i;
    for (i = 0; i < 18; i++) { r->p[i] = p0v(i); r->m[i] = 0; r->v[i] = 0; }
}

static void ref_step(const ocfg *c, oref *r, int t /* 0-based */) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    int i;
    for (i = 0; i < 18; i++) {
        double lr = i < 15 ? c->lr0 : (c->setlr_at >= 0 && t >= c->setlr_at ? c->setlr : c->lr1);
        double g = gv(t, i), p = r->p[i];
        if (c->kind == ZS_OPTIM_SGD) {
            double d = g + c->wd * p;
            if (c->mom != 0) {
                r->m[i] = t == 0 ? d : c->mom * r->m[i] + d;
                d = r->m[i];
            }
            r->p[i] = p - lr * d;
        } else {
            double bc1 = 1 - pow(b1, t + 1), bc2 = 1 - pow(b2, t + 1);
            if (c->kind == ZS_OPTIM_ADAMW) p *= 1 - lr * c->wd;
            else g += c->wd * p;
            r->m[i] = b1 * r->m[i] + (1 - b1) * g;
            r->v[i] = b2 * r->v[i] + (1 - b2) * g * g;
            r->p[i] = p - lr / bc1 * r->m[i] / (sqrt(r->v[i]) / sqrt(bc2) + eps);
        }
    }
}

/* store: w [3,5] (group 0), f [4] (frozen, group 2), b [3] (group 1) */
static int make_store(zs_params *ps, void *user) {
    int64_t sw[2] = {3, 5}, sf[1] = {4}, sb[1] = {3};
    zs_params_init(ps, user);
    if (zs_params_add(ps, "w", 2, sw) != 0 || zs_params_add(ps, "f", 1, sf) != 1 || zs_params_add(ps, "b", 1, sb) != 2) return 0;
    return zs_params_alloc(ps) == ZS_OK;
}

static void set_grads(zs_params *ps, int t) {
    int i;
    for (i = 0; i < 15; i++) ps->t[0].grad[i] = (float)gv(t, i);
    for (i = 0; i < 4; i++) ps->t[1].grad[i] = 0.5f + (float)i; /* frozen: must be ignored */
    for (i = 0; i < 3; i++) ps->t[2].grad[i] = (float)gv(t, 15 + i);
}

static float store_val(zs_params *ps, int i) {
    return i < 15 ? ((float *)ps->t[0].data)[i] : ((float *)ps->t[2].data)[i - 15];
}

static void run_case(const ocfg *c, const float *torch_final) {
    zs_params ps;
    zs_optim_params op = zs_optim_default_params(c->kind);
    zs_optim *o;
    oref r;
    int group[3] = {0, 2, 1}, i, t;
    float fz[4] = {3, -1, 0.25f, 7};
    double worst = 0, worst_torch = 0;
    ZT_REQUIRE(make_store(&ps, NULL), "store: %.300s", zs_last_error());
    for (i = 0; i < 15; i++) ((float *)ps.t[0].data)[i] = (float)p0v(i);
    for (i = 0; i < 3; i++) ((float *)ps.t[2].data)[i] = (float)p0v(15 + i);
    memcpy(ps.t[1].data, fz, sizeof fz);
    zs_param_set_frozen(&ps.t[1], 1);
    op.lr = (float)c->lr0;
    op.momentum = (float)c->mom;
    op.weight_decay = (float)c->wd;
    o = zs_optim_create(&op, &ps, group);
    ZT_REQUIRE(o != NULL, "create: %.300s", zs_last_error());
    ZT_CHECK(zs_optim_set_lr(o, 1, (float)c->lr1) == ZS_OK, "set_lr group 1");
    ref_init(&r);
    for (t = 0; t < c->steps; t++) {
        if (t == c->setlr_at) ZT_CHECK(zs_optim_set_lr(o, 1, (float)c->setlr) == ZS_OK, "set_lr");
        set_grads(&ps, t);
        ZT_CHECK(zs_optim_step(o) == ZS_OK, "step %d: %.300s", t, zs_last_error());
        ref_step(c, &r, t);
        for (i = 0; i < 18; i++) {
            double e = fabs(store_val(&ps, i) - r.p[i]) / (1 + fabs(r.p[i]));
            if (e > worst) worst = e;
        }
    }
    for (i = 0; i < 18; i++) {
        double e = fabs((double)store_val(&ps, i) - torch_final[i]) / (1 + fabs(torch_final[i]));
        if (e > worst_torch) worst_torch = e;
    }
    ZT_CHECK(worst <= 5e-7, "vs double reference: %.3g", worst);
    ZT_CHECK(worst_torch <= 5e-7, "vs PyTorch: %.3g", worst_torch);
    ZT_CHECK(!memcmp(ps.t[1].data, fz, sizeof fz), "frozen tensor changed");
    ZT_CHECK(zs_optim_steps(o) == c->steps, "steps %lld", (long long)zs_optim_steps(o));
    zs_optim_free(o);
    zs_params_free(&ps);
}

static void test_optim_sgd_momentum(void) {
    ocfg c = {ZS_OPTIM_SGD, 0.1, 0.05, 0.9, 0.01, 4, -1, 0};
    run_case(&c, torch_sgd_mom);
}
static void test_optim_sgd_plain(void) {
    ocfg c = {ZS_OPTIM_SGD, 0.1, 0.05, 0.0, 0.0, 4, -1, 0};
    run_case(&c, torch_sgd_plain);
}
static void test_optim_adam(void) {
    ocfg c = {ZS_OPTIM_ADAM, 0.01, 0.03, 0.0, 0.05, 5, 3, 0.002};
    run_case(&c, torch_adam);
}
static void test_optim_adamw(void) {
    ocfg c = {ZS_OPTIM_ADAMW, 0.01, 0.03, 0.0, 0.1, 5, 3, 0.002};
    run_case(&c, torch_adamw);
}

static void test_optim_defaults(void) {
    zs_optim_params s = zs_optim_default_params(ZS_OPTIM_SGD), a = zs_optim_default_params(ZS_OPTIM_ADAM);
    zs_optim_params w = zs_optim_default_params(ZS_OPTIM_ADAMW);
    ZT_CHECK(s.kind == ZS_OPTIM_SGD && s.momentum == 0.0f && s.weight_decay == 0.0f && s.lr > 0, "SGD defaults");
    ZT_CHECK(a.kind == ZS_OPTIM_ADAM && a.lr == 1e-3f && a.beta1 == 0.9f && a.beta2 == 0.999f && a.eps == 1e-8f && a.weight_decay == 0.0f, "Adam defaults");
    ZT_CHECK(w.kind == ZS_OPTIM_ADAMW && w.lr == 1e-3f && w.beta1 == 0.9f && w.beta2 == 0.999f && w.eps == 1e-8f && w.weight_decay == 1e-2f, "AdamW defaults");
}

static void test_optim_errors(void) {
    zs_params ps, empty;
    zs_optim_params op = zs_optim_default_params(ZS_OPTIM_ADAM);
    zs_optim *o;
    int bad_group[3] = {0, -1, 0};
    int64_t s1[1] = {3};
    ZT_REQUIRE(make_store(&ps, NULL), "store");
    ZT_CHECK(zs_optim_create(NULL, &ps, NULL) == NULL, "NULL params accepted");
    ZT_CHECK(zs_optim_create(&op, NULL, NULL) == NULL, "NULL store accepted");
    ZT_CHECK(zs_optim_create(&op, &ps, bad_group) == NULL && strstr(zs_last_error(), "group[1]"), "negative group: %.300s", zs_last_error());
    op.beta1 = 1.0f;
    ZT_CHECK(zs_optim_create(&op, &ps, NULL) == NULL, "beta1 = 1 accepted");
    op = zs_optim_default_params(ZS_OPTIM_SGD);
    op.lr = -1.0f;
    ZT_CHECK(zs_optim_create(&op, &ps, NULL) == NULL, "negative lr accepted");
    op.lr = 0.1f;
    op.kind = (zs_optim_kind)7;
    ZT_CHECK(zs_optim_create(&op, &ps, NULL) == NULL, "unknown kind accepted");
    /* store not allocated yet */
    zs_params_init(&empty, NULL);
    zs_params_add(&empty, "x", 1, s1);
    op = zs_optim_default_params(ZS_OPTIM_SGD);
    ZT_CHECK(zs_optim_create(&op, &empty, NULL) == NULL && strstr(zs_last_error(), "zs_params_alloc"), "unallocated store: %.300s", zs_last_error());
    zs_params_free(&empty);
    /* set_lr: group range, negative lr, -1 = all */
    o = zs_optim_create(&op, &ps, NULL);
    ZT_REQUIRE(o != NULL, "create");
    ZT_CHECK(zs_optim_set_lr(o, 1, 0.1f) == ZS_ERR_ARG, "group 1 of 1 accepted");
    ZT_CHECK(zs_optim_set_lr(o, -2, 0.1f) == ZS_ERR_ARG, "group -2 accepted");
    ZT_CHECK(zs_optim_set_lr(o, 0, -0.1f) == ZS_ERR_ARG, "negative lr accepted");
    ZT_CHECK(zs_optim_set_lr(NULL, 0, 0.1f) == ZS_ERR_ARG && zs_optim_step(NULL) == ZS_ERR_ARG && zs_optim_steps(NULL) == 0, "NULL optimiser");
    zs_optim_free(o);
    zs_optim_free(NULL);
    zs_params_free(&ps);
}

/* set_lr(-1) reaches every group; per-group rates act independently */
static void test_optim_set_lr_groups(void) {
    zs_params ps;
    zs_optim_params op = zs_optim_default_params(ZS_OPTIM_SGD);
    zs_optim *o;
    int group[3] = {0, 2, 1}, i;
    ZT_REQUIRE(make_store(&ps, NULL), "store");
    zs_param_set_frozen(&ps.t[1], 0);
    op.lr = 1.0f;
    o = zs_optim_create(&op, &ps, group);
    ZT_REQUIRE(o != NULL, "create");
    ZT_CHECK(zs_optim_set_lr(o, 2, 0.5f) == ZS_OK && zs_optim_set_lr(o, 3, 0.5f) == ZS_ERR_ARG, "3 groups");
    for (i = 0; i < (int)ps.numel; i++) ps.grad[i] = 1.0f;
    ZT_REQUIRE(zs_optim_step(o) == ZS_OK, "step");
    /* w, b: lr 1; f: lr 0.5 */
    ZT_CHECK(((float *)ps.t[0].data)[0] == -1.0f && ((float *)ps.t[2].data)[2] == -1.0f, "group 0/1 lr 1: %g %g",
             ((float *)ps.t[0].data)[0], ((float *)ps.t[2].data)[2]);
    ZT_CHECK(((float *)ps.t[1].data)[3] == -0.5f, "group 2 lr 0.5: %g", ((float *)ps.t[1].data)[3]);
    ZT_REQUIRE(zs_optim_set_lr(o, -1, 0.25f) == ZS_OK, "set all");
    ZT_REQUIRE(zs_optim_step(o) == ZS_OK, "step");
    ZT_CHECK(((float *)ps.t[0].data)[0] == -1.25f && ((float *)ps.t[1].data)[0] == -0.75f && ((float *)ps.t[2].data)[0] == -1.25f,
             "after set_lr(-1): %g %g %g", ((float *)ps.t[0].data)[0], ((float *)ps.t[1].data)[0], ((float *)ps.t[2].data)[0]);
    zs_optim_free(o);
    zs_params_free(&ps);
}

/* frozen tensors are skipped (data and state); unfreezing later starts that
   tensor's own step count at 1 (torch keeps the step per parameter) */
static void test_optim_frozen(void) {
    zs_params ps;
    zs_optim_params op = zs_optim_default_params(ZS_OPTIM_ADAM);
    zs_optim *o;
    float before[4];
    int i, t;
    ZT_REQUIRE(make_store(&ps, NULL), "store");
    for (i = 0; i < 4; i++) ((float *)ps.t[1].data)[i] = 1.0f + (float)i;
    memcpy(before, ps.t[1].data, sizeof before);
    zs_param_set_frozen(&ps.t[1], 1);
    ZT_CHECK(!(ps.t[1].flags & ZS_FLAG_REQUIRES_GRAD), "frozen tensor still requires grad");
    op.lr = 0.1f;
    o = zs_optim_create(&op, &ps, NULL);
    ZT_REQUIRE(o != NULL, "create");
    for (t = 0; t < 3; t++) {
        for (i = 0; i < (int)ps.numel; i++) ps.grad[i] = 0.3f;
        ZT_REQUIRE(zs_optim_step(o) == ZS_OK, "step");
    }
    ZT_CHECK(!memcmp(before, ps.t[1].data, sizeof before), "frozen tensor changed");
    ZT_CHECK(((float *)ps.t[0].data)[0] != 0.0f, "trainable tensor did not move");
    /* unfreeze: its first Adam step is -lr * g / (|g| + eps) regardless of the others' 3 steps */
    zs_param_set_frozen(&ps.t[1], 0);
    for (i = 0; i < (int)ps.numel; i++) ps.grad[i] = 0.3f;
    ZT_REQUIRE(zs_optim_step(o) == ZS_OK, "step");
    for (i = 0; i < 4; i++) {
        double want = before[i] - 0.1 * 0.3 / (0.3 + 1e-8);
        ZT_CHECK(fabs(((float *)ps.t[1].data)[i] - want) < 1e-6, "unfrozen first step %g vs %g", ((float *)ps.t[1].data)[i], want);
    }
    ZT_CHECK(zs_optim_steps(o) == 4, "steps %lld", (long long)zs_optim_steps(o));
    zs_optim_free(o);
    zs_params_free(&ps);
}

/* zero gradient, nonzero weights: Adam's L2 term goes through the adaptive
   step (first step moves every weight by ~lr toward 0), AdamW decays the
   weight multiplicatively and makes no other move, SGD subtracts lr wd p */
static void test_optim_weight_decay_adam_vs_adamw(void) {
    zs_optim_kind kinds[3] = {ZS_OPTIM_ADAM, ZS_OPTIM_ADAMW, ZS_OPTIM_SGD};
    int k, i;
    for (k = 0; k < 3; k++) {
        zs_params ps;
        zs_optim_params op = zs_optim_default_params(kinds[k]);
        zs_optim *o;
        float *w;
        ZT_REQUIRE(make_store(&ps, NULL), "store");
        w = (float *)ps.t[0].data;
        for (i = 0; i < 15; i++) w[i] = (float)p0v(i) + 0.125f; /* no zeros */
        op.lr = 0.01f;
        op.weight_decay = 0.1f;
        o = zs_optim_create(&op, &ps, NULL);
        ZT_REQUIRE(o != NULL, "create");
        zs_params_zero_grad(&ps);
        ZT_REQUIRE(zs_optim_step(o) == ZS_OK, "step");
        for (i = 0; i < 15; i++) {
            float p = (float)p0v(i) + 0.125f;
            if (kinds[k] == ZS_OPTIM_ADAM) {
                double g = 0.1 * p, want = p - 0.01 * g / (fabs(g) + 1e-8);
                ZT_CHECK(fabs(w[i] - want) < 1e-6, "Adam L2 step %d: %.9g vs %.9g", i, w[i], want);
            } else if (kinds[k] == ZS_OPTIM_ADAMW) {
                float want = p * (float)(1.0 - 0.01 * 0.1);
                ZT_CHECK(w[i] == want, "AdamW decoupled decay %d: %.9g vs %.9g", i, w[i], want);
            } else {
                double want = p - 0.01 * 0.1 * p;
                ZT_CHECK(fabs(w[i] - want) < 1e-7, "SGD L2 step %d: %.9g vs %.9g", i, w[i], want);
            }
        }
        zs_optim_free(o);
        zs_params_free(&ps);
    }
}

/* one allocation with the store's alloc_user, freed by zs_optim_free */
static void test_optim_one_allocation(void) {
    zt_alloc_stats st = {0, 0};
    zs_params ps;
    zs_optim_params op = zs_optim_default_params(ZS_OPTIM_ADAMW);
    zs_optim *o;
    long m0, f0;
    ZT_REQUIRE(make_store(&ps, &st), "store");
    m0 = st.mallocs;
    f0 = st.frees;
    o = zs_optim_create(&op, &ps, NULL);
    ZT_REQUIRE(o != NULL, "create");
    ZT_CHECK(st.mallocs - m0 == 1, "optimiser made %ld allocations", st.mallocs - m0);
    zs_params_zero_grad(&ps);
    ZT_CHECK(zs_optim_step(o) == ZS_OK && st.mallocs - m0 == 1, "step allocated");
    zs_optim_free(o);
    ZT_CHECK(st.frees - f0 == 1, "optimiser freed %ld blocks", st.frees - f0);
    zs_params_free(&ps);
    ZT_CHECK(st.mallocs == st.frees, "leak: %ld mallocs, %ld frees", st.mallocs, st.frees);
}

/* zs_optim_step_ctx on 2 and 3 threads gives the bits of zs_optim_step: a
   store big enough for the parallel path, odd parameter sizes, a frozen one */
static void test_optim_threads_bitwise(void) {
    static const int64_t sizes[] = {100003, 7, 65, 200001, 64, 1};
    static const zs_optim_kind kinds[] = {ZS_OPTIM_ADAMW, ZS_OPTIM_ADAM, ZS_OPTIM_SGD};
    size_t ki, i;
    int nt;
    for (ki = 0; ki < 3; ki++)
        for (nt = 2; nt <= 3; nt++) {
            zs_params a, b;
            zs_optim_params op = zs_optim_default_params(kinds[ki]);
            zs_optim *oa = NULL, *ob = NULL;
            zs_ctx_params cp = zs_ctx_default_params();
            zs_ctx *ctx;
            int t, ok = 1;
            cp.n_threads = nt;
            ctx = zs_ctx_create(&cp);
            zs_params_init(&a, NULL);
            zs_params_init(&b, NULL);
            for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                char name[16];
                snprintf(name, sizeof name, "p%d", (int)i);
                zs_params_add(&a, name, 1, &sizes[i]);
                zs_params_add(&b, name, 1, &sizes[i]);
            }
            op.momentum = 0.9f;
            op.weight_decay = 0.01f;
            ok = ctx && zs_params_alloc(&a) == ZS_OK && zs_params_alloc(&b) == ZS_OK;
            if (ok) {
                a.t[2].flags |= ZS_FLAG_FROZEN;
                b.t[2].flags |= ZS_FLAG_FROZEN;
                zt_fill(a.data, (long long)a.numel, 3, 1.0f);
                memcpy(b.data, a.data, a.numel * sizeof(float));
                oa = zs_optim_create(&op, &a, NULL);
                ob = zs_optim_create(&op, &b, NULL);
                ok = oa && ob;
            }
            for (t = 0; ok && t < 3; t++) {
                zt_fill(a.grad, (long long)a.numel, 10 + t, 1.0f);
                memcpy(b.grad, a.grad, a.numel * sizeof(float));
                ok = zs_optim_step(oa) == ZS_OK && zs_optim_step_ctx(ob, ctx) == ZS_OK;
            }
            ZT_CHECK(ok, "setup/step failed: %s", zs_last_error());
            ZT_CHECK(!ok || !memcmp(a.data, b.data, a.numel * sizeof(float)), "kind %d, %d threads: parameters differ", (int)kinds[ki], nt);
            zs_optim_free(oa);
            zs_optim_free(ob);
            zs_params_free(&a);
            zs_params_free(&b);
            zs_ctx_free(ctx);
        }
}

/* vector update kernels against their scalar references, odd sizes */
static void test_optim_kernels_vs_ref(void) {
    enum { N = 1043 };
    static float p1[N], p2[N], g[N], m1[N], m2[N], v1[N], v2[N];
    int n, rep, i;
    double worst = 0;
    for (n = 0; n <= N; n += (n < 40 ? 1 : 501)) {
        for (rep = 0; rep < 4; rep++) {
            zs__adam_k k;
            zt_fill(p1, n, 10 + rep, 1.0f);
            zt_fill(g, n, 20 + rep, 0.5f);
            zt_fill(m1, n, 30 + rep, 0.1f);
            zt_fill(v1, n, 40 + rep, 0.01f);
            for (i = 0; i < n; i++) v1[i] = fabsf(v1[i]);
            memcpy(p2, p1, (size_t)n * 4); memcpy(m2, m1, (size_t)n * 4); memcpy(v2, v1, (size_t)n * 4);
            if (rep < 2) { /* SGD: with/without momentum buffer, first/later step, with/without wd */
                zs__sgd_update(p1, g, rep ? m1 : NULL, n, 0.1f, 0.9f, rep ? 0.01f : 0.0f, rep == 1 && (n & 1));
                zs__sgd_update_ref(p2, g, rep ? m2 : NULL, n, 0.1f, 0.9f, rep ? 0.01f : 0.0f, rep == 1 && (n & 1));
            } else { /* Adam (rep 2) / AdamW (rep 3) coefficients of step 3 */
                k.decay = rep == 3 ? 1.0f - 0.01f * 0.1f : 1.0f;
                k.l2 = rep == 2 ? 0.05f : 0.0f;
                k.b1 = 0.9f; k.c1 = 0.1f; k.b2 = 0.999f; k.c2 = (float)(1.0 - 0.999);
                k.step = (float)(0.01 / (1 - pow(0.9, 3)));
                k.bc2s = (float)sqrt(1 - pow(0.999, 3));
                k.eps = 1e-8f;
                zs__adam_update(p1, g, m1, v1, n, &k);
                zs__adam_update_ref(p2, g, m2, v2, n, &k);
            }
            for (i = 0; i < n; i++) {
                double e = fabs((double)p1[i] - p2[i]) / (1 + fabs((double)p2[i]));
                double em = fabs((double)m1[i] - m2[i]) + fabs((double)v1[i] - v2[i]);
                if (e > worst) worst = e;
                if (em > worst) worst = em;
            }
        }
    }
    /* identical IEEE operations in the same order; contraction to FMA by a
       compiler (e.g. C++ default -ffp-contract=fast) may differ by an ulp */
    ZT_CHECK(worst <= 2.4e-7, "vector vs scalar update: %.3g", worst);
}

/* linear regression y = X W*^T + b* fit by each optimiser: loss drops >= 10x */
static void test_optim_linear_regression(void) {
    enum { R = 32, I = 5, O = 3 };
    static float X[R * I], Y[R * O], Wt[O * I], bt[O];
    zs_optim_kind kinds[4] = {ZS_OPTIM_SGD, ZS_OPTIM_SGD, ZS_OPTIM_ADAM, ZS_OPTIM_ADAMW};
    float lrs[4] = {0.1f, 0.05f, 0.05f, 0.05f}, moms[4] = {0.0f, 0.9f, 0.0f, 0.0f};
    int k, r, o, i, step;
    zs_ctx *ctx = zs_ctx_create(NULL);
    ZT_REQUIRE(ctx != NULL, "ctx");
    zt_fill(X, R * I, 1, 1.0f);
    zt_fill(Wt, O * I, 2, 1.0f);
    zt_fill(bt, O, 3, 1.0f);
    for (r = 0; r < R; r++)
        for (o = 0; o < O; o++) {
            double s = bt[o];
            for (i = 0; i < I; i++) s += (double)X[r * I + i] * Wt[o * I + i];
            Y[r * O + o] = (float)s;
        }
    for (k = 0; k < 4; k++) {
        zs_params ps;
        zs_optim_params op = zs_optim_default_params(kinds[k]);
        zs_optim *opt;
        int64_t sw[2] = {O, I}, sb[1] = {O}, sx[2] = {R, I}, sy[2] = {R, O};
        float first = -1, last = -1;
        zs_params_init(&ps, NULL);
        zs_params_add(&ps, "W", 2, sw);
        zs_params_add(&ps, "b", 1, sb);
        ZT_REQUIRE(zs_params_alloc(&ps) == ZS_OK, "alloc");
        op.lr = lrs[k];
        op.momentum = moms[k];
        opt = zs_optim_create(&op, &ps, NULL);
        ZT_REQUIRE(opt != NULL, "create: %.300s", zs_last_error());
        for (step = 0; step < 100; step++) {
            zs_tensor *x, *y, *pred, *loss;
            zs_ctx_reset(ctx);
            x = zs_from_data(ctx, X, 2, sx);
            y = zs_from_data(ctx, Y, 2, sy);
            pred = zs_linear(ctx, x, &ps.t[0], &ps.t[1]);
            loss = zs_mse_loss(ctx, pred, y);
            if (!loss) break;
            zs_params_zero_grad(&ps);
            if (zs_backward(ctx, loss) != ZS_OK) break;
            if (step == 0) first = ((float *)loss->data)[0];
            last = ((float *)loss->data)[0];
            if (zs_optim_step(opt) != ZS_OK) break;
        }
        ZT_CHECK(step == 100, "optimiser %d stopped at step %d: %.300s", k, step, zs_last_error());
        ZT_CHECK(first > 0 && last * 10.0f <= first, "optimiser %d: loss %g -> %g (less than 10x)", k, first, last);
        zs_optim_free(opt);
        zs_params_free(&ps);
    }
    zs_ctx_free(ctx);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_optim_defaults);
    ZT_RUN(test_optim_errors);
    ZT_RUN(test_optim_sgd_momentum);
    ZT_RUN(test_optim_sgd_plain);
    ZT_RUN(test_optim_adam);
    ZT_RUN(test_optim_adamw);
    ZT_RUN(test_optim_set_lr_groups);
    ZT_RUN(test_optim_frozen);
    ZT_RUN(test_optim_weight_decay_adam_vs_adamw);
    ZT_RUN(test_optim_one_allocation);
    ZT_RUN(test_optim_kernels_vs_ref);
    ZT_RUN(test_optim_threads_bitwise);
    ZT_RUN(test_optim_linear_regression);
    return zt_finish();
}
