/* Seed inputs for the fuzz targets of tests/fuzz/, made from real files by
   tools/fuzz.sh at `make fuzz` time (into build/fuzz/corpus/, never committed).

     fuzz_seeds pickle DIR a.pth ...   data.pkl of each checkpoint in the
                                       fuzz_pickle layout (storage count, u16
                                       storage sizes, data.pkl)
     fuzz_seeds zsi DIR                small photo indexes (f32/f16 tokens,
                                       none, with and without classes, ITQ)
     fuzz_seeds image DIR img ...      each image scaled down to 24x24 and
                                       written as PPM, PGM and (with stb)
                                       PNG, BMP and JPEG
     fuzz_seeds safetensors DIR f      the small tensors of f with their real
                                       names, shapes and values, plus metadata

   Built with the stb implementation when <stb_image.h> is there. */
#define ZSESBIR_IMPLEMENTATION
#define ZSESBIR_STB_AUTO
#include "../zsesbir.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f)) ok = 0;
    if (!ok) fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
    return ok ? 0 : 1;
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    long sz;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = (unsigned char *)malloc((size_t)sz + 1)) != NULL && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    if (b) *n = (size_t)sz;
    fclose(f);
    return b;
}

/* byte 0 = k, k u16 sizes of data/0 .. data/<k-1>, then data.pkl */
static int seed_pickle(const char *dir, const char *pth) {
    zs__src s;
    zs__zip z;
    size_t n = 0, k = 0, i;
    unsigned char *file = read_file(pth, &n), *pkl = NULL, *out;
    unsigned sizes[16];
    char path[1024];
    int e, r = 1;
    if (!file) { fprintf(stderr, "fuzz_seeds: cannot read %s\n", pth); return 1; }
    zs__src_memory(&s, file, n, pth);
    memset(&z, 0, sizeof z);
    z.src = &s;
    z.who = pth;
    if (zs__zip_open(&z) || (e = zs__zip_find(&z, "data.pkl", 8)) < 0 || zs__zip_load(&z, e, 1u << 20, &pkl)) {
        printf("  (pickle: skipping %s: %s)\n", base(pth), zs_last_error());
        r = 0;
        goto done;
    }
    for (k = 0; k < 16; k++) { /* data/0, data/1, ... as torch numbers them */
        char rel[32];
        int j;
        snprintf(rel, sizeof rel, "data/%u", (unsigned)k);
        j = zs__zip_find(&z, rel, strlen(rel));
        if (j < 0 || z.e[j].size > 65535) break;
        sizes[k] = (unsigned)z.e[j].size;
    }
    out = (unsigned char *)malloc(1 + 2 * k + (size_t)z.e[e].size);
    if (!out) goto done;
    out[0] = (unsigned char)k;
    for (i = 0; i < k; i++) out[1 + 2 * i] = (unsigned char)sizes[i], out[2 + 2 * i] = (unsigned char)(sizes[i] >> 8);
    memcpy(out + 1 + 2 * k, pkl, (size_t)z.e[e].size);
    snprintf(path, sizeof path, "%s/%s.pkl", dir, base(pth));
    r = write_file(path, out, 1 + 2 * k + (size_t)z.e[e].size);
    free(out);
done:
    zs__free(pkl, NULL);
    zs__free(z.cd, NULL);
    zs__free(z.e, NULL);
    free(file);
    return r;
}

static int seed_zsi(const char *dir) {
    static const char *const cls[3] = {"cat", "airplane", "hot air balloon"};
    static const char *const paths[4] = {"photo/cat/n1.jpg", "photo/airplane/n2.jpg", "x.ppm", ""};
    static const int32_t lab[4] = {0, 1, -1, 2};
    static const struct { int n, dim, tok, tokd, ncls; zs_type tt; } v[4] = {
        {4, 8, 3, 4, 3, ZS_F16}, {3, 6, 2, 5, 3, ZS_F32}, {4, 5, 0, 0, 0, ZS_F32}, {0, 4, 0, 0, 2, ZS_F32}};
    static float mean[8], proj[8 * 4], rot[4 * 4];
    zs_itq itq;
    int k, i, j;
    for (j = 0; j < 8; j++) mean[j] = 0.01f * (float)j;
    for (j = 0; j < 32; j++) proj[j] = (j % 5 == 0) ? 1.0f : 0.0f;
    for (j = 0; j < 16; j++) rot[j] = (j % 5 == 0) ? 1.0f : 0.0f;
    itq.dim = 8;
    itq.bits = 4;
    itq.mean = mean;
    itq.proj = proj;
    itq.rot = rot;
    for (k = 0; k < 4; k++) {
        zs_index_info in;
        zs_index_writer *w;
        float emb[8], tok[20];
        char path[1024];
        memset(&in, 0, sizeof in);
        in.config_hash = 0x1234 + (uint64_t)k;
        in.weights_hash = 0xabcd;
        in.config = k == 2 ? "" : "img_size=32 patch=16 dim=8 depth=1 heads=2";
        in.n = v[k].n;
        in.dim = v[k].dim;
        in.tokens = v[k].tok;
        in.token_dim = v[k].tokd;
        in.token_type = v[k].tt;
        in.n_classes = v[k].ncls;
        in.class_name = cls;
        in.path = paths;
        in.label = v[k].ncls ? lab : NULL;
        in.itq = k == 0 ? &itq : NULL; /* version 2: ITQ rotation and codes */
        snprintf(path, sizeof path, "%s/index%d.zsi", dir, k);
        if (!(w = zs_index_create(path, &in))) { fprintf(stderr, "fuzz_seeds: %s\n", zs_last_error()); return 1; }
        for (i = 0; i < in.n; i++) {
            for (j = 0; j < 8; j++) emb[j] = (float)(i + 1) / (float)(j + 2);
            for (j = 0; j < 20; j++) tok[j] = (float)(j - 7) * 0.25f;
            if (zs_index_append(w, emb, in.tokens ? tok : NULL)) { zs_index_abort(w); return 1; }
        }
        if (zs_index_finish(w)) { fprintf(stderr, "fuzz_seeds: %s\n", zs_last_error()); return 1; }
    }
    return 0;
}

static int seed_image(const char *dir, const char *img) {
    zs_image im, sm;
    char path[1024];
    unsigned char *g;
    size_t i;
    FILE *f;
    int r = 0;
    if (zs_image_load(img, &im)) { printf("  (image: skipping %s: %s)\n", base(img), zs_last_error()); return 0; }
    if (zs_image_resize_linear_cv(&im, 24, 24, &sm)) { zs_image_free(&im); return 1; }
    zs_image_free(&im);
    snprintf(path, sizeof path, "%s/%s.ppm", dir, base(img));
    r |= zs_image_save_ppm(path, &sm) != 0;
    snprintf(path, sizeof path, "%s/%s.pgm", dir, base(img));
    g = (unsigned char *)malloc(24 * 24);
    f = fopen(path, "wb");
    if (g && f) {
        for (i = 0; i < 24 * 24; i++) g[i] = (unsigned char)((sm.rgb[3 * i] + sm.rgb[3 * i + 1] + sm.rgb[3 * i + 2]) / 3);
        r |= fprintf(f, "P5\n# from %s\n24 24\n255\n", base(img)) < 0 || fwrite(g, 1, 24 * 24, f) != 24 * 24;
    }
    if (f) r |= fclose(f) != 0;
    free(g);
#ifdef ZSESBIR_STB_IMAGE
    snprintf(path, sizeof path, "%s/%s.png", dir, base(img));
    r |= !stbi_write_png(path, 24, 24, 3, sm.rgb, 24 * 3);
    snprintf(path, sizeof path, "%s/%s.bmp", dir, base(img));
    r |= !stbi_write_bmp(path, 24, 24, 3, sm.rgb);
    snprintf(path, sizeof path, "%s/%s.jpg", dir, base(img));
    r |= !stbi_write_jpg(path, 24, 24, 3, sm.rgb, 90);
#endif
    zs_image_free(&sm);
    return r;
}

/* the tensors of <= 64 elements (real names, shapes, dtypes and values) */
static int seed_safetensors(const char *dir, const char *src) {
    static const char *const meta[] = {"format", "pt", "model", "zsesbir tiny \xc3\xa9", NULL};
    zs_safetensors *st = zs_st_open(src);
    zs_st_entry e[24];
    float *buf[24];
    char path[1024];
    int i, ne = 0, r;
    memset(e, 0, sizeof e);
    if (!st) { printf("  (safetensors: skipping %s: %s)\n", base(src), zs_last_error()); return 0; }
    for (i = 0; i < zs_st_count(st) && ne < 24; i++) {
        const zs_st_info *t = zs_st_get(st, i);
        if (t->numel > 64 || t->type == ZS_TYPE_COUNT) continue;
        buf[ne] = (float *)malloc((size_t)(t->numel ? t->numel : 1) * 4);
        if (!buf[ne] || zs_st_read(st, t, buf[ne], t->type == ZS_I32 ? ZS_I32 : ZS_F32, (size_t)t->numel)) {
            free(buf[ne]);
            continue;
        }
        e[ne].name = t->name;
        e[ne].type = ne % 3 == 1 && t->type != ZS_I32 ? ZS_F16 : ne % 3 == 2 && t->type != ZS_I32 ? ZS_BF16 : t->type;
        if (e[ne].type == ZS_F16 || e[ne].type == ZS_BF16) { /* zs_st_save takes data in the entry type */
            void *h = malloc((size_t)(t->numel ? t->numel : 1) * 2);
            if (!h || zs_convert(h, e[ne].type, buf[ne], ZS_F32, (size_t)t->numel)) { free(h); free(buf[ne]); continue; }
            free(buf[ne]);
            buf[ne] = (float *)h;
        }
        e[ne].ndim = t->ndim;
        e[ne].shape = t->shape;
        e[ne].data = buf[ne];
        ne++;
    }
    snprintf(path, sizeof path, "%s/small_%s", dir, base(src));
    r = zs_st_save(path, e, ne, meta) != 0;
    if (r) fprintf(stderr, "fuzz_seeds: %s\n", zs_last_error());
    for (i = 0; i < ne; i++) free(buf[i]);
    zs_st_close(st);
    return r;
}

int main(int argc, char **argv) {
    int i, r = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: fuzz_seeds pickle|zsi|image|safetensors DIR [FILE...]\n");
        return 2;
    }
    if (!strcmp(argv[1], "zsi")) return seed_zsi(argv[2]);
    for (i = 3; i < argc; i++) {
        if (!strcmp(argv[1], "pickle")) r |= seed_pickle(argv[2], argv[i]);
        else if (!strcmp(argv[1], "image")) r |= seed_image(argv[2], argv[i]);
        else if (!strcmp(argv[1], "safetensors")) r |= seed_safetensors(argv[2], argv[i]);
        else { fprintf(stderr, "fuzz_seeds: unknown kind '%s'\n", argv[1]); return 2; }
    }
    return r;
}
