/* libFuzzer target: photo index files ([impl:index] zs_index_load). The
   loader reads a path only (tokens stay in the file), so each input goes
   through a temporary file ($TMPDIR or /tmp, one per process).

   Accepted: sizes within the header limits, every class name / path a
   string, labels in -1..n_classes-1, every embedding, ITQ array and code
   touched, and every photo's tokens read back through zs_index_tokens. Rejected: a message
   and *out zeroed. Seeds: small indexes written by tools/fuzz_seeds.c. */
#include "zf.h"
#include <unistd.h>

static int zf_zsi(const uint8_t *d, size_t n, char *why, size_t cap) {
    char path[512];
    const char *tmp = getenv("TMPDIR");
    FILE *f;
    zs_index idx;
    int r, i;
    snprintf(path, sizeof path, "%s/zf_zsi_%ld.zsi", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    f = fopen(path, "wb");
    ZF_CHECK(f != NULL, "cannot create %s", path);
    ZF_CHECK((n == 0 || fwrite(d, 1, n, f) == n) && fclose(f) == 0, "cannot write %s", path);
    zf_clear_error();
    memset(&idx, 0x5a, sizeof idx);
    r = zs_index_load(path, &idx);
    remove(path); /* the open handle keeps the data (POSIX) */
    if (r != ZS_OK) {
        ZF_REJECTED(r, "index");
        ZF_CHECK(!idx.priv_ && !idx.emb && !idx.path && !idx.class_name && !idx.config && idx.n == 0, "*out not zeroed");
        return r;
    }
    ZF_CHECK(idx.n >= 0 && idx.dim > 0 && idx.tokens >= 0 && idx.token_dim >= 0 && idx.n_classes >= 0 && idx.config,
             "header n=%d dim=%d", idx.n, idx.dim);
    ZF_CHECK((size_t)idx.n * (size_t)idx.dim * 4 <= n, "%d x %d embeddings from %zu bytes", idx.n, idx.dim, n);
    zf_touch(idx.config, strlen(idx.config));
    for (i = 0; i < idx.n_classes; i++) {
        ZF_CHECK(idx.class_name[i] != NULL, "class %d NULL", i);
        zf_touch(idx.class_name[i], strlen(idx.class_name[i]));
    }
    for (i = 0; i < idx.n; i++) {
        ZF_CHECK(idx.path[i] != NULL && idx.label[i] >= -1 && idx.label[i] < idx.n_classes, "photo %d", i);
        zf_touch(idx.path[i], strlen(idx.path[i]));
    }
    zf_touch(idx.emb, (size_t)idx.n * (size_t)idx.dim * 4);
    if (idx.itq.bits) {
        ZF_CHECK(idx.itq.dim == idx.dim && idx.itq.bits <= idx.dim && idx.itq.mean && idx.itq.proj && idx.itq.rot &&
                 (idx.codes || idx.n == 0), "ITQ dim %d bits %d", idx.itq.dim, idx.itq.bits);
        zf_touch(idx.itq.mean, (size_t)idx.dim * 4);
        zf_touch(idx.itq.proj, (size_t)idx.dim * (size_t)idx.itq.bits * 4);
        zf_touch(idx.itq.rot, (size_t)idx.itq.bits * (size_t)idx.itq.bits * 4);
        if (idx.n) zf_touch(idx.codes, (size_t)idx.n * ZS_ITQ_WORDS((size_t)idx.itq.bits) * 8);
    }
    if (idx.tokens && idx.n > 0) { /* (no photos: no records bound the token count) */
        size_t tn = (size_t)idx.tokens * (size_t)idx.token_dim;
        float *t;
        ZF_CHECK(tn * (idx.token_type == ZS_F16 ? 2 : 4) <= n, "%zu tokens per photo from %zu bytes", tn, n);
        t = (float *)malloc(tn * 4);
        ZF_CHECK(t != NULL, "malloc");
        for (i = 0; i < idx.n; i++) {
            r = zs_index_tokens(&idx, i, t);
            if (r) break;
            zf_touch(t, tn * 4);
        }
        if (r == ZS_OK && zs_index_tokens(&idx, idx.n, t) != ZS_ERR_ARG) r = ZF_BROKEN;
        free(t);
        ZF_CHECK(r != ZF_BROKEN, "tokens of photo n accepted");
        ZF_CHECK(r == ZS_OK, "tokens of photo %d: %s", i, zs_last_error());
    } else if (idx.n > 0 || idx.tokens == 0) {
        float t1;
        ZF_CHECK(zs_index_tokens(&idx, 0, &t1) == ZS_ERR_STATE, "tokens read from an index without tokens");
    }
    zs_index_free(&idx);
    return ZS_OK;
}
ZF_TARGET(zf_zsi)
