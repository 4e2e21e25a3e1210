/* libFuzzer target: the zip container of .pth checkpoints ([impl:pth]
   zs__zip_open / zs__zip_find / zs__zip_load, reached directly since the
   harness is in the implementation's translation unit), then the whole
   checkpoint path (zs_pth_open_memory) on the same bytes.

   Zip layer, accepted: every entry lies inside the input before the central
   directory, is found again by name (when inside the archive folder), and every stored entry of <= 1 MiB is
   read whole (its CRC checked) or refused with a message. Checkpoint:
   either a handle whose every tensor reads back (zf_st_walk) or NULL with a
   message. Seeds: the .pth files in tests/golden/pth. */
#include "zf.h"

static void zf__zip_free(zs__zip *z) {
    zs__free(z->cd, NULL);
    zs__free(z->e, NULL);
    z->cd = NULL;
    z->e = NULL;
}

static int zf_zip(const uint8_t *d, size_t n, char *why, size_t cap) {
    zs__src s;
    zs__zip z;
    zs_safetensors *st;
    int r, i, rz;
    zs__src_memory(&s, n ? (const void *)d : "", n, "fuzz zip");
    memset(&z, 0, sizeof z);
    z.src = &s;
    z.who = s.who;
    zf_clear_error();
    rz = zs__zip_open(&z);
    if (rz != ZS_OK) {
        zf__zip_free(&z);
        ZF_REJECTED(rz, "zip");
    } else {
        for (i = 0; i < z.n; i++) {
            const zs__zent *e = &z.e[i];
            unsigned char *b = NULL;
            ZF_CHECK(e->data <= n && e->size <= n - e->data, "entry %d [%llu, +%llu] outside %zu bytes", i,
                     (unsigned long long)e->data, (unsigned long long)e->size, n);
            /* entries outside "<archive>/" are allowed (and never looked up) */
            if (e->nlen >= z.plen && !memcmp(e->name, z.prefix, z.plen) && e->nlen <= 512)
                ZF_CHECK(zs__zip_find(&z, e->name + z.plen, e->nlen - z.plen) == i, "entry %d not found by name", i);
            if (e->size > (1u << 20)) continue;
            zf_clear_error();
            r = zs__zip_load(&z, i, 1u << 20, &b);
            if (r == ZS_OK) {
                ZF_CHECK(b && b[e->size] == 0, "loaded entry not NUL-terminated");
                zf_touch(b, (size_t)e->size);
                zs__free(b, NULL);
            } else {
                ZF_CHECK(b == NULL, "failed load left a buffer");
                ZF_REJECTED(r, "zip entry");
            }
        }
        zf__zip_free(&z);
    }
    zf_clear_error();
    st = zs_pth_open_memory(d, n);
    if (!st) {
        ZF_CHECK(zs_last_error()[0] != 0, "zs_pth_open_memory: NULL without a message");
        return rz ? rz : ZS_ERR_FORMAT;
    }
    ZF_CHECK(rz == ZS_OK, "zs_pth_open_memory accepted what zs__zip_open refused");
    r = zf_st_walk(st, why, cap);
    zs_st_close(st);
    return r;
}
ZF_TARGET(zf_zip)
