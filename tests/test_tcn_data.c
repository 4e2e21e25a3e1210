/* TCN around the model ([impl:tcn], [impl:index] in zsesbir.h): the paired
   augmentation of SPEC 2.2 (identity, exact flips, a hand-checked 90-degree
   turn and shift, fills, the random draw), the word-vector reader, the config
   text, .zsi index files with a model field and ITQ codes (and version-1
   files still read), and a tiny TCN trained a few steps on real Sketchy
   pairs whose loss must fall (skipped without ../shared/data or stb_image). */
#define ZSESBIR_IMPLEMENTATION
#include "zt_stb.h" /* before zsesbir.h */
#include "../zsesbir.h"
#include "zt.h"

#define DATA "../shared/data"

static unsigned char px(const zs_image *im, int x, int y, int k) { return im->rgb[((size_t)y * (size_t)im->w + (size_t)x) * 3 + (size_t)k]; }

/* w x h image with distinct pixel values */
static int make_image(zs_image *im, int w, int h, int seed) {
    int i;
    if (zs_image_alloc(im, w, h) != ZS_OK) return 0;
    for (i = 0; i < w * h * 3; i++) im->rgb[i] = (unsigned char)((i * 37 + seed * 11 + (i / 3) * 5) % 251);
    return 1;
}

static int same_image(const zs_image *a, const zs_image *b) {
    return a->w == b->w && a->h == b->h && !memcmp(a->rgb, b->rgb, (size_t)a->w * (size_t)a->h * 3);
}

static void test_aug_identity_flip(void) {
    static const unsigned char fill[3] = {1, 2, 3};
    zs_image in, out;
    zs_tcn_aug a = zs_tcn_aug_identity();
    int x, y, k, bad = 0;
    ZT_REQUIRE(make_image(&in, 7, 5, 1), "alloc");
    ZT_REQUIRE(zs_tcn_augment(&out, &in, &a, fill) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(same_image(&in, &out), "identity parameters changed the image");
    zs_image_free(&out);
    a.flip = 1;
    ZT_REQUIRE(zs_tcn_augment(&out, &in, &a, fill) == ZS_OK, "%s", zs_last_error());
    for (y = 0; y < 5; y++)
        for (x = 0; x < 7; x++)
            for (k = 0; k < 3; k++) bad += px(&out, x, y, k) != px(&in, 6 - x, y, k);
    ZT_CHECK(bad == 0, "flip: %d values differ from the mirror image", bad);
    zs_image_free(&out);
    a = zs_tcn_aug_identity();
    a.scale = 0.0f;
    ZT_CHECK(zs_tcn_augment(&out, &in, &a, fill) == ZS_ERR_ARG && !out.rgb, "scale 0 accepted");
    zs_image_free(&in);
}

static void test_aug_rotate_shift(void) {
    static const unsigned char fill[3] = {9, 8, 7};
    zs_image in, out;
    zs_tcn_aug a = zs_tcn_aug_identity();
    int x, y, k, bad = 0;
    ZT_REQUIRE(zs_image_alloc(&in, 5, 5) == ZS_OK, "alloc");
    memset(in.rgb, 255, 5 * 5 * 3);
    /* one red marker right of the centre: a quarter turn counter-clockwise on
       screen carries it to the top middle, (4,2) -> (2,0) */
    in.rgb[(2 * 5 + 4) * 3 + 1] = 0;
    in.rgb[(2 * 5 + 4) * 3 + 2] = 0;
    a.angle = 90.0f;
    ZT_REQUIRE(zs_tcn_augment(&out, &in, &a, fill) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(px(&out, 2, 0, 0) == 255 && px(&out, 2, 0, 1) == 0 && px(&out, 2, 0, 2) == 0, "marker not at (2,0)");
    ZT_CHECK(px(&out, 4, 2, 1) == 255, "marker still at (4,2)");
    zs_image_free(&out);
    zs_image_free(&in);
    /* the whole map on a distinct-valued image: out(X,Y) = in(4-Y, X) */
    ZT_REQUIRE(make_image(&in, 5, 5, 2), "alloc");
    ZT_REQUIRE(zs_tcn_augment(&out, &in, &a, fill) == ZS_OK, "%s", zs_last_error());
    for (y = 0; y < 5; y++)
        for (x = 0; x < 5; x++)
            for (k = 0; k < 3; k++) bad += px(&out, x, y, k) != px(&in, 4 - y, x, k);
    ZT_CHECK(bad == 0, "90 degrees: %d values differ", bad);
    zs_image_free(&out);
    /* shift by (+2, -1): out(x,y) = in(x-2, y+1), the fill where that is outside */
    a = zs_tcn_aug_identity();
    a.tx = 2.0f; a.ty = -1.0f;
    ZT_REQUIRE(zs_tcn_augment(&out, &in, &a, fill) == ZS_OK, "%s", zs_last_error());
    bad = 0;
    for (y = 0; y < 5; y++)
        for (x = 0; x < 5; x++)
            for (k = 0; k < 3; k++) {
                int sx = x - 2, sy = y + 1;
                unsigned char want = sx >= 0 && sy < 5 ? px(&in, sx, sy, k) : fill[k];
                bad += px(&out, x, y, k) != want;
            }
    ZT_CHECK(bad == 0, "shift: %d values differ", bad);
    zs_image_free(&out);
    /* zoom x2 keeps the centre pixel, and its neighbour comes half-way in:
       out(3,2) samples in(2.5, 2) = mean of in(2,2) and in(3,2) */
    a = zs_tcn_aug_identity();
    a.scale = 2.0f;
    ZT_REQUIRE(zs_tcn_augment(&out, &in, &a, fill) == ZS_OK, "%s", zs_last_error());
    for (k = 0; k < 3; k++) {
        int m2 = px(&in, 2, 2, k) + px(&in, 3, 2, k);
        ZT_CHECK(px(&out, 2, 2, k) == px(&in, 2, 2, k), "zoom centre");
        ZT_CHECK(px(&out, 3, 2, k) == (m2 + 1) / 2, "zoom neighbour %d vs %d/2", px(&out, 3, 2, k), m2);
    }
    zs_image_free(&out);
    zs_image_free(&in);
}

static void test_aug_pair_sample(void) {
    zs_image sk, ph, sk2, ph2, o1, o2, o3, o4;
    zs_tcn_aug a, b;
    int i, flips = 0, bad = 0;
    float smin = 9, smax = 0, amin = 99, amax = -99, tmin = 99, tmax = -99;
    ZT_REQUIRE(make_image(&sk, 24, 20, 3) && make_image(&ph, 24, 20, 4), "alloc");
    ZT_REQUIRE(make_image(&sk2, 24, 20, 3) && make_image(&ph2, 24, 20, 4), "alloc");
    a = zs_tcn_aug_sample(7, 3);
    b = zs_tcn_aug_sample(7, 3);
    ZT_CHECK(!memcmp(&a, &b, sizeof a), "the draw is not deterministic");
    b = zs_tcn_aug_sample(7, 4);
    ZT_CHECK(a.scale != b.scale && a.angle != b.angle, "counters 3 and 4 drew the same");
    /* same parameters on two copies: identical outputs */
    a.tx = 30.0f; /* push part of the content out: fills visible */
    ZT_REQUIRE(zs_tcn_augment_pair(&o1, &o2, &sk, &ph, &a) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(zs_tcn_augment_pair(&o3, &o4, &sk2, &ph2, &a) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(same_image(&o1, &o3) && same_image(&o2, &o4), "same parameters, different outputs");
    ZT_CHECK(!same_image(&o1, &sk), "augmentation did nothing");
    /* left columns came from outside: white for the sketch, the ImageNet mean for the photo */
    ZT_CHECK(px(&o1, 0, 10, 0) == 255 && px(&o1, 0, 10, 1) == 255 && px(&o1, 0, 10, 2) == 255, "sketch fill");
    ZT_CHECK(px(&o2, 0, 10, 0) == 124 && px(&o2, 0, 10, 1) == 116 && px(&o2, 0, 10, 2) == 104, "photo fill");
    zs_image_free(&o1); zs_image_free(&o2); zs_image_free(&o3); zs_image_free(&o4);
    zs_image_free(&sk); zs_image_free(&ph); zs_image_free(&sk2); zs_image_free(&ph2);
    for (i = 0; i < 2000; i++) {
        a = zs_tcn_aug_sample(11, (uint64_t)i);
        flips += a.flip;
        if (a.scale < smin) smin = a.scale;
        if (a.scale > smax) smax = a.scale;
        if (a.angle < amin) amin = a.angle;
        if (a.angle > amax) amax = a.angle;
        if (a.tx < tmin) tmin = a.tx;
        if (a.ty > tmax) tmax = a.ty;
        bad += a.flip != 0 && a.flip != 1;
    }
    ZT_CHECK(bad == 0 && flips > 900 && flips < 1100, "flip frequency %d / 2000", flips);
    ZT_CHECK(smin >= 0.7f && smin < 0.71f && smax <= 1.3f && smax > 1.29f, "scale range %g..%g", (double)smin, (double)smax);
    ZT_CHECK(amin >= -30.0f && amin < -29.5f && amax <= 30.0f && amax > 29.5f, "angle range %g..%g", (double)amin, (double)amax);
    ZT_CHECK(tmin >= -10.0f && tmin < -9.8f && tmax <= 10.0f && tmax > 9.8f, "shift range %g..%g", (double)tmin, (double)tmax);
}

static void test_wordvec_reader(void) {
    const char *p = "build/test_tcn_wv.txt";
    const char *names[3] = {"bear (animal)", "cat", "dog"};
    float v[12];
    FILE *f = fopen(p, "w");
    ZT_REQUIRE(f, "write %s", p);
    fputs("dog\t1 2 3\r\ncat\t-0.5 0.25 4e-2\nbear_(animal)\t7 8 9\n", f);
    fclose(f);
    ZT_REQUIRE(zs_tcn_wordvec_load(v, p, names, 3, 3) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(v[0] == 7 && v[2] == 9 && v[3] == -0.5f && v[5] == 0.04f && v[6] == 1 && v[8] == 3, "values %g %g %g %g", v[0], v[3], v[5], v[8]);
    ZT_CHECK(zs_tcn_wordvec_load(v, p, names, 3, 4) == ZS_ERR_FORMAT && strstr(zs_last_error(), "missing"), "short line: %s", zs_last_error());
    ZT_CHECK(zs_tcn_wordvec_load(v, p, names, 3, 2) == ZS_ERR_FORMAT && strstr(zs_last_error(), "more than 2"), "long line: %s", zs_last_error());
    names[1] = "cow";
    ZT_CHECK(zs_tcn_wordvec_load(v, p, names, 3, 3) == ZS_ERR_FORMAT && strstr(zs_last_error(), "\"cow\""), "missing class: %s", zs_last_error());
    f = fopen(p, "w");
    ZT_REQUIRE(f, "write");
    fputs("dog\t1 nan 3\n", f);
    fclose(f);
    names[0] = "dog";
    ZT_CHECK(zs_tcn_wordvec_load(v, p, names, 1, 3) == ZS_ERR_FORMAT, "nan accepted");
    remove(p);
    /* the shared Sketchy vectors: unit length; crab = hermit_crab (README) */
    {
        const char *wp = DATA "/wordvec/sketchy_gwv300.txt";
        const char *nm[3] = {"crab", "hermit_crab", "zebra"};
        float w[900];
        double n0 = 0, n2 = 0;
        int k;
        if (!(f = fopen(wp, "r"))) ZT_SKIP("%s absent", wp);
        fclose(f);
        ZT_REQUIRE(zs_tcn_wordvec_load(w, wp, nm, 3, 300) == ZS_OK, "%s", zs_last_error());
        for (k = 0; k < 300; k++) { n0 += (double)w[k] * w[k]; n2 += (double)w[600 + k] * w[600 + k]; }
        ZT_CHECK(fabs(n0 - 1) < 1e-4 && fabs(n2 - 1) < 1e-4, "norms %g %g", n0, n2);
        ZT_CHECK(!memcmp(w, w + 300, 300 * sizeof(float)), "crab != hermit_crab");
    }
}

static void test_config_text(void) {
    zs_tcn_config c = zs_tcn_config_default();
    char buf[512], small[16];
    ZT_REQUIRE(zs_tcn_config_format(&c, buf, sizeof buf) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(!strcmp(buf, "tcn bottleneck=1 layers=3,4,6,3 stem=64 planes=64,128,256,512 dim=64 classes=100 kd=1000 wv=300 mssbn=0 size=224"), "%s", buf);
    ZT_CHECK(zs_tcn_config_format(&c, small, sizeof small) == ZS_ERR_ARG, "small buffer");
    /* saved files say what they are, and img_size travels with them */
    {
        const char *p = "build/test_tcn_cfg.safetensors";
        zs_tcn m, m2;
        zs_safetensors *st;
        c = zs_tcn_config_tiny();
        c.img_size = 48;
        ZT_REQUIRE(zs_tcn_init(&m, &c, 0, 1) == ZS_OK && zs_tcn_save(&m, p) == ZS_OK, "%s", zs_last_error());
        ZT_REQUIRE((st = zs_st_open(p)) != NULL, "%s", zs_last_error());
        ZT_CHECK(zs_st_metadata(st, "zsesbir.model") && !strcmp(zs_st_metadata(st, "zsesbir.model"), "tcn"), "model metadata");
        ZT_CHECK(zs_st_metadata(st, "zsesbir.config") && strstr(zs_st_metadata(st, "zsesbir.config"), " dim=16 ") &&
                     strstr(zs_st_metadata(st, "zsesbir.config"), " size=48"), "config metadata");
        zs_st_close(st);
        ZT_REQUIRE(zs_tcn_load(&m2, p, 0) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(m2.cfg.img_size == 48 && m2.cfg.dim == 16, "img_size %d", m2.cfg.img_size);
        zs_tcn_free(&m);
        zs_tcn_free(&m2);
        remove(p);
    }
}

/* ---- index files with ITQ -------------------------------------------------- */
static void test_index_itq(void) {
    enum { N = 40, D = 12, BITS = 8 };
    const char *p = "build/test_tcn_itq.zsi";
    const char *cls[2] = {"a", "b"};
    const char *paths[N];
    char pbuf[N][24];
    int32_t lab[N];
    float emb[N * D], tok[N * 6], got[6];
    uint64_t want[N];
    zs_itq q;
    zs_index_info in;
    zs_index_writer *w;
    zs_index idx;
    int i, k, bad = 0, pass;
    for (i = 0; i < N; i++) {
        snprintf(pbuf[i], sizeof pbuf[i], "p%d.jpg", i);
        paths[i] = pbuf[i];
        lab[i] = i % 2;
    }
    zt_fill(emb, N * D, 5, 1.0f);
    zt_fill(tok, N * 6, 6, 1.0f);
    ZT_REQUIRE(zs_itq_train(&q, NULL, emb, N, D, BITS, 50, 9, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(zs_itq_encode(&q, want, emb, N) == ZS_OK, "%s", zs_last_error());
    for (pass = 0; pass < 2; pass++) { /* without and with tokens behind the codes */
        memset(&in, 0, sizeof in);
        in.config = "tcn test";
        in.config_hash = zs_hash_bytes(in.config, strlen(in.config), 0);
        in.n = N; in.dim = D; in.n_classes = 2; in.class_name = cls; in.path = paths; in.label = lab;
        in.tokens = pass ? 2 : 0; in.token_dim = pass ? 3 : 0; in.token_type = ZS_F32;
        in.model = ZS_INDEX_MODEL_TCN;
        in.itq = &q;
        ZT_REQUIRE((w = zs_index_create(p, &in)) != NULL, "%s", zs_last_error());
        for (i = 0; i < N; i++) ZT_REQUIRE(zs_index_append(w, emb + i * D, pass ? tok + 6 * i : NULL) == ZS_OK, "%s", zs_last_error());
        ZT_REQUIRE(zs_index_finish(w) == ZS_OK, "%s", zs_last_error());
        ZT_REQUIRE(zs_index_load(p, &idx) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(idx.version == 2 && idx.model == ZS_INDEX_MODEL_TCN && idx.itq.bits == BITS && idx.itq.dim == D && idx.codes, "header");
        ZT_CHECK(!memcmp(idx.itq.mean, q.mean, sizeof(float) * D) && !memcmp(idx.itq.proj, q.proj, sizeof(float) * D * BITS) &&
                     !memcmp(idx.itq.rot, q.rot, sizeof(float) * BITS * BITS), "ITQ parameters differ");
        for (i = 0; i < N; i++) bad += idx.codes[i] != want[i] || memcmp(idx.emb + i * D, emb + i * D, sizeof(float) * D) != 0;
        ZT_CHECK(bad == 0, "%d records differ", bad);
        for (i = 0; pass && i < N; i++) {
            ZT_REQUIRE(zs_index_tokens(&idx, i, got) == ZS_OK, "%s", zs_last_error());
            for (k = 0; k < 6; k++) bad += got[k] != tok[6 * i + k];
        }
        ZT_CHECK(bad == 0, "tokens behind the codes differ");
        zs_index_free(&idx);
    }
    /* the codes are not all equal (the test would be weak otherwise) */
    for (i = 1, k = 0; i < N; i++) k += want[i] != want[0];
    ZT_CHECK(k > N / 2, "codes nearly constant");
    /* a version-1 file (no ITQ; header word 60 reserved) still loads */
    in.itq = NULL; in.tokens = 0; in.token_dim = 0; in.model = ZS_INDEX_MODEL_ZSE;
    ZT_REQUIRE((w = zs_index_create(p, &in)) != NULL, "%s", zs_last_error());
    for (i = 0; i < N; i++) ZT_REQUIRE(zs_index_append(w, emb + i * D, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(zs_index_finish(w) == ZS_OK, "%s", zs_last_error());
    {
        size_t n;
        unsigned char *b = zt_read_file(p, &n);
        FILE *f;
        ZT_REQUIRE(b && n > 64, "read back");
        b[8] = 1; /* version 1 */
        f = fopen(p, "wb");
        ZT_REQUIRE(f, "rewrite");
        fwrite(b, 1, n, f);
        fclose(f);
        ZT_CHECK(zs_index_load(p, &idx) == ZS_OK && idx.version == 1 && idx.itq.bits == 0 && !idx.codes && idx.n == N &&
                     idx.emb[5] == emb[5], "version 1: %s", zs_last_error());
        zs_index_free(&idx);
        /* version 2 claiming more code bits than dims */
        b[8] = 2; b[60] = D + 1;
        f = fopen(p, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
        ZT_CHECK(zs_index_load(p, &idx) == ZS_ERR_FORMAT && strstr(zs_last_error(), "ITQ"), "bits > dim: %s", zs_last_error());
        /* bits fit but the file is too short for the ITQ block and codes */
        b[60] = 4;
        f = fopen(p, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
        ZT_CHECK(zs_index_load(p, &idx) == ZS_ERR_FORMAT, "missing ITQ block accepted");
        free(b);
    }
    /* the writer refuses an ITQ of another width */
    in.itq = &q;
    in.dim = D + 1;
    ZT_CHECK(zs_index_create(p, &in) == NULL && strstr(zs_last_error(), "ITQ"), "mismatched ITQ: %s", zs_last_error());
    zs_itq_free(&q);
    remove(p);
}

/* ---- a tiny TCN on real pairs: the loss falls --------------------------------- */
static void test_train_sketchy(void) {
    enum { NC = 4, PER = 6, B = 8, S = 32, STEPS = 40 };
    static const char *cls[NC] = {"airplane", "cat", "pear", "umbrella"};
    char path[512];
    float *skx = NULL, *phx = NULL, wv[NC * 300], wvb[B * 300];
    zs_image sk[NC * PER], ph[NC * PER];
    zs_tcn_config c = zs_tcn_config_tiny();
    zs_tcn m;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_optim *opt;
    int i, j, step, n = 0;
    float first = 0, last = 0, task0 = 0, task1 = 0;
    FILE *f;
    size_t img = 3 * S * S;
#ifndef ZSESBIR_STB_IMAGE
    ZT_SKIP("built without stb_image (PNG/JPEG)");
#endif
    snprintf(path, sizeof path, DATA "/sketchy/photo/%s/n02691156_10151.jpg", cls[0]);
    if (!(f = fopen(path, "rb"))) ZT_SKIP("%s absent", path);
    fclose(f);
    memset(sk, 0, sizeof sk);
    memset(ph, 0, sizeof ph);
    {
        zs_dataset ds;
        ZT_REQUIRE(zs_dataset_open(&ds, DATA "/sketchy", NULL) == ZS_OK, "%s", zs_last_error());
        for (i = 0; i < NC; i++) {
            int ci;
            for (ci = 0; ci < ds.n_classes && strcmp(ds.class_name[ci], cls[i]); ci++) {}
            ZT_REQUIRE(ci < ds.n_classes && ds.sketch_count[ci] >= PER, "class %s", cls[i]);
            for (j = 0; j < PER; j++, n++) {
                /* sketch j and its own photo (instance pairs) at S x S */
                int si = ds.sketch_start[ci] + j * (ds.sketch_count[ci] / PER), pi = ds.sketch_pair[si];
                zs_image a, b;
                ZT_REQUIRE(pi >= 0, "unpaired sketch %s", ds.sketch_path[si]);
                ZT_REQUIRE(zs_image_load(ds.sketch_path[si], &a) == ZS_OK && zs_image_load(ds.photo_path[pi], &b) == ZS_OK, "%s", zs_last_error());
                ZT_REQUIRE(zs_image_resize_bicubic_pil(&a, S, S, &sk[n]) == ZS_OK && zs_image_resize_bicubic_pil(&b, S, S, &ph[n]) == ZS_OK, "resize");
                zs_image_free(&a);
                zs_image_free(&b);
            }
        }
        zs_dataset_free(&ds);
    }
    ZT_REQUIRE(zs_tcn_wordvec_load(wv, DATA "/wordvec/sketchy_gwv300.txt", cls, NC, 300) == ZS_OK, "%s", zs_last_error());
    c.n_classes = NC;
    c.wv_dim = 300;
    c.w_kd = 0.0f; /* no teacher */
    cp.n_threads = 2;
    cp.seed = 5;
    ctx = zs_ctx_create(&cp);
    ZT_REQUIRE(ctx && zs_tcn_init(&m, &c, 1, 3) == ZS_OK, "%s", zs_last_error());
    opt = zs_tcn_optim_create(&m, 2e-3f);
    skx = (float *)malloc(sizeof(float) * img * B);
    phx = (float *)malloc(sizeof(float) * img * B);
    ZT_REQUIRE(opt && skx && phx, "alloc");
    for (step = 0; step < STEPS; step++) {
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
        int32_t lab[B];
        int64_t sh[4] = {B, 3, S, S};
        zs_tcn_batch b;
        zs_tcn_losses L;
        zs_mark mk = zs_ctx_mark(ctx);
        for (i = 0; i < B; i++) {
            int k = (int)(zs__mix64((uint64_t)(step * B + i)) % (NC * PER));
            zs_image as, ap;
            /* the release's ranges, the shift scaled to the 32-px images */
            zs_tcn_aug a = zs_tcn_aug_sample(1, (uint64_t)(step * B + i));
            a.tx *= (float)S / 224.0f;
            a.ty *= (float)S / 224.0f;
            ZT_REQUIRE(zs_tcn_augment_pair(&as, &ap, &sk[k], &ph[k], &a) == ZS_OK, "%s", zs_last_error());
            zs_image_normalize(&as, mean, sd, skx + (size_t)i * img);
            zs_image_normalize(&ap, mean, sd, phx + (size_t)i * img);
            zs_image_free(&as);
            zs_image_free(&ap);
            lab[i] = k / PER;
            memcpy(wvb + i * 300, wv + lab[i] * 300, sizeof(float) * 300);
        }
        memset(&b, 0, sizeof b);
        b.sketch = zs_from_data(ctx, skx, 4, sh);
        b.photo = zs_from_data(ctx, phx, 4, sh);
        b.labels = lab;
        b.wordvec = wvb;
        ZT_REQUIRE(zs_tcn_train_step(ctx, &m, opt, &b, &L) == ZS_OK, "step %d: %s", step, zs_last_error());
        if (getenv("TCN_VERBOSE")) printf("  step %2d total %.4f cls %.3f/%.3f sbh %.3f share %.5f\n", step, (double)L.total, (double)L.cls_sketch, (double)L.cls_photo, (double)L.sbh, (double)L.share);
        ZT_CHECK(L.kd == 0.0f, "KD term without a teacher");
        /* from step 1 (Adam's first step starts the 1000-weighted share term) */
        if (step >= 1 && step < 5) first += L.total / 4;
        if (step >= STEPS - 4) last += L.total / 4;
        /* the terms that are not the share loss (which dominates the total) */
        if (step < 10) task0 += (L.cls_sketch + L.cls_photo + L.sbh) / 10;
        if (step >= STEPS - 10) task1 += (L.cls_sketch + L.cls_photo + L.sbh) / 10;
        zs_ctx_release(ctx, mk);
    }
    printf("  mean loss steps 1-4 %.4f, last 4 %.4f; cls + sbh first 10 %.4f, last 10 %.4f\n", (double)first, (double)last,
           (double)task0, (double)task1);
    ZT_CHECK(last < 0.5f * first, "loss did not fall: %g -> %g", (double)first, (double)last);
    ZT_CHECK(task1 < 0.95f * task0, "cls + sbh did not fall: %g -> %g", (double)task0, (double)task1);
    for (i = 0; i < NC * PER; i++) { zs_image_free(&sk[i]); zs_image_free(&ph[i]); }
    free(skx);
    free(phx);
    zs_optim_free(opt);
    zs_tcn_free(&m);
    zs_ctx_free(ctx);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_aug_identity_flip);
    ZT_RUN(test_aug_rotate_shift);
    ZT_RUN(test_aug_pair_sample);
    ZT_RUN(test_wordvec_reader);
    ZT_RUN(test_config_text);
    ZT_RUN(test_index_itq);
    ZT_RUN(test_train_sketchy);
    return zt_finish();
}
