/* TCN tests ([impl:tcn] in zsesbir.h): parity with the PyTorch reference tools/tcn_ref.py
   (goldens in tests/golden/tcn/: tiny Bottleneck encoders, BatchNorm1d and
   MSSBN heads, a BasicBlock net), hand-worked share loss, finite-difference
   gradients of the new exp op and of the semantic batch-hard loss, weights
   round trip and strict loading, and a short training run.

   Parity metric, per tensor: max |c - r| / max(max |r|, 1e-6) (error relative
   to the tensor's scale). Pass: <= 1e-4. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

#define GDIR "tests/golden/tcn/"
#define GOLDEN GDIR "tcn_tiny_golden.safetensors"
#define TOL 1e-4

static double worst_seen;

static double scale_rel(const float *a, const float *b, int64_t n) {
    double m = 0, s = 0;
    int64_t i;
    for (i = 0; i < n; i++) if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    if (s < 1e-6) s = 1e-6;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / s;
        if (d > m || d != d) m = d;
    }
    return m;
}

/* golden tensor `name` as f32 (malloc'd), NULL if absent */
static float *gget(zs_safetensors *st, const char *name, int64_t *n) {
    const zs_st_info *t = zs_st_find(st, name);
    float *p;
    if (!t) return NULL;
    p = (float *)malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (zs_st_read(st, t, p, ZS_F32, (size_t)t->numel) != ZS_OK) { free(p); return NULL; }
    if (n) *n = t->numel;
    return p;
}

/* compare n values with golden `name`; returns 1 if within TOL */
static int gcmp(zs_safetensors *st, const char *name, const float *c, int64_t n, char *why, size_t cap) {
    int64_t gn = 0;
    float *g = gget(st, name, &gn);
    double e;
    if (!g) { snprintf(why, cap, "golden %s missing", name); return 0; }
    if (gn != n) { snprintf(why, cap, "%s: %lld values, golden %lld", name, (long long)n, (long long)gn); free(g); return 0; }
    e = scale_rel(c, g, n);
    free(g);
    if (e > worst_seen) worst_seen = e;
    if (getenv("TCN_VERBOSE") && e > 1e-5) printf("  %-60s %.3g\n", name, e);
    if (!(e <= TOL)) { snprintf(why, cap, "%s: scale-relative error %.3g > %g", name, e, TOL); return 0; }
    return 1;
}

/* the reference's generated images (tools/tcn_ref.py hash_images): exact floats */
static zs_tensor *hash_images(zs_ctx *ctx, uint64_t seed) {
    int64_t sh[4] = {4, 3, 64, 64}, i, n = 4 * 3 * 64 * 64;
    zs_tensor *t = zs_tensor_new(ctx, ZS_F32, 4, sh);
    if (!t) return NULL;
    for (i = 0; i < n; i++) {
        uint64_t z = ((uint64_t)i + 1) * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull;
        z ^= z >> 31;
        z *= 0x94D049BB133111EBull;
        z ^= z >> 29;
        ((float *)t->data)[i] = (float)((double)(z >> 40) / 8388608.0 - 1.0);
    }
    return t;
}

static zs_tensor *gtensor(zs_ctx *ctx, zs_safetensors *st, const char *name) {
    const zs_st_info *t = zs_st_find(st, name);
    zs_tensor *x;
    if (!t || t->ndim > 4) return NULL;
    x = zs_tensor_new(ctx, ZS_F32, t->ndim, t->shape);
    if (!x || zs_st_read(st, t, x->data, ZS_F32, (size_t)t->numel) != ZS_OK) return NULL;
    return x;
}

#define GCMP(st, name, c, n)                                        \
    do {                                                            \
        char why_[256];                                             \
        ZT_CHECK(gcmp(st, name, c, n, why_, sizeof why_), "%s", why_); \
    } while (0)

static int have_golden(void) {
    FILE *f = fopen(GOLDEN, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* ---- new op: exp ------------------------------------------------------ */
static zs_tensor *build_exp(zs_ctx *ctx, zs_tensor **in, void *u) {
    (void)u;
    return zs__tcn_exp(ctx, in[0]);
}

static void test_tcn_exp_op(void) {
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *x = zt_input(ctx, 2, ZT_SHAPE(3, 5), 11, 2.0f), *y;
    int i;
    ZT_REQUIRE(x, "input");
    y = zs__tcn_exp(ctx, x);
    ZT_REQUIRE(y, "exp: %s", zs_last_error());
    for (i = 0; i < 15; i++) {
        double want = exp((double)((float *)x->data)[i]);
        ZT_CHECK(fabs(((float *)y->data)[i] - want) <= 2e-7 * want, "exp[%d] %g want %g", i, (double)((float *)y->data)[i], want);
    }
    ZT_GRADCHECK(ctx, build_exp, &x, 1, NULL, 1e-3, 1e-4, 0);
    zs_ctx_free(ctx);
}

/* ---- configs ---------------------------------------------------------- */
static void test_tcn_configs(void) {
    zs_resnet_config c;
    zs_tcn_config t = zs_tcn_config_default();
    ZT_CHECK(zs_resnet_config_named(&c, "resnet50") == ZS_OK && c.bottleneck == 1 && c.layers[2] == 6 &&
                 zs_resnet_feature_dim(&c) == 2048, "resnet50");
    ZT_CHECK(zs_resnet_config_named(&c, "resnet34") == ZS_OK && c.bottleneck == 0 && c.layers[1] == 4 &&
                 zs_resnet_feature_dim(&c) == 512, "resnet34");
    ZT_CHECK(zs_resnet_config_named(&c, "resnet18") == ZS_OK && c.layers[3] == 2, "resnet18");
    ZT_CHECK(zs_resnet_config_named(&c, "resnet101") == ZS_ERR_ARG && strstr(zs_last_error(), "resnet101"), "unknown name");
    ZT_CHECK(t.dim == 64 && t.kd_classes == 1000 && t.wv_dim == 300 && t.w_share == 1000.0f && zs_tcn_config_check(&t) == ZS_OK,
             "default");
    t.backbone.layers[2] = 0;
    ZT_CHECK(zs_tcn_config_check(&t) == ZS_ERR_ARG && strstr(zs_last_error(), "layer3"), "zero blocks: %s", zs_last_error());
    t = zs_tcn_config_default();
    t.dropout = 1.0f;
    ZT_CHECK(zs_tcn_config_check(&t) == ZS_ERR_ARG, "dropout 1");
    /* lr schedule: 1e-4 * 0.001^(5/20) = 1e-4 * 10^-0.75 */
    ZT_CHECK(fabs(zs_tcn_lr(1e-4f, 5, 10) - 1.7782794e-5) < 1e-10, "lr %g", (double)zs_tcn_lr(1e-4f, 5, 10));
    ZT_CHECK(zs_tcn_lr(1e-4f, 0, 10) == 1e-4f, "lr epoch 0");
    {
        zs_tcn m;
        zs_tcn_config d = zs_tcn_config_default();
        /* torchvision ResNet-50 without fc: 23,508,032 parameters + 53,120 BN buffers (x2 encoders) */
        ZT_REQUIRE(zs_tcn_init(&m, &d, 0, 1) == ZS_OK, "init full: %s", zs_last_error());
        {
            size_t enc = (size_t)((float *)m.hash_w->data - m.params.data);
            ZT_CHECK(enc == 2u * (23508032u + 53120u), "encoder floats %zu", enc);
        }
        ZT_CHECK(zs_params_find(&m.params, "image.layer4.2.downsample.0.weight") == NULL &&
                     zs_params_find(&m.params, "sketch.layer3.0.downsample.1.running_var") != NULL &&
                     zs_params_find(&m.params, "fc.fc_hash.1.running_mean") != NULL,
                 "names");
        zs_tcn_free(&m);
    }
}

/* ---- share loss: sum of per-conv Frobenius norms, BN excluded ---------- */
static void test_tcn_share_hand(void) {
    zs_tcn_config c = zs_tcn_config_tiny();
    zs_tcn m;
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *s;
    ZT_REQUIRE(zs_tcn_init(&m, &c, 1, 3) == ZS_OK, "init: %s", zs_last_error());
    s = zs_tcn_share_loss(ctx, &m);
    ZT_REQUIRE(s, "share: %s", zs_last_error());
    ZT_CHECK(((float *)s->data)[0] == 0.0f, "encoders start equal: %g", (double)((float *)s->data)[0]);
    ((float *)m.enc[1].conv1->data)[5] += 3.0f;
    ((float *)m.enc[1].blocks[2].conv[1]->data)[7] -= 4.0f;
    ((float *)m.enc[1].bn1.w->data)[0] += 100.0f;        /* BN: excluded */
    ((float *)m.enc[1].blocks[0].down_bn.b->data)[0] += 100.0f;
    s = zs_tcn_share_loss(ctx, &m);
    ZT_REQUIRE(s, "share");
    ZT_CHECK(fabs(((float *)s->data)[0] - 7.0) < 1e-5, "share %g, want 3 + 4 = 7 (not 5: per-conv norms, not squared)",
             (double)((float *)s->data)[0]);
    zs_ctx_free(ctx);
    zs_tcn_free(&m);
}

/* ---- semantic batch-hard: finite differences -------------------------- */
typedef struct sbh_user { zs_tcn *m; int32_t labels[6]; float wv[6 * 12]; float alpha[6]; } sbh_user;

static zs_tensor *build_sbh(zs_ctx *ctx, zs_tensor **in, void *u) {
    sbh_user *s = (sbh_user *)u;
    return zs_tcn_semantic_loss(ctx, s->m, in[0], s->labels, s->wv, s->alpha);
}

static void test_tcn_sbh_gradcheck(void) {
    zs_tcn_config c = zs_tcn_config_tiny();
    zs_tcn m;
    zs_ctx *ctx = zs_ctx_create(NULL);
    static sbh_user u;
    zs_tensor *in[3];
    int i;
    static const int32_t lab[6] = {0, 1, 0, 2, 1, 0};
    ZT_REQUIRE(zs_tcn_init(&m, &c, 1, 9) == ZS_OK, "init");
    u.m = &m;
    for (i = 0; i < 6; i++) { u.labels[i] = lab[i]; u.alpha[i] = 0.1f + 0.15f * (float)i; }
    zt_fill(u.wv, 6 * 12, 21, 1.0f);
    in[0] = zt_input(ctx, 2, ZT_SHAPE(6, 16), 5, 1.0f);
    in[1] = m.sbh_w;
    in[2] = m.cls_w;
    ZT_REQUIRE(in[0], "input");
    /* the mined indices are piecewise constant: with well separated random
       points a step of 1e-2 does not change them */
    ZT_GRADCHECK(ctx, build_sbh, in, 3, &u, 2e-2, 2e-4, 60);
    zs_ctx_free(ctx);
    zs_tcn_free(&m);
}

/* ---- BasicBlock ResNet parity ------------------------------------------ */
static void test_tcn_resnet_basic_parity(void) {
    zs_safetensors *st;
    zs_resnet r;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_tensor *x, *R, *lo, *loss;
    char name[200];
    int i;
    if (!have_golden()) ZT_SKIP("no %s (run tools/tcn_ref.py --golden)", GOLDEN);
    cp.n_threads = 2;
    ctx = zs_ctx_create(&cp);
    st = zs_st_open(GOLDEN);
    ZT_REQUIRE(st, "%s", zs_last_error());
    ZT_REQUIRE(zs_resnet_load(&r, GDIR "tcn_tiny_basic.safetensors", "", 1) == ZS_OK, "load: %s", zs_last_error());
    ZT_CHECK(r.cfg.bottleneck == 0 && r.cfg.layers[0] == 2 && r.cfg.layers[1] == 1 && r.cfg.stem == 4 && r.cfg.planes[3] == 8 &&
                 r.cfg.num_classes == 6, "inferred config");
    x = hash_images(ctx, 1);
    R = gtensor(ctx, st, "basic.R");
    ZT_REQUIRE(x && R, "inputs");
    zs_set_training(ctx, 0);
    lo = zs_resnet_forward(ctx, &r, x);
    ZT_REQUIRE(lo, "eval forward: %s", zs_last_error());
    GCMP(st, "basic.eval", (const float *)lo->data, zs_numel(lo));
    zs_set_training(ctx, 1);
    lo = zs_resnet_forward(ctx, &r, x);
    loss = zs_sum(ctx, zs_mul(ctx, lo, R));
    ZT_REQUIRE(loss && zs_backward(ctx, loss) == ZS_OK, "train: %s", zs_last_error());
    GCMP(st, "basic.train", (const float *)lo->data, zs_numel(lo));
    for (i = 0; i < r.params.count; i++) {
        zs_tensor *p = &r.params.t[i];
        if (p->flags & ZS_FLAG_FROZEN) snprintf(name, sizeof name, "basic.stats1.%s", p->name);
        else snprintf(name, sizeof name, "basic.grad.%s", p->name);
        GCMP(st, name, (p->flags & ZS_FLAG_FROZEN) ? (const float *)p->data : p->grad, zs_numel(p));
    }
    zs_st_close(st);
    zs_resnet_free(&r);
    zs_ctx_free(ctx);
}

/* ---- TCN parity -------------------------------------------------------- */

/* tensors of m from the BN weights file (encoders) and, for MSSBN, the heads
   file written with DataParallel names (fc.module.*) */
static int load_mixed(zs_tcn *m, const char *heads_file) {
    zs__tcn_file a, b;
    zs__tcn_report rep;
    int i;
    memset(&rep, 0, sizeof rep);
    if (zs__tcn_file_open(&a, GDIR "tcn_tiny_bn.safetensors") != ZS_OK) return 0;
    if (zs__tcn_file_open(&b, heads_file) != ZS_OK) { zs__tcn_file_close(&a); return 0; }
    for (i = 0; i < m->params.count; i++) {
        zs_tensor *p = &m->params.t[i];
        int enc = !strncmp(p->name, "sketch.", 7) || !strncmp(p->name, "image.", 6);
        zs__tcn_read(enc ? &a : &b, p, p->name, 0, &rep);
    }
    zs__tcn_unexpected(&b, "", &rep);
    zs__tcn_file_close(&a);
    zs__tcn_file_close(&b);
    if (rep.problems) printf("  load_mixed: %s\n", rep.text);
    return rep.problems == 0;
}

static void parity_mode(int mssbn) {
    const char *mode = mssbn ? "mssbn" : "bn";
    zs_safetensors *st;
    zs_tcn m;
    zs_resnet teacher;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_tcn_batch b;
    zs_tcn_losses L, L2;
    zs_tensor *loss, *labf, *wv, *al;
    zs_optim *opt;
    int32_t labels[4];
    float emb[4 * 16], *snap;
    char name[200];
    int i, k;
    if (!have_golden()) ZT_SKIP("no %s (run tools/tcn_ref.py --golden)", GOLDEN);
    cp.n_threads = 2;
    ctx = zs_ctx_create(&cp);
    st = zs_st_open(GOLDEN);
    ZT_REQUIRE(st, "%s", zs_last_error());
    if (!mssbn) {
        ZT_REQUIRE(zs_tcn_load(&m, GDIR "tcn_tiny_bn.safetensors", 1) == ZS_OK, "load: %s", zs_last_error());
        ZT_CHECK(m.cfg.dim == 16 && m.cfg.n_classes == 5 && m.cfg.kd_classes == 10 && m.cfg.wv_dim == 12 && !m.cfg.mssbn &&
                     m.cfg.backbone.layers[1] == 2 && m.cfg.backbone.stem == 8,
                 "inferred config");
    } else {
        zs_tcn_config c = zs_tcn_config_tiny();
        c.mssbn = 1;
        c.dropout = 0.0f; /* golden made with dropout off */
        ZT_REQUIRE(zs_tcn_init(&m, &c, 1, 1) == ZS_OK, "init: %s", zs_last_error());
        ZT_REQUIRE(load_mixed(&m, GDIR "tcn_tiny_mssbn.safetensors"), "mixed load");
    }
    ZT_REQUIRE(zs_resnet_load(&teacher, GDIR "tcn_tiny_teacher.safetensors", NULL, 0) == ZS_OK, "teacher: %s", zs_last_error());
    m.teacher = &teacher;

    memset(&b, 0, sizeof b);
    b.sketch = hash_images(ctx, 1);
    b.photo = hash_images(ctx, 2);
    labf = gtensor(ctx, st, "input.labels");
    wv = gtensor(ctx, st, "input.wordvec");
    al = gtensor(ctx, st, "input.alpha");
    ZT_REQUIRE(b.sketch && b.photo && labf && wv && al, "inputs");
    for (i = 0; i < 4; i++) labels[i] = (int32_t)((float *)labf->data)[i];
    b.labels = labels;
    b.wordvec = (const float *)wv->data;
    b.alpha = (const float *)al->data;

    /* eval embeddings (initial weights; MSSBN photos through the sketch stats) */
    ZT_REQUIRE(zs_tcn_embed(ctx, &m, b.sketch, 1, emb) == ZS_OK, "embed: %s", zs_last_error());
    snprintf(name, sizeof name, "%s.eval.sketch", mode);
    GCMP(st, name, emb, 64);
    ZT_REQUIRE(zs_tcn_embed(ctx, &m, b.photo, 0, emb) == ZS_OK, "embed: %s", zs_last_error());
    snprintf(name, sizeof name, "%s.eval.photo", mode);
    GCMP(st, name, emb, 64);

    /* training-mode intermediates, then the running statistics are restored */
    snap = (float *)malloc(m.params.numel * sizeof(float));
    memcpy(snap, m.params.data, m.params.numel * sizeof(float));
    zs_set_training(ctx, 1);
    {
        zs_mark mk = zs_ctx_mark(ctx);
        int og = zs_set_grad_enabled(ctx, 0);
        for (k = 0; k < 2; k++) {
            zs_tensor *f = zs_resnet_features(ctx, &m.enc[k], k ? b.photo : b.sketch);
            zs_tensor *h = zs_tcn_encode(ctx, &m, k ? b.photo : b.sketch, !k);
            ZT_REQUIRE(f && h, "forward: %s", zs_last_error());
            snprintf(name, sizeof name, "%s.feat_%s", mode, k ? "photo" : "sketch");
            GCMP(st, name, (const float *)f->data, zs_numel(f));
            snprintf(name, sizeof name, "%s.hash_%s", mode, k ? "photo" : "sketch");
            GCMP(st, name, (const float *)h->data, zs_numel(h));
        }
        zs_set_grad_enabled(ctx, og);
        zs_ctx_release(ctx, mk);
    }
    memcpy(m.params.data, snap, m.params.numel * sizeof(float));
    free(snap);

    /* step 1: losses and every gradient */
    zs_params_zero_grad(&m.params);
    loss = zs_tcn_loss(ctx, &m, &b, &L);
    ZT_REQUIRE(loss, "loss: %s", zs_last_error());
    ZT_REQUIRE(zs_backward(ctx, loss) == ZS_OK, "backward: %s", zs_last_error());
#define LT(field)                                                  \
    snprintf(name, sizeof name, "%s.loss." #field, mode);          \
    GCMP(st, name, &L.field, 1)
    LT(cls_sketch); LT(cls_photo); LT(kd); LT(share); LT(sbh); LT(total);
#undef LT
    {
        int compared = 0;
        for (i = 0; i < m.params.count; i++) {
            zs_tensor *p = &m.params.t[i];
            snprintf(name, sizeof name, "%s.grad.%s", mode, p->name);
            if (p->flags & ZS_FLAG_FROZEN) continue;
            if (!zs_st_find(st, name)) { ZT_CHECK(mssbn, "no golden %s", name); continue; }
            if (p == m.hash_b) {
                /* a bias right before a training-mode BN has zero gradient in exact
                   arithmetic (the BN removes the mean): both sides are rounding
                   noise, checked against the weight gradient's scale */
                int64_t gn, j;
                float *g = gget(st, name, &gn);
                double sw = 0, mc = 0, mg = 0;
                for (j = 0; j < zs_numel(m.hash_w); j++) sw = fmax(sw, fabs(m.hash_w->grad[j]));
                for (j = 0; j < gn && g; j++) { mc = fmax(mc, fabs(p->grad[j])); mg = fmax(mg, fabs(g[j])); }
                ZT_CHECK(g && mc <= 1e-5 * sw && mg <= 1e-5 * sw, "%s: %g / golden %g vs weight gradient scale %g", name, mc, mg, sw);
                free(g);
                compared++;
                continue;
            }
            GCMP(st, name, p->grad, zs_numel(p));
            compared++;
        }
        ZT_CHECK(compared >= (mssbn ? 14 : 100), "%d gradients compared", compared);
    }
    opt = zs_tcn_optim_create(&m, 1e-3f);
    ZT_REQUIRE(opt && zs_optim_step(opt) == ZS_OK, "adam: %s", zs_last_error());
    zs_ctx_reset(ctx);

    /* step 2 through the step API: loss, then running statistics after it */
    b.sketch = hash_images(ctx, 1);
    b.photo = hash_images(ctx, 2);
    ZT_REQUIRE(b.sketch && b.photo, "inputs");
    ZT_REQUIRE(zs_tcn_train_step(ctx, &m, opt, &b, &L2) == ZS_OK, "step 2: %s", zs_last_error());
    snprintf(name, sizeof name, "%s.step2.total", mode);
    GCMP(st, name, &L2.total, 1);
    {
        int compared = 0;
        for (i = 0; i < m.params.count; i++) {
            zs_tensor *p = &m.params.t[i];
            if (!(p->flags & ZS_FLAG_FROZEN)) continue;
            snprintf(name, sizeof name, "%s.stats2.%s", mode, p->name);
            GCMP(st, name, (const float *)p->data, zs_numel(p));
            compared++;
        }
        ZT_CHECK(compared == 2 * 2 * 20 + (mssbn ? 4 : 2), "%d running statistics compared", compared);
    }
    zs_optim_free(opt);
    zs_resnet_free(&teacher);
    zs_tcn_free(&m);
    zs_st_close(st);
    zs_ctx_free(ctx);
}

static void test_tcn_parity_bn(void) { parity_mode(0); }
static void test_tcn_parity_mssbn(void) { parity_mode(1); }

/* ---- weights: round trip, strictness, backbone loading ----------------- */
static void test_tcn_weights(void) {
    zs_tcn_config c = zs_tcn_config_tiny();
    zs_tcn m, m2;
    zs_resnet r, r2;
    zs_resnet_config rc;
    const char *p1 = "build/tcn_rt.safetensors", *p2 = "build/tcn_rt_bad.safetensors", *p3 = "build/tcn_rn.safetensors";
    int i, same = 1;
    c.mssbn = 1;
    ZT_REQUIRE(zs_tcn_init(&m, &c, 0, 17) == ZS_OK, "init");
    ZT_REQUIRE(zs_tcn_save(&m, p1) == ZS_OK, "save: %s", zs_last_error());
    ZT_REQUIRE(zs_tcn_load(&m2, p1, 0) == ZS_OK, "load: %s", zs_last_error());
    ZT_CHECK(m2.cfg.mssbn == 1 && m2.params.numel == m.params.numel, "config");
    for (i = 0; i < m.params.count; i++) same &= !memcmp(m.params.t[i].data, m2.params.t[i].data, (size_t)zs_numel(&m.params.t[i]) * 4);
    ZT_CHECK(same, "round trip differs");
    zs_tcn_free(&m2);
    {
        /* one tensor left out and one extra: both named */
        zs_st_entry e[400];
        int n = 0;
        int64_t one = 3;
        float extra[3] = {0, 0, 0};
        for (i = 0; i < m.params.count && n < 399; i++) {
            if (!strcmp(m.params.t[i].name, "image.layer3.0.bn2.running_var")) continue;
            e[n].name = m.params.t[i].name; e[n].type = ZS_F32; e[n].ndim = m.params.t[i].ndim;
            e[n].shape = m.params.t[i].shape; e[n].data = m.params.t[i].data;
            n++;
        }
        e[n].name = "fc.extra"; e[n].type = ZS_F32; e[n].ndim = 1; e[n].shape = &one; e[n].data = extra;
        n++;
        ZT_REQUIRE(zs_st_save(p2, e, n, NULL) == ZS_OK, "save bad");
        ZT_CHECK(zs_tcn_load(&m2, p2, 0) == ZS_ERR_FORMAT && strstr(zs_last_error(), "missing image.layer3.0.bn2.running_var") &&
                     strstr(zs_last_error(), "unexpected fc.extra"),
                 "strict: %s", zs_last_error());
    }
    /* torchvision names (here with a DataParallel "module." prefix) into both encoders */
    zs_resnet_config_named(&rc, "tiny");
    ZT_REQUIRE(zs_resnet_init(&r, &rc, 0, 99) == ZS_OK, "resnet init");
    {
        zs_st_entry e[200];
        static char names[200][112];
        for (i = 0; i < r.params.count && i < 200; i++) {
            snprintf(names[i], sizeof names[i], "module.%s", r.params.t[i].name);
            e[i].name = names[i]; e[i].type = ZS_F16; e[i].ndim = r.params.t[i].ndim;
            e[i].shape = r.params.t[i].shape; e[i].data = NULL;
        }
        /* F16 storage: convert */
        {
            uint16_t *h = (uint16_t *)malloc(r.params.numel * 2);
            zs_convert(h, ZS_F16, r.params.data, ZS_F32, r.params.numel);
            for (i = 0; i < r.params.count; i++) e[i].data = h + ((float *)r.params.t[i].data - r.params.data);
            ZT_REQUIRE(zs_st_save(p3, e, r.params.count, NULL) == ZS_OK, "save rn: %s", zs_last_error());
            free(h);
        }
    }
    ZT_REQUIRE(zs_tcn_load_backbone(&m, p3, "") == ZS_OK, "backbone: %s", zs_last_error());
    ZT_REQUIRE(zs_resnet_load(&r2, p3, "", 0) == ZS_OK, "resnet load: %s", zs_last_error());
    ZT_CHECK(r2.cfg.num_classes == 10 && r2.cfg.bottleneck == 1, "resnet config");
    for (i = 0; i < r2.params.count; i++) {
        char n0[140], n1[140];
        zs_tensor *a, *b2;
        snprintf(n0, sizeof n0, "sketch.%s", r2.params.t[i].name);
        snprintf(n1, sizeof n1, "image.%s", r2.params.t[i].name);
        a = zs_params_find(&m.params, n0);
        b2 = zs_params_find(&m.params, n1);
        if (!strncmp(r2.params.t[i].name, "fc.", 3)) { ZT_CHECK(!a && !b2, "fc in encoder"); continue; }
        ZT_REQUIRE(a && b2, "missing %s", n0);
        ZT_CHECK(!memcmp(a->data, r2.params.t[i].data, (size_t)zs_numel(a) * 4) && !memcmp(b2->data, r2.params.t[i].data, (size_t)zs_numel(a) * 4),
                 "%s not loaded", r2.params.t[i].name);
        /* F16 storage: within half precision of the original */
        ZT_CHECK(fabsf(((float *)a->data)[0] - ((float *)r.params.t[i].data)[0]) <= 1e-3f * (1.0f + fabsf(((float *)r.params.t[i].data)[0])),
                 "%s value", n0);
    }
    zs_resnet_free(&r2);
    ZT_CHECK(zs_resnet_load(&r2, p3, "sketch.", 0) == ZS_ERR_FORMAT && strstr(zs_last_error(), "sketch.conv1.weight"), "prefix: %s",
             zs_last_error());
    zs_resnet_free(&r);
    zs_resnet_free(&r2);
    zs_tcn_free(&m);
}

/* ---- inference memory: no tape, only block outputs kept ---------------- */
static void test_tcn_inference_memory(void) {
    zs_resnet_config rc;
    zs_resnet r;
    zs_ctx *ctx = zs_ctx_create(NULL);
    int64_t s[4] = {2, 3, 64, 64};
    zs_tensor *x, *f1, *f2;
    size_t u0, u_inf, u_rec;
    zs_mark mk;
    zs_resnet_config_named(&rc, "tiny");
    ZT_REQUIRE(zs_resnet_init(&r, &rc, 1, 4) == ZS_OK, "init");
    x = zs_tensor_new(ctx, ZS_F32, 4, s);
    zs_tensor_fill_uniform(ctx, x, -1, 1);
    zs_set_training(ctx, 0);
    u0 = zs_ctx_arena_used(ctx);
    mk = zs_ctx_mark(ctx);
    zs_set_grad_enabled(ctx, 0);
    f1 = zs_resnet_forward(ctx, &r, x);
    ZT_REQUIRE(f1, "no-grad forward: %s", zs_last_error());
    u_inf = zs_ctx_arena_used(ctx) - u0;
    {
        float keep[20];
        memcpy(keep, f1->data, sizeof keep);
        zs_ctx_release(ctx, mk);
        zs_set_grad_enabled(ctx, 1);
        f2 = zs_resnet_forward(ctx, &r, x);
        ZT_REQUIRE(f2, "recorded forward");
        u_rec = zs_ctx_arena_used(ctx) - u0;
        ZT_CHECK(!memcmp(keep, f2->data, sizeof keep), "same logits with and without tape");
    }
    ZT_CHECK(u_inf * 3 < u_rec, "no-tape arena %zu bytes vs recorded %zu", u_inf, u_rec);
    zs_resnet_free(&r);
    zs_ctx_free(ctx);
}

/* ---- activation checkpointing: same loss, gradients, statistics --------- */
static void test_tcn_checkpoint(void) {
    zs_tcn_config c = zs_tcn_config_tiny();
    zs_tcn m[2];
    zs_resnet teacher;
    zs_resnet_config tc;
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tcn_batch b;
    zs_tcn_losses L[2];
    int32_t labels[4] = {0, 1, 0, 2};
    float wv[4 * 12], alpha[8] = {0.1f, 0.9f, 0.5f, 0.3f, 0.7f, 0.2f, 0.6f, 0.4f};
    size_t peak[2];
    int k;
    zt_fill(wv, 48, 3, 1.0f);
    zs_resnet_config_named(&tc, "tiny");
    ZT_REQUIRE(zs_resnet_init(&teacher, &tc, 0, 5) == ZS_OK, "teacher");
    for (k = 0; k < 2; k++) {
        zs_tensor *loss;
        zs_mark mk;
        size_t u0;
        ZT_REQUIRE(zs_tcn_init(&m[k], &c, 1, 21) == ZS_OK, "init");
        ((float *)m[k].enc[1].conv1->data)[0] += 0.5f; /* share term non-zero */
        m[k].teacher = &teacher;
        m[k].enc[0].checkpoint = m[k].enc[1].checkpoint = k;
        mk = zs_ctx_mark(ctx);
        memset(&b, 0, sizeof b);
        b.sketch = hash_images(ctx, 1);
        b.photo = hash_images(ctx, 2);
        b.labels = labels; b.wordvec = wv; b.alpha = alpha;
        u0 = zs_ctx_arena_used(ctx);
        zs_set_training(ctx, 1);
        loss = zs_tcn_loss(ctx, &m[k], &b, &L[k]);
        peak[k] = zs_ctx_arena_used(ctx) - u0;
        ZT_REQUIRE(loss && zs_backward(ctx, loss) == ZS_OK, "backward %d: %s", k, zs_last_error());
        zs_ctx_release(ctx, mk);
    }
    ZT_CHECK(L[0].total == L[1].total, "loss %.9g vs %.9g", (double)L[0].total, (double)L[1].total);
    ZT_CHECK(!memcmp(m[0].params.grad, m[1].params.grad, m[0].params.numel * 4), "gradients differ");
    ZT_CHECK(!memcmp(m[0].params.data, m[1].params.data, m[0].params.numel * 4), "running statistics differ (updated twice?)");
    ZT_CHECK(peak[1] * 2 < peak[0], "checkpointed forward keeps %zu bytes vs %zu", peak[1], peak[0]);
    zs_tcn_free(&m[0]);
    zs_tcn_free(&m[1]);
    zs_resnet_free(&teacher);
    zs_ctx_free(ctx);
}

/* ---- a config inferred from small tensors cannot allocate beyond the file */
static void test_tcn_inferred_size_bound(void) {
    const char *p = "build/tcn_huge.safetensors";
    zs_st_entry e[5];
    int64_t s0[4] = {4, 3, 7, 7}, s1[4] = {4096, 1, 1, 1};
    static float z[4096];
    static const char *names[4] = {"layer1.0.conv1.weight", "layer2.0.conv1.weight", "layer3.0.conv1.weight", "layer4.0.conv1.weight"};
    zs_resnet r;
    int i;
    e[0].name = "conv1.weight"; e[0].type = ZS_F32; e[0].ndim = 4; e[0].shape = s0; e[0].data = z;
    for (i = 0; i < 4; i++) { e[i + 1].name = names[i]; e[i + 1].type = ZS_F32; e[i + 1].ndim = 4; e[i + 1].shape = s1; e[i + 1].data = z; }
    ZT_REQUIRE(zs_st_save(p, e, 5, NULL) == ZS_OK, "save: %s", zs_last_error());
    ZT_CHECK(zs_resnet_load(&r, p, "", 0) == ZS_ERR_FORMAT && strstr(zs_last_error(), "file holds"), "%s", zs_last_error());
}

/* ---- training: the loss falls ------------------------------------------ */
static void test_tcn_train_falls(void) {
    zs_tcn_config c = zs_tcn_config_tiny();
    zs_tcn m;
    zs_resnet teacher;
    zs_resnet_config tc;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_optim *opt;
    zs_tcn_batch b;
    zs_tcn_losses L;
    enum { B = 8, S = 32, STEPS = 40 };
    int64_t sh[4] = {B, 3, S, S};
    int32_t labels[B];
    float wv[B * 12], first = 0, last = 0, cls0 = 0, cls1 = 0;
    int i, j, step;
    cp.n_threads = 2;
    cp.seed = 3;
    ctx = zs_ctx_create(&cp);
    c.w_share = 1000.0f;
    ZT_REQUIRE(zs_tcn_init(&m, &c, 1, 21) == ZS_OK, "init");
    zs_resnet_config_named(&tc, "tiny");
    ZT_REQUIRE(zs_resnet_init(&teacher, &tc, 0, 5) == ZS_OK, "teacher");
    m.teacher = &teacher;
    opt = zs_tcn_optim_create(&m, 1e-3f);
    ZT_REQUIRE(opt, "optim");
    for (i = 0; i < B; i++) {
        labels[i] = i % 4;
        for (j = 0; j < 12; j++) wv[i * 12 + j] = zt_rand(100 + (unsigned long long)labels[i], (unsigned long long)j);
    }
    for (step = 0; step < STEPS; step++) {
        zs_mark mk = zs_ctx_mark(ctx);
        memset(&b, 0, sizeof b);
        b.sketch = zs_tensor_new(ctx, ZS_F32, 4, sh);
        b.photo = zs_tensor_new(ctx, ZS_F32, 4, sh);
        ZT_REQUIRE(b.sketch && b.photo, "batch");
        /* class-dependent images plus noise: a sketch and its photo share a pattern */
        for (i = 0; i < B; i++)
            for (j = 0; j < 3 * S * S; j++) {
                float base = zt_rand(7 + (unsigned long long)labels[i], (unsigned long long)j);
                ((float *)b.sketch->data)[i * 3 * S * S + j] = base + 0.1f * zt_rand(1000 + (unsigned long long)(step * B + i), (unsigned long long)j);
                ((float *)b.photo->data)[i * 3 * S * S + j] = 0.5f * base + 0.1f * zt_rand(5000 + (unsigned long long)(step * B + i), (unsigned long long)j);
            }
        b.labels = labels;
        b.wordvec = wv;
        ZT_REQUIRE(zs_tcn_train_step(ctx, &m, opt, &b, &L) == ZS_OK, "step %d: %s", step, zs_last_error());
        if (getenv("TCN_VERBOSE")) printf("  step %2d total %.4f cls %.3f/%.3f kd %.3f sbh %.3f share %.5f\n", step, (double)L.total, (double)L.cls_sketch, (double)L.cls_photo, (double)L.kd, (double)L.sbh, (double)L.share);
        /* step 0: equal encoders, share 0; Adam's first steps then move every conv
           weight by ~lr, so the 1000-weighted share term jumps: compare from step 1 */
        if (step == 0) ZT_CHECK(L.share == 0.0f, "share at step 0: %g", (double)L.share);
        if (step >= 1 && step < 4) { first += L.total / 3; cls0 += (L.cls_sketch + L.cls_photo) / 3; }
        if (step >= STEPS - 3) { last += L.total / 3; cls1 += (L.cls_sketch + L.cls_photo) / 3; }
        zs_ctx_release(ctx, mk);
    }
    ZT_CHECK(last < 0.7f * first, "total loss %g -> %g", (double)first, (double)last);
    ZT_CHECK(cls1 < 0.7f * cls0, "classification %g -> %g", (double)cls0, (double)cls1);
    zs_optim_free(opt);
    zs_resnet_free(&teacher);
    zs_tcn_free(&m);
    zs_ctx_free(ctx);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_tcn_exp_op);
    ZT_RUN(test_tcn_configs);
    ZT_RUN(test_tcn_share_hand);
    ZT_RUN(test_tcn_sbh_gradcheck);
    ZT_RUN(test_tcn_resnet_basic_parity);
    ZT_RUN(test_tcn_parity_bn);
    ZT_RUN(test_tcn_parity_mssbn);
    ZT_RUN(test_tcn_weights);
    ZT_RUN(test_tcn_inference_memory);
    ZT_RUN(test_tcn_checkpoint);
    ZT_RUN(test_tcn_inferred_size_bound);
    ZT_RUN(test_tcn_train_falls);
    printf("worst parity error %.3g\n", worst_seen);
    return zt_finish();
}
