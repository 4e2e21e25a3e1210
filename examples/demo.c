/* demo.c - zsesbir end to end on procedural data, no download needed.

   24 classes of objects are drawn procedurally: "photos" are filled, shaded,
   coloured shapes on textured backgrounds with random pose, scale and
   position; "sketches" are jittery black outlines of OTHER random instances.
   A small CNN (shared by both modalities) is trained with the triplet loss on
   18 seen classes, then evaluated zero-shot on the 6 held-out classes: the
   sketches of unseen classes query a gallery of unseen-class photos, ranked
   by Euclidean distance of L2-normalised embeddings. mAP@all and P@10 are
   printed next to a random-ranking baseline, and a contact sheet (query +
   top 8) is written as a PPM picture.

   This exercises the engine (conv, pooling, batch norm, linear, triplet loss,
   AdamW, threads) before the ZSE-SBIR model lands; see README.

   build: make demo      run: ./build/demo [--steps N] [--threads T] [--out F.ppm] */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S 32          /* image side */
#define NCLASS 24
#define NSEEN 18
#define EMB 32

static const char *class_names[NCLASS] = {
    "circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon",
    "crescent", "arrow", "house", "tree", "heart", "ellipse", "L-shape", "T-shape",
    "two-dots", "frame", "lollipop", "moon-star", "pentagon", "hourglass", "bowtie", "key"};

/* ---- a tiny deterministic RNG for data ---------------------------------- */
typedef struct { uint64_t s; } rng_t;
static uint32_t rnd_u32(rng_t *r) {
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(r->s >> 33);
}
static float rnd(rng_t *r) { return (float)(rnd_u32(r) & 0xffffff) / 16777216.0f; }
static float rnd_range(rng_t *r, float lo, float hi) { return lo + (hi - lo) * rnd(r); }

/* ---- shapes: inside tests in object coordinates [-1,1]^2 -------------- */
static int in_poly(float x, float y, const float *p, int n) {
    int i, j, c = 0;
    for (i = 0, j = n - 1; i < n; j = i++)
        if (((p[2 * i + 1] > y) != (p[2 * j + 1] > y)) &&
            (x < (p[2 * j] - p[2 * i]) * (y - p[2 * i + 1]) / (p[2 * j + 1] - p[2 * i + 1]) + p[2 * i]))
            c = !c;
    return c;
}
static int in_regular(float x, float y, int n, float r, float rot) {
    float p[32];
    int i;
    for (i = 0; i < n; i++) {
        float a = rot + 6.2831853f * (float)i / (float)n;
        p[2 * i] = r * cosf(a);
        p[2 * i + 1] = r * sinf(a);
    }
    return in_poly(x, y, p, n);
}
static int in_box(float x, float y, float x0, float y0, float x1, float y1) { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
static int in_circle(float x, float y, float cx, float cy, float r) { return (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r; }

static int inside(int cls, float x, float y) {
    switch (cls) {
    case 0: return in_circle(x, y, 0, 0, 0.8f);
    case 1: return in_box(x, y, -0.7f, -0.7f, 0.7f, 0.7f);
    case 2: return in_regular(x, y, 3, 0.9f, -1.5707963f);
    case 3: { /* five-pointed star */
        float p[20];
        int i;
        for (i = 0; i < 10; i++) {
            float a = -1.5707963f + 3.14159265f * (float)i / 5.0f, r = (i & 1) ? 0.38f : 0.9f;
            p[2 * i] = r * cosf(a);
            p[2 * i + 1] = r * sinf(a);
        }
        return in_poly(x, y, p, 10);
    }
    case 4: return in_box(x, y, -0.25f, -0.85f, 0.25f, 0.85f) || in_box(x, y, -0.85f, -0.25f, 0.85f, 0.25f);
    case 5: return in_circle(x, y, 0, 0, 0.85f) && !in_circle(x, y, 0, 0, 0.5f);
    case 6: return fabsf(x) + fabsf(y) <= 0.85f;
    case 7: return in_regular(x, y, 6, 0.85f, 0);
    case 8: return in_circle(x, y, 0, 0, 0.85f) && !in_circle(x, y, 0.4f, -0.2f, 0.7f);
    case 9: return in_box(x, y, -0.85f, -0.18f, 0.2f, 0.18f) || (x >= 0.2f && fabsf(y) <= 0.6f * (0.85f - x) / 0.65f);
    case 10: return in_box(x, y, -0.6f, -0.1f, 0.6f, 0.8f) || (y < -0.1f && y > -0.8f && fabsf(x) <= 0.75f * (y + 0.8f) / 0.7f);
    case 11: return in_box(x, y, -0.12f, 0.4f, 0.12f, 0.9f) || (y <= 0.4f && y >= -0.9f && fabsf(x) <= 0.7f * (y + 0.9f) / 1.3f);
    case 12: return in_circle(x, y, -0.35f, -0.25f, 0.42f) || in_circle(x, y, 0.35f, -0.25f, 0.42f) ||
                    (y >= -0.25f && y <= 0.85f && fabsf(x) <= 0.77f * (0.85f - y) / 1.1f);
    case 13: return (x * x) / 0.81f + (y * y) / 0.25f <= 1.0f;
    case 14: return in_box(x, y, -0.7f, -0.8f, -0.25f, 0.8f) || in_box(x, y, -0.7f, 0.35f, 0.7f, 0.8f);
    case 15: return in_box(x, y, -0.8f, -0.8f, 0.8f, -0.4f) || in_box(x, y, -0.2f, -0.8f, 0.2f, 0.85f);
    case 16: return in_circle(x, y, -0.45f, 0, 0.35f) || in_circle(x, y, 0.45f, 0, 0.35f);
    case 17: return in_box(x, y, -0.8f, -0.8f, 0.8f, 0.8f) && !in_box(x, y, -0.45f, -0.45f, 0.45f, 0.45f);
    case 18: return in_circle(x, y, 0, -0.4f, 0.45f) || in_box(x, y, -0.08f, -0.1f, 0.08f, 0.9f);
    case 19: return (in_circle(x, y, -0.2f, 0, 0.7f) && !in_circle(x, y, 0.1f, -0.1f, 0.6f)) || in_regular(x - 0.55f, y + 0.1f, 4, 0.25f, 0.3f);
    case 20: return in_regular(x, y, 5, 0.85f, -1.5707963f);
    case 21: return fabsf(x) <= 0.75f * fabsf(y) + 0.08f && fabsf(y) <= 0.85f;
    case 22: return fabsf(y) <= 0.75f * fabsf(x) + 0.08f && fabsf(x) <= 0.85f;
    case 23: return (in_circle(x, y, -0.45f, 0, 0.38f) && !in_circle(x, y, -0.45f, 0, 0.18f)) ||
                    in_box(x, y, -0.1f, -0.1f, 0.85f, 0.1f) || in_box(x, y, 0.55f, 0.1f, 0.7f, 0.35f);
    default: return 0;
    }
}

typedef struct { float ang, scale, tx, ty; } pose_t;
static pose_t random_pose(rng_t *r) {
    pose_t p;
    p.ang = rnd_range(r, -0.5f, 0.5f);
    p.scale = rnd_range(r, 0.6f, 0.95f);
    p.tx = rnd_range(r, -0.15f, 0.15f);
    p.ty = rnd_range(r, -0.15f, 0.15f);
    return p;
}
/* pixel centre -> object coordinates */
static void to_object(const pose_t *p, float px, float py, float *ox, float *oy) {
    float u = (px + 0.5f) / S * 2 - 1 - p->tx, v = (py + 0.5f) / S * 2 - 1 - p->ty;
    float c = cosf(p->ang), s = sinf(p->ang);
    *ox = (c * u + s * v) / p->scale;
    *oy = (-s * u + c * v) / p->scale;
}

/* photo: shaded coloured object on a textured background, RGB bytes */
static void draw_photo(unsigned char *img, int cls, rng_t *r) {
    pose_t p = random_pose(r);
    float fg[3], bg[3], bg2[3], lx = rnd_range(r, -1, 1), ly = rnd_range(r, -1, 1), freq = rnd_range(r, 0.3f, 1.2f);
    int x, y, c, ss;
    for (c = 0; c < 3; c++) { fg[c] = rnd_range(r, 0.1f, 1.0f); bg[c] = rnd_range(r, 0.2f, 1.0f); bg2[c] = rnd_range(r, 0.2f, 1.0f); }
    for (y = 0; y < S; y++)
        for (x = 0; x < S; x++) {
            float cov = 0, ox, oy, shade, tex, col;
            for (ss = 0; ss < 4; ss++) { /* 2x2 supersampling */
                to_object(&p, (float)x + 0.25f + 0.5f * (ss & 1) - 0.5f, (float)y + 0.25f + 0.5f * (ss >> 1) - 0.5f, &ox, &oy);
                cov += inside(cls, ox, oy) ? 0.25f : 0.0f;
            }
            to_object(&p, (float)x, (float)y, &ox, &oy);
            shade = 0.75f + 0.25f * (lx * ox + ly * oy);
            tex = 0.5f + 0.5f * sinf(freq * (float)x + 0.7f * (float)y) * cosf(freq * 0.8f * (float)y);
            for (c = 0; c < 3; c++) {
                float b = bg[c] * tex + bg2[c] * (1 - tex) + rnd_range(r, -0.05f, 0.05f);
                col = cov * fg[c] * shade + (1 - cov) * b;
                col = col < 0 ? 0 : col > 1 ? 1 : col;
                img[(y * S + x) * 3 + c] = (unsigned char)(col * 255.0f + 0.5f);
            }
        }
}

/* sketch: black jittery outline on white */
static void draw_sketch(unsigned char *img, int cls, rng_t *r) {
    pose_t p = random_pose(r);
    float ph1 = rnd_range(r, 0, 6.28f), ph2 = rnd_range(r, 0, 6.28f), amp = rnd_range(r, 0.03f, 0.08f);
    static unsigned char in[S * S];
    int x, y;
    for (y = 0; y < S; y++)
        for (x = 0; x < S; x++) {
            float ox, oy;
            to_object(&p, (float)x, (float)y, &ox, &oy);
            ox += amp * sinf(3.1f * oy + ph1); /* hand tremor */
            oy += amp * sinf(2.7f * ox + ph2);
            in[y * S + x] = (unsigned char)inside(cls, ox, oy);
        }
    for (y = 0; y < S; y++)
        for (x = 0; x < S; x++) {
            int v = in[y * S + x], edge = 0;
            if (x > 0 && in[y * S + x - 1] != v) edge = 1;
            if (x < S - 1 && in[y * S + x + 1] != v) edge = 1;
            if (y > 0 && in[(y - 1) * S + x] != v) edge = 1;
            if (y < S - 1 && in[(y + 1) * S + x] != v) edge = 1;
            if (edge && rnd(r) < 0.06f) edge = 0; /* broken strokes */
            memset(img + (y * S + x) * 3, edge ? 20 : 255, 3);
        }
}

/* bytes -> normalised [3,S,S] floats, (v/255 - 0.5)/0.5 as SPEC 1.1 */
static void to_tensor(float *dst, const unsigned char *img) {
    int i, c;
    for (c = 0; c < 3; c++)
        for (i = 0; i < S * S; i++) dst[c * S * S + i] = ((float)img[i * 3 + c] / 255.0f - 0.5f) / 0.5f;
}

/* ---- the model ------------------------------------------------------------ */
typedef struct {
    zs_params p;
    zs_tensor *c1w, *b1w, *b1b, *c2w, *b2w, *b2b, *c3w, *b3w, *b3b, *fw, *fb, *cw, *cb;
    zs_tensor rm[3], rv[3]; /* batch-norm running statistics (not trained) */
    float stats[6][64];
} model_t;

static int add_param(model_t *m, const char *name, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4];
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
    return zs_params_add(&m->p, name, nd, s);
}

static int model_init(model_t *m, zs_ctx *ctx) {
    int i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11, i12, i13, k;
    int64_t s64[1] = {64}, s32[1] = {32}, s16[1] = {16};
    memset(m->stats, 0, sizeof m->stats); /* running means start at 0 */
    zs_params_init(&m->p, NULL);
    i1 = add_param(m, "conv1.weight", 4, 16, 3, 3, 3);
    i2 = add_param(m, "bn1.weight", 1, 16, 0, 0, 0);
    i3 = add_param(m, "bn1.bias", 1, 16, 0, 0, 0);
    i4 = add_param(m, "conv2.weight", 4, 32, 16, 3, 3);
    i5 = add_param(m, "bn2.weight", 1, 32, 0, 0, 0);
    i6 = add_param(m, "bn2.bias", 1, 32, 0, 0, 0);
    i7 = add_param(m, "conv3.weight", 4, 64, 32, 3, 3);
    i8 = add_param(m, "bn3.weight", 1, 64, 0, 0, 0);
    i9 = add_param(m, "bn3.bias", 1, 64, 0, 0, 0);
    i10 = add_param(m, "fc.weight", 2, EMB, 64, 0, 0);
    i11 = add_param(m, "fc.bias", 1, EMB, 0, 0, 0);
    i12 = add_param(m, "cls.weight", 2, NSEEN, EMB, 0, 0); /* classifier over the seen classes */
    i13 = add_param(m, "cls.bias", 1, NSEEN, 0, 0, 0);
    if (i11 < 0 || i12 < 0 || i13 < 0 || zs_params_alloc(&m->p) != ZS_OK) return -1;
    m->c1w = &m->p.t[i1]; m->b1w = &m->p.t[i2]; m->b1b = &m->p.t[i3];
    m->c2w = &m->p.t[i4]; m->b2w = &m->p.t[i5]; m->b2b = &m->p.t[i6];
    m->c3w = &m->p.t[i7]; m->b3w = &m->p.t[i8]; m->b3b = &m->p.t[i9];
    m->fw = &m->p.t[i10]; m->fb = &m->p.t[i11];
    m->cw = &m->p.t[i12]; m->cb = &m->p.t[i13];
    zs_tensor_fill_normal(ctx, m->cw, 0, 0.1f);
    /* Kaiming-normal convs, unit batch-norm scales */
    zs_tensor_fill_normal(ctx, m->c1w, 0, sqrtf(2.0f / 27));
    zs_tensor_fill_normal(ctx, m->c2w, 0, sqrtf(2.0f / 144));
    zs_tensor_fill_normal(ctx, m->c3w, 0, sqrtf(2.0f / 288));
    zs_tensor_fill_normal(ctx, m->fw, 0, sqrtf(1.0f / 64));
    zs_tensor_fill(m->b1w, 1); zs_tensor_fill(m->b2w, 1); zs_tensor_fill(m->b3w, 1);
    for (k = 0; k < 3; k++) {
        int64_t *sh = k == 0 ? s16 : k == 1 ? s32 : s64;
        zs_tensor_wrap(&m->rm[k], ZS_F32, 1, sh, m->stats[2 * k]);
        zs_tensor_wrap(&m->rv[k], ZS_F32, 1, sh, m->stats[2 * k + 1]);
        zs_tensor_fill(&m->rv[k], 1.0f);
    }
    return 0;
}

/* x [B,3,S,S] -> features [B,EMB] before normalisation */
static zs_tensor *model_features(zs_ctx *ctx, model_t *m, zs_tensor *x);

/* x [B,3,S,S] -> L2-normalised embeddings [B,EMB] */
static zs_tensor *model_forward(zs_ctx *ctx, model_t *m, zs_tensor *x) {
    return zs_l2_normalize(ctx, model_features(ctx, m, x), 1e-12f);
}

static zs_tensor *model_features(zs_ctx *ctx, model_t *m, zs_tensor *x) {
    zs_tensor *h = zs_conv2d(ctx, x, m->c1w, NULL, 1, 1, 1, 1);
    h = zs_relu(ctx, zs_batch_norm(ctx, h, m->b1w, m->b1b, &m->rm[0], &m->rv[0], 0.1f, 1e-5f));
    h = zs_max_pool2d(ctx, h, 2, 2, 0);                                           /* 16x16 */
    h = zs_conv2d(ctx, h, m->c2w, NULL, 1, 1, 1, 1);
    h = zs_relu(ctx, zs_batch_norm(ctx, h, m->b2w, m->b2b, &m->rm[1], &m->rv[1], 0.1f, 1e-5f));
    h = zs_max_pool2d(ctx, h, 2, 2, 0);                                           /* 8x8 */
    h = zs_conv2d(ctx, h, m->c3w, NULL, 1, 1, 1, 1);
    h = zs_relu(ctx, zs_batch_norm(ctx, h, m->b3w, m->b3b, &m->rm[2], &m->rv[2], 0.1f, 1e-5f));
    h = zs_avg_pool_global(ctx, h);                                                /* [B,64] */
    return zs_linear(ctx, h, m->fw, m->fb);
}

/* ---- retrieval metrics (SPEC 4, ZSE-SBIR definitions) --------------------- */
typedef struct { float d; int label, idx; } hit_t;
static int cmp_hit(const void *a, const void *b) {
    const hit_t *x = (const hit_t *)a, *y = (const hit_t *)b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->idx - y->idx;
}
/* VOC all-point AP of one ranked list */
static double average_precision(const hit_t *h, int n, int label) {
    int k, tp = 0, P = 0;
    double ap = 0, *prec, *rec;
    for (k = 0; k < n; k++) P += h[k].label == label;
    if (!P) return NAN;
    prec = (double *)malloc((size_t)n * sizeof(double));
    rec = (double *)malloc((size_t)n * sizeof(double));
    for (k = 0; k < n; k++) {
        tp += h[k].label == label;
        prec[k] = (double)tp / (k + 1);
        rec[k] = (double)tp / P;
    }
    for (k = n - 2; k >= 0; k--) if (prec[k + 1] > prec[k]) prec[k] = prec[k + 1];
    for (k = 0; k < n; k++) ap += (rec[k] - (k ? rec[k - 1] : 0.0)) * prec[k];
    free(prec);
    free(rec);
    return ap;
}

static void write_ppm_sheet(const char *path, const unsigned char *query, const unsigned char *gallery,
                            const hit_t *hits, int topk, int qlabel) {
    const int cell = S * 3, pad = 4, W = (topk + 1) * (cell + pad) + pad, H = cell + 2 * pad;
    unsigned char *pix = (unsigned char *)malloc((size_t)W * H * 3);
    FILE *f;
    int k, x, y;
    memset(pix, 255, (size_t)W * H * 3);
    for (k = 0; k <= topk; k++) {
        const unsigned char *img = k == 0 ? query : gallery + (size_t)hits[k - 1].idx * S * S * 3;
        int ox = pad + k * (cell + pad), oy = pad;
        unsigned char border[3] = {128, 128, 128};
        if (k > 0) {
            int ok = hits[k - 1].label == qlabel;
            border[0] = ok ? 0 : 220; border[1] = ok ? 180 : 0; border[2] = 0;
        }
        for (y = -2; y < cell + 2; y++)
            for (x = -2; x < cell + 2; x++) {
                unsigned char *d;
                if (ox + x < 0 || ox + x >= W || oy + y < 0 || oy + y >= H) continue;
                d = pix + ((size_t)(oy + y) * W + (ox + x)) * 3;
                if (x < 0 || y < 0 || x >= cell || y >= cell) memcpy(d, border, 3);
                else memcpy(d, img + ((y / 3) * S + x / 3) * 3, 3);
            }
    }
    f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "demo: cannot write %s\n", path); free(pix); return; }
    fprintf(f, "P6\n%d %d\n255\n", W, H);
    fwrite(pix, 1, (size_t)W * H * 3, f);
    fclose(f);
    free(pix);
}

int main(int argc, char **argv) {
    int steps = 300, threads = 2, batch = 24, i, k, step;
    float lr = 2e-3f, margin = 0.5f;
    const char *out = "demo_result.ppm";
    const int n_per_class_test = 20;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    model_t m;
    zs_optim_params op;
    zs_optim *opt;
    rng_t r = {42};
    int n_unseen = NCLASS - NSEEN, n_test = n_unseen * n_per_class_test;
    unsigned char *img, *sk_img, *ph_img;
    float *emb_sk, *emb_ph;
    int *lab;
    clock_t t0;
    double map = 0, map_rand = 0, p10 = 0;
    int counted = 0;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--lr") && i + 1 < argc) lr = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--margin") && i + 1 < argc) margin = (float)atof(argv[++i]);
        else { fprintf(stderr, "usage: %s [--steps N] [--threads T] [--out file.ppm]\n", argv[0]); return 2; }
    }
    cp.n_threads = threads;
    cp.seed = 7;
    ctx = zs_ctx_create(&cp);
    if (!ctx || model_init(&m, ctx)) { fprintf(stderr, "demo: %s\n", zs_last_error()); return 1; }
    op = zs_optim_default_params(ZS_OPTIM_ADAMW);
    op.lr = lr;
    op.weight_decay = 1e-4f;
    opt = zs_optim_create(&op, &m.p, NULL);
    if (!opt) { fprintf(stderr, "demo: %s\n", zs_last_error()); return 1; }

    printf("zsesbir demo: %d procedural classes, training on %d seen, testing zero-shot on %d unseen\n",
           NCLASS, NSEEN, n_unseen);
    printf("unseen classes:");
    for (k = NSEEN; k < NCLASS; k++) printf(" %s", class_names[k]);
    printf("\n");

    /* ---- train: batches of (sketch anchor, photo positive, photo negative) */
    img = (unsigned char *)malloc(S * S * 3);
    t0 = clock();
    zs_set_training(ctx, 1);
    for (step = 0; step < steps; step++) {
        zs_tensor *x = zs_f32_4d(ctx, 3 * batch, 3, S, S), *e, *f, *loss;
        int32_t labels[3 * 64];
        float *xd = (float *)x->data;
        for (i = 0; i < batch; i++) {
            int c = (int)(rnd_u32(&r) % NSEEN), n = (int)(rnd_u32(&r) % (NSEEN - 1));
            if (n >= c) n++;
            draw_sketch(img, c, &r); to_tensor(xd + (size_t)i * 3 * S * S, img);
            draw_photo(img, c, &r); to_tensor(xd + (size_t)(batch + i) * 3 * S * S, img);
            draw_photo(img, n, &r); to_tensor(xd + (size_t)(2 * batch + i) * 3 * S * S, img);
            labels[i] = labels[batch + i] = c;
            labels[2 * batch + i] = n;
        }
        f = model_features(ctx, &m, x);
        e = zs_l2_normalize(ctx, f, 1e-12f);
        /* triplet on the normalised embeddings + cross-entropy over the seen
           classes on both modalities (a TCN-style discriminative signal) */
        loss = zs_triplet_loss(ctx, zs_slice(ctx, e, 0, 0, batch), zs_slice(ctx, e, 0, batch, 2 * batch),
                               zs_slice(ctx, e, 0, 2 * batch, 3 * batch), margin, 1e-6f);
        loss = zs_add(ctx, loss, zs_cross_entropy(ctx, zs_linear(ctx, f, m.cw, m.cb), labels));
        zs_params_zero_grad(&m.p);
        if (zs_backward(ctx, loss) != ZS_OK || zs_optim_step(opt) != ZS_OK) {
            fprintf(stderr, "demo: training failed: %s\n", zs_last_error());
            return 1;
        }
        if (step % 50 == 0 || step == steps - 1)
            printf("step %4d  loss %.4f  (%.1f s cpu)\n", step, (double)((float *)loss->data)[0],
                   (double)(clock() - t0) / CLOCKS_PER_SEC);
        zs_ctx_reset(ctx);
    }
    zs_set_training(ctx, 0);
    zs_set_grad_enabled(ctx, 0);

    /* ---- index: embed the unseen-class gallery and the sketch queries */
    sk_img = (unsigned char *)malloc((size_t)n_test * S * S * 3);
    ph_img = (unsigned char *)malloc((size_t)n_test * S * S * 3);
    lab = (int *)malloc((size_t)n_test * sizeof(int));
    emb_sk = (float *)malloc((size_t)n_test * EMB * 4);
    emb_ph = (float *)malloc((size_t)n_test * EMB * 4);
    {
        zs_tensor *xs = zs_f32_4d(ctx, n_test, 3, S, S), *xp = zs_f32_4d(ctx, n_test, 3, S, S), *es, *ep;
        for (i = 0; i < n_test; i++) {
            lab[i] = NSEEN + i / n_per_class_test;
            draw_sketch(sk_img + (size_t)i * S * S * 3, lab[i], &r);
            draw_photo(ph_img + (size_t)i * S * S * 3, lab[i], &r);
            to_tensor((float *)xs->data + (size_t)i * 3 * S * S, sk_img + (size_t)i * S * S * 3);
            to_tensor((float *)xp->data + (size_t)i * 3 * S * S, ph_img + (size_t)i * S * S * 3);
        }
        es = model_forward(ctx, &m, xs);
        ep = model_forward(ctx, &m, xp);
        if (!es || !ep) { fprintf(stderr, "demo: embedding failed: %s\n", zs_last_error()); return 1; }
        memcpy(emb_sk, es->data, (size_t)n_test * EMB * 4);
        memcpy(emb_ph, ep->data, (size_t)n_test * EMB * 4);
        zs_ctx_reset(ctx);
    }

    /* ---- search + evaluate */
    {
        hit_t *h = (hit_t *)malloc((size_t)n_test * sizeof(hit_t));
        for (i = 0; i < n_test; i++) {
            int j, rel = 0;
            for (j = 0; j < n_test; j++) {
                float d = 0;
                for (k = 0; k < EMB; k++) { float t = emb_sk[i * EMB + k] - emb_ph[j * EMB + k]; d += t * t; }
                h[j].d = sqrtf(d); h[j].label = lab[j]; h[j].idx = j;
            }
            qsort(h, (size_t)n_test, sizeof(hit_t), cmp_hit);
            map += average_precision(h, n_test, lab[i]);
            for (k = 0; k < 10; k++) rel += h[k].label == lab[i];
            p10 += rel / 10.0;
            if (i == 0) write_ppm_sheet(out, sk_img, ph_img, h, 8, lab[0]);
            /* random ranking baseline on the same gallery */
            for (j = 0; j < n_test; j++) { h[j].d = rnd(&r); h[j].label = lab[j]; h[j].idx = j; }
            qsort(h, (size_t)n_test, sizeof(hit_t), cmp_hit);
            map_rand += average_precision(h, n_test, lab[i]);
            counted++;
        }
        free(h);
    }
    printf("zero-shot retrieval on %d unseen classes (%d sketch queries, %d photos):\n", n_unseen, n_test, n_test);
    printf("  random ranking  mAP@all=%.4f\n", map_rand / counted);
    printf("  trained CNN     mAP@all=%.4f  P@10=%.4f\n", map / counted, p10 / counted);
    printf("contact sheet for the first query (%s): %s\n", class_names[lab[0]], out);

    zs_optim_free(opt);
    zs_params_free(&m.p);
    zs_ctx_free(ctx);
    free(img); free(sk_img); free(ph_img); free(lab); free(emb_sk); free(emb_ph);
    return 0;
}
