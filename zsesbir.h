/* zsesbir.h - v0.1 - zero-shot sketch-based image retrieval in one C header.
   Public domain-style MIT licence at the end of this file.

   A person draws a sketch; zsesbir finds photos of the same thing, even for
   categories it never saw in training. This header holds a small deep-learning
   engine (tensors, reverse-mode autodiff, SIMD kernels, a thread pool,
   optimisers) on which the two published ZS-SBIR systems are built:
   ZSE-SBIR (Lin et al., CVPR 2023) and TCN (Wang et al., T-PAMI).

   Do this:
      #define ZSESBIR_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the
   implementation. Everywhere else include it without the define.

      #include ...
      #define ZSESBIR_IMPLEMENTATION
      #include "zsesbir.h"

   Dependencies: libc and libm. POSIX threads unless ZSESBIR_NO_THREADS.

   QUICK START (compiled by the test suite, see tests/test_readme.c)

      zs_ctx_params cp = zs_ctx_default_params();
      cp.n_threads = 2;
      zs_ctx *ctx = zs_ctx_create(&cp);            // NULL + zs_last_error()
      zs_tensor *x = zs_f32_2d(ctx, 4, 3);         // arena tensor [4,3]
      zs_tensor *w = zs_f32_2d(ctx, 5, 3);         // Linear weight [out,in]
      ... fill x->data, w->data ...
      zs_tensor *y = zs_relu(ctx, zs_linear(ctx, x, w, NULL));   // [4,5]
      if (!y) printf("error: %s\n", zs_last_error());
      zs_ctx_free(ctx);

   Every op computes eagerly. When gradients are enabled and an input requires
   them (a parameter, or a tensor marked with zs_requires_grad), the op is
   recorded on the context's tape; zs_backward(ctx, loss) walks the tape in
   reverse and ACCUMULATES into each input's grad. zs_ctx_reset() drops the
   tape and every arena tensor (parameters live outside the arena).

   OPTIONS (define before including the implementation)

      ZSESBIR_STATIC        all functions static (private to one file)
      ZS_MALLOC(sz,u) / ZS_FREE(p,u)
                            allocator; define both or neither. u is the
                            alloc_user pointer from zs_ctx_params / zs_params.
      ZS_ASSERT(x)          assert for PROGRAMMER errors only (default assert).
                            Bad input never asserts: it returns an error.
      ZSESBIR_NO_SIMD       scalar kernels only (no AVX2/FMA or NEON paths)
      ZSESBIR_NO_AVX512     keep the AVX2 GEMM micro-kernel even when the
                            compiler targets AVX-512 (-mavx512f, -march=native)
      ZSESBIR_NO_THREADS    no POSIX threads; everything runs on the caller
      ZS_MAX_THREADS        upper bound of the thread pool (default 64)
      ZSESBIR_STB_IMAGE     read PNG/JPEG/BMP and write PNG through stb_image.h /
                            stb_image_write.h (Debian: libstb-dev); without it
                            only PPM/PGM are read and PPM written
      ZSESBIR_STB_IMAGE_IMPLEMENTATION
                            also compile the stb implementations here (leave it
                            out if your program already has them)
      ZSESBIR_STB_AUTO      both of the above when the compiler finds
                            <stb_image.h> or <stb/stb_image.h> (__has_include),
                            PPM/PGM only otherwise: what the examples and tests use

   TABLE OF CONTENTS (search for the banner text)
      API
        [api:base]       status codes, errors, types, half precision
        [api:ctx]        context, arena marks, training/grad modes
        [api:tensor]     tensors, views, parameters
        [api:ops]        differentiable ops
        [api:autodiff]   backward
        [api:optim]      SGD, Adam, AdamW
        [api:io]         safetensors and .npy files
        [api:pth]        PyTorch checkpoints (torch.save zip) read as safetensors
        [api:zse]        ZSE-SBIR model: config, weights, forward, training,
                         retrieval (embed, cached RN scoring, two-stage search)
        [api:tcn]        TCN model (SPEC 2): torchvision ResNets, coupled
                         encoders, hash/KD heads, losses, training step,
                         word vectors, paired augmentation
        [api:linalg]     eigh, thin SVD, TCN head init (SPEC 2.1), ITQ and
                         Hamming distances (SPEC 2.3)
        [api:data]       retrieval metrics (SPEC 4), list files, datasets, sampler
        [api:image]      images (PPM/PGM; PNG/JPEG/BMP with ZSESBIR_STB_IMAGE),
                         PIL/OpenCV-exact resizing, pre-processing (SPEC 3)
        [api:quickdraw]  Quick, Draw! .ndjson reader, anti-aliased stroke
                         rasteriser into zs_image (sketch queries)
        [api:index]      photo index files (.zsi; ZSE-SBIR or TCN, ITQ codes),
                         contact sheets
        [api:explain]    token correspondences (anchor / patch cosine maps, CA and
                         SA attention, regions), pictures, sketch-to-photo synthesis
      IMPLEMENTATION
        [impl:platform]  includes, TLS, allocator, SIMD vector macros
        [impl:errors]    thread-local last error
        [impl:half]      f16 / bf16 conversion
        [impl:arena]     chunked bump allocator with marks
        [impl:pool]      persistent thread pool
        [impl:rng]       counter-based random numbers
        [impl:ctx]       context
        [impl:tensor]    tensor creation, views, parameters
        [impl:tape]      op recording and the backward driver
        [impl:gemm]      SGEMM kernels (scalar reference, AVX2, NEON)
        [impl:vmath]     vectorised exp, softmax rows
        [impl:views]     reshape, transpose, slice, concat, gather, matmul
        [impl:elem]      elementwise, reductions, activations, norms
        [impl:attn]      fused multi-head attention kernels
        [impl:conv]      conv2d, pooling, batch norm
        [impl:loss]      distances and losses
        [impl:optim]     optimisers
        [impl:io]        safetensors (JSON header parser) and .npy
        [impl:pth]       zip reader, restricted unpickler, safetensors image
        [impl:zse]       ZSE-SBIR model
        [impl:tcn]       TCN model
        [impl:linalg]    Householder+QL eigh, Jacobi SVD, double GEMM, ITQ, popcount
        [impl:data]      metrics, list files, datasets, sampler
        [impl:image]     image files, resizing, pre-processing
        [impl:quickdraw] ndjson reader, stroke rasteriser
        [impl:index]     photo index files, contact sheets
        [impl:explain]   explanation maps, integer-only drawing, 5x7 font, synthesis
      LICENCE
*/
/* ZSESBIR_STB_AUTO: stb_image when its header is there (outside the include
   guard: the implementation include decides about the stb implementation) */
#if defined(ZSESBIR_STB_AUTO) && !defined(ZSESBIR_STB_IMAGE) && defined(__has_include)
#if __has_include(<stb_image.h>) || __has_include(<stb/stb_image.h>)
#define ZSESBIR_STB_IMAGE
#endif
#endif
#if defined(ZSESBIR_STB_AUTO) && defined(ZSESBIR_STB_IMAGE) && defined(ZSESBIR_IMPLEMENTATION) && \
    !defined(ZSESBIR_STB_IMAGE_IMPLEMENTATION)
#define ZSESBIR_STB_IMAGE_IMPLEMENTATION
#endif
#ifndef ZSESBIR_H
#define ZSESBIR_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define ZS__MAYBE_UNUSED __attribute__((unused))
#else
#define ZS__MAYBE_UNUSED
#endif

#ifdef ZSESBIR_STATIC
#define ZSDEF static ZS__MAYBE_UNUSED
#else
#define ZSDEF extern
#endif

#define ZSESBIR_VERSION_MAJOR 0
#define ZSESBIR_VERSION_MINOR 1

#ifdef __cplusplus
extern "C" {
#endif

/* ==================================================================== */
/* [api:base] status codes, errors, types                               */
/* ==================================================================== */

typedef enum zs_status {
    ZS_OK = 0,
    ZS_ERR_ARG = -1,         /* invalid argument (NULL, out of range) */
    ZS_ERR_SHAPE = -2,       /* shapes do not fit; message names them */
    ZS_ERR_NOMEM = -3,       /* allocation failed or arena exhausted */
    ZS_ERR_IO = -4,          /* file could not be read or written */
    ZS_ERR_FORMAT = -5,      /* corrupt or unsupported file contents */
    ZS_ERR_UNSUPPORTED = -6, /* valid request this build cannot serve */
    ZS_ERR_STATE = -7        /* call out of order (e.g. earlier op failed) */
} zs_status;

/* Why the last failing call on THIS thread failed ("" if none). */
ZSDEF const char *zs_last_error(void);
ZSDEF const char *zs_status_str(int status);

typedef enum zs_type { ZS_F32 = 0, ZS_F16 = 1, ZS_BF16 = 2, ZS_I32 = 3, ZS_TYPE_COUNT } zs_type;
ZSDEF size_t zs_type_size(zs_type t);
ZSDEF const char *zs_type_name(zs_type t);

/* Half precision, round to nearest even; NaN and Inf preserved. */
ZSDEF uint16_t zs_f32_to_f16(float f);
ZSDEF float zs_f16_to_f32(uint16_t h);
ZSDEF uint16_t zs_f32_to_bf16(float f);
ZSDEF float zs_bf16_to_f32(uint16_t h);
/* Convert n values between storage types (f32, f16, bf16). */
ZSDEF int zs_convert(void *dst, zs_type dst_type, const void *src, zs_type src_type, size_t n);

/* ==================================================================== */
/* [api:ctx] context                                                    */
/* ==================================================================== */

typedef struct zs_ctx zs_ctx;
typedef struct zs_tensor zs_tensor;

typedef struct zs_ctx_params {
    size_t arena_bytes;  /* size of each arena chunk (default 64 MiB); the arena
                            grows by chunks, reused after zs_ctx_reset */
    void *arena_buffer;  /* optional caller memory: the arena then never mallocs */
    size_t arena_buffer_bytes;
    int n_threads;       /* thread pool size, >= 1 (default 1) */
    uint64_t seed;       /* RNG seed (dropout, init helpers) */
    void *alloc_user;    /* passed to ZS_MALLOC / ZS_FREE */
} zs_ctx_params;

ZSDEF zs_ctx_params zs_ctx_default_params(void);
ZSDEF zs_ctx *zs_ctx_create(const zs_ctx_params *p);   /* NULL on failure */
ZSDEF void zs_ctx_free(zs_ctx *ctx);
/* Drops the tape and every arena tensor. Parameters are not touched. */
ZSDEF void zs_ctx_reset(zs_ctx *ctx);
/* Sticky status: the first error of an op since the last reset (ZS_OK if none). */
ZSDEF int zs_ctx_status(const zs_ctx *ctx);
ZSDEF int zs_ctx_threads(const zs_ctx *ctx);
ZSDEF int zs_ctx_set_threads(zs_ctx *ctx, int n_threads);
/* Runs fn(user, i) once for every i in [0, n) on the context's threads (in
   no fixed order; returns when all are done), e.g. to decode a batch of images
   while the model waits. fn must be thread-safe and must not use ctx; the
   last-error string is per thread, so fn copies it where the caller needs it.
   NULL ctx or one thread: a plain loop. */
ZSDEF void zs_ctx_parallel_for(zs_ctx *ctx, int64_t n, void (*fn)(void *user, int64_t i), void *user);
/* Training mode turns on dropout and batch-norm batch statistics. Returns old. */
ZSDEF int zs_set_training(zs_ctx *ctx, int on);
/* With gradients disabled nothing is recorded (inference). Returns old. */
ZSDEF int zs_set_grad_enabled(zs_ctx *ctx, int on);
ZSDEF void zs_ctx_seed(zs_ctx *ctx, uint64_t seed);
/* Uniform [0,1) and standard normal numbers from the context's generator. */
ZSDEF float zs_rand_uniform(zs_ctx *ctx);
ZSDEF float zs_rand_normal(zs_ctx *ctx);
/* Bytes the arena holds now / at most since creation. */
ZSDEF size_t zs_ctx_arena_used(const zs_ctx *ctx);
ZSDEF size_t zs_ctx_arena_peak(const zs_ctx *ctx);

/* Arena marks: everything allocated (and recorded) after a mark is dropped by
   zs_ctx_release. Use around inference blocks to bound memory. */
typedef struct zs_mark { void *chunk; size_t used; zs_tensor *tape; } zs_mark;
ZSDEF zs_mark zs_ctx_mark(const zs_ctx *ctx);
ZSDEF void zs_ctx_release(zs_ctx *ctx, zs_mark m);

/* ==================================================================== */
/* [api:tensor] tensors, views, parameters                              */
/* ==================================================================== */

#define ZS_MAX_DIMS 4

enum {
    ZS_FLAG_REQUIRES_GRAD = 1u << 0, /* gradients flow into this tensor */
    ZS_FLAG_PARAM = 1u << 1,         /* lives in a zs_params store */
    ZS_FLAG_FROZEN = 1u << 2,        /* parameter excluded from training */
    ZS_FLAG_ON_TAPE = 1u << 3        /* recorded op output */
};

typedef int (*zs_backward_fn)(zs_ctx *ctx, zs_tensor *out);

/* Shapes are PyTorch order: shape[ndim-1] varies fastest. Strides are in
   ELEMENTS. ndim 0 is a scalar (numel 1). grad, when present, is contiguous
   float32 with the tensor's shape. */
struct zs_tensor {
    zs_type type;
    int ndim;
    int64_t shape[ZS_MAX_DIMS];
    int64_t stride[ZS_MAX_DIMS];
    void *data;              /* first element */
    float *grad;             /* NULL until a gradient arrives */
    unsigned flags;
    const char *op;          /* name of the op that made it, NULL for leaves */
    zs_backward_fn backward; /* NULL for leaves */
    zs_tensor *src[4];       /* op inputs */
    zs_tensor *tape_prev;    /* previous recorded tensor */
    void *saved;             /* op-private state kept for backward */
    int64_t ip[8];           /* op integer parameters */
    float fp[4];             /* op float parameters */
    char name[96];
};

ZSDEF int64_t zs_numel(const zs_tensor *t);
ZSDEF int zs_is_contiguous(const zs_tensor *t);
/* "[2,197,768]" into buf; returns buf. */
ZSDEF const char *zs_shape_str(const zs_tensor *t, char *buf, size_t cap);
ZSDEF void zs_tensor_set_name(zs_tensor *t, const char *name);

/* New arena tensors (contiguous, uninitialised; _zeros zeroed). */
ZSDEF zs_tensor *zs_tensor_new(zs_ctx *ctx, zs_type type, int ndim, const int64_t *shape);
ZSDEF zs_tensor *zs_zeros(zs_ctx *ctx, int ndim, const int64_t *shape);
ZSDEF zs_tensor *zs_f32_1d(zs_ctx *ctx, int64_t n0);
ZSDEF zs_tensor *zs_f32_2d(zs_ctx *ctx, int64_t n0, int64_t n1);
ZSDEF zs_tensor *zs_f32_3d(zs_ctx *ctx, int64_t n0, int64_t n1, int64_t n2);
ZSDEF zs_tensor *zs_f32_4d(zs_ctx *ctx, int64_t n0, int64_t n1, int64_t n2, int64_t n3);
/* Arena copy of caller data (f32) with the given shape. */
ZSDEF zs_tensor *zs_from_data(zs_ctx *ctx, const float *data, int ndim, const int64_t *shape);
/* Fill a header that points at caller memory (contiguous, no copy). */
ZSDEF int zs_tensor_wrap(zs_tensor *t, zs_type type, int ndim, const int64_t *shape, void *data);
/* Mark an arena tensor as a gradient leaf (e.g. an input you want d/dx of). */
ZSDEF void zs_requires_grad(zs_tensor *t);
ZSDEF void zs_tensor_fill(zs_tensor *t, float v);
ZSDEF void zs_tensor_fill_normal(zs_ctx *ctx, zs_tensor *t, float mean, float std);
ZSDEF void zs_tensor_fill_uniform(zs_ctx *ctx, zs_tensor *t, float lo, float hi);
/* Element i (logical row-major index) as float, honouring strides and type. */
ZSDEF float zs_get(const zs_tensor *t, int64_t i);
/* Copy src (any strides, f32/f16/bf16) into contiguous dst memory of dst_type. */
ZSDEF int zs_tensor_copy_out(void *dst, zs_type dst_type, const zs_tensor *src);

/* Parameter store: every parameter tensor of a model in ONE data allocation and
   ONE gradient allocation (llm.c style). Add all tensors, then allocate. */
typedef struct zs_params {
    int count, cap;
    zs_tensor *t;       /* headers; stable after zs_params_alloc */
    float *data;        /* all parameters, in order of zs_params_add */
    float *grad;        /* mirrors data */
    size_t numel;
    void *alloc_user;
} zs_params;

ZSDEF void zs_params_init(zs_params *p, void *alloc_user);
/* Returns the index of the new tensor, or -1 (error set). */
ZSDEF int zs_params_add(zs_params *p, const char *name, int ndim, const int64_t *shape);
/* zs_params_alloc: data and gradients (training), both zeroed.
   zs_params_alloc_data: data only (inference: half the memory); the tensors
   then require no gradient until zs_params_alloc_grad adds the buffers. */
ZSDEF int zs_params_alloc(zs_params *p);
ZSDEF int zs_params_alloc_data(zs_params *p);
ZSDEF int zs_params_alloc_grad(zs_params *p);
ZSDEF zs_tensor *zs_params_find(zs_params *p, const char *name);
ZSDEF void zs_params_zero_grad(zs_params *p);
ZSDEF void zs_params_free(zs_params *p);
ZSDEF void zs_param_set_frozen(zs_tensor *t, int frozen);

/* ==================================================================== */
/* [api:ops] differentiable ops                                         */
/* ==================================================================== */
/* All ops take float32 inputs, return a new tensor or NULL (zs_last_error()
   says why; a NULL input makes the op return NULL silently so a chain can be
   checked once at the end). Shape comments use PyTorch order. */

/* -- views and data movement -- */
ZSDEF zs_tensor *zs_reshape(zs_ctx *ctx, zs_tensor *a, int ndim, const int64_t *shape); /* one -1 allowed */
ZSDEF zs_tensor *zs_reshape2(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1);
ZSDEF zs_tensor *zs_reshape3(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1, int64_t n2);
ZSDEF zs_tensor *zs_reshape4(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1, int64_t n2, int64_t n3);
ZSDEF zs_tensor *zs_transpose(zs_ctx *ctx, zs_tensor *a, int d0, int d1);   /* view */
ZSDEF zs_tensor *zs_slice(zs_ctx *ctx, zs_tensor *a, int dim, int64_t start, int64_t end); /* view */
ZSDEF zs_tensor *zs_contiguous(zs_ctx *ctx, zs_tensor *a);
ZSDEF zs_tensor *zs_concat(zs_ctx *ctx, zs_tensor *const *xs, int n, int dim);
/* out[i] = a[idx[i]] along dim 0 (indices copied; checked against a->shape[0]). */
ZSDEF zs_tensor *zs_gather(zs_ctx *ctx, zs_tensor *a, const int32_t *idx, int64_t n);
/* Storage conversion f32/f16/bf16 -> contiguous f32 copy (not differentiable
   unless the input is f32). */
ZSDEF zs_tensor *zs_to_f32(zs_ctx *ctx, zs_tensor *a);

/* -- linear algebra -- */
/* a [.., M, K] (or [.., K, M] if ta), b [.., K, N] (or [.., N, K] if tb) ->
   [.., M, N]. Batch dims must match, or b may be 2-D (shared). */
ZSDEF zs_tensor *zs_matmul(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, int ta, int tb);
/* x [.., in] @ w[out, in]^T + b[out] -> [.., out]; b may be NULL. */
ZSDEF zs_tensor *zs_linear(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b);

/* -- elementwise with numpy broadcasting (right-aligned, up to 4 dims) -- */
ZSDEF zs_tensor *zs_add(zs_ctx *ctx, zs_tensor *a, zs_tensor *b);
ZSDEF zs_tensor *zs_sub(zs_ctx *ctx, zs_tensor *a, zs_tensor *b);
ZSDEF zs_tensor *zs_mul(zs_ctx *ctx, zs_tensor *a, zs_tensor *b);
ZSDEF zs_tensor *zs_scale(zs_ctx *ctx, zs_tensor *a, float s);
ZSDEF zs_tensor *zs_add_scalar(zs_ctx *ctx, zs_tensor *a, float s);
ZSDEF zs_tensor *zs_sum(zs_ctx *ctx, zs_tensor *a);             /* -> scalar */
ZSDEF zs_tensor *zs_mean(zs_ctx *ctx, zs_tensor *a);            /* -> scalar */
ZSDEF zs_tensor *zs_sum_dim(zs_ctx *ctx, zs_tensor *a, int dim); /* removes dim */
ZSDEF zs_tensor *zs_mean_dim(zs_ctx *ctx, zs_tensor *a, int dim);

/* -- activations and normalisation (over the LAST dim where it matters) -- */
ZSDEF zs_tensor *zs_relu(zs_ctx *ctx, zs_tensor *a);
ZSDEF zs_tensor *zs_gelu(zs_ctx *ctx, zs_tensor *a);     /* exact erf form */
ZSDEF zs_tensor *zs_sigmoid(zs_ctx *ctx, zs_tensor *a);
ZSDEF zs_tensor *zs_softplus(zs_ctx *ctx, zs_tensor *a); /* log(1+e^x), torch threshold 20 */
/* Inverted dropout: identity unless training and p > 0. */
ZSDEF zs_tensor *zs_dropout(zs_ctx *ctx, zs_tensor *a, float p);
ZSDEF zs_tensor *zs_softmax(zs_ctx *ctx, zs_tensor *a);
ZSDEF zs_tensor *zs_log_softmax(zs_ctx *ctx, zs_tensor *a);
/* Standard LayerNorm: (x-mean)/sqrt(var_biased+eps)*w+b; w, b may be NULL. */
ZSDEF zs_tensor *zs_layer_norm(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b, float eps);
/* SPEC 1.3 quirk: a*(x-mean)/(std_unbiased+eps)+b. */
ZSDEF zs_tensor *zs_layer_norm_unbiased(zs_ctx *ctx, zs_tensor *x, zs_tensor *a, zs_tensor *b, float eps);
/* x / max(|x|_2, eps) along the last dim (torch.nn.functional.normalize). */
ZSDEF zs_tensor *zs_l2_normalize(zs_ctx *ctx, zs_tensor *x, float eps);

/* -- convolution, pooling, batch norm -- */
/* x [B,C,H,W], w [O,C,KH,KW], b [O] or NULL -> [B,O,OH,OW] */
ZSDEF zs_tensor *zs_conv2d(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b,
                           int stride_h, int stride_w, int pad_h, int pad_w);
ZSDEF zs_tensor *zs_max_pool2d(zs_ctx *ctx, zs_tensor *x, int k, int stride, int pad);
ZSDEF zs_tensor *zs_avg_pool_global(zs_ctx *ctx, zs_tensor *x); /* [B,C,H,W] -> [B,C] */
/* x [B,C] or [B,C,H,W]. Training: batch statistics, running stats updated
   (torch momentum semantics, unbiased variance); eval: running stats.
   w, b may be NULL (no affine). */
ZSDEF zs_tensor *zs_batch_norm(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b,
                               zs_tensor *running_mean, zs_tensor *running_var,
                               float momentum, float eps);

/* -- attention -- */
/* q [B,Tq,H*dh], k [B,Tk,H*dh], v [B,Tk,H*dh] -> [B,Tq,H*dh]:
   per head softmax(q k^T * scale) v. dropout_p applies to the probabilities
   in training. Only one head's score matrix is materialised at a time;
   backward recomputes it. */
ZSDEF zs_tensor *zs_attention(zs_ctx *ctx, zs_tensor *q, zs_tensor *k, zs_tensor *v,
                              int heads, float scale, float dropout_p);
/* Same, and (if not NULL) writes the head-mean attention of query 0 over the
   keys, cls_attn [B,Tk], and/or all probabilities probs [B,H,Tq,Tk]. */
ZSDEF zs_tensor *zs_attention_ex(zs_ctx *ctx, zs_tensor *q, zs_tensor *k, zs_tensor *v,
                                 int heads, float scale, float dropout_p,
                                 float *cls_attn, float *probs);

/* -- distances and losses -- */
/* a [.., M, D], b [.., N, D] -> [.., M, N] cosine similarities, NaN -> 0. */
ZSDEF zs_tensor *zs_cosine_matrix(zs_ctx *ctx, zs_tensor *a, zs_tensor *b);
/* a [M,D], b [N,D] -> [M,N] sqrt(|a_i - b_j|^2 + eps). */
ZSDEF zs_tensor *zs_pairwise_dist(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, float eps);
/* a [B,D], b [B,D] -> [B] |a_i - b_i + eps|_2 (torch.pairwise_distance). */
ZSDEF zs_tensor *zs_row_dist(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, float eps);
ZSDEF zs_tensor *zs_frobenius(zs_ctx *ctx, zs_tensor *a);       /* sqrt(sum a^2) */
ZSDEF zs_tensor *zs_mse_loss(zs_ctx *ctx, zs_tensor *a, zs_tensor *target); /* mean */
/* mean(max(0, d(a,p) - d(a,n) + margin)), d = zs_row_dist with eps. */
ZSDEF zs_tensor *zs_triplet_loss(zs_ctx *ctx, zs_tensor *anchor, zs_tensor *pos,
                                 zs_tensor *neg, float margin, float eps);
/* logits [B,C], labels[B] in [0,C) -> mean over B. */
ZSDEF zs_tensor *zs_cross_entropy(zs_ctx *ctx, zs_tensor *logits, const int32_t *labels);
/* -sum(target * log_softmax(logits)) / B; target [B,C]. */
ZSDEF zs_tensor *zs_soft_cross_entropy(zs_ctx *ctx, zs_tensor *logits, zs_tensor *target);

/* ==================================================================== */
/* [api:autodiff] backward                                              */
/* ==================================================================== */

/* d(loss)/d(every recorded input) accumulated into ->grad. loss must have one
   element. Intermediate gradients are dropped afterwards, so calling it twice
   accumulates twice into leaves (like retain_graph=True). */
ZSDEF int zs_backward(zs_ctx *ctx, zs_tensor *loss);

/* Activation checkpointing: y = fn(ctx, user, x) is computed without keeping
   its intermediates; backward recomputes them (one extra forward of fn) and
   releases them again, so a deep network's training memory holds only the
   checkpointed tensors. The RNG is replayed, so dropout masks repeat exactly.
   fn must be a pure function of x, the parameters and the RNG; side effects
   (batch-norm running statistics) happen again on recompute. user must stay
   valid until backward. Without gradients this is simply fn(ctx, user, x). */
typedef zs_tensor *(*zs_checkpoint_fn)(zs_ctx *ctx, void *user, zs_tensor *x);
ZSDEF zs_tensor *zs_checkpoint(zs_ctx *ctx, zs_checkpoint_fn fn, void *user, zs_tensor *x);

/* ==================================================================== */
/* [api:optim] optimisers                                               */
/* ==================================================================== */

typedef enum zs_optim_kind { ZS_OPTIM_SGD = 0, ZS_OPTIM_ADAM, ZS_OPTIM_ADAMW } zs_optim_kind;

typedef struct zs_optim_params {
    zs_optim_kind kind;
    float lr;
    float momentum;     /* SGD */
    float beta1, beta2, eps; /* Adam/AdamW */
    float weight_decay; /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
} zs_optim_params;

typedef struct zs_optim zs_optim;

/* Defaults follow torch.optim for the kind (Adam/AdamW lr 1e-3, betas
   0.9/0.999, eps 1e-8; AdamW weight decay 1e-2). */
ZSDEF zs_optim_params zs_optim_default_params(zs_optim_kind kind);
/* Optimises every non-frozen tensor of the store. group[i] (may be NULL)
   puts parameter i in a group whose learning rate is set separately. */
ZSDEF zs_optim *zs_optim_create(const zs_optim_params *p, zs_params *params, const int *group);
ZSDEF void zs_optim_free(zs_optim *o);
ZSDEF int zs_optim_set_lr(zs_optim *o, int group, float lr); /* group -1: all */
ZSDEF int zs_optim_step(zs_optim *o);
/* The same step on ctx's threads (bit-identical to zs_optim_step for any
   thread count); ctx may be NULL. */
ZSDEF int zs_optim_step_ctx(zs_optim *o, zs_ctx *ctx);
ZSDEF int64_t zs_optim_steps(const zs_optim *o);
/* Optimiser state (moments, per-parameter step counts, step total) to and
   from a safetensors file, for resuming training: load requires an
   optimiser of the same kind over a store of the same layout. */
ZSDEF int zs_optim_save(const zs_optim *o, const char *path);
ZSDEF int zs_optim_load(zs_optim *o, const char *path);

/* ==================================================================== */
/* [api:io] safetensors and .npy files                                  */
/* ==================================================================== */
/* Safetensors and .npy readers and writers.

   Files are untrusted. Every size, offset and count read from a file is
   checked with overflow-safe arithmetic against the real file size BEFORE
   anything is allocated; header text is capped (safetensors 100,000,000
   bytes like the reference implementation, npy 65,536 bytes). Failures return
   ZS_ERR_IO (cannot open/read/write), ZS_ERR_FORMAT (corrupt or unsupported
   contents), ZS_ERR_ARG (bad call) or ZS_ERR_UNSUPPORTED (e.g. reading I64
   data as floats), and zs_last_error() names the file and the problem.
   Nothing here exits, aborts or asserts on file contents. */


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

/* ==================================================================== */
/* [api:pth] PyTorch checkpoints (torch.save zip format)                */
/* ==================================================================== */
/* Reads the files torch.save writes since PyTorch 1.6 (a zip archive with
   <archive>/data.pkl, <archive>/data/<key> per storage, <archive>/version and
   in newer releases <archive>/byteorder) WITHOUT running Python's pickle:
   data.pkl is interpreted by a small restricted unpickler that can only build
   dicts, OrderedDicts, lists, tuples, numbers, strings, None, numpy scalars
   and tensors (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over
   persistent-id storages). Any other global (os.system, builtins.eval, model
   classes, ...) is refused with ZS_ERR_FORMAT and the error names it.

   The result is converted in memory into a safetensors image and opened as a
   zs_safetensors handle, so everything that reads through zs_safetensors
   works unchanged. Names:
     - nested dicts, lists and tuples are flattened with '.' ("enc.layers.0");
       a leading "module." (DataParallel) is stripped from every dict key;
     - {'model' (or 'state_dict'): sd, 'epoch': ..., 'map_all': ...}
       (ZSE-SBIR, SPEC 6): tensors keep their state-dict names;
     - {'sketch_state_dict', 'image_state_dict', 'fc_state_dict'} (TCN):
       names prefixed "sketch.", "image.", "fc.";
     - scalars (int, float, str, bool, None, numpy scalars) become __metadata__
       entries ("epoch" = "12", "map_all" = "0.5"; floats as Python's repr).
       With one of the two wrappers, other top-level containers (optimizer
       state, ...) are skipped and listed in metadata "pth.skipped".
   dtypes are kept (F32, F16, BF16, I64, I32, I16, I8, U8, BOOL) except F64,
   which becomes F32. Non-contiguous tensors are made contiguous; views that
   share one storage each get their own copy.

   Files are untrusted: every zip size and offset is checked against the real
   file size (ZIP64 included), the central directory against the local
   headers, storages against their declared sizes, tensor extents against
   their storage, and the unpickler has limits (below) against memory and
   recursion bombs; the converted tensors may not exceed 4x the file size
   (repeated or stride-0 views). Only data.pkl (and the zip directory, at
   most 64 MiB) is read whole; tensor data goes from the file straight into
   the image, which the handle then holds in memory (peak: the image plus
   one storage span while a non-contiguous tensor is gathered). Deflated
   entries (torch never writes them; a re-zipped file may have them) fail
   with ZS_ERR_UNSUPPORTED, as do pre-1.6 legacy files and big-endian
   archives. Checkpoints that pickle other Python objects (argparse
   Namespace, torch.device, numpy arrays, whole nn.Modules) are refused. */


/* Limits of the unpickler (override before including the implementation). */
#ifndef ZS_PTH_MAX_PICKLE
#define ZS_PTH_MAX_PICKLE (256u << 20) /* bytes of data.pkl */
#endif
#ifndef ZS_PTH_MAX_OBJECTS
#define ZS_PTH_MAX_OBJECTS (1 << 21)   /* values + container items built */
#endif
#ifndef ZS_PTH_MAX_TENSORS
#define ZS_PTH_MAX_TENSORS (1 << 18)
#endif
#ifndef ZS_PTH_MAX_STACK
#define ZS_PTH_MAX_STACK (1 << 20)     /* unpickler stack entries */
#endif
#ifndef ZS_PTH_MAX_MARKS
#define ZS_PTH_MAX_MARKS 256           /* nested MARKs */
#endif
#ifndef ZS_PTH_MAX_MEMO
#define ZS_PTH_MAX_MEMO (1 << 21)      /* memo keys */
#endif
#ifndef ZS_PTH_MAX_STRING
#define ZS_PTH_MAX_STRING (16u << 20)  /* bytes of one string */
#endif
#ifndef ZS_PTH_MAX_DEPTH
#define ZS_PTH_MAX_DEPTH 64            /* container nesting when flattening */
#endif

/* Open a torch.save checkpoint as safetensors. NULL + zs_last_error(). */
ZSDEF zs_safetensors *zs_pth_open(const char *path);
/* Same over a whole file in caller memory (not needed after the call). */
ZSDEF zs_safetensors *zs_pth_open_memory(const void *buf, size_t n);
/* 1 if the file starts with a zip signature (torch.save >= 1.6), 0 if not,
   < 0 (ZS_ERR_IO) if it cannot be read. */
ZSDEF int zs_is_pth_file(const char *path);
/* .pth (zip, or legacy for its error message) or safetensors, by content. */
ZSDEF zs_safetensors *zs_weights_open(const char *path);
/* Convert a checkpoint into a safetensors file (the image zs_pth_open reads). */
ZSDEF int zs_pth_convert(const char *pth_path, const char *safetensors_path);

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
    int checkpoint;                  /* training: recompute each SA block in backward
                                        (activation checkpointing, zs_checkpoint) to
                                        keep only block inputs; costs one more forward */
} zs_zse;

typedef struct zs_zse_losses { float triplet, rn, total; } zs_zse_losses;

/* Released defaults (SPEC 1). */
ZSDEF zs_zse_config zs_zse_config_default(void);
/* A small config that trains on a CPU: 112 px, d 192, depth 4, 3 heads, MLP 768. */
ZSDEF zs_zse_config zs_zse_config_small(void);
/* A tiny config for tests and smoke runs: 64 px, d 32, depth 2. */
ZSDEF zs_zse_config zs_zse_config_tiny(void);
/* "default" | "small" | "tiny" -> *out; ZS_ERR_ARG naming the choices. */
ZSDEF int zs_zse_config_named(const char *name, zs_zse_config *out);
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
/* ret distance (SPEC 1.6) of two raw ret tokens a, b [d]: Euclidean distance of
   a/max(|a|,1e-12) and b/max(|b|,1e-12), in double */
ZSDEF double zs_zse_ret_distance(const float *a, const float *b, int d);

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
/* Weights. Load a safetensors file, or a torch.save checkpoint such as the
   released {'model': state_dict, 'epoch', ...} (via zs_weights_open), whose
   tensors carry the released state-dict names (SPEC 6), optionally under a
   "module." prefix;
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
   hits[n] receives the full ranking; items not reranked have rn_score -1. */
typedef struct zs_hit { int index; float ret_dist; float rn_score; } zs_hit;
ZSDEF int zs_zse_search(zs_ctx *ctx, zs_zse *m, const float *sketch_emb, const float *sketch_cache,
                        const float *gallery_emb, const float *const *gallery_caches, int n, int rerank_k,
                        zs_hit *hits);

/* ==================================================================== */
/* [api:tcn] ResNet backbones and the TCN model (SPEC section 2)        */
/* ==================================================================== */
/* ResNet (torchvision layout and parameter names) built on the engine ops
   (zs_conv2d, zs_batch_norm, zs_max_pool2d, zs_avg_pool_global, zs_linear),
   and TCN (Wang et al.): two coupled ResNet encoders (sketch, photo) with
   their own conv weights and batch norms, a shared hashing head, a
   classifier, a distillation head and the released losses.

   Names follow torchvision and the released TCN code:
     conv1.weight  bn1.{weight,bias,running_mean,running_var}
     layer{1..4}.{i}.conv{1,2[,3]}.weight  layer{s}.{i}.bn{1,2[,3]}.*
     layer{s}.{i}.downsample.0.weight  layer{s}.{i}.downsample.1.*   fc.{weight,bias}
   In a TCN store every encoder tensor carries "sketch." or "image.", the
   heads "fc." (fc.fc_hash.0, fc.fc_hash.1 (BatchNorm1d) or fc.bn (MSSBN),
   fc.fc_cls, fc.fc_kd) and the semantic projection "sbh.fc" (Linear
   300 -> D of the release's SemanticBatchHard; not part of the released
   checkpoint's fc_state_dict). Loaders drop "module." components (the
   DataParallel wrapper) anywhere in a name and ignore num_batches_tracked*
   (PyTorch uses it only when momentum is None, never here).

   Batch norm: torchvision momentum 0.1, eps 1e-5; training mode (ctx) uses
   batch statistics and updates the running ones in place, eval mode the
   running ones. Running statistics are parameters flagged ZS_FLAG_FROZEN:
   optimisers skip them.

   Memory: without a tape (inference, or a frozen teacher) each residual
   block's intermediates are released as soon as its output is copied out,
   so the arena holds only block outputs. */


#define ZS_RESNET_BN_MOMENTUM 0.1f
#define ZS_RESNET_BN_EPS 1e-5f
#define ZS_RESNET_MAX_BLOCKS 64 /* per stage */

typedef struct zs_resnet_config {
    int bottleneck;    /* 1: Bottleneck (1x1, 3x3 with the stride, 1x1; expansion 4);
                          0: BasicBlock (3x3 with the stride, 3x3; expansion 1) */
    int layers[4];     /* blocks per stage: ResNet-50 {3,4,6,3} */
    int stem;          /* conv1 output channels (64) */
    int planes[4];     /* stage widths (64,128,256,512); stage output planes*expansion */
    int num_classes;   /* fc outputs (1000); 0 = no fc (a TCN encoder) */
} zs_resnet_config;

typedef struct zs_resnet_bn { zs_tensor *w, *b, *mean, *var; } zs_resnet_bn;

typedef struct zs_resnet_block {
    zs_tensor *conv[3];      /* conv1..conv3 weights (conv[2] NULL for BasicBlock) */
    zs_resnet_bn bn[3];
    zs_tensor *down;         /* downsample.0.weight [out,in,1,1] or NULL */
    zs_resnet_bn down_bn;    /* downsample.1 */
    int stride;
} zs_resnet_block;

typedef struct zs_resnet {
    zs_resnet_config cfg;
    zs_params params;        /* owned by a standalone net; empty for TCN encoders
                                (their tensors live in the zs_tcn store) */
    zs_tensor *conv1;
    zs_resnet_bn bn1;
    zs_resnet_block *blocks; /* stage-major, n_blocks = sum(layers) */
    int n_blocks;
    zs_tensor *fc_w, *fc_b;  /* NULL without fc */
    int checkpoint;          /* training: recompute each residual block in backward
                                (zs_checkpoint) to keep only block outputs; costs one
                                more forward; running statistics still move once */
} zs_resnet;

/* "resnet18", "resnet34", "resnet50" (torchvision, 1000 classes) or "tiny"
   (Bottleneck, stem 8, planes 4,4,8,8, layers 1,2,1,1, 10 classes: tests). */
ZSDEF int zs_resnet_config_named(zs_resnet_config *c, const char *name);
ZSDEF int zs_resnet_config_check(const zs_resnet_config *c);
/* Pooled feature width: planes[3] * expansion (2048 for ResNet-50). */
ZSDEF int zs_resnet_feature_dim(const zs_resnet_config *c);
/* Standalone net (e.g. the frozen KD teacher) with torchvision's random
   initialisation from seed (Kaiming-normal fan_out convs, BN 1/0, fc
   uniform +-1/sqrt(in)). with_grad 0: data only (inference). */
ZSDEF int zs_resnet_init(zs_resnet *r, const zs_resnet_config *c, int with_grad, uint64_t seed);
ZSDEF void zs_resnet_free(zs_resnet *r);
/* Loads torchvision-named tensors found under `prefix` ("" or e.g.
   "sketch.") of a safetensors file; the config is inferred from shapes
   (fc present iff prefix+"fc.weight" is). Strict: missing, mis-shaped and
   unexpected tensors under the prefix are all reported. */
ZSDEF int zs_resnet_load(zs_resnet *r, const char *path, const char *prefix, int with_grad);
/* All tensors as F32 with torchvision names (no num_batches_tracked). */
ZSDEF int zs_resnet_save(const zs_resnet *r, const char *path);
/* images [B,3,H,W] -> pooled features [B,F]. */
ZSDEF zs_tensor *zs_resnet_features(zs_ctx *ctx, zs_resnet *r, zs_tensor *images);
/* images -> fc logits [B,num_classes] (features when num_classes == 0). */
ZSDEF zs_tensor *zs_resnet_forward(zs_ctx *ctx, zs_resnet *r, zs_tensor *images);

/* -- TCN -- */
typedef struct zs_tcn_config {
    zs_resnet_config backbone; /* both encoders (num_classes ignored: no fc); ResNet-50 */
    int dim;                   /* D, embedding width (64; 512 also used) */
    int n_classes;             /* classifier outputs = training classes (Sketchy zeroshot1: 100) */
    int kd_classes;            /* distillation head outputs = teacher classes (1000) */
    int wv_dim;                /* word-vector width (300) */
    int mssbn;                 /* 0: fc_hash = Linear + BatchNorm1d (Sketchy);
                                  1: Linear + MSSBN + dropout (TU-Berlin, QuickDraw) */
    float dropout;             /* MSSBN mode only; < 0: release rule (0.5 if log2 D <= 6, else 0.7) */
    int mssbn_eval_own_stats;  /* 0 (release quirk): in eval mode photos are normalised
                                  with the SKETCH running statistics, as the released test
                                  code does (it embeds both modalities through the sketch
                                  output of fc_model(feature, feature)); 1: own statistics */
    float w_cls, w_kd, w_share, w_sbh; /* loss weights 1, 1, 1000, 1 */
    int img_size;              /* input side the images are resized to (224, SPEC 3); the
                                  network takes any size, this only travels with the
                                  weights (zs_tcn_save metadata) so programs resize alike */
} zs_tcn_config;

typedef struct zs_tcn {
    zs_tcn_config cfg;
    zs_params params;          /* sketch.*, image.*, fc.*, sbh.* (released names) */
    zs_resnet enc[2];          /* [0] sketch, [1] photo encoder (tensors in params) */
    zs_tensor *hash_w, *hash_b;            /* fc.fc_hash.0 [D,F], [D] */
    zs_tensor *bn_w, *bn_b;                /* fc.fc_hash.1 or fc.bn affine [D] */
    zs_tensor *bn_mean[2], *bn_var[2];     /* running stats [sketch, photo]; equal pointers
                                              in BatchNorm1d mode (one shared set) */
    zs_tensor *cls_w, *cls_b;              /* fc.fc_cls [n_classes,D] */
    zs_tensor *kd_w, *kd_b;                /* fc.fc_kd [kd_classes,D] */
    zs_tensor *sbh_w, *sbh_b;              /* sbh.fc [D,wv_dim] */
    zs_resnet *teacher;        /* frozen ImageNet net for the KD term (not owned; fc with
                                  kd_classes outputs); NULL: no KD term (w_kd must be 0) */
} zs_tcn;

/* One batch of B pairs: sketch i and photo i share class labels[i]. */
typedef struct zs_tcn_batch {
    zs_tensor *sketch, *photo; /* [B,3,H,W], ImageNet-normalised (SPEC 2.2) */
    const int32_t *labels;     /* [B] in [0, n_classes) */
    const float *wordvec;      /* [B, wv_dim] word vector of each pair's class */
    const float *alpha;        /* [2B] interpolation weights a of the semantic metric
                                  (sketches then photos), or NULL: U(0,1) from the ctx RNG */
} zs_tcn_batch;

typedef struct zs_tcn_losses { float cls_sketch, cls_photo, kd, sbh, share, total; } zs_tcn_losses;

/* Released defaults: ResNet-50, D 64, 100 classes, 1000 KD classes, 300-d
   word vectors, BatchNorm1d head, weights 1/1/1000/1. */
ZSDEF zs_tcn_config zs_tcn_config_default(void);
/* Tiny test config: "tiny" backbone (F 32), D 16, 5 classes, 10 KD classes, wv 12. */
ZSDEF zs_tcn_config zs_tcn_config_tiny(void);
ZSDEF int zs_tcn_config_check(const zs_tcn_config *c);
/* Random init (torchvision / nn.Linear defaults); both encoders start from
   the same weights (SPEC 2.1). */
ZSDEF int zs_tcn_init(zs_tcn *m, const zs_tcn_config *c, int with_grad, uint64_t seed);
ZSDEF void zs_tcn_free(zs_tcn *m);
/* ImageNet init: torchvision-named tensors under prefix ("" usually) into
   BOTH encoders (weights and running statistics; fc.* ignored). */
ZSDEF int zs_tcn_load_backbone(zs_tcn *m, const char *path, const char *prefix);
/* Whole model in the TCN checkpoint layout (sketch./image./fc./sbh. names,
   "module." components dropped); config inferred from shapes (dropout and
   loss weights default). sbh.* is optional (absent from released files). */
ZSDEF int zs_tcn_load(zs_tcn *m, const char *path, int with_grad);
ZSDEF int zs_tcn_save(const zs_tcn *m, const char *path);
/* Copies head weights (e.g. the SVD initialisation of SPEC 2.1, computed
   elsewhere): hash_w [D,F], kd_w [kd_classes,D], kd_b [kd_classes]; any NULL is skipped. */
ZSDEF int zs_tcn_set_heads(zs_tcn *m, const float *hash_w, const float *kd_w, const float *kd_b);

/* Encoder + shared head: images [B,3,H,W] -> embedding [B,D] (before L2
   normalisation). Training/eval behaviour follows the ctx mode. */
ZSDEF zs_tensor *zs_tcn_encode(zs_ctx *ctx, zs_tcn *m, zs_tensor *images, int is_sketch);
/* Retrieval embedding (SPEC 2.3): eval mode, no tape, L2-normalised -> out [B,D]. */
ZSDEF int zs_tcn_embed(zs_ctx *ctx, zs_tcn *m, zs_tensor *images, int is_sketch, float *out);
/* Soft weight sharing: sum over paired conv weights ||W_sk - W_ph||_F (scalar). */
ZSDEF zs_tensor *zs_tcn_share_loss(zs_ctx *ctx, zs_tcn *m);
/* Semantic batch-hard of SPEC 2.2 on N = 2B embeddings x [N,D] with labels
   [N], word vectors wv [N,wv_dim] and alpha [N] (NULL: drawn U(0,1)) -> scalar. */
ZSDEF zs_tensor *zs_tcn_semantic_loss(zs_ctx *ctx, zs_tcn *m, zs_tensor *x, const int32_t *labels,
                                      const float *wv, const float *alpha);
/* Total training loss of SPEC 2.2 (terms in *out when not NULL). */
ZSDEF zs_tensor *zs_tcn_loss(zs_ctx *ctx, zs_tcn *m, const zs_tcn_batch *b, zs_tcn_losses *out);
/* Adam of the release (lr, weight decay 5e-4) over every trainable tensor. */
ZSDEF zs_optim *zs_tcn_optim_create(zs_tcn *m, float lr);
/* lr at epoch e: lr0 * 0.001^(e / (2 epochs)). */
ZSDEF float zs_tcn_lr(float lr0, int epoch, int epochs);
/* zero grads, training-mode loss, backward, optimiser step; the tape and
   every tensor made here are released before returning. */
ZSDEF int zs_tcn_train_step(zs_ctx *ctx, zs_tcn *m, zs_optim *opt, const zs_tcn_batch *b, zs_tcn_losses *out);

/* Config as one line of text (index files hash it; zs_tcn_save stores it as
   metadata "zsesbir.config" next to "zsesbir.model" = "tcn"), e.g.
   "tcn bottleneck=1 layers=3,4,6,3 stem=64 planes=64,128,256,512 dim=64
   classes=100 kd=1000 wv=300 mssbn=0 size=224". ZS_ERR_ARG when cap is too
   small. zs_tcn_load takes img_size back from that metadata (224 without). */
ZSDEF int zs_tcn_config_format(const zs_tcn_config *c, char *buf, size_t cap);

/* Word vectors of named classes from a text file of "name<TAB>v1 v2 ..."
   lines (data/wordvec/NAME_gwv300.txt): out [n, dim], row i = the vector of
   names[i]. Names match exactly, or with ' ' and '_' taken as equal
   (TU-Berlin writes spaces as '_'). A missing name, a line of another
   width or a non-finite value is ZS_ERR_FORMAT naming it. */
ZSDEF int zs_tcn_wordvec_load(float *out, const char *path, const char *const *names, int n, int dim);

/* -- paired augmentation (SPEC 2.2) --
   The SAME random affine warp is applied to a sketch and its photo:
   horizontal flip (p 0.5), zoom about the centre by s ~ U(0.7, 1.3),
   rotation by a ~ U(-30, 30) degrees, shift (tx, ty) ~ U(-10, 10) pixels
   each (the release's ranges, SPEC 2.2; pixels of the image warped, i.e.
   after the resize to 224 in the CLI). A content point p (pixel centres at
   i + 0.5, centre c = (w/2, h/2)) moves to
      c + (tx, ty) + s R(a) F (p - c),   F = mirror x when flip,
   R(a) turning counter-clockwise ON SCREEN for a > 0 (y points down; as
   PIL's Image.rotate). Output pixels are sampled from the inverse map with
   bilinear interpolation (rounded to nearest); positions within 1e-6 of a
   pixel centre snap to it, so flips, 90-degree turns and whole-pixel shifts
   move pixels exactly. Outside the source: fill colour, white for sketches
   (paper background) and the ImageNet mean (124, 116, 104) for photos (0
   after normalisation: like zero padding). Output size = input size. */
struct zs_image; /* [api:image] */
typedef struct zs_tcn_aug {
    int flip;      /* 1: mirror left-right */
    float scale;   /* > 0; 1: none; > 1 zooms in */
    float angle;   /* degrees, counter-clockwise on screen */
    float tx, ty;  /* shift in pixels: +x right, +y down */
} zs_tcn_aug;
#define ZS_TCN_AUG_SCALE_LO 0.7f
#define ZS_TCN_AUG_SCALE_HI 1.3f
#define ZS_TCN_AUG_ANGLE 30.0f /* +- degrees */
#define ZS_TCN_AUG_SHIFT 10.0f /* +- pixels */
ZSDEF zs_tcn_aug zs_tcn_aug_identity(void);
/* Deterministic draw from (seed, counter) with the ranges above. */
ZSDEF zs_tcn_aug zs_tcn_aug_sample(uint64_t seed, uint64_t counter);
/* out (allocated here, in->w x in->h) = in warped by a; fill [3] RGB. */
ZSDEF int zs_tcn_augment(struct zs_image *out, const struct zs_image *in, const zs_tcn_aug *a, const unsigned char fill[3]);
/* Both images with the same a: the sketch filled white, the photo with the mean. */
ZSDEF int zs_tcn_augment_pair(struct zs_image *sketch_out, struct zs_image *photo_out, const struct zs_image *sketch,
                              const struct zs_image *photo, const zs_tcn_aug *a);

/* ==================================================================== */
/* [api:linalg] dense linear algebra, TCN head init, ITQ hashing        */
/* ==================================================================== */
/* Double-precision eigen/singular value decompositions for SPEC 2.1 (TCN
   heads from the teacher fc layer) and SPEC 2.3 (ITQ binary codes). All
   matrices are row-major. Nothing here is differentiable or threaded.

   zs_eigh  symmetric A [n,n] = V diag(w) V^T. Householder tridiagonalisation
            (lower triangle only, 4/3 n^3) and implicit QL with Wilkinson-like
            shifts (JAMA tql2), rotations applied to contiguous rows.
            Eigenvalues descending; column j of V is eigenvector j with its
            largest-magnitude component positive (the first such on a tie).
            Accuracy: |A V - V diag(w)| <= ~1e-14 |A|, V orthonormal to
            ~1e-14. Only the lower triangle of A is read.
   zs_svd   thin SVD of A [m,n], k = min(m,n): A = U diag(s) Vt, U [m,k],
            Vt [k,n]. One-sided (Hestenes) Jacobi on the k columns of the tall
            orientation, preconditioned by the eigenvectors of the k x k Gram
            matrix (so it usually needs 1-2 sweeps; the Jacobi sweeps, not the
            Gram matrix, decide the accuracy: singular values to a few ulps
            relative to s[0], small ones stay relatively accurate as in
            LAPACK's gesvj). s descending, >= 0. Sign: row j of Vt (the right
            singular vector) has its largest-magnitude component positive.
            Rank-deficient inputs: left vectors of (near-)zero singular values
            are completed to an orthonormal set.
   Cost (dev machine, one core, shared with other jobs, cpu seconds):
      eigh n = 2048 (values + vectors)   10.5 s AVX2, 16.5 s scalar
           (tridiagonal 1.3, Q 0.9, QL rotations ~7: 6 n^3 flops, applied
           in 128-column panels from a rotation log)
      eigh n = 1024 / 512                0.85 s / 0.13 s
      svd 1000 x 2048 (teacher fc)       1.3-2.6 s AVX2, 2.7 s scalar
      svd 512 x 512                      0.3 s
   Accuracy (tests): eigen residual |A v - w v| <= 1e-13 max|w|, |V^T V - I|
   <= 1e-13; SVD ||A - U S Vt|| / ||A|| <= 1e-14 and |U^T U - I|, |V^T V - I|
   <= 1e-14 (1e-12 with rank deficiency); values and vectors equal numpy's
   (float64 LAPACK) to the 1e-5 of the float32 goldens.

   Errors: ZS_ERR_ARG for NULL/size problems or non-finite input, ZS_ERR_NOMEM,
   ZS_ERR_STATE when an iteration did not converge (never seen in practice). */


/* w [n], v [n,n] (column j = eigenvector j; may be NULL for values only),
   a [n,n]; 1 <= n <= ZS_LINALG_MAX_N. a and v may be the same array. */
#define ZS_LINALG_MAX_N 16384
ZSDEF int zs_eigh(double *w, double *v, const double *a, int n);
/* u [m,k] and vt [k,n] may each be NULL; s [k] is required. */
ZSDEF int zs_svd(double *u, double *s, double *vt, const double *a, int m, int n);

/* SPEC 2.1: heads of TCN from the teacher's fc layer, W [n_out, n_in] (ImageNet
   ResNet-50: [1000, 2048]) and bias [n_out]. With the SVD W = U S Vt:
      h_weight  [D, n_in]  = diag(S[:D]) Vt[:D]     (Linear(n_in -> D).weight)
      kd_weight [n_out, D] = U[:, :D]               (Linear(D -> n_out).weight)
      kd_bias   [n_out]    = fc_bias                (NULL fc_bias -> zeros)
   so kd(h(x)) is the rank-D truncation of the teacher fc (up to h's bias,
   which is not initialised here). Singular vector signs follow zs_svd (their
   products do not depend on them). 1 <= D <= min(n_out, n_in). */
ZSDEF int zs_tcn_init_heads(float *h_weight, float *kd_weight, float *kd_bias, const float *fc_weight,
                            const float *fc_bias, int n_out, int n_in, int D);

/* -- ITQ (Gong & Lazebnik 2011), SPEC 2.3 --
   Training on X [n, dim]: mean-centre, PCA to `bits` dims (eigenvectors of
   Xc^T Xc, descending, sign as zs_eigh): V = Xc P [n, bits]. Start from
   rotation R0 (init_rot [bits,bits] given, or the U factor of the SVD of a
   bits x bits Gaussian matrix drawn from seed). Then `iters` times (SPEC: 50):
   B = sign(V R) (+1 when >= 0, as the released MATLAB), C = B^T V,
   C = Ub S Ua^T, R = Ua Ub^T (orthogonal Procrustes). Code bit j of a vector x:
   ((x - mean) P R)_j > 0. All arithmetic in double; mean/proj/rot are kept
   as float32 (what is saved). Codes are packed into ZS_ITQ_WORDS(bits)
   uint64 words per item, bit j in word j/64 at position j%64, unused high
   bits zero.
   Identical to a float64 numpy run from the same R0 unless (a) some |V R| is
   at rounding level, or (b) C is singular, which happens when a bit is
   constant over the training set (B's column all +1 makes C's row 1^T V = 0):
   R is then not unique and implementations may part ways (ours stays
   orthogonal and deterministic for a given build).
   Cost: 4 n bits^2 flops per iteration in double (~10-13 GFlop/s here) plus
   a bits x bits SVD: n 20000, dim 64, bits 64, 50 iterations: 1.3 s;
   n 3000, dim = bits = 512: 22 s (8 s of it the SVDs). Train on a sample when
   bits is large. */
#define ZS_ITQ_WORDS(bits) (((bits) + 63) / 64)
#define ZS_ITQ_MAX_DIM 65536
typedef struct zs_itq {
    int dim, bits;
    float *mean; /* [dim] */
    float *proj; /* [dim, bits] PCA directions (columns) */
    float *rot;  /* [bits, bits] */
} zs_itq;
/* codes (optional) [n, ZS_ITQ_WORDS(bits)]: the training items' codes from
   the final double-precision rotation. 1 <= bits <= dim, n >= 2, iters >= 0. */
ZSDEF int zs_itq_train(zs_itq *q, uint64_t *codes, const float *x, int n, int dim, int bits, int iters,
                       uint64_t seed, const float *init_rot);
ZSDEF void zs_itq_free(zs_itq *q);
/* codes [n, ZS_ITQ_WORDS(q->bits)] of x [n, q->dim]. */
ZSDEF int zs_itq_encode(const zs_itq *q, uint64_t *codes, const float *x, int n);
/* Safetensors with F32 tensors "itq.mean" [dim], "itq.proj" [dim,bits],
   "itq.rot" [bits,bits]; load is strict (shapes, finite values). */
ZSDEF int zs_itq_save(const zs_itq *q, const char *path);
ZSDEF int zs_itq_load(zs_itq *q, const char *path);
/* dist [na, nb] = Hamming distances (as float, for zs_eval_retrieval) between
   packed codes a [na, words] and b [nb, words]; bits past `bits` ignored. */
ZSDEF int zs_hamming_matrix(float *dist, const uint64_t *a, int na, const uint64_t *b, int nb, int bits);

/* ==================================================================== */
/* [api:data] retrieval metrics, list files, datasets, sampler          */
/* ==================================================================== */
/* -- retrieval metrics (SPEC section 4) --
   Input: a distance matrix dist[n_query * n_gallery] (float32, row-major,
   smaller = closer) and int32 class labels. For each query the gallery is
   sorted by increasing distance; TIES are broken by the gallery index (the
   lower index ranks first: a stable sort), so results never depend on the
   sort implementation. A NaN distance is an error (ZS_ERR_ARG); +-inf is
   fine. rel[k] = 1 when the k-th result has the query's label; P = number of
   relevant gallery items. Everything is computed in double.

   map_all  VOC all-point AP (tp/fp cumulative, rec = tp/P, prec = tp/(tp+fp),
            precision made monotone from the right, sum of recall increase x
            precision), averaged over the queries with P > 0 (a query with no
            relevant item has AP = NaN and is ignored, like np.nanmean).
   map_200  the same on the first min(200, n_gallery) results with
            P = min(200, relevant count).
   p_100/p_200  ZSE-SBIR release: mean of rel[0 .. K'-1], K' = min(K, P);
            averaged over the queries with P > 0.
   tcn_p_100/tcn_p_200  TCN release: sum(rel[0 .. K-1]) / min(K, n_gallery),
            averaged over ALL queries (a query with no relevant item gives 0).
   tcn_map  TCN release: the AP of map_all averaged per query class first
            (over that class's queries with P > 0), then over the classes that
            have at least one such query.
   n_valid  number of queries with P > 0. When n_valid == 0 every ZSE value
            and tcn_map is NaN (the call still returns ZS_OK).
   The two P@K definitions differ when a query has fewer than K relevant
   gallery items. Cost: one radix sort per query, single-threaded (1000 x 10000
   in about 0.1 s on one core); extra memory O(ng + nq). */
typedef struct zs_metrics {
    double map_all, map_200, p_100, p_200;
    double tcn_map, tcn_p_100, tcn_p_200;
    int n_valid;
} zs_metrics;
ZSDEF int zs_eval_retrieval(const float *dist, int nq, int ng, const int32_t *q_labels,
                            const int32_t *g_labels, zs_metrics *out);
/* Fine-grained (instance-level): pair_index[q] is the gallery index of the
   query's paired photo, or -1 when it has none (the query is then skipped).
   acc1/acc10 = fraction of the paired queries whose photo ranks in the top 1 /
   top 10 (same tie rule: a photo tied with a lower gallery index ranks after
   it). NaN when no query has a pair. O(ng) per query, no sort. */
ZSDEF int zs_eval_fine_grained(const float *dist, int nq, int ng, const int32_t *pair_index,
                               double *acc1, double *acc10);
/* VOC all-point AP of one ranked list: rel_sorted[k] != 0 when the k-th
   result is relevant; P = number of relevant items in the whole gallery
   (P <= 0 -> NaN). Items past n are never retrieved (recall stays < 1). */
ZSDEF double zs_average_precision(const int8_t *rel_sorted, int n, int P);
/* The stable ranking used above: order[0..ng-1] = gallery indices of one query
   row by increasing distance, ties by index. ZS_ERR_ARG on NaN. */
ZSDEF int zs_rank_gallery(const float *dist_row, int ng, int32_t *order);

/* -- released split lists --
   File lists: "relative/path label" a line; the label is the LAST
   space-separated field (paths may contain spaces, e.g. TU-Berlin "hot air
   balloon/..."), a non-negative decimal integer < 2^31. Class lists
   (cname_cid.txt): "name id" a line, same rule. A trailing '\r' is stripped;
   blank lines are skipped; lines longer than ZS_LIST_MAX_LINE bytes, a missing
   or malformed label and a file that is not text (NUL byte) are ZS_ERR_FORMAT
   with the file name and line number in zs_last_error(). */
#define ZS_LIST_MAX_LINE 4096
typedef struct zs_filelist {
    int n;
    char **path;     /* [n] NUL-terminated, owned */
    int32_t *label;  /* [n] */
    char *pool_;     /* private: string storage */
} zs_filelist;
ZSDEF int zs_filelist_read(const char *path, zs_filelist *out);
ZSDEF void zs_filelist_free(zs_filelist *fl);

/* -- datasets in the class-folder layout --
      <root>/photo/<class>/<file>     <root>/sketch/<class>/<file>
   Entries whose names start with '.' are ignored; only directories count as
   classes and only regular files as items. Class ids: the class names sorted
   by strcmp (byte order) when class_list is NULL; otherwise read from a
   cname_cid.txt-style list whose ids must be exactly 0..n-1 (each once): then
   only the listed classes are loaded, each must have a folder under photo/ or
   sketch/, and other folders are ignored. Items are ordered by class id, then
   by file name (strcmp), so every class is one contiguous range and the order
   is the same on every machine. Every class starts SEEN.
   Fine-grained pairs: sketch "<X>-<k>.<ext>" (k decimal) is paired with the
   photo "<X>.<any ext>" of the same class: sketch_pair[i] = photo index or -1.
   POSIX only (opendir/readdir/stat): ZS_ERR_UNSUPPORTED on _WIN32.
   All memory is owned by the dataset; zs_dataset_free releases it (and is a
   no-op on a zeroed or failed dataset). */
typedef struct zs_dataset {
    int n_classes;
    char **class_name;          /* [n_classes], indexed by class id */
    int32_t *photo_start, *photo_count;   /* [n_classes] ranges into photo_* */
    int32_t *sketch_start, *sketch_count; /* [n_classes] ranges into sketch_* */
    uint8_t *unseen;            /* [n_classes] 1 = unseen (test) class */
    int n_seen, n_unseen;
    int32_t *seen_class, *unseen_class;   /* class ids, increasing */
    int n_photos, n_sketches;
    char **photo_path, **sketch_path;     /* full paths "<root>/photo/<class>/<file>" */
    int32_t *photo_label, *sketch_label;
    int32_t *sketch_pair;       /* [n_sketches] paired photo index or -1 */
    int n_paired;               /* sketches with a pair */
} zs_dataset;
ZSDEF int zs_dataset_open(zs_dataset *ds, const char *root, const char *class_list);
/* Marks the classes named in a test-class list (one class name a line, as
   ../splits/test_class_*.txt; names may contain spaces; '\r' and trailing
   blanks stripped; blank lines skipped) unseen and all others seen. An unknown
   or repeated name is ZS_ERR_FORMAT naming it and its line; the dataset is
   then left unchanged. */
ZSDEF int zs_dataset_set_unseen(zs_dataset *ds, const char *test_class_list);
ZSDEF void zs_dataset_free(zs_dataset *ds);

/* SPEC 1.5 training sample: picks 3 distinct SEEN classes c0, c1, c2
   uniformly (c1 is drawn and discarded, as in the release) among the seen
   classes that have at least one photo and one sketch, then
   out[0] = s+ (sketch of c0), out[1] = p+ (photo of c0),
   out[2] = s- (another sketch of c0: different from s+ when c0 has >= 2
   sketches), out[3] = p- (photo of c2) - sketch/photo indices of ds.
   Deterministic given *rng_state (splitmix64, advanced in place). ZS_ERR_STATE
   when fewer than 3 seen classes are eligible. */
ZSDEF int zs_sample_triplet(const zs_dataset *ds, uint64_t *rng_state, int32_t out[4]);

/* ==================================================================== */
/* [api:image] images, file I/O, pre-processing (SPEC 3)                */
/* ==================================================================== */
/* 8-bit RGB images, row-major, w*h*3 bytes (pixel (x,y) channel c at
   rgb[(y*w + x)*3 + c]). rgb is allocated with ZS_MALLOC(.., NULL); release
   it with zs_image_free. Images are limited to ZS_IMAGE_MAX_DIM pixels on
   each side.

   Formats. Binary PPM (P6) and PGM (P5) are always supported (maxval
   1..255, '#' comments in the header; 16-bit files are rejected with
   ZS_ERR_UNSUPPORTED; grayscale becomes RGB with three equal channels;
   samples are rescaled to 0..255 when maxval < 255). PNG, JPEG, BMP (and
   the other formats of stb_image) are read when the implementation is
   compiled with ZSESBIR_STB_IMAGE defined: zsesbir then includes
   <stb_image.h> (and <stb_image_write.h> for zs_image_save_png), found as
   <stb_image.h> when that name is on the include path (e.g.
   -I/usr/include/stb with Debian's libstb-dev, or a vendored copy), else
   as <stb/stb_image.h> (Debian's default location). Grayscale, RGBA and
   palette images become RGB (alpha is dropped). zsesbir does not define
   STB_IMAGE_IMPLEMENTATION itself: either the program compiles stb_image
   (and stb_image_write) elsewhere, or it also defines
   ZSESBIR_STB_IMAGE_IMPLEMENTATION, and zsesbir then defines
   STB_IMAGE_IMPLEMENTATION and STB_IMAGE_WRITE_IMPLEMENTATION before its
   includes (the stb functions stay extern even under ZSESBIR_STATIC: the
   Debian stb_image.h with STB_IMAGE_STATIC warns about a declared-but-never-
   defined static function; define STB_IMAGE_STATIC yourself if you want it).
   Example (Debian, libstb-dev):
       #define ZSESBIR_IMPLEMENTATION
       #define ZSESBIR_STB_IMAGE
       #define ZSESBIR_STB_IMAGE_IMPLEMENTATION
       #include "zsesbir.h"
   and no extra compiler flags (or -I/usr/include/stb). Without ZSESBIR_STB_IMAGE those formats fail with
   ZS_ERR_UNSUPPORTED and a message saying to define it.

   Pre-processing (SPEC section 3), each writing a float tensor [3, size, size]
   (channel-major, PyTorch layout) that the caller provides:
     zs_preprocess_photo   ZSE-SBIR photo: PIL bicubic resize to size x size,
                           (v/255 - 0.5)/0.5.
     zs_preprocess_sketch  ZSE-SBIR sketch: ink (R+G+B <= 300) bounding box,
                           crop with a 10 px margin (end exclusive), OpenCV
                           INTER_LINEAR resize so the long side is `size`,
                           pad with the resized image's maximum value, then
                           as photos. No ink: ZS_ERR_ARG ("no ink").
     zs_preprocess_tcn     TCN: PIL bicubic resize, ImageNet mean/std.
   Resizers:
     zs_image_resize_bicubic_pil  what Pillow (7..10) Image.resize((w,h))
       does for RGB images by default (Resampling.BICUBIC, a = -0.5, support
       scaled by the downscale factor = antialiasing; separable, horizontal
       pass first into 8 bits, then vertical; 22-bit fixed-point weights).
       Bit-exact with Pillow 9.4 on the tested images.
     zs_image_resize_linear_cv    OpenCV cv::resize(INTER_LINEAR) on CV_8UC3:
       half-pixel centres, clamped borders, no antialiasing, 11-bit
       fixed-point weights; the vertical pass follows OpenCV's 128-bit SIMD
       kernel (VResizeLinearVec_32s8u) for the elements it covers and the
       scalar rounding for the rest. (OpenCV switches an exact 2x shrink in
       both directions to INTER_AREA; for 8-bit data that gives the same
       bytes as this formula, (a+b+c+d+2)>>2, so it needs no special case.)
       Checked against a
       numpy re-implementation (tools/preprocess_ref.py); OpenCV itself was
       not available, so agreement with real OpenCV is by construction only
       (differences, if any, are expected to be at most 1/255). */
#define ZS_IMAGE_MAX_DIM 16384

typedef struct zs_image {
    int w, h;
    unsigned char *rgb; /* w*h*3 bytes */
} zs_image;

/* Allocates an uninitialised w x h image (1..ZS_IMAGE_MAX_DIM each side). */
ZSDEF int zs_image_alloc(zs_image *im, int w, int h);
/* Frees im->rgb and zeroes *im. NULL and zeroed images are fine. */
ZSDEF void zs_image_free(zs_image *im);
/* Reads an image; format from the magic bytes (see above). *out is zeroed on failure. */
ZSDEF int zs_image_load(const char *path, zs_image *out);
ZSDEF int zs_image_load_memory(const void *buf, size_t n, zs_image *out);
/* Binary PPM (P6, maxval 255). */
ZSDEF int zs_image_save_ppm(const char *path, const zs_image *im);
/* PNG via stb_image_write; ZS_ERR_UNSUPPORTED without ZSESBIR_STB_IMAGE. */
ZSDEF int zs_image_save_png(const char *path, const zs_image *im);

/* Resize to w x h (new image in *out, zeroed on failure). */
ZSDEF int zs_image_resize_bicubic_pil(const zs_image *in, int w, int h, zs_image *out);
ZSDEF int zs_image_resize_linear_cv(const zs_image *in, int w, int h, zs_image *out);

/* The 8-bit size x size sketch of SPEC 3 before normalisation (crop, resize,
   pad). box, when not NULL, receives the crop {x0, y0, x1, y1} (ends exclusive). */
ZSDEF int zs_sketch_prepare(const zs_image *im, int size, zs_image *out, int box[4]);
/* 8-bit w x h image -> float [3,h,w] (caller's buffer), (v/255 - mean[c])/std[c]. */
ZSDEF int zs_image_normalize(const zs_image *im, const float mean[3], const float std_[3], float *out);
ZSDEF int zs_preprocess_photo(const zs_image *im, int size, float *out);
ZSDEF int zs_preprocess_sketch(const zs_image *im, int size, float *out);
ZSDEF int zs_preprocess_tcn(const zs_image *im, int size, float *out);

/* ==================================================================== */
/* [api:quickdraw] Quick, Draw! drawings as sketch queries              */
/* ==================================================================== */
/* Reads Quick, Draw! .ndjson files (one JSON object a line) and rasterises
   their vector drawings into zs_image sketches that zs_sketch_prepare /
   zs_preprocess_sketch accept directly.

   File format. Each non-blank line is one object; the member "drawing" is
   required: an array of strokes, each [[x0, x1, ...], [y0, y1, ...]] (an
   optional third array, the raw format's timestamps, must have the same
   length and is ignored). "word" (a string) and "key_id" (a string, or a
   number kept as its text) are stored when present; every other member
   (countrycode, timestamp, recognized, ...) is skipped as any JSON value.
   The parser is strict: lines must be valid UTF-8 and valid JSON (no
   trailing commas, no text after the object, escapes checked, "\u0000"
   rejected, nesting at most 128 deep), x and y of a stroke must have the
   same length >= 1, coordinates are JSON numbers within +-ZS_QD_MAX_COORD,
   no member may appear twice among drawing/word/key_id, and the counts of
   zs_qd_limits hold. A UTF-8 BOM before the first line and '\r' before a
   '\n' are accepted; blank (whitespace-only) lines are skipped. The first
   problem fails the whole load with ZS_ERR_FORMAT and zs_last_error() reads
   "name:LINE: what", e.g. "cat.ndjson:17: stroke 2: 5 x values but 4 y
   values" (JSON syntax errors add the byte offset within the line).
   Numbers are converted without the C locale (correct to about 1 ulp of
   float; the simplified data holds integers, which are exact).

   Rasterising. The source box of side `box` (default 256: coordinates
   0..255) is scaled uniformly into the canvas minus `margin` on each side
   and centred (aspect ratio kept). Source coordinate c is the centre of
   cell c of the box, and pixel (i, j) has its centre at (i + 0.5, j + 0.5):
       s  = min(width - 2 m, height - 2 m) / box
       ox = (width - box s) / 2,   oy = (height - box s) / 2
       u  = ox + (x + 0.5) s,      v  = oy + (y + 0.5) s
   (at 256 x 256 with margin 0 a point (x, y) lands on the centre of pixel
   (x, y)). Each segment of a stroke is a capsule of radius r = line_width / 2
   around it (round caps and joins; a single-point stroke is a disc). The
   coverage of a pixel by a segment is a 1-pixel linear ramp of the distance
   d from the pixel centre to the segment:
       cov = clamp(r + 0.5 - d, 0, 1)
   (full ink up to r - 0.5, none from r + 0.5), and a pixel's ink a is the
   MAXIMUM over all segments of the drawing (overlaps do not darken). The
   8-bit value of channel k is floor(paper[k] + (ink[k] - paper[k]) a + 0.5).
   Below line_width 1 the ink never reaches 1 (at most r + 0.5). Points
   outside the box are drawn where they fall and clipped at the canvas edge.
   Distances are computed in double. Cost: the sum over segments of the
   pixel area of each capsule's bounding box. tools/quickdraw_ref.py is an
   independent numpy implementation used for the golden tests.

   Example (the simplified drawings sit in the top-left of their box;
   zs_sketch_prepare crops to the ink, so that does not matter):
       zs_qd_file f;
       zs_image im;
       float *t = ...;                             // [3, 224, 224]
       if (zs_qd_load(&f, "cat.ndjson", NULL)) printf("%s\n", zs_last_error());
       zs_qd_render(&im, &f.drawings[0], NULL);    // 256 x 256, width 3
       zs_preprocess_sketch(&im, 224, t);          // SPEC 3
       zs_image_free(&im);
       zs_qd_free(&f); */


#define ZS_QD_MAX_COORD 1000000.0 /* |x|, |y| bound (keeps all arithmetic finite) */

typedef struct zs_qd_stroke {
    int n;          /* points (>= 1 in loaded files) */
    const float *x; /* [n] */
    const float *y; /* [n] */
} zs_qd_stroke;

typedef struct zs_qd_drawing {
    int n_strokes;               /* >= 0 ("drawing": [] is a blank sketch) */
    const zs_qd_stroke *strokes; /* [n_strokes] */
    const char *word;            /* UTF-8, NULL when absent */
    const char *key_id;          /* NULL when absent */
    int line;                    /* 1-based line in the file (0 if built by hand) */
} zs_qd_drawing;

typedef struct zs_qd_file {
    int n;                   /* drawings, in file order */
    zs_qd_drawing *drawings; /* [n] */
    zs_qd_stroke *strokes_;  /* private storage, freed by zs_qd_free */
    float *points_;
    char *text_;
} zs_qd_file;

/* Bounds on untrusted files; a load fails when one is exceeded. */
typedef struct zs_qd_limits {
    int max_drawings;        /* default 4,194,304 */
    int max_strokes;         /* per drawing, default 4096 */
    int max_points;          /* per stroke, default 65536 */
    size_t max_total_points; /* whole file, default 2^27 (1 GiB of floats) */
    size_t max_line;         /* bytes of one line without its end, default 1 MiB */
} zs_qd_limits;

ZSDEF zs_qd_limits zs_qd_default_limits(void);
/* Parse a whole .ndjson file (streamed: memory is the drawings plus one
   line). lim NULL = defaults. *out is zeroed on failure. */
ZSDEF int zs_qd_load(zs_qd_file *out, const char *path, const zs_qd_limits *lim);
/* Same over n bytes of caller memory (not modified); name (may be NULL)
   prefixes messages. */
ZSDEF int zs_qd_load_memory(zs_qd_file *out, const void *buf, size_t n, const char *name, const zs_qd_limits *lim);
/* Frees everything and zeroes *f. NULL and zeroed files are fine. */
ZSDEF void zs_qd_free(zs_qd_file *f);

typedef struct zs_qd_raster_opts {
    int width, height;       /* canvas, 1..ZS_IMAGE_MAX_DIM (default 256 x 256) */
    float line_width;        /* ink width in output pixels, (0, 1024] (default 3) */
    float margin;            /* free border in output pixels; < 0 (default) means
                                line_width / 2 + 0.5, so ink inside the box is
                                never clipped */
    float box;               /* side of the source box, [1, 1e6] (default 256) */
    unsigned char ink[3];    /* default black */
    unsigned char paper[3];  /* default white */
} zs_qd_raster_opts;

ZSDEF zs_qd_raster_opts zs_qd_raster_default_opts(void);
/* Ink coverage a in [0, 1] of every pixel: cov is [height][width] floats
   (caller's buffer, overwritten). o NULL = defaults. */
ZSDEF int zs_qd_coverage(float *cov, const zs_qd_drawing *d, const zs_qd_raster_opts *o);
/* The drawing as a new RGB image (free with zs_image_free; zeroed on
   failure). A drawing without strokes gives a blank (all paper) canvas. */
ZSDEF int zs_qd_render(zs_image *out, const zs_qd_drawing *d, const zs_qd_raster_opts *o);

/* ==================================================================== */
/* [api:index] photo index files (.zsi), contact sheets                 */
/* ==================================================================== */
/* A photo index stores, once, what searching a collection needs: for every
   photo its path, class label (-1 = unknown) and L2-normalised ret-token
   embedding [dim] (SPEC 1.6 "sa" mode), and optionally the SA output tokens
   [tokens, token_dim] (f16 or f32) from which the RN reranker rebuilds its
   per-photo cache (zs_zse_cache). Embeddings are loaded into memory; tokens
   stay in the file and are read per photo (zs_index_tokens), so a reranked
   search touches only its top-k records.

   File layout (little-endian; every count and length is checked against the
   real file size before anything is allocated):
      "ZSESBIRI" u32 version (2) u32 model (ZS_INDEX_MODEL_*)
      u64 config_hash   FNV-1a 64 of the model config text
      u64 weights_hash  zs_weights_hash of the parameters used
      u32 n  u32 dim  u32 tokens  u32 token_dim  u32 token_type (ZS_F32|ZS_F16)
      u32 n_classes  u32 config_len  u32 bits (ITQ code bits, 0 = none)
      config text; n_classes x (u32 len, name); n x (i32 label, u32 len, path)
      when bits > 0: f32 itq mean[dim], proj[dim*bits], rot[bits*bits]
      n records: f32 emb[dim], u64 code[ZS_ITQ_WORDS(bits)] (ITQ codes of
                 emb, when bits > 0), tokens[tokens*token_dim] of token_type
   Version 1 files (the same with bits always 0) are still read.
   Strings are at most ZS_INDEX_MAX_STR bytes; n at most 2^31-1. */
#define ZS_INDEX_VERSION 2
#define ZS_INDEX_MAX_STR 4096
#define ZS_INDEX_MODEL_ZSE 0 /* ZSE-SBIR: ret-token embeddings (+ SA tokens) */
#define ZS_INDEX_MODEL_TCN 1 /* TCN: L2-normalised hash-head embeddings (+ ITQ) */

typedef struct zs_index_info {
    uint64_t config_hash, weights_hash;
    const char *config;      /* model config text (zs_zse_config_format) */
    int n, dim;              /* photos, embedding size */
    int tokens, token_dim;   /* 0, 0: no tokens stored (no RN reranking) */
    zs_type token_type;      /* ZS_F16 (half the size) or ZS_F32 */
    int n_classes;
    const char *const *class_name; /* [n_classes] or NULL */
    const char *const *path;       /* [n] */
    const int32_t *label;          /* [n] or NULL (all -1) */
    uint32_t model;                /* ZS_INDEX_MODEL_* */
    const zs_itq *itq;             /* NULL, or a rotation over dim: the writer stores it
                                      and each record's codes (zs_itq_encode of emb) */
} zs_index_info;

typedef struct zs_index_writer zs_index_writer; /* opaque */
/* Writes the header, class names and paths; then call zs_index_append once
   per photo in order, then zs_index_finish (which fails, removing the file,
   unless exactly n records were appended). zs_index_abort removes it. */
ZSDEF zs_index_writer *zs_index_create(const char *path, const zs_index_info *info);
ZSDEF int zs_index_append(zs_index_writer *w, const float *emb /*[dim]*/, const float *tokens /*[tokens*token_dim] or NULL when none*/);
ZSDEF int zs_index_finish(zs_index_writer *w);
ZSDEF void zs_index_abort(zs_index_writer *w);

typedef struct zs_index {
    uint32_t version, model;
    uint64_t config_hash, weights_hash;
    char *config;            /* NUL-terminated */
    int n, dim, tokens, token_dim;
    zs_type token_type;
    int n_classes;
    char **class_name;       /* [n_classes] */
    char **path;             /* [n] */
    int32_t *label;          /* [n], -1 = unknown */
    float *emb;              /* [n, dim] */
    zs_itq itq;              /* bits 0: none stored */
    uint64_t *codes;         /* [n, ZS_ITQ_WORDS(itq.bits)] or NULL */
    void *priv_;             /* open file for token reads */
} zs_index;
/* Reads the header, strings and all embeddings; *out zeroed on failure. */
ZSDEF int zs_index_load(const char *path, zs_index *out);
/* Tokens of photo i as f32 [tokens*token_dim]; ZS_ERR_STATE if none stored. */
ZSDEF int zs_index_tokens(zs_index *idx, int i, float *out);
ZSDEF void zs_index_free(zs_index *idx);
/* FNV-1a 64 of bytes (config text hashes). */
ZSDEF uint64_t zs_hash_bytes(const void *p, size_t n, uint64_t seed);
/* Fingerprint of a parameter set (names, shapes and values). */
ZSDEF uint64_t zs_weights_hash(const zs_params *p);

/* Contact sheet: the query on the left (blue frame), then the n results in
   rows of `cols` cells of `cell` pixels, each scaled to fit with its aspect
   ratio kept (bilinear) and framed green (mark 1: same class), red (0) or
   grey (-1: unknown), with its rank number in the corner. */
ZSDEF int zs_contact_sheet(zs_image *out, const zs_image *query, const zs_image *items, int n, const int *mark,
                           int cell, int cols);

/* ==================================================================== */
/* [api:explain] token correspondences, pictures, synthesis (SPEC 1.7)  */
/* ==================================================================== */
/* What a ZSE-SBIR model matches between a sketch and a photo.

   zs_explain_compute runs one sketch-photo pair through SA, CA and the RN
   head (dropout off, no gradients) and keeps: the RN score, the ret-token
   distance, the anchor cosine map of SPEC 1.4 (the RN's input), the CA
   attention probabilities of both branches per head, the last SA block's
   cls-token attention per head, and the CA output patch tokens.

   Regions. Patch token p (0 <= p < grid^2, row-major) sits at grid cell
   (p / grid, p % grid) and is made from the pixel block
   zs_explain_patch_box gives (patch-embedding conv, kernel = stride =
   patch; the tokenizer CNN beside it sees a few pixels more). Anchor
   tokens do NOT have such a region: the raw-reshape quirk of SPEC 1.4
   reads the [N, d] token memory as [d, g, g], so anchor (ay, ax) (a 2x2
   conv over cells (2ay..2ay+1, 2ax..2ax+1) of that view) reads channel c
   of the view from flat offset c*N + y*g + x, i.e. from patch token
   (c*N + y*g + x) / d. Over the d channels that is every token when
   d >= N, which holds for every released and built-in config: each anchor
   mixes the whole image. zs_explain_anchor_region says which patches an
   anchor reads (and zs_explain.anchors_whole is 1 when all of them read
   the whole image), so the 49x49 map is exposed but cannot be drawn as
   region-to-region lines. The pictures therefore use patch-level maps
   (zs_explain_patch_map): cosine of the CA output patch tokens, by default
   centred (each image's mean patch token subtracted, which removes the
   component every token shares), or the CA attention itself.

   Pictures (zs_explain_render): sketch and photo panels side by side, the
   strongest patch pairs (zs_explain_top_pairs: each sketch patch's argmax
   photo patch, strongest first) outlined and joined by coloured lines, a
   heat map of a per-photo-patch value (zs_explain_heat) over a third copy
   of the photo (colours span the 5th..95th percentile of the values,
   interpolated bilinearly between patch centres), and caption lines in a built-in 5x7 bitmap font (ASCII
   32..126). Rendering is integer arithmetic only: the same inputs give the
   same bytes on every build.

   Synthesis (zs_explain_synthesize): an image in the sketch's layout where
   each sketch patch cell holds the photo patch its row of the map prefers
   (universal replacement), optionally feathered across cell borders. */

typedef struct zs_explain {
    int img_size, patch, grid, patches, tokens, dim; /* from the model config */
    int anchor_grid, anchors;        /* SPEC 1.4 anchor tokens (7x7 = 49 by default) */
    int heads, ca_heads;             /* SA heads, CA heads */
    int anchors_whole;               /* 1: every anchor reads every patch token
                                        (raw-reshape quirk): anchors have no region */
    float rn_score;                  /* RN relation score in (0,1) */
    float ret_dist;                  /* Euclidean distance of the L2-normalised ret tokens */
    float *anchor_cos;               /* [anchors, anchors]: rows sketch, columns photo (RN input) */
    float *ca_sk2ph;                 /* [ca_heads, tokens, tokens] last CA layer, sketch branch:
                                        sketch queries (rows) over photo keys; token 0 = cls */
    float *ca_ph2sk;                 /* [ca_heads, tokens, tokens] photo branch: photo queries
                                        over sketch keys */
    float *cls_attn_sk;              /* [heads, tokens] last SA block: cls query over all tokens */
    float *cls_attn_ph;              /* [heads, tokens] */
    float *tok_sk, *tok_ph;          /* [patches, dim] CA output patch tokens (cls dropped) */
    void *mem_;                      /* the one allocation behind the arrays */
} zs_explain;

/* Patch-level correspondence maps [patches, patches] (rows sketch patches,
   columns photo patches), for the pictures and the synthesis. */
typedef enum zs_explain_map_kind {
    ZS_EXPLAIN_MAP_CENTRED = 0, /* cosine of CA patch tokens minus each image's mean token */
    ZS_EXPLAIN_MAP_COS = 1,     /* plain cosine of CA patch tokens */
    ZS_EXPLAIN_MAP_ATTN = 2     /* CA sketch->photo attention, mean over heads */
} zs_explain_map_kind;

/* What the heat map shows for each photo patch. */
typedef enum zs_explain_heat_kind {
    ZS_EXPLAIN_HEAT_RET = 0,   /* gradient x input of the ret-token cosine similarity,
                                  summed over the patch's pixels and channels */
    ZS_EXPLAIN_HEAT_RN = 1,    /* gradient x input of the RN score, likewise */
    ZS_EXPLAIN_HEAT_ATTN = 2,  /* CA attention received from the sketch patches (mean over heads) */
    ZS_EXPLAIN_HEAT_CLS = 3,   /* last SA block's cls attention of the photo (mean over heads) */
    ZS_EXPLAIN_HEAT_MATCH = 4  /* best value of the given map in the patch's column */
} zs_explain_heat_kind;

typedef struct zs_explain_pair { int sk, ph; float value; } zs_explain_pair;

/* One pair. sketch and photo are normalised [3, img_size, img_size] images
   (zs_preprocess_sketch / zs_preprocess_photo). Needs the full token grid
   (ZS_ERR_UNSUPPORTED with EViT keep rates < 1). Training mode and
   gradients are switched off for the call; the arena is restored. *out is
   zeroed first; free it with zs_explain_free. */
ZSDEF int zs_explain_compute(zs_ctx *ctx, zs_zse *m, const float *sketch, const float *photo, zs_explain *out);
ZSDEF void zs_explain_free(zs_explain *e);

/* Pixel box {x0, y0, x1, y1} (ends exclusive) of patch p in the img_size
   input of config c. */
ZSDEF int zs_explain_patch_box(const zs_zse_config *c, int p, int box[4]);
/* Which patch tokens anchor a reads through the raw reshape (mask[patches]
   set to 0/1 when not NULL), and the pixel bounding box of those patches.
   Returns the number of patches read (== patches: the whole image), or an
   error code < 0. */
ZSDEF int zs_explain_anchor_region(const zs_zse_config *c, int a, unsigned char *mask, int box[4]);

/* map [patches * patches] of the given kind from a computed pair. */
ZSDEF int zs_explain_patch_map(const zs_explain *e, zs_explain_map_kind kind, float *map);

/* heat [patches], one value per photo patch. RET and RN run SA (and CA +
   RN) again with gradients (ctx, m, sketch and photo needed; m must be the
   model e was computed with; a model holding gradient buffers receives this
   backward pass in them too); ATTN and CLS read e; MATCH reads map
   [patches * patches] (of any kind). Unused arguments may be NULL. */
ZSDEF int zs_explain_heat(zs_ctx *ctx, zs_zse *m, const float *sketch, const float *photo, const zs_explain *e,
                          const float *map, zs_explain_heat_kind kind, float *heat);

/* The n strongest correspondences of map [rows * cols]: for every row i
   (only rows with row_mask[i] != 0 when row_mask is not NULL) its argmax
   column j (first one on ties; NaN never wins; rows of NaN are skipped),
   then the rows by decreasing value (lower row first on ties). Writes up
   to n pairs to out and returns how many (fewer when fewer rows qualify),
   or an error code < 0 (n < 1 or n > rows: ZS_ERR_ARG). */
ZSDEF int zs_explain_top_pairs(const float *map, int rows, int cols, const unsigned char *row_mask, int n,
                               zs_explain_pair *out);

/* mask[grid*grid]: 1 where the (prepared, 8-bit) sketch's cell holds ink
   (R+G+B <= 300, SPEC 3) in at least 1/64 of its pixels (>= 1 pixel).
   Returns the number of ink cells or an error code < 0. */
ZSDEF int zs_explain_ink_mask(const zs_image *sketch, int grid, unsigned char *mask);

typedef struct zs_explain_view {
    int grid;                      /* patch grid of both panels */
    const zs_explain_pair *pairs;  /* drawn strongest first: outlines + lines */
    int n_pairs;                   /* 0..256 */
    const float *heat;             /* [grid*grid] or NULL: no heat panel */
    const char *title[3];          /* above the sketch, photo and heat panels (NULL: none) */
    const char *caption[4];        /* lines below (NULL: none); caption[0] twice as large */
} zs_explain_view;

/* The picture: sketch and photo are square images of the same size W >= grid
   (the panels; cell p spans pixels [x W/grid, (x+1) W/grid) in both
   directions). Pairs must index cells < grid^2. *out is a new image
   (zs_image_free), zeroed on failure. */
ZSDEF int zs_explain_render(zs_image *out, const zs_image *sketch, const zs_image *photo, const zs_explain_view *v);

/* Sketch-to-photo synthesis on a square photo whose side is a multiple of
   grid: output cell i = photo cell argmax_j map[i * grid^2 + j] (first on
   ties, NaN never wins, an all-NaN row keeps cell i). blend = 0 copies the
   cells exactly; blend > 0 (<= cell/2) extends every cell by blend pixels
   of its photo surroundings and feathers neighbours linearly across the
   border (integer weights). match[grid^2] receives the chosen cells when
   not NULL. *out is a new image, zeroed on failure. */
ZSDEF int zs_explain_synthesize(zs_image *out, const zs_image *photo, int grid, const float *map, int blend, int *match);

/* Text in the built-in font (5x7 glyphs in 6x8 cells, times scale) at
   (x, y), clipped to the image; returns the width in pixels. */
ZSDEF int zs_explain_text(zs_image *im, int x, int y, const char *s, int scale, const unsigned char rgb[3]);
#ifdef __cplusplus
}
#endif
#endif /* ZSESBIR_H */

/* ==================================================================== */
/* ==================================================================== */
/*                          IMPLEMENTATION                              */
/* ==================================================================== */
/* ==================================================================== */
#ifdef ZSESBIR_IMPLEMENTATION
#ifndef ZSESBIR_IMPLEMENTATION_DONE
#define ZSESBIR_IMPLEMENTATION_DONE

/* ==================================================================== */
/* [impl:platform] includes, TLS, allocator, SIMD vector macros         */
/* ==================================================================== */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(ZS_MALLOC) != defined(ZS_FREE)
#error "zsesbir: define both ZS_MALLOC and ZS_FREE, or neither"
#endif
#ifndef ZS_MALLOC
#define ZS_MALLOC(sz, u) ((void)(u), malloc(sz))
#define ZS_FREE(p, u) ((void)(u), free(p))
#endif
#ifndef ZS_ASSERT
#include <assert.h>
#define ZS_ASSERT(x) assert(x)
#endif
#ifndef ZS_MAX_THREADS
#define ZS_MAX_THREADS 64
#endif

#if defined(__cplusplus) && __cplusplus >= 201103L
#define ZS__TLS thread_local
#elif defined(_MSC_VER)
#define ZS__TLS __declspec(thread)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
#define ZS__TLS _Thread_local
#else
#define ZS__TLS __thread
#endif

#ifndef ZSESBIR_NO_THREADS
#include <pthread.h>
#endif

#if defined(ZSESBIR_STATIC)
#define ZS__FN static ZS__MAYBE_UNUSED
#else
#define ZS__FN
#endif
/* private helpers */
#define ZS__PRIV static ZS__MAYBE_UNUSED

#if defined(__GNUC__) || defined(__clang__)
#define ZS__RESTRICT __restrict__
#define ZS__LIKELY(x) __builtin_expect(!!(x), 1)
#define ZS__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ZS__RESTRICT
#define ZS__LIKELY(x) (x)
#define ZS__UNLIKELY(x) (x)
#endif

/* SIMD path, chosen at compile time. The scalar path is always compiled too:
   every vector kernel has a plain C reference beside it, used by the tests. */
#if !defined(ZSESBIR_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define ZS__AVX2 1
#include <immintrin.h>
/* AVX-512F only widens the SGEMM micro-kernel (6 x 32 on zmm registers): on
   cores with full-width 512-bit FMA units (Zen 5, Xeon) that doubles the
   GEMM peak; everything else keeps its AVX2 code. Results are bit-identical
   to the AVX2 kernel (same per-element FMA chain in k order). */
#if defined(__AVX512F__) && !defined(ZSESBIR_NO_AVX512)
#define ZS__AVX512 1
#endif
#elif !defined(ZSESBIR_NO_SIMD) && (defined(__ARM_NEON) || defined(__ARM_NEON__))
#define ZS__NEON 1
#include <arm_neon.h>
#endif

/* Vector macro layer (ggml style): write a loop once over ZS__VW lanes.
   zs__vfma(a, b, c) = a*b + c. Tails are handled by the caller in scalar. */
#if defined(ZS__AVX2)
#define ZS__VW 8
typedef __m256 zs__vf;
#define zs__vload(p) _mm256_loadu_ps(p)
#define zs__vstore(p, v) _mm256_storeu_ps(p, v)
#define zs__vset1(x) _mm256_set1_ps(x)
#define zs__vzero() _mm256_setzero_ps()
#define zs__vadd(a, b) _mm256_add_ps(a, b)
#define zs__vsub(a, b) _mm256_sub_ps(a, b)
#define zs__vmul(a, b) _mm256_mul_ps(a, b)
#define zs__vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define zs__vmax(a, b) _mm256_max_ps(a, b)
#define zs__vmin(a, b) _mm256_min_ps(a, b)
ZS__PRIV float zs__vhsum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}
ZS__PRIV float zs__vhmax(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_max_ps(lo, hi);
    lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_max_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}
#elif defined(ZS__NEON)
#define ZS__VW 4
typedef float32x4_t zs__vf;
#define zs__vload(p) vld1q_f32(p)
#define zs__vstore(p, v) vst1q_f32(p, v)
#define zs__vset1(x) vdupq_n_f32(x)
#define zs__vzero() vdupq_n_f32(0.0f)
#define zs__vadd(a, b) vaddq_f32(a, b)
#define zs__vsub(a, b) vsubq_f32(a, b)
#define zs__vmul(a, b) vmulq_f32(a, b)
#define zs__vfma(a, b, c) vfmaq_f32(c, a, b)
#define zs__vmax(a, b) vmaxq_f32(a, b)
#define zs__vmin(a, b) vminq_f32(a, b)
ZS__PRIV float zs__vhsum(float32x4_t v) {
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
}
ZS__PRIV float zs__vhmax(float32x4_t v) {
    float32x2_t s = vmax_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpmax_f32(s, s), 0);
}
#else
#define ZS__VW 1
typedef float zs__vf;
#define zs__vload(p) (*(p))
#define zs__vstore(p, v) (*(p) = (v))
#define zs__vset1(x) (x)
#define zs__vzero() 0.0f
#define zs__vadd(a, b) ((a) + (b))
#define zs__vsub(a, b) ((a) - (b))
#define zs__vmul(a, b) ((a) * (b))
#define zs__vfma(a, b, c) ((a) * (b) + (c))
#define zs__vmax(a, b) ((a) > (b) ? (a) : (b))
#define zs__vmin(a, b) ((a) < (b) ? (a) : (b))
#define zs__vhsum(v) (v)
#define zs__vhmax(v) (v)
#endif

#ifdef __cplusplus
#define ZS__CAST(T, x) static_cast<T>(x)
#else
#define ZS__CAST(T, x) ((T)(x))
#endif

ZS__PRIV void *zs__malloc(size_t n, void *user) { return ZS_MALLOC(n, user); }
ZS__PRIV void zs__free(void *p, void *user) { if (p) ZS_FREE(p, user); }

/* overflow-checked size arithmetic: returns 0 on overflow */
/* NaN by bits, so the check survives -ffast-math (which folds x != x to 0). */
ZS__PRIV int zs__isnan_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x7fffffffu) > 0x7f800000u;
}

ZS__PRIV int zs__mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* ==================================================================== */
/* [impl:errors] thread-local last error                                */
/* ==================================================================== */

static ZS__TLS char zs__errbuf[512];

ZS__FN const char *zs_last_error(void) { return zs__errbuf; }

ZS__PRIV int zs__fail(int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
ZS__PRIV int zs__fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(zs__errbuf, sizeof zs__errbuf, fmt, ap);
    va_end(ap);
    return code;
}

ZS__FN const char *zs_status_str(int s) {
    switch (s) {
    case ZS_OK: return "ok";
    case ZS_ERR_ARG: return "invalid argument";
    case ZS_ERR_SHAPE: return "shape mismatch";
    case ZS_ERR_NOMEM: return "out of memory";
    case ZS_ERR_IO: return "i/o error";
    case ZS_ERR_FORMAT: return "bad file format";
    case ZS_ERR_UNSUPPORTED: return "unsupported";
    case ZS_ERR_STATE: return "invalid state";
    default: return "unknown status";
    }
}

ZS__FN size_t zs_type_size(zs_type t) {
    switch (t) {
    case ZS_F32: return 4;
    case ZS_F16: return 2;
    case ZS_BF16: return 2;
    case ZS_I32: return 4;
    default: return 0;
    }
}

ZS__FN const char *zs_type_name(zs_type t) {
    switch (t) {
    case ZS_F32: return "f32";
    case ZS_F16: return "f16";
    case ZS_BF16: return "bf16";
    case ZS_I32: return "i32";
    default: return "?";
    }
}

/* ==================================================================== */
/* [impl:half] f16 / bf16 conversion                                    */
/* ==================================================================== */

ZS__PRIV uint32_t zs__f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
ZS__PRIV float zs__u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

ZS__FN uint16_t zs_f32_to_f16(float f) {
    uint32_t x = zs__f2u(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* Inf or NaN (keep a quiet NaN bit) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: Inf */
    if (ax < 0x38800000u) { /* subnormal or zero in f16: round via float add */
        float a = zs__u2f(ax) + 0.5f; /* 0.5 = 2^-1: ulp of f16 subnormals becomes 2^-24 */
        return (uint16_t)(sign | (zs__f2u(a) - 0x3f000000u));
    }
    {
        uint32_t mant_odd = (ax >> 13) & 1u;
        ax += 0xc8000fffu + mant_odd; /* rebias exponent (-112<<23) and round to nearest even */
        return (uint16_t)(sign | (ax >> 13));
    }
}

ZS__FN float zs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return zs__u2f(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f; /* m * 2^-24 */
        return sign ? -v : v;
    }
    return zs__u2f(sign | ((e + 112u) << 23) | (m << 13));
}

ZS__FN uint16_t zs_f32_to_bf16(float f) {
    uint32_t x = zs__f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

ZS__FN float zs_bf16_to_f32(uint16_t h) { return zs__u2f((uint32_t)h << 16); }

ZS__FN int zs_convert(void *dst, zs_type dt, const void *src, zs_type st, size_t n) {
    size_t i;
    if ((!dst || !src) && n) return zs__fail(ZS_ERR_ARG, "zs_convert: NULL buffer");
    if (dt == st && (dt == ZS_F32 || dt == ZS_F16 || dt == ZS_BF16)) {
        memmove(dst, src, n * zs_type_size(dt));
        return ZS_OK;
    }
    if (st == ZS_F32 && dt == ZS_F16) {
        const float *s = (const float *)src; uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++) d[i] = zs_f32_to_f16(s[i]);
    } else if (st == ZS_F32 && dt == ZS_BF16) {
        const float *s = (const float *)src; uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++) d[i] = zs_f32_to_bf16(s[i]);
    } else if (st == ZS_F16 && dt == ZS_F32) {
        const uint16_t *s = (const uint16_t *)src; float *d = (float *)dst;
        for (i = 0; i < n; i++) d[i] = zs_f16_to_f32(s[i]);
    } else if (st == ZS_BF16 && dt == ZS_F32) {
        const uint16_t *s = (const uint16_t *)src; float *d = (float *)dst;
        for (i = 0; i < n; i++) d[i] = zs_bf16_to_f32(s[i]);
    } else if (st == ZS_F16 && dt == ZS_BF16) {
        const uint16_t *s = (const uint16_t *)src; uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++) d[i] = zs_f32_to_bf16(zs_f16_to_f32(s[i]));
    } else if (st == ZS_BF16 && dt == ZS_F16) {
        const uint16_t *s = (const uint16_t *)src; uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++) d[i] = zs_f32_to_f16(zs_bf16_to_f32(s[i]));
    } else {
        return zs__fail(ZS_ERR_UNSUPPORTED, "zs_convert: %s -> %s not supported",
                        zs_type_name(st), zs_type_name(dt));
    }
    return ZS_OK;
}

/* ==================================================================== */
/* [impl:arena] chunked bump allocator with marks                       */
/* ==================================================================== */
/* A list of chunks. Allocation bumps in the current chunk, moving on to the
   next (reused) chunk or inserting a new one. Marks record (chunk, used);
   release rewinds. Chunks are freed only by zs__arena_free, so a steady
   training loop allocates nothing after the first step. */

#define ZS__ALIGN 64

typedef struct zs__chunk {
    struct zs__chunk *next;
    size_t cap, used;
    int external;
    unsigned char *mem; /* ZS__ALIGN aligned */
} zs__chunk;

typedef struct zs__arena {
    zs__chunk *first, *cur;
    size_t chunk_bytes;
    int fixed;          /* caller buffer: never grow */
    void *user;
    size_t used_total;  /* bytes in chunks before cur + cur->used */
    size_t peak;
} zs__arena;

ZS__PRIV void zs__arena_init(zs__arena *a, size_t chunk_bytes, void *user) {
    memset(a, 0, sizeof *a);
    a->chunk_bytes = chunk_bytes ? chunk_bytes : ((size_t)1 << 20);
    a->user = user;
}

ZS__PRIV zs__chunk *zs__chunk_new(size_t cap, void *user) {
    size_t total = sizeof(zs__chunk) + ZS__ALIGN + cap;
    zs__chunk *c;
    if (total < cap) return NULL;
    c = (zs__chunk *)zs__malloc(total, user);
    if (!c) return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    c->external = 0;
    c->mem = (unsigned char *)(((uintptr_t)(c + 1) + ZS__ALIGN - 1) & ~(uintptr_t)(ZS__ALIGN - 1));
    return c;
}

/* Use caller memory as the only chunk. */
ZS__PRIV int zs__arena_init_fixed(zs__arena *a, void *buf, size_t bytes) {
    zs__chunk *c;
    uintptr_t p = (uintptr_t)buf, q;
    memset(a, 0, sizeof *a);
    q = (p + ZS__ALIGN - 1) & ~(uintptr_t)(ZS__ALIGN - 1);
    if (bytes < sizeof(zs__chunk) + 2 * ZS__ALIGN + (q - p)) return 0;
    c = (zs__chunk *)q;
    c->next = NULL;
    c->external = 1;
    c->mem = (unsigned char *)(((uintptr_t)(c + 1) + ZS__ALIGN - 1) & ~(uintptr_t)(ZS__ALIGN - 1));
    c->cap = bytes - (size_t)((uintptr_t)c->mem - p);
    c->used = 0;
    a->first = a->cur = c;
    a->fixed = 1;
    return 1;
}

ZS__PRIV void zs__arena_free(zs__arena *a) {
    zs__chunk *c = a->first;
    while (c) {
        zs__chunk *n = c->next;
        if (!c->external) zs__free(c, a->user);
        c = n;
    }
    a->first = a->cur = NULL;
    a->used_total = 0;
}

ZS__PRIV void *zs__arena_alloc(zs__arena *a, size_t bytes) {
    size_t need = (bytes + ZS__ALIGN - 1) & ~(size_t)(ZS__ALIGN - 1);
    zs__chunk *c;
    if (need < bytes) return NULL;
    if (need == 0) need = ZS__ALIGN;
    c = a->cur;
    if (c && c->cap - c->used >= need) goto take;
    /* move on: reuse the next chunk if it fits, else insert a new one */
    if (c && c->next && c->next->cap >= need) {
        a->used_total += c->cap - c->used; /* count the skipped tail as used */
        c = c->next;
        c->used = 0;
        a->cur = c;
        goto take;
    }
    if (a->fixed) return NULL;
    {
        size_t cap = need > a->chunk_bytes ? need : a->chunk_bytes;
        zs__chunk *n = zs__chunk_new(cap, a->user);
        if (!n) return NULL;
        if (!c) {
            n->next = a->first; /* a->first is NULL here */
            a->first = n;
        } else {
            a->used_total += c->cap - c->used;
            n->next = c->next;
            c->next = n;
        }
        a->cur = c = n;
    }
take:
    {
        void *p = c->mem + c->used;
        c->used += need;
        a->used_total += need;
        if (a->used_total > a->peak) a->peak = a->used_total;
        return p;
    }
}

ZS__PRIV void *zs__arena_calloc(zs__arena *a, size_t bytes) {
    void *p = zs__arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

typedef struct zs__amark { zs__chunk *chunk; size_t used, total; } zs__amark;

ZS__PRIV zs__amark zs__arena_mark(const zs__arena *a) {
    zs__amark m;
    m.chunk = a->cur;
    m.used = a->cur ? a->cur->used : 0;
    m.total = a->used_total;
    return m;
}

ZS__PRIV void zs__arena_release(zs__arena *a, zs__amark m) {
    if (!m.chunk) { /* mark taken before the first allocation */
        a->cur = a->first;
        if (a->cur) a->cur->used = 0;
        a->used_total = 0;
        return;
    }
    a->cur = m.chunk;
    a->cur->used = m.used;
    a->used_total = m.total;
}

/* ==================================================================== */
/* [impl:pool] persistent thread pool                                   */
/* ==================================================================== */
/* zs__pool_run(p, fn, arg) calls fn(arg, ith, nth, ws) for ith = 0..nth-1,
   thread 0 being the caller, and returns when all are done. ws is a per-
   thread scratch arena (use mark/release around its use). Work must be split
   so that results do not depend on nth (split rows, never a reduction).
   A call made from inside a task runs inline with nth = 1 on the same
   thread's scratch arena. */

typedef void (*zs__task_fn)(void *arg, int ith, int nth, zs__arena *ws);

/* Waiting: workers spin on the generation counter for a short while before
   sleeping on the condition variable, and the caller spins on the pending
   count, so back-to-back parallel regions (a ViT issues hundreds per image)
   dispatch in well under a microsecond instead of tens of microseconds for
   a condvar wake-up. Without GCC/Clang atomics the pool only sleeps. */
#if !defined(ZSESBIR_NO_THREADS) && (defined(__GNUC__) || defined(__clang__))
#define ZS__POOL_SPIN 20000 /* polls (~0.1-0.5 ms) before sleeping */
#define ZS__ALOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define ZS__ASTORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#define ZS__AADD(p, v) __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL)
#if defined(__x86_64__) || defined(__i386__)
#define ZS__RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define ZS__RELAX() __asm__ __volatile__("yield")
#else
#define ZS__RELAX() ((void)0)
#endif
#else
#define ZS__POOL_SPIN 0
#define ZS__ALOAD(p) (*(p))
#define ZS__ASTORE(p, v) (*(p) = (v))
#define ZS__AADD(p, v) (*(p) += (v))
#define ZS__RELAX() ((void)0)
#endif

typedef struct zs__pool {
    int nth;
    zs__arena ws[ZS_MAX_THREADS];
#ifndef ZSESBIR_NO_THREADS
    pthread_t th[ZS_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    zs__task_fn fn;
    void *arg;
    unsigned long gen;   /* bumped (release) after fn/arg are set */
    int pending;         /* workers still running the current task */
    int quit;
    int started;
#endif
} zs__pool;

static ZS__TLS zs__arena *zs__tls_ws; /* set while a thread runs a task */

#ifndef ZSESBIR_NO_THREADS
typedef struct zs__worker_arg { zs__pool *p; int ith; } zs__worker_arg;

ZS__PRIV void *zs__worker(void *varg) {
    zs__pool *p = ((zs__worker_arg *)varg)->p;
    int ith = ((zs__worker_arg *)varg)->ith;
    unsigned long seen = 0;
    zs__free(varg, p->ws[0].user);
    for (;;) {
        zs__task_fn fn;
        void *arg;
        int spins;
        for (spins = 0; spins < ZS__POOL_SPIN; spins++) {
            if (ZS__ALOAD(&p->gen) != seen || ZS__ALOAD(&p->quit)) break;
            ZS__RELAX();
        }
        if (ZS__ALOAD(&p->gen) == seen && !ZS__ALOAD(&p->quit)) {
            pthread_mutex_lock(&p->mu);
            while (ZS__ALOAD(&p->gen) == seen && !ZS__ALOAD(&p->quit)) pthread_cond_wait(&p->cv_go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (ZS__ALOAD(&p->quit)) break;
        seen = ZS__ALOAD(&p->gen);
        fn = p->fn;
        arg = p->arg;
        zs__tls_ws = &p->ws[ith];
        fn(arg, ith, p->nth, &p->ws[ith]);
        zs__tls_ws = NULL;
        if (ZS__AADD(&p->pending, -1) == 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}
#endif

ZS__PRIV void zs__pool_shutdown(zs__pool *p) {
    int i;
#ifndef ZSESBIR_NO_THREADS
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        ZS__ASTORE(&p->quit, 1);
        pthread_cond_broadcast(&p->cv_go);
        pthread_mutex_unlock(&p->mu);
        for (i = 1; i < p->nth; i++) pthread_join(p->th[i], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv_go);
        pthread_cond_destroy(&p->cv_done);
        p->started = 0;
    }
#endif
    for (i = 0; i < ZS_MAX_THREADS; i++) zs__arena_free(&p->ws[i]);
}

ZS__PRIV int zs__pool_init(zs__pool *p, int nth, void *user) {
    int i;
    memset(p, 0, sizeof *p);
    if (nth < 1) nth = 1;
    if (nth > ZS_MAX_THREADS) return zs__fail(ZS_ERR_ARG, "n_threads %d exceeds ZS_MAX_THREADS (%d)", nth, ZS_MAX_THREADS);
#ifdef ZSESBIR_NO_THREADS
    nth = 1; /* single-threaded build: requests for more threads run on one */
#endif
    p->nth = nth;
    for (i = 0; i < ZS_MAX_THREADS; i++) zs__arena_init(&p->ws[i], (size_t)4 << 20, user);
#ifndef ZSESBIR_NO_THREADS
    if (nth > 1) {
        if (pthread_mutex_init(&p->mu, NULL)) return zs__fail(ZS_ERR_NOMEM, "pthread_mutex_init failed");
        pthread_cond_init(&p->cv_go, NULL);
        pthread_cond_init(&p->cv_done, NULL);
        p->started = 1;
        for (i = 1; i < nth; i++) {
            zs__worker_arg *wa = (zs__worker_arg *)zs__malloc(sizeof *wa, user);
            if (!wa) { p->nth = i; zs__pool_shutdown(p); return zs__fail(ZS_ERR_NOMEM, "thread pool: out of memory"); }
            wa->p = p;
            wa->ith = i;
            if (pthread_create(&p->th[i], NULL, zs__worker, wa)) {
                zs__free(wa, user);
                p->nth = i;
                zs__pool_shutdown(p);
                return zs__fail(ZS_ERR_NOMEM, "pthread_create failed for thread %d", i);
            }
        }
    }
#endif
    return ZS_OK;
}

ZS__PRIV void zs__pool_run(zs__pool *p, zs__task_fn fn, void *arg) {
    if (!p || p->nth <= 1 || zs__tls_ws) { /* serial, or nested inside a task */
        zs__arena *ws = zs__tls_ws ? zs__tls_ws : &p->ws[0];
        zs__arena *saved = zs__tls_ws;
        zs__tls_ws = ws;
        fn(arg, 0, 1, ws);
        zs__tls_ws = saved;
        return;
    }
#ifndef ZSESBIR_NO_THREADS
    {
        int spins;
        p->fn = fn;
        p->arg = arg;
        ZS__ASTORE(&p->pending, p->nth - 1);
        /* publish under the lock so a worker about to sleep cannot miss it */
        pthread_mutex_lock(&p->mu);
        ZS__AADD(&p->gen, 1);
        pthread_cond_broadcast(&p->cv_go);
        pthread_mutex_unlock(&p->mu);
        zs__tls_ws = &p->ws[0];
        fn(arg, 0, p->nth, &p->ws[0]);
        zs__tls_ws = NULL;
        for (spins = 0; spins < ZS__POOL_SPIN && ZS__ALOAD(&p->pending) > 0; spins++) ZS__RELAX();
        if (ZS__ALOAD(&p->pending) > 0) {
            pthread_mutex_lock(&p->mu);
            while (ZS__ALOAD(&p->pending) > 0) pthread_cond_wait(&p->cv_done, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
    }
#endif
}

/* [lo, hi) of n items for thread ith of nth: contiguous, balanced. */
ZS__PRIV void zs__split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}

/* ==================================================================== */
/* [impl:rng] counter-based random numbers                              */
/* ==================================================================== */
/* splitmix64 of (key, counter): any element's random number can be made
   from its index alone, so dropout masks are identical for every thread
   count and backward can regenerate them instead of storing them. */

ZS__PRIV uint64_t zs__mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* uniform [0,1) with 24 bits from (key, i) */
ZS__PRIV float zs__hash_uniform(uint64_t key, uint64_t i) {
    return (float)(zs__mix64(key ^ zs__mix64(i)) >> 40) * (1.0f / 16777216.0f);
}

/* ==================================================================== */
/* [impl:ctx] context                                                   */
/* ==================================================================== */

struct zs_ctx {
    zs__arena arena;
    zs__pool pool;
    void *alloc_user;
    zs_tensor *tape;     /* last recorded tensor */
    int training;
    int grad_enabled;
    int status;          /* sticky first error */
    uint64_t seed;
    uint64_t rng_counter; /* advanced by every random draw / op key */
    struct zs__gblock *gfree; /* cached gradient buffers of tape nodes */
    size_t gbytes, gpeak;     /* gradient bytes in use now / at most */
};

ZS__FN zs_ctx_params zs_ctx_default_params(void) {
    zs_ctx_params p;
    memset(&p, 0, sizeof p);
    p.arena_bytes = (size_t)64 << 20;
    p.n_threads = 1;
    p.seed = 0x5eed;
    return p;
}

ZS__FN zs_ctx *zs_ctx_create(const zs_ctx_params *pp) {
    zs_ctx_params p = pp ? *pp : zs_ctx_default_params();
    zs_ctx *ctx = (zs_ctx *)zs__malloc(sizeof(zs_ctx), p.alloc_user);
    if (!ctx) { zs__fail(ZS_ERR_NOMEM, "zs_ctx_create: out of memory"); return NULL; }
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc_user = p.alloc_user;
    if (p.arena_buffer) {
        if (!zs__arena_init_fixed(&ctx->arena, p.arena_buffer, p.arena_buffer_bytes)) {
            zs__free(ctx, p.alloc_user);
            zs__fail(ZS_ERR_ARG, "zs_ctx_create: arena buffer of %zu bytes is too small", p.arena_buffer_bytes);
            return NULL;
        }
        ctx->arena.user = p.alloc_user;
    } else {
        zs__arena_init(&ctx->arena, p.arena_bytes ? p.arena_bytes : ((size_t)64 << 20), p.alloc_user);
    }
    if (zs__pool_init(&ctx->pool, p.n_threads, p.alloc_user) != ZS_OK) {
        zs__arena_free(&ctx->arena);
        zs__free(ctx, p.alloc_user);
        return NULL;
    }
    ctx->grad_enabled = 1;
    ctx->seed = p.seed;
    return ctx;
}

ZS__PRIV void zs__gpool_free(zs_ctx *ctx); /* [impl:tape] */

ZS__FN void zs_ctx_free(zs_ctx *ctx) {
    if (!ctx) return;
    zs__pool_shutdown(&ctx->pool);
    zs__gpool_free(ctx);
    zs__arena_free(&ctx->arena);
    zs__free(ctx, ctx->alloc_user);
}

ZS__FN void zs_ctx_reset(zs_ctx *ctx) {
    zs__amark m;
    if (!ctx) return;
    m.chunk = NULL; m.used = 0; m.total = 0;
    zs__arena_release(&ctx->arena, m);
    ctx->tape = NULL;
    ctx->status = ZS_OK;
}

ZS__FN int zs_ctx_status(const zs_ctx *ctx) { return ctx ? ctx->status : ZS_ERR_ARG; }
ZS__FN int zs_ctx_threads(const zs_ctx *ctx) { return ctx ? ctx->pool.nth : 0; }

ZS__FN int zs_ctx_set_threads(zs_ctx *ctx, int n) {
    if (!ctx) return zs__fail(ZS_ERR_ARG, "zs_ctx_set_threads: NULL context");
    if (n < 1 || n > ZS_MAX_THREADS) return zs__fail(ZS_ERR_ARG, "zs_ctx_set_threads: %d threads out of range 1..%d", n, ZS_MAX_THREADS);
    zs__pool_shutdown(&ctx->pool);
    return zs__pool_init(&ctx->pool, n, ctx->alloc_user);
}

ZS__FN int zs_set_training(zs_ctx *ctx, int on) { int o = ctx->training; ctx->training = on != 0; return o; }
ZS__FN int zs_set_grad_enabled(zs_ctx *ctx, int on) { int o = ctx->grad_enabled; ctx->grad_enabled = on != 0; return o; }
ZS__FN void zs_ctx_seed(zs_ctx *ctx, uint64_t seed) { ctx->seed = seed; ctx->rng_counter = 0; }
ZS__FN size_t zs_ctx_arena_used(const zs_ctx *ctx) { return ctx->arena.used_total; }
ZS__FN size_t zs_ctx_arena_peak(const zs_ctx *ctx) { return ctx->arena.peak; }

/* a fresh key for one op's random stream */
ZS__PRIV uint64_t zs__rng_key(zs_ctx *ctx) { return zs__mix64(ctx->seed ^ zs__mix64(++ctx->rng_counter * 0x2545f4914f6cdd1dull)); }

ZS__FN float zs_rand_uniform(zs_ctx *ctx) { return zs__hash_uniform(ctx->seed, ++ctx->rng_counter); }

ZS__FN float zs_rand_normal(zs_ctx *ctx) {
    float u1 = zs_rand_uniform(ctx), u2 = zs_rand_uniform(ctx);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

ZS__FN zs_mark zs_ctx_mark(const zs_ctx *ctx) {
    zs_mark m;
    zs__amark a = zs__arena_mark(&ctx->arena);
    m.chunk = a.chunk;
    m.used = a.used;
    m.tape = ctx->tape;
    /* used_total is recomputed on release from the chunk list */
    return m;
}

ZS__FN void zs_ctx_release(zs_ctx *ctx, zs_mark m) {
    zs__amark a;
    zs__chunk *c;
    size_t total = 0;
    a.chunk = (zs__chunk *)m.chunk;
    a.used = m.used;
    for (c = ctx->arena.first; c && c != a.chunk; c = c->next) total += c->cap;
    a.total = total + m.used;
    zs__arena_release(&ctx->arena, a);
    ctx->tape = m.tape;
}

/* record the first error of a chain in the context; returns NULL */
ZS__PRIV zs_tensor *zs__op_fail(zs_ctx *ctx, int code) {
    if (ctx && ctx->status == ZS_OK) ctx->status = code;
    return NULL;
}

/* ==================================================================== */
/* [impl:tensor] tensor creation, views, parameters                     */
/* ==================================================================== */

ZS__FN int64_t zs_numel(const zs_tensor *t) {
    int64_t n = 1;
    int i;
    for (i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

ZS__FN int zs_is_contiguous(const zs_tensor *t) {
    int64_t s = 1;
    int i;
    for (i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

ZS__FN const char *zs_shape_str(const zs_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    int i;
    if (!cap) return buf;
    buf[0] = 0;
    if (!t) { snprintf(buf, cap, "(null)"); return buf; }
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (i = 0; i < t->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

ZS__FN void zs_tensor_set_name(zs_tensor *t, const char *name) {
    size_t n;
    if (!t) return;
    n = name ? strlen(name) : 0;
    if (n >= sizeof t->name) n = sizeof t->name - 1; /* truncated; zs_params_add refuses long names */
    if (n) memcpy(t->name, name, n);
    t->name[n] = 0;
}

ZS__PRIV void zs__set_contig_strides(zs_tensor *t) {
    int64_t s = 1;
    int i;
    for (i = t->ndim - 1; i >= 0; i--) { t->stride[i] = s; s *= t->shape[i]; }
    for (i = t->ndim; i < ZS_MAX_DIMS; i++) { t->shape[i] = 1; t->stride[i] = 1; }
}

/* validates a shape; returns numel or -1 */
ZS__PRIV int64_t zs__check_shape(int ndim, const int64_t *shape, const char *who) {
    int64_t n = 1;
    int i;
    if (ndim < 0 || ndim > ZS_MAX_DIMS) { zs__fail(ZS_ERR_SHAPE, "%s: %d dims (at most %d)", who, ndim, ZS_MAX_DIMS); return -1; }
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > ((int64_t)1 << 40) / shape[i])) {
            zs__fail(ZS_ERR_SHAPE, "%s: bad dimension %d (%lld)", who, i, (long long)shape[i]);
            return -1;
        }
        n *= shape[i];
    }
    return n;
}

ZS__PRIV zs_tensor *zs__header(zs_ctx *ctx) {
    zs_tensor *t = (zs_tensor *)zs__arena_alloc(&ctx->arena, sizeof(zs_tensor));
    if (!t) { zs__fail(ZS_ERR_NOMEM, "arena exhausted (tensor header)"); return NULL; }
    memset(t, 0, sizeof *t);
    return t;
}

ZS__FN zs_tensor *zs_tensor_new(zs_ctx *ctx, zs_type type, int ndim, const int64_t *shape) {
    int64_t n;
    size_t bytes;
    zs_tensor *t;
    if (!ctx) { zs__fail(ZS_ERR_ARG, "zs_tensor_new: NULL context"); return NULL; }
    n = zs__check_shape(ndim, shape, "zs_tensor_new");
    if (n < 0) return zs__op_fail(ctx, ZS_ERR_SHAPE);
    if (!zs_type_size(type)) { zs__fail(ZS_ERR_ARG, "zs_tensor_new: bad type %d", (int)type); return zs__op_fail(ctx, ZS_ERR_ARG); }
    t = zs__header(ctx);
    if (!t) return zs__op_fail(ctx, ZS_ERR_NOMEM);
    t->type = type;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof(int64_t));
    zs__set_contig_strides(t);
    bytes = (size_t)n * zs_type_size(type);
    t->data = zs__arena_alloc(&ctx->arena, bytes);
    if (!t->data) {
        zs__fail(ZS_ERR_NOMEM, "arena exhausted allocating %zu bytes", bytes);
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    return t;
}

ZS__FN zs_tensor *zs_zeros(zs_ctx *ctx, int ndim, const int64_t *shape) {
    zs_tensor *t = zs_tensor_new(ctx, ZS_F32, ndim, shape);
    if (t) memset(t->data, 0, (size_t)zs_numel(t) * 4);
    return t;
}

ZS__FN zs_tensor *zs_f32_1d(zs_ctx *ctx, int64_t n0) { int64_t s[1]; s[0] = n0; return zs_tensor_new(ctx, ZS_F32, 1, s); }
ZS__FN zs_tensor *zs_f32_2d(zs_ctx *ctx, int64_t n0, int64_t n1) { int64_t s[2]; s[0] = n0; s[1] = n1; return zs_tensor_new(ctx, ZS_F32, 2, s); }
ZS__FN zs_tensor *zs_f32_3d(zs_ctx *ctx, int64_t n0, int64_t n1, int64_t n2) {
    int64_t s[3]; s[0] = n0; s[1] = n1; s[2] = n2;
    return zs_tensor_new(ctx, ZS_F32, 3, s);
}
ZS__FN zs_tensor *zs_f32_4d(zs_ctx *ctx, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    int64_t s[4]; s[0] = n0; s[1] = n1; s[2] = n2; s[3] = n3;
    return zs_tensor_new(ctx, ZS_F32, 4, s);
}

ZS__FN zs_tensor *zs_from_data(zs_ctx *ctx, const float *data, int ndim, const int64_t *shape) {
    zs_tensor *t = zs_tensor_new(ctx, ZS_F32, ndim, shape);
    if (t && data) memcpy(t->data, data, (size_t)zs_numel(t) * 4);
    return t;
}

ZS__FN int zs_tensor_wrap(zs_tensor *t, zs_type type, int ndim, const int64_t *shape, void *data) {
    if (!t) return zs__fail(ZS_ERR_ARG, "zs_tensor_wrap: NULL tensor");
    if (zs__check_shape(ndim, shape, "zs_tensor_wrap") < 0) return ZS_ERR_SHAPE;
    if (!zs_type_size(type)) return zs__fail(ZS_ERR_ARG, "zs_tensor_wrap: bad type");
    memset(t, 0, sizeof *t);
    t->type = type;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof(int64_t));
    zs__set_contig_strides(t);
    t->data = data;
    return ZS_OK;
}

ZS__FN void zs_requires_grad(zs_tensor *t) { if (t) t->flags |= ZS_FLAG_REQUIRES_GRAD; }

ZS__FN float zs_get(const zs_tensor *t, int64_t i) {
    int64_t off = 0, rem = i;
    int d;
    for (d = t->ndim - 1; d >= 0; d--) {
        off += (rem % t->shape[d]) * t->stride[d];
        rem /= t->shape[d];
    }
    switch (t->type) {
    case ZS_F32: return ((const float *)t->data)[off];
    case ZS_F16: return zs_f16_to_f32(((const uint16_t *)t->data)[off]);
    case ZS_BF16: return zs_bf16_to_f32(((const uint16_t *)t->data)[off]);
    case ZS_I32: return (float)((const int32_t *)t->data)[off];
    default: return 0.0f;
    }
}

ZS__FN void zs_tensor_fill(zs_tensor *t, float v) {
    int64_t i, n;
    if (!t || t->type != ZS_F32 || !zs_is_contiguous(t)) return;
    n = zs_numel(t);
    for (i = 0; i < n; i++) ((float *)t->data)[i] = v;
}

ZS__FN void zs_tensor_fill_normal(zs_ctx *ctx, zs_tensor *t, float mean, float std) {
    int64_t i, n;
    if (!t || t->type != ZS_F32 || !zs_is_contiguous(t)) return;
    n = zs_numel(t);
    for (i = 0; i < n; i++) ((float *)t->data)[i] = mean + std * zs_rand_normal(ctx);
}

ZS__FN void zs_tensor_fill_uniform(zs_ctx *ctx, zs_tensor *t, float lo, float hi) {
    int64_t i, n;
    if (!t || t->type != ZS_F32 || !zs_is_contiguous(t)) return;
    n = zs_numel(t);
    for (i = 0; i < n; i++) ((float *)t->data)[i] = lo + (hi - lo) * zs_rand_uniform(ctx);
}

/* Walk every element of a <=4-D strided layout in logical order. */
#define ZS__FOR4(shape, i0, i1, i2, i3)                      \
    for (i0 = 0; i0 < (shape)[0]; i0++)                      \
        for (i1 = 0; i1 < (shape)[1]; i1++)                  \
            for (i2 = 0; i2 < (shape)[2]; i2++)              \
                for (i3 = 0; i3 < (shape)[3]; i3++)

/* shape/stride right-aligned to 4 dims (leading 1s) */
ZS__PRIV void zs__align4(const zs_tensor *t, int64_t *shape, int64_t *stride) {
    int i, off = ZS_MAX_DIMS - t->ndim;
    for (i = 0; i < ZS_MAX_DIMS; i++) { shape[i] = 1; stride[i] = 0; }
    for (i = 0; i < t->ndim; i++) { shape[off + i] = t->shape[i]; stride[off + i] = t->stride[i]; }
}

ZS__FN int zs_tensor_copy_out(void *dst, zs_type dt, const zs_tensor *src) {
    int64_t sh[4], st[4], i0, i1, i2, i3, k = 0;
    size_t es = zs_type_size(dt);
    if (!dst || !src) return zs__fail(ZS_ERR_ARG, "zs_tensor_copy_out: NULL argument");
    if (zs_is_contiguous(src)) return zs_convert(dst, dt, src->data, src->type, (size_t)zs_numel(src));
    zs__align4(src, sh, st);
    ZS__FOR4(sh, i0, i1, i2, i3) {
        int64_t off = i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
        const char *p = (const char *)src->data + off * (int64_t)zs_type_size(src->type);
        int r = zs_convert((char *)dst + k * (int64_t)es, dt, p, src->type, 1);
        if (r) return r;
        k++;
    }
    return ZS_OK;
}

/* -- parameter store -- */

ZS__FN void zs_params_init(zs_params *p, void *alloc_user) {
    memset(p, 0, sizeof *p);
    p->alloc_user = alloc_user;
}

ZS__FN int zs_params_add(zs_params *p, const char *name, int ndim, const int64_t *shape) {
    int64_t n;
    zs_tensor *t;
    if (!p) return zs__fail(ZS_ERR_ARG, "zs_params_add: NULL store"), -1;
    if (p->data) return zs__fail(ZS_ERR_STATE, "zs_params_add(%s): store already allocated", name ? name : ""), -1;
    n = zs__check_shape(ndim, shape, "zs_params_add");
    if (n < 0) return -1;
    if (name && strlen(name) >= sizeof p->t[0].name)
        return zs__fail(ZS_ERR_ARG, "zs_params_add: name \"%.40s...\" longer than %d characters", name, (int)sizeof p->t[0].name - 1), -1;
    if (p->count == p->cap) {
        int nc = p->cap ? p->cap * 2 : 64;
        zs_tensor *nt = (zs_tensor *)zs__malloc((size_t)nc * sizeof(zs_tensor), p->alloc_user);
        if (!nt) return zs__fail(ZS_ERR_NOMEM, "zs_params_add: out of memory"), -1;
        if (p->t) memcpy(nt, p->t, (size_t)p->count * sizeof(zs_tensor));
        zs__free(p->t, p->alloc_user);
        p->t = nt;
        p->cap = nc;
    }
    t = &p->t[p->count];
    zs_tensor_wrap(t, ZS_F32, ndim, shape, NULL);
    zs_tensor_set_name(t, name);
    t->flags = ZS_FLAG_PARAM | ZS_FLAG_REQUIRES_GRAD;
    p->numel += (size_t)n;
    return p->count++;
}

ZS__FN int zs_params_alloc_data(zs_params *p) {
    size_t bytes, off = 0;
    int i;
    if (!p) return zs__fail(ZS_ERR_ARG, "zs_params_alloc: NULL store");
    if (p->data) return zs__fail(ZS_ERR_STATE, "zs_params_alloc: already allocated");
    if (!zs__mul_ok(p->numel ? p->numel : 1, sizeof(float), &bytes))
        return zs__fail(ZS_ERR_NOMEM, "zs_params_alloc: size overflow");
    p->data = (float *)zs__malloc(bytes, p->alloc_user);
    if (!p->data) return zs__fail(ZS_ERR_NOMEM, "zs_params_alloc: cannot allocate %zu bytes", bytes);
    memset(p->data, 0, bytes);
    for (i = 0; i < p->count; i++) {
        p->t[i].data = p->data + off;
        p->t[i].grad = NULL;
        p->t[i].flags &= ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
        off += (size_t)zs_numel(&p->t[i]);
    }
    return ZS_OK;
}

ZS__FN int zs_params_alloc_grad(zs_params *p) {
    size_t bytes, off = 0;
    int i;
    if (!p || !p->data) return zs__fail(ZS_ERR_STATE, "zs_params_alloc_grad: allocate the data first");
    if (p->grad) return ZS_OK;
    bytes = (p->numel ? p->numel : 1) * sizeof(float);
    p->grad = (float *)zs__malloc(bytes, p->alloc_user);
    if (!p->grad) return zs__fail(ZS_ERR_NOMEM, "zs_params_alloc_grad: cannot allocate %zu bytes", bytes);
    memset(p->grad, 0, bytes);
    for (i = 0; i < p->count; i++) {
        p->t[i].grad = p->grad + off;
        if (!(p->t[i].flags & ZS_FLAG_FROZEN)) p->t[i].flags |= ZS_FLAG_REQUIRES_GRAD;
        off += (size_t)zs_numel(&p->t[i]);
    }
    return ZS_OK;
}

ZS__FN int zs_params_alloc(zs_params *p) {
    int rc = zs_params_alloc_data(p);
    if (rc != ZS_OK) return rc;
    rc = zs_params_alloc_grad(p);
    if (rc != ZS_OK) {
        zs__free(p->data, p->alloc_user);
        p->data = NULL;
    }
    return rc;
}

ZS__FN zs_tensor *zs_params_find(zs_params *p, const char *name) {
    int i;
    for (i = 0; p && name && i < p->count; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    return NULL;
}

ZS__FN void zs_params_zero_grad(zs_params *p) {
    if (p && p->grad) memset(p->grad, 0, p->numel * sizeof(float));
}

ZS__FN void zs_params_free(zs_params *p) {
    if (!p) return;
    zs__free(p->t, p->alloc_user);
    zs__free(p->data, p->alloc_user);
    zs__free(p->grad, p->alloc_user);
    memset(p, 0, sizeof *p);
}

ZS__FN void zs_param_set_frozen(zs_tensor *t, int frozen) {
    if (!t) return;
    if (frozen) t->flags = (t->flags | ZS_FLAG_FROZEN) & ~(unsigned)ZS_FLAG_REQUIRES_GRAD;
    else {
        t->flags &= ~(unsigned)ZS_FLAG_FROZEN;
        if (t->grad || !(t->flags & ZS_FLAG_PARAM)) t->flags |= ZS_FLAG_REQUIRES_GRAD;
    }
}

/* ==================================================================== */
/* [impl:tape] op recording and the backward driver                     */
/* ==================================================================== */
/* Writing an op:
     zs_tensor *zs_foo(zs_ctx *ctx, zs_tensor *a) {
         zs_tensor *out;
         if (!zs__ok1(ctx, a, "zs_foo")) return NULL;       // NULL/type checks
         ... shape checks: return zs__shape_fail(ctx, "zs_foo", a, b, "why") ...
         out = zs__op_new(ctx, "foo", zs__foo_bwd, ndim, shape, a, NULL, NULL, NULL);
         if (!out) return NULL;
         ... compute into out->data; if (out->flags & ZS_FLAG_ON_TAPE) save
             what backward needs in out->saved / out->ip / out->fp ...
         return out;
     }
     static int zs__foo_bwd(zs_ctx *ctx, zs_tensor *out) {
         float *ga = zs__grad(ctx, out->src[0]);  // NULL: no grad wanted
         if (ga) ga[i] += ...out->grad[i]...;    // ACCUMULATE
         return ZS_OK;
     }
   Inputs to kernels must be contiguous: use zs__contig(ctx, t) first (a
   differentiable copy when needed). */

ZS__PRIV int zs__needs_grad(const zs_tensor *t) { return t && (t->flags & ZS_FLAG_REQUIRES_GRAD); }

/* Check that inputs are non-NULL f32 tensors; NULL inputs propagate quietly. */
ZS__PRIV int zs__ok(zs_ctx *ctx, const char *who, zs_tensor *a, zs_tensor *b, zs_tensor *c) {
    zs_tensor *xs[3];
    int i;
    xs[0] = a; xs[1] = b; xs[2] = c;
    if (!ctx) { zs__fail(ZS_ERR_ARG, "%s: NULL context", who); return 0; }
    for (i = 0; i < 3; i++) {
        if (!xs[i]) continue;
        if (xs[i]->type != ZS_F32) {
            zs__fail(ZS_ERR_ARG, "%s: input %d is %s, ops need f32 (use zs_to_f32)", who, i, zs_type_name(xs[i]->type));
            zs__op_fail(ctx, ZS_ERR_ARG);
            return 0;
        }
    }
    return 1;
}
#define zs__ok1(ctx, a, who) ((a) && zs__ok(ctx, who, a, NULL, NULL))
#define zs__ok2(ctx, a, b, who) ((a) && (b) && zs__ok(ctx, who, a, b, NULL))
#define zs__ok3(ctx, a, b, c, who) ((a) && (b) && (c) && zs__ok(ctx, who, a, b, c))

ZS__PRIV zs_tensor *zs__shape_fail(zs_ctx *ctx, const char *who, const zs_tensor *a, const zs_tensor *b, const char *why) {
    char sa[96], sb[96];
    if (b) zs__fail(ZS_ERR_SHAPE, "%s: %s (shapes %s and %s)", who, why, zs_shape_str(a, sa, sizeof sa), zs_shape_str(b, sb, sizeof sb));
    else zs__fail(ZS_ERR_SHAPE, "%s: %s (shape %s)", who, why, zs_shape_str(a, sa, sizeof sa));
    return zs__op_fail(ctx, ZS_ERR_SHAPE);
}

/* New contiguous f32 output; recorded on the tape when a source needs grad. */
ZS__PRIV zs_tensor *zs__op_new(zs_ctx *ctx, const char *op, zs_backward_fn bwd, int ndim, const int64_t *shape,
                               zs_tensor *s0, zs_tensor *s1, zs_tensor *s2, zs_tensor *s3) {
    zs_tensor *t = zs_tensor_new(ctx, ZS_F32, ndim, shape);
    if (!t) return NULL;
    t->op = op;
    t->src[0] = s0; t->src[1] = s1; t->src[2] = s2; t->src[3] = s3;
    if (ctx->grad_enabled && bwd && (zs__needs_grad(s0) || zs__needs_grad(s1) || zs__needs_grad(s2) || zs__needs_grad(s3))) {
        t->flags |= ZS_FLAG_REQUIRES_GRAD | ZS_FLAG_ON_TAPE;
        t->backward = bwd;
        t->tape_prev = ctx->tape;
        ctx->tape = t;
    }
    return t;
}

/* A view: shares a's data; shape/strides set by the caller afterwards. */
ZS__PRIV zs_tensor *zs__view_new(zs_ctx *ctx, const char *op, zs_backward_fn bwd, zs_tensor *a) {
    zs_tensor *t = zs__header(ctx);
    if (!t) return zs__op_fail(ctx, ZS_ERR_NOMEM);
    t->type = a->type;
    t->ndim = a->ndim;
    memcpy(t->shape, a->shape, sizeof t->shape);
    memcpy(t->stride, a->stride, sizeof t->stride);
    t->data = a->data;
    t->op = op;
    t->src[0] = a;
    if (ctx->grad_enabled && bwd && zs__needs_grad(a)) {
        t->flags |= ZS_FLAG_REQUIRES_GRAD | ZS_FLAG_ON_TAPE;
        t->backward = bwd;
        t->tape_prev = ctx->tape;
        ctx->tape = t;
    }
    return t;
}

/* Gradients of recorded op outputs come from a free-list pool: the tape runs
   in reverse topological order, so a node's gradient is dead as soon as its
   own backward has run and is returned at once (PyTorch frees them the same
   way). Blocks are kept for reuse: a steady training loop mallocs nothing
   after its first step. Leaves (inputs marked with zs_requires_grad) keep
   arena gradients the caller reads after backward; parameters own theirs.
   With a caller-owned arena buffer (no malloc promised) every gradient
   stays in the arena instead. */
typedef struct zs__gblock { struct zs__gblock *next; size_t cap; } zs__gblock;
#define ZS__GHDR ZS__ALIGN /* block header room; data stays 64-byte aligned */

ZS__PRIV float *zs__galloc(zs_ctx *ctx, size_t bytes) {
    zs__gblock **pp, **best = NULL, *b;
    size_t limit = bytes + bytes / 2 + 4096;
    for (pp = &ctx->gfree; *pp; pp = &(*pp)->next) /* best fit within 1.5x */
        if ((*pp)->cap >= bytes && (*pp)->cap <= limit && (!best || (*pp)->cap < (*best)->cap)) best = pp;
    if (best) {
        b = *best;
        *best = b->next;
    } else {
        size_t cap = (bytes + 4095) & ~(size_t)4095;
        void *raw = zs__malloc(cap + ZS__GHDR + ZS__ALIGN, ctx->alloc_user);
        if (!raw) return NULL;
        /* keep the raw pointer just before the aligned header */
        b = (zs__gblock *)(((uintptr_t)raw + sizeof(void *) + ZS__ALIGN - 1) & ~(uintptr_t)(ZS__ALIGN - 1));
        ((void **)b)[-1] = raw;
        b->cap = cap;
    }
    b->next = NULL;
    ctx->gbytes += b->cap;
    if (ctx->gbytes > ctx->gpeak) ctx->gpeak = ctx->gbytes;
    memset((char *)b + ZS__GHDR, 0, bytes);
    return (float *)((char *)b + ZS__GHDR);
}

ZS__PRIV void zs__gfree(zs_ctx *ctx, float *p) {
    zs__gblock *b;
    if (!p) return;
    b = (zs__gblock *)((char *)p - ZS__GHDR);
    ctx->gbytes -= b->cap;
    b->next = ctx->gfree;
    ctx->gfree = b;
}

ZS__PRIV void zs__gpool_free(zs_ctx *ctx) {
    while (ctx->gfree) {
        zs__gblock *n = ctx->gfree->next;
        zs__free(((void **)ctx->gfree)[-1], ctx->alloc_user);
        ctx->gfree = n;
    }
}

/* Gradient buffer of t (allocated zeroed on first use), or NULL when t does
   not want a gradient. Parameters bring their own buffers. */
ZS__PRIV float *zs__grad(zs_ctx *ctx, zs_tensor *t) {
    if (!zs__needs_grad(t)) return NULL;
    if (!t->grad) {
        size_t bytes = (size_t)zs_numel(t) * sizeof(float);
        /* a caller-owned arena buffer means no malloc at all: no pool then */
        if ((t->flags & ZS_FLAG_ON_TAPE) && !ctx->arena.fixed) t->grad = zs__galloc(ctx, bytes ? bytes : 4);
        else t->grad = (float *)zs__arena_calloc(&ctx->arena, bytes);
        if (!t->grad) zs__fail(ZS_ERR_NOMEM, "out of memory allocating a %zu-byte gradient", bytes);
    }
    return t->grad;
}

/* Runs the backward of every tape node from head down, returning each
   node's gradient to the pool once its backward has run. */
ZS__PRIV int zs__run_tape(zs_ctx *ctx, zs_tensor *head) {
    zs_tensor *t;
    int rc = ZS_OK;
    for (t = head; t; t = t->tape_prev) {
        if (!t->grad) continue;
        if (t->backward && rc == ZS_OK) rc = t->backward(ctx, t);
        if ((t->flags & ZS_FLAG_ON_TAPE) && !(t->flags & ZS_FLAG_PARAM)) {
            if (!ctx->arena.fixed) zs__gfree(ctx, t->grad);
            t->grad = NULL;
        }
    }
    return rc;
}

/* Backward helpers report a failed gradient allocation through this. */
#define ZS__GRAD_OR_FAIL(g, ctx, t)                                          \
    do {                                                                     \
        (g) = zs__grad(ctx, t);                                              \
        if (zs__needs_grad(t) && !(g)) return ZS_ERR_NOMEM;                  \
    } while (0)

ZS__FN int zs_backward(zs_ctx *ctx, zs_tensor *loss) {
    float *g;
    int rc = ZS_OK;
    if (!ctx) return zs__fail(ZS_ERR_ARG, "zs_backward: NULL context");
    if (!loss) return zs__fail(ZS_ERR_STATE, "zs_backward: loss is NULL (an earlier op failed: %s)", zs_last_error());
    if (zs_numel(loss) != 1) {
        char s[64];
        return zs__fail(ZS_ERR_SHAPE, "zs_backward: loss must have one element, got %s", zs_shape_str(loss, s, sizeof s));
    }
    if (!zs__needs_grad(loss)) return zs__fail(ZS_ERR_STATE, "zs_backward: loss does not depend on anything that requires grad");
    g = zs__grad(ctx, loss);
    if (!g) return ZS_ERR_NOMEM;
    g[0] += 1.0f;
    /* every intermediate gradient is returned as it dies, so a second
       backward starts clean */
    rc = zs__run_tape(ctx, ctx->tape);
    return rc;
}

/* -- activation checkpointing -- */
ZS__PRIV zs_tensor *zs__contig(zs_ctx *ctx, zs_tensor *a); /* [impl:views] */
typedef struct zs__ckpt { zs_checkpoint_fn fn; void *user; uint64_t rng_counter; } zs__ckpt;

ZS__PRIV int zs__ckpt_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs__ckpt *ck = (zs__ckpt *)out->saved;
    zs_tensor *x = out->src[0], *xl, *y;
    zs_tensor *tape = ctx->tape;
    uint64_t ctr = ctx->rng_counter;
    int old_grad = ctx->grad_enabled, rc = ZS_OK;
    float *gx = NULL, *gy;
    zs_mark mk;
    int64_t i, n;
    /* x's gradient must outlive the recompute region: allocate it first */
    if (zs__needs_grad(x) && !(gx = zs__grad(ctx, x))) return ZS_ERR_NOMEM;
    mk = zs_ctx_mark(ctx);
    /* a leaf that shares x's data, so the recomputed graph stops there */
    xl = zs__header(ctx);
    if (!xl) return ZS_ERR_NOMEM;
    *xl = *x;
    xl->grad = NULL; xl->op = NULL; xl->backward = NULL; xl->tape_prev = NULL; xl->saved = NULL;
    xl->flags = zs__needs_grad(x) ? ZS_FLAG_REQUIRES_GRAD : 0; /* e.g. input images: no dx */
    memset(xl->src, 0, sizeof xl->src);
    ctx->tape = NULL;
    ctx->grad_enabled = 1;
    ctx->rng_counter = ck->rng_counter; /* replay the forward's random draws */
    y = ck->fn(ctx, ck->user, xl);
    if (!y || zs_numel(y) != zs_numel(out)) {
        rc = zs__fail(ZS_ERR_STATE, "zs_checkpoint: recompute failed or changed shape (%s)", y ? "shape" : zs_last_error());
    } else if (zs__needs_grad(y)) {
        if (!(gy = zs__grad(ctx, y))) rc = ZS_ERR_NOMEM;
        n = zs_numel(out);
        for (i = 0; rc == ZS_OK && i < n; i++) gy[i] += out->grad[i];
        rc = zs__run_tape(ctx, ctx->tape);
        if (rc == ZS_OK && gx && xl->grad) {
            n = zs_numel(x);
            for (i = 0; i < n; i++) gx[i] += xl->grad[i];
        }
    }
    ctx->grad_enabled = old_grad;
    ctx->rng_counter = ctr;
    zs_ctx_release(ctx, mk); /* drops the recomputed activations */
    ctx->tape = tape;
    return rc;
}

ZS__FN zs_tensor *zs_checkpoint(zs_ctx *ctx, zs_checkpoint_fn fn, void *user, zs_tensor *x) {
    zs__ckpt *ck;
    zs_tensor *y, *out;
    zs_mark mk;
    zs__amark wm;
    zs__arena *ws;
    uint64_t ctr;
    int64_t shape[ZS_MAX_DIMS];
    int ndim;
    size_t bytes;
    float *tmp;
    if (!ctx || !fn) { zs__fail(ZS_ERR_ARG, "zs_checkpoint: NULL argument"); return zs__op_fail(ctx, ZS_ERR_ARG); }
    if (!x) return NULL;
    if (!ctx->grad_enabled) return fn(ctx, user, x);
    ck = (zs__ckpt *)zs__arena_alloc(&ctx->arena, sizeof *ck);
    if (!ck) { zs__fail(ZS_ERR_NOMEM, "zs_checkpoint: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    ck->fn = fn;
    ck->user = user;
    ck->rng_counter = ctr = ctx->rng_counter;
    /* forward without recording; keep only the output (parked in the
       caller thread's scratch arena while the region is released) */
    mk = zs_ctx_mark(ctx);
    ctx->grad_enabled = 0;
    y = fn(ctx, user, x);
    ctx->grad_enabled = 1;
    if (!y) { zs_ctx_release(ctx, mk); return NULL; }
    y = zs__contig(ctx, y);
    if (!y || y->type != ZS_F32) { zs_ctx_release(ctx, mk); return zs__op_fail(ctx, ZS_ERR_STATE); }
    ndim = y->ndim;
    memcpy(shape, y->shape, sizeof shape);
    bytes = (size_t)zs_numel(y) * sizeof(float);
    ws = &ctx->pool.ws[0];
    wm = zs__arena_mark(ws);
    tmp = (float *)zs__arena_alloc(ws, bytes ? bytes : 4);
    if (!tmp) { zs_ctx_release(ctx, mk); zs__fail(ZS_ERR_NOMEM, "zs_checkpoint: scratch exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    memcpy(tmp, y->data, bytes);
    zs_ctx_release(ctx, mk);
    out = zs_tensor_new(ctx, ZS_F32, ndim, shape);
    if (out) memcpy(out->data, tmp, bytes);
    zs__arena_release(ws, wm);
    if (!out) return NULL;
    out->op = "checkpoint";
    out->src[0] = x;
    out->saved = ck;
    out->flags |= ZS_FLAG_REQUIRES_GRAD | ZS_FLAG_ON_TAPE;
    out->backward = zs__ckpt_bwd;
    out->tape_prev = ctx->tape;
    ctx->tape = out;
    (void)ctr;
    return out;
}

/* Multi-threaded row loop helper: calls fn(arg, lo, hi) on [lo,hi) slices. */
typedef void (*zs__rows_fn)(void *arg, int64_t lo, int64_t hi, zs__arena *ws);
typedef struct zs__rows_job { zs__rows_fn fn; void *arg; int64_t n; } zs__rows_job;
ZS__PRIV void zs__rows_task(void *a, int ith, int nth, zs__arena *ws) {
    zs__rows_job *j = (zs__rows_job *)a;
    int64_t lo, hi;
    zs__split(j->n, ith, nth, &lo, &hi);
    if (hi > lo) j->fn(j->arg, lo, hi, ws);
}
/* rows below min_rows_per_thread*2 run on one thread (dispatch costs ~10 us) */
ZS__PRIV void zs__parallel_rows(zs_ctx *ctx, int64_t n, int64_t min_per_thread, zs__rows_fn fn, void *arg) {
    zs__rows_job j;
    j.fn = fn; j.arg = arg; j.n = n;
    if (n <= 0) return;
    if (ctx->pool.nth <= 1 || n < 2 * (min_per_thread > 0 ? min_per_thread : 1)) {
        zs__arena *ws = zs__tls_ws ? zs__tls_ws : &ctx->pool.ws[0];
        fn(arg, 0, n, ws);
        return;
    }
    zs__pool_run(&ctx->pool, zs__rows_task, &j);
}

typedef struct zs__pfor { void (*fn)(void *, int64_t); void *user; } zs__pfor;
ZS__PRIV void zs__pfor_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__pfor *p = (zs__pfor *)arg;
    int64_t i;
    (void)ws;
    for (i = lo; i < hi; i++) p->fn(p->user, i);
}
ZS__FN void zs_ctx_parallel_for(zs_ctx *ctx, int64_t n, void (*fn)(void *user, int64_t i), void *user) {
    zs__pfor p;
    int64_t i;
    if (!fn || n <= 0) return;
    if (!ctx) {
        for (i = 0; i < n; i++) fn(user, i);
        return;
    }
    p.fn = fn; p.user = user;
    zs__parallel_rows(ctx, n, 1, zs__pfor_rows, &p);
}

/* ==================================================================== */
/* [impl:gemm] SGEMM kernels (scalar reference, AVX2, NEON)             */
/* ==================================================================== */
/* Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
   op(A) = A (lda >= K) or A^T (A stored [K,M], lda >= M); same for B.
   beta == 0 means C is written without being read (NaNs in C ignored);
   alpha == 0 or K == 0 gives C = beta * C without reading A or B (BLAS).

   Design (GotoBLAS / BLIS):
     for jc over N in NC columns            B block kc x nc  (L2/L3)
       for pc over K in KC steps            A block mc x kc  (L2)
         pack op(B)[pc:, jc:] into NR-column micro-panels (k-major)
         for ic over M in MC rows
           pack op(A)[ic:, pc:] into MR-row micro-panels (k-major)
           for jr over NR panels, ir over MR panels:
             micro-kernel: MR x NR register tile += A panel * B panel
   The packing routines absorb the four transpose cases and the leading
   dimensions, and zero-pad edge panels, so the micro-kernels only ever see
   full MR x NR tiles; edge tiles are stored through a small buffer with the
   same vector arithmetic.
   Register tiles: AVX2+FMA 6x16 (12 ymm accumulators, 2 B loads and a
   broadcast per k), NEON (AArch64) 8x12 (24 accumulators,
   vfmaq_laneq_f32), scalar 4x8 (also used on 32-bit ARM). KC = 256 (kc x NR B micro-panel stays in
   L1), MC <= 264 rows (A block in L2), NC <= 1024 columns; the block sizes
   are balanced to the problem (K = 300 -> two blocks of 152).

   Summation order: every C element is sum over KC-blocks, each block an FMA
   chain in k order from zero, then C = alpha*acc (+ beta*C) for the first
   block and C += alpha*acc for the others. KC depends on K only, so the
   result of an element does not depend on how M and N are cut into tiles or
   threads: results are bit-identical for every thread count.

   Threads: a problem (or a batch of problems) is cut into units = batch x
   tm x tn rectangles of C, rows in MR panels and columns in NR panels; K is
   never split. Threads take units one at a time from an atomic counter (a
   thread that wakes late or is descheduled just takes fewer) and pack their
   own A and B blocks: no barrier, no shared scratch. When a rectangle's
   whole-K row band of A (or column band of B) is small (<= 640 KiB, it
   stays in L2), a thread packs it once and reuses it for all its
   rectangles in that band, so a fine split over N costs no extra A packing.
   A small cost model (tile work, packing, imbalance, ~30 us dispatch)
   chooses tm x tn, the band caching, and whether to go parallel at all:
   small problems run on the calling thread, M = 197 ViT shapes split over N
   (tn = 16..32), batched small matrices spread their items over threads. */

/* scalar reference: plain triple loop, float accumulation in k order */
ZS__PRIV void zs__sgemm_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int64_t ldc) {
    int64_t i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            float s = 0.0f;
            for (k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = alpha * s + (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]);
        }
}

/* -- block sizes ----------------------------------------------------------- */
#if defined(ZS__AVX512)
#define ZS__GEMM_MR 6
#define ZS__GEMM_NR 32
#elif defined(ZS__AVX2)
#define ZS__GEMM_MR 6
#define ZS__GEMM_NR 16
#elif defined(ZS__NEON) && defined(__aarch64__)
#define ZS__GEMM_NEON 1
#define ZS__GEMM_MR 8
#define ZS__GEMM_NR 12
#else
#define ZS__GEMM_MR 4
#define ZS__GEMM_NR 8
#endif
/* cache blocking upper bounds (KC: k depth, MC: rows of an A block, NC:
   columns of a B block); overridable with -D for tuning experiments. On the
   2-core Zen 4 development VM, MC 96..264, KC 256..384 and NC 1024..2048
   were within measurement noise of each other. */
#ifndef ZS__GEMM_KC
#define ZS__GEMM_KC 256
#endif
#ifndef ZS__GEMM_MC
#define ZS__GEMM_MC 264
#endif
#ifndef ZS__GEMM_NC
#define ZS__GEMM_NC 1024
#endif

/* how C is updated by a micro-tile: C = alpha*acc / C = alpha*acc + C /
   C = alpha*acc + beta*C (first K block with beta 0 / 1 / other) */
enum { ZS__GEMM_SET = 0, ZS__GEMM_ACC = 1, ZS__GEMM_SCALE = 2 };

/* -- packing --------------------------------------------------------------- */
/* One micro-panel: dst[k*W + r] = src[r*rs + k*ks] for r < w, 0 for w <= r < W,
   k < kc. ks == 1: the panel's rows run along memory (a transpose);
   rs == 1: each k is a contiguous run of w floats (a copy). */
ZS__PRIV void zs__gemm_pack_panel(float *ZS__RESTRICT dst, int W, int w, int64_t kc,
                                  const float *ZS__RESTRICT src, int64_t rs, int64_t ks) {
    int64_t k = 0;
    int r;
    if (rs == 1 && w == W) {
        for (k = 0; k < kc; k++) memcpy(dst + k * W, src + k * ks, (size_t)W * sizeof(float));
        return;
    }
#if defined(ZS__AVX2)
    if (ks == 1 && w == W && W % 8 == 0) {
        /* 8x8 transposes: 8 rows x 8 k -> 8 k x 8 rows */
        int h;
        for (; k + 8 <= kc; k += 8)
            for (h = 0; h < W; h += 8) {
                const float *s = src + h * rs + k;
                __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + rs);
                __m256 r2 = _mm256_loadu_ps(s + 2 * rs), r3 = _mm256_loadu_ps(s + 3 * rs);
                __m256 r4 = _mm256_loadu_ps(s + 4 * rs), r5 = _mm256_loadu_ps(s + 5 * rs);
                __m256 r6 = _mm256_loadu_ps(s + 6 * rs), r7 = _mm256_loadu_ps(s + 7 * rs);
                __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
                __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
                __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
                __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
                float *d = dst + k * W + h;
                _mm256_storeu_ps(d + 0 * W, _mm256_permute2f128_ps(s0, s4, 0x20));
                _mm256_storeu_ps(d + 1 * W, _mm256_permute2f128_ps(s1, s5, 0x20));
                _mm256_storeu_ps(d + 2 * W, _mm256_permute2f128_ps(s2, s6, 0x20));
                _mm256_storeu_ps(d + 3 * W, _mm256_permute2f128_ps(s3, s7, 0x20));
                _mm256_storeu_ps(d + 4 * W, _mm256_permute2f128_ps(s0, s4, 0x31));
                _mm256_storeu_ps(d + 5 * W, _mm256_permute2f128_ps(s1, s5, 0x31));
                _mm256_storeu_ps(d + 6 * W, _mm256_permute2f128_ps(s2, s6, 0x31));
                _mm256_storeu_ps(d + 7 * W, _mm256_permute2f128_ps(s3, s7, 0x31));
            }
    } else if (ks == 1 && w == W && W == 6) {
        /* 6 rows (+2 zero rows) x 8 k, transposed; 6 floats stored per k */
        const __m256 z = _mm256_setzero_ps();
        for (; k + 8 <= kc; k += 8) {
            const float *s = src + k;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + rs);
            __m256 r2 = _mm256_loadu_ps(s + 2 * rs), r3 = _mm256_loadu_ps(s + 3 * rs);
            __m256 r4 = _mm256_loadu_ps(s + 4 * rs), r5 = _mm256_loadu_ps(s + 5 * rs);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
            __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
            __m256 s4 = _mm256_shuffle_ps(t4, z, 0x44), s5 = _mm256_shuffle_ps(t4, z, 0xee);
            __m256 s6 = _mm256_shuffle_ps(t5, z, 0x44), s7 = _mm256_shuffle_ps(t5, z, 0xee);
            __m256 c[8];
            float *d = dst + k * 6;
            int j;
            c[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
            c[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
            c[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
            c[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
            c[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
            c[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
            c[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
            c[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
            for (j = 0; j < 8; j++) {
                _mm_storeu_ps(d + 6 * j, _mm256_castps256_ps128(c[j]));
                _mm_storel_pi((__m64 *)(void *)(d + 6 * j + 4), _mm256_extractf128_ps(c[j], 1));
            }
        }
    }
#endif
    for (; k < kc; k++) {
        float *d = dst + k * W;
        const float *s = src + k * ks;
        for (r = 0; r < w; r++) d[r] = s[r * rs];
        for (; r < W; r++) d[r] = 0.0f;
    }
}

/* Copy case of a whole block (rows of the source run along the panels'
   width): dst panel p, row k = src[k*ks + p*W .. +W]. Walks the source in
   chunks of 8 k-rows across all panels: reads stay sequential and each
   panel gets a contiguous run of writes. W is a compile-time constant in
   each instance so the row copies become vector moves. */
#define ZS__GEMM_PACK_ROWS(name, W)                                                           \
    ZS__PRIV void name(float *ZS__RESTRICT dst, int64_t n, int64_t kc, const float *ZS__RESTRICT src, \
                       int64_t ks) {                                                          \
        int64_t k0, k, p, full = n / (W), rest = n - full * (W), pstride = (int64_t)(W) * kc;  \
        for (k0 = 0; k0 < kc; k0 += 8) {                                                      \
            int64_t k1 = k0 + 8 < kc ? k0 + 8 : kc;                                           \
            for (p = 0; p < full; p++)                                                        \
                for (k = k0; k < k1; k++)                                                     \
                    memcpy(dst + p * pstride + k * (W), src + k * ks + p * (W), (W) * sizeof(float)); \
            if (rest)                                                                         \
                for (k = k0; k < k1; k++) {                                                   \
                    float *d = dst + full * pstride + k * (W);                                \
                    const float *s = src + k * ks + full * (W);                               \
                    int r;                                                                    \
                    for (r = 0; r < rest; r++) d[r] = s[r];                                   \
                    for (; r < (W); r++) d[r] = 0.0f;                                         \
                }                                                                             \
        }                                                                                     \
    }
ZS__GEMM_PACK_ROWS(zs__gemm_pack_rows_mr, ZS__GEMM_MR)
ZS__GEMM_PACK_ROWS(zs__gemm_pack_rows_nr, ZS__GEMM_NR)
#undef ZS__GEMM_PACK_ROWS

/* op(A)[i0:i0+mc, p0:p0+kc] -> ceil(mc/MR) panels of MR x kc */
ZS__PRIV void zs__gemm_pack_a(float *dst, int ta, const float *A, int64_t lda, int64_t i0, int64_t mc,
                              int64_t p0, int64_t kc) {
    int64_t i;
    if (ta) {
        zs__gemm_pack_rows_mr(dst, mc, kc, A + p0 * lda + i0, lda);
        return;
    }
    for (i = 0; i < mc; i += ZS__GEMM_MR) {
        int w = mc - i < ZS__GEMM_MR ? (int)(mc - i) : ZS__GEMM_MR;
        zs__gemm_pack_panel(dst + i * kc, ZS__GEMM_MR, w, kc, A + (i0 + i) * lda + p0, lda, 1);
    }
}

/* op(B)[p0:p0+kc, j0:j0+nc] -> ceil(nc/NR) panels of kc x NR */
ZS__PRIV void zs__gemm_pack_b(float *dst, int tb, const float *B, int64_t ldb, int64_t j0, int64_t nc,
                              int64_t p0, int64_t kc) {
    int64_t j;
    if (!tb) {
        zs__gemm_pack_rows_nr(dst, nc, kc, B + p0 * ldb + j0, ldb);
        return;
    }
    for (j = 0; j < nc; j += ZS__GEMM_NR) {
        int w = nc - j < ZS__GEMM_NR ? (int)(nc - j) : ZS__GEMM_NR;
        zs__gemm_pack_panel(dst + j * kc, ZS__GEMM_NR, w, kc, B + (j0 + j) * ldb + p0, ldb, 1);
    }
}

/* -- micro-kernels ----------------------------------------------------------
   zs__gemm_ukr(kc, a, b, c, ldc, mr, nr, alpha, beta, mode):
   acc[MR][NR] = sum_k a[k*MR+i] * b[k*NR+j] (FMA chain from zero, k order),
   then the mr x nr corner of C is updated according to mode. */

#if defined(ZS__AVX512)

/* C row update of 16 floats, one rounding pattern for full and edge tiles */
#define ZS__GEMM_UPD16(p, acc)                                                        \
    do {                                                                              \
        if (mode == ZS__GEMM_SET) _mm512_storeu_ps(p, _mm512_mul_ps(va, acc));        \
        else if (mode == ZS__GEMM_ACC)                                                \
            _mm512_storeu_ps(p, _mm512_fmadd_ps(va, acc, _mm512_loadu_ps(p)));         \
        else                                                                          \
            _mm512_storeu_ps(p, _mm512_fmadd_ps(va, acc, _mm512_mul_ps(vb, _mm512_loadu_ps(p)))); \
    } while (0)

#define ZS__GEMM_K6x32(o)                                                             \
    do {                                                                              \
        b0 = _mm512_load_ps(b + 32 * (o));                                            \
        b1 = _mm512_load_ps(b + 32 * (o) + 16);                                       \
        av = _mm512_set1_ps(a[6 * (o) + 0]);                                          \
        c00 = _mm512_fmadd_ps(av, b0, c00); c01 = _mm512_fmadd_ps(av, b1, c01);       \
        av = _mm512_set1_ps(a[6 * (o) + 1]);                                          \
        c10 = _mm512_fmadd_ps(av, b0, c10); c11 = _mm512_fmadd_ps(av, b1, c11);       \
        av = _mm512_set1_ps(a[6 * (o) + 2]);                                          \
        c20 = _mm512_fmadd_ps(av, b0, c20); c21 = _mm512_fmadd_ps(av, b1, c21);       \
        av = _mm512_set1_ps(a[6 * (o) + 3]);                                          \
        c30 = _mm512_fmadd_ps(av, b0, c30); c31 = _mm512_fmadd_ps(av, b1, c31);       \
        av = _mm512_set1_ps(a[6 * (o) + 4]);                                          \
        c40 = _mm512_fmadd_ps(av, b0, c40); c41 = _mm512_fmadd_ps(av, b1, c41);       \
        av = _mm512_set1_ps(a[6 * (o) + 5]);                                          \
        c50 = _mm512_fmadd_ps(av, b0, c50); c51 = _mm512_fmadd_ps(av, b1, c51);       \
    } while (0)

/* packed panels come from the arena, 64-byte aligned, so b loads are aligned */
ZS__PRIV void zs__gemm_ukr(int64_t kc, const float *ZS__RESTRICT a, const float *ZS__RESTRICT b,
                           float *c, int64_t ldc, int mr, int nr, float alpha, float beta, int mode) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m512 b0, b1, av;
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int64_t k = kc;
    int i;
    for (i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);
    }
    for (; k >= 4; k -= 4) {
        ZS__GEMM_K6x32(0);
        ZS__GEMM_K6x32(1);
        ZS__GEMM_K6x32(2);
        ZS__GEMM_K6x32(3);
        a += 24;
        b += 128;
    }
    for (; k > 0; k--) {
        ZS__GEMM_K6x32(0);
        a += 6;
        b += 32;
    }
    if (mr == 6 && nr == 32) {
        ZS__GEMM_UPD16(c, c00); ZS__GEMM_UPD16(c + 16, c01); c += ldc;
        ZS__GEMM_UPD16(c, c10); ZS__GEMM_UPD16(c + 16, c11); c += ldc;
        ZS__GEMM_UPD16(c, c20); ZS__GEMM_UPD16(c + 16, c21); c += ldc;
        ZS__GEMM_UPD16(c, c30); ZS__GEMM_UPD16(c + 16, c31); c += ldc;
        ZS__GEMM_UPD16(c, c40); ZS__GEMM_UPD16(c + 16, c41); c += ldc;
        ZS__GEMM_UPD16(c, c50); ZS__GEMM_UPD16(c + 16, c51);
    } else {
        float acc[6 * 32], row[32];
        _mm512_storeu_ps(acc + 0, c00); _mm512_storeu_ps(acc + 16, c01);
        _mm512_storeu_ps(acc + 32, c10); _mm512_storeu_ps(acc + 48, c11);
        _mm512_storeu_ps(acc + 64, c20); _mm512_storeu_ps(acc + 80, c21);
        _mm512_storeu_ps(acc + 96, c30); _mm512_storeu_ps(acc + 112, c31);
        _mm512_storeu_ps(acc + 128, c40); _mm512_storeu_ps(acc + 144, c41);
        _mm512_storeu_ps(acc + 160, c50); _mm512_storeu_ps(acc + 176, c51);
        for (i = 0; i < mr; i++) {
            float *p = nr == 32 ? c + i * ldc : row;
            __m512 x0 = _mm512_loadu_ps(acc + 32 * i), x1 = _mm512_loadu_ps(acc + 32 * i + 16);
            if (nr < 32 && mode != ZS__GEMM_SET) memcpy(row, c + i * ldc, (size_t)nr * sizeof(float));
            ZS__GEMM_UPD16(p, x0);
            ZS__GEMM_UPD16(p + 16, x1);
            if (nr < 32) memcpy(c + i * ldc, row, (size_t)nr * sizeof(float));
        }
    }
}
#undef ZS__GEMM_K6x32
#undef ZS__GEMM_UPD16

#elif defined(ZS__AVX2)

/* C row update of 8 floats, one rounding pattern for full and edge tiles */
#define ZS__GEMM_UPD8(p, acc)                                                         \
    do {                                                                              \
        if (mode == ZS__GEMM_SET) _mm256_storeu_ps(p, _mm256_mul_ps(va, acc));        \
        else if (mode == ZS__GEMM_ACC)                                                \
            _mm256_storeu_ps(p, _mm256_fmadd_ps(va, acc, _mm256_loadu_ps(p)));         \
        else                                                                          \
            _mm256_storeu_ps(p, _mm256_fmadd_ps(va, acc, _mm256_mul_ps(vb, _mm256_loadu_ps(p)))); \
    } while (0)

#define ZS__GEMM_K6x16(o)                                                             \
    do {                                                                              \
        b0 = _mm256_load_ps(b + 16 * (o));                                            \
        b1 = _mm256_load_ps(b + 16 * (o) + 8);                                        \
        av = _mm256_broadcast_ss(a + 6 * (o) + 0);                                    \
        c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 1);                                    \
        c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 2);                                    \
        c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 3);                                    \
        c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 4);                                    \
        c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);       \
        av = _mm256_broadcast_ss(a + 6 * (o) + 5);                                    \
        c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);       \
    } while (0)

ZS__PRIV void zs__gemm_ukr(int64_t kc, const float *ZS__RESTRICT a, const float *ZS__RESTRICT b,
                           float *c, int64_t ldc, int mr, int nr, float alpha, float beta, int mode) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m256 b0, b1, av;
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    int64_t k = kc;
    int i;
    for (i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);
    }
    for (; k >= 4; k -= 4) {
        ZS__GEMM_K6x16(0);
        ZS__GEMM_K6x16(1);
        ZS__GEMM_K6x16(2);
        ZS__GEMM_K6x16(3);
        a += 24;
        b += 64;
    }
    for (; k > 0; k--) {
        ZS__GEMM_K6x16(0);
        a += 6;
        b += 16;
    }
    if (mr == 6 && nr == 16) {
        ZS__GEMM_UPD8(c, c00); ZS__GEMM_UPD8(c + 8, c01); c += ldc;
        ZS__GEMM_UPD8(c, c10); ZS__GEMM_UPD8(c + 8, c11); c += ldc;
        ZS__GEMM_UPD8(c, c20); ZS__GEMM_UPD8(c + 8, c21); c += ldc;
        ZS__GEMM_UPD8(c, c30); ZS__GEMM_UPD8(c + 8, c31); c += ldc;
        ZS__GEMM_UPD8(c, c40); ZS__GEMM_UPD8(c + 8, c41); c += ldc;
        ZS__GEMM_UPD8(c, c50); ZS__GEMM_UPD8(c + 8, c51);
    } else {
        float acc[6 * 16], row[16];
        _mm256_storeu_ps(acc + 0, c00); _mm256_storeu_ps(acc + 8, c01);
        _mm256_storeu_ps(acc + 16, c10); _mm256_storeu_ps(acc + 24, c11);
        _mm256_storeu_ps(acc + 32, c20); _mm256_storeu_ps(acc + 40, c21);
        _mm256_storeu_ps(acc + 48, c30); _mm256_storeu_ps(acc + 56, c31);
        _mm256_storeu_ps(acc + 64, c40); _mm256_storeu_ps(acc + 72, c41);
        _mm256_storeu_ps(acc + 80, c50); _mm256_storeu_ps(acc + 88, c51);
        for (i = 0; i < mr; i++) {
            float *p = nr == 16 ? c + i * ldc : row;
            __m256 x0 = _mm256_loadu_ps(acc + 16 * i), x1 = _mm256_loadu_ps(acc + 16 * i + 8);
            if (nr < 16 && mode != ZS__GEMM_SET) memcpy(row, c + i * ldc, (size_t)nr * sizeof(float));
            ZS__GEMM_UPD8(p, x0);
            ZS__GEMM_UPD8(p + 8, x1);
            if (nr < 16) memcpy(c + i * ldc, row, (size_t)nr * sizeof(float));
        }
    }
}
#undef ZS__GEMM_K6x16
#undef ZS__GEMM_UPD8

#elif defined(ZS__GEMM_NEON)

#define ZS__GEMM_UPD4(p, acc)                                                         \
    do {                                                                              \
        if (mode == ZS__GEMM_SET) vst1q_f32(p, vmulq_f32(va, acc));                   \
        else if (mode == ZS__GEMM_ACC) vst1q_f32(p, vfmaq_f32(vld1q_f32(p), va, acc)); \
        else vst1q_f32(p, vfmaq_f32(vmulq_f32(vb, vld1q_f32(p)), va, acc));            \
    } while (0)

#define ZS__GEMM_ROW12(r, av, lane)                                                   \
    c##r##0 = vfmaq_laneq_f32(c##r##0, b0, av, lane);                                 \
    c##r##1 = vfmaq_laneq_f32(c##r##1, b1, av, lane);                                 \
    c##r##2 = vfmaq_laneq_f32(c##r##2, b2, av, lane)

ZS__PRIV void zs__gemm_ukr(int64_t kc, const float *ZS__RESTRICT a, const float *ZS__RESTRICT b,
                           float *c, int64_t ldc, int mr, int nr, float alpha, float beta, int mode) {
    float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    float32x4_t c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    float32x4_t c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    float32x4_t c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    const float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    float acc[8 * 12], row[12];
    int64_t k;
    int i, j;
    for (k = 0; k < kc; k++) {
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        ZS__GEMM_ROW12(0, a0, 0);
        ZS__GEMM_ROW12(1, a0, 1);
        ZS__GEMM_ROW12(2, a0, 2);
        ZS__GEMM_ROW12(3, a0, 3);
        ZS__GEMM_ROW12(4, a1, 0);
        ZS__GEMM_ROW12(5, a1, 1);
        ZS__GEMM_ROW12(6, a1, 2);
        ZS__GEMM_ROW12(7, a1, 3);
        a += 8;
        b += 12;
    }
    vst1q_f32(acc + 0, c00); vst1q_f32(acc + 4, c01); vst1q_f32(acc + 8, c02);
    vst1q_f32(acc + 12, c10); vst1q_f32(acc + 16, c11); vst1q_f32(acc + 20, c12);
    vst1q_f32(acc + 24, c20); vst1q_f32(acc + 28, c21); vst1q_f32(acc + 32, c22);
    vst1q_f32(acc + 36, c30); vst1q_f32(acc + 40, c31); vst1q_f32(acc + 44, c32);
    vst1q_f32(acc + 48, c40); vst1q_f32(acc + 52, c41); vst1q_f32(acc + 56, c42);
    vst1q_f32(acc + 60, c50); vst1q_f32(acc + 64, c51); vst1q_f32(acc + 68, c52);
    vst1q_f32(acc + 72, c60); vst1q_f32(acc + 76, c61); vst1q_f32(acc + 80, c62);
    vst1q_f32(acc + 84, c70); vst1q_f32(acc + 88, c71); vst1q_f32(acc + 92, c72);
    for (i = 0; i < mr; i++) {
        float *p = nr == 12 ? c + i * ldc : row;
        if (nr < 12 && mode != ZS__GEMM_SET) memcpy(row, c + i * ldc, (size_t)nr * sizeof(float));
        for (j = 0; j < 12; j += 4) {
            float32x4_t x = vld1q_f32(acc + 12 * i + j);
            ZS__GEMM_UPD4(p + j, x);
        }
        if (nr < 12) memcpy(c + i * ldc, row, (size_t)nr * sizeof(float));
    }
}
#undef ZS__GEMM_ROW12
#undef ZS__GEMM_UPD4

#else /* scalar micro-kernel */

ZS__PRIV void zs__gemm_ukr(int64_t kc, const float *ZS__RESTRICT a, const float *ZS__RESTRICT b,
                           float *c, int64_t ldc, int mr, int nr, float alpha, float beta, int mode) {
    float acc[ZS__GEMM_MR * ZS__GEMM_NR];
    int64_t k;
    int i, j;
    for (i = 0; i < ZS__GEMM_MR * ZS__GEMM_NR; i++) acc[i] = 0.0f;
    for (k = 0; k < kc; k++) {
        for (i = 0; i < ZS__GEMM_MR; i++) {
            float ai = a[i];
            for (j = 0; j < ZS__GEMM_NR; j++) acc[i * ZS__GEMM_NR + j] += ai * b[j];
        }
        a += ZS__GEMM_MR;
        b += ZS__GEMM_NR;
    }
    for (i = 0; i < mr; i++) {
        float *p = c + i * ldc;
        const float *x = acc + i * ZS__GEMM_NR;
        if (mode == ZS__GEMM_SET) for (j = 0; j < nr; j++) p[j] = alpha * x[j];
        else if (mode == ZS__GEMM_ACC) for (j = 0; j < nr; j++) p[j] = alpha * x[j] + p[j];
        else for (j = 0; j < nr; j++) p[j] = alpha * x[j] + beta * p[j];
    }
}

#endif

/* -- blocked driver ---------------------------------------------------------- */

typedef struct zs__gemm_prob {
    int ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
} zs__gemm_prob;

/* n split into ceil(n/max) near-equal blocks, rounded up to a multiple of q */
ZS__PRIV int64_t zs__gemm_blk(int64_t n, int64_t max, int64_t q) {
    int64_t nb = (n + max - 1) / max, b;
    if (nb < 1) nb = 1;
    b = (n + nb - 1) / nb;
    return (b + q - 1) / q * q;
}

/* the K block size: a function of K alone (this fixes the summation order) */
ZS__PRIV int64_t zs__gemm_kc(int64_t K) {
    int64_t kc = zs__gemm_blk(K, ZS__GEMM_KC, 8);
    return kc > K ? K : kc;
}

ZS__PRIV int64_t zs__gemm_rup(int64_t n, int64_t q) { return (n + q - 1) / q * q; }

/* C = beta * C on a block (K == 0 or alpha == 0); beta == 0 writes zeros */
ZS__PRIV void zs__gemm_scale(const zs__gemm_prob *p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    int64_t i, j;
    for (i = m0; i < m1; i++) {
        float *c = p->C + i * p->ldc;
        if (p->beta == 0.0f) for (j = n0; j < n1; j++) c[j] = 0.0f;
        else if (p->beta != 1.0f) for (j = n0; j < n1; j++) c[j] *= p->beta;
    }
}

/* Whole-K packings of a row band / column band, reusable across the
   rectangles of C that share it. Layout: K block pc (size kc) at offset
   pc * rup(rows, MR) (resp. NR), inside it the panels of the band, so the
   block of rows [ic, ic+mc) starts at + (ic - m0) * kc. */
ZS__PRIV void zs__gemm_pack_a_all(float *dst, const zs__gemm_prob *p, int64_t m0, int64_t m1) {
    int64_t kcb = zs__gemm_kc(p->K), pad = zs__gemm_rup(m1 - m0, ZS__GEMM_MR), pc;
    for (pc = 0; pc < p->K; pc += kcb)
        zs__gemm_pack_a(dst + pc * pad, p->ta, p->A, p->lda, m0, m1 - m0, pc, p->K - pc < kcb ? p->K - pc : kcb);
}
ZS__PRIV void zs__gemm_pack_b_all(float *dst, const zs__gemm_prob *p, int64_t n0, int64_t n1) {
    int64_t kcb = zs__gemm_kc(p->K), pad = zs__gemm_rup(n1 - n0, ZS__GEMM_NR), pc;
    for (pc = 0; pc < p->K; pc += kcb)
        zs__gemm_pack_b(dst + pc * pad, p->tb, p->B, p->ldb, n0, n1 - n0, pc, p->K - pc < kcb ? p->K - pc : kcb);
}

/* C[m0:m1, n0:n1] of one problem, all of K, on the calling thread. Block
   edges m0, n0 must be multiples of MR, NR (or the matrix edge). apk / bpk:
   the band already packed by zs__gemm_pack_a_all / _b_all, or NULL. */
ZS__PRIV int zs__gemm_part(zs__arena *ws, const zs__gemm_prob *p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                           const float *apk, const float *bpk) {
    int64_t kcb, mcb, ncb, jc, pc, ic, jr, ir, mpad, npad;
    float *ap = NULL, *bp = NULL;
    zs__amark mk;
    if (m1 <= m0 || n1 <= n0) return ZS_OK;
    if (p->K == 0 || p->alpha == 0.0f) {
        zs__gemm_scale(p, m0, m1, n0, n1);
        return ZS_OK;
    }
    kcb = zs__gemm_kc(p->K);
    mcb = zs__gemm_blk(m1 - m0, ZS__GEMM_MC, ZS__GEMM_MR);
    ncb = zs__gemm_blk(n1 - n0, ZS__GEMM_NC, ZS__GEMM_NR);
    mpad = zs__gemm_rup(m1 - m0, ZS__GEMM_MR);
    npad = zs__gemm_rup(n1 - n0, ZS__GEMM_NR);
    mk = zs__arena_mark(ws);
    if (!apk) ap = (float *)zs__arena_alloc(ws, (size_t)(mcb * kcb) * sizeof(float));
    if (!bpk) bp = (float *)zs__arena_alloc(ws, (size_t)(ncb * kcb) * sizeof(float));
    if ((!apk && !ap) || (!bpk && !bp)) {
        zs__arena_release(ws, mk);
        return zs__fail(ZS_ERR_NOMEM, "zs__sgemm: scratch arena exhausted (%lld bytes of packing buffers)",
                        (long long)((mcb + ncb) * kcb * (int64_t)sizeof(float)));
    }
    for (jc = n0; jc < n1; jc += ncb) {
        int64_t nc = n1 - jc < ncb ? n1 - jc : ncb;
        for (pc = 0; pc < p->K; pc += kcb) {
            int64_t kc = p->K - pc < kcb ? p->K - pc : kcb;
            int mode = pc > 0 ? ZS__GEMM_ACC
                       : p->beta == 0.0f ? ZS__GEMM_SET : p->beta == 1.0f ? ZS__GEMM_ACC : ZS__GEMM_SCALE;
            const float *bb = bpk ? bpk + pc * npad + (jc - n0) * kc : bp;
            if (!bpk) zs__gemm_pack_b(bp, p->tb, p->B, p->ldb, jc, nc, pc, kc);
            for (ic = m0; ic < m1; ic += mcb) {
                int64_t mc = m1 - ic < mcb ? m1 - ic : mcb;
                const float *ab = apk ? apk + pc * mpad + (ic - m0) * kc : ap;
                if (!apk) zs__gemm_pack_a(ap, p->ta, p->A, p->lda, ic, mc, pc, kc);
                for (jr = 0; jr < nc; jr += ZS__GEMM_NR) {
                    int nr = nc - jr < ZS__GEMM_NR ? (int)(nc - jr) : ZS__GEMM_NR;
                    for (ir = 0; ir < mc; ir += ZS__GEMM_MR) {
                        int mr = mc - ir < ZS__GEMM_MR ? (int)(mc - ir) : ZS__GEMM_MR;
                        zs__gemm_ukr(kc, ab + ir * kc, bb + jr * kc, p->C + (ic + ir) * p->ldc + jc + jr, p->ldc,
                                     mr, nr, p->alpha, p->beta, mode);
                    }
                }
            }
        }
    }
    zs__arena_release(ws, mk);
    return ZS_OK;
}

/* argument checks shared by the entry points */
ZS__PRIV int zs__gemm_check(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
                            const float *B, int64_t ldb, int tb, const float *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0)
        return zs__fail(ZS_ERR_ARG, "zs__sgemm: negative size M=%lld N=%lld K=%lld", (long long)M, (long long)N, (long long)K);
    if (M == 0 || N == 0) return ZS_OK;
    if (!C || (K > 0 && (!A || !B))) return zs__fail(ZS_ERR_ARG, "zs__sgemm: NULL matrix");
    if ((ta ? K : M) > 1 && lda < (ta ? M : K))
        return zs__fail(ZS_ERR_ARG, "zs__sgemm: lda %lld < %lld", (long long)lda, (long long)(ta ? M : K));
    if ((tb ? N : K) > 1 && ldb < (tb ? K : N))
        return zs__fail(ZS_ERR_ARG, "zs__sgemm: ldb %lld < %lld", (long long)ldb, (long long)(tb ? K : N));
    if (M > 1 && ldc < N) return zs__fail(ZS_ERR_ARG, "zs__sgemm: ldc %lld < %lld", (long long)ldc, (long long)N);
    return ZS_OK;
}

/* single-threaded entry: scratch from ws (mark/release inside) */
ZS__PRIV int zs__sgemm_st(zs__arena *ws, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb,
                          float beta, float *C, int64_t ldc) {
    zs__gemm_prob p;
    int rc = zs__gemm_check(M, N, K, A, lda, ta, B, ldb, tb, C, ldc);
    if (rc || M == 0 || N == 0) return rc;
    if (!ws) return zs__fail(ZS_ERR_ARG, "zs__sgemm_st: NULL scratch arena");
    p.ta = ta; p.tb = tb; p.M = M; p.N = N; p.K = K; p.alpha = alpha; p.beta = beta;
    p.A = A; p.B = B; p.C = C; p.lda = lda; p.ldb = ldb; p.ldc = ldc;
    return zs__gemm_part(ws, &p, 0, M, 0, N, NULL, NULL);
}

/* -- threading ------------------------------------------------------------- */

/* A whole-K band is kept packed (and shared by the rectangles of a thread
   that use it) when it takes at most this many bytes. */
#define ZS__GEMM_CACHE_BYTES ((int64_t)640 << 10)

typedef struct zs__gemm_job {
    zs__gemm_prob p;             /* batch item 0 */
    int64_t sA, sB, sC, batch;
    int64_t tm, tn;              /* per-item grid of rectangles */
    int64_t mpan, npan;          /* MR / NR panels per item */
    int cache_a, cache_b;        /* keep whole-K packed bands */
    int64_t next;                /* next unit to hand out (atomic) */
    int rc[ZS_MAX_THREADS];
} zs__gemm_job;

/* pointers of batch item b (NULL operands, allowed when K == 0, stay NULL) */
ZS__PRIV void zs__gemm_item(zs__gemm_prob *q, int64_t b, int64_t sA, int64_t sB, int64_t sC) {
    if (q->A) q->A += b * sA;
    if (q->B) q->B += b * sB;
    q->C += b * sC;
}

/* rows (or columns) of rectangle i of t over n panels of q */
ZS__PRIV void zs__gemm_range(int64_t npan, int64_t q, int64_t n, int64_t i, int64_t t, int64_t *lo, int64_t *hi) {
    int64_t a, b;
    zs__split(npan, (int)i, (int)t, &a, &b);
    *lo = a * q;
    *hi = b * q < n ? b * q : n;
}

/* Units are handed out one at a time from an atomic counter (threads that
   start late or get descheduled simply take fewer); without atomics each
   thread takes a fixed contiguous share. Either way a unit's result does
   not depend on who computes it. */
#if !defined(ZSESBIR_NO_THREADS) && !defined(ZS__GEMM_STATIC) && (defined(__GNUC__) || defined(__clang__))
#define ZS__GEMM_DYNAMIC 1
#endif

ZS__PRIV void zs__gemm_task(void *arg, int ith, int nth, zs__arena *ws) {
    zs__gemm_job *j = (zs__gemm_job *)arg;
    int64_t per = j->tm * j->tn, units = j->batch * per, lo = 0, hi;
    int64_t rows_max = (j->mpan + j->tm - 1) / j->tm * ZS__GEMM_MR;
    int64_t cols_max = (j->npan + j->tn - 1) / j->tn * ZS__GEMM_NR;
    const float *akey = NULL, *bkey = NULL;
    int64_t ak0 = -1, bk0 = -1;
    float *abuf = NULL, *bbuf = NULL;
    zs__amark mk = zs__arena_mark(ws);
    j->rc[ith] = ZS_OK;
    if (j->cache_a) abuf = (float *)zs__arena_alloc(ws, (size_t)(rows_max * j->p.K) * sizeof(float));
    if (j->cache_b) bbuf = (float *)zs__arena_alloc(ws, (size_t)(cols_max * j->p.K) * sizeof(float));
#ifdef ZS__GEMM_DYNAMIC
    (void)nth;
    (void)lo;
    hi = units;
#else
    zs__split(units, ith, nth, &lo, &hi);
#endif
    for (;;) {
        int64_t u, b, im, in, m0, m1, n0, n1;
        const float *apk = NULL, *bpk = NULL;
        zs__gemm_prob q = j->p;
        int rc;
#ifdef ZS__GEMM_DYNAMIC
        u = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
#else
        u = lo++;
#endif
        if (u >= hi) break;
        b = u / per;
        im = (u % per) / j->tn;
        in = u % j->tn;
        zs__gemm_range(j->mpan, ZS__GEMM_MR, q.M, im, j->tm, &m0, &m1);
        zs__gemm_range(j->npan, ZS__GEMM_NR, q.N, in, j->tn, &n0, &n1);
        zs__gemm_item(&q, b, j->sA, j->sB, j->sC);
        if (abuf) {
            if (q.A != akey || m0 != ak0) { zs__gemm_pack_a_all(abuf, &q, m0, m1); akey = q.A; ak0 = m0; }
            apk = abuf;
        }
        if (bbuf) {
            if (q.B != bkey || n0 != bk0) { zs__gemm_pack_b_all(bbuf, &q, n0, n1); bkey = q.B; bk0 = n0; }
            bpk = bbuf;
        }
        rc = zs__gemm_part(ws, &q, m0, m1, n0, n1, apk, bpk);
        if (rc) { j->rc[ith] = rc; break; }
    }
    zs__arena_release(ws, mk);
}

/* Cost model in FMA lane-ops (16 per cycle with AVX2): tile work, packing
   (~8 per packed float), a small per-rectangle overhead, a tenth of a
   rectangle of expected imbalance at the end, and ~30 us for a parallel dispatch
   (waking the pool's sleeping workers: 5-50 us measured on a 2-core VM).
   Chooses tm x tn rectangles per item, which bands stay packed, and
   whether to run in parallel at all. The AVX-512 kernel does twice the
   lane-ops per cycle, so the fixed costs are twice as many lane-ops there. */
#ifndef ZS__GEMM_COST_SCALE
#if defined(ZS__AVX512)
#define ZS__GEMM_COST_SCALE 2.0
#else
#define ZS__GEMM_COST_SCALE 1.0
#endif
#endif
#define ZS__GEMM_PACK_COST (8.0 * ZS__GEMM_COST_SCALE)
#define ZS__GEMM_UNIT_COST (5.0e4 * ZS__GEMM_COST_SCALE)
#define ZS__GEMM_DISPATCH_COST (1.5e6 * ZS__GEMM_COST_SCALE)

typedef struct zs__gemm_plan { int64_t tm, tn; int cache_a, cache_b, par; double cost; } zs__gemm_plan;

ZS__PRIV zs__gemm_plan zs__gemm_cost(int64_t mpan, int64_t npan, int64_t K, int64_t batch, int b_shared,
                                     int64_t tm, int64_t tn, int nth) {
    zs__gemm_plan pl;
    int64_t rows = (mpan + tm - 1) / tm * ZS__GEMM_MR, cols = (npan + tn - 1) / tn * ZS__GEMM_NR;
    int64_t units = batch * tm * tn, per = (units + nth - 1) / nth, na = per, nb = per;
    double tile = (double)rows * (double)cols * (double)K;
    pl.tm = tm; pl.tn = tn; pl.par = nth > 1;
    pl.cache_a = tn > 1 && rows * K * (int64_t)sizeof(float) <= ZS__GEMM_CACHE_BYTES;
    pl.cache_b = tn == 1 && (tm > 1 || (b_shared && batch > 1)) &&
                 cols * K * (int64_t)sizeof(float) <= ZS__GEMM_CACHE_BYTES;
    if (pl.cache_a) na = per / tn + 1 < per ? per / tn + 1 : per;
    if (pl.cache_b) nb = b_shared ? 1 : (per / tm + 1 < per ? per / tm + 1 : per);
    pl.cost = (double)per * (tile + ZS__GEMM_UNIT_COST) + ZS__GEMM_PACK_COST * (double)K * ((double)na * (double)rows + (double)nb * (double)cols) +
              (nth > 1 ? 0.1 * tile + ZS__GEMM_DISPATCH_COST : 0.0);
    return pl;
}

ZS__PRIV zs__gemm_plan zs__gemm_choose(int64_t M, int64_t N, int64_t K, int64_t batch, int b_shared, int nth) {
    int64_t mpan = (M + ZS__GEMM_MR - 1) / ZS__GEMM_MR, npan = (N + ZS__GEMM_NR - 1) / ZS__GEMM_NR, tm, tn;
    zs__gemm_plan best = zs__gemm_cost(mpan, npan, K, batch, b_shared, 1, 1, 1), c;
    best.par = 0;
    if (nth <= 1) return best;
    for (tm = 1; tm <= mpan && tm <= 16 * (int64_t)nth; tm++)
        for (tn = 1; tn <= npan && tm * tn <= 16 * (int64_t)nth; tn++) {
            if (batch * tm * tn < nth) continue;
            c = zs__gemm_cost(mpan, npan, K, batch, b_shared, tm, tn, nth);
            if (c.cost < best.cost * 0.999) best = c;
        }
    return best;
}

/* job for a batch of problems; the grid is chosen by the caller */
ZS__PRIV void zs__gemm_job_init(zs__gemm_job *job, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                                float beta, float *C, int64_t ldc, int64_t sC, int64_t batch) {
    memset(job, 0, sizeof *job);
    job->p.ta = ta; job->p.tb = tb; job->p.M = M; job->p.N = N; job->p.K = K;
    job->p.alpha = alpha; job->p.beta = beta;
    job->p.A = A; job->p.B = B; job->p.C = C; job->p.lda = lda; job->p.ldb = ldb; job->p.ldc = ldc;
    job->sA = sA; job->sB = sB; job->sC = sC; job->batch = batch;
    job->mpan = (M + ZS__GEMM_MR - 1) / ZS__GEMM_MR;
    job->npan = (N + ZS__GEMM_NR - 1) / ZS__GEMM_NR;
    job->tm = job->tn = 1;
}

/* run a job's units over the pool (any grid and caching gives the same bits) */
ZS__PRIV int zs__gemm_run(zs__pool *pool, zs__gemm_job *job) {
    int i;
    job->next = 0;
    if (job->p.K == 0 || job->p.alpha == 0.0f) job->cache_a = job->cache_b = 0; /* nothing to pack */
    for (i = 0; i < ZS_MAX_THREADS; i++) job->rc[i] = ZS_OK;
    zs__pool_run(pool, zs__gemm_task, job);
    for (i = 0; i < ZS_MAX_THREADS; i++)
        if (job->rc[i]) return zs__fail(job->rc[i], "zs__sgemm: thread %d failed: %s", i, zs_status_str(job->rc[i]));
    return ZS_OK;
}

/* batched: for b in [0,batch): C_b = alpha op(A_b) op(B_b) + beta C_b with
   element strides sA, sB, sC between batch items (sB = 0 shares B). */
ZS__PRIV int zs__sgemm_batched(zs__pool *pool, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                               float beta, float *C, int64_t ldc, int64_t sC, int64_t batch) {
    zs__gemm_job job;
    zs__gemm_plan pl;
    int nth, rc;
    int64_t b;
    if (batch < 0) return zs__fail(ZS_ERR_ARG, "zs__sgemm_batched: negative batch %lld", (long long)batch);
    rc = zs__gemm_check(M, N, K, A, lda, ta, B, ldb, tb, C, ldc);
    if (rc || M == 0 || N == 0 || batch == 0) return rc;
    zs__gemm_job_init(&job, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
    nth = (pool && !zs__tls_ws) ? pool->nth : 1;
    pl = zs__gemm_choose(M, N, (K == 0 || alpha == 0.0f) ? 1 : K, batch, sB == 0, nth);
    if (pl.par) {
        job.tm = pl.tm;
        job.tn = pl.tn;
        job.cache_a = pl.cache_a;
        job.cache_b = pl.cache_b;
        return zs__gemm_run(pool, &job);
    }
    {   /* on the calling thread (or inside a pool task: its scratch) */
        zs__arena local, *ws = zs__tls_ws ? zs__tls_ws : pool ? &pool->ws[0] : NULL;
        if (!ws) zs__arena_init(ws = &local, (size_t)1 << 20, NULL);
        for (b = 0; b < batch && rc == ZS_OK; b++) {
            zs__gemm_prob q = job.p;
            zs__gemm_item(&q, b, sA, sB, sC);
            rc = zs__gemm_part(ws, &q, 0, M, 0, N, NULL, NULL);
        }
        if (ws == &local) zs__arena_free(&local);
        return rc;
    }
}

/* multi-threaded entry over the pool; bit-identical for any thread count */
ZS__PRIV int zs__sgemm(zs__pool *pool, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb,
                       float beta, float *C, int64_t ldc) {
    return zs__sgemm_batched(pool, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

/* ==================================================================== */
/* [impl:vmath] vectorised exp                                          */
/* ==================================================================== */
/* exp(x) by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6
   polynomial for e^r (Cephes expf coefficients), then scaling by 2^n.
   Accuracy: max relative error 2.0e-7 (about 2 ulp) against expf over
   [-87, 88] (tested in tests/test_core.c); exp(x < -87.3) = 0 (expf gives
   subnormals there), exp(x > 88.7) = +Inf, NaN propagates. */

/* Under -ffast-math the compiler may merge the two steps of the Cody-Waite
   reduction x - n*C1 + n*C2 into one (x - n*(C1-C2)) and lose ~1e-5 of
   accuracy; an empty asm that "modifies" r keeps them apart. */
#if defined(__FAST_MATH__) && (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define ZS__KEEP(v) __asm__("" : "+x"(v))
#elif defined(__FAST_MATH__) && (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
#define ZS__KEEP(v) __asm__("" : "+w"(v))
#else
#define ZS__KEEP(v) ((void)0)
#endif

#define ZS__EXP_HI 88.7228391f
#define ZS__EXP_LO -87.3365447f

/* scalar form of the same algorithm (used for tails and the NO_SIMD build) */
ZS__PRIV float zs__expf(float x) {
    float n, r, p;
    int32_t e;
    if (x != x) return x;
    if (x > ZS__EXP_HI) return INFINITY;
    if (x < ZS__EXP_LO) return 0.0f;
    n = floorf(x * 1.44269504088896341f + 0.5f);
    r = x - n * 0.693359375f;
    ZS__KEEP(r);
    r = r + n * 2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    e = (int32_t)n;
    /* 2^n in two steps so n = 128 (x near 88.7) does not overflow the exponent */
    return p * zs__u2f((uint32_t)(127 + e / 2) << 23) * zs__u2f((uint32_t)(127 + e - e / 2) << 23);
}

#if defined(ZS__AVX2)
ZS__PRIV __m256 zs__vexp(__m256 x) {
    const __m256 hi = _mm256_set1_ps(ZS__EXP_HI), lo = _mm256_set1_ps(ZS__EXP_LO);
    __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ), small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 xc = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    __m256 p, r2, s1, s2;
    __m256i e, e1, e2;
    ZS__KEEP(r);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    r2 = _mm256_mul_ps(r, r);
    p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    e = _mm256_cvtps_epi32(n);
    e1 = _mm256_srai_epi32(e, 1);
    e2 = _mm256_sub_epi32(e, e1);
    s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, _mm256_set1_epi32(127)), 23));
    s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    p = _mm256_blendv_ps(p, _mm256_set1_ps(INFINITY), big);
    p = _mm256_blendv_ps(p, _mm256_setzero_ps(), small);
    return _mm256_blendv_ps(p, x, isnan);
}
#endif

/* y[i] = exp(x[i]); y may alias x */
ZS__PRIV void zs__exp_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, zs__vexp(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] = zs__expf(x[i]);
}

/* In-place stable softmax of one row: x <- exp(x - max) / sum. Returns the
   log of the normaliser (max + log(sum)), useful for log-softmax. */
ZS__PRIV float zs__softmax_row(float *x, int64_t n) {
    int64_t i = 0;
    float mx = -INFINITY, s = 0.0f, inv;
#if defined(ZS__AVX2)
    if (n >= 8) {
        __m256 vm = _mm256_loadu_ps(x), vs = _mm256_setzero_ps();
        for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
        mx = zs__vhmax(vm);
        for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
        {
            __m256 m8 = _mm256_set1_ps(mx);
            for (i = 0; i + 8 <= n; i += 8) {
                __m256 e = zs__vexp(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
                _mm256_storeu_ps(x + i, e);
                vs = _mm256_add_ps(vs, e);
            }
        }
        s = zs__vhsum(vs);
        for (; i < n; i++) { x[i] = zs__expf(x[i] - mx); s += x[i]; }
        goto norm;
    }
#endif
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) { x[i] = zs__expf(x[i] - mx); s += x[i]; }
#if defined(ZS__AVX2)
norm:
#endif
    if (mx == -INFINITY) { /* all -inf: torch gives NaN; keep it defined as uniform 0 */
        for (i = 0; i < n; i++) x[i] = 0.0f;
        return -INFINITY;
    }
    inv = 1.0f / s;
    i = 0;
#if defined(ZS__AVX2)
    {
        __m256 vi = _mm256_set1_ps(inv);
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    }
#endif
    for (; i < n; i++) x[i] *= inv;
    return mx + logf(s);
}

/* scalar reference of zs__softmax_row, in double */
ZS__PRIV void zs__softmax_row_ref(float *x, int64_t n) {
    int64_t i;
    double mx = -INFINITY, s = 0;
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (i = 0; i < n; i++) x[i] = (float)(exp((double)x[i] - mx) / s);
}

/* ==================================================================== */
/* [impl:views] reshape, transpose, slice, concat, gather, matmul       */
/* ==================================================================== */

/* dst (strided, 4-D aligned) += src (contiguous in logical order) */
ZS__PRIV void zs__strided_acc(float *dst, const int64_t *shape4, const int64_t *stride4, const float *src) {
    int64_t i0, i1, i2, i3, k = 0;
    ZS__FOR4(shape4, i0, i1, i2, i3) {
        dst[i0 * stride4[0] + i1 * stride4[1] + i2 * stride4[2] + i3 * stride4[3]] += src[k++];
    }
}

/* contiguous dst (logical order) = strided src */
ZS__PRIV void zs__strided_copy(float *dst, const float *src, const int64_t *shape4, const int64_t *stride4) {
    int64_t i0, i1, i2, i3, k = 0;
    if (stride4[3] == 1) {
        for (i0 = 0; i0 < shape4[0]; i0++)
            for (i1 = 0; i1 < shape4[1]; i1++)
                for (i2 = 0; i2 < shape4[2]; i2++) {
                    memcpy(dst + k, src + i0 * stride4[0] + i1 * stride4[1] + i2 * stride4[2], (size_t)shape4[3] * 4);
                    k += shape4[3];
                }
        return;
    }
    ZS__FOR4(shape4, i0, i1, i2, i3) { dst[k++] = src[i0 * stride4[0] + i1 * stride4[1] + i2 * stride4[2] + i3 * stride4[3]]; }
}

/* gradient of a view: accumulate into the source's gradient through the
   view's own strides relative to the source storage. Valid because every
   view op keeps src[0] contiguous (zs_reshape copies non-contiguous input,
   transpose/slice of a view compose through zs__view_base). */
ZS__PRIV int zs__view_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    float *ga;
    int64_t sh[4], st[4];
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (!ga) return ZS_OK;
    zs__align4(out, sh, st);
    /* out->data = a->data + ip[0]; grad of a is contiguous with a's logical
       layout, which equals a's storage layout (a is contiguous) */
    zs__strided_acc(ga + out->ip[0], sh, st, out->grad);
    return ZS_OK;
}

/* views are always taken of a contiguous tensor so their gradient maps
   one-to-one onto its storage */
ZS__PRIV zs_tensor *zs__contig(zs_ctx *ctx, zs_tensor *a);

ZS__FN zs_tensor *zs_reshape(zs_ctx *ctx, zs_tensor *a, int ndim, const int64_t *shape) {
    int64_t sh[ZS_MAX_DIMS], n = 1, na;
    int i, neg = -1;
    zs_tensor *t;
    if (!a || !ctx) return NULL;
    if (ndim < 0 || ndim > ZS_MAX_DIMS || (ndim && !shape)) { zs__fail(ZS_ERR_SHAPE, "zs_reshape: bad ndim %d", ndim); return zs__op_fail(ctx, ZS_ERR_SHAPE); }
    na = zs_numel(a);
    for (i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (sh[i] == -1 && neg < 0) neg = i;
        else if (sh[i] < 0) { zs__fail(ZS_ERR_SHAPE, "zs_reshape: bad dimension %lld", (long long)sh[i]); return zs__op_fail(ctx, ZS_ERR_SHAPE); }
        else n *= sh[i];
    }
    if (neg >= 0) {
        if (n == 0 || na % n) return zs__shape_fail(ctx, "zs_reshape", a, NULL, "cannot infer the -1 dimension");
        sh[neg] = na / n;
        n = na;
    }
    if (n != na) {
        char s[96];
        zs__fail(ZS_ERR_SHAPE, "zs_reshape: %s has %lld elements, the new shape %lld", zs_shape_str(a, s, sizeof s), (long long)na, (long long)n);
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    if (a->type == ZS_F32) a = zs__contig(ctx, a);
    else if (!zs_is_contiguous(a)) { zs__fail(ZS_ERR_ARG, "zs_reshape: non-contiguous %s tensor", zs_type_name(a->type)); return zs__op_fail(ctx, ZS_ERR_ARG); }
    if (!a) return NULL;
    t = zs__view_new(ctx, "reshape", zs__view_bwd, a);
    if (!t) return NULL;
    t->ndim = ndim;
    for (i = 0; i < ndim; i++) t->shape[i] = sh[i];
    zs__set_contig_strides(t);
    t->ip[0] = 0;
    return t;
}

ZS__FN zs_tensor *zs_reshape2(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1) {
    int64_t s[2]; s[0] = n0; s[1] = n1;
    return zs_reshape(ctx, a, 2, s);
}
ZS__FN zs_tensor *zs_reshape3(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1, int64_t n2) {
    int64_t s[3]; s[0] = n0; s[1] = n1; s[2] = n2;
    return zs_reshape(ctx, a, 3, s);
}
ZS__FN zs_tensor *zs_reshape4(zs_ctx *ctx, zs_tensor *a, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    int64_t s[4]; s[0] = n0; s[1] = n1; s[2] = n2; s[3] = n3;
    return zs_reshape(ctx, a, 4, s);
}

/* the contiguous tensor a view (chain) was taken of, and the view's offset */
ZS__PRIV zs_tensor *zs__view_base(zs_tensor *a, int64_t *off) {
    *off = 0;
    while (a->op && a->backward == zs__view_bwd && a->src[0]) { *off += a->ip[0]; a = a->src[0]; }
    /* views recorded without a tape (inference) have backward NULL: walk by op name */
    while (a->op && a->src[0] && (!strcmp(a->op, "transpose") || !strcmp(a->op, "slice") || !strcmp(a->op, "reshape"))) {
        *off += a->ip[0];
        a = a->src[0];
    }
    return a;
}

ZS__FN zs_tensor *zs_transpose(zs_ctx *ctx, zs_tensor *a, int d0, int d1) {
    zs_tensor *t, *base;
    int64_t tmp, off;
    if (!a || !ctx) return NULL;
    if (d0 < 0) d0 += a->ndim;
    if (d1 < 0) d1 += a->ndim;
    if (d0 < 0 || d1 < 0 || d0 >= a->ndim || d1 >= a->ndim) return zs__shape_fail(ctx, "zs_transpose", a, NULL, "dimension out of range");
    base = zs__view_base(a, &off);
    t = zs__view_new(ctx, "transpose", zs__view_bwd, base);
    if (!t) return NULL;
    t->ndim = a->ndim;
    memcpy(t->shape, a->shape, sizeof t->shape);
    memcpy(t->stride, a->stride, sizeof t->stride);
    t->data = a->data;
    t->ip[0] = off;
    tmp = t->shape[d0]; t->shape[d0] = t->shape[d1]; t->shape[d1] = tmp;
    tmp = t->stride[d0]; t->stride[d0] = t->stride[d1]; t->stride[d1] = tmp;
    return t;
}

ZS__FN zs_tensor *zs_slice(zs_ctx *ctx, zs_tensor *a, int dim, int64_t start, int64_t end) {
    zs_tensor *t, *base;
    int64_t off;
    if (!a || !ctx) return NULL;
    if (dim < 0) dim += a->ndim;
    if (dim < 0 || dim >= a->ndim) return zs__shape_fail(ctx, "zs_slice", a, NULL, "dimension out of range");
    if (start < 0 || end > a->shape[dim] || start > end) {
        char s[96];
        zs__fail(ZS_ERR_SHAPE, "zs_slice: range [%lld,%lld) outside dimension %d of %s", (long long)start, (long long)end, dim, zs_shape_str(a, s, sizeof s));
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    base = zs__view_base(a, &off);
    t = zs__view_new(ctx, "slice", zs__view_bwd, base);
    if (!t) return NULL;
    t->ndim = a->ndim;
    memcpy(t->shape, a->shape, sizeof t->shape);
    memcpy(t->stride, a->stride, sizeof t->stride);
    t->shape[dim] = end - start;
    t->data = (char *)a->data + start * a->stride[dim] * (int64_t)zs_type_size(a->type);
    t->ip[0] = off + start * a->stride[dim];
    return t;
}

/* -- contiguous copy -- */
ZS__PRIV int zs__contig_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    float *ga;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (ga) {
        int64_t i, n = zs_numel(a);
        for (i = 0; i < n; i++) ga[i] += out->grad[i];
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_contiguous(zs_ctx *ctx, zs_tensor *a) {
    zs_tensor *t;
    int64_t sh[4], st[4];
    if (!zs__ok1(ctx, a, "zs_contiguous")) return NULL;
    t = zs__op_new(ctx, "contiguous", zs__contig_bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!t) return NULL;
    zs__align4(a, sh, st);
    zs__strided_copy((float *)t->data, (const float *)a->data, sh, st);
    return t;
}

ZS__PRIV zs_tensor *zs__contig(zs_ctx *ctx, zs_tensor *a) {
    if (!a) return NULL;
    return zs_is_contiguous(a) ? a : zs_contiguous(ctx, a);
}

/* -- concat -- */
ZS__PRIV int zs__concat_bwd(zs_ctx *ctx, zs_tensor *out) {
    /* saved: array of n input pointers; ip[0] = n, ip[1] = dim */
    zs_tensor **xs = (zs_tensor **)out->saved;
    int n = (int)out->ip[0], dim = (int)out->ip[1], i;
    int64_t outer = 1, inner = 1, d, o, pos = 0, L = out->shape[dim];
    for (d = 0; d < dim; d++) outer *= out->shape[d];
    for (d = dim + 1; d < out->ndim; d++) inner *= out->shape[d];
    for (i = 0; i < n; i++) {
        int64_t li = xs[i]->shape[dim];
        float *g;
        ZS__GRAD_OR_FAIL(g, ctx, xs[i]);
        if (g)
            for (o = 0; o < outer; o++) {
                const float *src = out->grad + (o * L + pos) * inner;
                float *dst = g + o * li * inner;
                int64_t k;
                for (k = 0; k < li * inner; k++) dst[k] += src[k];
            }
        pos += li;
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_concat(zs_ctx *ctx, zs_tensor *const *xs, int n, int dim) {
    int64_t shape[ZS_MAX_DIMS], outer = 1, inner = 1, L, pos = 0, o;
    zs_tensor **cx, *t;
    int i, d, any_grad = 0;
    if (!ctx || !xs || n < 1) { zs__fail(ZS_ERR_ARG, "zs_concat: need at least one input"); return zs__op_fail(ctx, ZS_ERR_ARG); }
    for (i = 0; i < n; i++) if (!zs__ok1(ctx, xs[i], "zs_concat")) return NULL;
    if (dim < 0) dim += xs[0]->ndim;
    if (dim < 0 || dim >= xs[0]->ndim) return zs__shape_fail(ctx, "zs_concat", xs[0], NULL, "dimension out of range");
    memcpy(shape, xs[0]->shape, sizeof shape);
    L = 0;
    for (i = 0; i < n; i++) {
        if (xs[i]->ndim != xs[0]->ndim) return zs__shape_fail(ctx, "zs_concat", xs[0], xs[i], "inputs differ in rank");
        for (d = 0; d < xs[0]->ndim; d++)
            if (d != dim && xs[i]->shape[d] != shape[d]) return zs__shape_fail(ctx, "zs_concat", xs[0], xs[i], "inputs differ outside the concat dimension");
        L += xs[i]->shape[dim];
        any_grad |= zs__needs_grad(xs[i]);
    }
    shape[dim] = L;
    cx = (zs_tensor **)zs__arena_alloc(&ctx->arena, (size_t)n * sizeof(zs_tensor *));
    if (!cx) { zs__fail(ZS_ERR_NOMEM, "zs_concat: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    for (i = 0; i < n; i++) if (!(cx[i] = zs__contig(ctx, xs[i]))) return NULL;
    /* more than 4 sources: the tape link goes through src[0] for recording,
       the full list lives in saved */
    t = zs__op_new(ctx, "concat", zs__concat_bwd, xs[0]->ndim, shape, any_grad ? cx[0] : NULL, NULL, NULL, NULL);
    if (!t) return NULL;
    if (any_grad && !(t->flags & ZS_FLAG_ON_TAPE) && ctx->grad_enabled) {
        t->flags |= ZS_FLAG_REQUIRES_GRAD | ZS_FLAG_ON_TAPE;
        t->backward = zs__concat_bwd;
        t->tape_prev = ctx->tape;
        ctx->tape = t;
    }
    t->src[0] = cx[0];
    t->saved = cx;
    t->ip[0] = n;
    t->ip[1] = dim;
    for (d = 0; d < dim; d++) outer *= shape[d];
    for (d = dim + 1; d < xs[0]->ndim; d++) inner *= shape[d];
    for (i = 0; i < n; i++) {
        int64_t li = cx[i]->shape[dim];
        for (o = 0; o < outer; o++)
            memcpy((float *)t->data + (o * L + pos) * inner, (const float *)cx[i]->data + o * li * inner, (size_t)(li * inner) * 4);
        pos += li;
    }
    return t;
}

/* -- gather rows along dim 0 -- */
ZS__PRIV int zs__gather_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    const int32_t *idx = (const int32_t *)out->saved;
    int64_t i, k, n = out->shape[0], row = zs_numel(a) / (a->shape[0] ? a->shape[0] : 1);
    float *ga;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (ga)
        for (i = 0; i < n; i++)
            for (k = 0; k < row; k++) ga[(int64_t)idx[i] * row + k] += out->grad[i * row + k];
    return ZS_OK;
}

ZS__FN zs_tensor *zs_gather(zs_ctx *ctx, zs_tensor *a, const int32_t *idx, int64_t n) {
    int64_t shape[ZS_MAX_DIMS], i, row;
    int32_t *cidx;
    zs_tensor *t;
    if (!zs__ok1(ctx, a, "zs_gather")) return NULL;
    if (a->ndim < 1 || n < 0 || (n && !idx)) return zs__shape_fail(ctx, "zs_gather", a, NULL, "need rank >= 1 and an index array");
    for (i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= a->shape[0]) {
            zs__fail(ZS_ERR_ARG, "zs_gather: index %lld = %d outside [0,%lld)", (long long)i, (int)idx[i], (long long)a->shape[0]);
            return zs__op_fail(ctx, ZS_ERR_ARG);
        }
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = n;
    row = a->shape[0] ? zs_numel(a) / a->shape[0] : 0;
    t = zs__op_new(ctx, "gather", zs__gather_bwd, a->ndim, shape, a, NULL, NULL, NULL);
    if (!t) return NULL;
    cidx = (int32_t *)zs__arena_alloc(&ctx->arena, (size_t)(n ? n : 1) * 4);
    if (!cidx) { zs__fail(ZS_ERR_NOMEM, "zs_gather: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    if (n) memcpy(cidx, idx, (size_t)n * 4);
    t->saved = cidx;
    for (i = 0; i < n; i++) memcpy((float *)t->data + i * row, (const float *)a->data + (int64_t)idx[i] * row, (size_t)row * 4);
    return t;
}

/* -- storage conversion -- */
ZS__FN zs_tensor *zs_to_f32(zs_ctx *ctx, zs_tensor *a) {
    zs_tensor *t;
    if (!a || !ctx) return NULL;
    if (a->type == ZS_F32) return zs__contig(ctx, a);
    if (a->type != ZS_F16 && a->type != ZS_BF16) { zs__fail(ZS_ERR_ARG, "zs_to_f32: cannot convert %s", zs_type_name(a->type)); return zs__op_fail(ctx, ZS_ERR_ARG); }
    t = zs_tensor_new(ctx, ZS_F32, a->ndim, a->shape);
    if (!t) return NULL;
    t->op = "to_f32";
    if (zs_tensor_copy_out(t->data, ZS_F32, a) != ZS_OK) return zs__op_fail(ctx, ZS_ERR_ARG);
    return t;
}

/* -- matmul -- */
/* A matmul operand as (pointer, leading dimension, transposed flag) without
   copying: a 2-D slice of a tensor whose last or second-to-last dim has
   stride 1 maps straight onto SGEMM's transpose flags. */
typedef struct zs__mm_arg { const float *p; int64_t ld, bstride; int trans; } zs__mm_arg;

/* rows, cols = the stored matrix dims of the last two axes of t */
ZS__PRIV int zs__mm_view(const zs_tensor *t, int want_trans, zs__mm_arg *m) {
    int r = t->ndim - 2, c = t->ndim - 1;
    int64_t bs = t->ndim >= 3 ? t->stride[t->ndim - 3] : 0;
    if (t->stride[c] == 1 || t->shape[c] == 1) {
        m->ld = t->shape[r] == 1 ? (t->shape[c] > 0 ? t->shape[c] : 1) : t->stride[r];
        if (m->ld < t->shape[c]) return 0;
        m->trans = want_trans;
    } else if (t->stride[r] == 1 || t->shape[r] == 1) {
        m->ld = t->shape[c] == 1 ? (t->shape[r] > 0 ? t->shape[r] : 1) : t->stride[c];
        if (m->ld < t->shape[r]) return 0;
        m->trans = !want_trans;
    } else {
        return 0;
    }
    /* batch dims must collapse to one stride */
    if (t->ndim == 4 && t->stride[0] != t->stride[1] * t->shape[1] && t->shape[0] > 1 && t->shape[1] > 1) return 0;
    m->bstride = bs;
    m->p = (const float *)t->data;
    return 1;
}

ZS__PRIV int64_t zs__batch_count(const zs_tensor *t) {
    int64_t b = 1;
    int i;
    for (i = 0; i + 2 < t->ndim; i++) b *= t->shape[i];
    return b;
}

/* C_b (+)= op(A_b) op(B_b) for all batches; A/B given as tensors with flags */
ZS__PRIV int zs__mm_run(zs_ctx *ctx, zs_tensor *A, int ta, zs_tensor *B, int tb, float beta, float *C,
                        int64_t M, int64_t N, int64_t K, int64_t batch, int b_shared) {
    zs__mm_arg a, b;
    if (!zs__mm_view(A, ta, &a) || !zs__mm_view(B, tb, &b)) return ZS_ERR_STATE;
    return zs__sgemm_batched(&ctx->pool, a.trans, b.trans, M, N, K, 1.0f, a.p, a.ld, a.bstride,
                             b.p, b.ld, b_shared ? 0 : b.bstride, beta, C, N, M * N, batch);
}

ZS__PRIV int zs__matmul_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int ta = (int)out->ip[0], tb = (int)out->ip[1], b_shared = (int)out->ip[2];
    int64_t M = out->shape[out->ndim - 2], N = out->shape[out->ndim - 1];
    int64_t K = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t batch = zs__batch_count(out), i;
    float *ga, *gb;
    zs_tensor G;
    int rc;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    /* a header over out->grad so the same stride logic applies */
    G = *out;
    G.data = out->grad;
    zs__set_contig_strides(&G);
    if (ga) {
        /* dA = dC op(B)^T  (ta=0: [M,K]);  ta=1: dA = op(B) dC^T ([K,M]) */
        zs__mm_arg g, bb;
        if (!zs__mm_view(&G, 0, &g) || !zs__mm_view(b, 0, &bb)) return ZS_ERR_STATE;
        if (!ta) {
            /* [M,N] x op(B)^T[N,K]: B stored [K,N] (tb=0) -> use B^T; stored [N,K] (tb=1) -> plain */
            zs__mm_arg bt;
            if (!zs__mm_view(b, !tb, &bt)) return ZS_ERR_STATE;
            for (i = 0; i < batch; i++) {
                rc = zs__sgemm(&ctx->pool, 0, bt.trans, M, K, N, 1.0f, g.p + i * M * N, N,
                               bt.p + (b_shared ? 0 : i * bt.bstride), bt.ld, 1.0f, ga + i * M * K, K);
                if (rc) return rc;
            }
        } else {
            /* dA [K,M] = op(B)[K,N] dC^T [N,M] */
            zs__mm_arg bo;
            if (!zs__mm_view(b, tb, &bo)) return ZS_ERR_STATE;
            for (i = 0; i < batch; i++) {
                rc = zs__sgemm(&ctx->pool, bo.trans, 1, K, M, N, 1.0f, bo.p + (b_shared ? 0 : i * bo.bstride), bo.ld,
                               g.p + i * M * N, N, 1.0f, ga + i * M * K, M);
                if (rc) return rc;
            }
        }
        (void)bb;
    }
    if (gb) {
        zs__mm_arg ao;
        if (!zs__mm_view(a, ta, &ao)) return ZS_ERR_STATE;
        for (i = 0; i < batch; i++) {
            const float *ap = ao.p + i * ao.bstride, *gp = out->grad + i * M * N;
            float *gbp = gb + (b_shared ? 0 : i * K * N);
            if (!tb) /* dB [K,N] = op(A)^T [K,M] dC [M,N] */
                rc = zs__sgemm(&ctx->pool, !ao.trans, 0, K, N, M, 1.0f, ap, ao.ld, gp, N, 1.0f, gbp, N);
            else     /* dB [N,K] = dC^T [N,M] op(A) [M,K] */
                rc = zs__sgemm(&ctx->pool, 1, ao.trans, N, K, M, 1.0f, gp, N, ap, ao.ld, 1.0f, gbp, K);
            if (rc) return rc;
        }
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_matmul(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, int ta, int tb) {
    int64_t shape[ZS_MAX_DIMS], M, K, K2, N;
    int i, b_shared;
    zs_tensor *t;
    zs__mm_arg tmp;
    if (!zs__ok2(ctx, a, b, "zs_matmul")) return NULL;
    if (a->ndim < 2 || b->ndim < 2) return zs__shape_fail(ctx, "zs_matmul", a, b, "both operands need rank >= 2");
    b_shared = b->ndim == 2 && a->ndim > 2;
    if (!b_shared) {
        if (a->ndim != b->ndim) return zs__shape_fail(ctx, "zs_matmul", a, b, "batch dims differ (b may be 2-D to share it)");
        for (i = 0; i + 2 < a->ndim; i++)
            if (a->shape[i] != b->shape[i]) return zs__shape_fail(ctx, "zs_matmul", a, b, "batch dims differ");
    }
    M = ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    K = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    K2 = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    N = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    if (K != K2) return zs__shape_fail(ctx, "zs_matmul", a, b, "inner dimensions differ");
    /* operands SGEMM cannot address in place are made contiguous */
    if (!zs__mm_view(a, ta, &tmp)) a = zs_contiguous(ctx, a);
    if (!zs__mm_view(b, tb, &tmp)) b = zs_contiguous(ctx, b);
    if (!a || !b) return NULL;
    for (i = 0; i + 2 < a->ndim; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    t = zs__op_new(ctx, "matmul", zs__matmul_bwd, a->ndim, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = ta; t->ip[1] = tb; t->ip[2] = b_shared;
    if (b_shared && !ta && zs_is_contiguous(a)) {
        /* fold the batch into M: one big GEMM */
        zs__mm_arg bb;
        zs__mm_view(b, tb, &bb);
        if (zs__sgemm(&ctx->pool, 0, bb.trans, zs__batch_count(a) * M, N, K, 1.0f, (const float *)a->data, K,
                      bb.p, bb.ld, 0.0f, (float *)t->data, N) != ZS_OK)
            return zs__op_fail(ctx, ZS_ERR_NOMEM);
        return t;
    }
    if (zs__mm_run(ctx, a, ta, b, tb, 0.0f, (float *)t->data, M, N, K, zs__batch_count(a), b_shared) != ZS_OK) {
        zs__fail(ZS_ERR_NOMEM, "zs_matmul: kernel failed");
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    return t;
}

/* -- linear: x [.., in] w [out, in] b [out] -- */
ZS__PRIV int zs__linear_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    int64_t O = w->shape[0], I = w->shape[1], R = zs_numel(x) / (I ? I : 1), r, o;
    float *gx, *gw, *gb;
    int rc;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gw, ctx, w);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    if (gx) { /* dX [R,I] += dY [R,O] W [O,I] */
        rc = zs__sgemm(&ctx->pool, 0, 0, R, I, O, 1.0f, out->grad, O, (const float *)w->data, I, 1.0f, gx, I);
        if (rc) return rc;
    }
    if (gw) { /* dW [O,I] += dY^T [O,R] X [R,I] */
        rc = zs__sgemm(&ctx->pool, 1, 0, O, I, R, 1.0f, out->grad, O, (const float *)x->data, I, 1.0f, gw, I);
        if (rc) return rc;
    }
    if (gb) /* fixed row order: identical for every thread count */
        for (r = 0; r < R; r++)
            for (o = 0; o < O; o++) gb[o] += out->grad[r * O + o];
    return ZS_OK;
}

ZS__FN zs_tensor *zs_linear(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b) {
    int64_t shape[ZS_MAX_DIMS], O, I, R, r;
    zs_tensor *t;
    if (!zs__ok2(ctx, x, w, "zs_linear") || (b && !zs__ok1(ctx, b, "zs_linear"))) return NULL;
    if (w->ndim != 2) return zs__shape_fail(ctx, "zs_linear", w, NULL, "weight must be [out,in]");
    if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1]) return zs__shape_fail(ctx, "zs_linear", x, w, "last dim of x must equal weight's in");
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) return zs__shape_fail(ctx, "zs_linear", b, w, "bias must be [out]");
    x = zs__contig(ctx, x);
    w = zs__contig(ctx, w);
    if (!x || !w) return NULL;
    O = w->shape[0]; I = w->shape[1];
    R = I ? zs_numel(x) / I : 0;
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = O;
    t = zs__op_new(ctx, "linear", zs__linear_bwd, x->ndim, shape, x, w, b, NULL);
    if (!t) return NULL;
    if (b) {
        float *y = (float *)t->data;
        for (r = 0; r < R; r++) memcpy(y + r * O, b->data, (size_t)O * 4);
    }
    if (zs__sgemm(&ctx->pool, 0, 1, R, O, I, 1.0f, (const float *)x->data, I, (const float *)w->data, I,
                  b ? 1.0f : 0.0f, (float *)t->data, O) != ZS_OK) {
        zs__fail(ZS_ERR_NOMEM, "zs_linear: kernel failed");
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    return t;
}

/* ==================================================================== */
/* [impl:elem] elementwise, reductions, activations, norms              */
/* ==================================================================== */
/* Every kernel here that has a vector path has a plain scalar reference
   (zs__X_ref, double precision where it matters) beside it; the tests compare
   the two on odd sizes and on model-sized shapes.

   Threads and determinism. Results are bit-identical for any thread count:
   - flat elementwise loops are cut at fixed multiples of ZS__EBLK elements
     (zs__ew_run), so whether an element goes through the vector body or the
     scalar tail depends on its index only, never on the split;
   - row ops (softmax, norms) give each row wholly to one thread;
   - reductions never split a sum across threads: broadcast gradients are
     split over the dimensions that are NOT summed; sum/mean use fixed
     chunks of ZS__EBLK elements summed in double, then the chunk sums in
     order; LayerNorm dw/db use per-chunk partial sums over ZS__LN_CHUNK rows,
     combined in chunk order.

   Accuracy of the special functions (tests/test_elem.c, dense grid over
   [-10, 10] against libm in double; AVX2 and scalar paths, gcc and clang):
     erf (zs__erff, zs__erf_n)  max abs error 1.1e-7, max rel error 1.7e-7
     GELU forward               max rel error 4.1e-7 (outputs down to -7.6e-23
                                at x = -10 are relative-accurate)
     GELU derivative            max abs error 2.1e-7 (rel 2e-7 in the tail)
     exp(-z^2) via zs__exp_hl   max rel error 1.0e-7 for z in [0, 10]
   With -ffast-math: GELU 5e-7, erf 1.1e-7 (zs__exp_hl keeps its exact step
   behind ZS__FP_KEEP). */

#define ZS__EBLK 4096          /* elements per flat work block (multiple of every vector width) */
#define ZS__EW_MIN 32768       /* elements a thread should get before splitting is worth it */
#define ZS__LN_CHUNK 32        /* rows per LayerNorm dw/db partial sum */

/* -- flat loops over fixed blocks ------------------------------------- */

/* elementwise job ops (zs__ew_task) */
enum {
    ZS__U_ACC = 0, ZS__U_NACC,  /* y += x, y -= x */
    ZS__U_AXPY, ZS__U_SCALE, ZS__U_ADDS, ZS__U_ADDC,
    ZS__U_RELU, ZS__U_RELU_BWD, ZS__U_GELU, ZS__U_GELU_BWD,
    ZS__U_SIGMOID, ZS__U_SIGMOID_BWD, ZS__U_SOFTPLUS, ZS__U_SOFTPLUS_BWD,
    ZS__U_DROPOUT, ZS__U_DROPOUT_BWD
};

typedef struct zs__ew_job {
    int op;
    float *y;            /* output, or the gradient accumulated into */
    const float *x, *g;  /* operand; output gradient (backward) */
    float s, s2;         /* scalar parameters */
    uint64_t key;        /* dropout */
} zs__ew_job;

ZS__PRIV void zs__ew_task(void *arg, int64_t lo, int64_t hi);

typedef void (*zs__ew_fn)(void *arg, int64_t lo, int64_t hi);
typedef struct zs__ew_run_job { zs__ew_fn fn; void *arg; int64_t n; } zs__ew_run_job;

ZS__PRIV void zs__ew_run_task(void *a, int64_t blo, int64_t bhi, zs__arena *ws) {
    zs__ew_run_job *j = (zs__ew_run_job *)a;
    int64_t lo = blo * ZS__EBLK, hi = bhi * ZS__EBLK;
    (void)ws;
    if (hi > j->n) hi = j->n;
    if (hi > lo) j->fn(j->arg, lo, hi);
}

/* fn(arg, lo, hi) over [0, n), cut at multiples of ZS__EBLK; min_elems is
   the work one thread should at least get (cheap ops: ZS__EW_MIN) */
ZS__PRIV void zs__ew_run(zs_ctx *ctx, int64_t n, int64_t min_elems, zs__ew_fn fn, void *arg) {
    zs__ew_run_job j;
    int64_t nb = (n + ZS__EBLK - 1) / ZS__EBLK, minb = (min_elems + ZS__EBLK - 1) / ZS__EBLK;
    j.fn = fn; j.arg = arg; j.n = n;
    if (n <= 0) return;
    zs__parallel_rows(ctx, nb, minb > 0 ? minb : 1, zs__ew_run_task, &j);
}

/* -- row helpers (vector macro layer; fixed summation order) ----------- */

/* sum x[0..n): two ZS__VW-lane accumulators, lane sum, then the tail */
ZS__PRIV float zs__row_sum(const float *x, int64_t n) {
    int64_t i = 0;
    float s;
    zs__vf a0 = zs__vzero(), a1 = zs__vzero();
    for (; i + 2 * ZS__VW <= n; i += 2 * ZS__VW) {
        a0 = zs__vadd(a0, zs__vload(x + i));
        a1 = zs__vadd(a1, zs__vload(x + i + ZS__VW));
    }
    for (; i + ZS__VW <= n; i += ZS__VW) a0 = zs__vadd(a0, zs__vload(x + i));
    s = zs__vhsum(zs__vadd(a0, a1));
    for (; i < n; i++) s += x[i];
    return s;
}

/* sum x[i] * y[i] */
ZS__PRIV float zs__row_dot(const float *x, const float *y, int64_t n) {
    int64_t i = 0;
    float s;
    zs__vf a0 = zs__vzero(), a1 = zs__vzero();
    for (; i + 2 * ZS__VW <= n; i += 2 * ZS__VW) {
        a0 = zs__vfma(zs__vload(x + i), zs__vload(y + i), a0);
        a1 = zs__vfma(zs__vload(x + i + ZS__VW), zs__vload(y + i + ZS__VW), a1);
    }
    for (; i + ZS__VW <= n; i += ZS__VW) a0 = zs__vfma(zs__vload(x + i), zs__vload(y + i), a0);
    s = zs__vhsum(zs__vadd(a0, a1));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* sum (x[i] - m)^2 */
ZS__PRIV float zs__row_sqdev(const float *x, float m, int64_t n) {
    int64_t i = 0;
    float s;
    zs__vf a0 = zs__vzero(), a1 = zs__vzero(), vm = zs__vset1(m);
    for (; i + 2 * ZS__VW <= n; i += 2 * ZS__VW) {
        zs__vf d0 = zs__vsub(zs__vload(x + i), vm), d1 = zs__vsub(zs__vload(x + i + ZS__VW), vm);
        a0 = zs__vfma(d0, d0, a0);
        a1 = zs__vfma(d1, d1, a1);
    }
    for (; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf d0 = zs__vsub(zs__vload(x + i), vm);
        a0 = zs__vfma(d0, d0, a0);
    }
    s = zs__vhsum(zs__vadd(a0, a1));
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return s;
}

/* y[i] += x[i] (neg: -=); exact, so vector and scalar paths agree bit for bit */
ZS__PRIV void zs__ew_acc_n(float *y, const float *x, int64_t n, int neg) {
    int64_t i = 0;
    if (neg) {
        for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vsub(zs__vload(y + i), zs__vload(x + i)));
        for (; i < n; i++) y[i] -= x[i];
    } else {
        for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vadd(zs__vload(y + i), zs__vload(x + i)));
        for (; i < n; i++) y[i] += x[i];
    }
}

/* y[i] += s * x[i] */
ZS__PRIV void zs__ew_axpy_n(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    zs__vf vs = zs__vset1(s);
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vfma(zs__vload(x + i), vs, zs__vload(y + i)));
    for (; i < n; i++) y[i] += s * x[i];
}

/* y[i] = s * x[i] (y may alias x) */
ZS__PRIV void zs__ew_scale_n(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    zs__vf vs = zs__vset1(s);
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vmul(zs__vload(x + i), vs));
    for (; i < n; i++) y[i] = s * x[i];
}
ZS__PRIV void zs__ew_scale_ref(float *y, const float *x, float s, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = s * x[i];
}

/* y[i] = x[i] + s; with x == NULL: y[i] += s */
ZS__PRIV void zs__ew_adds_n(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    zs__vf vs = zs__vset1(s);
    if (!x) x = y;
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vadd(zs__vload(x + i), vs));
    for (; i < n; i++) y[i] = x[i] + s;
}

/* ==================================================================== */
/* binary ops with numpy broadcasting                                   */
/* ==================================================================== */
/* Shapes are right-aligned to 4 dims; a dim of size 1 broadcasts (stride 0).
   Adjacent dims whose strides chain in every operand are merged, so
   [B,T,D] + [D] runs as rows [B*T, D] + one vector row (the bias fast path)
   and same-shape contiguous operands run as one flat row. */

enum { ZS__B_ADD = 0, ZS__B_SUB = 1, ZS__B_MUL = 2, ZS__B_ACCMUL = 3 /* y += a*b */ };

#define ZS__BIN_ROW(VEXPR, SEXPR)                                                            \
    do {                                                                                     \
        if (sa == 1 && sb == 1) {                                                            \
            for (; i + ZS__VW <= n; i += ZS__VW) {                                           \
                zs__vf va = zs__vload(a + i), vb = zs__vload(b + i);                         \
                zs__vstore(y + i, VEXPR);                                                    \
            }                                                                                \
            for (; i < n; i++) { float xa = a[i], xb = b[i]; y[i] = SEXPR; }                 \
        } else if (sa == 1 && sb == 0) {                                                     \
            float xb = b[0];                                                                 \
            zs__vf vb = zs__vset1(xb);                                                       \
            for (; i + ZS__VW <= n; i += ZS__VW) {                                           \
                zs__vf va = zs__vload(a + i);                                                \
                zs__vstore(y + i, VEXPR);                                                    \
            }                                                                                \
            for (; i < n; i++) { float xa = a[i]; y[i] = SEXPR; }                            \
        } else if (sa == 0 && sb == 1) {                                                     \
            float xa = a[0];                                                                 \
            zs__vf va = zs__vset1(xa);                                                       \
            for (; i + ZS__VW <= n; i += ZS__VW) {                                           \
                zs__vf vb = zs__vload(b + i);                                                \
                zs__vstore(y + i, VEXPR);                                                    \
            }                                                                                \
            for (; i < n; i++) { float xb = b[i]; y[i] = SEXPR; }                            \
        } else {                                                                             \
            for (; i < n; i++) { float xa = a[i * sa], xb = b[i * sb]; y[i] = SEXPR; }       \
        }                                                                                    \
    } while (0)

/* y[i] = a[i*sa] op b[i*sb] for i < n (sa, sb of 0 or 1 take vector paths).
   add/sub/mul round once in either path, so the results are exact matches
   of zs__bin_row_ref. */
ZS__PRIV void zs__bin_row(int op, float *y, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n) {
    int64_t i = 0;
    switch (op) {
    case ZS__B_ADD: ZS__BIN_ROW(zs__vadd(va, vb), xa + xb); break;
    case ZS__B_SUB: ZS__BIN_ROW(zs__vsub(va, vb), xa - xb); break;
    case ZS__B_MUL: ZS__BIN_ROW(zs__vmul(va, vb), xa * xb); break;
    default: ZS__BIN_ROW(zs__vadd(zs__vload(y + i), zs__vmul(va, vb)), y[i] + xa * xb); break;
    }
}

ZS__PRIV void zs__bin_row_ref(int op, float *y, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float xa = a[i * sa], xb = b[i * sb];
        switch (op) {
        case ZS__B_ADD: y[i] = xa + xb; break;
        case ZS__B_SUB: y[i] = xa - xb; break;
        case ZS__B_MUL: y[i] = xa * xb; break;
        default: y[i] = y[i] + xa * xb; break;
        }
    }
}

/* numpy broadcast shape of a and b: right-aligned, sizes equal or one is 1 */
ZS__PRIV int zs__bcast_shape(const zs_tensor *a, const zs_tensor *b, int *ndim, int64_t *sh4) {
    int64_t sa[4], sb[4], ta[4], tb[4];
    int i;
    zs__align4(a, sa, ta);
    zs__align4(b, sb, tb);
    *ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (i = 0; i < 4; i++) {
        if (sa[i] == sb[i] || sb[i] == 1) sh4[i] = sa[i];
        else if (sa[i] == 1) sh4[i] = sb[i];
        else return 0;
    }
    return 1;
}

/* t's data strides right-aligned to 4 dims, 0 where t has size 1 */
ZS__PRIV void zs__bcast_strides(const zs_tensor *t, int64_t *st) {
    int i, off = 4 - t->ndim;
    for (i = 0; i < 4; i++) st[i] = 0;
    for (i = 0; i < t->ndim; i++) st[off + i] = t->shape[i] == 1 ? 0 : t->stride[i];
}

/* the same for t's gradient buffer (contiguous in t's logical shape) */
ZS__PRIV void zs__bcast_gstrides(const zs_tensor *t, int64_t *st) {
    int64_t s = 1;
    int i, off = 4 - t->ndim;
    for (i = 0; i < 4; i++) st[i] = 0;
    for (i = t->ndim - 1; i >= 0; i--) {
        st[off + i] = t->shape[i] == 1 ? 0 : s;
        s *= t->shape[i];
    }
}

/* Drop size-1 dims and merge neighbours whose strides chain in all k stride
   arrays; the result stays right-aligned in 4 slots (leading 1s, stride 0). */
ZS__PRIV void zs__collapse(int64_t *sh, int64_t **st, int k) {
    int64_t csh[4], cst[3][4];
    int d, j, m = 0;
    for (d = 3; d >= 0; d--) {
        int merge = m > 0;
        if (sh[d] == 1) continue;
        for (j = 0; j < k && merge; j++)
            if (st[j][d] != cst[j][m - 1] * csh[m - 1]) merge = 0;
        if (merge) {
            csh[m - 1] *= sh[d];
        } else {
            csh[m] = sh[d];
            for (j = 0; j < k; j++) cst[j][m] = st[j][d];
            m++;
        }
    }
    for (d = 0; d < 4; d++) {
        sh[d] = 1;
        for (j = 0; j < k; j++) st[j][d] = 0;
    }
    for (d = 0; d < m; d++) {
        sh[3 - d] = csh[d];
        for (j = 0; j < k; j++) st[j][3 - d] = cst[j][d];
    }
}

typedef struct zs__bin_job {
    int op;
    float *y;               /* contiguous in sh */
    const float *a, *b;
    int64_t sh[4], sa[4], sb[4];
    int64_t nb;             /* blocks of ZS__EBLK per row */
} zs__bin_job;

/* work item = (row, block of the row); rows are the collapsed outer dims */
ZS__PRIV void zs__bin_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__bin_job *j = (zs__bin_job *)arg;
    int64_t it;
    (void)ws;
    for (it = lo; it < hi; it++) {
        int64_t r = it / j->nb, c0 = (it % j->nb) * ZS__EBLK, c1 = c0 + ZS__EBLK;
        int64_t i2 = r % j->sh[2], t = r / j->sh[2], i1 = t % j->sh[1], i0 = t / j->sh[1];
        int64_t oa = i0 * j->sa[0] + i1 * j->sa[1] + i2 * j->sa[2] + c0 * j->sa[3];
        int64_t ob = i0 * j->sb[0] + i1 * j->sb[1] + i2 * j->sb[2] + c0 * j->sb[3];
        if (c1 > j->sh[3]) c1 = j->sh[3];
        zs__bin_row(j->op, j->y + r * j->sh[3] + c0, j->a + oa, j->sa[3], j->b + ob, j->sb[3], c1 - c0);
    }
}

/* y (contiguous, 4-D shape sh4) = a op b; a, b given by data and 4-D strides
   aligned to sh4 (0 = broadcast) */
ZS__PRIV void zs__bin_exec(zs_ctx *ctx, int op, float *y, const int64_t *sh4, const float *a, const int64_t *sa4,
                           const float *b, const int64_t *sb4) {
    zs__bin_job j;
    int64_t *st[2], rows, per;
    int d;
    j.op = op; j.y = y; j.a = a; j.b = b;
    for (d = 0; d < 4; d++) {
        j.sh[d] = sh4[d]; j.sa[d] = sa4[d]; j.sb[d] = sb4[d];
        if (sh4[d] == 0) return;
    }
    st[0] = j.sa; st[1] = j.sb;
    zs__collapse(j.sh, st, 2);
    rows = j.sh[0] * j.sh[1] * j.sh[2];
    j.nb = (j.sh[3] + ZS__EBLK - 1) / ZS__EBLK;
    per = j.sh[3] < ZS__EBLK ? j.sh[3] : ZS__EBLK;
    zs__parallel_rows(ctx, rows * j.nb, (ZS__EW_MIN + per - 1) / per, zs__bin_task, &j);
}

/* gradient reduction: dst (+/-)= src summed over the dims where ds is 0.
   src is contiguous in sh. Threads split one dim that is NOT summed, so every
   dst element is summed by one thread in one fixed order. */
typedef struct zs__bred_job {
    float *dst;
    const float *src;
    int neg, pd;
    int64_t sh[4], ds[4];
} zs__bred_job;

ZS__PRIV void zs__bred_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__bred_job *j = (zs__bred_job *)arg;
    int64_t b[4], e[4], i0, i1, i2, L = j->sh[3];
    int d;
    (void)ws;
    for (d = 0; d < 4; d++) { b[d] = 0; e[d] = j->sh[d]; }
    if (j->pd >= 0) { b[j->pd] = lo; e[j->pd] = hi; }
    for (i0 = b[0]; i0 < e[0]; i0++)
        for (i1 = b[1]; i1 < e[1]; i1++)
            for (i2 = b[2]; i2 < e[2]; i2++) {
                const float *s = j->src + ((i0 * j->sh[1] + i1) * j->sh[2] + i2) * L;
                float *o = j->dst + i0 * j->ds[0] + i1 * j->ds[1] + i2 * j->ds[2];
                if (j->ds[3] == 0) {
                    float v = zs__row_sum(s, L);
                    o[0] = j->neg ? o[0] - v : o[0] + v;
                } else {
                    zs__ew_acc_n(o + b[3], s + b[3], e[3] - b[3], j->neg);
                }
            }
}

ZS__PRIV void zs__bred_exec(zs_ctx *ctx, float *dst, const int64_t *ds4, const float *src, const int64_t *sh4, int neg) {
    zs__bred_job j;
    int64_t cs[4], *st[2], n = 1, best = 1;
    int d;
    j.dst = dst; j.src = src; j.neg = neg; j.pd = -1;
    for (d = 0; d < 4; d++) { j.sh[d] = sh4[d]; j.ds[d] = ds4[d]; n *= sh4[d]; }
    if (n == 0) return;
    cs[3] = 1;
    for (d = 3; d > 0; d--) cs[d - 1] = cs[d] * sh4[d];
    st[0] = j.ds; st[1] = cs;
    zs__collapse(j.sh, st, 2);
    for (d = 0; d < 4; d++)
        if (j.ds[d] != 0 && j.sh[d] > best) { best = j.sh[d]; j.pd = d; }
    if (j.pd < 0) {
        zs__bred_task(&j, 0, 1, NULL);
        return;
    }
    zs__parallel_rows(ctx, j.sh[j.pd], (ZS__EW_MIN + n / best - 1) / (n / best), zs__bred_task, &j);
}

/* contribution of out->grad (shape out) to the gradient gx of input x:
   gx (+/-)= reduce(g * other) where other (may be NULL) is the second operand
   of a product, read through its broadcast data strides */
ZS__PRIV int zs__bin_grad(zs_ctx *ctx, zs_tensor *out, zs_tensor *x, float *gx, zs_tensor *other, int neg) {
    int64_t sh[4], gs[4], os[4], xs[4], n = zs_numel(out), i;
    const float *src = out->grad;
    zs__amark m = zs__arena_mark(&ctx->arena);
    float *tmp = NULL;
    if (n == 0) return ZS_OK;
    for (i = 0; i < 4; i++) sh[i] = 1;
    for (i = 0; i < out->ndim; i++) sh[4 - out->ndim + i] = out->shape[i];
    zs__bcast_gstrides(out, gs);
    if (other) {
        zs__bcast_strides(other, os);
        if (zs_numel(x) == n) { /* no reduction: gx += g * other in one pass */
            zs__bin_exec(ctx, ZS__B_ACCMUL, gx, sh, out->grad, gs, (const float *)other->data, os);
            return ZS_OK;
        }
        tmp = (float *)zs__arena_alloc(&ctx->arena, (size_t)n * sizeof(float));
        if (!tmp) return zs__fail(ZS_ERR_NOMEM, "%s backward: arena exhausted (%lld floats)", out->op, (long long)n);
        zs__bin_exec(ctx, ZS__B_MUL, tmp, sh, out->grad, gs, (const float *)other->data, os);
        src = tmp;
    }
    if (zs_numel(x) == n) {
        zs__ew_job j;
        memset(&j, 0, sizeof j);
        j.op = neg ? ZS__U_NACC : ZS__U_ACC;
        j.y = gx; j.x = src;
        zs__ew_run(ctx, n, ZS__EW_MIN, zs__ew_task, &j);
    } else {
        zs__bcast_gstrides(x, xs);
        zs__bred_exec(ctx, gx, xs, src, sh, neg);
    }
    if (tmp) zs__arena_release(&ctx->arena, m);
    return ZS_OK;
}

ZS__PRIV int zs__bin_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int op = (int)out->ip[0], rc = ZS_OK;
    float *ga, *gb;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    if (ga) rc = zs__bin_grad(ctx, out, a, ga, op == ZS__B_MUL ? b : NULL, 0);
    if (gb && rc == ZS_OK) rc = zs__bin_grad(ctx, out, b, gb, op == ZS__B_MUL ? a : NULL, op == ZS__B_SUB);
    return rc;
}

ZS__PRIV zs_tensor *zs__binary(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, int op, const char *who, const char *name) {
    int64_t sh4[4], sa[4], sb[4];
    int nd;
    zs_tensor *out;
    if (!zs__ok2(ctx, a, b, who)) return NULL;
    if (!zs__bcast_shape(a, b, &nd, sh4)) return zs__shape_fail(ctx, who, a, b, "shapes do not broadcast");
    out = zs__op_new(ctx, name, zs__bin_bwd, nd, sh4 + 4 - nd, a, b, NULL, NULL);
    if (!out) return NULL;
    out->ip[0] = op;
    zs__bcast_strides(a, sa);
    zs__bcast_strides(b, sb);
    zs__bin_exec(ctx, op, (float *)out->data, sh4, (const float *)a->data, sa, (const float *)b->data, sb);
    return out;
}

ZS__FN zs_tensor *zs_add(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) { return zs__binary(ctx, a, b, ZS__B_ADD, "zs_add", "add"); }
ZS__FN zs_tensor *zs_sub(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) { return zs__binary(ctx, a, b, ZS__B_SUB, "zs_sub", "sub"); }
ZS__FN zs_tensor *zs_mul(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) { return zs__binary(ctx, a, b, ZS__B_MUL, "zs_mul", "mul"); }

/* ==================================================================== */
/* erf and GELU                                                         */
/* ==================================================================== */
/* erfc(z) for z in [0, 10]:  erfc(z) = exp(-z^2) * H(w) / (z + K),
   w = (z - K) / (z + K), K = 3. H is a degree-9 polynomial, a Chebyshev fit
   of erfc(z) exp(z^2) (z + K) over w in [-1, 7/13] (z in [0, 10]); its max
   absolute error is 4.7e-9 where H >= 0.73, i.e. 6.4e-9 relative.
   exp(-z^2) is formed from an exact split of the square: zh = z rounded to
   12 significant bits, so zh*zh is exact, and z^2 = zh^2 + (z - zh)(z + zh);
   the small part joins the exponent after the range reduction. A rounded z^2
   would cost up to z^2 * 2^-24 relative error (3e-6 at z = 7).
   erf(z) for |z| < 0.84375: z * P(z^2), P of degree 6 (Chebyshev fit,
   1.4e-10 relative); above: 1 - erfc(|z|) with the sign of z (erfc <= 0.24
   there, so its relative error costs little absolute error).
   GELU(x) = x * Phi(x), Phi(x) = 0.5 erfc(-x/sqrt2): for x < 0 this is
   0.5 erfc(|x|/sqrt2) (relative accuracy even for tiny Phi), for x >= 0
   1 - 0.5 erfc(x/sqrt2). The exponent -x^2/2 is split from x directly, so the
   rounding of x/sqrt2 only reaches the smooth H(w) and 1/(z+K) factors.
   Beyond |x| = 10 sqrt2 (z = 10), Phi is 0 or 1 (erfc(10) = 2e-45). */

#define ZS__ERF_K 3.0f
#define ZS__GELU_XMAX 14.1421356f /* 10 * sqrt(2) */
#define ZS__INV_SQRT2 0.707106781186547524f
#define ZS__INV_SQRT2PI 0.398942280401432678f

/* H(w), highest power first */
#define ZS__ERFC_H9 -3.34224406e-4f
#define ZS__ERFC_H8 -5.00258783e-4f
#define ZS__ERFC_H7 3.07705800e-3f
#define ZS__ERFC_H6 -1.21688907e-3f
#define ZS__ERFC_H5 -2.68362173e-2f
#define ZS__ERFC_H4 1.19527333e-1f
#define ZS__ERFC_H3 -3.10466659e-1f
#define ZS__ERFC_H2 5.90228410e-1f
#define ZS__ERFC_H1 -8.83394460e-1f
#define ZS__ERFC_H0 1.07400691f
/* P(t), t = z^2, |z| < ZS__ERF_SMALL */
#define ZS__ERF_SMALL 0.84375f
#define ZS__ERF_P6 8.88962567e-5f
#define ZS__ERF_P5 -8.25512094e-4f
#define ZS__ERF_P4 5.21012041e-3f
#define ZS__ERF_P3 -2.68627684e-2f
#define ZS__ERF_P2 1.12837516e-1f
#define ZS__ERF_P1 -3.76126371e-1f
#define ZS__ERF_P0 1.12837917f

/* -ffast-math may reassociate (hi - n*C1) + n*C2 into hi - n*(C1 - C2),
   which loses the exact first step; this barrier keeps the order there */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__FAST_MATH__)
#define ZS__FP_KEEP(x) __asm__("" : "+m"(x))
#else
#define ZS__FP_KEEP(x) ((void)0)
#endif

/* exp(hi + lo) for hi in [-104, 0] whose bits must not be rounded away and
   |lo| << 1: Cody-Waite reduction of hi (exact), lo added to the reduced
   argument, Cephes polynomial, 2^n in two steps (n down to -150). */
ZS__PRIV float zs__exp_hl(float hi, float lo) {
    float n = floorf(hi * 1.44269504088896341f + 0.5f), r, p;
    int32_t e = (int32_t)n;
    r = hi - n * 0.693359375f;
    ZS__FP_KEEP(r);
    r = r + n * 2.12194440e-4f;
    r = r + lo;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * zs__u2f((uint32_t)(127 + e / 2) << 23) * zs__u2f((uint32_t)(127 + e - e / 2) << 23);
}

ZS__PRIV float zs__erfc_h(float w) {
    float p = ZS__ERFC_H9;
    p = p * w + ZS__ERFC_H8;
    p = p * w + ZS__ERFC_H7;
    p = p * w + ZS__ERFC_H6;
    p = p * w + ZS__ERFC_H5;
    p = p * w + ZS__ERFC_H4;
    p = p * w + ZS__ERFC_H3;
    p = p * w + ZS__ERFC_H2;
    p = p * w + ZS__ERFC_H1;
    return p * w + ZS__ERFC_H0;
}

/* erfc(z) for z in [0, 10], given e = exp(-z^2) */
ZS__PRIV float zs__erfc_tail(float z, float e) {
    float d = 1.0f / (z + ZS__ERF_K), w = (z - ZS__ERF_K) * d;
    return e * d * zs__erfc_h(w);
}

/* scalar erf (NaN in, NaN out) */
ZS__PRIV float zs__erff(float x) {
    float ax = fabsf(x), a, ah, al, r;
    if (!(ax >= ZS__ERF_SMALL)) {
        float t = x * x, p = ZS__ERF_P6;
        p = p * t + ZS__ERF_P5;
        p = p * t + ZS__ERF_P4;
        p = p * t + ZS__ERF_P3;
        p = p * t + ZS__ERF_P2;
        p = p * t + ZS__ERF_P1;
        p = p * t + ZS__ERF_P0;
        return x * p;
    }
    if (ax > 10.0f) return x < 0 ? -1.0f : 1.0f;
    a = ax;
    ah = zs__u2f(zs__f2u(a) & 0xfffff000u);
    al = a - ah;
    r = 1.0f - zs__erfc_tail(a, zs__exp_hl(-(ah * ah), -(al * (a + ah))));
    return x < 0 ? -r : r;
}

/* Phi(x) = P(N(0,1) <= x); *e = exp(-x^2/2) (0 beyond |x| = 10 sqrt2) */
ZS__PRIV float zs__phi(float x, float *e_out) {
    float ax = fabsf(x), a = ax < ZS__GELU_XMAX ? ax : ZS__GELU_XMAX; /* NaN -> XMAX */
    float ah = zs__u2f(zs__f2u(a) & 0xfffff000u), al = a - ah;
    float e = zs__exp_hl(-0.5f * (ah * ah), -0.5f * (al * (a + ah)));
    float h;
    if (!(ax <= ZS__GELU_XMAX)) e = 0.0f;
    h = 0.5f * zs__erfc_tail(a * ZS__INV_SQRT2, e);
    *e_out = e;
    return x < 0 ? h : 1.0f - h;
}

#if defined(ZS__AVX2)
ZS__PRIV __m256 zs__vexp_hl(__m256 hi, __m256 lo) {
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(hi, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), hi);
    __m256 p, s1, s2;
    __m256i e, e1, e2;
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    r = _mm256_add_ps(r, lo);
    p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    e = _mm256_cvtps_epi32(n);
    e1 = _mm256_srai_epi32(e, 1);
    e2 = _mm256_sub_epi32(e, e1);
    s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, _mm256_set1_epi32(127)), 23));
    s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

ZS__PRIV __m256 zs__verfc_tail(__m256 z, __m256 e) {
    __m256 d = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(z, _mm256_set1_ps(ZS__ERF_K)));
    __m256 w = _mm256_mul_ps(_mm256_sub_ps(z, _mm256_set1_ps(ZS__ERF_K)), d);
    __m256 p = _mm256_set1_ps(ZS__ERFC_H9);
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H8));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H7));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H6));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H5));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H4));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H3));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H2));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H1));
    p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(ZS__ERFC_H0));
    return _mm256_mul_ps(_mm256_mul_ps(e, d), p);
}

ZS__PRIV __m256 zs__verf(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 ax = _mm256_andnot_ps(sign, x), t = _mm256_mul_ps(x, x), p, a, ah, al, e, big, small;
    p = _mm256_set1_ps(ZS__ERF_P6);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P5));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P1));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ZS__ERF_P0));
    small = _mm256_mul_ps(x, p);
    a = _mm256_min_ps(ax, _mm256_set1_ps(10.0f));
    ah = _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-4096)));
    al = _mm256_sub_ps(a, ah);
    e = zs__vexp_hl(_mm256_xor_ps(sign, _mm256_mul_ps(ah, ah)), _mm256_xor_ps(sign, _mm256_mul_ps(al, _mm256_add_ps(a, ah))));
    e = _mm256_and_ps(e, _mm256_cmp_ps(ax, _mm256_set1_ps(10.0f), _CMP_LE_OQ));
    big = _mm256_sub_ps(one, zs__verfc_tail(a, e));
    big = _mm256_or_ps(big, _mm256_and_ps(x, sign));
    /* NaN takes the small branch, which propagates it */
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(ZS__ERF_SMALL), _CMP_NGE_UQ));
}

ZS__PRIV __m256 zs__vphi(__m256 x, __m256 *e_out) {
    const __m256 xmax = _mm256_set1_ps(ZS__GELU_XMAX), mhalf = _mm256_set1_ps(-0.5f);
    __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    __m256 a = _mm256_min_ps(ax, xmax); /* NaN -> xmax */
    __m256 ah = _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-4096)));
    __m256 al = _mm256_sub_ps(a, ah);
    __m256 e = zs__vexp_hl(_mm256_mul_ps(mhalf, _mm256_mul_ps(ah, ah)), _mm256_mul_ps(mhalf, _mm256_mul_ps(al, _mm256_add_ps(a, ah))));
    __m256 h;
    e = _mm256_and_ps(e, _mm256_cmp_ps(ax, xmax, _CMP_LE_OQ));
    h = _mm256_mul_ps(_mm256_set1_ps(0.5f), zs__verfc_tail(_mm256_mul_ps(a, _mm256_set1_ps(ZS__INV_SQRT2)), e));
    *e_out = e;
    return _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), h), h, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
}
#endif

/* y[i] = erf(x[i]) */
ZS__PRIV void zs__erf_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, zs__verf(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] = zs__erff(x[i]);
}
ZS__PRIV void zs__erf_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = (float)erf((double)x[i]);
}

/* y[i] = gelu(x[i]) = x Phi(x) */
ZS__PRIV void zs__gelu_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), e;
        _mm256_storeu_ps(y + i, _mm256_mul_ps(v, zs__vphi(v, &e)));
    }
#endif
    for (; i < n; i++) {
        float e;
        y[i] = x[i] * zs__phi(x[i], &e);
    }
}
/* double-precision reference: 0.5 x erfc(-x/sqrt2) (no cancellation for x << 0) */
ZS__PRIV void zs__gelu_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
    }
}

/* gx[i] += gy[i] * gelu'(x[i]), gelu'(x) = Phi(x) + x exp(-x^2/2) / sqrt(2 pi) */
ZS__PRIV void zs__gelu_bwd_n(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), e, p = zs__vphi(v, &e);
        __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(v, e), _mm256_set1_ps(ZS__INV_SQRT2PI), p);
        _mm256_storeu_ps(gx + i, _mm256_fmadd_ps(_mm256_loadu_ps(gy + i), d, _mm256_loadu_ps(gx + i)));
    }
#endif
    for (; i < n; i++) {
        float e, p = zs__phi(x[i], &e);
        gx[i] += gy[i] * (p + x[i] * e * ZS__INV_SQRT2PI);
    }
}
ZS__PRIV void zs__gelu_bwd_ref(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double v = x[i];
        double d = 0.5 * erfc(-v * 0.70710678118654752440) + v * exp(-0.5 * v * v) * 0.39894228040143267794;
        gx[i] = (float)((double)gx[i] + (double)gy[i] * d);
    }
}

/* -- relu, sigmoid, softplus, dropout kernels ------------------------- */

/* y = max(0, x); NaN propagates */
ZS__PRIV void zs__relu_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    zs__vf z = zs__vzero();
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vmax(z, zs__vload(x + i)));
    for (; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
ZS__PRIV void zs__relu_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* gx += x > 0 ? gy : 0 */
ZS__PRIV void zs__relu_bwd_n(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 m = _mm256_cmp_ps(_mm256_loadu_ps(x + i), _mm256_setzero_ps(), _CMP_GT_OQ);
        _mm256_storeu_ps(gx + i, _mm256_add_ps(_mm256_loadu_ps(gx + i), _mm256_and_ps(m, _mm256_loadu_ps(gy + i))));
    }
#endif
    for (; i < n; i++) gx[i] += x[i] > 0.0f ? gy[i] : 0.0f;
}
ZS__PRIV void zs__relu_bwd_ref(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) gx[i] += x[i] > 0.0f ? gy[i] : 0.0f;
}

/* y = 1 / (1 + exp(-x)), from t = exp(-|x|) so neither side overflows */
ZS__PRIV void zs__sigmoid_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 t = zs__vexp(_mm256_or_ps(v, _mm256_set1_ps(-0.0f)));
        __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
        _mm256_storeu_ps(y + i, _mm256_blendv_ps(r, _mm256_mul_ps(t, r), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ)));
    }
#endif
    for (; i < n; i++) {
        float t = zs__expf(-fabsf(x[i])), r = 1.0f / (1.0f + t);
        y[i] = x[i] < 0.0f ? t * r : r;
    }
}
ZS__PRIV void zs__sigmoid_ref(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
}

/* gx += gy * y (1 - y), y the sigmoid output */
ZS__PRIV void zs__sigmoid_bwd_n(float *gx, const float *y, const float *gy, int64_t n) {
    int64_t i = 0;
    zs__vf one = zs__vset1(1.0f);
    for (; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf v = zs__vload(y + i);
        zs__vstore(gx + i, zs__vfma(zs__vmul(zs__vload(gy + i), v), zs__vsub(one, v), zs__vload(gx + i)));
    }
    for (; i < n; i++) gx[i] += gy[i] * y[i] * (1.0f - y[i]);
}

/* softplus, torch beta = 1, threshold = 20: x > 20 -> x (scalar; libm) */
ZS__PRIV void zs__softplus_n(float *y, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) y[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
}
ZS__PRIV void zs__softplus_bwd_n(float *gx, const float *x, const float *gy, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) gx[i] += x[i] > 20.0f ? gy[i] : gy[i] / (1.0f + expf(-x[i]));
}

/* inverted dropout over elements [first, first + n) of a tensor: element i
   is kept when zs__hash_uniform(key, i) >= p, and scaled.
   The mask costs two 64-bit hashes per element (4 multiplies): in scalar code ~10 %
   of a ViT-B training step (masks are regenerated in backward instead of stored).
   With AVX-512DQ (64-bit lane multiplies) the vector path computes the same 24-bit
   uniforms bit for bit, ~6x faster, so masks do not depend on the build. (AVX2 has
   no 64-bit multiply; emulating it with 32-bit ones was only 15 % faster: scalar.)
   zs__dropout_apply(y, x, m, n, key, first, p, scale, acc): for element first+i,
   keep = zs__hash_uniform(key, first+i) >= p; y[i] = keep ? x[i]*scale : 0 (acc = 0;
   y == x allowed) or y[i] += keep ? x[i]*scale : 0 (acc = 1, mul then add as the
   scalar code under -std=c99); m[i] = keep when m is not NULL. */
#if defined(ZS__AVX512) && defined(__AVX512DQ__) && defined(__GNUC__) && !defined(__clang__)
/* g++ 12 warns inside its own AVX-512 headers (_mm512_undefined_epi32's
   self-initialisation) when these intrinsics are inlined: a false positive */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#if defined(ZS__AVX512) && defined(__AVX512DQ__)
ZS__PRIV __m512i zs__vmix64(__m512i z) { /* zs__mix64 on 8 lanes */
    z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64((long long)0x94d049bb133111ebull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}
/* keep bits of the 16 elements idx[0..7], idx[0..7] + 8; advances idx by 16.
   h >> 40 < 2^24: narrowing to 32 bits and converting to float are exact, and
   u = h * 2^-24 is zs__hash_uniform's value */
ZS__PRIV __mmask16 zs__drop_mask16(__m512i *idx, __m512i vk, __m512 vp) {
    const __m512i eight = _mm512_set1_epi64(8);
    __m256i h0 = _mm512_cvtepi64_epi32(_mm512_srli_epi64(zs__vmix64(_mm512_xor_si512(vk, zs__vmix64(*idx))), 40)), h1;
    *idx = _mm512_add_epi64(*idx, eight);
    h1 = _mm512_cvtepi64_epi32(_mm512_srli_epi64(zs__vmix64(_mm512_xor_si512(vk, zs__vmix64(*idx))), 40));
    *idx = _mm512_add_epi64(*idx, eight);
    return _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_castsi256_si512(h0), h1, 1)),
                                            _mm512_set1_ps(1.0f / 16777216.0f)), vp, _CMP_GE_OQ);
}
#endif
ZS__PRIV void zs__dropout_apply(float *y, const float *x, unsigned char *m, int64_t n, uint64_t key, int64_t first,
                                float p, float scale, int acc) {
    int64_t i = 0;
#if defined(ZS__AVX512) && defined(__AVX512DQ__)
    const __m512i vk = _mm512_set1_epi64((long long)key);
    const __m512 vp = _mm512_set1_ps(p), vs = _mm512_set1_ps(scale);
    __m512i idx = _mm512_add_epi64(_mm512_set1_epi64((long long)first), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    for (; i + 16 <= n; i += 16) {
        __mmask16 k = zs__drop_mask16(&idx, vk, vp);
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
        if (acc) {
            __m512 g = _mm512_loadu_ps(y + i);
            _mm512_storeu_ps(y + i, _mm512_mask_add_ps(g, k, g, v));
        } else {
            _mm512_storeu_ps(y + i, _mm512_maskz_mov_ps(k, v));
        }
        if (m) _mm_storeu_si128((__m128i *)(void *)(m + i), _mm512_cvtepi32_epi8(_mm512_maskz_set1_epi32(k, 1)));
    }
#endif
    for (; i < n; i++) {
        int keep = zs__hash_uniform(key, (uint64_t)(first + i)) >= p;
        if (m) m[i] = (unsigned char)keep;
        if (!acc) y[i] = keep ? x[i] * scale : 0.0f;
        else if (keep) y[i] += x[i] * scale;
    }
}
#if defined(ZS__AVX512) && defined(__AVX512DQ__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
ZS__PRIV void zs__dropout_n(float *y, const float *x, int64_t n, uint64_t key, int64_t first, float p, float scale) {
    zs__dropout_apply(y, x, NULL, n, key, first, p, scale, 0);
}
ZS__PRIV void zs__dropout_bwd_n(float *gx, const float *gy, int64_t n, uint64_t key, int64_t first, float p, float scale) {
    zs__dropout_apply(gx, gy, NULL, n, key, first, p, scale, 1);
}

/* -- elementwise job dispatch ----------------------------------------- */

ZS__PRIV void zs__ew_task(void *arg, int64_t lo, int64_t hi) {
    zs__ew_job *j = (zs__ew_job *)arg;
    int64_t n = hi - lo;
    float *y = j->y + lo;
    const float *x = j->x ? j->x + lo : NULL, *g = j->g ? j->g + lo : NULL;
    switch (j->op) {
    case ZS__U_ACC: zs__ew_acc_n(y, x, n, 0); break;
    case ZS__U_NACC: zs__ew_acc_n(y, x, n, 1); break;
    case ZS__U_AXPY: zs__ew_axpy_n(y, x, j->s, n); break;
    case ZS__U_SCALE: zs__ew_scale_n(y, x, j->s, n); break;
    case ZS__U_ADDS: zs__ew_adds_n(y, x, j->s, n); break;
    case ZS__U_ADDC: zs__ew_adds_n(y, NULL, j->s, n); break;
    case ZS__U_RELU: zs__relu_n(y, x, n); break;
    case ZS__U_RELU_BWD: zs__relu_bwd_n(y, x, g, n); break;
    case ZS__U_GELU: zs__gelu_n(y, x, n); break;
    case ZS__U_GELU_BWD: zs__gelu_bwd_n(y, x, g, n); break;
    case ZS__U_SIGMOID: zs__sigmoid_n(y, x, n); break;
    case ZS__U_SIGMOID_BWD: zs__sigmoid_bwd_n(y, x, g, n); break;
    case ZS__U_SOFTPLUS: zs__softplus_n(y, x, n); break;
    case ZS__U_SOFTPLUS_BWD: zs__softplus_bwd_n(y, x, g, n); break;
    case ZS__U_DROPOUT: zs__dropout_n(y, x, n, j->key, lo, j->s, j->s2); break;
    case ZS__U_DROPOUT_BWD: zs__dropout_bwd_n(y, g, n, j->key, lo, j->s, j->s2); break;
    default: break;
    }
}

/* minimum elements per thread: cheap streaming ops vs transcendental ones */
ZS__PRIV int64_t zs__ew_min(int op) {
    switch (op) {
    case ZS__U_GELU: case ZS__U_GELU_BWD: case ZS__U_SIGMOID: case ZS__U_SOFTPLUS:
    case ZS__U_SOFTPLUS_BWD: case ZS__U_DROPOUT: case ZS__U_DROPOUT_BWD: return 2 * ZS__EBLK;
    default: return ZS__EW_MIN;
    }
}

/* out = op(a) elementwise; a is made contiguous first */
ZS__PRIV zs_tensor *zs__unary(zs_ctx *ctx, zs_tensor *a, const char *who, const char *name, zs_backward_fn bwd, int op, float s) {
    zs_tensor *out;
    zs__ew_job j;
    if (!zs__ok1(ctx, a, who)) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, name, bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    out->fp[0] = s;
    memset(&j, 0, sizeof j);
    j.op = op; j.y = (float *)out->data; j.x = (const float *)a->data; j.s = s;
    zs__ew_run(ctx, zs_numel(a), zs__ew_min(op), zs__ew_task, &j);
    return out;
}

/* gradient of a unary op: ga (op)= ... with x the saved operand */
ZS__PRIV int zs__unary_bwd(zs_ctx *ctx, zs_tensor *out, int op, const float *x, float s) {
    float *ga;
    zs__ew_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    memset(&j, 0, sizeof j);
    j.op = op; j.y = ga; j.x = x; j.g = out->grad; j.s = s;
    zs__ew_run(ctx, zs_numel(out->src[0]), zs__ew_min(op), zs__ew_task, &j);
    return ZS_OK;
}

ZS__PRIV int zs__scale_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__unary_bwd(ctx, out, ZS__U_AXPY, out->grad, out->fp[0]); }
ZS__PRIV int zs__adds_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__unary_bwd(ctx, out, ZS__U_ACC, out->grad, 0.0f); }
ZS__PRIV int zs__relu_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_RELU_BWD, (const float *)out->src[0]->data, 0.0f);
}
ZS__PRIV int zs__gelu_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_GELU_BWD, (const float *)out->src[0]->data, 0.0f);
}
ZS__PRIV int zs__sigmoid_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_SIGMOID_BWD, (const float *)out->data, 0.0f);
}
ZS__PRIV int zs__softplus_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_SOFTPLUS_BWD, (const float *)out->src[0]->data, 0.0f);
}

ZS__FN zs_tensor *zs_scale(zs_ctx *ctx, zs_tensor *a, float s) {
    return zs__unary(ctx, a, "zs_scale", "scale", zs__scale_bwd, ZS__U_SCALE, s);
}
ZS__FN zs_tensor *zs_add_scalar(zs_ctx *ctx, zs_tensor *a, float s) {
    return zs__unary(ctx, a, "zs_add_scalar", "add_scalar", zs__adds_bwd, ZS__U_ADDS, s);
}
ZS__FN zs_tensor *zs_relu(zs_ctx *ctx, zs_tensor *a) { return zs__unary(ctx, a, "zs_relu", "relu", zs__relu_bwd, ZS__U_RELU, 0.0f); }
ZS__FN zs_tensor *zs_gelu(zs_ctx *ctx, zs_tensor *a) { return zs__unary(ctx, a, "zs_gelu", "gelu", zs__gelu_bwd, ZS__U_GELU, 0.0f); }
ZS__FN zs_tensor *zs_sigmoid(zs_ctx *ctx, zs_tensor *a) {
    return zs__unary(ctx, a, "zs_sigmoid", "sigmoid", zs__sigmoid_bwd, ZS__U_SIGMOID, 0.0f);
}
ZS__FN zs_tensor *zs_softplus(zs_ctx *ctx, zs_tensor *a) {
    return zs__unary(ctx, a, "zs_softplus", "softplus", zs__softplus_bwd, ZS__U_SOFTPLUS, 0.0f);
}

/* -- dropout: key in ip[0], p in fp[0], scale in fp[1] -- */
ZS__PRIV int zs__dropout_bwd(zs_ctx *ctx, zs_tensor *out) {
    float *ga;
    zs__ew_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    memset(&j, 0, sizeof j);
    j.op = ZS__U_DROPOUT_BWD; j.y = ga; j.g = out->grad; j.s = out->fp[0]; j.s2 = out->fp[1];
    memcpy(&j.key, &out->ip[0], sizeof j.key);
    zs__ew_run(ctx, zs_numel(out), zs__ew_min(j.op), zs__ew_task, &j);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_dropout(zs_ctx *ctx, zs_tensor *a, float p) {
    zs_tensor *out;
    zs__ew_job j;
    if (!zs__ok1(ctx, a, "zs_dropout")) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        zs__fail(ZS_ERR_ARG, "zs_dropout: p must be in [0,1], got %g", (double)p);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (!ctx->training || p == 0.0f) return a; /* identity: the input itself */
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, "dropout", zs__dropout_bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    memset(&j, 0, sizeof j);
    j.op = ZS__U_DROPOUT; j.y = (float *)out->data; j.x = (const float *)a->data;
    j.key = zs__rng_key(ctx);
    j.s = p;
    j.s2 = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; /* p = 1: every element dropped */
    memcpy(&out->ip[0], &j.key, sizeof j.key);
    out->fp[0] = j.s;
    out->fp[1] = j.s2;
    zs__ew_run(ctx, zs_numel(a), zs__ew_min(j.op), zs__ew_task, &j);
    return out;
}

/* ==================================================================== */
/* reductions                                                           */
/* ==================================================================== */

/* sum of n floats in double: 8 lanes in two 4-double accumulators (AVX2),
   lanes combined in a fixed order, then the tail */
ZS__PRIV double zs__sum_d(const float *x, int64_t n) {
    int64_t i = 0;
    double s = 0.0;
#if defined(ZS__AVX2)
    if (n >= 8) {
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
        double t[4];
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
            a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
        }
        _mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
        s = (t[0] + t[1]) + (t[2] + t[3]);
    }
#endif
    for (; i < n; i++) s += (double)x[i];
    return s;
}

typedef struct zs__sumall_job { const float *x; double *part; int64_t n; } zs__sumall_job;
ZS__PRIV void zs__sumall_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__sumall_job *j = (zs__sumall_job *)arg;
    int64_t c;
    (void)ws;
    for (c = lo; c < hi; c++) {
        int64_t a = c * ZS__EBLK, b = a + ZS__EBLK;
        j->part[c] = zs__sum_d(j->x + a, (b < j->n ? b : j->n) - a);
    }
}

/* ga += g * (1 or 1/n) */
ZS__PRIV int zs__sumall_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__unary_bwd(ctx, out, ZS__U_ADDC, NULL, out->grad[0] * out->fp[0]);
}

/* sum (mean = 0) or mean (mean = 1) of every element -> scalar */
ZS__PRIV zs_tensor *zs__sumall(zs_ctx *ctx, zs_tensor *a, int mean) {
    const char *who = mean ? "zs_mean" : "zs_sum";
    zs_tensor *out;
    zs__sumall_job j;
    zs__amark m;
    int64_t n, nc, c;
    double s = 0.0;
    if (!zs__ok1(ctx, a, who)) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, mean ? "mean" : "sum", zs__sumall_bwd, 0, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    n = zs_numel(a);
    nc = (n + ZS__EBLK - 1) / ZS__EBLK;
    out->fp[0] = mean ? (float)(1.0 / (double)n) : 1.0f; /* n = 0: mean is NaN like torch */
    m = zs__arena_mark(&ctx->arena);
    j.x = (const float *)a->data; j.n = n;
    j.part = (double *)zs__arena_alloc(&ctx->arena, (size_t)(nc ? nc : 1) * sizeof(double));
    if (!j.part) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    zs__parallel_rows(ctx, nc, ZS__EW_MIN / ZS__EBLK, zs__sumall_task, &j);
    for (c = 0; c < nc; c++) s += j.part[c];
    zs__arena_release(&ctx->arena, m);
    ((float *)out->data)[0] = (float)(mean ? s / (double)n : s);
    return out;
}

ZS__FN zs_tensor *zs_sum(zs_ctx *ctx, zs_tensor *a) { return zs__sumall(ctx, a, 0); }
ZS__FN zs_tensor *zs_mean(zs_ctx *ctx, zs_tensor *a) { return zs__sumall(ctx, a, 1); }

/* -- sum / mean over one dim: a viewed as [outer, L, inner] -- */
#define ZS__SDIM_COLS 64
typedef struct zs__sdim_job {
    float *y;
    const float *x;
    int64_t outer, L, inner, ncb;
    double scale;
} zs__sdim_job;

/* item = (o, block of ZS__SDIM_COLS columns): double sums over l in order */
ZS__PRIV void zs__sdim_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__sdim_job *j = (zs__sdim_job *)arg;
    double acc[ZS__SDIM_COLS];
    int64_t it, l, k;
    (void)ws;
    for (it = lo; it < hi; it++) {
        int64_t o = it / j->ncb, c0 = (it % j->ncb) * ZS__SDIM_COLS, c1 = c0 + ZS__SDIM_COLS;
        if (c1 > j->inner) c1 = j->inner;
        for (k = 0; k < c1 - c0; k++) acc[k] = 0.0;
        for (l = 0; l < j->L; l++) {
            const float *p = j->x + (o * j->L + l) * j->inner + c0;
            for (k = 0; k < c1 - c0; k++) acc[k] += (double)p[k];
        }
        for (k = 0; k < c1 - c0; k++) j->y[o * j->inner + c0 + k] = (float)(acc[k] * j->scale);
    }
}

typedef struct zs__sdimb_job { float *gx; const float *g; int64_t L, inner; float s; } zs__sdimb_job;
ZS__PRIV void zs__sdimb_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__sdimb_job *j = (zs__sdimb_job *)arg;
    int64_t r;
    (void)ws;
    for (r = lo; r < hi; r++) {
        float *d = j->gx + r * j->inner;
        const float *s = j->g + (r / j->L) * j->inner;
        if (j->s == 1.0f) zs__ew_acc_n(d, s, j->inner, 0);
        else zs__ew_axpy_n(d, s, j->s, j->inner);
    }
}

/* ip[0] outer, ip[1] L, ip[2] inner; fp[0] scale */
ZS__PRIV int zs__sdim_bwd(zs_ctx *ctx, zs_tensor *out) {
    float *ga;
    zs__sdimb_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    j.gx = ga; j.g = out->grad; j.L = out->ip[1]; j.inner = out->ip[2]; j.s = out->fp[0];
    if (j.inner > 0)
        zs__parallel_rows(ctx, out->ip[0] * j.L, (ZS__EW_MIN + j.inner - 1) / j.inner, zs__sdimb_task, &j);
    return ZS_OK;
}

ZS__PRIV zs_tensor *zs__sumdim(zs_ctx *ctx, zs_tensor *a, int dim, int mean) {
    const char *who = mean ? "zs_mean_dim" : "zs_sum_dim";
    int64_t shape[ZS_MAX_DIMS], per;
    zs__sdim_job j;
    zs_tensor *out;
    int i, k = 0;
    if (!zs__ok1(ctx, a, who)) return NULL;
    if (dim < 0) dim += a->ndim;
    if (dim < 0 || dim >= a->ndim) return zs__shape_fail(ctx, who, a, NULL, "dimension out of range");
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    j.outer = 1; j.inner = 1; j.L = a->shape[dim];
    for (i = 0; i < a->ndim; i++) {
        if (i < dim) j.outer *= a->shape[i];
        if (i > dim) j.inner *= a->shape[i];
        if (i != dim) shape[k++] = a->shape[i];
    }
    out = zs__op_new(ctx, mean ? "mean_dim" : "sum_dim", zs__sdim_bwd, a->ndim - 1, shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    j.scale = mean ? 1.0 / (double)j.L : 1.0; /* L = 0: mean is NaN like torch */
    out->ip[0] = j.outer; out->ip[1] = j.L; out->ip[2] = j.inner;
    out->fp[0] = (float)j.scale;
    j.y = (float *)out->data; j.x = (const float *)a->data;
    j.ncb = (j.inner + ZS__SDIM_COLS - 1) / ZS__SDIM_COLS;
    per = (j.inner < ZS__SDIM_COLS ? j.inner : ZS__SDIM_COLS) * (j.L > 0 ? j.L : 1);
    if (j.inner > 0 && j.outer > 0) zs__parallel_rows(ctx, j.outer * j.ncb, (ZS__EW_MIN + per - 1) / per, zs__sdim_task, &j);
    return out;
}

ZS__FN zs_tensor *zs_sum_dim(zs_ctx *ctx, zs_tensor *a, int dim) { return zs__sumdim(ctx, a, dim, 0); }
ZS__FN zs_tensor *zs_mean_dim(zs_ctx *ctx, zs_tensor *a, int dim) { return zs__sumdim(ctx, a, dim, 1); }

/* ==================================================================== */
/* row ops over the last dim: softmax, log-softmax, norms               */
/* ==================================================================== */

/* softmax backward: gx += y (gy - <gy, y>) */
ZS__PRIV void zs__softmax_bwd_row(float *gx, const float *y, const float *gy, int64_t n) {
    float dot = zs__row_dot(gy, y, n);
    int64_t i = 0;
    zs__vf vd = zs__vset1(dot);
    for (; i + ZS__VW <= n; i += ZS__VW)
        zs__vstore(gx + i, zs__vfma(zs__vload(y + i), zs__vsub(zs__vload(gy + i), vd), zs__vload(gx + i)));
    for (; i < n; i++) gx[i] += y[i] * (gy[i] - dot);
}
ZS__PRIV void zs__softmax_bwd_row_ref(float *gx, const float *y, const float *gy, int64_t n) {
    double dot = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) dot += (double)gy[i] * y[i];
    for (i = 0; i < n; i++) gx[i] = (float)(gx[i] + (double)y[i] * (gy[i] - dot));
}

/* y = x - logsumexp(x) (y may not alias x) */
ZS__PRIV void zs__logsoftmax_row(float *y, const float *x, int64_t n) {
    float lse;
    int64_t i = 0;
    zs__vf vl;
    memcpy(y, x, (size_t)n * sizeof(float));
    lse = zs__softmax_row(y, n);
    vl = zs__vset1(lse);
    for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vsub(zs__vload(x + i), vl));
    for (; i < n; i++) y[i] = x[i] - lse;
}
ZS__PRIV void zs__logsoftmax_row_ref(float *y, const float *x, int64_t n) {
    double mx = -INFINITY, s = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (i = 0; i < n; i++) y[i] = (float)((double)x[i] - mx - log(s));
}

/* log-softmax backward: gx += gy - exp(y) sum(gy) */
ZS__PRIV void zs__logsoftmax_bwd_row(float *gx, const float *y, const float *gy, int64_t n) {
    float sg = zs__row_sum(gy, n);
    int64_t i = 0;
#if defined(ZS__AVX2)
    __m256 vs = _mm256_set1_ps(sg);
    for (; i + 8 <= n; i += 8) {
        __m256 p = zs__vexp(_mm256_loadu_ps(y + i));
        _mm256_storeu_ps(gx + i, _mm256_add_ps(_mm256_loadu_ps(gx + i), _mm256_fnmadd_ps(p, vs, _mm256_loadu_ps(gy + i))));
    }
#endif
    for (; i < n; i++) gx[i] += gy[i] - zs__expf(y[i]) * sg;
}
ZS__PRIV void zs__logsoftmax_bwd_row_ref(float *gx, const float *y, const float *gy, int64_t n) {
    double sg = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) sg += gy[i];
    for (i = 0; i < n; i++) gx[i] = (float)(gx[i] + (double)gy[i] - exp((double)y[i]) * sg);
}

/* LayerNorm row: y = (x - mean) rstd w + b, biased variance, eps inside the
   sqrt; w, b may be NULL; st (may be NULL) gets mean, rstd */
ZS__PRIV void zs__ln_row(float *y, float *st, const float *x, const float *w, const float *b, int64_t n, float eps) {
    float mean = zs__row_sum(x, n) / (float)n;
    float rstd = 1.0f / sqrtf(zs__row_sqdev(x, mean, n) / (float)n + eps);
    int64_t i = 0;
    zs__vf vm = zs__vset1(mean), vr = zs__vset1(rstd);
    if (w && b) {
        for (; i + ZS__VW <= n; i += ZS__VW)
            zs__vstore(y + i, zs__vfma(zs__vmul(zs__vsub(zs__vload(x + i), vm), vr), zs__vload(w + i), zs__vload(b + i)));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
    } else if (w) {
        for (; i + ZS__VW <= n; i += ZS__VW)
            zs__vstore(y + i, zs__vmul(zs__vmul(zs__vsub(zs__vload(x + i), vm), vr), zs__vload(w + i)));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i];
    } else if (b) {
        for (; i + ZS__VW <= n; i += ZS__VW)
            zs__vstore(y + i, zs__vfma(zs__vsub(zs__vload(x + i), vm), vr, zs__vload(b + i)));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd + b[i];
    } else {
        for (; i + ZS__VW <= n; i += ZS__VW) zs__vstore(y + i, zs__vmul(zs__vsub(zs__vload(x + i), vm), vr));
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd;
    }
    if (st) { st[0] = mean; st[1] = rstd; }
}
ZS__PRIV void zs__ln_row_ref(float *y, float *st, const float *x, const float *w, const float *b, int64_t n, float eps) {
    double mean = 0.0, var = 0.0, rstd;
    int64_t i;
    for (i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    rstd = 1.0 / sqrt(var / (double)n + (double)eps);
    for (i = 0; i < n; i++) y[i] = (float)(((double)x[i] - mean) * rstd * (w ? (double)w[i] : 1.0) + (b ? (double)b[i] : 0.0));
    if (st) { st[0] = (float)mean; st[1] = (float)rstd; }
}

/* LayerNorm row backward (gx, dw, db each may be NULL; all accumulate):
   xhat = (x - mean) rstd, g = gy w;
   gx += rstd (g - mean(g) - xhat mean(g xhat)), dw += gy xhat, db += gy */
ZS__PRIV void zs__ln_bwd_row(float *gx, float *dw, float *db, const float *gy, const float *x, const float *w,
                             float mean, float rstd, int64_t n) {
    int64_t i = 0;
    float c1 = 0.0f, c2 = 0.0f;
    zs__vf vm = zs__vset1(mean), vr = zs__vset1(rstd), vc1, vc2;
    if (gx) { /* pass 1: the two row means */
        float s1, s2;
        zs__vf a1 = zs__vzero(), a2 = zs__vzero();
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf g = w ? zs__vmul(zs__vload(gy + i), zs__vload(w + i)) : zs__vload(gy + i);
            a1 = zs__vadd(a1, g);
            a2 = zs__vfma(g, zs__vmul(zs__vsub(zs__vload(x + i), vm), vr), a2);
        }
        s1 = zs__vhsum(a1);
        s2 = zs__vhsum(a2);
        for (; i < n; i++) {
            float g = w ? gy[i] * w[i] : gy[i];
            s1 += g;
            s2 += g * ((x[i] - mean) * rstd);
        }
        c1 = s1 / (float)n;
        c2 = s2 / (float)n;
    }
    vc1 = zs__vset1(c1);
    vc2 = zs__vset1(c2);
    /* pass 2: gx, dw, db together */
    for (i = 0; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf vg = zs__vload(gy + i), xh = zs__vmul(zs__vsub(zs__vload(x + i), vm), vr);
        if (gx) {
            zs__vf g = w ? zs__vmul(vg, zs__vload(w + i)) : vg;
            zs__vf t = zs__vsub(zs__vsub(g, vc1), zs__vmul(xh, vc2));
            zs__vstore(gx + i, zs__vfma(vr, t, zs__vload(gx + i)));
        }
        if (dw) zs__vstore(dw + i, zs__vfma(vg, xh, zs__vload(dw + i)));
        if (db) zs__vstore(db + i, zs__vadd(zs__vload(db + i), vg));
    }
    for (; i < n; i++) {
        float xh = (x[i] - mean) * rstd;
        if (gx) gx[i] += rstd * ((w ? gy[i] * w[i] : gy[i]) - c1 - xh * c2);
        if (dw) dw[i] += gy[i] * xh;
        if (db) db[i] += gy[i];
    }
}
ZS__PRIV void zs__ln_bwd_row_ref(float *gx, float *dw, float *db, const float *gy, const float *x, const float *w,
                                 float mean, float rstd, int64_t n) {
    double s1 = 0.0, s2 = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (w ? (double)w[i] : 1.0), xh = ((double)x[i] - mean) * rstd;
        s1 += g;
        s2 += g * xh;
    }
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (w ? (double)w[i] : 1.0), xh = ((double)x[i] - mean) * rstd;
        if (gx) gx[i] = (float)(gx[i] + rstd * (g - s1 / (double)n - xh * s2 / (double)n));
        if (dw) dw[i] = (float)(dw[i] + (double)gy[i] * xh);
        if (db) db[i] = (float)(db[i] + (double)gy[i]);
    }
}

/* SPEC 1.3 LayerNorm quirk row: y = a (x - mean) / (std + eps) + b with std
   the UNBIASED standard deviation (n - 1; n = 1 gives NaN like torch) and eps
   added to std. st gets mean, std, inv = 1 / (std + eps). */
ZS__PRIV void zs__lnu_row(float *y, float *st, const float *x, const float *a, const float *b, int64_t n, float eps) {
    float mean = zs__row_sum(x, n) / (float)n;
    float sd = sqrtf(zs__row_sqdev(x, mean, n) / (float)(n - 1));
    float inv = 1.0f / (sd + eps);
    int64_t i = 0;
    zs__vf vm = zs__vset1(mean), vi = zs__vset1(inv);
    for (; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf t = zs__vmul(zs__vsub(zs__vload(x + i), vm), vi);
        if (a) t = zs__vmul(zs__vload(a + i), t);
        if (b) t = zs__vadd(t, zs__vload(b + i));
        zs__vstore(y + i, t);
    }
    for (; i < n; i++) {
        float t = (x[i] - mean) * inv;
        if (a) t = a[i] * t;
        if (b) t = t + b[i];
        y[i] = t;
    }
    if (st) { st[0] = mean; st[1] = sd; st[2] = inv; }
}
ZS__PRIV void zs__lnu_row_ref(float *y, float *st, const float *x, const float *a, const float *b, int64_t n, float eps) {
    double mean = 0.0, ss = 0.0, sd;
    int64_t i;
    for (i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (i = 0; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    sd = sqrt(ss / (double)(n - 1));
    for (i = 0; i < n; i++)
        y[i] = (float)((a ? (double)a[i] : 1.0) * ((double)x[i] - mean) / (sd + (double)eps) + (b ? (double)b[i] : 0.0));
    if (st) { st[0] = (float)mean; st[1] = (float)sd; st[2] = (float)(1.0 / (sd + (double)eps)); }
}

/* backward of the quirk, c = x - mean, g = gy a, inv = 1/(std + eps):
   gx += inv (g - mean(g)) - inv^2 <g, c> c / ((n - 1) std)   (second term 0
   when std = 0, where torch would give NaN); da += gy c inv; db += gy */
ZS__PRIV void zs__lnu_bwd_row(float *gx, float *da, float *db, const float *gy, const float *x, const float *a,
                              float mean, float sd, float inv, int64_t n) {
    int64_t i = 0;
    float mg = 0.0f, k = 0.0f;
    zs__vf vm = zs__vset1(mean), vi = zs__vset1(inv), vmg, vk;
    if (gx) { /* pass 1: mean(g) and <g, c> */
        float s1, s2;
        zs__vf a1 = zs__vzero(), a2 = zs__vzero();
        for (; i + ZS__VW <= n; i += ZS__VW) {
            zs__vf g = a ? zs__vmul(zs__vload(gy + i), zs__vload(a + i)) : zs__vload(gy + i);
            a1 = zs__vadd(a1, g);
            a2 = zs__vfma(g, zs__vsub(zs__vload(x + i), vm), a2);
        }
        s1 = zs__vhsum(a1);
        s2 = zs__vhsum(a2);
        for (; i < n; i++) {
            float g = a ? gy[i] * a[i] : gy[i];
            s1 += g;
            s2 += g * (x[i] - mean);
        }
        mg = s1 / (float)n;
        k = sd > 0.0f ? inv * inv * s2 / ((float)(n - 1) * sd) : 0.0f;
    }
    vmg = zs__vset1(mg);
    vk = zs__vset1(k);
    /* pass 2: gx, da, db together */
    for (i = 0; i + ZS__VW <= n; i += ZS__VW) {
        zs__vf vg = zs__vload(gy + i), c = zs__vsub(zs__vload(x + i), vm);
        if (gx) {
            zs__vf g = a ? zs__vmul(vg, zs__vload(a + i)) : vg;
            zs__vf t = zs__vsub(zs__vmul(vi, zs__vsub(g, vmg)), zs__vmul(vk, c));
            zs__vstore(gx + i, zs__vadd(zs__vload(gx + i), t));
        }
        if (da) zs__vstore(da + i, zs__vfma(vg, zs__vmul(c, vi), zs__vload(da + i)));
        if (db) zs__vstore(db + i, zs__vadd(zs__vload(db + i), vg));
    }
    for (; i < n; i++) {
        float c = x[i] - mean;
        if (gx) gx[i] += inv * ((a ? gy[i] * a[i] : gy[i]) - mg) - k * c;
        if (da) da[i] += gy[i] * (c * inv);
        if (db) db[i] += gy[i];
    }
}
ZS__PRIV void zs__lnu_bwd_row_ref(float *gx, float *da, float *db, const float *gy, const float *x, const float *a,
                                  float mean, float sd, float inv, int64_t n) {
    double s1 = 0.0, s2 = 0.0, k;
    int64_t i;
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (a ? (double)a[i] : 1.0);
        s1 += g;
        s2 += g * ((double)x[i] - mean);
    }
    k = sd > 0.0f ? (double)inv * inv * s2 / ((double)(n - 1) * sd) : 0.0;
    for (i = 0; i < n; i++) {
        double g = (double)gy[i] * (a ? (double)a[i] : 1.0), c = (double)x[i] - mean;
        if (gx) gx[i] = (float)(gx[i] + inv * (g - s1 / (double)n) - k * c);
        if (da) da[i] = (float)(da[i] + (double)gy[i] * c * inv);
        if (db) db[i] = (float)(db[i] + (double)gy[i]);
    }
}

/* F.normalize row: y = x / max(|x|, eps); st gets |x| */
ZS__PRIV void zs__l2n_row(float *y, float *st, const float *x, int64_t n, float eps) {
    float nrm = sqrtf(zs__row_dot(x, x, n));
    float den = nrm < eps ? eps : nrm; /* NaN norm stays NaN */
    zs__ew_scale_n(y, x, 1.0f / den, n);
    if (st) st[0] = nrm;
}
ZS__PRIV void zs__l2n_row_ref(float *y, float *st, const float *x, int64_t n, float eps) {
    double s = 0.0, den;
    int64_t i;
    for (i = 0; i < n; i++) s += (double)x[i] * x[i];
    s = sqrt(s);
    den = s < (double)eps ? (double)eps : s;
    for (i = 0; i < n; i++) y[i] = (float)(x[i] / den);
    if (st) st[0] = (float)s;
}

/* |x| >= eps: gx += g/|x| - x <x,g> / |x|^3; clamped: gx += g / eps */
ZS__PRIV void zs__l2n_bwd_row(float *gx, const float *x, const float *gy, float nrm, float eps, int64_t n) {
    if (nrm >= eps) {
        float inv = 1.0f / nrm, k = -zs__row_dot(x, gy, n) * inv * inv * inv;
        zs__ew_axpy_n(gx, gy, inv, n);
        zs__ew_axpy_n(gx, x, k, n);
    } else {
        zs__ew_axpy_n(gx, gy, 1.0f / eps, n);
    }
}
ZS__PRIV void zs__l2n_bwd_row_ref(float *gx, const float *x, const float *gy, float nrm, float eps, int64_t n) {
    double dot = 0.0, s = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) { dot += (double)x[i] * gy[i]; s += (double)x[i] * x[i]; }
    s = sqrt(s);
    for (i = 0; i < n; i++) {
        if (nrm >= eps) gx[i] = (float)(gx[i] + gy[i] / s - x[i] * dot / (s * s * s));
        else gx[i] = (float)(gx[i] + gy[i] / (double)eps);
    }
}

enum { ZS__RW_SOFTMAX = 0, ZS__RW_LOGSOFTMAX, ZS__RW_LN, ZS__RW_LNU, ZS__RW_L2N,
       ZS__RW_SOFTMAX_BWD, ZS__RW_LOGSOFTMAX_BWD, ZS__RW_L2N_BWD };

typedef struct zs__rw_job {
    int op;
    int64_t D;
    float eps;
    float *y;           /* forward output, or the input gradient in backward */
    const float *x;     /* input (backward: softmax/log-softmax output, or x) */
    const float *g;     /* output gradient (backward) */
    const float *w, *b;
    float *st;          /* per-row statistics (may be NULL in forward) */
} zs__rw_job;

ZS__PRIV void zs__rw_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__rw_job *j = (zs__rw_job *)arg;
    int64_t r, D = j->D;
    (void)ws;
    for (r = lo; r < hi; r++) {
        float *y = j->y + r * D;
        const float *x = j->x + r * D;
        switch (j->op) {
        case ZS__RW_SOFTMAX: memcpy(y, x, (size_t)D * sizeof(float)); zs__softmax_row(y, D); break;
        case ZS__RW_LOGSOFTMAX: zs__logsoftmax_row(y, x, D); break;
        case ZS__RW_LN: zs__ln_row(y, j->st ? j->st + 2 * r : NULL, x, j->w, j->b, D, j->eps); break;
        case ZS__RW_LNU: zs__lnu_row(y, j->st ? j->st + 3 * r : NULL, x, j->w, j->b, D, j->eps); break;
        case ZS__RW_L2N: zs__l2n_row(y, j->st ? j->st + r : NULL, x, D, j->eps); break;
        case ZS__RW_SOFTMAX_BWD: zs__softmax_bwd_row(y, x, j->g + r * D, D); break;
        case ZS__RW_LOGSOFTMAX_BWD: zs__logsoftmax_bwd_row(y, x, j->g + r * D, D); break;
        case ZS__RW_L2N_BWD: zs__l2n_bwd_row(y, x, j->g + r * D, j->st[r], j->eps, D); break;
        default: break;
        }
    }
}

ZS__PRIV void zs__rw_run(zs_ctx *ctx, zs__rw_job *j, int64_t rows) {
    int64_t D = j->D > 0 ? j->D : 1;
    if (rows > 0 && j->D > 0) zs__parallel_rows(ctx, rows, (ZS__EW_MIN / 2 + D - 1) / D, zs__rw_task, j);
}

/* rows of the last dim (a scalar is one row of one) */
ZS__PRIV void zs__rows_of(const zs_tensor *t, int64_t *R, int64_t *D) {
    *D = t->ndim ? t->shape[t->ndim - 1] : 1;
    *R = *D ? zs_numel(t) / *D : 0;
}

ZS__PRIV int zs__rowop_bwd(zs_ctx *ctx, zs_tensor *out, int op, const float *x) {
    float *ga;
    zs__rw_job j;
    int64_t R;
    ZS__GRAD_OR_FAIL(ga, ctx, out->src[0]);
    if (!ga) return ZS_OK;
    memset(&j, 0, sizeof j);
    zs__rows_of(out, &R, &j.D);
    j.op = op; j.y = ga; j.x = x; j.g = out->grad; j.st = (float *)out->saved; j.eps = out->fp[0];
    zs__rw_run(ctx, &j, R);
    return ZS_OK;
}
ZS__PRIV int zs__softmax_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__rowop_bwd(ctx, out, ZS__RW_SOFTMAX_BWD, (const float *)out->data); }
ZS__PRIV int zs__logsoftmax_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__rowop_bwd(ctx, out, ZS__RW_LOGSOFTMAX_BWD, (const float *)out->data);
}
ZS__PRIV int zs__l2n_bwd(zs_ctx *ctx, zs_tensor *out) {
    return zs__rowop_bwd(ctx, out, ZS__RW_L2N_BWD, (const float *)out->src[0]->data);
}

/* row op forward for a single input; nst statistics floats per row saved */
ZS__PRIV zs_tensor *zs__rowop(zs_ctx *ctx, zs_tensor *a, int op, int nst, float eps, const char *who, const char *name,
                              zs_backward_fn bwd) {
    zs_tensor *out;
    zs__rw_job j;
    int64_t R;
    if (!zs__ok1(ctx, a, who)) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    out = zs__op_new(ctx, name, bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!out) return NULL;
    memset(&j, 0, sizeof j);
    zs__rows_of(a, &R, &j.D);
    j.op = op; j.eps = eps; j.y = (float *)out->data; j.x = (const float *)a->data;
    out->fp[0] = eps;
    if (nst && (out->flags & ZS_FLAG_ON_TAPE)) {
        j.st = (float *)zs__arena_alloc(&ctx->arena, (size_t)(R ? R : 1) * (size_t)nst * sizeof(float));
        if (!j.st) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        out->saved = j.st;
    }
    zs__rw_run(ctx, &j, R);
    return out;
}

ZS__FN zs_tensor *zs_softmax(zs_ctx *ctx, zs_tensor *a) {
    return zs__rowop(ctx, a, ZS__RW_SOFTMAX, 0, 0.0f, "zs_softmax", "softmax", zs__softmax_bwd);
}
ZS__FN zs_tensor *zs_log_softmax(zs_ctx *ctx, zs_tensor *a) {
    return zs__rowop(ctx, a, ZS__RW_LOGSOFTMAX, 0, 0.0f, "zs_log_softmax", "log_softmax", zs__logsoftmax_bwd);
}
ZS__FN zs_tensor *zs_l2_normalize(zs_ctx *ctx, zs_tensor *x, float eps) {
    return zs__rowop(ctx, x, ZS__RW_L2N, 1, eps, "zs_l2_normalize", "l2_normalize", zs__l2n_bwd);
}

/* -- layer norms: x [.., D], w/a [D], b [D]; saved: per-row statistics -- */

typedef struct zs__lnb_job {
    int unbiased;
    int64_t R, D;
    const float *x, *w, *gy, *st;
    float *gx, *pw, *pb; /* pw/pb: [chunks, D] partial sums (may be NULL) */
} zs__lnb_job;

ZS__PRIV void zs__lnb_task(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__lnb_job *j = (zs__lnb_job *)arg;
    int64_t c, r, D = j->D;
    (void)ws;
    for (c = lo; c < hi; c++) {
        int64_t r1 = (c + 1) * ZS__LN_CHUNK < j->R ? (c + 1) * ZS__LN_CHUNK : j->R;
        float *pw = j->pw ? j->pw + c * D : NULL, *pb = j->pb ? j->pb + c * D : NULL;
        for (r = c * ZS__LN_CHUNK; r < r1; r++) {
            float *gx = j->gx ? j->gx + r * D : NULL;
            if (j->unbiased)
                zs__lnu_bwd_row(gx, pw, pb, j->gy + r * D, j->x + r * D, j->w, j->st[3 * r], j->st[3 * r + 1], j->st[3 * r + 2], D);
            else
                zs__ln_bwd_row(gx, pw, pb, j->gy + r * D, j->x + r * D, j->w, j->st[2 * r], j->st[2 * r + 1], D);
        }
    }
}

ZS__PRIV int zs__ln_bwd_common(zs_ctx *ctx, zs_tensor *out, int unbiased) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    float *gx, *gw, *gb;
    zs__lnb_job j;
    zs__amark m;
    int64_t nch, c;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gw, ctx, w);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    memset(&j, 0, sizeof j);
    zs__rows_of(x, &j.R, &j.D);
    if ((!gx && !gw && !gb) || j.R == 0 || j.D == 0) return ZS_OK;
    j.unbiased = unbiased;
    j.x = (const float *)x->data; j.w = w ? (const float *)w->data : NULL;
    j.gy = out->grad; j.st = (const float *)out->saved; j.gx = gx;
    nch = (j.R + ZS__LN_CHUNK - 1) / ZS__LN_CHUNK;
    m = zs__arena_mark(&ctx->arena);
    if (gw) j.pw = (float *)zs__arena_calloc(&ctx->arena, (size_t)(nch * j.D) * sizeof(float));
    if (gb) j.pb = (float *)zs__arena_calloc(&ctx->arena, (size_t)(nch * j.D) * sizeof(float));
    if ((gw && !j.pw) || (gb && !j.pb)) {
        zs__arena_release(&ctx->arena, m);
        return zs__fail(ZS_ERR_NOMEM, "%s backward: arena exhausted", out->op);
    }
    zs__parallel_rows(ctx, nch, 1, zs__lnb_task, &j);
    /* partial sums combined in chunk order: the same bits for any thread count */
    for (c = 1; c < nch; c++) {
        if (j.pw) zs__ew_acc_n(j.pw, j.pw + c * j.D, j.D, 0);
        if (j.pb) zs__ew_acc_n(j.pb, j.pb + c * j.D, j.D, 0);
    }
    if (gw) zs__ew_acc_n(gw, j.pw, j.D, 0);
    if (gb) zs__ew_acc_n(gb, j.pb, j.D, 0);
    zs__arena_release(&ctx->arena, m);
    return ZS_OK;
}
ZS__PRIV int zs__ln_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__ln_bwd_common(ctx, out, 0); }
ZS__PRIV int zs__lnu_bwd(zs_ctx *ctx, zs_tensor *out) { return zs__ln_bwd_common(ctx, out, 1); }

ZS__PRIV zs_tensor *zs__ln_common(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b, float eps, int unbiased) {
    const char *who = unbiased ? "zs_layer_norm_unbiased" : "zs_layer_norm";
    int nst = unbiased ? 3 : 2;
    zs_tensor *out;
    zs__rw_job j;
    int64_t R, D;
    if (!x || !zs__ok(ctx, who, x, w, b)) return NULL;
    if (x->ndim < 1) return zs__shape_fail(ctx, who, x, NULL, "input needs at least one dimension");
    D = x->shape[x->ndim - 1];
    if (w && (w->ndim != 1 || w->shape[0] != D)) return zs__shape_fail(ctx, who, x, w, "weight must be [D], D the last dim of x");
    if (b && (b->ndim != 1 || b->shape[0] != D)) return zs__shape_fail(ctx, who, x, b, "bias must be [D], D the last dim of x");
    x = zs__contig(ctx, x);
    if (!x || (w && !(w = zs__contig(ctx, w))) || (b && !(b = zs__contig(ctx, b)))) return NULL;
    out = zs__op_new(ctx, unbiased ? "layer_norm_unbiased" : "layer_norm", unbiased ? zs__lnu_bwd : zs__ln_bwd,
                     x->ndim, x->shape, x, w, b, NULL);
    if (!out) return NULL;
    zs__rows_of(x, &R, &D);
    memset(&j, 0, sizeof j);
    j.op = unbiased ? ZS__RW_LNU : ZS__RW_LN; j.D = D; j.eps = eps;
    j.y = (float *)out->data; j.x = (const float *)x->data;
    j.w = w ? (const float *)w->data : NULL; j.b = b ? (const float *)b->data : NULL;
    out->fp[0] = eps;
    if (out->flags & ZS_FLAG_ON_TAPE) {
        j.st = (float *)zs__arena_alloc(&ctx->arena, (size_t)(R ? R : 1) * (size_t)nst * sizeof(float));
        if (!j.st) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        out->saved = j.st;
    }
    zs__rw_run(ctx, &j, R);
    return out;
}

ZS__FN zs_tensor *zs_layer_norm(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b, float eps) {
    return zs__ln_common(ctx, x, w, b, eps, 0);
}
ZS__FN zs_tensor *zs_layer_norm_unbiased(zs_ctx *ctx, zs_tensor *x, zs_tensor *a, zs_tensor *b, float eps) {
    return zs__ln_common(ctx, x, a, b, eps, 1);
}

/* ==================================================================== */
/* [impl:attn] fused multi-head attention kernels                       */
/* ==================================================================== */
/* q [B,Tq,W], k and v [B,Tk,W], W = H*dh; head h owns columns
   h*dh..h*dh+dh-1 of q, k, v and of the output (PyTorch's MHA after the
   in-projection, before the out-projection).

   Forward, one task per (b,h) pair:
       S = scale * Q_h K_h^T          [Tq,Tk] in per-thread scratch
       P = softmax(S) row by row       (stable: max subtracted)
       P <- P * keep / (1-p)           training with p > 0 (inverted dropout)
       O_h = P V_h                     into the output's column block
   The GEMMs read each head in place through the leading dimension (the
   row stride: W for a contiguous tensor, 3W for a slice of a fused qkv),
   so q, k, v are never copied. keep(b,h,i,j) = hash_uniform(key, flat
   index of (b,h,i,j)) >= p, with key drawn once per call and saved in
   out->ip[1]: backward regenerates the mask instead of storing it.

   Backward recomputes S and P from the inputs (flash-attention style:
   nothing but the inputs and the key is kept), then per (b,h)
       dV_h += P_drop^T dO_h
       dP    = (dO_h V_h^T) * keep / (1-p)
       dS    = P o (dP - rowsum(dP o P))
       dQ_h += scale * dS K_h,   dK_h += scale * dS^T Q_h
   Every task writes a disjoint column block of the output (forward) or of
   dQ, dK, dV (backward) and reduces only inside itself, so results are
   bit-identical for any thread count. Scratch per thread: two [Tq,Tk]
   float matrices and a [Tq,Tk] byte mask (backward), one matrix (forward).

   Saved for backward: src = q, k, v (as given, or their contiguous copies),
   ip[0] = heads, ip[1] = the dropout key's bits, fp[0] = scale,
   fp[1] = the effective dropout (0 unless training).

   cls_attn and probs report the softmax probabilities BEFORE dropout (the
   attention the model computed, not the random mask it trained with). */

/* where one operand's rows live: p + b*sb + t*ld + column */
typedef struct zs__attn_in { const float *p; int64_t sb, ld; } zs__attn_in;

/* Can the GEMM address t [B,T,W] in place? Needs unit column stride and a
   row stride of at least W; the batch stride is free. */
ZS__PRIV int zs__attn_geom(const zs_tensor *t, zs__attn_in *g) {
    int64_t T = t->shape[1], W = t->shape[2];
    if (W > 1 && t->stride[2] != 1) return 0;
    g->ld = T > 1 ? t->stride[1] : (W > 0 ? W : 1);
    if (g->ld < W || g->ld < 1) return 0;
    g->sb = t->stride[0];
    g->p = (const float *)t->data;
    return 1;
}

typedef struct zs__attn_job {
    zs__attn_in q, k, v;
    float *out;          /* forward output [B,Tq,W], contiguous */
    const float *gout;   /* backward: dO [B,Tq,W], contiguous */
    float *gq, *gk, *gv; /* backward: contiguous gradients; NULL = not wanted; may alias */
    float *probs;        /* [B,H,Tq,Tk] or NULL */
    float *cls;          /* [B,H,Tk] scratch for P[b,h,0,:] or NULL */
    int64_t B, Tq, Tk, H, dh, W;
    float scale, p, inv; /* p = effective dropout (0: none), inv = 1/(1-p) */
    uint64_t key;
    int fail[ZS_MAX_THREADS];
} zs__attn_job;

/* row i of P (pre-dropout) -> dropped and rescaled; keep flags into m (may be NULL) */
ZS__PRIV void zs__attn_drop_row(float *row, unsigned char *m, int64_t n, uint64_t key, uint64_t base, float p, float inv) {
    zs__dropout_apply(row, row, m, n, key, (int64_t)base, p, inv, 0);
}

/* S = scale Q_h K_h^T then row softmax, into S [Tq,Tk] */
ZS__PRIV int zs__attn_scores(const zs__attn_job *j, zs__arena *ws, const float *Q, const float *K, float *S) {
    int64_t i;
    if (j->dh == 0) {
        memset(S, 0, (size_t)(j->Tq * j->Tk) * sizeof(float));
    } else {
        int rc = zs__sgemm_st(ws, 0, 1, j->Tq, j->Tk, j->dh, j->scale, Q, j->q.ld, K, j->k.ld, 0.0f, S, j->Tk);
        if (rc) return rc;
    }
    for (i = 0; i < j->Tq; i++) zs__softmax_row(S + i * j->Tk, j->Tk);
    return ZS_OK;
}

ZS__PRIV int zs__attn_fwd_pair(zs__attn_job *j, int64_t b, int64_t h, zs__arena *ws) {
    const int64_t Tq = j->Tq, Tk = j->Tk, dh = j->dh, bh = b * j->H + h;
    const float *Q = j->q.p + b * j->q.sb + h * dh;
    const float *K = j->k.p + b * j->k.sb + h * dh;
    const float *V = j->v.p + b * j->v.sb + h * dh;
    float *O = j->out + b * Tq * j->W + h * dh, *S;
    zs__amark m = zs__arena_mark(ws);
    int64_t i;
    int rc = ZS_OK;
    S = (float *)zs__arena_alloc(ws, (size_t)(Tq * Tk) * sizeof(float));
    if (!S) return ZS_ERR_NOMEM;
    rc = zs__attn_scores(j, ws, Q, K, S);
    if (rc) goto done;
    if (j->probs) memcpy(j->probs + bh * Tq * Tk, S, (size_t)(Tq * Tk) * sizeof(float));
    if (j->cls) memcpy(j->cls + bh * Tk, S, (size_t)Tk * sizeof(float));
    if (j->p > 0.0f)
        for (i = 0; i < Tq; i++) zs__attn_drop_row(S + i * Tk, NULL, Tk, j->key, (uint64_t)((bh * Tq + i) * Tk), j->p, j->inv);
    if (dh) rc = zs__sgemm_st(ws, 0, 0, Tq, dh, Tk, 1.0f, S, Tk, V, j->v.ld, 0.0f, O, j->W);
done:
    zs__arena_release(ws, m);
    return rc;
}

ZS__PRIV void zs__attn_fwd_task(void *arg, int ith, int nth, zs__arena *ws) {
    zs__attn_job *j = (zs__attn_job *)arg;
    int64_t lo, hi, t;
    zs__split(j->B * j->H, ith, nth, &lo, &hi);
    for (t = lo; t < hi && !j->fail[ith]; t++) j->fail[ith] = zs__attn_fwd_pair(j, t / j->H, t % j->H, ws);
}

ZS__PRIV int zs__attn_bwd_pair(zs__attn_job *j, int64_t b, int64_t h, zs__arena *ws) {
    const int64_t Tq = j->Tq, Tk = j->Tk, dh = j->dh, W = j->W, bh = b * j->H + h;
    const float *Q = j->q.p + b * j->q.sb + h * dh;
    const float *K = j->k.p + b * j->k.sb + h * dh;
    const float *V = j->v.p + b * j->v.sb + h * dh;
    const float *dO = j->gout + b * Tq * W + h * dh;
    const int64_t off_q = b * Tq * W + h * dh, off_k = b * Tk * W + h * dh;
    float *P, *D;
    unsigned char *mask = NULL;
    zs__amark m = zs__arena_mark(ws);
    int64_t i, c;
    int rc;
    const int drop = j->p > 0.0f;
    P = (float *)zs__arena_alloc(ws, (size_t)(Tq * Tk) * sizeof(float));
    D = (float *)zs__arena_alloc(ws, (size_t)(Tq * Tk) * sizeof(float));
    if (drop) mask = (unsigned char *)zs__arena_alloc(ws, (size_t)(Tq * Tk));
    if (!P || !D || (drop && !mask)) { zs__arena_release(ws, m); return ZS_ERR_NOMEM; }
    rc = zs__attn_scores(j, ws, Q, K, P);
    if (rc) goto done;
    if (drop) {
        /* D = dropped P (for dV), mask remembered for dP */
        memcpy(D, P, (size_t)(Tq * Tk) * sizeof(float));
        for (i = 0; i < Tq; i++)
            zs__attn_drop_row(D + i * Tk, mask + i * Tk, Tk, j->key, (uint64_t)((bh * Tq + i) * Tk), j->p, j->inv);
    }
    if (j->gv && dh) { /* dV_h [Tk,dh] += P_drop^T [Tk,Tq] dO_h [Tq,dh] */
        rc = zs__sgemm_st(ws, 1, 0, Tk, dh, Tq, 1.0f, drop ? D : P, Tk, dO, W, 1.0f, j->gv + off_k, W);
        if (rc) goto done;
    }
    if (!j->gq && !j->gk) goto done;
    /* D = dP_drop = dO_h V_h^T [Tq,Tk] */
    if (dh) {
        rc = zs__sgemm_st(ws, 0, 1, Tq, Tk, dh, 1.0f, dO, W, V, j->v.ld, 0.0f, D, Tk);
        if (rc) goto done;
    } else {
        memset(D, 0, (size_t)(Tq * Tk) * sizeof(float));
    }
    /* D <- dS = P o (dP - rowsum(dP o P)), dP = dP_drop * keep / (1-p) */
    for (i = 0; i < Tq; i++) {
        float *d = D + i * Tk;
        const float *pr = P + i * Tk;
        float s = 0.0f;
        if (drop) {
            const unsigned char *mr = mask + i * Tk;
            const float f[2] = {0.0f, j->inv};
            for (c = 0; c < Tk; c++) d[c] *= f[mr[c]];
        }
        for (c = 0; c < Tk; c++) s += d[c] * pr[c];
        for (c = 0; c < Tk; c++) d[c] = pr[c] * (d[c] - s);
    }
    if (j->gq && dh) { /* dQ_h [Tq,dh] += scale dS [Tq,Tk] K_h [Tk,dh] */
        rc = zs__sgemm_st(ws, 0, 0, Tq, dh, Tk, j->scale, D, Tk, K, j->k.ld, 1.0f, j->gq + off_q, W);
        if (rc) goto done;
    }
    if (j->gk && dh) /* dK_h [Tk,dh] += scale dS^T [Tk,Tq] Q_h [Tq,dh] */
        rc = zs__sgemm_st(ws, 1, 0, Tk, dh, Tq, j->scale, D, Tk, Q, j->q.ld, 1.0f, j->gk + off_k, W);
done:
    zs__arena_release(ws, m);
    return rc;
}

ZS__PRIV void zs__attn_bwd_task(void *arg, int ith, int nth, zs__arena *ws) {
    zs__attn_job *j = (zs__attn_job *)arg;
    int64_t lo, hi, t;
    zs__split(j->B * j->H, ith, nth, &lo, &hi);
    for (t = lo; t < hi && !j->fail[ith]; t++) j->fail[ith] = zs__attn_bwd_pair(j, t / j->H, t % j->H, ws);
}

ZS__PRIV int zs__attn_job_fail(const zs__attn_job *j) {
    int i;
    for (i = 0; i < ZS_MAX_THREADS; i++)
        if (j->fail[i]) return j->fail[i];
    return ZS_OK;
}

/* the geometry and parameters shared by forward and backward */
ZS__PRIV void zs__attn_job_init(zs__attn_job *j, const zs_tensor *q, const zs_tensor *k, const zs_tensor *v,
                                int64_t heads, float scale, float p, uint64_t key) {
    memset(j, 0, sizeof *j);
    zs__attn_geom(q, &j->q);
    zs__attn_geom(k, &j->k);
    zs__attn_geom(v, &j->v);
    j->B = q->shape[0];
    j->Tq = q->shape[1];
    j->Tk = k->shape[1];
    j->W = q->shape[2];
    j->H = heads;
    j->dh = j->W / heads;
    j->scale = scale;
    j->p = p;
    j->inv = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    j->key = key;
}

ZS__PRIV int zs__attn_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    float *gq, *gk, *gv;
    zs__attn_job j;
    uint64_t key;
    int rc;
    ZS__GRAD_OR_FAIL(gq, ctx, q);
    ZS__GRAD_OR_FAIL(gk, ctx, k);
    ZS__GRAD_OR_FAIL(gv, ctx, v);
    if (!gq && !gk && !gv) return ZS_OK;
    if (zs_numel(out) == 0 || k->shape[1] == 0) return ZS_OK; /* no contributions */
    memcpy(&key, &out->ip[1], sizeof key);
    zs__attn_job_init(&j, q, k, v, out->ip[0], out->fp[0], out->fp[1], key);
    j.gout = out->grad;
    j.gq = gq;
    j.gk = gk;
    j.gv = gv;
    zs__pool_run(&ctx->pool, zs__attn_bwd_task, &j);
    rc = zs__attn_job_fail(&j);
    if (rc) return zs__fail(rc, "zs_attention backward: kernel failed (%s; per-thread scratch exhausted?)", zs_status_str(rc));
    return ZS_OK;
}

ZS__FN zs_tensor *zs_attention_ex(zs_ctx *ctx, zs_tensor *q, zs_tensor *k, zs_tensor *v,
                                  int heads, float scale, float dropout_p,
                                  float *cls_attn, float *probs) {
    static const char *who = "zs_attention";
    zs__attn_in g;
    zs__attn_job j;
    zs__amark am;
    zs_tensor *out, *qc, *kc, *vc;
    int64_t shape[3], B, Tq, Tk, W, H, i, c;
    float p;
    uint64_t key = 0;
    int rc;
    if (!zs__ok3(ctx, q, k, v, who)) return NULL;
    if (q->ndim != 3) return zs__shape_fail(ctx, who, q, NULL, "q must be [B,Tq,heads*head_dim]");
    if (k->ndim != 3) return zs__shape_fail(ctx, who, k, NULL, "k must be [B,Tk,heads*head_dim]");
    if (v->ndim != 3) return zs__shape_fail(ctx, who, v, NULL, "v must be [B,Tk,heads*head_dim]");
    if (heads < 1) {
        zs__fail(ZS_ERR_ARG, "%s: heads must be >= 1, got %d", who, heads);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    /* NaN test on the bits: -ffast-math may fold a NaN comparison away */
    if ((zs__f2u(dropout_p) & 0x7f800000u) == 0x7f800000u || dropout_p < 0.0f || dropout_p > 1.0f) {
        zs__fail(ZS_ERR_ARG, "%s: dropout_p must be in [0,1], got %g", who, (double)dropout_p);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    B = q->shape[0]; Tq = q->shape[1]; W = q->shape[2]; Tk = k->shape[1]; H = heads;
    if (W % H) {
        char why[96];
        snprintf(why, sizeof why, "width %lld is not a multiple of heads %d", (long long)W, heads);
        return zs__shape_fail(ctx, who, q, NULL, why);
    }
    if (k->shape[0] != B) return zs__shape_fail(ctx, who, q, k, "q and k batch sizes differ");
    if (k->shape[2] != W) return zs__shape_fail(ctx, who, q, k, "q and k widths differ");
    if (v->shape[0] != B || v->shape[1] != Tk) return zs__shape_fail(ctx, who, k, v, "k and v need the same batch and length");
    if (v->shape[2] != W) return zs__shape_fail(ctx, who, q, v, "q and v widths differ");
    /* operands the GEMM cannot address in place get a (differentiable) copy;
       one tensor passed several times is copied once */
    qc = zs__attn_geom(q, &g) ? q : zs_contiguous(ctx, q);
    kc = k == q ? qc : (zs__attn_geom(k, &g) ? k : zs_contiguous(ctx, k));
    vc = v == q ? qc : v == k ? kc : (zs__attn_geom(v, &g) ? v : zs_contiguous(ctx, v));
    if (!qc || !kc || !vc) return NULL;
    shape[0] = B; shape[1] = Tq; shape[2] = W;
    out = zs__op_new(ctx, "attention", zs__attn_bwd, 3, shape, qc, kc, vc, NULL);
    if (!out) return NULL;
    p = ctx->training ? dropout_p : 0.0f;
    if (p > 0.0f) key = zs__rng_key(ctx);
    out->ip[0] = H;
    memcpy(&out->ip[1], &key, sizeof key);
    out->fp[0] = scale;
    out->fp[1] = p;
    if (B == 0 || W == 0) return out;
    if (Tq == 0 || Tk == 0) { /* nothing to attend to / no query 0 */
        memset(out->data, 0, (size_t)zs_numel(out) * sizeof(float));
        if (cls_attn) memset(cls_attn, 0, (size_t)(B * Tk) * sizeof(float));
        return out;
    }
    zs__attn_job_init(&j, qc, kc, vc, H, scale, p, key);
    j.out = (float *)out->data;
    j.probs = probs;
    am = zs__arena_mark(&ctx->arena);
    if (cls_attn && !probs) { /* P[b,h,0,:] lands here, reduced below */
        j.cls = (float *)zs__arena_alloc(&ctx->arena, (size_t)(B * H * Tk) * sizeof(float));
        if (!j.cls) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    }
    zs__pool_run(&ctx->pool, zs__attn_fwd_task, &j);
    rc = zs__attn_job_fail(&j);
    if (!rc && cls_attn) /* head mean of P[b,h,0,:], heads summed in order */
        for (i = 0; i < B; i++)
            for (c = 0; c < Tk; c++) {
                float s = 0.0f;
                int64_t h;
                for (h = 0; h < H; h++) s += probs ? probs[(i * H + h) * Tq * Tk + c] : j.cls[(i * H + h) * Tk + c];
                cls_attn[i * Tk + c] = s / (float)H;
            }
    zs__arena_release(&ctx->arena, am);
    if (rc) {
        zs__fail(rc, "%s: kernel failed (%s; per-thread scratch exhausted?)", who, zs_status_str(rc));
        return zs__op_fail(ctx, rc);
    }
    return out;
}

ZS__FN zs_tensor *zs_attention(zs_ctx *ctx, zs_tensor *q, zs_tensor *k, zs_tensor *v,
                               int heads, float scale, float dropout_p) {
    return zs_attention_ex(ctx, q, k, v, heads, scale, dropout_p, NULL, NULL);
}

/* -- scalar references (plain loops, double accumulation), for the tests -- */

/* the dropout keep decision of element (b,h,i,j), as the kernels make it */
ZS__PRIV int zs__attn_keep(uint64_t key, int64_t H, int64_t Tq, int64_t Tk, int64_t b, int64_t h, int64_t i, int64_t j, float p) {
    return zs__hash_uniform(key, (uint64_t)(((b * H + h) * Tq + i) * Tk + j)) >= p;
}

/* P[b,h,:,:] in double into P [Tq,Tk]; q, k contiguous */
ZS__PRIV void zs__attn_ref_probs(const float *q, const float *k, int64_t Tq, int64_t Tk, int64_t H, int64_t dh,
                                 float scale, int64_t b, int64_t h, double *P) {
    int64_t W = H * dh, i, j, c;
    for (i = 0; i < Tq; i++) {
        double *pr = P + i * Tk, mx = -INFINITY, s = 0.0;
        for (j = 0; j < Tk; j++) {
            double d = 0.0;
            for (c = 0; c < dh; c++) d += (double)q[(b * Tq + i) * W + h * dh + c] * (double)k[(b * Tk + j) * W + h * dh + c];
            pr[j] = d * (double)scale;
            if (pr[j] > mx) mx = pr[j];
        }
        for (j = 0; j < Tk; j++) { pr[j] = exp(pr[j] - mx); s += pr[j]; }
        for (j = 0; j < Tk; j++) pr[j] /= s;
    }
}

/* Forward reference. q [B,Tq,H*dh], k, v [B,Tk,H*dh], all contiguous; p is
   the effective dropout (0 in eval), key the op's key. out [B,Tq,H*dh];
   cls_attn [B,Tk] and probs [B,H,Tq,Tk] (pre-dropout) may be NULL.
   work: (Tq+1)*Tk doubles. */
ZS__PRIV void zs__attention_ref(const float *q, const float *k, const float *v, float *out,
                                int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t dh,
                                float scale, float p, uint64_t key, float *cls_attn, float *probs, double *work) {
    int64_t W = H * dh, b, h, i, j, c;
    double inv = p < 1.0f ? 1.0 / (1.0 - (double)p) : 0.0, *P = work, *acc = work + Tq * Tk;
    for (b = 0; b < B; b++) {
        for (j = 0; j < Tk; j++) acc[j] = 0.0;
        for (h = 0; h < H; h++) {
            zs__attn_ref_probs(q, k, Tq, Tk, H, dh, scale, b, h, P);
            for (j = 0; j < Tk && Tq > 0; j++) acc[j] += P[j];
            for (i = 0; i < Tq; i++)
                for (j = 0; j < Tk; j++) {
                    double *pij = P + i * Tk + j;
                    if (probs) probs[((b * H + h) * Tq + i) * Tk + j] = (float)*pij;
                    if (p > 0.0f) *pij = zs__attn_keep(key, H, Tq, Tk, b, h, i, j, p) ? *pij * inv : 0.0;
                }
            for (i = 0; i < Tq; i++)
                for (c = 0; c < dh; c++) {
                    double s = 0.0;
                    for (j = 0; j < Tk; j++) s += P[i * Tk + j] * (double)v[(b * Tk + j) * W + h * dh + c];
                    out[(b * Tq + i) * W + h * dh + c] = (float)s;
                }
        }
        if (cls_attn)
            for (j = 0; j < Tk; j++) cls_attn[b * Tk + j] = (float)(acc[j] / (double)H);
    }
}

/* Backward reference: accumulates (+=) into gq, gk, gv (each may be NULL)
   from gout [B,Tq,H*dh]; same conventions as zs__attention_ref.
   work: 2*Tq*Tk doubles. */
ZS__PRIV void zs__attention_bwd_ref(const float *q, const float *k, const float *v, const float *gout,
                                    float *gq, float *gk, float *gv,
                                    int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t dh,
                                    float scale, float p, uint64_t key, double *work) {
    int64_t W = H * dh, b, h, i, j, c;
    double inv = p < 1.0f ? 1.0 / (1.0 - (double)p) : 0.0, *P = work, *dS = work + Tq * Tk, s;
#define ZS__ATTN_M(i_, j_) (p > 0.0f ? (zs__attn_keep(key, H, Tq, Tk, b, h, i_, j_, p) ? inv : 0.0) : 1.0)
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++) {
            zs__attn_ref_probs(q, k, Tq, Tk, H, dh, scale, b, h, P);
            for (i = 0; i < Tq; i++) {
                double rs = 0.0;
                for (j = 0; j < Tk; j++) {
                    double d = 0.0;
                    for (c = 0; c < dh; c++) d += (double)gout[(b * Tq + i) * W + h * dh + c] * (double)v[(b * Tk + j) * W + h * dh + c];
                    dS[i * Tk + j] = d * ZS__ATTN_M(i, j); /* dP */
                    rs += dS[i * Tk + j] * P[i * Tk + j];
                }
                for (j = 0; j < Tk; j++) dS[i * Tk + j] = P[i * Tk + j] * (dS[i * Tk + j] - rs);
            }
            for (j = 0; j < Tk; j++)
                for (c = 0; c < dh; c++) {
                    if (gv) {
                        for (s = 0.0, i = 0; i < Tq; i++) s += P[i * Tk + j] * ZS__ATTN_M(i, j) * (double)gout[(b * Tq + i) * W + h * dh + c];
                        gv[(b * Tk + j) * W + h * dh + c] += (float)s;
                    }
                    if (gk) {
                        for (s = 0.0, i = 0; i < Tq; i++) s += dS[i * Tk + j] * (double)q[(b * Tq + i) * W + h * dh + c];
                        gk[(b * Tk + j) * W + h * dh + c] += (float)(s * (double)scale);
                    }
                }
            if (gq)
                for (i = 0; i < Tq; i++)
                    for (c = 0; c < dh; c++) {
                        for (s = 0.0, j = 0; j < Tk; j++) s += dS[i * Tk + j] * (double)k[(b * Tk + j) * W + h * dh + c];
                        gq[(b * Tq + i) * W + h * dh + c] += (float)(s * (double)scale);
                    }
        }
#undef ZS__ATTN_M
}

/* ==================================================================== */
/* [impl:conv] conv2d, pooling, batch norm                              */
/* ==================================================================== */
/* conv2d is im2col + SGEMM. Images are processed in GROUPS of G images
   whose column matrices sit side by side, col [C*KH*KW, G*OH*OW], so that
   small feature maps (7x7, 14x14) still give the GEMM a wide N:
       forward   Y_g  [O, G*OHW]   = W [O, CKK] x col_g
       backward  dW  [O, CKK]     += dY_g x col_g^T   (groups in order)
                 dcol_g [CKK, G*OHW] = W^T x dY_g, then col2im (+=) into dX
   G depends on the shapes only (never on the thread count), every GEMM is
   zs__sgemm over the pool (bit-identical for any thread count), and the
   copies around it (im2col, col2im, gather/scatter) split independent rows,
   so results are bit-identical for any number of threads. One group's column
   buffer (at most ZS__CONV_COL_MAX floats, or one image) lives in the calling
   thread's scratch arena. Fast path: a 1x1 stride-1 unpadded conv of a
   single image multiplies the image itself ([C, H*W]) without im2col.

   Pooling and batch norm split planes / channels over threads; every
   reduction (bias gradient, batch statistics, global average) runs inside
   one row in a fixed order, summed in double. */

#define ZS__CONV_GROUP_COLS 1024               /* target GEMM width per group */
#define ZS__CONV_COL_MAX ((int64_t)8 << 20)    /* floats in a group's col buffer (32 MB) */

typedef struct zs__conv_geom {
    int64_t B, C, H, W, O, KH, KW, OH, OW; /* x [B,C,H,W], w [O,C,KH,KW], y [B,O,OH,OW] */
    int64_t sh, sw, ph, pw;
    int64_t CKK, OHW, G; /* rows of col, columns per image, images per group */
    int pointwise;       /* 1x1 kernel, stride 1, no padding */
} zs__conv_geom;

ZS__PRIV void zs__conv_geom_init(zs__conv_geom *g, const zs_tensor *x, const zs_tensor *w,
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    int64_t G = 1, cap;
    g->B = x->shape[0]; g->C = x->shape[1]; g->H = x->shape[2]; g->W = x->shape[3];
    g->O = w->shape[0]; g->KH = w->shape[2]; g->KW = w->shape[3];
    g->sh = sh; g->sw = sw; g->ph = ph; g->pw = pw;
    g->OH = (g->H + 2 * ph - g->KH) / sh + 1;
    g->OW = (g->W + 2 * pw - g->KW) / sw + 1;
    g->CKK = g->C * g->KH * g->KW;
    g->OHW = g->OH * g->OW;
    g->pointwise = g->KH == 1 && g->KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    if (g->OHW > 0 && g->OHW < ZS__CONV_GROUP_COLS) G = (ZS__CONV_GROUP_COLS + g->OHW - 1) / g->OHW;
    cap = g->CKK * g->OHW > 0 ? ZS__CONV_COL_MAX / (g->CKK * g->OHW) : G;
    if (G > cap) G = cap;
    if (G > g->B) G = g->B;
    g->G = G < 1 ? 1 : G;
}

/* Double-precision sums over n floats with 8 interleaved accumulators
   (a fixed order: the result depends on n only). */
#define ZS__CONV_SUM8(expr_i, n, out)                                                       \
    do {                                                                                    \
        double s_[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                            \
        int64_t i_, j_;                                                                     \
        for (i_ = 0; i_ + 8 <= (n); i_ += 8)                                                \
            for (j_ = 0; j_ < 8; j_++) {                                                    \
                int64_t i = i_ + j_;                                                        \
                s_[j_] += (expr_i);                                                         \
            }                                                                               \
        for (; i_ < (n); i_++) {                                                            \
            int64_t i = i_;                                                                 \
            s_[0] += (expr_i);                                                              \
        }                                                                                   \
        (out) = ((s_[0] + s_[1]) + (s_[2] + s_[3])) + ((s_[4] + s_[5]) + (s_[6] + s_[7]));  \
    } while (0)

/* sum p[i] */
ZS__PRIV double zs__conv_sum(const float *p, int64_t n) {
    double r;
    ZS__CONV_SUM8((double)p[i], n, r);
    return r;
}
/* sum (p[i] - c)^2 */
ZS__PRIV double zs__conv_sumsq(const float *p, int64_t n, double c) {
    double r;
    ZS__CONV_SUM8(((double)p[i] - c) * ((double)p[i] - c), n, r);
    return r;
}
/* sum d[i] * (p[i] - c) */
ZS__PRIV double zs__conv_dotc(const float *d, const float *p, int64_t n, double c) {
    double r;
    ZS__CONV_SUM8((double)d[i] * ((double)p[i] - c), n, r);
    return r;
}

/* [lo, hi) of output columns ow whose input column ow*s - p + k lies in [0, n) */
ZS__PRIV void zs__conv_valid(int64_t n, int64_t nout, int64_t s, int64_t p, int64_t k, int64_t *lo, int64_t *hi) {
    int64_t a = p - k, b = n - 1 + p - k;
    *lo = a > 0 ? (a + s - 1) / s : 0;
    *hi = b < 0 ? 0 : b / s + 1;
    if (*hi > nout) *hi = nout;
    if (*lo > *hi) *lo = *hi;
}

/* -- im2col: col [CKK, ng*OHW] from ng images x [ng, C, H, W] -- */
typedef struct zs__col_arg {
    const zs__conv_geom *g;
    const float *x; /* first image of the group, [ng,C,H,W] */
    float *gx;      /* col2im target, first image of the group */
    float *col;     /* [CKK, ng*OHW] */
    int64_t ng;
} zs__col_arg;

ZS__PRIV void zs__im2col_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__col_arg *a = (const zs__col_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t ncols = a->ng * g->OHW, r, gi, oh, ow;
    (void)ws;
    for (r = lo; r < hi; r++) {
        int64_t c = r / (g->KH * g->KW), kh = (r / g->KW) % g->KH, kw = r % g->KW, wlo, whi;
        zs__conv_valid(g->W, g->OW, g->sw, g->pw, kw, &wlo, &whi);
        for (gi = 0; gi < a->ng; gi++) {
            const float *xp = a->x + (gi * g->C + c) * g->H * g->W; /* plane [H,W] */
            float *d = a->col + r * ncols + gi * g->OHW;
            for (oh = 0; oh < g->OH; oh++, d += g->OW) {
                int64_t ih = oh * g->sh - g->ph + kh;
                const float *src;
                if (ih < 0 || ih >= g->H || whi == wlo) { memset(d, 0, (size_t)g->OW * 4); continue; }
                for (ow = 0; ow < wlo; ow++) d[ow] = 0.0f;
                src = xp + ih * g->W + (wlo * g->sw - g->pw + kw); /* input of column wlo */
                if (g->sw == 1) memcpy(d + wlo, src, (size_t)(whi - wlo) * 4);
                else
                    for (ow = wlo; ow < whi; ow++) d[ow] = src[(ow - wlo) * g->sw];
                for (ow = whi; ow < g->OW; ow++) d[ow] = 0.0f;
            }
        }
    }
}

/* d[i] += s[i] (separate arrays: lets the compiler vectorise) */
ZS__PRIV void zs__conv_add(float *ZS__RESTRICT d, const float *ZS__RESTRICT s, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) d[i] += s[i];
}

/* col2im: gx planes (gi, c) += every column entry that came from them, in a
   fixed (kh, kw, oh, ow) order; planes are independent rows. */
ZS__PRIV void zs__col2im_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__col_arg *a = (const zs__col_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t ncols = a->ng * g->OHW, p, kh, kw, oh, ow;
    (void)ws;
    for (p = lo; p < hi; p++) {
        int64_t gi = p / g->C, c = p % g->C;
        float *gp = a->gx + p * g->H * g->W; /* plane (gi, c) of [ng,C,H,W] */
        for (kh = 0; kh < g->KH; kh++)
            for (kw = 0; kw < g->KW; kw++) {
                const float *src = a->col + ((c * g->KH + kh) * g->KW + kw) * ncols + gi * g->OHW;
                int64_t wlo, whi;
                zs__conv_valid(g->W, g->OW, g->sw, g->pw, kw, &wlo, &whi);
                for (oh = 0; oh < g->OH; oh++) {
                    int64_t ih = oh * g->sh - g->ph + kh;
                    int64_t base = ih * g->W - g->pw + kw; /* input index of column ow: base + ow*sw */
                    const float *s = src + oh * g->OW;
                    if (ih < 0 || ih >= g->H) continue;
                    if (g->sw == 1) zs__conv_add(gp + base + wlo, s + wlo, whi - wlo);
                    else
                        for (ow = wlo; ow < whi; ow++) gp[base + ow * g->sw] += s[ow];
                }
            }
    }
}

/* -- moving rows between a group matrix [O, ng*OHW] and y [ng, O, OHW] -- */
typedef struct zs__grp_arg {
    const zs__conv_geom *g;
    float *y;         /* [ng, O, OHW] (first image of the group) */
    float *m;         /* [O, ng*OHW] */
    const float *bias; /* [O] or NULL */
    int64_t ng;
} zs__grp_arg;

/* y = m + bias (in place when m == y, i.e. ng == 1) */
ZS__PRIV void zs__conv_scatter_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__grp_arg *a = (const zs__grp_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t o, gi, i, n = g->OHW;
    (void)ws;
    for (o = lo; o < hi; o++) {
        float bo = a->bias ? a->bias[o] : 0.0f;
        for (gi = 0; gi < a->ng; gi++) {
            const float *s = a->m + o * a->ng * n + gi * n;
            float *d = a->y + (gi * g->O + o) * n;
            if (a->bias)
                for (i = 0; i < n; i++) d[i] = s[i] + bo;
            else if (d != s)
                memcpy(d, s, (size_t)n * 4);
        }
    }
}

/* m = y rearranged (gather dY of a group) */
ZS__PRIV void zs__conv_gather_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__grp_arg *a = (const zs__grp_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t o, gi, n = g->OHW;
    (void)ws;
    for (o = lo; o < hi; o++)
        for (gi = 0; gi < a->ng; gi++)
            memcpy(a->m + o * a->ng * n + gi * n, a->y + (gi * g->O + o) * n, (size_t)n * 4);
}

/* db[o] += sum over images and positions of dy, per channel in a fixed order */
typedef struct zs__cbias_arg { const zs__conv_geom *g; const float *dy; float *gb; } zs__cbias_arg;
ZS__PRIV void zs__conv_bias_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__cbias_arg *a = (const zs__cbias_arg *)arg;
    const zs__conv_geom *g = a->g;
    int64_t o, bi;
    (void)ws;
    for (o = lo; o < hi; o++) {
        double s = 0.0;
        for (bi = 0; bi < g->B; bi++) s += zs__conv_sum(a->dy + (bi * g->O + o) * g->OHW, g->OHW);
        a->gb[o] += (float)s;
    }
}

/* rows per thread so that each thread moves at least ~32K floats */
ZS__PRIV int64_t zs__conv_min_rows(int64_t row_len) {
    int64_t m = row_len > 0 ? 32768 / row_len : 1;
    return m < 1 ? 1 : m;
}

ZS__PRIV void zs__im2col(zs_ctx *ctx, const zs__conv_geom *g, const float *x, int64_t ng, float *col) {
    zs__col_arg a;
    a.g = g; a.x = x; a.gx = NULL; a.col = col; a.ng = ng;
    zs__parallel_rows(ctx, g->CKK, zs__conv_min_rows(ng * g->OHW), zs__im2col_rows, &a);
}

ZS__PRIV void zs__col2im(zs_ctx *ctx, const zs__conv_geom *g, const float *col, int64_t ng, float *gx) {
    zs__col_arg a;
    a.g = g; a.x = NULL; a.gx = gx; a.col = (float *)col; a.ng = ng;
    zs__parallel_rows(ctx, ng * g->C, zs__conv_min_rows(g->CKK * g->OHW / (g->C ? g->C : 1)), zs__col2im_rows, &a);
}

ZS__PRIV zs__arena *zs__scratch(zs_ctx *ctx) { return zs__tls_ws ? zs__tls_ws : &ctx->pool.ws[0]; }

ZS__PRIV int zs__conv2d_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    const float *xd = (const float *)x->data, *wd = (const float *)w->data, *dy = out->grad;
    float *gx, *gw, *gb, *col = NULL, *dyg = NULL;
    zs__conv_geom g;
    zs__arena *ws;
    zs__amark mk;
    int64_t b0;
    int rc = ZS_OK;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gw, ctx, w);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    zs__conv_geom_init(&g, x, w, out->ip[0], out->ip[1], out->ip[2], out->ip[3]);
    if (gb) {
        zs__cbias_arg a;
        a.g = &g; a.dy = dy; a.gb = gb;
        zs__parallel_rows(ctx, g.O, zs__conv_min_rows(g.B * g.OHW), zs__conv_bias_rows, &a);
    }
    if ((!gx && !gw) || g.B == 0) return ZS_OK;
    ws = zs__scratch(ctx);
    mk = zs__arena_mark(ws);
    if (!g.pointwise || g.G > 1) col = (float *)zs__arena_alloc(ws, (size_t)(g.CKK * g.G * g.OHW) * 4);
    if (g.G > 1) dyg = (float *)zs__arena_alloc(ws, (size_t)(g.O * g.G * g.OHW) * 4);
    if (((!g.pointwise || g.G > 1) && !col) || (g.G > 1 && !dyg)) {
        zs__arena_release(ws, mk);
        return zs__fail(ZS_ERR_NOMEM, "zs_conv2d backward: cannot allocate the column buffer (%lld floats)",
                        (long long)(g.CKK * g.G * g.OHW));
    }
    for (b0 = 0; b0 < g.B && rc == ZS_OK; b0 += g.G) {
        int64_t ng = g.B - b0 < g.G ? g.B - b0 : g.G, ncols = ng * g.OHW;
        const float *xb = xd + b0 * g.C * g.H * g.W; /* [ng,C,H,W] */
        const float *dyp = dy + b0 * g.O * g.OHW;     /* [O, ncols] once gathered */
        int direct = g.pointwise && ng == 1;
        if (ng > 1) {
            zs__grp_arg a;
            a.g = &g; a.y = (float *)dyp; a.m = dyg; a.bias = NULL; a.ng = ng;
            zs__parallel_rows(ctx, g.O, zs__conv_min_rows(ncols), zs__conv_gather_rows, &a);
            dyp = dyg;
        }
        if (gw) { /* dW [O,CKK] += dY [O,ncols] x col^T */
            const float *cm = xb;
            if (!direct) { zs__im2col(ctx, &g, xb, ng, col); cm = col; }
            rc = zs__sgemm(&ctx->pool, 0, 1, g.O, g.CKK, ncols, 1.0f, dyp, ncols, cm, ncols, 1.0f, gw, g.CKK);
            if (rc) break;
        }
        if (gx) { /* dcol [CKK,ncols] = W^T x dY, then col2im */
            float *gxb = gx + b0 * g.C * g.H * g.W;
            if (direct) {
                rc = zs__sgemm(&ctx->pool, 1, 0, g.CKK, ncols, g.O, 1.0f, wd, g.CKK, dyp, ncols, 1.0f, gxb, ncols);
            } else {
                rc = zs__sgemm(&ctx->pool, 1, 0, g.CKK, ncols, g.O, 1.0f, wd, g.CKK, dyp, ncols, 0.0f, col, ncols);
                if (rc == ZS_OK) zs__col2im(ctx, &g, col, ng, gxb);
            }
        }
    }
    zs__arena_release(ws, mk);
    return rc;
}

ZS__FN zs_tensor *zs_conv2d(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b,
                            int stride_h, int stride_w, int pad_h, int pad_w) {
    int64_t shape[4], b0;
    zs__conv_geom g;
    zs_tensor *t;
    zs__arena *ws;
    zs__amark mk;
    float *col = NULL, *tmp = NULL, *y;
    int rc = ZS_OK;
    if (!zs__ok2(ctx, x, w, "zs_conv2d") || (b && !zs__ok1(ctx, b, "zs_conv2d"))) return NULL;
    if (x->ndim != 4) return zs__shape_fail(ctx, "zs_conv2d", x, w, "x must be [B,C,H,W]");
    if (w->ndim != 4) return zs__shape_fail(ctx, "zs_conv2d", x, w, "weight must be [O,C,KH,KW]");
    if (x->shape[1] != w->shape[1]) return zs__shape_fail(ctx, "zs_conv2d", x, w, "input channels of x and weight differ");
    if (zs_numel(w) == 0) return zs__shape_fail(ctx, "zs_conv2d", x, w, "empty weight");
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) return zs__shape_fail(ctx, "zs_conv2d", b, w, "bias must be [O]");
    if (stride_h < 1 || stride_w < 1 || pad_h < 0 || pad_w < 0) {
        zs__fail(ZS_ERR_ARG, "zs_conv2d: stride %dx%d must be >= 1 and padding %dx%d >= 0", stride_h, stride_w, pad_h, pad_w);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (x->shape[2] + 2 * (int64_t)pad_h < w->shape[2] || x->shape[3] + 2 * (int64_t)pad_w < w->shape[3]) {
        char sx[96], sw[96];
        zs__fail(ZS_ERR_SHAPE, "zs_conv2d: kernel larger than the input padded by %dx%d (shapes %s and %s)", pad_h, pad_w,
                 zs_shape_str(x, sx, sizeof sx), zs_shape_str(w, sw, sizeof sw));
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    {
        int has_b = b != NULL;
        x = zs__contig(ctx, x);
        w = zs__contig(ctx, w);
        if (has_b) b = zs__contig(ctx, b);
        if (!x || !w || (has_b && !b)) return NULL;
    }
    zs__conv_geom_init(&g, x, w, stride_h, stride_w, pad_h, pad_w);
    shape[0] = g.B; shape[1] = g.O; shape[2] = g.OH; shape[3] = g.OW;
    t = zs__op_new(ctx, "conv2d", zs__conv2d_bwd, 4, shape, x, w, b, NULL);
    if (!t) return NULL;
    t->ip[0] = stride_h; t->ip[1] = stride_w; t->ip[2] = pad_h; t->ip[3] = pad_w;
    if (g.B == 0) return t;
    y = (float *)t->data;
    ws = zs__scratch(ctx);
    mk = zs__arena_mark(ws);
    if (!g.pointwise || g.G > 1) col = (float *)zs__arena_alloc(ws, (size_t)(g.CKK * g.G * g.OHW) * 4);
    if (g.G > 1) tmp = (float *)zs__arena_alloc(ws, (size_t)(g.O * g.G * g.OHW) * 4);
    if (((!g.pointwise || g.G > 1) && !col) || (g.G > 1 && !tmp)) {
        zs__arena_release(ws, mk);
        zs__fail(ZS_ERR_NOMEM, "zs_conv2d: cannot allocate the column buffer (%lld floats)", (long long)(g.CKK * g.G * g.OHW));
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    for (b0 = 0; b0 < g.B; b0 += g.G) {
        int64_t ng = g.B - b0 < g.G ? g.B - b0 : g.G, ncols = ng * g.OHW;
        const float *xb = (const float *)x->data + b0 * g.C * g.H * g.W; /* [ng,C,H,W] */
        const float *cm = xb;                                             /* [CKK, ncols] */
        float *yb = y + b0 * g.O * g.OHW;                                 /* [ng,O,OHW] */
        float *dst = ng == 1 ? yb : tmp;                                  /* [O, ncols] */
        if (!(g.pointwise && ng == 1)) { zs__im2col(ctx, &g, xb, ng, col); cm = col; }
        rc = zs__sgemm(&ctx->pool, 0, 0, g.O, ncols, g.CKK, 1.0f, (const float *)w->data, g.CKK, cm, ncols, 0.0f, dst, ncols);
        if (rc) break;
        if (ng > 1 || b) {
            zs__grp_arg a;
            a.g = &g; a.y = yb; a.m = dst; a.bias = b ? (const float *)b->data : NULL; a.ng = ng;
            zs__parallel_rows(ctx, g.O, zs__conv_min_rows(ncols), zs__conv_scatter_rows, &a);
        }
    }
    zs__arena_release(ws, mk);
    if (rc) {
        zs__fail(rc, "zs_conv2d: GEMM failed (%s)", zs_status_str(rc));
        return zs__op_fail(ctx, rc);
    }
    return t;
}

/* -- max pooling (torch semantics: padding is -inf, floor output size,
      first maximum wins, NaN propagates) -- */
typedef struct zs__pool_arg {
    const float *x; /* [P, H, W] planes */
    float *y;       /* [P, OH, OW] */
    int32_t *idx;   /* [P, OH, OW] argmax within the plane, or NULL */
    const float *dy;
    float *gx;
    int64_t H, W, OH, OW, k, s, p;
} zs__pool_arg;

/* Every output visits its window in row-major order; the first maximum
   (or a NaN) wins, its index within the plane goes to idx when not NULL. */
ZS__PRIV void zs__max_pool_ref(const zs__pool_arg *a, int64_t lo, int64_t hi) {
    int64_t pl, oh, ow, ih, iw;
    for (pl = lo; pl < hi; pl++)
        for (oh = 0; oh < a->OH; oh++)
            for (ow = 0; ow < a->OW; ow++) {
                int64_t h0 = oh * a->s - a->p, w0 = ow * a->s - a->p, h1 = h0 + a->k, w1 = w0 + a->k;
                const float *xp = a->x + pl * a->H * a->W;
                float m = -INFINITY;
                int32_t b;
                h0 = h0 < 0 ? 0 : h0; w0 = w0 < 0 ? 0 : w0;
                h1 = h1 > a->H ? a->H : h1; w1 = w1 > a->W ? a->W : w1;
                b = (int32_t)(h0 * a->W + w0);
                for (ih = h0; ih < h1; ih++)
                    for (iw = w0; iw < w1; iw++) {
                        float v = xp[ih * a->W + iw];
                        if (v > m || v != v) { m = v; b = (int32_t)(ih * a->W + iw); } /* as torch: a NaN wins */
                    }
                a->y[(pl * a->OH + oh) * a->OW + ow] = m;
                if (a->idx) a->idx[(pl * a->OH + oh) * a->OW + ow] = b;
            }
}

/* vm[i] = r[i] if r[i] > vm[i] or r[i] is NaN (earlier rows win ties, the
   last NaN is taken): the column maxima of a window's rows; vr[i] (when not
   NULL) records the row the maximum came from. */
ZS__PRIV void zs__pool_colmax(float *ZS__RESTRICT vm, int32_t *ZS__RESTRICT vr, const float *ZS__RESTRICT r, int64_t n, int32_t row) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    const __m256 rowv = _mm256_castsi256_ps(_mm256_set1_epi32(row));
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(vm + i), v = _mm256_loadu_ps(r + i);
        __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, a, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        _mm256_storeu_ps(vm + i, _mm256_blendv_ps(a, v, take));
        if (vr) {
            __m256 ri = _mm256_loadu_ps((const float *)(vr + i)); /* int32 bits moved as floats */
            _mm256_storeu_ps((float *)(vr + i), _mm256_blendv_ps(ri, rowv, take));
        }
    }
#endif
    for (; i < n; i++)
        if (r[i] > vm[i] || r[i] != r[i]) {
            vm[i] = r[i];
            if (vr) vr[i] = row;
        }
}

/* Fast forward over planes [lo, hi): per output row, the column maxima of
   the window rows (vectorised, with the row each came from), then the
   maximum of k columns per output (branch-free). The index is the smallest
   row-major index among the columns holding the maximum (the first element
   equal to it, which torch's strict-> scan picks), or the largest among NaN
   columns (torch keeps the last NaN). Same values and indices as
   zs__max_pool_ref, except that a zero's sign may differ when +0 and -0 tie. */
ZS__PRIV void zs__max_pool_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    const int64_t H = a->H, W = a->W, OH = a->OH, OW = a->OW, k = a->k, s = a->s, p = a->p;
    int64_t pl, oh, ow, ih, iw;
    zs__amark mk = zs__arena_mark(ws);
    float *vm = (float *)zs__arena_alloc(ws, (size_t)W * 4);       /* [W] column maxima */
    int32_t *vr = (int32_t *)zs__arena_alloc(ws, (size_t)W * 4);   /* [W] their rows */
    if (!vm || !vr) { /* scratch exhausted: the plain loop */
        zs__arena_release(ws, mk);
        zs__max_pool_ref(a, lo, hi);
        return;
    }
    for (pl = lo; pl < hi; pl++) {
        const float *xp = a->x + pl * H * W; /* [H,W] */
        for (oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * s - p, h1 = h0 + k;
            float *yp = a->y + (pl * OH + oh) * OW;
            int32_t *ip = a->idx ? a->idx + (pl * OH + oh) * OW : NULL;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            memcpy(vm, xp + h0 * W, (size_t)W * 4);
            if (ip)
                for (iw = 0; iw < W; iw++) vr[iw] = (int32_t)h0;
            for (ih = h0 + 1; ih < h1; ih++) zs__pool_colmax(vm, ip ? vr : NULL, xp + ih * W, W, (int32_t)ih);
            for (ow = 0; ow < OW; ow++) {
                int64_t w0 = ow * s - p, w1 = w0 + k;
                float m;
                int nan;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                m = vm[w0];
                nan = m != m;
                for (iw = w0 + 1; iw < w1; iw++) {
                    float v = vm[iw];
                    m = v > m ? v : m; /* maxss */
                    nan |= v != v;
                }
                yp[ow] = nan ? NAN : m;
                if (ip) {
                    int64_t b;
                    if (!nan) { /* masks instead of branches: the winning column is random */
                        b = INT64_MAX;
                        for (iw = w0; iw < w1; iw++) {
                            int64_t eq = -(int64_t)(vm[iw] == m);
                            int64_t c = ((vr[iw] * W + iw) & eq) | (INT64_MAX & ~eq);
                            b = c < b ? c : b;
                        }
                    } else {
                        b = -1;
                        for (iw = w0; iw < w1; iw++) {
                            int64_t c = vm[iw] != vm[iw] ? vr[iw] * W + iw : -1;
                            b = c > b ? c : b;
                        }
                    }
                    ip[ow] = (int32_t)b;
                }
            }
        }
    }
    zs__arena_release(ws, mk);
}

ZS__PRIV void zs__max_pool_bwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    int64_t pl, i, n = a->OH * a->OW;
    (void)ws;
    for (pl = lo; pl < hi; pl++) {
        const int32_t *ip = a->idx + pl * n;
        const float *d = a->dy + pl * n;
        float *g = a->gx + pl * a->H * a->W;
        for (i = 0; i < n; i++) g[ip[i]] += d[i];
    }
}

ZS__PRIV int zs__max_pool_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0];
    zs__pool_arg a;
    float *gx;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    if (!gx) return ZS_OK;
    memset(&a, 0, sizeof a);
    a.idx = (int32_t *)out->saved; a.dy = out->grad; a.gx = gx;
    a.H = x->shape[2]; a.W = x->shape[3]; a.OH = out->shape[2]; a.OW = out->shape[3];
    zs__parallel_rows(ctx, x->shape[0] * x->shape[1], zs__conv_min_rows(a.OH * a.OW), zs__max_pool_bwd_rows, &a);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_max_pool2d(zs_ctx *ctx, zs_tensor *x, int k, int stride, int pad) {
    int64_t shape[4];
    zs_tensor *t;
    zs__pool_arg a;
    if (!zs__ok1(ctx, x, "zs_max_pool2d")) return NULL;
    if (x->ndim != 4) return zs__shape_fail(ctx, "zs_max_pool2d", x, NULL, "x must be [B,C,H,W]");
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2) {
        zs__fail(ZS_ERR_ARG, "zs_max_pool2d: kernel %d, stride %d, padding %d (need k >= 1, stride >= 1, 0 <= pad <= k/2)", k, stride, pad);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (x->shape[2] + 2 * (int64_t)pad < k || x->shape[3] + 2 * (int64_t)pad < k) {
        char sx[96];
        zs__fail(ZS_ERR_SHAPE, "zs_max_pool2d: kernel %d larger than the input %s padded by %d", k, zs_shape_str(x, sx, sizeof sx), pad);
        return zs__op_fail(ctx, ZS_ERR_SHAPE);
    }
    if (x->shape[2] * x->shape[3] > INT32_MAX) return zs__shape_fail(ctx, "zs_max_pool2d", x, NULL, "plane too large for int32 indices");
    x = zs__contig(ctx, x);
    if (!x) return NULL;
    memset(&a, 0, sizeof a);
    a.H = x->shape[2]; a.W = x->shape[3]; a.k = k; a.s = stride; a.p = pad;
    a.OH = (a.H + 2 * a.p - a.k) / a.s + 1;
    a.OW = (a.W + 2 * a.p - a.k) / a.s + 1;
    shape[0] = x->shape[0]; shape[1] = x->shape[1]; shape[2] = a.OH; shape[3] = a.OW;
    t = zs__op_new(ctx, "max_pool2d", zs__max_pool_bwd, 4, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = k; t->ip[1] = stride; t->ip[2] = pad;
    if (t->flags & ZS_FLAG_ON_TAPE) {
        a.idx = (int32_t *)zs__arena_alloc(&ctx->arena, (size_t)zs_numel(t) * 4);
        if (!a.idx) { zs__fail(ZS_ERR_NOMEM, "zs_max_pool2d: arena exhausted (indices)"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        t->saved = a.idx;
    }
    a.x = (const float *)x->data; a.y = (float *)t->data;
    zs__parallel_rows(ctx, shape[0] * shape[1], zs__conv_min_rows(a.H * a.W), zs__max_pool_rows, &a);
    return t;
}

/* -- global average pooling [B,C,H,W] -> [B,C] -- */
ZS__PRIV void zs__avg_pool_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    int64_t pl, n = a->H * a->W;
    (void)ws;
    for (pl = lo; pl < hi; pl++) a->y[pl] = (float)(zs__conv_sum(a->x + pl * n, n) / (double)n);
}

ZS__PRIV void zs__avg_pool_bwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__pool_arg *a = (const zs__pool_arg *)arg;
    int64_t pl, i, n = a->H * a->W;
    (void)ws;
    for (pl = lo; pl < hi; pl++) {
        float d = a->dy[pl] / (float)n, *g = a->gx + pl * n;
        for (i = 0; i < n; i++) g[i] += d;
    }
}

ZS__PRIV int zs__avg_pool_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0];
    zs__pool_arg a;
    float *gx;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    if (!gx) return ZS_OK;
    memset(&a, 0, sizeof a);
    a.dy = out->grad; a.gx = gx; a.H = x->shape[2]; a.W = x->shape[3];
    zs__parallel_rows(ctx, x->shape[0] * x->shape[1], zs__conv_min_rows(a.H * a.W), zs__avg_pool_bwd_rows, &a);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_avg_pool_global(zs_ctx *ctx, zs_tensor *x) {
    zs_tensor *t;
    zs__pool_arg a;
    if (!zs__ok1(ctx, x, "zs_avg_pool_global")) return NULL;
    if (x->ndim != 4) return zs__shape_fail(ctx, "zs_avg_pool_global", x, NULL, "x must be [B,C,H,W]");
    if (x->shape[2] * x->shape[3] == 0) return zs__shape_fail(ctx, "zs_avg_pool_global", x, NULL, "empty spatial plane");
    x = zs__contig(ctx, x);
    if (!x) return NULL;
    t = zs__op_new(ctx, "avg_pool_global", zs__avg_pool_bwd, 2, x->shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    memset(&a, 0, sizeof a);
    a.x = (const float *)x->data; a.y = (float *)t->data; a.H = x->shape[2]; a.W = x->shape[3];
    zs__parallel_rows(ctx, x->shape[0] * x->shape[1], zs__conv_min_rows(a.H * a.W), zs__avg_pool_rows, &a);
    return t;
}

/* -- batch norm over channel dim 1 of x [B,C] / [B,C,L] / [B,C,H,W] --
   Per channel c over its n = B*HW values (torch semantics):
     training: mean, var_biased of the batch; running_mean = (1-m) rm + m mean,
               running_var = (1-m) rv + m var * n/(n-1) (in place, not recorded)
     eval:     mean = running_mean, var = running_var
     y = (x - mean) rstd w + b, rstd = 1/sqrt(var + eps), computed as
     y = x*scale + shift (scale = w rstd, shift = b - mean scale) like torch.
   Statistics are summed in double per channel, in a fixed order; threads
   split channels, so results do not depend on the thread count. The mean
   and rstd used are saved for backward (the running stats may change before
   backward runs). */
typedef struct zs__bn_arg {
    const float *x, *w, *b, *dy; /* x, dy [B,C,HW]; w, b [C] or NULL */
    float *y, *rm, *rv, *gx, *gw, *gb;
    float *stat;                 /* [2,C]: mean, rstd (saved for backward) or NULL */
    int64_t B, C, HW;
    int training;
    double momentum, eps;
} zs__bn_arg;

ZS__PRIV void zs__bn_fwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__bn_arg *a = (const zs__bn_arg *)arg;
    int64_t c, bi, i, n = a->B * a->HW;
    (void)ws;
    for (c = lo; c < hi; c++) {
        double mean, var, rstd;
        float scale, shift;
        if (a->training) {
            double s = 0.0, v = 0.0;
            for (bi = 0; bi < a->B; bi++) s += zs__conv_sum(a->x + (bi * a->C + c) * a->HW, a->HW);
            mean = s / (double)n;
            for (bi = 0; bi < a->B; bi++) v += zs__conv_sumsq(a->x + (bi * a->C + c) * a->HW, a->HW, mean);
            var = v / (double)n;
            if (a->rm) a->rm[c] = (float)((1.0 - a->momentum) * (double)a->rm[c] + a->momentum * mean);
            if (a->rv) a->rv[c] = (float)((1.0 - a->momentum) * (double)a->rv[c] + a->momentum * (v / (double)(n - 1)));
        } else {
            mean = a->rm[c];
            var = a->rv[c];
        }
        rstd = 1.0 / sqrt(var + a->eps);
        scale = (float)((a->w ? (double)a->w[c] : 1.0) * rstd);
        shift = (float)((a->b ? (double)a->b[c] : 0.0) - mean * (double)scale);
        if (a->stat) { a->stat[c] = (float)mean; a->stat[a->C + c] = (float)rstd; }
        for (bi = 0; bi < a->B; bi++) {
            const float *p = a->x + (bi * a->C + c) * a->HW;
            float *q = a->y + (bi * a->C + c) * a->HW;
            for (i = 0; i < a->HW; i++) q[i] = p[i] * scale + shift;
        }
    }
}

ZS__PRIV void zs__bn_bwd_rows(void *arg, int64_t lo, int64_t hi, zs__arena *ws) {
    const zs__bn_arg *a = (const zs__bn_arg *)arg;
    int64_t c, bi, i, n = a->B * a->HW;
    (void)ws;
    for (c = lo; c < hi; c++) {
        float mean = a->stat[c], rstd = a->stat[a->C + c];
        double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy * xhat */
        for (bi = 0; bi < a->B; bi++) {
            const float *p = a->x + (bi * a->C + c) * a->HW, *d = a->dy + (bi * a->C + c) * a->HW;
            sdy += zs__conv_sum(d, a->HW);
            sdyx += zs__conv_dotc(d, p, a->HW, mean);
        }
        sdyx *= rstd;
        if (a->gb) a->gb[c] += (float)sdy;
        if (a->gw) a->gw[c] += (float)sdyx;
        if (a->gx) {
            float k = (a->w ? a->w[c] : 1.0f) * rstd;
            float mdy = a->training ? (float)(sdy / (double)n) : 0.0f;
            float mdx = a->training ? (float)(sdyx / (double)n) : 0.0f;
            for (bi = 0; bi < a->B; bi++) {
                const float *p = a->x + (bi * a->C + c) * a->HW, *d = a->dy + (bi * a->C + c) * a->HW;
                float *g = a->gx + (bi * a->C + c) * a->HW;
                if (a->training)
                    for (i = 0; i < a->HW; i++) g[i] += k * (d[i] - mdy - (p[i] - mean) * rstd * mdx);
                else
                    for (i = 0; i < a->HW; i++) g[i] += k * d[i];
            }
        }
    }
}

ZS__PRIV void zs__bn_dims(const zs_tensor *x, int64_t *B, int64_t *C, int64_t *HW) {
    int i;
    *B = x->shape[0];
    *C = x->shape[1];
    *HW = 1;
    for (i = 2; i < x->ndim; i++) *HW *= x->shape[i];
}

ZS__PRIV int zs__bn_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *w = out->src[1], *b = out->src[2];
    zs__bn_arg a;
    memset(&a, 0, sizeof a);
    ZS__GRAD_OR_FAIL(a.gx, ctx, x);
    ZS__GRAD_OR_FAIL(a.gw, ctx, w);
    ZS__GRAD_OR_FAIL(a.gb, ctx, b);
    zs__bn_dims(x, &a.B, &a.C, &a.HW);
    a.x = (const float *)x->data;
    a.w = w ? (const float *)w->data : NULL;
    a.dy = out->grad;
    a.stat = (float *)out->saved;
    a.training = (int)out->ip[0];
    zs__parallel_rows(ctx, a.C, zs__conv_min_rows(a.B * a.HW), zs__bn_bwd_rows, &a);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_batch_norm(zs_ctx *ctx, zs_tensor *x, zs_tensor *w, zs_tensor *b,
                                zs_tensor *running_mean, zs_tensor *running_var,
                                float momentum, float eps) {
    static const char *who = "zs_batch_norm";
    zs_tensor *t, *vecs[4];
    zs__bn_arg a;
    int i;
    if (!zs__ok1(ctx, x, who) || !zs__ok(ctx, who, w, b, NULL) || !zs__ok(ctx, who, running_mean, running_var, NULL)) return NULL;
    if (x->ndim < 2 || x->ndim > 4) return zs__shape_fail(ctx, who, x, NULL, "x must be [B,C], [B,C,L] or [B,C,H,W]");
    vecs[0] = w; vecs[1] = b; vecs[2] = running_mean; vecs[3] = running_var;
    for (i = 0; i < 4; i++)
        if (vecs[i] && (vecs[i]->ndim != 1 || vecs[i]->shape[0] != x->shape[1])) {
            static const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
            char sx[96], sv[96];
            zs__fail(ZS_ERR_SHAPE, "%s: %s must be [C] (shapes %s and %s)", who, names[i],
                     zs_shape_str(x, sx, sizeof sx), zs_shape_str(vecs[i], sv, sizeof sv));
            return zs__op_fail(ctx, ZS_ERR_SHAPE);
        }
    for (i = 2; i < 4; i++)
        if (vecs[i] && !zs_is_contiguous(vecs[i])) {
            zs__fail(ZS_ERR_ARG, "%s: running statistics must be contiguous (they are updated in place)", who);
            return zs__op_fail(ctx, ZS_ERR_ARG);
        }
    if (!ctx->training && (!running_mean || !running_var)) {
        zs__fail(ZS_ERR_ARG, "%s: eval mode needs running_mean and running_var", who);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    if (!(eps >= 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        zs__fail(ZS_ERR_ARG, "%s: momentum %g must be in [0,1] and eps %g >= 0", who, (double)momentum, (double)eps);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    memset(&a, 0, sizeof a);
    zs__bn_dims(x, &a.B, &a.C, &a.HW);
    if (ctx->training && a.B * a.HW < 2 && a.C > 0)
        return zs__shape_fail(ctx, who, x, NULL, "training needs more than one value per channel");
    x = zs__contig(ctx, x);
    if (w) w = zs__contig(ctx, w);
    if (b) b = zs__contig(ctx, b);
    if (!x || (vecs[0] && !w) || (vecs[1] && !b)) return NULL;
    t = zs__op_new(ctx, "batch_norm", zs__bn_bwd, x->ndim, x->shape, x, w, b, NULL);
    if (!t) return NULL;
    t->ip[0] = ctx->training;
    t->fp[0] = momentum;
    t->fp[1] = eps;
    if (t->flags & ZS_FLAG_ON_TAPE) {
        a.stat = (float *)zs__arena_alloc(&ctx->arena, (size_t)(2 * a.C) * 4 + 4);
        if (!a.stat) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted (saved statistics)", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        t->saved = a.stat;
    }
    a.x = (const float *)x->data;
    a.y = (float *)t->data;
    a.w = w ? (const float *)w->data : NULL;
    a.b = b ? (const float *)b->data : NULL;
    a.rm = running_mean ? (float *)running_mean->data : NULL;
    a.rv = running_var ? (float *)running_var->data : NULL;
    a.training = ctx->training;
    a.momentum = momentum;
    a.eps = eps;
    zs__parallel_rows(ctx, a.C, zs__conv_min_rows(a.B * a.HW), zs__bn_fwd_rows, &a);
    return t;
}

/* ==================================================================== */
/* [impl:loss] distances and losses                                     */
/* ==================================================================== */
/* Every op here computes its own forward and backward (no composition), so
   the losses do not depend on the elementwise fragment. Reductions run in a
   fixed order (double accumulators; large sums in fixed 16384-element chunks
   combined in chunk order), so every result is identical for any thread
   count: threads only ever split independent rows or columns.

   Definitions (PyTorch names in brackets):
     cosine_matrix  S[i,j] = <a_i,b_j> / (|a_i| |b_j|), and S[i,j] = 0 with a
                    zero gradient wherever |a_i| |b_j| == 0 (the NaN -> 0 of
                    torch.nan_to_num on the plain division).
     pairwise_dist  d[i,j] = sqrt(|a_i - b_j|^2 + eps), eps >= 0.
     row_dist       d_i = |a_i - b_i + eps|_2 [F.pairwise_distance]; gradient
                    0 where d_i == 0 (as torch's norm backward).
     frobenius      sqrt(sum a^2); gradient a / norm, 0 at norm 0.
     mse_loss       mean((a - t)^2) [F.mse_loss], shapes must be equal.
     triplet_loss   mean(max(0, d(a,p) - d(a,n) + margin)) [TripletMarginLoss,
                    p = 2, swap off], d = row_dist(eps). At exactly the hinge
                    (argument == 0) the gradient passes, as torch's clamp_min
                    backward does (mask x >= 0).
     cross_entropy  mean over B of logsumexp(x_i) - x_i[y_i]; labels outside
                    [0,C) are an error (no ignore_index).
     soft_cross_entropy  -sum(t * log_softmax(x)) / B. */

#define ZS__LS_CHUNK 16384

/* sum of squares in double, fixed order */
ZS__PRIV double zs__ls_sumsq_d(const float *x, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * x[i];
        s1 += (double)x[i + 1] * x[i + 1];
        s2 += (double)x[i + 2] * x[i + 2];
        s3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++) s0 += (double)x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

/* sum of (a-b)^2 in double, fixed order */
ZS__PRIV double zs__ls_sqdiff_d(const float *a, const float *b, int64_t n) {
    double s0 = 0, s1 = 0;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        double d0 = (double)a[i] - b[i], d1 = (double)a[i + 1] - b[i + 1];
        s0 += d0 * d0;
        s1 += d1 * d1;
    }
    for (; i < n; i++) { double d = (double)a[i] - b[i]; s0 += d * d; }
    return s0 + s1;
}

/* -- deterministic chunked reduction: part[c] = fn(chunk c), summed in order -- */
typedef double (*zs__ls_chunk_fn)(const void *arg, int64_t lo, int64_t hi);
typedef struct zs__ls_red_job { zs__ls_chunk_fn fn; const void *arg; int64_t n; double *part; } zs__ls_red_job;

ZS__PRIV void zs__ls_red_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__ls_red_job *j = (zs__ls_red_job *)varg;
    int64_t c;
    (void)ws;
    for (c = lo; c < hi; c++) {
        int64_t e = (c + 1) * ZS__LS_CHUNK;
        j->part[c] = j->fn(j->arg, c * ZS__LS_CHUNK, e < j->n ? e : j->n);
    }
}

/* The chunking depends only on n, so the result is the same for any thread
   count. Uses (and gives back) scratch from the context arena. */
ZS__PRIV int zs__ls_reduce(zs_ctx *ctx, int64_t n, zs__ls_chunk_fn fn, const void *arg, double *out) {
    int64_t nc = (n + ZS__LS_CHUNK - 1) / ZS__LS_CHUNK, c;
    zs__amark m;
    zs__ls_red_job j;
    double s = 0;
    if (nc <= 1) { *out = n > 0 ? fn(arg, 0, n) : 0.0; return ZS_OK; }
    m = zs__arena_mark(&ctx->arena);
    j.part = (double *)zs__arena_alloc(&ctx->arena, (size_t)nc * sizeof(double));
    if (!j.part) return zs__fail(ZS_ERR_NOMEM, "arena exhausted (reduction scratch)");
    j.fn = fn; j.arg = arg; j.n = n;
    zs__parallel_rows(ctx, nc, 1, zs__ls_red_rows, &j);
    for (c = 0; c < nc; c++) s += j.part[c];
    zs__arena_release(&ctx->arena, m);
    *out = s;
    return ZS_OK;
}

/* -- SIMD kernels with their scalar references -- */

/* sum_k (a[k]-b[k])^2 in float */
ZS__PRIV float zs__ls_sqdist_ref(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    int64_t k;
    for (k = 0; k < n; k++) { float d = a[k] - b[k]; s += d * d; }
    return s;
}

ZS__PRIV float zs__ls_sqdist(const float *a, const float *b, int64_t n) {
    int64_t k = 0;
    float s = 0.0f;
#if ZS__VW > 1
    if (n >= 2 * ZS__VW) {
        zs__vf s0 = zs__vzero(), s1 = zs__vzero();
        for (; k + 2 * ZS__VW <= n; k += 2 * ZS__VW) {
            zs__vf d0 = zs__vsub(zs__vload(a + k), zs__vload(b + k));
            zs__vf d1 = zs__vsub(zs__vload(a + k + ZS__VW), zs__vload(b + k + ZS__VW));
            s0 = zs__vfma(d0, d0, s0);
            s1 = zs__vfma(d1, d1, s1);
        }
        for (; k + ZS__VW <= n; k += ZS__VW) {
            zs__vf d0 = zs__vsub(zs__vload(a + k), zs__vload(b + k));
            s0 = zs__vfma(d0, d0, s0);
        }
        s = zs__vhsum(zs__vadd(s0, s1));
    }
#endif
    for (; k < n; k++) { float d = a[k] - b[k]; s += d * d; }
    return s;
}

/* y[k] += w * (a[k] - b[k]) */
ZS__PRIV void zs__ls_axpy_diff_ref(float *y, float w, const float *a, const float *b, int64_t n) {
    int64_t k;
    for (k = 0; k < n; k++) y[k] += w * (a[k] - b[k]);
}

ZS__PRIV void zs__ls_axpy_diff(float *y, float w, const float *a, const float *b, int64_t n) {
    int64_t k = 0;
#if ZS__VW > 1
    zs__vf vw = zs__vset1(w);
    for (; k + ZS__VW <= n; k += ZS__VW)
        zs__vstore(y + k, zs__vfma(vw, zs__vsub(zs__vload(a + k), zs__vload(b + k)), zs__vload(y + k)));
#endif
    for (; k < n; k++) y[k] += w * (a[k] - b[k]);
}

/* ---------------------------------------------------------------------- */
/* cosine similarity matrix                                               */
/* ---------------------------------------------------------------------- */

typedef struct zs__cos_job {
    const float *a, *b;   /* [R,D] rows of a (or b) */
    float *norm;          /* [R] */
    int64_t D;
    /* division / backward */
    float *S;             /* [batch*M, N] */
    const float *g;       /* [batch*M, N] upstream gradient */
    float *W, *ra, *rb;   /* W = g / (|a||b|); ra, rb: the diagonal coefficients */
    const float *na, *nb;
    int64_t M, N;
} zs__cos_job;

ZS__PRIV void zs__cos_norms(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t r;
    (void)ws;
    for (r = lo; r < hi; r++) j->norm[r] = (float)sqrt(zs__ls_sumsq_d(j->a + r * j->D, j->D));
}

/* rows r of [batch*M, N]: S <- S / (|a_r| |b_j|), 0 where the product is 0 */
ZS__PRIV void zs__cos_div(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t r, c;
    (void)ws;
    for (r = lo; r < hi; r++) {
        const float *nb = j->nb + (r / j->M) * j->N;
        float na = j->na[r], *s = j->S + r * j->N;
        for (c = 0; c < j->N; c++) {
            float den = na * nb[c];
            s[c] = den != 0.0f ? s[c] / den : 0.0f;
        }
    }
}

ZS__PRIV void zs__cos_bwd_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t r, c;
    (void)ws;
    for (r = lo; r < hi; r++) {
        const float *nb = j->nb + (r / j->M) * j->N, *s = j->S + r * j->N, *g = j->g + r * j->N;
        float na = j->na[r], *w = j->W + r * j->N;
        double acc = 0;
        for (c = 0; c < j->N; c++) {
            float den = na * nb[c];
            w[c] = den != 0.0f ? g[c] / den : 0.0f;
            acc += (double)g[c] * s[c];
        }
        j->ra[r] = na != 0.0f ? (float)(acc / ((double)na * na)) : 0.0f;
    }
}

/* columns q of [batch, N]: rb[q] = sum_i g S over the batch's M rows, in i order */
ZS__PRIV void zs__cos_bwd_cols(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__cos_job *j = (zs__cos_job *)varg;
    int64_t q, i;
    (void)ws;
    for (q = lo; q < hi; q++) {
        int64_t bi = q / j->N, c = q % j->N;
        const float *s = j->S + bi * j->M * j->N + c, *g = j->g + bi * j->M * j->N + c;
        float nb = j->nb[q];
        double acc = 0;
        for (i = 0; i < j->M; i++) acc += (double)g[i * j->N] * s[i * j->N];
        j->rb[q] = nb != 0.0f ? (float)(acc / ((double)nb * nb)) : 0.0f;
    }
}

/* x[r] -= c[r] * row r of X (rows of length D) */
ZS__PRIV void zs__ls_sub_scaled_rows(float *gx, const float *c, const float *x, int64_t R, int64_t D) {
    int64_t r, k;
    for (r = 0; r < R; r++) {
        float cr = c[r];
        if (cr == 0.0f) continue;
        for (k = 0; k < D; k++) gx[r * D + k] -= cr * x[r * D + k];
    }
}

ZS__PRIV int zs__cosine_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int64_t M = out->shape[out->ndim - 2], N = out->shape[out->ndim - 1], D = a->shape[a->ndim - 1];
    int64_t batch = zs__batch_count(out);
    float *ga, *gb, *W, *coef;
    zs__cos_job j;
    zs__amark mk;
    int rc = ZS_OK;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    if (!ga && !gb) return ZS_OK;
    /* scratch after the gradient buffers, so releasing it keeps them */
    mk = zs__arena_mark(&ctx->arena);
    W = (float *)zs__arena_alloc(&ctx->arena, (size_t)(batch * M * N + batch * (M > N ? M : N) + 1) * sizeof(float));
    if (!W) return zs__fail(ZS_ERR_NOMEM, "zs_cosine_matrix backward: arena exhausted");
    coef = W + batch * M * N;
    memset(&j, 0, sizeof j);
    j.S = (float *)out->data;
    j.g = out->grad;
    j.na = (const float *)out->saved;
    j.nb = j.na + batch * M;
    j.M = M; j.N = N; j.D = D;
    j.W = W;
    j.ra = coef;
    /* W = g / (|a||b|) and the a-side coefficients */
    zs__parallel_rows(ctx, batch * M, 16, zs__cos_bwd_rows, &j);
    if (ga) {
        /* ga += W B - diag(sum_j g S / |a|^2) A */
        zs__ls_sub_scaled_rows(ga, coef, (const float *)a->data, batch * M, D);
        rc = zs__sgemm_batched(&ctx->pool, 0, 0, M, D, N, 1.0f, W, N, M * N, (const float *)b->data, D, N * D,
                               1.0f, ga, D, M * D, batch);
    }
    if (gb && rc == ZS_OK) {
        /* gb += W^T A - diag(sum_i g S / |b|^2) B */
        rc = zs__sgemm_batched(&ctx->pool, 1, 0, N, D, M, 1.0f, W, N, M * N, (const float *)a->data, D, M * D,
                               1.0f, gb, D, N * D, batch);
        if (rc == ZS_OK) {
            j.rb = coef; /* the a-side coefficients are no longer needed */
            zs__parallel_rows(ctx, batch * N, 16, zs__cos_bwd_cols, &j);
            zs__ls_sub_scaled_rows(gb, coef, (const float *)b->data, batch * N, D);
        }
    }
    zs__arena_release(&ctx->arena, mk);
    return rc;
}

ZS__FN zs_tensor *zs_cosine_matrix(zs_ctx *ctx, zs_tensor *a, zs_tensor *b) {
    int64_t shape[ZS_MAX_DIMS], M, N, D, batch;
    float *norms;
    zs_tensor *t;
    zs__cos_job j;
    zs__amark mk;
    int i, nd;
    if (!zs__ok2(ctx, a, b, "zs_cosine_matrix")) return NULL;
    nd = a->ndim;
    if (nd < 2 || b->ndim != nd) return zs__shape_fail(ctx, "zs_cosine_matrix", a, b, "need [..,M,D] and [..,N,D] of the same rank >= 2");
    for (i = 0; i + 2 < nd; i++)
        if (a->shape[i] != b->shape[i]) return zs__shape_fail(ctx, "zs_cosine_matrix", a, b, "batch dims differ");
    if (a->shape[nd - 1] != b->shape[nd - 1]) return zs__shape_fail(ctx, "zs_cosine_matrix", a, b, "feature (last) dims differ");
    a = zs__contig(ctx, a);
    b = zs__contig(ctx, b);
    if (!a || !b) return NULL;
    M = a->shape[nd - 2]; N = b->shape[nd - 2]; D = a->shape[nd - 1];
    batch = zs__batch_count(a);
    for (i = 0; i + 2 < nd; i++) shape[i] = a->shape[i];
    shape[nd - 2] = M;
    shape[nd - 1] = N;
    t = zs__op_new(ctx, "cosine_matrix", zs__cosine_bwd, nd, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    /* norms [batch*M] then [batch*N]: kept for backward when recorded */
    mk = zs__arena_mark(&ctx->arena);
    norms = (float *)zs__arena_alloc(&ctx->arena, (size_t)(batch * (M + N) + 1) * sizeof(float));
    if (!norms) { zs__fail(ZS_ERR_NOMEM, "zs_cosine_matrix: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    memset(&j, 0, sizeof j);
    j.D = D;
    j.a = (const float *)a->data; j.norm = norms;
    zs__parallel_rows(ctx, batch * M, 16, zs__cos_norms, &j);
    j.a = (const float *)b->data; j.norm = norms + batch * M;
    zs__parallel_rows(ctx, batch * N, 16, zs__cos_norms, &j);
    /* dot products, then the division row by row */
    if (zs__sgemm_batched(&ctx->pool, 0, 1, M, N, D, 1.0f, (const float *)a->data, D, M * D,
                          (const float *)b->data, D, N * D, 0.0f, (float *)t->data, N, M * N, batch) != ZS_OK) {
        zs__fail(ZS_ERR_NOMEM, "zs_cosine_matrix: kernel failed");
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    j.S = (float *)t->data;
    j.na = norms; j.nb = norms + batch * M;
    j.M = M; j.N = N;
    zs__parallel_rows(ctx, batch * M, 16, zs__cos_div, &j);
    if (t->flags & ZS_FLAG_ON_TAPE) t->saved = norms;
    else zs__arena_release(&ctx->arena, mk);
    return t;
}

/* ---------------------------------------------------------------------- */
/* pairwise distance matrix                                               */
/* ---------------------------------------------------------------------- */

typedef struct zs__pd_job {
    const float *a, *b, *g, *d;
    float *out, *ga, *gb;
    int64_t M, N, D;
    float eps;
} zs__pd_job;

ZS__PRIV void zs__pd_fwd_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__pd_job *j = (zs__pd_job *)varg;
    int64_t i, c;
    (void)ws;
    for (i = lo; i < hi; i++)
        for (c = 0; c < j->N; c++)
            j->out[i * j->N + c] = sqrtf(zs__ls_sqdist(j->a + i * j->D, j->b + c * j->D, j->D) + j->eps);
}

/* ga_i += sum_j g_ij / d_ij (a_i - b_j), j in order */
ZS__PRIV void zs__pd_bwd_a(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__pd_job *j = (zs__pd_job *)varg;
    int64_t i, c;
    (void)ws;
    for (i = lo; i < hi; i++)
        for (c = 0; c < j->N; c++) {
            float d = j->d[i * j->N + c], g = j->g[i * j->N + c];
            if (d != 0.0f && g != 0.0f) zs__ls_axpy_diff(j->ga + i * j->D, g / d, j->a + i * j->D, j->b + c * j->D, j->D);
        }
}

/* gb_j += sum_i g_ij / d_ij (b_j - a_i), i in order */
ZS__PRIV void zs__pd_bwd_b(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__pd_job *j = (zs__pd_job *)varg;
    int64_t i, c;
    (void)ws;
    for (c = lo; c < hi; c++)
        for (i = 0; i < j->M; i++) {
            float d = j->d[i * j->N + c], g = j->g[i * j->N + c];
            if (d != 0.0f && g != 0.0f) zs__ls_axpy_diff(j->gb + c * j->D, g / d, j->b + c * j->D, j->a + i * j->D, j->D);
        }
}

ZS__PRIV int zs__pairwise_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    zs__pd_job j;
    ZS__GRAD_OR_FAIL(j.ga, ctx, a);
    ZS__GRAD_OR_FAIL(j.gb, ctx, b);
    j.a = (const float *)a->data; j.b = (const float *)b->data;
    j.g = out->grad; j.d = (const float *)out->data; j.out = NULL;
    j.M = out->shape[0]; j.N = out->shape[1]; j.D = a->shape[1];
    j.eps = out->fp[0];
    if (j.ga) zs__parallel_rows(ctx, j.M, 4, zs__pd_bwd_a, &j);
    if (j.gb) zs__parallel_rows(ctx, j.N, 4, zs__pd_bwd_b, &j);
    return ZS_OK;
}

ZS__FN zs_tensor *zs_pairwise_dist(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, float eps) {
    int64_t shape[2];
    zs_tensor *t;
    zs__pd_job j;
    if (!zs__ok2(ctx, a, b, "zs_pairwise_dist")) return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1])
        return zs__shape_fail(ctx, "zs_pairwise_dist", a, b, "need [M,D] and [N,D]");
    if (!(eps >= 0.0f)) {
        zs__fail(ZS_ERR_ARG, "zs_pairwise_dist: eps %g must be >= 0", (double)eps);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    a = zs__contig(ctx, a);
    b = zs__contig(ctx, b);
    if (!a || !b) return NULL;
    shape[0] = a->shape[0];
    shape[1] = b->shape[0];
    t = zs__op_new(ctx, "pairwise_dist", zs__pairwise_bwd, 2, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->fp[0] = eps;
    j.a = (const float *)a->data; j.b = (const float *)b->data;
    j.out = (float *)t->data;
    j.M = shape[0]; j.N = shape[1]; j.D = a->shape[1];
    j.eps = eps;
    zs__parallel_rows(ctx, j.M, 4, zs__pd_fwd_rows, &j);
    return t;
}

/* ---------------------------------------------------------------------- */
/* row distance |a_i - b_i + eps|_2                                       */
/* ---------------------------------------------------------------------- */

/* sqrt(sum_k (a_k - b_k + eps)^2) with the difference and the sum in double
   (torch rounds a - b + eps in float; double keeps the result at or below
   that rounding and immune to reassociation, e.g. -ffast-math turning
   (a - b) + eps into a + (eps - b), which loses eps when a == b) */
ZS__PRIV float zs__row_dist1(const float *a, const float *b, int64_t D, float eps) {
    double s = 0;
    int64_t k;
    for (k = 0; k < D; k++) {
        double d = ((double)a[k] - (double)b[k]) + (double)eps;
        s += d * d;
    }
    return (float)sqrt(s);
}

/* ga += c (a - b + eps), gb -= c (a - b + eps) */
ZS__PRIV void zs__row_dist1_bwd(float *ga, float *gb, const float *a, const float *b, int64_t D, float eps, float c) {
    int64_t k;
    for (k = 0; k < D; k++) {
        float v = (float)((double)c * (((double)a[k] - (double)b[k]) + (double)eps));
        if (ga) ga[k] += v;
        if (gb) gb[k] -= v;
    }
}

ZS__PRIV int zs__row_dist_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *b = out->src[1];
    int64_t D = a->ndim ? a->shape[a->ndim - 1] : 1, R = zs_numel(out), r;
    const float *d = (const float *)out->data, *A = (const float *)a->data, *B = (const float *)b->data;
    float *ga, *gb, eps = out->fp[0];
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gb, ctx, b);
    for (r = 0; r < R; r++) {
        if (d[r] == 0.0f) continue; /* torch: norm backward is 0 at 0 */
        zs__row_dist1_bwd(ga ? ga + r * D : NULL, gb ? gb + r * D : NULL, A + r * D, B + r * D, D, eps, out->grad[r] / d[r]);
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_row_dist(zs_ctx *ctx, zs_tensor *a, zs_tensor *b, float eps) {
    zs_tensor *t;
    int64_t D, R, r;
    int i;
    if (!zs__ok2(ctx, a, b, "zs_row_dist")) return NULL;
    if (a->ndim < 1 || a->ndim != b->ndim) return zs__shape_fail(ctx, "zs_row_dist", a, b, "need equal shapes [..,D]");
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return zs__shape_fail(ctx, "zs_row_dist", a, b, "need equal shapes [..,D]");
    a = zs__contig(ctx, a);
    b = zs__contig(ctx, b);
    if (!a || !b) return NULL;
    t = zs__op_new(ctx, "row_dist", zs__row_dist_bwd, a->ndim - 1, a->shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->fp[0] = eps;
    D = a->shape[a->ndim - 1];
    R = zs_numel(t);
    for (r = 0; r < R; r++)
        ((float *)t->data)[r] = zs__row_dist1((const float *)a->data + r * D, (const float *)b->data + r * D, D, eps);
    return t;
}

/* ---------------------------------------------------------------------- */
/* Frobenius norm                                                         */
/* ---------------------------------------------------------------------- */

ZS__PRIV double zs__ls_sumsq_chunk(const void *arg, int64_t lo, int64_t hi) {
    return zs__ls_sumsq_d((const float *)arg + lo, hi - lo);
}

typedef struct zs__ls_scale_job { float *y; const float *x; float c; } zs__ls_scale_job;
/* rows are 16384-element chunks: y += c x */
ZS__PRIV void zs__ls_axpy_chunks(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__ls_scale_job *j = (zs__ls_scale_job *)varg;
    int64_t k, e = hi * ZS__LS_CHUNK;
    (void)ws;
    for (k = lo * ZS__LS_CHUNK; k < e; k++) j->y[k] += j->c * j->x[k];
}

ZS__PRIV int zs__frobenius_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    float *ga, norm = ((const float *)out->data)[0];
    int64_t n = zs_numel(a), full = n / ZS__LS_CHUNK, k;
    zs__ls_scale_job j;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    if (!ga || norm == 0.0f) return ZS_OK;
    j.y = ga; j.x = (const float *)a->data; j.c = out->grad[0] / norm;
    zs__parallel_rows(ctx, full, 4, zs__ls_axpy_chunks, &j);
    for (k = full * ZS__LS_CHUNK; k < n; k++) ga[k] += j.c * j.x[k];
    return ZS_OK;
}

ZS__FN zs_tensor *zs_frobenius(zs_ctx *ctx, zs_tensor *a) {
    zs_tensor *t;
    double s = 0;
    int rc;
    if (!zs__ok1(ctx, a, "zs_frobenius")) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    t = zs__op_new(ctx, "frobenius", zs__frobenius_bwd, 0, NULL, a, NULL, NULL, NULL);
    if (!t) return NULL;
    rc = zs__ls_reduce(ctx, zs_numel(a), zs__ls_sumsq_chunk, a->data, &s);
    if (rc != ZS_OK) return zs__op_fail(ctx, rc);
    ((float *)t->data)[0] = (float)sqrt(s);
    return t;
}

/* ---------------------------------------------------------------------- */
/* mean squared error                                                     */
/* ---------------------------------------------------------------------- */

typedef struct zs__ls_pair_arg { const float *a, *b; } zs__ls_pair_arg;
ZS__PRIV double zs__ls_sqdiff_chunk(const void *arg, int64_t lo, int64_t hi) {
    const zs__ls_pair_arg *p = (const zs__ls_pair_arg *)arg;
    return zs__ls_sqdiff_d(p->a + lo, p->b + lo, hi - lo);
}

ZS__PRIV int zs__mse_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *tg = out->src[1];
    const float *A = (const float *)a->data, *T = (const float *)tg->data;
    int64_t n = zs_numel(a), k;
    float *ga, *gt, c;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gt, ctx, tg);
    if (n == 0) return ZS_OK;
    c = (float)(2.0 * (double)out->grad[0] / (double)n);
    for (k = 0; k < n; k++) {
        float v = c * (A[k] - T[k]);
        if (ga) ga[k] += v;
        if (gt) gt[k] -= v;
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_mse_loss(zs_ctx *ctx, zs_tensor *a, zs_tensor *target) {
    zs_tensor *t;
    zs__ls_pair_arg p;
    double s = 0;
    int64_t n;
    int i, rc;
    if (!zs__ok2(ctx, a, target, "zs_mse_loss")) return NULL;
    if (a->ndim != target->ndim) return zs__shape_fail(ctx, "zs_mse_loss", a, target, "input and target shapes differ");
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != target->shape[i]) return zs__shape_fail(ctx, "zs_mse_loss", a, target, "input and target shapes differ");
    a = zs__contig(ctx, a);
    target = zs__contig(ctx, target);
    if (!a || !target) return NULL;
    n = zs_numel(a);
    if (n == 0) return zs__shape_fail(ctx, "zs_mse_loss", a, NULL, "mean of an empty tensor");
    t = zs__op_new(ctx, "mse_loss", zs__mse_bwd, 0, NULL, a, target, NULL, NULL);
    if (!t) return NULL;
    p.a = (const float *)a->data; p.b = (const float *)target->data;
    rc = zs__ls_reduce(ctx, n, zs__ls_sqdiff_chunk, &p, &s);
    if (rc != ZS_OK) return zs__op_fail(ctx, rc);
    ((float *)t->data)[0] = (float)(s / (double)n);
    return t;
}

/* ---------------------------------------------------------------------- */
/* triplet margin loss                                                    */
/* ---------------------------------------------------------------------- */

ZS__PRIV int zs__triplet_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0], *p = out->src[1], *n = out->src[2];
    const float *sv = (const float *)out->saved; /* [R] dp, [R] dn, [R] active */
    int64_t R = out->ip[0], D = out->ip[1], r;
    const float *A = (const float *)a->data, *P = (const float *)p->data, *N = (const float *)n->data;
    float *ga, *gp, *gn, eps = out->fp[0], c;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    ZS__GRAD_OR_FAIL(gp, ctx, p);
    ZS__GRAD_OR_FAIL(gn, ctx, n);
    c = out->grad[0] / (float)R;
    for (r = 0; r < R; r++) {
        float dp = sv[r], dn = sv[R + r];
        if (sv[2 * R + r] == 0.0f) continue;
        /* d/da dp = (a-p+eps)/dp, d/dp dp = -(...); d/da (-dn) = -(a-n+eps)/dn */
        if (dp != 0.0f) zs__row_dist1_bwd(ga ? ga + r * D : NULL, gp ? gp + r * D : NULL, A + r * D, P + r * D, D, eps, c / dp);
        if (dn != 0.0f) zs__row_dist1_bwd(ga ? ga + r * D : NULL, gn ? gn + r * D : NULL, A + r * D, N + r * D, D, eps, -c / dn);
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_triplet_loss(zs_ctx *ctx, zs_tensor *anchor, zs_tensor *pos, zs_tensor *neg, float margin, float eps) {
    zs_tensor *t;
    float *sv;
    zs__amark mk;
    int64_t R, D, r;
    double s = 0;
    int i;
    if (!zs__ok3(ctx, anchor, pos, neg, "zs_triplet_loss")) return NULL;
    if (anchor->ndim < 1 || anchor->ndim != pos->ndim) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, pos, "anchor and positive shapes differ");
    if (anchor->ndim != neg->ndim) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, neg, "anchor and negative shapes differ");
    for (i = 0; i < anchor->ndim; i++) {
        if (anchor->shape[i] != pos->shape[i]) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, pos, "anchor and positive shapes differ");
        if (anchor->shape[i] != neg->shape[i]) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, neg, "anchor and negative shapes differ");
    }
    D = anchor->shape[anchor->ndim - 1];
    R = D ? zs_numel(anchor) / D : 0;
    if (R == 0) return zs__shape_fail(ctx, "zs_triplet_loss", anchor, NULL, "mean over an empty batch");
    anchor = zs__contig(ctx, anchor);
    pos = zs__contig(ctx, pos);
    neg = zs__contig(ctx, neg);
    if (!anchor || !pos || !neg) return NULL;
    t = zs__op_new(ctx, "triplet_loss", zs__triplet_bwd, 0, NULL, anchor, pos, neg, NULL);
    if (!t) return NULL;
    mk = zs__arena_mark(&ctx->arena);
    sv = (float *)zs__arena_alloc(&ctx->arena, (size_t)(3 * R) * sizeof(float));
    if (!sv) { zs__fail(ZS_ERR_NOMEM, "zs_triplet_loss: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    for (r = 0; r < R; r++) {
        float dp = zs__row_dist1((const float *)anchor->data + r * D, (const float *)pos->data + r * D, D, eps);
        float dn = zs__row_dist1((const float *)anchor->data + r * D, (const float *)neg->data + r * D, D, eps);
        float l = (dp - dn) + margin; /* torch: margin + d_p - d_n */
        sv[r] = dp;
        sv[R + r] = dn;
        sv[2 * R + r] = l >= 0.0f ? 1.0f : 0.0f; /* torch clamp_min passes the gradient at 0 */
        if (l > 0.0f) s += l;
    }
    ((float *)t->data)[0] = (float)(s / (double)R);
    t->fp[0] = eps;
    t->ip[0] = R;
    t->ip[1] = D;
    if (t->flags & ZS_FLAG_ON_TAPE) t->saved = sv;
    else zs__arena_release(&ctx->arena, mk);
    return t;
}

/* ---------------------------------------------------------------------- */
/* cross-entropy (hard labels) and soft cross-entropy                     */
/* ---------------------------------------------------------------------- */

typedef struct zs__ce_job {
    const float *x;       /* [B,C] logits */
    const float *t;       /* [B,C] soft targets or NULL */
    const int32_t *y;     /* [B] labels or NULL */
    float *P;             /* [B,C] softmax out */
    float *lse;           /* [B] */
    double *loss;         /* [B] per-row loss */
    int64_t C;
} zs__ce_job;

ZS__PRIV void zs__ce_rows(void *varg, int64_t lo, int64_t hi, zs__arena *ws) {
    zs__ce_job *j = (zs__ce_job *)varg;
    int64_t r, c, C = j->C;
    (void)ws;
    for (r = lo; r < hi; r++) {
        const float *x = j->x + r * C;
        float *p = j->P + r * C, l;
        memcpy(p, x, (size_t)C * sizeof(float));
        l = zs__softmax_row(p, C);
        j->lse[r] = l;
        if (j->y) {
            j->loss[r] = (double)l - (double)x[j->y[r]];
        } else {
            const float *t = j->t + r * C;
            double s = 0;
            for (c = 0; c < C; c++) s -= (double)t[c] * ((double)x[c] - (double)l);
            j->loss[r] = s;
        }
    }
}

/* forward shared by both losses. One block: [B] doubles (per-row loss,
   scratch), then the saved part: [B*C] probabilities, [B] lse, [B] labels. */
ZS__PRIV zs_tensor *zs__ce_forward(zs_ctx *ctx, const char *who, const char *name, zs_backward_fn bwd,
                                   zs_tensor *x, zs_tensor *tg, const int32_t *labels) {
    int64_t B = x->shape[0], C = x->shape[1], r;
    zs_tensor *t;
    zs__ce_job j;
    zs__amark mk;
    float *blk;
    double s = 0;
    t = zs__op_new(ctx, name, bwd, 0, NULL, x, tg, NULL, NULL);
    if (!t) return NULL;
    mk = zs__arena_mark(&ctx->arena);
    j.loss = (double *)zs__arena_alloc(&ctx->arena, (size_t)B * sizeof(double) + (size_t)(B * C + 2 * B) * sizeof(float));
    if (!j.loss) {
        zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who);
        return zs__op_fail(ctx, ZS_ERR_NOMEM);
    }
    blk = (float *)(j.loss + B);
    j.x = (const float *)x->data;
    j.t = tg ? (const float *)tg->data : NULL;
    j.P = blk;
    j.lse = blk + B * C;
    j.y = NULL;
    if (labels) {
        int32_t *yc = (int32_t *)(blk + B * C + B);
        memcpy(yc, labels, (size_t)B * sizeof(int32_t));
        j.y = yc;
    }
    j.C = C;
    zs__parallel_rows(ctx, B, C >= 4096 ? 1 : 4096 / C, zs__ce_rows, &j);
    for (r = 0; r < B; r++) s += j.loss[r];
    ((float *)t->data)[0] = (float)(s / (double)B);
    t->ip[0] = B;
    t->ip[1] = C;
    if (t->flags & ZS_FLAG_ON_TAPE) t->saved = blk;
    else zs__arena_release(&ctx->arena, mk);
    return t;
}

ZS__PRIV int zs__ce_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0];
    int64_t B = out->ip[0], C = out->ip[1], r, c;
    const float *P = (const float *)out->saved;
    const int32_t *y = (const int32_t *)(P + B * C + B);
    float *gx, k;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    if (!gx) return ZS_OK;
    k = out->grad[0] / (float)B;
    for (r = 0; r < B; r++) {
        for (c = 0; c < C; c++) gx[r * C + c] += k * P[r * C + c];
        gx[r * C + y[r]] -= k;
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_cross_entropy(zs_ctx *ctx, zs_tensor *logits, const int32_t *labels) {
    int64_t B, C, r;
    if (!zs__ok1(ctx, logits, "zs_cross_entropy")) return NULL;
    if (logits->ndim != 2 || logits->shape[0] < 1 || logits->shape[1] < 1)
        return zs__shape_fail(ctx, "zs_cross_entropy", logits, NULL, "logits must be [B,C] with B, C >= 1");
    B = logits->shape[0];
    C = logits->shape[1];
    if (!labels) {
        zs__fail(ZS_ERR_ARG, "zs_cross_entropy: NULL labels");
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    for (r = 0; r < B; r++)
        if (labels[r] < 0 || labels[r] >= C) {
            zs__fail(ZS_ERR_ARG, "zs_cross_entropy: label %lld = %d outside [0,%lld)", (long long)r, (int)labels[r], (long long)C);
            return zs__op_fail(ctx, ZS_ERR_ARG);
        }
    logits = zs__contig(ctx, logits);
    if (!logits) return NULL;
    return zs__ce_forward(ctx, "zs_cross_entropy", "cross_entropy", zs__ce_bwd, logits, NULL, labels);
}

ZS__PRIV int zs__soft_ce_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *x = out->src[0], *tg = out->src[1];
    int64_t B = out->ip[0], C = out->ip[1], r, c;
    const float *P = (const float *)out->saved, *lse = P + B * C;
    const float *X = (const float *)x->data, *T = (const float *)tg->data;
    float *gx, *gt, k;
    ZS__GRAD_OR_FAIL(gx, ctx, x);
    ZS__GRAD_OR_FAIL(gt, ctx, tg);
    k = out->grad[0] / (float)B;
    for (r = 0; r < B; r++) {
        const float *t = T + r * C, *p = P + r * C;
        if (gx) {
            /* d/dx_c = k (p_c sum(t) - t_c) */
            double ts = 0;
            float kt;
            for (c = 0; c < C; c++) ts += t[c];
            kt = k * (float)ts;
            for (c = 0; c < C; c++) gx[r * C + c] += kt * p[c] - k * t[c];
        }
        if (gt) /* d/dt_c = -k log_softmax_c */
            for (c = 0; c < C; c++) gt[r * C + c] -= k * (X[r * C + c] - lse[r]);
    }
    return ZS_OK;
}

ZS__FN zs_tensor *zs_soft_cross_entropy(zs_ctx *ctx, zs_tensor *logits, zs_tensor *target) {
    if (!zs__ok2(ctx, logits, target, "zs_soft_cross_entropy")) return NULL;
    if (logits->ndim != 2 || logits->shape[0] < 1 || logits->shape[1] < 1)
        return zs__shape_fail(ctx, "zs_soft_cross_entropy", logits, NULL, "logits must be [B,C] with B, C >= 1");
    if (target->ndim != 2 || target->shape[0] != logits->shape[0] || target->shape[1] != logits->shape[1])
        return zs__shape_fail(ctx, "zs_soft_cross_entropy", logits, target, "target must have the logits' shape [B,C]");
    logits = zs__contig(ctx, logits);
    target = zs__contig(ctx, target);
    if (!logits || !target) return NULL;
    return zs__ce_forward(ctx, "zs_soft_cross_entropy", "soft_cross_entropy", zs__soft_ce_bwd, logits, target, NULL);
}

/* ==================================================================== */
/* [impl:optim] optimisers                                              */
/* ==================================================================== */
/* torch.optim semantics (1.13 single-tensor code paths), per parameter p
   with gradient g, learning rate lr of p's group, weight decay wd:

     SGD    d = g + wd p;  buf = d on p's first step, else momentum buf + d;
            p -= lr buf  (momentum 0: no buffer, p -= lr d). No dampening,
            no Nesterov.
     Adam   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
            p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
     AdamW  p *= 1 - lr wd;  then Adam without the L2 term.

   t counts the steps THIS parameter has taken (torch keeps state['step']
   per parameter), so a parameter that was frozen for a while resumes its
   own bias correction. Scalars (1-b1, bias corrections, lr*wd) are computed
   in double and rounded to float once, as torch's Python code does; the
   element updates run in float in torch's operation order. The AVX2 update
   uses the same IEEE operations (mul, add, div, sqrt, no FMA) in the same
   order as the scalar reference beside it.

   Frozen parameters (ZS_FLAG_FROZEN, checked at every step) are skipped:
   neither the parameter nor its state changes. Gradients are not zeroed.
   State for every parameter of the store lives in ONE allocation (with the
   optimiser itself), so freezing and unfreezing later works. */

struct zs_optim {
    zs_optim_params p;
    zs_params *params;
    void *user;
    int n_params, n_groups;
    int *group;        /* [n_params] */
    float *lr;         /* [n_groups] */
    int64_t *pstep;    /* [n_params] steps taken per parameter */
    size_t *off;       /* [n_params] element offset into the store */
    float *m, *v;      /* SGD: m = momentum buffer; Adam: first/second moments */
    int64_t steps;     /* zs_optim_step calls */
};

ZS__FN zs_optim_params zs_optim_default_params(zs_optim_kind kind) {
    zs_optim_params p;
    memset(&p, 0, sizeof p);
    p.kind = kind;
    p.lr = 1e-3f;
    p.momentum = 0.0f;
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.eps = 1e-8f;
    p.weight_decay = kind == ZS_OPTIM_ADAMW ? 1e-2f : 0.0f;
    return p;
}

/* -- element kernels (scalar reference + vector path, same op order) -- */

/* SGD. first: buf = d (torch clones d into a new buffer). buf NULL: no momentum. */
ZS__PRIV void zs__sgd_update_ref(float *p, const float *g, float *buf, int64_t n, float lr, float mom, float wd, int first) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * p[i];
        if (buf) {
            if (first) buf[i] = d;
            else buf[i] = buf[i] * mom + d;
            d = buf[i];
        }
        p[i] = p[i] + (-lr) * d;
    }
}

ZS__PRIV void zs__sgd_update(float *p, const float *g, float *buf, int64_t n, float lr, float mom, float wd, int first) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    {
        const __m256 vwd = _mm256_set1_ps(wd), vmom = _mm256_set1_ps(mom), vnlr = _mm256_set1_ps(-lr);
        for (; i + 8 <= n; i += 8) {
            __m256 vp = _mm256_loadu_ps(p + i), d = _mm256_loadu_ps(g + i);
            if (wd != 0.0f) d = _mm256_add_ps(d, _mm256_mul_ps(vwd, vp));
            if (buf) {
                if (!first) d = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(buf + i), vmom), d);
                _mm256_storeu_ps(buf + i, d);
            }
            _mm256_storeu_ps(p + i, _mm256_add_ps(vp, _mm256_mul_ps(vnlr, d)));
        }
    }
#endif
    zs__sgd_update_ref(p + i, g + i, buf ? buf + i : NULL, n - i, lr, mom, wd, first);
}

/* Adam / AdamW element update.
   decay: multiply p by it first (AdamW's 1 - lr wd; 1 for Adam: skipped)
   l2:    g += l2 p (Adam's weight decay; 0 for AdamW: skipped)
   c1 = 1-b1, c2 = 1-b2, step = lr / bias_correction1, bc2s = sqrt(bias_correction2) */
typedef struct zs__adam_k { float decay, l2, b1, c1, b2, c2, step, bc2s, eps; } zs__adam_k;

ZS__PRIV void zs__adam_update_ref(float *p, const float *g, float *m, float *v, int64_t n, const zs__adam_k *k) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float gi = g[i], pi = p[i], den;
        if (k->decay != 1.0f) pi = pi * k->decay;
        if (k->l2 != 0.0f) gi = gi + k->l2 * pi;
        m[i] = m[i] * k->b1 + k->c1 * gi;
        v[i] = v[i] * k->b2 + (k->c2 * gi) * gi;
        den = sqrtf(v[i]) / k->bc2s + k->eps;
        p[i] = pi + ((-k->step) * m[i]) / den;
    }
}

ZS__PRIV void zs__adam_update(float *p, const float *g, float *m, float *v, int64_t n, const zs__adam_k *k) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    {
        const __m256 decay = _mm256_set1_ps(k->decay), l2 = _mm256_set1_ps(k->l2);
        const __m256 b1 = _mm256_set1_ps(k->b1), c1 = _mm256_set1_ps(k->c1);
        const __m256 b2 = _mm256_set1_ps(k->b2), c2 = _mm256_set1_ps(k->c2);
        const __m256 nstep = _mm256_set1_ps(-k->step), bc2s = _mm256_set1_ps(k->bc2s), eps = _mm256_set1_ps(k->eps);
        const int do_decay = k->decay != 1.0f, do_l2 = k->l2 != 0.0f;
        for (; i + 8 <= n; i += 8) {
            __m256 vp = _mm256_loadu_ps(p + i), vg = _mm256_loadu_ps(g + i), vm, vv, den;
            if (do_decay) vp = _mm256_mul_ps(vp, decay);
            if (do_l2) vg = _mm256_add_ps(vg, _mm256_mul_ps(l2, vp));
            vm = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(c1, vg));
            vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(c2, vg), vg));
            _mm256_storeu_ps(m + i, vm);
            _mm256_storeu_ps(v + i, vv);
            den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2s), eps);
            _mm256_storeu_ps(p + i, _mm256_add_ps(vp, _mm256_div_ps(_mm256_mul_ps(nstep, vm), den)));
        }
    }
#endif
    zs__adam_update_ref(p + i, g + i, m + i, v + i, n - i, k);
}

/* -- life cycle -- */

ZS__PRIV size_t zs__optim_align_up(size_t x) { return (x + ZS__ALIGN - 1) & ~(size_t)(ZS__ALIGN - 1); }

ZS__FN zs_optim *zs_optim_create(const zs_optim_params *p, zs_params *params, const int *group) {
    zs_optim *o;
    size_t n, nbuf, o_group, o_lr, o_step, o_off, o_m, total, mom_bytes, off;
    int i, ng = 1;
    unsigned char *base;
    if (!p || !params) { zs__fail(ZS_ERR_ARG, "zs_optim_create: NULL %s", p ? "parameter store" : "params"); return NULL; }
    if (p->kind != ZS_OPTIM_SGD && p->kind != ZS_OPTIM_ADAM && p->kind != ZS_OPTIM_ADAMW) {
        zs__fail(ZS_ERR_ARG, "zs_optim_create: unknown kind %d", (int)p->kind);
        return NULL;
    }
    if (!(p->lr >= 0.0f) || !(p->weight_decay >= 0.0f) || !(p->momentum >= 0.0f) || !(p->eps >= 0.0f) ||
        !(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f)) {
        zs__fail(ZS_ERR_ARG, "zs_optim_create: bad hyper-parameters (lr %g, momentum %g, betas %g/%g, eps %g, weight decay %g)",
                 (double)p->lr, (double)p->momentum, (double)p->beta1, (double)p->beta2, (double)p->eps, (double)p->weight_decay);
        return NULL;
    }
    if (params->count > 0 && !params->data) {
        zs__fail(ZS_ERR_STATE, "zs_optim_create: parameter store not allocated (call zs_params_alloc)");
        return NULL;
    }
    for (i = 0; group && i < params->count; i++) {
        if (group[i] < 0) { zs__fail(ZS_ERR_ARG, "zs_optim_create: group[%d] = %d is negative", i, group[i]); return NULL; }
        if (group[i] + 1 > ng) ng = group[i] + 1;
    }
    n = params->numel;
    nbuf = p->kind == ZS_OPTIM_SGD ? (p->momentum != 0.0f ? 1 : 0) : 2;
    /* one block: header | group | lr | pstep | off | moments (64-byte aligned) */
    o_group = zs__optim_align_up(sizeof(zs_optim));
    o_lr = o_group + zs__optim_align_up((size_t)params->count * sizeof(int) + 1);
    o_step = o_lr + zs__optim_align_up((size_t)ng * sizeof(float));
    o_off = o_step + zs__optim_align_up((size_t)params->count * sizeof(int64_t) + 1);
    o_m = o_off + zs__optim_align_up((size_t)params->count * sizeof(size_t) + 1);
    if (!zs__mul_ok(n, nbuf * sizeof(float), &mom_bytes) || o_m + mom_bytes + ZS__ALIGN < o_m) {
        zs__fail(ZS_ERR_NOMEM, "zs_optim_create: size overflow");
        return NULL;
    }
    total = o_m + mom_bytes + ZS__ALIGN;
    base = (unsigned char *)zs__malloc(total, params->alloc_user);
    if (!base) { zs__fail(ZS_ERR_NOMEM, "zs_optim_create: cannot allocate %zu bytes", total); return NULL; }
    /* the header sits at the block start; everything else is aligned from
       an aligned origin inside the block */
    o = (zs_optim *)base;
    memset(o, 0, sizeof *o);
    {
        unsigned char *org = (unsigned char *)(((uintptr_t)base + ZS__ALIGN - 1) & ~(uintptr_t)(ZS__ALIGN - 1));
        o->group = (int *)(org + o_group);
        o->lr = (float *)(org + o_lr);
        o->pstep = (int64_t *)(org + o_step);
        o->off = (size_t *)(org + o_off);
        o->m = nbuf ? (float *)(org + o_m) : NULL;
        o->v = nbuf == 2 ? o->m + n : NULL;
        if (mom_bytes) memset(org + o_m, 0, mom_bytes);
    }
    o->p = *p;
    o->params = params;
    o->user = params->alloc_user;
    o->n_params = params->count;
    o->n_groups = ng;
    for (i = 0; i < ng; i++) o->lr[i] = p->lr;
    off = 0;
    for (i = 0; i < params->count; i++) {
        o->group[i] = group ? group[i] : 0;
        o->pstep[i] = 0;
        o->off[i] = off;
        off += (size_t)zs_numel(&params->t[i]);
    }
    return o;
}

ZS__FN void zs_optim_free(zs_optim *o) {
    if (o) zs__free(o, o->user);
}

ZS__FN int zs_optim_set_lr(zs_optim *o, int group, float lr) {
    int i;
    if (!o) return zs__fail(ZS_ERR_ARG, "zs_optim_set_lr: NULL optimiser");
    if (!(lr >= 0.0f)) return zs__fail(ZS_ERR_ARG, "zs_optim_set_lr: learning rate %g must be >= 0", (double)lr);
    if (group < -1 || group >= o->n_groups)
        return zs__fail(ZS_ERR_ARG, "zs_optim_set_lr: group %d outside [-1,%d)", group, o->n_groups);
    for (i = 0; i < o->n_groups; i++)
        if (group < 0 || i == group) o->lr[i] = lr;
    return ZS_OK;
}

/* The update of elements [lo, hi) of the flat store (global indices; every
   parameter's step count already advanced). Cuts inside a parameter fall on
   multiples of 64 elements from its start, so the vector blocks and the scalar
   tail are the same for every split: bit-identical results for any thread count. */
typedef struct zs__optim_job { zs_optim *o; int64_t total; } zs__optim_job;

ZS__PRIV void zs__optim_range(zs_optim *o, int64_t lo, int64_t hi) {
    zs_params *ps = o->params;
    int i;
    for (i = 0; i < o->n_params; i++) {
        zs_tensor *t = &ps->t[i];
        int64_t n = zs_numel(t), off = (int64_t)o->off[i], a, b, st = o->pstep[i];
        double lr = (double)o->lr[o->group[i]];
        float *pd;
        const float *g;
        if ((t->flags & ZS_FLAG_FROZEN) || n == 0 || off + n <= lo || off >= hi) continue;
        a = lo - off <= 0 ? 0 : (lo - off + 63) / 64 * 64;
        b = hi - off <= 0 ? 0 : (hi - off + 63) / 64 * 64;
        if (a > n) a = n;
        if (b > n) b = n;
        if (b <= a) continue;
        pd = ps->data + off + a;
        g = ps->grad + off + a;
        if (o->p.kind == ZS_OPTIM_SGD) {
            zs__sgd_update(pd, g, o->m ? o->m + off + a : NULL, b - a, (float)lr, o->p.momentum, o->p.weight_decay, st == 1);
        } else {
            zs__adam_k k;
            double b1 = o->p.beta1, b2 = o->p.beta2, wd = o->p.weight_decay;
            double bc1 = 1.0 - pow(b1, (double)st), bc2 = 1.0 - pow(b2, (double)st);
            if (o->p.kind == ZS_OPTIM_ADAMW) { k.decay = (float)(1.0 - lr * wd); k.l2 = 0.0f; }
            else { k.decay = 1.0f; k.l2 = (float)wd; }
            k.b1 = o->p.beta1; k.c1 = (float)(1.0 - b1);
            k.b2 = o->p.beta2; k.c2 = (float)(1.0 - b2);
            k.step = (float)(lr / bc1);
            k.bc2s = (float)sqrt(bc2);
            k.eps = o->p.eps;
            zs__adam_update(pd, g, o->m + off + a, o->v + off + a, b - a, &k);
        }
    }
}

ZS__PRIV void zs__optim_task(void *arg, int ith, int nth, zs__arena *ws) {
    zs__optim_job *j = (zs__optim_job *)arg;
    int64_t lo, hi;
    (void)ws;
    zs__split(j->total, ith, nth, &lo, &hi);
    zs__optim_range(j->o, lo, hi);
}

ZS__FN int zs_optim_step_ctx(zs_optim *o, zs_ctx *ctx) {
    zs_params *ps;
    zs__optim_job j;
    int i;
    if (!o) return zs__fail(ZS_ERR_ARG, "zs_optim_step: NULL optimiser");
    ps = o->params;
    if (ps->count != o->n_params || (o->n_params > 0 && !ps->data))
        return zs__fail(ZS_ERR_STATE, "zs_optim_step: the parameter store changed since zs_optim_create");
    for (i = 0; i < o->n_params; i++)
        if (!(ps->t[i].flags & ZS_FLAG_FROZEN)) ++o->pstep[i];
    j.o = o;
    j.total = (int64_t)ps->numel;
    /* a memory-bound pass (28 bytes per parameter): worth a second thread only when large */
    if (ctx && ctx->pool.nth > 1 && j.total >= ((int64_t)1 << 18)) zs__pool_run(&ctx->pool, zs__optim_task, &j);
    else zs__optim_range(o, 0, j.total);
    o->steps++;
    return ZS_OK;
}

ZS__FN int zs_optim_step(zs_optim *o) { return zs_optim_step_ctx(o, NULL); }

ZS__FN int64_t zs_optim_steps(const zs_optim *o) { return o ? o->steps : 0; }

ZS__FN int zs_optim_save(const zs_optim *o, const char *path) {
    zs_st_entry e[3];
    int64_t sn[1], sc[1];
    int32_t *ps;
    char steps[32], kind[8], numel[32];
    const char *meta[7];
    int i, ne = 0, r;
    if (!o || !path) return zs__fail(ZS_ERR_ARG, "zs_optim_save: NULL argument");
    ps = (int32_t *)zs__malloc(sizeof(int32_t) * (size_t)(o->n_params + 1), NULL);
    if (!ps) return zs__fail(ZS_ERR_NOMEM, "zs_optim_save: out of memory");
    for (i = 0; i < o->n_params; i++) ps[i] = (int32_t)(o->pstep[i] > 0x7fffffff ? 0x7fffffff : o->pstep[i]);
    sn[0] = (int64_t)o->params->numel;
    sc[0] = o->n_params;
    e[ne].name = "pstep"; e[ne].type = ZS_I32; e[ne].ndim = 1; e[ne].shape = sc; e[ne].data = ps; ne++;
    if (o->m) { e[ne].name = "m"; e[ne].type = ZS_F32; e[ne].ndim = 1; e[ne].shape = sn; e[ne].data = o->m; ne++; }
    if (o->v) { e[ne].name = "v"; e[ne].type = ZS_F32; e[ne].ndim = 1; e[ne].shape = sn; e[ne].data = o->v; ne++; }
    snprintf(steps, sizeof steps, "%lld", (long long)o->steps);
    snprintf(kind, sizeof kind, "%d", (int)o->p.kind);
    snprintf(numel, sizeof numel, "%llu", (unsigned long long)o->params->numel);
    meta[0] = "optim.steps"; meta[1] = steps; meta[2] = "optim.kind"; meta[3] = kind;
    meta[4] = "optim.numel"; meta[5] = numel; meta[6] = NULL;
    r = zs_st_save(path, e, ne, meta);
    zs__free(ps, NULL);
    return r;
}

ZS__FN int zs_optim_load(zs_optim *o, const char *path) {
    zs_safetensors *st;
    const zs_st_info *t;
    const char *kind, *steps;
    int32_t *ps = NULL;
    int i, r = ZS_OK;
    if (!o || !path) return zs__fail(ZS_ERR_ARG, "zs_optim_load: NULL argument");
    if (!(st = zs_st_open(path))) return ZS_ERR_FORMAT;
    kind = zs_st_metadata(st, "optim.kind");
    steps = zs_st_metadata(st, "optim.steps");
    if (!kind || !steps || atoi(kind) != (int)o->p.kind) {
        r = zs__fail(ZS_ERR_FORMAT, "zs_optim_load(%.200s): not the state of this optimiser kind (%s vs %d)", path, kind ? kind : "none", (int)o->p.kind);
        goto done;
    }
    t = zs_st_find(st, "pstep");
    if (!t || t->type != ZS_I32 || t->ndim != 1 || t->shape[0] != o->n_params) {
        r = zs__fail(ZS_ERR_FORMAT, "zs_optim_load(%.200s): pstep missing or not I32 [%d] (different model?)", path, o->n_params);
        goto done;
    }
    if (!(ps = (int32_t *)zs__malloc(sizeof(int32_t) * (size_t)(o->n_params + 1), NULL))) { r = zs__fail(ZS_ERR_NOMEM, "zs_optim_load: out of memory"); goto done; }
    if ((r = zs_st_read(st, t, ps, ZS_I32, (size_t)o->n_params)) != 0) goto done;
    for (i = 0; i < 2; i++) {
        float *buf = i ? o->v : o->m;
        if (!buf) continue;
        t = zs_st_find(st, i ? "v" : "m");
        if (!t || t->ndim != 1 || (uint64_t)t->shape[0] != (uint64_t)o->params->numel) {
            r = zs__fail(ZS_ERR_FORMAT, "zs_optim_load(%.200s): moment '%s' missing or not [%zu]", path, i ? "v" : "m", o->params->numel);
            goto done;
        }
        if ((r = zs_st_read(st, t, buf, ZS_F32, o->params->numel)) != 0) goto done;
    }
    for (i = 0; i < o->n_params; i++) o->pstep[i] = ps[i] < 0 ? 0 : ps[i];
    o->steps = strtoll(steps, NULL, 10);
    if (o->steps < 0) o->steps = 0;
done:
    zs__free(ps, NULL);
    zs_st_close(st);
    return r;
}

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

/* A cursor over header text, shared by the JSON reader and the .npy header
   (Python literal) reader; kind names the header in messages. */
typedef struct zs__json {
    char *s;
    size_t n, p;
    const char *who;
    const char *kind;
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
    return zs__fail(ZS_ERR_FORMAT, "%s: %s byte %zu: %s", j->who, j->kind, j->p, msg);
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
    void *owned;          /* whole-file buffer freed on close (converted inputs) */
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
    j.kind = "JSON header";
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
    zs__free(st->owned, NULL);
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

/* Takes ownership of buf (a whole safetensors file from zs__malloc), also on
   failure; for readers that convert other formats (e.g. .pth) in memory. */
ZS__PRIV zs_safetensors *zs__st_open_owned(void *buf, size_t n, const char *label) {
    zs_safetensors *st = zs__st_new("zs_st_open", label);
    if (!st) { zs__free(buf, NULL); return NULL; }
    st->owned = buf;
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

/* a short Python string literal ('...' or "...", no escapes) into out */
ZS__PRIV int zs__pystr(zs__json *y, char *out, size_t cap) {
    int q = zs__jpeek(y), c;
    size_t k = 0;
    if (q != '\'' && q != '"') return zs__jfail(y, "expected a string");
    y->p++;
    for (;;) {
        c = zs__jpeek(y);
        if (c < 0) return zs__jfail(y, "unterminated string");
        if (c == q) { y->p++; break; }
        if (c == '\\') return zs__jfail(y, "escapes in strings are not supported");
        if (c < 0x20 || c >= 0x7f) return zs__jfail(y, "unexpected byte 0x%02x in a string", c);
        if (k + 1 >= cap) return zs__jfail(y, "string too long");
        out[k++] = (char)c;
        y->p++;
    }
    out[k] = 0;
    return ZS_OK;
}

ZS__PRIV int zs__npy_parse(zs__json *y, int *ndim, int64_t *shape) {
    int got_descr = 0, got_fortran = 0, got_shape = 0, c, r;
    char key[32], descr[32];
    zs__jws(y);
    if (zs__jpeek(y) != '{') return zs__jfail(y, "header is not a dict");
    y->p++;
    for (;;) {
        zs__jws(y);
        if (zs__jpeek(y) == '}') { y->p++; break; }
        if ((r = zs__pystr(y, key, sizeof key)) != 0) return r;
        zs__jws(y);
        if (zs__jpeek(y) != ':') return zs__jfail(y, "expected ':' after '%s'", key);
        y->p++;
        zs__jws(y);
        if (!strcmp(key, "descr")) {
            if (got_descr++) return zs__jfail(y, "duplicate key 'descr'");
            if (zs__jpeek(y) == '[') return zs__jfail(y, "structured dtype not supported (only '<f4')");
            if ((r = zs__pystr(y, descr, sizeof descr)) != 0) return r;
            if (strcmp(descr, "<f4") != 0) {
                if (!strcmp(descr, ">f4")) return zs__jfail(y, "big-endian float32 ('>f4') not supported (only '<f4')");
                if (descr[0] && descr[1] == 'O') return zs__jfail(y, "object arrays ('%s') not supported (only '<f4')", descr);
                return zs__jfail(y, "dtype '%s' not supported (only '<f4' float32)", descr);
            }
        } else if (!strcmp(key, "fortran_order")) {
            if (got_fortran++) return zs__jfail(y, "duplicate key 'fortran_order'");
            if (y->n - y->p >= 4 && !memcmp(y->s + y->p, "True", 4)) return zs__jfail(y, "Fortran-order arrays not supported");
            if (y->n - y->p < 5 || memcmp(y->s + y->p, "False", 5)) return zs__jfail(y, "fortran_order must be True or False");
            y->p += 5;
        } else if (!strcmp(key, "shape")) {
            int commas = 0;
            if (got_shape++) return zs__jfail(y, "duplicate key 'shape'");
            if (zs__jpeek(y) != '(') return zs__jfail(y, "shape is not a tuple");
            y->p++;
            *ndim = 0;
            for (;;) {
                uint64_t d = 0;
                zs__jws(y);
                c = zs__jpeek(y);
                if (c == ')') { y->p++; break; }
                if (c < '0' || c > '9') return zs__jfail(y, "shape entry is not a non-negative integer");
                if (*ndim == ZS_ST_MAX_DIMS) return zs__jfail(y, "more than %d dimensions", ZS_ST_MAX_DIMS);
                if (c == '0' && y->p + 1 < y->n && y->s[y->p + 1] >= '0' && y->s[y->p + 1] <= '9')
                    return zs__jfail(y, "shape entry has a leading zero");
                while ((c = zs__jpeek(y)) >= '0' && c <= '9') {
                    if (d > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10) return zs__jfail(y, "dimension too large");
                    d = d * 10 + (uint64_t)(c - '0');
                    y->p++;
                }
                if (c == 'L') y->p++; /* Python 2 long suffix */
                shape[(*ndim)++] = (int64_t)d;
                zs__jws(y);
                c = zs__jpeek(y);
                if (c == ',') { y->p++; commas++; continue; }
                if (c != ')') return zs__jfail(y, "expected ',' or ')' in shape");
            }
            if (*ndim == 1 && !commas) return zs__jfail(y, "shape (n) is not a tuple: expected (n,)");
        } else {
            return zs__jfail(y, "unexpected key '%s'", key);
        }
        zs__jws(y);
        c = zs__jpeek(y);
        if (c == ',') { y->p++; continue; }
        if (c == '}') { y->p++; break; }
        return zs__jfail(y, "expected ',' or '}'");
    }
    zs__jws(y);
    if (y->p != y->n) return zs__jfail(y, "unexpected characters after the dict");
    if (!got_descr || !got_fortran || !got_shape)
        return zs__jfail(y, "missing key '%s'", !got_descr ? "descr" : !got_fortran ? "fortran_order" : "shape");
    return ZS_OK;
}

ZS__PRIV int zs__npy_read(zs__src *s, int *ndim, int64_t *shape, float **data) {
    unsigned char pre[12];
    char *hdr = NULL;
    size_t pre_n, hlen;
    uint64_t numel = 1, nbytes, avail;
    int r, i, nd = 0;
    int64_t sh[ZS_ST_MAX_DIMS];
    zs__json y;
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
    y.kind = "header";
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


#ifndef ZS_DEV_PTH_IMPL
/* ==================================================================== */
/* [impl:pth] zip reader, restricted unpickler, safetensors image       */
/* ==================================================================== */

#define ZS__PTH_MAX_CDIR (64u << 20) /* bytes of the zip central directory */
#define ZS__PTH_PATH 1024           /* longest flattened name + 1 */

ZS__PRIV uint32_t zs__pth_u16(const unsigned char *b) { return (uint32_t)b[0] | ((uint32_t)b[1] << 8); }
ZS__PRIV uint32_t zs__pth_u32(const unsigned char *b) { return zs__pth_u16(b) | (zs__pth_u16(b + 2) << 16); }

ZS__PRIV uint32_t zs__pth_crc32(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n--) {
        int k;
        crc ^= *p++;
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ---- zip ------------------------------------------------------------------
   torch.save (PyTorch 1.6 .. 1.13 at least) writes through miniz with every
   record STORED: caffe2/serialize/inline_container.h says "All files are
   stored uncompressed", and the Python binding used by torch.save
   (PyTorchFileWriter.write_record(name, data, size)) has no compress flag.
   Data is 64-byte aligned by an "FB" padding extra field, local headers carry
   a data descriptor (flag bit 3, zero CRC/sizes), the end records are ZIP64. */

typedef struct zs__zent {
    const char *name;     /* into the central directory copy; not NUL-terminated */
    uint32_t nlen, crc;
    int method;           /* 0 stored, 8 deflate, ... */
    uint64_t size, data;  /* bytes in the file (compressed size), absolute offset */
} zs__zent;

typedef struct zs__zip {
    zs__src *src;
    const char *who;
    char *cd;             /* central directory */
    zs__zent *e;          /* sorted by name */
    int n;
    char prefix[256];     /* "<archive>/" from the first entry */
    size_t plen;
} zs__zip;

ZS__PRIV int zs__zent_cmp(const void *a, const void *b) {
    const zs__zent *x = (const zs__zent *)a, *y = (const zs__zent *)b;
    int c = memcmp(x->name, y->name, x->nlen < y->nlen ? x->nlen : y->nlen);
    return c ? c : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

/* index of "<archive>/" + rel (rel of length rlen), or -1 */
ZS__PRIV int zs__zip_find(const zs__zip *z, const char *rel, size_t rlen) {
    char key[512];
    zs__zent k;
    int lo = 0, hi = z->n - 1;
    if (rlen > sizeof key - z->plen) return -1;
    memcpy(key, z->prefix, z->plen);
    memcpy(key + z->plen, rel, rlen);
    k.name = key;
    k.nlen = (uint32_t)(z->plen + rlen);
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = zs__zent_cmp(&z->e[mid], &k);
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

ZS__PRIV int zs__zip_stored(const zs__zip *z, int i) {
    const zs__zent *e = &z->e[i];
    if (e->method == 0) return ZS_OK;
    return zs__fail(ZS_ERR_UNSUPPORTED, "%s: entry '%.*s' is %s-compressed; torch.save stores entries uncompressed, so "
                    "the archive was re-packed (re-zip it with 'zip -0')", z->who, (int)(e->nlen > 200 ? 200 : e->nlen),
                    e->name, e->method == 8 ? "deflate" : "otherwise");
}

/* Reads a whole small entry (<= cap bytes) into a NUL-terminated buffer and checks its CRC. */
ZS__PRIV int zs__zip_load(const zs__zip *z, int i, uint64_t cap, unsigned char **out) {
    const zs__zent *e = &z->e[i];
    unsigned char *b;
    int r;
    *out = NULL;
    if ((r = zs__zip_stored(z, i)) != 0) return r;
    if (e->size > cap)
        return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s' has %llu bytes (limit %llu)", z->who, (int)e->nlen, e->name,
                        (unsigned long long)e->size, (unsigned long long)cap);
    b = (unsigned char *)zs__malloc((size_t)e->size + 1, NULL);
    if (!b) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory (%llu bytes)", z->who, (unsigned long long)e->size);
    if ((r = zs__src_read(z->src, e->data, b, (size_t)e->size)) != 0) { zs__free(b, NULL); return r; }
    if (zs__pth_crc32(0, b, (size_t)e->size) != e->crc) {
        zs__free(b, NULL);
        return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s' fails its CRC-32 check (corrupt file)", z->who, (int)e->nlen, e->name);
    }
    b[e->size] = 0;
    *out = b;
    return ZS_OK;
}

/* One central-directory entry at cd[off]: fills e, advances *off, checks its local header. */
ZS__PRIV int zs__zip_entry(zs__zip *z, uint64_t *off, uint64_t cd_size, uint64_t cd_off, zs__zent *e) {
    const unsigned char *c = (const unsigned char *)z->cd + *off, *x, *xe;
    unsigned char lh[30], nb[256];
    uint64_t csize, usize, lho, done;
    uint32_t flags, nlen, xlen, clen, disk, lflags, lcrc, lcs, lus;
    if (cd_size - *off < 46 || zs__pth_u32(c) != 0x02014b50u)
        return zs__fail(ZS_ERR_FORMAT, "%s: corrupt central directory at byte %llu", z->who, (unsigned long long)(cd_off + *off));
    flags = zs__pth_u16(c + 8);
    e->method = (int)zs__pth_u16(c + 10);
    e->crc = zs__pth_u32(c + 16);
    csize = zs__pth_u32(c + 20);
    usize = zs__pth_u32(c + 24);
    nlen = zs__pth_u16(c + 28);
    xlen = zs__pth_u16(c + 30);
    clen = zs__pth_u16(c + 32);
    disk = zs__pth_u16(c + 34);
    lho = zs__pth_u32(c + 42);
    if (cd_size - *off - 46 < (uint64_t)nlen + xlen + clen)
        return zs__fail(ZS_ERR_FORMAT, "%s: central directory entry at byte %llu runs past its end", z->who,
                        (unsigned long long)(cd_off + *off));
    e->name = (const char *)c + 46;
    e->nlen = nlen;
    for (x = c + 46 + nlen, xe = x + xlen; xe - x >= 4; x += 4 + zs__pth_u16(x + 2)) {
        const unsigned char *q = x + 4, *qe;
        if ((size_t)(xe - q) < zs__pth_u16(x + 2)) return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s': corrupt extra field", z->who, (int)nlen, e->name);
        qe = q + zs__pth_u16(x + 2);
        if (zs__pth_u16(x) != 1) continue;
        /* ZIP64: only the saturated fields, in this order */
#define ZS__Z64(f, w) if (f == (w == 8 ? 0xffffffffu : 0xffffu)) { \
            if (qe - q < w) return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s': short ZIP64 extra field", z->who, (int)nlen, e->name); \
            f = w == 8 ? zs__le64(q) : zs__pth_u32(q); q += w; }
        ZS__Z64(usize, 8) ZS__Z64(csize, 8) ZS__Z64(lho, 8) ZS__Z64(disk, 4)
#undef ZS__Z64
    }
    *off += 46 + (uint64_t)nlen + xlen + clen;
    if (!nlen) return zs__fail(ZS_ERR_FORMAT, "%s: an entry has an empty name", z->who);
    if (flags & 1) return zs__fail(ZS_ERR_UNSUPPORTED, "%s: entry '%.*s' is encrypted", z->who, (int)nlen, e->name);
    if (disk) return zs__fail(ZS_ERR_UNSUPPORTED, "%s: multi-disk archives are not supported", z->who);
    if (e->method == 0 && csize != usize)
        return zs__fail(ZS_ERR_FORMAT, "%s: stored entry '%.*s' has sizes %llu and %llu", z->who, (int)nlen, e->name,
                        (unsigned long long)csize, (unsigned long long)usize);
    /* the local header must agree with the central directory */
    if (lho > cd_off || cd_off - lho < 30)
        return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s': local header offset %llu outside the archive", z->who, (int)nlen,
                        e->name, (unsigned long long)lho);
    if (zs__src_read(z->src, lho, lh, 30)) return ZS_ERR_FORMAT;
    lflags = zs__pth_u16(lh + 6);
    lcrc = zs__pth_u32(lh + 14);
    lcs = zs__pth_u32(lh + 18);
    lus = zs__pth_u32(lh + 22);
    if (zs__pth_u32(lh) != 0x04034b50u || (int)zs__pth_u16(lh + 8) != e->method || zs__pth_u16(lh + 26) != nlen ||
        ((lcrc || !(lflags & 8)) && lcrc != e->crc) ||
        (lcs != 0xffffffffu && (lcs || !(lflags & 8)) && (lcs != csize || lus != usize)))
        return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s': local header disagrees with the central directory", z->who,
                        (int)nlen, e->name);
    for (done = 0; done < nlen;) { /* same name, in chunks */
        size_t k = nlen - done < sizeof nb ? (size_t)(nlen - done) : sizeof nb;
        if (zs__src_read(z->src, lho + 30 + done, nb, k)) return ZS_ERR_FORMAT;
        if (memcmp(nb, e->name + done, k))
            return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s': local header holds another name", z->who, (int)nlen, e->name);
        done += k;
    }
    e->data = lho + 30 + nlen + zs__pth_u16(lh + 28);
    e->size = csize;
    if (e->data > cd_off || csize > cd_off - e->data)
        return zs__fail(ZS_ERR_FORMAT, "%s: entry '%.*s' (%llu bytes at %llu) runs into the central directory at %llu",
                        z->who, (int)nlen, e->name, (unsigned long long)csize, (unsigned long long)e->data,
                        (unsigned long long)cd_off);
    return ZS_OK;
}

ZS__PRIV int zs__zip_open(zs__zip *z) {
    uint64_t size = z->src->size, tn, pos, cd_off, cd_size, n_ent, n_disk, limit, off = 0;
    uint32_t disk, cd_disk;
    unsigned char *tail, *e, loc[20], rec[56];
    size_t k;
    int found = 0, r, i;
    const char *slash;
    if (size < 22) return zs__fail(ZS_ERR_FORMAT, "%s: %llu bytes, too short for a zip archive", z->who, (unsigned long long)size);
    tn = size < 65535 + 22 ? size : 65535 + 22; /* the end record and its comment */
    tail = (unsigned char *)zs__malloc((size_t)tn, NULL);
    if (!tail) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", z->who);
    if ((r = zs__src_read(z->src, size - tn, tail, (size_t)tn)) != 0) { zs__free(tail, NULL); return r; }
    for (k = (size_t)tn - 22 + 1; k-- > 0;)
        if (!memcmp(tail + k, "PK\5\6", 4) && k + 22 + zs__pth_u16(tail + k + 20) <= tn) { found = 1; break; }
    if (!found) {
        zs__free(tail, NULL);
        return zs__fail(ZS_ERR_FORMAT, "%s: no zip end-of-central-directory record (truncated file?)", z->who);
    }
    e = tail + k;
    pos = size - tn + k;
    disk = zs__pth_u16(e + 4);
    cd_disk = zs__pth_u16(e + 6);
    n_disk = zs__pth_u16(e + 8);
    n_ent = zs__pth_u16(e + 10);
    cd_size = zs__pth_u32(e + 12);
    cd_off = zs__pth_u32(e + 16);
    zs__free(tail, NULL);
    limit = pos;
    if (pos >= 20 && !zs__src_read(z->src, pos - 20, loc, 20) && !memcmp(loc, "PK\6\7", 4)) {
        uint64_t z64 = zs__le64(loc + 8);
        if (zs__pth_u32(loc + 4) || zs__pth_u32(loc + 16) > 1)
            return zs__fail(ZS_ERR_UNSUPPORTED, "%s: multi-disk archives are not supported", z->who);
        if (z64 > pos - 20 || pos - 20 - z64 < 56 || zs__src_read(z->src, z64, rec, 56) || memcmp(rec, "PK\6\6", 4))
            return zs__fail(ZS_ERR_FORMAT, "%s: ZIP64 end record missing or misplaced (offset %llu)", z->who, (unsigned long long)z64);
        disk = zs__pth_u32(rec + 16);
        cd_disk = zs__pth_u32(rec + 20);
        n_disk = zs__le64(rec + 24);
        n_ent = zs__le64(rec + 32);
        cd_size = zs__le64(rec + 40);
        cd_off = zs__le64(rec + 48);
        limit = z64;
    } else if (n_ent == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        return zs__fail(ZS_ERR_FORMAT, "%s: saturated zip end record without a ZIP64 end record", z->who);
    }
    if (disk || cd_disk || n_disk != n_ent) return zs__fail(ZS_ERR_UNSUPPORTED, "%s: multi-disk archives are not supported", z->who);
    if (cd_off > limit || cd_size > limit - cd_off)
        return zs__fail(ZS_ERR_FORMAT, "%s: central directory (%llu bytes at %llu) outside the archive (%llu bytes)", z->who,
                        (unsigned long long)cd_size, (unsigned long long)cd_off, (unsigned long long)size);
    if (cd_size > ZS__PTH_MAX_CDIR)
        return zs__fail(ZS_ERR_UNSUPPORTED, "%s: central directory of %llu bytes exceeds the %u-byte limit", z->who,
                        (unsigned long long)cd_size, ZS__PTH_MAX_CDIR);
    if (!n_ent || n_ent > cd_size / 46)
        return zs__fail(ZS_ERR_FORMAT, "%s: %llu entries do not fit a %llu-byte central directory", z->who,
                        (unsigned long long)n_ent, (unsigned long long)cd_size);
    z->cd = (char *)zs__malloc((size_t)cd_size, NULL);
    z->e = (zs__zent *)zs__malloc((size_t)n_ent * sizeof(zs__zent), NULL);
    if (!z->cd || !z->e) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", z->who);
    if ((r = zs__src_read(z->src, cd_off, z->cd, (size_t)cd_size)) != 0) return r;
    for (i = 0; (uint64_t)i < n_ent; i++)
        if ((r = zs__zip_entry(z, &off, cd_size, cd_off, &z->e[i])) != 0) return r;
    z->n = (int)n_ent;
    /* the archive folder is the first entry's (as PyTorchStreamReader) */
    slash = (const char *)memchr(z->e[0].name, '/', z->e[0].nlen);
    if (!slash || (size_t)(slash - z->e[0].name) + 1 >= sizeof z->prefix)
        return zs__fail(ZS_ERR_FORMAT, "%s: first entry '%.*s' is not in a folder: not a torch.save archive", z->who,
                        (int)(z->e[0].nlen > 200 ? 200 : z->e[0].nlen), z->e[0].name);
    z->plen = (size_t)(slash - z->e[0].name) + 1;
    memcpy(z->prefix, z->e[0].name, z->plen);
    qsort(z->e, (size_t)z->n, sizeof(zs__zent), zs__zent_cmp);
    for (i = 1; i < z->n; i++)
        if (!zs__zent_cmp(&z->e[i - 1], &z->e[i]))
            return zs__fail(ZS_ERR_FORMAT, "%s: duplicate entry '%.*s'", z->who, (int)z->e[i].nlen, z->e[i].name);
    return ZS_OK;
}

/* ---- restricted unpickler ------------------------------------------------ */

enum { ZS__PK_NONE, ZS__PK_BOOL, ZS__PK_INT, ZS__PK_FLOAT, ZS__PK_STR, ZS__PK_BYTES, ZS__PK_TUPLE, ZS__PK_LIST,
       ZS__PK_DICT, ZS__PK_GLOBAL, ZS__PK_STORAGE, ZS__PK_TENSOR, ZS__PK_NPDTYPE };
static const char *const zs__pk_names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple", "list",
                                           "dict", "global", "storage", "tensor", "numpy dtype"};

/* whitelisted callables */
enum { ZS__G_ODICT, ZS__G_TENSOR_V2, ZS__G_TENSOR, ZS__G_PARAM, ZS__G_PARAM_STATE, ZS__G_STORAGE, ZS__G_NPSCALAR,
       ZS__G_NPDTYPE, ZS__G_ENCODE };
typedef struct zs__pglob { const char *mod, *name; int kind; } zs__pglob;
static const zs__pglob zs__pglobs[] = {
    {"collections", "OrderedDict", ZS__G_ODICT}, {"torch._utils", "_rebuild_tensor_v2", ZS__G_TENSOR_V2},
    {"torch._utils", "_rebuild_tensor", ZS__G_TENSOR}, {"torch._utils", "_rebuild_parameter", ZS__G_PARAM},
    {"torch._utils", "_rebuild_parameter_with_state", ZS__G_PARAM_STATE},
    {"numpy.core.multiarray", "scalar", ZS__G_NPSCALAR}, {"numpy._core.multiarray", "scalar", ZS__G_NPSCALAR},
    {"numpy", "dtype", ZS__G_NPDTYPE}, {"_codecs", "encode", ZS__G_ENCODE}};

/* torch.<X>Storage -> safetensors dtype; F64 is narrowed to F32 */
typedef struct zs__pdtype { const char *storage, *st; unsigned in, out; } zs__pdtype;
static const zs__pdtype zs__pdtypes[] = {
    {"FloatStorage", "F32", 4, 4}, {"HalfStorage", "F16", 2, 2}, {"BFloat16Storage", "BF16", 2, 2},
    {"DoubleStorage", "F32", 8, 4}, {"LongStorage", "I64", 8, 8}, {"IntStorage", "I32", 4, 4},
    {"ShortStorage", "I16", 2, 2}, {"CharStorage", "I8", 1, 1}, {"ByteStorage", "U8", 1, 1}, {"BoolStorage", "BOOL", 1, 1}};

typedef struct zs__pv {   /* a pickle value */
    unsigned char kind, sub;  /* sub: GLOBAL kind; BYTES held inline; NPDTYPE kind letter */
    uint32_t len;             /* STR/BYTES bytes, container items, NPDTYPE item size */
    int32_t head, tail;       /* container items (cells), -1 if none */
    union { int64_t i; double f; uint64_t off; unsigned char b[8]; } u; /* STR/BYTES: offset in data.pkl */
} zs__pv;
typedef struct zs__pcell { int32_t k, v, next; } zs__pcell;   /* k: dict key, else -1 */
typedef struct zs__pstor { int ent, dt; uint64_t numel; } zs__pstor;
typedef struct zs__pten { int stor, ndim; int64_t off, shape[ZS_ST_MAX_DIMS], stride[ZS_ST_MAX_DIMS]; } zs__pten;

typedef struct zs__pvm {
    const char *who;
    zs__zip *zip;
    const unsigned char *p;   /* data.pkl */
    size_t n, pc;
    zs__pv *v; int nv, cv;
    zs__pcell *c; int nc, cc;
    int32_t *stk; int ns, cs;
    int32_t *marks; int nm, cm;
    int32_t *memo; int nmemo, cmemo;
    zs__pstor *st; int nst, cst;
    zs__pten *t; int nt, ct;
    int32_t *ent_stor;        /* zip entry -> storage, -1 */
} zs__pvm;

#define ZS__PTH_GROW(ptr, cap, need, T) \
    do { void *a_ = (ptr); int r_ = zs__grow(&a_, &(cap), (need), sizeof(T)); (ptr) = (T *)a_; if (r_) return r_; } while (0)

ZS__PRIV int zs__pfail(const zs__pvm *m, const char *what) {
    return zs__fail(ZS_ERR_FORMAT, "%s: data.pkl byte %zu: %s", m->who, m->pc, what);
}

ZS__PRIV int zs__pnew(zs__pvm *m, int kind, int32_t *out) {
    zs__pv *x;
    if (m->nv + m->nc >= ZS_PTH_MAX_OBJECTS) return zs__pfail(m, "more than ZS_PTH_MAX_OBJECTS objects");
    ZS__PTH_GROW(m->v, m->cv, m->nv + 1, zs__pv);
    x = &m->v[m->nv];
    memset(x, 0, sizeof *x);
    x->kind = (unsigned char)kind;
    x->head = x->tail = -1;
    *out = m->nv++;
    return ZS_OK;
}

ZS__PRIV int zs__ppush(zs__pvm *m, int32_t id) {
    if (m->ns >= ZS_PTH_MAX_STACK) return zs__pfail(m, "stack deeper than ZS_PTH_MAX_STACK");
    ZS__PTH_GROW(m->stk, m->cs, m->ns + 1, int32_t);
    m->stk[m->ns++] = id;
    return ZS_OK;
}

/* new value of kind pushed; *out (may be NULL) receives it */
ZS__PRIV int zs__ppush_new(zs__pvm *m, int kind, zs__pv **out) {
    int32_t id = -1;
    int r = zs__pnew(m, kind, &id);
    if (!r) r = zs__ppush(m, id);
    if (out) *out = r ? NULL : &m->v[id];
    return r;
}

ZS__PRIV int zs__ppop(zs__pvm *m, int32_t *id) {
    if (m->ns <= (m->nm ? m->marks[m->nm - 1] : 0)) return zs__pfail(m, "stack underflow");
    *id = m->stk[--m->ns];
    return ZS_OK;
}

ZS__PRIV int zs__ppop_mark(zs__pvm *m, int *base) {
    if (!m->nm) return zs__pfail(m, "no MARK to pop");
    *base = m->marks[--m->nm];
    return ZS_OK;
}

ZS__PRIV int zs__pcell_add(zs__pvm *m, int32_t cont, int32_t k, int32_t v) {
    zs__pv *x;
    if (m->nv + m->nc >= ZS_PTH_MAX_OBJECTS) return zs__pfail(m, "more than ZS_PTH_MAX_OBJECTS objects");
    ZS__PTH_GROW(m->c, m->cc, m->nc + 1, zs__pcell);
    m->c[m->nc].k = k;
    m->c[m->nc].v = v;
    m->c[m->nc].next = -1;
    x = &m->v[cont];
    if (x->tail < 0) x->head = m->nc;
    else m->c[x->tail].next = m->nc;
    x->tail = m->nc++;
    x->len++;
    return ZS_OK;
}

/* up to max items of a tuple into a[]; -1 if it has more */
ZS__PRIV int zs__pitems(const zs__pvm *m, int32_t tup, int32_t *a, int max) {
    int32_t c;
    int n = 0;
    for (c = m->v[tup].head; c >= 0; c = m->c[c].next) {
        if (n == max) return -1;
        a[n++] = m->c[c].v;
    }
    return n;
}

ZS__PRIV const char *zs__pstr(const zs__pvm *m, int32_t id) { return (const char *)m->p + m->v[id].u.off; }
ZS__PRIV int zs__pstr_is(const zs__pvm *m, int32_t id, const char *s) {
    return m->v[id].kind == ZS__PK_STR && m->v[id].len == strlen(s) && !memcmp(zs__pstr(m, id), s, m->v[id].len);
}

ZS__PRIV int zs__pglobal(zs__pvm *m, const char *mod, size_t ml, const char *name, size_t nl) {
    size_t i;
    zs__pv *x;
    int r;
    for (i = 0; i < sizeof zs__pglobs / sizeof zs__pglobs[0]; i++)
        if (strlen(zs__pglobs[i].mod) == ml && !memcmp(zs__pglobs[i].mod, mod, ml) &&
            strlen(zs__pglobs[i].name) == nl && !memcmp(zs__pglobs[i].name, name, nl)) {
            if ((r = zs__ppush_new(m, ZS__PK_GLOBAL, &x)) != 0) return r;
            x->sub = (unsigned char)zs__pglobs[i].kind;
            return ZS_OK;
        }
    for (i = 0; ml == 5 && !memcmp(mod, "torch", 5) && i < sizeof zs__pdtypes / sizeof zs__pdtypes[0]; i++)
        if (strlen(zs__pdtypes[i].storage) == nl && !memcmp(zs__pdtypes[i].storage, name, nl)) {
            if ((r = zs__ppush_new(m, ZS__PK_GLOBAL, &x)) != 0) return r;
            x->sub = ZS__G_STORAGE;
            x->u.i = (int64_t)i;
            return ZS_OK;
        }
    return zs__fail(ZS_ERR_FORMAT, "%s: data.pkl byte %zu: global '%.*s.%.*s' is not allowed (only tensors, storages, "
                    "OrderedDict and numpy scalars can be loaded)", m->who, m->pc, (int)(ml > 100 ? 100 : ml), mod,
                    (int)(nl > 100 ? 100 : nl), name);
}

/* BINPERSID ('storage', torch.XStorage, key, location, numel) -> storage value */
ZS__PRIV int zs__pstorage(zs__pvm *m, int32_t pid) {
    int32_t a[5];
    zs__pv *x;
    const zs__pdtype *dt;
    char rel[300];
    int ent, r, s;
    uint64_t bytes;
    if (m->v[pid].kind != ZS__PK_TUPLE || zs__pitems(m, pid, a, 5) != 5 || !zs__pstr_is(m, a[0], "storage") ||
        m->v[a[1]].kind != ZS__PK_GLOBAL || m->v[a[1]].sub != ZS__G_STORAGE || m->v[a[2]].kind != ZS__PK_STR ||
        m->v[a[4]].kind != ZS__PK_INT || m->v[a[4]].u.i < 0)
        return zs__pfail(m, "persistent id is not ('storage', torch.<type>Storage, key, location, numel)");
    dt = &zs__pdtypes[m->v[a[1]].u.i];
    if (m->v[a[2]].len > 200) return zs__pfail(m, "storage key longer than 200 bytes");
    snprintf(rel, sizeof rel, "data/%.*s", (int)m->v[a[2]].len, zs__pstr(m, a[2]));
    ent = zs__zip_find(m->zip, rel, strlen(rel));
    if (ent < 0) return zs__fail(ZS_ERR_FORMAT, "%s: storage '%s' has no entry '%s%s'", m->who, rel + 5, m->zip->prefix, rel);
    if ((r = zs__zip_stored(m->zip, ent)) != 0) return r;
    bytes = (uint64_t)m->v[a[4]].u.i * dt->in;
    if (bytes / dt->in != (uint64_t)m->v[a[4]].u.i || bytes != m->zip->e[ent].size)
        return zs__fail(ZS_ERR_FORMAT, "%s: storage '%s' declares %llu elements of %u bytes but its entry has %llu bytes",
                        m->who, rel + 5, (unsigned long long)m->v[a[4]].u.i, dt->in, (unsigned long long)m->zip->e[ent].size);
    s = m->ent_stor[ent];
    if (s >= 0 && m->st[s].dt != (int)(dt - zs__pdtypes))
        return zs__fail(ZS_ERR_FORMAT, "%s: storage '%s' is used as both %s and %s", m->who, rel + 5,
                        zs__pdtypes[m->st[s].dt].storage, dt->storage);
    if (s < 0) {
        ZS__PTH_GROW(m->st, m->cst, m->nst + 1, zs__pstor);
        s = m->ent_stor[ent] = m->nst++;
        m->st[s].ent = ent;
        m->st[s].dt = (int)(dt - zs__pdtypes);
        m->st[s].numel = (uint64_t)m->v[a[4]].u.i;
    }
    if ((r = zs__ppush_new(m, ZS__PK_STORAGE, &x)) != 0) return r;
    x->u.i = s;
    return ZS_OK;
}

/* int tuple -> d[], returns its length or -1 */
ZS__PRIV int zs__pints(const zs__pvm *m, int32_t tup, int64_t *d) {
    int32_t a[ZS_ST_MAX_DIMS];
    int n = m->v[tup].kind == ZS__PK_TUPLE ? zs__pitems(m, tup, a, ZS_ST_MAX_DIMS) : -1, i;
    for (i = 0; i < n; i++) {
        if (m->v[a[i]].kind != ZS__PK_INT || m->v[a[i]].u.i < 0) return -1;
        d[i] = m->v[a[i]].u.i;
    }
    return n;
}

/* _rebuild_tensor(_v2)(storage, offset, size, stride, ...): bounds checked here */
ZS__PRIV int zs__ptensor(zs__pvm *m, const int32_t *a, int na, int v2) {
    zs__pten t;
    zs__pv *x;
    int i, r, n2;
    uint64_t numel = 1, last;
    if (na != (v2 ? 6 : 4) && !(v2 && na == 7)) return zs__pfail(m, "_rebuild_tensor with a wrong argument count");
    if (m->v[a[0]].kind != ZS__PK_STORAGE || m->v[a[1]].kind != ZS__PK_INT || m->v[a[1]].u.i < 0)
        return zs__pfail(m, "_rebuild_tensor: expected (storage, offset >= 0, size, stride, ...)");
    memset(&t, 0, sizeof t);
    t.stor = (int)m->v[a[0]].u.i;
    t.off = m->v[a[1]].u.i;
    t.ndim = zs__pints(m, a[2], t.shape);
    n2 = zs__pints(m, a[3], t.stride);
    if (t.ndim < 0 || n2 != t.ndim)
        return zs__pfail(m, "_rebuild_tensor: size and stride must be tuples of the same length (<= 8) of ints >= 0");
    last = (uint64_t)t.off;
    for (i = 0; i < t.ndim; i++) {
        uint64_t d = (uint64_t)t.shape[i], s = (uint64_t)t.stride[i];
        if (d && numel > (uint64_t)INT64_MAX / d) return zs__pfail(m, "tensor size overflows");
        numel *= d;
        if (d && s && (d - 1 > (uint64_t)INT64_MAX / s || last > (uint64_t)INT64_MAX - (d - 1) * s))
            return zs__pfail(m, "tensor extent overflows");
        if (d) last += (d - 1) * s;
    }
    if (numel && last >= m->st[t.stor].numel)
        return zs__fail(ZS_ERR_FORMAT, "%s: data.pkl byte %zu: tensor reaches element %llu of a %llu-element storage",
                        m->who, m->pc, (unsigned long long)last, (unsigned long long)m->st[t.stor].numel);
    if (m->nt >= ZS_PTH_MAX_TENSORS) return zs__pfail(m, "more than ZS_PTH_MAX_TENSORS tensors");
    ZS__PTH_GROW(m->t, m->ct, m->nt + 1, zs__pten);
    m->t[m->nt] = t;
    if ((r = zs__ppush_new(m, ZS__PK_TENSOR, &x)) != 0) return r;
    x->u.i = m->nt++;
    return ZS_OK;
}

ZS__PRIV int zs__preduce(zs__pvm *m) {
    int32_t fn = -1, args = -1, a[8];
    int na, r, g;
    zs__pv *x;
    if ((r = zs__ppop(m, &args)) != 0 || (r = zs__ppop(m, &fn)) != 0) return r;
    if (m->v[fn].kind != ZS__PK_GLOBAL || m->v[args].kind != ZS__PK_TUPLE) return zs__pfail(m, "REDUCE needs a callable and a tuple");
    na = zs__pitems(m, args, a, 8);
    g = m->v[fn].sub;
    switch (g) {
    case ZS__G_ODICT:
        if (na) return zs__pfail(m, "OrderedDict() with arguments");
        if ((r = zs__ppush_new(m, ZS__PK_DICT, &x)) != 0) return r;
        return ZS_OK;
    case ZS__G_TENSOR_V2: case ZS__G_TENSOR: return zs__ptensor(m, a, na, g == ZS__G_TENSOR_V2);
    case ZS__G_PARAM: case ZS__G_PARAM_STATE:
        if (na != (g == ZS__G_PARAM ? 3 : 4) || m->v[a[0]].kind != ZS__PK_TENSOR) return zs__pfail(m, "_rebuild_parameter: bad arguments");
        return zs__ppush(m, a[0]);
    case ZS__G_ENCODE: /* _codecs.encode(str, 'latin1'): the bytes of a numpy scalar */
        if (na != 2 || m->v[a[0]].kind != ZS__PK_STR || !(zs__pstr_is(m, a[1], "latin1") || zs__pstr_is(m, a[1], "latin-1")))
            return zs__pfail(m, "_codecs.encode: only (str, 'latin1') is allowed");
        {
            const unsigned char *s = (const unsigned char *)zs__pstr(m, a[0]);
            uint32_t i, n = m->v[a[0]].len, k = 0;
            unsigned char b[8];
            for (i = 0; i < n; i++, k++) { /* code points < 256 from their UTF-8 */
                if (k == 8 || s[i] > 0xc3) return zs__pfail(m, "_codecs.encode: more than 8 bytes or not latin-1");
                b[k] = s[i] < 0x80 ? s[i] : (unsigned char)(((s[i] & 3) << 6) | (s[i + 1] & 0x3f));
                if (s[i] >= 0x80) i++; /* validated UTF-8: the continuation byte exists */
            }
            if ((r = zs__ppush_new(m, ZS__PK_BYTES, &x)) != 0) return r;
            memcpy(x->u.b, b, k);
            x->len = k;
            x->sub = 1;
            return ZS_OK;
        }
    case ZS__G_NPDTYPE: /* numpy.dtype('f8', False, True) */
        if (na != 3 || m->v[a[0]].kind != ZS__PK_STR || m->v[a[0]].len != 2) return zs__pfail(m, "numpy.dtype: bad arguments");
        {
            const char *s = zs__pstr(m, a[0]);
            int sz = s[1] - '0';
            if (!strchr("fiub", s[0]) || !s[0] || (sz != 1 && sz != 2 && sz != 4 && sz != 8) || (s[0] == 'f' && sz == 1) ||
                (s[0] == 'b' && sz != 1))
                return zs__pfail(m, "numpy.dtype: only float, int, uint and bool scalars are supported");
            if ((r = zs__ppush_new(m, ZS__PK_NPDTYPE, &x)) != 0) return r;
            x->sub = (unsigned char)s[0];
            x->len = (uint32_t)sz;
            return ZS_OK;
        }
    case ZS__G_NPSCALAR: /* numpy.core.multiarray.scalar(dtype, bytes) */
        if (na != 2 || m->v[a[0]].kind != ZS__PK_NPDTYPE || m->v[a[1]].kind != ZS__PK_BYTES || m->v[a[1]].len != m->v[a[0]].len)
            return zs__pfail(m, "numpy scalar: bad arguments");
        {
            const unsigned char *b = m->v[a[1]].sub ? m->v[a[1]].u.b : m->p + m->v[a[1]].u.off;
            uint64_t u = 0;
            unsigned len = m->v[a[0]].len;
            int k, kind = m->v[a[0]].sub;
            for (k = (int)len - 1; k >= 0; k--) u = (u << 8) | b[k]; /* (read before m->v may move) */
            if (kind == 'u' && len == 8 && u > (uint64_t)INT64_MAX) return zs__pfail(m, "numpy uint64 scalar too large");
            if ((r = zs__ppush_new(m, kind == 'f' ? ZS__PK_FLOAT : kind == 'b' ? ZS__PK_BOOL : ZS__PK_INT, &x)) != 0) return r;
            if (kind == 'f' && len == 8) memcpy(&x->u.f, &u, 8);
            else if (kind == 'f' && len == 4) { float f; uint32_t w = (uint32_t)u; memcpy(&f, &w, 4); x->u.f = f; }
            else if (kind == 'f') x->u.f = zs_f16_to_f32((uint16_t)u);
            else if (kind == 'i' && len < 8 && (u >> (8 * len - 1))) x->u.i = (int64_t)(u - ((uint64_t)1 << (8 * len)));
            else x->u.i = (int64_t)u;
            return ZS_OK;
        }
    default: return zs__pfail(m, "storage classes cannot be called");
    }
}

ZS__PRIV int zs__pbuild(zs__pvm *m) {
    int32_t state = -1, a[16];
    int r, k = 0;
    zs__pv *obj;
    if ((r = zs__ppop(m, &state)) != 0) return r;
    if (m->ns <= (m->nm ? m->marks[m->nm - 1] : 0)) return zs__pfail(m, "BUILD without an object");
    obj = &m->v[m->stk[m->ns - 1]];
    switch (obj->kind) {
    case ZS__PK_DICT: case ZS__PK_TENSOR: return ZS_OK; /* attributes (OrderedDict._metadata, ...): not needed */
    case ZS__PK_NPDTYPE: /* (version, byteorder, ...) */
        if (m->v[state].kind == ZS__PK_TUPLE) k = zs__pitems(m, state, a, 16);
        if (k < 2 || m->v[a[1]].kind != ZS__PK_STR || m->v[a[1]].len != 1 || !strchr("<|=", zs__pstr(m, a[1])[0]))
            return zs__fail(ZS_ERR_UNSUPPORTED, "%s: data.pkl byte %zu: only little-endian numpy scalars are supported", m->who, m->pc);
        return ZS_OK;
    default: return zs__pfail(m, obj->kind == ZS__PK_GLOBAL ? "BUILD on a class" : "BUILD on a plain value");
    }
}

/* next k bytes of data.pkl, or an error */
#define ZS__PNEED(k) do { if (m->n - m->pc < (size_t)(k)) return zs__pfail(m, "truncated"); } while (0)

ZS__PRIV int zs__pstring(zs__pvm *m, int kind, uint64_t len) {
    zs__pv *x;
    int r;
    if (len > ZS_PTH_MAX_STRING || len > m->n - m->pc) return zs__pfail(m, "string longer than the file or ZS_PTH_MAX_STRING");
    if (kind == ZS__PK_STR && zs__utf8_check(m->p + m->pc, (size_t)len) != len) return zs__pfail(m, "string is not valid UTF-8");
    if ((r = zs__ppush_new(m, kind, &x)) != 0) return r;
    x->u.off = m->pc;
    x->len = (uint32_t)len;
    m->pc += (size_t)len;
    return ZS_OK;
}

ZS__PRIV int zs__prun(zs__pvm *m, int32_t *root) {
    for (;;) {
        int op, r = ZS_OK, base = 0, i;
        int32_t a = -1, b = -1, k = -1;
        uint64_t u;
        zs__pv *x;
        if (m->pc >= m->n) return zs__pfail(m, "ends without STOP");
        op = m->p[m->pc++];
        switch (op) {
        case 0x80: /* PROTO */
            ZS__PNEED(1);
            if (m->p[m->pc] < 2 || m->p[m->pc] > 5) return zs__pfail(m, "pickle protocol outside 2..5");
            m->pc++;
            break;
        case 0x95: /* FRAME: only a size hint */
            ZS__PNEED(8);
            if (zs__le64(m->p + m->pc) > m->n - m->pc - 8) return zs__pfail(m, "FRAME longer than the file");
            m->pc += 8;
            break;
        case '}': r = zs__ppush_new(m, ZS__PK_DICT, NULL); break;
        case ']': r = zs__ppush_new(m, ZS__PK_LIST, NULL); break;
        case ')': r = zs__ppush_new(m, ZS__PK_TUPLE, NULL); break;
        case 'N': r = zs__ppush_new(m, ZS__PK_NONE, NULL); break;
        case 0x88: case 0x89:
            if ((r = zs__ppush_new(m, ZS__PK_BOOL, &x)) == 0) x->u.i = op == 0x88;
            break;
        case '(':
            if (m->nm >= ZS_PTH_MAX_MARKS) return zs__pfail(m, "MARKs nested deeper than ZS_PTH_MAX_MARKS");
            ZS__PTH_GROW(m->marks, m->cm, m->nm + 1, int32_t);
            m->marks[m->nm++] = m->ns;
            break;
        case 'X': case 'T': case 'B': ZS__PNEED(4); u = zs__pth_u32(m->p + m->pc); m->pc += 4;
            r = zs__pstring(m, op == 'B' ? ZS__PK_BYTES : ZS__PK_STR, u); break;
        case 0x8c: case 'U': case 'C': ZS__PNEED(1); u = m->p[m->pc++];
            r = zs__pstring(m, op == 'C' ? ZS__PK_BYTES : ZS__PK_STR, u); break;
        case 0x8d: case 0x8e: ZS__PNEED(8); u = zs__le64(m->p + m->pc); m->pc += 8;
            r = zs__pstring(m, op == 0x8e ? ZS__PK_BYTES : ZS__PK_STR, u); break;
        case 'J': case 'K': case 'M': case 0x8a: case 0x8b: { /* BININT, BININT1, BININT2, LONG1, LONG4 */
            size_t w = op == 'K' ? 1 : op == 'M' ? 2 : 4, j;
            int sign = op == 'J';
            if (op == 0x8a || op == 0x8b) { /* byte count, then little-endian two's complement */
                w = op == 0x8a ? 1 : 4;
                ZS__PNEED(w);
                j = op == 0x8a ? m->p[m->pc] : zs__pth_u32(m->p + m->pc);
                m->pc += w;
                if (j > 8) return zs__pfail(m, "integer does not fit in 64 bits");
                w = j;
                sign = 1;
            }
            ZS__PNEED(w);
            for (u = 0, j = w; j-- > 0;) u = (u << 8) | m->p[m->pc + j];
            if (sign && w && w < 8 && (m->p[m->pc + w - 1] & 0x80)) u -= (uint64_t)1 << (8 * w);
            m->pc += w;
            if ((r = zs__ppush_new(m, ZS__PK_INT, &x)) == 0) x->u.i = (int64_t)u;
            break;
        }
        case 'G': /* BINFLOAT, big-endian */
            ZS__PNEED(8);
            for (u = 0, i = 0; i < 8; i++) u = (u << 8) | m->p[m->pc + (size_t)i];
            m->pc += 8;
            if ((r = zs__ppush_new(m, ZS__PK_FLOAT, &x)) == 0) memcpy(&x->u.f, &u, 8);
            break;
        case 0x85: case 0x86: case 0x87: case 't': { /* TUPLE1..3, TUPLE */
            int32_t items[3], id = -1;
            int n = op - 0x84;
            if (op == 't') {
                if ((r = zs__ppop_mark(m, &base)) != 0) return r;
                n = m->ns - base;
            }
            if ((r = zs__pnew(m, ZS__PK_TUPLE, &id)) != 0) return r;
            if (op == 't') {
                for (i = base; i < m->ns && !r; i++) r = zs__pcell_add(m, id, -1, m->stk[i]);
                m->ns = base;
            } else {
                for (i = n - 1; i >= 0 && !r; i--) r = zs__ppop(m, &items[i]);
                for (i = 0; i < n && !r; i++) r = zs__pcell_add(m, id, -1, items[i]);
            }
            if (!r) r = zs__ppush(m, id);
            break;
        }
        case 'q': case 'r': case 0x94: /* BINPUT, LONG_BINPUT, MEMOIZE */
            if (op == 'q') { ZS__PNEED(1); u = m->p[m->pc++]; }
            else if (op == 'r') { ZS__PNEED(4); u = zs__pth_u32(m->p + m->pc); m->pc += 4; }
            else u = (uint64_t)m->nmemo;
            if (m->ns <= (m->nm ? m->marks[m->nm - 1] : 0)) return zs__pfail(m, "memo of an empty stack");
            if (u >= ZS_PTH_MAX_MEMO) return zs__pfail(m, "memo index beyond ZS_PTH_MAX_MEMO");
            if (u >= (uint64_t)m->nmemo) {
                ZS__PTH_GROW(m->memo, m->cmemo, (int)u + 1, int32_t);
                for (i = m->nmemo; i <= (int)u; i++) m->memo[i] = -1;
                m->nmemo = (int)u + 1;
            }
            m->memo[u] = m->stk[m->ns - 1];
            break;
        case 'h': case 'j': /* BINGET, LONG_BINGET */
            if (op == 'h') { ZS__PNEED(1); u = m->p[m->pc++]; }
            else { ZS__PNEED(4); u = zs__pth_u32(m->p + m->pc); m->pc += 4; }
            if (u >= (uint64_t)m->nmemo || m->memo[u] < 0) return zs__pfail(m, "memo index never stored");
            r = zs__ppush(m, m->memo[u]);
            break;
        case 's': case 'u': case 'a': case 'e': { /* SETITEM(S), APPEND(S) */
            int pairs = op == 's' || op == 'u', n;
            int32_t cont;
            if (op == 'u' || op == 'e') { if ((r = zs__ppop_mark(m, &base)) != 0) return r; }
            else base = m->ns - (pairs ? 2 : 1);
            n = m->ns - base;
            if (base < (m->nm ? m->marks[m->nm - 1] : 0) + 1 || (pairs && n % 2)) return zs__pfail(m, "stack underflow");
            cont = m->stk[base - 1];
            if (m->v[cont].kind != (pairs ? ZS__PK_DICT : ZS__PK_LIST))
                return zs__pfail(m, pairs ? "SETITEM on a non-dict" : "APPEND on a non-list");
            for (i = base; i < m->ns && !r; i += pairs ? 2 : 1)
                r = zs__pcell_add(m, cont, pairs ? m->stk[i] : -1, m->stk[i + (pairs ? 1 : 0)]);
            m->ns = base;
            break;
        }
        case 'c': { /* GLOBAL "module\nname\n" */
            const unsigned char *s = m->p + m->pc, *nl1, *nl2;
            size_t rest = m->n - m->pc;
            nl1 = (const unsigned char *)memchr(s, '\n', rest < 256 ? rest : 256);
            nl2 = nl1 ? (const unsigned char *)memchr(nl1 + 1, '\n', (size_t)(s + rest - nl1 - 1) < 256 ? (size_t)(s + rest - nl1 - 1) : 256) : NULL;
            if (!nl2) return zs__pfail(m, "GLOBAL without two short lines");
            m->pc += (size_t)(nl2 + 1 - s);
            r = zs__pglobal(m, (const char *)s, (size_t)(nl1 - s), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            if ((r = zs__ppop(m, &b)) != 0 || (r = zs__ppop(m, &a)) != 0) return r;
            if (m->v[a].kind != ZS__PK_STR || m->v[b].kind != ZS__PK_STR) return zs__pfail(m, "STACK_GLOBAL needs two strings");
            r = zs__pglobal(m, zs__pstr(m, a), m->v[a].len, zs__pstr(m, b), m->v[b].len);
            break;
        case 'R': r = zs__preduce(m); break;
        case 'b': r = zs__pbuild(m); break;
        case 'Q': if ((r = zs__ppop(m, &k)) == 0) r = zs__pstorage(m, k); break;
        case '2': /* DUP */
            if ((r = zs__ppop(m, &k)) == 0 && (r = zs__ppush(m, k)) == 0) r = zs__ppush(m, k);
            break;
        case '0': r = zs__ppop(m, &k); break;
        case '1': if ((r = zs__ppop_mark(m, &base)) == 0) m->ns = base; break;
        case '.': return zs__ppop(m, root);
        default:
            m->pc--;
            return zs__fail(ZS_ERR_FORMAT, "%s: data.pkl byte %zu: pickle opcode 0x%02x is not supported", m->who, m->pc, op);
        }
        if (r) return r;
    }
}

/* ---- flattening into named tensors and metadata ---------------------------- */

typedef struct zs__pname { size_t name; int32_t ten; } zs__pname;  /* name: offset in txt */
typedef struct zs__pmeta { size_t key, val; } zs__pmeta;

typedef struct zs__pout {
    zs__pvm *m;
    char *txt; int ntxt, ctxt;       /* NUL-terminated names and values */
    zs__pname *t; int nt, ct;
    zs__pmeta *meta; int nmeta, cmeta;
    char skipped[1024];              /* "optimizer,scheduler" */
    char path[ZS__PTH_PATH];
    long visits;
} zs__pout;

ZS__PRIV int zs__ptxt(zs__pout *o, const char *s, size_t n, size_t *at) {
    if (n >= (size_t)INT_MAX - (size_t)o->ntxt - 1) return zs__fail(ZS_ERR_NOMEM, "%s: names too long", o->m->who);
    ZS__PTH_GROW(o->txt, o->ctxt, o->ntxt + (int)n + 1, char);
    memcpy(o->txt + o->ntxt, s, n);
    o->txt[o->ntxt + (int)n] = 0;
    *at = (size_t)o->ntxt;
    o->ntxt += (int)n + 1;
    return ZS_OK;
}

/* Python's repr of a float: shortest round-trip digits, fixed notation for
   exponents -4..15 with at least one decimal, else d.ddde+XX */
ZS__PRIV void zs__pfloat_repr(double f, char *out, size_t cap) {
    uint64_t u;
    int p, e;
    char b[40];
    memcpy(&u, &f, 8);
    if ((u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) { /* by bits: -ffast-math */
        snprintf(out, cap, "%s", (u & 0xfffffffffffffull) ? "nan" : (u >> 63) ? "-inf" : "inf");
        return;
    }
    for (p = 1; p < 17; p++) {
        snprintf(b, sizeof b, "%.*e", p - 1, f);
        if (strtod(b, NULL) == f) break;
    }
    snprintf(b, sizeof b, "%.*e", p - 1, f);
    e = atoi(strchr(b, 'e') + 1);
    if (e < -4 || e >= 16) { snprintf(out, cap, "%s", b); return; }
    snprintf(out, cap, "%.*f", p - 1 - e > 0 ? p - 1 - e : 0, f);
    if (!strchr(out, '.') && strlen(out) + 2 < cap) strcat(out, ".0");
}

ZS__PRIV int zs__pmeta_add(zs__pout *o, const char *key, size_t kn, const char *val, size_t vn) {
    size_t k = 0, v = 0;
    int r;
    ZS__PTH_GROW(o->meta, o->cmeta, o->nmeta + 1, zs__pmeta);
    if ((r = zs__ptxt(o, key, kn, &k)) != 0 || (r = zs__ptxt(o, val, vn, &v)) != 0) return r;
    o->meta[o->nmeta].key = k;
    o->meta[o->nmeta++].val = v;
    return ZS_OK;
}

/* scalar -> metadata[key]; anything else is listed in o->skipped */
ZS__PRIV int zs__pscalar(zs__pout *o, const zs__pv *v, const char *key, size_t klen) {
    char num[48];
    const char *s = num;
    size_t k = strlen(o->skipped);
    switch (v->kind) {
    case ZS__PK_NONE: s = "None"; break;
    case ZS__PK_BOOL: s = v->u.i ? "True" : "False"; break;
    case ZS__PK_INT: snprintf(num, sizeof num, "%lld", (long long)v->u.i); break;
    case ZS__PK_FLOAT: zs__pfloat_repr(v->u.f, num, sizeof num); break;
    case ZS__PK_STR: return zs__pmeta_add(o, key, klen, zs__pstr(o->m, (int32_t)(v - o->m->v)), v->len);
    default:
        if (k + klen + 5 < sizeof o->skipped) snprintf(o->skipped + k, sizeof o->skipped - k, "%s%.*s", k ? "," : "", (int)klen, key);
        else if (!strstr(o->skipped, ",...")) strcpy(o->skipped + (k + 5 < sizeof o->skipped ? k : sizeof o->skipped - 5), ",...");
        return ZS_OK;
    }
    return zs__pmeta_add(o, key, klen, s, strlen(s));
}

/* key of a dict item as text (str or int), without a leading "module." */
ZS__PRIV int zs__pkey(zs__pout *o, int32_t key, char *num, const char **s, size_t *n) {
    const zs__pv *k = &o->m->v[key];
    if (k->kind == ZS__PK_INT) {
        *n = (size_t)snprintf(num, 32, "%lld", (long long)k->u.i);
        *s = num;
    } else if (k->kind == ZS__PK_STR) {
        *s = zs__pstr(o->m, key);
        *n = k->len;
        if (memchr(*s, 0, *n)) return zs__fail(ZS_ERR_FORMAT, "%s: a dict key contains a NUL byte", o->m->who);
    } else {
        return zs__fail(ZS_ERR_FORMAT, "%s: dict key of type %s under '%s'", o->m->who, zs__pk_names[k->kind], o->path);
    }
    return ZS_OK;
}

ZS__PRIV int zs__pwalk(zs__pout *o, int32_t id, size_t plen, int depth) {
    zs__pvm *m = o->m;
    const zs__pv *v = &m->v[id];
    int32_t c;
    int r = ZS_OK, i = 0;
    o->path[plen] = 0;
    if (++o->visits > ZS_PTH_MAX_OBJECTS)
        return zs__fail(ZS_ERR_FORMAT, "%s: more than ZS_PTH_MAX_OBJECTS values reached when flattening (shared-reference bomb?)", m->who);
    if (depth > ZS_PTH_MAX_DEPTH)
        return zs__fail(ZS_ERR_FORMAT, "%s: containers nested deeper than %d levels (or a cycle) at '%.200s'", m->who, ZS_PTH_MAX_DEPTH, o->path);
    if (v->kind == ZS__PK_TENSOR) {
        ZS__PTH_GROW(o->t, o->ct, o->nt + 1, zs__pname);
        o->t[o->nt].ten = (int32_t)v->u.i;
        if ((r = zs__ptxt(o, o->path, plen, &o->t[o->nt].name)) == 0) o->nt++;
        return r;
    }
    if (v->kind == ZS__PK_DICT || v->kind == ZS__PK_LIST || v->kind == ZS__PK_TUPLE) {
        for (c = v->head; c >= 0 && !r; c = m->c[c].next, i++) {
            char num[32];
            const char *s = num;
            size_t n;
            if (v->kind == ZS__PK_DICT) {
                if ((r = zs__pkey(o, m->c[c].k, num, &s, &n)) != 0) return r;
                if (n >= 7 && !memcmp(s, "module.", 7)) { s += 7; n -= 7; }
            } else {
                n = (size_t)snprintf(num, sizeof num, "%d", i);
            }
            if (plen + 1 + n >= sizeof o->path) return zs__fail(ZS_ERR_FORMAT, "%s: name longer than %d bytes under '%.200s'", m->who, ZS__PTH_PATH - 1, o->path);
            if (plen) o->path[plen] = '.';
            memcpy(o->path + plen + (plen ? 1 : 0), s, n);
            r = zs__pwalk(o, m->c[c].v, plen + (plen ? 1 : 0) + n, depth + 1);
            o->path[plen] = 0;
        }
        return r;
    }
    return zs__pscalar(o, v, o->path, plen);
}

/* the checkpoint layouts of SPEC 6, else a plain flattening */
ZS__PRIV int zs__pflatten(zs__pout *o, int32_t root) {
    static const char *const tcn[3][2] = {{"sketch_state_dict", "sketch"}, {"image_state_dict", "image"}, {"fc_state_dict", "fc"}};
    zs__pvm *m = o->m;
    const zs__pv *v = &m->v[root];
    int32_t c, sd = -1;
    int is_tcn = 0, j, r = ZS_OK;
    if (v->kind != ZS__PK_DICT && v->kind != ZS__PK_LIST && v->kind != ZS__PK_TUPLE)
        return zs__fail(ZS_ERR_FORMAT, "%s: the top-level object has type %s, not a dict of tensors", m->who, zs__pk_names[v->kind]);
    for (c = v->kind == ZS__PK_DICT ? v->head : -1; c >= 0; c = m->c[c].next)
        for (j = 0; j < 3; j++) is_tcn |= zs__pstr_is(m, m->c[c].k, tcn[j][0]) && m->v[m->c[c].v].kind == ZS__PK_DICT;
    for (j = 0; j < 2 && !is_tcn && sd < 0; j++)
        for (c = v->kind == ZS__PK_DICT ? v->head : -1; c >= 0 && sd < 0; c = m->c[c].next)
            if (zs__pstr_is(m, m->c[c].k, j ? "state_dict" : "model") && m->v[m->c[c].v].kind == ZS__PK_DICT) sd = c;
    if (!is_tcn && sd < 0) return zs__pwalk(o, root, 0, 0);
    for (c = v->head; c >= 0 && !r; c = m->c[c].next) {
        char num[32];
        const char *s;
        size_t n;
        const zs__pv *x = &m->v[m->c[c].v];
        if ((r = zs__pkey(o, m->c[c].k, num, &s, &n)) != 0) return r;
        for (j = 0; j < 3 && !(is_tcn && x->kind == ZS__PK_DICT && zs__pstr_is(m, m->c[c].k, tcn[j][0])); j++) {}
        if (j < 3) {
            strcpy(o->path, tcn[j][1]);
            r = zs__pwalk(o, m->c[c].v, strlen(tcn[j][1]), 1);
        } else if (c == sd) {
            r = zs__pwalk(o, m->c[c].v, 0, 1);
        } else {
            r = zs__pscalar(o, x, s, n);
        }
    }
    return r;
}

/* ---- tensor data and the safetensors image ----------------------------------- */

/* t's elements, contiguous, little-endian, into dst (F64 narrowed to F32) */
ZS__PRIV int zs__pfill(zs__pvm *m, const zs__pten *t, unsigned char *dst) {
    const zs__pstor *s = &m->st[t->stor];
    const zs__pdtype *dt = &zs__pdtypes[s->dt];
    uint64_t numel = 1, last = (uint64_t)t->off, want = 1, e;
    int64_t idx[ZS_ST_MAX_DIMS];
    int d, contig = 1, r;
    unsigned char *buf;
    for (d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && (uint64_t)t->stride[d] != want) contig = 0;
        want *= (uint64_t)t->shape[d];
        numel *= (uint64_t)t->shape[d];
        if (t->shape[d]) last += (uint64_t)(t->shape[d] - 1) * (uint64_t)t->stride[d];
    }
    if (!numel) return ZS_OK;
    if (contig && dt->in == dt->out)
        return zs__src_read(m->zip->src, m->zip->e[s->ent].data + (uint64_t)t->off * dt->in, dst, (size_t)(numel * dt->in));
    /* views and conversions: the storage span the tensor touches, then gather */
    buf = (unsigned char *)zs__malloc((size_t)((last - (uint64_t)t->off + 1) * dt->in), NULL);
    if (!buf) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", m->who);
    r = zs__src_read(m->zip->src, m->zip->e[s->ent].data + (uint64_t)t->off * dt->in, buf, (size_t)((last - (uint64_t)t->off + 1) * dt->in));
    memset(idx, 0, sizeof idx);
    for (e = 0; e < numel && !r; e++, dst += dt->out) {
        uint64_t at = 0;
        for (d = 0; d < t->ndim; d++) at += (uint64_t)idx[d] * (uint64_t)t->stride[d];
        if (dt->in == 8 && dt->out == 4) { /* f64 -> f32, byte order independent */
            uint64_t u = zs__le64(buf + at * 8);
            double x;
            float f;
            uint32_t w;
            memcpy(&x, &u, 8);
            f = (float)x;
            memcpy(&w, &f, 4);
            for (d = 0; d < 4; d++) dst[d] = (unsigned char)(w >> (8 * d));
        } else {
            memcpy(dst, buf + at * dt->in, dt->in);
        }
        for (d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0;
    }
    zs__free(buf, NULL);
    return r;
}

/* u64 header length, JSON header (zs_st_save's layout, padded to 8), data */
ZS__PRIV int zs__pimage(zs__pout *o, void **img, size_t *img_n) {
    zs__pvm *m = o->m;
    zs__sbuf b;
    uint64_t data = 0, off, limit = 4 * m->zip->src->size + (16u << 20);
    size_t hlen = 0, total = 0;
    unsigned char *out = NULL;
    int pass, i, d, r = ZS_OK;
    for (i = 0; i < o->nt; i++) { /* views may repeat (or broadcast) a storage: bound the copies */
        const zs__pten *t = &m->t[o->t[i].ten];
        uint64_t numel = 1, es = zs__pdtypes[m->st[t->stor].dt].out;
        for (d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d]; /* <= INT64_MAX (zs__ptensor) */
        if (numel > (limit - data) / es)
            return zs__fail(ZS_ERR_FORMAT, "%s: tensors would expand to more than 4x the file size (repeated views of storages)", m->who);
        data += numel * es;
    }
    memset(&b, 0, sizeof b);
    for (pass = 0; pass < 2; pass++) {
        b.n = 0;
        zs__sputs(&b, "{");
        if (o->nmeta) {
            zs__sputs(&b, "\"__metadata__\":{");
            for (i = 0; i < o->nmeta; i++) {
                if (i) zs__sputs(&b, ",");
                zs__sput_json_str(&b, o->txt + o->meta[i].key);
                zs__sputs(&b, ":");
                zs__sput_json_str(&b, o->txt + o->meta[i].val);
            }
            zs__sputs(&b, "}");
        }
        for (i = 0, off = 0; i < o->nt; i++) {
            const zs__pten *t = &m->t[o->t[i].ten];
            uint64_t n = zs__pdtypes[m->st[t->stor].dt].out;
            if (i || o->nmeta) zs__sputs(&b, ",");
            zs__sput_json_str(&b, o->txt + o->t[i].name);
            zs__sputs(&b, ":{\"dtype\":\"");
            zs__sputs(&b, zs__pdtypes[m->st[t->stor].dt].st);
            zs__sputs(&b, "\",\"shape\":[");
            for (d = 0; d < t->ndim; d++) {
                if (d) zs__sputs(&b, ",");
                zs__sput_u64(&b, (uint64_t)t->shape[d]);
                n *= (uint64_t)t->shape[d];
            }
            zs__sputs(&b, "],\"data_offsets\":[");
            zs__sput_u64(&b, off);
            zs__sputs(&b, ",");
            zs__sput_u64(&b, off += n);
            zs__sputs(&b, "]}");
        }
        zs__sputs(&b, "}");
        while (b.n % 8) zs__sputs(&b, " ");
        if (pass == 0) {
            hlen = b.n;
            total = 8 + hlen + (size_t)data;
            if ((uint64_t)(size_t)data != data || total < hlen || hlen > ZS__ST_MAX_HEADER)
                return zs__fail(ZS_ERR_UNSUPPORTED, "%s: the converted file is too large for this platform", m->who);
            out = (unsigned char *)zs__malloc(total, NULL);
            if (!out) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory (%zu bytes)", m->who, total);
            b.p = (char *)out + 8;
            b.cap = hlen;
        }
    }
    for (d = 0; d < 8; d++) out[d] = (unsigned char)((uint64_t)hlen >> (8 * d));
    for (i = 0, off = 8 + hlen; i < o->nt && !r; i++) {
        const zs__pten *t = &m->t[o->t[i].ten];
        uint64_t n = zs__pdtypes[m->st[t->stor].dt].out;
        for (d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
        r = zs__pfill(m, t, out + off);
        off += n;
    }
    if (r) { zs__free(out, NULL); return r; }
    *img = out;
    *img_n = total;
    return ZS_OK;
}

/* ---- entry points ------------------------------------------------------------ */

/* pickle of torch's legacy magic number 0x1950a86a20f9469cfc6c (LONG1, 10 bytes) */
static const unsigned char zs__pth_legacy[12] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

ZS__PRIV int zs__pth_is_legacy(const unsigned char *b, size_t n) {
    size_t i;
    for (i = 0; n >= 12 && i + 12 <= n && b[0] == 0x80; i++)
        if (!memcmp(b + i, zs__pth_legacy, 12)) return 1;
    return 0;
}

/* converts the checkpoint in s into a safetensors image (*img from zs__malloc) */
ZS__PRIV int zs__pth_convert(zs__src *s, const char *who, void **img, size_t *img_n) {
    zs__zip z;
    zs__pvm m;
    zs__pout o;
    unsigned char head[32], *small = NULL, *pkl = NULL;
    int r, i;
    int32_t root = -1;
    size_t hn = s->size < sizeof head ? (size_t)s->size : sizeof head;
    memset(&z, 0, sizeof z);
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    *img = NULL;
    if ((r = zs__src_read(s, 0, head, hn)) != 0) return r;
    if (hn < 4 || (memcmp(head, "PK\3\4", 4) && memcmp(head, "PK\5\6", 4))) {
        if (zs__pth_is_legacy(head, hn))
            return zs__fail(ZS_ERR_UNSUPPORTED, "%s: legacy torch.save format not supported; re-save with PyTorch >= 1.6 "
                            "(torch.save(torch.load(f), f2))", who);
        return zs__fail(ZS_ERR_FORMAT, "%s: not a PyTorch checkpoint (no zip signature)", who);
    }
    z.src = s;
    z.who = m.who = who;
    m.zip = &z;
    o.m = &m;
    if ((r = zs__zip_open(&z)) != 0) goto done;
    if ((i = zs__zip_find(&z, "byteorder", 9)) >= 0) {
        if ((r = zs__zip_load(&z, i, 16, &small)) != 0) goto done;
        if (strcmp((const char *)small, "little")) {
            r = zs__fail(ZS_ERR_UNSUPPORTED, "%s: byte order '%.16s' is not supported (only little-endian checkpoints)", who, small);
            goto done;
        }
        zs__free(small, NULL);
        small = NULL;
    }
    if ((i = zs__zip_find(&z, "version", 7)) >= 0) {
        char *end;
        if ((r = zs__zip_load(&z, i, 32, &small)) != 0) goto done;
        if (strtol((const char *)small, &end, 10) < 1 || end == (char *)small || (*end && strcmp(end, "\n"))) {
            r = zs__fail(ZS_ERR_FORMAT, "%s: '%sversion' is not a positive number", who, z.prefix);
            goto done;
        }
    }
    if ((i = zs__zip_find(&z, "data.pkl", 8)) < 0) {
        r = zs__fail(ZS_ERR_FORMAT, "%s: no '%sdata.pkl': not a torch.save checkpoint (TorchScript archives are not supported)", who, z.prefix);
        goto done;
    }
    if ((r = zs__zip_load(&z, i, ZS_PTH_MAX_PICKLE, &pkl)) != 0) goto done;
    m.p = pkl;
    m.n = (size_t)z.e[i].size;
    m.ent_stor = (int32_t *)zs__malloc((size_t)z.n * sizeof(int32_t), NULL);
    if (!m.ent_stor) { r = zs__fail(ZS_ERR_NOMEM, "%s: out of memory", who); goto done; }
    for (i = 0; i < z.n; i++) m.ent_stor[i] = -1;
    if ((r = zs__prun(&m, &root)) != 0 || (r = zs__pflatten(&o, root)) != 0) goto done;
    if (!o.skipped[0] || (r = zs__pmeta_add(&o, "pth.skipped", 11, o.skipped, strlen(o.skipped))) == 0)
        r = zs__pimage(&o, img, img_n);
done:
    zs__free(small, NULL);
    zs__free(pkl, NULL);
    zs__free(z.cd, NULL);
    zs__free(z.e, NULL);
    zs__free(m.v, NULL);
    zs__free(m.c, NULL);
    zs__free(m.stk, NULL);
    zs__free(m.marks, NULL);
    zs__free(m.memo, NULL);
    zs__free(m.st, NULL);
    zs__free(m.t, NULL);
    zs__free(m.ent_stor, NULL);
    zs__free(o.txt, NULL);
    zs__free(o.t, NULL);
    zs__free(o.meta, NULL);
    return r;
}

ZS__FN zs_safetensors *zs_pth_open(const char *path) {
    char who[300];
    zs__src s;
    void *img;
    size_t n = 0;
    int r;
    if (!path) { zs__fail(ZS_ERR_ARG, "zs_pth_open: NULL path"); return NULL; }
    snprintf(who, sizeof who, "zs_pth_open(%.200s)", path);
    if (zs__src_open(&s, path, who)) return NULL;
    r = zs__pth_convert(&s, who, &img, &n);
    zs__src_close(&s);
    return r ? NULL : zs__st_open_owned(img, n, path);
}

ZS__FN zs_safetensors *zs_pth_open_memory(const void *buf, size_t n) {
    zs__src s;
    void *img;
    size_t in = 0;
    if (!buf && n) { zs__fail(ZS_ERR_ARG, "zs_pth_open_memory: NULL buffer"); return NULL; }
    zs__src_memory(&s, buf ? buf : "", n, "zs_pth_open_memory(<memory>)");
    if (zs__pth_convert(&s, s.who, &img, &in)) return NULL;
    return zs__st_open_owned(img, in, "<converted .pth>");
}

ZS__FN int zs_pth_convert(const char *pth_path, const char *safetensors_path) {
    char who[300];
    zs__src s;
    void *img;
    size_t n = 0;
    FILE *f;
    int r;
    if (!pth_path || !safetensors_path) return zs__fail(ZS_ERR_ARG, "zs_pth_convert: NULL path");
    snprintf(who, sizeof who, "zs_pth_convert(%.200s)", pth_path);
    if ((r = zs__src_open(&s, pth_path, who)) != 0) return r;
    r = zs__pth_convert(&s, who, &img, &n);
    zs__src_close(&s);
    if (r) return r;
    f = fopen(safetensors_path, "wb");
    if (!f) r = zs__fail(ZS_ERR_IO, "%s: cannot create '%.200s': %s", who, safetensors_path, strerror(errno));
    else if ((int)(fwrite(img, 1, n, f) != n) | (int)(fclose(f) != 0)) { /* both run */
        r = zs__fail(ZS_ERR_IO, "%s: cannot write '%.200s': %s", who, safetensors_path, strerror(errno));
        remove(safetensors_path);
    }
    zs__free(img, NULL);
    return r;
}

/* first bytes of a file (fewer if it is shorter); < 0 on error */
ZS__PRIV int zs__pth_head(const char *path, const char *fn, unsigned char *b, size_t cap, size_t *n) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return zs__fail(path ? ZS_ERR_IO : ZS_ERR_ARG, "%s(%.200s): cannot open: %s", fn, path ? path : "(null)",
                            path ? strerror(errno) : "NULL path");
    *n = fread(b, 1, cap, f);
    fclose(f);
    return ZS_OK;
}

ZS__FN int zs_is_pth_file(const char *path) {
    unsigned char b[4];
    size_t n = 0;
    int r = zs__pth_head(path, "zs_is_pth_file", b, 4, &n);
    if (r) return r;
    return n == 4 && (!memcmp(b, "PK\3\4", 4) || !memcmp(b, "PK\5\6", 4));
}

ZS__FN zs_safetensors *zs_weights_open(const char *path) {
    unsigned char b[32];
    size_t n = 0;
    if (zs__pth_head(path, "zs_weights_open", b, sizeof b, &n)) return NULL;
    if ((n >= 4 && (!memcmp(b, "PK\3\4", 4) || !memcmp(b, "PK\5\6", 4))) || zs__pth_is_legacy(b, n)) return zs_pth_open(path);
    return zs_st_open(path);
}

#endif /* ZS_DEV_PTH_IMPL */

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

ZS__FN zs_zse_config zs_zse_config_tiny(void) {
    zs_zse_config c = zs_zse_config_default();
    c.img_size = 64; c.dim = 32; c.depth = 2; c.heads = 4; c.mlp_dim = 64;
    c.scale_ch[0] = 8; c.scale_ch[1] = 16; c.scale_ch[2] = 16;
    c.ca_heads = 2; c.ca_ffn = 48; c.anchor_ch = 24;
    return c;
}

ZS__FN int zs_zse_config_named(const char *name, zs_zse_config *out) {
    if (!name || !out) return zs__fail(ZS_ERR_ARG, "zs_zse_config_named: NULL argument");
    if (!strcmp(name, "default")) *out = zs_zse_config_default();
    else if (!strcmp(name, "small")) *out = zs_zse_config_small();
    else if (!strcmp(name, "tiny")) *out = zs_zse_config_tiny();
    else return zs__fail(ZS_ERR_ARG, "unknown config '%.100s' (choose default, small or tiny)", name);
    return ZS_OK;
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
    /* SA (the ViT): linears and embeddings N(0, 0.02), biases 0, norms 1/0;
       convs N(0, sqrt(2/fan_in)) (Kaiming). Everything else (CA, token head,
       RN) as PyTorch's defaults, which the release trains from: weights and
       biases U(+-1/sqrt(fan_in)). (With N(0, 0.02) the three-layer RN starts
       with vanishing outputs and gradients and its loss does not move.) */
    for (i = 0; i < m->params.count; i++) {
        zs_tensor *t = &m->params.t[i];
        const char *n = t->name;
        size_t L = strlen(n);
        uint64_t key = zs__mix64(seed ^ zs__mix64((uint64_t)i + 1));
        int is_bias = L >= 5 && !strcmp(n + L - 5, ".bias");
        int is_norm = strstr(n, "norm") != NULL;
        if (strncmp(n, "sa.", 3) && !is_norm) {
            int64_t k, fan_in = 1, ne = zs_numel(t);
            float bound, *x = (float *)t->data;
            const zs_tensor *w = is_bias && i > 0 ? &m->params.t[i - 1] : t; /* bias follows its weight */
            for (k = 1; k < w->ndim; k++) fan_in *= w->shape[k];
            bound = 1.0f / sqrtf((float)fan_in);
            for (k = 0; k < ne; k++) x[k] = bound * (2.0f * zs__hash_uniform(key, (uint64_t)k) - 1.0f);
        } else if (is_norm && (L >= 7 && !strcmp(n + L - 7, ".weight"))) zs_tensor_fill(t, 1.0f);
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

typedef struct zs__zse_ck { zs_zse *m; int li; } zs__zse_ck;
ZS__PRIV zs_tensor *zs__zse_block_ck(zs_ctx *ctx, void *user, zs_tensor *x) {
    zs__zse_ck *a = (zs__zse_ck *)user;
    return zs__zse_block(ctx, a->m, a->li, x);
}

/* the tokenizer CNN (SPEC 1.1 step 2, no biases): [B,3,H,W] -> [B,d,g,g]. Its
   stride-2 activations at 112^2 .. 14^2 are the largest of the SA stage (~150 MB
   for 8 images at 224 px), so checkpointed training recomputes it in backward. */
ZS__PRIV zs_tensor *zs__zse_tokenizer(zs_ctx *ctx, void *user, zs_tensor *img) {
    zs_zse *m = (zs_zse *)user;
    zs_tensor *s = zs_relu(ctx, zs_conv2d(ctx, img, m->scale_w[0], NULL, 2, 2, 3, 3));
    s = zs_relu(ctx, zs_conv2d(ctx, s, m->scale_w[1], NULL, 2, 2, 1, 1));
    s = zs_relu(ctx, zs_conv2d(ctx, s, m->scale_w[2], NULL, 2, 2, 1, 1));
    return zs_conv2d(ctx, s, m->scale_w[3], NULL, 2, 2, 1, 1);
}

ZS__FN zs_tensor *zs_zse_sa(zs_ctx *ctx, zs_zse *m, zs_tensor *img) {
    const zs_zse_config *c;
    int64_t B, D, N;
    zs_tensor *patch, *scale, *t, *cls, *x, *x0 = NULL;
    zs_mark mk0;
    int32_t *zeros;
    int i, infer;
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
    infer = !(ctx->grad_enabled && (zs__needs_grad(img) || m->params.grad));
    if (infer) { /* the embedding stage's temporaries are released below */
        int64_t sh[3];
        sh[0] = B; sh[1] = m->dims.tokens; sh[2] = D;
        x0 = zs_tensor_new(ctx, ZS_F32, 3, sh);
        if (!x0) return NULL;
        mk0 = zs_ctx_mark(ctx);
    }
    /* 1. patch embedding; 2. tokenizer CNN (no biases) */
    patch = zs_conv2d(ctx, img, m->embed_w, m->embed_b, c->patch, c->patch, 0, 0);     /* [B,d,g,g] */
    scale = !infer && m->checkpoint ? zs_checkpoint(ctx, zs__zse_tokenizer, m, img)
                                    : zs__zse_tokenizer(ctx, m, img);                  /* [B,d,g,g] */
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
    if (infer) {
        if (!x) return NULL;
        memcpy(x0->data, x->data, (size_t)zs_numel(x0) * sizeof(float));
        zs_ctx_release(ctx, mk0);
        x = x0;
    }
    /* 5. blocks; 6. final norm */
    if (!infer) {
        for (i = 0; i < c->depth && x; i++) {
            if (m->checkpoint) {
                zs__zse_ck *a = (zs__zse_ck *)zs__arena_alloc(&ctx->arena, sizeof *a);
                if (!a) { zs__fail(ZS_ERR_NOMEM, "zse: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
                a->m = m;
                a->li = i;
                x = zs_checkpoint(ctx, zs__zse_block_ck, a, x);
            } else {
                x = zs__zse_block(ctx, m, i, x);
            }
        }
    } else if (x) {
        /* inference: nothing is recorded, so each block's intermediates are
           released at once and the activations stay at two [B,T,d] buffers
           (memory near the weight size, issue 3 item 7) */
        zs_tensor *buf[2];
        int cur = 0;
        buf[0] = zs_contiguous(ctx, x);
        buf[1] = zs_tensor_new(ctx, ZS_F32, 3, x->shape);
        if (!buf[0] || !buf[1]) return NULL;
        for (i = 0; i < c->depth; i++) {
            zs_mark mk = zs_ctx_mark(ctx);
            zs_tensor *y = zs__zse_block(ctx, m, i, buf[cur]);
            zs_tensor *dst = buf[1 - cur];
            if (!y) return NULL;
            memcpy(dst->data, y->data, (size_t)zs_numel(y) * sizeof(float));
            zs_ctx_release(ctx, mk);
            /* EViT may have shrunk the token count: the header follows */
            memcpy(dst->shape, y->shape, sizeof dst->shape);
            zs__set_contig_strides(dst);
            cur = 1 - cur;
        }
        x = buf[cur];
    }
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

/* CA of the training pairs as one checkpointable function: [4B,T,d] SA rows
   (sketches [0,2B), photos [2B,4B)) -> [4B,T,d] (sketch outputs; photo outputs) */
ZS__PRIV zs_tensor *zs__zse_ca_ck(zs_ctx *ctx, void *user, zs_tensor *sa) {
    zs_zse *m = (zs_zse *)user;
    zs_tensor *parts[2];
    int64_t h = sa->shape[0] / 2;
    if (zs_zse_ca(ctx, m, zs_slice(ctx, sa, 0, 0, h), zs_slice(ctx, sa, 0, h, 2 * h), &parts[0], &parts[1]) != ZS_OK) return NULL;
    return zs_concat(ctx, parts, 2, 0);
}

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
    if (m->checkpoint) { /* CA recomputed in backward too: its 2B pairs' activations are ~75 MB at B = 2 */
        zs_tensor *both = zs_checkpoint(ctx, zs__zse_ca_ck, m, sa);                   /* [so; po] */
        so = zs_slice(ctx, both, 0, 0, 2 * B);
        po = zs_slice(ctx, both, 0, 2 * B, 4 * B);
        if (!so || !po) return NULL;
    } else if (zs_zse_ca(ctx, m, zs_slice(ctx, sa, 0, 0, 2 * B), zs_slice(ctx, sa, 0, 2 * B, 4 * B), &so, &po) != ZS_OK) {
        return NULL;
    }
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

ZS__FN double zs_zse_ret_distance(const float *a, const float *b, int d) {
    double na = 0, nb = 0, s = 0;
    int i;
    if (!a || !b || d <= 0) return 0.0;
    for (i = 0; i < d; i++) { na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
    na = sqrt(na) > 1e-12 ? sqrt(na) : 1e-12; /* F.normalize(eps=1e-12) */
    nb = sqrt(nb) > 1e-12 ? sqrt(nb) : 1e-12;
    for (i = 0; i < d; i++) { double t = a[i] / na - b[i] / nb; s += t * t; }
    return sqrt(s);
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
    st = zs_weights_open(path); /* safetensors or .pth, by content */
    if (!st) return ZS_ERR_FORMAT; /* the opener set the message */
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
        hits[i].rn_score = -1.0f; /* not scored (RN scores lie in (0,1)); no NaN: -ffast-math safe */
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


/* ==================================================================== */
/* [impl:tcn] ResNet backbones and the TCN model                        */
/* ==================================================================== */

/* ---- exp (missing from [api:ops]; needed by the entropy weights) ---- */
ZS__PRIV int zs__tcn_exp_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    const float *y = (const float *)out->data;
    int64_t i, n = zs_numel(a);
    float *ga;
    ZS__GRAD_OR_FAIL(ga, ctx, a);
    for (i = 0; ga && i < n; i++) ga[i] += out->grad[i] * y[i];
    return ZS_OK;
}

/* y = exp(a), elementwise (libm expf: exact to an ulp). */
ZS__PRIV zs_tensor *zs__tcn_exp(zs_ctx *ctx, zs_tensor *a) {
    zs_tensor *t;
    const float *x;
    float *y;
    int64_t i, n;
    if (!zs__ok1(ctx, a, "zs_exp")) return NULL;
    a = zs__contig(ctx, a);
    if (!a) return NULL;
    t = zs__op_new(ctx, "exp", zs__tcn_exp_bwd, a->ndim, a->shape, a, NULL, NULL, NULL);
    if (!t) return NULL;
    x = (const float *)a->data;
    y = (float *)t->data;
    n = zs_numel(a);
    for (i = 0; i < n; i++) y[i] = expf(x[i]);
    return t;
}

/* ---- config ---------------------------------------------------------- */

ZS__FN int zs_resnet_config_named(zs_resnet_config *c, const char *name) {
    static const int l18[4] = {2, 2, 2, 2}, l34[4] = {3, 4, 6, 3}, ltiny[4] = {1, 2, 1, 1};
    static const int p_full[4] = {64, 128, 256, 512}, p_tiny[4] = {4, 4, 8, 8};
    const int *l, *p;
    int i;
    if (!c || !name) return zs__fail(ZS_ERR_ARG, "zs_resnet_config_named: NULL argument");
    memset(c, 0, sizeof *c);
    c->stem = 64;
    c->num_classes = 1000;
    p = p_full;
    if (!strcmp(name, "resnet18")) { l = l18; c->bottleneck = 0; }
    else if (!strcmp(name, "resnet34")) { l = l34; c->bottleneck = 0; }
    else if (!strcmp(name, "resnet50")) { l = l34; c->bottleneck = 1; }
    else if (!strcmp(name, "tiny")) { l = ltiny; p = p_tiny; c->bottleneck = 1; c->stem = 8; c->num_classes = 10; }
    else return zs__fail(ZS_ERR_ARG, "zs_resnet_config_named: unknown \"%s\" (resnet18, resnet34, resnet50, tiny)", name);
    for (i = 0; i < 4; i++) { c->layers[i] = l[i]; c->planes[i] = p[i]; }
    return ZS_OK;
}

ZS__FN int zs_resnet_config_check(const zs_resnet_config *c) {
    int i;
    if (!c) return zs__fail(ZS_ERR_ARG, "resnet config: NULL");
    if (c->bottleneck != 0 && c->bottleneck != 1) return zs__fail(ZS_ERR_ARG, "resnet config: bottleneck must be 0 or 1, got %d", c->bottleneck);
    if (c->stem < 1 || c->stem > 65536) return zs__fail(ZS_ERR_ARG, "resnet config: stem width %d outside [1, 65536]", c->stem);
    for (i = 0; i < 4; i++) {
        if (c->layers[i] < 1 || c->layers[i] > ZS_RESNET_MAX_BLOCKS)
            return zs__fail(ZS_ERR_ARG, "resnet config: layer%d has %d blocks, need 1..%d", i + 1, c->layers[i], ZS_RESNET_MAX_BLOCKS);
        if (c->planes[i] < 1 || c->planes[i] > 65536)
            return zs__fail(ZS_ERR_ARG, "resnet config: layer%d width %d outside [1, 65536]", i + 1, c->planes[i]);
    }
    if (c->num_classes < 0 || c->num_classes > (1 << 24)) return zs__fail(ZS_ERR_ARG, "resnet config: num_classes %d outside [0, 2^24]", c->num_classes);
    return ZS_OK;
}

ZS__FN int zs_resnet_feature_dim(const zs_resnet_config *c) { return c ? c->planes[3] * (c->bottleneck ? 4 : 1) : 0; }

ZS__FN zs_tcn_config zs_tcn_config_default(void) {
    zs_tcn_config c;
    memset(&c, 0, sizeof c);
    zs_resnet_config_named(&c.backbone, "resnet50");
    c.backbone.num_classes = 0;
    c.dim = 64; c.n_classes = 100; c.kd_classes = 1000; c.wv_dim = 300;
    c.mssbn = 0; c.dropout = -1.0f; c.mssbn_eval_own_stats = 0;
    c.w_cls = 1.0f; c.w_kd = 1.0f; c.w_share = 1000.0f; c.w_sbh = 1.0f;
    c.img_size = 224;
    return c;
}

ZS__FN zs_tcn_config zs_tcn_config_tiny(void) {
    zs_tcn_config c = zs_tcn_config_default();
    zs_resnet_config_named(&c.backbone, "tiny");
    c.backbone.num_classes = 0;
    c.dim = 16; c.n_classes = 5; c.kd_classes = 10; c.wv_dim = 12;
    return c;
}

ZS__FN int zs_tcn_config_check(const zs_tcn_config *c) {
    int rc;
    if (!c) return zs__fail(ZS_ERR_ARG, "tcn config: NULL");
    if ((rc = zs_resnet_config_check(&c->backbone)) != ZS_OK) return rc;
    if (c->dim < 1 || c->dim > 65536 || c->n_classes < 1 || c->n_classes > (1 << 24) || c->kd_classes < 1 ||
        c->kd_classes > (1 << 24) || c->wv_dim < 1 || c->wv_dim > 65536)
        return zs__fail(ZS_ERR_ARG, "tcn config: dim %d, n_classes %d, kd_classes %d, wv_dim %d must be positive (and sane)", c->dim,
                        c->n_classes, c->kd_classes, c->wv_dim);
    if (c->mssbn != 0 && c->mssbn != 1) return zs__fail(ZS_ERR_ARG, "tcn config: mssbn must be 0 or 1");
    if (c->img_size < 16 || c->img_size > 4096) return zs__fail(ZS_ERR_ARG, "tcn config: img_size %d outside [16, 4096]", c->img_size);
    if (!(c->dropout < 1.0f)) return zs__fail(ZS_ERR_ARG, "tcn config: dropout %g must be < 1 (negative: release rule)", (double)c->dropout);
    if (!(c->w_cls >= 0.0f && c->w_kd >= 0.0f && c->w_share >= 0.0f && c->w_sbh >= 0.0f))
        return zs__fail(ZS_ERR_ARG, "tcn config: loss weights must be >= 0");
    return ZS_OK;
}

/* dropout p of the MSSBN head: release rule 0.5 if log2 D <= 6, else 0.7 */
ZS__PRIV float zs__tcn_dropout(const zs_tcn_config *c) {
    if (!c->mssbn) return 0.0f;
    if (c->dropout >= 0.0f) return c->dropout;
    return c->dim <= 64 ? 0.5f : 0.7f;
}

/* ---- declaration: one walk both declares (bind 0) and binds (bind 1) ---- */

typedef struct zs__rn_walk {
    zs_params *p;
    int bind;  /* 0: add tensors; 1: bind pointers from index j */
    int j;
    int bad;
} zs__rn_walk;

/* declare or bind one tensor; frozen marks running statistics */
ZS__PRIV zs_tensor *zs__rn_t(zs__rn_walk *w, int frozen, int nd, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 8, 9)))
#endif
    ;
ZS__PRIV zs_tensor *zs__rn_t(zs__rn_walk *w, int frozen, int nd, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...) {
    char name[160];
    int64_t s[4];
    va_list ap;
    int idx;
    if (w->bind) return &w->p->t[w->j++];
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
    idx = zs_params_add(w->p, name, nd, s);
    if (idx < 0) { w->bad = 1; return NULL; }
    if (frozen) zs_param_set_frozen(&w->p->t[idx], 1);
    return NULL;
}


/* running statistics of BN `mid` (full name prefix pre+mid) */
ZS__PRIV void zs__rn_bn(zs__rn_walk *w, zs_resnet_bn *bn, int64_t C, const char *pre, const char *mid) {
    bn->w = zs__rn_t(w, 0, 1, C, 0, 0, 0, "%s%s.weight", pre, mid);
    bn->b = zs__rn_t(w, 0, 1, C, 0, 0, 0, "%s%s.bias", pre, mid);
    bn->mean = zs__rn_t(w, 1, 1, C, 0, 0, 0, "%s%s.running_mean", pre, mid);
    bn->var = zs__rn_t(w, 1, 1, C, 0, 0, 0, "%s%s.running_var", pre, mid);
}

/* every tensor of a ResNet in torchvision's state-dict order, names prefixed */
ZS__PRIV void zs__rn_walk_net(zs__rn_walk *w, zs_resnet *r, const char *pre) {
    const zs_resnet_config *c = &r->cfg;
    int exp = c->bottleneck ? 4 : 1, nconv = c->bottleneck ? 3 : 2, s, i, q, k = 0;
    int64_t in = c->stem;
    char bp[192], nm[16];
    r->conv1 = zs__rn_t(w, 0, 4, c->stem, 3, 7, 7, "%sconv1.weight", pre);
    zs__rn_bn(w, &r->bn1, c->stem, pre, "bn1");
    for (s = 0; s < 4; s++)
        for (i = 0; i < c->layers[s]; i++) {
            zs_resnet_block *b = &r->blocks[k++];
            int64_t P = c->planes[s], out = P * exp;
            b->stride = (s > 0 && i == 0) ? 2 : 1;
            snprintf(bp, sizeof bp, "%slayer%d.%d.", pre, s + 1, i);
            memset(&b->bn[2], 0, sizeof b->bn[2]);
            b->conv[2] = NULL;
            for (q = 0; q < nconv; q++) {
                /* Bottleneck: 1x1 in->P, 3x3 P->P (stride), 1x1 P->4P;
                   BasicBlock: 3x3 in->P (stride), 3x3 P->P */
                int64_t o = (c->bottleneck && q == 2) ? out : P, ci = q == 0 ? in : P;
                int64_t ks = (c->bottleneck && q != 1) ? 1 : 3;
                b->conv[q] = zs__rn_t(w, 0, 4, o, ci, ks, ks, "%sconv%d.weight", bp, q + 1);
                snprintf(nm, sizeof nm, "bn%d", q + 1);
                zs__rn_bn(w, &b->bn[q], o, bp, nm);
            }
            if (b->stride != 1 || in != out) {
                b->down = zs__rn_t(w, 0, 4, out, in, 1, 1, "%sdownsample.0.weight", bp);
                zs__rn_bn(w, &b->down_bn, out, bp, "downsample.1");
            } else {
                b->down = NULL;
                memset(&b->down_bn, 0, sizeof b->down_bn);
            }
            in = out;
        }
    if (c->num_classes > 0) {
        r->fc_w = zs__rn_t(w, 0, 2, c->num_classes, in, 0, 0, "%sfc.weight", pre);
        r->fc_b = zs__rn_t(w, 0, 1, c->num_classes, 0, 0, 0, "%sfc.bias", pre);
    } else r->fc_w = r->fc_b = NULL;
}

/* structure of one net (blocks array); tensors are declared by the caller */
ZS__PRIV int zs__rn_setup(zs_resnet *r, const zs_resnet_config *c) {
    int s, rc;
    memset(r, 0, sizeof *r);
    if ((rc = zs_resnet_config_check(c)) != ZS_OK) return rc;
    r->cfg = *c;
    for (s = 0; s < 4; s++) r->n_blocks += c->layers[s];
    r->blocks = (zs_resnet_block *)zs__malloc(sizeof(zs_resnet_block) * (size_t)r->n_blocks, NULL);
    if (!r->blocks) return zs__fail(ZS_ERR_NOMEM, "resnet: out of memory");
    memset(r->blocks, 0, sizeof(zs_resnet_block) * (size_t)r->n_blocks);
    return ZS_OK;
}

ZS__FN void zs_resnet_free(zs_resnet *r) {
    if (!r) return;
    zs_params_free(&r->params);
    zs__free(r->blocks, NULL);
    memset(r, 0, sizeof *r);
}

/* standalone net: setup, declare, allocate, bind */
/* max_numel bounds the store before anything is allocated: a loader passes
   the file's float count, so a config inferred from a few small tensors
   cannot ask for more memory than the file could fill */
ZS__PRIV int zs__rn_create(zs_resnet *r, const zs_resnet_config *c, int with_grad, size_t max_numel) {
    zs__rn_walk w;
    int rc = zs__rn_setup(r, c);
    if (rc != ZS_OK) return rc;
    zs_params_init(&r->params, NULL);
    memset(&w, 0, sizeof w);
    w.p = &r->params;
    zs__rn_walk_net(&w, r, "");
    if (w.bad) { zs_resnet_free(r); return ZS_ERR_NOMEM; }
    if (r->params.numel > max_numel) {
        size_t n = r->params.numel;
        zs_resnet_free(r);
        return zs__fail(ZS_ERR_FORMAT, "resnet: the inferred config needs %zu floats but the file holds %zu", n, max_numel);
    }
    rc = with_grad ? zs_params_alloc(&r->params) : zs_params_alloc_data(&r->params);
    if (rc != ZS_OK) { zs_resnet_free(r); return rc; }
    w.bind = 1;
    zs__rn_walk_net(&w, r, "");
    return ZS_OK;
}

/* the conv weights of a net in state-dict order (pairs across encoders line up) */
ZS__PRIV int zs__rn_convs(const zs_resnet *r, zs_tensor **out, int cap) {
    int n = 0, k, q;
    if (n < cap) out[n] = r->conv1;
    n++;
    for (k = 0; k < r->n_blocks; k++) {
        const zs_resnet_block *b = &r->blocks[k];
        for (q = 0; q < 3; q++)
            if (b->conv[q]) { if (n < cap) out[n] = b->conv[q]; n++; }
        if (b->down) { if (n < cap) out[n] = b->down; n++; }
    }
    return n;
}

ZS__PRIV int zs__rn_bns(zs_resnet *r, zs_resnet_bn **out, int cap) {
    int n = 0, k, q;
    if (n < cap) out[n] = &r->bn1;
    n++;
    for (k = 0; k < r->n_blocks; k++) {
        zs_resnet_block *b = &r->blocks[k];
        for (q = 0; q < 3; q++)
            if (b->conv[q]) { if (n < cap) out[n] = &b->bn[q]; n++; }
        if (b->down) { if (n < cap) out[n] = &b->down_bn; n++; }
    }
    return n;
}

ZS__PRIV void zs__tcn_fill_uniform_seed(zs_tensor *t, uint64_t key, float bound) {
    int64_t i, n = zs_numel(t);
    float *x = (float *)t->data;
    for (i = 0; i < n; i++) x[i] = bound * (2.0f * zs__hash_uniform(key, (uint64_t)i) - 1.0f);
}

ZS__PRIV void zs__tcn_bn_reset(zs_resnet_bn *bn) {
    zs_tensor_fill(bn->w, 1.0f);
    zs_tensor_fill(bn->b, 0.0f);
    zs_tensor_fill(bn->mean, 0.0f);
    zs_tensor_fill(bn->var, 1.0f);
}

/* nn.Linear default: weight and bias U(-1/sqrt(in), 1/sqrt(in)) */
ZS__PRIV void zs__tcn_linear_init(zs_tensor *w, zs_tensor *b, uint64_t seed, uint64_t salt) {
    float bound = 1.0f / sqrtf((float)w->shape[1]);
    zs__tcn_fill_uniform_seed(w, zs__mix64(seed ^ zs__mix64(salt)), bound);
    if (b) zs__tcn_fill_uniform_seed(b, zs__mix64(seed ^ zs__mix64(salt + 1)), bound);
}

/* torchvision init: Kaiming normal (fan_out, relu) convs, BN 1/0, fc Linear default */
ZS__PRIV void zs__rn_init_values(zs_resnet *r, uint64_t seed) {
    zs_tensor *convs[512];
    zs_resnet_bn *bns[512];
    int n = zs__rn_convs(r, convs, 512), i;
    for (i = 0; i < n && i < 512; i++) {
        zs_tensor *t = convs[i];
        zs__fill_normal_seed(t, zs__mix64(seed ^ zs__mix64((uint64_t)i + 1)),
                             sqrtf(2.0f / (float)(t->shape[0] * t->shape[2] * t->shape[3])));
    }
    n = zs__rn_bns(r, bns, 512);
    for (i = 0; i < n && i < 512; i++) zs__tcn_bn_reset(bns[i]);
    if (r->fc_w) zs__tcn_linear_init(r->fc_w, r->fc_b, seed, 0xfc);
}

ZS__FN int zs_resnet_init(zs_resnet *r, const zs_resnet_config *c, int with_grad, uint64_t seed) {
    int rc;
    if (!r) return zs__fail(ZS_ERR_ARG, "zs_resnet_init: NULL net");
    if ((rc = zs__rn_create(r, c, with_grad, (size_t)-1)) != ZS_OK) return rc;
    if (4 * r->n_blocks + 1 > 512) { zs_resnet_free(r); return zs__fail(ZS_ERR_ARG, "zs_resnet_init: too many blocks"); }
    zs__rn_init_values(r, seed);
    return ZS_OK;
}

/* ---- forward --------------------------------------------------------- */

ZS__PRIV zs_tensor *zs__rn_bn_apply(zs_ctx *ctx, const zs_resnet_bn *bn, zs_tensor *x) {
    return zs_batch_norm(ctx, x, bn->w, bn->b, bn->mean, bn->var, ZS_RESNET_BN_MOMENTUM, ZS_RESNET_BN_EPS);
}

ZS__PRIV zs_tensor *zs__rn_block(zs_ctx *ctx, const zs_resnet_config *c, zs_resnet_block *b, zs_tensor *x) {
    int s = b->stride;
    zs_tensor *o, *id;
    if (c->bottleneck) {
        o = zs_relu(ctx, zs__rn_bn_apply(ctx, &b->bn[0], zs_conv2d(ctx, x, b->conv[0], NULL, 1, 1, 0, 0)));
        o = zs_relu(ctx, zs__rn_bn_apply(ctx, &b->bn[1], zs_conv2d(ctx, o, b->conv[1], NULL, s, s, 1, 1)));
        o = zs__rn_bn_apply(ctx, &b->bn[2], zs_conv2d(ctx, o, b->conv[2], NULL, 1, 1, 0, 0));
    } else {
        o = zs_relu(ctx, zs__rn_bn_apply(ctx, &b->bn[0], zs_conv2d(ctx, x, b->conv[0], NULL, s, s, 1, 1)));
        o = zs__rn_bn_apply(ctx, &b->bn[1], zs_conv2d(ctx, o, b->conv[1], NULL, 1, 1, 1, 1));
    }
    id = b->down ? zs__rn_bn_apply(ctx, &b->down_bn, zs_conv2d(ctx, x, b->down, NULL, s, s, 0, 0)) : x;
    return zs_relu(ctx, zs_add(ctx, o, id));
}

ZS__PRIV zs_tensor *zs__rn_stem(zs_ctx *ctx, zs_resnet *r, zs_tensor *x) {
    x = zs_relu(ctx, zs__rn_bn_apply(ctx, &r->bn1, zs_conv2d(ctx, x, r->conv1, NULL, 2, 2, 3, 3)));
    return zs_max_pool2d(ctx, x, 3, 2, 1);
}

/* Checkpointed block. zs_checkpoint calls this once without gradients
   (the forward) and again with them in backward (the recompute): the
   recompute runs in the forward's mode and puts the block's running
   statistics back afterwards, so they are updated exactly once. */
typedef struct zs__rn_ckpt { const zs_resnet_config *cfg; zs_resnet_block *b; int training; } zs__rn_ckpt;

ZS__PRIV zs_tensor *zs__rn_ckpt_fn(zs_ctx *ctx, void *user, zs_tensor *x) {
    zs__rn_ckpt *u = (zs__rn_ckpt *)user;
    zs_resnet_bn *bns[4];
    float *save;
    int n = 0, q, i, old;
    size_t off = 0, tot = 0;
    zs_tensor *y;
    if (!ctx->grad_enabled) return zs__rn_block(ctx, u->cfg, u->b, x);
    for (q = 0; q < 3; q++) if (u->b->conv[q]) bns[n++] = &u->b->bn[q];
    if (u->b->down) bns[n++] = &u->b->down_bn;
    for (i = 0; i < n; i++) tot += 2 * (size_t)zs_numel(bns[i]->mean);
    save = (float *)zs__arena_alloc(&ctx->arena, tot * sizeof(float) + 4);
    if (!save) { zs__fail(ZS_ERR_NOMEM, "resnet checkpoint: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    for (i = 0; i < n; i++) {
        size_t c = (size_t)zs_numel(bns[i]->mean);
        memcpy(save + off, bns[i]->mean->data, c * sizeof(float));
        memcpy(save + off + c, bns[i]->var->data, c * sizeof(float));
        off += 2 * c;
    }
    old = zs_set_training(ctx, u->training);
    y = zs__rn_block(ctx, u->cfg, u->b, x);
    zs_set_training(ctx, old);
    for (off = 0, i = 0; i < n; i++) {
        size_t c = (size_t)zs_numel(bns[i]->mean);
        memcpy(bns[i]->mean->data, save + off, c * sizeof(float));
        memcpy(bns[i]->var->data, save + off + c, c * sizeof(float));
        off += 2 * c;
    }
    return y;
}

/* does a forward of r on x record anything? */
ZS__PRIV int zs__rn_recording(zs_ctx *ctx, zs_resnet *r, zs_tensor *x) {
    zs_tensor *convs[512];
    zs_resnet_bn *bns[512];
    int i, n;
    if (!ctx->grad_enabled) return 0;
    if (zs__needs_grad(x)) return 1;
    n = zs__rn_convs(r, convs, 512);
    for (i = 0; i < n && i < 512; i++) if (zs__needs_grad(convs[i])) return 1;
    n = zs__rn_bns(r, bns, 512);
    for (i = 0; i < n && i < 512; i++) if (zs__needs_grad(bns[i]->w) || zs__needs_grad(bns[i]->b)) return 1;
    return 0;
}

ZS__PRIV int64_t zs__rn_odim(int64_t n, int64_t k, int64_t s, int64_t p) { return (n + 2 * p - k) / s + 1; }

/* Without a tape, keep only the result: it is copied into a tensor made
   before the mark, then everything the step allocated is released. */
ZS__PRIV zs_tensor *zs__rn_keep(zs_ctx *ctx, zs_tensor *hold, zs_mark mk, zs_tensor *y) {
    if (hold && y && zs_numel(hold) == zs_numel(y) && zs_is_contiguous(y)) {
        memcpy(hold->data, y->data, (size_t)zs_numel(y) * sizeof(float));
        zs_ctx_release(ctx, mk);
        return hold;
    }
    if (hold && y) {
        zs__fail(ZS_ERR_STATE, "resnet: internal shape mismatch");
        zs__op_fail(ctx, ZS_ERR_STATE);
    }
    zs_ctx_release(ctx, mk);
    return NULL;
}

ZS__FN zs_tensor *zs_resnet_features(zs_ctx *ctx, zs_resnet *r, zs_tensor *x) {
    int rec, k, s, i;
    int64_t sh[4];
    zs_mark mk;
    zs_tensor *hold;
    if (!ctx || !r || !x) return NULL;
    if (!r->conv1) { zs__fail(ZS_ERR_STATE, "zs_resnet_features: net not initialised"); return zs__op_fail(ctx, ZS_ERR_STATE); }
    if (x->ndim != 4 || x->shape[1] != 3) return zs__shape_fail(ctx, "zs_resnet_features", x, NULL, "images must be [B,3,H,W]");
    rec = zs__rn_recording(ctx, r, x);
    if (rec) x = zs__rn_stem(ctx, r, x);
    else {
        sh[0] = x->shape[0]; sh[1] = r->cfg.stem;
        sh[2] = zs__rn_odim(zs__rn_odim(x->shape[2], 7, 2, 3), 3, 2, 1);
        sh[3] = zs__rn_odim(zs__rn_odim(x->shape[3], 7, 2, 3), 3, 2, 1);
        hold = sh[2] > 0 && sh[3] > 0 ? zs_tensor_new(ctx, ZS_F32, 4, sh) : NULL;
        mk = zs_ctx_mark(ctx);
        x = zs__rn_keep(ctx, hold, mk, zs__rn_stem(ctx, r, x));
    }
    for (k = 0, s = 0; s < 4; s++)
        for (i = 0; i < r->cfg.layers[s]; i++, k++) {
            zs_resnet_block *b = &r->blocks[k];
            if (!x) return NULL;
            if (rec && r->checkpoint) {
                zs__rn_ckpt *u = (zs__rn_ckpt *)zs__arena_alloc(&ctx->arena, sizeof(zs__rn_ckpt));
                if (!u) { zs__fail(ZS_ERR_NOMEM, "resnet: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
                u->cfg = &r->cfg; u->b = b; u->training = ctx->training;
                x = zs_checkpoint(ctx, zs__rn_ckpt_fn, u, x);
                continue;
            }
            if (rec) { x = zs__rn_block(ctx, &r->cfg, b, x); continue; }
            sh[0] = x->shape[0];
            sh[1] = (int64_t)r->cfg.planes[s] * (r->cfg.bottleneck ? 4 : 1);
            sh[2] = zs__rn_odim(x->shape[2], 3, b->stride, 1);
            sh[3] = zs__rn_odim(x->shape[3], 3, b->stride, 1);
            hold = zs_tensor_new(ctx, ZS_F32, 4, sh);
            mk = zs_ctx_mark(ctx);
            x = zs__rn_keep(ctx, hold, mk, zs__rn_block(ctx, &r->cfg, b, x));
        }
    return zs_avg_pool_global(ctx, x);
}

ZS__FN zs_tensor *zs_resnet_forward(zs_ctx *ctx, zs_resnet *r, zs_tensor *x) {
    zs_tensor *f = zs_resnet_features(ctx, r, x);
    if (!f || !r->fc_w) return f;
    return zs_linear(ctx, f, r->fc_w, r->fc_b);
}

/* ---- weight files ------------------------------------------------------ */

/* An open safetensors file with every name normalised: "module" components
   (DataParallel) removed wherever they appear. */
typedef struct zs__tcn_file {
    zs_safetensors *st;
    int n;
    char **names;
    unsigned char *seen;
} zs__tcn_file;

ZS__PRIV void zs__tcn_file_close(zs__tcn_file *f) {
    int i;
    for (i = 0; f->names && i < f->n; i++) zs__free(f->names[i], NULL);
    zs__free(f->names, NULL);
    zs__free(f->seen, NULL);
    if (f->st) zs_st_close(f->st);
    memset(f, 0, sizeof *f);
}

ZS__PRIV int zs__tcn_file_open(zs__tcn_file *f, const char *path) {
    int i;
    memset(f, 0, sizeof *f);
    f->st = zs_weights_open(path); /* safetensors or a torch.save .pth */
    if (!f->st) return ZS_ERR_FORMAT; /* message set */
    f->n = zs_st_count(f->st);
    f->names = (char **)zs__malloc(sizeof(char *) * (size_t)(f->n ? f->n : 1), NULL);
    f->seen = (unsigned char *)zs__malloc((size_t)(f->n ? f->n : 1), NULL);
    if (!f->names || !f->seen) { zs__tcn_file_close(f); return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", path); }
    memset(f->names, 0, sizeof(char *) * (size_t)(f->n ? f->n : 1));
    memset(f->seen, 0, (size_t)(f->n ? f->n : 1));
    for (i = 0; i < f->n; i++) {
        const char *src = zs_st_get(f->st, i)->name;
        size_t L = strlen(src), o = 0;
        char *dst = (char *)zs__malloc(L + 1, NULL);
        if (!dst) { zs__tcn_file_close(f); return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", path); }
        while (*src) {
            const char *e = strchr(src, '.');
            size_t cl = e ? (size_t)(e - src) : strlen(src);
            if (!(cl == 6 && !strncmp(src, "module", 6))) {
                if (o) dst[o++] = '.';
                memcpy(dst + o, src, cl);
                o += cl;
            }
            src += cl;
            if (*src == '.') src++;
        }
        dst[o] = 0;
        f->names[i] = dst;
    }
    return ZS_OK;
}

/* total element count of the file's tensors (each bounded by the file size) */
ZS__PRIV size_t zs__tcn_file_floats(const zs__tcn_file *f) {
    size_t s = 0;
    int i;
    for (i = 0; i < f->n; i++) s += (size_t)zs_st_get(f->st, i)->numel;
    return s;
}

ZS__PRIV int zs__tcn_file_find(const zs__tcn_file *f, const char *name) {
    int i;
    for (i = 0; i < f->n; i++) if (!strcmp(f->names[i], name)) return i;
    return -1;
}

ZS__PRIV const zs_st_info *zs__tcn_file_info(const zs__tcn_file *f, const char *fmt, const char *a, const char *b) {
    char name[256];
    int i;
    snprintf(name, sizeof name, fmt, a, b);
    i = zs__tcn_file_find(f, name);
    return i < 0 ? NULL : zs_st_get(f->st, i);
}

typedef struct zs__tcn_report { char text[1024]; size_t n; int problems; } zs__tcn_report;

ZS__PRIV void zs__tcn_note(zs__tcn_report *r, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
ZS__PRIV void zs__tcn_note(zs__tcn_report *r, const char *fmt, ...) {
    va_list ap;
    r->problems++;
    if (r->n >= sizeof r->text) return;
    va_start(ap, fmt);
    r->n += (size_t)vsnprintf(r->text + r->n, sizeof r->text - r->n, fmt, ap);
    va_end(ap);
}

/* read tensor `name` of the file into p; returns 1 if found */
ZS__PRIV int zs__tcn_read(zs__tcn_file *f, zs_tensor *p, const char *name, int optional, zs__tcn_report *rep) {
    const zs_st_info *t;
    int i = zs__tcn_file_find(f, name), d, same;
    if (i < 0) {
        if (!optional) zs__tcn_note(rep, " missing %s;", name);
        return 0;
    }
    f->seen[i] = 1;
    t = zs_st_get(f->st, i);
    same = t->ndim == p->ndim;
    for (d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (!same) {
        char a[96];
        zs__tcn_note(rep, " %s has shape %s in the model but %d dims [%lld,...] in the file;", name, zs_shape_str(p, a, sizeof a), t->ndim,
                     t->ndim ? (long long)t->shape[0] : 0LL);
        return 1;
    }
    if (t->type == ZS_TYPE_COUNT) { zs__tcn_note(rep, " %s has unsupported dtype %s;", name, t->dtype); return 1; }
    if (zs_st_read(f->st, t, p->data, ZS_F32, (size_t)zs_numel(p)) != ZS_OK) zs__tcn_note(rep, " %s: %s;", name, zs_last_error());
    return 1;
}

ZS__PRIV int zs__tcn_is_nbt(const char *n) { return strstr(n, "num_batches_tracked") != NULL; }

/* every tensor under prefix not read (num_batches_tracked excepted) */
ZS__PRIV void zs__tcn_unexpected(const zs__tcn_file *f, const char *prefix, zs__tcn_report *rep) {
    int i;
    size_t L = strlen(prefix);
    for (i = 0; i < f->n; i++)
        if (!f->seen[i] && !strncmp(f->names[i], prefix, L) && !zs__tcn_is_nbt(f->names[i]))
            zs__tcn_note(rep, " unexpected %s;", zs_st_get(f->st, i)->name);
}

/* backbone config from the shapes under prefix */
ZS__PRIV int zs__rn_infer(const zs__tcn_file *f, const char *pre, const char *path, zs_resnet_config *c) {
    const zs_st_info *t;
    char mid[64];
    int s, i;
    memset(c, 0, sizeof *c);
    t = zs__tcn_file_info(f, "%s%s", pre, "conv1.weight");
    if (!t || t->ndim != 4 || t->shape[1] != 3 || t->shape[2] != 7 || t->shape[3] != 7 || t->shape[0] < 1 || t->shape[0] > 65536)
        return zs__fail(ZS_ERR_FORMAT, "%s: no %sconv1.weight [C,3,7,7]: not a torchvision ResNet under prefix \"%s\"", path, pre, pre);
    c->stem = (int)t->shape[0];
    c->bottleneck = zs__tcn_file_info(f, "%s%s", pre, "layer1.0.conv3.weight") != NULL;
    for (s = 0; s < 4; s++) {
        for (i = 0; i < ZS_RESNET_MAX_BLOCKS; i++) {
            snprintf(mid, sizeof mid, "layer%d.%d.conv1.weight", s + 1, i);
            if (!zs__tcn_file_info(f, "%s%s", pre, mid)) break;
        }
        if (i == 0) return zs__fail(ZS_ERR_FORMAT, "%s: no %slayer%d.0.conv1.weight", path, pre, s + 1);
        c->layers[s] = i;
        snprintf(mid, sizeof mid, "layer%d.0.conv1.weight", s + 1);
        t = zs__tcn_file_info(f, "%s%s", pre, mid);
        if (t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 65536) return zs__fail(ZS_ERR_FORMAT, "%s: %s%s is not a conv weight", path, pre, mid);
        c->planes[s] = (int)t->shape[0];
    }
    t = zs__tcn_file_info(f, "%s%s", pre, "fc.weight");
    c->num_classes = 0;
    if (t) {
        if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > (1 << 24)) return zs__fail(ZS_ERR_FORMAT, "%s: %sfc.weight is not [classes,F]", path, pre);
        c->num_classes = (int)t->shape[0];
    }
    return ZS_OK;
}

ZS__FN int zs_resnet_load(zs_resnet *r, const char *path, const char *prefix, int with_grad) {
    zs__tcn_file f;
    zs__tcn_report rep;
    zs_resnet_config c;
    char name[256];
    int rc, i;
    if (!r || !path) return zs__fail(ZS_ERR_ARG, "zs_resnet_load: NULL argument");
    memset(r, 0, sizeof *r);
    if (!prefix) prefix = "";
    if ((rc = zs__tcn_file_open(&f, path)) != ZS_OK) return rc;
    if ((rc = zs__rn_infer(&f, prefix, path, &c)) != ZS_OK || (rc = zs__rn_create(r, &c, with_grad, zs__tcn_file_floats(&f))) != ZS_OK) {
        zs__tcn_file_close(&f);
        return rc;
    }
    memset(&rep, 0, sizeof rep);
    for (i = 0; i < r->params.count; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, r->params.t[i].name);
        zs__tcn_read(&f, &r->params.t[i], name, 0, &rep);
    }
    zs__tcn_unexpected(&f, prefix, &rep);
    zs__tcn_file_close(&f);
    if (rep.problems) {
        zs_resnet_free(r);
        return zs__fail(ZS_ERR_FORMAT, "%s: %d tensor problem%s:%s", path, rep.problems, rep.problems > 1 ? "s" : "", rep.text);
    }
    return ZS_OK;
}

/* every tensor of a store as F32 under its own name */
ZS__PRIV int zs__tcn_save_store(const zs_params *p, const char *path, const char *what, const char *config) {
    zs_st_entry *e;
    const char *meta[7];
    int i, rc;
    if (!p->data) return zs__fail(ZS_ERR_STATE, "%s: model not initialised", what);
    e = (zs_st_entry *)zs__malloc(sizeof(zs_st_entry) * (size_t)(p->count ? p->count : 1), NULL);
    if (!e) return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", what);
    for (i = 0; i < p->count; i++) {
        e[i].name = p->t[i].name;
        e[i].type = ZS_F32;
        e[i].ndim = p->t[i].ndim;
        e[i].shape = p->t[i].shape;
        e[i].data = p->t[i].data;
    }
    meta[0] = "format"; meta[1] = "pt"; meta[2] = NULL;
    if (config) { /* lets a program tell a TCN file from other weights without guessing */
        meta[2] = "zsesbir.model"; meta[3] = "tcn"; meta[4] = "zsesbir.config"; meta[5] = config; meta[6] = NULL;
    }
    rc = zs_st_save(path, e, p->count, meta);
    zs__free(e, NULL);
    return rc;
}

ZS__FN int zs_resnet_save(const zs_resnet *r, const char *path) {
    if (!r || !path) return zs__fail(ZS_ERR_ARG, "zs_resnet_save: NULL argument");
    return zs__tcn_save_store(&r->params, path, "zs_resnet_save", NULL);
}

/* ==== TCN ================================================================ */

ZS__PRIV void zs__tcn_walk(zs__rn_walk *w, zs_tcn *m) {
    const zs_tcn_config *c = &m->cfg;
    int64_t D = c->dim, F = zs_resnet_feature_dim(&c->backbone);
    zs__rn_walk_net(w, &m->enc[0], "sketch.");
    zs__rn_walk_net(w, &m->enc[1], "image.");
    m->hash_w = zs__rn_t(w, 0, 2, D, F, 0, 0, "fc.fc_hash.0.weight");
    m->hash_b = zs__rn_t(w, 0, 1, D, 0, 0, 0, "fc.fc_hash.0.bias");
    if (!c->mssbn) {
        m->bn_w = zs__rn_t(w, 0, 1, D, 0, 0, 0, "fc.fc_hash.1.weight");
        m->bn_b = zs__rn_t(w, 0, 1, D, 0, 0, 0, "fc.fc_hash.1.bias");
        m->bn_mean[0] = m->bn_mean[1] = zs__rn_t(w, 1, 1, D, 0, 0, 0, "fc.fc_hash.1.running_mean");
        m->bn_var[0] = m->bn_var[1] = zs__rn_t(w, 1, 1, D, 0, 0, 0, "fc.fc_hash.1.running_var");
    } else {
        /* MSSBN buffers in the release's state-dict order */
        m->bn_w = zs__rn_t(w, 0, 1, D, 0, 0, 0, "fc.bn.weight");
        m->bn_b = zs__rn_t(w, 0, 1, D, 0, 0, 0, "fc.bn.bias");
        m->bn_mean[0] = zs__rn_t(w, 1, 1, D, 0, 0, 0, "fc.bn.running_mean_sketch");
        m->bn_var[0] = zs__rn_t(w, 1, 1, D, 0, 0, 0, "fc.bn.running_var_sketch");
        m->bn_mean[1] = zs__rn_t(w, 1, 1, D, 0, 0, 0, "fc.bn.running_mean_image");
        m->bn_var[1] = zs__rn_t(w, 1, 1, D, 0, 0, 0, "fc.bn.running_var_image");
    }
    m->cls_w = zs__rn_t(w, 0, 2, c->n_classes, D, 0, 0, "fc.fc_cls.weight");
    m->cls_b = zs__rn_t(w, 0, 1, c->n_classes, 0, 0, 0, "fc.fc_cls.bias");
    m->kd_w = zs__rn_t(w, 0, 2, c->kd_classes, D, 0, 0, "fc.fc_kd.weight");
    m->kd_b = zs__rn_t(w, 0, 1, c->kd_classes, 0, 0, 0, "fc.fc_kd.bias");
    m->sbh_w = zs__rn_t(w, 0, 2, D, c->wv_dim, 0, 0, "sbh.fc.weight");
    m->sbh_b = zs__rn_t(w, 0, 1, D, 0, 0, 0, "sbh.fc.bias");
}

ZS__FN void zs_tcn_free(zs_tcn *m) {
    if (!m) return;
    zs_params_free(&m->params);
    zs__free(m->enc[0].blocks, NULL);
    zs__free(m->enc[1].blocks, NULL);
    memset(m, 0, sizeof *m);
}

ZS__PRIV int zs__tcn_create(zs_tcn *m, const zs_tcn_config *c, int with_grad, size_t max_numel) {
    zs__rn_walk w;
    zs_resnet_config bc;
    int rc, k;
    memset(m, 0, sizeof *m);
    if ((rc = zs_tcn_config_check(c)) != ZS_OK) return rc;
    m->cfg = *c;
    bc = c->backbone;
    bc.num_classes = 0; /* encoders have no fc */
    m->cfg.backbone = bc;
    if (4 * (bc.layers[0] + bc.layers[1] + bc.layers[2] + bc.layers[3]) + 1 > 512)
        return zs__fail(ZS_ERR_ARG, "tcn config: too many blocks");
    for (k = 0; k < 2; k++)
        if ((rc = zs__rn_setup(&m->enc[k], &bc)) != ZS_OK) { zs_tcn_free(m); return rc; }
    zs_params_init(&m->params, NULL);
    memset(&w, 0, sizeof w);
    w.p = &m->params;
    zs__tcn_walk(&w, m);
    if (w.bad) { zs_tcn_free(m); return ZS_ERR_NOMEM; }
    if (m->params.numel > max_numel) {
        size_t n = m->params.numel;
        zs_tcn_free(m);
        return zs__fail(ZS_ERR_FORMAT, "tcn: the inferred config needs %zu floats but the file holds %zu", n, max_numel);
    }
    rc = with_grad ? zs_params_alloc(&m->params) : zs_params_alloc_data(&m->params);
    if (rc != ZS_OK) { zs_tcn_free(m); return rc; }
    w.bind = 1;
    zs__tcn_walk(&w, m);
    return ZS_OK;
}

ZS__PRIV void zs__tcn_init_sbh(zs_tcn *m, uint64_t seed) { zs__tcn_linear_init(m->sbh_w, m->sbh_b, seed, 0x5b4); }

ZS__FN int zs_tcn_init(zs_tcn *m, const zs_tcn_config *c, int with_grad, uint64_t seed) {
    int rc, i, i1, i2;
    zs_resnet_bn hb;
    if (!m) return zs__fail(ZS_ERR_ARG, "zs_tcn_init: NULL model");
    if ((rc = zs__tcn_create(m, c, with_grad, (size_t)-1)) != ZS_OK) return rc;
    zs__rn_init_values(&m->enc[0], seed);
    /* both encoders start from the same weights (SPEC 2.1) */
    i1 = (int)(m->enc[1].conv1 - m->params.t);
    i2 = (int)(m->hash_w - m->params.t);
    for (i = i1; i < i2; i++) memcpy(m->params.t[i].data, m->params.t[i - i1].data, (size_t)zs_numel(&m->params.t[i]) * sizeof(float));
    zs__tcn_linear_init(m->hash_w, m->hash_b, seed, 0x4a5);
    zs__tcn_linear_init(m->cls_w, m->cls_b, seed, 0xc15);
    zs__tcn_linear_init(m->kd_w, m->kd_b, seed, 0x6d);
    zs__tcn_init_sbh(m, seed);
    hb.w = m->bn_w; hb.b = m->bn_b; hb.mean = m->bn_mean[0]; hb.var = m->bn_var[0];
    zs__tcn_bn_reset(&hb);
    zs_tensor_fill(m->bn_mean[1], 0.0f);
    zs_tensor_fill(m->bn_var[1], 1.0f);
    return ZS_OK;
}

ZS__FN int zs_tcn_load_backbone(zs_tcn *m, const char *path, const char *prefix) {
    zs__tcn_file f;
    zs__tcn_report rep;
    char name[256];
    int rc, k, i, lo[2], hi[2];
    static const char *skip[2] = {"sketch.", "image."};
    if (!m || !path || !m->params.data) return zs__fail(ZS_ERR_ARG, "zs_tcn_load_backbone: NULL or uninitialised argument");
    if (!prefix) prefix = "";
    if ((rc = zs__tcn_file_open(&f, path)) != ZS_OK) return rc;
    memset(&rep, 0, sizeof rep);
    lo[0] = 0;
    lo[1] = hi[0] = (int)(m->enc[1].conv1 - m->params.t);
    hi[1] = (int)(m->hash_w - m->params.t);
    for (k = 0; k < 2; k++)
        for (i = lo[k]; i < hi[k]; i++) {
            snprintf(name, sizeof name, "%s%s", prefix, m->params.t[i].name + strlen(skip[k]));
            zs__tcn_read(&f, &m->params.t[i], name, 0, &rep);
        }
    zs__tcn_file_close(&f);
    if (rep.problems) return zs__fail(ZS_ERR_FORMAT, "%s: %d tensor problem%s:%s", path, rep.problems, rep.problems > 1 ? "s" : "", rep.text);
    return ZS_OK;
}

ZS__FN int zs_tcn_load(zs_tcn *m, const char *path, int with_grad) {
    zs__tcn_file f;
    zs__tcn_report rep;
    zs_tcn_config c = zs_tcn_config_default();
    const zs_st_info *t;
    int rc, i, have_sbh = 0;
    if (!m || !path) return zs__fail(ZS_ERR_ARG, "zs_tcn_load: NULL argument");
    memset(m, 0, sizeof *m);
    if ((rc = zs__tcn_file_open(&f, path)) != ZS_OK) return rc;
    rc = zs__rn_infer(&f, "sketch.", path, &c.backbone);
    if (rc == ZS_OK) {
        t = zs__tcn_file_info(&f, "%s%s", "fc.fc_hash.0", ".weight");
        if (!t || t->ndim != 2) rc = zs__fail(ZS_ERR_FORMAT, "%s: no fc.fc_hash.0.weight [D,F]: not a TCN checkpoint", path);
        else c.dim = (int)t->shape[0];
    }
    if (rc == ZS_OK) {
        t = zs__tcn_file_info(&f, "%s%s", "fc.fc_cls", ".weight");
        if (!t || t->ndim != 2) rc = zs__fail(ZS_ERR_FORMAT, "%s: no fc.fc_cls.weight [classes,D]", path);
        else c.n_classes = (int)t->shape[0];
    }
    if (rc == ZS_OK) {
        t = zs__tcn_file_info(&f, "%s%s", "fc.fc_kd", ".weight");
        if (!t || t->ndim != 2) rc = zs__fail(ZS_ERR_FORMAT, "%s: no fc.fc_kd.weight [classes,D]", path);
        else c.kd_classes = (int)t->shape[0];
    }
    if (rc == ZS_OK) {
        const char *meta = zs_st_metadata(f.st, "zsesbir.config"), *sz = meta ? strstr(meta, " size=") : NULL;
        if (sz && (c.img_size = atoi(sz + 6)) < 16) c.img_size = 224; /* checked again by the config check */
        c.mssbn = zs__tcn_file_info(&f, "%s%s", "fc.bn", ".weight") != NULL;
        t = zs__tcn_file_info(&f, "%s%s", "sbh.fc", ".weight");
        if (t && t->ndim == 2) c.wv_dim = (int)t->shape[1];
        /* sbh.* may be absent: allow for it on top of the file's floats */
        rc = zs__tcn_create(m, &c, with_grad, zs__tcn_file_floats(&f) + (size_t)c.dim * (size_t)(c.wv_dim + 1));
    }
    if (rc != ZS_OK) { zs__tcn_file_close(&f); return rc; }
    memset(&rep, 0, sizeof rep);
    for (i = 0; i < m->params.count; i++) {
        zs_tensor *p = &m->params.t[i];
        int opt = !strncmp(p->name, "sbh.", 4);
        int got = zs__tcn_read(&f, p, p->name, opt, &rep);
        if (opt && got) have_sbh++;
    }
    if (have_sbh == 1) zs__tcn_note(&rep, " only one of sbh.fc.weight / sbh.fc.bias;");
    if (!have_sbh) zs__tcn_init_sbh(m, 0); /* training from a released file: fresh projection */
    zs__tcn_unexpected(&f, "", &rep);
    zs__tcn_file_close(&f);
    if (rep.problems) {
        zs_tcn_free(m);
        return zs__fail(ZS_ERR_FORMAT, "%s: %d tensor problem%s:%s", path, rep.problems, rep.problems > 1 ? "s" : "", rep.text);
    }
    return ZS_OK;
}

ZS__FN int zs_tcn_save(const zs_tcn *m, const char *path) {
    char cfg[512];
    if (!m || !path) return zs__fail(ZS_ERR_ARG, "zs_tcn_save: NULL argument");
    if (zs_tcn_config_format(&m->cfg, cfg, sizeof cfg) != ZS_OK) return ZS_ERR_ARG;
    return zs__tcn_save_store(&m->params, path, "zs_tcn_save", cfg);
}

ZS__FN int zs_tcn_set_heads(zs_tcn *m, const float *hash_w, const float *kd_w, const float *kd_b) {
    if (!m || !m->params.data) return zs__fail(ZS_ERR_ARG, "zs_tcn_set_heads: model not initialised");
    if (hash_w) memcpy(m->hash_w->data, hash_w, (size_t)zs_numel(m->hash_w) * sizeof(float));
    if (kd_w) memcpy(m->kd_w->data, kd_w, (size_t)zs_numel(m->kd_w) * sizeof(float));
    if (kd_b) memcpy(m->kd_b->data, kd_b, (size_t)zs_numel(m->kd_b) * sizeof(float));
    return ZS_OK;
}

/* ---- forward and losses ------------------------------------------------ */

ZS__FN zs_tensor *zs_tcn_encode(zs_ctx *ctx, zs_tcn *m, zs_tensor *img, int is_sketch) {
    int st = is_sketch ? 0 : 1;
    zs_tensor *h;
    if (!ctx || !m || !img) return NULL;
    /* (quirk) the release embeds photos through the sketch statistics at test time */
    if (!ctx->training && m->cfg.mssbn && !m->cfg.mssbn_eval_own_stats) st = 0;
    h = zs_linear(ctx, zs_resnet_features(ctx, &m->enc[is_sketch ? 0 : 1], img), m->hash_w, m->hash_b);
    h = zs_batch_norm(ctx, h, m->bn_w, m->bn_b, m->bn_mean[st], m->bn_var[st], ZS_RESNET_BN_MOMENTUM, ZS_RESNET_BN_EPS);
    if (m->cfg.mssbn) h = zs_dropout(ctx, h, zs__tcn_dropout(&m->cfg));
    return h;
}

ZS__FN int zs_tcn_embed(zs_ctx *ctx, zs_tcn *m, zs_tensor *img, int is_sketch, float *out) {
    zs_mark mk;
    zs_tensor *e;
    int ot, og, rc = ZS_OK;
    if (!ctx || !m || !img || !out) return zs__fail(ZS_ERR_ARG, "zs_tcn_embed: NULL argument");
    mk = zs_ctx_mark(ctx);
    ot = zs_set_training(ctx, 0);
    og = zs_set_grad_enabled(ctx, 0);
    e = zs_l2_normalize(ctx, zs_tcn_encode(ctx, m, img, is_sketch), 1e-12f);
    if (e) memcpy(out, e->data, (size_t)zs_numel(e) * sizeof(float));
    else rc = zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE;
    zs_set_grad_enabled(ctx, og);
    zs_set_training(ctx, ot);
    zs_ctx_release(ctx, mk);
    return rc;
}

ZS__FN zs_tensor *zs_tcn_share_loss(zs_ctx *ctx, zs_tcn *m) {
    zs_tensor *a[512], *b[512], *s = NULL;
    int n, i;
    if (!ctx || !m) return NULL;
    n = zs__rn_convs(&m->enc[0], a, 512);
    zs__rn_convs(&m->enc[1], b, 512);
    for (i = 0; i < n && i < 512; i++) {
        zs_tensor *d = zs_frobenius(ctx, zs_sub(ctx, a[i], b[i]));
        s = s ? zs_add(ctx, s, d) : d;
    }
    return s;
}

/* constant arena tensor [n,1] */
ZS__PRIV zs_tensor *zs__tcn_col(zs_ctx *ctx, int64_t n) {
    int64_t s[2];
    s[0] = n; s[1] = 1;
    return zs_tensor_new(ctx, ZS_F32, 2, s);
}

ZS__FN zs_tensor *zs_tcn_semantic_loss(zs_ctx *ctx, zs_tcn *m, zs_tensor *x, const int32_t *labels, const float *wv,
                                       const float *alpha) {
    static const char *who = "zs_tcn_semantic_loss";
    int64_t N, i, j, s2[2];
    zs_tensor *wvt, *a, *oma, *sem, *d, *pmul, *noff, *dflat, *pos, *neg, *l, *lg, *nh, *wgt;
    int32_t *ip, *in;
    const float *dd;
    if (!ctx || !m || !x) return NULL;
    if (!labels || !wv) { zs__fail(ZS_ERR_ARG, "%s: NULL labels or word vectors", who); return zs__op_fail(ctx, ZS_ERR_ARG); }
    if (x->ndim != 2 || x->shape[1] != m->cfg.dim || x->shape[0] < 1 || x->shape[0] > (1 << 15))
        return zs__shape_fail(ctx, who, x, NULL, "embeddings must be [N,D] with 1 <= N <= 32768");
    N = x->shape[0];
    s2[0] = N; s2[1] = m->cfg.wv_dim;
    wvt = zs_from_data(ctx, wv, 2, s2);
    a = zs__tcn_col(ctx, N);
    oma = zs__tcn_col(ctx, N);
    pmul = zs__tcn_col(ctx, N);
    noff = zs__tcn_col(ctx, N);
    ip = (int32_t *)zs__arena_alloc(&ctx->arena, (size_t)N * 2 * sizeof(int32_t));
    if (!wvt || !a || !oma || !pmul || !noff || !ip) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
    in = ip + N;
    for (i = 0; i < N; i++) {
        float ai = alpha ? alpha[i] : zs_rand_uniform(ctx);
        ((float *)a->data)[i] = ai;
        ((float *)oma->data)[i] = 1.0f - ai;
    }
    /* sem = a * Linear(wv) + (1 - a) * x */
    sem = zs_add(ctx, zs_mul(ctx, a, zs_linear(ctx, wvt, m->sbh_w, m->sbh_b)), zs_mul(ctx, oma, x));
    /* d[i,j] = sqrt(|sem_i - x_j|^2 + 1e-16) (SPEC; the release adds 1e-16 per
       element, D * 1e-16 in all: the same in float unless sem_i == x_j) */
    d = zs_pairwise_dist(ctx, sem, x, 1e-16f);
    if (!d) return NULL;
    /* batch-hard mining on the values (the chosen entries carry the gradient):
       hardest positive max_j d over same label, j != i (0 when none, as the
       release's max of d * mask); hardest negative min_j d over other labels
       (none: + 1e8, as the release's d + 1e8 * same) */
    dd = (const float *)d->data;
    for (i = 0; i < N; i++) {
        int64_t bp = -1, bn = -1;
        for (j = 0; j < N; j++) {
            float v = dd[i * N + j];
            if (labels[j] == labels[i]) { if (j != i && (bp < 0 || v > dd[i * N + bp])) bp = j; }
            else if (bn < 0 || v < dd[i * N + bn]) bn = j;
        }
        ip[i] = (int32_t)(i * N + (bp < 0 ? i : bp));
        in[i] = (int32_t)(i * N + (bn < 0 ? i : bn));
        ((float *)pmul->data)[i] = bp < 0 ? 0.0f : 1.0f;
        ((float *)noff->data)[i] = bn < 0 ? 1e8f : 0.0f;
    }
    dflat = zs_reshape2(ctx, d, N * N, 1);
    pos = zs_mul(ctx, zs_gather(ctx, dflat, ip, N), pmul);
    neg = zs_add(ctx, zs_gather(ctx, dflat, in, N), noff);
    l = zs_reshape(ctx, zs_softplus(ctx, zs_sub(ctx, pos, neg)), 1, &N);       /* [N] soft margin */
    /* entropy weights 1 + exp(-H(softmax(classifier(sem)))), not detached (release) */
    lg = zs_linear(ctx, sem, m->cls_w, m->cls_b);
    nh = zs_sum_dim(ctx, zs_mul(ctx, zs_softmax(ctx, lg), zs_log_softmax(ctx, lg)), 1); /* [N] = -H */
    wgt = zs_add_scalar(ctx, zs__tcn_exp(ctx, nh), 1.0f);
    return zs_mean(ctx, zs_mul(ctx, l, wgt));
}

/* softmax of the frozen teacher's logits (eval mode, no tape) -> [B,K] */
ZS__PRIV zs_tensor *zs__tcn_teacher_probs(zs_ctx *ctx, zs_tcn *m, zs_tensor *photo) {
    int64_t s2[2];
    zs_tensor *hold, *p;
    zs_mark mk;
    int ot, og;
    if (!m->teacher || !m->teacher->fc_w || m->teacher->cfg.num_classes != m->cfg.kd_classes) {
        zs__fail(ZS_ERR_ARG, "zs_tcn_loss: the KD term needs m->teacher, a ResNet with fc over %d classes", m->cfg.kd_classes);
        return zs__op_fail(ctx, ZS_ERR_ARG);
    }
    s2[0] = photo->shape[0]; s2[1] = m->cfg.kd_classes;
    hold = zs_tensor_new(ctx, ZS_F32, 2, s2);
    if (!hold) return NULL;
    ot = zs_set_training(ctx, 0);
    og = zs_set_grad_enabled(ctx, 0);
    mk = zs_ctx_mark(ctx);
    p = zs_softmax(ctx, zs_resnet_forward(ctx, m->teacher, photo));
    p = zs__rn_keep(ctx, hold, mk, p);
    zs_set_grad_enabled(ctx, og);
    zs_set_training(ctx, ot);
    return p;
}

ZS__FN zs_tensor *zs_tcn_loss(zs_ctx *ctx, zs_tcn *m, const zs_tcn_batch *b, zs_tcn_losses *out) {
    static const char *who = "zs_tcn_loss";
    const zs_tcn_config *c;
    int64_t B, i;
    zs_tensor *hs, *hp, *ce_s, *ce_p, *loss, *kd = NULL, *share = NULL, *sbh = NULL, *xs[2], *x;
    int32_t *lab2;
    float *wv2;
    if (out) memset(out, 0, sizeof *out);
    if (!ctx || !m || !b || !b->sketch || !b->photo || !b->labels || !b->wordvec) {
        zs__fail(ZS_ERR_ARG, "%s: NULL argument", who);
        return ctx ? zs__op_fail(ctx, ZS_ERR_ARG) : NULL;
    }
    c = &m->cfg;
    B = b->sketch->shape[0];
    if (b->sketch->ndim != 4 || b->photo->ndim != 4 || b->photo->shape[0] != B || B < 1)
        return zs__shape_fail(ctx, who, b->sketch, b->photo, "sketch and photo batches must be [B,3,H,W] with the same B");
    hs = zs_tcn_encode(ctx, m, b->sketch, 1);
    hp = zs_tcn_encode(ctx, m, b->photo, 0);
    ce_s = zs_cross_entropy(ctx, zs_linear(ctx, hs, m->cls_w, m->cls_b), b->labels);
    ce_p = zs_cross_entropy(ctx, zs_linear(ctx, hp, m->cls_w, m->cls_b), b->labels);
    loss = zs_scale(ctx, zs_add(ctx, ce_s, ce_p), c->w_cls);
    if (c->w_share > 0.0f) {
        share = zs_tcn_share_loss(ctx, m);
        loss = zs_add(ctx, loss, zs_scale(ctx, share, c->w_share));
    }
    if (c->w_kd > 0.0f && loss) {
        kd = zs_soft_cross_entropy(ctx, zs_linear(ctx, hp, m->kd_w, m->kd_b), zs__tcn_teacher_probs(ctx, m, b->photo));
        loss = zs_add(ctx, loss, zs_scale(ctx, kd, c->w_kd));
    }
    if (c->w_sbh > 0.0f && loss) {
        /* X = [sketch embeddings; photo embeddings], labels and word vectors repeated */
        lab2 = (int32_t *)zs__arena_alloc(&ctx->arena, (size_t)(2 * B) * sizeof(int32_t));
        wv2 = (float *)zs__arena_alloc(&ctx->arena, (size_t)(2 * B * c->wv_dim) * sizeof(float));
        if (!lab2 || !wv2) { zs__fail(ZS_ERR_NOMEM, "%s: arena exhausted", who); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
        for (i = 0; i < B; i++) lab2[i] = lab2[B + i] = b->labels[i];
        memcpy(wv2, b->wordvec, (size_t)(B * c->wv_dim) * sizeof(float));
        memcpy(wv2 + B * c->wv_dim, b->wordvec, (size_t)(B * c->wv_dim) * sizeof(float));
        xs[0] = hs; xs[1] = hp;
        x = zs_concat(ctx, xs, 2, 0);
        sbh = zs_tcn_semantic_loss(ctx, m, x, lab2, wv2, b->alpha);
        loss = zs_add(ctx, loss, zs_scale(ctx, sbh, c->w_sbh));
    }
    if (loss && out) {
        out->cls_sketch = ((float *)ce_s->data)[0];
        out->cls_photo = ((float *)ce_p->data)[0];
        out->kd = kd ? ((float *)kd->data)[0] : 0.0f;
        out->share = share ? ((float *)share->data)[0] : 0.0f;
        out->sbh = sbh ? ((float *)sbh->data)[0] : 0.0f;
        out->total = ((float *)loss->data)[0];
    }
    return loss;
}

ZS__FN zs_optim *zs_tcn_optim_create(zs_tcn *m, float lr) {
    zs_optim_params p = zs_optim_default_params(ZS_OPTIM_ADAM);
    if (!m) { zs__fail(ZS_ERR_ARG, "zs_tcn_optim_create: NULL model"); return NULL; }
    p.lr = lr;
    p.weight_decay = 5e-4f;
    return zs_optim_create(&p, &m->params, NULL);
}

ZS__FN float zs_tcn_lr(float lr0, int epoch, int epochs) {
    if (epochs < 1) return lr0;
    return (float)((double)lr0 * pow(0.001, (double)epoch / (2.0 * (double)epochs)));
}

ZS__FN int zs_tcn_train_step(zs_ctx *ctx, zs_tcn *m, zs_optim *opt, const zs_tcn_batch *b, zs_tcn_losses *out) {
    zs_mark mk;
    zs_tensor *loss;
    int ot, og, rc;
    if (!ctx || !m || !opt || !b) return zs__fail(ZS_ERR_ARG, "zs_tcn_train_step: NULL argument");
    if (!m->params.grad) return zs__fail(ZS_ERR_STATE, "zs_tcn_train_step: model has no gradients (init/load with with_grad = 1)");
    mk = zs_ctx_mark(ctx);
    ot = zs_set_training(ctx, 1);
    og = zs_set_grad_enabled(ctx, 1);
    zs_params_zero_grad(&m->params);
    loss = zs_tcn_loss(ctx, m, b, out);
    rc = loss ? zs_backward(ctx, loss) : (zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE);
    if (rc == ZS_OK) rc = zs_optim_step_ctx(opt, ctx);
    zs_set_grad_enabled(ctx, og);
    zs_set_training(ctx, ot);
    zs_ctx_release(ctx, mk);
    return rc;
}

/* ---- config text, word vectors ------------------------------------------ */

ZS__FN int zs_tcn_config_format(const zs_tcn_config *c, char *buf, size_t cap) {
    const zs_resnet_config *b;
    int n;
    if (!c || !buf || !cap) return zs__fail(ZS_ERR_ARG, "zs_tcn_config_format: NULL argument");
    b = &c->backbone;
    n = snprintf(buf, cap, "tcn bottleneck=%d layers=%d,%d,%d,%d stem=%d planes=%d,%d,%d,%d dim=%d classes=%d kd=%d wv=%d mssbn=%d size=%d",
                 b->bottleneck, b->layers[0], b->layers[1], b->layers[2], b->layers[3], b->stem, b->planes[0], b->planes[1],
                 b->planes[2], b->planes[3], c->dim, c->n_classes, c->kd_classes, c->wv_dim, c->mssbn, c->img_size);
    if (n < 0 || (size_t)n >= cap) return zs__fail(ZS_ERR_ARG, "zs_tcn_config_format: buffer of %zu bytes too small", cap);
    return ZS_OK;
}

ZS__PRIV int zs__read_text(const char *path, char **buf, size_t *len); /* [impl:data] */
ZS__PRIV int zs__finite_d(double x);                                  /* [impl:linalg] */

/* a == b with ' ' and '_' equal; b has length bl */
ZS__PRIV int zs__wv_name_eq(const char *a, const char *b, size_t bl) {
    size_t i;
    for (i = 0; i < bl; i++) {
        char x = a[i] == ' ' ? '_' : a[i], y = b[i] == ' ' ? '_' : b[i];
        if (!a[i] || x != y) return 0;
    }
    return a[bl] == 0;
}

ZS__FN int zs_tcn_wordvec_load(float *out, const char *path, const char *const *names, int n, int dim) {
    char *buf, *s, *end;
    size_t len;
    int i, rc, lineno = 0, *found;
    if (!out || !path || (n > 0 && !names) || n < 0 || dim < 1 || dim > 65536)
        return zs__fail(ZS_ERR_ARG, "zs_tcn_wordvec_load: bad argument (n %d, dim %d)", n, dim);
    for (i = 0; i < n; i++)
        if (!names[i]) return zs__fail(ZS_ERR_ARG, "zs_tcn_wordvec_load: names[%d] is NULL", i);
    if ((rc = zs__read_text(path, &buf, &len)) != ZS_OK) return rc;
    found = (int *)zs__malloc(sizeof(int) * (size_t)(n + 1), NULL);
    if (!found) { zs__free(buf, NULL); return zs__fail(ZS_ERR_NOMEM, "zs_tcn_wordvec_load: out of memory"); }
    memset(found, 0, sizeof(int) * (size_t)(n + 1));
    end = buf + len;
    for (s = buf; s < end && rc == ZS_OK;) {
        char *eol = (char *)memchr(s, '\n', (size_t)(end - s)), *tab;
        size_t nl;
        if (!eol) eol = end;
        *eol = 0;
        lineno++;
        tab = strchr(s, '\t');
        if (tab) {
            nl = (size_t)(tab - s);
            for (i = 0; i < n; i++) {
                const char *p = tab + 1;
                char *q;
                int k;
                if (found[i] || !zs__wv_name_eq(names[i], s, nl)) continue;
                for (k = 0; k < dim && rc == ZS_OK; k++) {
                    double v = strtod(p, &q);
                    if (q == p || !zs__finite_d(v) || v > 3.4e38 || v < -3.4e38)
                        rc = zs__fail(ZS_ERR_FORMAT, "%s:%d: value %d of \"%s\" is missing or not a finite number", path, lineno, k + 1, names[i]);
                    out[(size_t)i * (size_t)dim + (size_t)k] = (float)v;
                    p = q;
                }
                while (rc == ZS_OK && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
                if (rc == ZS_OK && *p) rc = zs__fail(ZS_ERR_FORMAT, "%s:%d: \"%s\" has more than %d values", path, lineno, names[i], dim);
                found[i] = 1;
            }
        }
        s = eol + 1;
    }
    for (i = 0; i < n && rc == ZS_OK; i++)
        if (!found[i]) rc = zs__fail(ZS_ERR_FORMAT, "%s: no word vector for class \"%s\"", path, names[i]);
    zs__free(found, NULL);
    zs__free(buf, NULL);
    return rc;
}

/* ---- paired augmentation (SPEC 2.2) -------------------------------------- */

ZS__FN zs_tcn_aug zs_tcn_aug_identity(void) {
    zs_tcn_aug a;
    a.flip = 0; a.scale = 1.0f; a.angle = 0.0f; a.tx = 0.0f; a.ty = 0.0f;
    return a;
}

ZS__FN zs_tcn_aug zs_tcn_aug_sample(uint64_t seed, uint64_t counter) {
    zs_tcn_aug a;
    uint64_t key = zs__mix64(seed ^ 0x41756721ull) ^ counter;
    a.flip = zs__hash_uniform(key, 0) < 0.5f;
    a.scale = ZS_TCN_AUG_SCALE_LO + (ZS_TCN_AUG_SCALE_HI - ZS_TCN_AUG_SCALE_LO) * zs__hash_uniform(key, 1);
    a.angle = ZS_TCN_AUG_ANGLE * (2.0f * zs__hash_uniform(key, 2) - 1.0f);
    a.tx = ZS_TCN_AUG_SHIFT * (2.0f * zs__hash_uniform(key, 3) - 1.0f);
    a.ty = ZS_TCN_AUG_SHIFT * (2.0f * zs__hash_uniform(key, 4) - 1.0f);
    return a;
}

/* snaps x to the nearest integer when within 1e-6 (exact flips / turns) */
ZS__PRIV double zs__aug_snap(double x) {
    double r = floor(x + 0.5);
    return fabs(x - r) < 1e-6 ? r : x;
}

ZS__FN int zs_tcn_augment(zs_image *out, const zs_image *in, const zs_tcn_aug *a, const unsigned char fill[3]) {
    double cx, cy, c, s, rad, inv;
    int x, y, k, w, h, rc;
    if (out) memset(out, 0, sizeof *out);
    if (!out || !in || !in->rgb || !a || !fill) return zs__fail(ZS_ERR_ARG, "zs_tcn_augment: NULL argument");
    if (!(a->scale > 1e-3f && a->scale < 1e3f) || !(a->angle > -1e6f && a->angle < 1e6f) || !(a->tx > -1e6f && a->tx < 1e6f) ||
        !(a->ty > -1e6f && a->ty < 1e6f))
        return zs__fail(ZS_ERR_ARG, "zs_tcn_augment: scale %g, angle %g, shift (%g, %g) out of range", (double)a->scale,
                        (double)a->angle, (double)a->tx, (double)a->ty);
    w = in->w; h = in->h;
    if ((rc = zs_image_alloc(out, w, h)) != ZS_OK) return rc;
    cx = 0.5 * w; cy = 0.5 * h;
    rad = (double)a->angle * 3.14159265358979323846 / 180.0;
    c = cos(rad); s = sin(rad);
    inv = 1.0 / (double)a->scale;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            /* inverse map: q = F R(-a) (p - c - t) / s + c, R(a) = [c s; -s c] on screen */
            double u = ((x + 0.5) - cx - a->tx) * inv, v = ((y + 0.5) - cy - a->ty) * inv;
            double dx = c * u - s * v, dy = s * u + c * v, sx, sy, fx, fy;
            int x0, y0, j;
            unsigned char *o = out->rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
            if (a->flip) dx = -dx;
            sx = zs__aug_snap(cx + dx - 0.5);
            sy = zs__aug_snap(cy + dy - 0.5);
            if (!(sx > -2.0 && sx < w + 1.0 && sy > -2.0 && sy < h + 1.0)) { memcpy(o, fill, 3); continue; }
            x0 = (int)floor(sx); y0 = (int)floor(sy);
            fx = sx - x0; fy = sy - y0;
            for (k = 0; k < 3; k++) {
                double acc = 0.0;
                for (j = 0; j < 4; j++) {
                    int px = x0 + (j & 1), py = y0 + (j >> 1);
                    double wt = ((j & 1) ? fx : 1.0 - fx) * ((j >> 1) ? fy : 1.0 - fy);
                    int pv = (px >= 0 && px < w && py >= 0 && py < h) ? in->rgb[((size_t)py * (size_t)w + (size_t)px) * 3 + (size_t)k] : fill[k];
                    acc += wt * pv;
                }
                j = (int)floor(acc + 0.5);
                o[k] = (unsigned char)(j < 0 ? 0 : j > 255 ? 255 : j);
            }
        }
    return ZS_OK;
}

ZS__FN int zs_tcn_augment_pair(zs_image *sketch_out, zs_image *photo_out, const zs_image *sketch, const zs_image *photo,
                               const zs_tcn_aug *a) {
    static const unsigned char white[3] = {255, 255, 255}, mean[3] = {124, 116, 104};
    int rc = zs_tcn_augment(sketch_out, sketch, a, white);
    if (rc == ZS_OK && (rc = zs_tcn_augment(photo_out, photo, a, mean)) != ZS_OK) zs_image_free(sketch_out);
    return rc;
}


/* ==================================================================== */
/* [impl:linalg] eigh, SVD, TCN head init, ITQ, Hamming                 */
/* ==================================================================== */

/* finite by bits: -ffast-math folds isfinite() to 1 */
ZS__PRIV int zs__finite_d(double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    return ((u >> 52) & 0x7ff) != 0x7ff;
}

ZS__PRIV double *zs__dalloc(size_t a, size_t b) {
    size_t n, bytes;
    if (!zs__mul_ok(a, b, &n) || !zs__mul_ok(n ? n : 1, sizeof(double), &bytes)) return NULL;
    return (double *)zs__malloc(bytes, NULL);
}

/* -- double kernels: AVX2 when compiled in, 4-way scalar otherwise -- */
ZS__PRIV double zs__ddot(const double *x, const double *y, int n) {
    int i = 0;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#if defined(ZS__AVX2)
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    double t[4];
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), a0);
        a1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4), a1);
    }
    _mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
    s0 = t[0]; s1 = t[1]; s2 = t[2]; s3 = t[3];
#endif
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i]; s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2]; s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++) s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

/* y += a x */
ZS__PRIV void zs__daxpy(double *ZS__RESTRICT y, double a, const double *ZS__RESTRICT x, int n) {
    int i = 0;
#if defined(ZS__AVX2)
    __m256d va = _mm256_set1_pd(a);
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
#endif
    for (; i < n; i++) y[i] += a * x[i];
}

/* (x, y) <- (c x - s y, s x + c y) */
ZS__PRIV void zs__drot(double *ZS__RESTRICT x, double *ZS__RESTRICT y, double c, double s, int n) {
    int i = 0;
#if defined(ZS__AVX2)
    __m256d vc = _mm256_set1_pd(c), vs = _mm256_set1_pd(s);
    for (; i + 4 <= n; i += 4) {
        __m256d a = _mm256_loadu_pd(x + i), b = _mm256_loadu_pd(y + i);
        _mm256_storeu_pd(x + i, _mm256_fmsub_pd(vc, a, _mm256_mul_pd(vs, b)));
        _mm256_storeu_pd(y + i, _mm256_fmadd_pd(vs, a, _mm256_mul_pd(vc, b)));
    }
#endif
    for (; i < n; i++) {
        double a = x[i], b = y[i];
        x[i] = c * a - s * b;
        y[i] = s * a + c * b;
    }
}

/* c [M,N] = (acc ? c : 0) + a [M,K] b [K,N] (row-major, leading dims),
   blocked for the caches with a 4 x 8 register tile; edges in plain C */
ZS__PRIV void zs__dgemm_tile(double *c, size_t ldc, const double *a, size_t lda, const double *b, size_t ldb, int K) {
    int k;
#if defined(ZS__AVX2)
    __m256d c0[4], c1[4];
    int r;
    for (r = 0; r < 4; r++) {
        c0[r] = _mm256_loadu_pd(c + r * ldc);
        c1[r] = _mm256_loadu_pd(c + r * ldc + 4);
    }
    for (k = 0; k < K; k++) {
        __m256d b0 = _mm256_loadu_pd(b + k * ldb), b1 = _mm256_loadu_pd(b + k * ldb + 4);
        for (r = 0; r < 4; r++) {
            __m256d ar = _mm256_broadcast_sd(a + r * lda + k);
            c0[r] = _mm256_fmadd_pd(ar, b0, c0[r]);
            c1[r] = _mm256_fmadd_pd(ar, b1, c1[r]);
        }
    }
    for (r = 0; r < 4; r++) {
        _mm256_storeu_pd(c + r * ldc, c0[r]);
        _mm256_storeu_pd(c + r * ldc + 4, c1[r]);
    }
#else
    double t[4][8];
    int r, j;
    for (r = 0; r < 4; r++)
        for (j = 0; j < 8; j++) t[r][j] = c[r * ldc + j];
    for (k = 0; k < K; k++) {
        const double *bk = b + k * ldb;
        for (r = 0; r < 4; r++) {
            double ar = a[r * lda + k];
            for (j = 0; j < 8; j++) t[r][j] += ar * bk[j];
        }
    }
    for (r = 0; r < 4; r++)
        for (j = 0; j < 8; j++) c[r * ldc + j] = t[r][j];
#endif
}

/* pack: NULL or ZS__DGEMM_PACK doubles of scratch */
#define ZS__DGEMM_PACK (128 * 256)
ZS__PRIV void zs__dgemm(double *c, size_t ldc, const double *a, size_t lda, const double *b, size_t ldb, int M, int N,
                        int K, int acc, double *pack) {
    /* each 128 x 256 block of b is packed into 8-column strips (contiguous
       rows of 8): with ldb a multiple of 512 the unpacked rows would all land
       in the same L1 sets. Without a pack buffer (none given and no memory)
       b is read in place. */
    double *pk = pack ? pack : (double *)zs__malloc(ZS__DGEMM_PACK * sizeof(double), NULL);
    int i, j, k0, j0, r, jj, k;
    if (!acc)
        for (i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof(double));
    for (k0 = 0; k0 < K; k0 += 128) {
        int kc = K - k0 < 128 ? K - k0 : 128;
        for (j0 = 0; j0 < N; j0 += 256) {
            int j1 = N - j0 < 256 ? N : j0 + 256, full = (j1 - j0) / 8 * 8;
            if (pk)
                for (j = 0; j < full; j += 8)
                    for (k = 0; k < kc; k++) memcpy(pk + j * kc + k * 8, b + (size_t)(k0 + k) * ldb + j0 + j, 8 * sizeof(double));
            for (i = 0; i < M; i += 4)
                for (j = j0; j < j1; j += 8) {
                    if (i + 4 <= M && j + 8 <= j1) {
                        if (pk) zs__dgemm_tile(c + i * ldc + j, ldc, a + i * lda + k0, lda, pk + (j - j0) * kc, 8, kc);
                        else zs__dgemm_tile(c + i * ldc + j, ldc, a + i * lda + k0, lda, b + k0 * ldb + j, ldb, kc);
                        continue;
                    }
                    for (r = i; r < M && r < i + 4; r++)
                        for (jj = j; jj < j1 && jj < j + 8; jj++) {
                            double sum = 0;
                            for (k = 0; k < kc; k++) sum += a[r * lda + k0 + k] * b[(size_t)(k0 + k) * ldb + jj];
                            c[r * ldc + jj] += sum;
                        }
                }
        }
    }
    if (!pack) zs__free(pk, NULL);
}

/* flips row r [len] (and the paired row p, if any) so that the first
   largest-magnitude entry of r is positive */
ZS__PRIV void zs__sign_fix(double *r, double *p, int len, int plen) {
    int i, im = 0;
    double best = -1.0;
    for (i = 0; i < len; i++)
        if (fabs(r[i]) > best) { best = fabs(r[i]); im = i; }
    if (r[im] < 0) {
        for (i = 0; i < len; i++) r[i] = -r[i];
        if (p) for (i = 0; i < plen; i++) p[i] = -p[i];
    }
}

/* QL's rotations are logged and applied to zt in column panels: applied one
   by one, every QL iteration would stream the whole n x n matrix through
   memory (n = 2048: 7 s instead of 1.5 s). */
typedef struct zs__rotlog { int *row; double *c, *s; size_t n, cap; } zs__rotlog;

ZS__PRIV void zs__rotlog_flush(zs__rotlog *lg, double *zt, int n) {
    size_t N = (size_t)n, t;
    int c0;
    for (c0 = 0; c0 < n; c0 += 128) {
        int cw = n - c0 < 128 ? n - c0 : 128;
        for (t = 0; t < lg->n; t++) {
            size_t i = (size_t)lg->row[t];
            zs__drot(zt + i * N + c0, zt + (i + 1) * N + c0, lg->c[t], lg->s[t], cw);
        }
    }
    lg->n = 0;
}

/* Eigen-decomposition of the lower triangle of a [n,n] (destroyed), into
   w [n] descending and, when zt != NULL, zt [n,n] whose ROW j is eigenvector
   j (sign-fixed). */
#define ZS__QNB 32
ZS__PRIV int zs__eigh_rows(double *w, double *zt, double *a, int n) {
    double *e, *beta, *p, *wb = NULL, *scratch;
    int i, j, k, l, it, r = ZS_OK;
    const double eps = 2.220446049250313e-16;
    double f = 0, tst1 = 0;
    size_t N = (size_t)n, cap = zt ? (size_t)64 * N : 0;
    zs__rotlog lg;
    memset(&lg, 0, sizeof lg);
    scratch = zs__dalloc(3 * N + (zt ? (size_t)ZS__QNB * N + 2 * cap : 0), 1);
    if (zt) lg.row = (int *)zs__malloc(cap * sizeof(int), NULL);
    if (!scratch || (zt && !lg.row)) {
        zs__free(scratch, NULL);
        zs__free(lg.row, NULL);
        return zs__fail(ZS_ERR_NOMEM, "zs_eigh: out of memory (n = %d)", n);
    }
    e = scratch;
    beta = e + N;
    p = beta + N;
    if (zt) {
        wb = p + N;
        lg.c = wb + (size_t)ZS__QNB * N;
        lg.s = lg.c + cap;
        lg.cap = cap;
    }
    /* 1. Householder: a -> tridiagonal (w = diag, e[k] = T[k][k+1]); the
       vector of step k is kept in row k right of the diagonal (unused upper
       part), so only the lower triangle is ever updated */
    for (k = 0; k + 2 < n; k++) {
        int L = n - k - 1;
        double *v = a + k * N + k + 1, sc = 0, nrm = 0, alpha, vtv, K;
        w[k] = a[k * N + k];
        for (i = 0; i < L; i++) v[i] = a[(k + 1 + i) * N + k];
        for (i = 0; i < L; i++) sc = fabs(v[i]) > sc ? fabs(v[i]) : sc;
        if (sc == 0) { e[k] = 0; beta[k] = 0; continue; }
        for (i = 0; i < L; i++) nrm += (v[i] / sc) * (v[i] / sc);
        nrm = sc * sqrt(nrm);
        alpha = v[0] >= 0 ? -nrm : nrm;
        v[0] -= alpha;
        vtv = zs__ddot(v, v, L);
        beta[k] = 2.0 / vtv;
        e[k] = alpha;
        /* p = beta A22 v from the lower triangle: row i gives p_i (dot) and
           the mirrored upper part p_j += a_ij v_i (axpy) */
        for (i = 0; i < L; i++) p[i] = 0;
        for (i = 0; i < L; i++) {
            const double *row = a + (k + 1 + i) * N + k + 1;
            p[i] += zs__ddot(row, v, i + 1);
            zs__daxpy(p, v[i], row, i);
        }
        for (i = 0; i < L; i++) p[i] *= beta[k];
        K = 0.5 * beta[k] * zs__ddot(p, v, L);
        for (i = 0; i < L; i++) p[i] -= K * v[i]; /* p is now w of GvL 8.3.1 */
        for (i = 0; i < L; i++) {
            double *row = a + (k + 1 + i) * N + k + 1;
            zs__daxpy(row, -v[i], p, i + 1);
            zs__daxpy(row, -p[i], v, i + 1);
        }
    }
    if (n >= 2) {
        w[n - 2] = a[(N - 2) * N + n - 2];
        w[n - 1] = a[(N - 1) * N + n - 1];
        e[n - 2] = a[(N - 1) * N + n - 2];
    } else {
        w[0] = a[0];
    }
    e[n - 1] = 0;
    /* 2. Q = H_0 ... H_{n-3} by backward accumulation, ZS__QNB reflectors per
       pass over memory (compact-WY style: W = V^T Q, corrected for the
       reflectors applied before within the block, then Q -= sum beta v w^T),
       then transposed so that QL's column rotations act on contiguous rows */
    if (zt) {
        int kend;
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) zt[i * N + j] = i == j;
        for (kend = n - 3; kend >= 0; kend -= ZS__QNB) {
            int k0 = kend - ZS__QNB + 1 > 0 ? kend - ZS__QNB + 1 : 0, nb = kend - k0 + 1, r0 = k0 + 1, Lc = n - r0, row;
            memset(wb, 0, (size_t)nb * N * sizeof(double));
            for (row = r0; row < n; row++)
                for (j = 0; j < nb; j++) {
                    int kj = k0 + j;
                    if (row >= kj + 1 && beta[kj] != 0)
                        zs__daxpy(wb + j * N, a[kj * N + row], zt + row * N + r0, Lc);
                }
            for (j = nb - 1; j >= 0; j--)
                for (i = j + 1; i < nb; i++) {
                    int ki = k0 + i, kj = k0 + j;
                    double cf;
                    if (beta[ki] == 0) continue;
                    /* rows >= ki+1 overlap; v_k[row] lives at a[k*N + row] */
                    cf = beta[ki] * zs__ddot(a + kj * N + ki + 1, a + ki * N + ki + 1, n - ki - 1);
                    zs__daxpy(wb + j * N, -cf, wb + i * N, Lc);
                }
            for (row = r0; row < n; row++)
                for (j = 0; j < nb; j++) {
                    int kj = k0 + j;
                    if (row >= kj + 1 && beta[kj] != 0)
                        zs__daxpy(zt + row * N + r0, -beta[kj] * a[kj * N + row], wb + j * N, Lc);
                }
        }
        for (i = 0; i < n; i++)
            for (j = i + 1; j < n; j++) {
                double t = zt[i * N + j];
                zt[i * N + j] = zt[j * N + i];
                zt[j * N + i] = t;
            }
    }
    /* 3. implicit QL on (w, e) (JAMA tql2) */
    for (l = 0; l < n; l++) {
        int m = l;
        double t = fabs(w[l]) + fabs(e[l]);
        tst1 = t > tst1 ? t : tst1;
        while (m < n - 1 && fabs(e[m]) > eps * tst1) m++;
        if (m > l) {
            it = 0;
            do {
                double g = w[l], pp, rr, c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0, el1, dl1, h;
                if (++it > 100) { r = zs__fail(ZS_ERR_STATE, "zs_eigh: QL iteration did not converge"); goto done; }
                if (zt && lg.cap - lg.n < (size_t)n) zs__rotlog_flush(&lg, zt, n);
                pp = (w[l + 1] - g) / (2.0 * e[l]);
                rr = hypot(pp, 1.0);
                if (pp < 0) rr = -rr;
                w[l] = e[l] / (pp + rr);
                w[l + 1] = e[l] * (pp + rr);
                dl1 = w[l + 1];
                h = g - w[l];
                for (i = l + 2; i < n; i++) w[i] -= h;
                f += h;
                pp = w[m];
                el1 = e[l + 1];
                for (i = m - 1; i >= l; i--) {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * pp;
                    rr = hypot(pp, e[i]);
                    e[i + 1] = s * rr;
                    s = e[i] / rr;
                    c = pp / rr;
                    pp = c * w[i] - s * g;
                    w[i + 1] = h + s * (c * g + s * w[i]);
                    /* columns i, i+1 of Q: (q_i, q_{i+1}) <- (c q_i - s q_{i+1}, s q_i + c q_{i+1}) */
                    if (zt) { lg.row[lg.n] = i; lg.c[lg.n] = c; lg.s[lg.n] = s; lg.n++; }
                }
                pp = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * pp;
                w[l] = c * pp;
            } while (fabs(e[l]) > eps * tst1);
        }
        w[l] += f;
        e[l] = 0;
    }
    if (zt) zs__rotlog_flush(&lg, zt, n);
    /* 4. sort descending (selection sort, row swaps), sign convention */
    for (i = 0; i < n - 1; i++) {
        int km = i;
        for (j = i + 1; j < n; j++)
            if (w[j] > w[km]) km = j;
        if (km != i) {
            double t = w[i];
            w[i] = w[km];
            w[km] = t;
            if (zt)
                for (j = 0; j < n; j++) {
                    t = zt[i * N + j];
                    zt[i * N + j] = zt[km * N + j];
                    zt[km * N + j] = t;
                }
        }
    }
    if (zt)
        for (i = 0; i < n; i++) zs__sign_fix(zt + i * N, NULL, n, 0);
done:
    zs__free(scratch, NULL);
    zs__free(lg.row, NULL);
    return r;
}

ZS__FN int zs_eigh(double *w, double *v, const double *a, int n) {
    double *work, *zt = NULL;
    size_t N = (size_t)n, i, j;
    int r;
    if (!w || !a) return zs__fail(ZS_ERR_ARG, "zs_eigh: NULL w or a");
    if (n < 1 || n > ZS_LINALG_MAX_N) return zs__fail(ZS_ERR_ARG, "zs_eigh: n = %d out of range 1..%d", n, ZS_LINALG_MAX_N);
    for (i = 0; i < N; i++)
        for (j = 0; j <= i; j++)
            if (!zs__finite_d(a[i * N + j]))
                return zs__fail(ZS_ERR_ARG, "zs_eigh: a[%zu][%zu] is not finite", i, j);
    work = zs__dalloc(N * (v ? 2 : 1), N);
    if (!work) return zs__fail(ZS_ERR_NOMEM, "zs_eigh: out of memory (n = %d)", n);
    if (v) zt = work + N * N;
    memcpy(work, a, N * N * sizeof(double));
    r = zs__eigh_rows(w, zt, work, n);
    if (!r && v)
        for (i = 0; i < N; i++)
            for (j = 0; j < N; j++) v[i * N + j] = zt[j * N + i];
    zs__free(work, NULL);
    return r;
}

/* One-sided Jacobi on the k rows of yt [k, L] (the columns of a tall matrix),
   rotating the rows of vt [k, k] alike, until every pair is orthogonal to
   tol relative to the product of their norms. nrm [k] scratch. */
ZS__PRIV int zs__hestenes(double *yt, double *vt, int k, int L, double *nrm) {
    double tol = 4.0 * 2.220446049250313e-16 * sqrt((double)L);
    size_t LL = (size_t)L, K = (size_t)k;
    int sweep, p, q;
    for (sweep = 0; sweep < 60; sweep++) {
        long rotated = 0;
        for (p = 0; p < k; p++) nrm[p] = zs__ddot(yt + p * LL, yt + p * LL, L);
        for (p = 0; p + 1 < k; p++) {
            for (q = p + 1; q < k; q++) {
                double a = nrm[p], b = nrm[q], c, zeta, t, cs, sn;
                if (a == 0 || b == 0) continue;
                c = zs__ddot(yt + p * LL, yt + q * LL, L);
                if (fabs(c) <= tol * sqrt(a) * sqrt(b)) continue;
                zeta = (b - a) / (2.0 * c);
                if (fabs(zeta) > 1e150) t = 0.5 / zeta;
                else t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                cs = 1.0 / sqrt(1.0 + t * t);
                sn = cs * t;
                zs__drot(yt + p * LL, yt + q * LL, cs, sn, L);
                zs__drot(vt + p * K, vt + q * K, cs, sn, k);
                nrm[p] = a - t * c;
                nrm[q] = b + t * c;
                if (nrm[p] < 0) nrm[p] = 0; /* rounding of a tiny column */
                if (nrm[q] < 0) nrm[q] = 0;
                rotated++;
            }
        }
        if (!rotated) return ZS_OK;
    }
    return zs__fail(ZS_ERR_STATE, "zs_svd: Jacobi sweeps did not converge");
}

/* SVD of the tall matrix X [L, k] (L >= k) given by its columns xt [k, L]
   (destroyed: becomes ut [k, L], the left vectors as rows); s [k]; vt [k,k]
   the right vectors as rows. */
ZS__PRIV int zs__svd_tall(double *xt, double *s, double *vt, int k, int L) {
    size_t K = (size_t)k, LL = (size_t)L, i, j;
    double *g = NULL, *y = NULL, *tmp;
    int r = ZS_OK;
    tmp = zs__dalloc(K, 1);
    if (!tmp) return zs__fail(ZS_ERR_NOMEM, "zs_svd: out of memory");
    if (k >= 8) {
        /* precondition: vt = eigenvectors of X^T X, y = X V: the columns of y
           are then nearly orthogonal and Jacobi has little left to do */
        g = zs__dalloc(K, K);
        y = zs__dalloc(K, LL);
        if (!g || !y) { r = zs__fail(ZS_ERR_NOMEM, "zs_svd: out of memory (k = %d, L = %d)", k, L); goto done; }
        for (i = 0; i < K; i++)
            for (j = 0; j <= i; j++) g[i * K + j] = zs__ddot(xt + i * LL, xt + j * LL, L);
        r = zs__eigh_rows(s, vt, g, k);
        if (r) goto done;
        zs__dgemm(y, LL, vt, K, xt, LL, k, L, k, 0, NULL);
        memcpy(xt, y, K * LL * sizeof(double));
    } else {
        for (i = 0; i < K; i++)
            for (j = 0; j < K; j++) vt[i * K + j] = i == j;
    }
    r = zs__hestenes(xt, vt, k, L, tmp);
    if (r) goto done;
    for (i = 0; i < K; i++) s[i] = sqrt(zs__ddot(xt + i * LL, xt + i * LL, L));
    /* sort descending (row swaps of xt and vt) */
    for (i = 0; i + 1 < K; i++) {
        size_t km = i;
        for (j = i + 1; j < K; j++)
            if (s[j] > s[km]) km = j;
        if (km != i) {
            double t = s[i];
            s[i] = s[km];
            s[km] = t;
            for (j = 0; j < LL; j++) { t = xt[i * LL + j]; xt[i * LL + j] = xt[km * LL + j]; xt[km * LL + j] = t; }
            for (j = 0; j < K; j++) { t = vt[i * K + j]; vt[i * K + j] = vt[km * K + j]; vt[km * K + j] = t; }
        }
    }
    /* left vectors: normalise; for (near-)zero singular values re-orthogonalise
       against the earlier ones (twice), falling back to unit vectors */
    for (i = 0; i < K; i++) {
        double *u = xt + i * LL, nu;
        size_t cand = 0;
        int pass;
        if (s[i] > 0) for (j = 0; j < LL; j++) u[j] /= s[i];
        if (s[i] > s[0] * 1e-8) continue;
        if (s[i] <= 0) { memset(u, 0, LL * sizeof(double)); u[cand++] = 1.0; }
        for (;;) { /* twice is enough (Kahan) */
            for (pass = 0; pass < 2; pass++)
                for (j = 0; j < i; j++) zs__daxpy(u, -zs__ddot(u, xt + j * LL, L), xt + j * LL, L);
            nu = sqrt(zs__ddot(u, u, L));
            if (nu > 0.5) break;
            if (cand >= LL) { r = zs__fail(ZS_ERR_STATE, "zs_svd: cannot complete the left vectors"); goto done; }
            memset(u, 0, LL * sizeof(double));
            u[cand++] = 1.0;
        }
        for (j = 0; j < LL; j++) u[j] /= nu;
    }
done:
    zs__free(g, NULL);
    zs__free(y, NULL);
    zs__free(tmp, NULL);
    return r;
}

ZS__FN int zs_svd(double *u, double *s, double *vt, const double *a, int m, int n) {
    size_t M = (size_t)m, N = (size_t)n, K, L, i, j;
    double *xt, *v2;
    int r, k, tall = m >= n;
    if (!s || !a) return zs__fail(ZS_ERR_ARG, "zs_svd: NULL s or a");
    if (m < 1 || n < 1 || m > (1 << 26) || n > (1 << 26) || (m < n ? m : n) > ZS_LINALG_MAX_N)
        return zs__fail(ZS_ERR_ARG, "zs_svd: bad shape %d x %d (min side at most %d)", m, n, ZS_LINALG_MAX_N);
    k = tall ? n : m;
    K = (size_t)k;
    L = tall ? M : N;
    if (!zs__mul_ok(M, N, &i) || !zs__mul_ok(i, sizeof(double), &i))
        return zs__fail(ZS_ERR_ARG, "zs_svd: %d x %d is too large", m, n);
    for (i = 0; i < M * N; i++)
        if (!zs__finite_d(a[i])) return zs__fail(ZS_ERR_ARG, "zs_svd: a[%zu][%zu] is not finite", i / N, i % N);
    xt = zs__dalloc(K, L);
    v2 = zs__dalloc(K, K);
    if (!xt || !v2) {
        zs__free(xt, NULL);
        zs__free(v2, NULL);
        return zs__fail(ZS_ERR_NOMEM, "zs_svd: out of memory (%d x %d)", m, n);
    }
    /* columns of the tall orientation: A's columns when m >= n, else A's rows */
    if (tall) {
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) xt[j * M + i] = a[i * N + j];
    } else {
        memcpy(xt, a, M * N * sizeof(double));
    }
    r = zs__svd_tall(xt, s, v2, k, (int)L);
    if (!r) {
        /* A's right vectors are v2's rows (tall) or xt's rows (wide) */
        for (i = 0; i < K; i++) {
            if (tall) zs__sign_fix(v2 + i * K, xt + i * L, k, (int)L);
            else zs__sign_fix(xt + i * L, v2 + i * K, (int)L, k);
        }
        if (u)
            for (i = 0; i < M; i++)
                for (j = 0; j < K; j++) u[i * K + j] = tall ? xt[j * L + i] : v2[j * K + i];
        if (vt) memcpy(vt, tall ? v2 : xt, K * N * sizeof(double));
    }
    zs__free(xt, NULL);
    zs__free(v2, NULL);
    return r;
}

ZS__FN int zs_tcn_init_heads(float *h_weight, float *kd_weight, float *kd_bias, const float *fc_weight,
                             const float *fc_bias, int n_out, int n_in, int D) {
    size_t O = (size_t)n_out, I = (size_t)n_in, K, i, j;
    double *a, *u, *s, *vt;
    int r, k;
    if (!h_weight || !kd_weight || !kd_bias || !fc_weight)
        return zs__fail(ZS_ERR_ARG, "zs_tcn_init_heads: NULL output or fc_weight");
    if (n_out < 1 || n_in < 1 || n_out > (1 << 24) || n_in > (1 << 24))
        return zs__fail(ZS_ERR_ARG, "zs_tcn_init_heads: bad fc shape [%d, %d]", n_out, n_in);
    k = n_out < n_in ? n_out : n_in;
    if (D < 1 || D > k) return zs__fail(ZS_ERR_ARG, "zs_tcn_init_heads: D = %d not in 1..min(%d, %d)", D, n_out, n_in);
    K = (size_t)k;
    a = zs__dalloc(O, I);
    u = zs__dalloc(O, K);
    s = zs__dalloc(K, 1);
    vt = zs__dalloc(K, I);
    if (!a || !u || !s || !vt) { r = zs__fail(ZS_ERR_NOMEM, "zs_tcn_init_heads: out of memory"); goto done; }
    for (i = 0; i < O * I; i++) a[i] = fc_weight[i];
    r = zs_svd(u, s, vt, a, n_out, n_in);
    if (r) goto done;
    for (i = 0; i < (size_t)D; i++)
        for (j = 0; j < I; j++) h_weight[i * I + j] = (float)(s[i] * vt[i * I + j]);
    for (i = 0; i < O; i++) {
        for (j = 0; j < (size_t)D; j++) kd_weight[i * (size_t)D + j] = (float)u[i * K + j];
        kd_bias[i] = fc_bias ? fc_bias[i] : 0.0f;
    }
done:
    zs__free(a, NULL);
    zs__free(u, NULL);
    zs__free(s, NULL);
    zs__free(vt, NULL);
    return r;
}

/* ---- ITQ ---------------------------------------------------------------- */

ZS__FN void zs_itq_free(zs_itq *q) {
    if (!q) return;
    zs__free(q->mean, NULL);
    zs__free(q->proj, NULL);
    zs__free(q->rot, NULL);
    memset(q, 0, sizeof *q);
}

ZS__PRIV int zs__itq_alloc(zs_itq *q, int dim, int bits) {
    memset(q, 0, sizeof *q);
    q->dim = dim;
    q->bits = bits;
    q->mean = (float *)zs__malloc((size_t)dim * sizeof(float), NULL);
    q->proj = (float *)zs__malloc((size_t)dim * (size_t)bits * sizeof(float), NULL);
    q->rot = (float *)zs__malloc((size_t)bits * (size_t)bits * sizeof(float), NULL);
    if (!q->mean || !q->proj || !q->rot) {
        zs_itq_free(q);
        return zs__fail(ZS_ERR_NOMEM, "zs_itq: out of memory (dim %d, bits %d)", dim, bits);
    }
    return ZS_OK;
}

/* codes [words] of one projected row z [bits]: bit j = z_j > 0 */
ZS__PRIV void zs__itq_pack(uint64_t *codes, const double *z, int bits) {
    int j, words = ZS_ITQ_WORDS(bits);
    for (j = 0; j < words; j++) codes[j] = 0;
    for (j = 0; j < bits; j++)
        if (z[j] > 0) codes[j >> 6] |= (uint64_t)1 << (j & 63);
}

/* Rows are processed in chunks of ZS__ITQ_CH so that only V [n, bits] is kept
   whole; every product goes through zs__dgemm. */
#define ZS__ITQ_CH 256
ZS__FN int zs_itq_train(zs_itq *q, uint64_t *codes, const float *x, int n, int dim, int bits, int iters,
                        uint64_t seed, const float *init_rot) {
    size_t Nn = (size_t)n, D = (size_t)dim, B = (size_t)bits, i, j, c, i0;
    double *mean = NULL, *cov = NULL, *evals = NULL, *zt = NULL, *v = NULL, *R = NULL, *C = NULL, *ub = NULL,
           *sv = NULL, *uat = NULL, *P = NULL, *xc = NULL, *xct = NULL, *zc = NULL, *bt = NULL, *t1 = NULL, *t2 = NULL,
           *pk = NULL;
    int r = ZS_OK, it, words = ZS_ITQ_WORDS(bits);
    if (!q || !x) return zs__fail(ZS_ERR_ARG, "zs_itq_train: NULL q or x");
    memset(q, 0, sizeof *q);
    if (n < 2 || dim < 1 || dim > ZS_ITQ_MAX_DIM || dim > ZS_LINALG_MAX_N || bits < 1 || bits > dim || iters < 0 ||
        n > (1 << 28))
        return zs__fail(ZS_ERR_ARG, "zs_itq_train: need n >= 2, 1 <= bits <= dim <= %d, iters >= 0 (n %d, dim %d, "
                        "bits %d, iters %d)", ZS_ITQ_MAX_DIM, n, dim, bits, iters);
    if (!zs__mul_ok(Nn, D, &i) || !zs__mul_ok(Nn, B * sizeof(double), &i))
        return zs__fail(ZS_ERR_ARG, "zs_itq_train: %d x %d is too large", n, dim);
    for (i = 0; i < Nn * D; i++)
        if (!zs__finite_d(x[i]))
            return zs__fail(ZS_ERR_ARG, "zs_itq_train: x[%zu][%zu] is not finite", i / D, i % D);
    mean = zs__dalloc(D, 1);
    cov = zs__dalloc(D, D);
    evals = zs__dalloc(D, 1);
    zt = zs__dalloc(D, D);
    P = zs__dalloc(D, B);
    v = zs__dalloc(Nn, B);
    R = zs__dalloc(B, B);
    C = zs__dalloc(B, B);
    ub = zs__dalloc(B, B);
    sv = zs__dalloc(B, 1);
    uat = zs__dalloc(B, B);
    t1 = zs__dalloc(B, B);
    t2 = zs__dalloc(B, B);
    xc = zs__dalloc(ZS__ITQ_CH, D);
    xct = zs__dalloc(ZS__ITQ_CH, D);
    zc = zs__dalloc(ZS__ITQ_CH, B);
    bt = zs__dalloc(ZS__ITQ_CH, B);
    pk = zs__dalloc(ZS__DGEMM_PACK, 1);
    if (!pk || !mean || !cov || !evals || !zt || !P || !v || !R || !C || !ub || !sv || !uat || !t1 || !t2 || !xc || !xct ||
        !zc || !bt) {
        r = zs__fail(ZS_ERR_NOMEM, "zs_itq_train: out of memory (n %d, dim %d, bits %d)", n, dim, bits);
        goto done;
    }
    /* mean, then the scatter matrix Xc^T Xc, chunk by chunk */
    for (j = 0; j < D; j++) mean[j] = 0;
    for (i = 0; i < Nn; i++)
        for (j = 0; j < D; j++) mean[j] += x[i * D + j];
    for (j = 0; j < D; j++) mean[j] /= (double)n;
    memset(cov, 0, D * D * sizeof(double));
    for (i0 = 0; i0 < Nn; i0 += ZS__ITQ_CH) {
        size_t m = Nn - i0 < ZS__ITQ_CH ? Nn - i0 : ZS__ITQ_CH;
        for (i = 0; i < m; i++)
            for (j = 0; j < D; j++) xct[j * m + i] = xc[i * D + j] = x[(i0 + i) * D + j] - mean[j];
        zs__dgemm(cov, D, xct, m, xc, D, dim, dim, (int)m, 1, pk);
    }
    r = zs__eigh_rows(evals, zt, cov, dim);
    if (r) goto done;
    /* V = Xc P, P [dim, bits] = the leading eigenvectors as columns */
    for (j = 0; j < D; j++)
        for (c = 0; c < B; c++) P[j * B + c] = zt[c * D + j];
    for (i0 = 0; i0 < Nn; i0 += ZS__ITQ_CH) {
        size_t m = Nn - i0 < ZS__ITQ_CH ? Nn - i0 : ZS__ITQ_CH;
        for (i = 0; i < m; i++)
            for (j = 0; j < D; j++) xc[i * D + j] = x[(i0 + i) * D + j] - mean[j];
        zs__dgemm(v + i0 * B, B, xc, D, P, B, (int)m, bits, dim, 0, pk);
    }
    /* initial rotation */
    if (init_rot) {
        for (i = 0; i < B * B; i++) {
            if (!zs__finite_d(init_rot[i])) {
                r = zs__fail(ZS_ERR_ARG, "zs_itq_train: init_rot[%zu] is not finite", i);
                goto done;
            }
            R[i] = init_rot[i];
        }
    } else {
        /* U of the SVD of a Gaussian matrix (Box-Muller on the counter RNG) */
        for (i = 0; i < B * B; i++) {
            double u1 = ((double)(zs__mix64(seed ^ zs__mix64(2 * i)) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
            double u2 = (double)(zs__mix64(seed ^ zs__mix64(2 * i + 1)) >> 11) * (1.0 / 9007199254740992.0);
            C[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        }
        r = zs_svd(R, sv, uat, C, bits, bits);
        if (r) goto done;
    }
    for (it = 0; it < iters; it++) {
        /* C = B^T V with B = sign(V R) (+1 at 0) */
        memset(C, 0, B * B * sizeof(double));
        for (i0 = 0; i0 < Nn; i0 += ZS__ITQ_CH) {
            size_t m = Nn - i0 < ZS__ITQ_CH ? Nn - i0 : ZS__ITQ_CH;
            zs__dgemm(zc, B, v + i0 * B, B, R, B, (int)m, bits, bits, 0, pk);
            for (i = 0; i < m; i++)
                for (c = 0; c < B; c++) bt[c * m + i] = zc[i * B + c] >= 0 ? 1.0 : -1.0;
            zs__dgemm(C, B, bt, m, v + i0 * B, B, bits, bits, (int)m, 1, pk);
        }
        /* Procrustes: C = Ub S Ua^T -> R = Ua Ub^T */
        r = zs_svd(ub, sv, uat, C, bits, bits);
        if (r) goto done;
        for (i = 0; i < B; i++)
            for (j = 0; j < B; j++) {
                t1[i * B + j] = uat[j * B + i]; /* Ua */
                t2[i * B + j] = ub[j * B + i];  /* Ub^T */
            }
        zs__dgemm(R, B, t1, B, t2, B, bits, bits, bits, 0, pk);
    }
    r = zs__itq_alloc(q, dim, bits);
    if (r) goto done;
    for (j = 0; j < D; j++) q->mean[j] = (float)mean[j];
    for (j = 0; j < D * B; j++) q->proj[j] = (float)P[j];
    for (i = 0; i < B * B; i++) q->rot[i] = (float)R[i];
    if (codes)
        for (i0 = 0; i0 < Nn; i0 += ZS__ITQ_CH) {
            size_t m = Nn - i0 < ZS__ITQ_CH ? Nn - i0 : ZS__ITQ_CH;
            zs__dgemm(zc, B, v + i0 * B, B, R, B, (int)m, bits, bits, 0, pk);
            for (i = 0; i < m; i++) zs__itq_pack(codes + (i0 + i) * (size_t)words, zc + i * B, bits);
        }
done:
    zs__free(mean, NULL); zs__free(cov, NULL); zs__free(evals, NULL); zs__free(zt, NULL); zs__free(P, NULL);
    zs__free(v, NULL); zs__free(R, NULL); zs__free(C, NULL); zs__free(ub, NULL); zs__free(sv, NULL);
    zs__free(uat, NULL); zs__free(t1, NULL); zs__free(t2, NULL); zs__free(xc, NULL); zs__free(xct, NULL);
    zs__free(zc, NULL); zs__free(bt, NULL); zs__free(pk, NULL);
    return r;
}

ZS__FN int zs_itq_encode(const zs_itq *q, uint64_t *codes, const float *x, int n) {
    size_t D, B, i, j, i0;
    double *pr, *xc, *zc, *pd, *rd, *pk;
    int words;
    if (!q || !q->mean || !q->proj || !q->rot || !codes || (!x && n > 0) || n < 0)
        return zs__fail(ZS_ERR_ARG, "zs_itq_encode: NULL argument, untrained zs_itq or n < 0");
    if (q->dim < 1 || q->bits < 1 || q->bits > q->dim || q->dim > ZS_ITQ_MAX_DIM)
        return zs__fail(ZS_ERR_ARG, "zs_itq_encode: bad zs_itq (dim %d, bits %d)", q->dim, q->bits);
    D = (size_t)q->dim;
    B = (size_t)q->bits;
    words = ZS_ITQ_WORDS(q->bits);
    pr = zs__dalloc(D * B * 2 + B * B + ZS__ITQ_CH * (D + B) + ZS__DGEMM_PACK, 1);
    if (!pr) return zs__fail(ZS_ERR_NOMEM, "zs_itq_encode: out of memory");
    pd = pr + D * B;
    rd = pd + D * B;
    xc = rd + B * B;
    zc = xc + ZS__ITQ_CH * D;
    pk = zc + ZS__ITQ_CH * B;
    /* pr = P R [dim, bits] in double from the stored floats */
    for (i = 0; i < D * B; i++) pd[i] = q->proj[i];
    for (i = 0; i < B * B; i++) rd[i] = q->rot[i];
    zs__dgemm(pr, B, pd, B, rd, B, q->dim, q->bits, q->bits, 0, pk);
    for (i0 = 0; i0 < (size_t)n; i0 += ZS__ITQ_CH) {
        size_t m = (size_t)n - i0 < ZS__ITQ_CH ? (size_t)n - i0 : ZS__ITQ_CH;
        for (i = 0; i < m; i++)
            for (j = 0; j < D; j++) xc[i * D + j] = (double)x[(i0 + i) * D + j] - (double)q->mean[j];
        zs__dgemm(zc, B, xc, D, pr, B, (int)m, q->bits, q->dim, 0, pk);
        for (i = 0; i < m; i++) zs__itq_pack(codes + (i0 + i) * (size_t)words, zc + i * B, q->bits);
    }
    zs__free(pr, NULL);
    return ZS_OK;
}

ZS__FN int zs_itq_save(const zs_itq *q, const char *path) {
    zs_st_entry e[3];
    int64_t sm[1], sp[2], sr[2];
    static const char *const meta[] = {"format", "zsesbir-itq", NULL};
    if (!q || !path || !q->mean || !q->proj || !q->rot || q->dim < 1 || q->bits < 1 || q->bits > q->dim)
        return zs__fail(ZS_ERR_ARG, "zs_itq_save: NULL argument or untrained zs_itq");
    sm[0] = q->dim;
    sp[0] = q->dim; sp[1] = q->bits;
    sr[0] = q->bits; sr[1] = q->bits;
    e[0].name = "itq.mean"; e[0].type = ZS_F32; e[0].ndim = 1; e[0].shape = sm; e[0].data = q->mean;
    e[1].name = "itq.proj"; e[1].type = ZS_F32; e[1].ndim = 2; e[1].shape = sp; e[1].data = q->proj;
    e[2].name = "itq.rot"; e[2].type = ZS_F32; e[2].ndim = 2; e[2].shape = sr; e[2].data = q->rot;
    return zs_st_save(path, e, 3, meta);
}

ZS__FN int zs_itq_load(zs_itq *q, const char *path) {
    zs_safetensors *st;
    const zs_st_info *tm, *tp, *tr;
    int r, dim, bits, t;
    size_t i;
    if (!q || !path) return zs__fail(ZS_ERR_ARG, "zs_itq_load: NULL argument");
    memset(q, 0, sizeof *q);
    st = zs_st_open(path);
    if (!st) return ZS_ERR_FORMAT; /* message from zs_st_open */
    tm = zs_st_find(st, "itq.mean");
    tp = zs_st_find(st, "itq.proj");
    tr = zs_st_find(st, "itq.rot");
    if (!tm || !tp || !tr) {
        zs_st_close(st);
        return zs__fail(ZS_ERR_FORMAT, "%s: missing itq.mean, itq.proj or itq.rot", path);
    }
    if (tm->ndim != 1 || tp->ndim != 2 || tr->ndim != 2 || tm->shape[0] < 1 || tm->shape[0] > ZS_ITQ_MAX_DIM ||
        tp->shape[0] != tm->shape[0] || tp->shape[1] < 1 || tp->shape[1] > tm->shape[0] ||
        tr->shape[0] != tp->shape[1] || tr->shape[1] != tp->shape[1]) {
        zs_st_close(st);
        return zs__fail(ZS_ERR_FORMAT, "%s: inconsistent ITQ shapes (want mean [d], proj [d,b], rot [b,b], "
                        "1 <= b <= d <= %d)", path, ZS_ITQ_MAX_DIM);
    }
    dim = (int)tm->shape[0];
    bits = (int)tp->shape[1];
    r = zs__itq_alloc(q, dim, bits);
    if (!r) r = zs_st_read(st, tm, q->mean, ZS_F32, (size_t)dim);
    if (!r) r = zs_st_read(st, tp, q->proj, ZS_F32, (size_t)dim * (size_t)bits);
    if (!r) r = zs_st_read(st, tr, q->rot, ZS_F32, (size_t)bits * (size_t)bits);
    zs_st_close(st);
    for (t = 0; !r && t < 3; t++) {
        const float *p = t == 0 ? q->mean : t == 1 ? q->proj : q->rot;
        size_t cnt = t == 0 ? (size_t)dim : t == 1 ? (size_t)dim * (size_t)bits : (size_t)bits * (size_t)bits;
        for (i = 0; i < cnt; i++)
            if (!zs__finite_d(p[i])) {
                r = zs__fail(ZS_ERR_FORMAT, "%s: non-finite value in %s", path, t == 0 ? "itq.mean" : t == 1 ? "itq.proj" : "itq.rot");
                break;
            }
    }
    if (r) zs_itq_free(q);
    return r;
}

/* ---- Hamming distances --------------------------------------------------- */
ZS__PRIV int zs__popcount64_portable(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}
#if defined(__GNUC__) || defined(__clang__)
#define zs__popcount64(x) __builtin_popcountll(x)
#else
#define zs__popcount64(x) zs__popcount64_portable(x)
#endif

ZS__FN int zs_hamming_matrix(float *dist, const uint64_t *a, int na, const uint64_t *b, int nb, int bits) {
    int words, i, j, w;
    uint64_t last;
    if (!dist || (!a && na > 0) || (!b && nb > 0) || na < 0 || nb < 0 || bits < 1)
        return zs__fail(ZS_ERR_ARG, "zs_hamming_matrix: NULL argument, negative count or bits < 1");
    words = ZS_ITQ_WORDS(bits);
    last = (bits & 63) ? (((uint64_t)1 << (bits & 63)) - 1) : ~(uint64_t)0;
    for (i = 0; i < na; i++) {
        const uint64_t *ai = a + (size_t)i * words;
        for (j = 0; j < nb; j++) {
            const uint64_t *bj = b + (size_t)j * words;
            int d = 0;
            for (w = 0; w + 1 < words; w++) d += zs__popcount64(ai[w] ^ bj[w]);
            d += zs__popcount64((ai[words - 1] ^ bj[words - 1]) & last);
            dist[(size_t)i * nb + j] = (float)d;
        }
    }
    return ZS_OK;
}

/* ==================================================================== */
/* [impl:data] retrieval metrics, list files, datasets, sampler         */
/* ==================================================================== */

#include <limits.h>
#include <errno.h>
#ifndef _WIN32
#include <dirent.h>
#include <sys/stat.h>
#endif

/* ---- metrics ------------------------------------------------------------ */

/* Ranking: LSD radix sort (3 passes of 11 bits) of the distances mapped to
   order-preserving unsigned keys. LSD radix sort is stable and the input is
   in gallery order, so ties come out by increasing gallery index. -0.0 is
   folded onto +0.0 (they compare equal as floats). */
typedef struct zs__dkey { uint32_t k; int32_t i; } zs__dkey;

ZS__PRIV uint32_t zs__float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (u == 0x80000000u) u = 0; /* -0.0 -> +0.0 */
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* keys and tmp: ng entries each; the result is in keys */
ZS__PRIV int zs__rank_row(const float *row, int ng, zs__dkey *keys, zs__dkey *tmp, int q) {
    uint32_t cnt[2048];
    zs__dkey *out = keys;
    int g, pass;
    for (g = 0; g < ng; g++) {
        if (zs__isnan_bits(row[g])) return zs__fail(ZS_ERR_ARG, "distance [%d][%d] is NaN", q, g);
        keys[g].k = zs__float_key(row[g]);
        keys[g].i = g;
    }
    for (pass = 0; pass < 3; pass++) {
        int shift = 11 * pass;
        uint32_t sum = 0, first = (keys[0].k >> shift) & 2047u;
        int same = 1;
        zs__dkey *sw;
        memset(cnt, 0, sizeof cnt);
        for (g = 0; g < ng; g++) {
            uint32_t d = (keys[g].k >> shift) & 2047u;
            cnt[d]++;
            same &= d == first;
        }
        if (same) continue; /* this digit is equal everywhere */
        for (g = 0; g < 2048; g++) { uint32_t c = cnt[g]; cnt[g] = sum; sum += c; }
        for (g = 0; g < ng; g++) tmp[cnt[(keys[g].k >> shift) & 2047u]++] = keys[g];
        sw = keys; keys = tmp; tmp = sw;
    }
    if (keys != out) memcpy(out, keys, (size_t)ng * sizeof *keys);
    return ZS_OK;
}

ZS__FN int zs_rank_gallery(const float *dist_row, int ng, int32_t *order) {
    zs__dkey *keys;
    size_t bytes;
    int g, rc;
    if (!dist_row || !order || ng <= 0) return zs__fail(ZS_ERR_ARG, "zs_rank_gallery: NULL argument or ng=%d", ng);
    if (!zs__mul_ok((size_t)ng, 2 * sizeof *keys, &bytes)) return zs__fail(ZS_ERR_NOMEM, "zs_rank_gallery: size overflow");
    keys = (zs__dkey *)zs__malloc(bytes, NULL);
    if (!keys) return zs__fail(ZS_ERR_NOMEM, "zs_rank_gallery: out of memory (%zu bytes)", bytes);
    rc = zs__rank_row(dist_row, ng, keys, keys + ng, 0);
    if (rc == ZS_OK)
        for (g = 0; g < ng; g++) order[g] = keys[g].i;
    zs__free(keys, NULL);
    return rc;
}

ZS__FN double zs_average_precision(const int8_t *rel, int n, int P) {
    /* Backward pass: m = max over j >= k of prec[j] (precision made monotone
       from the right); each relevant position raises recall by 1/P. */
    int k, tp = 0;
    double m = 0.0, ap = 0.0;
    if (P <= 0 || n < 0 || (!rel && n > 0)) return NAN;
    for (k = 0; k < n; k++) tp += rel[k] != 0;
    for (k = n - 1; k >= 0; k--) {
        double prec = (double)tp / (double)(k + 1);
        if (prec > m) m = prec;
        if (rel[k]) { ap += m; tp--; }
    }
    return ap / (double)P;
}

ZS__FN int zs_eval_retrieval(const float *dist, int nq, int ng, const int32_t *q_labels,
                             const int32_t *g_labels, zs_metrics *out) {
    zs__dkey *keys = NULL;
    int8_t *rel = NULL;
    int32_t *cls = NULL;  /* distinct query labels, sorted */
    double *cls_sum = NULL;
    int *cls_cnt = NULL;
    int n_cls = 0, q, g, k, rc = ZS_OK, n200 = ng < 200 ? ng : 200;
    double s_all = 0, s_200 = 0, s_p100 = 0, s_p200 = 0, t_p100 = 0, t_p200 = 0;
    size_t bytes;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_eval_retrieval: NULL output");
    memset(out, 0, sizeof *out);
    if (!dist || !q_labels || !g_labels) return zs__fail(ZS_ERR_ARG, "zs_eval_retrieval: NULL argument");
    if (nq <= 0 || ng <= 0) return zs__fail(ZS_ERR_ARG, "zs_eval_retrieval: empty matrix %d x %d", nq, ng);
    if (!zs__mul_ok((size_t)ng, 2 * sizeof *keys, &bytes)) return zs__fail(ZS_ERR_NOMEM, "zs_eval_retrieval: size overflow");
    keys = (zs__dkey *)zs__malloc(bytes, NULL);
    rel = (int8_t *)zs__malloc((size_t)ng, NULL);
    cls = (int32_t *)zs__malloc((size_t)nq * sizeof *cls, NULL);
    cls_sum = (double *)zs__malloc((size_t)nq * sizeof *cls_sum, NULL);
    cls_cnt = (int *)zs__malloc((size_t)nq * sizeof *cls_cnt, NULL);
    if (!keys || !rel || !cls || !cls_sum || !cls_cnt) { rc = zs__fail(ZS_ERR_NOMEM, "zs_eval_retrieval: out of memory"); goto done; }
    /* distinct query classes, sorted (insertion into a sorted array) */
    for (q = 0; q < nq; q++) {
        int lo = 0, hi = n_cls;
        while (lo < hi) { int mid = (lo + hi) / 2; if (cls[mid] < q_labels[q]) lo = mid + 1; else hi = mid; }
        if (lo < n_cls && cls[lo] == q_labels[q]) continue;
        memmove(cls + lo + 1, cls + lo, (size_t)(n_cls - lo) * sizeof *cls);
        cls[lo] = q_labels[q];
        n_cls++;
    }
    for (k = 0; k < n_cls; k++) { cls_sum[k] = 0; cls_cnt[k] = 0; }
    for (q = 0; q < nq; q++) {
        const float *row = dist + (size_t)q * (size_t)ng;
        int P = 0, tp100 = 0, tp200 = 0, c, lo = 0, hi = n_cls;
        rc = zs__rank_row(row, ng, keys, keys + ng, q);
        if (rc != ZS_OK) goto done;
        for (g = 0; g < ng; g++) {
            rel[g] = (int8_t)(g_labels[keys[g].i] == q_labels[q]);
            P += rel[g];
        }
        for (k = 0; k < ng && k < 200; k++) {
            if (k < 100) tp100 += rel[k];
            tp200 += rel[k];
        }
        /* TCN P@K: over all queries */
        t_p100 += (double)tp100 / (double)(ng < 100 ? ng : 100);
        t_p200 += (double)tp200 / (double)(ng < 200 ? ng : 200);
        if (P == 0) continue;
        out->n_valid++;
        {
            double ap = zs_average_precision(rel, ng, P);
            int k1 = P < 100 ? P : 100, k2 = P < 200 ? P : 200, h1 = 0, h2 = 0;
            s_all += ap;
            s_200 += zs_average_precision(rel, n200, P < 200 ? P : 200);
            for (k = 0; k < k2; k++) { if (k < k1) h1 += rel[k]; h2 += rel[k]; }
            s_p100 += (double)h1 / (double)k1;
            s_p200 += (double)h2 / (double)k2;
            while (lo < hi) { int mid = (lo + hi) / 2; if (cls[mid] < q_labels[q]) lo = mid + 1; else hi = mid; }
            c = lo;
            cls_sum[c] += ap;
            cls_cnt[c]++;
        }
    }
    if (out->n_valid > 0) {
        double nv = (double)out->n_valid, tm = 0;
        int nc = 0;
        out->map_all = s_all / nv;
        out->map_200 = s_200 / nv;
        out->p_100 = s_p100 / nv;
        out->p_200 = s_p200 / nv;
        for (k = 0; k < n_cls; k++)
            if (cls_cnt[k]) { tm += cls_sum[k] / cls_cnt[k]; nc++; }
        out->tcn_map = tm / nc;
    } else {
        out->map_all = out->map_200 = out->p_100 = out->p_200 = out->tcn_map = NAN;
    }
    out->tcn_p_100 = t_p100 / nq;
    out->tcn_p_200 = t_p200 / nq;
done:
    zs__free(keys, NULL);
    zs__free(rel, NULL);
    zs__free(cls, NULL);
    zs__free(cls_sum, NULL);
    zs__free(cls_cnt, NULL);
    return rc;
}

ZS__FN int zs_eval_fine_grained(const float *dist, int nq, int ng, const int32_t *pair_index,
                                double *acc1, double *acc10) {
    int q, g, n = 0, h1 = 0, h10 = 0;
    if (!dist || !pair_index || !acc1 || !acc10) return zs__fail(ZS_ERR_ARG, "zs_eval_fine_grained: NULL argument");
    *acc1 = *acc10 = NAN;
    if (nq <= 0 || ng <= 0) return zs__fail(ZS_ERR_ARG, "zs_eval_fine_grained: empty matrix %d x %d", nq, ng);
    for (q = 0; q < nq; q++)
        if (pair_index[q] < -1 || pair_index[q] >= ng)
            return zs__fail(ZS_ERR_ARG, "zs_eval_fine_grained: pair_index[%d] = %d outside -1..%d", q, (int)pair_index[q], ng - 1);
    for (q = 0; q < nq; q++) {
        const float *row = dist + (size_t)q * (size_t)ng;
        int p = pair_index[q], rank = 0;
        float dp;
        for (g = 0; g < ng; g++)
            if (zs__isnan_bits(row[g])) return zs__fail(ZS_ERR_ARG, "distance [%d][%d] is NaN", q, g);
        if (p < 0) continue;
        dp = row[p];
        for (g = 0; g < ng; g++) rank += row[g] < dp || (row[g] == dp && g < p);
        n++;
        h1 += rank < 1;
        h10 += rank < 10;
    }
    if (n > 0) { *acc1 = (double)h1 / n; *acc10 = (double)h10 / n; }
    return ZS_OK;
}

/* ---- list files ------------------------------------------------------------ */

/* Reads a whole text file (at most 1 GiB) into a NUL-terminated buffer. */
ZS__PRIV int zs__read_text(const char *path, char **buf, size_t *len) {
    FILE *f;
    size_t cap = 1 << 16, n = 0, got;
    char *b, *nb;
    *buf = NULL; *len = 0;
    f = fopen(path, "rb");
    if (!f) return zs__fail(ZS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    b = (char *)zs__malloc(cap, NULL);
    if (!b) { fclose(f); return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", path); }
    for (;;) {
        if (cap - n < 2) {
            if (cap >= ((size_t)1 << 30)) { zs__free(b, NULL); fclose(f); return zs__fail(ZS_ERR_FORMAT, "%s: larger than 1 GiB", path); }
            nb = (char *)zs__malloc(cap * 2, NULL);
            if (!nb) { zs__free(b, NULL); fclose(f); return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", path); }
            memcpy(nb, b, n);
            zs__free(b, NULL);
            b = nb; cap *= 2;
        }
        got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { zs__free(b, NULL); fclose(f); return zs__fail(ZS_ERR_IO, "%s: read error", path); }
    fclose(f);
    if (memchr(b, 0, n)) { zs__free(b, NULL); return zs__fail(ZS_ERR_FORMAT, "%s: not a text file (NUL byte)", path); }
    b[n] = 0;
    *buf = b; *len = n;
    return ZS_OK;
}

/* Cuts the next line out of *pos (in place: the '\n' and a trailing '\r'
   become NUL, trailing blanks are dropped). Returns NULL at the end, sets
   *err when the line is longer than ZS_LIST_MAX_LINE. */
ZS__PRIV char *zs__next_line(char **pos, char *end, int lineno, const char *path, int *err) {
    char *s = *pos, *e, *t;
    *err = ZS_OK;
    if (s >= end) return NULL;
    e = (char *)memchr(s, '\n', (size_t)(end - s));
    if (!e) e = end;
    *pos = e < end ? e + 1 : end;
    if (e - s > ZS_LIST_MAX_LINE) {
        *err = zs__fail(ZS_ERR_FORMAT, "%s:%d: line longer than %d bytes", path, lineno, ZS_LIST_MAX_LINE);
        return NULL;
    }
    *e = 0;
    t = e;
    while (t > s && (t[-1] == '\r' || t[-1] == ' ' || t[-1] == '\t')) *--t = 0;
    return s;
}

/* "name label": the label is the last blank-separated field. */
ZS__PRIV int zs__split_label(char *line, int lineno, const char *path, int32_t *label) {
    char *sp = line + strlen(line), *d, *t;
    long long v = 0;
    while (sp > line && sp[-1] != ' ' && sp[-1] != '\t') sp--;
    if (sp == line) return zs__fail(ZS_ERR_FORMAT, "%s:%d: missing label (want \"name label\")", path, lineno);
    d = sp;
    if (!*d) return zs__fail(ZS_ERR_FORMAT, "%s:%d: missing label", path, lineno);
    for (t = d; *t; t++) {
        if (*t < '0' || *t > '9')
            return zs__fail(ZS_ERR_FORMAT, "%s:%d: bad label \"%.40s\" (want a non-negative integer)", path, lineno, d);
        v = v * 10 + (*t - '0');
        if (v > INT32_MAX) return zs__fail(ZS_ERR_FORMAT, "%s:%d: label \"%.40s\" too large", path, lineno, d);
    }
    t = sp;
    while (t > line && (t[-1] == ' ' || t[-1] == '\t')) *--t = 0;
    if (t == line) return zs__fail(ZS_ERR_FORMAT, "%s:%d: missing name before the label", path, lineno);
    *label = (int32_t)v;
    return ZS_OK;
}

ZS__FN void zs_filelist_free(zs_filelist *fl) {
    if (!fl) return;
    zs__free(fl->path, NULL);
    zs__free(fl->label, NULL);
    zs__free(fl->pool_, NULL);
    memset(fl, 0, sizeof *fl);
}

ZS__FN int zs_filelist_read(const char *path, zs_filelist *out) {
    char *buf = NULL, *pos, *end, *line;
    size_t len, cap = 0;
    int rc, lineno = 0, err;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_filelist_read: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return zs__fail(ZS_ERR_ARG, "zs_filelist_read: NULL path");
    rc = zs__read_text(path, &buf, &len);
    if (rc != ZS_OK) return rc;
    out->pool_ = buf;
    /* upper bound of entries: newlines + 1 */
    for (pos = buf, end = buf + len; pos < end; pos++) cap += *pos == '\n';
    cap++;
    if (cap > (size_t)INT_MAX) { zs_filelist_free(out); return zs__fail(ZS_ERR_FORMAT, "%s: too many lines", path); }
    out->path = (char **)zs__malloc(cap * sizeof(char *), NULL);
    out->label = (int32_t *)zs__malloc(cap * sizeof(int32_t), NULL);
    if (!out->path || !out->label) { zs_filelist_free(out); return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", path); }
    pos = buf;
    while ((line = zs__next_line(&pos, end, ++lineno, path, &err)) != NULL) {
        if (!*line) continue;
        rc = zs__split_label(line, lineno, path, &out->label[out->n]);
        if (rc != ZS_OK) { zs_filelist_free(out); return rc; }
        out->path[out->n++] = line;
    }
    if (err != ZS_OK) { zs_filelist_free(out); return err; }
    return ZS_OK;
}

/* ---- datasets ---------------------------------------------------------------- */

/* zs__strdup comes from [impl:io] */
ZS__PRIV int zs__strcmp_p(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct zs__strvec { char **v; int n, cap; } zs__strvec;

ZS__PRIV void zs__strvec_free(zs__strvec *s) {
    int i;
    for (i = 0; i < s->n; i++) zs__free(s->v[i], NULL);
    zs__free(s->v, NULL);
    s->v = NULL; s->n = s->cap = 0;
}
/* takes ownership of str (freed on failure) */
ZS__PRIV int zs__strvec_push(zs__strvec *s, char *str) {
    if (!str) return zs__fail(ZS_ERR_NOMEM, "dataset: out of memory");
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        char **nv;
        if (s->cap > INT_MAX / 4) { zs__free(str, NULL); return zs__fail(ZS_ERR_NOMEM, "dataset: too many entries"); }
        nv = (char **)zs__malloc((size_t)nc * sizeof(char *), NULL);
        if (!nv) { zs__free(str, NULL); return zs__fail(ZS_ERR_NOMEM, "dataset: out of memory"); }
        if (s->n) memcpy(nv, s->v, (size_t)s->n * sizeof(char *));
        zs__free(s->v, NULL);
        s->v = nv; s->cap = nc;
    }
    s->v[s->n++] = str;
    return ZS_OK;
}

#ifndef _WIN32
/* Sorted names of the sub-directories (want_dirs) or regular files of dir.
   *exists = 0 (and ZS_OK) when dir does not exist. */
ZS__PRIV int zs__list_dir(const char *dir, int want_dirs, zs__strvec *out, int *exists) {
    DIR *d;
    struct dirent *e;
    char full[ZS_LIST_MAX_LINE + 1];
    struct stat st;
    int rc;
    *exists = 1;
    d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) { *exists = 0; return ZS_OK; }
        return zs__fail(ZS_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= sizeof full) {
            closedir(d);
            return zs__fail(ZS_ERR_FORMAT, "path %s/%s longer than %d bytes", dir, e->d_name, ZS_LIST_MAX_LINE);
        }
        if (stat(full, &st) != 0) continue; /* dangling link */
        if (want_dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) continue;
        rc = zs__strvec_push(out, zs__strdup(e->d_name));
        if (rc != ZS_OK) { closedir(d); return rc; }
    }
    closedir(d);
    if (out->n > 1) qsort(out->v, (size_t)out->n, sizeof(char *), zs__strcmp_p);
    return ZS_OK;
}
#endif

ZS__FN void zs_dataset_free(zs_dataset *ds) {
    int i;
    if (!ds) return;
    if (ds->class_name)
        for (i = 0; i < ds->n_classes; i++) zs__free(ds->class_name[i], NULL);
    if (ds->photo_path)
        for (i = 0; i < ds->n_photos; i++) zs__free(ds->photo_path[i], NULL);
    if (ds->sketch_path)
        for (i = 0; i < ds->n_sketches; i++) zs__free(ds->sketch_path[i], NULL);
    zs__free(ds->class_name, NULL);
    zs__free(ds->photo_path, NULL);
    zs__free(ds->sketch_path, NULL);
    zs__free(ds->photo_start, NULL);
    zs__free(ds->photo_count, NULL);
    zs__free(ds->sketch_start, NULL);
    zs__free(ds->sketch_count, NULL);
    zs__free(ds->unseen, NULL);
    zs__free(ds->seen_class, NULL);
    zs__free(ds->unseen_class, NULL);
    zs__free(ds->photo_label, NULL);
    zs__free(ds->sketch_label, NULL);
    zs__free(ds->sketch_pair, NULL);
    memset(ds, 0, sizeof *ds);
}

typedef struct zs__stem { const char *s; size_t n; int32_t idx; } zs__stem;

ZS__PRIV int zs__stem_cmp(const void *a, const void *b) {
    const zs__stem *x = (const zs__stem *)a, *y = (const zs__stem *)b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

ZS__PRIV const char *zs__basename(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* stem of a file name: up to the last '.', without it */
ZS__PRIV size_t zs__stem_len(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && dot != name ? (size_t)(dot - name) : strlen(name);
}

ZS__PRIV int zs__dataset_pairs(zs_dataset *ds) {
    zs__stem *st;
    int c, i;
    st = (zs__stem *)zs__malloc((size_t)(ds->n_photos > 0 ? ds->n_photos : 1) * sizeof *st, NULL);
    if (!st) return zs__fail(ZS_ERR_NOMEM, "dataset: out of memory (pairs)");
    for (i = 0; i < ds->n_photos; i++) {
        st[i].s = zs__basename(ds->photo_path[i]);
        st[i].n = zs__stem_len(st[i].s);
        st[i].idx = i;
    }
    for (c = 0; c < ds->n_classes; c++) {
        zs__stem *base = st + ds->photo_start[c];
        int np = ds->photo_count[c];
        if (np > 1) qsort(base, (size_t)np, sizeof *st, zs__stem_cmp);
        for (i = ds->sketch_start[c]; i < ds->sketch_start[c] + ds->sketch_count[c]; i++) {
            zs__stem key, *hit;
            const char *nm = zs__basename(ds->sketch_path[i]);
            size_t n = zs__stem_len(nm), j = n;
            ds->sketch_pair[i] = -1;
            while (j > 0 && nm[j - 1] >= '0' && nm[j - 1] <= '9') j--;
            if (j == n || j < 2 || nm[j - 1] != '-') continue; /* no "-<k>" suffix */
            key.s = nm; key.n = j - 1; key.idx = 0;
            hit = np > 0 ? (zs__stem *)bsearch(&key, base, (size_t)np, sizeof *st, zs__stem_cmp) : NULL;
            if (hit) { ds->sketch_pair[i] = hit->idx; ds->n_paired++; }
        }
    }
    zs__free(st, NULL);
    return ZS_OK;
}

/* all classes seen */
ZS__PRIV int zs__dataset_all_seen(zs_dataset *ds) {
    int c, n = ds->n_classes > 0 ? ds->n_classes : 1;
    ds->unseen = (uint8_t *)zs__malloc((size_t)n, NULL);
    ds->seen_class = (int32_t *)zs__malloc((size_t)n * sizeof(int32_t), NULL);
    ds->unseen_class = (int32_t *)zs__malloc(sizeof(int32_t), NULL);
    if (!ds->unseen || !ds->seen_class || !ds->unseen_class) return zs__fail(ZS_ERR_NOMEM, "dataset: out of memory");
    for (c = 0; c < ds->n_classes; c++) { ds->unseen[c] = 0; ds->seen_class[c] = c; }
    ds->n_seen = ds->n_classes;
    ds->n_unseen = 0;
    return ZS_OK;
}

ZS__FN int zs_dataset_open(zs_dataset *ds, const char *root, const char *class_list) {
#ifdef _WIN32
    if (ds) memset(ds, 0, sizeof *ds);
    (void)root; (void)class_list;
    return zs__fail(ZS_ERR_UNSUPPORTED, "zs_dataset_open: directory listing needs POSIX (not available on Windows)");
#else
    zs__strvec names = {NULL, 0, 0}, ph = {NULL, 0, 0}, sk = {NULL, 0, 0}, files = {NULL, 0, 0};
    zs__strvec pp = {NULL, 0, 0}, sp = {NULL, 0, 0};
    zs_filelist cl;
    char dir[ZS_LIST_MAX_LINE + 1];
    int rc = ZS_OK, i, j, c, ex_p, ex_s, m;
    memset(&cl, 0, sizeof cl);
    if (!ds) return zs__fail(ZS_ERR_ARG, "zs_dataset_open: NULL dataset");
    memset(ds, 0, sizeof *ds);
    if (!root) return zs__fail(ZS_ERR_ARG, "zs_dataset_open: NULL root");
    if ((size_t)snprintf(dir, sizeof dir, "%s/photo", root) >= sizeof dir) return zs__fail(ZS_ERR_ARG, "zs_dataset_open: root path too long");
    if ((rc = zs__list_dir(dir, 1, &ph, &ex_p)) != ZS_OK) goto fail;
    if (!ex_p) { rc = zs__fail(ZS_ERR_IO, "%s: no such directory", dir); goto fail; }
    snprintf(dir, sizeof dir, "%s/sketch", root);
    if ((rc = zs__list_dir(dir, 1, &sk, &ex_s)) != ZS_OK) goto fail;
    if (!ex_s) { rc = zs__fail(ZS_ERR_IO, "%s: no such directory", dir); goto fail; }
    if (class_list) {
        /* names and ids from the list; ids exactly 0..n-1 */
        if ((rc = zs_filelist_read(class_list, &cl)) != ZS_OK) goto fail;
        if (cl.n == 0) { rc = zs__fail(ZS_ERR_FORMAT, "%s: no classes", class_list); goto fail; }
        names.v = (char **)zs__malloc((size_t)cl.n * sizeof(char *), NULL);
        if (!names.v) { rc = zs__fail(ZS_ERR_NOMEM, "dataset: out of memory"); goto fail; }
        for (i = 0; i < cl.n; i++) names.v[i] = NULL;
        names.n = names.cap = cl.n;
        for (i = 0; i < cl.n; i++) {
            int id = cl.label[i];
            if (id >= cl.n) { rc = zs__fail(ZS_ERR_FORMAT, "%s: class \"%.200s\" has id %d outside 0..%d", class_list, cl.path[i], id, cl.n - 1); goto fail; }
            if (names.v[id]) { rc = zs__fail(ZS_ERR_FORMAT, "%s: id %d given to both \"%.150s\" and \"%.150s\"", class_list, id, names.v[id], cl.path[i]); goto fail; }
            for (j = 0; j < i; j++)
                if (!strcmp(cl.path[j], cl.path[i])) { rc = zs__fail(ZS_ERR_FORMAT, "%s: class \"%.200s\" listed twice", class_list, cl.path[i]); goto fail; }
            if (strchr(cl.path[i], '/')) { rc = zs__fail(ZS_ERR_FORMAT, "%s: class name \"%.200s\" contains '/'", class_list, cl.path[i]); goto fail; }
            if (!(names.v[id] = zs__strdup(cl.path[i]))) { rc = zs__fail(ZS_ERR_NOMEM, "dataset: out of memory"); goto fail; }
        }
        for (i = 0; i < names.n; i++) {
            int found = bsearch(&names.v[i], ph.v, (size_t)ph.n, sizeof(char *), zs__strcmp_p) != NULL ||
                        bsearch(&names.v[i], sk.v, (size_t)sk.n, sizeof(char *), zs__strcmp_p) != NULL;
            if (!found) { rc = zs__fail(ZS_ERR_FORMAT, "%s: class \"%.200s\" has no folder under %s/photo or %s/sketch", class_list, names.v[i], root, root); goto fail; }
        }
    } else {
        /* union of the two sorted folder lists */
        i = j = 0;
        while (i < ph.n || j < sk.n) {
            int cmp = i == ph.n ? 1 : j == sk.n ? -1 : strcmp(ph.v[i], sk.v[j]);
            const char *nm = cmp <= 0 ? ph.v[i] : sk.v[j];
            if ((rc = zs__strvec_push(&names, zs__strdup(nm))) != ZS_OK) goto fail;
            if (cmp <= 0) i++;
            if (cmp >= 0) j++;
        }
        if (names.n == 0) { rc = zs__fail(ZS_ERR_FORMAT, "%s: no class folders under photo/ or sketch/", root); goto fail; }
    }
    c = names.n;
    ds->photo_start = (int32_t *)zs__malloc((size_t)c * sizeof(int32_t), NULL);
    ds->photo_count = (int32_t *)zs__malloc((size_t)c * sizeof(int32_t), NULL);
    ds->sketch_start = (int32_t *)zs__malloc((size_t)c * sizeof(int32_t), NULL);
    ds->sketch_count = (int32_t *)zs__malloc((size_t)c * sizeof(int32_t), NULL);
    if (!ds->photo_start || !ds->photo_count || !ds->sketch_start || !ds->sketch_count) { rc = zs__fail(ZS_ERR_NOMEM, "dataset: out of memory"); goto fail; }
    for (m = 0; m < 2; m++) {
        zs__strvec *dst = m == 0 ? &pp : &sp;
        const char *kind = m == 0 ? "photo" : "sketch";
        int32_t *start = m == 0 ? ds->photo_start : ds->sketch_start, *count = m == 0 ? ds->photo_count : ds->sketch_count;
        for (i = 0; i < c; i++) {
            int ex;
            if ((size_t)snprintf(dir, sizeof dir, "%s/%s/%s", root, kind, names.v[i]) >= sizeof dir) { rc = zs__fail(ZS_ERR_FORMAT, "path %s/%s/%s too long", root, kind, names.v[i]); goto fail; }
            if ((rc = zs__list_dir(dir, 0, &files, &ex)) != ZS_OK) goto fail;
            start[i] = dst->n;
            for (j = 0; j < files.n; j++) {
                size_t need = strlen(dir) + strlen(files.v[j]) + 2;
                char *p;
                if (need > ZS_LIST_MAX_LINE) { rc = zs__fail(ZS_ERR_FORMAT, "path %s/%s too long", dir, files.v[j]); goto fail; }
                p = (char *)zs__malloc(need, NULL);
                if (p) {
                    size_t ld = strlen(dir);
                    memcpy(p, dir, ld);
                    p[ld] = '/';
                    memcpy(p + ld + 1, files.v[j], need - ld - 1);
                }
                if ((rc = zs__strvec_push(dst, p)) != ZS_OK) goto fail;
            }
            count[i] = dst->n - start[i];
            zs__strvec_free(&files);
        }
    }
    ds->n_classes = c;
    ds->class_name = names.v; names.v = NULL; names.n = 0;
    ds->n_photos = pp.n; ds->photo_path = pp.v; pp.v = NULL; pp.n = 0;
    ds->n_sketches = sp.n; ds->sketch_path = sp.v; sp.v = NULL; sp.n = 0;
    ds->photo_label = (int32_t *)zs__malloc((size_t)(ds->n_photos + 1) * sizeof(int32_t), NULL);
    ds->sketch_label = (int32_t *)zs__malloc((size_t)(ds->n_sketches + 1) * sizeof(int32_t), NULL);
    ds->sketch_pair = (int32_t *)zs__malloc((size_t)(ds->n_sketches + 1) * sizeof(int32_t), NULL);
    if (!ds->photo_label || !ds->sketch_label || !ds->sketch_pair) { rc = zs__fail(ZS_ERR_NOMEM, "dataset: out of memory"); goto fail; }
    for (i = 0; i < c; i++) {
        for (j = 0; j < ds->photo_count[i]; j++) ds->photo_label[ds->photo_start[i] + j] = i;
        for (j = 0; j < ds->sketch_count[i]; j++) ds->sketch_label[ds->sketch_start[i] + j] = i;
    }
    if ((rc = zs__dataset_pairs(ds)) != ZS_OK) goto fail;
    if ((rc = zs__dataset_all_seen(ds)) != ZS_OK) goto fail;
    zs__strvec_free(&ph); zs__strvec_free(&sk);
    zs_filelist_free(&cl);
    return ZS_OK;
fail:
    zs__strvec_free(&names); zs__strvec_free(&ph); zs__strvec_free(&sk);
    zs__strvec_free(&files); zs__strvec_free(&pp); zs__strvec_free(&sp);
    zs_filelist_free(&cl);
    zs_dataset_free(ds);
    return rc;
#endif
}

ZS__FN int zs_dataset_set_unseen(zs_dataset *ds, const char *path) {
    char *buf = NULL, *pos, *end, *line;
    size_t len;
    int rc, lineno = 0, err, c, ns = 0, nu = 0;
    uint8_t *flag = NULL;
    int32_t *seen = NULL, *uns = NULL;
    if (!ds || !path) return zs__fail(ZS_ERR_ARG, "zs_dataset_set_unseen: NULL argument");
    if (ds->n_classes <= 0 || !ds->unseen) return zs__fail(ZS_ERR_STATE, "zs_dataset_set_unseen: dataset not open");
    if ((rc = zs__read_text(path, &buf, &len)) != ZS_OK) return rc;
    flag = (uint8_t *)zs__malloc((size_t)ds->n_classes, NULL);
    seen = (int32_t *)zs__malloc((size_t)ds->n_classes * sizeof(int32_t), NULL);
    uns = (int32_t *)zs__malloc((size_t)ds->n_classes * sizeof(int32_t), NULL);
    if (!flag || !seen || !uns) { rc = zs__fail(ZS_ERR_NOMEM, "zs_dataset_set_unseen: out of memory"); goto fail; }
    memset(flag, 0, (size_t)ds->n_classes);
    pos = buf; end = buf + len;
    while ((line = zs__next_line(&pos, end, ++lineno, path, &err)) != NULL) {
        if (!*line) continue;
        for (c = 0; c < ds->n_classes; c++)
            if (!strcmp(ds->class_name[c], line)) break;
        if (c == ds->n_classes) { rc = zs__fail(ZS_ERR_FORMAT, "%s:%d: unknown class \"%.200s\"", path, lineno, line); goto fail; }
        if (flag[c]) { rc = zs__fail(ZS_ERR_FORMAT, "%s:%d: class \"%.200s\" listed twice", path, lineno, line); goto fail; }
        flag[c] = 1;
    }
    if (err != ZS_OK) { rc = err; goto fail; }
    for (c = 0; c < ds->n_classes; c++) {
        if (flag[c]) uns[nu++] = c;
        else seen[ns++] = c;
    }
    zs__free(ds->unseen, NULL); zs__free(ds->seen_class, NULL); zs__free(ds->unseen_class, NULL);
    ds->unseen = flag; ds->seen_class = seen; ds->unseen_class = uns;
    ds->n_seen = ns; ds->n_unseen = nu;
    zs__free(buf, NULL);
    return ZS_OK;
fail:
    zs__free(buf, NULL); zs__free(flag, NULL); zs__free(seen, NULL); zs__free(uns, NULL);
    return rc;
}

/* splitmix64 (Steele, Lea, Flood 2014) */
ZS__PRIV uint64_t zs__splitmix_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* uniform in [0, n), n >= 1 (multiply-shift; bias < n / 2^32) */
ZS__PRIV int32_t zs__rand_below(uint64_t *state, int32_t n) {
    return (int32_t)(((zs__splitmix_next(state) >> 32) * (uint64_t)n) >> 32);
}

ZS__FN int zs_sample_triplet(const zs_dataset *ds, uint64_t *rng_state, int32_t out[4]) {
    int32_t n_el = 0, pick[3], cls[3];
    int i, k;
    if (!ds || !rng_state || !out) return zs__fail(ZS_ERR_ARG, "zs_sample_triplet: NULL argument");
    if (!ds->seen_class) return zs__fail(ZS_ERR_STATE, "zs_sample_triplet: dataset not open");
    for (i = 0; i < ds->n_seen; i++) {
        int c = ds->seen_class[i];
        n_el += ds->photo_count[c] > 0 && ds->sketch_count[c] > 0;
    }
    if (n_el < 3) return zs__fail(ZS_ERR_STATE, "zs_sample_triplet: %d seen classes with photos and sketches (need 3)", (int)n_el);
    /* 3 distinct ranks among the eligible classes */
    pick[0] = zs__rand_below(rng_state, n_el);
    pick[1] = zs__rand_below(rng_state, n_el - 1);
    if (pick[1] >= pick[0]) pick[1]++;
    pick[2] = zs__rand_below(rng_state, n_el - 2);
    { /* skip the two taken ranks, lower one first */
        int32_t lo = pick[0] < pick[1] ? pick[0] : pick[1], hi = pick[0] < pick[1] ? pick[1] : pick[0];
        if (pick[2] >= lo) pick[2]++;
        if (pick[2] >= hi) pick[2]++;
    }
    for (k = 0; k < 3; k++) {
        int32_t r = pick[k], c = -1;
        for (i = 0; i < ds->n_seen; i++) {
            c = ds->seen_class[i];
            if (ds->photo_count[c] > 0 && ds->sketch_count[c] > 0 && r-- == 0) break;
        }
        cls[k] = c;
    }
    {
        int32_t c0 = cls[0], c2 = cls[2], ns = ds->sketch_count[c0];
        int32_t a = zs__rand_below(rng_state, ns), b;
        out[0] = ds->sketch_start[c0] + a;
        out[1] = ds->photo_start[c0] + zs__rand_below(rng_state, ds->photo_count[c0]);
        if (ns >= 2) { b = zs__rand_below(rng_state, ns - 1); if (b >= a) b++; }
        else b = a;
        out[2] = ds->sketch_start[c0] + b;
        out[3] = ds->photo_start[c2] + zs__rand_below(rng_state, ds->photo_count[c2]);
    }
    return ZS_OK;
}

/* ==================================================================== */
/* [impl:image] image files                                             */
/* ==================================================================== */

#ifdef ZSESBIR_STB_IMAGE
#ifdef ZSESBIR_STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#if defined(__has_include)
#if __has_include(<stb_image.h>)
#include <stb_image.h>
#include <stb_image_write.h>
#else
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#endif
#else
#include <stb_image.h>
#include <stb_image_write.h>
#endif
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

/* largest file zs_image_load reads into memory */
#define ZS__IMAGE_MAX_FILE ((uint64_t)1 << 30)

ZS__FN int zs_image_alloc(zs_image *im, int w, int h) {
    size_t n;
    if (!im) return zs__fail(ZS_ERR_ARG, "zs_image_alloc: NULL image");
    im->w = im->h = 0;
    im->rgb = NULL;
    if (w < 1 || h < 1 || w > ZS_IMAGE_MAX_DIM || h > ZS_IMAGE_MAX_DIM)
        return zs__fail(ZS_ERR_ARG, "zs_image_alloc: size %dx%d outside 1..%d", w, h, ZS_IMAGE_MAX_DIM);
    if (!zs__mul_ok((size_t)w, (size_t)h, &n) || !zs__mul_ok(n, 3, &n))
        return zs__fail(ZS_ERR_NOMEM, "zs_image_alloc: %dx%d too large", w, h);
    im->rgb = (unsigned char *)zs__malloc(n, NULL);
    if (!im->rgb) return zs__fail(ZS_ERR_NOMEM, "zs_image_alloc: cannot allocate %zu bytes", n);
    im->w = w;
    im->h = h;
    return ZS_OK;
}

ZS__FN void zs_image_free(zs_image *im) {
    if (!im) return;
    zs__free(im->rgb, NULL);
    im->rgb = NULL;
    im->w = im->h = 0;
}

ZS__PRIV int zs__image_check(const zs_image *im, const char *who) {
    if (!im || !im->rgb) return zs__fail(ZS_ERR_ARG, "%s: NULL image", who);
    if (im->w < 1 || im->h < 1 || im->w > ZS_IMAGE_MAX_DIM || im->h > ZS_IMAGE_MAX_DIM)
        return zs__fail(ZS_ERR_ARG, "%s: image size %dx%d outside 1..%d", who, im->w, im->h, ZS_IMAGE_MAX_DIM);
    return ZS_OK;
}

/* PNM header token reader: skips whitespace and '#' comments (to end of line). */
ZS__PRIV int zs__pnm_uint(const unsigned char *b, size_t n, size_t *pos, unsigned *val, const char *what,
                          const char *who) {
    size_t i = *pos;
    unsigned v = 0;
    int digits = 0;
    for (;;) {
        if (i >= n) return zs__fail(ZS_ERR_FORMAT, "%s: PNM header truncated before the %s", who, what);
        if (b[i] == '#') {
            while (i < n && b[i] != '\n' && b[i] != '\r') i++;
            continue;
        }
        if (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r' || b[i] == '\v' || b[i] == '\f') {
            i++;
            continue;
        }
        break;
    }
    while (i < n && b[i] >= '0' && b[i] <= '9') {
        if (v > 100000000u) return zs__fail(ZS_ERR_FORMAT, "%s: PNM %s too large", who, what);
        v = v * 10 + (unsigned)(b[i] - '0');
        digits++;
        i++;
    }
    if (!digits) return zs__fail(ZS_ERR_FORMAT, "%s: PNM header: expected the %s (a decimal number)", who, what);
    if (i >= n) return zs__fail(ZS_ERR_FORMAT, "%s: PNM header truncated after the %s", who, what);
    *pos = i;
    *val = v;
    return ZS_OK;
}

ZS__PRIV int zs__pnm_decode(const unsigned char *b, size_t n, zs_image *out, const char *who) {
    size_t pos = 2, npix, need, i;
    unsigned w, h, maxv;
    int r, ch;
    if (n < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6'))
        return zs__fail(ZS_ERR_FORMAT, "%s: not a binary PPM/PGM file", who);
    ch = b[1] == '6' ? 3 : 1;
    if ((r = zs__pnm_uint(b, n, &pos, &w, "width", who)) != 0) return r;
    if ((r = zs__pnm_uint(b, n, &pos, &h, "height", who)) != 0) return r;
    if ((r = zs__pnm_uint(b, n, &pos, &maxv, "maxval", who)) != 0) return r;
    if (w < 1 || h < 1 || w > ZS_IMAGE_MAX_DIM || h > ZS_IMAGE_MAX_DIM)
        return zs__fail(ZS_ERR_FORMAT, "%s: PNM size %ux%u outside 1..%d", who, w, h, ZS_IMAGE_MAX_DIM);
    if (maxv < 1 || maxv > 65535) return zs__fail(ZS_ERR_FORMAT, "%s: PNM maxval %u outside 1..65535", who, maxv);
    if (maxv > 255)
        return zs__fail(ZS_ERR_UNSUPPORTED, "%s: 16-bit PNM (maxval %u) is not supported; convert to 8 bits", who, maxv);
    /* exactly one whitespace byte after maxval */
    if (!(b[pos] == ' ' || b[pos] == '\t' || b[pos] == '\n' || b[pos] == '\r' || b[pos] == '\v' || b[pos] == '\f'))
        return zs__fail(ZS_ERR_FORMAT, "%s: PNM header: no whitespace after maxval", who);
    pos++;
    npix = (size_t)w * (size_t)h; /* <= 2^28, no overflow */
    need = npix * (size_t)ch;
    if (n - pos < need)
        return zs__fail(ZS_ERR_FORMAT, "%s: PNM data truncated: %zu of %zu bytes present", who, n - pos, need);
    if ((r = zs_image_alloc(out, (int)w, (int)h)) != 0) return r;
    b += pos;
    for (i = 0; i < npix; i++) {
        unsigned c;
        for (c = 0; c < 3; c++) {
            unsigned v = b[i * (size_t)ch + (ch == 3 ? c : 0)];
            if (v > maxv) {
                zs_image_free(out);
                return zs__fail(ZS_ERR_FORMAT, "%s: PNM sample %u exceeds maxval %u", who, v, maxv);
            }
            if (maxv != 255) v = (v * 255 + maxv / 2) / maxv;
            out->rgb[i * 3 + c] = (unsigned char)v;
        }
    }
    return ZS_OK;
}

/* 0 if a JPEG Huffman table (DHT) declares more than 256 codes. stb_image
   2.27 (Debian's libstb) writes that many entries into its 257-byte size and
   256-byte value arrays, corrupting its decoder state (found by fuzzing);
   newer stb rejects it. Walks the markers as stb does (segments by their
   length, entropy-coded data byte by byte up to the next marker). */
ZS__PRIV int zs__jpeg_dht_ok(const unsigned char *b, size_t n) {
    size_t pos = 0, len, end, q;
    while (pos < n) {
        int m;
        if (b[pos] != 0xff) { pos++; continue; }
        while (pos < n && b[pos] == 0xff) pos++;
        if (pos >= n) break;
        m = b[pos++];
        if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd8)) continue; /* no length */
        if (m == 0xd9 || n - pos < 2) break;
        len = ((size_t)b[pos] << 8) | b[pos + 1];
        end = len > n - pos ? n : pos + len;
        for (q = pos + 2; m == 0xc4 && end - q >= 17;) { /* tables: class/id, 16 counts, values */
            size_t k, codes = 0;
            for (k = 1; k <= 16; k++) codes += b[q + k];
            if (codes > 256) return 0;
            q += 17 + codes;
            if (q > end) break;
        }
        pos = end;
    }
    return 1;
}

/* 0 if a PNG chunk declares more bytes than the file has left: stb_image
   2.27 grows its IDAT buffer to the declared length before reading, so a
   332-byte file asked for 1.3 GB (found by fuzzing). */
ZS__PRIV int zs__png_chunks_ok(const unsigned char *b, size_t n) {
    size_t pos = 8;
    while (n - pos >= 12) {
        size_t len = ((size_t)b[pos] << 24) | ((size_t)b[pos + 1] << 16) | ((size_t)b[pos + 2] << 8) | b[pos + 3];
        if (len > n - pos - 12) return 0;
        if (!memcmp(b + pos + 4, "IEND", 4)) break;
        pos += 12 + len;
    }
    return 1;
}

ZS__PRIV int zs__image_decode(const unsigned char *b, size_t n, zs_image *out, const char *who) {
    const char *fmt = NULL;
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return zs__pnm_decode(b, n, out, who);
    if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7')
        return zs__fail(ZS_ERR_UNSUPPORTED, "%s: PNM type P%c is not supported (only binary P5/P6)", who, b[1]);
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) fmt = "PNG";
    else if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) fmt = "JPEG";
    else if (n >= 2 && b[0] == 'B' && b[1] == 'M') fmt = "BMP";
#ifdef ZSESBIR_STB_IMAGE
    {
        int w = 0, h = 0, comp = 0, r;
        unsigned char *p;
        if (n > (size_t)INT_MAX) return zs__fail(ZS_ERR_FORMAT, "%s: file too large", who);
        if (n && b[0] == 0xff && !zs__jpeg_dht_ok(b, n)) /* stb takes FF (FF..) D8 as JPEG */
            return zs__fail(ZS_ERR_FORMAT, "%s: JPEG: corrupt Huffman table (more than 256 codes)", who);
        if (fmt && fmt[1] == 'N' && !zs__png_chunks_ok(b, n))
            return zs__fail(ZS_ERR_FORMAT, "%s: PNG: a chunk runs past the end of the file (truncated or corrupt)", who);
        if (!stbi_info_from_memory(b, (int)n, &w, &h, &comp))
            return zs__fail(ZS_ERR_FORMAT, "%s: %s%sunrecognised or corrupt image (%s)", who, fmt ? fmt : "",
                            fmt ? ": " : "", stbi_failure_reason() ? stbi_failure_reason() : "?");
        if (w < 1 || h < 1 || w > ZS_IMAGE_MAX_DIM || h > ZS_IMAGE_MAX_DIM)
            return zs__fail(ZS_ERR_FORMAT, "%s: image size %dx%d outside 1..%d", who, w, h, ZS_IMAGE_MAX_DIM);
        p = stbi_load_from_memory(b, (int)n, &w, &h, &comp, 3);
        if (!p)
            return zs__fail(ZS_ERR_FORMAT, "%s: %s%scannot decode (%s)", who, fmt ? fmt : "", fmt ? ": " : "",
                            stbi_failure_reason() ? stbi_failure_reason() : "?");
        if (w < 1 || h < 1 || w > ZS_IMAGE_MAX_DIM || h > ZS_IMAGE_MAX_DIM) {
            stbi_image_free(p);
            return zs__fail(ZS_ERR_FORMAT, "%s: image size %dx%d outside 1..%d", who, w, h, ZS_IMAGE_MAX_DIM);
        }
        if ((r = zs_image_alloc(out, w, h)) != 0) {
            stbi_image_free(p);
            return r;
        }
        memcpy(out->rgb, p, (size_t)w * (size_t)h * 3);
        stbi_image_free(p);
        return ZS_OK;
    }
#else
    if (fmt)
        return zs__fail(ZS_ERR_UNSUPPORTED, "%s: %s images need stb_image: compile the implementation with "
                        "ZSESBIR_STB_IMAGE defined (or convert to binary PPM/PGM)", who, fmt);
    return zs__fail(ZS_ERR_FORMAT, "%s: unrecognised image format (binary PPM/PGM%s)", who,
                    " only; define ZSESBIR_STB_IMAGE for PNG/JPEG/BMP");
#endif
}

ZS__FN int zs_image_load_memory(const void *buf, size_t n, zs_image *out) {
    if (out) out->w = out->h = 0, out->rgb = NULL;
    if (!out || (!buf && n)) return zs__fail(ZS_ERR_ARG, "zs_image_load_memory: NULL argument");
    return zs__image_decode((const unsigned char *)(buf ? buf : ""), n, out, "zs_image_load_memory(<memory>)");
}

ZS__FN int zs_image_load(const char *path, zs_image *out) {
    char who[300];
    zs__src s;
    unsigned char *b;
    int r;
    if (out) out->w = out->h = 0, out->rgb = NULL;
    if (!path || !out) return zs__fail(ZS_ERR_ARG, "zs_image_load: NULL argument");
    snprintf(who, sizeof who, "zs_image_load(%.200s)", path);
    if ((r = zs__src_open(&s, path, who)) != 0) return r;
    if (s.size > ZS__IMAGE_MAX_FILE) {
        zs__src_close(&s);
        return zs__fail(ZS_ERR_FORMAT, "%s: file of %llu bytes exceeds the %llu-byte limit", who,
                        (unsigned long long)s.size, (unsigned long long)ZS__IMAGE_MAX_FILE);
    }
    b = (unsigned char *)zs__malloc(s.size ? (size_t)s.size : 1, NULL);
    if (!b) {
        zs__src_close(&s);
        return zs__fail(ZS_ERR_NOMEM, "%s: cannot allocate %llu bytes", who, (unsigned long long)s.size);
    }
    r = zs__src_read(&s, 0, b, (size_t)s.size);
    zs__src_close(&s);
    if (r == 0) r = zs__image_decode(b, (size_t)s.size, out, who);
    zs__free(b, NULL);
    return r;
}

ZS__FN int zs_image_save_ppm(const char *path, const zs_image *im) {
    FILE *f;
    size_t n;
    int r, ok;
    if (!path) return zs__fail(ZS_ERR_ARG, "zs_image_save_ppm: NULL path");
    if ((r = zs__image_check(im, "zs_image_save_ppm")) != 0) return r;
    f = fopen(path, "wb");
    if (!f) return zs__fail(ZS_ERR_IO, "zs_image_save_ppm(%.200s): cannot open: %s", path, strerror(errno));
    n = (size_t)im->w * (size_t)im->h * 3;
    ok = fprintf(f, "P6\n%d %d\n255\n", im->w, im->h) > 0;
    ok = ok && fwrite(im->rgb, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok) return zs__fail(ZS_ERR_IO, "zs_image_save_ppm(%.200s): write failed", path);
    return ZS_OK;
}

ZS__FN int zs_image_save_png(const char *path, const zs_image *im) {
    int r;
    if (!path) return zs__fail(ZS_ERR_ARG, "zs_image_save_png: NULL path");
    if ((r = zs__image_check(im, "zs_image_save_png")) != 0) return r;
#ifdef ZSESBIR_STB_IMAGE
    if (!stbi_write_png(path, im->w, im->h, 3, im->rgb, im->w * 3))
        return zs__fail(ZS_ERR_IO, "zs_image_save_png(%.200s): write failed", path);
    return ZS_OK;
#else
    return zs__fail(ZS_ERR_UNSUPPORTED, "zs_image_save_png(%.200s): PNG output needs stb_image_write: compile the "
                    "implementation with ZSESBIR_STB_IMAGE defined (or use zs_image_save_ppm)", path);
#endif
}

/* ==================================================================== */
/* [impl:image] resizing                                                */
/* ==================================================================== */

/* -- Pillow: ImagingResample (libImaging/Resample.c) with the bicubic filter -- */
#define ZS__PIL_PREC 22 /* PRECISION_BITS = 32 - 8 - 2 */

ZS__PRIV double zs__pil_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* precompute_coeffs + normalize_coeffs_8bpc. bounds[2*i] = first input index,
   bounds[2*i+1] = count; kk has ksize int32 weights per output. */
ZS__PRIV int zs__pil_coeffs(int in_size, int out_size, int **bounds_out, int32_t **kk_out, int *ksize_out) {
    double scale, filterscale, support;
    int ksize, xx, x;
    size_t n;
    int *bounds;
    int32_t *kk;
    double *tmp;
    filterscale = scale = (double)in_size / out_size;
    if (filterscale < 1.0) filterscale = 1.0;
    support = 2.0 * filterscale;
    ksize = (int)ceil(support) * 2 + 1;
    if (!zs__mul_ok((size_t)out_size, (size_t)ksize, &n) || n > ((size_t)1 << 28))
        return zs__fail(ZS_ERR_NOMEM, "zs_image_resize_bicubic_pil: too many coefficients");
    bounds = (int *)zs__malloc((size_t)out_size * 2 * sizeof(int), NULL);
    kk = (int32_t *)zs__malloc(n * sizeof(int32_t), NULL);
    tmp = (double *)zs__malloc((size_t)ksize * sizeof(double), NULL);
    if (!bounds || !kk || !tmp) {
        zs__free(bounds, NULL);
        zs__free(kk, NULL);
        zs__free(tmp, NULL);
        return zs__fail(ZS_ERR_NOMEM, "zs_image_resize_bicubic_pil: out of memory");
    }
    for (xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        int32_t *k = kk + (size_t)xx * (size_t)ksize;
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize; /* cannot happen; keeps indexing provably in range */
        for (x = 0; x < xmax; x++) {
            double w = zs__pil_bicubic((x + xmin - center + 0.5) * ss);
            tmp[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) tmp[x] /= ww;
        for (x = 0; x < ksize; x++) {
            double v = x < xmax ? tmp[x] : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << ZS__PIL_PREC)) : (int32_t)(0.5 + v * (1 << ZS__PIL_PREC));
        }
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    zs__free(tmp, NULL);
    *bounds_out = bounds;
    *kk_out = kk;
    *ksize_out = ksize;
    return ZS_OK;
}

ZS__PRIV unsigned char zs__pil_clip8(int32_t v) {
    if (v >= ((int32_t)256 << ZS__PIL_PREC)) return 255;
    if (v <= 0) return 0;
    return (unsigned char)(v >> ZS__PIL_PREC);
}

ZS__FN int zs_image_resize_bicubic_pil(const zs_image *in, int w, int h, zs_image *out) {
    int *bh = NULL, *bv = NULL, kh = 0, kv = 0, r, x, y, yfirst, ylast;
    int32_t *kkh = NULL, *kkv = NULL;
    zs_image tmp;
    const zs_image *src;
    int need_h, need_v;
    if (out) out->w = out->h = 0, out->rgb = NULL;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_image_resize_bicubic_pil: NULL output");
    if ((r = zs__image_check(in, "zs_image_resize_bicubic_pil")) != 0) return r;
    if (w < 1 || h < 1 || w > ZS_IMAGE_MAX_DIM || h > ZS_IMAGE_MAX_DIM)
        return zs__fail(ZS_ERR_ARG, "zs_image_resize_bicubic_pil: output size %dx%d outside 1..%d", w, h,
                        ZS_IMAGE_MAX_DIM);
    need_h = w != in->w;
    need_v = h != in->h;
    if ((r = zs_image_alloc(out, w, h)) != 0) return r;
    if (!need_h && !need_v) {
        memcpy(out->rgb, in->rgb, (size_t)w * (size_t)h * 3);
        return ZS_OK;
    }
    tmp.w = tmp.h = 0;
    tmp.rgb = NULL;
    if ((r = zs__pil_coeffs(in->w, w, &bh, &kkh, &kh)) != 0 || (r = zs__pil_coeffs(in->h, h, &bv, &kkv, &kv)) != 0)
        goto done;
    yfirst = bv[0];
    ylast = bv[(h - 1) * 2] + bv[(h - 1) * 2 + 1];
    src = in;
    if (need_h) {
        /* horizontal pass over the rows the vertical pass uses */
        for (y = 0; y < h; y++) bv[y * 2] -= yfirst;
        if ((r = zs_image_alloc(&tmp, w, need_v ? ylast - yfirst : h)) != 0) goto done;
        for (y = 0; y < tmp.h; y++) {
            const unsigned char *row = in->rgb + (size_t)(y + (need_v ? yfirst : 0)) * (size_t)in->w * 3;
            unsigned char *o = tmp.rgb + (size_t)y * (size_t)w * 3;
            for (x = 0; x < w; x++) {
                int xmin = bh[x * 2], xn = bh[x * 2 + 1], i;
                const int32_t *k = kkh + (size_t)x * (size_t)kh;
                int32_t s0 = 1 << (ZS__PIL_PREC - 1), s1 = s0, s2 = s0;
                for (i = 0; i < xn; i++) {
                    const unsigned char *p = row + (size_t)(xmin + i) * 3;
                    s0 += p[0] * k[i];
                    s1 += p[1] * k[i];
                    s2 += p[2] * k[i];
                }
                o[x * 3] = zs__pil_clip8(s0);
                o[x * 3 + 1] = zs__pil_clip8(s1);
                o[x * 3 + 2] = zs__pil_clip8(s2);
            }
        }
        src = &tmp;
        if (!need_v) {
            memcpy(out->rgb, tmp.rgb, (size_t)w * (size_t)h * 3);
            goto done;
        }
    }
    /* vertical pass */
    for (y = 0; y < h; y++) {
        int ymin = bv[y * 2], yn = bv[y * 2 + 1], i;
        const int32_t *k = kkv + (size_t)y * (size_t)kv;
        unsigned char *o = out->rgb + (size_t)y * (size_t)w * 3;
        for (x = 0; x < w * 3; x++) {
            int32_t s = 1 << (ZS__PIL_PREC - 1);
            for (i = 0; i < yn; i++) s += src->rgb[(size_t)(ymin + i) * (size_t)w * 3 + (size_t)x] * k[i];
            o[x] = zs__pil_clip8(s);
        }
    }
done:
    zs__free(bh, NULL);
    zs__free(bv, NULL);
    zs__free(kkh, NULL);
    zs__free(kkv, NULL);
    zs_image_free(&tmp);
    if (r) zs_image_free(out);
    return r;
}

/* -- OpenCV: cv::resize INTER_LINEAR, CV_8U (imgproc/src/resize.cpp) -- */
#define ZS__CV_COEF_BITS 11
#define ZS__CV_COEF_SCALE (1 << ZS__CV_COEF_BITS)

ZS__PRIV int zs__cv_round(float v) { return (int)lrintf(v); }

/* offsets and 11-bit weight pairs for one axis (resizeGeneric setup) */
ZS__PRIV void zs__cv_axis(int in_size, int out_size, int *ofs, short *alpha, int clamp_x) {
    double scale = 1.0 / ((double)out_size / in_size);
    int d;
    for (d = 0; d < out_size; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (clamp_x) {
            if (s < 0) f = 0, s = 0;
            if (s >= in_size - 1) f = 0, s = in_size - 1;
        }
        ofs[d] = s;
        alpha[d * 2] = (short)zs__cv_round((1.f - f) * ZS__CV_COEF_SCALE);
        alpha[d * 2 + 1] = (short)zs__cv_round(f * ZS__CV_COEF_SCALE);
    }
}

ZS__PRIV void zs__cv_hrow(const unsigned char *row, int in_w, int w, const int *xofs, const short *xa, int32_t *o) {
    int x, c;
    for (x = 0; x < w; x++) {
        int s0 = xofs[x], s1 = s0 + 1 < in_w ? s0 + 1 : s0;
        for (c = 0; c < 3; c++)
            o[x * 3 + c] = (int32_t)row[s0 * 3 + c] * xa[x * 2] + (int32_t)row[s1 * 3 + c] * xa[x * 2 + 1];
    }
}

ZS__FN int zs_image_resize_linear_cv(const zs_image *in, int w, int h, zs_image *out) {
    int r, x, y, vec_end, row_a = -1, row_b = -1;
    int *xofs = NULL, *yofs = NULL;
    short *xa = NULL, *ya = NULL;
    int32_t *buf = NULL, *ba, *bb;
    size_t rowlen;
    if (out) out->w = out->h = 0, out->rgb = NULL;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_image_resize_linear_cv: NULL output");
    if ((r = zs__image_check(in, "zs_image_resize_linear_cv")) != 0) return r;
    if (w < 1 || h < 1 || w > ZS_IMAGE_MAX_DIM || h > ZS_IMAGE_MAX_DIM)
        return zs__fail(ZS_ERR_ARG, "zs_image_resize_linear_cv: output size %dx%d outside 1..%d", w, h,
                        ZS_IMAGE_MAX_DIM);
    if ((r = zs_image_alloc(out, w, h)) != 0) return r;
    if (w == in->w && h == in->h) {
        memcpy(out->rgb, in->rgb, (size_t)w * (size_t)h * 3);
        return ZS_OK;
    }
    rowlen = (size_t)w * 3;
    xofs = (int *)zs__malloc((size_t)w * sizeof(int), NULL);
    yofs = (int *)zs__malloc((size_t)h * sizeof(int), NULL);
    xa = (short *)zs__malloc((size_t)w * 2 * sizeof(short), NULL);
    ya = (short *)zs__malloc((size_t)h * 2 * sizeof(short), NULL);
    buf = (int32_t *)zs__malloc(rowlen * 2 * sizeof(int32_t), NULL);
    if (!xofs || !yofs || !xa || !ya || !buf) {
        r = zs__fail(ZS_ERR_NOMEM, "zs_image_resize_linear_cv: out of memory");
        goto done;
    }
    zs__cv_axis(in->w, w, xofs, xa, 1);
    zs__cv_axis(in->h, h, yofs, ya, 0);
    ba = buf;
    bb = buf + rowlen;
    /* elements handled by VResizeLinearVec_32s8u with 128-bit vectors: blocks
       of 16 while x <= n-16, then blocks of 8 while x <= n-8; the rest scalar */
    {
        int n = (int)rowlen;
        vec_end = 0;
        while (vec_end <= n - 16) vec_end += 16;
        while (vec_end <= n - 8) vec_end += 8;
    }
    for (y = 0; y < h; y++) {
        int s0 = yofs[y], s1 = s0 + 1, b0 = ya[y * 2], b1 = ya[y * 2 + 1];
        unsigned char *o = out->rgb + (size_t)y * rowlen;
        if (s0 < 0) s0 = 0;
        if (s0 > in->h - 1) s0 = in->h - 1;
        if (s1 < 0) s1 = 0;
        if (s1 > in->h - 1) s1 = in->h - 1;
        if (row_a != s0) {
            if (row_b == s0) {
                int32_t *t = ba; ba = bb; bb = t;
                row_a = s0;
                row_b = -1;
            } else {
                zs__cv_hrow(in->rgb + (size_t)s0 * (size_t)in->w * 3, in->w, w, xofs, xa, ba);
                row_a = s0;
            }
        }
        if (row_b != s1) {
            if (s1 == row_a) memcpy(bb, ba, rowlen * sizeof(int32_t));
            else zs__cv_hrow(in->rgb + (size_t)s1 * (size_t)in->w * 3, in->w, w, xofs, xa, bb);
            row_b = s1;
        }
        for (x = 0; x < (int)rowlen; x++) {
            int32_t v;
            if (x < vec_end) v = ((((ba[x] >> 4) * b0) >> 16) + (((bb[x] >> 4) * b1) >> 16) + 2) >> 2;
            else v = (ba[x] * b0 + bb[x] * b1 + (1 << 21)) >> 22;
            o[x] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
done:
    zs__free(xofs, NULL);
    zs__free(yofs, NULL);
    zs__free(xa, NULL);
    zs__free(ya, NULL);
    zs__free(buf, NULL);
    if (r) zs_image_free(out);
    return r;
}

/* ==================================================================== */
/* [impl:image] pre-processing (SPEC 3)                                 */
/* ==================================================================== */

ZS__FN int zs_image_normalize(const zs_image *im, const float mean[3], const float std_[3], float *out) {
    size_t n, i;
    int r, c;
    if ((r = zs__image_check(im, "zs_image_normalize")) != 0) return r;
    if (!mean || !std_ || !out) return zs__fail(ZS_ERR_ARG, "zs_image_normalize: NULL argument");
    n = (size_t)im->w * (size_t)im->h;
    for (c = 0; c < 3; c++) {
        float m = mean[c], s = std_[c];
        float *o = out + (size_t)c * n;
        if (!(s != 0.0f)) return zs__fail(ZS_ERR_ARG, "zs_image_normalize: std[%d] is zero", c);
        for (i = 0; i < n; i++) o[i] = ((float)im->rgb[i * 3 + (size_t)c] / 255.0f - m) / s;
    }
    return ZS_OK;
}

ZS__PRIV int zs__check_size(int size, const char *who) {
    if (size < 1 || size > ZS_IMAGE_MAX_DIM) return zs__fail(ZS_ERR_ARG, "%s: size %d outside 1..%d", who, size, ZS_IMAGE_MAX_DIM);
    return ZS_OK;
}

ZS__PRIV int zs__preprocess_pil(const zs_image *im, int size, float *out, const float mean[3], const float std_[3],
                                const char *who) {
    zs_image t;
    int r;
    if ((r = zs__check_size(size, who)) != 0) return r;
    if (!out) return zs__fail(ZS_ERR_ARG, "%s: NULL output", who);
    if ((r = zs_image_resize_bicubic_pil(im, size, size, &t)) != 0) return r;
    r = zs_image_normalize(&t, mean, std_, out);
    zs_image_free(&t);
    return r;
}

ZS__FN int zs_preprocess_photo(const zs_image *im, int size, float *out) {
    static const float m[3] = {0.5f, 0.5f, 0.5f}, s[3] = {0.5f, 0.5f, 0.5f};
    return zs__preprocess_pil(im, size, out, m, s, "zs_preprocess_photo");
}

ZS__FN int zs_preprocess_tcn(const zs_image *im, int size, float *out) {
    static const float m[3] = {0.485f, 0.456f, 0.406f}, s[3] = {0.229f, 0.224f, 0.225f};
    return zs__preprocess_pil(im, size, out, m, s, "zs_preprocess_tcn");
}

ZS__FN int zs_sketch_prepare(const zs_image *im, int size, zs_image *out, int box[4]) {
    int r, x, y, xmin, xmax, ymin, ymax, x0, x1, y0, y1, cw, ch, nw, nh, ox, oy;
    unsigned char mx = 0;
    zs_image crop, rs;
    size_t i, n;
    if (out) out->w = out->h = 0, out->rgb = NULL;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_sketch_prepare: NULL output");
    if ((r = zs__image_check(im, "zs_sketch_prepare")) != 0) return r;
    if ((r = zs__check_size(size, "zs_sketch_prepare")) != 0) return r;
    xmin = im->w; ymin = im->h; xmax = ymax = -1;
    for (y = 0; y < im->h; y++)
        for (x = 0; x < im->w; x++) {
            const unsigned char *p = im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
            if (p[0] + p[1] + p[2] <= 300) {
                if (x < xmin) xmin = x;
                if (x > xmax) xmax = x;
                if (y < ymin) ymin = y;
                if (y > ymax) ymax = y;
            }
        }
    if (xmax < 0) return zs__fail(ZS_ERR_ARG, "zs_sketch_prepare: no ink (no pixel with R+G+B <= 300) in the %dx%d sketch",
                                  im->w, im->h);
    y0 = ymin - 10 > 0 ? ymin - 10 : 0;
    y1 = ymax + 10 < im->h ? ymax + 10 : im->h;
    x0 = xmin - 10 > 0 ? xmin - 10 : 0;
    x1 = xmax + 10 < im->w ? xmax + 10 : im->w;
    if (box) box[0] = x0, box[1] = y0, box[2] = x1, box[3] = y1;
    cw = x1 - x0;
    ch = y1 - y0;
    if ((r = zs_image_alloc(&crop, cw, ch)) != 0) return r;
    for (y = 0; y < ch; y++)
        memcpy(crop.rgb + (size_t)y * (size_t)cw * 3, im->rgb + ((size_t)(y + y0) * (size_t)im->w + (size_t)x0) * 3,
               (size_t)cw * 3);
    if (ch > cw) nh = size, nw = (int)(((int64_t)size * cw) / ch);
    else if (cw > ch) nw = size, nh = (int)(((int64_t)size * ch) / cw);
    else nw = nh = size;
    if (nw < 1 || nh < 1) {
        zs_image_free(&crop);
        return zs__fail(ZS_ERR_ARG, "zs_sketch_prepare: the %dx%d ink crop would be resized to %dx%d", cw, ch, nw, nh);
    }
    r = zs_image_resize_linear_cv(&crop, nw, nh, &rs);
    zs_image_free(&crop);
    if (r) return r;
    n = (size_t)nw * (size_t)nh * 3;
    for (i = 0; i < n; i++)
        if (rs.rgb[i] > mx) mx = rs.rgb[i];
    if ((r = zs_image_alloc(out, size, size)) != 0) {
        zs_image_free(&rs);
        return r;
    }
    memset(out->rgb, mx, (size_t)size * (size_t)size * 3);
    ox = (size - nw) / 2;
    oy = (size - nh) / 2;
    for (y = 0; y < nh; y++)
        memcpy(out->rgb + ((size_t)(y + oy) * (size_t)size + (size_t)ox) * 3, rs.rgb + (size_t)y * (size_t)nw * 3,
               (size_t)nw * 3);
    zs_image_free(&rs);
    return ZS_OK;
}

ZS__FN int zs_preprocess_sketch(const zs_image *im, int size, float *out) {
    static const float m[3] = {0.5f, 0.5f, 0.5f}, s[3] = {0.5f, 0.5f, 0.5f};
    zs_image t;
    int r;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_preprocess_sketch: NULL output");
    if ((r = zs_sketch_prepare(im, size, &t, NULL)) != 0) return r;
    r = zs_image_normalize(&t, m, s, out);
    zs_image_free(&t);
    return r;
}


/* ==================================================================== */
/* [impl:quickdraw] ndjson reader, anti-aliased stroke rasteriser       */
/* ==================================================================== */
/* The JSON cursor, string unescaping, value skipper and UTF-8 check of
   [impl:io] are reused; strings are unescaped in place, so every line is
   parsed in a private writable copy. */

/* Builder: growing arrays that refer to each other by offsets (they move
   while growing); zs__qd_finish turns offsets into pointers. */
typedef struct zs__qd_dref { size_t stroke0, word, key; int n_strokes, line; } zs__qd_dref;
typedef struct zs__qd_sref { size_t pt; int n; } zs__qd_sref; /* x at pt, y at pt + n */

typedef struct zs__qd_build {
    zs_qd_limits lim;
    const char *name;
    int line;
    zs__qd_dref *dr;
    zs__qd_sref *st;
    float *pt;
    char *tx;
    size_t ndr, cdr, nst, cst, npt, cpt, ntx, ctx;
} zs__qd_build;

#define ZS__QD_NONE ((size_t)-1)

ZS__FN zs_qd_limits zs_qd_default_limits(void) {
    zs_qd_limits l;
    l.max_drawings = 1 << 22;
    l.max_strokes = 4096;
    l.max_points = 65536;
    l.max_total_points = (size_t)1 << 27;
    l.max_line = (size_t)1 << 20;
    return l;
}

/* Makes room for `need` elements of es bytes (doubling); NULL + *err. */
ZS__PRIV void *zs__qd_grow(void *p, size_t *cap, size_t need, size_t es, const zs__qd_build *b, int *err) {
    size_t nc = *cap ? *cap : 64, bytes;
    void *q;
    *err = ZS_OK;
    if (need <= *cap) return p;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) nc = need;
        else nc *= 2;
    }
    if (!zs__mul_ok(nc, es, &bytes) || !(q = zs__malloc(bytes, NULL))) {
        *err = zs__fail(ZS_ERR_NOMEM, "%s:%d: out of memory", b->name, b->line);
        return p;
    }
    if (p) memcpy(q, p, *cap * es);
    zs__free(p, NULL);
    *cap = nc;
    return q;
}

/* Appends len bytes + NUL to the text pool; *off receives their offset. */
ZS__PRIV int zs__qd_text(zs__qd_build *b, const char *s, size_t len, size_t *off) {
    int r;
    if (len >= SIZE_MAX - b->ntx - 1) return zs__fail(ZS_ERR_NOMEM, "%s:%d: out of memory", b->name, b->line);
    b->tx = (char *)zs__qd_grow(b->tx, &b->ctx, b->ntx + len + 1, 1, b, &r);
    if (r) return r;
    memcpy(b->tx + b->ntx, s, len);
    b->tx[b->ntx + len] = 0;
    *off = b->ntx;
    b->ntx += len + 1;
    return ZS_OK;
}

/* A JSON number at j->p, grammar checked by zs__jskip_number, converted
   without strtod (locale-independent): up to 19 significant digits times a
   power of ten. */
ZS__PRIV int zs__qd_number(zs__qd_build *b, zs__json *j, int si, const char *axis, int k, double *out) {
    size_t p0 = j->p, p = j->p, len;
    uint64_t m = 0;
    long e = 0, ex = 0;
    int nd = 0, neg = 0, eneg = 0, r, c = zs__jpeek(j);
    double v;
    if (c != '-' && (c < '0' || c > '9'))
        return zs__jfail(j, "stroke %d: %s[%d] is not a number", si, axis, k);
    if ((r = zs__jskip_number(j)) != 0) return r;
    if (j->s[p] == '-') neg = 1, p++;
    for (; p < j->p && j->s[p] >= '0' && j->s[p] <= '9'; p++) {
        if (nd < 19) {
            m = m * 10 + (uint64_t)(j->s[p] - '0');
            if (m) nd++;
        } else if (e < 100000) e++; /* dropped integer digit */
    }
    if (p < j->p && j->s[p] == '.')
        for (p++; p < j->p && j->s[p] >= '0' && j->s[p] <= '9'; p++)
            if (nd < 19) {
                m = m * 10 + (uint64_t)(j->s[p] - '0');
                if (m) nd++;
                if (e > -100000) e--;
            }
    if (p < j->p) { /* exponent: e or E, optional sign, digits */
        p++;
        if (j->s[p] == '+' || j->s[p] == '-') eneg = j->s[p++] == '-';
        for (; p < j->p; p++)
            if (ex < 100000) ex = ex * 10 + (j->s[p] - '0');
    }
    e += eneg ? -ex : ex;
    if (m == 0) v = 0.0;
    else if (e > 30) v = 2.0 * ZS_QD_MAX_COORD; /* >= 1e30: rejected below */
    else if (e >= 0) v = (double)m * pow(10.0, (double)e);
    else if (e < -400) v = 0.0;
    else v = (double)m / pow(10.0, (double)-e);
    if (neg) v = -v;
    if (!(v <= ZS_QD_MAX_COORD && v >= -ZS_QD_MAX_COORD)) {
        len = j->p - p0;
        return zs__fail(ZS_ERR_FORMAT, "%s:%d: stroke %d: %s[%d] = %.*s%s is outside +-%g", b->name, b->line, si,
                        axis, k, (int)(len > 40 ? 40 : len), j->s + p0, len > 40 ? "..." : "", ZS_QD_MAX_COORD);
    }
    *out = v;
    return ZS_OK;
}

/* "[n0, n1, ...]" of stroke si; stores the values when `store`, else only
   counts them (the raw format's timestamps). */
ZS__PRIV int zs__qd_numbers(zs__qd_build *b, zs__json *j, int si, const char *axis, int store, int *count) {
    int n = 0, r, more;
    double v = 0.0;
    *count = 0;
    zs__jws(j);
    if (zs__jpeek(j) != '[') return zs__jfail(j, "stroke %d: expected the %s array", si, axis);
    j->p++;
    zs__jws(j);
    if (zs__jpeek(j) == ']') { j->p++; return ZS_OK; }
    for (;;) {
        if (n >= b->lim.max_points)
            return zs__fail(ZS_ERR_FORMAT, "%s:%d: stroke %d: more than %d %s values", b->name, b->line, si,
                            b->lim.max_points, axis);
        if ((r = zs__qd_number(b, j, si, axis, n, &v)) != 0) return r;
        if (store) {
            if (b->npt >= 2 * b->lim.max_total_points)
                return zs__fail(ZS_ERR_FORMAT, "%s:%d: more than %zu points in the file", b->name, b->line,
                                b->lim.max_total_points);
            b->pt = (float *)zs__qd_grow(b->pt, &b->cpt, b->npt + 1, sizeof(float), b, &r);
            if (r) return r;
            b->pt[b->npt++] = (float)v;
        }
        n++;
        if ((r = zs__jnext(j, ']', &more)) != 0) return r;
        if (!more) break;
    }
    *count = n;
    return ZS_OK;
}

/* [[x...], [y...]] or [[x...], [y...], [t...]] */
ZS__PRIV int zs__qd_stroke(zs__qd_build *b, zs__json *j, int si) {
    size_t pt0 = b->npt;
    int nx, ny, nt, r;
    zs__jws(j);
    if (zs__jpeek(j) != '[') return zs__jfail(j, "stroke %d: expected '[' (a stroke is [[x...], [y...]])", si);
    j->p++;
    if ((r = zs__qd_numbers(b, j, si, "x", 1, &nx)) != 0) return r;
    zs__jws(j);
    if (zs__jpeek(j) != ',') return zs__jfail(j, "stroke %d: expected ',' and the y array after the x array", si);
    j->p++;
    if ((r = zs__qd_numbers(b, j, si, "y", 1, &ny)) != 0) return r;
    if (nx != ny)
        return zs__fail(ZS_ERR_FORMAT, "%s:%d: stroke %d: %d x values but %d y values", b->name, b->line, si, nx, ny);
    if (nx == 0) return zs__fail(ZS_ERR_FORMAT, "%s:%d: stroke %d has no points", b->name, b->line, si);
    zs__jws(j);
    if (zs__jpeek(j) == ',') { /* raw format: timestamps */
        j->p++;
        if ((r = zs__qd_numbers(b, j, si, "t", 0, &nt)) != 0) return r;
        if (nt != nx)
            return zs__fail(ZS_ERR_FORMAT, "%s:%d: stroke %d: %d points but %d timestamps", b->name, b->line, si, nx, nt);
        zs__jws(j);
    }
    if (zs__jpeek(j) != ']') return zs__jfail(j, "stroke %d: expected ']' after its arrays", si);
    j->p++;
    b->st = (zs__qd_sref *)zs__qd_grow(b->st, &b->cst, b->nst + 1, sizeof *b->st, b, &r);
    if (r) return r;
    b->st[b->nst].pt = pt0;
    b->st[b->nst].n = nx;
    b->nst++;
    return ZS_OK;
}

ZS__PRIV int zs__qd_strokes(zs__qd_build *b, zs__json *j, int *n_strokes) {
    int n = 0, r, more;
    *n_strokes = 0;
    if (zs__jpeek(j) != '[') return zs__jfail(j, "\"drawing\" must be an array of strokes");
    j->p++;
    zs__jws(j);
    if (zs__jpeek(j) == ']') { j->p++; return ZS_OK; }
    for (;;) {
        if (n >= b->lim.max_strokes)
            return zs__fail(ZS_ERR_FORMAT, "%s:%d: more than %d strokes", b->name, b->line, b->lim.max_strokes);
        if ((r = zs__qd_stroke(b, j, n)) != 0) return r;
        n++;
        if ((r = zs__jnext(j, ']', &more)) != 0) return r;
        if (!more) break;
    }
    *n_strokes = n;
    return ZS_OK;
}

/* One line (writable, n bytes, no line end) -> at most one drawing. */
ZS__PRIV int zs__qd_line(zs__qd_build *b, char *s, size_t n) {
    char who[300];
    zs__json j;
    zs__qd_dref d;
    size_t bad = zs__utf8_check((const unsigned char *)s, n);
    int r, more, have_drawing = 0, c;
    if (bad != n) return zs__fail(ZS_ERR_FORMAT, "%s:%d: invalid UTF-8 at byte %zu", b->name, b->line, bad);
    snprintf(who, sizeof who, "%.256s:%d", b->name, b->line);
    j.s = s;
    j.n = n;
    j.p = 0;
    j.who = who;
    j.kind = "JSON";
    zs__jws(&j);
    if (j.p == n) return ZS_OK; /* blank line */
    if (b->ndr >= (size_t)b->lim.max_drawings)
        return zs__fail(ZS_ERR_FORMAT, "%s:%d: more than %d drawings", b->name, b->line, b->lim.max_drawings);
    if (zs__jpeek(&j) != '{') return zs__jfail(&j, "expected '{' (one JSON object a line)");
    j.p++;
    d.stroke0 = b->nst;
    d.word = d.key = ZS__QD_NONE;
    d.n_strokes = 0;
    d.line = b->line;
    zs__jws(&j);
    if (zs__jpeek(&j) == '}') j.p++;
    else
        for (;;) {
            char *key, *str;
            size_t v0;
            zs__jws(&j);
            if ((r = zs__jstring(&j, &key, "a member name")) != 0) return r;
            if ((r = zs__jexpect(&j, ':', "after a member name")) != 0) return r;
            if (!strcmp(key, "drawing")) {
                if (have_drawing) return zs__jfail(&j, "\"drawing\" appears twice");
                have_drawing = 1;
                if ((r = zs__qd_strokes(b, &j, &d.n_strokes)) != 0) return r;
            } else if (!strcmp(key, "word")) {
                if (d.word != ZS__QD_NONE) return zs__jfail(&j, "\"word\" appears twice");
                if ((r = zs__jstring(&j, &str, "\"word\"")) != 0) return r;
                if ((r = zs__qd_text(b, str, strlen(str), &d.word)) != 0) return r;
            } else if (!strcmp(key, "key_id")) {
                if (d.key != ZS__QD_NONE) return zs__jfail(&j, "\"key_id\" appears twice");
                c = zs__jpeek(&j);
                if (c == '"') {
                    if ((r = zs__jstring(&j, &str, "\"key_id\"")) != 0) return r;
                    r = zs__qd_text(b, str, strlen(str), &d.key);
                } else if (c == '-' || (c >= '0' && c <= '9')) {
                    v0 = j.p;
                    if ((r = zs__jskip_number(&j)) != 0) return r;
                    r = zs__qd_text(b, s + v0, j.p - v0, &d.key);
                } else return zs__jfail(&j, "\"key_id\" must be a string or a number");
                if (r) return r;
            } else if ((r = zs__jskip(&j, 1)) != 0) return r;
            if ((r = zs__jnext(&j, '}', &more)) != 0) return r;
            if (!more) break;
        }
    zs__jws(&j);
    if (j.p != n) return zs__jfail(&j, "unexpected text after the object");
    if (!have_drawing) return zs__fail(ZS_ERR_FORMAT, "%s:%d: no \"drawing\" member", b->name, b->line);
    b->dr = (zs__qd_dref *)zs__qd_grow(b->dr, &b->cdr, b->ndr + 1, sizeof *b->dr, b, &r);
    if (r) return r;
    b->dr[b->ndr++] = d;
    return ZS_OK;
}

ZS__PRIV int zs__qd_begin(zs__qd_build *b, zs_qd_file *out, const char *name, const zs_qd_limits *lim,
                          const char *who) {
    memset(b, 0, sizeof *b);
    b->name = name;
    b->lim = lim ? *lim : zs_qd_default_limits();
    if (out) memset(out, 0, sizeof *out);
    if (!out || !name) return zs__fail(ZS_ERR_ARG, "%s: NULL argument", who);
    if (b->lim.max_drawings < 1 || b->lim.max_strokes < 1 || b->lim.max_points < 1 || b->lim.max_total_points < 1 ||
        b->lim.max_total_points > SIZE_MAX / 8 || b->lim.max_line < 1 || b->lim.max_line > ((size_t)1 << 30))
        return zs__fail(ZS_ERR_ARG, "%s: limits out of range (counts >= 1, max_line <= 2^30)", who);
    return ZS_OK;
}

ZS__PRIV void zs__qd_drop(zs__qd_build *b) {
    zs__free(b->dr, NULL);
    zs__free(b->st, NULL);
    zs__free(b->pt, NULL);
    zs__free(b->tx, NULL);
    b->dr = NULL, b->st = NULL, b->pt = NULL, b->tx = NULL;
}

/* Offsets -> pointers; the point and text pools move into *out. */
ZS__PRIV int zs__qd_finish(zs__qd_build *b, zs_qd_file *out) {
    size_t i;
    if (b->ndr) out->drawings = (zs_qd_drawing *)zs__malloc(b->ndr * sizeof *out->drawings, NULL);
    if (b->nst) out->strokes_ = (zs_qd_stroke *)zs__malloc(b->nst * sizeof *out->strokes_, NULL);
    if ((b->ndr && !out->drawings) || (b->nst && !out->strokes_)) {
        zs__free(out->drawings, NULL);
        zs__free(out->strokes_, NULL);
        memset(out, 0, sizeof *out);
        zs__qd_drop(b);
        return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", b->name);
    }
    for (i = 0; i < b->nst; i++) {
        out->strokes_[i].n = b->st[i].n;
        out->strokes_[i].x = b->pt + b->st[i].pt;
        out->strokes_[i].y = b->pt + b->st[i].pt + b->st[i].n;
    }
    for (i = 0; i < b->ndr; i++) {
        zs_qd_drawing *d = &out->drawings[i];
        d->n_strokes = b->dr[i].n_strokes;
        d->strokes = d->n_strokes ? out->strokes_ + b->dr[i].stroke0 : NULL;
        d->word = b->dr[i].word == ZS__QD_NONE ? NULL : b->tx + b->dr[i].word;
        d->key_id = b->dr[i].key == ZS__QD_NONE ? NULL : b->tx + b->dr[i].key;
        d->line = b->dr[i].line;
    }
    out->n = (int)b->ndr;
    out->points_ = b->pt;
    out->text_ = b->tx;
    b->pt = NULL;
    b->tx = NULL;
    zs__qd_drop(b);
    return ZS_OK;
}

/* Strips a trailing '\r' (and a BOM on line 1), checks the length, parses. */
ZS__PRIV int zs__qd_feed(zs__qd_build *b, char *s, size_t n) {
    if (b->line == INT_MAX) return zs__fail(ZS_ERR_FORMAT, "%s: more than %d lines", b->name, INT_MAX - 1);
    b->line++;
    if (n && s[n - 1] == '\r') n--;
    if (b->line == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) s += 3, n -= 3;
    if (n > b->lim.max_line)
        return zs__fail(ZS_ERR_FORMAT, "%s:%d: line longer than %zu bytes", b->name, b->line, b->lim.max_line);
    return zs__qd_line(b, s, n);
}

ZS__FN int zs_qd_load_memory(zs_qd_file *out, const void *buf, size_t n, const char *name, const zs_qd_limits *lim) {
    zs__qd_build b;
    const char *s = (const char *)buf, *e, *end = s + n;
    char *line = NULL;
    size_t cap = 0, len;
    int r = zs__qd_begin(&b, out, name ? name : "<memory>", lim, "zs_qd_load_memory");
    if (r) return r;
    if (!buf && n) return zs__fail(ZS_ERR_ARG, "zs_qd_load_memory: NULL buffer");
    while (s < end) {
        e = (const char *)memchr(s, '\n', (size_t)(end - s));
        if (!e) e = end;
        len = (size_t)(e - s);
        if (len > b.lim.max_line + 1) { /* +1: a '\r' may still be stripped */
            r = zs__fail(ZS_ERR_FORMAT, "%s:%d: line longer than %zu bytes", b.name, b.line + 1, b.lim.max_line);
            break;
        }
        if (len + 1 > cap || !line) { /* private copy: strings are unescaped in place */
            zs__free(line, NULL);
            cap = len + 1 > 4096 ? len + 1 : 4096;
            if (!(line = (char *)zs__malloc(cap, NULL))) {
                r = zs__fail(ZS_ERR_NOMEM, "%s:%d: out of memory", b.name, b.line + 1);
                break;
            }
        }
        if (len) memcpy(line, s, len);
        if ((r = zs__qd_feed(&b, line, len)) != 0) break;
        s = e + 1;
    }
    zs__free(line, NULL);
    if (r) {
        zs__qd_drop(&b);
        return r;
    }
    return zs__qd_finish(&b, out);
}

ZS__FN int zs_qd_load(zs_qd_file *out, const char *path, const zs_qd_limits *lim) {
    zs__qd_build b;
    FILE *f;
    char *buf;
    size_t cap, start = 0, len = 0, got;
    int r = zs__qd_begin(&b, out, path, lim, "zs_qd_load"), eof = 0;
    if (r) return r;
    cap = b.lim.max_line + 2; /* a longest line, '\r', '\n' */
    if (cap < 65536) cap = 65536;
    if (!(f = fopen(path, "rb"))) return zs__fail(ZS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!(buf = (char *)zs__malloc(cap, NULL))) {
        fclose(f);
        return zs__fail(ZS_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        char *nl = (char *)memchr(buf + start, '\n', len - start);
        if (nl) {
            if ((r = zs__qd_feed(&b, buf + start, (size_t)(nl - (buf + start)))) != 0) break;
            start = (size_t)(nl - buf) + 1;
            continue;
        }
        if (eof) {
            if (len > start) r = zs__qd_feed(&b, buf + start, len - start);
            break;
        }
        if (start) { /* keep the partial line, refill behind it */
            memmove(buf, buf + start, len - start);
            len -= start;
            start = 0;
        }
        if (len - start > b.lim.max_line + 1) {
            r = zs__fail(ZS_ERR_FORMAT, "%s:%d: line longer than %zu bytes", path, b.line + 1, b.lim.max_line);
            break;
        }
        got = fread(buf + len, 1, cap - len, f);
        if (got == 0) {
            if (ferror(f)) {
                r = zs__fail(ZS_ERR_IO, "%s: read error after line %d", path, b.line);
                break;
            }
            eof = 1;
        }
        len += got;
    }
    fclose(f);
    zs__free(buf, NULL);
    if (r) {
        zs__qd_drop(&b);
        return r;
    }
    return zs__qd_finish(&b, out);
}

ZS__FN void zs_qd_free(zs_qd_file *f) {
    if (!f) return;
    zs__free(f->drawings, NULL);
    zs__free(f->strokes_, NULL);
    zs__free(f->points_, NULL);
    zs__free(f->text_, NULL);
    memset(f, 0, sizeof *f);
}

/* ---- rasteriser ------------------------------------------------------------ */

ZS__FN zs_qd_raster_opts zs_qd_raster_default_opts(void) {
    zs_qd_raster_opts o;
    memset(&o, 0, sizeof o);
    o.width = o.height = 256;
    o.line_width = 3.0f;
    o.margin = -1.0f;
    o.box = 256.0f;
    o.paper[0] = o.paper[1] = o.paper[2] = 255;
    return o;
}

/* Canvas mapping u = ox + (x + 0.5) s (see [api:quickdraw]). */
typedef struct zs__qd_map { double s, ox, oy, r; } zs__qd_map;

ZS__PRIV int zs__qd_check(const zs_qd_drawing *d, const zs_qd_raster_opts *o, zs__qd_map *mp, const char *who) {
    double m, side;
    int i, k;
    if (!d) return zs__fail(ZS_ERR_ARG, "%s: NULL drawing", who);
    if (o->width < 1 || o->height < 1 || o->width > ZS_IMAGE_MAX_DIM || o->height > ZS_IMAGE_MAX_DIM)
        return zs__fail(ZS_ERR_ARG, "%s: canvas %dx%d outside 1..%d", who, o->width, o->height, ZS_IMAGE_MAX_DIM);
    /* comparisons written to reject NaN (by bits: -ffast-math folds x != x) */
    if (zs__isnan_bits(o->line_width) || !(o->line_width > 0.0f && o->line_width <= 1024.0f))
        return zs__fail(ZS_ERR_ARG, "%s: line_width %g outside (0, 1024]", who, (double)o->line_width);
    if (zs__isnan_bits(o->box) || !(o->box >= 1.0f && o->box <= 1e6f))
        return zs__fail(ZS_ERR_ARG, "%s: box %g outside [1, 1e6]", who, (double)o->box);
    if (zs__isnan_bits(o->margin) || o->margin > 16384.0f)
        return zs__fail(ZS_ERR_ARG, "%s: margin %g is not a number <= 16384", who, (double)o->margin);
    if (d->n_strokes < 0 || (d->n_strokes > 0 && !d->strokes))
        return zs__fail(ZS_ERR_ARG, "%s: bad stroke list (%d strokes)", who, d->n_strokes);
    for (i = 0; i < d->n_strokes; i++) {
        const zs_qd_stroke *st = &d->strokes[i];
        if (st->n < 0 || (st->n > 0 && (!st->x || !st->y)))
            return zs__fail(ZS_ERR_ARG, "%s: stroke %d: bad point arrays (%d points)", who, i, st->n);
        for (k = 0; k < st->n; k++) {
            float x = st->x[k], y = st->y[k];
            if (zs__isnan_bits(x) || zs__isnan_bits(y) || !(x <= ZS_QD_MAX_COORD && x >= -ZS_QD_MAX_COORD) ||
                !(y <= ZS_QD_MAX_COORD && y >= -ZS_QD_MAX_COORD))
                return zs__fail(ZS_ERR_ARG, "%s: stroke %d point %d (%g, %g) is outside +-%g", who, i, k, (double)x,
                                (double)y, ZS_QD_MAX_COORD);
        }
    }
    mp->r = 0.5 * (double)o->line_width;
    m = o->margin < 0.0f ? mp->r + 0.5 : (double)o->margin;
    side = (o->width < o->height ? o->width : o->height) - 2.0 * m;
    if (!(side > 0.0))
        return zs__fail(ZS_ERR_ARG, "%s: margin %g leaves no room on a %dx%d canvas", who, m, o->width, o->height);
    mp->s = side / (double)o->box;
    mp->ox = 0.5 * ((double)o->width - (double)o->box * mp->s);
    mp->oy = 0.5 * ((double)o->height - (double)o->box * mp->s);
    return ZS_OK;
}

/* cov[j][i] = max(cov, clamp(r + 0.5 - dist(pixel centre, segment ab), 0, 1)),
   visiting only the pixels whose centres lie in the capsule's bounding box. */
ZS__PRIV void zs__qd_capsule(float *cov, int w, int h, double ax, double ay, double bx, double by, double r) {
    double rr = r + 0.5, dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy, inv = len2 > 0.0 ? 1.0 / len2 : 0.0;
    double x0 = (ax < bx ? ax : bx) - rr, x1 = (ax < bx ? bx : ax) + rr;
    double y0 = (ay < by ? ay : by) - rr, y1 = (ay < by ? by : ay) + rr;
    double fi0 = ceil(x0 - 0.5), fi1 = floor(x1 - 0.5), fj0 = ceil(y0 - 0.5), fj1 = floor(y1 - 0.5);
    int i, j, i0, i1, j0, j1;
    if (fi0 < 0.0) fi0 = 0.0;
    if (fj0 < 0.0) fj0 = 0.0;
    if (fi1 > (double)(w - 1)) fi1 = (double)(w - 1);
    if (fj1 > (double)(h - 1)) fj1 = (double)(h - 1);
    if (fi0 > fi1 || fj0 > fj1) return; /* off the canvas */
    i0 = (int)fi0, i1 = (int)fi1, j0 = (int)fj0, j1 = (int)fj1;
    for (j = j0; j <= j1; j++) {
        double py = (double)j + 0.5 - ay;
        float *row = cov + (size_t)j * (size_t)w;
        for (i = i0; i <= i1; i++) {
            double px = (double)i + 0.5 - ax, t = (px * dx + py * dy) * inv, ex, ey, c;
            if (t < 0.0) t = 0.0;
            if (t > 1.0) t = 1.0;
            ex = px - t * dx;
            ey = py - t * dy;
            c = rr - sqrt(ex * ex + ey * ey);
            if (c <= 0.0) continue;
            if (c > 1.0) c = 1.0;
            if ((float)c > row[i]) row[i] = (float)c;
        }
    }
}

ZS__PRIV void zs__qd_draw(float *cov, const zs_qd_drawing *d, const zs_qd_raster_opts *o, const zs__qd_map *mp) {
    int i, k;
    memset(cov, 0, (size_t)o->width * (size_t)o->height * sizeof *cov);
    for (i = 0; i < d->n_strokes; i++) {
        const zs_qd_stroke *st = &d->strokes[i];
        double ax, ay, bx, by;
        if (st->n < 1) continue;
        ax = mp->ox + ((double)st->x[0] + 0.5) * mp->s;
        ay = mp->oy + ((double)st->y[0] + 0.5) * mp->s;
        if (st->n == 1) zs__qd_capsule(cov, o->width, o->height, ax, ay, ax, ay, mp->r); /* a dot */
        for (k = 1; k < st->n; k++, ax = bx, ay = by) {
            bx = mp->ox + ((double)st->x[k] + 0.5) * mp->s;
            by = mp->oy + ((double)st->y[k] + 0.5) * mp->s;
            zs__qd_capsule(cov, o->width, o->height, ax, ay, bx, by, mp->r);
        }
    }
}

ZS__FN int zs_qd_coverage(float *cov, const zs_qd_drawing *d, const zs_qd_raster_opts *o) {
    zs_qd_raster_opts def = zs_qd_raster_default_opts();
    zs__qd_map mp;
    int r;
    if (!o) o = &def;
    if (!cov) return zs__fail(ZS_ERR_ARG, "zs_qd_coverage: NULL output");
    if ((r = zs__qd_check(d, o, &mp, "zs_qd_coverage")) != 0) return r;
    zs__qd_draw(cov, d, o, &mp);
    return ZS_OK;
}

ZS__FN int zs_qd_render(zs_image *out, const zs_qd_drawing *d, const zs_qd_raster_opts *o) {
    zs_qd_raster_opts def = zs_qd_raster_default_opts();
    zs__qd_map mp;
    float *cov;
    size_t i, n;
    int r, c;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_qd_render: NULL output");
    out->w = out->h = 0;
    out->rgb = NULL;
    if (!o) o = &def;
    if ((r = zs__qd_check(d, o, &mp, "zs_qd_render")) != 0) return r;
    n = (size_t)o->width * (size_t)o->height; /* <= 2^28: no overflow below */
    if (!(cov = (float *)zs__malloc(n * sizeof *cov, NULL)))
        return zs__fail(ZS_ERR_NOMEM, "zs_qd_render: cannot allocate a %dx%d coverage buffer", o->width, o->height);
    if ((r = zs_image_alloc(out, o->width, o->height)) != 0) {
        zs__free(cov, NULL);
        return r;
    }
    zs__qd_draw(cov, d, o, &mp);
    for (i = 0; i < n; i++)
        for (c = 0; c < 3; c++) {
            double p = (double)o->paper[c], v = p + ((double)o->ink[c] - p) * (double)cov[i];
            out->rgb[i * 3 + (size_t)c] = (unsigned char)(int)floor(v + 0.5);
        }
    zs__free(cov, NULL);
    return ZS_OK;
}

/* ==================================================================== */
/* [impl:index] photo index files, contact sheets                       */
/* ==================================================================== */

ZS__FN uint64_t zs_hash_bytes(const void *p, size_t n, uint64_t seed) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = seed ? seed : 0xcbf29ce484222325ull;
    size_t i;
    for (i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

ZS__FN uint64_t zs_weights_hash(const zs_params *p) {
    /* names and shapes byte-wise; values as 64-bit words with a multiply-xorshift
       mix (byte-wise FNV over 400 MB would take a second) */
    uint64_t h = 0xcbf29ce484222325ull, acc = 0;
    size_t i, nw;
    int k;
    if (!p) return 0;
    for (k = 0; k < p->count; k++) {
        const zs_tensor *t = &p->t[k];
        h = zs_hash_bytes(t->name, strlen(t->name), h);
        h = zs_hash_bytes(t->shape, sizeof(t->shape[0]) * (size_t)t->ndim, h);
    }
    if (!p->data) return h;
    nw = p->numel / 2;
    for (i = 0; i < nw; i++) {
        uint64_t w;
        memcpy(&w, p->data + 2 * i, 8);
        acc = (acc ^ w) * 0x9e3779b97f4a7c15ull;
        acc ^= acc >> 29;
    }
    if (p->numel & 1) acc = zs_hash_bytes(p->data + p->numel - 1, 4, acc);
    return zs_hash_bytes(&acc, 8, h);
}

ZS__PRIV void zs__put_le32(unsigned char *b, uint32_t v) { int i; for (i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i)); }
ZS__PRIV void zs__put_le64(unsigned char *b, uint64_t v) { int i; for (i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i)); }
ZS__PRIV uint32_t zs__get_le32(const unsigned char *b) {
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

#define ZS__INDEX_HDR 64 /* magic 8, u32 x2, u64 x2, u32 x8 */

struct zs_index_writer {
    FILE *f;
    char *path;
    int n, done, dim, tok, tokd;
    zs_itq itq;  /* copy of info->itq (bits 0: none) */
    zs_type tt;
    void *buf;   /* one record */
    size_t rec;  /* record bytes */
};

ZS__PRIV int zs__iw_write(zs_index_writer *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n) return zs__fail(ZS_ERR_IO, "zs_index(%.200s): write failed: %s", w->path, strerror(errno));
    return ZS_OK;
}
ZS__PRIV int zs__iw_str(zs_index_writer *w, const char *s, const char *what, int i) {
    unsigned char b[4];
    size_t n = s ? strlen(s) : 0;
    if (n > ZS_INDEX_MAX_STR) return zs__fail(ZS_ERR_ARG, "zs_index_create: %s %d longer than %d bytes", what, i, ZS_INDEX_MAX_STR);
    zs__put_le32(b, (uint32_t)n);
    if (zs__iw_write(w, b, 4)) return ZS_ERR_IO;
    return zs__iw_write(w, s, n);
}

ZS__FN void zs_index_abort(zs_index_writer *w) {
    if (!w) return;
    if (w->f) { fclose(w->f); remove(w->path); }
    zs_itq_free(&w->itq);
    zs__free(w->buf, NULL);
    zs__free(w->path, NULL);
    zs__free(w, NULL);
}

ZS__FN zs_index_writer *zs_index_create(const char *path, const zs_index_info *in) {
    zs_index_writer *w;
    unsigned char h[ZS__INDEX_HDR];
    size_t clen, es, rec, tn;
    int i;
    if (!path || !in || !in->path || (in->n_classes > 0 && !in->class_name)) { zs__fail(ZS_ERR_ARG, "zs_index_create: NULL argument"); return NULL; }
    if (in->n < 0 || in->dim <= 0 || in->tokens < 0 || in->token_dim < 0 || in->n_classes < 0 || (in->tokens > 0) != (in->token_dim > 0) ||
        (in->tokens > 0 && in->token_type != ZS_F32 && in->token_type != ZS_F16)) {
        zs__fail(ZS_ERR_ARG, "zs_index_create: bad sizes n=%d dim=%d tokens=%d token_dim=%d n_classes=%d", in->n, in->dim,
                 in->tokens, in->token_dim, in->n_classes);
        return NULL;
    }
    es = in->token_type == ZS_F16 ? 2 : 4;
    if (!zs__mul_ok((size_t)in->tokens, (size_t)in->token_dim, &tn) || !zs__mul_ok(tn, es, &rec) ||
        rec > ((size_t)1 << 40) || (rec += (size_t)in->dim * 4) < (size_t)in->dim * 4) {
        zs__fail(ZS_ERR_ARG, "zs_index_create: record size overflows");
        return NULL;
    }
    if (in->itq && (in->itq->dim != in->dim || in->itq->bits < 1 || in->itq->bits > in->dim || !in->itq->mean || !in->itq->proj || !in->itq->rot)) {
        zs__fail(ZS_ERR_ARG, "zs_index_create: ITQ over %d dims with %d bits does not fit embeddings of %d", in->itq->dim, in->itq->bits, in->dim);
        return NULL;
    }
    if (in->itq) rec += (size_t)ZS_ITQ_WORDS(in->itq->bits) * 8;
    clen = in->config ? strlen(in->config) : 0;
    if (clen > ZS_INDEX_MAX_STR) { zs__fail(ZS_ERR_ARG, "zs_index_create: config text longer than %d bytes", ZS_INDEX_MAX_STR); return NULL; }
    w = (zs_index_writer *)zs__malloc(sizeof *w, NULL);
    if (!w) { zs__fail(ZS_ERR_NOMEM, "zs_index_create: out of memory"); return NULL; }
    memset(w, 0, sizeof *w);
    w->path = (char *)zs__malloc(strlen(path) + 1, NULL);
    w->buf = zs__malloc(rec, NULL);
    if (!w->path || !w->buf) { zs_index_abort(w); zs__fail(ZS_ERR_NOMEM, "zs_index_create: out of memory"); return NULL; }
    strcpy(w->path, path);
    w->n = in->n; w->dim = in->dim; w->tok = in->tokens; w->tokd = in->token_dim; w->tt = in->token_type; w->rec = rec;
    if (in->itq) {
        const zs_itq *q = in->itq;
        if (zs__itq_alloc(&w->itq, q->dim, q->bits) != ZS_OK) { zs_index_abort(w); return NULL; }
        memcpy(w->itq.mean, q->mean, sizeof(float) * (size_t)q->dim);
        memcpy(w->itq.proj, q->proj, sizeof(float) * (size_t)q->dim * (size_t)q->bits);
        memcpy(w->itq.rot, q->rot, sizeof(float) * (size_t)q->bits * (size_t)q->bits);
    }
    w->f = fopen(path, "wb");
    if (!w->f) { zs__fail(ZS_ERR_IO, "zs_index_create(%.200s): cannot create: %s", path, strerror(errno)); zs_index_abort(w); return NULL; }
    memset(h, 0, sizeof h);
    memcpy(h, "ZSESBIRI", 8);
    zs__put_le32(h + 8, ZS_INDEX_VERSION);
    zs__put_le32(h + 12, in->model);
    zs__put_le64(h + 16, in->config_hash);
    zs__put_le64(h + 24, in->weights_hash);
    zs__put_le32(h + 32, (uint32_t)in->n);
    zs__put_le32(h + 36, (uint32_t)in->dim);
    zs__put_le32(h + 40, (uint32_t)in->tokens);
    zs__put_le32(h + 44, (uint32_t)in->token_dim);
    zs__put_le32(h + 48, (uint32_t)(in->tokens ? in->token_type : ZS_F32));
    zs__put_le32(h + 52, (uint32_t)in->n_classes);
    zs__put_le32(h + 56, (uint32_t)clen);
    zs__put_le32(h + 60, (uint32_t)w->itq.bits);
    if (zs__iw_write(w, h, sizeof h) || zs__iw_write(w, in->config, clen)) { zs_index_abort(w); return NULL; }
    for (i = 0; i < in->n_classes; i++)
        if (zs__iw_str(w, in->class_name[i], "class name", i)) { zs_index_abort(w); return NULL; }
    for (i = 0; i < in->n; i++) {
        unsigned char b[4];
        int32_t lab = in->label ? in->label[i] : -1;
        if (lab < -1 || lab >= in->n_classes) {
            zs__fail(ZS_ERR_ARG, "zs_index_create: label[%d] = %d outside -1..%d", i, (int)lab, in->n_classes - 1);
            zs_index_abort(w);
            return NULL;
        }
        zs__put_le32(b, (uint32_t)lab);
        if (zs__iw_write(w, b, 4) || zs__iw_str(w, in->path[i], "path", i)) { zs_index_abort(w); return NULL; }
    }
    if (w->itq.bits) { /* mean, proj, rot as f32 */
        const float *arr[3];
        size_t len[3], k;
        int a;
        arr[0] = w->itq.mean; arr[1] = w->itq.proj; arr[2] = w->itq.rot;
        len[0] = (size_t)w->dim; len[1] = (size_t)w->dim * (size_t)w->itq.bits; len[2] = (size_t)w->itq.bits * (size_t)w->itq.bits;
        for (a = 0; a < 3; a++)
            for (k = 0; k < len[a]; k++) {
                unsigned char b[4];
                uint32_t u;
                memcpy(&u, arr[a] + k, 4);
                zs__put_le32(b, u);
                if (zs__iw_write(w, b, 4)) { zs_index_abort(w); return NULL; }
            }
    }
    return w;
}

ZS__FN int zs_index_append(zs_index_writer *w, const float *emb, const float *tokens) {
    unsigned char *b;
    size_t i, tn;
    if (!w || !w->f || !emb) return zs__fail(ZS_ERR_ARG, "zs_index_append: NULL argument");
    tn = (size_t)w->tok * (size_t)w->tokd;
    if (tn && !tokens) return zs__fail(ZS_ERR_ARG, "zs_index_append: NULL tokens");
    if (w->done >= w->n) return zs__fail(ZS_ERR_STATE, "zs_index_append: all %d records already written", w->n);
    b = (unsigned char *)w->buf;
    for (i = 0; i < (size_t)w->dim; i++) { uint32_t u; memcpy(&u, emb + i, 4); zs__put_le32(b + 4 * i, u); }
    b += (size_t)w->dim * 4;
    if (w->itq.bits) {
        uint64_t code[ZS_ITQ_WORDS(ZS_ITQ_MAX_DIM)] = {0};
        int r = zs_itq_encode(&w->itq, code, emb, 1);
        if (r) return r;
        for (i = 0; i < (size_t)ZS_ITQ_WORDS(w->itq.bits); i++, b += 8) zs__put_le64(b, code[i]);
    }
    for (i = 0; i < tn; i++) {
        if (w->tt == ZS_F16) { uint16_t hv = zs_f32_to_f16(tokens[i]); b[2 * i] = (unsigned char)hv; b[2 * i + 1] = (unsigned char)(hv >> 8); }
        else { uint32_t u; memcpy(&u, tokens + i, 4); zs__put_le32(b + 4 * i, u); }
    }
    if (zs__iw_write(w, w->buf, w->rec)) return ZS_ERR_IO;
    w->done++;
    return ZS_OK;
}

ZS__FN int zs_index_finish(zs_index_writer *w) {
    int r;
    if (!w) return zs__fail(ZS_ERR_ARG, "zs_index_finish: NULL writer");
    if (w->done != w->n) {
        r = zs__fail(ZS_ERR_STATE, "zs_index_finish(%.200s): %d of %d records written; file removed", w->path, w->done, w->n);
        zs_index_abort(w);
        return r;
    }
    r = fclose(w->f) == 0 ? ZS_OK : zs__fail(ZS_ERR_IO, "zs_index_finish(%.200s): close failed: %s", w->path, strerror(errno));
    w->f = NULL;
    if (r) remove(w->path);
    zs_itq_free(&w->itq);
    zs__free(w->buf, NULL);
    zs__free(w->path, NULL);
    zs__free(w, NULL);
    return r;
}

typedef struct zs__index_priv {
    zs__src src;
    char who[300];
    uint64_t rec_start; /* offset of record 0 */
    uint64_t rec;       /* bytes per record */
    unsigned char *buf; /* one token block */
} zs__index_priv;

ZS__FN void zs_index_free(zs_index *idx) {
    zs__index_priv *p;
    if (!idx) return;
    p = (zs__index_priv *)idx->priv_;
    if (p) { zs__src_close(&p->src); zs__free(p->buf, NULL); zs__free(p, NULL); }
    /* class_name[0] / path[0] point into one string pool each (allocated at [0]) */
    if (idx->class_name) zs__free(idx->class_name[0] ? idx->class_name[0] : NULL, NULL);
    if (idx->path && idx->n > 0) zs__free(idx->path[0], NULL);
    zs__free(idx->class_name, NULL);
    zs__free(idx->path, NULL);
    zs__free(idx->label, NULL);
    zs__free(idx->emb, NULL);
    zs__free(idx->config, NULL);
    zs__free(idx->codes, NULL);
    zs_itq_free(&idx->itq);
    memset(idx, 0, sizeof *idx);
}

/* Reads n length-prefixed strings starting at *off into one pool; names[i]
   point into it (names[0] == pool start, also when the strings are empty). */
ZS__PRIV int zs__index_strings(zs__index_priv *p, uint64_t *off, int n, char **names, int32_t *labels, int n_classes) {
    uint64_t o = *off, total = 0;
    char *pool = NULL;
    int i, pass, r = ZS_OK;
    for (pass = 0; pass < 2; pass++) {
        uint64_t pos = 0;
        o = *off;
        if (pass && !(pool = (char *)zs__malloc((size_t)total + 1, NULL)))
            return zs__fail(ZS_ERR_NOMEM, "%s: out of memory for %llu bytes of strings", p->who, (unsigned long long)total);
        for (i = 0; i < n; i++) {
            unsigned char b[4];
            uint32_t len;
            if (labels) {
                int32_t lab;
                if ((r = zs__src_read(&p->src, o, b, 4)) != 0) goto fail;
                lab = (int32_t)zs__get_le32(b);
                if (lab < -1 || lab >= n_classes) {
                    r = zs__fail(ZS_ERR_FORMAT, "%s: label of photo %d is %d, outside -1..%d", p->who, i, (int)lab, n_classes - 1);
                    goto fail;
                }
                if (pass) labels[i] = lab;
                o += 4;
            }
            if ((r = zs__src_read(&p->src, o, b, 4)) != 0) goto fail;
            len = zs__get_le32(b);
            o += 4;
            if (len > ZS_INDEX_MAX_STR || len > p->src.size - o) {
                r = zs__fail(ZS_ERR_FORMAT, "%s: string %d of %u bytes runs past the end of the file or the %d-byte limit", p->who, i,
                             len, ZS_INDEX_MAX_STR);
                goto fail;
            }
            if (pass) {
                if ((r = zs__src_read(&p->src, o, pool + pos, len)) != 0) goto fail;
                if (memchr(pool + pos, 0, len)) { r = zs__fail(ZS_ERR_FORMAT, "%s: string %d contains a NUL byte", p->who, i); goto fail; }
                names[i] = pool + pos;
                pos += len;
                pool[pos++] = 0;
            } else total += (uint64_t)len + 1;
            o += len;
        }
    }
    if (n == 0) zs__free(pool, NULL);
    *off = o;
    return ZS_OK;
fail:
    zs__free(pool, NULL);
    if (n > 0) names[0] = NULL; /* zs_index_free frees names[0] as the pool */
    return r;
}

ZS__FN int zs_index_load(const char *path, zs_index *out) {
    zs__index_priv *p;
    unsigned char h[ZS__INDEX_HDR], *rb = NULL;
    uint64_t off, n, dim, tok, tokd, tt, ncls, clen, es, rec, need, bits, words, itqb;
    int i, r;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_index_load: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return zs__fail(ZS_ERR_ARG, "zs_index_load: NULL path");
    p = (zs__index_priv *)zs__malloc(sizeof *p, NULL);
    if (!p) return zs__fail(ZS_ERR_NOMEM, "zs_index_load: out of memory");
    memset(p, 0, sizeof *p);
    out->priv_ = p;
    snprintf(p->who, sizeof p->who, "zs_index_load(%.200s)", path);
    if ((r = zs__src_open(&p->src, path, p->who)) != 0) { zs_index_free(out); return r; }
    if (p->src.size < ZS__INDEX_HDR) { r = zs__fail(ZS_ERR_FORMAT, "%s: %llu bytes, too short for an index header", p->who, (unsigned long long)p->src.size); goto fail; }
    if ((r = zs__src_read(&p->src, 0, h, sizeof h)) != 0) goto fail;
    if (memcmp(h, "ZSESBIRI", 8)) { r = zs__fail(ZS_ERR_FORMAT, "%s: not a zsesbir index (bad magic)", p->who); goto fail; }
    out->version = zs__get_le32(h + 8);
    out->model = zs__get_le32(h + 12);
    if (out->version != 1 && out->version != ZS_INDEX_VERSION) { r = zs__fail(ZS_ERR_UNSUPPORTED, "%s: index version %u (this build reads 1..%d)", p->who, out->version, ZS_INDEX_VERSION); goto fail; }
    out->config_hash = zs__le64(h + 16);
    out->weights_hash = zs__le64(h + 24);
    n = zs__get_le32(h + 32); dim = zs__get_le32(h + 36); tok = zs__get_le32(h + 40); tokd = zs__get_le32(h + 44);
    tt = zs__get_le32(h + 48); ncls = zs__get_le32(h + 52); clen = zs__get_le32(h + 56);
    bits = out->version >= 2 ? zs__get_le32(h + 60) : 0; /* version 1: reserved 0 */
    if (bits > dim || (bits && dim > ZS_ITQ_MAX_DIM)) {
        r = zs__fail(ZS_ERR_FORMAT, "%s: ITQ code of %llu bits for %llu-dim embeddings", p->who, (unsigned long long)bits, (unsigned long long)dim);
        goto fail;
    }
    words = (uint64_t)ZS_ITQ_WORDS((int)bits);
    itqb = bits ? 4 * (dim + dim * bits + bits * bits) : 0; /* <= 3 * 2^34 */
    if (n > 0x7fffffffu || dim == 0 || dim > (1u << 20) || tok > (1u << 20) || tokd > (1u << 20) || (tok > 0) != (tokd > 0) ||
        (tt != ZS_F32 && tt != ZS_F16) || ncls > 0x7fffffffu || clen > ZS_INDEX_MAX_STR) {
        r = zs__fail(ZS_ERR_FORMAT, "%s: bad header (n=%llu dim=%llu tokens=%llu token_dim=%llu type=%llu classes=%llu config=%llu)", p->who,
                     (unsigned long long)n, (unsigned long long)dim, (unsigned long long)tok, (unsigned long long)tokd,
                     (unsigned long long)tt, (unsigned long long)ncls, (unsigned long long)clen);
        goto fail;
    }
    es = tt == ZS_F16 ? 2 : 4;
    rec = dim * 4 + words * 8 + tok * tokd * es; /* < 2^22 + 2^17 + 2^42: no overflow */
    /* every photo needs >= 8 bytes of label/path and a record; every class 4 */
    if (ncls * 4 + clen + itqb > p->src.size - ZS__INDEX_HDR ||
        (n && rec + 8 > (p->src.size - ZS__INDEX_HDR - ncls * 4 - clen - itqb) / n)) {
        r = zs__fail(ZS_ERR_FORMAT, "%s: %llu photos of %llu-byte records cannot fit in %llu bytes", p->who,
                     (unsigned long long)n, (unsigned long long)rec, (unsigned long long)p->src.size);
        goto fail;
    }
    out->n = (int)n; out->dim = (int)dim; out->tokens = (int)tok; out->token_dim = (int)tokd; out->token_type = (zs_type)tt;
    out->n_classes = (int)ncls;
    out->config = (char *)zs__malloc((size_t)clen + 1, NULL);
    out->class_name = (char **)zs__malloc(sizeof(char *) * (size_t)(ncls + 1), NULL);
    out->path = (char **)zs__malloc(sizeof(char *) * (size_t)(n + 1), NULL);
    out->label = (int32_t *)zs__malloc(sizeof(int32_t) * (size_t)(n + 1), NULL);
    out->emb = (float *)zs__malloc(sizeof(float) * (size_t)(n * dim + 1), NULL);
    rb = (unsigned char *)zs__malloc((size_t)dim * 4, NULL);
    if (out->class_name) out->class_name[0] = NULL;
    if (out->path) out->path[0] = NULL;
    if (!out->config || !out->class_name || !out->path || !out->label || !out->emb || !rb) { r = zs__fail(ZS_ERR_NOMEM, "%s: out of memory", p->who); goto fail; }
    if ((r = zs__src_read(&p->src, ZS__INDEX_HDR, out->config, (size_t)clen)) != 0) goto fail;
    out->config[clen] = 0;
    if (memchr(out->config, 0, (size_t)clen)) { r = zs__fail(ZS_ERR_FORMAT, "%s: config text contains a NUL byte", p->who); goto fail; }
    off = ZS__INDEX_HDR + clen;
    if ((r = zs__index_strings(p, &off, out->n_classes, out->class_name, NULL, 0)) != 0) goto fail;
    if ((r = zs__index_strings(p, &off, out->n, out->path, out->label, out->n_classes)) != 0) goto fail;
    if (bits) { /* ITQ mean, proj, rot */
        float *arr[3];
        uint64_t len[3], k;
        int a;
        if (off > p->src.size || p->src.size - off < itqb) { r = zs__fail(ZS_ERR_FORMAT, "%s: truncated ITQ block", p->who); goto fail; }
        if ((r = zs__itq_alloc(&out->itq, (int)dim, (int)bits)) != ZS_OK) goto fail;
        arr[0] = out->itq.mean; arr[1] = out->itq.proj; arr[2] = out->itq.rot;
        len[0] = dim; len[1] = dim * bits; len[2] = bits * bits;
        for (a = 0; a < 3; a++) {
            if ((r = zs__src_read(&p->src, off, arr[a], (size_t)len[a] * 4)) != 0) goto fail;
            for (k = 0; k < len[a]; k++) {
                uint32_t u = zs__get_le32((const unsigned char *)(arr[a] + k));
                memcpy(arr[a] + k, &u, 4);
                if (!zs__finite_d((double)arr[a][k])) { r = zs__fail(ZS_ERR_FORMAT, "%s: non-finite ITQ value", p->who); goto fail; }
            }
            off += len[a] * 4;
        }
    }
    need = n * rec;
    if (off > p->src.size || p->src.size - off != need) {
        r = zs__fail(ZS_ERR_FORMAT, "%s: %llu bytes of records, expected %llu x %llu", p->who,
                     (unsigned long long)(off > p->src.size ? 0 : p->src.size - off), (unsigned long long)n, (unsigned long long)rec);
        goto fail;
    }
    p->rec_start = off;
    p->rec = rec;
    for (i = 0; i < out->n; i++) {
        size_t k;
        float *e = out->emb + (size_t)i * dim;
        if ((r = zs__src_read(&p->src, off + (uint64_t)i * rec, rb, (size_t)dim * 4)) != 0) goto fail;
        for (k = 0; k < dim; k++) { uint32_t u = zs__get_le32(rb + 4 * k); memcpy(e + k, &u, 4); }
    }
    zs__free(rb, NULL);
    rb = NULL;
    if (bits) {
        unsigned char cb[8];
        uint64_t k;
        out->codes = (uint64_t *)zs__malloc(sizeof(uint64_t) * (size_t)(n * words + 1), NULL);
        if (!out->codes) { r = zs__fail(ZS_ERR_NOMEM, "%s: out of memory", p->who); goto fail; }
        for (i = 0; i < out->n; i++)
            for (k = 0; k < words; k++) {
                if ((r = zs__src_read(&p->src, off + (uint64_t)i * rec + dim * 4 + 8 * k, cb, 8)) != 0) goto fail;
                out->codes[(uint64_t)i * words + k] = zs__le64(cb);
            }
    }
    if (tok && n) { /* only records that fit the file bound the block (n == 0 has none) */
        p->buf = (unsigned char *)zs__malloc((size_t)(tok * tokd * es), NULL);
        if (!p->buf) { zs_index_free(out); return zs__fail(ZS_ERR_NOMEM, "zs_index_load: out of memory"); }
    }
    return ZS_OK;
fail:
    zs__free(rb, NULL);
    zs_index_free(out);
    return r;
}

ZS__FN int zs_index_tokens(zs_index *idx, int i, float *out) {
    zs__index_priv *p;
    size_t k, tn;
    if (!idx || !out || !idx->priv_) return zs__fail(ZS_ERR_ARG, "zs_index_tokens: NULL argument");
    p = (zs__index_priv *)idx->priv_;
    if (!idx->tokens) return zs__fail(ZS_ERR_STATE, "%s: the index stores no tokens (built without them)", p->who);
    if (i < 0 || i >= idx->n) return zs__fail(ZS_ERR_ARG, "zs_index_tokens: photo %d outside 0..%d", i, idx->n - 1);
    tn = (size_t)idx->tokens * (size_t)idx->token_dim;
    if (zs__src_read(&p->src, p->rec_start + (uint64_t)i * p->rec + (uint64_t)idx->dim * 4 + 8 * (uint64_t)ZS_ITQ_WORDS(idx->itq.bits), p->buf,
                     tn * (idx->token_type == ZS_F16 ? 2 : 4)))
        return ZS_ERR_FORMAT;
    for (k = 0; k < tn; k++) {
        if (idx->token_type == ZS_F16) out[k] = zs_f16_to_f32((uint16_t)(p->buf[2 * k] | (p->buf[2 * k + 1] << 8)));
        else { uint32_t u = zs__get_le32(p->buf + 4 * k); memcpy(out + k, &u, 4); }
    }
    return ZS_OK;
}

/* ---- contact sheet ---------------------------------------------------------- */

/* 3x5 digit glyphs, one row per 3 bits (MSB left) */
static const unsigned char zs__digits[10][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}};

ZS__PRIV void zs__fill_rect(zs_image *im, int x0, int y0, int w, int h, const unsigned char c[3]) {
    int x, y;
    for (y = y0 < 0 ? 0 : y0; y < y0 + h && y < im->h; y++)
        for (x = x0 < 0 ? 0 : x0; x < x0 + w && x < im->w; x++) memcpy(im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3, c, 3);
}

/* number v at (x, y), each glyph pixel s x s, on a white box */
ZS__PRIV void zs__draw_number(zs_image *im, int x, int y, int v, int s) {
    static const unsigned char white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
    char txt[16];
    int n = snprintf(txt, sizeof txt, "%d", v), i, r, b;
    zs__fill_rect(im, x, y, (4 * n + 1) * s, 7 * s, white);
    for (i = 0; i < n; i++)
        for (r = 0; r < 5; r++)
            for (b = 0; b < 3; b++)
                if (zs__digits[txt[i] - '0'][r] & (4 >> b)) zs__fill_rect(im, x + (1 + 4 * i + b) * s, y + (1 + r) * s, s, s, black);
}

/* src scaled to fit (aspect kept) into the cell at (x, y) of side `side` */
ZS__PRIV int zs__blit_fit(zs_image *dst, const zs_image *src, int x, int y, int side) {
    zs_image t;
    int w, h, r, yy;
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0) return ZS_OK; /* missing picture: leave the cell blank */
    if (src->w >= src->h) { w = side; h = (int)((int64_t)side * src->h / src->w); }
    else { h = side; w = (int)((int64_t)side * src->w / src->h); }
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if ((r = zs_image_resize_linear_cv(src, w, h, &t)) != 0) return r;
    x += (side - w) / 2;
    y += (side - h) / 2;
    for (yy = 0; yy < h; yy++) memcpy(dst->rgb + ((size_t)(y + yy) * (size_t)dst->w + (size_t)x) * 3, t.rgb + (size_t)yy * (size_t)w * 3, (size_t)w * 3);
    zs_image_free(&t);
    return ZS_OK;
}

ZS__FN int zs_contact_sheet(zs_image *out, const zs_image *query, const zs_image *items, int n, const int *mark, int cell, int cols) {
    static const unsigned char bg[3] = {240, 240, 240}, white[3] = {255, 255, 255}, blue[3] = {40, 90, 220},
                               green[3] = {30, 170, 60}, red[3] = {210, 40, 40}, grey[3] = {150, 150, 150};
    int pad, bw, rows, W, H, i, r, s;
    if (!out) return zs__fail(ZS_ERR_ARG, "zs_contact_sheet: NULL output");
    memset(out, 0, sizeof *out);
    if (!query || n < 0 || (n && !items) || cell < 16 || cell > 2048 || cols < 1 || cols > 64 || n > 4096)
        return zs__fail(ZS_ERR_ARG, "zs_contact_sheet: bad arguments (n=%d cell=%d cols=%d)", n, cell, cols);
    bw = cell / 32 + 2;      /* frame width */
    pad = bw * 3;            /* gap between cells: frames do not touch */
    s = cell / 64 + 1;       /* digit pixel size */
    rows = n ? (n + cols - 1) / cols : 1;
    W = pad + (cell + pad) + pad + cols * (cell + pad);
    H = pad + rows * (cell + pad);
    if ((r = zs_image_alloc(out, W, H)) != 0) return r;
    zs__fill_rect(out, 0, 0, W, H, bg);
    /* query, then a separator column */
    zs__fill_rect(out, pad - bw, pad - bw, cell + 2 * bw, cell + 2 * bw, blue);
    zs__fill_rect(out, pad, pad, cell, cell, white);
    if ((r = zs__blit_fit(out, query, pad, pad, cell)) != 0) { zs_image_free(out); return r; }
    for (i = 0; i < n; i++) {
        int x = 3 * pad + cell + (i % cols) * (cell + pad), y = pad + (i / cols) * (cell + pad);
        int m = mark ? mark[i] : -1;
        zs__fill_rect(out, x - bw, y - bw, cell + 2 * bw, cell + 2 * bw, m > 0 ? green : m == 0 ? red : grey);
        zs__fill_rect(out, x, y, cell, cell, white);
        if ((r = zs__blit_fit(out, &items[i], x, y, cell)) != 0) { zs_image_free(out); return r; }
        zs__draw_number(out, x, y, i + 1, s);
    }
    return ZS_OK;
}

/* ==================================================================== */
/* [impl:explain] token correspondences, pictures, synthesis            */
/* ==================================================================== */

ZS__FN void zs_explain_free(zs_explain *e) {
    if (!e) return;
    zs__free(e->mem_, NULL);
    memset(e, 0, sizeof *e);
}

ZS__FN int zs_explain_patch_box(const zs_zse_config *c, int p, int box[4]) {
    zs_zse_dims d;
    int r;
    if (!c || !box) return zs__fail(ZS_ERR_ARG, "zs_explain_patch_box: NULL argument");
    if ((r = zs_zse_config_check(c, &d)) != ZS_OK) return r;
    if (p < 0 || p >= d.patches) return zs__fail(ZS_ERR_ARG, "zs_explain_patch_box: patch %d outside 0..%d", p, d.patches - 1);
    box[0] = (p % d.grid) * c->patch;
    box[1] = (p / d.grid) * c->patch;
    box[2] = box[0] + c->patch;
    box[3] = box[1] + c->patch;
    return ZS_OK;
}

ZS__FN int zs_explain_anchor_region(const zs_zse_config *c, int a, unsigned char *mask, int box[4]) {
    zs_zse_dims d;
    unsigned char *mk;
    int r, ch, dy, dx, n = 0, p, x0, y0, x1, y1;
    if (!c) return zs__fail(ZS_ERR_ARG, "zs_explain_anchor_region: NULL config");
    if ((r = zs_zse_config_check(c, &d)) != ZS_OK) return r;
    if (a < 0 || a >= d.anchors) return zs__fail(ZS_ERR_ARG, "zs_explain_anchor_region: anchor %d outside 0..%d", a, d.anchors - 1);
    mk = mask ? mask : (unsigned char *)zs__malloc((size_t)d.patches, NULL);
    if (!mk) return zs__fail(ZS_ERR_NOMEM, "zs_explain_anchor_region: out of memory");
    memset(mk, 0, (size_t)d.patches);
    for (ch = 0; ch < c->dim; ch++)
        for (dy = 0; dy < 2; dy++)
            for (dx = 0; dx < 2; dx++) {
                /* element (ch, y, x) of the raw [d, g, g] view = flat ch*N + y*g + x of T [N, d] */
                int y = 2 * (a / d.anchor_grid) + dy, x = 2 * (a % d.anchor_grid) + dx;
                mk[((int64_t)ch * d.patches + (int64_t)y * d.grid + x) / c->dim] = 1;
            }
    x0 = y0 = d.grid;
    x1 = y1 = -1;
    for (p = 0; p < d.patches; p++) {
        if (!mk[p]) continue;
        n++;
        if (p % d.grid < x0) x0 = p % d.grid;
        if (p % d.grid > x1) x1 = p % d.grid;
        if (p / d.grid < y0) y0 = p / d.grid;
        if (p / d.grid > y1) y1 = p / d.grid;
    }
    if (!mask) zs__free(mk, NULL);
    if (box) {
        box[0] = x0 * c->patch;
        box[1] = y0 * c->patch;
        box[2] = (x1 + 1) * c->patch;
        box[3] = (y1 + 1) * c->patch;
    }
    return n;
}

/* SA as zs_zse_sa (inference), also writing the last block's attention of
   the cls query per head, cls_attn [heads, T] */
ZS__PRIV zs_tensor *zs__explain_sa(zs_ctx *ctx, zs_zse *m, zs_tensor *img, float *cls_attn) {
    const zs_zse_config *c = &m->cfg;
    int64_t D = c->dim, N = m->dims.patches, T = m->dims.tokens, h;
    zs_tensor *patch, *scale, *t, *x, *parts[2];
    int i;
    patch = zs_conv2d(ctx, img, m->embed_w, m->embed_b, c->patch, c->patch, 0, 0);       /* [1,d,g,g] */
    scale = zs_relu(ctx, zs_conv2d(ctx, img, m->scale_w[0], NULL, 2, 2, 3, 3));
    scale = zs_relu(ctx, zs_conv2d(ctx, scale, m->scale_w[1], NULL, 2, 2, 1, 1));
    scale = zs_relu(ctx, zs_conv2d(ctx, scale, m->scale_w[2], NULL, 2, 2, 1, 1));
    scale = zs_conv2d(ctx, scale, m->scale_w[3], NULL, 2, 2, 1, 1);
    t = zs_scale(ctx, zs_add(ctx, patch, scale), 0.5f);
    parts[0] = zs_reshape3(ctx, m->cls, 1, 1, D);
    parts[1] = zs_contiguous(ctx, zs_transpose(ctx, zs_reshape3(ctx, t, 1, D, N), 1, 2)); /* [1,N,d] */
    x = zs_add(ctx, zs_concat(ctx, parts, 2, 1), m->pos);                                 /* [1,T,d] */
    for (i = 0; i < c->depth && x; i++) {
        if (i == c->depth - 1) { /* the probabilities of the last block, then the block as usual */
            zs_zse_block *b = &m->blocks[i];
            float *probs = (float *)zs__arena_alloc(&ctx->arena, (size_t)(c->heads * T * T) * sizeof(float));
            zs_tensor *qkv = zs_linear(ctx, zs_layer_norm(ctx, x, b->ln1_w, b->ln1_b, 1e-5f), b->qkv_w, b->qkv_b);
            if (!probs) { zs__fail(ZS_ERR_NOMEM, "zs_explain: arena exhausted"); return zs__op_fail(ctx, ZS_ERR_NOMEM); }
            if (!zs_attention_ex(ctx, zs_slice(ctx, qkv, 2, 0, D), zs_slice(ctx, qkv, 2, D, 2 * D), zs_slice(ctx, qkv, 2, 2 * D, 3 * D),
                                 c->heads, 1.0f / sqrtf((float)(D / c->heads)), 0.0f, NULL, probs))
                return NULL;
            for (h = 0; h < c->heads; h++) memcpy(cls_attn + h * T, probs + h * T * T, (size_t)T * sizeof(float));
        }
        x = zs__zse_block(ctx, m, i, x);
    }
    return zs_layer_norm(ctx, x, m->norm_w, m->norm_b, 1e-5f);
}

/* shared argument checks of compute and heat */
ZS__PRIV int zs__explain_check(zs_zse *m, const float *sketch, const float *photo, const char *who) {
    if (!m || !sketch || !photo) return zs__fail(ZS_ERR_ARG, "%s: NULL argument", who);
    if (!m->params.data || !m->blocks) return zs__fail(ZS_ERR_STATE, "%s: model has no weights", who);
    if (zs__zse_has_evit(&m->cfg))
        return zs__fail(ZS_ERR_UNSUPPORTED, "%s: EViT keep rates < 1 remove tokens the token head needs", who);
    return ZS_OK;
}

ZS__FN int zs_explain_compute(zs_ctx *ctx, zs_zse *m, const float *sketch, const float *photo, zs_explain *e) {
    const zs_zse_dims *d;
    int64_t s4[4], T, N, D, H, CH, l;
    size_t nf;
    zs_mark mk;
    zs_tensor *xs, *xp, *ss, *sp, *so, *po, *as, *ap, *cs, *sc;
    float *f;
    int old_g, old_t, rc = ZS_OK, a;
    if (e) memset(e, 0, sizeof *e);
    if (!ctx || !e) return zs__fail(ZS_ERR_ARG, "zs_explain_compute: NULL argument");
    if ((rc = zs__explain_check(m, sketch, photo, "zs_explain_compute")) != ZS_OK) return rc;
    d = &m->dims;
    T = d->tokens; N = d->patches; D = m->cfg.dim; H = m->cfg.heads; CH = m->cfg.ca_heads;
    nf = (size_t)d->anchors * (size_t)d->anchors + (size_t)(2 * CH * T * T + 2 * H * T + 2 * N * D);
    e->mem_ = zs__malloc(nf * sizeof(float), NULL);
    if (!e->mem_) return zs__fail(ZS_ERR_NOMEM, "zs_explain_compute: out of memory (%zu floats)", nf);
    f = (float *)e->mem_;
    e->anchor_cos = f; f += (size_t)d->anchors * (size_t)d->anchors;
    e->ca_sk2ph = f; f += CH * T * T;
    e->ca_ph2sk = f; f += CH * T * T;
    e->cls_attn_sk = f; f += H * T;
    e->cls_attn_ph = f; f += H * T;
    e->tok_sk = f; f += N * D;
    e->tok_ph = f;
    e->img_size = m->cfg.img_size; e->patch = m->cfg.patch; e->grid = d->grid; e->patches = d->patches;
    e->tokens = d->tokens; e->dim = m->cfg.dim; e->anchor_grid = d->anchor_grid; e->anchors = d->anchors;
    e->heads = m->cfg.heads; e->ca_heads = m->cfg.ca_heads;
    e->anchors_whole = 1;
    for (a = 0; a < d->anchors && e->anchors_whole; a++)
        if (zs_explain_anchor_region(&m->cfg, a, NULL, NULL) != d->patches) e->anchors_whole = 0;

    mk = zs_ctx_mark(ctx);
    old_g = zs_set_grad_enabled(ctx, 0);
    old_t = zs_set_training(ctx, 0);
    s4[0] = 1; s4[1] = 3; s4[2] = m->cfg.img_size; s4[3] = m->cfg.img_size;
    xs = zs_from_data(ctx, sketch, 4, s4);
    xp = zs_from_data(ctx, photo, 4, s4);
    ss = xs ? zs__explain_sa(ctx, m, xs, e->cls_attn_sk) : NULL;
    sp = xp ? zs__explain_sa(ctx, m, xp, e->cls_attn_ph) : NULL;
    so = ss; po = sp;
    /* CA as zs_zse_ca, keeping each layer's probabilities (the last stay) */
    for (l = 0; l < m->cfg.ca_layers && so && po; l++) {
        zs_zse_ca_layer *Ls = &m->ca[0][l], *Lp = &m->ca[1][l];
        float sc_ = 1.0f / sqrtf((float)(D / CH));
        zs_tensor *qs = zs_linear(ctx, so, Ls->w[0], Ls->b[0]), *ks = zs_linear(ctx, po, Ls->w[1], Ls->b[1]);
        zs_tensor *vs = zs_linear(ctx, so, Ls->w[2], Ls->b[2]);
        zs_tensor *qp = zs_linear(ctx, po, Lp->w[0], Lp->b[0]), *kp = zs_linear(ctx, so, Lp->w[1], Lp->b[1]);
        zs_tensor *vp = zs_linear(ctx, po, Lp->w[2], Lp->b[2]), *s2, *p2;
        if (!zs_attention_ex(ctx, qs, ks, vs, (int)CH, sc_, 0.0f, NULL, e->ca_sk2ph) ||
            !zs_attention_ex(ctx, qp, kp, vp, (int)CH, sc_, 0.0f, NULL, e->ca_ph2sk)) {
            so = po = NULL;
            break;
        }
        s2 = zs__zse_ca_mix(ctx, m, Ls, qs, ks, vs, so);
        p2 = zs__zse_ca_mix(ctx, m, Lp, qp, kp, vp, po);
        so = s2;
        po = p2;
    }
    as = zs_zse_anchors(ctx, m, so);
    ap = zs_zse_anchors(ctx, m, po);
    cs = as && ap ? zs_cosine_matrix(ctx, as, ap) : NULL;                                 /* [1,n,n] */
    sc = cs ? zs_zse_rn(ctx, m, as, ap) : NULL;                                           /* [1] */
    if (!sc) {
        rc = zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE;
    } else {
        memcpy(e->anchor_cos, cs->data, (size_t)d->anchors * (size_t)d->anchors * sizeof(float));
        memcpy(e->tok_sk, (const float *)so->data + D, (size_t)(N * D) * sizeof(float));
        memcpy(e->tok_ph, (const float *)po->data + D, (size_t)(N * D) * sizeof(float));
        e->rn_score = ((const float *)sc->data)[0];
        e->ret_dist = (float)zs_zse_ret_distance((const float *)ss->data, (const float *)sp->data, (int)D);
    }
    zs_set_training(ctx, old_t);
    zs_set_grad_enabled(ctx, old_g);
    zs_ctx_release(ctx, mk);
    if (rc != ZS_OK) zs_explain_free(e);
    return rc;
}

ZS__FN int zs_explain_patch_map(const zs_explain *e, zs_explain_map_kind kind, float *map) {
    int N, D, i, j, k, h;
    if (!e || !map || !e->mem_) return zs__fail(ZS_ERR_ARG, "zs_explain_patch_map: NULL argument");
    N = e->patches;
    D = e->dim;
    if (kind == ZS_EXPLAIN_MAP_ATTN) {
        int64_t T = e->tokens;
        for (i = 0; i < N; i++)
            for (j = 0; j < N; j++) {
                double s = 0;
                for (h = 0; h < e->ca_heads; h++) s += e->ca_sk2ph[(h * T + 1 + i) * T + 1 + j];
                map[i * N + j] = (float)(s / e->ca_heads);
            }
        return ZS_OK;
    }
    if (kind != ZS_EXPLAIN_MAP_CENTRED && kind != ZS_EXPLAIN_MAP_COS)
        return zs__fail(ZS_ERR_ARG, "zs_explain_patch_map: unknown map kind %d", (int)kind);
    {
        /* centred copies (or plain) in double, then cosine; zero norm -> 0 */
        double *a = (double *)zs__malloc(sizeof(double) * (size_t)(2 * N * D + 2 * D + 2 * N), NULL);
        double *b, *ma, *mb, *na, *nb;
        if (!a) return zs__fail(ZS_ERR_NOMEM, "zs_explain_patch_map: out of memory");
        b = a + (size_t)N * D; ma = b + (size_t)N * D; mb = ma + D; na = mb + D; nb = na + N;
        for (k = 0; k < D; k++) {
            ma[k] = mb[k] = 0;
            if (kind == ZS_EXPLAIN_MAP_CENTRED)
                for (i = 0; i < N; i++) { ma[k] += e->tok_sk[(size_t)i * D + k]; mb[k] += e->tok_ph[(size_t)i * D + k]; }
            ma[k] /= N;
            mb[k] /= N;
        }
        for (i = 0; i < N; i++) {
            na[i] = nb[i] = 0;
            for (k = 0; k < D; k++) {
                double u = e->tok_sk[(size_t)i * D + k] - ma[k], v = e->tok_ph[(size_t)i * D + k] - mb[k];
                a[(size_t)i * D + k] = u;
                b[(size_t)i * D + k] = v;
                na[i] += u * u;
                nb[i] += v * v;
            }
            na[i] = sqrt(na[i]);
            nb[i] = sqrt(nb[i]);
        }
        for (i = 0; i < N; i++)
            for (j = 0; j < N; j++) {
                double s = 0;
                for (k = 0; k < D; k++) s += a[(size_t)i * D + k] * b[(size_t)j * D + k];
                map[i * N + j] = na[i] > 0 && nb[j] > 0 ? (float)(s / (na[i] * nb[j])) : 0.0f;
            }
        zs__free(a, NULL);
    }
    return ZS_OK;
}

/* gradient x input of the ret cosine or the RN score, per photo patch */
ZS__PRIV int zs__explain_grad_heat(zs_ctx *ctx, zs_zse *m, const float *sketch, const float *photo, int rn, float *heat) {
    int64_t s4[4], D = m->cfg.dim, S = m->cfg.img_size;
    int g = m->dims.grid, P = m->cfg.patch, rc = ZS_OK, x, y, ch;
    zs_mark mk = zs_ctx_mark(ctx);
    int old_g = zs_set_grad_enabled(ctx, 1), old_t = zs_set_training(ctx, 0);
    zs_tensor *xs, *xp, *ss, *sp, *target;
    s4[0] = 1; s4[1] = 3; s4[2] = S; s4[3] = S;
    xs = zs_from_data(ctx, sketch, 4, s4);
    xp = zs_from_data(ctx, photo, 4, s4);
    if (xp) zs_requires_grad(xp);
    ss = zs_zse_sa(ctx, m, xs);
    sp = zs_zse_sa(ctx, m, xp);
    if (rn) {
        target = zs_sum(ctx, zs_zse_relation(ctx, m, ss, sp, NULL));
    } else {
        zs_tensor *es = zs_l2_normalize(ctx, zs_reshape2(ctx, zs_slice(ctx, ss, 1, 0, 1), 1, D), 1e-12f);
        zs_tensor *ep = zs_l2_normalize(ctx, zs_reshape2(ctx, zs_slice(ctx, sp, 1, 0, 1), 1, D), 1e-12f);
        target = zs_sum(ctx, zs_mul(ctx, es, ep));
    }
    if (!target || (rc = zs_backward(ctx, target)) != ZS_OK || !xp->grad) {
        if (rc == ZS_OK) rc = zs_ctx_status(ctx) ? zs_ctx_status(ctx) : ZS_ERR_STATE;
    } else {
        const float *gr = xp->grad, *in = (const float *)xp->data;
        double *acc = (double *)zs__malloc(sizeof(double) * (size_t)g * (size_t)g, NULL);
        if (!acc) {
            rc = zs__fail(ZS_ERR_NOMEM, "zs_explain_heat: out of memory");
        } else {
            memset(acc, 0, sizeof(double) * (size_t)g * (size_t)g);
            for (ch = 0; ch < 3; ch++)
                for (y = 0; y < g * P; y++)
                    for (x = 0; x < g * P; x++) acc[(y / P) * g + x / P] += (double)gr[(ch * S + y) * S + x] * in[(ch * S + y) * S + x];
            for (x = 0; x < g * g; x++) heat[x] = (float)acc[x];
            zs__free(acc, NULL);
        }
    }
    zs_set_training(ctx, old_t);
    zs_set_grad_enabled(ctx, old_g);
    zs_ctx_release(ctx, mk);
    return rc;
}

ZS__FN int zs_explain_heat(zs_ctx *ctx, zs_zse *m, const float *sketch, const float *photo, const zs_explain *e,
                           const float *map, zs_explain_heat_kind kind, float *heat) {
    int i, j, h, N, r;
    if (!heat) return zs__fail(ZS_ERR_ARG, "zs_explain_heat: NULL output");
    if (kind == ZS_EXPLAIN_HEAT_RET || kind == ZS_EXPLAIN_HEAT_RN) {
        if (!ctx) return zs__fail(ZS_ERR_ARG, "zs_explain_heat: NULL context");
        if ((r = zs__explain_check(m, sketch, photo, "zs_explain_heat")) != ZS_OK) return r;
        if (e && (e->grid != m->dims.grid || e->dim != m->cfg.dim))
            return zs__fail(ZS_ERR_SHAPE, "zs_explain_heat: the explanation (grid %d, dim %d) is not of this model (grid %d, dim %d)",
                            e->grid, e->dim, m->dims.grid, m->cfg.dim);
        return zs__explain_grad_heat(ctx, m, sketch, photo, kind == ZS_EXPLAIN_HEAT_RN, heat);
    }
    if (!e || !e->mem_) return zs__fail(ZS_ERR_ARG, "zs_explain_heat: this heat kind needs a computed zs_explain");
    N = e->patches;
    if (kind == ZS_EXPLAIN_HEAT_ATTN) {
        int64_t T = e->tokens;
        for (j = 0; j < N; j++) {
            double s = 0;
            for (h = 0; h < e->ca_heads; h++)
                for (i = 0; i < N; i++) s += e->ca_sk2ph[(h * T + 1 + i) * T + 1 + j];
            heat[j] = (float)(s / ((double)e->ca_heads * N));
        }
    } else if (kind == ZS_EXPLAIN_HEAT_CLS) {
        for (j = 0; j < N; j++) {
            double s = 0;
            for (h = 0; h < e->heads; h++) s += e->cls_attn_ph[(size_t)h * e->tokens + 1 + j];
            heat[j] = (float)(s / e->heads);
        }
    } else if (kind == ZS_EXPLAIN_HEAT_MATCH) {
        if (!map) return zs__fail(ZS_ERR_ARG, "zs_explain_heat: MATCH needs a map");
        for (j = 0; j < N; j++) {
            float b = -INFINITY;
            for (i = 0; i < N; i++)
                if (map[i * N + j] > b) b = map[i * N + j];
            heat[j] = b;
        }
    } else {
        return zs__fail(ZS_ERR_ARG, "zs_explain_heat: unknown heat kind %d", (int)kind);
    }
    return ZS_OK;
}

/* argmax of n floats (first on ties, NaN never wins); -1 if all NaN */
ZS__PRIV int zs__explain_argmax(const float *v, int n) {
    int j, best = -1;
    for (j = 0; j < n; j++)
        if (!zs__isnan_bits(v[j]) && (best < 0 || v[j] > v[best])) best = j;
    return best;
}

ZS__PRIV int zs__explain_pair_cmp(const void *pa, const void *pb) {
    const zs_explain_pair *a = (const zs_explain_pair *)pa, *b = (const zs_explain_pair *)pb;
    if (a->value != b->value) return a->value > b->value ? -1 : 1;
    return a->sk < b->sk ? -1 : a->sk > b->sk;
}

ZS__FN int zs_explain_top_pairs(const float *map, int rows, int cols, const unsigned char *row_mask, int n, zs_explain_pair *out) {
    zs_explain_pair *all;
    int i, k = 0;
    if (!map || !out) return zs__fail(ZS_ERR_ARG, "zs_explain_top_pairs: NULL argument");
    if (rows < 1 || cols < 1) return zs__fail(ZS_ERR_ARG, "zs_explain_top_pairs: empty map (%d x %d)", rows, cols);
    if (n < 1 || n > rows) return zs__fail(ZS_ERR_ARG, "zs_explain_top_pairs: asked for %d pairs, need 1..%d (one per row)", n, rows);
    all = (zs_explain_pair *)zs__malloc(sizeof *all * (size_t)rows, NULL);
    if (!all) return zs__fail(ZS_ERR_NOMEM, "zs_explain_top_pairs: out of memory");
    for (i = 0; i < rows; i++) {
        int j;
        if (row_mask && !row_mask[i]) continue;
        if ((j = zs__explain_argmax(map + (size_t)i * (size_t)cols, cols)) < 0) continue;
        all[k].sk = i;
        all[k].ph = j;
        all[k++].value = map[(size_t)i * (size_t)cols + (size_t)j];
    }
    qsort(all, (size_t)k, sizeof *all, zs__explain_pair_cmp);
    if (k > n) k = n;
    memcpy(out, all, sizeof *all * (size_t)k);
    zs__free(all, NULL);
    return k;
}

ZS__FN int zs_explain_ink_mask(const zs_image *im, int grid, unsigned char *mask) {
    int r, x, y, n = 0, cx, cy;
    if (!mask) return zs__fail(ZS_ERR_ARG, "zs_explain_ink_mask: NULL mask");
    if ((r = zs__image_check(im, "zs_explain_ink_mask")) != 0) return r;
    if (grid < 1 || grid > im->w || grid > im->h)
        return zs__fail(ZS_ERR_ARG, "zs_explain_ink_mask: grid %d does not fit a %dx%d image", grid, im->w, im->h);
    for (cy = 0; cy < grid; cy++)
        for (cx = 0; cx < grid; cx++) {
            int x0 = (int)((int64_t)cx * im->w / grid), x1 = (int)((int64_t)(cx + 1) * im->w / grid);
            int y0 = (int)((int64_t)cy * im->h / grid), y1 = (int)((int64_t)(cy + 1) * im->h / grid);
            int64_t ink = 0, need = (int64_t)(x1 - x0) * (y1 - y0) / 64;
            for (y = y0; y < y1; y++)
                for (x = x0; x < x1; x++) {
                    const unsigned char *p = im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
                    ink += p[0] + p[1] + p[2] <= 300;
                }
            mask[cy * grid + cx] = (unsigned char)(ink >= (need > 1 ? need : 1));
            n += mask[cy * grid + cx];
        }
    return n;
}

/* ---- drawing ------------------------------------------------------------- */

/* 5x7 glyphs for ASCII 32..126: 5 columns, bit r = row r from the top
   (row 7 holds descenders) */
static const unsigned char zs__font5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00}, {0x14, 0x7F, 0x14, 0x7F, 0x14},
    {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62}, {0x36, 0x49, 0x56, 0x20, 0x50}, {0x00, 0x08, 0x07, 0x03, 0x00},
    {0x00, 0x1C, 0x22, 0x41, 0x00}, {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x2A, 0x1C, 0x7F, 0x1C, 0x2A}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x80, 0x70, 0x30, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x00, 0x60, 0x60, 0x00}, {0x20, 0x10, 0x08, 0x04, 0x02},
    {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00}, {0x72, 0x49, 0x49, 0x49, 0x46}, {0x21, 0x41, 0x49, 0x4D, 0x33},
    {0x18, 0x14, 0x12, 0x7F, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x31}, {0x41, 0x21, 0x11, 0x09, 0x07},
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x46, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x00, 0x14, 0x00, 0x00}, {0x00, 0x40, 0x34, 0x00, 0x00},
    {0x00, 0x08, 0x14, 0x22, 0x41}, {0x14, 0x14, 0x14, 0x14, 0x14}, {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x59, 0x09, 0x06},
    {0x3E, 0x41, 0x5D, 0x59, 0x4E}, {0x7C, 0x12, 0x11, 0x12, 0x7C}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x41, 0x3E}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01}, {0x3E, 0x41, 0x41, 0x51, 0x73},
    {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00}, {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41},
    {0x7F, 0x40, 0x40, 0x40, 0x40}, {0x7F, 0x02, 0x1C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46}, {0x26, 0x49, 0x49, 0x49, 0x32},
    {0x03, 0x01, 0x7F, 0x01, 0x03}, {0x3F, 0x40, 0x40, 0x40, 0x3F}, {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F},
    {0x63, 0x14, 0x08, 0x14, 0x63}, {0x03, 0x04, 0x78, 0x04, 0x03}, {0x61, 0x59, 0x49, 0x4D, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x41},
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x41, 0x7F}, {0x04, 0x02, 0x01, 0x02, 0x04}, {0x40, 0x40, 0x40, 0x40, 0x40},
    {0x00, 0x03, 0x07, 0x08, 0x00}, {0x20, 0x54, 0x54, 0x78, 0x40}, {0x7F, 0x28, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x28},
    {0x38, 0x44, 0x44, 0x28, 0x7F}, {0x38, 0x54, 0x54, 0x54, 0x18}, {0x00, 0x08, 0x7E, 0x09, 0x02}, {0x18, 0xA4, 0xA4, 0x9C, 0x78},
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x40, 0x3D, 0x00}, {0x7F, 0x10, 0x28, 0x44, 0x00},
    {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x78, 0x04, 0x78}, {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38},
    {0xFC, 0x18, 0x24, 0x24, 0x18}, {0x18, 0x24, 0x24, 0x18, 0xFC}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x24},
    {0x04, 0x04, 0x3F, 0x44, 0x24}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C}, {0x3C, 0x40, 0x30, 0x40, 0x3C},
    {0x44, 0x28, 0x10, 0x28, 0x44}, {0x4C, 0x90, 0x90, 0x90, 0x7C}, {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00},
    {0x00, 0x00, 0x77, 0x00, 0x00}, {0x00, 0x41, 0x36, 0x08, 0x00}, {0x02, 0x01, 0x02, 0x04, 0x02}};

ZS__FN int zs_explain_text(zs_image *im, int x, int y, const char *s, int scale, const unsigned char rgb[3]) {
    int x0 = x, col, row;
    if (!im || !im->rgb || !s || !rgb || scale < 1) return 0;
    for (; *s; s++, x += 6 * scale) {
        unsigned char c = (unsigned char)*s;
        const unsigned char *g = zs__font5x7[(c < 32 || c > 126 ? '?' : c) - 32];
        for (col = 0; col < 5; col++)
            for (row = 0; row < 8; row++)
                if (g[col] >> row & 1) zs__fill_rect(im, x + col * scale, y + row * scale, scale, scale, rgb);
    }
    return x - x0;
}

/* outline of thickness t inside the box [x0,x1) x [y0,y1) */
ZS__PRIV void zs__explain_frame(zs_image *im, int x0, int y0, int x1, int y1, int t, const unsigned char c[3]) {
    zs__fill_rect(im, x0, y0, x1 - x0, t, c);
    zs__fill_rect(im, x0, y1 - t, x1 - x0, t, c);
    zs__fill_rect(im, x0, y0, t, y1 - y0, c);
    zs__fill_rect(im, x1 - t, y0, t, y1 - y0, c);
}

/* Bresenham line stamped with a t x t square */
ZS__PRIV void zs__explain_line(zs_image *im, int x0, int y0, int x1, int y1, int t, const unsigned char c[3]) {
    int dx = x1 > x0 ? x1 - x0 : x0 - x1, dy = y1 > y0 ? y0 - y1 : y1 - y0;
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        int e2 = 2 * err;
        zs__fill_rect(im, x0 - t / 2, y0 - t / 2, t, t, c);
        if (x0 == x1 && y0 == y1) break;
        if (e2 >= dy) { err += dy; x0 += sx; }
        if (e2 <= dx) { err += dx; y0 += sy; }
    }
}

/* colour map (blue - cyan - yellow - red) of v in 0..65535 */
ZS__PRIV void zs__explain_cmap(int v, unsigned char out[3]) {
    static const int stop[6][3] = {{0, 0, 143}, {0, 0, 255}, {0, 255, 255}, {255, 255, 0}, {255, 0, 0}, {128, 0, 0}};
    static const int at[6] = {0, 8192, 24576, 40960, 57344, 65536};
    int k = 0, c;
    if (v < 0) v = 0;
    if (v > 65535) v = 65535;
    while (k < 4 && v >= at[k + 1]) k++;
    for (c = 0; c < 3; c++) {
        int64_t span = at[k + 1] - at[k], f = v - at[k];
        out[c] = (unsigned char)((stop[k][c] * (span - f) + stop[k + 1][c] * f + span / 2) / span);
    }
}

ZS__PRIV int zs__explain_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* heat [n] -> 0..65535 over the 5th..95th percentile of the finite values
   (one outlier patch would otherwise take the whole colour range); a
   constant heat maps to the middle, non-finite values to 0 */
ZS__PRIV int zs__explain_quantise(const float *heat, int n, int *q) {
    double *v = (double *)zs__malloc(sizeof(double) * (size_t)n, NULL), lo, hi;
    int i, k = 0;
    if (!v) return zs__fail(ZS_ERR_NOMEM, "zs_explain_render: out of memory");
    for (i = 0; i < n; i++)
        if (!zs__isnan_bits(heat[i]) && heat[i] - heat[i] == 0) v[k++] = heat[i];
    qsort(v, (size_t)k, sizeof *v, zs__explain_cmp_double);
    lo = k ? v[(k - 1) * 5 / 100] : 0;
    hi = k ? v[(k - 1) * 95 / 100] : 0;
    zs__free(v, NULL);
    for (i = 0; i < n; i++) {
        double x = heat[i];
        if (zs__isnan_bits(heat[i]) || x - x != 0) q[i] = 0;
        else if (hi > lo) q[i] = x <= lo ? 0 : x >= hi ? 65535 : (int)((x - lo) / (hi - lo) * 65535.0 + 0.5);
        else q[i] = 32768;
    }
    return ZS_OK;
}

/* photo blended with the bilinearly interpolated heat (cell centres), into dst at (ox, oy) */
ZS__PRIV void zs__explain_heat_panel(zs_image *dst, int ox, int oy, const zs_image *photo, int g, const int *q) {
    int W = photo->w, x, y, c;
    for (y = 0; y < W; y++) {
        /* position in cells, 8-bit fraction: ((y + 0.5) g / W - 0.5) * 256 */
        int64_t vy = ((int64_t)(2 * y + 1) * g * 256) / (2 * W) - 128;
        int64_t cy0, fy;
        if (vy < 0) vy = 0;
        if (vy > (int64_t)(g - 1) * 256) vy = (int64_t)(g - 1) * 256;
        cy0 = vy >> 8; fy = vy & 255;
        for (x = 0; x < W; x++) {
            int64_t vx = ((int64_t)(2 * x + 1) * g * 256) / (2 * W) - 128, cx0, fx, cx1, cy1, v;
            unsigned char col[3];
            const unsigned char *s = photo->rgb + ((size_t)y * (size_t)W + (size_t)x) * 3;
            unsigned char *d = dst->rgb + ((size_t)(oy + y) * (size_t)dst->w + (size_t)(ox + x)) * 3;
            if (vx < 0) vx = 0;
            if (vx > (int64_t)(g - 1) * 256) vx = (int64_t)(g - 1) * 256;
            cx0 = vx >> 8; fx = vx & 255;
            cx1 = cx0 + 1 < g ? cx0 + 1 : cx0;
            cy1 = cy0 + 1 < g ? cy0 + 1 : cy0;
            v = ((q[cy0 * g + cx0] * (256 - fx) + q[cy0 * g + cx1] * fx) * (256 - fy) +
                 (q[cy1 * g + cx0] * (256 - fx) + q[cy1 * g + cx1] * fx) * fy + 32768) >> 16;
            zs__explain_cmap((int)v, col);
            for (c = 0; c < 3; c++) d[c] = (unsigned char)((s[c] * 115 + col[c] * 141 + 128) >> 8);
        }
    }
}

ZS__PRIV void zs__explain_blit(zs_image *dst, int ox, int oy, const zs_image *src) {
    int y;
    for (y = 0; y < src->h; y++)
        memcpy(dst->rgb + ((size_t)(oy + y) * (size_t)dst->w + (size_t)ox) * 3, src->rgb + (size_t)y * (size_t)src->w * 3,
               (size_t)src->w * 3);
}

ZS__FN int zs_explain_render(zs_image *out, const zs_image *sketch, const zs_image *photo, const zs_explain_view *v) {
    static const unsigned char pal[12][3] = {{230, 25, 75}, {60, 180, 75}, {0, 130, 200}, {245, 130, 48}, {145, 30, 180}, {70, 200, 220},
                                             {240, 50, 230}, {170, 200, 30}, {0, 128, 128}, {170, 110, 40}, {128, 0, 0}, {0, 0, 128}};
    static const unsigned char white[3] = {255, 255, 255}, black[3] = {0, 0, 0}, grey[3] = {90, 90, 90};
    int W, g, pad = 8, gap, title_h = 14, bar_h, cap_h = 0, X[3], Y, width, height, i, k, r, t, y;
    int *q = NULL;
    if (out) memset(out, 0, sizeof *out);
    if (!out || !v) return zs__fail(ZS_ERR_ARG, "zs_explain_render: NULL argument");
    if ((r = zs__image_check(sketch, "zs_explain_render")) != 0 || (r = zs__image_check(photo, "zs_explain_render")) != 0) return r;
    W = sketch->w;
    g = v->grid;
    if (sketch->h != W || photo->w != W || photo->h != W)
        return zs__fail(ZS_ERR_SHAPE, "zs_explain_render: sketch %dx%d and photo %dx%d must be square and of one size", sketch->w,
                        sketch->h, photo->w, photo->h);
    if (W > 4096) return zs__fail(ZS_ERR_ARG, "zs_explain_render: panels of %d px (at most 4096)", W);
    if (g < 1 || g > W) return zs__fail(ZS_ERR_ARG, "zs_explain_render: grid %d does not fit %d px panels", g, W);
    if (v->n_pairs < 0 || v->n_pairs > 256 || (v->n_pairs && !v->pairs))
        return zs__fail(ZS_ERR_ARG, "zs_explain_render: %d pairs (0..256, and a pair array)", v->n_pairs);
    for (k = 0; k < v->n_pairs; k++)
        if (v->pairs[k].sk < 0 || v->pairs[k].sk >= g * g || v->pairs[k].ph < 0 || v->pairs[k].ph >= g * g)
            return zs__fail(ZS_ERR_ARG, "zs_explain_render: pair %d (%d, %d) outside the %dx%d grid", k, v->pairs[k].sk, v->pairs[k].ph, g, g);
    gap = W / 6 > pad ? W / 6 : pad;
    bar_h = v->heat ? 24 : 0;
    for (i = 0; i < 4; i++)
        if (v->caption[i]) cap_h += i == 0 ? 22 : 11;
    X[0] = pad;
    X[1] = X[0] + W + gap;
    X[2] = X[1] + W + 2 * pad;
    Y = pad + title_h;
    width = (v->heat ? X[2] + W : X[1] + W) + pad;
    height = Y + W + bar_h + (cap_h ? cap_h + 6 : 0) + pad;
    if ((r = zs_image_alloc(out, width, height)) != 0) return r;
    zs__fill_rect(out, 0, 0, width, height, white);
    for (i = 0; i < 3; i++)
        if (v->title[i] && (i < 2 || v->heat)) zs_explain_text(out, X[i], pad, v->title[i], 1, black);
    zs__explain_blit(out, X[0], Y, sketch);
    zs__explain_blit(out, X[1], Y, photo);
    if (v->heat) {
        q = (int *)zs__malloc(sizeof(int) * (size_t)g * (size_t)g, NULL);
        if (!q || (r = zs__explain_quantise(v->heat, g * g, q)) != ZS_OK) {
            zs__free(q, NULL);
            zs_image_free(out);
            return q ? r : zs__fail(ZS_ERR_NOMEM, "zs_explain_render: out of memory");
        }
        zs__explain_heat_panel(out, X[2], Y, photo, g, q);
        /* colour bar under the heat panel */
        {
            int bx0 = X[2] + 30, bx1 = X[2] + W - 36, by = Y + W + 8, x;
            zs_explain_text(out, X[2], by, "low", 1, grey);
            zs_explain_text(out, bx1 + 4, by, "high", 1, grey);
            for (x = bx0; x < bx1; x++) {
                unsigned char col[3];
                zs__explain_cmap((int)((int64_t)(x - bx0) * 65535 / (bx1 - bx0 > 1 ? bx1 - bx0 - 1 : 1)), col);
                zs__fill_rect(out, x, by, 1, 8, col);
            }
        }
        zs__free(q, NULL);
    }
    /* pairs: outlines, then lines, weakest first so the strongest end on top */
    t = W >= 160 ? 2 : 1;
    for (k = v->n_pairs - 1; k >= 0; k--)
        for (i = 0; i < 2; i++) {
            int c = i ? v->pairs[k].ph : v->pairs[k].sk, cx = c % g, cy = c / g;
            zs__explain_frame(out, X[i] + cx * W / g, Y + cy * W / g, X[i] + (cx + 1) * W / g, Y + (cy + 1) * W / g, t, pal[k % 12]);
        }
    for (k = v->n_pairs - 1; k >= 0; k--) {
        int a = v->pairs[k].sk, b = v->pairs[k].ph;
        int ax = X[0] + ((2 * (a % g) + 1) * W) / (2 * g), ay = Y + ((2 * (a / g) + 1) * W) / (2 * g);
        int bx = X[1] + ((2 * (b % g) + 1) * W) / (2 * g), by = Y + ((2 * (b / g) + 1) * W) / (2 * g);
        zs__explain_line(out, ax, ay, bx, by, t, pal[k % 12]);
    }
    y = Y + W + bar_h + 6;
    for (i = 0; i < 4; i++)
        if (v->caption[i]) {
            zs_explain_text(out, pad, y, v->caption[i], i == 0 ? 2 : 1, i == 0 ? black : grey);
            y += i == 0 ? 22 : 11;
        }
    return ZS_OK;
}

/* feather weight of offset t in [-b, P+b) of a cell of P pixels: 1..2b */
ZS__PRIV int64_t zs__explain_feather(int t, int P, int b) {
    int d = t + b < P + b - 1 - t ? t + b : P + b - 1 - t;
    return d + 1 < 2 * b ? d + 1 : 2 * b;
}

ZS__FN int zs_explain_synthesize(zs_image *out, const zs_image *photo, int grid, const float *map, int blend, int *match) {
    int W, P, N, i, r, x, y, c;
    int *mt;
    if (out) memset(out, 0, sizeof *out);
    if (!out || !map) return zs__fail(ZS_ERR_ARG, "zs_explain_synthesize: NULL argument");
    if ((r = zs__image_check(photo, "zs_explain_synthesize")) != 0) return r;
    W = photo->w;
    if (photo->h != W || grid < 1 || grid > W || W % grid)
        return zs__fail(ZS_ERR_SHAPE, "zs_explain_synthesize: the photo (%dx%d) must be square with a side that is a multiple of grid %d",
                        photo->w, photo->h, grid);
    P = W / grid;
    N = grid * grid;
    if (blend < 0 || blend > P / 2) return zs__fail(ZS_ERR_ARG, "zs_explain_synthesize: blend %d outside 0..%d (half a cell)", blend, P / 2);
    mt = (int *)zs__malloc(sizeof(int) * (size_t)N, NULL);
    if (!mt) return zs__fail(ZS_ERR_NOMEM, "zs_explain_synthesize: out of memory");
    for (i = 0; i < N; i++) {
        int j = zs__explain_argmax(map + (size_t)i * (size_t)N, N);
        mt[i] = j < 0 ? i : j;
    }
    if ((r = zs_image_alloc(out, W, W)) != 0) { zs__free(mt, NULL); return r; }
    for (y = 0; y < W; y++)
        for (x = 0; x < W; x++) {
            unsigned char *d = out->rgb + ((size_t)y * (size_t)W + (size_t)x) * 3;
            if (!blend) {
                int m = mt[(y / P) * grid + x / P];
                const unsigned char *s = photo->rgb + ((size_t)((m / grid) * P + y % P) * (size_t)W + (size_t)((m % grid) * P + x % P)) * 3;
                memcpy(d, s, 3);
            } else {
                /* every cell whose extended box [c P - b, (c+1) P + b) holds (x, y) */
                int64_t acc[3] = {0, 0, 0}, wsum = 0;
                int cx, cy;
                for (cy = y / P - 1; cy <= y / P + 1; cy++)
                    for (cx = x / P - 1; cx <= x / P + 1; cx++) {
                        int tx = x - cx * P, ty = y - cy * P, m, sx, sy;
                        int64_t w;
                        const unsigned char *s;
                        if (cx < 0 || cy < 0 || cx >= grid || cy >= grid || tx < -blend || ty < -blend || tx >= P + blend || ty >= P + blend)
                            continue;
                        w = zs__explain_feather(tx, P, blend) * zs__explain_feather(ty, P, blend);
                        m = mt[cy * grid + cx];
                        sx = (m % grid) * P + tx;
                        sy = (m / grid) * P + ty;
                        sx = sx < 0 ? 0 : sx >= W ? W - 1 : sx;
                        sy = sy < 0 ? 0 : sy >= W ? W - 1 : sy;
                        s = photo->rgb + ((size_t)sy * (size_t)W + (size_t)sx) * 3;
                        for (c = 0; c < 3; c++) acc[c] += w * s[c];
                        wsum += w;
                    }
                for (c = 0; c < 3; c++) d[c] = (unsigned char)((acc[c] + wsum / 2) / wsum);
            }
        }
    if (match) memcpy(match, mt, sizeof(int) * (size_t)N);
    zs__free(mt, NULL);
    return ZS_OK;
}
#endif /* ZSESBIR_IMPLEMENTATION_DONE */
#endif /* ZSESBIR_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
LICENCE (MIT)
Copyright (c) 2026 the zsesbir authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
