/* libFuzzer target: the restricted unpickler ([impl:pth]) fed a raw
   data.pkl. The API reads checkpoints only as zip archives, so the harness
   wraps the input in a minimal stored zip, as torch.save lays it out:
       archive/data.pkl, archive/data/0 .. archive/data/<k-1>, archive/version
   Input layout: byte 0 = k (mod 17 storages), k little-endian u16 storage
   sizes in bytes, then data.pkl. Storage bytes are a fixed pattern (every
   dtype's values, NaNs included, come up). Accepted: every tensor reads
   back (zf_st_walk); rejected: NULL with a message. Seeds: data.pkl and the
   storage sizes of the .pth files in tests/golden/pth (tools/fuzz_seeds.c). */
#include "zf.h"

static void zf__put16(unsigned char *b, uint32_t v) { b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8); }
static void zf__put32(unsigned char *b, uint32_t v) { zf__put16(b, v & 0xffffu); zf__put16(b + 2, v >> 16); }

/* appends one stored entry (local header + data) and its central record */
static void zf__zip_add(unsigned char *out, size_t *pos, unsigned char *cd, size_t *cpos, const char *name,
                        const unsigned char *data, size_t n) {
    unsigned char *l = out + *pos, *c = cd + *cpos;
    size_t nl = strlen(name);
    uint32_t crc = zs__pth_crc32(0, data, n);
    memset(l, 0, 30);
    zf__put32(l, 0x04034b50u);
    zf__put16(l + 4, 20);
    zf__put32(l + 14, crc);
    zf__put32(l + 18, (uint32_t)n);
    zf__put32(l + 22, (uint32_t)n);
    zf__put16(l + 26, (uint32_t)nl);
    memcpy(l + 30, name, nl);
    if (n) memcpy(l + 30 + nl, data, n);
    memset(c, 0, 46);
    zf__put32(c, 0x02014b50u);
    zf__put16(c + 4, 20);
    zf__put16(c + 6, 20);
    zf__put32(c + 16, crc);
    zf__put32(c + 20, (uint32_t)n);
    zf__put32(c + 24, (uint32_t)n);
    zf__put16(c + 28, (uint32_t)nl);
    zf__put32(c + 42, (uint32_t)*pos);
    memcpy(c + 46, name, nl);
    *pos += 30 + nl + n;
    *cpos += 46 + nl;
}

static int zf_pickle(const uint8_t *d, size_t n, char *why, size_t cap) {
    enum { NAME = 32 };
    size_t k = n ? d[0] % 17u : 0, hdr = 1 + 2 * k, total, pos = 0, cpos = 0, i, j, sizes[16], big = 1;
    unsigned char *out, *cd, *pat;
    zs_safetensors *st;
    char name[NAME];
    int r;
    if (n < hdr) return ZS_ERR_FORMAT; /* not a pickle input */
    total = 22 + (n - hdr) + 2 * (76 + NAME) + 2;
    for (i = 0; i < k; i++) {
        sizes[i] = (size_t)d[1 + 2 * i] | ((size_t)d[2 + 2 * i] << 8);
        total += sizes[i] + 76 + NAME;
        if (sizes[i] > big) big = sizes[i];
    }
    out = (unsigned char *)malloc(total);
    cd = (unsigned char *)malloc((k + 2) * (46 + NAME));
    pat = (unsigned char *)malloc(big);
    ZF_CHECK(out && cd && pat, "malloc");
    for (j = 0; j < big; j++) pat[j] = (unsigned char)(j * 37u + (j >> 8) * 11u);
    zf__zip_add(out, &pos, cd, &cpos, "archive/data.pkl", d + hdr, n - hdr);
    for (i = 0; i < k; i++) {
        snprintf(name, sizeof name, "archive/data/%u", (unsigned)i);
        zf__zip_add(out, &pos, cd, &cpos, name, pat, sizes[i]);
    }
    zf__zip_add(out, &pos, cd, &cpos, "archive/version", (const unsigned char *)"3\n", 2);
    memcpy(out + pos, cd, cpos);
    memset(out + pos + cpos, 0, 22);
    zf__put32(out + pos + cpos, 0x06054b50u);
    zf__put16(out + pos + cpos + 8, (uint32_t)(k + 2));
    zf__put16(out + pos + cpos + 10, (uint32_t)(k + 2));
    zf__put32(out + pos + cpos + 12, (uint32_t)cpos);
    zf__put32(out + pos + cpos + 16, (uint32_t)pos);
    pos += cpos + 22;
    free(cd);
    free(pat);
    zf_clear_error();
    st = zs_pth_open_memory(out, pos);
    if (!st) {
        char msg[512];
        zs__src s;
        zs__zip z;
        ZF_CHECK(zs_last_error()[0] != 0, "NULL without a message");
        snprintf(msg, sizeof msg, "%s", zs_last_error());
        zs__src_memory(&s, out, pos, "harness zip"); /* the wrapper itself must be a valid archive */
        memset(&z, 0, sizeof z);
        z.src = &s;
        z.who = s.who;
        r = zs__zip_open(&z);
        zs__free(z.cd, NULL);
        zs__free(z.e, NULL);
        free(out);
        ZF_CHECK(r == ZS_OK, "the harness's zip was refused: %s", zs_last_error());
        snprintf(zs__errbuf, sizeof zs__errbuf, "%s", msg);
        return ZS_ERR_FORMAT;
    }
    free(out);
    r = zf_st_walk(st, why, cap);
    zs_st_close(st);
    return r;
}
ZF_TARGET(zf_pickle)
