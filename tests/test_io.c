/* safetensors and .npy readers/writers: round trips, files written by
   Python/numpy, and a corpus of corrupt inputs (every one must fail cleanly
   with a message; run under ASan+UBSan too). Temporary files go to $TMPDIR
   (default /tmp) and are removed. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

/* ---- fixtures written by Python 3 / numpy 1.24 -------------------------- */
/* Generated with this script (safetensors bytes written by hand following the
   format, like the reference writer: tensors sorted by descending dtype
   alignment then name, compact JSON, header padded with spaces to 8; here
   json.dumps(ensure_ascii=True) so the non-ASCII name arrives as \u escapes
   including a surrogate pair):

   import io, json, struct, numpy as np
   def bf16(x):  # round-to-nearest-even f32 -> bf16 bits
       u = int(np.array([x], '<f4').view('<u4')[0]); u += 0x7fff + ((u >> 16) & 1); return (u >> 16) & 0xffff
   def st_bytes(tensors, meta=None, ensure_ascii=False):
       rank = ['BOOL','U8','I8','F8_E5M2','F8_E4M3','I16','U16','F16','BF16','I32','U32','F32','F64','I64','U64']
       tensors = sorted(tensors, key=lambda t: (-rank.index(t[1]), t[0]))
       hdr, off = {}, 0
       if meta is not None: hdr['__metadata__'] = meta
       for n, dt, sh, raw in tensors:
           hdr[n] = {'dtype': dt, 'shape': sh, 'data_offsets': [off, off + len(raw)]}; off += len(raw)
       h = json.dumps(hdr, separators=(',', ':'), ensure_ascii=ensure_ascii).encode('utf-8')
       h += b' ' * ((8 - len(h) % 8) % 8)
       return struct.pack('<Q', len(h)) + h + b''.join(t[3] for t in tensors)
   py_st = st_bytes([
       ('w', 'F32', [2, 3], (np.arange(6, dtype='<f4') * 0.5 - 1).tobytes()),
       ('h', 'F16', [3], np.array([1.5, -2.25, 65504], '<f2').tobytes()),
       ('b', 'BF16', [2, 2], struct.pack('<4H', *[bf16(v) for v in [1.0, -0.5, 3.140625, 1e-3]])),
       ('i', 'I64', [2], np.array([7, -1], '<i8').tobytes()),
       ('d', 'F64', [1], np.array([0.1], '<f8').tobytes()),
       ('s', 'F32', [], np.array([42.0], '<f4').tobytes()),
       ('z', 'F32', [0, 3], b''),
       ('w\u00e9\U0001F600', 'F32', [1], np.array([3.0], '<f4').tobytes()),
   ], meta={'format': 'pt', 'info': 'line1\nline2 "q"'}, ensure_ascii=True)
   def npy(a, version=None):
       b = io.BytesIO()
       if version is None: np.save(b, a, allow_pickle=True)
       else: np.lib.format.write_array(b, a, version=version, allow_pickle=True)
       return b.getvalue()
   py_npy_f4 = npy(np.arange(6, dtype='<f4').reshape(2, 3) - 2.5)
   py_npy_scalar = npy(np.float32(-7.25))
   py_npy_v2 = npy(np.array([1, 2, 3], '<f4'), (2, 0))
   py_npy_v3 = npy(np.array([4, 5], '<f4'), (3, 0))
   py_npy_be = npy(np.array([1, 2], '>f4'))
   py_npy_fortran = npy(np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))
   py_npy_f8 = npy(np.array([1, 2], '<f8'))
   py_npy_obj = npy(np.array([None, 1], dtype=object))
   py_npy_struct = npy(np.zeros(2, dtype=[('a', '<f4')]))
   (each printed as a C array of decimal bytes) */
static const unsigned char py_st[606] = {
    16,2,0,0,0,0,0,0,123,34,95,95,109,101,116,97,100,97,116,97,95,95,34,58,123,34,102,111,114,109,
    97,116,34,58,34,112,116,34,44,34,105,110,102,111,34,58,34,108,105,110,101,49,92,110,108,105,
    110,101,50,32,92,34,113,92,34,34,125,44,34,105,34,58,123,34,100,116,121,112,101,34,58,34,73,
    54,52,34,44,34,115,104,97,112,101,34,58,91,50,93,44,34,100,97,116,97,95,111,102,102,115,101,
    116,115,34,58,91,48,44,49,54,93,125,44,34,100,34,58,123,34,100,116,121,112,101,34,58,34,70,
    54,52,34,44,34,115,104,97,112,101,34,58,91,49,93,44,34,100,97,116,97,95,111,102,102,115,101,
    116,115,34,58,91,49,54,44,50,52,93,125,44,34,115,34,58,123,34,100,116,121,112,101,34,58,34,
    70,51,50,34,44,34,115,104,97,112,101,34,58,91,93,44,34,100,97,116,97,95,111,102,102,115,101,
    116,115,34,58,91,50,52,44,50,56,93,125,44,34,119,34,58,123,34,100,116,121,112,101,34,58,34,
    70,51,50,34,44,34,115,104,97,112,101,34,58,91,50,44,51,93,44,34,100,97,116,97,95,111,102,102,
    115,101,116,115,34,58,91,50,56,44,53,50,93,125,44,34,119,92,117,48,48,101,57,92,117,100,56,
    51,100,92,117,100,101,48,48,34,58,123,34,100,116,121,112,101,34,58,34,70,51,50,34,44,34,115,
    104,97,112,101,34,58,91,49,93,44,34,100,97,116,97,95,111,102,102,115,101,116,115,34,58,91,53,
    50,44,53,54,93,125,44,34,122,34,58,123,34,100,116,121,112,101,34,58,34,70,51,50,34,44,34,115,
    104,97,112,101,34,58,91,48,44,51,93,44,34,100,97,116,97,95,111,102,102,115,101,116,115,34,58,
    91,53,54,44,53,54,93,125,44,34,98,34,58,123,34,100,116,121,112,101,34,58,34,66,70,49,54,34,
    44,34,115,104,97,112,101,34,58,91,50,44,50,93,44,34,100,97,116,97,95,111,102,102,115,101,116,
    115,34,58,91,53,54,44,54,52,93,125,44,34,104,34,58,123,34,100,116,121,112,101,34,58,34,70,49,
    54,34,44,34,115,104,97,112,101,34,58,91,51,93,44,34,100,97,116,97,95,111,102,102,115,101,116,
    115,34,58,91,54,52,44,55,48,93,125,125,32,32,32,32,32,7,0,0,0,0,0,0,0,255,255,255,255,255,255,
    255,255,154,153,153,153,153,153,185,63,0,0,40,66,0,0,128,191,0,0,0,191,0,0,0,0,0,0,0,63,0,0,
    128,63,0,0,192,63,0,0,64,64,128,63,0,191,73,64,131,58,0,62,128,192,255,123,
};
static const unsigned char py_npy_f4[152] = {
    147,78,85,77,80,89,1,0,118,0,123,39,100,101,115,99,114,39,58,32,39,60,102,52,39,44,32,39,102,
    111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,115,101,44,32,39,115,104,97,
    112,101,39,58,32,40,50,44,32,51,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,10,0,0,32,192,0,0,192,191,0,0,0,191,0,0,0,63,0,0,192,63,0,
    0,32,64,
};
static const unsigned char py_npy_scalar[132] = {
    147,78,85,77,80,89,1,0,118,0,123,39,100,101,115,99,114,39,58,32,39,60,102,52,39,44,32,39,102,
    111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,115,101,44,32,39,115,104,97,
    112,101,39,58,32,40,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,10,0,0,232,192,
};
static const unsigned char py_npy_v2[140] = {
    147,78,85,77,80,89,2,0,116,0,0,0,123,39,100,101,115,99,114,39,58,32,39,60,102,52,39,44,32,39,
    102,111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,115,101,44,32,39,115,104,
    97,112,101,39,58,32,40,51,44,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,10,0,0,128,63,0,0,0,64,0,0,64,64,
};
static const unsigned char py_npy_v3[136] = {
    147,78,85,77,80,89,3,0,116,0,0,0,123,39,100,101,115,99,114,39,58,32,39,60,102,52,39,44,32,39,
    102,111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,115,101,44,32,39,115,104,
    97,112,101,39,58,32,40,50,44,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,10,0,0,128,64,0,0,160,64,
};
static const unsigned char py_npy_be[136] = {
    147,78,85,77,80,89,1,0,118,0,123,39,100,101,115,99,114,39,58,32,39,62,102,52,39,44,32,39,102,
    111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,115,101,44,32,39,115,104,97,
    112,101,39,58,32,40,50,44,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,10,63,128,0,0,64,0,0,0,
};
static const unsigned char py_npy_fortran[152] = {
    147,78,85,77,80,89,1,0,118,0,123,39,100,101,115,99,114,39,58,32,39,60,102,52,39,44,32,39,102,
    111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,84,114,117,101,44,32,39,115,104,97,112,
    101,39,58,32,40,50,44,32,51,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,10,0,0,0,0,0,0,64,64,0,0,128,63,0,0,128,64,0,0,0,64,0,0,160,
    64,
};
static const unsigned char py_npy_f8[144] = {
    147,78,85,77,80,89,1,0,118,0,123,39,100,101,115,99,114,39,58,32,39,60,102,56,39,44,32,39,102,
    111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,115,101,44,32,39,115,104,97,
    112,101,39,58,32,40,50,44,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,10,0,0,0,0,0,0,240,63,0,0,0,0,0,0,0,64,
};
static const unsigned char py_npy_obj[285] = {
    147,78,85,77,80,89,1,0,118,0,123,39,100,101,115,99,114,39,58,32,39,124,79,39,44,32,39,102,111,
    114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,115,101,44,32,39,115,104,97,112,
    101,39,58,32,40,50,44,41,44,32,125,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,10,128,3,99,110,117,109,112,121,46,99,111,114,101,46,109,117,
    108,116,105,97,114,114,97,121,10,95,114,101,99,111,110,115,116,114,117,99,116,10,113,0,99,110,
    117,109,112,121,10,110,100,97,114,114,97,121,10,113,1,75,0,133,113,2,67,1,98,113,3,135,113,
    4,82,113,5,40,75,1,75,2,133,113,6,99,110,117,109,112,121,10,100,116,121,112,101,10,113,7,88,
    2,0,0,0,79,56,113,8,137,136,135,113,9,82,113,10,40,75,3,88,1,0,0,0,124,113,11,78,78,78,74,255,
    255,255,255,74,255,255,255,255,75,63,116,113,12,98,137,93,113,13,40,78,75,1,101,116,113,14,
    98,46,
};
static const unsigned char py_npy_struct[136] = {
    147,78,85,77,80,89,1,0,118,0,123,39,100,101,115,99,114,39,58,32,91,40,39,97,39,44,32,39,60,
    102,52,39,41,93,44,32,39,102,111,114,116,114,97,110,95,111,114,100,101,114,39,58,32,70,97,108,
    115,101,44,32,39,115,104,97,112,101,39,58,32,40,50,44,41,44,32,125,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,32,
    32,32,32,32,32,32,32,32,32,32,32,32,10,0,0,0,0,0,0,0,0,
};

/* ---- helpers ------------------------------------------------------------- */

static char tmp_dir[256];
static unsigned long tmp_counter;

/* unique path in $TMPDIR (or /tmp) */
static void tmp_path(char *buf, size_t cap, const char *tag) {
    static int anchor;
    const char *d = getenv("TMPDIR");
    if (!tmp_dir[0]) snprintf(tmp_dir, sizeof tmp_dir, "%s", d && *d ? d : "/tmp");
    snprintf(buf, cap, "%s/zs_test_io_%lx_%lx_%lx_%lu_%s", tmp_dir, (unsigned long)time(NULL),
             (unsigned long)clock(), (unsigned long)(size_t)&anchor, ++tmp_counter, tag);
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* whole file into malloc'd memory */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    long sz;
    unsigned char *p;
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = (unsigned char *)malloc((size_t)sz + 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); p = NULL; }
    fclose(f);
    if (p) *n = (size_t)sz;
    return p;
}

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

/* safetensors bytes: u64 len, header text (hn bytes), data_n bytes 0,1,2.. */
static unsigned char *st_make(const char *hdr, size_t hn, size_t data_n, size_t *total) {
    unsigned char *p = (unsigned char *)malloc(8 + hn + data_n + 1);
    size_t i;
    for (i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(p + 8, hdr, hn);
    for (i = 0; i < data_n; i++) p[8 + hn + i] = (unsigned char)i;
    *total = 8 + hn + data_n;
    return p;
}

/* open_memory must fail with a message containing want (if not NULL) */
static int st_fails(const unsigned char *p, size_t n, const char *want, char *why, size_t cap) {
    zs_safetensors *st;
    zs__errbuf[0] = 0;
    st = zs_st_open_memory(p, n);
    if (st) { zs_st_close(st); snprintf(why, cap, "accepted"); return 0; }
    if (!zs_last_error()[0]) { snprintf(why, cap, "empty error message"); return 0; }
    if (want && !strstr(zs_last_error(), want)) { snprintf(why, cap, "message '%.300s' lacks '%s'", zs_last_error(), want); return 0; }
    return 1;
}

/* every tensor of an open file can be read (floats converted, others raw) */
static int st_read_all(zs_safetensors *st) {
    int i, r = ZS_OK;
    for (i = 0; i < zs_st_count(st) && !r; i++) {
        const zs_st_info *t = zs_st_get(st, i);
        void *buf = malloc(t->nbytes * 2 + 8);
        if (t->type == ZS_F32 || t->type == ZS_F16 || t->type == ZS_BF16) {
            r = zs_st_read(st, t, buf, ZS_F32, (size_t)t->numel);
            if (!r) r = zs_st_read(st, t, buf, ZS_BF16, (size_t)t->numel);
        } else {
            r = zs_st_read_raw(st, t, buf, (size_t)t->nbytes);
        }
        free(buf);
    }
    return r;
}

/* ---- safetensors: round trips ------------------------------------------- */

static void test_io_st_roundtrip(void) {
    char path[512];
    float w[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -7.0f, 65504.0f}, rd[8];
    uint16_t h[3], b[6], h2[6];
    int32_t iv[3] = {1, -2, 2147483647}, ir[3];
    int64_t sw[2] = {2, 3}, sh[1] = {3}, sb[3] = {3, 1, 2}, si[1] = {3};
    zs_st_entry e[4];
    const char *meta[] = {"format", "pt", "note", "a \"quoted\"\nline\\ \x01 \xc3\xa9", NULL};
    zs_safetensors *st;
    const zs_st_info *t;
    unsigned char *bytes;
    size_t n, i;
    float hv[3] = {1.5f, -2.25f, 0.099975586f}, bv[6] = {1.0f, -0.5f, 3.140625f, 256.0f, -1e-3f, 0.0f};
    for (i = 0; i < 3; i++) h[i] = zs_f32_to_f16(hv[i]);
    for (i = 0; i < 6; i++) b[i] = zs_f32_to_bf16(bv[i]);
    e[0].name = "w"; e[0].type = ZS_F32; e[0].ndim = 2; e[0].shape = sw; e[0].data = w;
    e[1].name = "h"; e[1].type = ZS_F16; e[1].ndim = 1; e[1].shape = sh; e[1].data = h;
    e[2].name = "layer.0.b"; e[2].type = ZS_BF16; e[2].ndim = 3; e[2].shape = sb; e[2].data = b;
    e[3].name = "idx"; e[3].type = ZS_I32; e[3].ndim = 1; e[3].shape = si; e[3].data = iv;
    tmp_path(path, sizeof path, "rt.safetensors");
    ZT_REQUIRE(zs_st_save(path, e, 4, meta) == ZS_OK, "save: %.300s", zs_last_error());
    /* layout: header length multiple of 8, data right after, exact size */
    bytes = read_bytes(path, &n);
    ZT_REQUIRE(bytes != NULL, "read back");
    ZT_CHECK(le64(bytes) % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)le64(bytes));
    ZT_CHECK(n == 8 + le64(bytes) + 24 + 6 + 12 + 12, "file size %zu", n);
    ZT_CHECK(bytes[8] == '{', "header starts with {");
    ZT_CHECK(!memcmp(bytes + 8, "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"a \\\"quoted\\\"\\nline\\\\ \\u0001 \xc3\xa9\"}", 56),
             "metadata JSON text: %.60s", bytes + 8);
    free(bytes);

    st = zs_st_open(path);
    ZT_REQUIRE(st != NULL, "open: %.300s", zs_last_error());
    ZT_CHECK(zs_st_count(st) == 4, "count %d", zs_st_count(st));
    ZT_CHECK(zs_st_get(st, 0) && !strcmp(zs_st_get(st, 0)->name, "w"), "header order");
    ZT_CHECK(zs_st_get(st, 4) == NULL && zs_st_get(st, -1) == NULL, "get out of range");
    ZT_CHECK(zs_st_find(st, "nope") == NULL, "find absent");
    ZT_CHECK(zs_st_metadata_count(st) == 2, "metadata count");
    ZT_CHECK(zs_st_metadata(st, "format") && !strcmp(zs_st_metadata(st, "format"), "pt"), "metadata format");
    ZT_CHECK(zs_st_metadata(st, "note") && !strcmp(zs_st_metadata(st, "note"), meta[3]), "metadata escapes round trip");
    ZT_CHECK(zs_st_metadata(st, "absent") == NULL, "absent metadata");

    t = zs_st_find(st, "w");
    ZT_REQUIRE(t && t->type == ZS_F32 && !strcmp(t->dtype, "F32") && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
               t->numel == 6 && t->offset == 0 && t->nbytes == 24, "w info");
    ZT_REQUIRE(zs_st_read(st, t, rd, ZS_F32, 6) == ZS_OK, "read w: %.300s", zs_last_error());
    ZT_CHECK(!memcmp(rd, w, sizeof w), "w values exact");
    ZT_REQUIRE(zs_st_read(st, t, h2, ZS_F16, 6) == ZS_OK, "read w as f16");
    for (i = 0; i < 6; i++) ZT_CHECK(h2[i] == zs_f32_to_f16(w[i]), "w->f16 %zu", i);
    ZT_REQUIRE(zs_st_read(st, t, h2, ZS_BF16, 6) == ZS_OK, "read w as bf16");
    for (i = 0; i < 6; i++) ZT_CHECK(h2[i] == zs_f32_to_bf16(w[i]), "w->bf16 %zu", i);

    t = zs_st_find(st, "h");
    ZT_REQUIRE(t && t->type == ZS_F16 && !strcmp(t->dtype, "F16") && t->offset == 24 && t->nbytes == 6, "h info");
    ZT_REQUIRE(zs_st_read(st, t, rd, ZS_F32, 3) == ZS_OK, "read h");
    for (i = 0; i < 3; i++) ZT_CHECK(rd[i] == zs_f16_to_f32(h[i]), "h %zu: %g", i, (double)rd[i]);
    ZT_REQUIRE(zs_st_read(st, t, h2, ZS_F16, 3) == ZS_OK && !memcmp(h2, h, 6), "h raw f16");

    t = zs_st_find(st, "layer.0.b");
    ZT_REQUIRE(t && t->type == ZS_BF16 && t->ndim == 3 && t->shape[2] == 2, "b info");
    ZT_REQUIRE(zs_st_read(st, t, rd, ZS_F32, 6) == ZS_OK, "read b");
    for (i = 0; i < 6; i++) ZT_CHECK(rd[i] == zs_bf16_to_f32(b[i]), "b %zu", i);
    ZT_CHECK(rd[2] == 3.140625f && rd[3] == 256.0f, "bf16 exact values");
    ZT_REQUIRE(zs_st_read(st, t, h2, ZS_F16, 6) == ZS_OK, "read b as f16");
    ZT_CHECK(zs_f16_to_f32(h2[0]) == 1.0f && zs_f16_to_f32(h2[1]) == -0.5f, "bf16->f16");

    t = zs_st_find(st, "idx");
    ZT_REQUIRE(t && t->type == ZS_I32 && !strcmp(t->dtype, "I32"), "idx info");
    ZT_REQUIRE(zs_st_read(st, t, ir, ZS_I32, 3) == ZS_OK && !memcmp(ir, iv, sizeof iv), "i32 round trip");
    ZT_CHECK(zs_st_read(st, t, rd, ZS_F32, 3) == ZS_ERR_UNSUPPORTED && strstr(zs_last_error(), "cannot convert I32"),
             "i32 as f32 refused: %.300s", zs_last_error());
    zs_st_close(st);

    /* the same bytes through the memory reader */
    bytes = read_bytes(path, &n);
    st = zs_st_open_memory(bytes, n);
    ZT_CHECK(st && zs_st_count(st) == 4 && st_read_all(st) == ZS_OK, "memory reader: %.300s", zs_last_error());
    zs_st_close(st);
    free(bytes);
    remove(path);
}

static void test_io_st_scalar_and_empty(void) {
    char path[512];
    float s = -3.75f, rd[4] = {9, 9, 9, 9};
    int64_t s0[2] = {0, 3}, s1[3] = {4, 0, 2}, s2[1] = {2};
    float two[2] = {1.0f, 2.0f};
    zs_st_entry e[4];
    zs_safetensors *st;
    const zs_st_info *t;
    e[0].name = "scalar"; e[0].type = ZS_F32; e[0].ndim = 0; e[0].shape = NULL; e[0].data = &s;
    e[1].name = "empty"; e[1].type = ZS_F16; e[1].ndim = 2; e[1].shape = s0; e[1].data = NULL;
    e[2].name = "empty2"; e[2].type = ZS_F32; e[2].ndim = 3; e[2].shape = s1; e[2].data = NULL;
    e[3].name = "two"; e[3].type = ZS_F32; e[3].ndim = 1; e[3].shape = s2; e[3].data = two;
    tmp_path(path, sizeof path, "se.safetensors");
    ZT_REQUIRE(zs_st_save(path, e, 4, NULL) == ZS_OK, "save: %.300s", zs_last_error());
    st = zs_st_open(path);
    ZT_REQUIRE(st != NULL, "open: %.300s", zs_last_error());
    ZT_CHECK(zs_st_metadata_count(st) == 0 && zs_st_metadata(st, "x") == NULL, "no metadata");
    t = zs_st_find(st, "scalar");
    ZT_REQUIRE(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4, "scalar info");
    ZT_CHECK(zs_st_read(st, t, rd, ZS_F32, 1) == ZS_OK && rd[0] == -3.75f, "scalar value");
    ZT_CHECK(zs_st_read(st, t, rd, ZS_F32, 0) == ZS_ERR_ARG && strstr(zs_last_error(), "dst_count"), "count checked: %.300s", zs_last_error());
    t = zs_st_find(st, "empty");
    ZT_REQUIRE(t && t->numel == 0 && t->nbytes == 0 && t->offset == 4 && t->ndim == 2, "empty info");
    ZT_CHECK(zs_st_read(st, t, NULL, ZS_F32, 0) == ZS_OK, "empty read");
    t = zs_st_find(st, "empty2");
    ZT_CHECK(t && t->numel == 0 && zs_st_read(st, t, rd, ZS_F16, 0) == ZS_OK, "empty2 read");
    t = zs_st_find(st, "two");
    ZT_CHECK(t && t->offset == 4 && zs_st_read(st, t, rd, ZS_F32, 2) == ZS_OK && rd[0] == 1.0f && rd[1] == 2.0f, "two");
    zs_st_close(st);
    remove(path);
    /* a file with no tensors at all: "{}" padded to 8, like the reference */
    ZT_REQUIRE(zs_st_save(path, NULL, 0, NULL) == ZS_OK, "save empty: %.300s", zs_last_error());
    {
        size_t n;
        unsigned char *p = read_bytes(path, &n);
        static const unsigned char want[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
        ZT_CHECK(p && n == 16 && !memcmp(p, want, 16), "empty file bytes (reference test_empty)");
        free(p);
    }
    st = zs_st_open(path);
    ZT_CHECK(st && zs_st_count(st) == 0, "open empty: %.300s", zs_last_error());
    zs_st_close(st);
    remove(path);
}

static void test_io_st_escaped_names(void) {
    char path[512];
    const char *names[8] = {"q\"uote", "back\\slash", "new\nline\ttab", "ctl\x01\x1f", "caf\xc3\xa9",
                            "\xe6\x97\xa5\xe6\x9c\xac", "emoji\xf0\x9f\x98\x80", "sl/ash"};
    float v[8];
    int64_t one[1] = {1};
    zs_st_entry e[8];
    zs_safetensors *st;
    int i;
    for (i = 0; i < 8; i++) {
        v[i] = (float)i + 0.5f;
        e[i].name = names[i]; e[i].type = ZS_F32; e[i].ndim = 1; e[i].shape = one; e[i].data = &v[i];
    }
    tmp_path(path, sizeof path, "esc.safetensors");
    ZT_REQUIRE(zs_st_save(path, e, 8, NULL) == ZS_OK, "save: %.300s", zs_last_error());
    st = zs_st_open(path);
    ZT_REQUIRE(st != NULL, "open: %.300s", zs_last_error());
    for (i = 0; i < 8; i++) {
        const zs_st_info *t = zs_st_find(st, names[i]);
        float x = 0;
        ZT_CHECK(t != NULL, "find name %d", i);
        ZT_CHECK(t && zs_st_read(st, t, &x, ZS_F32, 1) == ZS_OK && x == v[i], "value %d", i);
        ZT_CHECK(!strcmp(zs_st_get(st, i)->name, names[i]), "header order name %d", i);
    }
    zs_st_close(st);
    remove(path);
}

/* ---- safetensors: files written by Python -------------------------------- */

static void check_py_st(zs_safetensors *st) {
    const zs_st_info *t;
    float rd[8];
    int64_t iv[2];
    double dv;
    int i;
    ZT_REQUIRE(st != NULL, "open: %.300s", zs_last_error());
    ZT_CHECK(zs_st_count(st) == 8, "count %d", zs_st_count(st));
    ZT_CHECK(zs_st_metadata(st, "format") && !strcmp(zs_st_metadata(st, "format"), "pt"), "metadata format");
    ZT_CHECK(zs_st_metadata(st, "info") && !strcmp(zs_st_metadata(st, "info"), "line1\nline2 \"q\""), "metadata info");
    /* reference order: I64, F64, F32 (s, w, w\u00e9\U0001F600, z), BF16, F16 */
    ZT_CHECK(!strcmp(zs_st_get(st, 0)->name, "i") && !strcmp(zs_st_get(st, 7)->name, "h"), "header order");
    t = zs_st_find(st, "w");
    ZT_REQUIRE(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3, "w");
    ZT_REQUIRE(zs_st_read(st, t, rd, ZS_F32, 6) == ZS_OK, "read w: %.300s", zs_last_error());
    for (i = 0; i < 6; i++) ZT_CHECK(rd[i] == (float)i * 0.5f - 1.0f, "w[%d] = %g", i, (double)rd[i]);
    t = zs_st_find(st, "h");
    ZT_REQUIRE(t && zs_st_read(st, t, rd, ZS_F32, 3) == ZS_OK, "read h");
    ZT_CHECK(rd[0] == 1.5f && rd[1] == -2.25f && rd[2] == 65504.0f, "h values %g %g %g", (double)rd[0], (double)rd[1], (double)rd[2]);
    t = zs_st_find(st, "b");
    ZT_REQUIRE(t && t->type == ZS_BF16 && zs_st_read(st, t, rd, ZS_F32, 4) == ZS_OK, "read b");
    ZT_CHECK(rd[0] == 1.0f && rd[1] == -0.5f && rd[2] == 3.140625f && rd[3] == zs_bf16_to_f32(zs_f32_to_bf16(1e-3f)), "b values");
    t = zs_st_find(st, "s");
    ZT_REQUIRE(t && t->ndim == 0 && zs_st_read(st, t, rd, ZS_F32, 1) == ZS_OK && rd[0] == 42.0f, "scalar");
    t = zs_st_find(st, "z");
    ZT_REQUIRE(t && t->numel == 0 && t->shape[0] == 0 && t->shape[1] == 3 && zs_st_read(st, t, rd, ZS_F32, 0) == ZS_OK, "zero-size");
    t = zs_st_find(st, "w\xc3\xa9\xf0\x9f\x98\x80"); /* "w\u00e9\ud83d\ude00" in the file */
    ZT_REQUIRE(t && zs_st_read(st, t, rd, ZS_F32, 1) == ZS_OK && rd[0] == 3.0f, "\\u-escaped name incl. surrogate pair");
    t = zs_st_find(st, "i");
    ZT_REQUIRE(t && t->type == ZS_TYPE_COUNT && !strcmp(t->dtype, "I64") && t->nbytes == 16, "I64 listed");
    ZT_CHECK(zs_st_read(st, t, rd, ZS_F32, 2) == ZS_ERR_UNSUPPORTED && strstr(zs_last_error(), "dtype I64"),
             "I64 as float refused: %.300s", zs_last_error());
    ZT_CHECK(zs_st_read_raw(st, t, iv, 16) == ZS_OK && iv[0] == 7 && iv[1] == -1, "I64 raw"); /* little-endian host */
    ZT_CHECK(zs_st_read_raw(st, t, iv, 8) == ZS_ERR_ARG, "raw size checked");
    t = zs_st_find(st, "d");
    ZT_REQUIRE(t && !strcmp(t->dtype, "F64") && zs_st_read(st, t, rd, ZS_F32, 1) == ZS_ERR_UNSUPPORTED, "F64 refused");
    ZT_CHECK(zs_st_read_raw(st, t, &dv, 8) == ZS_OK && dv == 0.1, "F64 raw");
}

static void test_io_st_python_bytes(void) {
    char path[512];
    zs_safetensors *st = zs_st_open_memory(py_st, sizeof py_st);
    check_py_st(st);
    zs_st_close(st);
    tmp_path(path, sizeof path, "py.safetensors");
    ZT_REQUIRE(write_bytes(path, py_st, sizeof py_st), "write");
    st = zs_st_open(path);
    check_py_st(st);
    zs_st_close(st);
    remove(path);
}

/* ---- safetensors: corrupt inputs ----------------------------------------- */

static void test_io_st_truncated(void) {
    char path[512], why[400];
    size_t k, n;
    unsigned char *full;
    float w[3] = {1, 2, 3};
    int64_t s3[1] = {3};
    uint16_t hh[3] = {1, 2, 3};
    zs_st_entry e[2];
    const char *meta[] = {"k", "v", NULL};
    e[0].name = "a"; e[0].type = ZS_F32; e[0].ndim = 1; e[0].shape = s3; e[0].data = w;
    e[1].name = "b"; e[1].type = ZS_F16; e[1].ndim = 1; e[1].shape = s3; e[1].data = hh;
    tmp_path(path, sizeof path, "tr.safetensors");
    ZT_REQUIRE(zs_st_save(path, e, 2, meta) == ZS_OK, "save");
    full = read_bytes(path, &n);
    ZT_REQUIRE(full && n > 40, "read");
    /* every strict prefix fails: in memory, and as a file */
    for (k = 0; k < n; k++) {
        zs_safetensors *st;
        ZT_CHECK(st_fails(full, k, NULL, why, sizeof why), "memory prefix %zu: %.300s", k, why);
        ZT_REQUIRE(write_bytes(path, full, k), "write prefix");
        zs__errbuf[0] = 0;
        st = zs_st_open(path);
        ZT_CHECK(st == NULL && zs_last_error()[0], "file prefix %zu accepted", k);
        zs_st_close(st);
    }
    ZT_CHECK(st_fails(full, 7, "too short", why, sizeof why), "7 bytes: %.300s", why);
    ZT_CHECK(st_fails(full, n - 1, "tensor 'b': data_offsets [12, 18] beyond the data (17 bytes)", why, sizeof why), "one byte short: %.300s", why);
    /* the full file is fine */
    {
        zs_safetensors *st = zs_st_open_memory(full, n);
        ZT_CHECK(st && st_read_all(st) == ZS_OK, "full file: %.300s", zs_last_error());
        zs_st_close(st);
    }
    free(full);
    remove(path);
}

static void test_io_st_header_length(void) {
    char why[400];
    unsigned char buf[64];
    static const uint64_t lens[] = {0x8000000000000000ull, 0xffffffffffffffffull, 100000001ull};
    size_t i, k;
    memset(buf, ' ', sizeof buf);
    buf[8] = '{'; buf[9] = '}';
    for (i = 0; i < 3; i++) {
        for (k = 0; k < 8; k++) buf[k] = (unsigned char)(lens[i] >> (8 * k));
        ZT_CHECK(st_fails(buf, sizeof buf, "exceeds the 100000000-byte limit", why, sizeof why), "len %llx: %.300s",
                 (unsigned long long)lens[i], why);
    }
    /* within the cap but longer than the file: refused before allocating */
    for (k = 0; k < 8; k++) buf[k] = (unsigned char)(100000000ull >> (8 * k));
    ZT_CHECK(st_fails(buf, sizeof buf, "exceeds the file", why, sizeof why), "100 MB header in a 64-byte file: %.300s", why);
    buf[0] = 57; for (k = 1; k < 8; k++) buf[k] = 0; /* 8 + 57 = 65 > 64 */
    ZT_CHECK(st_fails(buf, sizeof buf, "exceeds the file", why, sizeof why), "one past: %.300s", why);
    buf[0] = 56; /* exactly the file, "{}" + spaces: valid, no tensors */
    {
        zs_safetensors *st = zs_st_open_memory(buf, sizeof buf);
        ZT_CHECK(st && zs_st_count(st) == 0, "exact header: %.300s", zs_last_error());
        zs_st_close(st);
    }
    buf[0] = 0;
    ZT_CHECK(st_fails(buf, 8, "does not start with '{'", why, sizeof why), "empty header: %.300s", why);
    ZT_CHECK(st_fails(buf, 0, "too short", why, sizeof why), "empty file: %.300s", why);
    ZT_CHECK(zs_st_open_memory(NULL, 0) == NULL && zs_last_error()[0], "NULL buffer, n 0");
}

typedef struct st_case { const char *hdr; size_t data_n; const char *want; } st_case;

#define T8 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
static const st_case st_bad_json[] = {
    {T8, 8, "expected ',' or '}'"},                               /* missing final brace */
    {"{\"a", 0, "unterminated string"},
    {"{\"a\":{\"dtype\":\"F32", 0, "unterminated string"},
    {"{\"a\\q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "bad escape '\\q'"},
    {"{\"a\\u12G4\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "bad hex digit"},
    {"{\"a\\u12", 0, "truncated \\u escape"},
    {"{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "lone high surrogate"},
    {"{\"\\ud800\\u0041\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not followed by a low one"},
    {"{\"\\udc00\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "lone low surrogate"},
    {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\\u0000"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, "trailing comma before '}'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],}}", 8, "trailing comma before '}'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", 8, "trailing comma before ']'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "duplicate tensor name 'a'"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "duplicate \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "duplicate \"shape\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"data_offsets\":[0,8]}}", 8, "duplicate \"data_offsets\""},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\""},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key 'k'"},
    {" " T8 "}", 8, "does not start with '{'"},
    {"[]", 0, "does not start with '{'"},
    {T8 "}x", 8, "unexpected characters after the JSON object"},
    {T8 "}{}", 8, "unexpected characters after the JSON object"},
    {"{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid UTF-8"},
    {"{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid UTF-8"},   /* overlong '/' */
    {"{\"a\xed\xa0\x80\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid UTF-8"}, /* surrogate */
    {"{\"a\xe6\x97\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid UTF-8"},     /* cut sequence */
    {"{\"a\x01\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "control character 0x01"},
    {"{\"a\" {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected ':'"},
    {"{a:{}}", 0, "expected a tensor name (a string)"},
    {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing \"shape\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing \"data_offsets\""},
    {"{\"a\":{}}", 0, "missing \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "not an integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, "not an integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "a dimension is negative"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, "leading zero"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "expected a dimension (an integer)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,8]}}", 8, "does not fit in 64 bits"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "\"shape\" must be an array"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "more than 2 numbers"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "needs 2 numbers"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,8]}}", 8, "data_offsets begin is negative"},
    {"{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'F33'"},
    {"{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'f32'"},
    {"{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1, "sub-byte dtype 'F4'"},
    {"{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected the dtype (a string)"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string"},
    {"{\"__metadata__\":[\"k\"]}", 0, "must be an object of strings"},
    {"{\"a\":5}", 0, "tensor 'a': expected an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "more than 8 dimensions"},
    {"{\"a\":{\"x\":tru,\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unexpected character 't'"},
    {"{\"a\":{\"x\":-,\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "bad number"},
    {"{\"a\":{\"x\":1.,\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "digit expected after '.'"},
    {"{\"a\":{\"x\":1e+,\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "digit expected in exponent"},
    {"{\"a\":{\"x\":01,\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected ',' or '}'"},
    {"{\"a\":{\"x\":[1 2],\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected ',' or ']'"},
    {"{\"a\":{\"x\":{\"k\" 1},\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected ':'"},
    {"{\"a\":{\"x\":", 0, "unexpected end of the header"},
    {"{}", 8, "8 data bytes but no tensors"},
    /* offsets */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "tensor 'b' data at [4, 12] overlaps another tensor"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlaps another tensor"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20, "tensor 'b' data at [12, 20] leaves a gap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "leaves a gap (expected it to begin at 0)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "beyond the data (4 bytes)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "end before begin"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "hold 8 bytes but F32 x 3 elements need 12"},
    {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "hold 8 bytes but BF16 x 2 elements need 4"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "tensors cover 8 data bytes but the file has 12"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "shape product overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,2],\"data_offsets\":[0,8]}}", 8, "shape product overflows"},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", 8, "byte size overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,8]}}", 8, "dimension 9223372036854775808 too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551615,7]}}", 8, "end before begin"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551614,18446744073709551615]}}", 8, "beyond the data"},
};

/* accepted although unusual: all valid per the reference implementation */
static const st_case st_good_json[] = {
    {"{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, NULL},
    {"{ \"a\" :\t{ \"shape\" : [ 2 ] ,\r\n \"data_offsets\" : [ 0 , 8 ] , \"dtype\" : \"F32\" } }  \n ", 8, NULL},
    {"{\"a\":{\"dtype\":\"F32\",\"extra\":{\"x\":[1,-2.5e+3,true,false,null,\"s\\n\",{}],\"y\":[]},\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
    {"{\"__metadata__\":null,\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
    {"{\"__metadata__\":{},\"a\\/b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
    {"{\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"e2\":{\"dtype\":\"I64\",\"shape\":[5,0],\"data_offsets\":[8,8]}}", 8, NULL},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, NULL},
    {"{\"a\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]},\"b\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[2,4]},\"c\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[4,8]}}", 8, NULL},
    {"{}", 0, NULL},
};

static void test_io_st_bad_json(void) {
    char why[400];
    size_t i, n;
    for (i = 0; i < sizeof st_bad_json / sizeof st_bad_json[0]; i++) {
        unsigned char *p = st_make(st_bad_json[i].hdr, strlen(st_bad_json[i].hdr), st_bad_json[i].data_n, &n);
        ZT_CHECK(st_fails(p, n, st_bad_json[i].want, why, sizeof why), "bad case %zu (%.60s): %.300s", i, st_bad_json[i].hdr, why);
        free(p);
    }
    for (i = 0; i < sizeof st_good_json / sizeof st_good_json[0]; i++) {
        unsigned char *p = st_make(st_good_json[i].hdr, strlen(st_good_json[i].hdr), st_good_json[i].data_n, &n);
        zs_safetensors *st = zs_st_open_memory(p, n);
        ZT_CHECK(st != NULL, "good case %zu (%.60s): %.300s", i, st_good_json[i].hdr, zs_last_error());
        if (st) ZT_CHECK(st_read_all(st) == ZS_OK, "good case %zu read: %.300s", i, zs_last_error());
        zs_st_close(st);
        free(p);
    }
    /* out-of-order header: offsets decide, data is where data_offsets say */
    {
        const st_case *c = &st_good_json[0];
        unsigned char *p = st_make(c->hdr, strlen(c->hdr), c->data_n, &n);
        zs_safetensors *st = zs_st_open_memory(p, n);
        unsigned char raw[8];
        ZT_REQUIRE(st != NULL, "open");
        ZT_CHECK(zs_st_read_raw(st, zs_st_find(st, "b"), raw, 8) == ZS_OK && raw[0] == 8 && raw[7] == 15, "b data from offset 8");
        ZT_CHECK(!strcmp(zs_st_get(st, 0)->name, "b"), "header order kept");
        zs_st_close(st);
        free(p);
    }
    /* the escaped "\/" decodes to '/' */
    {
        const st_case *c = &st_good_json[4];
        unsigned char *p = st_make(c->hdr, strlen(c->hdr), c->data_n, &n);
        zs_safetensors *st = zs_st_open_memory(p, n);
        ZT_CHECK(st && zs_st_find(st, "a/b") != NULL, "a\\/b -> a/b");
        zs_st_close(st);
        free(p);
    }
    /* trailing NUL bytes after the JSON are not whitespace */
    {
        unsigned char *p = st_make(T8 "}\0\0", strlen(T8 "}") + 2, 8, &n);
        ZT_CHECK(st_fails(p, n, "unexpected characters after the JSON object", why, sizeof why), "NUL padding: %.300s", why);
        free(p);
    }
    /* a raw NUL inside the JSON */
    {
        unsigned char *p = st_make("{\"a\0\":{}}", 9, 0, &n);
        ZT_CHECK(st_fails(p, n, "control character 0x00", why, sizeof why), "raw NUL: %.300s", why);
        free(p);
    }
    /* nesting 1000 deep inside an unknown field: depth limit, no stack overflow */
    {
        size_t d, k = 0;
        char *h = (char *)malloc(3000);
        k += (size_t)sprintf(h + k, "{\"a\":{\"x\":");
        for (d = 0; d < 1000; d++) h[k++] = '[';
        for (d = 0; d < 1000; d++) h[k++] = ']';
        k += (size_t)sprintf(h + k, ",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
        {
            unsigned char *p = st_make(h, k, 8, &n);
            ZT_CHECK(st_fails(p, n, "nested deeper than 128 levels", why, sizeof why), "depth 1000: %.300s", why);
            free(p);
        }
        /* 100 levels of objects are fine */
        k = 0;
        k += (size_t)sprintf(h + k, "{\"a\":{\"x\":");
        for (d = 0; d < 100; d++) k += (size_t)sprintf(h + k, "{\"k\":");
        h[k++] = '1';
        for (d = 0; d < 100; d++) h[k++] = '}';
        k += (size_t)sprintf(h + k, ",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
        {
            unsigned char *p = st_make(h, k, 8, &n);
            zs_safetensors *st = zs_st_open_memory(p, n);
            ZT_CHECK(st != NULL, "depth 100 accepted: %.300s", zs_last_error());
            zs_st_close(st);
            free(p);
        }
        free(h);
    }
    /* messages name the file */
    {
        char path[512];
        unsigned char *p = st_make(st_bad_json[1].hdr, strlen(st_bad_json[1].hdr), 0, &n);
        tmp_path(path, sizeof path, "bad.safetensors");
        ZT_REQUIRE(write_bytes(path, p, n), "write");
        ZT_CHECK(zs_st_open(path) == NULL && strstr(zs_last_error(), path) && strstr(zs_last_error(), "zs_st_open("),
                 "message names the file: %.300s", zs_last_error());
        free(p);
        remove(path);
    }
}

/* Robustness: every single-byte substitution and random multi-byte damage of
   a valid file either fails with a message or opens and reads cleanly. */
static void test_io_st_mutations(void) {
    static const unsigned char subs[] = {0x00, 0xff, '"', '}', ']', '9', '-', ',', '\\', ' ', 0x80, 'e'};
    unsigned char *m;
    size_t i, k, n = sizeof py_st;
    int opened = 0, failed = 0, it;
    m = (unsigned char *)malloc(n);
    for (i = 0; i < n; i++)
        for (k = 0; k < sizeof subs; k++) {
            zs_safetensors *st;
            memcpy(m, py_st, n);
            if (m[i] == subs[k]) continue;
            m[i] = subs[k];
            zs__errbuf[0] = 0;
            st = zs_st_open_memory(m, n);
            if (st) { opened++; ZT_CHECK(st_read_all(st) == ZS_OK, "byte %zu = %02x: read failed: %.300s", i, subs[k], zs_last_error()); }
            else { failed++; ZT_CHECK(zs_last_error()[0], "byte %zu = %02x: empty message", i, subs[k]); }
            zs_st_close(st);
        }
    for (it = 0; it < 3000; it++) {
        zs_safetensors *st;
        int flips = 1 + (int)((zt_rand(11, (unsigned long long)it) * 0.5f + 0.5f) * 8);
        memcpy(m, py_st, n);
        for (k = 0; k < (size_t)flips; k++) {
            size_t pos = (size_t)((zt_rand(12, (unsigned long long)(it * 16 + (int)k)) * 0.5f + 0.5f) * (float)(n - 1));
            m[pos] = (unsigned char)((zt_rand(13, (unsigned long long)(it * 16 + (int)k)) * 0.5f + 0.5f) * 255.0f);
        }
        zs__errbuf[0] = 0;
        st = zs_st_open_memory(m, n);
        if (st) { opened++; ZT_CHECK(st_read_all(st) == ZS_OK, "random %d: read failed", it); }
        else { failed++; ZT_CHECK(zs_last_error()[0], "random %d: empty message", it); }
        zs_st_close(st);
    }
    ZT_CHECK(opened > 0 && failed > 0, "both outcomes seen (%d opened, %d failed)", opened, failed);
    free(m);
}

static void test_io_st_api_errors(void) {
    char path[512], missing[600];
    float v[2] = {1, 2}, rd[2];
    int64_t s2[1] = {2}, bad[1] = {-1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    zs_st_entry e[2];
    zs_safetensors *st, *st2;
    const char *bad_meta[] = {"k", NULL};
    const char *dup_meta[] = {"k", "1", "k", "2", NULL};
    const char *bad_utf8_meta[] = {"k", "\xff", NULL};
    e[0].name = "a"; e[0].type = ZS_F32; e[0].ndim = 1; e[0].shape = s2; e[0].data = v;
    e[1] = e[0];
    tmp_path(path, sizeof path, "api.safetensors");
    /* writer argument checks (nothing is created) */
    e[1].name = "a";
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "duplicate tensor name 'a'"), "dup: %.300s", zs_last_error());
    e[1].name = NULL;
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "NULL name"), "NULL name");
    e[1].name = "__metadata__";
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "reserved"), "reserved name");
    e[1].name = "b\xc3";
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "not valid UTF-8"), "bad UTF-8 name");
    e[1].name = "b"; e[1].shape = bad;
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "negative dimension"), "negative dim");
    e[1].shape = s9; e[1].ndim = 9;
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "bad ndim 9"), "9 dims");
    e[1].ndim = 1; e[1].shape = s2; e[1].type = ZS_TYPE_COUNT;
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "cannot be saved"), "bad type");
    e[1].type = ZS_F32; e[1].data = NULL;
    ZT_CHECK(zs_st_save(path, e, 2, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "NULL data"), "NULL data");
    e[1].data = v;
    ZT_CHECK(zs_st_save(path, e, 2, bad_meta) == ZS_ERR_ARG && strstr(zs_last_error(), "NULL value"), "odd metadata");
    ZT_CHECK(zs_st_save(path, e, 2, dup_meta) == ZS_ERR_ARG && strstr(zs_last_error(), "duplicate metadata key 'k'"), "dup metadata");
    ZT_CHECK(zs_st_save(path, e, 2, bad_utf8_meta) == ZS_ERR_ARG && strstr(zs_last_error(), "not valid UTF-8"), "bad UTF-8 metadata");
    ZT_CHECK(zs_st_save(NULL, e, 2, NULL) == ZS_ERR_ARG, "NULL path");
    ZT_CHECK(zs_st_save(path, NULL, 2, NULL) == ZS_ERR_ARG, "NULL entries");
    ZT_CHECK(zs_st_save(path, e, -1, NULL) == ZS_ERR_ARG, "negative n");
    {
        FILE *f = fopen(path, "rb");
        ZT_CHECK(f == NULL, "nothing written on argument errors");
        if (f) fclose(f);
    }
    ZT_CHECK(zs_st_save("/nonexistent_dir_zs/x.safetensors", e, 2, NULL) == ZS_ERR_IO &&
             strstr(zs_last_error(), "/nonexistent_dir_zs/x.safetensors") && strstr(zs_last_error(), "cannot create"),
             "unwritable path: %.300s", zs_last_error());
    /* reader argument checks */
    ZT_REQUIRE(zs_st_save(path, e, 2, NULL) == ZS_OK, "save: %.300s", zs_last_error());
    st = zs_st_open(path);
    st2 = zs_st_open(path);
    ZT_REQUIRE(st && st2, "open");
    ZT_CHECK(zs_st_read(st, zs_st_get(st2, 0), rd, ZS_F32, 2) == ZS_ERR_ARG && strstr(zs_last_error(), "not from this handle"), "foreign info");
    ZT_CHECK(zs_st_read(st, NULL, rd, ZS_F32, 2) == ZS_ERR_ARG, "NULL info");
    ZT_CHECK(zs_st_read(NULL, zs_st_get(st, 0), rd, ZS_F32, 2) == ZS_ERR_ARG, "NULL handle");
    ZT_CHECK(zs_st_read(st, zs_st_get(st, 0), NULL, ZS_F32, 2) == ZS_ERR_ARG, "NULL dst");
    ZT_CHECK(zs_st_read(st, zs_st_get(st, 0), rd, ZS_F32, 3) == ZS_ERR_ARG && strstr(zs_last_error(), "has 2 elements, dst_count is 3"), "count: %.300s", zs_last_error());
    ZT_CHECK(zs_st_read(st, zs_st_get(st, 0), rd, ZS_I32, 2) == ZS_ERR_UNSUPPORTED, "f32 -> i32 refused");
    ZT_CHECK(zs_st_read(st, zs_st_get(st, 1), rd, ZS_F32, 2) == ZS_OK && rd[1] == 2.0f, "second tensor");
    ZT_CHECK(zs_st_metadata_get(st, 0, NULL, NULL) == ZS_ERR_ARG, "metadata index out of range");
    ZT_CHECK(zs_st_count(NULL) == 0 && zs_st_find(NULL, "a") == NULL && zs_st_find(st, NULL) == NULL && zs_st_metadata(NULL, "k") == NULL, "NULL-safe getters");
    /* load into a tensor (e.g. a parameter) with shape checking */
    {
        float buf[2] = {0, 0};
        uint16_t hb[2];
        int64_t sh2[1] = {2}, sh3[2] = {1, 2};
        zs_tensor t;
        ZT_REQUIRE(zs_tensor_wrap(&t, ZS_F32, 1, sh2, buf) == ZS_OK, "wrap");
        ZT_CHECK(zs_st_load_tensor(st, "b", &t) == ZS_OK && buf[0] == 1.0f && buf[1] == 2.0f, "load_tensor: %.300s", zs_last_error());
        ZT_REQUIRE(zs_tensor_wrap(&t, ZS_BF16, 1, sh2, hb) == ZS_OK, "wrap bf16");
        ZT_CHECK(zs_st_load_tensor(st, "b", &t) == ZS_OK && zs_bf16_to_f32(hb[1]) == 2.0f, "load_tensor bf16");
        ZT_REQUIRE(zs_tensor_wrap(&t, ZS_F32, 2, sh3, buf) == ZS_OK, "wrap [1,2]");
        ZT_CHECK(zs_st_load_tensor(st, "b", &t) == ZS_ERR_SHAPE && strstr(zs_last_error(), "has shape [2], destination [1,2]"),
                 "shape mismatch: %.300s", zs_last_error());
        ZT_CHECK(zs_st_load_tensor(st, "zz", &t) == ZS_ERR_FORMAT && strstr(zs_last_error(), "no tensor named 'zz'"), "missing: %.300s", zs_last_error());
    }
    zs_st_close(st);
    zs_st_close(st2);
    zs_st_close(NULL);
    /* the file shrinks while open: reads past the new end fail with
       ZS_ERR_IO (data still in the stdio buffer may be returned; the tensor
       is larger than that buffer) */
    {
        int64_t sbig[1] = {100000};
        float *big = (float *)calloc(100000, 4);
        unsigned char hb8[8];
        zs_st_entry eb;
        eb.name = "big"; eb.type = ZS_F32; eb.ndim = 1; eb.shape = sbig; eb.data = big;
        ZT_REQUIRE(zs_st_save(path, &eb, 1, NULL) == ZS_OK, "save big");
        st = zs_st_open(path);
        ZT_REQUIRE(st != NULL, "open big");
        ZT_REQUIRE(write_bytes(path, hb8, 8), "truncate");
        ZT_CHECK(zs_st_read(st, zs_st_get(st, 0), big, ZS_F32, 100000) == ZS_ERR_IO && strstr(zs_last_error(), "unexpected end of file"),
                 "shrunk file: %.300s", zs_last_error());
        ZT_CHECK(zs_st_read(st, zs_st_get(st, 0), big, ZS_F16, 100000) == ZS_ERR_IO, "shrunk file, chunked read");
        zs_st_close(st);
        free(big);
    }
    remove(path);
    /* missing file, directory */
    snprintf(missing, sizeof missing, "%s.missing", path);
    ZT_CHECK(zs_st_open(missing) == NULL && strstr(zs_last_error(), "cannot open") && strstr(zs_last_error(), missing),
             "missing file: %.300s", zs_last_error());
    ZT_CHECK(zs_st_open(tmp_dir) == NULL && zs_last_error()[0], "directory refused: %.300s", zs_last_error());
    ZT_CHECK(zs_st_open(NULL) == NULL && zs_last_error()[0], "NULL path");
}

/* 64-bit offsets: a sparse 3 GiB file whose last tensor sits past 2^31 and
   2^32 bytes (no disk space used on file systems with holes). */
static void test_io_st_large_file(void) {
    char path[512], hdr[256];
    const uint64_t big = 3ull << 30;
    float tail[4] = {1.5f, -2.0f, 3.25f, 1e30f}, rd[4];
    unsigned char len8[8];
    size_t hn;
    int k, ok;
    FILE *f;
    zs_safetensors *st;
    const zs_st_info *t;
    if (sizeof(long) < 8) ZT_SKIP("needs 64-bit long to create the test file");
    hn = (size_t)snprintf(hdr, sizeof hdr, "{\"big\":{\"dtype\":\"U8\",\"shape\":[%llu],\"data_offsets\":[0,%llu]},"
                          "\"tail\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[%llu,%llu]}}",
                          (unsigned long long)big, (unsigned long long)big, (unsigned long long)big, (unsigned long long)big + 16);
    while (hn % 8) hdr[hn++] = ' ';
    for (k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)hn >> (8 * k));
    tmp_path(path, sizeof path, "big.safetensors");
    f = fopen(path, "wb");
    if (!f) ZT_SKIP("cannot create %.300s", path);
    ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hn, f) == hn && fseek(f, (long)(8 + hn + big), SEEK_SET) == 0 &&
         fwrite(tail, 4, 4, f) == 4;
    if (fclose(f) != 0) ok = 0;
    if (!ok) { remove(path); ZT_SKIP("cannot write a sparse 3 GiB file"); }
    st = zs_st_open(path);
    ZT_CHECK(st != NULL, "open: %.300s", zs_last_error());
    if (st) {
        t = zs_st_find(st, "tail");
        ZT_CHECK(t && t->offset == big && zs_st_read(st, t, rd, ZS_F32, 4) == ZS_OK && !memcmp(rd, tail, 16),
                 "tail beyond 3 GiB: %.300s", zs_last_error());
        t = zs_st_find(st, "big");
        ZT_CHECK(t && t->nbytes == big && t->numel == (int64_t)big, "big info");
    }
    zs_st_close(st);
    remove(path);
}

/* ---- npy ------------------------------------------------------------------ */

/* .npy bytes: magic, version, header length field, header text, data_n bytes */
static unsigned char *npy_make(int major, const char *hdr, size_t data_n, size_t *total) {
    size_t hn = strlen(hdr), pre = major == 1 ? 10 : 12, i;
    unsigned char *p = (unsigned char *)malloc(pre + hn + data_n + 1);
    memcpy(p, "\x93NUMPY", 6);
    p[6] = (unsigned char)major;
    p[7] = 0;
    for (i = 0; i < pre - 8; i++) p[8 + i] = (unsigned char)(hn >> (8 * i));
    memcpy(p + pre, hdr, hn);
    for (i = 0; i < data_n; i++) p[pre + hn + i] = (unsigned char)(i * 7);
    *total = pre + hn + data_n;
    return p;
}

static int npy_fails(const unsigned char *p, size_t n, const char *want, char *why, size_t cap) {
    int nd = 99, r;
    int64_t sh[8];
    float *d = (float *)&nd;
    zs__errbuf[0] = 0;
    r = zs_npy_read_memory(p, n, &nd, sh, &d);
    if (r == ZS_OK) { zs_npy_free(d); snprintf(why, cap, "accepted"); return 0; }
    if (d != NULL || nd != 0) { snprintf(why, cap, "outputs not reset on failure"); return 0; }
    if (!zs_last_error()[0]) { snprintf(why, cap, "empty message"); return 0; }
    if (want && !strstr(zs_last_error(), want)) { snprintf(why, cap, "message '%.300s' lacks '%s'", zs_last_error(), want); return 0; }
    return 1;
}

static void test_io_npy_roundtrip(void) {
    char path[512];
    static const int64_t shapes[][8] = {{2, 3, 4}, {5}, {0}, {0, 3}, {1, 2, 1, 2, 1, 2, 1, 2}, {1234567, 0}};
    static const int ndims[] = {3, 1, 1, 2, 8, 2, 0};
    int c;
    tmp_path(path, sizeof path, "rt.npy");
    for (c = 0; c < 7; c++) {
        int64_t sh[8], n = 1;
        float *src, *got = NULL;
        int nd = -1, i, r;
        for (i = 0; i < ndims[c]; i++) n *= shapes[c][i];
        src = (float *)malloc((size_t)(n ? n : 1) * 4);
        zt_fill(src, n, (unsigned long long)c, 100.0f);
        r = zs_npy_write(path, ndims[c], c < 6 ? shapes[c] : NULL, src);
        ZT_REQUIRE(r == ZS_OK, "write case %d: %.300s", c, zs_last_error());
        r = zs_npy_read(path, &nd, sh, &got);
        ZT_CHECK(r == ZS_OK, "read case %d: %.300s", c, zs_last_error());
        if (r == ZS_OK) {
            size_t fn;
            unsigned char *bytes = read_bytes(path, &fn);
            ZT_CHECK(nd == ndims[c], "ndim %d vs %d", nd, ndims[c]);
            for (i = 0; i < nd; i++) ZT_CHECK(sh[i] == shapes[c][i], "case %d dim %d", c, i);
            ZT_CHECK(got != NULL && (n == 0 || !memcmp(got, src, (size_t)n * 4)), "case %d values", c);
            ZT_CHECK(bytes && (fn - (size_t)n * 4) % 64 == 0 && bytes[fn - (size_t)n * 4 - 1] == '\n', "case %d: data 64-byte aligned after '\\n'", c);
            free(bytes);
        }
        zs_npy_free(got);
        free(src);
    }
    /* byte-identical to numpy.save for the same arrays */
    {
        float a[6];
        int64_t s23[2] = {2, 3};
        float sc = -7.25f;
        size_t fn;
        unsigned char *bytes;
        for (c = 0; c < 6; c++) a[c] = (float)c - 2.5f;
        ZT_REQUIRE(zs_npy_write(path, 2, s23, a) == ZS_OK, "write");
        bytes = read_bytes(path, &fn);
        ZT_CHECK(bytes && fn == sizeof py_npy_f4 && !memcmp(bytes, py_npy_f4, fn), "[2,3] file equals numpy.save output");
        free(bytes);
        ZT_REQUIRE(zs_npy_write(path, 0, NULL, &sc) == ZS_OK, "write scalar");
        bytes = read_bytes(path, &fn);
        ZT_CHECK(bytes && fn == sizeof py_npy_scalar && !memcmp(bytes, py_npy_scalar, fn), "scalar file equals numpy.save output");
        free(bytes);
    }
    remove(path);
    /* writer argument errors */
    {
        int64_t neg[1] = {-2}, s1[1] = {2};
        ZT_CHECK(zs_npy_write(path, 1, neg, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "negative dimension"), "negative");
        ZT_CHECK(zs_npy_write(path, 9, shapes[4], NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "bad ndim 9"), "9 dims");
        ZT_CHECK(zs_npy_write(path, 1, s1, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "NULL data"), "NULL data");
        ZT_CHECK(zs_npy_write(NULL, 1, s1, NULL) == ZS_ERR_ARG, "NULL path");
        ZT_CHECK(zs_npy_write("/nonexistent_dir_zs/x.npy", 0, NULL, (const float *)s1) == ZS_ERR_IO &&
                 strstr(zs_last_error(), "/nonexistent_dir_zs/x.npy"), "unwritable: %.300s", zs_last_error());
    }
}

static void test_io_npy_python_bytes(void) {
    char why[400], path[512];
    int nd, i;
    int64_t sh[8];
    float *d = NULL;
    ZT_REQUIRE(zs_npy_read_memory(py_npy_f4, sizeof py_npy_f4, &nd, sh, &d) == ZS_OK, "f4: %.300s", zs_last_error());
    ZT_CHECK(nd == 2 && sh[0] == 2 && sh[1] == 3, "f4 shape");
    for (i = 0; i < 6; i++) ZT_CHECK(d[i] == (float)i - 2.5f, "f4[%d]", i);
    zs_npy_free(d);
    ZT_REQUIRE(zs_npy_read_memory(py_npy_scalar, sizeof py_npy_scalar, &nd, sh, &d) == ZS_OK, "scalar");
    ZT_CHECK(nd == 0 && d[0] == -7.25f, "scalar value");
    zs_npy_free(d);
    ZT_REQUIRE(zs_npy_read_memory(py_npy_v2, sizeof py_npy_v2, &nd, sh, &d) == ZS_OK, "v2: %.300s", zs_last_error());
    ZT_CHECK(nd == 1 && sh[0] == 3 && d[0] == 1.0f && d[2] == 3.0f, "v2 values");
    zs_npy_free(d);
    ZT_REQUIRE(zs_npy_read_memory(py_npy_v3, sizeof py_npy_v3, &nd, sh, &d) == ZS_OK, "v3: %.300s", zs_last_error());
    ZT_CHECK(nd == 1 && sh[0] == 2 && d[0] == 4.0f && d[1] == 5.0f, "v3 values");
    zs_npy_free(d);
    ZT_CHECK(npy_fails(py_npy_be, sizeof py_npy_be, "big-endian float32 ('>f4') not supported", why, sizeof why), "big-endian: %.300s", why);
    ZT_CHECK(npy_fails(py_npy_fortran, sizeof py_npy_fortran, "Fortran-order arrays not supported", why, sizeof why), "fortran: %.300s", why);
    ZT_CHECK(npy_fails(py_npy_f8, sizeof py_npy_f8, "dtype '<f8' not supported", why, sizeof why), "f8: %.300s", why);
    ZT_CHECK(npy_fails(py_npy_obj, sizeof py_npy_obj, "object arrays ('|O') not supported", why, sizeof why), "object: %.300s", why);
    ZT_CHECK(npy_fails(py_npy_struct, sizeof py_npy_struct, "structured dtype not supported", why, sizeof why), "structured: %.300s", why);
    /* through a file; the message names it */
    tmp_path(path, sizeof path, "py.npy");
    ZT_REQUIRE(write_bytes(path, py_npy_f4, sizeof py_npy_f4), "write");
    ZT_CHECK(zs_npy_read(path, &nd, sh, &d) == ZS_OK && nd == 2 && d[5] == 2.5f, "file read: %.300s", zs_last_error());
    zs_npy_free(d);
    ZT_REQUIRE(write_bytes(path, py_npy_be, sizeof py_npy_be), "write");
    ZT_CHECK(zs_npy_read(path, &nd, sh, &d) == ZS_ERR_FORMAT && strstr(zs_last_error(), path) && strstr(zs_last_error(), "zs_npy_read("),
             "file message: %.300s", zs_last_error());
    remove(path);
    ZT_CHECK(zs_npy_read(path, &nd, sh, &d) == ZS_ERR_IO && strstr(zs_last_error(), "cannot open") && d == NULL, "missing file: %.300s", zs_last_error());
    ZT_CHECK(zs_npy_read(NULL, &nd, sh, &d) == ZS_ERR_ARG, "NULL path");
    ZT_CHECK(zs_npy_read_memory(py_npy_f4, sizeof py_npy_f4, NULL, sh, &d) == ZS_ERR_ARG, "NULL ndim");
}

#define NPYH(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"
typedef struct npy_case { int major; const char *hdr; size_t data_n; const char *want; } npy_case;
static const npy_case npy_bad[] = {
    {4, NPYH("(2,)"), 8, "unsupported .npy format version 4.0"},
    {1, NPYH("(2,)"), 4, "needs 8 data bytes but the file has 4 (truncated)"},
    {1, NPYH("(2,)"), 12, "needs 8 data bytes but the file has 12 (trailing bytes)"},
    {1, NPYH("(2, 3)"), 8, "needs 24 data bytes"},
    {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, "Fortran-order"},
    {1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", 8, "fortran_order must be True or False"},
    {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "big-endian"},
    {1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype '|f4' not supported"},
    {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype '<i4' not supported"},
    {1, "{'descr': '<f4', 'shape': (2,), }", 8, "missing key 'fortran_order'"},
    {1, "{'descr': '<f4', 'fortran_order': False, }", 8, "missing key 'shape'"},
    {1, "{'fortran_order': False, 'shape': (2,), }", 8, "missing key 'descr'"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unexpected key 'x'"},
    {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "duplicate key 'descr'"},
    {1, NPYH("(2)"), 8, "shape (n) is not a tuple"},
    {1, NPYH("[2]"), 8, "shape is not a tuple"},
    {1, NPYH("(-2,)"), 8, "not a non-negative integer"},
    {1, NPYH("(2.0,)"), 8, "expected ',' or ')' in shape"},
    {1, NPYH("(02,)"), 8, "leading zero"},
    {1, NPYH("(99999999999999999999,)"), 8, "dimension too large"},
    {1, NPYH("(4611686018427387904, 4)"), 8, "shape product overflows"},
    {1, NPYH("(2305843009213693952,)"), 8, "shape too large"},
    {1, NPYH("(1, 1, 1, 1, 1, 1, 1, 1, 2)"), 8, "more than 8 dimensions"},
    {1, NPYH("(2,)") " x", 8, "unexpected characters after the dict"},
    {1, "{'descr': '<f4", 8, "unterminated string"},
    {1, "{'descr': '<\\x66', 'fortran_order': False, 'shape': (2,), }", 8, "escapes in strings are not supported"},
    {1, "['descr']", 8, "header is not a dict"},
    {1, "{'descr' '<f4'}", 8, "expected ':' after 'descr'"},
    {1, "{'descr': '<f4' 'fortran_order': False}", 8, "expected ',' or '}'"},
    {1, "", 8, "header is not a dict"},
};
static const npy_case npy_good[] = {
    {1, NPYH("(2,)") "   \n", 8, NULL},
    {2, NPYH("(2,)") "\n", 8, NULL},
    {1, "{\"shape\":(2,),\"fortran_order\":False,\"descr\":\"<f4\"}", 8, NULL},
    {1, NPYH("(2L,)"), 8, NULL},                   /* Python 2 era */
    {1, NPYH("( 1 , 2 , )"), 8, NULL},
    {1, NPYH("()"), 4, NULL},
    {1, NPYH("(0, 5)"), 0, NULL},
};

static void test_io_npy_corrupt(void) {
    char why[400];
    size_t i, k, n;
    unsigned char buf[16];
    for (i = 0; i < sizeof npy_bad / sizeof npy_bad[0]; i++) {
        unsigned char *p = npy_make(npy_bad[i].major, npy_bad[i].hdr, npy_bad[i].data_n, &n);
        ZT_CHECK(npy_fails(p, n, npy_bad[i].want, why, sizeof why), "bad case %zu (%.50s): %.300s", i, npy_bad[i].hdr, why);
        free(p);
    }
    for (i = 0; i < sizeof npy_good / sizeof npy_good[0]; i++) {
        unsigned char *p = npy_make(npy_good[i].major, npy_good[i].hdr, npy_good[i].data_n, &n);
        int nd;
        int64_t sh[8];
        float *d = NULL;
        ZT_CHECK(zs_npy_read_memory(p, n, &nd, sh, &d) == ZS_OK, "good case %zu (%.50s): %.300s", i, npy_good[i].hdr, zs_last_error());
        zs_npy_free(d);
        free(p);
    }
    /* magic, preamble and header length */
    memcpy(buf, py_npy_f4, 16);
    buf[5] = 'Z';
    ZT_CHECK(npy_fails(buf, 16, "bad magic", why, sizeof why), "magic: %.300s", why);
    ZT_CHECK(npy_fails(py_npy_f4, 9, "too short", why, sizeof why), "9 bytes: %.300s", why);
    memcpy(buf, py_npy_f4, 16);
    buf[8] = 0xff; buf[9] = 0xff;
    ZT_CHECK(npy_fails(buf, 16, "header length 65535 exceeds the file", why, sizeof why), "v1 length: %.300s", why);
    memcpy(buf, "\x93NUMPY\x02\x00\xff\xff\xff\x7f{}  ", 16);
    ZT_CHECK(npy_fails(buf, 16, "header length 2147483647 exceeds the 65536-byte limit", why, sizeof why), "v2 length: %.300s", why);
    memcpy(buf, "\x93NUMPY\x02\x00\x00\x00\x01\x00{}  ", 16);
    ZT_CHECK(npy_fails(buf, 16, "header length 65536 exceeds the file", why, sizeof why), "v2 length 64K: %.300s", why);
    ZT_CHECK(npy_fails(buf, 11, "truncated .npy preamble", why, sizeof why), "v2 preamble: %.300s", why);
    /* every strict prefix of valid files fails; the full files pass */
    for (k = 0; k < sizeof py_npy_f4; k++) ZT_CHECK(npy_fails(py_npy_f4, k, NULL, why, sizeof why), "f4 prefix %zu: %.300s", k, why);
    for (k = 0; k < sizeof py_npy_v2; k++) ZT_CHECK(npy_fails(py_npy_v2, k, NULL, why, sizeof why), "v2 prefix %zu: %.300s", k, why);
    /* single-byte damage never crashes */
    {
        unsigned char m[sizeof py_npy_f4];
        static const unsigned char subs[] = {0, 0xff, '(', ')', ',', '\'', '9', '}', ' ', 'L'};
        int opened = 0;
        for (i = 0; i < sizeof m; i++)
            for (k = 0; k < sizeof subs; k++) {
                int nd;
                int64_t sh[8];
                float *d = NULL;
                int r;
                memcpy(m, py_npy_f4, sizeof m);
                m[i] = subs[k];
                zs__errbuf[0] = 0;
                r = zs_npy_read_memory(m, sizeof m, &nd, sh, &d);
                if (r == ZS_OK) opened++;
                else ZT_CHECK(zs_last_error()[0] && d == NULL, "byte %zu: no message", i);
                zs_npy_free(d);
            }
        ZT_CHECK(opened > 0, "some mutations (data bytes, padding) still read");
    }
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_io_st_roundtrip);
    ZT_RUN(test_io_st_scalar_and_empty);
    ZT_RUN(test_io_st_escaped_names);
    ZT_RUN(test_io_st_python_bytes);
    ZT_RUN(test_io_st_truncated);
    ZT_RUN(test_io_st_header_length);
    ZT_RUN(test_io_st_bad_json);
    ZT_RUN(test_io_st_mutations);
    ZT_RUN(test_io_st_api_errors);
    ZT_RUN(test_io_st_large_file);
    ZT_RUN(test_io_npy_roundtrip);
    ZT_RUN(test_io_npy_python_bytes);
    ZT_RUN(test_io_npy_corrupt);
    return zt_finish();
}
