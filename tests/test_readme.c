/* The README's quick-start snippet, compiled and run so the docs never go
   stale. Keep the snippet identical to README.md (indentation aside). */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

static void test_readme_snippet(void) {
    int ok;
    /* ---- begin README snippet ---- */
    zs_ctx_params cp = zs_ctx_default_params();
    cp.n_threads = 2;
    zs_ctx *ctx = zs_ctx_create(&cp);               /* NULL + zs_last_error() on failure */

    zs_params ps;                                   /* all parameters in one allocation */
    int64_t wshape[2] = {5, 3};
    zs_params_init(&ps, NULL);
    zs_params_add(&ps, "fc.weight", 2, wshape);
    zs_params_alloc(&ps);
    zs_tensor *w = zs_params_find(&ps, "fc.weight");
    zs_tensor_fill_normal(ctx, w, 0.0f, 0.1f);

    zs_tensor *x = zs_f32_2d(ctx, 4, 3);            /* arena tensor [4,3] */
    zs_tensor_fill(x, 1.0f);
    zs_tensor *y = zs_relu(ctx, zs_linear(ctx, x, w, NULL));      /* [4,5] */
    zs_tensor *loss = zs_mean(ctx, y);
    if (!loss || zs_backward(ctx, loss) != ZS_OK)   /* grads accumulate into w->grad */
        fprintf(stderr, "error: %s\n", zs_last_error());
    /* ---- end README snippet (the cleanup lines follow after the checks) ---- */
    ok = loss != NULL && y->shape[0] == 4 && y->shape[1] == 5;
    {
        /* d mean(relu(x w^T)) / dw[o][i] = sum_rows [y>0] x / 20 = 4/20 when active */
        int o, i, good = 1;
        for (o = 0; o < 5; o++) {
            int active = ((float *)y->data)[o] > 0;
            for (i = 0; i < 3; i++) good &= fabsf(w->grad[o * 3 + i] - (active ? 0.2f : 0.0f)) < 1e-6f;
        }
        ZT_CHECK(good, "gradient of the README example");
    }
    ZT_CHECK(ok, "README example ran: %s", zs_last_error());
    zs_ctx_reset(ctx);                              /* drop the tape and arena tensors */
    zs_params_free(&ps);
    zs_ctx_free(ctx);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_readme_snippet);
    return zt_finish();
}
