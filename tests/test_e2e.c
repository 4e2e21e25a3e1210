/* End-to-end learning: a 2-layer MLP and a small CNN must each cut their
   training loss by at least 10x on a toy task, with 1 and 2 threads giving
   bit-identical parameters. */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

/* ---- MLP: 4 Gaussian blobs in 2-D, cross-entropy -------------------------- */
static float mlp_train(int threads, int steps, float *final_params, size_t n_params_cap, float *first_loss) {
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_params ps;
    zs_optim_params op = zs_optim_default_params(ZS_OPTIM_ADAM);
    zs_optim *opt;
    int64_t s_w1[2] = {32, 2}, s_b1[1] = {32}, s_w2[2] = {4, 32}, s_b2[1] = {4};
    zs_tensor *w1, *b1, *w2, *b2;
    int step, i;
    float last = 0;
    const int B = 64;
    static const float centres[4][2] = {{1.5f, 1.5f}, {-1.5f, 1.5f}, {-1.5f, -1.5f}, {1.5f, -1.5f}};
    cp.n_threads = threads;
    ctx = zs_ctx_create(&cp);
    zs_params_init(&ps, NULL);
    zs_params_add(&ps, "w1", 2, s_w1);
    zs_params_add(&ps, "b1", 1, s_b1);
    zs_params_add(&ps, "w2", 2, s_w2);
    zs_params_add(&ps, "b2", 1, s_b2);
    if (zs_params_alloc(&ps) != ZS_OK) return -1;
    w1 = &ps.t[0]; b1 = &ps.t[1]; w2 = &ps.t[2]; b2 = &ps.t[3];
    zs_tensor_fill_normal(ctx, w1, 0, 0.5f);
    zs_tensor_fill_normal(ctx, w2, 0, 0.2f);
    op.lr = 0.02f;
    opt = zs_optim_create(&op, &ps, NULL);
    for (step = 0; step < steps; step++) {
        zs_tensor *x = zs_f32_2d(ctx, B, 2), *logits, *loss;
        int32_t labels[64];
        for (i = 0; i < B; i++) {
            int c = (int)((zt_rand(step, (unsigned long long)i) + 1.0f) * 2.0f) & 3;
            labels[i] = c;
            ((float *)x->data)[2 * i] = centres[c][0] + 0.5f * zt_rand(step + 1000, (unsigned long long)i);
            ((float *)x->data)[2 * i + 1] = centres[c][1] + 0.5f * zt_rand(step + 2000, (unsigned long long)i);
        }
        logits = zs_linear(ctx, zs_relu(ctx, zs_linear(ctx, x, w1, b1)), w2, b2);
        loss = zs_cross_entropy(ctx, logits, labels);
        zs_params_zero_grad(&ps);
        if (!loss || zs_backward(ctx, loss) != ZS_OK || zs_optim_step(opt) != ZS_OK) { last = -1; break; }
        last = ((float *)loss->data)[0];
        if (step == 0) *first_loss = last;
        zs_ctx_reset(ctx);
    }
    if (final_params && ps.numel <= n_params_cap) memcpy(final_params, ps.data, ps.numel * 4);
    zs_optim_free(opt);
    zs_params_free(&ps);
    zs_ctx_free(ctx);
    return last;
}

static void test_e2e_mlp(void) {
    float p1[512], p2[512], first = 0, last1, last2;
    last1 = mlp_train(1, 150, p1, 512, &first);
    ZT_REQUIRE(last1 >= 0, "training failed: %s", zs_last_error());
    printf("  MLP cross-entropy %.4f -> %.4f\n", (double)first, (double)last1);
    ZT_CHECK(last1 * 10 <= first, "loss fell only %.4f -> %.4f", (double)first, (double)last1);
    last2 = mlp_train(2, 150, p2, 512, &first);
    ZT_CHECK(last1 == last2 && !memcmp(p1, p2, (32 * 2 + 32 + 4 * 32 + 4) * 4), "1 and 2 threads differ");
}

/* ---- CNN: classify 9x9 patterns (horizontal bars, vertical bars, checker, ring) */
static void make_pattern(float *img, int cls, unsigned long long seed) {
    int x, y, off = (int)((zt_rand(seed, 0) + 1.0f) * 1.5f);
    for (y = 0; y < 9; y++)
        for (x = 0; x < 9; x++) {
            float v = 0;
            switch (cls) {
            case 0: v = ((y + off) % 3) == 0; break;
            case 1: v = ((x + off) % 3) == 0; break;
            case 2: v = ((x + y + off) & 1); break;
            default: { int dx = x - 4, dy = y - 4, d2 = dx * dx + dy * dy; v = d2 >= 6 && d2 <= 12; } break;
            }
            img[y * 9 + x] = v + 0.3f * zt_rand(seed, (unsigned long long)(1 + y * 9 + x));
        }
}

static float cnn_train(int threads, int steps, float *first_loss, float *params_out, size_t cap, size_t *n_out) {
    zs_ctx_params cp = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_params ps;
    zs_optim_params op = zs_optim_default_params(ZS_OPTIM_ADAMW);
    zs_optim *opt;
    int64_t s_c1[4] = {8, 1, 3, 3}, s_c2[4] = {16, 8, 3, 3}, s_g[1] = {8}, s_fc[2] = {4, 16}, s_fb[1] = {4};
    zs_tensor rm, rv, *c1, *c2, *g, *bb, *fc, *fb;
    float rmean[8] = {0}, rvar[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    int step, i;
    float last = 0;
    const int B = 32;
    cp.n_threads = threads;
    ctx = zs_ctx_create(&cp);
    zs_params_init(&ps, NULL);
    zs_params_add(&ps, "c1", 4, s_c1);
    zs_params_add(&ps, "bn.w", 1, s_g);
    zs_params_add(&ps, "bn.b", 1, s_g);
    zs_params_add(&ps, "c2", 4, s_c2);
    zs_params_add(&ps, "fc.w", 2, s_fc);
    zs_params_add(&ps, "fc.b", 1, s_fb);
    if (zs_params_alloc(&ps) != ZS_OK) return -1;
    c1 = &ps.t[0]; g = &ps.t[1]; bb = &ps.t[2]; c2 = &ps.t[3]; fc = &ps.t[4]; fb = &ps.t[5];
    zs_tensor_wrap(&rm, ZS_F32, 1, s_g, rmean);
    zs_tensor_wrap(&rv, ZS_F32, 1, s_g, rvar);
    zs_tensor_fill_normal(ctx, c1, 0, 0.47f);
    zs_tensor_fill_normal(ctx, c2, 0, 0.17f);
    zs_tensor_fill_normal(ctx, fc, 0, 0.25f);
    zs_tensor_fill(g, 1.0f);
    op.lr = 0.01f;
    opt = zs_optim_create(&op, &ps, NULL);
    zs_set_training(ctx, 1);
    for (step = 0; step < steps; step++) {
        zs_tensor *x = zs_f32_4d(ctx, B, 1, 9, 9), *h, *loss;
        int32_t labels[32];
        for (i = 0; i < B; i++) {
            labels[i] = i & 3;
            make_pattern((float *)x->data + i * 81, i & 3, (unsigned long long)(step * 64 + i));
        }
        h = zs_conv2d(ctx, x, c1, NULL, 1, 1, 1, 1);                         /* [B,8,9,9] */
        h = zs_relu(ctx, zs_batch_norm(ctx, h, g, bb, &rm, &rv, 0.1f, 1e-5f));
        h = zs_max_pool2d(ctx, h, 3, 2, 1);                                  /* [B,8,5,5] */
        h = zs_relu(ctx, zs_conv2d(ctx, h, c2, NULL, 2, 2, 1, 1));           /* [B,16,3,3] */
        h = zs_linear(ctx, zs_avg_pool_global(ctx, h), fc, fb);              /* [B,4] */
        loss = zs_cross_entropy(ctx, h, labels);
        zs_params_zero_grad(&ps);
        if (!loss || zs_backward(ctx, loss) != ZS_OK || zs_optim_step(opt) != ZS_OK) { last = -1; break; }
        last = ((float *)loss->data)[0];
        if (step == 0) *first_loss = last;
        zs_ctx_reset(ctx);
    }
    if (params_out && ps.numel <= cap) { memcpy(params_out, ps.data, ps.numel * 4); *n_out = ps.numel; }
    zs_optim_free(opt);
    zs_params_free(&ps);
    zs_ctx_free(ctx);
    return last;
}

static void test_e2e_cnn(void) {
    float first = 0, last, last2, p1[2048], p2[2048];
    size_t n1 = 0, n2 = 0;
    last = cnn_train(1, 200, &first, p1, 2048, &n1);
    ZT_REQUIRE(last >= 0, "training failed: %s", zs_last_error());
    printf("  CNN cross-entropy %.4f -> %.4f\n", (double)first, (double)last);
    ZT_CHECK(last * 10 <= first, "loss fell only %.4f -> %.4f", (double)first, (double)last);
    last2 = cnn_train(2, 200, &first, p2, 2048, &n2);
    ZT_CHECK(n1 == n2 && last == last2 && !memcmp(p1, p2, n1 * 4), "1 and 2 threads differ");
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_e2e_mlp);
    ZT_RUN(test_e2e_cnn);
    return zt_finish();
}
