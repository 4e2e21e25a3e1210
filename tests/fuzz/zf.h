/* zf.h - shared by the libFuzzer harnesses tests/fuzz/fuzz_*.c and by
   tests/test_fuzz_regress.c, which #includes every harness and replays
   tests/fuzz/regress/<target>/ through the same code.

   Each harness defines  static int zf_<target>(const uint8_t *d, size_t n, char *why, size_t cap)
   returning the loader's status (ZS_OK = accepted) or ZF_BROKEN when the
   API contract broke (why says how): a rejection must come with a
   non-empty zs_last_error() and the documented zeroed outputs; an accepted
   input must hold in-bounds, readable data (every byte of it is touched so
   ASan sees bad bounds). Built with -DZF_LIBFUZZER a harness is a fuzz
   target on its own (tools/fuzz.sh): it includes the implementation here
   and defines LLVMFuzzerTestOneInput, which abort()s on ZF_BROKEN. */
#ifndef ZF_H
#define ZF_H

#ifdef ZF_LIBFUZZER
#define ZSESBIR_IMPLEMENTATION
#ifndef ZT_NO_STB
#define ZSESBIR_STB_AUTO
#endif
#include "../../zsesbir.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#endif

#define ZF_BROKEN 1000

/* contract check: on failure record why and return ZF_BROKEN */
#define ZF_CHECK(cond, ...)                                  \
    do {                                                     \
        if (!(cond)) {                                       \
            snprintf(why, cap, __VA_ARGS__);                 \
            return ZF_BROKEN;                                \
        }                                                    \
    } while (0)

/* a fresh error slot, so a rejection is seen to set its own message */
static ZS__MAYBE_UNUSED void zf_clear_error(void) { zs__errbuf[0] = 0; }

/* a rejected load: negative status and a message */
#define ZF_REJECTED(r, what)                                                                            \
    ZF_CHECK((r) < 0 && (r) != ZS_ERR_ARG, "%s: status %d is not a load error", what, (int)(r));         \
    ZF_CHECK(zs_last_error()[0] != 0, "%s: rejected (status %d) without a message", what, (int)(r))

/* reads every byte into a sum the compiler cannot drop (ASan checks each read) */
static volatile unsigned zf_sink;
static ZS__MAYBE_UNUSED void zf_touch(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    unsigned s = 0;
    size_t i;
    for (i = 0; i < n; i++) s = s * 31u + b[i];
    zf_sink += s;
}

/* an open safetensors handle read completely: every tensor raw (and as F32
   when it converts), found again by name, every metadata entry listed */
static ZS__MAYBE_UNUSED int zf_st_walk(zs_safetensors *st, char *why, size_t cap) {
    int i, r, cnt;
    cnt = zs_st_count(st);
    for (i = 0; i < cnt; i++) {
        const zs_st_info *t = zs_st_get(st, i);
        void *raw;
        ZF_CHECK(t && t->name && t->dtype && t->ndim >= 0 && t->ndim <= ZS_ST_MAX_DIMS && t->numel >= 0, "tensor %d info", i);
        ZF_CHECK(zs_st_find(st, t->name) == t, "tensor '%s' not found by name", t->name);
        ZF_CHECK(t->offset <= st->data_size && t->nbytes <= st->data_size - t->offset,
                 "tensor '%s' extent [%llu, +%llu] outside %llu data bytes", t->name, (unsigned long long)t->offset,
                 (unsigned long long)t->nbytes, (unsigned long long)st->data_size);
        raw = malloc(t->nbytes ? (size_t)t->nbytes : 1);
        ZF_CHECK(raw != NULL, "malloc");
        r = zs_st_read_raw(st, t, raw, (size_t)t->nbytes);
        if (r == ZS_OK) zf_touch(raw, (size_t)t->nbytes);
        free(raw);
        ZF_CHECK(r == ZS_OK, "read_raw '%s': %s", t->name, zs_last_error());
        if (t->type == ZS_F32 || t->type == ZS_F16 || t->type == ZS_BF16) {
            /* numel * 4 <= 2 * nbytes: bounded by the input */
            float *f = (float *)malloc(t->numel ? (size_t)t->numel * 4 : 4);
            ZF_CHECK(f != NULL, "malloc");
            r = zs_st_read(st, t, f, ZS_F32, (size_t)t->numel);
            if (r == ZS_OK) zf_touch(f, (size_t)t->numel * 4);
            free(f);
            ZF_CHECK(r == ZS_OK, "read '%s' as F32: %s", t->name, zs_last_error());
        }
    }
    ZF_CHECK(zs_st_get(st, cnt) == NULL && zs_st_get(st, -1) == NULL, "zs_st_get out of range");
    for (i = 0; i < zs_st_metadata_count(st); i++) {
        const char *k = NULL, *v = NULL;
        ZF_CHECK(zs_st_metadata_get(st, i, &k, &v) == ZS_OK && k && v, "metadata %d", i);
        ZF_CHECK(zs_st_metadata(st, k) == v, "metadata '%s' not found by key", k);
        zf_touch(k, strlen(k));
        zf_touch(v, strlen(v));
    }
    return ZS_OK;
}


#ifdef ZF_LIBFUZZER
#define ZF_TARGET(fn)                                                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);                            \
    int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {                           \
        char why[512];                                                                 \
        why[0] = 0;                                                                    \
        if (fn(d, n, why, sizeof why) == ZF_BROKEN) {                                  \
            fprintf(stderr, #fn ": broken contract: %s (last error: %s)\n", why, zs_last_error()); \
            abort();                                                                   \
        }                                                                              \
        return 0;                                                                      \
    }
#else
#define ZF_TARGET(fn)
#endif

#endif /* ZF_H */
