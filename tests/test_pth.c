/* PyTorch checkpoint reader ([impl:pth] in zsesbir.h): torch.save fixtures from
   tools/pth_ref.py (tests/golden/pth) compared byte for byte with the
   expected safetensors written there by hand; hand-worked values; the tiny
   ZSE-SBIR checkpoint through zs_zse_load; malicious / corrupt files with
   their status and error text; limits with pickles built here; every
   truncation of two fixtures and random byte flips (run it under ASan). */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

#define GOLD "tests/golden/pth/"

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long sz;
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    if (b) *n = (size_t)sz;
    return b;
}

static uint32_t crc32_ref(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i < n; i++)
        for (c ^= p[i], k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    return ~c;
}

static void put16(unsigned char *b, unsigned v) { b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *b, uint32_t v) { put16(b, v & 0xffff); put16(b + 2, v >> 16); }
static uint32_t get32(const unsigned char *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

/* a plain stored zip of n entries (malloc'd) */
typedef struct { const char *name; const void *data; size_t n; } zent;
static unsigned char *mkzip(const zent *e, int n, size_t *out_n) {
    size_t total = 22, at = 0, cd, i;
    unsigned char *b, *p;
    for (i = 0; i < (size_t)n; i++) total += 30 + 46 + 2 * strlen(e[i].name) + e[i].n;
    b = p = (unsigned char *)calloc(total, 1);
    if (!b) return NULL;
    for (i = 0; i < (size_t)n; i++) {
        size_t nl = strlen(e[i].name);
        put32(p, 0x04034b50); put16(p + 4, 20); put32(p + 14, crc32_ref((const unsigned char *)e[i].data, e[i].n));
        put32(p + 18, (uint32_t)e[i].n); put32(p + 22, (uint32_t)e[i].n); put16(p + 26, (unsigned)nl);
        memcpy(p + 30, e[i].name, nl);
        memcpy(p + 30 + nl, e[i].data, e[i].n);
        p += 30 + nl + e[i].n;
    }
    cd = (size_t)(p - b);
    for (i = 0; i < (size_t)n; i++) {
        size_t nl = strlen(e[i].name);
        put32(p, 0x02014b50); put16(p + 6, 20); put32(p + 16, crc32_ref((const unsigned char *)e[i].data, e[i].n));
        put32(p + 20, (uint32_t)e[i].n); put32(p + 24, (uint32_t)e[i].n); put16(p + 28, (unsigned)nl);
        put32(p + 42, (uint32_t)at);
        memcpy(p + 46, e[i].name, nl);
        at += 30 + nl + e[i].n;
        p += 46 + nl;
    }
    put32(p, 0x06054b50); put16(p + 8, (unsigned)n); put16(p + 10, (unsigned)n);
    put32(p + 12, (uint32_t)(p - b - cd)); put32(p + 16, (uint32_t)cd);
    *out_n = (size_t)(p + 22 - b);
    return b;
}

/* converts a pickle (plus optional storage "archive/data/0") held in memory */
static zs_safetensors *open_pkl(const unsigned char *pkl, size_t n, const void *st0, size_t st0_n) {
    zent e[2];
    size_t zn;
    unsigned char *z;
    zs_safetensors *st;
    e[0].name = "archive/data.pkl"; e[0].data = pkl; e[0].n = n;
    e[1].name = "archive/data/0"; e[1].data = st0; e[1].n = st0_n;
    z = mkzip(e, st0 ? 2 : 1, &zn);
    st = z ? zs_pth_open_memory(z, zn) : NULL;
    free(z);
    return st;
}

/* {'x': tensor} with the given size/stride/offset bytes, preceded by reps
   extra REDUCE + POP of the same memoised function and arguments */
static int tensor_pkl(unsigned char *p, const char *geometry, size_t glen, size_t reps, size_t *n) {
    static const char pre[] = "\x80\x02}q\x00X\x01\x00\x00\x00x" "ctorch._utils\n_rebuild_tensor_v2\nq\x01" "0"
                              "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x02tQ";
    static const char post[] = "\x89" "ccollections\nOrderedDict\n)Rtq\x02" "0";
    size_t k = 0, i;
    memcpy(p + k, pre, sizeof pre - 1); k += sizeof pre - 1;
    memcpy(p + k, geometry, glen); k += glen;
    memcpy(p + k, post, sizeof post - 1); k += sizeof post - 1;
    for (i = 0; i < reps; i++, k += 6) memcpy(p + k, "h\x01h\x02R0", 6);
    memcpy(p + k, "h\x01h\x02Rs.", 7);
    *n = k + 7;
    return 1;
}

/* every tensor and metadata entry of got equals exp (order, names, dtypes, shapes, bytes) */
static int tensors_checked;
static void same_st(zs_safetensors *got, zs_safetensors *exp, const char *what) {
    int i, d;
    ZT_REQUIRE(got && exp, "%s: open failed: %s", what, zs_last_error());
    ZT_CHECK(zs_st_count(got) == zs_st_count(exp), "%s: %d tensors, expected %d", what, zs_st_count(got), zs_st_count(exp));
    ZT_CHECK(zs_st_metadata_count(got) == zs_st_metadata_count(exp), "%s: %d metadata, expected %d", what,
             zs_st_metadata_count(got), zs_st_metadata_count(exp));
    for (i = 0; i < zs_st_metadata_count(exp); i++) {
        const char *k, *v, *g;
        zs_st_metadata_get(exp, i, &k, &v);
        g = zs_st_metadata(got, k);
        ZT_CHECK(g && !strcmp(g, v), "%s: metadata %s = '%s', expected '%s'", what, k, g ? g : "(missing)", v);
    }
    for (i = 0; i < zs_st_count(exp) && i < zs_st_count(got); i++) {
        const zs_st_info *a = zs_st_get(got, i), *b = zs_st_get(exp, i);
        unsigned char *x, *y;
        ZT_CHECK(!strcmp(a->name, b->name), "%s: tensor %d is '%s', expected '%s'", what, i, a->name, b->name);
        ZT_CHECK(!strcmp(a->dtype, b->dtype), "%s: %s dtype %s, expected %s", what, b->name, a->dtype, b->dtype);
        ZT_CHECK(a->ndim == b->ndim, "%s: %s ndim %d, expected %d", what, b->name, a->ndim, b->ndim);
        for (d = 0; d < a->ndim && d < b->ndim; d++)
            ZT_CHECK(a->shape[d] == b->shape[d], "%s: %s dim %d is %lld, expected %lld", what, b->name, d,
                     (long long)a->shape[d], (long long)b->shape[d]);
        ZT_REQUIRE(a->nbytes == b->nbytes, "%s: %s has %llu bytes, expected %llu", what, b->name,
                   (unsigned long long)a->nbytes, (unsigned long long)b->nbytes);
        x = (unsigned char *)malloc((size_t)a->nbytes + 1);
        y = (unsigned char *)malloc((size_t)b->nbytes + 1);
        ZT_CHECK(zs_st_read_raw(got, a, x, (size_t)a->nbytes) == ZS_OK, "%s: read %s: %s", what, a->name, zs_last_error());
        ZT_CHECK(zs_st_read_raw(exp, b, y, (size_t)b->nbytes) == ZS_OK, "%s: read expected %s", what, b->name);
        ZT_CHECK(!memcmp(x, y, (size_t)a->nbytes), "%s: %s values differ", what, b->name);
        free(x);
        free(y);
        tensors_checked++;
    }
}

static void test_pth_golden(void) {
    static const char *const cases[][2] = {
        {"f32", "f32"}, {"f16", "f16"}, {"p4", "f32"}, {"zip64", "f32"}, {"zse", "zse"}, {"zse_np", "zse_np"},
        {"tcn", "tcn"}, {"views", "views"}, {"dtypes", "dtypes"}, {"nested", "nested"}};
    size_t i;
    char p[256], e[256];
    FILE *f = fopen(GOLD "f32.pth", "rb");
    if (!f) ZT_SKIP("no " GOLD " (run tools/pth_ref.py)");
    fclose(f);
    tensors_checked = 0;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zs_safetensors *exp, *got;
        unsigned char *buf;
        size_t n;
        snprintf(p, sizeof p, GOLD "%s.pth", cases[i][0]);
        snprintf(e, sizeof e, GOLD "%s.expect.safetensors", cases[i][1]);
        exp = zs_st_open(e);
        ZT_REQUIRE(exp, "%s: %s", e, zs_last_error());
        got = zs_pth_open(p); /* from the file */
        same_st(got, exp, p);
        zs_st_close(got);
        buf = slurp(p, &n); /* from memory */
        got = zs_pth_open_memory(buf, n);
        free(buf);
        same_st(got, exp, "memory");
        zs_st_close(got);
        got = zs_weights_open(p); /* by sniffing */
        same_st(got, exp, "zs_weights_open");
        zs_st_close(got);
        zs_st_close(exp);
    }
    printf("  golden: %zu fixtures x 3 ways, %d tensors compared byte for byte\n", i, tensors_checked);
}

/* values worked out by hand from the script's definitions */
static void test_pth_hand_values(void) {
    zs_safetensors *st = zs_pth_open(GOLD "views.pth");
    const zs_st_info *t;
    float v[24];
    int32_t i32[3];
    int64_t i64[2];
    unsigned char u8[3];
    int i;
    if (!st && strstr(zs_last_error(), "cannot open")) ZT_SKIP("no fixtures");
    ZT_REQUIRE(st, "%s", zs_last_error());
    /* base = arange(24) * 0.5 - 3; a = base[2:5]; b = base[6:18].view(3,4); col = base.view(6,4)[1:,1] */
    t = zs_st_find(st, "a");
    ZT_REQUIRE(t && zs_st_read(st, t, v, ZS_F32, 3) == ZS_OK, "a");
    ZT_CHECK(v[0] == -2.0f && v[1] == -1.5f && v[2] == -1.0f, "a = %g %g %g", v[0], v[1], v[2]);
    t = zs_st_find(st, "b");
    ZT_REQUIRE(t && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 4 && zs_st_read(st, t, v, ZS_F32, 12) == ZS_OK, "b");
    for (i = 0; i < 12; i++) ZT_CHECK(v[i] == (float)(6 + i) * 0.5f - 3.0f, "b[%d] = %g", i, v[i]);
    t = zs_st_find(st, "col");
    ZT_REQUIRE(t && t->numel == 5 && zs_st_read(st, t, v, ZS_F32, 5) == ZS_OK, "col");
    for (i = 0; i < 5; i++) ZT_CHECK(v[i] == (float)(5 + 4 * i) * 0.5f - 3.0f, "col[%d] = %g", i, v[i]);
    /* wt_again = w.t()[1:, ::2] (w [3,5]) and wt = w.t(): wt_again[r][c] = wt[r+1][2c] */
    {
        float wt[15], wa[8];
        const zs_st_info *a = zs_st_find(st, "wt"), *b = zs_st_find(st, "wt_again");
        ZT_REQUIRE(a && b && b->shape[0] == 4 && b->shape[1] == 2, "wt_again shape");
        zs_st_read(st, a, wt, ZS_F32, 15);
        zs_st_read(st, b, wa, ZS_F32, 8);
        for (i = 0; i < 8; i++) ZT_CHECK(wa[i] == wt[(i / 2 + 1) * 3 + (i % 2) * 2], "wt_again[%d]", i);
    }
    zs_st_close(st);

    st = zs_pth_open(GOLD "dtypes.pth");
    ZT_REQUIRE(st, "%s", zs_last_error());
    t = zs_st_find(st, "i32");
    ZT_CHECK(t && zs_st_read(st, t, i32, ZS_I32, 3) == ZS_OK && i32[0] == 1 && i32[1] == -2 && i32[2] == 2147483647, "i32");
    t = zs_st_find(st, "i64");
    ZT_CHECK(t && !strcmp(t->dtype, "I64") && zs_st_read_raw(st, t, i64, 16) == ZS_OK && i64[0] == -((int64_t)1 << 62) && i64[1] == 5, "i64");
    t = zs_st_find(st, "mask");
    ZT_CHECK(t && !strcmp(t->dtype, "BOOL") && zs_st_read_raw(st, t, u8, 3) == ZS_OK && u8[0] == 1 && u8[1] == 0 && u8[2] == 1, "mask");
    t = zs_st_find(st, "u8");
    ZT_CHECK(t && zs_st_read_raw(st, t, u8, 2) == ZS_OK && u8[0] == 255 && u8[1] == 0, "u8");
    t = zs_st_find(st, "scalar");
    ZT_CHECK(t && t->ndim == 0 && zs_st_read(st, t, v, ZS_F32, 1) == ZS_OK && v[0] == 2.5f, "scalar");
    t = zs_st_find(st, "empty");
    ZT_CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->nbytes == 0, "empty");
    t = zs_st_find(st, "f64");
    ZT_CHECK(t && !strcmp(t->dtype, "F32"), "f64 narrowed to F32");
    zs_st_close(st);

    st = zs_pth_open(GOLD "f32.pth");
    ZT_REQUIRE(st, "%s", zs_last_error());
    t = zs_st_find(st, "bn.num_batches_tracked");
    ZT_CHECK(t && !strcmp(t->dtype, "I64") && t->ndim == 0 && zs_st_read_raw(st, t, i64, 8) == ZS_OK && i64[0] == 7, "num_batches_tracked");
    ZT_CHECK(t && zs_st_read(st, t, v, ZS_F32, 1) == ZS_ERR_UNSUPPORTED, "I64 as f32 must be refused");
    zs_st_close(st);

    st = zs_pth_open(GOLD "tcn.pth"); /* wrapper names, 'module.' stripped, epoch metadata */
    ZT_REQUIRE(st, "%s", zs_last_error());
    ZT_CHECK(zs_st_find(st, "sketch.conv1.weight") && zs_st_find(st, "image.bn1.running_var") &&
             zs_st_find(st, "fc.fc_hash.0.weight") && zs_st_find(st, "fc.fc_hash.1.num_batches_tracked") &&
             zs_st_find(st, "fc.fc_cls.bias"), "TCN names");
    ZT_CHECK(zs_st_metadata(st, "epoch") && !strcmp(zs_st_metadata(st, "epoch"), "5"), "epoch");
    zs_st_close(st);

    st = zs_pth_open(GOLD "nested.pth"); /* Python repr of floats */
    ZT_REQUIRE(st, "%s", zs_last_error());
    {
        static const char *const kv[][2] = {{"big", "1e+20"}, {"small", "1.5e-07"}, {"whole", "123.0"}, {"negz", "-0.0"},
                                            {"inf", "inf"}, {"i", "-1099511627776"}, {"tup.1", "2.5"}, {"flag", "True"},
                                            {"none", "None"}, {"opt.0.lr", "0.1"}};
        for (i = 0; i < (int)(sizeof kv / sizeof kv[0]); i++) {
            const char *g = zs_st_metadata(st, kv[i][0]);
            ZT_CHECK(g && !strcmp(g, kv[i][1]), "%s = '%s', expected '%s'", kv[i][0], g ? g : "(missing)", kv[i][1]);
        }
        ZT_CHECK(zs_st_find(st, "enc.x") && zs_st_find(st, "enc.layers.1.w"), "nested names");
    }
    zs_st_close(st);
}

/* the ZSE-SBIR checkpoint layout of SPEC 6 through the existing loader */
static void test_pth_zse_load(void) {
    zs_zse m;
    zs_safetensors *st;
    float *buf;
    int i, rc, same = 0;
    rc = zs_pth_convert(GOLD "zse.pth", "build/test_pth_zse.safetensors");
    if (rc == ZS_ERR_IO && strstr(zs_last_error(), "zse.pth")) ZT_SKIP("no fixtures");
    ZT_REQUIRE(rc == ZS_OK, "convert: %s", zs_last_error());
    rc = zs_zse_load(&m, "build/test_pth_zse.safetensors", 0);
    ZT_REQUIRE(rc == ZS_OK, "zs_zse_load: %s", zs_last_error());
    ZT_CHECK(m.cfg.dim == 4 && m.cfg.depth == 1 && m.cfg.img_size == 32 && m.cfg.mlp_dim == 8 && m.cfg.anchor_ch == 2,
             "inferred config dim %d depth %d img %d", m.cfg.dim, m.cfg.depth, m.cfg.img_size);
    st = zs_pth_open(GOLD "zse.pth");
    ZT_REQUIRE(st, "%s", zs_last_error());
    ZT_CHECK(zs_st_metadata(st, "epoch") && !strcmp(zs_st_metadata(st, "epoch"), "3"), "epoch");
    ZT_CHECK(zs_st_metadata(st, "map_all") && !strcmp(zs_st_metadata(st, "map_all"), "0.25"), "map_all");
    ZT_CHECK(zs_st_count(st) == m.params.count + 16, "%d tensors (model %d + 16 of the unused CA copy)", zs_st_count(st), m.params.count);
    buf = (float *)malloc(4 * 4096);
    for (i = 0; i < m.params.count; i++) { /* F16 in the file, f32 in the model: same values */
        zs_tensor tmp = m.params.t[i];
        const float *want = (const float *)m.params.t[i].data;
        tmp.data = buf;
        ZT_REQUIRE(zs_numel(&tmp) <= 4096, "size");
        rc = zs_st_load_tensor(st, tmp.name, &tmp);
        ZT_CHECK(rc == ZS_OK, "%s: %s", tmp.name, zs_last_error());
        same += rc == ZS_OK && !memcmp(buf, want, (size_t)zs_numel(&tmp) * 4);
    }
    ZT_CHECK(same == m.params.count, "%d of %d parameters equal", same, m.params.count);
    free(buf);
    zs_st_close(st);
    zs_zse_free(&m);
    remove("build/test_pth_zse.safetensors");
}

static void test_pth_bad(void) {
    static const struct { const char *file; int status; const char *text; } cases[] = {
        {"legacy", ZS_ERR_UNSUPPORTED, "legacy torch.save format not supported; re-save with PyTorch >= 1.6"},
        {"os_system", ZS_ERR_FORMAT, "global 'os.system' is not allowed"},
        {"eval", ZS_ERR_FORMAT, "global 'builtins.eval' is not allowed"},
        {"posix", ZS_ERR_FORMAT, "global 'posix.system' is not allowed"},
        {"class", ZS_ERR_FORMAT, "global 'torch.nn.modules.linear.Linear' is not allowed"},
        {"huge_storage", ZS_ERR_FORMAT, "declares 1099511627776 elements of 4 bytes but its entry has 8 bytes"},
        {"huge_shape", ZS_ERR_FORMAT, "tensor reaches element 1152921504606846975 of a 2-element storage"},
        {"oob_offset", ZS_ERR_FORMAT, "tensor reaches element 2 of a 2-element storage"},
        {"huge_string", ZS_ERR_FORMAT, "string longer than the file"},
        {"huge_zip64", ZS_ERR_FORMAT, "(5368709120 bytes at 128) runs into the central directory"},
        {"deep", ZS_ERR_FORMAT, "nested deeper than 64 levels"},
        {"marks", ZS_ERR_FORMAT, "MARKs nested deeper than ZS_PTH_MAX_MARKS"},
        {"cycle", ZS_ERR_FORMAT, "nested deeper than 64 levels (or a cycle)"},
        {"dag", ZS_ERR_FORMAT, "shared-reference bomb"},
        {"memo", ZS_ERR_FORMAT, "memo index beyond ZS_PTH_MAX_MEMO"},
        {"deflate", ZS_ERR_UNSUPPORTED, "entry 'archive/data.pkl' is deflate-compressed"},
        {"badcrc", ZS_ERR_FORMAT, "'archive/data.pkl' fails its CRC-32 check"},
        {"names", ZS_ERR_FORMAT, "local header holds another name"},
        {"nostorage", ZS_ERR_FORMAT, "storage '9' has no entry 'archive/data/9'"},
        {"dtype_clash", ZS_ERR_FORMAT, "storage '0' is used as both FloatStorage and IntStorage"},
        {"bigendian", ZS_ERR_UNSUPPORTED, "byte order 'big' is not supported"},
        {"noreduce", ZS_ERR_FORMAT, "REDUCE needs a callable and a tuple"},
        {"stop", ZS_ERR_FORMAT, "ends without STOP"},
        {"f32.expect.safetensors", ZS_ERR_FORMAT, "not a PyTorch checkpoint (no zip signature)"},
        {"missing", ZS_ERR_IO, "cannot open"}};
    size_t i;
    char p[256];
    FILE *f = fopen(GOLD "legacy.pth", "rb");
    if (!f) ZT_SKIP("no fixtures");
    fclose(f);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        snprintf(p, sizeof p, GOLD "%s%s", cases[i].file, strchr(cases[i].file, '.') ? "" : ".pth");
        remove("build/test_pth_bad.safetensors");
        rc = zs_pth_convert(p, "build/test_pth_bad.safetensors");
        ZT_CHECK(rc == cases[i].status, "%s: status %d (%s), expected %d", p, rc, zs_last_error(), cases[i].status);
        ZT_CHECK(strstr(zs_last_error(), cases[i].text) != NULL, "%s: error '%s' lacks '%s'", p, zs_last_error(), cases[i].text);
        ZT_CHECK(strstr(zs_last_error(), p) != NULL, "%s: error '%s' does not name the file", p, zs_last_error());
        f = fopen("build/test_pth_bad.safetensors", "rb");
        ZT_CHECK(!f, "%s: an output file was written", p);
        if (f) fclose(f);
        ZT_CHECK(!zs_pth_open(p) && strstr(zs_last_error(), cases[i].text), "%s: zs_pth_open: %s", p, zs_last_error());
    }
    printf("  bad: %zu files refused with the expected status and text\n", i);
}

static void test_pth_limits(void) {
    size_t n = (size_t)ZS_PTH_MAX_OBJECTS + 16, i;
    unsigned char *p = (unsigned char *)malloc(2 * n + 64);   /* reused for every pickle */
    float two[2] = {1.0f, 2.0f};
    zs_safetensors *st;
    ZT_REQUIRE(p, "malloc");
    /* stack: ZS_PTH_MAX_STACK + 1 Nones */
    p[0] = 0x80; p[1] = 2;
    for (i = 0; i < (size_t)ZS_PTH_MAX_STACK + 1; i++) p[2 + i] = 'N';
    p[2 + i] = '.';
    st = open_pkl(p, 3 + i, NULL, 0);
    ZT_CHECK(!st && strstr(zs_last_error(), "stack deeper than ZS_PTH_MAX_STACK"), "stack: %s", zs_last_error());
    /* objects: EMPTY_LIST, POP pairs (the stack stays small) */
    for (i = 0; i < (size_t)ZS_PTH_MAX_OBJECTS + 1; i++) { p[2 + 2 * i] = ']'; p[3 + 2 * i] = '0'; }
    p[2 + 2 * i] = '.';
    st = open_pkl(p, 3 + 2 * i, NULL, 0);
    ZT_CHECK(!st && strstr(zs_last_error(), "more than ZS_PTH_MAX_OBJECTS objects"), "objects: %s", zs_last_error());
    /* tensors: one memoised rebuild function and argument tuple, REDUCE + POP again and again */
    ZT_REQUIRE(tensor_pkl(p, "K\x00K\x02\x85K\x01\x85", 8, ZS_PTH_MAX_TENSORS + 1, &n), "size");
    st = open_pkl(p, n, two, 8);
    ZT_CHECK(!st && strstr(zs_last_error(), "more than ZS_PTH_MAX_TENSORS tensors"), "tensors: %s", zs_last_error());
    tensor_pkl(p, "K\x00K\x02\x85K\x01\x85", 8, 0, &n); /* one is fine and holds [1, 2] */
    st = open_pkl(p, n, two, 8);
    ZT_CHECK(st && zs_st_count(st) == 1 && zs_st_find(st, "x") && zs_st_find(st, "x")->numel == 2, "one tensor: %s", zs_last_error());
    zs_st_close(st);
    /* stride-0 broadcast of element 1 to [2^20, 2^20] must not expand (4 TiB) */
    tensor_pkl(p, "K\x01J\x00\x00\x10\x00J\x00\x00\x10\x00\x86K\x00K\x00\x86", 18, 0, &n);
    st = open_pkl(p, n, two, 8);
    ZT_CHECK(!st && strstr(zs_last_error(), "more than 4x the file size"), "broadcast: %s", zs_last_error());
    /* one string over ZS_PTH_MAX_STRING, present in full */
    {
        size_t len = (size_t)ZS_PTH_MAX_STRING + 1;
        unsigned char *q = (unsigned char *)malloc(len + 16);
        ZT_REQUIRE(q, "malloc");
        memcpy(q, "\x80\x02\x8d", 3);
        for (i = 0; i < 8; i++) q[3 + i] = (unsigned char)((uint64_t)len >> (8 * i));
        memset(q + 11, 'a', len);
        q[11 + len] = '.';
        st = open_pkl(q, 12 + len, NULL, 0);
        ZT_CHECK(!st && strstr(zs_last_error(), "ZS_PTH_MAX_STRING"), "string: %s", zs_last_error());
        free(q);
    }
    /* a few small grammar errors */
    {
#define PK(s) s, sizeof(s) - 1
        static const struct { const char *pkl; size_t n; const char *text; } c[] = {
            {PK("\x80\x02}X\x01\x00\x00\x00x\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00s."), "does not fit in 64 bits"},
            {PK("\x80\x06}."), "protocol outside 2..5"},
            {PK("\x80\x02}h\x05."), "memo index never stored"},
            {PK("\x80\x02]K\x01s."), "stack underflow"},
            {PK("\x80\x02}K\x01K\x02\x86K\x01K\x02s."), "SETITEM on a non-dict"},
            {PK("\x80\x02}X\x01\x00\x00\x00x\x8c\x02\xff\xfes."), "not valid UTF-8"},
            {PK("\x80\x02}X\x01\x00\x00\x00x" "cnumpy\ndtype\nX\x02\x00\x00\x00" "f8" "\x89\x88\x87R"
                "(K\x03X\x01\x00\x00\x00>NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbs."), "only little-endian numpy scalars"},
            {PK("\x80\x02K\x01."), "top-level object has type int"},
            {PK("\x80\x02}X\x01\x00\x00\x00x\x81s."), "pickle opcode 0x81 is not supported"},
            {PK("\x80\x02}\x95\xff\x00\x00\x00\x00\x00\x00\x00."), "FRAME longer than the file"},
            {PK("\x80\x02}X\x01\x00\x00\x00x(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"
                "0X\x03\x00\x00\x00" "cpuK\x02tQs."), "storage '0' has no entry"}};
#undef PK
        for (i = 0; i < sizeof c / sizeof c[0]; i++) {
            st = open_pkl((const unsigned char *)c[i].pkl, c[i].n, NULL, 0);
            ZT_CHECK(!st && strstr(zs_last_error(), c[i].text), "case %zu: %s (want '%s')", i, zs_last_error(), c[i].text);
            zs_st_close(st);
        }
    }
    free(p);
}

static void test_pth_sniff_api(void) {
    zs_safetensors *st;
    if (zs_is_pth_file(GOLD "f32.pth") < 0) ZT_SKIP("no fixtures");
    ZT_CHECK(zs_is_pth_file(GOLD "f32.pth") == 1, "f32.pth is a zip");
    ZT_CHECK(zs_is_pth_file(GOLD "f32.expect.safetensors") == 0, "safetensors is not");
    ZT_CHECK(zs_is_pth_file(GOLD "no_such_file") == ZS_ERR_IO, "missing file");
    ZT_CHECK(zs_is_pth_file(NULL) == ZS_ERR_ARG, "NULL path");
    st = zs_weights_open(GOLD "f32.expect.safetensors");
    ZT_CHECK(st && zs_st_count(st) == 11, "safetensors through zs_weights_open: %s", zs_last_error());
    zs_st_close(st);
    ZT_CHECK(!zs_weights_open(GOLD "legacy.pth") && strstr(zs_last_error(), "legacy torch.save format"), "legacy: %s", zs_last_error());
    ZT_CHECK(!zs_weights_open(GOLD "no_such_file"), "missing");
    ZT_CHECK(!zs_pth_open(NULL) && !zs_pth_open_memory(NULL, 5) && zs_pth_convert(NULL, "x") == ZS_ERR_ARG, "NULL arguments");
    ZT_CHECK(!zs_pth_open_memory("", 0) && strstr(zs_last_error(), "no zip signature"), "empty buffer: %s", zs_last_error());
}

/* every prefix of two fixtures must fail cleanly (ASan checks the reads) */
static void test_pth_truncations(void) {
    static const char *const files[] = {GOLD "f32.pth", GOLD "zip64.pth"};
    size_t k, len, n, count = 0, refused = 0;
    for (k = 0; k < 2; k++) {
        unsigned char *b = slurp(files[k], &n);
        if (!b) ZT_SKIP("no fixtures");
        for (len = 0; len < n; len++) {
            unsigned char *c = (unsigned char *)malloc(len ? len : 1); /* exact size: ASan sees overreads */
            zs_safetensors *st;
            memcpy(c, b, len);
            st = zs_pth_open_memory(c, len);
            refused += st == NULL;
            count++;
            zs_st_close(st);
            free(c);
        }
        free(b);
    }
    ZT_CHECK(refused == count, "%zu of %zu truncations opened", count - refused, count);
    printf("  truncations: %zu prefixes, all refused\n", count);
}

/* offset and size of <archive>/data.pkl's data, its CRC field and its central
   directory entry (torch writes data.pkl first, so that is where the directory starts) */
static int find_pkl(const unsigned char *b, size_t n, size_t *data, size_t *size, size_t *crc_at, size_t *cd) {
    size_t i;
    for (i = 0; i + 46 < n; i++)
        if (!memcmp(b + i, "PK\1\2", 4)) {
            size_t nl = b[i + 28] | (size_t)b[i + 29] << 8, lho = get32(b + i + 42);
            if (nl >= 9 && i + 46 + nl <= n && !memcmp(b + i + 46 + nl - 9, "/data.pkl", 9) && lho + 30 <= n) {
                *data = lho + 30 + (b[lho + 26] | (size_t)b[lho + 27] << 8) + (b[lho + 28] | (size_t)b[lho + 29] << 8);
                *size = get32(b + i + 24);
                *crc_at = i + 16;
                *cd = i;
                return *data + *size <= n;
            }
        }
    return 0;
}

/* random byte flips: anywhere, in the zip directory and end records, and
   inside data.pkl with its CRC fixed up (unpickler; a third of those write an
   opcode byte); each result either fails cleanly or reads fully */
static void test_pth_flips(void) {
    static const char *const files[] = {GOLD "views.pth", GOLD "nested.pth", GOLD "tcn.pth", GOLD "zse_np.pth"};
    static const unsigned char ops[] = "}])(XKJMG\x8a\x85\x86\x87tqhsuae\x93\x8c\x94RbQ.N\x88\x89" "c0120";
    unsigned long long r = 0x9e3779b97f4a7c15ull;
    size_t f, it, opened[3] = {0, 0, 0}, refused[3] = {0, 0, 0}, bytes_read = 0;
    int iters = 10000;
    for (f = 0; f < 4; f++) {
        size_t n, pd, ps, pc, cd;
        unsigned char *b = slurp(files[f], &n), *c;
        if (!b) ZT_SKIP("no fixtures");
        ZT_REQUIRE(find_pkl(b, n, &pd, &ps, &pc, &cd), "no data.pkl in %s", files[f]);
        c = (unsigned char *)malloc(n);
        for (it = 0; it < (size_t)iters; it++) {
            int k, flips = 1 + (int)(it % 4), where = (int)(it % 3), in_pkl = where == 2;
            zs_safetensors *st;
            memcpy(c, b, n);
            for (k = 0; k < flips; k++) {
                size_t at;
                r ^= r << 13; r ^= r >> 7; r ^= r << 17;
                at = in_pkl ? pd + (size_t)(r % ps) : where == 1 ? cd + (size_t)(r % (n - cd)) : (size_t)(r % n);
                if (in_pkl && (r >> 40) % 3 == 0) c[at] = ops[(r >> 20) % (sizeof ops - 1)];  /* another opcode */
                else c[at] ^= (unsigned char)(1 + (r >> 32) % 255);
            }
            if (in_pkl) put32(c + pc, crc32_ref(c + pd, ps));
            st = zs_pth_open_memory(c, n);
            if (st) {
                int i;
                opened[where]++;
                for (i = 0; i < zs_st_count(st); i++) {
                    const zs_st_info *t = zs_st_get(st, i);
                    void *x = malloc((size_t)t->nbytes + 1);
                    ZT_CHECK(zs_st_read_raw(st, t, x, (size_t)t->nbytes) == ZS_OK, "read after flips: %s", zs_last_error());
                    bytes_read += (size_t)t->nbytes;
                    free(x);
                }
                zs_st_close(st);
            } else {
                refused[where]++;
                ZT_CHECK(zs_last_error()[0], "failure without a message");
            }
        }
        free(c);
        free(b);
    }
    printf("  flips (refused/opened): anywhere %zu/%zu, zip directory %zu/%zu, data.pkl %zu/%zu; %zu tensor bytes read\n",
           refused[0], opened[0], refused[1], opened[1], refused[2], opened[2], bytes_read);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_pth_golden);
    ZT_RUN(test_pth_hand_values);
    ZT_RUN(test_pth_zse_load);
    ZT_RUN(test_pth_bad);
    ZT_RUN(test_pth_limits);
    ZT_RUN(test_pth_sniff_api);
    ZT_RUN(test_pth_truncations);
    ZT_RUN(test_pth_flips);
    return zt_finish();
}
