/* Explainability ([impl:explain], issue 7, SPEC 1.7): the anchor cosine map
   against a direct computation, CA / SA attention maps, patch and anchor
   regions (raw-reshape quirk) on a non-default grid, the argmax pairs of a
   hand-made map and where they are drawn, the synthesis (exact patches
   without blending), determinism (two runs, and a fixed hash of a rendered
   hand-made scene: rendering is integer-only), bad inputs, a PNG round trip
   with stb_image. Tiny random models: every test runs in well under a second. */
#include "zt_stb.h" /* before zsesbir.h */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

/* tiny model: 64 px, patch 16 (grid 4, 16 patches, 2x2 anchors), d 32 */
static zs_zse_config tiny(void) {
    zs_zse_config c = zs_zse_config_tiny();
    c.dropout = 0.1f; /* compute must switch it off */
    return c;
}

/* normalised random image [3,S,S] in [-1,1) */
static float *rand_image(int S, unsigned long long seed) {
    float *x = (float *)malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
    if (x) zt_fill(x, 3LL * S * S, seed, 1.0f);
    return x;
}

static uint64_t image_hash(const zs_image *im) {
    uint64_t h = zs_hash_bytes(&im->w, sizeof im->w, 0);
    h = zs_hash_bytes(&im->h, sizeof im->h, h);
    return zs_hash_bytes(im->rgb, (size_t)im->w * (size_t)im->h * 3, h);
}

/* 8-bit pattern image: distinct colour per pixel position and seed */
static void pattern_image(zs_image *im, int W, int seed) {
    int x, y;
    if (zs_image_alloc(im, W, W) != ZS_OK) return;
    for (y = 0; y < W; y++)
        for (x = 0; x < W; x++) {
            unsigned char *p = im->rgb + ((size_t)y * (size_t)W + (size_t)x) * 3;
            p[0] = (unsigned char)(x * 5 + seed);
            p[1] = (unsigned char)(y * 7 + 3 * seed);
            p[2] = (unsigned char)((x ^ y) * 3 + seed * seed);
        }
}

/* ---- model outputs ---------------------------------------------------------- */

static void test_explain_anchor_map(void) {
    zs_zse_config c = tiny();
    zs_zse m;
    zs_explain e;
    zs_ctx *ctx = zs_ctx_create(NULL);
    float *sk = rand_image(64, 1), *ph = rand_image(64, 2);
    int64_t s4[4] = {1, 3, 64, 64};
    zs_tensor *xs, *xp, *ss, *sp, *so, *po, *cos, *score;
    int i, n;
    ZT_REQUIRE(ctx && sk && ph, "setup");
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 7) == ZS_OK, "init: %s", zs_last_error());
    zs_set_training(ctx, 1); /* compute must not be affected by training mode */
    ZT_REQUIRE(zs_explain_compute(ctx, &m, sk, ph, &e) == ZS_OK, "compute: %s", zs_last_error());
    ZT_CHECK(e.grid == 4 && e.patches == 16 && e.tokens == 17 && e.anchors == 4 && e.anchor_grid == 2 && e.dim == 32, "sizes");
    ZT_CHECK(e.anchors_whole == 1, "d 32 >= N 16: every anchor reads the whole image");
    /* direct: SA, zs_zse_relation with its cosine map, CA outputs */
    zs_set_training(ctx, 0);
    zs_set_grad_enabled(ctx, 0);
    xs = zs_from_data(ctx, sk, 4, s4);
    xp = zs_from_data(ctx, ph, 4, s4);
    ss = zs_zse_sa(ctx, &m, xs);
    sp = zs_zse_sa(ctx, &m, xp);
    score = zs_zse_relation(ctx, &m, ss, sp, &cos);
    ZT_REQUIRE(score && cos && zs_zse_ca(ctx, &m, ss, sp, &so, &po) == ZS_OK, "direct: %s", zs_last_error());
    ZT_CHECK(cos->shape[0] == 1 && cos->shape[1] == 16, "direct map shape");
    for (i = 0; i < 16; i++)
        ZT_CHECK(fabsf(e.anchor_cos[i] - ((float *)cos->data)[i]) <= 1e-5f, "anchor cos %d: %g vs %g", i, (double)e.anchor_cos[i],
                 (double)((float *)cos->data)[i]);
    ZT_CHECK(fabsf(e.rn_score - ((float *)score->data)[0]) <= 1e-6f, "rn %g vs %g", (double)e.rn_score, (double)((float *)score->data)[0]);
    {
        const float *a = (const float *)ss->data, *b = (const float *)sp->data;
        double na = 0, nb = 0, d = 0;
        for (i = 0; i < 32; i++) { na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
        for (i = 0; i < 32; i++) { double t = a[i] / sqrt(na) - b[i] / sqrt(nb); d += t * t; }
        ZT_CHECK(fabs(e.ret_dist - sqrt(d)) <= 1e-5, "ret %g vs %g", (double)e.ret_dist, sqrt(d));
    }
    n = 16 * 32;
    for (i = 0; i < n; i++) {
        ZT_CHECK(fabsf(e.tok_sk[i] - ((float *)so->data)[32 + i]) <= 1e-5f, "sketch CA token value %d", i);
        ZT_CHECK(fabsf(e.tok_ph[i] - ((float *)po->data)[32 + i]) <= 1e-5f, "photo CA token value %d", i);
    }
    zs_explain_free(&e);
    ZT_CHECK(e.mem_ == NULL && e.anchor_cos == NULL, "free zeroes");
    zs_explain_free(&e); /* twice is fine */
    free(sk); free(ph);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

static void test_explain_attention_sums(void) {
    zs_zse_config c = tiny();
    zs_zse m;
    zs_explain e;
    zs_ctx *ctx = zs_ctx_create(NULL);
    float *sk = rand_image(64, 3), *ph = rand_image(64, 4), map[256], heat[16];
    int h, i, j, T = 17;
    ZT_REQUIRE(ctx && sk && ph, "setup");
    c.ca_layers = 2; /* the last layer's maps are kept */
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 9) == ZS_OK, "init: %s", zs_last_error());
    ZT_REQUIRE(zs_explain_compute(ctx, &m, sk, ph, &e) == ZS_OK, "compute: %s", zs_last_error());
    for (h = 0; h < e.ca_heads; h++)
        for (i = 0; i < T; i++) {
            double a = 0, b = 0;
            for (j = 0; j < T; j++) {
                float u = e.ca_sk2ph[(h * T + i) * T + j], v = e.ca_ph2sk[(h * T + i) * T + j];
                ZT_CHECK(u >= 0 && v >= 0, "probabilities are >= 0");
                a += u;
                b += v;
            }
            ZT_CHECK(fabs(a - 1) < 1e-5 && fabs(b - 1) < 1e-5, "CA head %d row %d sums %g %g", h, i, a, b);
        }
    for (h = 0; h < e.heads; h++) {
        double a = 0, b = 0;
        for (j = 0; j < T; j++) { a += e.cls_attn_sk[h * T + j]; b += e.cls_attn_ph[h * T + j]; }
        ZT_CHECK(fabs(a - 1) < 1e-5 && fabs(b - 1) < 1e-5, "cls attention head %d sums %g %g", h, a, b);
    }
    /* the maps of the three kinds, the heat kinds that read e */
    ZT_REQUIRE(zs_explain_patch_map(&e, ZS_EXPLAIN_MAP_ATTN, map) == ZS_OK, "attn map");
    for (i = 0; i < 16; i++) {
        double s = 0;
        for (j = 0; j < 16; j++) s += map[i * 16 + j];
        ZT_CHECK(s > 0 && s <= 1 + 1e-5, "attn map row %d sums %g (cls column dropped)", i, s);
    }
    ZT_REQUIRE(zs_explain_patch_map(&e, ZS_EXPLAIN_MAP_COS, map) == ZS_OK, "cos map");
    {
        /* plain cosine of patch tokens 3 (sketch) and 5 (photo) by hand */
        double d = 0, na = 0, nb = 0;
        for (j = 0; j < 32; j++) {
            d += (double)e.tok_sk[3 * 32 + j] * e.tok_ph[5 * 32 + j];
            na += (double)e.tok_sk[3 * 32 + j] * e.tok_sk[3 * 32 + j];
            nb += (double)e.tok_ph[5 * 32 + j] * e.tok_ph[5 * 32 + j];
        }
        ZT_CHECK(fabs(map[3 * 16 + 5] - d / sqrt(na * nb)) < 1e-5, "cos map value");
    }
    ZT_REQUIRE(zs_explain_patch_map(&e, ZS_EXPLAIN_MAP_CENTRED, map) == ZS_OK, "centred map");
    for (i = 0; i < 256; i++) ZT_CHECK(map[i] >= -1.00001f && map[i] <= 1.00001f, "centred cosine in [-1,1]");
    ZT_REQUIRE(zs_explain_heat(NULL, NULL, NULL, NULL, &e, NULL, ZS_EXPLAIN_HEAT_CLS, heat) == ZS_OK, "cls heat");
    {
        double s = 0;
        for (j = 0; j < 16; j++) s += heat[j];
        ZT_CHECK(s > 0 && s < 1 + 1e-5, "cls heat = patch part of the cls attention, %g", s);
    }
    ZT_REQUIRE(zs_explain_heat(NULL, NULL, NULL, NULL, &e, NULL, ZS_EXPLAIN_HEAT_ATTN, heat) == ZS_OK, "attn heat");
    ZT_REQUIRE(zs_explain_heat(NULL, NULL, NULL, NULL, &e, map, ZS_EXPLAIN_HEAT_MATCH, heat) == ZS_OK, "match heat");
    for (j = 0; j < 16; j++) {
        float b = map[j];
        for (i = 1; i < 16; i++) b = map[i * 16 + j] > b ? map[i * 16 + j] : b;
        ZT_CHECK(heat[j] == b, "match heat = column max");
    }
    zs_explain_free(&e);
    free(sk); free(ph);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

/* gradient x input heat: its sum is the derivative of the target along the
   photo itself, d/dt f(t * photo) at t = 1 (checked by central differences) */
static void test_explain_grad_heat(void) {
    zs_zse_config c = tiny();
    zs_zse m;
    zs_explain e;
    zs_ctx *ctx = zs_ctx_create(NULL);
    float *sk = rand_image(64, 5), *ph = rand_image(64, 6), *phs = rand_image(64, 6), heat[16];
    double f[2], sum = 0, fd;
    int k, i, kind;
    ZT_REQUIRE(ctx && sk && ph && phs, "setup");
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 13) == ZS_OK, "init: %s", zs_last_error());
    for (kind = 0; kind < 2; kind++) {
        ZT_REQUIRE(zs_explain_heat(ctx, &m, sk, ph, NULL, NULL, kind ? ZS_EXPLAIN_HEAT_RN : ZS_EXPLAIN_HEAT_RET, heat) == ZS_OK,
                   "heat: %s", zs_last_error());
        for (sum = 0, i = 0; i < 16; i++) sum += heat[i];
        for (k = 0; k < 2; k++) {
            float t = k ? 1.01f : 0.99f;
            for (i = 0; i < 3 * 64 * 64; i++) phs[i] = ph[i] * t;
            ZT_REQUIRE(zs_explain_compute(ctx, &m, sk, phs, &e) == ZS_OK, "compute");
            /* ret: cosine = 1 - dist^2 / 2 */
            f[k] = kind ? e.rn_score : 1.0 - 0.5 * (double)e.ret_dist * e.ret_dist;
            zs_explain_free(&e);
        }
        fd = (f[1] - f[0]) / 0.02;
        ZT_CHECK(fabs(sum - fd) <= 0.05 * fabs(fd) + 2e-4, "kind %d: sum of grad x input %g vs finite difference %g", kind, sum, fd);
    }
    ZT_CHECK(zs_ctx_status(ctx) == ZS_OK, "context clean");
    free(sk); free(ph); free(phs);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

/* ---- regions ----------------------------------------------------------------- */

/* 96 px, patch 16: grid 6, 36 patches, 3x3 anchors. With d >= 36 every anchor
   reads every patch; with d = 16 < 36 an anchor reads a subset, checked
   against the library's own raw reshape of a tensor whose token n holds n. */
static void test_explain_regions(void) {
    zs_zse_config c = zs_zse_config_tiny();
    zs_ctx *ctx = zs_ctx_create(NULL);
    unsigned char mask[36];
    int box[4], p, a, n, dim;
    c.img_size = 96;
    for (p = 0; p < 36; p++) {
        ZT_REQUIRE(zs_explain_patch_box(&c, p, box) == ZS_OK, "box %d: %s", p, zs_last_error());
        ZT_CHECK(box[0] == (p % 6) * 16 && box[1] == (p / 6) * 16 && box[2] == box[0] + 16 && box[3] == box[1] + 16, "patch %d box", p);
    }
    ZT_CHECK(zs_explain_patch_box(&c, 36, box) == ZS_ERR_ARG && zs_explain_patch_box(&c, -1, box) == ZS_ERR_ARG, "patch range");
    c.dim = 48;
    for (a = 0; a < 9; a++) {
        n = zs_explain_anchor_region(&c, a, mask, box);
        ZT_CHECK(n == 36 && box[0] == 0 && box[1] == 0 && box[2] == 96 && box[3] == 96, "d 48: anchor %d reads %d patches", a, n);
    }
    ZT_CHECK(zs_explain_anchor_region(&c, 9, mask, box) == ZS_ERR_ARG, "anchor range");
    for (dim = 16; dim <= 24; dim += 8) {
        int64_t s4[4] = {1, 36, 0, 0}, i;
        zs_tensor *t, *v;
        c.dim = dim;
        s4[2] = dim;
        t = zs_tensor_new(ctx, ZS_F32, 3, s4);
        ZT_REQUIRE(t, "tensor");
        for (i = 0; i < 36 * dim; i++) ((float *)t->data)[i] = (float)(i / dim); /* token index */
        v = zs_reshape4(ctx, t, 1, dim, 6, 6);                                  /* the head's raw view */
        ZT_REQUIRE(v, "reshape");
        for (a = 0; a < 9; a++) {
            unsigned char want[36];
            int ch, dy, dx, cnt = 0, ay = a / 3, ax = a % 3;
            memset(want, 0, sizeof want);
            for (ch = 0; ch < dim; ch++)
                for (dy = 0; dy < 2; dy++)
                    for (dx = 0; dx < 2; dx++) want[(int)zs_get(v, ((int64_t)ch * 6 + 2 * ay + dy) * 6 + 2 * ax + dx)] = 1;
            for (p = 0; p < 36; p++) cnt += want[p];
            n = zs_explain_anchor_region(&c, a, mask, box);
            ZT_CHECK(n == cnt && !memcmp(mask, want, 36), "d %d anchor %d: %d patches, expected %d", dim, a, n, cnt);
            ZT_CHECK(dim != 16 || n < 36, "d 16 < 36 patches: anchor %d cannot read them all", a);
        }
    }
    zs_ctx_free(ctx);
}

/* ---- pairs and pictures ----------------------------------------------------------- */

static int pixel_is(const zs_image *im, int x, int y, const unsigned char c[3]) {
    return !memcmp(im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3, c, 3);
}

/* hand-made map: the drawn pairs are the argmax pairs, strongest first */
static void test_explain_pairs(void) {
    /* 4 sketch cells x 4 photo cells (grid 2) */
    const float map[16] = {0.1f, 0.9f, 0.2f, 0.0f,  /* row 0 -> 1 (0.9) */
                           0.5f, 0.5f, 0.3f, 0.4f,  /* row 1 -> 0 (0.5, first of a tie) */
                           0.0f, 0.1f, 0.2f, 0.95f, /* row 2 -> 3 (0.95) */
                           NAN, 0.7f, NAN, 0.6f};   /* row 3 -> 1 (0.7, NaN skipped) */
    const unsigned char mask[4] = {1, 0, 1, 1};
    static const unsigned char red[3] = {230, 25, 75}, green[3] = {60, 180, 75}, blue[3] = {0, 130, 200};
    zs_explain_pair pr[4];
    zs_explain_view v;
    zs_image sk, ph, out;
    int n;
    n = zs_explain_top_pairs(map, 4, 4, NULL, 4, pr);
    ZT_REQUIRE(n == 4, "4 pairs, got %d (%s)", n, zs_last_error());
    ZT_CHECK(pr[0].sk == 2 && pr[0].ph == 3 && pr[1].sk == 0 && pr[1].ph == 1 && pr[2].sk == 3 && pr[2].ph == 1 && pr[3].sk == 1 &&
                 pr[3].ph == 0,
             "order (%d,%d) (%d,%d) (%d,%d) (%d,%d)", pr[0].sk, pr[0].ph, pr[1].sk, pr[1].ph, pr[2].sk, pr[2].ph, pr[3].sk, pr[3].ph);
    ZT_CHECK(pr[0].value == 0.95f && pr[3].value == 0.5f, "values");
    n = zs_explain_top_pairs(map, 4, 4, mask, 4, pr);
    ZT_CHECK(n == 3 && pr[0].sk == 2 && pr[1].sk == 0 && pr[2].sk == 3, "masked: %d pairs", n);
    n = zs_explain_top_pairs(map, 4, 4, NULL, 2, pr);
    ZT_CHECK(n == 2 && pr[0].sk == 2 && pr[1].sk == 0, "top 2");
    /* drawn: frames of pair k in palette colour k at the cells (1 px frames below 160 px) */
    pattern_image(&sk, 64, 1);
    pattern_image(&ph, 64, 2);
    ZT_REQUIRE(sk.rgb && ph.rgb, "images");
    n = zs_explain_top_pairs(map, 4, 4, NULL, 3, pr);
    memset(&v, 0, sizeof v);
    v.grid = 2;
    v.pairs = pr;
    v.n_pairs = n;
    ZT_REQUIRE(zs_explain_render(&out, &sk, &ph, &v) == ZS_OK, "render: %s", zs_last_error());
    {
        /* layout: pad 8, title 14 -> panels at y 22; sketch x 8, photo x 8 + 64 + max(64/6, 8) = 82 */
        const int Y = 22, XS = 8, XP = 82;
        /* pair 0: sketch cell 2 (x 0, y 1), photo cell 3 (x 1, y 1): corner pixels of the frames */
        ZT_CHECK(pixel_is(&out, XS + 0, Y + 32 + 31, red) && pixel_is(&out, XP + 63, Y + 63, red), "pair 0 frames");
        /* pair 1: sketch cell 0, photo cell 1 (top-right corner, not covered by later lines) */
        ZT_CHECK(pixel_is(&out, XS + 0, Y + 0, green) && pixel_is(&out, XP + 63, Y + 0, green), "pair 1 frames");
        /* pair 2: sketch cell 3 (top-right corner of that cell) */
        ZT_CHECK(pixel_is(&out, XS + 63, Y + 32, blue), "pair 2 frame");
        /* untouched cell interior: the sketch pattern (sketch cell 1 is not a pair source) */
        ZT_CHECK(!memcmp(out.rgb + ((size_t)(Y + 10) * (size_t)out.w + (size_t)(XS + 40)) * 3, sk.rgb + ((size_t)10 * 64 + 40) * 3, 3),
                 "sketch pixels copied");
    }
    zs_image_free(&out);
    zs_image_free(&sk);
    zs_image_free(&ph);
}

/* integer-only rendering: the same bytes on every build (SIMD, scalar,
   C++, -ffast-math); a fixed hash */
static void test_explain_render_hash(void) {
    zs_image sk, ph, out, out2;
    zs_explain_view v;
    zs_explain_pair pr[3];
    float heat[16];
    int i;
    uint64_t h;
    pattern_image(&sk, 64, 3);
    pattern_image(&ph, 64, 4);
    ZT_REQUIRE(sk.rgb && ph.rgb, "images");
    for (i = 0; i < 16; i++) heat[i] = (float)((i * 7) % 16);
    pr[0].sk = 0; pr[0].ph = 15; pr[0].value = 1;
    pr[1].sk = 5; pr[1].ph = 6; pr[1].value = 0.5f;
    pr[2].sk = 12; pr[2].ph = 3; pr[2].value = 0.25f;
    memset(&v, 0, sizeof v);
    v.grid = 4;
    v.pairs = pr;
    v.n_pairs = 3;
    v.heat = heat;
    v.title[0] = "sketch";
    v.title[1] = "photo";
    v.title[2] = "heat";
    v.caption[0] = "RN score 0.5000";
    v.caption[1] = "Lower & UPPER: {}[]()<>?!~|";
    ZT_REQUIRE(zs_explain_render(&out, &sk, &ph, &v) == ZS_OK, "render: %s", zs_last_error());
    ZT_REQUIRE(zs_explain_render(&out2, &sk, &ph, &v) == ZS_OK, "render 2");
    ZT_CHECK(out.w == out2.w && out.h == out2.h && !memcmp(out.rgb, out2.rgb, (size_t)out.w * out.h * 3), "two renders identical");
    h = image_hash(&out);
    ZT_CHECK(out.w == 234 && out.h == 157, "size %dx%d", out.w, out.h);
    ZT_CHECK(h == 0xd062648b54dd2114ULL, "render hash %016llx", (unsigned long long)h);
    zs_image_free(&out);
    zs_image_free(&out2);
    zs_image_free(&sk);
    zs_image_free(&ph);
}

/* the whole pipeline twice on one model: identical pixels */
static void test_explain_determinism(void) {
    zs_zse_config c = tiny();
    zs_zse m;
    zs_ctx *ctx = zs_ctx_create(NULL);
    float *sk = rand_image(64, 21), *ph = rand_image(64, 22);
    uint64_t hr[2], hs[2], hb[2];
    int run;
    ZT_REQUIRE(ctx && sk && ph, "setup");
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 17) == ZS_OK, "init");
    for (run = 0; run < 2; run++) {
        zs_explain e;
        zs_explain_pair pr[5];
        zs_explain_view v;
        zs_image skp, php, out, syn, synb;
        float map[256], heat[16];
        int n;
        pattern_image(&skp, 64, 5);
        pattern_image(&php, 64, 6);
        ZT_REQUIRE(zs_explain_compute(ctx, &m, sk, ph, &e) == ZS_OK, "compute: %s", zs_last_error());
        ZT_REQUIRE(zs_explain_patch_map(&e, ZS_EXPLAIN_MAP_CENTRED, map) == ZS_OK, "map");
        ZT_REQUIRE(zs_explain_heat(ctx, &m, sk, ph, &e, map, ZS_EXPLAIN_HEAT_RET, heat) == ZS_OK, "heat: %s", zs_last_error());
        n = zs_explain_top_pairs(map, 16, 16, NULL, 5, pr);
        ZT_REQUIRE(n == 5, "pairs");
        memset(&v, 0, sizeof v);
        v.grid = 4; v.pairs = pr; v.n_pairs = n; v.heat = heat; v.caption[0] = "x";
        ZT_REQUIRE(zs_explain_render(&out, &skp, &php, &v) == ZS_OK, "render: %s", zs_last_error());
        ZT_REQUIRE(zs_explain_synthesize(&syn, &php, 4, map, 0, NULL) == ZS_OK, "synth: %s", zs_last_error());
        ZT_REQUIRE(zs_explain_synthesize(&synb, &php, 4, map, 4, NULL) == ZS_OK, "synth blend: %s", zs_last_error());
        hr[run] = image_hash(&out);
        hs[run] = image_hash(&syn);
        hb[run] = image_hash(&synb);
        zs_image_free(&out); zs_image_free(&syn); zs_image_free(&synb);
        zs_image_free(&skp); zs_image_free(&php);
        zs_explain_free(&e);
    }
    ZT_CHECK(hr[0] == hr[1] && hs[0] == hs[1] && hb[0] == hb[1], "runs differ");
    ZT_CHECK(hs[0] != hb[0], "blending changes the synthesis");
    free(sk); free(ph);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
}

/* every output cell is exactly the photo cell its row prefers; with blending
   the cell interiors are unchanged and the borders mix */
static void test_explain_synth(void) {
    enum { W = 48, G = 4, P = W / G, N = G * G };
    float map[N * N];
    int match[N], match2[N], i, j, x, y, found;
    zs_image ph, out, outb;
    pattern_image(&ph, W, 9);
    ZT_REQUIRE(ph.rgb, "photo");
    zt_fill(map, N * N, 31, 1.0f);
    map[5 * N + 2] = NAN; /* NaN never wins */
    for (j = 0; j < N; j++) map[7 * N + j] = NAN; /* all NaN: the cell keeps itself */
    ZT_REQUIRE(zs_explain_synthesize(&out, &ph, G, map, 0, match) == ZS_OK, "synth: %s", zs_last_error());
    ZT_CHECK(out.w == W && out.h == W, "size");
    ZT_CHECK(match[7] == 7, "all-NaN row keeps its cell");
    for (i = 0; i < N; i++) {
        int best = 0;
        if (i == 7) continue;
        for (j = 1; j < N; j++)
            if (map[i * N + j] > map[i * N + best] || zt_isnan(map[i * N + best])) best = j;
        ZT_CHECK(match[i] == best, "cell %d: match %d, argmax %d", i, match[i], best);
    }
    for (i = 0; i < N; i++) {
        /* the output cell equals SOME photo cell exactly, and that is match[i] */
        int k;
        for (found = -1, k = 0; k < N && found < 0; k++) {
            int same = 1;
            for (y = 0; y < P && same; y++)
                same = !memcmp(out.rgb + ((size_t)((i / G) * P + y) * W + (size_t)(i % G) * P) * 3,
                               ph.rgb + ((size_t)((k / G) * P + y) * W + (size_t)(k % G) * P) * 3, (size_t)P * 3);
            if (same) found = k;
        }
        ZT_CHECK(found == match[i], "output cell %d: equals photo cell %d, match %d", i, found, match[i]);
    }
    ZT_REQUIRE(zs_explain_synthesize(&outb, &ph, G, map, 3, match2) == ZS_OK, "blend: %s", zs_last_error());
    ZT_CHECK(!memcmp(match, match2, sizeof match), "same matches");
    {
        int inner_same = 1, border_diff = 0;
        for (y = 0; y < W; y++)
            for (x = 0; x < W; x++) {
                int in = x % P >= 3 && x % P < P - 3 && y % P >= 3 && y % P < P - 3;
                int same = !memcmp(out.rgb + ((size_t)y * W + x) * 3, outb.rgb + ((size_t)y * W + x) * 3, 3);
                if (in && !same) inner_same = 0;
                if (!in && !same) border_diff = 1;
            }
        ZT_CHECK(inner_same, "cell interiors are not blended");
        ZT_CHECK(border_diff, "borders are blended");
    }
    zs_image_free(&out);
    zs_image_free(&outb);
    zs_image_free(&ph);
}

/* ---- bad inputs -------------------------------------------------------------------- */

static void test_explain_bad_inputs(void) {
    zs_zse_config c = tiny(), c2 = tiny();
    zs_zse m, m2;
    zs_explain e;
    zs_ctx *ctx = zs_ctx_create(NULL);
    float *sk = rand_image(64, 41), *ph = rand_image(64, 42), map[256], heat[64];
    zs_explain_pair pr[20];
    zs_explain_view v;
    zs_image a, b, small, rect, out;
    unsigned char mask[16];
    int box[4];
    ZT_REQUIRE(ctx && sk && ph, "setup");
    ZT_REQUIRE(zs_zse_init(&m, &c, 0, 1) == ZS_OK, "init");
    c2.img_size = 128; /* another grid */
    ZT_REQUIRE(zs_zse_init(&m2, &c2, 0, 1) == ZS_OK, "init 2");
    ZT_CHECK(zs_explain_compute(NULL, &m, sk, ph, &e) == ZS_ERR_ARG, "NULL ctx");
    ZT_CHECK(zs_explain_compute(ctx, NULL, sk, ph, &e) == ZS_ERR_ARG, "NULL model");
    ZT_CHECK(zs_explain_compute(ctx, &m, NULL, ph, &e) == ZS_ERR_ARG && e.mem_ == NULL, "NULL sketch");
    ZT_CHECK(zs_explain_compute(ctx, &m, sk, ph, NULL) == ZS_ERR_ARG, "NULL out");
    ZT_CHECK(zs_explain_patch_map(NULL, ZS_EXPLAIN_MAP_COS, map) == ZS_ERR_ARG, "map of NULL");
    ZT_REQUIRE(zs_explain_compute(ctx, &m, sk, ph, &e) == ZS_OK, "compute");
    ZT_CHECK(zs_explain_patch_map(&e, (zs_explain_map_kind)7, map) == ZS_ERR_ARG, "bad map kind");
    ZT_CHECK(zs_explain_heat(NULL, NULL, NULL, NULL, &e, map, (zs_explain_heat_kind)9, heat) == ZS_ERR_ARG, "bad heat kind");
    ZT_CHECK(zs_explain_heat(NULL, NULL, NULL, NULL, NULL, map, ZS_EXPLAIN_HEAT_ATTN, heat) == ZS_ERR_ARG, "attn heat without e");
    ZT_CHECK(zs_explain_heat(NULL, NULL, NULL, NULL, &e, NULL, ZS_EXPLAIN_HEAT_MATCH, heat) == ZS_ERR_ARG, "match heat without map");
    ZT_CHECK(zs_explain_heat(ctx, &m, NULL, ph, &e, NULL, ZS_EXPLAIN_HEAT_RET, heat) == ZS_ERR_ARG, "ret heat without sketch");
    ZT_CHECK(zs_explain_heat(ctx, &m2, sk, ph, &e, NULL, ZS_EXPLAIN_HEAT_RET, heat) == ZS_ERR_SHAPE &&
                 strstr(zs_last_error(), "not of this model"),
             "explanation of another model: %s", zs_last_error());
    zs_explain_free(&e);
    {
        zs_zse empty;
        memset(&empty, 0, sizeof empty);
        ZT_CHECK(zs_explain_compute(ctx, &empty, sk, ph, &e) == ZS_ERR_STATE, "model without weights");
        ZT_REQUIRE(zs_explain_compute(ctx, &m, sk, ph, &e) == ZS_OK, "compute again");
    }
    zs_explain_free(&e);
    m.cfg.keep_rate[0] = 0.5f;
    ZT_CHECK(zs_explain_compute(ctx, &m, sk, ph, &e) == ZS_ERR_UNSUPPORTED, "EViT");
    m.cfg.keep_rate[0] = 1.0f;
    ZT_CHECK(zs_ctx_status(ctx) == ZS_OK, "no sticky error");
    /* --top 0 / too large */
    ZT_REQUIRE(zs_explain_compute(ctx, &m, sk, ph, &e) == ZS_OK, "compute");
    ZT_REQUIRE(zs_explain_patch_map(&e, ZS_EXPLAIN_MAP_CENTRED, map) == ZS_OK, "map");
    ZT_CHECK(zs_explain_top_pairs(map, 16, 16, NULL, 0, pr) == ZS_ERR_ARG, "top 0");
    ZT_CHECK(zs_explain_top_pairs(map, 16, 16, NULL, 17, pr) == ZS_ERR_ARG && strstr(zs_last_error(), "1..16"), "top 17: %s", zs_last_error());
    ZT_CHECK(zs_explain_top_pairs(NULL, 16, 16, NULL, 4, pr) == ZS_ERR_ARG, "NULL map");
    ZT_CHECK(zs_explain_top_pairs(map, 0, 16, NULL, 1, pr) == ZS_ERR_ARG, "no rows");
    memset(mask, 0, sizeof mask);
    ZT_CHECK(zs_explain_top_pairs(map, 16, 16, mask, 4, pr) == 0, "no eligible rows: 0 pairs");
    /* images of the wrong size / mismatched grids */
    pattern_image(&a, 64, 1);
    pattern_image(&b, 64, 2);
    pattern_image(&small, 48, 3);
    ZT_REQUIRE(zs_image_alloc(&rect, 64, 32) == ZS_OK, "rect");
    memset(rect.rgb, 200, 64 * 32 * 3);
    memset(&v, 0, sizeof v);
    v.grid = 4;
    ZT_CHECK(zs_explain_render(&out, &a, &small, &v) == ZS_ERR_SHAPE && out.rgb == NULL, "panels of two sizes");
    ZT_CHECK(zs_explain_render(&out, &rect, &rect, &v) == ZS_ERR_SHAPE, "non-square panels");
    ZT_CHECK(zs_explain_render(&out, NULL, &b, &v) == ZS_ERR_ARG, "NULL sketch image");
    ZT_CHECK(zs_explain_render(&out, &a, &b, NULL) == ZS_ERR_ARG, "NULL view");
    v.grid = 65;
    ZT_CHECK(zs_explain_render(&out, &a, &b, &v) == ZS_ERR_ARG, "grid larger than the panel");
    v.grid = 4;
    pr[0].sk = 16; pr[0].ph = 0;
    v.pairs = pr; v.n_pairs = 1;
    ZT_CHECK(zs_explain_render(&out, &a, &b, &v) == ZS_ERR_ARG && strstr(zs_last_error(), "outside"), "pair outside the grid");
    v.n_pairs = 300;
    ZT_CHECK(zs_explain_render(&out, &a, &b, &v) == ZS_ERR_ARG, "too many pairs");
    ZT_CHECK(zs_explain_synthesize(&out, &rect, 4, map, 0, NULL) == ZS_ERR_SHAPE, "synth: non-square photo");
    ZT_CHECK(zs_explain_synthesize(&out, &a, 5, map, 0, NULL) == ZS_ERR_SHAPE, "synth: 64 px is not a multiple of grid 5");
    ZT_CHECK(zs_explain_synthesize(&out, &a, 4, map, 9, NULL) == ZS_ERR_ARG, "synth: blend over half a cell");
    ZT_CHECK(zs_explain_synthesize(&out, &a, 4, NULL, 0, NULL) == ZS_ERR_ARG, "synth: NULL map");
    ZT_CHECK(zs_explain_ink_mask(&a, 0, mask) == ZS_ERR_ARG && zs_explain_ink_mask(&a, 4, NULL) == ZS_ERR_ARG, "ink mask args");
    ZT_CHECK(zs_explain_anchor_region(NULL, 0, NULL, NULL) == ZS_ERR_ARG, "anchor region of NULL config");
    c2.patch = 8;
    ZT_CHECK(zs_explain_patch_box(&c2, 0, box) == ZS_ERR_ARG, "invalid config (patch 8)");
    ZT_CHECK(zs_explain_text(NULL, 0, 0, "x", 1, mask) == 0, "text on NULL");
    zs_image_free(&a); zs_image_free(&b); zs_image_free(&small); zs_image_free(&rect);
    zs_explain_free(&e);
    free(sk); free(ph);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    zs_zse_free(&m2);
}

/* ink mask of a drawn sketch: only the cells the stroke passes */
static void test_explain_ink(void) {
    zs_image im;
    unsigned char mask[16];
    int x, n;
    ZT_REQUIRE(zs_image_alloc(&im, 64, 64) == ZS_OK, "alloc");
    memset(im.rgb, 255, 64 * 64 * 3);
    for (x = 0; x < 64; x++) memset(im.rgb + ((size_t)20 * 64 + x) * 3, 0, 3); /* horizontal line in cell row 1 */
    n = zs_explain_ink_mask(&im, 4, mask);
    ZT_CHECK(n == 4, "4 ink cells, got %d", n);
    for (x = 0; x < 16; x++) ZT_CHECK(mask[x] == (x / 4 == 1), "cell %d", x);
    zs_image_free(&im);
}

static void test_explain_png(void) {
#ifdef ZSESBIR_STB_IMAGE
    char path[512];
    const char *d = getenv("TMPDIR");
    zs_image sk, ph, out, back;
    zs_explain_view v;
    pattern_image(&sk, 64, 7);
    pattern_image(&ph, 64, 8);
    memset(&v, 0, sizeof v);
    v.grid = 4;
    v.caption[0] = "png";
    snprintf(path, sizeof path, "%s/zs_test_explain_%lx.png", d && *d ? d : "/tmp", (unsigned long)time(NULL) ^ (unsigned long)clock());
    ZT_REQUIRE(zs_explain_render(&out, &sk, &ph, &v) == ZS_OK, "render");
    ZT_REQUIRE(zs_image_save_png(path, &out) == ZS_OK, "save: %s", zs_last_error());
    ZT_REQUIRE(zs_image_load(path, &back) == ZS_OK, "load: %s", zs_last_error());
    ZT_CHECK(back.w == out.w && back.h == out.h && !memcmp(back.rgb, out.rgb, (size_t)out.w * out.h * 3), "PNG round trip");
    remove(path);
    zs_image_free(&back); zs_image_free(&out); zs_image_free(&sk); zs_image_free(&ph);
#else
    ZT_SKIP("no stb_image (PNG)");
#endif
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_explain_anchor_map);
    ZT_RUN(test_explain_attention_sums);
    ZT_RUN(test_explain_grad_heat);
    ZT_RUN(test_explain_regions);
    ZT_RUN(test_explain_pairs);
    ZT_RUN(test_explain_render_hash);
    ZT_RUN(test_explain_determinism);
    ZT_RUN(test_explain_synth);
    ZT_RUN(test_explain_bad_inputs);
    ZT_RUN(test_explain_ink);
    ZT_RUN(test_explain_png);
    return zt_finish();
}
