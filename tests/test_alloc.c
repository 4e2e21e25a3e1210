/* The allocator override: ZS_MALLOC/ZS_FREE receive every allocation with
   the user pointer, and everything is returned by the matching free calls. */
#include <stdlib.h>
#include <stddef.h>
typedef struct counting { long long live, total; } counting;
static void *count_malloc(size_t n, void *u) {
    counting *c = (counting *)u;
    if (!c) return NULL; /* every call must carry the user pointer */
    c->live++;
    c->total++;
    return malloc(n);
}
static void count_free(void *p, void *u) {
    counting *c = (counting *)u;
    if (c && p) c->live--;
    free(p);
}
#define ZS_MALLOC(sz, u) count_malloc(sz, u)
#define ZS_FREE(p, u) count_free(p, u)
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

static void test_alloc_balanced(void) {
    counting cnt = {0, 0};
    zs_ctx_params p = zs_ctx_default_params();
    zs_ctx *ctx;
    zs_params ps;
    int64_t s[2] = {8, 8};
    int i;
    p.alloc_user = &cnt;
    p.n_threads = 2;
    p.arena_bytes = 1 << 12;
    ctx = zs_ctx_create(&p);
    ZT_REQUIRE(ctx != NULL, "create: %s", zs_last_error());
    zs_params_init(&ps, &cnt);
    zs_params_add(&ps, "w", 2, s);
    ZT_REQUIRE(zs_params_alloc(&ps) == ZS_OK, "params");
    for (i = 0; i < 20; i++) {
        zs_tensor *x = zs_f32_2d(ctx, 64, 8);
        zs_tensor_fill(x, 0.5f);
        zs_tensor_fill(&ps.t[0], 0.1f);
        ZT_REQUIRE(zs_linear(ctx, x, &ps.t[0], NULL) != NULL, "linear");
        zs_ctx_reset(ctx);
    }
    ZT_CHECK(cnt.total > 3, "allocations went through the override (%lld)", cnt.total);
    ZT_CHECK(zs_ctx_set_threads(ctx, 3) == ZS_OK, "resize pool");
    zs_params_free(&ps);
    zs_ctx_free(ctx);
    ZT_CHECK(cnt.live == 0, "%lld allocations not freed", cnt.live);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_alloc_balanced);
    return zt_finish();
}
