/* [impl:io] safetensors and .npy readers and writers (development fragment).

   Files are untrusted. Every size, offset and count read from a file is
   checked with overflow-safe arithmetic against the real file size BEFORE
   anything is allocated; header text is capped (safetensors 100,000,000
   bytes like the reference implementation, npy 65,536 bytes). Failures return
   ZS_ERR_IO (cannot open/read/write), ZS_ERR_FORMAT (corrupt or unsupported
   contents), ZS_ERR_ARG (bad call) or ZS_ERR_UNSUPPORTED (e.g. reading I64
   data as floats), and zs_last_error() names the file and the problem.
   Nothing here exits, aborts or asserts on file contents. */

/* ---- API (to move into [api:io]) ---- */
#ifndef ZS__IO_API_H
#define ZS__IO_API_H
#ifdef __cplusplus
extern "C" {
#endif

/* -- safetensors --
   Layout: u64 little-endian N, N bytes of UTF-8 JSON, then the data buffer.
   The JSON maps each tensor name to {"dtype", "shape", "data_offsets":
   [begin, end]} (offsets relative to the data buffer) plus an optional
   "__metadata__" object of string -> string. Reading follows the reference
   implementation's rules: header at most 100,000,000 bytes and valid UTF-8,
   starting with '{'; no duplicate names; sorted by offset, the tensors tile
   the data buffer exactly (no gaps, no overlaps, nothing after the last);
   end - begin == numel x dtype size. Stricter than the reference in a few
   C-specific ways: at most 8 dims, no "\u0000" in strings.
   Data is read on demand from the open file (never a second full copy);
   a handle keeps one file position, so read from one thread at a time. */
#define ZS_ST_MAX_DIMS 8

typedef struct zs_st_info {
    const char *name;        /* UTF-8, NUL-terminated; valid until zs_st_close */
    const char *dtype;       /* as in the file: "F32", "F16", "BF16", "I64", ... */
    zs_type type;            /* ZS_F32/ZS_F16/ZS_BF16/ZS_I32, else ZS_TYPE_COUNT */
    int ndim;                /* 0 (scalar) .. ZS_ST_MAX_DIMS */
    int64_t shape[ZS_ST_MAX_DIMS];
    int64_t numel;
    uint64_t offset;         /* begin of data_offsets (relative to the data buffer) */
    uint64_t nbytes;         /* end - begin == numel * dtype size */
} zs_st_info;

typedef struct zs_safetensors zs_safetensors; /* opaque */

/* Parse the header; the file stays open until zs_st_close. NULL + error. */
ZSDEF zs_safetensors *zs_st_open(const char *path);
/* Same over caller memory holding a whole file (not copied except the
   header text: buf must outlive the handle). */
ZSDEF zs_safetensors *zs_st_open_memory(const void *buf, size_t n);
ZSDEF void zs_st_close(zs_safetensors *st);
/* Tensors in header order. */
ZSDEF int zs_st_count(const zs_safetensors *st);
ZSDEF const zs_st_info *zs_st_get(const zs_safetensors *st, int i);      /* NULL if out of range */
ZSDEF const zs_st_info *zs_st_find(const zs_safetensors *st, const char *name); /* NULL if absent */
/* "__metadata__" entries: value for key, or NULL. */
ZSDEF int zs_st_metadata_count(const zs_safetensors *st);
ZSDEF const char *zs_st_metadata(const zs_safetensors *st, const char *key);
ZSDEF int zs_st_metadata_get(const zs_safetensors *st, int i, const char **key, const char **value);
/* Read tensor t (from this handle) into dst as dst_type, converting between
   F32, F16 and BF16 (I32 only to I32) in bounded chunks. dst_count must equal
   t->numel. Other dtypes: ZS_ERR_UNSUPPORTED (use zs_st_read_raw). */
ZSDEF int zs_st_read(zs_safetensors *st, const zs_st_info *t, void *dst, zs_type dst_type, size_t dst_count);
/* The tensor's bytes exactly as stored (little-endian); dst_bytes == t->nbytes. */
ZSDEF int zs_st_read_raw(zs_safetensors *st, const zs_st_info *t, void *dst, size_t dst_bytes);
/* Find `name` and read it into a contiguous tensor of the same shape
   (f32/f16/bf16; e.g. a zs_params tensor). ZS_ERR_FORMAT if the file has no
   such tensor, ZS_ERR_SHAPE (message names both shapes) if shapes differ. */
ZSDEF int zs_st_load_tensor(zs_safetensors *st, const char *name, zs_tensor *dst);

/* Writer. Entries are written in the given order; names are JSON-escaped
   (must be valid UTF-8, unique, not "__metadata__"); type F32, F16, BF16 or
   I32; data holds numel values (may be NULL when numel is 0). meta_kv is
   NULL or "key", "value", ..., NULL. The header is padded with spaces to a
   multiple of 8 bytes. On failure the partial file is removed. */
typedef struct zs_st_entry {
    const char *name;
    zs_type type;
    int ndim;
    const int64_t *shape;
    const void *data;
} zs_st_entry;
ZSDEF int zs_st_save(const char *path, const zs_st_entry *entries, int n, const char *const *meta_kv);

/* -- NumPy .npy (format 1.0, 2.0 and 3.0) --
   Reads only little-endian float32 ('<f4'), C order, at most 8 dims; header
   dict at most 65,536 bytes; the data must fill the rest of the file exactly.
   *data is allocated with ZS_MALLOC(.., NULL); free it with zs_npy_free.
   On failure *data = NULL, *ndim = 0. */
ZSDEF int zs_npy_read(const char *path, int *ndim, int64_t shape[8], float **data);
ZSDEF int zs_npy_read_memory(const void *buf, size_t n, int *ndim, int64_t shape[8], float **data);
ZSDEF void zs_npy_free(float *data);
/* Version 1.0, '<f4', C order, header laid out exactly as numpy.save does. */
ZSDEF int zs_npy_write(const char *path, int ndim, const int64_t *shape, const float *data);

#ifdef __cplusplus
}
#endif
#endif /* ZS__IO_API_H */
/* ---- end API ---- */

#if defined(ZSESBIR_IMPLEMENTATION) && !defined(ZS__IO_IMPL_DONE)
#define ZS__IO_IMPL_DONE

#include <errno.h>
#include <limits.h>

/* ==================================================================== */
/* [impl:io] byte sources, 64-bit file offsets                          */
/* ==================================================================== */

#define ZS__ST_MAX_HEADER 100000000u /* as the reference implementation */
#define ZS__NPY_MAX_HEADER 65536u
#define ZS__JSON_MAX_DEPTH 128       /* serde_json's recursion limit */
#define ZS__IO_CHUNK 16384

/* 64-bit seeks: _fseeki64 on Windows, fseeko when the POSIX feature macros
   declare it (its off_t is 64-bit with _FILE_OFFSET_BITS=64 on 32-bit
   systems), else fseek with long (64-bit on LP64 systems such as Linux). */
#if defined(_WIN32)
#define ZS__FSEEK(f, o, w) _fseeki64(f, (__int64)(o), w)
#define ZS__FTELL(f) ((int64_t)_ftelli64(f))
#define ZS__OFF_MAX ((uint64_t)INT64_MAX)
#elif (defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200112L) || \
      (defined(_XOPEN_SOURCE) && _XOPEN_SOURCE >= 500) || defined(_LARGEFILE_SOURCE)
#define ZS__FSEEK(f, o, w) fseeko(f, (off_t)(o), w)
#define ZS__FTELL(f) ((int64_t)ftello(f))
#define ZS__OFF_MAX (sizeof(off_t) >= 8 ? (uint64_t)INT64_MAX : (uint64_t)0x7fffffff)
#else
#define ZS__FSEEK(f, o, w) fseek(f, (long)(o), w)
#define ZS__FTELL(f) ((int64_t)ftell(f))
#define ZS__OFF_MAX ((uint64_t)LONG_MAX)
#endif

/* Where bytes come from: an open file or caller memory. */
typedef struct zs__src {
    FILE *f;
    const unsigned char *mem;
    uint64_t size;   /* total bytes */
    uint64_t pos;    /* file position (avoids redundant seeks) */
    const char *who; /* "zs_st_open(path)" etc. for messages */
} zs__src;

ZS__PRIV int zs__host_le(void) {
    uint16_t x = 1;
    unsigned char c;
    memcpy(&c, &x, 1);
    return c == 1;
}

/* byte-swap n elements of es bytes in place (big-endian hosts only) */
ZS__PRIV void zs__swap_bytes(void *p, size_t n, size_t es) {
    unsigned char *b = (unsigned char *)p;
    size_t i, k;
    if (es < 2) return;
    for (i = 0; i < n; i++, b += es)
        for (k = 0; k < es / 2; k++) {
            unsigned char t = b[k];
            b[k] = b[es - 1 - k];
            b[es - 1 - k] = t;
        }
}

ZS__PRIV uint64_t zs__le64(const unsigned char *b) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

/* Opens path for reading and finds its size. */
ZS__PRIV int zs__src_open(zs__src *s, const char *path, const char *who) {
    int64_t end;
    memset(s, 0, sizeof *s);
    s->who = who;
    s->f = fopen(path, "rb");
    if (!s->f) return zs__fail(ZS_ERR_IO, "%s: cannot open: %s", who, strerror(errno));
    if (ZS__FSEEK(s->f, 0, SEEK_END) != 0 || (end = ZS__FTELL(s->f)) < 0 || ZS__FSEEK(s->f, 0, SEEK_SET) != 0) {
        int e = errno;
        fclose(s->f);
        s->f = NULL;
        return zs__fail(ZS_ERR_IO, "%s: cannot determine the file size (%s; a file over 2 GiB on a "
                        "32-bit system needs -D_FILE_OFFSET_BITS=64 -D_POSIX_C_SOURCE=200112L)", who, strerror(e));
    }
    s->size = (uint64_t)end;
    s->pos = 0;
    return ZS_OK;
}

ZS__PRIV void zs__src_memory(zs__src *s, const void *buf, size_t n, const char *who) {
    memset(s, 0, sizeof *s);
    s->mem = (const unsigned char *)buf;
    s->size = (uint64_t)n;
    s->who = who;
}

ZS__PRIV void zs__src_close(zs__src *s) {
    if (s->f) fclose(s->f);
    s->f = NULL;
}

/* Reads exactly n bytes at offset off (which the caller has checked lies in
   the file; checked again here). */
ZS__PRIV int zs__src_read(zs__src *s, uint64_t off, void *dst, size_t n) {
    if (!n) return ZS_OK;
    if (off > s->size || (uint64_t)n > s->size - off)
        return zs__fail(ZS_ERR_FORMAT, "%s: read of %zu bytes at offset %llu beyond the end (%llu bytes)",
                        s->who, n, (unsigned long long)off, (unsigned long long)s->size);
    if (s->mem) {
        memcpy(dst, s->mem + off, n);
        return ZS_OK;
    }
    if (s->pos != off) {
        if (off > ZS__OFF_MAX)
            return zs__fail(ZS_ERR_UNSUPPORTED, "%s: offset %llu does not fit this platform's file offsets",
                            s->who, (unsigned long long)off);
        if (ZS__FSEEK(s->f, off, SEEK_SET) != 0) {
            s->pos = UINT64_MAX;
            return zs__fail(ZS_ERR_IO, "%s: cannot seek to offset %llu: %s", s->who,
                            (unsigned long long)off, strerror(errno));
        }
        s->pos = off;
    }
    errno = 0;
    if (fread(dst, 1, n, s->f) != n) {
        int e = errno, err = ferror(s->f);
        clearerr(s->f);
        s->pos = UINT64_MAX;
        return zs__fail(ZS_ERR_IO, "%s: cannot read %zu bytes at offset %llu: %s", s->who, n,
                        (unsigned long long)off, err ? strerror(e ? e : EIO) : "unexpected end of file (file changed?)");
    }
    s->pos = off + n;
    return ZS_OK;
}

ZS__PRIV char *zs__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = (char *)zs__malloc(n, NULL);
    if (p) memcpy(p, s, n);
    return p;
}

/* Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF). Returns the
   offset of the first bad byte, or n if all valid. */
ZS__PRIV size_t zs__utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len, k;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (n - i < len) return i;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

/* ==================================================================== */
/* [impl:io] strict JSON reader for safetensors headers                 */
/* ==================================================================== */
/* Works on the header text in place: strings are unescaped where they lie
   (an escape never decodes to more bytes than it occupies) and
   NUL-terminated, so names can point into the buffer. */

typedef struct zs__json {
    char *s;
    size_t n, p;
    const char *who;
} zs__json;

ZS__PRIV int zs__jfail(zs__json *j, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
ZS__PRIV int zs__jfail(zs__json *j, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return zs__fail(ZS_ERR_FORMAT, "%s: JSON header byte %zu: %s", j->who, j->p, msg);
}

ZS__PRIV int zs__jpeek(const zs__json *j) { return j->p < j->n ? (unsigned char)j->s[j->p] : -1; }

ZS__PRIV void zs__jws(zs__json *j) {
    while (j->p < j->n) {
        char c = j->s[j->p];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->p++;
    }
}

ZS__PRIV int zs__jexpect(zs__json *j, char c, const char *what) {
    zs__jws(j);
    if (zs__jpeek(j) != (unsigned char)c) return zs__jfail(j, "expected '%c' %s", c, what);
    j->p++;
    zs__jws(j);
    return ZS_OK;
}

ZS__PRIV int zs__jhex4(zs__json *j, uint32_t *v) {
    int k;
    *v = 0;
    if (j->n - j->p < 4) return zs__jfail(j, "truncated \\u escape");
    for (k = 0; k < 4; k++) {
        char c = j->s[j->p + (size_t)k];
        uint32_t d;
        if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
        else return zs__jfail(j, "bad hex digit in \\u escape");
        *v = (*v << 4) | d;
    }
    j->p += 4;
    return ZS_OK;
}

/* Parses a string at j->p, unescaping it in place. */
ZS__PRIV int zs__jstring(zs__json *j, char **out, const char *what) {
    size_t start, w;
    if (zs__jpeek(j) != '"') return zs__jfail(j, "expected %s (a string)", what);
    start = w = ++j->p;
    for (;;) {
        unsigned char c;
        if (j->p >= j->n) return zs__jfail(j, "unterminated string");
        c = (unsigned char)j->s[j->p];
        if (c == '"') { j->p++; break; }
        if (c < 0x20) return zs__jfail(j, "control character 0x%02x in a string", c);
        if (c != '\\') { j->s[w++] = j->s[j->p++]; continue; }
        j->p++;
        if (j->p >= j->n) return zs__jfail(j, "unterminated string");
        c = (unsigned char)j->s[j->p++];
        switch (c) {
        case '"': case '\\': case '/': j->s[w++] = (char)c; break;
        case 'b': j->s[w++] = '\b'; break;
        case 'f': j->s[w++] = '\f'; break;
        case 'n': j->s[w++] = '\n'; break;
        case 'r': j->s[w++] = '\r'; break;
        case 't': j->s[w++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            int r = zs__jhex4(j, &cp);
            if (r) return r;
            if (cp >= 0xdc00 && cp <= 0xdfff) return zs__jfail(j, "lone low surrogate \\u%04x", (unsigned)cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->n - j->p < 2 || j->s[j->p] != '\\' || j->s[j->p + 1] != 'u')
                    return zs__jfail(j, "lone high surrogate \\u%04x", (unsigned)cp);
                j->p += 2;
                r = zs__jhex4(j, &lo);
                if (r) return r;
                if (lo < 0xdc00 || lo > 0xdfff) return zs__jfail(j, "high surrogate not followed by a low one");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) return zs__jfail(j, "\\u0000 in a string is not supported");
            if (cp < 0x80) j->s[w++] = (char)cp;
            else if (cp < 0x800) {
                j->s[w++] = (char)(0xc0 | (cp >> 6));
                j->s[w++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                j->s[w++] = (char)(0xe0 | (cp >> 12));
                j->s[w++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                j->s[w++] = (char)(0x80 | (cp & 0x3f));
            } else {
                j->s[w++] = (char)(0xf0 | (cp >> 18));
                j->s[w++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                j->s[w++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                j->s[w++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            j->p--;
            return zs__jfail(j, "bad escape '\\%c'", c >= 0x20 && c < 0x7f ? (char)c : '?');
        }
    }
    j->s[w] = 0; /* w < j->p: at most where the closing quote was */
    *out = j->s + start;
    return ZS_OK;
}

/* A JSON number that must be a non-negative integer fitting in u64. */
ZS__PRIV int zs__juint(zs__json *j, uint64_t *v, const char *what) {
    uint64_t x = 0;
    int c = zs__jpeek(j);
    if (c == '-') return zs__jfail(j, "%s is negative", what);
    if (c < '0' || c > '9') return zs__jfail(j, "expected %s (an integer)", what);
    if (c == '0' && j->p + 1 < j->n && j->s[j->p + 1] >= '0' && j->s[j->p + 1] <= '9')
        return zs__jfail(j, "%s has a leading zero", what);
    while ((c = zs__jpeek(j)) >= '0' && c <= '9') {
        uint64_t d = (uint64_t)(c - '0');
        if (x > (UINT64_MAX - d) / 10) return zs__jfail(j, "%s does not fit in 64 bits", what);
        x = x * 10 + d;
        j->p++;
    }
    if (c == '.' || c == 'e' || c == 'E') return zs__jfail(j, "%s is not an integer", what);
    *v = x;
    return ZS_OK;
}

ZS__PRIV int zs__jskip_number(zs__json *j) {
    int c;
    if (zs__jpeek(j) == '-') j->p++;
    c = zs__jpeek(j);
    if (c == '0') j->p++;
    else if (c >= '1' && c <= '9') { while ((c = zs__jpeek(j)) >= '0' && c <= '9') j->p++; }
    else return zs__jfail(j, "bad number");
    if (zs__jpeek(j) == '.') {
        j->p++;
        if ((c = zs__jpeek(j)) < '0' || c > '9') return zs__jfail(j, "bad number: digit expected after '.'");
        while ((c = zs__jpeek(j)) >= '0' && c <= '9') j->p++;
    }
    if ((c = zs__jpeek(j)) == 'e' || c == 'E') {
        j->p++;
        if ((c = zs__jpeek(j)) == '+' || c == '-') j->p++;
        if ((c = zs__jpeek(j)) < '0' || c > '9') return zs__jfail(j, "bad number: digit expected in exponent");
        while ((c = zs__jpeek(j)) >= '0' && c <= '9') j->p++;
    }
    return ZS_OK;
}

/* Skips any JSON value (unknown fields), at most ZS__JSON_MAX_DEPTH deep. */
ZS__PRIV int zs__jskip(zs__json *j, int depth) {
    int c, r;
    char *str;
    zs__jws(j);
    c = zs__jpeek(j);
    if (depth > ZS__JSON_MAX_DEPTH) return zs__jfail(j, "nested deeper than %d levels", ZS__JSON_MAX_DEPTH);
    if (c == '"') return zs__jstring(j, &str, "a value");
    if (c == '-' || (c >= '0' && c <= '9')) return zs__jskip_number(j);
    if (c == 't' && j->n - j->p >= 4 && !memcmp(j->s + j->p, "true", 4)) { j->p += 4; return ZS_OK; }
    if (c == 'f' && j->n - j->p >= 5 && !memcmp(j->s + j->p, "false", 5)) { j->p += 5; return ZS_OK; }
    if (c == 'n' && j->n - j->p >= 4 && !memcmp(j->s + j->p, "null", 4)) { j->p += 4; return ZS_OK; }
    if (c == '[' || c == '{') {
        char close = c == '[' ? ']' : '}';
        j->p++;
        zs__jws(j);
        if (zs__jpeek(j) == (unsigned char)close) { j->p++; return ZS_OK; }
        for (;;) {
            zs__jws(j);
            if (close == '}') {
                if ((r = zs__jstring(j, &str, "a member name")) != 0) return r;
                if ((r = zs__jexpect(j, ':', "after a member name")) != 0) return r;
            }
            if ((r = zs__jskip(j, depth + 1)) != 0) return r;
            zs__jws(j);
            c = zs__jpeek(j);
            if (c == (unsigned char)close) { j->p++; return ZS_OK; }
            if (c != ',') return zs__jfail(j, "expected ',' or '%c'", close);
            j->p++;
            zs__jws(j);
            if (zs__jpeek(j) == (unsigned char)close) return zs__jfail(j, "trailing comma before '%c'", close);
        }
    }
    return c < 0 ? zs__jfail(j, "unexpected end of the header") : zs__jfail(j, "unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
}

/* After an element of an array/object: ',' (more follow) -> 1, close -> 0. */
ZS__PRIV int zs__jnext(zs__json *j, char close, int *more) {
    int c;
    zs__jws(j);
    c = zs__jpeek(j);
    if (c == (unsigned char)close) { j->p++; *more = 0; return ZS_OK; }
    if (c != ',') return zs__jfail(j, "expected ',' or '%c'", close);
    j->p++;
    zs__jws(j);
    if (zs__jpeek(j) == (unsigned char)close) return zs__jfail(j, "trailing comma before '%c'", close);
    *more = 1;
    return ZS_OK;
}

/* ==================================================================== */
/* [impl:io] safetensors reader                                         */
/* ==================================================================== */

typedef struct zs__st_dtype { const char *name; unsigned size; zs_type type; } zs__st_dtype;

static const zs__st_dtype zs__st_dtypes[] = {
    {"F32", 4, ZS_F32}, {"F16", 2, ZS_F16}, {"BF16", 2, ZS_BF16}, {"I32", 4, ZS_I32},
    {"F64", 8, ZS_TYPE_COUNT}, {"I64", 8, ZS_TYPE_COUNT}, {"U64", 8, ZS_TYPE_COUNT},
    {"U32", 4, ZS_TYPE_COUNT}, {"I16", 2, ZS_TYPE_COUNT}, {"U16", 2, ZS_TYPE_COUNT},
    {"I8", 1, ZS_TYPE_COUNT}, {"U8", 1, ZS_TYPE_COUNT}, {"BOOL", 1, ZS_TYPE_COUNT},
    {"F8_E5M2", 1, ZS_TYPE_COUNT}, {"F8_E4M3", 1, ZS_TYPE_COUNT}, {"F8_E8M0", 1, ZS_TYPE_COUNT},
    {"C64", 8, ZS_TYPE_COUNT}
};

typedef struct zs__st_meta { const char *key, *value; } zs__st_meta;

struct zs_safetensors {
    zs__src src;
    char who[300];        /* "zs_st_open(path)" */
    char *hdr;            /* header text, unescaped in place; names point here */
    uint64_t data_start;  /* 8 + N */
    uint64_t data_size;
    zs_st_info *t;        /* header order */
    int n, cap;
    zs_st_info **by_name; /* sorted by name */
    zs__st_meta *meta;    /* sorted by key */
    int n_meta, cap_meta;
};

ZS__PRIV int zs__st_cmp_info_name(const void *a, const void *b) {
    return strcmp((*(const zs_st_info *const *)a)->name, (*(const zs_st_info *const *)b)->name);
}
ZS__PRIV int zs__st_cmp_info_off(const void *a, const void *b) {
    const zs_st_info *x = *(const zs_st_info *const *)a, *y = *(const zs_st_info *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}
ZS__PRIV int zs__st_cmp_meta(const void *a, const void *b) {
    return strcmp(((const zs__st_meta *)a)->key, ((const zs__st_meta *)b)->key);
}

/* grows an array of elements of es bytes to hold at least need */
ZS__PRIV int zs__grow(void **arr, int *cap, int need, size_t es) {
    int nc;
    size_t bytes;
    void *p;
    if (need <= *cap) return ZS_OK;
    if (*cap > INT_MAX / 2) return zs__fail(ZS_ERR_NOMEM, "too many entries");
    nc = *cap ? *cap * 2 : 16;
    if (nc < need) nc = need;
    if (!zs__mul_ok((size_t)nc, es, &bytes)) return zs__fail(ZS_ERR_NOMEM, "too many entries");
    p = zs__malloc(bytes, NULL);
    if (!p) return zs__fail(ZS_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    if (*arr) memcpy(p, *arr, (size_t)*cap * es);
    zs__free(*arr, NULL);
    *arr = p;
    *cap = nc;
    return ZS_OK;
}

ZS__PRIV int zs__st_parse_meta(zs_safetensors *st, zs__json *j) {
    int more = 1, r;
    zs__jws(j);
    if (j->n - j->p >= 4 && !memcmp(j->s + j->p, "null", 4)) { j->p += 4; return ZS_OK; }
    if (zs__jpeek(j) != '{') return zs__jfail(j, "\"__metadata__\" must be an object of strings");
    j->p++;
    zs__jws(j);
    if (zs__jpeek(j) == '}') { j->p++; return ZS_OK; }
    while (more) {
        char *k, *v;
        zs__jws(j);
        if ((r = zs__jstring(j, &k, "a metadata key")) != 0) return r;
        if ((r = zs__jexpect(j, ':', "after a metadata key")) != 0) return r;
        if (zs__jpeek(j) != '"') return zs__jfail(j, "\"__metadata__\" value of '%.100s' is not a string", k);
        if ((r = zs__jstring(j, &v, "a metadata value")) != 0) return r;
        {
            void *arr = st->meta;
            r = zs__grow(&arr, &st->cap_meta, st->n_meta + 1, sizeof(zs__st_meta));
            st->meta = (zs__st_meta *)arr;
            if (r) return r;
        }
        st->meta[st->n_meta].key = k;
        st->meta[st->n_meta].value = v;
        st->n_meta++;
        if ((r = zs__jnext(j, '}', &more)) != 0) return r;
    }
    return ZS_OK;
}

ZS__PRIV int zs__st_parse_tensor(zs_safetensors *st, zs__json *j, const char *name) {
    zs_st_info info;
    int got_dtype = 0, got_shape = 0, got_off = 0, more = 1, r, i;
    uint64_t begin = 0, end = 0, numel = 1, nbytes, esize = 0;
    memset(&info, 0, sizeof info);
    info.name = name;
    zs__jws(j);
    if (zs__jpeek(j) != '{')
        return zs__jfail(j, "tensor '%.100s': expected an object {\"dtype\", \"shape\", \"data_offsets\"}", name);
    j->p++;
    zs__jws(j);
    if (zs__jpeek(j) == '}') { j->p++; more = 0; }
    while (more) {
        char *key;
        zs__jws(j);
        if ((r = zs__jstring(j, &key, "a field name")) != 0) return r;
        if ((r = zs__jexpect(j, ':', "after a field name")) != 0) return r;
        if (!strcmp(key, "dtype")) {
            char *dt;
            size_t k, nd = sizeof zs__st_dtypes / sizeof zs__st_dtypes[0];
            if (got_dtype++) return zs__jfail(j, "tensor '%.100s': duplicate \"dtype\"", name);
            if ((r = zs__jstring(j, &dt, "the dtype")) != 0) return r;
            for (k = 0; k < nd; k++)
                if (!strcmp(dt, zs__st_dtypes[k].name)) break;
            if (k == nd) {
                if (!strcmp(dt, "F4") || !strncmp(dt, "F6_", 3))
                    return zs__jfail(j, "tensor '%.100s': sub-byte dtype '%.20s' is not supported", name, dt);
                return zs__jfail(j, "tensor '%.100s': unknown dtype '%.20s'", name, dt);
            }
            info.dtype = zs__st_dtypes[k].name;
            info.type = zs__st_dtypes[k].type;
            esize = zs__st_dtypes[k].size;
        } else if (!strcmp(key, "shape")) {
            int m = 1;
            if (got_shape++) return zs__jfail(j, "tensor '%.100s': duplicate \"shape\"", name);
            if (zs__jpeek(j) != '[') return zs__jfail(j, "tensor '%.100s': \"shape\" must be an array", name);
            j->p++;
            zs__jws(j);
            if (zs__jpeek(j) == ']') { j->p++; m = 0; }
            while (m) {
                uint64_t d;
                zs__jws(j);
                if (info.ndim == ZS_ST_MAX_DIMS)
                    return zs__jfail(j, "tensor '%.100s': more than %d dimensions", name, ZS_ST_MAX_DIMS);
                if ((r = zs__juint(j, &d, "a dimension")) != 0) return r;
                if (d > (uint64_t)INT64_MAX) return zs__jfail(j, "tensor '%.100s': dimension %llu too large", name, (unsigned long long)d);
                info.shape[info.ndim++] = (int64_t)d;
                if ((r = zs__jnext(j, ']', &m)) != 0) return r;
            }
        } else if (!strcmp(key, "data_offsets")) {
            int m;
            if (got_off++) return zs__jfail(j, "tensor '%.100s': duplicate \"data_offsets\"", name);
            if (zs__jpeek(j) != '[') return zs__jfail(j, "tensor '%.100s': \"data_offsets\" must be [begin, end]", name);
            j->p++;
            zs__jws(j);
            if ((r = zs__juint(j, &begin, "data_offsets begin")) != 0) return r;
            if ((r = zs__jnext(j, ']', &m)) != 0) return r;
            if (!m) return zs__jfail(j, "tensor '%.100s': \"data_offsets\" needs 2 numbers", name);
            if ((r = zs__juint(j, &end, "data_offsets end")) != 0) return r;
            if ((r = zs__jnext(j, ']', &m)) != 0) return r;
            if (m) return zs__jfail(j, "tensor '%.100s': \"data_offsets\" has more than 2 numbers", name);
        } else {
            if ((r = zs__jskip(j, 3)) != 0) return r; /* unknown field: ignored, like the reference */
        }
        if ((r = zs__jnext(j, '}', &more)) != 0) return r;
    }
    if (!got_dtype || !got_shape || !got_off)
        return zs__jfail(j, "tensor '%.100s': missing \"%s\"", name,
                         !got_dtype ? "dtype" : !got_shape ? "shape" : "data_offsets");
    for (i = 0; i < info.ndim; i++) {
        uint64_t d = (uint64_t)info.shape[i];
        if (d && numel > (uint64_t)INT64_MAX / d)
            return zs__jfail(j, "tensor '%.100s': shape product overflows", name);
        numel *= d;
    }
    if (numel && esize > UINT64_MAX / numel)
        return zs__jfail(j, "tensor '%.100s': byte size overflows", name);
    nbytes = numel * esize;
    if (end < begin)
        return zs__jfail(j, "tensor '%.100s': data_offsets [%llu, %llu] end before begin", name,
                         (unsigned long long)begin, (unsigned long long)end);
    if (end - begin != nbytes)
        return zs__jfail(j, "tensor '%.100s': data_offsets [%llu, %llu] hold %llu bytes but %s x %llu elements need %llu",
                         name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin),
                         info.dtype, (unsigned long long)numel, (unsigned long long)nbytes);
    if (end > st->data_size)
        return zs__jfail(j, "tensor '%.100s': data_offsets [%llu, %llu] beyond the data (%llu bytes)", name,
                         (unsigned long long)begin, (unsigned long long)end, (unsigned long long)st->data_size);
    info.numel = (int64_t)numel;
    info.offset = begin;
    info.nbytes = nbytes;
    {
        void *arr = st->t;
        r = zs__grow(&arr, &st->cap, st->n + 1, sizeof(zs_st_info));
        st->t = (zs_st_info *)arr;
        if (r) return r;
    }
    st->t[st->n++] = info;
    return ZS_OK;
}

ZS__PRIV int zs__st_parse(zs_safetensors *st, size_t hlen) {
    zs__json j;
    int r, more = 1, seen_meta = 0, i;
    size_t bad;
    zs_st_info **idx;
    uint64_t expect = 0;
    j.s = st->hdr;
    j.n = hlen;
    j.p = 0;
    j.who = st->who;
    bad = zs__utf8_check((const unsigned char *)st->hdr, hlen);
    if (bad != hlen) { j.p = bad; return zs__jfail(&j, "header is not valid UTF-8"); }
    if (zs__jpeek(&j) != '{') return zs__jfail(&j, "header does not start with '{'");
    j.p++;
    zs__jws(&j);
    if (zs__jpeek(&j) == '}') { j.p++; more = 0; }
    while (more) {
        char *name;
        zs__jws(&j);
        if ((r = zs__jstring(&j, &name, "a tensor name")) != 0) return r;
        if ((r = zs__jexpect(&j, ':', "after a tensor name")) != 0) return r;
        if (!strcmp(name, "__metadata__")) {
            if (seen_meta++) return zs__jfail(&j, "duplicate \"__metadata__\"");
            r = zs__st_parse_meta(st, &j);
        } else {
            r = zs__st_parse_tensor(st, &j, name);
        }
        if (r) return r;
        if ((r = zs__jnext(&j, '}', &more)) != 0) return r;
    }
    zs__jws(&j);
    if (j.p != j.n) return zs__jfail(&j, "unexpected characters after the JSON object");
    if (st->n_meta > 1) { /* metadata keys unique (sorted for lookup) */
        qsort(st->meta, (size_t)st->n_meta, sizeof(zs__st_meta), zs__st_cmp_meta);
        for (i = 1; i < st->n_meta; i++)
            if (!strcmp(st->meta[i - 1].key, st->meta[i].key))
                return zs__fail(ZS_ERR_FORMAT, "%s: duplicate metadata key '%.100s'", st->who, st->meta[i].key);
    }
    if (!st->n) return st->data_size ? zs__fail(ZS_ERR_FORMAT, "%s: %llu data bytes but no tensors", st->who,
                                                (unsigned long long)st->data_size) : ZS_OK;
    /* names unique (sorted index doubles as the lookup table) */
    st->by_name = (zs_st_info **)zs__malloc((size_t)st->n * sizeof(zs_st_info *), NULL);
    idx = (zs_st_info **)zs__malloc((size_t)st->n * sizeof(zs_st_info *), NULL);
    if (!st->by_name || !idx) {
        zs__free(idx, NULL);
        return zs__fail(ZS_ERR_NOMEM, "%s: out of memory (%d tensors)", st->who, st->n);
    }
    for (i = 0; i < st->n; i++) st->by_name[i] = idx[i] = &st->t[i];
    qsort(st->by_name, (size_t)st->n, sizeof(zs_st_info *), zs__st_cmp_info_name);
    for (i = 1; i < st->n; i++)
        if (!strcmp(st->by_name[i - 1]->name, st->by_name[i]->name)) {
            zs__free(idx, NULL);
            return zs__fail(ZS_ERR_FORMAT, "%s: duplicate tensor name '%.100s'", st->who, st->by_name[i]->name);
        }
    /* sorted by offset, the tensors tile the data buffer exactly */
    qsort(idx, (size_t)st->n, sizeof(zs_st_info *), zs__st_cmp_info_off);
    for (i = 0; i < st->n; i++) {
        if (idx[i]->offset != expect) {
            r = zs__fail(ZS_ERR_FORMAT, "%s: tensor '%.100s' data at [%llu, %llu] %s (expected it to begin at %llu)",
                         st->who, idx[i]->name, (unsigned long long)idx[i]->offset,
                         (unsigned long long)(idx[i]->offset + idx[i]->nbytes),
                         idx[i]->offset < expect ? "overlaps another tensor" : "leaves a gap",
                         (unsigned long long)expect);
            zs__free(idx, NULL);
            return r;
        }
        expect = idx[i]->offset + idx[i]->nbytes;
    }
    zs__free(idx, NULL);
    if (expect != st->data_size)
        return zs__fail(ZS_ERR_FORMAT, "%s: tensors cover %llu data bytes but the file has %llu", st->who,
                        (unsigned long long)expect, (unsigned long long)st->data_size);
    return ZS_OK;
}

ZS__FN void zs_st_close(zs_safetensors *st) {
    if (!st) return;
    zs__src_close(&st->src);
    zs__free(st->hdr, NULL);
    zs__free(st->t, NULL);
    zs__free(st->by_name, NULL);
    zs__free(st->meta, NULL);
    zs__free(st, NULL);
}

/* shared by zs_st_open / zs_st_open_memory once st->src is set up */
ZS__PRIV zs_safetensors *zs__st_load(zs_safetensors *st) {
    unsigned char len8[8];
    uint64_t hlen;
    st->src.who = st->who;
    if (st->src.size < 8) {
        zs__fail(ZS_ERR_FORMAT, "%s: %llu bytes, too short for the 8-byte header length", st->who,
                 (unsigned long long)st->src.size);
        goto fail;
    }
    if (zs__src_read(&st->src, 0, len8, 8)) goto fail;
    hlen = zs__le64(len8);
    if (hlen > ZS__ST_MAX_HEADER) {
        zs__fail(ZS_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit", st->who,
                 (unsigned long long)hlen, ZS__ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > st->src.size - 8) {
        zs__fail(ZS_ERR_FORMAT, "%s: header length %llu exceeds the file (%llu bytes)", st->who,
                 (unsigned long long)hlen, (unsigned long long)st->src.size);
        goto fail;
    }
    st->data_start = 8 + hlen;
    st->data_size = st->src.size - st->data_start;
    st->hdr = (char *)zs__malloc((size_t)hlen + 1, NULL);
    if (!st->hdr) {
        zs__fail(ZS_ERR_NOMEM, "%s: cannot allocate the %llu-byte header", st->who, (unsigned long long)hlen);
        goto fail;
    }
    if (zs__src_read(&st->src, 8, st->hdr, (size_t)hlen)) goto fail;
    st->hdr[hlen] = 0;
    if (zs__st_parse(st, (size_t)hlen)) goto fail;
    return st;
fail:
    zs_st_close(st);
    return NULL;
}

ZS__PRIV zs_safetensors *zs__st_new(const char *fn, const char *label) {
    zs_safetensors *st = (zs_safetensors *)zs__malloc(sizeof(zs_safetensors), NULL);
    if (!st) { zs__fail(ZS_ERR_NOMEM, "%s(%.200s): out of memory", fn, label); return NULL; }
    memset(st, 0, sizeof *st);
    snprintf(st->who, sizeof st->who, "%s(%.200s)", fn, label);
    return st;
}

ZS__FN zs_safetensors *zs_st_open(const char *path) {
    zs_safetensors *st;
    if (!path) { zs__fail(ZS_ERR_ARG, "zs_st_open: NULL path"); return NULL; }
    st = zs__st_new("zs_st_open", path);
    if (!st) return NULL;
    if (zs__src_open(&st->src, path, st->who)) { zs_st_close(st); return NULL; }
    return zs__st_load(st);
}

ZS__FN zs_safetensors *zs_st_open_memory(const void *buf, size_t n) {
    zs_safetensors *st;
    if (!buf && n) { zs__fail(ZS_ERR_ARG, "zs_st_open_memory: NULL buffer"); return NULL; }
    st = zs__st_new("zs_st_open_memory", "<memory>");
    if (!st) return NULL;
    zs__src_memory(&st->src, buf ? buf : "", n, st->who);
    return zs__st_load(st);
}

ZS__FN int zs_st_count(const zs_safetensors *st) { return st ? st->n : 0; }

ZS__FN const zs_st_info *zs_st_get(const zs_safetensors *st, int i) {
    return st && i >= 0 && i < st->n ? &st->t[i] : NULL;
}

ZS__FN const zs_st_info *zs_st_find(const zs_safetensors *st, const char *name) {
    int lo = 0, hi;
    if (!st || !name || !st->by_name) return NULL;
    hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->by_name[mid]->name, name);
        if (!c) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

ZS__FN int zs_st_metadata_count(const zs_safetensors *st) { return st ? st->n_meta : 0; }

ZS__FN const char *zs_st_metadata(const zs_safetensors *st, const char *key) {
    int lo = 0, hi;
    if (!st || !key) return NULL;
    hi = st->n_meta - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->meta[mid].key, key);
        if (!c) return st->meta[mid].value;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

ZS__FN int zs_st_metadata_get(const zs_safetensors *st, int i, const char **key, const char **value) {
    if (!st || i < 0 || i >= st->n_meta) return zs__fail(ZS_ERR_ARG, "zs_st_metadata_get: index %d out of range", i);
    if (key) *key = st->meta[i].key;
    if (value) *value = st->meta[i].value;
    return ZS_OK;
}

ZS__PRIV int zs__st_check_info(const zs_safetensors *st, const zs_st_info *t, const char *fn) {
    if (!st || !t) return zs__fail(ZS_ERR_ARG, "%s: NULL handle or tensor", fn);
    if ((uintptr_t)t < (uintptr_t)st->t || (uintptr_t)t >= (uintptr_t)(st->t + st->n) ||
        ((uintptr_t)t - (uintptr_t)st->t) % sizeof(zs_st_info) != 0)
        return zs__fail(ZS_ERR_ARG, "%s: tensor info is not from this handle", fn);
    return ZS_OK;
}

ZS__FN int zs_st_read_raw(zs_safetensors *st, const zs_st_info *t, void *dst, size_t dst_bytes) {
    int r = zs__st_check_info(st, t, "zs_st_read_raw");
    if (r) return r;
    if ((uint64_t)dst_bytes != t->nbytes)
        return zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s' has %llu bytes, dst_bytes is %zu", st->who, t->name,
                        (unsigned long long)t->nbytes, dst_bytes);
    if (!dst && dst_bytes) return zs__fail(ZS_ERR_ARG, "zs_st_read_raw: NULL dst");
    return zs__src_read(&st->src, st->data_start + t->offset, dst, dst_bytes);
}

ZS__FN int zs_st_read(zs_safetensors *st, const zs_st_info *t, void *dst, zs_type dst_type, size_t dst_count) {
    int r = zs__st_check_info(st, t, "zs_st_read"), src_float, dst_float;
    size_t ss, ds, done = 0, n;
    uint64_t off;
    unsigned char buf[ZS__IO_CHUNK];
    if (r) return r;
    if ((uint64_t)dst_count != (uint64_t)t->numel)
        return zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s' has %lld elements, dst_count is %zu", st->who, t->name,
                        (long long)t->numel, dst_count);
    if (!dst && dst_count) return zs__fail(ZS_ERR_ARG, "zs_st_read: NULL dst");
    if ((uint64_t)(size_t)t->nbytes != t->nbytes)
        return zs__fail(ZS_ERR_UNSUPPORTED, "%s: tensor '%.100s' is too large for this platform", st->who, t->name);
    src_float = t->type == ZS_F32 || t->type == ZS_F16 || t->type == ZS_BF16;
    dst_float = dst_type == ZS_F32 || dst_type == ZS_F16 || dst_type == ZS_BF16;
    if (!(src_float && dst_float) && !(t->type == ZS_I32 && dst_type == ZS_I32)) {
        if (!src_float && t->type != ZS_I32)
            return zs__fail(ZS_ERR_UNSUPPORTED, "%s: tensor '%.100s' has dtype %s; only F32/F16/BF16 (and I32 "
                            "to i32) can be read this way, use zs_st_read_raw", st->who, t->name, t->dtype);
        return zs__fail(ZS_ERR_UNSUPPORTED, "%s: tensor '%.100s': cannot convert %s to %s", st->who, t->name,
                        t->dtype, zs_type_name(dst_type));
    }
    ss = zs_type_size(t->type);
    ds = zs_type_size(dst_type);
    n = dst_count;
    off = st->data_start + t->offset;
    if (t->type == dst_type) { /* straight into dst */
        r = zs__src_read(&st->src, off, dst, n * ss);
        if (!r && !zs__host_le()) zs__swap_bytes(dst, n, ss);
        return r;
    }
    while (done < n) { /* bounded chunks through an aligned buffer */
        size_t k = n - done < ZS__IO_CHUNK / ss ? n - done : ZS__IO_CHUNK / ss;
        r = zs__src_read(&st->src, off + (uint64_t)done * ss, buf, k * ss);
        if (r) return r;
        if (!zs__host_le()) zs__swap_bytes(buf, k, ss);
        r = zs_convert((char *)dst + done * ds, dst_type, buf, t->type, k);
        if (r) return r;
        done += k;
    }
    return ZS_OK;
}

ZS__FN int zs_st_load_tensor(zs_safetensors *st, const char *name, zs_tensor *dst) {
    const zs_st_info *t;
    int i, same;
    if (!st || !name || !dst) return zs__fail(ZS_ERR_ARG, "zs_st_load_tensor: NULL argument");
    t = zs_st_find(st, name);
    if (!t) return zs__fail(ZS_ERR_FORMAT, "%s: no tensor named '%.100s'", st->who, name);
    same = t->ndim == dst->ndim;
    for (i = 0; same && i < t->ndim; i++) same = t->shape[i] == dst->shape[i];
    if (!same) {
        char a[160], b[96];
        size_t k = 0;
        a[0] = 0;
        k += (size_t)snprintf(a, sizeof a, "[");
        for (i = 0; i < t->ndim && k < sizeof a; i++)
            k += (size_t)snprintf(a + k, sizeof a - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
        if (k < sizeof a) snprintf(a + k, sizeof a - k, "]");
        return zs__fail(ZS_ERR_SHAPE, "%s: tensor '%.100s' has shape %s, destination %s", st->who, name, a,
                        zs_shape_str(dst, b, sizeof b));
    }
    if (!dst->data && t->numel) return zs__fail(ZS_ERR_ARG, "zs_st_load_tensor('%.100s'): destination has no data", name);
    if (!zs_is_contiguous(dst))
        return zs__fail(ZS_ERR_ARG, "zs_st_load_tensor('%.100s'): destination is not contiguous", name);
    return zs_st_read(st, t, dst->data, dst->type, (size_t)t->numel);
}

/* ==================================================================== */
/* [impl:io] safetensors writer                                         */
/* ==================================================================== */

/* growable text; with p == NULL only counts */
typedef struct zs__sbuf { char *p; size_t n, cap; } zs__sbuf;

ZS__PRIV void zs__sput(zs__sbuf *b, const char *s, size_t n) {
    if (b->p && b->n + n <= b->cap) memcpy(b->p + b->n, s, n);
    b->n += n;
}
ZS__PRIV void zs__sputs(zs__sbuf *b, const char *s) { zs__sput(b, s, strlen(s)); }

ZS__PRIV void zs__sput_json_str(zs__sbuf *b, const char *s) {
    zs__sput(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char e[8];
        if (c == '"') zs__sput(b, "\\\"", 2);
        else if (c == '\\') zs__sput(b, "\\\\", 2);
        else if (c == '\n') zs__sput(b, "\\n", 2);
        else if (c == '\r') zs__sput(b, "\\r", 2);
        else if (c == '\t') zs__sput(b, "\\t", 2);
        else if (c < 0x20) { snprintf(e, sizeof e, "\\u%04x", c); zs__sput(b, e, 6); }
        else zs__sput(b, s, 1);
    }
    zs__sput(b, "\"", 1);
}

ZS__PRIV void zs__sput_u64(zs__sbuf *b, uint64_t v) {
    char t[24];
    int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    zs__sput(b, t, (size_t)k);
}

ZS__PRIV const char *zs__st_dtype_of(zs_type t) {
    switch (t) {
    case ZS_F32: return "F32";
    case ZS_F16: return "F16";
    case ZS_BF16: return "BF16";
    case ZS_I32: return "I32";
    default: return NULL;
    }
}

ZS__PRIV int zs__cmp_cstr_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* checks strings are valid UTF-8 and unique; who/what name them in errors */
ZS__PRIV int zs__check_names(const char **names, int n, const char *who, const char *what) {
    const char **s;
    int i;
    for (i = 0; i < n; i++)
        if (zs__utf8_check((const unsigned char *)names[i], strlen(names[i])) != strlen(names[i]))
            return zs__fail(ZS_ERR_ARG, "%s: %s '%.100s' is not valid UTF-8", who, what, names[i]);
    if (n < 2) return ZS_OK;
    s = (const char **)zs__malloc((size_t)n * sizeof(char *), NULL);
    if (!s) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", who);
    memcpy(s, names, (size_t)n * sizeof(char *));
    qsort(s, (size_t)n, sizeof(char *), zs__cmp_cstr_ptr);
    for (i = 1; i < n; i++)
        if (!strcmp(s[i - 1], s[i])) {
            int r = zs__fail(ZS_ERR_ARG, "%s: duplicate %s '%.100s'", who, what, s[i]);
            zs__free(s, NULL);
            return r;
        }
    zs__free(s, NULL);
    return ZS_OK;
}

/* writes n elements of es bytes as little-endian */
ZS__PRIV int zs__fwrite_le(FILE *f, const void *data, size_t n, size_t es) {
    if (!n) return 1;
    if (zs__host_le() || es < 2) return fwrite(data, es, n, f) == n;
    {
        unsigned char buf[ZS__IO_CHUNK];
        size_t done = 0, per = ZS__IO_CHUNK / es;
        while (done < n) {
            size_t k = n - done < per ? n - done : per;
            memcpy(buf, (const char *)data + done * es, k * es);
            zs__swap_bytes(buf, k, es);
            if (fwrite(buf, es, k, f) != k) return 0;
            done += k;
        }
    }
    return 1;
}

ZS__FN int zs_st_save(const char *path, const zs_st_entry *entries, int n, const char *const *meta_kv) {
    char who[300];
    const char **names = NULL;
    uint64_t *nbytes = NULL, off = 0;
    int i, k, n_meta = 0, r = ZS_OK, pass;
    zs__sbuf b;
    FILE *f = NULL;
    unsigned char len8[8];
    size_t hlen = 0;
    memset(&b, 0, sizeof b);
    snprintf(who, sizeof who, "zs_st_save(%.200s)", path ? path : "(null)");
    if (!path) return zs__fail(ZS_ERR_ARG, "zs_st_save: NULL path");
    if (n < 0 || (n > 0 && !entries)) return zs__fail(ZS_ERR_ARG, "%s: bad entry list (n = %d)", who, n);
    if (meta_kv)
        for (n_meta = 0; meta_kv[2 * n_meta]; n_meta++)
            if (!meta_kv[2 * n_meta + 1])
                return zs__fail(ZS_ERR_ARG, "%s: metadata key '%.100s' has a NULL value", who, meta_kv[2 * n_meta]);
    names = (const char **)zs__malloc((size_t)(n + n_meta + 1) * sizeof(char *), NULL);
    nbytes = (uint64_t *)zs__malloc((size_t)(n + 1) * sizeof(uint64_t), NULL);
    if (!names || !nbytes) { r = zs__fail(ZS_ERR_NOMEM, "%s: out of memory", who); goto done; }
    for (i = 0; i < n; i++) {
        const zs_st_entry *e = &entries[i];
        uint64_t numel = 1;
        if (!e->name) { r = zs__fail(ZS_ERR_ARG, "%s: entry %d has a NULL name", who, i); goto done; }
        if (!strcmp(e->name, "__metadata__")) { r = zs__fail(ZS_ERR_ARG, "%s: \"__metadata__\" is reserved", who); goto done; }
        if (!zs__st_dtype_of(e->type)) { r = zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s': type %d cannot be saved", who, e->name, (int)e->type); goto done; }
        if (e->ndim < 0 || e->ndim > ZS_ST_MAX_DIMS || (e->ndim && !e->shape)) {
            r = zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s': bad ndim %d (0..%d)", who, e->name, e->ndim, ZS_ST_MAX_DIMS);
            goto done;
        }
        for (k = 0; k < e->ndim; k++) {
            if (e->shape[k] < 0) { r = zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s': negative dimension %lld", who, e->name, (long long)e->shape[k]); goto done; }
            if (e->shape[k] && numel > (uint64_t)INT64_MAX / (uint64_t)e->shape[k]) { r = zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s': shape overflows", who, e->name); goto done; }
            numel *= (uint64_t)e->shape[k];
        }
        nbytes[i] = numel * zs_type_size(e->type);
        if (nbytes[i] / zs_type_size(e->type) != numel || (uint64_t)(size_t)nbytes[i] != nbytes[i] || off > UINT64_MAX - nbytes[i]) {
            r = zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s': too large", who, e->name);
            goto done;
        }
        if (nbytes[i] && !e->data) { r = zs__fail(ZS_ERR_ARG, "%s: tensor '%.100s': NULL data", who, e->name); goto done; }
        off += nbytes[i];
        names[i] = e->name;
    }
    if ((r = zs__check_names(names, n, who, "tensor name")) != 0) goto done;
    for (i = 0; i < n_meta; i++) names[i] = meta_kv[2 * i];
    if ((r = zs__check_names(names, n_meta, who, "metadata key")) != 0) goto done;
    for (i = 0; i < n_meta; i++) names[i] = meta_kv[2 * i + 1];
    for (i = 0; i < n_meta; i++)
        if (zs__utf8_check((const unsigned char *)names[i], strlen(names[i])) != strlen(names[i])) {
            r = zs__fail(ZS_ERR_ARG, "%s: metadata value of '%.100s' is not valid UTF-8", who, meta_kv[2 * i]);
            goto done;
        }
    /* header: pass 0 counts, pass 1 writes */
    for (pass = 0; pass < 2; pass++) {
        b.n = 0;
        zs__sputs(&b, "{");
        if (n_meta) {
            zs__sputs(&b, "\"__metadata__\":{");
            for (i = 0; i < n_meta; i++) {
                if (i) zs__sputs(&b, ",");
                zs__sput_json_str(&b, meta_kv[2 * i]);
                zs__sputs(&b, ":");
                zs__sput_json_str(&b, meta_kv[2 * i + 1]);
            }
            zs__sputs(&b, "}");
        }
        off = 0;
        for (i = 0; i < n; i++) {
            const zs_st_entry *e = &entries[i];
            if (i || n_meta) zs__sputs(&b, ",");
            zs__sput_json_str(&b, e->name);
            zs__sputs(&b, ":{\"dtype\":\"");
            zs__sputs(&b, zs__st_dtype_of(e->type));
            zs__sputs(&b, "\",\"shape\":[");
            for (k = 0; k < e->ndim; k++) {
                if (k) zs__sputs(&b, ",");
                zs__sput_u64(&b, (uint64_t)e->shape[k]);
            }
            zs__sputs(&b, "],\"data_offsets\":[");
            zs__sput_u64(&b, off);
            zs__sputs(&b, ",");
            zs__sput_u64(&b, off + nbytes[i]);
            zs__sputs(&b, "]}");
            off += nbytes[i];
        }
        zs__sputs(&b, "}");
        while (b.n % 8) zs__sputs(&b, " ");
        if (pass == 0) {
            hlen = b.n;
            if (hlen > ZS__ST_MAX_HEADER) { r = zs__fail(ZS_ERR_ARG, "%s: header of %zu bytes exceeds the limit", who, hlen); goto done; }
            b.p = (char *)zs__malloc(hlen, NULL);
            b.cap = hlen;
            if (!b.p) { r = zs__fail(ZS_ERR_NOMEM, "%s: out of memory", who); goto done; }
        }
    }
    f = fopen(path, "wb");
    if (!f) { r = zs__fail(ZS_ERR_IO, "%s: cannot create: %s", who, strerror(errno)); goto done; }
    for (k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(b.p, 1, hlen, f) != hlen) r = ZS_ERR_IO;
    for (i = 0; i < n && !r; i++) {
        size_t es = zs_type_size(entries[i].type);
        if (!zs__fwrite_le(f, entries[i].data, (size_t)(nbytes[i] / es), es)) r = ZS_ERR_IO;
    }
    if (fclose(f) != 0 && !r) r = ZS_ERR_IO;
    f = NULL;
    if (r) {
        zs__fail(ZS_ERR_IO, "%s: write failed: %s", who, strerror(errno));
        remove(path);
    }
done:
    zs__free(b.p, NULL);
    zs__free(names, NULL);
    zs__free(nbytes, NULL);
    return r;
}

/* ==================================================================== */
/* [impl:io] NumPy .npy                                                 */
/* ==================================================================== */

typedef struct zs__py {
    const char *s;
    size_t n, p;
    const char *who;
} zs__py;

ZS__PRIV int zs__pyfail(zs__py *y, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
ZS__PRIV int zs__pyfail(zs__py *y, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return zs__fail(ZS_ERR_FORMAT, "%s: header byte %zu: %s", y->who, y->p, msg);
}

ZS__PRIV int zs__pypeek(const zs__py *y) { return y->p < y->n ? (unsigned char)y->s[y->p] : -1; }
ZS__PRIV void zs__pyws(zs__py *y) {
    int c;
    while ((c = zs__pypeek(y)) == ' ' || c == '\t' || c == '\n' || c == '\r') y->p++;
}

/* a short Python string literal ('...' or "...", no escapes) into out */
ZS__PRIV int zs__pystr(zs__py *y, char *out, size_t cap) {
    int q = zs__pypeek(y), c;
    size_t k = 0;
    if (q != '\'' && q != '"') return zs__pyfail(y, "expected a string");
    y->p++;
    for (;;) {
        c = zs__pypeek(y);
        if (c < 0) return zs__pyfail(y, "unterminated string");
        if (c == q) { y->p++; break; }
        if (c == '\\') return zs__pyfail(y, "escapes in strings are not supported");
        if (c < 0x20 || c >= 0x7f) return zs__pyfail(y, "unexpected byte 0x%02x in a string", c);
        if (k + 1 >= cap) return zs__pyfail(y, "string too long");
        out[k++] = (char)c;
        y->p++;
    }
    out[k] = 0;
    return ZS_OK;
}

ZS__PRIV int zs__npy_parse(zs__py *y, int *ndim, int64_t *shape) {
    int got_descr = 0, got_fortran = 0, got_shape = 0, c, r;
    char key[32], descr[32];
    zs__pyws(y);
    if (zs__pypeek(y) != '{') return zs__pyfail(y, "header is not a dict");
    y->p++;
    for (;;) {
        zs__pyws(y);
        if (zs__pypeek(y) == '}') { y->p++; break; }
        if ((r = zs__pystr(y, key, sizeof key)) != 0) return r;
        zs__pyws(y);
        if (zs__pypeek(y) != ':') return zs__pyfail(y, "expected ':' after '%s'", key);
        y->p++;
        zs__pyws(y);
        if (!strcmp(key, "descr")) {
            if (got_descr++) return zs__pyfail(y, "duplicate key 'descr'");
            if (zs__pypeek(y) == '[') return zs__pyfail(y, "structured dtype not supported (only '<f4')");
            if ((r = zs__pystr(y, descr, sizeof descr)) != 0) return r;
            if (strcmp(descr, "<f4") != 0) {
                if (!strcmp(descr, ">f4")) return zs__pyfail(y, "big-endian float32 ('>f4') not supported (only '<f4')");
                if (descr[0] && descr[1] == 'O') return zs__pyfail(y, "object arrays ('%s') not supported (only '<f4')", descr);
                return zs__pyfail(y, "dtype '%s' not supported (only '<f4' float32)", descr);
            }
        } else if (!strcmp(key, "fortran_order")) {
            if (got_fortran++) return zs__pyfail(y, "duplicate key 'fortran_order'");
            if (y->n - y->p >= 4 && !memcmp(y->s + y->p, "True", 4)) return zs__pyfail(y, "Fortran-order arrays not supported");
            if (y->n - y->p < 5 || memcmp(y->s + y->p, "False", 5)) return zs__pyfail(y, "fortran_order must be True or False");
            y->p += 5;
        } else if (!strcmp(key, "shape")) {
            int commas = 0;
            if (got_shape++) return zs__pyfail(y, "duplicate key 'shape'");
            if (zs__pypeek(y) != '(') return zs__pyfail(y, "shape is not a tuple");
            y->p++;
            *ndim = 0;
            for (;;) {
                uint64_t d = 0;
                zs__pyws(y);
                c = zs__pypeek(y);
                if (c == ')') { y->p++; break; }
                if (c < '0' || c > '9') return zs__pyfail(y, "shape entry is not a non-negative integer");
                if (*ndim == ZS_ST_MAX_DIMS) return zs__pyfail(y, "more than %d dimensions", ZS_ST_MAX_DIMS);
                if (c == '0' && y->p + 1 < y->n && y->s[y->p + 1] >= '0' && y->s[y->p + 1] <= '9')
                    return zs__pyfail(y, "shape entry has a leading zero");
                while ((c = zs__pypeek(y)) >= '0' && c <= '9') {
                    if (d > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10) return zs__pyfail(y, "dimension too large");
                    d = d * 10 + (uint64_t)(c - '0');
                    y->p++;
                }
                if (c == 'L') y->p++; /* Python 2 long suffix */
                shape[(*ndim)++] = (int64_t)d;
                zs__pyws(y);
                c = zs__pypeek(y);
                if (c == ',') { y->p++; commas++; continue; }
                if (c != ')') return zs__pyfail(y, "expected ',' or ')' in shape");
            }
            if (*ndim == 1 && !commas) return zs__pyfail(y, "shape (n) is not a tuple: expected (n,)");
        } else {
            return zs__pyfail(y, "unexpected key '%s'", key);
        }
        zs__pyws(y);
        c = zs__pypeek(y);
        if (c == ',') { y->p++; continue; }
        if (c == '}') { y->p++; break; }
        return zs__pyfail(y, "expected ',' or '}'");
    }
    zs__pyws(y);
    if (y->p != y->n) return zs__pyfail(y, "unexpected characters after the dict");
    if (!got_descr || !got_fortran || !got_shape)
        return zs__pyfail(y, "missing key '%s'", !got_descr ? "descr" : !got_fortran ? "fortran_order" : "shape");
    return ZS_OK;
}

ZS__PRIV int zs__npy_read(zs__src *s, int *ndim, int64_t *shape, float **data) {
    unsigned char pre[12];
    char *hdr = NULL;
    size_t pre_n, hlen;
    uint64_t numel = 1, nbytes, avail;
    int r, i, nd = 0;
    int64_t sh[ZS_ST_MAX_DIMS];
    zs__py y;
    if (s->size < 10) return zs__fail(ZS_ERR_FORMAT, "%s: %llu bytes, too short for a .npy file", s->who, (unsigned long long)s->size);
    if ((r = zs__src_read(s, 0, pre, 10)) != 0) return r;
    if (memcmp(pre, "\x93NUMPY", 6) != 0) return zs__fail(ZS_ERR_FORMAT, "%s: not a .npy file (bad magic)", s->who);
    if ((pre[6] != 1 && pre[6] != 2 && pre[6] != 3) || pre[7] != 0)
        return zs__fail(ZS_ERR_FORMAT, "%s: unsupported .npy format version %d.%d", s->who, pre[6], pre[7]);
    if (pre[6] == 1) {
        pre_n = 10;
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    } else {
        uint32_t h;
        if (s->size < 12) return zs__fail(ZS_ERR_FORMAT, "%s: truncated .npy preamble", s->who);
        if ((r = zs__src_read(s, 10, pre + 10, 2)) != 0) return r;
        h = (uint32_t)pre[8] | ((uint32_t)pre[9] << 8) | ((uint32_t)pre[10] << 16) | ((uint32_t)pre[11] << 24);
        if (h > ZS__NPY_MAX_HEADER) return zs__fail(ZS_ERR_FORMAT, "%s: header length %lu exceeds the %u-byte limit", s->who, (unsigned long)h, ZS__NPY_MAX_HEADER);
        pre_n = 12;
        hlen = h;
    }
    if ((uint64_t)hlen > s->size - pre_n)
        return zs__fail(ZS_ERR_FORMAT, "%s: header length %zu exceeds the file (%llu bytes)", s->who, hlen, (unsigned long long)s->size);
    hdr = (char *)zs__malloc(hlen ? hlen : 1, NULL);
    if (!hdr) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", s->who);
    if ((r = zs__src_read(s, pre_n, hdr, hlen)) != 0) { zs__free(hdr, NULL); return r; }
    y.s = hdr;
    y.n = hlen;
    y.p = 0;
    y.who = s->who;
    r = zs__npy_parse(&y, &nd, sh);
    zs__free(hdr, NULL);
    if (r) return r;
    for (i = 0; i < nd; i++) {
        if (sh[i] && numel > (uint64_t)INT64_MAX / (uint64_t)sh[i])
            return zs__fail(ZS_ERR_FORMAT, "%s: shape product overflows", s->who);
        numel *= (uint64_t)sh[i];
    }
    if (numel > (uint64_t)INT64_MAX / 4) return zs__fail(ZS_ERR_FORMAT, "%s: shape too large", s->who);
    nbytes = numel * 4;
    avail = s->size - pre_n - hlen;
    if (avail != nbytes)
        return zs__fail(ZS_ERR_FORMAT, "%s: shape needs %llu data bytes but the file has %llu (%s)", s->who,
                        (unsigned long long)nbytes, (unsigned long long)avail, avail < nbytes ? "truncated" : "trailing bytes");
    if ((uint64_t)(size_t)nbytes != nbytes)
        return zs__fail(ZS_ERR_NOMEM, "%s: %llu bytes do not fit in memory", s->who, (unsigned long long)nbytes);
    *data = (float *)zs__malloc(nbytes ? (size_t)nbytes : 4, NULL);
    if (!*data) return zs__fail(ZS_ERR_NOMEM, "%s: cannot allocate %llu bytes", s->who, (unsigned long long)nbytes);
    if ((r = zs__src_read(s, pre_n + hlen, *data, (size_t)nbytes)) != 0) {
        zs__free(*data, NULL);
        *data = NULL;
        return r;
    }
    if (!zs__host_le()) zs__swap_bytes(*data, (size_t)numel, 4);
    *ndim = nd;
    for (i = 0; i < nd; i++) shape[i] = sh[i];
    return ZS_OK;
}

ZS__FN int zs_npy_read(const char *path, int *ndim, int64_t shape[8], float **data) {
    char who[300];
    zs__src s;
    int r;
    if (data) *data = NULL;
    if (ndim) *ndim = 0;
    if (!path || !ndim || !shape || !data) return zs__fail(ZS_ERR_ARG, "zs_npy_read: NULL argument");
    snprintf(who, sizeof who, "zs_npy_read(%.200s)", path);
    if ((r = zs__src_open(&s, path, who)) != 0) return r;
    r = zs__npy_read(&s, ndim, shape, data);
    zs__src_close(&s);
    return r;
}

ZS__FN int zs_npy_read_memory(const void *buf, size_t n, int *ndim, int64_t shape[8], float **data) {
    zs__src s;
    if (data) *data = NULL;
    if (ndim) *ndim = 0;
    if ((!buf && n) || !ndim || !shape || !data) return zs__fail(ZS_ERR_ARG, "zs_npy_read_memory: NULL argument");
    zs__src_memory(&s, buf ? buf : "", n, "zs_npy_read_memory(<memory>)");
    return zs__npy_read(&s, ndim, shape, data);
}

ZS__FN void zs_npy_free(float *data) { zs__free(data, NULL); }

ZS__FN int zs_npy_write(const char *path, int ndim, const int64_t *shape, const float *data) {
    char who[300], hdr[512];
    size_t k = 0, total, hlen;
    uint64_t numel = 1;
    unsigned char pre[10];
    int i, ok;
    FILE *f;
    snprintf(who, sizeof who, "zs_npy_write(%.200s)", path ? path : "(null)");
    if (!path) return zs__fail(ZS_ERR_ARG, "zs_npy_write: NULL path");
    if (ndim < 0 || ndim > ZS_ST_MAX_DIMS || (ndim && !shape))
        return zs__fail(ZS_ERR_ARG, "%s: bad ndim %d (0..%d)", who, ndim, ZS_ST_MAX_DIMS);
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 0) return zs__fail(ZS_ERR_ARG, "%s: negative dimension %lld", who, (long long)shape[i]);
        if (shape[i] && numel > (uint64_t)INT64_MAX / 4 / (uint64_t)shape[i]) return zs__fail(ZS_ERR_ARG, "%s: shape too large", who);
        numel *= (uint64_t)shape[i];
    }
    if ((uint64_t)(size_t)numel != numel) return zs__fail(ZS_ERR_ARG, "%s: shape too large", who);
    if (numel && !data) return zs__fail(ZS_ERR_ARG, "%s: NULL data", who);
    /* exactly numpy's layout: dict repr, room for the first dim to grow to 21
       digits, spaces and '\n' so the data starts 64-byte aligned */
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (i = 0; i < ndim; i++)
        k += (size_t)snprintf(hdr + k, sizeof hdr - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, ndim == 1 ? ",), }" : "), }");
    if (ndim) {
        int digits = snprintf(NULL, 0, "%lld", (long long)shape[0]);
        for (i = digits; i < 21; i++) hdr[k++] = ' ';
    }
    total = 10 + k + 1;
    total += 64 - total % 64; /* numpy always pads at least one space */
    hlen = total - 10;
    while (k < hlen - 1) hdr[k++] = ' ';
    hdr[k++] = '\n';
    memcpy(pre, "\x93NUMPY\x01\x00", 8);
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    f = fopen(path, "wb");
    if (!f) return zs__fail(ZS_ERR_IO, "%s: cannot create: %s", who, strerror(errno));
    ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, hlen, f) == hlen && zs__fwrite_le(f, data, (size_t)numel, 4);
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        int r = zs__fail(ZS_ERR_IO, "%s: write failed: %s", who, strerror(errno));
        remove(path);
        return r;
    }
    return ZS_OK;
}

#endif /* ZSESBIR_IMPLEMENTATION && !ZS__IO_IMPL_DONE */
