/* tcn_bench.c - ResNet-50 forward parity at 224x224 ([impl:tcn] of zsesbir.h)
   and timings against PyTorch (make parity / make bench-tcn run these).

     python3 tools/tcn_ref.py --full build/tcn_full     # weights, one image, outputs
     build/tcn_bench --parity build/tcn_full            # max |diff| of features / logits;
                                                        # exit 1 above 1e-4 scale-relative
     build/tcn_bench --bench [reps]                     # forward batch 1, 8 and 32, 2 threads
     build/tcn_bench --train [reps] [pairs]             # one TCN training step (ResNet-50
                                                        # encoders + frozen ResNet-50 teacher)
     python3 tools/tcn_ref.py --bench                   # PyTorch, torch.set_num_threads(2)
   tools/bench_tcn.sh runs both back to back and prints medians and ratios.

   Not part of the test suite (the weights are ~100 MB). */
#define _POSIX_C_SOURCE 200809L
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double worst_rel;

static void report(const char *what, const float *c, const float *r, int64_t n) {
    double md = 0, s = 0;
    int64_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)c[i] - (double)r[i]);
        if (d > md) md = d;
        if (fabs((double)r[i]) > s) s = fabs((double)r[i]);
    }
    printf("%-9s n=%-6lld max |diff| %.3g, scale %.4g, scale-relative %.3g\n", what, (long long)n, md, s, md / (s > 0 ? s : 1));
    if (md / (s > 0 ? s : 1) > worst_rel) worst_rel = md / (s > 0 ? s : 1);
}

static int parity(const char *dir) {
    char p1[512], p2[512];
    zs_resnet r;
    zs_safetensors *io;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_tensor *x, *f, *lo;
    const zs_st_info *ti, *tf, *tl;
    float *ref;
    snprintf(p1, sizeof p1, "%s/resnet50.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/resnet50_io.safetensors", dir);
    if (zs_resnet_load(&r, p1, "", 0) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
    io = zs_st_open(p2);
    if (!io) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
    ti = zs_st_find(io, "input"); tf = zs_st_find(io, "features"); tl = zs_st_find(io, "logits");
    if (!ti || !tf || !tl) { fprintf(stderr, "%s: missing tensors\n", p2); return 1; }
    cp.n_threads = 2;
    ctx = zs_ctx_create(&cp);
    zs_set_training(ctx, 0);
    zs_set_grad_enabled(ctx, 0);
    x = zs_tensor_new(ctx, ZS_F32, 4, ti->shape);
    zs_st_read(io, ti, x->data, ZS_F32, (size_t)ti->numel);
    f = zs_resnet_features(ctx, &r, x);
    lo = f ? zs_linear(ctx, f, r.fc_w, r.fc_b) : NULL;
    if (!lo) { fprintf(stderr, "forward: %s\n", zs_last_error()); return 1; }
    ref = (float *)malloc((size_t)tl->numel * 4 + (size_t)tf->numel * 4);
    zs_st_read(io, tf, ref, ZS_F32, (size_t)tf->numel);
    report("features", (const float *)f->data, ref, tf->numel);
    zs_st_read(io, tl, ref, ZS_F32, (size_t)tl->numel);
    report("logits", (const float *)lo->data, ref, tl->numel);
    printf("arena peak %.1f MB\n", (double)zs_ctx_arena_peak(ctx) / 1048576.0);
    free(ref);
    zs_st_close(io);
    zs_ctx_free(ctx);
    zs_resnet_free(&r);
    printf("%s: worst scale-relative difference %.3g (limit 1e-4)\n", worst_rel <= 1e-4 ? "PASS" : "FAIL", worst_rel);
    return worst_rel <= 1e-4 ? 0 : 1;
}

static int bench(int reps) {
    zs_resnet r;
    zs_resnet_config c;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    int bi, k;
    static const int Bs[3] = {1, 8, 32};
    double *t = (double *)malloc(sizeof(double) * (size_t)reps);
    zs_resnet_config_named(&c, "resnet50");
    if (zs_resnet_init(&r, &c, 0, 1) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
    cp.n_threads = 2;
    ctx = zs_ctx_create(&cp);
    zs_set_training(ctx, 0);
    zs_set_grad_enabled(ctx, 0);
    for (bi = 0; bi < 3; bi++) {
        int64_t sh[4];
        zs_tensor *x;
        sh[0] = Bs[bi]; sh[1] = 3; sh[2] = 224; sh[3] = 224;
        x = zs_tensor_new(ctx, ZS_F32, 4, sh);
        zs_tensor_fill_uniform(ctx, x, -2, 2);
        for (k = -1; k < reps; k++) { /* one warm-up */
            zs_mark mk = zs_ctx_mark(ctx);
            double t0 = now_ms();
            zs_tensor *y = zs_resnet_forward(ctx, &r, x);
            double dt = now_ms() - t0;
            if (!y) { fprintf(stderr, "forward: %s\n", zs_last_error()); return 1; }
            if (k >= 0) t[k] = dt;
            zs_ctx_release(ctx, mk);
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_d);
        printf("{\"impl\": \"zsesbir\", \"threads\": 2, \"batch\": %d, \"median_ms\": %.1f, \"ms_per_image\": %.1f, \"reps\": %d}\n", Bs[bi],
               t[reps / 2], t[reps / 2] / Bs[bi], reps);
    }
    printf("arena peak %.1f MB\n", (double)zs_ctx_arena_peak(ctx) / 1048576.0);
    free(t);
    zs_ctx_free(ctx);
    zs_resnet_free(&r);
    return 0;
}

/* peak resident set size of this process (MB), from /proc */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) v = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    return v;
}

/* One TCN training step as the release runs it: ResNet-50 sketch and photo
   encoders, D 64 head, 100 classes, frozen ResNet-50 teacher (KD term on),
   share + semantic losses, backward, Adam; `pairs` sketch/photo pairs at 224. */
static int train_bench(int reps, int pairs) {
    zs_tcn_config c = zs_tcn_config_default();
    zs_tcn m;
    zs_resnet teacher;
    zs_resnet_config tc;
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_optim *opt;
    zs_tcn_batch b;
    zs_tcn_losses L;
    int64_t sh[4];
    int32_t *lab = (int32_t *)malloc(sizeof(int32_t) * (size_t)pairs);
    float *wv = (float *)malloc(sizeof(float) * 300 * (size_t)pairs);
    double *t = (double *)malloc(sizeof(double) * (size_t)reps);
    int i, k;
    zs_resnet_config_named(&tc, "resnet50");
    if (zs_tcn_init(&m, &c, 1, 1) != ZS_OK || zs_resnet_init(&teacher, &tc, 0, 2) != ZS_OK) { fprintf(stderr, "%s\n", zs_last_error()); return 1; }
    m.teacher = &teacher;
    cp.n_threads = 2;
    ctx = zs_ctx_create(&cp);
    opt = zs_tcn_optim_create(&m, 1e-4f);
    if (!ctx || !opt || !lab || !wv || !t) { fprintf(stderr, "setup: %s\n", zs_last_error()); return 1; }
    for (i = 0; i < pairs; i++) lab[i] = i % 4;
    for (i = 0; i < 300 * pairs; i++) wv[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    sh[0] = pairs; sh[1] = 3; sh[2] = 224; sh[3] = 224;
    for (k = -1; k < reps; k++) { /* one warm-up */
        zs_mark mk = zs_ctx_mark(ctx);
        double t0;
        memset(&b, 0, sizeof b);
        b.sketch = zs_tensor_new(ctx, ZS_F32, 4, sh);
        b.photo = zs_tensor_new(ctx, ZS_F32, 4, sh);
        zs_tensor_fill_uniform(ctx, b.sketch, -2, 2);
        zs_tensor_fill_uniform(ctx, b.photo, -2, 2);
        b.labels = lab;
        b.wordvec = wv;
        t0 = now_ms();
        if (zs_tcn_train_step(ctx, &m, opt, &b, &L) != ZS_OK) { fprintf(stderr, "step: %s\n", zs_last_error()); return 1; }
        if (k >= 0) t[k] = now_ms() - t0;
        zs_ctx_release(ctx, mk);
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_d);
    printf("part=train pairs=%d median_s=%.3f reps=%d arena_peak_mb=%.0f peak_rss_mb=%.0f loss=%.4f\n", pairs, t[reps / 2] / 1e3, reps,
           (double)zs_ctx_arena_peak(ctx) / 1048576.0, peak_rss_mb(), (double)L.total);
    free(t); free(lab); free(wv);
    zs_optim_free(opt);
    zs_ctx_free(ctx);
    zs_resnet_free(&teacher);
    zs_tcn_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--parity")) return parity(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "--bench")) return bench(argc >= 3 ? atoi(argv[2]) > 0 ? atoi(argv[2]) : 5 : 5);
    if (argc >= 2 && !strcmp(argv[1], "--train"))
        return train_bench(argc >= 3 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 3, argc >= 4 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 4);
    fprintf(stderr, "usage: %s --parity DIR | --bench [reps] | --train [reps] [pairs]\n", argv[0]);
    return 2;
}
