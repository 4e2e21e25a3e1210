/* libFuzzer target: safetensors from memory ([impl:io] zs_st_open_memory).
   An accepted file is read completely (zf_st_walk in zf.h). */
#include "zf.h"

static int zf_safetensors(const uint8_t *d, size_t n, char *why, size_t cap) {
    zs_safetensors *st;
    int r;
    zf_clear_error();
    st = zs_st_open_memory(d, n);
    if (!st) {
        ZF_CHECK(zs_last_error()[0] != 0, "rejected without a message");
        return ZS_ERR_FORMAT;
    }
    r = zf_st_walk(st, why, cap);
    zs_st_close(st);
    return r;
}
ZF_TARGET(zf_safetensors)
