/* Photo index files (.zsi) and contact sheets ([impl:index] in zsesbir.h):
   round trips with f32 / f16 / no tokens, writer misuse, every truncation
   and random corruptions of a small index (must fail cleanly or load a
   consistent index), and the sheet's geometry and frame colours. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

#define IDX_PATH "build/test_index.zsi"

static const char *names[3] = {"cat", "dog", "owl"};
static const char *paths[5] = {"photo/cat/a.jpg", "photo/dog/b.jpg", "photo/owl/c.png", "x/\xc3\xa9t\xc3\xa9.jpg", ""};
static const int32_t labels[5] = {0, 1, 2, -1, 1};

static int write_index(const char *path, int tokens, zs_type tt, float *emb, float *tok) {
    zs_index_info in;
    zs_index_writer *w;
    int i;
    memset(&in, 0, sizeof in);
    in.config_hash = zs_hash_bytes("dim=4", 5, 0);
    in.weights_hash = 0x1234567890abcdefull;
    in.config = "dim=4";
    in.n = 5; in.dim = 4; in.tokens = tokens; in.token_dim = tokens ? 3 : 0; in.token_type = tt;
    in.n_classes = 3; in.class_name = names; in.path = paths; in.label = labels;
    zt_fill(emb, 20, 7, 1.0f);
    zt_fill(tok, 5 * 6, 8, 2.0f);
    w = zs_index_create(path, &in);
    if (!w) return -1;
    for (i = 0; i < 5; i++)
        if (zs_index_append(w, emb + 4 * i, tokens ? tok + 6 * i : NULL) != ZS_OK) { zs_index_abort(w); return -1; }
    return zs_index_finish(w);
}

static void test_index_roundtrip(void) {
    float emb[20], tok[30], got[6];
    int pass;
    for (pass = 0; pass < 3; pass++) {
        zs_index idx;
        int tokens = pass < 2 ? 2 : 0, i, k;
        zs_type tt = pass == 1 ? ZS_F16 : ZS_F32;
        ZT_REQUIRE(write_index(IDX_PATH, tokens, tt, emb, tok) == ZS_OK, "write: %s", zs_last_error());
        ZT_REQUIRE(zs_index_load(IDX_PATH, &idx) == ZS_OK, "load: %s", zs_last_error());
        ZT_CHECK(idx.n == 5 && idx.dim == 4 && idx.tokens == tokens && idx.n_classes == 3, "sizes");
        ZT_CHECK(idx.config_hash == zs_hash_bytes("dim=4", 5, 0) && idx.weights_hash == 0x1234567890abcdefull, "hashes");
        ZT_CHECK(!strcmp(idx.config, "dim=4"), "config '%s'", idx.config);
        for (i = 0; i < 3; i++) ZT_CHECK(!strcmp(idx.class_name[i], names[i]), "class %d", i);
        for (i = 0; i < 5; i++) {
            ZT_CHECK(!strcmp(idx.path[i], paths[i]) && idx.label[i] == labels[i], "item %d: '%s' %d", i, idx.path[i], idx.label[i]);
            for (k = 0; k < 4; k++) ZT_CHECK(idx.emb[4 * i + k] == emb[4 * i + k], "emb %d %d", i, k);
            if (tokens) {
                ZT_REQUIRE(zs_index_tokens(&idx, i, got) == ZS_OK, "tokens: %s", zs_last_error());
                for (k = 0; k < 6; k++) {
                    float want = tt == ZS_F16 ? zs_f16_to_f32(zs_f32_to_f16(tok[6 * i + k])) : tok[6 * i + k];
                    ZT_CHECK(got[k] == want, "token %d %d: %g vs %g", i, k, got[k], want);
                }
            } else
                ZT_CHECK(zs_index_tokens(&idx, i, got) == ZS_ERR_STATE && strstr(zs_last_error(), "no tokens"), "no tokens: %s", zs_last_error());
        }
        ZT_CHECK(zs_index_tokens(&idx, 5, got) != ZS_OK && zs_index_tokens(&idx, -1, got) != ZS_OK, "range");
        zs_index_free(&idx);
        zs_index_free(&idx); /* idempotent */
    }
}

static void test_index_writer_errors(void) {
    zs_index_info in;
    zs_index_writer *w;
    float e[4] = {0}, t[6] = {0};
    FILE *f;
    memset(&in, 0, sizeof in);
    in.n = 2; in.dim = 4; in.path = paths; in.n_classes = 3; in.class_name = names; in.label = labels + 2; /* 2, -1 */
    w = zs_index_create(IDX_PATH, &in);
    ZT_REQUIRE(w, "create: %s", zs_last_error());
    ZT_CHECK(zs_index_append(w, e, NULL) == ZS_OK, "append");
    ZT_CHECK(zs_index_finish(w) == ZS_ERR_STATE && strstr(zs_last_error(), "1 of 2"), "short: %s", zs_last_error());
    f = fopen(IDX_PATH, "rb");
    ZT_CHECK(f == NULL, "incomplete file must be removed");
    if (f) fclose(f);
    in.label = labels + 3; in.n = 2; in.n_classes = 0; /* -1, 1 with 0 classes */
    ZT_CHECK(zs_index_create(IDX_PATH, &in) == NULL && strstr(zs_last_error(), "label[1]"), "label: %s", zs_last_error());
    in.label = NULL; in.tokens = 2; in.token_dim = 0;
    ZT_CHECK(zs_index_create(IDX_PATH, &in) == NULL, "tokens without token_dim");
    in.token_dim = 3; in.token_type = ZS_BF16;
    ZT_CHECK(zs_index_create(IDX_PATH, &in) == NULL, "bf16 tokens rejected");
    in.token_type = ZS_F32;
    w = zs_index_create(IDX_PATH, &in);
    ZT_REQUIRE(w, "create: %s", zs_last_error());
    ZT_CHECK(zs_index_append(w, e, NULL) == ZS_ERR_ARG, "missing tokens");
    ZT_CHECK(zs_index_append(w, e, t) == ZS_OK && zs_index_append(w, e, t) == ZS_OK, "append 2");
    ZT_CHECK(zs_index_append(w, e, t) == ZS_ERR_STATE, "too many");
    ZT_CHECK(zs_index_finish(w) == ZS_OK, "finish: %s", zs_last_error());
    ZT_CHECK(zs_index_create("build/no/such/dir/x.zsi", &in) == NULL && strstr(zs_last_error(), "cannot create"), "bad dir");
}

static int dump(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* a corrupt index must fail with a message, or load an index whose fields are
   all within range (then reading every token block must not crash) */
static int check_loads_sanely(const char *path, int *loaded) {
    zs_index idx;
    float tok[64];
    int i, r = zs_index_load(path, &idx);
    if (r != ZS_OK) { *loaded = 0; return zs_last_error()[0] != 0; }
    *loaded = 1;
    for (i = 0; i < idx.n; i++) {
        if (!idx.path[i] || idx.label[i] < -1 || idx.label[i] >= idx.n_classes) { zs_index_free(&idx); return 0; }
        if (idx.tokens && (size_t)idx.tokens * (size_t)idx.token_dim <= 64) zs_index_tokens(&idx, i, tok);
    }
    zs_index_free(&idx);
    return 1;
}

static zs_index idx_dummy;
static void test_index_corrupt(void) {
    float emb[20], tok[30];
    unsigned char *b, *c;
    size_t n, k;
    int bad = 0, loaded = 0, l, flips;
    unsigned long long st = 99;
    ZT_REQUIRE(write_index(IDX_PATH, 2, ZS_F16, emb, tok) == ZS_OK, "write");
    b = zt_read_file(IDX_PATH, &n);
    ZT_REQUIRE(b, "read back");
    c = (unsigned char *)malloc(n);
    ZT_REQUIRE(c, "malloc");
    /* every truncation must fail: records must tile the file exactly */
    for (k = 0; k < n; k++) {
        ZT_REQUIRE(dump("build/test_index_bad.zsi", b, k), "dump");
        if (!check_loads_sanely("build/test_index_bad.zsi", &l) || l) bad++;
    }
    ZT_CHECK(bad == 0, "%d of %zu truncations loaded or failed without a message", bad, n);
    /* one extra byte */
    memcpy(c, b, n);
    {
        FILE *f = fopen("build/test_index_bad.zsi", "wb");
        ZT_REQUIRE(f, "open");
        fwrite(b, 1, n, f);
        fputc(0, f);
        fclose(f);
        ZT_CHECK(!check_loads_sanely("build/test_index_bad.zsi", &l) || !l, "trailing byte must fail");
    }
    /* header fields: magic, version, huge n / dim / tokens */
    {
        static const int offs[] = {0, 8, 32, 36, 40, 44, 48, 52, 56};
        for (k = 0; k < sizeof offs / sizeof offs[0]; k++) {
            memcpy(c, b, n);
            c[offs[k] + 3] ^= 0x7f;
            ZT_REQUIRE(dump("build/test_index_bad.zsi", c, n), "dump");
            ZT_CHECK(check_loads_sanely("build/test_index_bad.zsi", &l) && !l, "header field at %d accepted", offs[k]);
        }
    }
    /* random byte flips anywhere */
    for (flips = 0; flips < 400; flips++) {
        memcpy(c, b, n);
        for (k = 0; k < 3; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            c[(st >> 33) % n] ^= (unsigned char)(1u << ((st >> 20) & 7));
        }
        ZT_REQUIRE(dump("build/test_index_bad.zsi", c, n), "dump");
        if (!check_loads_sanely("build/test_index_bad.zsi", &l)) bad++;
        loaded += l;
    }
    ZT_CHECK(bad == 0, "%d corrupt files handled badly", bad);
    printf("  %zu truncations and 400 random corruptions handled (%d corrupt files loaded: flips in data)\n", n, loaded);
    ZT_CHECK(zs_index_load("build/does_not_exist.zsi", &idx_dummy) == ZS_ERR_IO, "missing file");
    free(b);
    free(c);
}

static void test_index_hashes(void) {
    zs_params p;
    int64_t s[2] = {2, 3};
    uint64_t h0, h1;
    ZT_CHECK(zs_hash_bytes("", 0, 0) == 0xcbf29ce484222325ull, "FNV offset basis");
    ZT_CHECK(zs_hash_bytes("a", 1, 0) == 0xaf63dc4c8601ec8cull, "FNV-1a('a')");
    zs_params_init(&p, NULL);
    ZT_REQUIRE(zs_params_add(&p, "w", 2, s) >= 0 && zs_params_alloc_data(&p) == ZS_OK, "params");
    zt_fill(p.data, 6, 1, 1.0f);
    h0 = zs_weights_hash(&p);
    p.data[5] += 1e-6f;
    h1 = zs_weights_hash(&p);
    ZT_CHECK(h0 != h1, "a changed value must change the hash");
    p.data[5] -= 1e-6f;
    ZT_CHECK(zs_weights_hash(&p) == h0 || p.data[5] != p.data[5], "hash is a function of the values");
    zs_params_free(&p);
}

static zs_image solid(int w, int h, int v) {
    zs_image im;
    memset(&im, 0, sizeof im);
    if (zs_image_alloc(&im, w, h) == ZS_OK) memset(im.rgb, v, (size_t)w * (size_t)h * 3);
    return im;
}

static void px(const zs_image *im, int x, int y, unsigned char *c) { memcpy(c, im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3, 3); }

static void test_contact_sheet(void) {
    zs_image q = solid(50, 100, 0), items[3], out;
    int mark[3] = {1, 0, -1}, cell = 64, bw = 64 / 32 + 2, pad = 3 * bw, i;
    unsigned char c[3];
    items[0] = solid(80, 40, 10);
    items[1] = solid(30, 30, 20);
    items[2] = solid(5, 5, 30);
    ZT_REQUIRE(zs_contact_sheet(&out, &q, items, 3, mark, cell, 2) == ZS_OK, "sheet: %s", zs_last_error());
    ZT_CHECK(out.w == pad + cell + pad + pad + 2 * (cell + pad) && out.h == pad + 2 * (cell + pad), "size %dx%d", out.w, out.h);
    /* query frame blue, query centre black (tall image: scaled to 32x64, centred) */
    px(&out, pad - 1, pad + 10, c);
    ZT_CHECK(c[0] == 40 && c[1] == 90 && c[2] == 220, "query frame %d %d %d", c[0], c[1], c[2]);
    px(&out, pad + cell / 2, pad + cell / 2, c);
    ZT_CHECK(c[0] == 0, "query centre %d", c[0]);
    px(&out, pad + 2, pad + cell / 2, c);
    ZT_CHECK(c[0] == 255, "query side padding is white: %d", c[0]);
    for (i = 0; i < 3; i++) {
        int x = 3 * pad + cell + (i % 2) * (cell + pad), y = pad + (i / 2) * (cell + pad);
        static const unsigned char want[3][3] = {{30, 170, 60}, {210, 40, 40}, {150, 150, 150}};
        px(&out, x - 1, y + cell / 2, c);
        ZT_CHECK(!memcmp(c, want[i], 3), "frame %d: %d %d %d", i, c[0], c[1], c[2]);
        px(&out, x + cell / 2, y + cell / 2, c);
        ZT_CHECK(c[0] == 10 * (i + 1), "item %d centre %d", i, c[0]);
        /* rank digit: glyph pixel (1,1) of '1' .. '3' is row 0 bit 1 (set for 1,2,3) */
        px(&out, x + 2 * (cell / 64 + 1) + (cell / 64 + 1) / 2, y + (cell / 64 + 1) + 0, c);
        ZT_CHECK(c[0] == 0, "rank digit of item %d not drawn (%d)", i, c[0]);
    }
    zs_image_free(&out);
    ZT_CHECK(zs_contact_sheet(&out, &q, items, 3, mark, 8, 2) == ZS_ERR_ARG, "tiny cell rejected");
    ZT_CHECK(zs_contact_sheet(&out, NULL, items, 3, mark, 64, 2) == ZS_ERR_ARG, "NULL query");
    ZT_CHECK(zs_contact_sheet(&out, &q, NULL, 0, NULL, 64, 4) == ZS_OK && out.w > 0, "query only");
    zs_image_free(&out);
    zs_image_free(&q);
    for (i = 0; i < 3; i++) zs_image_free(&items[i]);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_index_roundtrip);
    ZT_RUN(test_index_writer_errors);
    ZT_RUN(test_index_corrupt);
    ZT_RUN(test_index_hashes);
    ZT_RUN(test_contact_sheet);
    return zt_finish();
}
