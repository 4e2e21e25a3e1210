/* ZSE-SBIR model tests: parity with the PyTorch reference (tools/zsesbir_ref.py,
   golden file tests/golden/zsesbir_tiny.safetensors), cached RN scoring,
   two-stage search, config validation, weights round trip and strict loading.

   Parity metric, per tensor: max |c - r| / max(max |r|, 1e-6), the error
   relative to the tensor's scale (elementwise relative error is meaningless
   for entries near zero). Pass: <= 1e-4. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"
#include "zse_parity.h"

#define GOLDEN "tests/golden/zsesbir_tiny.safetensors"

/* the golden file's config (tools/zsesbir_ref.py "tiny") */
static zs_zse_config tiny_config(void) { return zs_zse_config_tiny(); }

static void test_zse_parity_tiny(void) {
    double worst = 0;
    int ok = zse_parity_run(GOLDEN, tiny_config(), 2, 1, 1e-4, &worst, 1);
    ZT_CHECK(ok, "parity with the PyTorch reference failed (see the lines above; worst %.3g)", worst);
}

/* cached per-item projections give the same scores as the full relation */
static void test_zse_cached_scores(void) {
    zs_zse_config c = tiny_config();
    zs_zse m;
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *img, *sa, *ref, *sk_rep;
    int64_t s4[4] = {5, 3, 64, 64};
    size_t cf;
    float *cache, scores[4];
    const float *pcs[4];
    int i;
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 11) == ZS_OK, "init: %s", zs_last_error());
    zs_set_grad_enabled(ctx, 0);
    img = zs_from_data(ctx, NULL, 4, s4);
    zs_tensor_fill_uniform(ctx, img, -1, 1);
    sa = zs_zse_sa(ctx, &m, img); /* item 0 = sketch, 1..4 photos */
    ZT_REQUIRE(sa, "sa: %s", zs_last_error());
    cf = zs_zse_cache_floats(&m);
    cache = (float *)malloc(cf * 5 * sizeof(float));
    for (i = 0; i < 5; i++)
        ZT_REQUIRE(zs_zse_cache(ctx, &m, (const float *)sa->data + (size_t)i * 17 * 32, i == 0, cache + cf * i) == ZS_OK, "cache");
    for (i = 0; i < 4; i++) pcs[i] = cache + cf * (i + 1);
    ZT_REQUIRE(zs_zse_score_cached(ctx, &m, cache, pcs, 4, scores) == ZS_OK, "score: %s", zs_last_error());
    {
        int32_t idx[4] = {0, 0, 0, 0};
        sk_rep = zs_reshape3(ctx, zs_gather(ctx, zs_reshape2(ctx, zs_slice(ctx, sa, 0, 0, 1), 1, 17 * 32), idx, 4), 4, 17, 32);
        ref = zs_zse_relation(ctx, &m, sk_rep, zs_slice(ctx, sa, 0, 1, 5), NULL);
        ZT_REQUIRE(ref, "relation: %s", zs_last_error());
        for (i = 0; i < 4; i++)
            ZT_CHECK(fabsf(scores[i] - ((float *)ref->data)[i]) <= 1e-5f, "pair %d: cached %g vs full %g", i, (double)scores[i], (double)((float *)ref->data)[i]);
    }
    free(cache);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

/* two-stage search: K = n is the RN ranking, K = 0 the ret ranking */
static void test_zse_two_stage(void) {
    zs_zse_config c = tiny_config();
    zs_zse m;
    zs_ctx *ctx = zs_ctx_create(NULL);
    enum { G = 9 };
    zs_tensor *img;
    int64_t s4[4] = {G + 1, 3, 64, 64};
    float emb[(G + 1) * 32], *cache, scores[G];
    const float *gc[G];
    zs_hit hits[G];
    size_t cf;
    int i, j;
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 5) == ZS_OK, "init");
    zs_set_grad_enabled(ctx, 0);
    img = zs_from_data(ctx, NULL, 4, s4);
    zs_tensor_fill_uniform(ctx, img, -1, 1);
    ZT_REQUIRE(zs_zse_embed(ctx, &m, img, emb) == ZS_OK, "embed");
    cf = zs_zse_cache_floats(&m);
    cache = (float *)malloc(cf * (G + 1) * sizeof(float));
    {
        zs_tensor *sa = zs_zse_sa(ctx, &m, img);
        for (i = 0; i <= G; i++) zs_zse_cache(ctx, &m, (const float *)sa->data + (size_t)i * 17 * 32, i == 0, cache + cf * i);
    }
    for (i = 0; i < G; i++) gc[i] = cache + cf * (i + 1);
    ZT_REQUIRE(zs_zse_score_cached(ctx, &m, cache, gc, G, scores) == ZS_OK, "scores");
    ZT_REQUIRE(zs_zse_search(ctx, &m, emb, cache, emb + 32, gc, G, G, hits) == ZS_OK, "search: %s", zs_last_error());
    for (i = 0; i + 1 < G; i++) ZT_CHECK(hits[i].rn_score >= hits[i + 1].rn_score, "K=n sorted by RN score");
    for (i = 0; i < G; i++) { /* the rank of each item equals its rank by RN score */
        int better = 0;
        for (j = 0; j < G; j++) better += scores[j] > scores[hits[i].index];
        ZT_CHECK(better == i, "item %d at rank %d has %d better RN scores", hits[i].index, i, better);
        ZT_CHECK(fabsf(hits[i].rn_score - scores[hits[i].index]) <= 1e-6f, "score reported"); /* bit-equal except under -ffast-math */
    }
    ZT_REQUIRE(zs_zse_search(ctx, &m, emb, NULL, emb + 32, NULL, G, 0, hits) == ZS_OK, "search K=0");
    for (i = 0; i + 1 < G; i++) ZT_CHECK(hits[i].ret_dist <= hits[i + 1].ret_dist, "K=0 sorted by distance");
    ZT_REQUIRE(zs_zse_search(ctx, &m, emb, cache, emb + 32, gc, G, 3, hits) == ZS_OK, "search K=3");
    for (i = 3; i + 1 < G; i++) ZT_CHECK(hits[i].ret_dist <= hits[i + 1].ret_dist && hits[i].rn_score == -1.0f, "tail by distance, not scored");
    free(cache);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

static void test_zse_config(void) {
    zs_zse_config c = zs_zse_config_default();
    zs_zse_dims d;
    ZT_REQUIRE(zs_zse_config_check(&c, &d) == ZS_OK, "default");
    ZT_CHECK(d.grid == 14 && d.tokens == 197 && d.anchors == 49 && d.rn[0] == 2401 && d.rn[1] == 343 && d.rn[2] == 49, "derived sizes");
    c.img_size = 384; /* 24x24 grid: 144 anchors, the released 144-anchor RN (20736, 1728, 144) */
    ZT_REQUIRE(zs_zse_config_check(&c, &d) == ZS_OK, "384");
    ZT_CHECK(d.anchors == 144 && d.rn[0] == 20736 && d.rn[1] == 1728 && d.rn[2] == 144, "144 anchors");
    c = zs_zse_config_small();
    ZT_REQUIRE(zs_zse_config_check(&c, &d) == ZS_OK, "small");
    ZT_CHECK(d.grid == 7 && d.anchors == 9 && d.rn[1] == 27, "small sizes");
    c = zs_zse_config_default(); c.heads = 7;
    ZT_CHECK(zs_zse_config_check(&c, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "heads"), "bad heads: %s", zs_last_error());
    c = zs_zse_config_default(); c.img_size = 200;
    ZT_CHECK(zs_zse_config_check(&c, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "multiple"), "bad size: %s", zs_last_error());
    c = zs_zse_config_default(); c.patch = 8;
    ZT_CHECK(zs_zse_config_check(&c, NULL) == ZS_ERR_ARG, "patch 8 refused");
    c = zs_zse_config_default(); c.keep_rate[3] = 0.0f;
    ZT_CHECK(zs_zse_config_check(&c, NULL) == ZS_ERR_ARG, "keep rate 0 refused");
    {
        char buf[512];
        zs_zse_config a = zs_zse_config_small(), b = zs_zse_config_default();
        a.keep_rate[1] = 0.7f;
        ZT_REQUIRE(zs_zse_config_format(&a, buf, sizeof buf) == ZS_OK, "format");
        ZT_REQUIRE(zs_zse_config_parse(&b, buf) == ZS_OK, "parse: %s", zs_last_error());
        ZT_CHECK(!memcmp(&a, &b, sizeof a), "config text round trip: %s", buf);
        ZT_CHECK(zs_zse_config_parse(&b, "dim=abc") == ZS_ERR_FORMAT, "bad value");
        ZT_CHECK(zs_zse_config_parse(&b, "colour=3") == ZS_ERR_FORMAT, "unknown key");
    }
}

static void test_zse_weights_roundtrip(void) {
    zs_zse_config c = tiny_config();
    zs_zse a, b;
    const char *path = "build/test_zse_roundtrip.safetensors";
    ZT_REQUIRE(zs_zse_init(&a, &c, 0, 3) == ZS_OK, "init");
    ZT_REQUIRE(zs_zse_save(&a, path, ZS_F32) == ZS_OK, "save: %s", zs_last_error());
    ZT_REQUIRE(zs_zse_load(&b, path, 0) == ZS_OK, "load: %s", zs_last_error());
    ZT_CHECK(!memcmp(&a.cfg, &b.cfg, sizeof a.cfg), "config from metadata");
    ZT_CHECK(a.params.numel == b.params.numel && !memcmp(a.params.data, b.params.data, a.params.numel * 4), "values identical");
    zs_zse_free(&b);
    ZT_REQUIRE(zs_zse_save(&a, path, ZS_F16) == ZS_OK, "save f16");
    ZT_REQUIRE(zs_zse_load(&b, path, 0) == ZS_OK, "load f16: %s", zs_last_error());
    {
        size_t i;
        int ok = 1;
        for (i = 0; i < a.params.numel; i++) ok &= fabsf(a.params.data[i] - b.params.data[i]) <= 1e-3f * fabsf(a.params.data[i]) + 1e-7f;
        ZT_CHECK(ok, "f16 values within half precision");
    }
    zs_zse_free(&b);
    zs_zse_free(&a);
}

static void test_zse_strict_load(void) {
    /* a file missing one tensor, with one mis-shaped and one extra: all three
       are reported; the unused ca.encoder.layers.0 copy is accepted */
    zs_zse_config c = tiny_config();
    zs_zse a, b;
    zs_st_entry *e;
    const char *path = "build/test_zse_strict.safetensors";
    int i, n = 0;
    int64_t bad_shape[1] = {7}, extra_shape[1] = {3};
    float extra[7] = {0};
    ZT_REQUIRE(zs_zse_init(&a, &c, 0, 3) == ZS_OK, "init");
    e = (zs_st_entry *)calloc((size_t)a.params.count + 3, sizeof(zs_st_entry));
    for (i = 0; i < a.params.count; i++) {
        zs_tensor *t = &a.params.t[i];
        if (!strcmp(t->name, "rn.rn.6.bias")) continue;               /* missing */
        e[n].name = t->name; e[n].type = ZS_F32; e[n].ndim = t->ndim; e[n].shape = t->shape; e[n].data = t->data;
        if (!strcmp(t->name, "conv2d.bias")) { e[n].ndim = 1; e[n].shape = bad_shape; e[n].data = extra; } /* mis-shaped */
        n++;
    }
    e[n].name = "head.extra"; e[n].type = ZS_F32; e[n].ndim = 1; e[n].shape = extra_shape; e[n].data = extra; n++;
    e[n].name = "ca.encoder.layers.0.feed_forward.w_1.bias"; e[n].type = ZS_F32; e[n].ndim = 1; e[n].shape = extra_shape; e[n].data = extra; n++;
    ZT_REQUIRE(zs_st_save(path, e, n, NULL) == ZS_OK, "save: %s", zs_last_error());
    ZT_CHECK(zs_zse_load(&b, path, 0) == ZS_ERR_FORMAT, "strict load refuses");
    ZT_CHECK(strstr(zs_last_error(), "3 tensor problems"), "three problems: %s", zs_last_error());
    ZT_CHECK(strstr(zs_last_error(), "missing rn.rn.6.bias"), "missing named: %s", zs_last_error());
    ZT_CHECK(strstr(zs_last_error(), "conv2d.bias"), "mis-shaped named");
    ZT_CHECK(strstr(zs_last_error(), "unexpected head.extra"), "unexpected named");
    ZT_CHECK(!strstr(zs_last_error(), "layers.0"), "unused copy ignored");
    ZT_CHECK(zs_zse_load(&b, "build/does-not-exist.safetensors", 0) != ZS_OK && zs_last_error()[0], "missing file: %s", zs_last_error());
    free(e);
    zs_zse_free(&a);
}

/* activation checkpointing of the SA blocks gives bit-identical gradients
   (dropout on: the RNG is replayed) with less arena memory */
static void test_zse_checkpoint(void) {
    zs_zse_config c = tiny_config();
    zs_zse m;
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *img, *loss;
    int64_t s4[4] = {8, 3, 64, 64};
    float *g0;
    size_t used[2];
    int pass;
    ZT_REQUIRE(zs_zse_init(&m, &c, 1, 21) == ZS_OK, "init");
    g0 = (float *)malloc(m.params.numel * sizeof(float));
    zs_set_training(ctx, 1);
    for (pass = 0; pass < 2; pass++) {
        m.checkpoint = pass;
        zs_ctx_reset(ctx);
        zs_ctx_seed(ctx, 5);
        img = zs_from_data(ctx, NULL, 4, s4);
        zs_tensor_fill_uniform(ctx, img, -1, 1);
        zs_params_zero_grad(&m.params);
        loss = zs_zse_train_loss(ctx, &m, img, NULL);
        ZT_REQUIRE(loss && zs_backward(ctx, loss) == ZS_OK, "step: %s", zs_last_error());
        used[pass] = zs_ctx_arena_used(ctx);
        if (!pass) memcpy(g0, m.params.grad, m.params.numel * sizeof(float));
    }
    ZT_CHECK(!memcmp(g0, m.params.grad, m.params.numel * sizeof(float)), "gradients differ with checkpointing");
    ZT_CHECK(used[1] < used[0], "checkpointing uses less arena (%zu vs %zu)", used[1], used[0]);
    printf("  arena after backward: %zu bytes plain, %zu checkpointed\n", used[0], used[1]);
    free(g0);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

/* EViT keep rate: tokens shrink as intended (SPEC 1.2, without the release bug) */
static void test_zse_evit(void) {
    zs_zse_config c = tiny_config();
    zs_zse m;
    zs_ctx *ctx = zs_ctx_create(NULL);
    zs_tensor *img, *sa;
    int64_t s4[4] = {2, 3, 64, 64};
    c.keep_rate[0] = 0.5f; /* 16 patches -> 8 kept after block 0 */
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 9) == ZS_OK, "init");
    zs_set_grad_enabled(ctx, 0);
    img = zs_from_data(ctx, NULL, 4, s4);
    zs_tensor_fill_uniform(ctx, img, -1, 1);
    sa = zs_zse_sa(ctx, &m, img);
    ZT_REQUIRE(sa, "sa: %s", zs_last_error());
    ZT_CHECK(sa->shape[0] == 2 && sa->shape[1] == 9 && sa->shape[2] == 32, "tokens after EViT: %lld", (long long)sa->shape[1]);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_zse_parity_tiny);
    ZT_RUN(test_zse_cached_scores);
    ZT_RUN(test_zse_two_stage);
    ZT_RUN(test_zse_config);
    ZT_RUN(test_zse_weights_roundtrip);
    ZT_RUN(test_zse_strict_load);
    ZT_RUN(test_zse_evit);
    ZT_RUN(test_zse_checkpoint);
    return zt_finish();
}
