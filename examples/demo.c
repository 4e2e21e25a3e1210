/* demo.c - procedural sketch/photo data for `make demo` (no download needed).

   24 classes of objects are drawn procedurally: "photos" are filled, shaded,
   coloured shapes on textured backgrounds with random pose, scale and
   position; "sketches" are jittery black outlines (with broken strokes) of
   OTHER random instances. The data is written in the class-folder layout the
   zsesbir CLI reads (the layout of the Sketchy dataset):
       DIR/photo/<class>/<class>_<i>.png     DIR/sketch/<class>/<class>_<i>-1.png
   (.ppm when built without stb_image) and DIR/test_classes.txt names the 6
   held-out classes, so tools/demo.sh can train, index, search and evaluate
   zero-shot exactly as on real data.

   usage: build/demo --out DIR [--size 96] [--photos 30] [--sketches 30] [--seed 42] */
#define _POSIX_C_SOURCE 200809L
#define ZSESBIR_IMPLEMENTATION
#ifndef ZS_CLI_NO_STB /* PNG/JPEG through libstb-dev when it is installed */
#define ZSESBIR_STB_AUTO
#endif
#include "../zsesbir.h"

#include <errno.h>
#include <sys/stat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int S = 96; /* image side */
#define NCLASS 24
#define NSEEN 18 /* the last NCLASS - NSEEN classes are held out */

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
    unsigned char *in = (unsigned char *)malloc((size_t)S * (size_t)S);
    int x, y, w = S >= 64 ? 2 : 1; /* stroke width grows with the canvas */
    if (!in) return;
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
            int v = in[y * S + x], edge = 0, d;
            for (d = 1; d <= w; d++) {
                if (x >= d && in[y * S + x - d] != v) edge = 1;
                if (x < S - d && in[y * S + x + d] != v) edge = 1;
                if (y >= d && in[(y - d) * S + x] != v) edge = 1;
                if (y < S - d && in[(y + d) * S + x] != v) edge = 1;
            }
            if (edge && rnd(r) < 0.04f) edge = 0; /* broken strokes */
            memset(img + (y * S + x) * 3, edge ? 20 : 255, 3);
        }
    free(in);
}


static int save(const char *path, unsigned char *rgb) {
    zs_image im;
    im.w = im.h = S;
    im.rgb = rgb;
#ifdef ZSESBIR_STB_IMAGE
    return zs_image_save_png(path, &im);
#else
    return zs_image_save_ppm(path, &im);
#endif
}

static int mkdir_p(const char *p) { return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1; }

int main(int argc, char **argv) {
    const char *out = NULL, *ext;
    int n_photo = 30, n_sketch = 30, c, i, k;
    unsigned long seed = 42;
    char path[4096];
    unsigned char *img;
    FILE *f;
    rng_t r;
#ifdef ZSESBIR_STB_IMAGE
    ext = "png";
#else
    ext = "ppm";
#endif
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) S = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--photos") && i + 1 < argc) n_photo = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sketches") && i + 1 < argc) n_sketch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoul(argv[++i], NULL, 10);
        else { out = NULL; break; }
    }
    if (!out || S < 16 || S > 1024 || n_photo < 1 || n_sketch < 1 || n_photo > 100000 || n_sketch > 100000 || strlen(out) > 3000) {
        fprintf(stderr, "usage: %s --out DIR [--size 96] [--photos 30] [--sketches 30] [--seed 42]\n", argv[0]);
        return 2;
    }
    img = (unsigned char *)malloc((size_t)S * (size_t)S * 3);
    if (!img) return 1;
    r.s = seed;
    snprintf(path, sizeof path, "%s/photo", out);
    if (mkdir_p(out) || mkdir_p(path)) { fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno)); return 1; }
    snprintf(path, sizeof path, "%s/sketch", out);
    if (mkdir_p(path)) { fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno)); return 1; }
    for (c = 0; c < NCLASS; c++) {
        for (k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/%s/%s", out, k ? "sketch" : "photo", class_names[c]);
            if (mkdir_p(path)) { fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno)); return 1; }
        }
        for (i = 0; i < n_photo; i++) {
            draw_photo(img, c, &r);
            snprintf(path, sizeof path, "%s/photo/%s/%s_%d.%s", out, class_names[c], class_names[c], i, ext);
            if (save(path, img) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
        }
        for (i = 0; i < n_sketch; i++) {
            draw_sketch(img, c, &r);
            snprintf(path, sizeof path, "%s/sketch/%s/%s_%d-1.%s", out, class_names[c], class_names[c], i % n_photo, ext);
            if (i >= n_photo) snprintf(path, sizeof path, "%s/sketch/%s/%s_%d-%d.%s", out, class_names[c], class_names[c], i % n_photo,
                                       1 + i / n_photo, ext);
            if (save(path, img) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
        }
    }
    snprintf(path, sizeof path, "%s/test_classes.txt", out);
    if (!(f = fopen(path, "w"))) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    for (c = NSEEN; c < NCLASS; c++) fprintf(f, "%s\n", class_names[c]);
    fclose(f);
    printf("wrote %d classes x (%d photos + %d sketches) of %dx%d to %s (held out: %d classes in %s)\n", NCLASS, n_photo, n_sketch, S,
           S, out, NCLASS - NSEEN, path);
    free(img);
    return 0;
}
