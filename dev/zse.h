/* ---- API (to move into [api:zse]) ---- */
/* ==================================================================== */
/* [api:zse] ZSE-SBIR model (SPEC section 1)                            */
/* ==================================================================== */

#define ZS_ZSE_MAX_DEPTH 48

typedef struct zs_zse_config {
    int img_size;      /* 224; multiple of patch */
    int patch;         /* 16 (the scale-embedding CNN has 4 stride-2 convs) */
    int dim;           /* 768 */
    int depth;         /* 12 SA blocks */
    int heads;         /* 12 */
    int mlp_dim;       /* 3072 */
    int scale_ch[3];   /* 64, 128, 256: tokenizer CNN widths */
    int ca_layers;     /* 1 */
    int ca_heads;      /* 8 */
    int ca_ffn;        /* 1024 */
    int anchor_ch;     /* 512: conv2d 2x2/2 output channels */
    float dropout;     /* 0.1, training only */
    float keep_rate[ZS_ZSE_MAX_DEPTH]; /* EViT token keep rate per SA block, 1 = off */
} zs_zse_config;

/* sizes derived from a config */
typedef struct zs_zse_dims {
    int grid;          /* img/patch (14) */
    int patches;       /* grid^2 (196) */
    int tokens;        /* patches + 1 (197) */
    int anchor_grid;   /* grid/2 (7) */
    int anchors;       /* anchor_grid^2 (49) */
    int rn[3];         /* RN widths: n^2, int(n^1.5), n (2401, 343, 49) */
} zs_zse_dims;

typedef struct zs_zse_block { /* one SA block */
    zs_tensor *ln1_w, *ln1_b, *qkv_w, *qkv_b, *out_w, *out_b, *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} zs_zse_block;

typedef struct zs_zse_ca_layer { /* one CA encoder layer of one branch */
    zs_tensor *w[4], *b[4];          /* q, k, v, out projections */
    zs_tensor *ff1_w, *ff1_b, *ff2_w, *ff2_b;
    zs_tensor *ln_a[2], *ln_b[2];    /* unbiased-std layer norms (SPEC 1.3 quirk) */
} zs_zse_ca_layer;

typedef struct zs_zse {
    zs_zse_config cfg;
    zs_zse_dims dims;
    zs_params params;                /* every tensor, named by the released state-dict keys */
    zs_tensor *embed_w, *embed_b, *scale_w[4], *cls, *pos, *norm_w, *norm_b;
    zs_zse_block *blocks;            /* [depth] */
    zs_zse_ca_layer *ca[2];          /* [0] sketch branch (layer1), [1] photo branch (layer2); [ca_layers] each */
    zs_tensor *conv_w, *conv_b, *rn_w[3], *rn_b[3];
} zs_zse;

typedef struct zs_zse_losses { float triplet, rn, total; } zs_zse_losses;

/* Released defaults (SPEC 1). */
ZSDEF zs_zse_config zs_zse_config_default(void);
/* A small config that trains on a CPU: 112 px, d 192, depth 4, 3 heads, MLP 768. */
ZSDEF zs_zse_config zs_zse_config_small(void);
/* Validates a config (clear error for impossible ones) and derives sizes. */
ZSDEF int zs_zse_config_check(const zs_zse_config *c, zs_zse_dims *d);
/* Allocates the parameters (gradients too when with_grad) and fills them with
   a random initialisation from seed. */
ZSDEF int zs_zse_init(zs_zse *m, const zs_zse_config *c, int with_grad, uint64_t seed);
ZSDEF void zs_zse_free(zs_zse *m);
ZSDEF size_t zs_zse_param_count(const zs_zse *m);

/* SA encoder: images [B,3,H,W] (normalised to [-1,1]) -> tokens [B,T,d]. */
ZSDEF zs_tensor *zs_zse_sa(zs_ctx *ctx, zs_zse *m, zs_tensor *images);
/* CA on P pairs: sk, ph [P,T,d] -> *sk_out, *ph_out [P,T,d]. */
ZSDEF int zs_zse_ca(zs_ctx *ctx, zs_zse *m, zs_tensor *sk, zs_tensor *ph, zs_tensor **sk_out, zs_tensor **ph_out);
/* Token head: CA output [P,T,d] -> anchor tokens [P,n,C] (raw-reshape quirk, SPEC 1.4). */
ZSDEF zs_tensor *zs_zse_anchors(zs_ctx *ctx, zs_zse *m, zs_tensor *ca_out);
/* RN: anchors [P,n,C] of both sides -> relation scores [P] in (0,1). */
ZSDEF zs_tensor *zs_zse_rn(zs_ctx *ctx, zs_zse *m, zs_tensor *anch_sk, zs_tensor *anch_ph);
/* CA + head + RN from SA outputs: [P,T,d] x2 -> [P]. Also returns the
   cosine map [P,n*n] if cos != NULL. */
ZSDEF zs_tensor *zs_zse_relation(zs_ctx *ctx, zs_zse *m, zs_tensor *sa_sk, zs_tensor *sa_ph, zs_tensor **cos);
/* Training loss of SPEC 1.5 on images [4B,3,H,W] ordered [s+, s-, p+, p-]:
   2 * triplet + 4 * RN MSE. Returns the loss tensor; parts in *out. */
ZSDEF zs_tensor *zs_zse_train_loss(zs_ctx *ctx, zs_zse *m, zs_tensor *images, zs_zse_losses *out);
/* Retrieval embedding: SA token 0, L2-normalised, for B images -> out [B,d]. */
ZSDEF int zs_zse_embed(zs_ctx *ctx, zs_zse *m, zs_tensor *images, float *out);

/* Pair-independent CA projections of one item, computed once (SPEC 1.6 made
   cheap): for a sketch, the raw SA tokens x, the sketch branch's Q(x), V(x)
   and the photo branch's K(x); for a photo the mirror image. Layout
   [4][T][d] floats: x, Q_own, V_own, K_other. */
ZSDEF size_t zs_zse_cache_floats(const zs_zse *m);
ZSDEF int zs_zse_cache(zs_ctx *ctx, zs_zse *m, const float *sa_tokens /*[T,d]*/, int is_sketch, float *cache);
/* RN scores of one sketch against n photos, from caches: scores[n]. Equal
   (up to float rounding) to zs_zse_relation on the SA outputs. */
ZSDEF int zs_zse_score_cached(zs_ctx *ctx, zs_zse *m, const float *sketch_cache,
                              const float *const *photo_caches, int n, float *scores);
/* Weights. Load a safetensors file whose tensors carry the released
   state-dict names (SPEC 6), optionally under a "module." prefix;
   the unused ca.encoder.layers.* copy is ignored. The config comes from the
   file's "zsesbir.config" metadata when present, otherwise it is inferred
   from tensor shapes (heads: dim/64 for SA, 8 for CA). Strict: every missing,
   unexpected or mis-shaped tensor is reported in zs_last_error(). F32, F16
   and BF16 storage are converted to f32. */
ZSDEF int zs_zse_load(zs_zse *m, const char *path, int with_grad);
/* Saves every parameter as F32 (or F16 / BF16 with dtype) plus the config metadata. */
ZSDEF int zs_zse_save(const zs_zse *m, const char *path, zs_type dtype);
/* "img_size=224 patch=16 dim=768 ..." <-> config (keys may appear in any order). */
ZSDEF int zs_zse_config_format(const zs_zse_config *c, char *buf, size_t cap);
ZSDEF int zs_zse_config_parse(zs_zse_config *c, const char *text);
/* Two-stage search (beyond the release): rank n gallery items by ret-token
   distance to the sketch, then rerank the top rerank_k by RN score (higher
   first). rerank_k = 0: ret-token only; rerank_k >= n: pure RN ranking.
   gallery_emb [n,d] normalised embeddings; gallery_caches (zs_zse_cache) are
   needed only for the reranked items (may be NULL when rerank_k = 0).
   hits[n] receives the full ranking. */
typedef struct zs_hit { int index; float ret_dist; float rn_score; } zs_hit;
ZSDEF int zs_zse_search(zs_ctx *ctx, zs_zse *m, const float *sketch_emb, const float *sketch_cache,
                        const float *gallery_emb, const float *const *gallery_caches, int n, int rerank_k,
                        zs_hit *hits);
/* ---- end API ---- */

/* ==================================================================== */
/* [impl:zse] ZSE-SBIR model                                            */
/* ==================================================================== */

ZS__FN zs_zse_config zs_zse_config_default(void) {
    zs_zse_config c;
    int i;
    memset(&c, 0, sizeof c);
    c.img_size = 224; c.patch = 16; c.dim = 768; c.depth = 12; c.heads = 12; c.mlp_dim = 3072;
    c.scale_ch[0] = 64; c.scale_ch[1] = 128; c.scale_ch[2] = 256;
    c.ca_layers = 1; c.ca_heads = 8; c.ca_ffn = 1024; c.anchor_ch = 512; c.dropout = 0.1f;
    for (i = 0; i < ZS_ZSE_MAX_DEPTH; i++) c.keep_rate[i] = 1.0f;
    return c;
}

ZS__FN zs_zse_config zs_zse_config_small(void) {
    zs_zse_config c = zs_zse_config_default();
    c.img_size = 112; c.dim = 192; c.depth = 4; c.heads = 3; c.mlp_dim = 768;
    c.scale_ch[0] = 24; c.scale_ch[1] = 48; c.scale_ch[2] = 96;
    c.ca_heads = 4; c.ca_ffn = 256; c.anchor_ch = 128;
    return c;
}

ZS__FN int zs_zse_config_check(const zs_zse_config *c, zs_zse_dims *d) {
    zs_zse_dims t;
    int i;
    if (!c) return zs__fail(ZS_ERR_ARG, "zse config: NULL");
    if (c->patch != 16)
        return zs__fail(ZS_ERR_ARG, "zse config: patch %d unsupported: the tokenizer CNN has 4 stride-2 convs, so patch must be 16", c->patch);
    if (c->img_size < 32 || c->img_size % c->patch || c->img_size > 4096)
        return zs__fail(ZS_ERR_ARG, "zse config: image size %d must be a multiple of %d in [32, 4096] (grid >= 2 for the 2x2 anchor conv)", c->img_size, c->patch);
    if (c->dim < 1 || c->heads < 1 || c->dim % c->heads)
        return zs__fail(ZS_ERR_ARG, "zse config: dim %d is not divisible by heads %d", c->dim, c->heads);
    if (c->ca_heads < 1 || c->dim % c->ca_heads)
        return zs__fail(ZS_ERR_ARG, "zse config: dim %d is not divisible by CA heads %d", c->dim, c->ca_heads);
    if (c->depth < 1 || c->depth > ZS_ZSE_MAX_DEPTH)
        return zs__fail(ZS_ERR_ARG, "zse config: depth %d outside 1..%d", c->depth, ZS_ZSE_MAX_DEPTH);
    if (c->mlp_dim < 1 || c->ca_ffn < 1 || c->anchor_ch < 1 || c->ca_layers < 1 || c->ca_layers > 16 ||
        c->scale_ch[0] < 1 || c->scale_ch[1] < 1 || c->scale_ch[2] < 1)
        return zs__fail(ZS_ERR_ARG, "zse config: every width and layer count must be positive (ca_layers <= 16)");
    if (c->dropout < 0.0f || c->dropout >= 1.0f) return zs__fail(ZS_ERR_ARG, "zse config: dropout %g outside [0,1)", (double)c->dropout);
    for (i = 0; i < c->depth; i++)
        if (!(c->keep_rate[i] > 0.0f && c->keep_rate[i] <= 1.0f))
            return zs__fail(ZS_ERR_ARG, "zse config: keep rate %g of block %d outside (0,1]", (double)c->keep_rate[i], i);
    t.grid = c->img_size / c->patch;
    t.patches = t.grid * t.grid;
    t.tokens = t.patches + 1;
    t.anchor_grid = t.grid / 2;
    t.anchors = t.anchor_grid * t.anchor_grid;
    t.rn[0] = t.anchors * t.anchors;
    t.rn[1] = (int)floor(pow((double)t.anchors, 1.5) + 1e-9);
    t.rn[2] = t.anchors;
    if (d) *d = t;
    return ZS_OK;
}

/* keep-rate reduction changes the token count; the raw-reshape head needs
   the full grid, so EViT is only for retrieval by ret token (checked below) */
ZS__PRIV int zs__zse_has_evit(const zs_zse_config *c) {
    int i;
    for (i = 0; i < c->depth; i++) if (c->keep_rate[i] < 1.0f) return 1;
    return 0;
}

/* add a parameter by printf-style name; returns the tensor index or -1 */
ZS__PRIV int zs__padd(zs_params *p, int nd, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;
ZS__PRIV int zs__padd(zs_params *p, int nd, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...) {
    char name[160];
    int64_t s[4];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
    return zs_params_add(p, name, nd, s);
}

/* Declares every tensor with its released name (SPEC 6). Indices are kept in
   order so pointers can be bound after allocation. */
ZS__PRIV int zs__zse_declare(zs_zse *m) {
    const zs_zse_config *c = &m->cfg;
    const zs_zse_dims *d = &m->dims;
    zs_params *p = &m->params;
    int D = c->dim, i, br, l, k, bad = 0;
#define ZS__CHK(x) bad |= (x) < 0
    ZS__CHK(zs__padd(p, 4, D, 3, c->patch, c->patch, "sa.model.embedding.weight"));
    ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "sa.model.embedding.bias"));
    ZS__CHK(zs__padd(p, 4, c->scale_ch[0], 3, 7, 7, "sa.model.scale.seq.0.weight"));
    ZS__CHK(zs__padd(p, 4, c->scale_ch[1], c->scale_ch[0], 3, 3, "sa.model.scale.seq.2.weight"));
    ZS__CHK(zs__padd(p, 4, c->scale_ch[2], c->scale_ch[1], 3, 3, "sa.model.scale.seq.4.weight"));
    ZS__CHK(zs__padd(p, 4, D, c->scale_ch[2], 3, 3, "sa.model.scale.seq.6.weight"));
    ZS__CHK(zs__padd(p, 3, 1, 1, D, 0, "sa.model.cls"));
    ZS__CHK(zs__padd(p, 3, 1, d->tokens, D, 0, "sa.model.pos_embedding"));
    for (i = 0; i < c->depth; i++) {
        const char *pre = "sa.model.transformer.layers";
        ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "%s.%d.0.layer_norm_input.weight", pre, i));
        ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "%s.%d.0.layer_norm_input.bias", pre, i));
        ZS__CHK(zs__padd(p, 2, 3 * D, D, 0, 0, "%s.%d.0.attention.to_qkv.weight", pre, i));
        ZS__CHK(zs__padd(p, 1, 3 * D, 0, 0, 0, "%s.%d.0.attention.to_qkv.bias", pre, i));
        ZS__CHK(zs__padd(p, 2, D, D, 0, 0, "%s.%d.0.attention.to_out.0.weight", pre, i));
        ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "%s.%d.0.attention.to_out.0.bias", pre, i));
        ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "%s.%d.0.layer_norm_out.weight", pre, i));
        ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "%s.%d.0.layer_norm_out.bias", pre, i));
        ZS__CHK(zs__padd(p, 2, c->mlp_dim, D, 0, 0, "%s.%d.0.mlp.net.0.weight", pre, i));
        ZS__CHK(zs__padd(p, 1, c->mlp_dim, 0, 0, 0, "%s.%d.0.mlp.net.0.bias", pre, i));
        ZS__CHK(zs__padd(p, 2, D, c->mlp_dim, 0, 0, "%s.%d.0.mlp.net.3.weight", pre, i));
        ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "%s.%d.0.mlp.net.3.bias", pre, i));
    }
    ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "sa.model.transformer.encoder_norm.weight"));
    ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "sa.model.transformer.encoder_norm.bias"));
    for (br = 0; br < 2; br++)
        for (l = 0; l < c->ca_layers; l++) {
            int L = br + 1;
            for (k = 0; k < 4; k++) {
                ZS__CHK(zs__padd(p, 2, D, D, 0, 0, "ca.encoder.layer%d.%d.self_attn.linears.%d.weight", L, l, k));
                ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "ca.encoder.layer%d.%d.self_attn.linears.%d.bias", L, l, k));
            }
            ZS__CHK(zs__padd(p, 2, c->ca_ffn, D, 0, 0, "ca.encoder.layer%d.%d.feed_forward.w_1.weight", L, l));
            ZS__CHK(zs__padd(p, 1, c->ca_ffn, 0, 0, 0, "ca.encoder.layer%d.%d.feed_forward.w_1.bias", L, l));
            ZS__CHK(zs__padd(p, 2, D, c->ca_ffn, 0, 0, "ca.encoder.layer%d.%d.feed_forward.w_2.weight", L, l));
            ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "ca.encoder.layer%d.%d.feed_forward.w_2.bias", L, l));
            for (k = 0; k < 2; k++) {
                ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "ca.encoder.layer%d.%d.sublayer.%d.norm.a", L, l, k));
                ZS__CHK(zs__padd(p, 1, D, 0, 0, 0, "ca.encoder.layer%d.%d.sublayer.%d.norm.b", L, l, k));
            }
        }
    ZS__CHK(zs__padd(p, 4, c->anchor_ch, D, 2, 2, "conv2d.weight"));
    ZS__CHK(zs__padd(p, 1, c->anchor_ch, 0, 0, 0, "conv2d.bias"));
    ZS__CHK(zs__padd(p, 2, d->rn[1], d->rn[0], 0, 0, "rn.rn.0.weight"));
    ZS__CHK(zs__padd(p, 1, d->rn[1], 0, 0, 0, "rn.rn.0.bias"));
    ZS__CHK(zs__padd(p, 2, d->rn[2], d->rn[1], 0, 0, "rn.rn.3.weight"));
    ZS__CHK(zs__padd(p, 1, d->rn[2], 0, 0, 0, "rn.rn.3.bias"));
    ZS__CHK(zs__padd(p, 2, 1, d->rn[2], 0, 0, "rn.rn.6.weight"));
    ZS__CHK(zs__padd(p, 1, 1, 0, 0, 0, "rn.rn.6.bias"));
#undef ZS__CHK
    return bad ? ZS_ERR_NOMEM : ZS_OK;
}

/* binds the struct pointers to the allocated tensors, in declaration order */
ZS__PRIV void zs__zse_bind(zs_zse *m) {
    zs_tensor *t = m->params.t;
    int i, br, l, k, j = 0;
    m->embed_w = &t[j++]; m->embed_b = &t[j++];
    for (k = 0; k < 4; k++) m->scale_w[k] = &t[j++];
    m->cls = &t[j++]; m->pos = &t[j++];
    for (i = 0; i < m->cfg.depth; i++) {
        zs_zse_block *b = &m->blocks[i];
        b->ln1_w = &t[j++]; b->ln1_b = &t[j++]; b->qkv_w = &t[j++]; b->qkv_b = &t[j++];
        b->out_w = &t[j++]; b->out_b = &t[j++]; b->ln2_w = &t[j++]; b->ln2_b = &t[j++];
        b->fc1_w = &t[j++]; b->fc1_b = &t[j++]; b->fc2_w = &t[j++]; b->fc2_b = &t[j++];
    }
    m->norm_w = &t[j++]; m->norm_b = &t[j++];
    for (br = 0; br < 2; br++)
        for (l = 0; l < m->cfg.ca_layers; l++) {
            zs_zse_ca_layer *L = &m->ca[br][l];
            for (k = 0; k < 4; k++) { L->w[k] = &t[j++]; L->b[k] = &t[j++]; }
            L->ff1_w = &t[j++]; L->ff1_b = &t[j++]; L->ff2_w = &t[j++]; L->ff2_b = &t[j++];
            for (k = 0; k < 2; k++) { L->ln_a[k] = &t[j++]; L->ln_b[k] = &t[j++]; }
        }
    m->conv_w = &t[j++]; m->conv_b = &t[j++];
    for (k = 0; k < 3; k++) { m->rn_w[k] = &t[j++]; m->rn_b[k] = &t[j++]; }
}

ZS__FN void zs_zse_free(zs_zse *m) {
    if (!m) return;
    zs_params_free(&m->params);
    zs__free(m->blocks, NULL);
    zs__free(m->ca[0], NULL);
    zs__free(m->ca[1], NULL);
    memset(m, 0, sizeof *m);
}

/* structure without values: used by init and by the loaders */
ZS__PRIV int zs__zse_create(zs_zse *m, const zs_zse_config *c, int with_grad) {
    int rc;
    memset(m, 0, sizeof *m);
    if ((rc = zs_zse_config_check(c, &m->dims)) != ZS_OK) return rc;
    m->cfg = *c;
    zs_params_init(&m->params, NULL);
    m->blocks = (zs_zse_block *)zs__malloc(sizeof(zs_zse_block) * (size_t)c->depth, NULL);
    m->ca[0] = (zs_zse_ca_layer *)zs__malloc(sizeof(zs_zse_ca_layer) * (size_t)c->ca_layers, NULL);
    m->ca[1] = (zs_zse_ca_layer *)zs__malloc(sizeof(zs_zse_ca_layer) * (size_t)c->ca_layers, NULL);
    if (!m->blocks || !m->ca[0] || !m->ca[1]) { zs_zse_free(m); return zs__fail(ZS_ERR_NOMEM, "zse: out of memory"); }
    if ((rc = zs__zse_declare(m)) != ZS_OK) { zs_zse_free(m); return rc; }
    rc = with_grad ? zs_params_alloc(&m->params) : zs_params_alloc_data(&m->params);
    if (rc != ZS_OK) { zs_zse_free(m); return rc; }
    zs__zse_bind(m);
    return ZS_OK;
}

/* deterministic normal numbers for initialisation without a context */
ZS__PRIV void zs__fill_normal_seed(zs_tensor *t, uint64_t key, float std) {
    int64_t i, n = zs_numel(t);
    float *x = (float *)t->data;
    for (i = 0; i < n; i++) {
        float u1 = zs__hash_uniform(key, (uint64_t)(2 * i)), u2 = zs__hash_uniform(key, (uint64_t)(2 * i + 1));
        if (u1 < 1e-12f) u1 = 1e-12f;
        x[i] = std * sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
    }
}

ZS__FN int zs_zse_init(zs_zse *m, const zs_zse_config *c, int with_grad, uint64_t seed) {
    int rc = zs__zse_create(m, c, with_grad), i;
    if (rc != ZS_OK) return rc;
    /* ViT-style init: linears and embeddings N(0, 0.02), biases 0, norms 1/0;
       convs N(0, sqrt(2/fan_in)) (Kaiming) */
    for (i = 0; i < m->params.count; i++) {
        zs_tensor *t = &m->params.t[i];
        const char *n = t->name;
        size_t L = strlen(n);
        uint64_t key = zs__mix64(seed ^ zs__mix64((uint64_t)i + 1));
        int is_bias = L >= 5 && !strcmp(n + L - 5, ".bias");
        int is_norm = strstr(n, "norm") != NULL;
        if (is_norm && (L >= 7 && !strcmp(n + L - 7, ".weight"))) zs_tensor_fill(t, 1.0f);
        else if (is_norm && n[L - 1] == 'a' && n[L - 2] == '.') zs_tensor_fill(t, 1.0f);
        else if (is_bias || (is_norm && n[L - 1] == 'b' && n[L - 2] == '.')) zs_tensor_fill(t, 0.0f);
        else if (t->ndim == 4) zs__fill_normal_seed(t, key, sqrtf(2.0f / (float)(t->shape[1] * t->shape[2] * t->shape[3])));
        else zs__fill_normal_seed(t, key, 0.02f);
    }
    return ZS_OK;
}

ZS__FN size_t zs_zse_param_count(const zs_zse *m) { return m ? m->params.numel : 0; }

/* ---- SA ------------------------------------------------------------------ */

/* One pre-norm block. x [B,T,d] -> [B,T',d] (T' < T with an EViT keep rate). */
ZS__PRIV zs_tensor *zs__zse_block(zs_ctx *ctx, zs_zse *m, int li, zs_tensor *x) {
    const zs_zse_config *c = &m->cfg;
    zs_zse_block *b = &m->blocks[li];
    int D = c->dim;
    float p = c->dropout, keep = c->keep_rate[li];
    int64_t B = x->shape[0], T = x->shape[1];
    float *cls_attn = NULL;
    zs_tensor *a, *qkv, *o, *h;
    a = zs_layer_norm(ctx, x, b->ln1_w, b->ln1_b, 1e-5f);
    qkv = zs_linear(ctx, a, b->qkv_w, b->qkv_b);                         /* [B,T,3d] */
    if (keep < 1.0f && qkv) {
        cls_attn = (float *)zs__arena_alloc(&ctx->arena, (size_t)(B * T) * sizeof(float));
        if (!cls_attn) { zs__fail(ZS_ERR_NOMEM, "zse: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    }
    o = zs_attention_ex(ctx, zs_slice(ctx, qkv, 2, 0, D), zs_slice(ctx, qkv, 2, D, 2 * D), zs_slice(ctx, qkv, 2, 2 * D, 3 * D),
                        c->heads, 1.0f / sqrtf((float)(D / c->heads)), 0.0f, cls_attn, NULL);
    o = zs_dropout(ctx, zs_linear(ctx, o, b->out_w, b->out_b), p);
    x = zs_add(ctx, x, o);
    if (keep < 1.0f && x) {
        /* EViT as SPEC 1.2 intends: keep cls + the ceil(r*(T-1)) patch tokens
           with the largest head-mean cls attention, in their original order.
           (The released code drops this block's attention output when r < 1;
           we deliberately do not copy that bug.) */
        int64_t keepn = (int64_t)ceil((double)keep * (double)(T - 1)), bi, i, j;
        int32_t *idx = (int32_t *)zs__arena_alloc(&ctx->arena, (size_t)(B * (keepn + 1)) * sizeof(int32_t));
        unsigned char *chosen = (unsigned char *)zs__arena_alloc(&ctx->arena, (size_t)T);
        if (!idx || !chosen) { zs__fail(ZS_ERR_NOMEM, "zse: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        for (bi = 0; bi < B; bi++) {
            const float *ca = cls_attn + bi * T;
            int64_t n = 0;
            memset(chosen, 0, (size_t)T);
            for (j = 0; j < keepn; j++) { /* selection of the top keepn; ties -> lower index */
                int64_t best = -1;
                for (i = 1; i < T; i++)
                    if (!chosen[i] && (best < 0 || ca[i] > ca[best])) best = i;
                chosen[best] = 1;
            }
            idx[bi * (keepn + 1) + n++] = (int32_t)(bi * T);
            for (i = 1; i < T; i++)
                if (chosen[i]) idx[bi * (keepn + 1) + n++] = (int32_t)(bi * T + i);
        }
        x = zs_reshape3(ctx, zs_gather(ctx, zs_reshape2(ctx, x, B * T, D), idx, B * (keepn + 1)), B, keepn + 1, D);
    }
    h = zs_layer_norm(ctx, x, b->ln2_w, b->ln2_b, 1e-5f);
    h = zs_dropout(ctx, zs_gelu(ctx, zs_linear(ctx, h, b->fc1_w, b->fc1_b)), p);
    h = zs_dropout(ctx, zs_linear(ctx, h, b->fc2_w, b->fc2_b), p);
    return zs_add(ctx, x, h);
}

ZS__FN zs_tensor *zs_zse_sa(zs_ctx *ctx, zs_zse *m, zs_tensor *img) {
    const zs_zse_config *c;
    int64_t B, D, N;
    zs_tensor *patch, *scale, *t, *cls, *x;
    int32_t *zeros;
    int i;
    if (!ctx || !m || !img) return NULL;
    c = &m->cfg;
    D = c->dim;
    N = m->dims.patches;
    if (img->ndim != 4 || img->shape[1] != 3 || img->shape[2] != c->img_size || img->shape[3] != c->img_size) {
        char s[96];
        zs__fail(ZS_ERR_SHAPE, "zs_zse_sa: images must be [B,3,%d,%d], got %s", c->img_size, c->img_size, zs_shape_str(img, s, sizeof s));
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    B = img->shape[0];
    /* 1. patch embedding; 2. tokenizer CNN (no biases) */
    patch = zs_conv2d(ctx, img, m->embed_w, m->embed_b, c->patch, c->patch, 0, 0);     /* [B,d,g,g] */
    scale = zs_relu(ctx, zs_conv2d(ctx, img, m->scale_w[0], NULL, 2, 2, 3, 3));
    scale = zs_relu(ctx, zs_conv2d(ctx, scale, m->scale_w[1], NULL, 2, 2, 1, 1));
    scale = zs_relu(ctx, zs_conv2d(ctx, scale, m->scale_w[2], NULL, 2, 2, 1, 1));
    scale = zs_conv2d(ctx, scale, m->scale_w[3], NULL, 2, 2, 1, 1);                    /* [B,d,g,g] */
    /* 3. t = (patch + scale) / 2, flattened (row y, then x) and transposed */
    t = zs_scale(ctx, zs_add(ctx, patch, scale), 0.5f);
    t = zs_contiguous(ctx, zs_transpose(ctx, zs_reshape3(ctx, t, B, D, N), 1, 2));     /* [B,N,d] */
    /* 4. cls token per image, position embedding, dropout */
    zeros = (int32_t *)zs__arena_calloc(&ctx->arena, (size_t)B * sizeof(int32_t));
    if (!zeros) { zs__fail(ZS_ERR_NOMEM, "zse: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    cls = zs_reshape3(ctx, zs_gather(ctx, zs_reshape2(ctx, m->cls, 1, D), zeros, B), B, 1, D);
    {
        zs_tensor *parts[2];
        parts[0] = cls; parts[1] = t;
        x = zs_concat(ctx, parts, 2, 1);                                                /* [B,T,d] */
    }
    x = zs_dropout(ctx, zs_add(ctx, x, m->pos), c->dropout);
    /* 5. blocks; 6. final norm */
    for (i = 0; i < c->depth && x; i++) x = zs__zse_block(ctx, m, i, x);
    return zs_layer_norm(ctx, x, m->norm_w, m->norm_b, 1e-5f);
}

/* ---- CA ------------------------------------------------------------------ */

/* MHA of SPEC 1.3 from projected Q [P,Tq,d], K, V [P,Tk,d] -> [P,Tq,d] */
ZS__PRIV zs_tensor *zs__zse_ca_mix(zs_ctx *ctx, zs_zse *m, zs_zse_ca_layer *L, zs_tensor *Q, zs_tensor *K, zs_tensor *V,
                                   zs_tensor *v_in) {
    const zs_zse_config *c = &m->cfg;
    float p = c->dropout;
    zs_tensor *o, *x, *f;
    o = zs_attention(ctx, Q, K, V, c->ca_heads, 1.0f / sqrtf((float)(c->dim / c->ca_heads)), p);
    o = zs_linear(ctx, o, L->w[3], L->b[3]);
    /* sublayer 0: x = LN(v + dropout(MHA)) with the unbiased-std norm (quirk) */
    x = zs_layer_norm_unbiased(ctx, zs_add(ctx, v_in, zs_dropout(ctx, o, p)), L->ln_a[0], L->ln_b[0], 1e-6f);
    /* sublayer 1: x = LN'(x + dropout(FFN(x))), FFN = w_2(dropout(relu(w_1 x))) */
    f = zs_linear(ctx, zs_dropout(ctx, zs_relu(ctx, zs_linear(ctx, x, L->ff1_w, L->ff1_b)), p), L->ff2_w, L->ff2_b);
    return zs_layer_norm_unbiased(ctx, zs_add(ctx, x, zs_dropout(ctx, f, p)), L->ln_a[1], L->ln_b[1], 1e-6f);
}

/* L(q, k, v) of SPEC 1.3 */
ZS__PRIV zs_tensor *zs__zse_ca_layer(zs_ctx *ctx, zs_zse *m, zs_zse_ca_layer *L, zs_tensor *q, zs_tensor *k, zs_tensor *v) {
    return zs__zse_ca_mix(ctx, m, L, zs_linear(ctx, q, L->w[0], L->b[0]), zs_linear(ctx, k, L->w[1], L->b[1]),
                          zs_linear(ctx, v, L->w[2], L->b[2]), v);
}

ZS__FN int zs_zse_ca(zs_ctx *ctx, zs_zse *m, zs_tensor *sk, zs_tensor *ph, zs_tensor **sk_out, zs_tensor **ph_out) {
    int l;
    if (!ctx || !m || !sk_out || !ph_out) return zs__fail(ZS_ERR_ARG, "zs_zse_ca: NULL argument");
    *sk_out = *ph_out = NULL;
    if (!sk || !ph) return zs__fail(ZS_ERR_STATE, "zs_zse_ca: NULL input (%s)", zs_last_error());
    if (sk->ndim != 3 || ph->ndim != 3 || sk->shape[0] != ph->shape[0] || sk->shape[2] != m->cfg.dim || ph->shape[2] != m->cfg.dim) {
        zs__shape_fail(ctx, "zs_zse_ca", sk, ph, "need sketch and photo tokens [P,T,d] with the same P");
        return ZS_ERR_SHAPE;
    }
    /* Both branches read the inputs from before the update. Quirk (SPEC 1.3):
       query and value from the same modality, key from the other. */
    for (l = 0; l < m->cfg.ca_layers; l++) {
        zs_tensor *s2 = zs__zse_ca_layer(ctx, m, &m->ca[0][l], sk, ph, sk);
        zs_tensor *p2 = zs__zse_ca_layer(ctx, m, &m->ca[1][l], ph, sk, ph);
        sk = s2;
        ph = p2;
    }
    *sk_out = sk;
    *ph_out = ph;
    return sk && ph ? ZS_OK : (zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE);
}

/* ---- token head and RN ------------------------------------------------------ */

ZS__FN zs_tensor *zs_zse_anchors(zs_ctx *ctx, zs_zse *m, zs_tensor *x) {
    const zs_zse_dims *d;
    int64_t P;
    zs_tensor *t;
    if (!ctx || !m || !x) return NULL;
    d = &m->dims;
    if (x->ndim != 3 || x->shape[1] != d->tokens || x->shape[2] != m->cfg.dim)
        return zs__shape_fail(ctx, "zs_zse_anchors", x, NULL, "need [P,T,d] CA output with all tokens");
    P = x->shape[0];
    /* drop cls; quirk (SPEC 1.4): reinterpret the row-major [N,d] memory as
       [d,g,g] WITHOUT transposing (zs_reshape of contiguous data is exactly
       that raw reinterpretation) */
    t = zs_contiguous(ctx, zs_slice(ctx, x, 1, 1, d->tokens));
    t = zs_reshape4(ctx, t, P, m->cfg.dim, d->grid, d->grid);
    t = zs_conv2d(ctx, t, m->conv_w, m->conv_b, 2, 2, 0, 0);                            /* [P,C,g/2,g/2] */
    t = zs_reshape3(ctx, t, P, m->cfg.anchor_ch, d->anchors);
    return zs_contiguous(ctx, zs_transpose(ctx, t, 1, 2));                              /* [P,n,C] */
}

ZS__FN zs_tensor *zs_zse_rn(zs_ctx *ctx, zs_zse *m, zs_tensor *as, zs_tensor *ap) {
    float p;
    zs_tensor *cos, *h;
    if (!ctx || !m || !as || !ap) return NULL;
    p = m->cfg.dropout;
    cos = zs_cosine_matrix(ctx, as, ap);                                                /* [P,n,n], NaN->0 */
    h = zs_reshape2(ctx, cos, as->shape[0], (int64_t)m->dims.rn[0]);
    h = zs_dropout(ctx, zs_relu(ctx, zs_linear(ctx, h, m->rn_w[0], m->rn_b[0])), p);
    h = zs_dropout(ctx, zs_relu(ctx, zs_linear(ctx, h, m->rn_w[1], m->rn_b[1])), p);
    h = zs_sigmoid(ctx, zs_linear(ctx, h, m->rn_w[2], m->rn_b[2]));                    /* [P,1] */
    return h ? zs_reshape(ctx, h, 1, &h->shape[0]) : NULL;
}

ZS__FN zs_tensor *zs_zse_relation(zs_ctx *ctx, zs_zse *m, zs_tensor *sa_sk, zs_tensor *sa_ph, zs_tensor **cos) {
    zs_tensor *so, *po, *as, *ap;
    if (cos) *cos = NULL;
    if (zs_zse_ca(ctx, m, sa_sk, sa_ph, &so, &po) != ZS_OK) return NULL;
    as = zs_zse_anchors(ctx, m, so);
    ap = zs_zse_anchors(ctx, m, po);
    if (cos && as && ap) *cos = zs_reshape2(ctx, zs_cosine_matrix(ctx, as, ap), as->shape[0], (int64_t)m->dims.rn[0]);
    return zs_zse_rn(ctx, m, as, ap);
}

/* ---- training loss (SPEC 1.5) -------------------------------------------- */

ZS__FN zs_tensor *zs_zse_train_loss(zs_ctx *ctx, zs_zse *m, zs_tensor *img, zs_zse_losses *out) {
    int64_t B, T, D;
    zs_tensor *sa, *so, *po, *scores, *target, *tri, *mse, *loss, *cs, *cp;
    int64_t i;
    if (!ctx || !m || !img) return NULL;
    if (img->ndim != 4 || img->shape[0] % 4 || img->shape[0] == 0)
        return zs__shape_fail(ctx, "zs_zse_train_loss", img, NULL, "need [4B,3,H,W] images ordered [s+, s-, p+, p-]");
    if (zs__zse_has_evit(&m->cfg)) {
        zs__fail(ZS_ERR_UNSUPPORTED, "zs_zse_train_loss: EViT keep rates < 1 remove tokens the RN head needs; train with keep rate 1");
        return zs__op_fail(ctx, ZS_ERR_UNSUPPORTED);
    }
    B = img->shape[0] / 4;
    T = m->dims.tokens;
    D = m->cfg.dim;
    sa = zs_zse_sa(ctx, m, img);                                                       /* [4B,T,d] */
    /* pairs (s+_i, p+_i) then (s-_i, p-_i): sketches are SA rows [0,2B),
       photos rows [2B,4B) in the same order */
    if (zs_zse_ca(ctx, m, zs_slice(ctx, sa, 0, 0, 2 * B), zs_slice(ctx, sa, 0, 2 * B, 4 * B), &so, &po) != ZS_OK) return NULL;
    scores = zs_zse_rn(ctx, m, zs_zse_anchors(ctx, m, so), zs_zse_anchors(ctx, m, po)); /* [2B] */
    /* cls = CA output token 0: sketches [s+, s-] from the sketch branch, photos
       [p+, p-] from the photo branch */
    cs = zs_reshape2(ctx, zs_slice(ctx, so, 1, 0, 1), 2 * B, D);
    cp = zs_reshape2(ctx, zs_slice(ctx, po, 1, 0, 1), 2 * B, D);
    tri = zs_triplet_loss(ctx, zs_slice(ctx, cs, 0, 0, B), zs_slice(ctx, cp, 0, 0, B), zs_slice(ctx, cp, 0, B, 2 * B), 1.0f, 1e-6f);
    target = zs_f32_1d(ctx, 2 * B);
    if (!target) return NULL;
    for (i = 0; i < 2 * B; i++) ((float *)target->data)[i] = i < B ? 0.99f : 0.01f;
    mse = zs_mse_loss(ctx, scores, target);
    loss = zs_add(ctx, zs_scale(ctx, tri, 2.0f), zs_scale(ctx, mse, 4.0f));
    if (loss && out) {
        out->triplet = ((float *)tri->data)[0];
        out->rn = ((float *)mse->data)[0];
        out->total = ((float *)loss->data)[0];
    }
    (void)T;
    return loss;
}

/* ---- retrieval ------------------------------------------------------------- */

ZS__FN int zs_zse_embed(zs_ctx *ctx, zs_zse *m, zs_tensor *img, float *out) {
    zs_mark mk;
    zs_tensor *sa, *e;
    int old, rc = ZS_OK;
    if (!ctx || !m || !img || !out) return zs__fail(ZS_ERR_ARG, "zs_zse_embed: NULL argument");
    mk = zs_ctx_mark(ctx);
    old = zs_set_grad_enabled(ctx, 0);
    sa = zs_zse_sa(ctx, m, img);
    e = zs_l2_normalize(ctx, zs_reshape2(ctx, zs_slice(ctx, sa, 1, 0, 1), img->shape[0], m->cfg.dim), 1e-12f);
    if (e) memcpy(out, e->data, (size_t)zs_numel(e) * sizeof(float));
    else rc = zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE;
    zs_set_grad_enabled(ctx, old);
    zs_ctx_release(ctx, mk);
    return rc;
}

ZS__FN size_t zs_zse_cache_floats(const zs_zse *m) { return (size_t)4 * (size_t)m->dims.tokens * (size_t)m->cfg.dim; }

ZS__FN int zs_zse_cache(zs_ctx *ctx, zs_zse *m, const float *tok, int is_sketch, float *cache) {
    int64_t T, D, s[3];
    zs_mark mk;
    zs_tensor *x, *q, *v, *k;
    zs_zse_ca_layer *own, *other;
    int old, rc = ZS_OK;
    if (!ctx || !m || !tok || !cache) return zs__fail(ZS_ERR_ARG, "zs_zse_cache: NULL argument");
    T = m->dims.tokens; D = m->cfg.dim;
    own = &m->ca[is_sketch ? 0 : 1][0];
    other = &m->ca[is_sketch ? 1 : 0][0];
    mk = zs_ctx_mark(ctx);
    old = zs_set_grad_enabled(ctx, 0);
    s[0] = 1; s[1] = T; s[2] = D;
    x = zs_from_data(ctx, tok, 3, s);
    q = zs_linear(ctx, x, own->w[0], own->b[0]);      /* own branch: query  */
    v = zs_linear(ctx, x, own->w[2], own->b[2]);      /* own branch: value  */
    k = zs_linear(ctx, x, other->w[1], other->b[1]);  /* other branch: key  */
    if (q && v && k) {
        size_t n = (size_t)(T * D);
        memcpy(cache, tok, n * sizeof(float));
        memcpy(cache + n, q->data, n * sizeof(float));
        memcpy(cache + 2 * n, v->data, n * sizeof(float));
        memcpy(cache + 3 * n, k->data, n * sizeof(float));
    } else rc = zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE;
    zs_set_grad_enabled(ctx, old);
    zs_ctx_release(ctx, mk);
    return rc;
}

ZS__FN int zs_zse_score_cached(zs_ctx *ctx, zs_zse *m, const float *skc, const float *const *phc, int n, float *scores) {
    int64_t T, D, s3[3];
    size_t tn;
    int old, rc = ZS_OK, i, l, chunk = 8, start;
    if (!ctx || !m || !skc || (n > 0 && (!phc || !scores))) return zs__fail(ZS_ERR_ARG, "zs_zse_score_cached: NULL argument");
    T = m->dims.tokens; D = m->cfg.dim;
    tn = (size_t)(T * D);
    old = zs_set_grad_enabled(ctx, 0);
    for (start = 0; start < n && rc == ZS_OK; start += chunk) {
        int P = n - start < chunk ? n - start : chunk;
        zs_mark mk = zs_ctx_mark(ctx);
        zs_tensor *sx, *sq, *sv, *sk_k, *px, *pq, *pv, *pk, *so, *po, *sc;
        s3[0] = P; s3[1] = T; s3[2] = D;
        /* the sketch's tensors repeated P times; the photos' stacked */
        sx = zs_tensor_new(ctx, ZS_F32, 3, s3); sq = zs_tensor_new(ctx, ZS_F32, 3, s3);
        sv = zs_tensor_new(ctx, ZS_F32, 3, s3); sk_k = zs_tensor_new(ctx, ZS_F32, 3, s3);
        px = zs_tensor_new(ctx, ZS_F32, 3, s3); pq = zs_tensor_new(ctx, ZS_F32, 3, s3);
        pv = zs_tensor_new(ctx, ZS_F32, 3, s3); pk = zs_tensor_new(ctx, ZS_F32, 3, s3);
        if (!sx || !sq || !sv || !sk_k || !px || !pq || !pv || !pk) { rc = ZS_ERR_NOMEM; zs_ctx_release(ctx, mk); break; }
        for (i = 0; i < P; i++) {
            const float *pc = phc[start + i];
            memcpy((float *)sx->data + i * tn, skc, tn * 4);
            memcpy((float *)sq->data + i * tn, skc + tn, tn * 4);
            memcpy((float *)sv->data + i * tn, skc + 2 * tn, tn * 4);
            memcpy((float *)sk_k->data + i * tn, skc + 3 * tn, tn * 4);
            memcpy((float *)px->data + i * tn, pc, tn * 4);
            memcpy((float *)pq->data + i * tn, pc + tn, tn * 4);
            memcpy((float *)pv->data + i * tn, pc + 2 * tn, tn * 4);
            memcpy((float *)pk->data + i * tn, pc + 3 * tn, tn * 4);
        }
        /* first CA layer from the caches: the sketch branch attends with its
           own Q/V and the photo's key projection (pk holds K_sketch-branch of
           the photo); the photo branch with its own Q/V and the sketch's key */
        so = zs__zse_ca_mix(ctx, m, &m->ca[0][0], sq, pk, sv, sx);
        po = zs__zse_ca_mix(ctx, m, &m->ca[1][0], pq, sk_k, pv, px);
        for (l = 1; l < m->cfg.ca_layers; l++) {
            zs_tensor *s2 = zs__zse_ca_layer(ctx, m, &m->ca[0][l], so, po, so);
            zs_tensor *p2 = zs__zse_ca_layer(ctx, m, &m->ca[1][l], po, so, po);
            so = s2; po = p2;
        }
        sc = zs_zse_rn(ctx, m, zs_zse_anchors(ctx, m, so), zs_zse_anchors(ctx, m, po));
        if (sc) memcpy(scores + start, sc->data, (size_t)P * sizeof(float));
        else rc = zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE;
        zs_ctx_release(ctx, mk);
    }
    zs_set_grad_enabled(ctx, old);
    return rc;
}

/* ---- weights ------------------------------------------------------------ */

ZS__FN int zs_zse_config_format(const zs_zse_config *c, char *buf, size_t cap) {
    size_t n;
    int i, all_one = 1;
    n = (size_t)snprintf(buf, cap,
                         "img_size=%d patch=%d dim=%d depth=%d heads=%d mlp_dim=%d scale_ch=%d,%d,%d ca_layers=%d "
                         "ca_heads=%d ca_ffn=%d anchor_ch=%d dropout=%.9g",
                         c->img_size, c->patch, c->dim, c->depth, c->heads, c->mlp_dim, c->scale_ch[0], c->scale_ch[1],
                         c->scale_ch[2], c->ca_layers, c->ca_heads, c->ca_ffn, c->anchor_ch, (double)c->dropout);
    for (i = 0; i < c->depth && i < ZS_ZSE_MAX_DEPTH; i++) all_one &= c->keep_rate[i] == 1.0f;
    if (!all_one && n < cap) {
        n += (size_t)snprintf(buf + n, cap - n, " keep_rate=");
        for (i = 0; i < c->depth && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ",%.9g" : "%.9g", (double)c->keep_rate[i]);
    }
    return n < cap ? ZS_OK : zs__fail(ZS_ERR_ARG, "zs_zse_config_format: buffer too small");
}

ZS__FN int zs_zse_config_parse(zs_zse_config *c, const char *text) {
    const char *p = text;
    if (!c || !text) return zs__fail(ZS_ERR_ARG, "zs_zse_config_parse: NULL argument");
    while (*p) {
        char key[32], val[512];
        int kn = 0, vn = 0, ok = 1;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ';') p++;
        if (!*p) break;
        while (*p && *p != '=' && *p != ' ' && kn < 31) key[kn++] = *p++;
        key[kn] = 0;
        if (*p != '=') return zs__fail(ZS_ERR_FORMAT, "zse config text: expected key=value near \"%.20s\"", p);
        p++;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != ';' && vn < 511) val[vn++] = *p++;
        val[vn] = 0;
#define ZS__INTKEY(name, field) else if (!strcmp(key, name)) ok = sscanf(val, "%d", &c->field) == 1
        if (0) {}
        ZS__INTKEY("img_size", img_size); ZS__INTKEY("patch", patch); ZS__INTKEY("dim", dim);
        ZS__INTKEY("depth", depth); ZS__INTKEY("heads", heads); ZS__INTKEY("mlp_dim", mlp_dim);
        ZS__INTKEY("ca_layers", ca_layers); ZS__INTKEY("ca_heads", ca_heads); ZS__INTKEY("ca_ffn", ca_ffn);
        ZS__INTKEY("anchor_ch", anchor_ch);
        else if (!strcmp(key, "dropout")) ok = sscanf(val, "%f", &c->dropout) == 1;
        else if (!strcmp(key, "scale_ch")) ok = sscanf(val, "%d,%d,%d", &c->scale_ch[0], &c->scale_ch[1], &c->scale_ch[2]) == 3;
        else if (!strcmp(key, "keep_rate")) {
            const char *q = val;
            int i = 0, used = 0;
            while (*q && i < ZS_ZSE_MAX_DEPTH && sscanf(q, "%f%n", &c->keep_rate[i], &used) == 1) {
                i++;
                q += used;
                if (*q == ',') q++;
            }
            ok = *q == 0;
        } else return zs__fail(ZS_ERR_FORMAT, "zse config text: unknown key \"%s\"", key);
#undef ZS__INTKEY
        if (!ok) return zs__fail(ZS_ERR_FORMAT, "zse config text: bad value \"%s\" for %s", val, key);
    }
    return ZS_OK;
}

/* name without a wrapper prefix */
ZS__PRIV const char *zs__strip_prefix(const char *n) {
    if (!strncmp(n, "module.", 7)) n += 7; /* DataParallel wrapper */
    return n;
}

ZS__PRIV const zs_st_info *zs__st_find_any(const zs_safetensors *st, const char *name) {
    int i, n = zs_st_count(st);
    for (i = 0; i < n; i++) {
        const zs_st_info *t = zs_st_get(st, i);
        if (!strcmp(zs__strip_prefix(t->name), name)) return t;
    }
    return NULL;
}

/* infer a config from shapes (and metadata) */
ZS__PRIV int zs__zse_infer_config(const zs_safetensors *st, zs_zse_config *c) {
    const zs_st_info *t;
    const char *meta = zs_st_metadata(st, "zsesbir.config");
    char name[160];
    int i, n;
    *c = zs_zse_config_default();
    if (meta) return zs_zse_config_parse(c, meta);
    t = zs__st_find_any(st, "sa.model.embedding.weight");
    if (!t || t->ndim != 4) return zs__fail(ZS_ERR_FORMAT, "weights: no sa.model.embedding.weight [d,3,p,p]: not a ZSE-SBIR checkpoint");
    c->dim = (int)t->shape[0];
    c->patch = (int)t->shape[2];
    t = zs__st_find_any(st, "sa.model.pos_embedding");
    if (!t || t->ndim != 3) return zs__fail(ZS_ERR_FORMAT, "weights: no sa.model.pos_embedding [1,T,d]");
    for (n = 1; (int64_t)n * n < t->shape[1] - 1; n++) {}
    if ((int64_t)n * n != t->shape[1] - 1) return zs__fail(ZS_ERR_FORMAT, "weights: position table of %lld tokens is not 1 + a square grid", (long long)t->shape[1]);
    c->img_size = n * c->patch;
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "sa.model.scale.seq.%d.weight", 2 * i);
        t = zs__st_find_any(st, name);
        if (!t || t->ndim != 4) return zs__fail(ZS_ERR_FORMAT, "weights: missing %s", name);
        c->scale_ch[i] = (int)t->shape[0];
    }
    for (c->depth = 0; c->depth < ZS_ZSE_MAX_DEPTH; c->depth++) {
        snprintf(name, sizeof name, "sa.model.transformer.layers.%d.0.attention.to_qkv.weight", c->depth);
        if (!zs__st_find_any(st, name)) break;
    }
    t = zs__st_find_any(st, "sa.model.transformer.layers.0.0.mlp.net.0.weight");
    if (t && t->ndim == 2) c->mlp_dim = (int)t->shape[0];
    for (c->ca_layers = 0; c->ca_layers < 16; c->ca_layers++) {
        snprintf(name, sizeof name, "ca.encoder.layer1.%d.self_attn.linears.0.weight", c->ca_layers);
        if (!zs__st_find_any(st, name)) break;
    }
    t = zs__st_find_any(st, "ca.encoder.layer1.0.feed_forward.w_1.weight");
    if (t && t->ndim == 2) c->ca_ffn = (int)t->shape[0];
    t = zs__st_find_any(st, "conv2d.weight");
    if (t && t->ndim == 4) c->anchor_ch = (int)t->shape[0];
    /* head counts are not visible in shapes: released head dims 64 (SA), 8 heads (CA) */
    c->heads = c->dim % 64 == 0 ? c->dim / 64 : 1;
    c->ca_heads = c->dim % 8 == 0 ? 8 : 1;
    return ZS_OK;
}

ZS__FN int zs_zse_load(zs_zse *m, const char *path, int with_grad) {
    zs_safetensors *st;
    zs_zse_config c;
    char report[1024];
    size_t rn = 0;
    int rc, i, n, problems = 0;
    unsigned char *seen = NULL;
    if (!m || !path) return zs__fail(ZS_ERR_ARG, "zs_zse_load: NULL argument");
    memset(m, 0, sizeof *m);
    st = zs_st_open(path);
    if (!st) return ZS_ERR_FORMAT; /* zs_st_open set the message */
    rc = zs__zse_infer_config(st, &c);
    if (rc == ZS_OK) rc = zs__zse_create(m, &c, with_grad);
    if (rc != ZS_OK) { zs_st_close(st); return rc; }
    n = zs_st_count(st);
    seen = (unsigned char *)zs__malloc((size_t)(n ? n : 1), NULL);
    if (!seen) { zs_st_close(st); zs_zse_free(m); return zs__fail(ZS_ERR_NOMEM, "zs_zse_load: out of memory"); }
    memset(seen, 0, (size_t)(n ? n : 1));
    report[0] = 0;
#define ZS__REPORT(...) do { problems++; if (rn < sizeof report) rn += (size_t)snprintf(report + rn, sizeof report - rn, __VA_ARGS__); } while (0)
    for (i = 0; i < m->params.count; i++) {
        zs_tensor *p = &m->params.t[i];
        const zs_st_info *t = zs__st_find_any(st, p->name);
        int d, same;
        if (!t) { ZS__REPORT(" missing %s;", p->name); continue; }
        seen[t - zs_st_get(st, 0)] = 1;
        same = t->ndim == p->ndim;
        for (d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char a[96];
            ZS__REPORT(" %s has shape %s in the model but %d dims [%lld,...] in the file;", p->name, zs_shape_str(p, a, sizeof a),
                       t->ndim, t->ndim ? (long long)t->shape[0] : 0LL);
            continue;
        }
        if (t->type == ZS_TYPE_COUNT) { ZS__REPORT(" %s has unsupported dtype %s;", p->name, t->dtype); continue; }
        if (zs_st_read(st, t, p->data, ZS_F32, (size_t)zs_numel(p)) != ZS_OK) { ZS__REPORT(" %s: %s;", p->name, zs_last_error()); }
    }
    for (i = 0; i < n; i++) {
        const zs_st_info *t = zs_st_get(st, i);
        if (seen[i] || !strncmp(zs__strip_prefix(t->name), "ca.encoder.layers.", 18)) continue; /* unused copy (SPEC 6) */
        ZS__REPORT(" unexpected %s;", t->name);
    }
#undef ZS__REPORT
    zs__free(seen, NULL);
    zs_st_close(st);
    if (problems) {
        zs_zse_free(m);
        return zs__fail(ZS_ERR_FORMAT, "%s: %d tensor problem%s:%s", path, problems, problems > 1 ? "s" : "", report);
    }
    return ZS_OK;
}

ZS__FN int zs_zse_save(const zs_zse *m, const char *path, zs_type dtype) {
    zs_st_entry *e;
    void *conv = NULL;
    char cfg[1024];
    const char *meta[5];
    int i, rc;
    if (!m || !path) return zs__fail(ZS_ERR_ARG, "zs_zse_save: NULL argument");
    if (dtype != ZS_F32 && dtype != ZS_F16 && dtype != ZS_BF16) return zs__fail(ZS_ERR_ARG, "zs_zse_save: dtype must be f32, f16 or bf16");
    if ((rc = zs_zse_config_format(&m->cfg, cfg, sizeof cfg)) != ZS_OK) return rc;
    e = (zs_st_entry *)zs__malloc(sizeof(zs_st_entry) * (size_t)m->params.count, NULL);
    if (!e) return zs__fail(ZS_ERR_NOMEM, "zs_zse_save: out of memory");
    memset(e, 0, sizeof(zs_st_entry) * (size_t)m->params.count);
    if (dtype != ZS_F32) {
        conv = zs__malloc(m->params.numel * 2 + 2, NULL);
        if (!conv) { zs__free(e, NULL); return zs__fail(ZS_ERR_NOMEM, "zs_zse_save: out of memory"); }
        zs_convert(conv, dtype, m->params.data, ZS_F32, m->params.numel);
    }
    for (i = 0; i < m->params.count; i++) {
        const zs_tensor *t = &m->params.t[i];
        e[i].name = t->name;
        e[i].type = dtype;
        e[i].ndim = t->ndim;
        e[i].shape = t->shape;
        e[i].data = dtype == ZS_F32 ? t->data : (void *)((uint16_t *)conv + ((const float *)t->data - m->params.data));
    }
    meta[0] = "zsesbir.config"; meta[1] = cfg; meta[2] = "format"; meta[3] = "pt"; meta[4] = NULL;
    rc = zs_st_save(path, e, m->params.count, meta);
    zs__free(conv, NULL);
    zs__free(e, NULL);
    return rc;
}

/* ---- two-stage search ---------------------------------------------------- */

ZS__PRIV int zs__hit_by_dist(const void *a, const void *b) {
    const zs_hit *x = (const zs_hit *)a, *y = (const zs_hit *)b;
    if (x->ret_dist != y->ret_dist) return x->ret_dist < y->ret_dist ? -1 : 1;
    return x->index - y->index; /* stable ties */
}
ZS__PRIV int zs__hit_by_score(const void *a, const void *b) {
    const zs_hit *x = (const zs_hit *)a, *y = (const zs_hit *)b;
    if (x->rn_score != y->rn_score) return x->rn_score > y->rn_score ? -1 : 1;
    return zs__hit_by_dist(a, b);
}

ZS__FN int zs_zse_search(zs_ctx *ctx, zs_zse *m, const float *q, const float *qc, const float *g,
                         const float *const *gc, int n, int k, zs_hit *hits) {
    int i, j, D, rc;
    const float **sel;
    float *sc;
    if (!ctx || !m || !q || !g || !hits || n < 0) return zs__fail(ZS_ERR_ARG, "zs_zse_search: NULL argument");
    D = m->cfg.dim;
    for (i = 0; i < n; i++) {
        double d = 0;
        for (j = 0; j < D; j++) { double t = (double)q[j] - g[(size_t)i * D + j]; d += t * t; }
        hits[i].index = i;
        hits[i].ret_dist = (float)sqrt(d);
        hits[i].rn_score = NAN;
    }
    qsort(hits, (size_t)n, sizeof(zs_hit), zs__hit_by_dist);
    if (k > n) k = n;
    if (k <= 0) return ZS_OK;
    if (!qc || !gc) return zs__fail(ZS_ERR_ARG, "zs_zse_search: reranking needs the sketch and gallery caches");
    sel = (const float **)zs__malloc(sizeof(float *) * (size_t)k, NULL);
    sc = (float *)zs__malloc(sizeof(float) * (size_t)k, NULL);
    if (!sel || !sc) { zs__free(sel, NULL); zs__free(sc, NULL); return zs__fail(ZS_ERR_NOMEM, "zs_zse_search: out of memory"); }
    for (i = 0; i < k; i++) {
        sel[i] = gc[hits[i].index];
        if (!sel[i]) { zs__free(sel, NULL); zs__free(sc, NULL); return zs__fail(ZS_ERR_ARG, "zs_zse_search: cache of gallery item %d is NULL", hits[i].index); }
    }
    rc = zs_zse_score_cached(ctx, m, qc, sel, k, sc);
    if (rc == ZS_OK) {
        for (i = 0; i < k; i++) hits[i].rn_score = sc[i];
        qsort(hits, (size_t)k, sizeof(zs_hit), zs__hit_by_score);
    }
    zs__free(sel, NULL);
    zs__free(sc, NULL);
    return rc;
}
