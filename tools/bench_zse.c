/* bench_zse - ZSE-SBIR speed and memory at the released config (random weights).

     ./build/bench_zse --part sa1|sa8|pair|pair-nocache|train|train-ckpt [--threads T] [--reps N]

   Prints one line "part=<p> median=<seconds> unit=<u> peak_rss_mb=<MB>".
   Each part should run in its own process so peak RSS belongs to that part;
   tools/bench_zse.sh runs every part and PyTorch (tools/zsesbir_ref.py
   --bench) in the same session and prints the comparison table. */
#define _POSIX_C_SOURCE 200809L
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
    const char *part = "sa1";
    int threads = 2, reps = 5, i, r;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_zse m;
    zs_zse_config c = zs_zse_config_default();
    double t[64], res = 0;
    const char *unit = "s";
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--part") && i + 1 < argc) part = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s --part sa1|sa8|pair|pair-nocache|train|train-ckpt [--threads T] [--reps N]\n", argv[0]); return 2; }
    }
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    cp.n_threads = threads;
    ctx = zs_ctx_create(&cp);
    if (!ctx) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
    if (zs_zse_init(&m, &c, !strncmp(part, "train", 5), 1) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }

    if (!strcmp(part, "sa1") || !strcmp(part, "sa8")) {
        int B = part[2] == '1' ? 1 : 8;
        zs_tensor *img = zs_f32_4d(ctx, B, 3, 224, 224);
        zs_tensor_fill_uniform(ctx, img, -1, 1);
        zs_set_grad_enabled(ctx, 0);
        for (r = 0; r <= reps; r++) { /* first run warms up */
            zs_mark mk = zs_ctx_mark(ctx);
            double t0 = now();
            if (!zs_zse_sa(ctx, &m, img)) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
            if (r) t[r - 1] = (now() - t0) / B;
            zs_ctx_release(ctx, mk);
        }
        res = median(t, reps);
        unit = "s/image";
    } else if (!strcmp(part, "pair") || !strcmp(part, "pair-nocache")) {
        /* one sketch against P photos from stored SA outputs */
        enum { P = 16 };
        zs_tensor *img = zs_f32_4d(ctx, P + 1, 3, 224, 224), *sa;
        size_t cf = zs_zse_cache_floats(&m), T = (size_t)m.dims.tokens * 768;
        float *cache = (float *)malloc(cf * (P + 1) * sizeof(float)), scores[P];
        const float *pc[P];
        zs_tensor_fill_uniform(ctx, img, -1, 1);
        zs_set_grad_enabled(ctx, 0);
        sa = zs_zse_sa(ctx, &m, img);
        if (!sa || !cache) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
        for (i = 0; i <= P; i++) zs_zse_cache(ctx, &m, (const float *)sa->data + i * T, i == 0, cache + cf * i);
        for (i = 0; i < P; i++) pc[i] = cache + cf * (i + 1);
        for (r = 0; r <= reps; r++) {
            zs_mark mk = zs_ctx_mark(ctx);
            double t0 = now();
            if (!strcmp(part, "pair")) {
                if (zs_zse_score_cached(ctx, &m, cache, pc, P, scores) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
            } else {
                int32_t idx[P];
                zs_tensor *sk, *ph;
                for (i = 0; i < P; i++) idx[i] = 0;
                sk = zs_reshape3(ctx, zs_gather(ctx, zs_reshape2(ctx, sa, P + 1, (int64_t)T), idx, P), P, m.dims.tokens, 768);
                ph = zs_slice(ctx, sa, 0, 1, P + 1);
                if (!zs_zse_relation(ctx, &m, sk, ph, NULL)) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
            }
            if (r) t[r - 1] = (now() - t0) / P;
            zs_ctx_release(ctx, mk);
        }
        free(cache);
        res = median(t, reps);
        unit = "s/pair";
    } else if (!strcmp(part, "train") || !strcmp(part, "train-ckpt")) {
        /* one SPEC 1.5 step at B=2 (8 images): forward, backward, AdamW */
        zs_optim_params op = zs_optim_default_params(ZS_OPTIM_ADAMW);
        zs_optim *opt;
        op.lr = 1e-5f;
        op.weight_decay = 1e-2f;
        opt = zs_optim_create(&op, &m.params, NULL);
        m.checkpoint = !strcmp(part, "train-ckpt");
        zs_set_training(ctx, 1);
        if (reps > 3) reps = 3;
        for (r = 0; r <= reps; r++) {
            zs_tensor *img, *loss;
            double t0 = now();
            img = zs_f32_4d(ctx, 8, 3, 224, 224);
            zs_tensor_fill_uniform(ctx, img, -1, 1);
            zs_params_zero_grad(&m.params);
            loss = zs_zse_train_loss(ctx, &m, img, NULL);
            if (!loss || zs_backward(ctx, loss) != ZS_OK || zs_optim_step_ctx(opt, ctx) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
            if (r) t[r - 1] = now() - t0;
            zs_ctx_reset(ctx);
        }
        zs_optim_free(opt);
        res = median(t, reps);
        unit = "s/step_of_8_images";
    } else {
        fprintf(stderr, "unknown part %s\n", part);
        return 2;
    }
    printf("part=%s median=%.4f unit=%s peak_rss_mb=%.0f threads=%d\n", part, res, unit, peak_rss_mb(), threads);
    zs_zse_free(&m);
    zs_ctx_free(ctx);
    return 0;
}
