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
      ZSESBIR_NO_THREADS    no POSIX threads; everything runs on the caller
      ZS_MAX_THREADS        upper bound of the thread pool (default 64)

   TABLE OF CONTENTS (search for the banner text)
      API
        [api:base]       status codes, errors, types, half precision
        [api:ctx]        context, arena marks, training/grad modes
        [api:tensor]     tensors, views, parameters
        [api:ops]        differentiable ops
        [api:autodiff]   backward
        [api:optim]      SGD, Adam, AdamW
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
        [impl:attn]      fused multi-head attention kernels
        [impl:views]     reshape, transpose, slice, concat, gather, matmul
        [impl:elem]      elementwise, reductions, activations, norms
        [impl:conv]      conv2d, pooling, batch norm
        [impl:loss]      distances and losses
        [impl:optim]     optimisers
      LICENCE
*/
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
    char name[64];
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
ZSDEF int64_t zs_optim_steps(const zs_optim *o);

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

typedef struct zs__pool {
    int nth;
    zs__arena ws[ZS_MAX_THREADS];
#ifndef ZSESBIR_NO_THREADS
    pthread_t th[ZS_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    zs__task_fn fn;
    void *arg;
    unsigned long gen;
    int pending;
    int quit;
    int started;
#endif
} zs__pool;

static ZS__TLS zs__arena *zs__tls_ws; /* set while a thread runs a task */

#ifndef ZSESBIR_NO_THREADS
typedef struct zs__worker_arg { zs__pool *p; int ith; } zs__worker_arg;
static ZS__TLS int zs__tls_dummy;

ZS__PRIV void *zs__worker(void *varg) {
    zs__pool *p = ((zs__worker_arg *)varg)->p;
    int ith = ((zs__worker_arg *)varg)->ith;
    unsigned long seen = 0;
    zs__free(varg, p->ws[0].user);
    (void)zs__tls_dummy;
    for (;;) {
        zs__task_fn fn;
        void *arg;
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->cv_go, &p->mu);
        if (p->quit) { pthread_mutex_unlock(&p->mu); break; }
        seen = p->gen;
        fn = p->fn;
        arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        zs__tls_ws = &p->ws[ith];
        fn(arg, ith, p->nth, &p->ws[ith]);
        zs__tls_ws = NULL;
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}
#endif

ZS__PRIV void zs__pool_shutdown(zs__pool *p) {
    int i;
#ifndef ZSESBIR_NO_THREADS
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->nth - 1;
    p->gen++;
    pthread_cond_broadcast(&p->cv_go);
    pthread_mutex_unlock(&p->mu);
    zs__tls_ws = &p->ws[0];
    fn(arg, 0, p->nth, &p->ws[0]);
    zs__tls_ws = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
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

ZS__FN void zs_ctx_free(zs_ctx *ctx) {
    if (!ctx) return;
    zs__pool_shutdown(&ctx->pool);
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
    if (!t) return;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
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

/* Gradient buffer of t (allocated zeroed on first use), or NULL when t does
   not want a gradient. Parameters bring their own buffers. */
ZS__PRIV float *zs__grad(zs_ctx *ctx, zs_tensor *t) {
    if (!zs__needs_grad(t)) return NULL;
    if (!t->grad) {
        size_t bytes = (size_t)zs_numel(t) * sizeof(float);
        t->grad = (float *)zs__arena_calloc(&ctx->arena, bytes);
        if (!t->grad) zs__fail(ZS_ERR_NOMEM, "arena exhausted allocating a %zu-byte gradient", bytes);
    }
    return t->grad;
}

/* Backward helpers report a failed gradient allocation through this. */
#define ZS__GRAD_OR_FAIL(g, ctx, t)                                          \
    do {                                                                     \
        (g) = zs__grad(ctx, t);                                              \
        if (zs__needs_grad(t) && !(g)) return ZS_ERR_NOMEM;                  \
    } while (0)

ZS__FN int zs_backward(zs_ctx *ctx, zs_tensor *loss) {
    zs_tensor *t;
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
    for (t = ctx->tape; t; t = t->tape_prev) {
        if (!t->grad || !t->backward) continue;
        rc = t->backward(ctx, t);
        if (rc != ZS_OK) break;
    }
    /* drop intermediate gradients so a second backward starts clean */
    for (t = ctx->tape; t; t = t->tape_prev)
        if (!(t->flags & ZS_FLAG_PARAM)) t->grad = NULL;
    return rc;
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

/* IMPLEMENTATION CONTINUES: kernels and ops */
#include "dev/parts.h"

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
