/* libFuzzer target: NumPy .npy from memory ([impl:io] zs_npy_read_memory).
   Accepted: shape product == data size, every float touched. Rejected:
   *data NULL and *ndim 0. */
#include "zf.h"

static int zf_npy(const uint8_t *d, size_t n, char *why, size_t cap) {
    int ndim = -1, i, r;
    int64_t shape[8];
    uint64_t numel = 1;
    float *data = (float *)&ndim; /* must be reset */
    zf_clear_error();
    r = zs_npy_read_memory(d, n, &ndim, shape, &data);
    if (r != ZS_OK) {
        ZF_REJECTED(r, "npy");
        ZF_CHECK(data == NULL && ndim == 0, "rejected but outputs not reset");
        return r;
    }
    ZF_CHECK(data != NULL && ndim >= 0 && ndim <= 8, "accepted with data %p ndim %d", (void *)data, ndim);
    for (i = 0; i < ndim; i++) {
        ZF_CHECK(shape[i] >= 0, "negative dimension");
        numel *= (uint64_t)shape[i];
    }
    ZF_CHECK(numel * 4 <= n, "%llu floats from a %zu-byte file", (unsigned long long)numel, n);
    zf_touch(data, (size_t)numel * 4);
    zs_npy_free(data);
    return ZS_OK;
}
ZF_TARGET(zf_npy)
