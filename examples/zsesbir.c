/* zsesbir - command-line front end of zsesbir.h.

     zsesbir init  --config default|small|tiny --out W.safetensors [--seed S] [--dtype f32|f16|bf16]
     zsesbir embed --weights W --image X.npy [--out e.npy]
     zsesbir score --weights W --sketch S.npy --photo P.npy

   Images are .npy float32 arrays [3,H,W] already normalised to [-1,1]
   (SPEC 1.1); image files arrive with the data issue. Every subcommand
   takes --threads T (default 2) and --help. Exit status 0 on success,
   1 on a runtime error, 2 on a usage error. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- option parsing ------------------------------------------------------ */
typedef struct { const char *name; const char **value; int is_flag; } opt_t;

static int parse_opts(int argc, char **argv, opt_t *opts, int nopts, const char *usage) {
    int i, k;
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { printf("%s", usage); exit(0); }
        for (k = 0; k < nopts; k++)
            if (!strcmp(argv[i], opts[k].name)) break;
        if (k == nopts) { fprintf(stderr, "unknown argument '%s'\n\n%s", argv[i], usage); return 2; }
        if (opts[k].is_flag) { *opts[k].value = "1"; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s needs a value\n\n%s", argv[i], usage); return 2; }
        *opts[k].value = argv[++i];
    }
    return 0;
}

static int need(const char *v, const char *name, const char *usage) {
    if (v) return 0;
    fprintf(stderr, "missing %s\n\n%s", name, usage);
    return 2;
}

static zs_ctx *make_ctx(const char *threads) {
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    cp.n_threads = threads ? atoi(threads) : 2;
    if (cp.n_threads < 1) cp.n_threads = 1;
    ctx = zs_ctx_create(&cp);
    if (!ctx) fprintf(stderr, "error: %s\n", zs_last_error());
    return ctx;
}

/* an image argument as a [1,3,H,W] tensor of the model's size */
static zs_tensor *load_image(zs_ctx *ctx, const zs_zse *m, const char *path) {
    int ndim;
    int64_t shape[8], s4[4];
    float *data = NULL;
    zs_tensor *t;
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 4, ".npy")) {
        fprintf(stderr, "error: %s: only .npy float32 [3,H,W] inputs are supported in this build\n", path);
        return NULL;
    }
    if (zs_npy_read(path, &ndim, shape, &data) != ZS_OK) { fprintf(stderr, "error: %s\n", zs_last_error()); return NULL; }
    if (ndim != 3 || shape[0] != 3 || shape[1] != m->cfg.img_size || shape[2] != m->cfg.img_size) {
        fprintf(stderr, "error: %s: expected a [3,%d,%d] array for this model, got %d dims [%lld,...]\n", path,
                m->cfg.img_size, m->cfg.img_size, ndim, ndim ? (long long)shape[0] : 0LL);
        zs_npy_free(data);
        return NULL;
    }
    s4[0] = 1; s4[1] = 3; s4[2] = shape[1]; s4[3] = shape[2];
    t = zs_from_data(ctx, data, 4, s4);
    zs_npy_free(data);
    if (!t) fprintf(stderr, "error: %s\n", zs_last_error());
    return t;
}

/* ---- init ------------------------------------------------------------------ */
static int cmd_init(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir init --config default|small|tiny --out W.safetensors [--seed S] [--dtype f32|f16|bf16]\n"
        "Writes randomly initialised ZSE-SBIR weights (released parameter names).\n";
    const char *config = "small", *out = NULL, *seed = "1", *dtype = "f32";
    opt_t o[4];
    zs_zse_config c;
    zs_zse m;
    zs_type dt = ZS_F32;
    int rc;
    o[0].name = "--config"; o[0].value = &config; o[0].is_flag = 0;
    o[1].name = "--out"; o[1].value = &out; o[1].is_flag = 0;
    o[2].name = "--seed"; o[2].value = &seed; o[2].is_flag = 0;
    o[3].name = "--dtype"; o[3].value = &dtype; o[3].is_flag = 0;
    if ((rc = parse_opts(argc, argv, o, 4, usage)) || (rc = need(out, "--out", usage))) return rc;
    if (!strcmp(config, "default")) c = zs_zse_config_default();
    else if (!strcmp(config, "small")) c = zs_zse_config_small();
    else if (!strcmp(config, "tiny")) {
        c = zs_zse_config_default();
        c.img_size = 64; c.dim = 32; c.depth = 2; c.heads = 4; c.mlp_dim = 64;
        c.scale_ch[0] = 8; c.scale_ch[1] = 16; c.scale_ch[2] = 16; c.ca_heads = 2; c.ca_ffn = 48; c.anchor_ch = 24;
    } else { fprintf(stderr, "unknown config '%s'\n\n%s", config, usage); return 2; }
    if (!strcmp(dtype, "f16")) dt = ZS_F16;
    else if (!strcmp(dtype, "bf16")) dt = ZS_BF16;
    else if (strcmp(dtype, "f32")) { fprintf(stderr, "unknown dtype '%s'\n\n%s", dtype, usage); return 2; }
    if (zs_zse_init(&m, &c, 0, (uint64_t)strtoull(seed, NULL, 10)) != ZS_OK || zs_zse_save(&m, out, dt) != ZS_OK) {
        fprintf(stderr, "error: %s\n", zs_last_error());
        zs_zse_free(&m);
        return 1;
    }
    printf("wrote %s: %zu parameters (%s)\n", out, zs_zse_param_count(&m), dtype);
    zs_zse_free(&m);
    return 0;
}

/* ---- embed ----------------------------------------------------------------- */
static int cmd_embed(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir embed --weights W.safetensors --image X.npy [--out e.npy] [--threads T]\n"
        "Prints (or writes as .npy) the L2-normalised ret-token embedding of one image.\n";
    const char *weights = NULL, *image = NULL, *out = NULL, *threads = NULL;
    opt_t o[4];
    zs_zse m;
    zs_ctx *ctx;
    zs_tensor *x;
    float *e;
    int rc = 1, i;
    o[0].name = "--weights"; o[0].value = &weights; o[0].is_flag = 0;
    o[1].name = "--image"; o[1].value = &image; o[1].is_flag = 0;
    o[2].name = "--out"; o[2].value = &out; o[2].is_flag = 0;
    o[3].name = "--threads"; o[3].value = &threads; o[3].is_flag = 0;
    if ((rc = parse_opts(argc, argv, o, 4, usage)) || (rc = need(weights, "--weights", usage)) || (rc = need(image, "--image", usage))) return rc;
    if (zs_zse_load(&m, weights, 0) != ZS_OK) { fprintf(stderr, "error: %s\n", zs_last_error()); return 1; }
    ctx = make_ctx(threads);
    e = (float *)malloc(sizeof(float) * (size_t)m.cfg.dim);
    rc = 1;
    if (ctx && e && (x = load_image(ctx, &m, image)) != NULL) {
        if (zs_zse_embed(ctx, &m, x, e) != ZS_OK) fprintf(stderr, "error: %s\n", zs_last_error());
        else if (out) {
            int64_t s[1];
            s[0] = m.cfg.dim;
            if (zs_npy_write(out, 1, s, e) != ZS_OK) fprintf(stderr, "error: %s\n", zs_last_error());
            else rc = 0;
        } else {
            for (i = 0; i < m.cfg.dim; i++) printf(i + 1 < m.cfg.dim ? "%.7g " : "%.7g\n", (double)e[i]);
            rc = 0;
        }
    }
    free(e);
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    return rc;
}

/* ---- score ----------------------------------------------------------------- */
static int cmd_score(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir score --weights W.safetensors --sketch S.npy --photo P.npy [--threads T]\n"
        "Prints two lines: the ret-token distance (smaller = closer) and the RN\n"
        "relation score in (0,1) (larger = same category).\n";
    const char *weights = NULL, *sketch = NULL, *photo = NULL, *threads = NULL;
    opt_t o[4];
    zs_zse m;
    zs_ctx *ctx;
    int rc;
    o[0].name = "--weights"; o[0].value = &weights; o[0].is_flag = 0;
    o[1].name = "--sketch"; o[1].value = &sketch; o[1].is_flag = 0;
    o[2].name = "--photo"; o[2].value = &photo; o[2].is_flag = 0;
    o[3].name = "--threads"; o[3].value = &threads; o[3].is_flag = 0;
    if ((rc = parse_opts(argc, argv, o, 4, usage)) || (rc = need(weights, "--weights", usage)) ||
        (rc = need(sketch, "--sketch", usage)) || (rc = need(photo, "--photo", usage)))
        return rc;
    if (zs_zse_load(&m, weights, 0) != ZS_OK) { fprintf(stderr, "error: %s\n", zs_last_error()); return 1; }
    ctx = make_ctx(threads);
    rc = 1;
    if (ctx) {
        zs_tensor *s, *p, *sa_s, *sa_p, *score;
        zs_set_grad_enabled(ctx, 0);
        s = load_image(ctx, &m, sketch);
        p = s ? load_image(ctx, &m, photo) : NULL;
        if (s && p) {
            sa_s = zs_zse_sa(ctx, &m, s);
            sa_p = zs_zse_sa(ctx, &m, p);
            score = zs_zse_relation(ctx, &m, sa_s, sa_p, NULL);
            if (!score) fprintf(stderr, "error: %s\n", zs_last_error());
            else {
                /* ret distance: Euclidean distance of the L2-normalised token 0 (SPEC 1.6) */
                const float *a = (const float *)sa_s->data, *b = (const float *)sa_p->data;
                double na = 0, nb = 0, d = 0;
                int i;
                for (i = 0; i < m.cfg.dim; i++) { na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
                na = sqrt(na) > 1e-12 ? sqrt(na) : 1e-12;
                nb = sqrt(nb) > 1e-12 ? sqrt(nb) : 1e-12;
                for (i = 0; i < m.cfg.dim; i++) { double t = a[i] / na - b[i] / nb; d += t * t; }
                printf("ret_distance %.7g\nrn_score %.7g\n", sqrt(d), (double)((float *)score->data)[0]);
                rc = 0;
            }
        }
    }
    zs_ctx_free(ctx);
    zs_zse_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    const char *usage =
        "usage: zsesbir <command> [options]   (zsesbir <command> --help for details)\n"
        "commands:\n"
        "  init    write randomly initialised ZSE-SBIR weights\n"
        "  embed   ret-token embedding of an image\n"
        "  score   ret distance and RN score of a sketch-photo pair\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("%s", usage);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "init")) return cmd_init(argc - 2, argv + 2);
    if (!strcmp(argv[1], "embed")) return cmd_embed(argc - 2, argv + 2);
    if (!strcmp(argv[1], "score")) return cmd_score(argc - 2, argv + 2);
    fprintf(stderr, "unknown command '%s'\n\n%s", argv[1], usage);
    return 2;
}
