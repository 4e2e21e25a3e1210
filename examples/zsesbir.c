/* zsesbir - command-line front end of zsesbir.h.

     zsesbir init   --config NAME --out W.safetensors [--seed S] [--dtype f32|f16|bf16]
     zsesbir train  --data DIR --test-classes F --config NAME|--config-file F --steps N
                    --batch B --out W.safetensors [--resume W] [--seed S] ...
     zsesbir index  --weights W --photos DIR --out G.zsi [--tokens f16|f32|none]
     zsesbir search --weights W --index G.zsi --sketch S [--topk 10] [--rerank K] [--png out.png]
     zsesbir eval   --weights W --data DIR --test-classes F --mode ret|rn|two-stage
                    [--rerank K] [--fine-grained]
     zsesbir embed  --weights W --image X [--as photo|sketch] [--out e.npy]
     zsesbir score  --weights W --sketch S --photo P
     zsesbir explain --weights W --sketch S --photo P --out E.png [--top N] [--synth S.png]
     zsesbir convert IN.pth OUT.safetensors      zsesbir inspect FILE
   Every --weights accepts .safetensors and PyTorch .pth checkpoints.

   Images are files (PNG/JPEG/BMP when built with stb_image, PPM/PGM always),
   pre-processed as in SPEC 3, or .npy float32 arrays [3,H,W] already
   normalised to [-1,1]. A sketch may also be a Quick, Draw! drawing,
   "F.ndjson:k" (drawing k, default 0), rasterised first. Every subcommand takes --threads T (default 2) and
   --help. Long runs show a progress bar on stderr when it is a terminal.
   Exit status 0 on success, 1 on a runtime error, 2 on a usage error. */
#define _POSIX_C_SOURCE 200809L
#define ZSESBIR_IMPLEMENTATION
/* PNG/JPEG through Debian's libstb-dev when it is installed */
#ifndef ZS_CLI_NO_STB
#define ZSESBIR_STB_AUTO
#endif
#include "../zsesbir.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- option parsing ------------------------------------------------------ */
#define MAX_OPTS 32
typedef struct { const char *name; const char **value; int is_flag; } opt_t;
typedef struct { opt_t o[MAX_OPTS]; int n; } opts_t;

static void opt(opts_t *s, const char *name, const char **value) { s->o[s->n].name = name; s->o[s->n].value = value; s->o[s->n++].is_flag = 0; }
static void flag(opts_t *s, const char *name, const char **value) { s->o[s->n].name = name; s->o[s->n].value = value; s->o[s->n++].is_flag = 1; }

/* 0 ok, 2 usage error, -1 --help printed */
static int parse_opts(int argc, char **argv, const opts_t *s, const char *usage) {
    int i, k;
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { printf("%s", usage); return -1; }
        for (k = 0; k < s->n; k++)
            if (!strcmp(argv[i], s->o[k].name)) break;
        if (k == s->n) { fprintf(stderr, "unknown argument '%s'\n\n%s", argv[i], usage); return 2; }
        if (s->o[k].is_flag) { *s->o[k].value = "1"; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s needs a value\n\n%s", argv[i], usage); return 2; }
        *s->o[k].value = argv[++i];
    }
    return 0;
}
#define PARSE(argc, argv, s, usage)                                      \
    do {                                                                 \
        int r_ = parse_opts(argc, argv, s, usage);                       \
        if (r_) return r_ < 0 ? 0 : r_;                                  \
    } while (0)

static int need(const char *v, const char *name, const char *usage) {
    if (v) return 0;
    fprintf(stderr, "missing %s\n\n%s", name, usage);
    return 2;
}

/* strict integer option in [lo, hi]; 0 ok, 2 usage error */
static int int_opt(const char *v, const char *name, long lo, long hi, long *out) {
    char *end;
    long x;
    if (!v) return 0;
    x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) { fprintf(stderr, "%s: '%s' is not an integer in %ld..%ld\n", name, v, lo, hi); return 2; }
    *out = x;
    return 0;
}

static int float_opt(const char *v, const char *name, double lo, double hi, double *out) {
    char *end;
    double x;
    if (!v) return 0;
    x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi)) { fprintf(stderr, "%s: '%s' is not a number in %g..%g\n", name, v, lo, hi); return 2; }
    *out = x;
    return 0;
}

static int fail(void) { fprintf(stderr, "error: %s\n", zs_last_error()); return 1; }

static zs_ctx *make_ctx(const char *threads) {
    zs_ctx_params cp = zs_ctx_default_params();
    long t = 2;
    zs_ctx *ctx;
    if (int_opt(threads, "--threads", 1, 64, &t)) return NULL;
    cp.n_threads = (int)t;
    ctx = zs_ctx_create(&cp);
    if (!ctx) fail();
    return ctx;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- progress bar (stderr, only on a terminal) ---------------------------- */
typedef struct { const char *what; long total; double t0, last; int on; } prog_t;

static void prog_start(prog_t *p, const char *what, long total) {
    p->what = what;
    p->total = total;
    p->t0 = p->last = now();
    p->on = isatty(fileno(stderr)) && total > 0;
}

static void fmt_time(char *b, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(b, n, "%ld:%02ld", t / 60, t % 60);
}

static void prog_update(prog_t *p, long done, const char *extra) {
    double t = now(), el = t - p->t0, rate = el > 0 ? (double)done / el : 0;
    char eta[32], ela[32], bar[31];
    int i, fill;
    if (!p->on || (t - p->last < 0.1 && done < p->total)) return;
    p->last = t;
    fill = (int)(30.0 * (double)done / (double)p->total);
    for (i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fmt_time(ela, sizeof ela, el);
    fmt_time(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : 0);
    fprintf(stderr, "\r%s [%s] %ld/%ld %.2f/s %s ETA %s %s\033[K", p->what, bar, done, p->total, rate, ela, eta, extra ? extra : "");
    fflush(stderr);
}

static void prog_end(prog_t *p) {
    if (p->on) fprintf(stderr, "\n");
    p->on = 0;
}

/* ---- images ------------------------------------------------------------------ */
static int has_ext(const char *p, const char *ext) {
    size_t n = strlen(p), e = strlen(ext);
    return n >= e && !strcmp(p + n - e, ext);
}

/* An image file, or drawing k of a Quick, Draw! file given as "F.ndjson" or
   "F.ndjson:k" (rasterised at 256x256, line width 3, as zs_qd_render). */
static int load_picture(const char *path, zs_image *out) {
    const char *nd = strstr(path, ".ndjson");
    if (nd && (nd[7] == 0 || nd[7] == ':')) {
        char file[4096];
        long k = 0;
        zs_qd_file f;
        zs_qd_raster_opts ro = zs_qd_raster_default_opts();
        int r;
        size_t n = (size_t)(nd + 7 - path);
        if (n >= sizeof file) { fprintf(stderr, "error: path too long\n"); return ZS_ERR_ARG; }
        memcpy(file, path, n);
        file[n] = 0;
        if (nd[7] == ':' && (int_opt(nd + 8, "drawing index", 0, 0x7fffffffL, &k))) return ZS_ERR_ARG;
        memset(out, 0, sizeof *out);
        if ((r = zs_qd_load(&f, file, NULL)) != ZS_OK) return r;
        if (k >= f.n) {
            fprintf(stderr, "error: %s has %d drawings, no drawing %ld\n", file, f.n, k);
            zs_qd_free(&f);
            return ZS_ERR_ARG;
        }
        r = zs_qd_render(out, &f.drawings[k], &ro);
        zs_qd_free(&f);
        return r;
    }
    return zs_image_load(path, out);
}

/* One input as a normalised [3,size,size] float image: a .npy array as is,
   an image file pre-processed as a sketch or a photo (SPEC 3). */
static int prep_input(const char *path, int is_sketch, int size, float *out) {
    if (has_ext(path, ".npy")) {
        int ndim;
        int64_t shape[8];
        float *data = NULL;
        if (zs_npy_read(path, &ndim, shape, &data) != ZS_OK) return ZS_ERR_FORMAT;
        if (ndim != 3 || shape[0] != 3 || shape[1] != size || shape[2] != size) {
            zs_npy_free(data);
            fprintf(stderr, "error: %s: expected a [3,%d,%d] array for this model\n", path, size, size);
            return ZS_ERR_SHAPE;
        }
        memcpy(out, data, sizeof(float) * 3 * (size_t)size * (size_t)size);
        zs_npy_free(data);
        return ZS_OK;
    } else {
        zs_image im;
        int r = load_picture(path, &im);
        if (r) return r;
        r = is_sketch ? zs_preprocess_sketch(&im, size, out) : zs_preprocess_photo(&im, size, out);
        zs_image_free(&im);
        return r;
    }
}

/* Runs SA on b images [b,3,S,S]; writes the L2-normalised token 0 to emb[b,d]
   and, when tok != NULL, all tokens to tok[b,T,d]. */
static int sa_batch(zs_ctx *ctx, zs_zse *m, const float *imgs, int b, float *emb, float *tok) {
    int64_t s[4];
    zs_mark mk = zs_ctx_mark(ctx);
    zs_tensor *x, *sa;
    int i, k, D = m->cfg.dim, T = m->dims.tokens, rc = ZS_OK;
    s[0] = b; s[1] = 3; s[2] = m->cfg.img_size; s[3] = m->cfg.img_size;
    x = zs_from_data(ctx, imgs, 4, s);
    sa = x ? zs_zse_sa(ctx, m, x) : NULL;
    if (!sa) rc = ZS_ERR_STATE;
    else {
        const float *o = (const float *)sa->data;
        for (i = 0; i < b; i++) {
            const float *t0 = o + (size_t)i * (size_t)T * (size_t)D;
            double nn = 0;
            for (k = 0; k < D; k++) nn += (double)t0[k] * t0[k];
            nn = sqrt(nn) > 1e-12 ? sqrt(nn) : 1e-12; /* F.normalize(eps=1e-12), as zs_zse_embed */
            for (k = 0; k < D; k++) emb[(size_t)i * D + k] = (float)(t0[k] / nn);
        }
        if (tok) memcpy(tok, o, sizeof(float) * (size_t)b * (size_t)T * (size_t)D);
    }
    zs_ctx_release(ctx, mk);
    return rc;
}

/* Embeds n inputs (paths) in batches: emb[n,d]; caches[n][cache_floats]
   (RN reranking) when caches != NULL. */
static int embed_files(zs_ctx *ctx, zs_zse *m, char **paths, int n, int is_sketch, int batch, float *emb, float **caches,
                       const char *what) {
    size_t img = 3 * (size_t)m->cfg.img_size * (size_t)m->cfg.img_size, tsz = (size_t)m->dims.tokens * (size_t)m->cfg.dim;
    float *x = (float *)malloc(sizeof(float) * img * (size_t)batch), *tok = caches ? (float *)malloc(sizeof(float) * tsz * (size_t)batch) : NULL;
    prog_t p;
    int i, j, rc = ZS_OK;
    if (!x || (caches && !tok)) { free(x); free(tok); fprintf(stderr, "error: out of memory\n"); return ZS_ERR_NOMEM; }
    prog_start(&p, what, n);
    for (i = 0; i < n && rc == ZS_OK; i += batch) {
        int b = n - i < batch ? n - i : batch;
        for (j = 0; j < b && rc == ZS_OK; j++)
            if ((rc = prep_input(paths[i + j], is_sketch, m->cfg.img_size, x + (size_t)j * img)) != ZS_OK)
                fprintf(stderr, "error: %s: %s\n", paths[i + j], zs_last_error());
        if (rc == ZS_OK && (rc = sa_batch(ctx, m, x, b, emb + (size_t)i * m->cfg.dim, tok)) != ZS_OK) fail();
        for (j = 0; j < b && rc == ZS_OK && caches; j++)
            if ((rc = zs_zse_cache(ctx, m, tok + (size_t)j * tsz, is_sketch, caches[i + j])) != ZS_OK) fail();
        prog_update(&p, i + b, NULL);
    }
    prog_end(&p);
    free(x);
    free(tok);
    return rc;
}

static int load_model(const char *weights, zs_zse *m, int with_grad) {
    if (zs_zse_load(m, weights, with_grad) != ZS_OK) return fail();
    return 0;
}

static uint64_t config_hash(const zs_zse *m, char *buf, size_t cap) {
    if (zs_zse_config_format(&m->cfg, buf, cap) != ZS_OK) buf[0] = 0;
    return zs_hash_bytes(buf, strlen(buf), 0);
}

/* ---- init ------------------------------------------------------------------ */
static int cmd_init(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir init --config default|small|tiny --out W.safetensors [--seed S] [--dtype f32|f16|bf16]\n"
        "Writes randomly initialised ZSE-SBIR weights (released parameter names).\n";
    const char *config = "small", *out = NULL, *seed = "1", *dtype = "f32";
    opts_t o = {{{0}}, 0};
    zs_zse_config c;
    zs_zse m;
    zs_type dt = ZS_F32;
    long sd = 1;
    int rc;
    opt(&o, "--config", &config); opt(&o, "--out", &out); opt(&o, "--seed", &seed); opt(&o, "--dtype", &dtype);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(out, "--out", usage)) || (rc = int_opt(seed, "--seed", 0, 0x7fffffffL, &sd))) return rc;
    if (zs_zse_config_named(config, &c) != ZS_OK) { fprintf(stderr, "%s\n\n%s", zs_last_error(), usage); return 2; }
    if (!strcmp(dtype, "f16")) dt = ZS_F16;
    else if (!strcmp(dtype, "bf16")) dt = ZS_BF16;
    else if (strcmp(dtype, "f32")) { fprintf(stderr, "unknown dtype '%s'\n\n%s", dtype, usage); return 2; }
    if (zs_zse_init(&m, &c, 0, (uint64_t)sd) != ZS_OK || zs_zse_save(&m, out, dt) != ZS_OK) {
        zs_zse_free(&m);
        return fail();
    }
    printf("wrote %s: %zu parameters (%s)\n", out, zs_zse_param_count(&m), dtype);
    zs_zse_free(&m);
    return 0;
}

/* ---- train ------------------------------------------------------------------- */

/* Pre-processed 8-bit images kept in memory across steps (a sketch's ink-box
   crop and a photo's bicubic resize are paid once per file). */
typedef struct { unsigned char **img; int n; size_t used, cap; } imcache_t;

/* One training input, normalised into out: from the cache, or loaded and
   prepared, the 8-bit result returned in *fresh for the caller to cache (the
   batch loads in parallel; only the serial part writes the cache). */
static int cached_input(const imcache_t *c, const char *path, int i, int is_sketch, int size, float *out, unsigned char **fresh) {
    static const float half[3] = {0.5f, 0.5f, 0.5f};
    zs_image im, prep;
    int r;
    *fresh = NULL;
    if (c->img[i]) {
        prep.w = prep.h = size;
        prep.rgb = c->img[i];
        return zs_image_normalize(&prep, half, half, out);
    }
    if ((r = zs_image_load(path, &im)) != ZS_OK) return r;
    if (is_sketch) r = zs_sketch_prepare(&im, size, &prep, NULL);
    else r = zs_image_resize_bicubic_pil(&im, size, size, &prep);
    zs_image_free(&im);
    if (r) return r;
    r = zs_image_normalize(&prep, half, half, out);
    if (r == ZS_OK) *fresh = prep.rgb;
    else zs_image_free(&prep);
    return r;
}

/* the 4B inputs of a step, batch order [s+, s-, p+, p-] (B each), loaded on
   the context's threads */
typedef struct {
    imcache_t *sk, *ph;
    const zs_dataset *ds;
    const int32_t *bt;   /* [4B] sketch / photo index per slot */
    int B, S;
    float *x;            /* [4B,3,S,S] */
    unsigned char **fresh;
    int *rc;
    char (*err)[320];
} batch_load_t;

static void batch_load_one(void *user, int64_t k) {
    batch_load_t *L = (batch_load_t *)user;
    int is_sk = k / L->B <= 1, i = L->bt[k];
    const char *path = is_sk ? L->ds->sketch_path[i] : L->ds->photo_path[i];
    size_t img = 3 * (size_t)L->S * (size_t)L->S;
    L->rc[k] = cached_input(is_sk ? L->sk : L->ph, path, i, is_sk, L->S, L->x + (size_t)k * img, &L->fresh[k]);
    if (L->rc[k]) snprintf(L->err[k], sizeof L->err[k], "%.100s: %.200s", path, zs_last_error());
}

static int batch_load(zs_ctx *ctx, batch_load_t *L) {
    int k, n = 4 * L->B, rc = 0;
    size_t bytes = 3 * (size_t)L->S * (size_t)L->S;
    zs_ctx_parallel_for(ctx, n, batch_load_one, L);
    for (k = 0; k < n; k++) {
        imcache_t *c = k / L->B <= 1 ? L->sk : L->ph;
        int i = L->bt[k];
        if (L->rc[k] && !rc) { fprintf(stderr, "error: %s\n", L->err[k]); rc = 1; }
        if (!L->fresh[k]) continue;
        if (!c->img[i] && c->used + bytes <= c->cap) { /* keep it (a slot may repeat an image) */
            c->img[i] = L->fresh[k];
            c->used += bytes;
        } else
            free(L->fresh[k]);
        L->fresh[k] = NULL;
    }
    return rc;
}

/* the optimiser state saved next to resumed weights (W.optim), when there is one */
static int resume_optim(zs_optim *optim, const char *resume) {
    char ost[4200];
    FILE *f;
    snprintf(ost, sizeof ost, "%.4000s.optim", resume);
    if ((f = fopen(ost, "rb")) != NULL) {
        fclose(f);
        if (zs_optim_load(optim, ost) != ZS_OK) return fail();
        printf("resumed from %s at step %lld\n", resume, (long long)zs_optim_steps(optim));
    } else
        printf("resumed weights from %s (no %s: fresh optimiser state)\n", resume, ost);
    return 0;
}

static int save_checkpoint(const zs_zse *m, const zs_optim *opt, const char *out) {
    char tmp[4096], ost[4096];
    if (strlen(out) > 4000) { fprintf(stderr, "error: output path too long\n"); return 1; }
    /* write then rename: an interrupted save never destroys the previous one */
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (zs_zse_save(m, tmp, ZS_F32) != ZS_OK) return fail();
    if (rename(tmp, out) != 0) { fprintf(stderr, "error: cannot rename %s to %s\n", tmp, out); return 1; }
    snprintf(ost, sizeof ost, "%s.optim", out);
    snprintf(tmp, sizeof tmp, "%s.optim.tmp", out);
    if (zs_optim_save(opt, tmp) != ZS_OK) return fail();
    if (rename(tmp, ost) != 0) { fprintf(stderr, "error: cannot rename %s to %s\n", tmp, ost); return 1; }
    return 0;
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int cmd_train(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir train --data DIR --test-classes FILE (--config NAME | --config-file F | --resume W)\n"
        "                     --steps N --batch B --out W.safetensors [options]\n"
        "Trains ZSE-SBIR (SPEC 1.5: 2 x triplet + 4 x RN loss, AdamW) on the SEEN classes\n"
        "of DIR (<DIR>/photo/<class>/*, <DIR>/sketch/<class>/*); the classes named in\n"
        "--test-classes are held out. Saves W.safetensors and W.safetensors.optim\n"
        "every --save-every steps and at the end; --resume continues from them.\n"
        "options:\n"
        "  --class-list F     cname_cid.txt-style list fixing class ids (default: sorted names)\n"
        "  --config NAME      default | small | tiny          --config-file F  config text\n"
        "  --init W           start from these weights (e.g. a converted ViT), not random\n"
        "  --lr X (1e-4)      AdamW learning rate (the release: 1e-5 from ImageNet ViT)\n"
        "  --wd X (1e-2)      decoupled weight decay\n"
        "  --seed S (1)       sampling, dropout and initialisation seed\n"
        "  --save-every N (500)   --log-every N (50)   --threads T (2)\n"
        "  --cache-mb N (4096)    memory for pre-processed images\n"
        "  --checkpoint       recompute SA blocks, tokenizer, CA in backward (ViT-B B=2: 0.6x memory, 1.35x time)\n"
        "  --plan F           write the image paths of every step (batch order s+, s-, p+, p-;\n"
        "                     one line per step) to F and exit without training (lets a\n"
        "                     reference implementation train on exactly the same batches)\n";
    const char *data = NULL, *tests = NULL, *clist = NULL, *config = NULL, *cfile = NULL, *steps = NULL, *batch = NULL, *out = NULL;
    const char *resume = NULL, *init = NULL, *threads = NULL, *seed = "1", *lr = NULL, *wd = NULL, *save_every = NULL;
    const char *log_every = NULL, *cache_mb = NULL, *ckpt = NULL, *plan = NULL;
    FILE *plan_f = NULL;
    opts_t o = {{{0}}, 0};
    long n_steps = 0, B = 0, sd = 1, save_n = 500, log_n = 50, cmb = 4096, step, start;
    double lr_v = 1e-4, wd_v = 1e-2, t0, ema = -1, tri_ema = 0, rn_ema = 0;
    zs_dataset ds;
    zs_zse m;
    zs_zse_config c;
    zs_ctx *ctx = NULL;
    zs_optim *optim = NULL;
    zs_optim_params op;
    imcache_t sk = {0, 0, 0, 0}, ph = {0, 0, 0, 0};
    batch_load_t bl;
    float *x = NULL;
    int32_t *bt = NULL;
    prog_t p;
    int rc, i, S;
    size_t img;
    memset(&bl, 0, sizeof bl);
    opt(&o, "--data", &data); opt(&o, "--test-classes", &tests); opt(&o, "--class-list", &clist);
    opt(&o, "--config", &config); opt(&o, "--config-file", &cfile); opt(&o, "--steps", &steps); opt(&o, "--batch", &batch);
    opt(&o, "--out", &out); opt(&o, "--resume", &resume); opt(&o, "--init", &init); opt(&o, "--threads", &threads);
    opt(&o, "--seed", &seed); opt(&o, "--lr", &lr); opt(&o, "--wd", &wd); opt(&o, "--save-every", &save_every);
    opt(&o, "--log-every", &log_every); opt(&o, "--cache-mb", &cache_mb); flag(&o, "--checkpoint", &ckpt);
    opt(&o, "--plan", &plan);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(data, "--data", usage)) || (rc = need(tests, "--test-classes", usage)) || (rc = need(steps, "--steps", usage)) ||
        (rc = need(batch, "--batch", usage)) || (rc = need(out, "--out", usage)) ||
        (rc = int_opt(steps, "--steps", 1, 100000000L, &n_steps)) || (rc = int_opt(batch, "--batch", 1, 4096, &B)) ||
        (rc = int_opt(seed, "--seed", 0, 0x7fffffffL, &sd)) || (rc = int_opt(save_every, "--save-every", 1, 100000000L, &save_n)) ||
        (rc = int_opt(log_every, "--log-every", 1, 100000000L, &log_n)) || (rc = int_opt(cache_mb, "--cache-mb", 0, 1L << 30, &cmb)) ||
        (rc = float_opt(lr, "--lr", 0, 10, &lr_v)) || (rc = float_opt(wd, "--wd", 0, 10, &wd_v)))
        return rc;
    if (!!config + !!cfile + !!resume + !!init > 1) { fprintf(stderr, "give one of --config, --config-file, --resume, --init\n\n%s", usage); return 2; }
    if (!config && !cfile && !resume && !init) { fprintf(stderr, "missing --config (or --config-file / --resume / --init)\n\n%s", usage); return 2; }
    if (zs_dataset_open(&ds, data, clist) != ZS_OK || zs_dataset_set_unseen(&ds, tests) != ZS_OK) { zs_dataset_free(&ds); return fail(); }
    printf("data: %d classes (%d seen for training, %d held out), %d photos, %d sketches\n", ds.n_classes, ds.n_seen, ds.n_unseen,
           ds.n_photos, ds.n_sketches);
    rc = 1;
    if (resume || init) {
        if (zs_zse_load(&m, resume ? resume : init, 1) != ZS_OK) { fail(); goto done0; }
    } else {
        if (config && zs_zse_config_named(config, &c) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); rc = 2; goto done0; }
        if (cfile) {
            FILE *f = fopen(cfile, "rb");
            char text[4096];
            size_t nr;
            if (!f) { fprintf(stderr, "error: cannot open %s\n", cfile); goto done0; }
            nr = fread(text, 1, sizeof text - 1, f);
            fclose(f);
            text[nr] = 0;
            c = zs_zse_config_small();
            if (zs_zse_config_parse(&c, text) != ZS_OK) { fail(); goto done0; }
        }
        if (zs_zse_init(&m, &c, 1, (uint64_t)sd) != ZS_OK) { fail(); goto done0; }
    }
    m.checkpoint = ckpt != NULL;
    {
        char cfg[1024];
        config_hash(&m, cfg, sizeof cfg);
        printf("model: %zu parameters (%s)\n", zs_zse_param_count(&m), cfg);
    }
    op = zs_optim_default_params(ZS_OPTIM_ADAMW);
    op.lr = (float)lr_v;
    op.weight_decay = (float)wd_v;
    if (!(optim = zs_optim_create(&op, &m.params, NULL))) { fail(); goto done; }
    if (resume && resume_optim(optim, resume)) goto done;
    if (!(ctx = make_ctx(threads))) goto done;
    S = m.cfg.img_size;
    img = 3 * (size_t)S * (size_t)S;
    x = (float *)malloc(sizeof(float) * img * 4 * (size_t)B);
    bt = (int32_t *)malloc(sizeof(int32_t) * 4 * (size_t)B);
    sk.img = (unsigned char **)calloc((size_t)ds.n_sketches + 1, sizeof(unsigned char *));
    ph.img = (unsigned char **)calloc((size_t)ds.n_photos + 1, sizeof(unsigned char *));
    bl.fresh = (unsigned char **)calloc(4 * (size_t)B, sizeof(unsigned char *));
    bl.rc = (int *)calloc(4 * (size_t)B, sizeof(int));
    bl.err = (char (*)[320])calloc(4 * (size_t)B, sizeof *bl.err);
    if (!x || !bt || !sk.img || !ph.img || !bl.fresh || !bl.rc || !bl.err) { fprintf(stderr, "error: out of memory\n"); goto done; }
    bl.sk = &sk; bl.ph = &ph; bl.ds = &ds; bl.bt = bt; bl.B = (int)B; bl.S = S; bl.x = x;
    sk.n = ds.n_sketches; ph.n = ds.n_photos;
    sk.cap = ph.cap = (size_t)cmb << 19; /* half each */
    zs_set_training(ctx, 1);
    step = start = zs_optim_steps(optim);
    if (plan && !(plan_f = fopen(plan, "w"))) { fprintf(stderr, "error: cannot write %s\n", plan); goto done; }
    if (step >= n_steps) printf("already at step %ld of %ld\n", step, n_steps);
    prog_start(&p, "train", n_steps);
    t0 = now();
    for (; step < n_steps; step++) {
        /* the sample of step s depends only on (seed, s): resuming replays it */
        uint64_t rng = splitmix((uint64_t)sd * 0x100000001b3ull + (uint64_t)step);
        zs_tensor *imgs, *loss;
        zs_zse_losses L;
        int64_t s4[4];
        int b;
        for (b = 0; b < B; b++) {
            int32_t t[4]; /* s+, p+, s-, p- */
            static const int slot[4] = {0, 2, 1, 3}; /* -> batch order [s+, s-, p+, p-] */
            int k;
            if (zs_sample_triplet(&ds, &rng, t) != ZS_OK) { prog_end(&p); fail(); goto done; }
            for (k = 0; k < 4; k++) bt[slot[k] * B + b] = t[k];
        }
        if (!plan_f && batch_load(ctx, &bl)) { prog_end(&p); goto done; }
        if (plan_f) {
            for (b = 0; b < 4 * B; b++)
                fprintf(plan_f, "%s%s", b / B == 0 || b / B == 1 ? ds.sketch_path[bt[b]] : ds.photo_path[bt[b]], b + 1 < 4 * B ? "\t" : "\n");
            continue;
        }
        zs_ctx_seed(ctx, splitmix((uint64_t)sd ^ ((uint64_t)step << 20)));
        s4[0] = 4 * B; s4[1] = 3; s4[2] = S; s4[3] = S;
        zs_params_zero_grad(&m.params);
        imgs = zs_from_data(ctx, x, 4, s4);
        loss = imgs ? zs_zse_train_loss(ctx, &m, imgs, &L) : NULL;
        if (!loss || zs_backward(ctx, loss) != ZS_OK || zs_optim_step_ctx(optim, ctx) != ZS_OK) { prog_end(&p); fail(); goto done; }
        zs_ctx_reset(ctx);
        if (ema < 0) { ema = L.total; tri_ema = L.triplet; rn_ema = L.rn; }
        else { ema = 0.95 * ema + 0.05 * L.total; tri_ema = 0.95 * tri_ema + 0.05 * L.triplet; rn_ema = 0.95 * rn_ema + 0.05 * L.rn; }
        {
            char extra[64];
            snprintf(extra, sizeof extra, "loss %.4f", ema);
            prog_update(&p, step + 1, extra);
        }
        if ((step + 1) % log_n == 0 || step + 1 == n_steps) {
            double el = now() - t0;
            if (p.on) fprintf(stderr, "\r\033[K");
            printf("step %ld/%ld  loss %.4f (triplet %.4f, rn %.4f; smoothed %.4f)  %.2f s/step\n", step + 1, n_steps, (double)L.total,
                   (double)L.triplet, (double)L.rn, ema, el / (double)(step + 1 - start));
            fflush(stdout);
        }
        if ((step + 1) % save_n == 0 && step + 1 < n_steps && save_checkpoint(&m, optim, out)) goto done;
    }
    prog_end(&p);
    if (plan_f) {
        rc = fclose(plan_f) == 0 ? 0 : 1;
        plan_f = NULL;
        printf("wrote the plan of steps %ld..%ld to %s\n", start + 1, n_steps, plan);
        goto done;
    }
    if (save_checkpoint(&m, optim, out)) goto done;
    printf("wrote %s (+ .optim) after %ld steps, %.1f s, mean loss (smoothed) %.4f: triplet %.4f rn %.4f\n", out, n_steps, now() - t0,
           ema, tri_ema, rn_ema);
    rc = 0;
done:
    if (plan_f) fclose(plan_f);
    free(bt);
    free(bl.fresh); free(bl.rc); free(bl.err);
    zs_optim_free(optim);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
done0:
    for (i = 0; sk.img && i < sk.n; i++) free(sk.img[i]);
    for (i = 0; ph.img && i < ph.n; i++) free(ph.img[i]);
    free(sk.img);
    free(ph.img);
    free(x);
    zs_dataset_free(&ds);
    return rc;
}

/* ---- photo collections ----------------------------------------------------------- */
typedef struct { char **path; int32_t *label; int n, cap; char **cls; int n_cls; } coll_t;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *n) {
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".JPG", ".JPEG", ".PNG", ".npy"};
    size_t i;
    if (n[0] == '.') return 0;
    for (i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (has_ext(n, ext[i])) return 1;
    return 0;
}

/* sorted names of entries of dir that are directories (want_dir) or image files */
static char **list_dir(const char *dir, int want_dir, int *n_out) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL, full[8192];
    int n = 0, cap = 0;
    *n_out = -1;
    if (!d) return NULL;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (stat(full, &st) != 0) continue;
        if (want_dir ? !S_ISDIR(st.st_mode) : (!S_ISREG(st.st_mode) || !is_image_name(e->d_name))) continue;
        if (n == cap) {
            char **nv = (char **)realloc(v, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 64));
            if (!nv) break;
            v = nv;
        }
        if (!(v[n] = (char *)malloc(strlen(e->d_name) + 1))) break;
        strcpy(v[n++], e->d_name);
    }
    closedir(d);
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *n_out = n;
    return v;
}

static void free_names(char **v, int n) {
    int i;
    for (i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int coll_add(coll_t *c, const char *dir, const char *name, int label) {
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 256;
        char **np = (char **)realloc(c->path, sizeof(char *) * (size_t)nc);
        int32_t *nl;
        if (!np) return 1;
        c->path = np;
        if (!(nl = (int32_t *)realloc(c->label, sizeof(int32_t) * (size_t)nc))) return 1;
        c->label = nl;
        c->cap = nc;
    }
    if (!(c->path[c->n] = (char *)malloc(strlen(dir) + strlen(name) + 2))) return 1;
    sprintf(c->path[c->n], "%s/%s", dir, name);
    c->label[c->n++] = label;
    return 0;
}

/* A photo folder: image files in DIR (label -1) and in its sub-folders, one
   class per sub-folder (label = index of the sorted folder name). */
static int coll_scan(coll_t *c, const char *dir) {
    int nf, i, j;
    char **files = list_dir(dir, 0, &nf), sub[8192];
    memset(c, 0, sizeof *c);
    if (nf < 0) { fprintf(stderr, "error: cannot read folder %s\n", dir); return 1; }
    c->cls = list_dir(dir, 1, &c->n_cls);
    if (c->n_cls < 0) c->n_cls = 0;
    for (i = 0; i < nf; i++) coll_add(c, dir, files[i], -1);
    free_names(files, nf);
    for (j = 0; j < c->n_cls; j++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, c->cls[j]);
        files = list_dir(sub, 0, &nf);
        for (i = 0; i < nf; i++) coll_add(c, sub, files[i], j);
        free_names(files, nf > 0 ? nf : 0);
    }
    if (c->n == 0) { fprintf(stderr, "error: no image files in %s or its sub-folders\n", dir); return 1; }
    return 0;
}

static void coll_free(coll_t *c) {
    free_names(c->path, c->n);
    free(c->label);
    free_names(c->cls, c->n_cls);
    memset(c, 0, sizeof *c);
}

/* ---- index ------------------------------------------------------------------------- */
static int cmd_index(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir index --weights W --photos DIR --out G.zsi [--tokens f16|f32|none] [--batch B] [--threads T]\n"
        "Embeds every photo under DIR once (files in DIR and in its class sub-folders;\n"
        "a sub-folder's name is the class of its photos) into an index file: paths,\n"
        "classes, ret-token embeddings and, unless --tokens none, the SA tokens the RN\n"
        "reranker of `search --rerank` needs (f16 by default: half the size).\n";
    const char *weights = NULL, *photos = NULL, *out = NULL, *tokens = "f16", *batch = NULL, *threads = NULL;
    opts_t o = {{{0}}, 0};
    zs_zse m;
    zs_ctx *ctx = NULL;
    coll_t c;
    zs_index_info in;
    zs_index_writer *w = NULL;
    float *x = NULL, *emb = NULL, *tok = NULL;
    long B = 8;
    int rc, i, j, with_tok;
    size_t img, tsz;
    prog_t p;
    char cfg[1024];
    double t0 = now();
    opt(&o, "--weights", &weights); opt(&o, "--photos", &photos); opt(&o, "--out", &out); opt(&o, "--tokens", &tokens);
    opt(&o, "--batch", &batch); opt(&o, "--threads", &threads);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(photos, "--photos", usage)) || (rc = need(out, "--out", usage)) ||
        (rc = int_opt(batch, "--batch", 1, 1024, &B)))
        return rc;
    if (strcmp(tokens, "f16") && strcmp(tokens, "f32") && strcmp(tokens, "none")) { fprintf(stderr, "--tokens: f16, f32 or none\n\n%s", usage); return 2; }
    with_tok = strcmp(tokens, "none") != 0;
    if (coll_scan(&c, photos)) { coll_free(&c); return 1; }
    if (load_model(weights, &m, 0)) { coll_free(&c); return 1; }
    rc = 1;
    if (!(ctx = make_ctx(threads))) goto done;
    zs_set_grad_enabled(ctx, 0);
    memset(&in, 0, sizeof in);
    in.config_hash = config_hash(&m, cfg, sizeof cfg);
    in.weights_hash = zs_weights_hash(&m.params);
    in.config = cfg;
    in.n = c.n; in.dim = m.cfg.dim;
    in.tokens = with_tok ? m.dims.tokens : 0; in.token_dim = with_tok ? m.cfg.dim : 0;
    in.token_type = !strcmp(tokens, "f32") ? ZS_F32 : ZS_F16;
    in.n_classes = c.n_cls; in.class_name = (const char *const *)c.cls;
    in.path = (const char *const *)c.path; in.label = c.label;
    img = 3 * (size_t)m.cfg.img_size * (size_t)m.cfg.img_size;
    tsz = (size_t)m.dims.tokens * (size_t)m.cfg.dim;
    x = (float *)malloc(sizeof(float) * img * (size_t)B);
    emb = (float *)malloc(sizeof(float) * (size_t)m.cfg.dim * (size_t)B);
    tok = (float *)malloc(sizeof(float) * tsz * (size_t)B);
    if (!x || !emb || !tok) { fprintf(stderr, "error: out of memory\n"); goto done; }
    if (!(w = zs_index_create(out, &in))) { fail(); goto done; }
    prog_start(&p, "index", c.n);
    for (i = 0; i < c.n; i += (int)B) {
        int b = c.n - i < B ? c.n - i : (int)B;
        for (j = 0; j < b; j++)
            if (prep_input(c.path[i + j], 0, m.cfg.img_size, x + (size_t)j * img) != ZS_OK) {
                prog_end(&p);
                fprintf(stderr, "error: %s: %s\n", c.path[i + j], zs_last_error());
                goto done;
            }
        if (sa_batch(ctx, &m, x, b, emb, tok) != ZS_OK) { prog_end(&p); fail(); goto done; }
        for (j = 0; j < b; j++)
            if (zs_index_append(w, emb + (size_t)j * m.cfg.dim, with_tok ? tok + (size_t)j * tsz : NULL) != ZS_OK) { prog_end(&p); fail(); goto done; }
        prog_update(&p, i + b, NULL);
    }
    prog_end(&p);
    if (zs_index_finish(w) != ZS_OK) { w = NULL; fail(); goto done; }
    w = NULL;
    printf("indexed %d photos (%d classes) into %s in %.1f s (tokens: %s)\n", c.n, c.n_cls, out, now() - t0, tokens);
    rc = 0;
done:
    zs_index_abort(w);
    free(x); free(emb); free(tok);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    coll_free(&c);
    return rc;
}

/* ---- search ------------------------------------------------------------------------ */

/* class of a query from its parent folder's name, when the index knows it */
static int label_from_path(const zs_index *idx, const char *path) {
    const char *e = strrchr(path, '/'), *b;
    int i;
    size_t n;
    if (!e) return -1;
    for (b = e; b > path && b[-1] != '/'; b--) {}
    n = (size_t)(e - b);
    for (i = 0; i < idx->n_classes; i++)
        if (strlen(idx->class_name[i]) == n && !strncmp(idx->class_name[i], b, n)) return i;
    return -1;
}

static int write_sheet(const char *png, const char *query, int q_is_sketch, char **paths, const zs_hit *hits, int k, const int32_t *labels,
                       int q_label) {
    zs_image q, *items = (zs_image *)calloc((size_t)k + 1, sizeof(zs_image)), sheet;
    int *mark = (int *)calloc((size_t)k + 1, sizeof(int)), i, r;
    (void)q_is_sketch;
    memset(&q, 0, sizeof q);
    memset(&sheet, 0, sizeof sheet);
    if (!items || !mark) { free(items); free(mark); fprintf(stderr, "error: out of memory\n"); return 1; }
    if (load_picture(query, &q) != ZS_OK) fprintf(stderr, "warning: %s: %s (blank query cell)\n", query, zs_last_error());
    for (i = 0; i < k; i++) {
        int li = labels[hits[i].index];
        if (zs_image_load(paths[hits[i].index], &items[i]) != ZS_OK)
            fprintf(stderr, "warning: %s: %s (blank cell)\n", paths[hits[i].index], zs_last_error());
        mark[i] = q_label < 0 || li < 0 ? -1 : li == q_label;
    }
    r = zs_contact_sheet(&sheet, &q, items, k, mark, 160, k <= 5 ? k : 5);
    if (r == ZS_OK) r = has_ext(png, ".ppm") ? zs_image_save_ppm(png, &sheet) : zs_image_save_png(png, &sheet);
    if (r != ZS_OK) fail();
    zs_image_free(&sheet);
    zs_image_free(&q);
    for (i = 0; i < k; i++) zs_image_free(&items[i]);
    free(items);
    free(mark);
    return r != ZS_OK;
}

/* after the ranked list: how many of the top K share the query's class (when the
   index knows classes), and the contact sheet when asked */
static int search_summary(const zs_index *idx, const zs_hit *hits, int K, int q_label, const char *sketch, const char *png) {
    int i, same = 0;
    if (q_label >= 0) {
        for (i = 0; i < K; i++) same += idx->label[hits[i].index] == q_label;
        printf("query class %s: %d of the top %d are of that class\n", idx->class_name[q_label], same, K);
    }
    if (png && write_sheet(png, sketch, 1, idx->path, hits, K, idx->label, q_label)) return 1;
    if (png) printf("wrote %s\n", png);
    return 0;
}

static int cmd_search(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir search --weights W --index G.zsi --sketch S [--topk 10] [--rerank K] [--png out.png] [--threads T]\n"
        "Ranks the indexed photos for a sketch (an image, or F.ndjson:k for drawing k of a\n"
        "Quick, Draw! file) by ret-token distance (SPEC 1.6); with\n"
        "--rerank K the first K are re-ordered by the RN relation score. Prints rank,\n"
        "distance, score, class and path; --png writes a contact sheet (query + top-k,\n"
        "frames green/red when the query's folder names a class of the index; .ppm\n"
        "when built without stb_image).\n";
    const char *weights = NULL, *index = NULL, *sketch = NULL, *topk = NULL, *rerank = NULL, *png = NULL, *threads = NULL;
    opts_t o = {{{0}}, 0};
    zs_zse m;
    zs_index idx;
    zs_ctx *ctx = NULL;
    long K = 10, R = 0;
    float *x = NULL, *qe = NULL, *qt = NULL, *qc = NULL, *ptok = NULL, *cache_mem = NULL;
    const float **caches = NULL;
    zs_hit *hits = NULL;
    size_t cf;
    int rc, i, q_label;
    char cfg[1024];
    opt(&o, "--weights", &weights); opt(&o, "--index", &index); opt(&o, "--sketch", &sketch); opt(&o, "--topk", &topk);
    opt(&o, "--rerank", &rerank); opt(&o, "--png", &png); opt(&o, "--threads", &threads);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(index, "--index", usage)) || (rc = need(sketch, "--sketch", usage)) ||
        (rc = int_opt(topk, "--topk", 1, 1000000, &K)) || (rc = int_opt(rerank, "--rerank", 0, 1000000, &R)))
        return rc;
    if (zs_index_load(index, &idx) != ZS_OK) return fail();
    if (load_model(weights, &m, 0)) { zs_index_free(&idx); return 1; }
    rc = 1;
    if (config_hash(&m, cfg, sizeof cfg) != idx.config_hash || idx.dim != m.cfg.dim) {
        fprintf(stderr, "error: %s was built for another model config (%s)\n", index, idx.config);
        goto done;
    }
    if (zs_weights_hash(&m.params) != idx.weights_hash) {
        fprintf(stderr, "error: %s was built with other weights than %s: rebuild it with `zsesbir index`\n", index, weights);
        goto done;
    }
    if (R > 0 && !idx.tokens) { fprintf(stderr, "error: --rerank needs an index built with tokens (not --tokens none)\n"); goto done; }
    if (R > idx.n) R = idx.n;
    if (K > idx.n) K = idx.n;
    if (!(ctx = make_ctx(threads))) goto done;
    zs_set_grad_enabled(ctx, 0);
    cf = zs_zse_cache_floats(&m);
    x = (float *)malloc(sizeof(float) * 3 * (size_t)m.cfg.img_size * (size_t)m.cfg.img_size);
    qe = (float *)malloc(sizeof(float) * (size_t)m.cfg.dim);
    qt = (float *)malloc(sizeof(float) * (size_t)m.dims.tokens * (size_t)m.cfg.dim);
    qc = (float *)malloc(sizeof(float) * cf);
    hits = (zs_hit *)malloc(sizeof(zs_hit) * (size_t)idx.n);
    caches = (const float **)calloc((size_t)idx.n, sizeof(float *));
    ptok = (float *)malloc(sizeof(float) * (size_t)m.dims.tokens * (size_t)m.cfg.dim);
    cache_mem = (float *)malloc(sizeof(float) * cf * (size_t)(R > 0 ? R : 1));
    if (!x || !qe || !qt || !qc || !hits || !caches || !ptok || !cache_mem) { fprintf(stderr, "error: out of memory\n"); goto done; }
    if (prep_input(sketch, 1, m.cfg.img_size, x) != ZS_OK) { fprintf(stderr, "error: %s: %s\n", sketch, zs_last_error()); goto done; }
    if (sa_batch(ctx, &m, x, 1, qe, qt) != ZS_OK) { fail(); goto done; }
    /* ret ranking first; then RN caches only for the top R photos */
    if (zs_zse_search(ctx, &m, qe, NULL, idx.emb, NULL, idx.n, 0, hits) != ZS_OK) { fail(); goto done; }
    if (R > 0) {
        if (zs_zse_cache(ctx, &m, qt, 1, qc) != ZS_OK) { fail(); goto done; }
        for (i = 0; i < R; i++) {
            float *c = cache_mem + (size_t)i * cf;
            if (zs_index_tokens(&idx, hits[i].index, ptok) != ZS_OK || zs_zse_cache(ctx, &m, ptok, 0, c) != ZS_OK) { fail(); goto done; }
            caches[hits[i].index] = c;
        }
        if (zs_zse_search(ctx, &m, qe, qc, idx.emb, caches, idx.n, (int)R, hits) != ZS_OK) { fail(); goto done; }
    }
    q_label = label_from_path(&idx, sketch);
    printf("%-5s %-9s %-9s %-16s %s\n", "rank", "distance", "rn_score", "class", "path");
    for (i = 0; i < K; i++) {
        int l = idx.label[hits[i].index];
        char sc[32];
        if (hits[i].rn_score >= 0) snprintf(sc, sizeof sc, "%.5f", (double)hits[i].rn_score);
        else snprintf(sc, sizeof sc, "-");
        printf("%-5d %-9.5f %-9s %-16s %s\n", i + 1, (double)hits[i].ret_dist, sc, l >= 0 ? idx.class_name[l] : "-", idx.path[hits[i].index]);
    }
    if (search_summary(&idx, hits, (int)K, q_label, sketch, png)) goto done;
    rc = 0;
done:
    free(x); free(qe); free(qt); free(qc); free(hits); free((void *)caches); free(ptok); free(cache_mem);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    zs_index_free(&idx);
    return rc;
}

/* ---- eval ------------------------------------------------------------------------------ */
static void print_metrics(const char *label, const zs_metrics *mt) {
    printf("%s (TCN definitions: mAP per class=%.4f P@100=%.4f P@200=%.4f)\n", label, mt->tcn_map, mt->tcn_p_100, mt->tcn_p_200);
}

/* the zero-shot split of a dataset: sketches of the unseen classes query their photos */
typedef struct {
    char **qp, **gp;             /* query sketch / gallery photo paths (borrowed from the dataset) */
    int32_t *ql, *gl, *gmap, *pair; /* labels; dataset photo -> gallery index; query -> its instance photo */
    int nq, ng;
} split_t;

static void split_free(split_t *sp) {
    free(sp->qp); free(sp->gp); free(sp->ql); free(sp->gl); free(sp->gmap); free(sp->pair);
    memset(sp, 0, sizeof *sp);
}

static int split_unseen(split_t *sp, const zs_dataset *ds) {
    int i;
    memset(sp, 0, sizeof *sp);
    sp->qp = (char **)malloc(sizeof(char *) * ((size_t)ds->n_sketches + 1));
    sp->gp = (char **)malloc(sizeof(char *) * ((size_t)ds->n_photos + 1));
    sp->ql = (int32_t *)malloc(sizeof(int32_t) * ((size_t)ds->n_sketches + 1));
    sp->gl = (int32_t *)malloc(sizeof(int32_t) * ((size_t)ds->n_photos + 1));
    sp->gmap = (int32_t *)malloc(sizeof(int32_t) * ((size_t)ds->n_photos + 1));
    sp->pair = (int32_t *)malloc(sizeof(int32_t) * ((size_t)ds->n_sketches + 1));
    if (!sp->qp || !sp->gp || !sp->ql || !sp->gl || !sp->gmap || !sp->pair) { fprintf(stderr, "error: out of memory\n"); return 1; }
    for (i = 0; i < ds->n_photos; i++) {
        sp->gmap[i] = -1;
        if (!ds->unseen[ds->photo_label[i]]) continue;
        sp->gmap[i] = sp->ng;
        sp->gp[sp->ng] = ds->photo_path[i];
        sp->gl[sp->ng++] = ds->photo_label[i];
    }
    for (i = 0; i < ds->n_sketches; i++) {
        if (!ds->unseen[ds->sketch_label[i]]) continue;
        sp->qp[sp->nq] = ds->sketch_path[i];
        sp->ql[sp->nq] = ds->sketch_label[i];
        sp->pair[sp->nq++] = ds->sketch_pair[i] >= 0 ? sp->gmap[ds->sketch_pair[i]] : -1;
    }
    return 0;
}

/* prints a random-ranking baseline (same metric code), the time, then the metrics of
   dist[nq,ng] with the last line the issue's format; 0 or 1 */
static int report_eval(const float *dist, const split_t *sp, int fg, double t0) {
    int nq = sp->nq, ng = sp->ng;
    float *rnd = (float *)malloc(sizeof(float) * (size_t)nq * (size_t)ng);
    uint64_t s = 12345;
    size_t k;
    double a1, a10;
    zs_metrics mt;
    if (!rnd) { fprintf(stderr, "error: out of memory\n"); return 1; }
    for (k = 0; k < (size_t)nq * (size_t)ng; k++) { s = splitmix(s); rnd[k] = (float)(s >> 40); }
    if (fg) {
        if (zs_eval_fine_grained(rnd, nq, ng, sp->pair, &a1, &a10) == ZS_OK) printf("random ranking: acc@1=%.4f acc@10=%.4f\n", a1, a10);
    } else if (zs_eval_retrieval(rnd, nq, ng, sp->ql, sp->gl, &mt) == ZS_OK)
        printf("random ranking: mAP@all=%.4f P@100=%.4f mAP@200=%.4f P@200=%.4f\n", mt.map_all, mt.p_100, mt.map_200, mt.p_200);
    free(rnd);
    printf("time %.1f s\n", now() - t0);
    if (fg) {
        if (zs_eval_fine_grained(dist, nq, ng, sp->pair, &a1, &a10) != ZS_OK) return fail();
        printf("acc@1=%.4f acc@10=%.4f\n", a1, a10);
    } else {
        if (zs_eval_retrieval(dist, nq, ng, sp->ql, sp->gl, &mt) != ZS_OK) return fail();
        print_metrics("model", &mt);
        printf("mAP@all=%.4f P@100=%.4f mAP@200=%.4f P@200=%.4f\n", mt.map_all, mt.p_100, mt.map_200, mt.p_200);
    }
    return 0;
}

static int cmd_eval(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir eval --weights W --data DIR --test-classes FILE --mode ret|rn|two-stage [--rerank K]\n"
        "                    [--fine-grained] [--class-list F] [--batch B] [--threads T]\n"
        "Zero-shot evaluation on the held-out classes: their sketches query a gallery of\n"
        "their photos. ret: ret-token distance; rn: RN score of every pair (slow: cost per\n"
        "pair); two-stage: ret, then the top K (default 100) re-ordered by RN. Prints a\n"
        "random-ranking baseline first; the last line is\n"
        "  mAP@all=... P@100=... mAP@200=... P@200=...   (ZSE-SBIR release definitions)\n"
        "or, with --fine-grained (instance pairs X-k.png <-> X.jpg),  acc@1=... acc@10=...\n";
    const char *weights = NULL, *data = NULL, *tests = NULL, *mode = "ret", *rerank = NULL, *fg = NULL, *clist = NULL, *batch = NULL,
               *threads = NULL;
    opts_t o = {{{0}}, 0};
    zs_dataset ds;
    zs_zse m;
    zs_ctx *ctx = NULL;
    long R = 100, B = 8;
    int rc, nq = 0, ng = 0, i, j, use_rn, mode_id;
    split_t sp = {NULL, NULL, NULL, NULL, NULL, NULL, 0, 0};
    char **qp = NULL, **gp = NULL;
    float *qe = NULL, *ge = NULL, *dist = NULL, *cmem = NULL, **qc = NULL, **gc = NULL, *sc = NULL;
    zs_hit *hits = NULL;
    size_t cf = 0;
    double t0 = now();
    opt(&o, "--weights", &weights); opt(&o, "--data", &data); opt(&o, "--test-classes", &tests); opt(&o, "--mode", &mode);
    opt(&o, "--rerank", &rerank); flag(&o, "--fine-grained", &fg); opt(&o, "--class-list", &clist); opt(&o, "--batch", &batch);
    opt(&o, "--threads", &threads);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(data, "--data", usage)) || (rc = need(tests, "--test-classes", usage)) ||
        (rc = int_opt(rerank, "--rerank", 1, 1000000, &R)) || (rc = int_opt(batch, "--batch", 1, 1024, &B)))
        return rc;
    mode_id = !strcmp(mode, "ret") ? 0 : !strcmp(mode, "rn") ? 1 : !strcmp(mode, "two-stage") ? 2 : -1;
    if (mode_id < 0) { fprintf(stderr, "--mode: ret, rn or two-stage\n\n%s", usage); return 2; }
    use_rn = mode_id > 0;
    if (zs_dataset_open(&ds, data, clist) != ZS_OK || zs_dataset_set_unseen(&ds, tests) != ZS_OK) { zs_dataset_free(&ds); return fail(); }
    if (load_model(weights, &m, 0)) { zs_dataset_free(&ds); return 1; }
    rc = 1;
    if (split_unseen(&sp, &ds)) goto done;
    nq = sp.nq; ng = sp.ng; qp = sp.qp; gp = sp.gp;
    printf("zero-shot: %d unseen classes, %d query sketches, %d gallery photos, mode %s%s\n", ds.n_unseen, nq, ng, mode,
           mode_id == 2 ? "" : "");
    if (!nq || !ng) { fprintf(stderr, "error: no sketches or photos of the unseen classes\n"); goto done; }
    if (!(ctx = make_ctx(threads))) goto done;
    zs_set_grad_enabled(ctx, 0);
    if (use_rn) cf = zs_zse_cache_floats(&m);
    qe = (float *)malloc(sizeof(float) * (size_t)nq * (size_t)m.cfg.dim);
    ge = (float *)malloc(sizeof(float) * (size_t)ng * (size_t)m.cfg.dim);
    dist = (float *)malloc(sizeof(float) * (size_t)nq * (size_t)ng);
    hits = (zs_hit *)malloc(sizeof(zs_hit) * (size_t)ng);
    sc = (float *)malloc(sizeof(float) * (size_t)ng);
    if (!qe || !ge || !dist || !hits || !sc) { fprintf(stderr, "error: out of memory\n"); goto done; }
    if (use_rn) {
        size_t total = cf * ((size_t)nq + (size_t)ng);
        cmem = (float *)malloc(sizeof(float) * total);
        qc = (float **)malloc(sizeof(float *) * (size_t)nq);
        gc = (float **)malloc(sizeof(float *) * (size_t)ng);
        if (!cmem || !qc || !gc) { fprintf(stderr, "error: out of memory for %.0f MB of RN caches\n", 4.0 * (double)total / 1e6); goto done; }
        for (i = 0; i < nq; i++) qc[i] = cmem + (size_t)i * cf;
        for (i = 0; i < ng; i++) gc[i] = cmem + ((size_t)nq + (size_t)i) * cf;
    }
    if (embed_files(ctx, &m, gp, ng, 0, (int)B, ge, gc, "photos") != ZS_OK) goto done;
    if (embed_files(ctx, &m, qp, nq, 1, (int)B, qe, qc, "sketches") != ZS_OK) goto done;
    {
        prog_t p;
        prog_start(&p, mode, nq);
        for (i = 0; i < nq; i++) {
            float *row = dist + (size_t)i * (size_t)ng;
            if (mode_id == 1) { /* every pair: distance = -score (SPEC 1.6) */
                if (zs_zse_score_cached(ctx, &m, qc[i], (const float *const *)gc, ng, sc) != ZS_OK) { prog_end(&p); fail(); goto done; }
                for (j = 0; j < ng; j++) row[j] = -sc[j];
            } else {
                if (zs_zse_search(ctx, &m, qe + (size_t)i * m.cfg.dim, use_rn ? qc[i] : NULL, ge, (const float *const *)gc, ng,
                                  mode_id == 2 ? (int)R : 0, hits) != ZS_OK) { prog_end(&p); fail(); goto done; }
                if (mode_id == 0)
                    for (j = 0; j < ng; j++) row[hits[j].index] = hits[j].ret_dist;
                else /* two-stage: the final order, as ranks */
                    for (j = 0; j < ng; j++) row[hits[j].index] = (float)j;
            }
            prog_update(&p, i + 1, NULL);
        }
        prog_end(&p);
    }
    rc = report_eval(dist, &sp, fg != NULL, t0);
done:
    split_free(&sp);
    free(qe); free(ge); free(dist); free(hits); free(sc); free(cmem); free(qc); free(gc);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    zs_dataset_free(&ds);
    return rc;
}

/* ---- embed ----------------------------------------------------------------- */
static int cmd_embed(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir embed --weights W --image X [--as photo|sketch] [--out e.npy] [--threads T]\n"
        "Prints (or writes as .npy) the L2-normalised ret-token embedding of one image\n"
        "(an image file, pre-processed as a photo unless --as sketch, or a .npy [3,H,W]).\n";
    const char *weights = NULL, *image = NULL, *out = NULL, *threads = NULL, *as = "photo";
    opts_t o = {{{0}}, 0};
    zs_zse m;
    zs_ctx *ctx;
    float *e, *x;
    int rc = 1, i;
    opt(&o, "--weights", &weights); opt(&o, "--image", &image); opt(&o, "--out", &out); opt(&o, "--threads", &threads); opt(&o, "--as", &as);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(image, "--image", usage))) return rc;
    if (strcmp(as, "photo") && strcmp(as, "sketch")) { fprintf(stderr, "--as: photo or sketch\n\n%s", usage); return 2; }
    if (load_model(weights, &m, 0)) return 1;
    ctx = make_ctx(threads);
    e = (float *)malloc(sizeof(float) * (size_t)m.cfg.dim);
    x = (float *)malloc(sizeof(float) * 3 * (size_t)m.cfg.img_size * (size_t)m.cfg.img_size);
    rc = 1;
    if (ctx && e && x) {
        zs_set_grad_enabled(ctx, 0);
        if (prep_input(image, !strcmp(as, "sketch"), m.cfg.img_size, x) != ZS_OK) fprintf(stderr, "error: %s: %s\n", image, zs_last_error());
        else if (sa_batch(ctx, &m, x, 1, e, NULL) != ZS_OK) fail();
        else if (out) {
            int64_t s[1];
            s[0] = m.cfg.dim;
            if (zs_npy_write(out, 1, s, e) != ZS_OK) fail();
            else rc = 0;
        } else {
            for (i = 0; i < m.cfg.dim; i++) printf(i + 1 < m.cfg.dim ? "%.7g " : "%.7g\n", (double)e[i]);
            rc = 0;
        }
    }
    free(e);
    free(x);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    return rc;
}

/* ---- score ----------------------------------------------------------------- */
static int cmd_score(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir score --weights W --sketch S --photo P [--threads T]\n"
        "Prints two lines: the ret-token distance (smaller = closer) and the RN\n"
        "relation score in (0,1) (larger = same category). S and P are image files\n"
        "(pre-processed as sketch / photo, SPEC 3) or .npy [3,H,W] arrays.\n";
    const char *weights = NULL, *sketch = NULL, *photo = NULL, *threads = NULL;
    opts_t o = {{{0}}, 0};
    zs_zse m;
    zs_ctx *ctx;
    float *x = NULL;
    int rc;
    opt(&o, "--weights", &weights); opt(&o, "--sketch", &sketch); opt(&o, "--photo", &photo); opt(&o, "--threads", &threads);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(sketch, "--sketch", usage)) || (rc = need(photo, "--photo", usage))) return rc;
    if (load_model(weights, &m, 0)) return 1;
    ctx = make_ctx(threads);
    rc = 1;
    if (ctx && (x = (float *)malloc(sizeof(float) * 6 * (size_t)m.cfg.img_size * (size_t)m.cfg.img_size)) != NULL) {
        size_t img = 3 * (size_t)m.cfg.img_size * (size_t)m.cfg.img_size;
        int64_t s4[4];
        zs_tensor *s, *p, *sa_s, *sa_p, *score;
        zs_set_grad_enabled(ctx, 0);
        s4[0] = 1; s4[1] = 3; s4[2] = m.cfg.img_size; s4[3] = m.cfg.img_size;
        if (prep_input(sketch, 1, m.cfg.img_size, x) != ZS_OK) fprintf(stderr, "error: %s: %s\n", sketch, zs_last_error());
        else if (prep_input(photo, 0, m.cfg.img_size, x + img) != ZS_OK) fprintf(stderr, "error: %s: %s\n", photo, zs_last_error());
        else {
            s = zs_from_data(ctx, x, 4, s4);
            p = zs_from_data(ctx, x + img, 4, s4);
            sa_s = zs_zse_sa(ctx, &m, s);
            sa_p = zs_zse_sa(ctx, &m, p);
            score = zs_zse_relation(ctx, &m, sa_s, sa_p, NULL);
            if (!score) fail();
            else {
                /* token 0 of each SA output is the ret token */
                printf("ret_distance %.7g\nrn_score %.7g\n",
                       zs_zse_ret_distance((const float *)sa_s->data, (const float *)sa_p->data, m.cfg.dim),
                       (double)((float *)score->data)[0]);
                rc = 0;
            }
        }
    }
    free(x);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    return rc;
}

/* ---- explain (issue 7) -------------------------------------------------------- */
/* The 8-bit picture of what the network sees (size x size) and its normalised
   [3,size,size] input: an image file prepared as a sketch (crop, resize, pad)
   or a photo (PIL bicubic), or a .npy input turned back into 8 bits. */
static int explain_input(const char *path, int is_sketch, int size, zs_image *pic, float *x) {
    static const float half[3] = {0.5f, 0.5f, 0.5f};
    int r;
    memset(pic, 0, sizeof *pic);
    if (has_ext(path, ".npy")) {
        size_t i, n = (size_t)size * (size_t)size;
        if ((r = prep_input(path, is_sketch, size, x)) != ZS_OK) return r;
        if ((r = zs_image_alloc(pic, size, size)) != ZS_OK) return r;
        for (i = 0; i < 3 * n; i++) {
            double v = (x[i] * 0.5 + 0.5) * 255.0 + 0.5;
            pic->rgb[(i % n) * 3 + i / n] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        return ZS_OK;
    } else {
        zs_image im;
        if ((r = load_picture(path, &im)) != ZS_OK) return r;
        r = is_sketch ? zs_sketch_prepare(&im, size, pic, NULL) : zs_image_resize_bicubic_pil(&im, size, size, pic);
        zs_image_free(&im);
        return r ? r : zs_image_normalize(pic, half, half, x);
    }
}

/* The panel picture at side px: image files prepared again at that size (a
   sharp picture with the input's layout), .npy inputs scaled up. */
static int explain_panel(const char *path, int is_sketch, const zs_image *pic, int side, zs_image *out) {
    zs_image im;
    int r;
    if (has_ext(path, ".npy") || load_picture(path, &im) != ZS_OK) return zs_image_resize_linear_cv(pic, side, side, out);
    r = is_sketch ? zs_sketch_prepare(&im, side, out, NULL) : zs_image_resize_bicubic_pil(&im, side, side, out);
    zs_image_free(&im);
    return r;
}

/* PNG, or PPM when the name ends in .ppm */
static int explain_save(const char *path, const zs_image *im) {
    int r = has_ext(path, ".ppm") ? zs_image_save_ppm(path, im) : zs_image_save_png(path, im);
    if (r != ZS_OK) fprintf(stderr, "error: %s: %s\n", path, zs_last_error());
    return r;
}

static int cmd_explain(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir explain --weights W --sketch S --photo P --out E.png [options]\n"
        "Explains the match of one sketch and one photo (SPEC 1.7) in one picture:\n"
        "the sketch and the photo as the network sees them, the --top strongest\n"
        "patch correspondences (each sketch patch's best photo patch) outlined and\n"
        "joined by lines, a heat map of each photo patch's contribution, and the RN\n"
        "score and ret distance. Anchor tokens cannot be drawn as regions: the\n"
        "raw reshape of SPEC 1.4 makes every anchor read every patch token.\n"
        "options:\n"
        "  --top N (8)          correspondences drawn (1..patches, at most 256)\n"
        "  --map centred|cos|attn  (centred) patch map: cosine of the CA output patch\n"
        "                       tokens with each image's mean token removed, plain\n"
        "                       cosine, or the CA sketch->photo attention\n"
        "  --heat ret|rn|attn|cls|match  (ret) photo heat map: gradient x input of the\n"
        "                       ret-token similarity or of the RN score per patch, CA\n"
        "                       attention received, SA cls attention, best map value\n"
        "  --all-patches        also start lines at sketch patches without ink\n"
        "  --size PX (224)      panel size in pixels (the inputs are prepared again at\n"
        "                       this size: same layout as the network's input)\n"
        "  --synth S.png        also write the sketch-to-photo synthesis: every sketch\n"
        "                       patch replaced by its best photo patch\n"
        "  --blend PX (0)       feather the synthesis across patch borders (panel pixels)\n"
        "  --threads T (2)\n"
        "S and P are image files (pre-processed as sketch / photo, SPEC 3), .npy\n"
        "[3,H,W] arrays, or (sketch) F.ndjson:k. An output ending in .ppm is a PPM.\n";
    static const char *const map_names[] = {"centred", "cos", "attn"};
    static const char *const heat_names[] = {"ret", "rn", "attn", "cls", "match"};
    static const char *const map_text[] = {"centred cosine of CA patch tokens (mean token removed)", "cosine of CA patch tokens",
                                           "CA attention, sketch queries over photo keys"};
    static const char *const heat_text[] = {"gradient x input of the ret-token similarity", "gradient x input of the RN score",
                                            "CA attention received from the sketch", "SA cls attention (last block)",
                                            "best map value per photo patch"};
    const char *weights = NULL, *sketch = NULL, *photo = NULL, *out = NULL, *top_s = NULL, *map_s = NULL, *heat_s = NULL;
    const char *all_s = NULL, *size_s = NULL, *synth = NULL, *blend_s = NULL, *threads = NULL;
    opts_t o = {{{0}}, 0};
    zs_zse m;
    zs_ctx *ctx = NULL;
    zs_explain e;
    zs_image pic[2], pan[2], img;
    zs_explain_pair pairs[256];
    float *x = NULL, *map = NULL, *heat = NULL;
    unsigned char *ink = NULL;
    long top = 8, size = 224, blend = 0;
    int mk = 0, hk = 0, rc, S, N, n, i;
    opt(&o, "--weights", &weights); opt(&o, "--sketch", &sketch); opt(&o, "--photo", &photo); opt(&o, "--out", &out);
    opt(&o, "--top", &top_s); opt(&o, "--map", &map_s); opt(&o, "--heat", &heat_s); flag(&o, "--all-patches", &all_s);
    opt(&o, "--size", &size_s); opt(&o, "--synth", &synth); opt(&o, "--blend", &blend_s); opt(&o, "--threads", &threads);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(sketch, "--sketch", usage)) || (rc = need(photo, "--photo", usage)) ||
        (rc = need(out, "--out", usage)))
        return rc;
    if (map_s) {
        for (mk = 0; mk < 3 && strcmp(map_s, map_names[mk]); mk++) {}
        if (mk == 3) { fprintf(stderr, "--map: centred, cos or attn, not '%s'\n", map_s); return 2; }
    }
    if (heat_s) {
        for (hk = 0; hk < 5 && strcmp(heat_s, heat_names[hk]); hk++) {}
        if (hk == 5) { fprintf(stderr, "--heat: ret, rn, attn, cls or match, not '%s'\n", heat_s); return 2; }
    }
    if (int_opt(size_s, "--size", 16, 4096, &size) || int_opt(top_s, "--top", 1, 256, &top) || int_opt(blend_s, "--blend", 0, 2048, &blend))
        return 2;
    if (load_model(weights, &m, 0)) return 1;
    S = m.cfg.img_size;
    N = m.dims.patches;
    if (top > N || blend > size / m.dims.grid / 2) {
        if (top > N) fprintf(stderr, "--top: %ld is more than the %d patches of this model\n", top, N);
        else fprintf(stderr, "--blend: %ld is more than half a patch cell (%ld px) at --size %ld\n", blend, size / m.dims.grid / 2, size);
        zs_zse_free(&m);
        return 2;
    }
    memset(pic, 0, sizeof pic);
    memset(pan, 0, sizeof pan);
    memset(&img, 0, sizeof img);
    memset(&e, 0, sizeof e);
    rc = 1;
    ctx = make_ctx(threads);
    x = (float *)malloc(sizeof(float) * 6 * (size_t)S * (size_t)S);
    map = (float *)malloc(sizeof(float) * (size_t)N * (size_t)N);
    heat = (float *)malloc(sizeof(float) * (size_t)N);
    ink = (unsigned char *)malloc((size_t)N);
    if (!ctx || !x || !map || !heat || !ink) {
        if (ctx) fprintf(stderr, "error: out of memory\n");
    } else if (explain_input(sketch, 1, S, &pic[0], x) != ZS_OK) {
        fprintf(stderr, "error: %s: %s\n", sketch, zs_last_error());
    } else if (explain_input(photo, 0, S, &pic[1], x + 3 * (size_t)S * (size_t)S) != ZS_OK) {
        fprintf(stderr, "error: %s: %s\n", photo, zs_last_error());
    } else if (zs_explain_compute(ctx, &m, x, x + 3 * (size_t)S * (size_t)S, &e) != ZS_OK ||
               zs_explain_patch_map(&e, (zs_explain_map_kind)mk, map) != ZS_OK ||
               zs_explain_heat(ctx, &m, x, x + 3 * (size_t)S * (size_t)S, &e, map, (zs_explain_heat_kind)hk, heat) != ZS_OK ||
               zs_explain_ink_mask(&pic[0], m.dims.grid, ink) < 0 ||
               explain_panel(sketch, 1, &pic[0], (int)size, &pan[0]) != ZS_OK ||
               explain_panel(photo, 0, &pic[1], (int)size, &pan[1]) != ZS_OK) {
        fail();
    } else if ((n = zs_explain_top_pairs(map, N, N, all_s ? NULL : ink, (int)top, pairs)) < 0) {
        fail();
    } else {
        char cap0[128], cap1[160], cap2[160], cap3[160], t1[64], t2[64];
        zs_explain_view v;
        memset(&v, 0, sizeof v);
        snprintf(cap0, sizeof cap0, "RN score %.4f   ret distance %.4f", (double)e.rn_score, (double)e.ret_dist);
        snprintf(cap1, sizeof cap1, "lines: %s", map_text[mk]);
        snprintf(cap2, sizeof cap2, "heat: %s", heat_text[hk]);
        snprintf(cap3, sizeof cap3, "anchors: %s (SPEC 1.4 raw reshape)",
                 e.anchors_whole ? "each of the anchor tokens reads the whole image" : "each anchor token reads patches all over the image");
        snprintf(t1, sizeof t1, "photo: top %d matches", n);
        snprintf(t2, sizeof t2, "photo: heat (%s)", heat_names[hk]);
        v.grid = m.dims.grid;
        v.pairs = pairs;
        v.n_pairs = n;
        v.heat = heat;
        v.title[0] = "sketch";
        v.title[1] = t1;
        v.title[2] = t2;
        v.caption[0] = cap0;
        v.caption[1] = cap1;
        v.caption[2] = cap2;
        v.caption[3] = cap3;
        printf("ret_distance %.7g\nrn_score %.7g\n", (double)e.ret_dist, (double)e.rn_score);
        for (i = 0; i < n; i++) printf("pair %d sketch_patch %d photo_patch %d %s %.4f\n", i + 1, pairs[i].sk, pairs[i].ph, map_names[mk], (double)pairs[i].value);
        if (zs_explain_render(&img, &pan[0], &pan[1], &v) != ZS_OK) fail();
        else if (explain_save(out, &img) == ZS_OK) rc = 0;
        zs_image_free(&img);
        if (rc == 0 && synth) {
            /* at the largest multiple of the grid within --size */
            int side = (int)size / m.dims.grid * m.dims.grid;
            zs_image ph;
            rc = 1;
            if (side < m.dims.grid) fprintf(stderr, "error: --size %ld is smaller than the %d-cell grid\n", size, m.dims.grid);
            else if (explain_panel(photo, 0, &pic[1], side, &ph) != ZS_OK) fail();
            else {
                if (zs_explain_synthesize(&img, &ph, m.dims.grid, map, (int)blend, NULL) != ZS_OK) fail();
                else if (explain_save(synth, &img) == ZS_OK) rc = 0;
                zs_image_free(&ph);
                zs_image_free(&img);
            }
        }
    }
    for (i = 0; i < 2; i++) { zs_image_free(&pic[i]); zs_image_free(&pan[i]); }
    zs_explain_free(&e);
    free(x); free(map); free(heat); free(ink);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    return rc;
}

/* ---- convert / inspect ------------------------------------------------------- */
static int cmd_convert(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir convert IN.pth OUT.safetensors\n"
        "Converts a torch.save checkpoint (PyTorch >= 1.6 zip format; read without\n"
        "executing anything: a whitelist of pickle globals) into safetensors: tensors\n"
        "keep their names (wrappers such as {'model': sd} and 'module.' prefixes\n"
        "removed) and dtypes; scalars such as epoch / map_all become metadata.\n";
    if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) { printf("%s", usage); return 0; }
    if (argc != 2) { fprintf(stderr, "%s", usage); return 2; }
    if (zs_pth_convert(argv[0], argv[1]) != ZS_OK) return fail();
    printf("wrote %s\n", argv[1]);
    return 0;
}

static int cmd_inspect(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir inspect FILE\n"
        "Lists the tensors (name, dtype, shape) and metadata of a .safetensors or\n"
        ".pth weights file.\n";
    zs_safetensors *st;
    int i, k, n;
    double total = 0;
    if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) { printf("%s", usage); return 0; }
    if (argc != 1) { fprintf(stderr, "%s", usage); return 2; }
    if (!(st = zs_weights_open(argv[0]))) return fail();
    n = zs_st_count(st);
    for (i = 0; i < n; i++) {
        const zs_st_info *t = zs_st_get(st, i);
        printf("%-64s %-5s [", t->name, t->dtype);
        for (k = 0; k < t->ndim; k++) printf(k ? ", %lld" : "%lld", (long long)t->shape[k]);
        printf("]\n");
        total += (double)t->numel;
    }
    for (i = 0; i < zs_st_metadata_count(st); i++) {
        const char *key, *val;
        if (zs_st_metadata_get(st, i, &key, &val) == ZS_OK) printf("metadata %s = %s\n", key, val);
    }
    printf("%d tensors, %.0f values\n", n, total);
    zs_st_close(st);
    return 0;
}

/* ---- TCN (SPEC 2): --model tcn ------------------------------------------------ */
/* A weights file is TCN when zs_tcn_save marked it ("zsesbir.model" = "tcn")
   or, for released / converted checkpoints, when it has the hash head. */
static int weights_are_tcn(const char *path) {
    zs_safetensors *st = zs_weights_open(path);
    const char *mv;
    int i, n, tcn = 0;
    if (!st) return 0; /* the model's own loader reports the problem */
    mv = zs_st_metadata(st, "zsesbir.model");
    if (mv) tcn = !strcmp(mv, "tcn");
    else
        for (i = 0, n = zs_st_count(st); i < n && !tcn; i++) tcn = strstr(zs_st_get(st, i)->name, "fc_hash.0.weight") != NULL;
    zs_st_close(st);
    return tcn;
}

/* one normalised [3,S,S] TCN input: .npy as is, else resize + ImageNet normalisation (SPEC 3) */
static int tcn_prep(const char *path, int size, float *out) {
    zs_image im;
    int r;
    if (has_ext(path, ".npy")) return prep_input(path, 0, size, out);
    if ((r = load_picture(path, &im)) != ZS_OK) return r;
    r = zs_preprocess_tcn(&im, size, out);
    zs_image_free(&im);
    return r;
}

/* L2-normalised embeddings emb[n,D] of n files, in batches */
static int tcn_embed_files(zs_ctx *ctx, zs_tcn *m, char **paths, int n, int is_sketch, int batch, float *emb, const char *what) {
    int S = m->cfg.img_size, i, j, rc = ZS_OK;
    size_t img = 3 * (size_t)S * (size_t)S;
    float *x = (float *)malloc(sizeof(float) * img * (size_t)batch);
    prog_t p;
    if (!x) { fprintf(stderr, "error: out of memory\n"); return ZS_ERR_NOMEM; }
    prog_start(&p, what, n);
    for (i = 0; i < n && rc == ZS_OK; i += batch) {
        int b = n - i < batch ? n - i : batch;
        int64_t s4[4];
        zs_mark mk = zs_ctx_mark(ctx);
        zs_tensor *t;
        for (j = 0; j < b && rc == ZS_OK; j++)
            if ((rc = tcn_prep(paths[i + j], S, x + (size_t)j * img)) != ZS_OK) fprintf(stderr, "error: %s: %s\n", paths[i + j], zs_last_error());
        s4[0] = b; s4[1] = 3; s4[2] = S; s4[3] = S;
        if (rc == ZS_OK) {
            t = zs_from_data(ctx, x, 4, s4);
            if (!t || (rc = zs_tcn_embed(ctx, m, t, is_sketch, emb + (size_t)i * (size_t)m->cfg.dim)) != ZS_OK) { rc = rc ? rc : ZS_ERR_NOMEM; fail(); }
        }
        zs_ctx_release(ctx, mk);
        prog_update(&p, i + b, NULL);
    }
    prog_end(&p);
    free(x);
    return rc;
}

static uint64_t tcn_config_hash(const zs_tcn *m, char *buf, size_t cap) {
    if (zs_tcn_config_format(&m->cfg, buf, cap) != ZS_OK) buf[0] = 0;
    return zs_hash_bytes(buf, strlen(buf), 0);
}

/* dist[nq,ng] = Euclidean distances of L2-normalised rows */
static void euclid(float *dist, const float *q, int nq, const float *g, int ng, int D) {
    int i, j, k;
    for (i = 0; i < nq; i++)
        for (j = 0; j < ng; j++) {
            double s = 0;
            for (k = 0; k < D; k++) { double t = (double)q[(size_t)i * D + k] - g[(size_t)j * D + k]; s += t * t; }
            dist[(size_t)i * ng + j] = (float)sqrt(s);
        }
}

/* W (write-then-rename) */
static int tcn_save_weights(const zs_tcn *m, const char *out) {
    char tmp[4096];
    if (strlen(out) > 4000) { fprintf(stderr, "error: output path too long\n"); return 1; }
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (zs_tcn_save(m, tmp) != ZS_OK) return fail();
    if (rename(tmp, out) != 0) { fprintf(stderr, "error: cannot rename %s to %s\n", tmp, out); return 1; }
    return 0;
}

static int tcn_save_checkpoint(const zs_tcn *m, const zs_optim *opt, const char *out) {
    char tmp[4096], ost[4096];
    if (tcn_save_weights(m, out)) return 1;
    snprintf(ost, sizeof ost, "%s.optim", out);
    snprintf(tmp, sizeof tmp, "%s.optim.tmp", out);
    if (zs_optim_save(opt, tmp) != ZS_OK) return fail();
    if (rename(tmp, ost) != 0) { fprintf(stderr, "error: cannot rename %s to %s\n", tmp, ost); return 1; }
    return 0;
}

/* resized 8-bit image i of a cache (loaded once) */
static int tcn_cached(imcache_t *c, const char *path, int i, int size, zs_image *out) {
    size_t bytes = 3 * (size_t)size * (size_t)size;
    zs_image im;
    int r;
    if (c->img[i]) {
        if ((r = zs_image_alloc(out, size, size)) != ZS_OK) return r;
        memcpy(out->rgb, c->img[i], bytes);
        return ZS_OK;
    }
    if ((r = load_picture(path, &im)) != ZS_OK) return r;
    r = zs_image_resize_bicubic_pil(&im, size, size, out);
    zs_image_free(&im);
    if (r == ZS_OK && c->used + bytes <= c->cap && (c->img[i] = (unsigned char *)malloc(bytes)) != NULL) {
        memcpy(c->img[i], out->rgb, bytes);
        c->used += bytes;
    }
    return r;
}

static int cmd_train_tcn(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir train --model tcn --data DIR --test-classes FILE --steps N --batch B --out W.safetensors [options]\n"
        "Trains TCN (SPEC 2: CE on sketches and photos, distillation, semantic batch-hard with\n"
        "word vectors, soft weight sharing x1000; Adam with the release's lr schedule) on\n"
        "pairs of a SEEN class's sketch and a photo of the same class, both given the same\n"
        "random flip / scale / rotation / shift. Saves W (TCN checkpoint names, metadata\n"
        "zsesbir.model = tcn) and W.optim every --save-every steps and at the end.\n"
        "options:\n"
        "  --arch resnet18|resnet34|resnet50|tiny (resnet50)   --dim D (64)   --size S (224)\n"
        "  --wordvec F        class word vectors (default DIR/../wordvec/<basename DIR>_gwv300.txt)\n"
        "  --init W           torchvision-named ImageNet weights into both encoders (.safetensors/.pth)\n"
        "  --teacher W        frozen ImageNet ResNet (with fc) for the KD term and the SVD head\n"
        "                     init of SPEC 2.1; without it the KD term is off\n"
        "  --resume W         continue from W and W.optim\n"
        "  --lr X (1e-4)      Adam lr (weight decay 5e-4); lr(e) = lr * 0.001^(e / (2 epochs))\n"
        "  --epochs E         schedule length in epochs (default: the run, steps x B / sketches)\n"
        "  --bits K           after training, fit ITQ (K bits) on the training photos' embeddings\n"
        "                     and write it to W.itq (index/eval --itq W.itq use it)\n"
        "  --mssbn            modality-specific BatchNorm1d head + dropout (TU-Berlin, QuickDraw)\n"
        "  --no-aug           no augmentation     --checkpoint   recompute blocks in backward\n"
        "  --class-list F   --seed S (1)   --save-every N (500)   --log-every N (50)\n"
        "  --threads T (2)  --cache-mb N (4096)\n"
        "  --plan F           write what every step sees to F and exit without training: per\n"
        "                     pair (one tab-separated line) the step, its lr, the training-class\n"
        "                     index and name, the semantic-metric weights a of the sketch and of\n"
        "                     the photo, the augmentation (flip scale angle tx ty, in pixels of\n"
        "                     the --size image) and the sketch and photo paths; W then receives\n"
        "                     the weights step 1 starts from (no W.optim), so a reference\n"
        "                     implementation can train from the same weights on the same batches\n";
    const char *model = NULL, *data = NULL, *tests = NULL, *clist = NULL, *steps = NULL, *batch = NULL, *out = NULL, *resume = NULL;
    const char *init = NULL, *teacher_w = NULL, *threads = NULL, *seed = "1", *lr = NULL, *save_every = NULL, *log_every = NULL;
    const char *cache_mb = NULL, *ckpt = NULL, *arch = "resnet50", *dim = NULL, *size = NULL, *wvf = NULL, *epochs = NULL;
    const char *bits = NULL, *mssbn = NULL, *noaug = NULL, *plan = NULL;
    FILE *plan_f = NULL;
    opts_t o = {{{0}}, 0};
    long n_steps = 0, B = 0, sd = 1, save_n = 500, log_n = 50, cmb = 4096, D = 64, S = 224, E = 0, K = 0, step, start;
    double lr_v = 1e-4, t0, ema = -1;
    zs_dataset ds;
    zs_tcn m;
    zs_resnet teacher;
    zs_tcn_config c = zs_tcn_config_default();
    zs_ctx *ctx = NULL;
    zs_optim *optim = NULL;
    imcache_t sk = {0, 0, 0, 0}, ph = {0, 0, 0, 0};
    float *skx = NULL, *phx = NULL, *wv = NULL, *wvb = NULL, *alpha = NULL;
    int32_t *seen_idx = NULL, *lab = NULL, *train_sk = NULL;
    char wvpath[4200];
    const char **names = NULL;
    prog_t p;
    int rc, i, n_train = 0, have_teacher = 0;
    size_t img;
    memset(&m, 0, sizeof m);
    memset(&teacher, 0, sizeof teacher);
    opt(&o, "--model", &model); opt(&o, "--data", &data); opt(&o, "--test-classes", &tests); opt(&o, "--class-list", &clist);
    opt(&o, "--steps", &steps); opt(&o, "--batch", &batch); opt(&o, "--out", &out); opt(&o, "--resume", &resume);
    opt(&o, "--init", &init); opt(&o, "--teacher", &teacher_w); opt(&o, "--threads", &threads); opt(&o, "--seed", &seed);
    opt(&o, "--lr", &lr); opt(&o, "--save-every", &save_every); opt(&o, "--log-every", &log_every); opt(&o, "--cache-mb", &cache_mb);
    flag(&o, "--checkpoint", &ckpt); opt(&o, "--arch", &arch); opt(&o, "--dim", &dim); opt(&o, "--size", &size);
    opt(&o, "--wordvec", &wvf); opt(&o, "--epochs", &epochs); opt(&o, "--bits", &bits); flag(&o, "--mssbn", &mssbn);
    flag(&o, "--no-aug", &noaug); opt(&o, "--plan", &plan);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(data, "--data", usage)) || (rc = need(tests, "--test-classes", usage)) || (rc = need(steps, "--steps", usage)) ||
        (rc = need(batch, "--batch", usage)) || (rc = need(out, "--out", usage)) ||
        (rc = int_opt(steps, "--steps", 1, 100000000L, &n_steps)) || (rc = int_opt(batch, "--batch", 1, 4096, &B)) ||
        (rc = int_opt(seed, "--seed", 0, 0x7fffffffL, &sd)) || (rc = int_opt(save_every, "--save-every", 1, 100000000L, &save_n)) ||
        (rc = int_opt(log_every, "--log-every", 1, 100000000L, &log_n)) || (rc = int_opt(cache_mb, "--cache-mb", 0, 1L << 30, &cmb)) ||
        (rc = int_opt(dim, "--dim", 1, 65536, &D)) || (rc = int_opt(size, "--size", 16, 4096, &S)) ||
        (rc = int_opt(epochs, "--epochs", 1, 1000000, &E)) || (rc = int_opt(bits, "--bits", 1, 65536, &K)) ||
        (rc = float_opt(lr, "--lr", 0, 10, &lr_v)))
        return rc;
    if (zs_resnet_config_named(&c.backbone, arch) != ZS_OK) { fprintf(stderr, "--arch: %s\n\n%s", zs_last_error(), usage); return 2; }
    c.backbone.num_classes = 0;
    if (K > D) { fprintf(stderr, "--bits %ld: at most --dim (%ld)\n", K, D); return 2; }
    if (zs_dataset_open(&ds, data, clist) != ZS_OK || zs_dataset_set_unseen(&ds, tests) != ZS_OK) { zs_dataset_free(&ds); return fail(); }
    printf("data: %d classes (%d seen for training, %d held out), %d photos, %d sketches\n", ds.n_classes, ds.n_seen, ds.n_unseen,
           ds.n_photos, ds.n_sketches);
    rc = 1;
    seen_idx = (int32_t *)malloc(sizeof(int32_t) * ((size_t)ds.n_classes + 1));
    train_sk = (int32_t *)malloc(sizeof(int32_t) * ((size_t)ds.n_sketches + 1));
    names = (const char **)malloc(sizeof(char *) * ((size_t)ds.n_seen + 1));
    wv = (float *)malloc(sizeof(float) * 300 * ((size_t)ds.n_seen + 1));
    if (!seen_idx || !train_sk || !names || !wv) { fprintf(stderr, "error: out of memory\n"); goto done; }
    for (i = 0; i < ds.n_classes; i++) seen_idx[i] = -1;
    for (i = 0; i < ds.n_seen; i++) { seen_idx[ds.seen_class[i]] = i; names[i] = ds.class_name[ds.seen_class[i]]; }
    for (i = 0; i < ds.n_sketches; i++)
        if (!ds.unseen[ds.sketch_label[i]] && ds.photo_count[ds.sketch_label[i]] > 0) train_sk[n_train++] = i;
    if (!n_train) { fprintf(stderr, "error: no sketches of seen classes with photos\n"); goto done; }
    if (!wvf) {
        char d[4096];
        const char *b;
        size_t L = strlen(data);
        if (L >= sizeof d) { fprintf(stderr, "error: --data path too long\n"); goto done; }
        memcpy(d, data, L + 1);
        while (L > 1 && d[L - 1] == '/') d[--L] = 0;
        b = strrchr(d, '/');
        snprintf(wvpath, sizeof wvpath, "%.*s%swordvec/%s_gwv300.txt", b ? (int)(b - d + 1) : 0, d, b ? "" : "../", b ? b + 1 : d);
        wvf = wvpath;
    }
    if (zs_tcn_wordvec_load(wv, wvf, names, ds.n_seen, 300) != ZS_OK) { fail(); goto done; }
    if (teacher_w) {
        if (zs_resnet_load(&teacher, teacher_w, "", 0) != ZS_OK) { fail(); goto done; }
        if (!teacher.fc_w || zs_resnet_feature_dim(&teacher.cfg) != zs_resnet_feature_dim(&c.backbone)) {
            fprintf(stderr, "error: --teacher %s: need a ResNet with fc and %d features (the --arch)\n", teacher_w, zs_resnet_feature_dim(&c.backbone));
            goto done;
        }
        have_teacher = 1;
    }
    if (resume) {
        if (zs_tcn_load(&m, resume, 1) != ZS_OK) { fail(); goto done; }
        if (m.cfg.n_classes != ds.n_seen) { fprintf(stderr, "error: %s classifies %d classes, the data has %d seen\n", resume, m.cfg.n_classes, ds.n_seen); goto done; }
    } else {
        c.dim = (int)D; c.n_classes = ds.n_seen; c.wv_dim = 300; c.mssbn = mssbn != NULL; c.img_size = (int)S;
        if (have_teacher) c.kd_classes = teacher.cfg.num_classes;
        if (zs_tcn_init(&m, &c, 1, (uint64_t)sd) != ZS_OK) { fail(); goto done; }
        if (init && zs_tcn_load_backbone(&m, init, "") != ZS_OK) { fail(); goto done; }
        if (have_teacher) { /* SPEC 2.1: heads from the teacher's fc (SVD) */
            int F = zs_resnet_feature_dim(&c.backbone), NK = teacher.cfg.num_classes;
            float *hw = (float *)malloc(sizeof(float) * (size_t)D * (size_t)F), *kw = (float *)malloc(sizeof(float) * (size_t)NK * (size_t)D);
            int r = hw && kw ? zs_tcn_init_heads(hw, kw, NULL, (const float *)teacher.fc_w->data, (const float *)teacher.fc_b->data, NK, F, (int)D)
                             : ZS_ERR_NOMEM;
            if (r == ZS_OK) r = zs_tcn_set_heads(&m, hw, kw, (const float *)teacher.fc_b->data);
            free(hw);
            free(kw);
            if (r != ZS_OK) { fail(); goto done; }
            printf("heads initialised from the teacher's fc by SVD (SPEC 2.1)\n");
        }
    }
    if (have_teacher) m.teacher = &teacher;
    else {
        m.cfg.w_kd = 0.0f;
        printf("note: no --teacher: the distillation term is off\n");
    }
    m.enc[0].checkpoint = m.enc[1].checkpoint = ckpt != NULL;
    S = m.cfg.img_size;
    {
        char cfg[512];
        tcn_config_hash(&m, cfg, sizeof cfg);
        printf("model: %zu parameters (%s)\n", m.params.numel, cfg);
    }
    if (!(optim = zs_tcn_optim_create(&m, (float)lr_v))) { fail(); goto done; }
    if (resume && resume_optim(optim, resume)) goto done;
    if (!E) E = (long)(((double)n_steps * (double)B + n_train - 1) / n_train);
    if (E < 1) E = 1;
    if (!(ctx = make_ctx(threads))) goto done;
    img = 3 * (size_t)S * (size_t)S;
    skx = (float *)malloc(sizeof(float) * img * (size_t)B);
    phx = (float *)malloc(sizeof(float) * img * (size_t)B);
    wvb = (float *)malloc(sizeof(float) * 300 * (size_t)B);
    lab = (int32_t *)malloc(sizeof(int32_t) * (size_t)B);
    alpha = (float *)malloc(sizeof(float) * 2 * (size_t)B);
    sk.img = (unsigned char **)calloc((size_t)ds.n_sketches + 1, sizeof(unsigned char *));
    ph.img = (unsigned char **)calloc((size_t)ds.n_photos + 1, sizeof(unsigned char *));
    if (!skx || !phx || !wvb || !lab || !alpha || !sk.img || !ph.img) { fprintf(stderr, "error: out of memory\n"); goto done; }
    sk.n = ds.n_sketches; ph.n = ds.n_photos;
    sk.cap = ph.cap = (size_t)cmb << 19;
    step = start = zs_optim_steps(optim);
    if (plan) {
        if (step >= n_steps) { fprintf(stderr, "error: already at step %ld of %ld: nothing to plan\n", step, n_steps); goto done; }
        if (!(plan_f = fopen(plan, "w"))) { fprintf(stderr, "error: cannot write %s\n", plan); goto done; }
        /* the weights the planned steps start from, for the reference run */
        if (tcn_save_weights(&m, out)) goto done;
        fprintf(plan_f, "# zsesbir train --model tcn plan: seed %ld batch %ld steps %ld..%ld epochs %ld lr %.9g wd %.9g size %ld aug %s kd %s mssbn %d\n",
                sd, B, start + 1, n_steps, E, lr_v, 5e-4, S, noaug ? "off" : "on", have_teacher ? "on" : "off", m.cfg.mssbn);
        fprintf(plan_f, "# wordvec %s\n", wvf);
        fprintf(plan_f, "# step\tlr\tlabel\tclass\talpha_sketch\talpha_photo\tflip\tscale\tangle\ttx\tty\tsketch\tphoto\n");
    } else
        printf("training %ld steps of %ld pairs (%d training sketches, lr schedule over %ld epochs)%s\n", n_steps - start, B, n_train, E,
               noaug ? ", no augmentation" : "");
    prog_start(&p, plan ? "plan" : "train", n_steps);
    t0 = now();
    for (; step < n_steps; step++) {
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, sdv[3] = {0.229f, 0.224f, 0.225f};
        uint64_t rng = splitmix((uint64_t)sd * 0x100000001b3ull + (uint64_t)step);
        int64_t s4[4];
        zs_tcn_batch bt;
        zs_tcn_losses L;
        int b, e = (int)((double)step * (double)B / (double)n_train);
        float lr_e = zs_tcn_lr((float)lr_v, e, (int)E);
        zs_optim_set_lr(optim, -1, lr_e);
        /* the semantic metric's a per sample (sketches, then photos): drawn here, first
           from the step's stream, so the plan can list them */
        zs_ctx_seed(ctx, splitmix((uint64_t)sd ^ ((uint64_t)step << 20)));
        for (b = 0; b < 2 * B; b++) alpha[b] = zs_rand_uniform(ctx);
        for (b = 0; b < B; b++) {
            /* the pair of step s depends only on (seed, s): resuming replays it */
            int si, cl, pi;
            zs_image a0, a1, o0, o1;
            zs_tcn_aug ag;
            rng = splitmix(rng);
            si = train_sk[rng % (uint64_t)n_train];
            cl = ds.sketch_label[si];
            rng = splitmix(rng);
            pi = ds.photo_start[cl] + (int)(rng % (uint64_t)ds.photo_count[cl]);
            ag = noaug ? zs_tcn_aug_identity() : zs_tcn_aug_sample((uint64_t)sd, (uint64_t)step * (uint64_t)B + (uint64_t)b);
            ag.tx *= (float)S / 224.0f; /* the release's +-10 px are at 224 */
            ag.ty *= (float)S / 224.0f;
            if (plan_f) {
                fprintf(plan_f, "%ld\t%.9g\t%d\t%s\t%.9g\t%.9g\t%d\t%.9g\t%.9g\t%.9g\t%.9g\t%s\t%s\n", step + 1, (double)lr_e, seen_idx[cl],
                        ds.class_name[cl], (double)alpha[b], (double)alpha[B + b], ag.flip, (double)ag.scale, (double)ag.angle, (double)ag.tx,
                        (double)ag.ty, ds.sketch_path[si], ds.photo_path[pi]);
                continue;
            }
            if (tcn_cached(&sk, ds.sketch_path[si], si, (int)S, &a0) != ZS_OK) { prog_end(&p); fprintf(stderr, "error: %s: %s\n", ds.sketch_path[si], zs_last_error()); goto done; }
            if (tcn_cached(&ph, ds.photo_path[pi], pi, (int)S, &a1) != ZS_OK) { zs_image_free(&a0); prog_end(&p); fprintf(stderr, "error: %s: %s\n", ds.photo_path[pi], zs_last_error()); goto done; }
            if (zs_tcn_augment_pair(&o0, &o1, &a0, &a1, &ag) != ZS_OK) { zs_image_free(&a0); zs_image_free(&a1); prog_end(&p); fail(); goto done; }
            zs_image_normalize(&o0, mean, sdv, skx + (size_t)b * img);
            zs_image_normalize(&o1, mean, sdv, phx + (size_t)b * img);
            zs_image_free(&a0); zs_image_free(&a1); zs_image_free(&o0); zs_image_free(&o1);
            lab[b] = seen_idx[cl];
            memcpy(wvb + (size_t)b * 300, wv + (size_t)lab[b] * 300, sizeof(float) * 300);
        }
        if (plan_f) {
            prog_update(&p, step + 1, NULL);
            continue;
        }
        s4[0] = B; s4[1] = 3; s4[2] = S; s4[3] = S;
        memset(&bt, 0, sizeof bt);
        bt.sketch = zs_from_data(ctx, skx, 4, s4);
        bt.photo = zs_from_data(ctx, phx, 4, s4);
        bt.labels = lab;
        bt.wordvec = wvb;
        bt.alpha = alpha;
        if (!bt.sketch || !bt.photo || zs_tcn_train_step(ctx, &m, optim, &bt, &L) != ZS_OK) { prog_end(&p); fail(); goto done; }
        zs_ctx_reset(ctx);
        ema = ema < 0 ? L.total : 0.95 * ema + 0.05 * L.total;
        {
            char extra[64];
            snprintf(extra, sizeof extra, "loss %.4f", ema);
            prog_update(&p, step + 1, extra);
        }
        if ((step + 1) % log_n == 0 || step + 1 == n_steps) {
            double el = now() - t0;
            if (p.on) fprintf(stderr, "\r\033[K");
            printf("step %ld/%ld  loss %.6f (cls %.6f/%.6f kd %.6f sbh %.6f share %.6f; smoothed %.4f)  %.2f s/step\n", step + 1, n_steps,
                   (double)L.total, (double)L.cls_sketch, (double)L.cls_photo, (double)L.kd, (double)L.sbh, (double)L.share, ema,
                   el / (double)(step + 1 - start));
            fflush(stdout);
        }
        if ((step + 1) % save_n == 0 && step + 1 < n_steps && tcn_save_checkpoint(&m, optim, out)) goto done;
    }
    prog_end(&p);
    if (plan_f) {
        rc = fclose(plan_f) == 0 ? 0 : 1;
        plan_f = NULL;
        if (rc) fprintf(stderr, "error: cannot write %s\n", plan);
        else printf("wrote the plan of steps %ld..%ld to %s and the weights step %ld starts from to %s\n", start + 1, n_steps, plan, start + 1, out);
        goto done;
    }
    if (tcn_save_checkpoint(&m, optim, out)) goto done;
    printf("wrote %s (+ .optim) after %ld steps, %.1f s, smoothed loss %.4f\n", out, n_steps, now() - t0, ema);
    if (K > 0) { /* ITQ on (at most 2000) training photos */
        int n = 0, stride;
        char **pp = (char **)malloc(sizeof(char *) * ((size_t)ds.n_photos + 1)), itqp[4200];
        float *pe = NULL;
        zs_itq q;
        for (i = 0; pp && i < ds.n_photos; i++)
            if (!ds.unseen[ds.photo_label[i]]) pp[n++] = ds.photo_path[i];
        stride = n > 2000 ? (n + 1999) / 2000 : 1;
        for (i = 0; i * stride < n; i++) pp[i] = pp[i * stride];
        n = i;
        if (!pp || n < 2 || !(pe = (float *)malloc(sizeof(float) * (size_t)n * (size_t)D))) { free(pp); fprintf(stderr, "error: ITQ needs >= 2 training photos (or memory)\n"); goto done; }
        snprintf(itqp, sizeof itqp, "%.4000s.itq", out);
        if (tcn_embed_files(ctx, &m, pp, n, 0, 16, pe, "ITQ photos") != ZS_OK || zs_itq_train(&q, NULL, pe, n, (int)D, (int)K, 50, (uint64_t)sd, NULL) != ZS_OK) {
            free(pp); free(pe); fail(); goto done;
        }
        free(pp);
        free(pe);
        if (zs_itq_save(&q, itqp) != ZS_OK) { zs_itq_free(&q); fail(); goto done; }
        zs_itq_free(&q);
        printf("wrote %s: ITQ, %ld bits, fitted on %d training photos\n", itqp, K, n);
    }
    rc = 0;
done:
    if (plan_f) fclose(plan_f);
    zs_optim_free(optim);
    zs_ctx_free(ctx);
    zs_tcn_free(&m);
    zs_resnet_free(&teacher);
    for (i = 0; sk.img && i < sk.n; i++) free(sk.img[i]);
    for (i = 0; ph.img && i < ph.n; i++) free(ph.img[i]);
    free(sk.img); free(ph.img);
    free(skx); free(phx); free(wv); free(wvb); free(alpha); free(lab); free(seen_idx); free(train_sk); free((void *)names);
    zs_dataset_free(&ds);
    (void)model;
    return rc;
}

/* ITQ for an embedding set: from --itq F, or fitted here on x (K bits) */
static int tcn_itq(zs_itq *q, const char *itq_file, const float *x, int n, int D, long K, long sd) {
    if (itq_file) {
        if (zs_itq_load(q, itq_file) != ZS_OK) return fail();
        if (q->dim != D) { fprintf(stderr, "error: %s rotates %d-dim embeddings, the model makes %d\n", itq_file, q->dim, D); zs_itq_free(q); return 1; }
        return 0;
    }
    if (n < 2) { fprintf(stderr, "error: ITQ needs at least 2 embeddings to fit on\n"); return 1; }
    if (zs_itq_train(q, NULL, x, n, D, (int)(K ? K : D), 50, (uint64_t)sd, NULL) != ZS_OK) return fail();
    return 0;
}

static int cmd_index_tcn(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir index --weights W --photos DIR --out G.zsi [--bits K | --itq F] [--batch B] [--threads T]\n"
        "TCN weights: embeds every photo under DIR (files in DIR and its class sub-folders) into\n"
        "an index of L2-normalised embeddings; --bits K also fits ITQ (SPEC 2.3, 50 iterations)\n"
        "on these embeddings and stores the rotation and each photo's K-bit code (--itq F:\n"
        "a rotation fitted elsewhere, e.g. by train --bits) for `search --hash`.\n";
    const char *model = NULL, *weights = NULL, *photos = NULL, *out = NULL, *batch = NULL, *threads = NULL, *bits = NULL, *itqf = NULL, *seed = "1";
    opts_t o = {{{0}}, 0};
    zs_tcn m;
    zs_ctx *ctx = NULL;
    coll_t c;
    zs_index_info in;
    zs_index_writer *w = NULL;
    zs_itq q;
    float *emb = NULL;
    long B = 16, K = 0, sd = 1;
    int rc, i;
    char cfg[512];
    double t0 = now();
    memset(&q, 0, sizeof q);
    opt(&o, "--model", &model); opt(&o, "--weights", &weights); opt(&o, "--photos", &photos); opt(&o, "--out", &out);
    opt(&o, "--batch", &batch); opt(&o, "--threads", &threads); opt(&o, "--bits", &bits); opt(&o, "--itq", &itqf); opt(&o, "--seed", &seed);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(photos, "--photos", usage)) || (rc = need(out, "--out", usage)) ||
        (rc = int_opt(batch, "--batch", 1, 1024, &B)) || (rc = int_opt(bits, "--bits", 1, 65536, &K)) || (rc = int_opt(seed, "--seed", 0, 0x7fffffffL, &sd)))
        return rc;
    if (bits && itqf) { fprintf(stderr, "give --bits or --itq, not both\n\n%s", usage); return 2; }
    if (coll_scan(&c, photos)) { coll_free(&c); return 1; }
    if (zs_tcn_load(&m, weights, 0) != ZS_OK) { coll_free(&c); return fail(); }
    rc = 1;
    if (K > m.cfg.dim) { fprintf(stderr, "error: --bits %ld: at most the embedding size %d\n", K, m.cfg.dim); goto done; }
    if (!(ctx = make_ctx(threads))) goto done;
    zs_set_grad_enabled(ctx, 0);
    if (!(emb = (float *)malloc(sizeof(float) * (size_t)c.n * (size_t)m.cfg.dim))) { fprintf(stderr, "error: out of memory\n"); goto done; }
    if (tcn_embed_files(ctx, &m, c.path, c.n, 0, (int)B, emb, "index") != ZS_OK) goto done;
    if ((K || itqf) && tcn_itq(&q, itqf, emb, c.n, m.cfg.dim, K, sd)) goto done;
    memset(&in, 0, sizeof in);
    in.config_hash = tcn_config_hash(&m, cfg, sizeof cfg);
    in.weights_hash = zs_weights_hash(&m.params);
    in.config = cfg;
    in.n = c.n; in.dim = m.cfg.dim;
    in.n_classes = c.n_cls; in.class_name = (const char *const *)c.cls;
    in.path = (const char *const *)c.path; in.label = c.label;
    in.model = ZS_INDEX_MODEL_TCN;
    in.itq = q.bits ? &q : NULL;
    if (!(w = zs_index_create(out, &in))) { fail(); goto done; }
    for (i = 0; i < c.n; i++)
        if (zs_index_append(w, emb + (size_t)i * m.cfg.dim, NULL) != ZS_OK) { fail(); goto done; }
    if (zs_index_finish(w) != ZS_OK) { w = NULL; fail(); goto done; }
    w = NULL;
    printf("indexed %d photos (%d classes) into %s in %.1f s (TCN, dim %d, ITQ: %s", c.n, c.n_cls, out, now() - t0, m.cfg.dim, q.bits ? "" : "none)\n");
    if (q.bits) printf("%d bits)\n", q.bits);
    rc = 0;
done:
    zs_index_abort(w);
    zs_itq_free(&q);
    free(emb);
    zs_ctx_free(ctx);
    zs_tcn_free(&m);
    coll_free(&c);
    (void)model;
    return rc;
}

static int cmp_hit(const void *a, const void *b) {
    const zs_hit *x = (const zs_hit *)a, *y = (const zs_hit *)b;
    if (x->ret_dist != y->ret_dist) return x->ret_dist < y->ret_dist ? -1 : 1;
    return x->index - y->index;
}

static int cmd_search_tcn(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir search --weights W --index G.zsi --sketch S [--hash] [--topk 10] [--png out.png] [--threads T]\n"
        "TCN weights: ranks the indexed photos by the Euclidean distance of L2-normalised\n"
        "embeddings, or with --hash by the Hamming distance of the index's ITQ codes (index\n"
        "built with --bits). Prints rank, distance, class and path; --png as for ZSE-SBIR.\n";
    const char *model = NULL, *weights = NULL, *index = NULL, *sketch = NULL, *topk = NULL, *png = NULL, *threads = NULL, *hash = NULL, *bits = NULL;
    opts_t o = {{{0}}, 0};
    zs_tcn m;
    zs_index idx;
    zs_ctx *ctx = NULL;
    long K = 10, KB = 0;
    float *qe = NULL, *dist = NULL;
    zs_hit *hits = NULL;
    int rc, i, q_label;
    char cfg[512];
    opt(&o, "--model", &model); opt(&o, "--weights", &weights); opt(&o, "--index", &index); opt(&o, "--sketch", &sketch);
    opt(&o, "--topk", &topk); opt(&o, "--png", &png); opt(&o, "--threads", &threads); flag(&o, "--hash", &hash); opt(&o, "--bits", &bits);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(index, "--index", usage)) || (rc = need(sketch, "--sketch", usage)) ||
        (rc = int_opt(topk, "--topk", 1, 1000000, &K)) || (rc = int_opt(bits, "--bits", 1, 65536, &KB)))
        return rc;
    if (zs_index_load(index, &idx) != ZS_OK) return fail();
    if (zs_tcn_load(&m, weights, 0) != ZS_OK) { zs_index_free(&idx); return fail(); }
    rc = 1;
    if (idx.model != ZS_INDEX_MODEL_TCN || tcn_config_hash(&m, cfg, sizeof cfg) != idx.config_hash || idx.dim != m.cfg.dim) {
        fprintf(stderr, "error: %s was built for another model (%s)\n", index, idx.config);
        goto done;
    }
    if (zs_weights_hash(&m.params) != idx.weights_hash) {
        fprintf(stderr, "error: %s was built with other weights than %s: rebuild it with `zsesbir index`\n", index, weights);
        goto done;
    }
    if (hash && !idx.itq.bits) { fprintf(stderr, "error: --hash needs an index built with --bits (ITQ codes)\n"); goto done; }
    if (hash && KB && KB != idx.itq.bits) { fprintf(stderr, "error: --bits %ld, but the index holds %d-bit codes\n", KB, idx.itq.bits); goto done; }
    if (K > idx.n) K = idx.n;
    if (!(ctx = make_ctx(threads))) goto done;
    zs_set_grad_enabled(ctx, 0);
    qe = (float *)malloc(sizeof(float) * (size_t)m.cfg.dim);
    dist = (float *)malloc(sizeof(float) * ((size_t)idx.n + 1));
    hits = (zs_hit *)malloc(sizeof(zs_hit) * ((size_t)idx.n + 1));
    if (!qe || !dist || !hits) { fprintf(stderr, "error: out of memory\n"); goto done; }
    {
        char *one[1];
        one[0] = (char *)sketch;
        if (tcn_embed_files(ctx, &m, one, 1, 1, 1, qe, "query") != ZS_OK) goto done;
    }
    if (hash) {
        uint64_t qc[ZS_ITQ_WORDS(ZS_ITQ_MAX_DIM)];
        if (zs_itq_encode(&idx.itq, qc, qe, 1) != ZS_OK || zs_hamming_matrix(dist, qc, 1, idx.codes, idx.n, idx.itq.bits) != ZS_OK) { fail(); goto done; }
    } else
        euclid(dist, qe, 1, idx.emb, idx.n, m.cfg.dim);
    for (i = 0; i < idx.n; i++) { hits[i].index = i; hits[i].ret_dist = dist[i]; hits[i].rn_score = -1; }
    qsort(hits, (size_t)idx.n, sizeof *hits, cmp_hit); /* ties: lower index first, as the metrics */
    q_label = label_from_path(&idx, sketch);
    printf("%-5s %-9s %-16s %s\n", "rank", hash ? "hamming" : "distance", "class", "path");
    for (i = 0; i < K; i++) {
        int l = idx.label[hits[i].index];
        printf("%-5d %-9.5g %-16s %s\n", i + 1, (double)hits[i].ret_dist, l >= 0 ? idx.class_name[l] : "-", idx.path[hits[i].index]);
    }
    if (search_summary(&idx, hits, (int)K, q_label, sketch, png)) goto done;
    rc = 0;
done:
    free(qe); free(dist); free(hits);
    zs_ctx_free(ctx);
    zs_tcn_free(&m);
    zs_index_free(&idx);
    (void)model;
    return rc;
}

static int cmd_eval_tcn(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir eval --weights W --data DIR --test-classes FILE [--hash [--bits K | --itq F]]\n"
        "                    [--fine-grained] [--class-list F] [--batch B] [--threads T]\n"
        "TCN weights: zero-shot evaluation on the held-out classes (SPEC 2.3): their sketches\n"
        "query their photos by Euclidean distance of L2-normalised embeddings, or with --hash\n"
        "by Hamming distance of ITQ codes (K bits, default the embedding size, fitted on the\n"
        "gallery embeddings; or the rotation of --itq F). Same metric code and output as the\n"
        "ZSE-SBIR eval: the last line is  mAP@all=... P@100=... mAP@200=... P@200=...\n";
    const char *model = NULL, *weights = NULL, *data = NULL, *tests = NULL, *fg = NULL, *clist = NULL, *batch = NULL, *threads = NULL;
    const char *hash = NULL, *bits = NULL, *itqf = NULL, *seed = "1";
    opts_t o = {{{0}}, 0};
    zs_dataset ds;
    zs_tcn m;
    zs_ctx *ctx = NULL;
    zs_itq q;
    long B = 16, K = 0, sd = 1;
    int rc, nq = 0, ng = 0, D;
    split_t sp = {NULL, NULL, NULL, NULL, NULL, NULL, 0, 0};
    char **qp = NULL, **gp = NULL;
    float *qe = NULL, *ge = NULL, *dist = NULL;
    uint64_t *qc = NULL, *gc = NULL;
    double t0 = now();
    memset(&q, 0, sizeof q);
    opt(&o, "--model", &model); opt(&o, "--weights", &weights); opt(&o, "--data", &data); opt(&o, "--test-classes", &tests);
    flag(&o, "--fine-grained", &fg); opt(&o, "--class-list", &clist); opt(&o, "--batch", &batch); opt(&o, "--threads", &threads);
    flag(&o, "--hash", &hash); opt(&o, "--bits", &bits); opt(&o, "--itq", &itqf); opt(&o, "--seed", &seed);
    PARSE(argc, argv, &o, usage);
    if ((rc = need(weights, "--weights", usage)) || (rc = need(data, "--data", usage)) || (rc = need(tests, "--test-classes", usage)) ||
        (rc = int_opt(batch, "--batch", 1, 1024, &B)) || (rc = int_opt(bits, "--bits", 1, 65536, &K)) || (rc = int_opt(seed, "--seed", 0, 0x7fffffffL, &sd)))
        return rc;
    if ((bits || itqf) && !hash) { fprintf(stderr, "--bits / --itq go with --hash\n\n%s", usage); return 2; }
    if (bits && itqf) { fprintf(stderr, "give --bits or --itq, not both\n\n%s", usage); return 2; }
    if (zs_dataset_open(&ds, data, clist) != ZS_OK || zs_dataset_set_unseen(&ds, tests) != ZS_OK) { zs_dataset_free(&ds); return fail(); }
    if (zs_tcn_load(&m, weights, 0) != ZS_OK) { zs_dataset_free(&ds); return fail(); }
    rc = 1;
    D = m.cfg.dim;
    if (K > D) { fprintf(stderr, "error: --bits %ld: at most the embedding size %d\n", K, D); goto done; }
    if (split_unseen(&sp, &ds)) goto done;
    nq = sp.nq; ng = sp.ng; qp = sp.qp; gp = sp.gp;
    printf("zero-shot: %d unseen classes, %d query sketches, %d gallery photos, TCN %s\n", ds.n_unseen, nq, ng,
           hash ? "hashed (ITQ, Hamming)" : "real-valued (Euclidean)");
    if (!nq || !ng) { fprintf(stderr, "error: no sketches or photos of the unseen classes\n"); goto done; }
    if (!(ctx = make_ctx(threads))) goto done;
    zs_set_grad_enabled(ctx, 0);
    qe = (float *)malloc(sizeof(float) * (size_t)nq * (size_t)D);
    ge = (float *)malloc(sizeof(float) * (size_t)ng * (size_t)D);
    dist = (float *)malloc(sizeof(float) * (size_t)nq * (size_t)ng);
    if (!qe || !ge || !dist) { fprintf(stderr, "error: out of memory\n"); goto done; }
    if (tcn_embed_files(ctx, &m, gp, ng, 0, (int)B, ge, "photos") != ZS_OK) goto done;
    if (tcn_embed_files(ctx, &m, qp, nq, 1, (int)B, qe, "sketches") != ZS_OK) goto done;
    if (hash) {
        size_t wds;
        if (tcn_itq(&q, itqf, ge, ng, D, K, sd)) goto done;
        wds = (size_t)ZS_ITQ_WORDS(q.bits);
        qc = (uint64_t *)malloc(sizeof(uint64_t) * wds * (size_t)nq);
        gc = (uint64_t *)malloc(sizeof(uint64_t) * wds * (size_t)ng);
        if (!qc || !gc) { fprintf(stderr, "error: out of memory\n"); goto done; }
        if (zs_itq_encode(&q, qc, qe, nq) != ZS_OK || zs_itq_encode(&q, gc, ge, ng) != ZS_OK ||
            zs_hamming_matrix(dist, qc, nq, gc, ng, q.bits) != ZS_OK) { fail(); goto done; }
        printf("ITQ: %d bits (%s)\n", q.bits, itqf ? itqf : "fitted on the gallery embeddings");
    } else
        euclid(dist, qe, nq, ge, ng, D);
    rc = report_eval(dist, &sp, fg != NULL, t0);
done:
    split_free(&sp);
    free(qe); free(ge); free(dist); free(qc); free(gc);
    zs_itq_free(&q);
    zs_ctx_free(ctx);
    zs_tcn_free(&m);
    zs_dataset_free(&ds);
    (void)model;
    return rc;
}

/* --model tcn, or TCN --weights: the TCN variant of train/index/search/eval.
   --model zse is dropped from argv for the ZSE-SBIR commands. 1 tcn, 0 zse,
   -1 bad --model. */
static int pick_model(int *argc, char **argv) {
    const char *model = NULL, *weights = NULL;
    int i, j;
    for (i = 0; i + 1 < *argc; i++) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        if (!strcmp(argv[i], "--weights")) weights = argv[i + 1];
    }
    if (model && strcmp(model, "tcn") && strcmp(model, "zse")) { fprintf(stderr, "--model: zse or tcn, not '%s'\n", model); return -1; }
    if (model && !strcmp(model, "zse")) {
        for (i = j = 0; i < *argc; i++) {
            if (!strcmp(argv[i], "--model") && i + 1 < *argc) { i++; continue; }
            argv[j++] = argv[i];
        }
        *argc = j;
        return 0;
    }
    if (model) return 1;
    return weights ? weights_are_tcn(weights) : 0;
}

int main(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir <command> [options]   (zsesbir <command> --help for details)\n"
        "commands:\n"
        "  init    write randomly initialised ZSE-SBIR weights\n"
        "  train   train on the seen classes of a sketch/photo dataset (--model zse|tcn)\n"
        "  index   embed a photo collection into an index file\n"
        "  search  rank an index's photos for a sketch (optional RN rerank, contact sheet)\n"
        "  eval    zero-shot evaluation on held-out classes (mAP, P@K or acc@K)\n"
        "  embed   ret-token embedding of an image\n"
        "  score   ret distance and RN score of a sketch-photo pair\n"
        "  explain picture of the patch correspondences of a pair, sketch-to-photo synthesis\n"
        "  convert convert a PyTorch .pth checkpoint to safetensors\n"
        "  inspect list the tensors and metadata of a weights file\n"
        "  version version and build features\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("%s", usage);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version")) {
        printf("zsesbir %d.%d (stb_image: %s, threads: %s, simd: %s)\n", ZSESBIR_VERSION_MAJOR, ZSESBIR_VERSION_MINOR,
#ifdef ZSESBIR_STB_IMAGE
               "yes",
#else
               "no",
#endif
#ifdef ZSESBIR_NO_THREADS
               "no",
#else
               "yes",
#endif
#if defined(ZSESBIR_NO_SIMD)
               "off"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__AVX512F__) && !defined(ZSESBIR_NO_AVX512)
               "avx2+fma, avx-512 gemm"
#elif defined(__AVX2__) && defined(__FMA__)
               "avx2+fma"
#elif defined(__ARM_NEON)
               "neon"
#else
               "scalar"
#endif
        );
        return 0;
    }
    if (!strcmp(argv[1], "convert")) return cmd_convert(argc - 2, argv + 2);
    if (!strcmp(argv[1], "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(argv[1], "init")) return cmd_init(argc - 2, argv + 2);
    if (!strcmp(argv[1], "train") || !strcmp(argv[1], "index") || !strcmp(argv[1], "search") || !strcmp(argv[1], "eval")) {
        int n = argc - 2, tcn = pick_model(&n, argv + 2);
        if (tcn < 0) return 2;
        if (!strcmp(argv[1], "train")) return tcn ? cmd_train_tcn(n, argv + 2) : cmd_train(n, argv + 2);
        if (!strcmp(argv[1], "index")) return tcn ? cmd_index_tcn(n, argv + 2) : cmd_index(n, argv + 2);
        if (!strcmp(argv[1], "search")) return tcn ? cmd_search_tcn(n, argv + 2) : cmd_search(n, argv + 2);
        return tcn ? cmd_eval_tcn(n, argv + 2) : cmd_eval(n, argv + 2);
    }
    if (!strcmp(argv[1], "embed")) return cmd_embed(argc - 2, argv + 2);
    if (!strcmp(argv[1], "score")) return cmd_score(argc - 2, argv + 2);
    if (!strcmp(argv[1], "explain")) return cmd_explain(argc - 2, argv + 2);
    fprintf(stderr, "unknown command '%s'\n\n%s", argv[1], usage);
    return 2;
}
