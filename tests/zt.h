/* zt.h - the tiny test framework of zsesbir's tests.

   Each tests/test_*.c is its own program:
       #define ZSESBIR_IMPLEMENTATION
       #include "../zsesbir.h"
       #include "zt.h"
       static void test_foo(void) { ZT_CHECK(1 + 1 == 2, "arithmetic"); }
       int main(int argc, char **argv) { ZT_RUN(test_foo); return zt_finish(); }
   It prints "PASS name" / "FAIL name: why" / "SKIP name: why" per test and a
   final line "N passed, N failed[, N skipped]"; tests/run.sh sums the programs.
   A test may be selected by passing its name as argv[1] (zt_select). */
#ifndef ZT_H
#define ZT_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ZT__UNUSED ZS__MAYBE_UNUSED
static int zt_passed, zt_failed, zt_skipped;
static int zt_cur_failed, zt_cur_skipped;
static char zt_cur_why[2048];
static const char *zt_only;

#define ZT_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond)) {                                                       \
            if (!zt_cur_failed) {                                            \
                int zt_n_ = snprintf(zt_cur_why, sizeof zt_cur_why, "%s:%d: ", __FILE__, __LINE__); \
                snprintf(zt_cur_why + zt_n_, sizeof zt_cur_why - (size_t)zt_n_, __VA_ARGS__); \
            }                                                                \
            zt_cur_failed = 1;                                               \
        }                                                                    \
    } while (0)

/* stop the current test early when a check fails */
#define ZT_REQUIRE(cond, ...)                                                \
    do {                                                                     \
        ZT_CHECK(cond, __VA_ARGS__);                                         \
        if (zt_cur_failed) return;                                           \
    } while (0)

#define ZT_SKIP(...)                                                         \
    do {                                                                     \
        snprintf(zt_cur_why, sizeof zt_cur_why, __VA_ARGS__);                \
        zt_cur_skipped = 1;                                                  \
        return;                                                              \
    } while (0)

static ZT__UNUSED void zt_run_one(const char *name, void (*fn)(void)) {
    clock_t t0;
    double ms;
    if (zt_only && strcmp(zt_only, name)) return;
    zt_cur_failed = zt_cur_skipped = 0;
    zt_cur_why[0] = 0;
    t0 = clock();
    fn();
    ms = 1000.0 * (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (zt_cur_failed) { zt_failed++; printf("FAIL %s: %s\n", name, zt_cur_why); }
    else if (zt_cur_skipped) { zt_skipped++; printf("SKIP %s: %s\n", name, zt_cur_why); }
    else { zt_passed++; printf("PASS %s (%.0f ms cpu)\n", name, ms); }
    fflush(stdout);
}
#define ZT_RUN(fn) zt_run_one(#fn, fn)

static ZT__UNUSED void zt_select(int argc, char **argv) { zt_only = argc > 1 ? argv[1] : NULL; }

static ZT__UNUSED int zt_finish(void) {
    if (zt_skipped) printf("%d passed, %d failed, %d skipped\n", zt_passed, zt_failed, zt_skipped);
    else printf("%d passed, %d failed\n", zt_passed, zt_failed);
    return zt_failed ? 1 : 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* deterministic pseudo-random float in [-1,1) from (seed, i) */
/* Whole file into a malloc'd buffer (+1 byte, NUL-terminated); NULL if unreadable. */
static ZT__UNUSED unsigned char *zt_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    long sz;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = (unsigned char *)malloc((size_t)sz + 1)) != NULL) {
        if (fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
        else { b[sz] = 0; *n = (size_t)sz; }
    }
    fclose(f);
    return b;
}

/* NaN test by bits: isnan() and x != x are folded to "false" under -ffast-math. */
static ZT__UNUSED int zt_isnan(double x) {
    unsigned long long u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL && (u & 0x000fffffffffffffULL) != 0;
}

static ZT__UNUSED float zt_rand(unsigned long long seed, unsigned long long i) {
    unsigned long long z = seed * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static ZT__UNUSED void zt_fill(float *p, long long n, unsigned long long seed, float scale) {
    long long i;
    for (i = 0; i < n; i++) p[i] = scale * zt_rand(seed, (unsigned long long)i);
}

/* arena tensor with random values in [-scale, scale), requires grad */
static ZT__UNUSED zs_tensor *zt_input(zs_ctx *ctx, int ndim, const long long *shape, unsigned long long seed, float scale) {
    int64_t s[4];
    int i;
    zs_tensor *t;
    for (i = 0; i < ndim; i++) s[i] = (int64_t)shape[i];
    t = zs_tensor_new(ctx, ZS_F32, ndim, s);
    if (!t) return NULL;
    zt_fill((float *)t->data, zs_numel(t), seed, scale);
    zs_requires_grad(t);
    return t;
}
#ifdef __cplusplus
#define ZT_SHAPE(...) (std::initializer_list<long long>{__VA_ARGS__}).begin()
#include <initializer_list>
#else
#define ZT_SHAPE(...) ((const long long[]){__VA_ARGS__})
#endif

/* max |a-b| / max(1, |b|) over n values */
static ZT__UNUSED double zt_max_rel(const float *a, const float *b, long long n) {
    double m = 0;
    long long i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), s = fabs((double)b[i]);
        double r = d / (s > 1.0 ? s : 1.0);
        if (r > m || r != r) m = r;
    }
    return m;
}

/* ---- gradient check ----------------------------------------------------- */
/* loss = sum_i out_i * r_i with r a fixed random tensor, so d loss / d out = r
   and every output element contributes with a different weight. The forward
   sum is accumulated in double. */
static ZT__UNUSED int zt__dot_bwd(zs_ctx *ctx, zs_tensor *out) {
    zs_tensor *a = out->src[0];
    float *ga = zs__grad(ctx, a);
    const float *r = (const float *)out->saved;
    int64_t i, n = zs_numel(a);
    if (zs__needs_grad(a) && !ga) return ZS_ERR_NOMEM;
    for (i = 0; ga && i < n; i++) ga[i] += r[i] * out->grad[0];
    return ZS_OK;
}

static ZT__UNUSED zs_tensor *zt_dot_random(zs_ctx *ctx, zs_tensor *a, unsigned long long seed) {
    zs_tensor *out, *ac;
    float *r;
    double s = 0;
    int64_t i, n;
    if (!a) return NULL;
    ac = zs_contiguous(ctx, a);
    if (!ac) return NULL;
    n = zs_numel(ac);
    out = zs__op_new(ctx, "zt_dot", zt__dot_bwd, 0, NULL, ac, NULL, NULL, NULL);
    if (!out) return NULL;
    r = (float *)zs__arena_alloc(&ctx->arena, (size_t)(n ? n : 1) * 4);
    if (!r) return NULL;
    for (i = 0; i < n; i++) {
        r[i] = zt_rand(seed, (unsigned long long)i);
        s += (double)((float *)ac->data)[i] * r[i];
    }
    out->saved = r;
    ((float *)out->data)[0] = (float)s;
    return out;
}

/* f builds the op's output (any shape) from the inputs. */
typedef zs_tensor *(*zt_build_fn)(zs_ctx *ctx, zs_tensor **in, void *user);

/* Compares zs_backward's gradient of every input with central differences
   (f(x+h) - f(x-h)) / 2h, h = 1e-2 * max(1, |x|), over every element (or a
   deterministic sample of max_checks elements per input when larger).
   Pass when |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
   The RNG is reseeded before every forward so dropout masks repeat.
   Returns 1 on pass; on failure fills why. */
static ZT__UNUSED int zt_gradcheck(zs_ctx *ctx, zt_build_fn f, zs_tensor **in, int n_in, void *user,
                        double rtol, double atol, int max_checks, char *why, size_t why_cap) {
    const unsigned long long seed = 1234567;
    zs_mark m0;
    zs_tensor *out, *loss;
    float **analytic;
    int i, ok = 1;
    analytic = (float **)calloc((size_t)n_in, sizeof(float *));
    for (i = 0; i < n_in; i++) {
        if (in[i]->grad && !(in[i]->flags & ZS_FLAG_PARAM)) in[i]->grad = NULL;
        if (in[i]->flags & ZS_FLAG_PARAM) memset(in[i]->grad, 0, (size_t)zs_numel(in[i]) * 4);
    }
    m0 = zs_ctx_mark(ctx);
    zs_ctx_seed(ctx, 99);
    out = f(ctx, in, user);
    loss = zt_dot_random(ctx, out, seed);
    if (!loss || zs_backward(ctx, loss) != ZS_OK) {
        snprintf(why, why_cap, "forward/backward failed: %.300s", zs_last_error());
        free(analytic);
        return 0;
    }
    for (i = 0; i < n_in; i++) {
        int64_t n = zs_numel(in[i]);
        analytic[i] = (float *)malloc((size_t)(n ? n : 1) * 4);
        if (in[i]->grad) memcpy(analytic[i], in[i]->grad, (size_t)n * 4);
        else memset(analytic[i], 0, (size_t)n * 4);
    }
    zs_ctx_release(ctx, m0);
    {
        int old = zs_set_grad_enabled(ctx, 0);
        for (i = 0; i < n_in && ok; i++) {
            float *x = (float *)in[i]->data;
            int64_t n = zs_numel(in[i]), k, step = 1, cnt = 0;
            if (max_checks > 0 && n > max_checks) step = n / max_checks + 1;
            for (k = (step > 1 ? (int64_t)(zt_rand(7, (unsigned long long)i) * 0.5f + 0.5f) % step : 0); k < n; k += step) {
                float x0 = x[k], h = 1e-2f * (fabsf(x0) > 1.0f ? fabsf(x0) : 1.0f);
                double fp, fm, num, an, err;
                zs_mark m = zs_ctx_mark(ctx);
                x[k] = x0 + h; zs_ctx_seed(ctx, 99);
                fp = (double)((float *)zt_dot_random(ctx, f(ctx, in, user), seed)->data)[0];
                zs_ctx_release(ctx, m);
                x[k] = x0 - h; zs_ctx_seed(ctx, 99);
                fm = (double)((float *)zt_dot_random(ctx, f(ctx, in, user), seed)->data)[0];
                zs_ctx_release(ctx, m);
                x[k] = x0;
                num = (fp - fm) / (2.0 * (double)h);
                an = analytic[i][k];
                err = fabs(an - num);
                if (!(err <= atol + rtol * (fabs(an) > fabs(num) ? fabs(an) : fabs(num)))) {
                    snprintf(why, why_cap, "input %d element %lld: analytic %.6g numeric %.6g (err %.3g)",
                             i, (long long)k, an, num, err);
                    ok = 0;
                    break;
                }
                cnt++;
            }
            (void)cnt;
        }
        zs_set_grad_enabled(ctx, old);
    }
    for (i = 0; i < n_in; i++) free(analytic[i]);
    free(analytic);
    return ok;
}

/* Convenience: run zt_gradcheck and turn the result into a test check. */
#define ZT_GRADCHECK(ctx, f, in, n_in, user, rtol, atol, max_checks)         \
    do {                                                                     \
        char zt_why_[480];                                                   \
        int zt_ok_ = zt_gradcheck(ctx, f, in, n_in, user, rtol, atol, max_checks, zt_why_, sizeof zt_why_); \
        ZT_CHECK(zt_ok_, "gradcheck %s: %.400s", #f, zt_why_);                   \
    } while (0)

#endif
