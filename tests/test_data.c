/* Retrieval metrics (SPEC section 4) and dataset indexing ([impl:data] in zsesbir.h):
   hand-worked rankings, a numpy golden case (tools/metrics_ref.py), directory
   trees written under build/, the real Sketchy subset when present, and
   corrupt list files (each must fail with a message naming the line). */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

#ifndef _WIN32
#include <sys/stat.h>
#include <sys/types.h>
#endif

static int near(double a, double b, double tol) {
    if (a != a || b != b) return a != a && b != b;
    return fabs(a - b) <= tol * (fabs(b) > 1.0 ? fabs(b) : 1.0);
}

/* ---- metrics: single ranked lists ----------------------------------------- */
static void test_data_ap_hand(void) {
    /* rel = 1 0 1 0 0, P = 2: prec at the hits 1/1, 2/3 (already monotone)
       AP = 1/2 * 1 + 1/2 * 2/3 = 0.8333... */
    static const int8_t a[] = {1, 0, 1, 0, 0};
    /* rel = 0 1 0 1 1, P = 3: prec at the hits 1/2, 2/4, 3/5; monotone from the
       right: 3/5, 3/5, 3/5 -> AP = 0.6 (without the envelope it would be 0.5333) */
    static const int8_t b[] = {0, 1, 0, 1, 1};
    /* all relevant first: AP = 1 */
    static const int8_t c[] = {1, 1, 0, 0};
    /* relevant last: 1 hit at rank 4 -> AP = 1/4 */
    static const int8_t d[] = {0, 0, 0, 1};
    /* P = 4 but only 2 retrieved (hits at 1 and 3): (1 + 2/3) / 4 = 0.41666... */
    static const int8_t e[] = {1, 0, 1};
    ZT_CHECK(near(zs_average_precision(a, 5, 2), 5.0 / 6.0, 1e-15), "a: %.17g", zs_average_precision(a, 5, 2));
    ZT_CHECK(near(zs_average_precision(b, 5, 3), 0.6, 1e-15), "b: %.17g", zs_average_precision(b, 5, 3));
    ZT_CHECK(zs_average_precision(c, 4, 2) == 1.0, "c: %.17g", zs_average_precision(c, 4, 2));
    ZT_CHECK(near(zs_average_precision(d, 4, 1), 0.25, 1e-15), "d: %.17g", zs_average_precision(d, 4, 1));
    ZT_CHECK(near(zs_average_precision(e, 3, 4), 5.0 / 12.0, 1e-15), "e: %.17g", zs_average_precision(e, 3, 4));
    ZT_CHECK(zt_isnan(zs_average_precision(a, 5, 0)), "P = 0 must be NaN");
}

static void test_data_rank_ties(void) {
    static const float row[] = {0.3f, 0.1f, 0.5f, 0.3f, 0.9f, 0.1f};
    static const int32_t want[] = {1, 5, 0, 3, 2, 4};
    int32_t order[6];
    float bad[3] = {0.f, 1.f, 2.f};
    int i;
    ZT_REQUIRE(zs_rank_gallery(row, 6, order) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 6; i++) ZT_CHECK(order[i] == want[i], "order[%d] = %d, want %d", i, order[i], want[i]);
    {
        /* negative distances (RN mode uses -score), infinities, -0 == +0 tie */
        static const float r2[] = {-1.0f, 2.0f, -3.0f, 0.0f, -INFINITY, INFINITY, -0.0f, 0.5f, -1.0f};
        static const int32_t w2[] = {4, 2, 0, 8, 3, 6, 7, 1, 5};
        int32_t o2[9];
        ZT_REQUIRE(zs_rank_gallery(r2, 9, o2) == ZS_OK, "%s", zs_last_error());
        for (i = 0; i < 9; i++) ZT_CHECK(o2[i] == w2[i], "r2 order[%d] = %d, want %d", i, o2[i], w2[i]);
    }
    {
        /* many distinct values and ties: compare with a plain insertion sort */
        enum { N = 3000 };
        static float r3[N];
        static int32_t o3[N], ref[N];
        int j, ok = 1;
        for (i = 0; i < N; i++) r3[i] = (float)((int)(zt_rand(11, (unsigned long long)i) * 200.0f)) * 0.37f;
        for (i = 0; i < N; i++) {
            for (j = i; j > 0 && r3[ref[j - 1]] > r3[i]; j--) ref[j] = ref[j - 1];
            ref[j] = i;
        }
        ZT_REQUIRE(zs_rank_gallery(r3, N, o3) == ZS_OK, "%s", zs_last_error());
        for (i = 0; i < N; i++) ok &= o3[i] == ref[i];
        ZT_CHECK(ok, "radix ranking differs from a stable insertion sort");
    }
    bad[1] = NAN;
    ZT_CHECK(zs_rank_gallery(bad, 3, order) == ZS_ERR_ARG && strstr(zs_last_error(), "NaN"), "NaN: %s", zs_last_error());
}

/* ---- metrics: a hand-worked matrix ------------------------------------------ */
static void test_data_retrieval_hand(void) {
    /* gallery labels g0..g4 = 0 1 0 1 2 */
    static const int32_t gl[5] = {0, 1, 0, 1, 2};
    static const int32_t ql[5] = {1, 2, 5, 0, 0};
    static const float dist[5 * 5] = {
        /* q0 (label 1): order g1 g0 g3 g2 g4 (g0, g3 tie at 0.3: g0 first)
           rel 1 0 1 0 0, P 2 -> AP 5/6 (1/2*1 + 1/2*2/3). The other tie order
           would give 1 1 0 0 0 and AP 1. */
        0.3f, 0.1f, 0.5f, 0.3f, 0.9f,
        /* q1 (label 2): all tie -> g0..g4, rel 0 0 0 0 1, P 1 -> AP 1/5 */
        0.2f, 0.2f, 0.2f, 0.2f, 0.2f,
        /* q2 (label 5): no relevant item -> AP NaN, ignored */
        0.1f, 0.2f, 0.3f, 0.4f, 0.5f,
        /* q3 (label 0): order g4 g3 g2 g1 g0, rel 0 0 1 0 1, P 2;
           prec at hits 1/3, 2/5 -> monotone 2/5, 2/5 -> AP 0.4 */
        0.9f, 0.8f, 0.7f, 0.6f, 0.5f,
        /* q4 (label 0): order g0 g2 g1 g3 g4, rel 1 1 0 0 0 -> AP 1 */
        0.1f, 0.5f, 0.2f, 0.6f, 0.7f};
    zs_metrics m;
    ZT_REQUIRE(zs_eval_retrieval(dist, 5, 5, ql, gl, &m) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(m.n_valid == 4, "n_valid %d", m.n_valid);
    /* mAP = (5/6 + 1/5 + 2/5 + 1) / 4 = 2.43333/4 = 0.608333 */
    ZT_CHECK(near(m.map_all, (5.0 / 6 + 0.2 + 0.4 + 1.0) / 4, 1e-15), "map_all %.17g", m.map_all);
    /* ng = 5 < 200: @200 sees the whole list with P = min(200, P) = P */
    ZT_CHECK(near(m.map_200, m.map_all, 1e-15), "map_200 %.17g", m.map_200);
    /* ZSE P@100, K' = min(100, P) = P: q0 rel[0..1] = 1 0 -> 1/2; q1 rel[0] = 0;
       q3 rel[0..1] = 0 0; q4 rel[0..1] = 1 1 -> (0.5 + 0 + 0 + 1) / 4 = 0.375 */
    ZT_CHECK(near(m.p_100, 0.375, 1e-15) && near(m.p_200, 0.375, 1e-15), "p %.17g %.17g", m.p_100, m.p_200);
    /* TCN P@100 = hits in top min(100, 5) / 5 over all 5 queries:
       (2 + 1 + 0 + 2 + 2) / 5 / 5 = 0.28 */
    ZT_CHECK(near(m.tcn_p_100, 0.28, 1e-15) && near(m.tcn_p_200, 0.28, 1e-15), "tcn p %.17g %.17g", m.tcn_p_100, m.tcn_p_200);
    /* TCN mAP per class: class 0 (q3, q4) (0.4 + 1)/2 = 0.7, class 1 5/6, class 2 0.2,
       class 5 none -> (0.7 + 5/6 + 0.2) / 3 = 0.57778 */
    ZT_CHECK(near(m.tcn_map, (0.7 + 5.0 / 6 + 0.2) / 3, 1e-15), "tcn_map %.17g", m.tcn_map);
}

static void test_data_retrieval_fewer_than_k(void) {
    /* one query, 250 gallery items, 10 relevant (label 0) at ranks 0..9 and
       label 1 elsewhere: ZSE P@100 = P@200 = mean(rel[0..9]) = 1; TCN P@100 =
       10/100, P@200 = 10/200; AP = mAP@200 = 1 */
    enum { NG = 250 };
    static float dist[NG];
    static int32_t gl[NG];
    int32_t ql = 0;
    zs_metrics m;
    int g;
    for (g = 0; g < NG; g++) { dist[g] = (float)(NG - g); gl[g] = g >= NG - 10 ? 0 : 1; }
    ZT_REQUIRE(zs_eval_retrieval(dist, 1, NG, &ql, gl, &m) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(m.map_all == 1.0 && m.map_200 == 1.0, "map %.17g %.17g", m.map_all, m.map_200);
    ZT_CHECK(m.p_100 == 1.0 && m.p_200 == 1.0, "zse p %.17g %.17g", m.p_100, m.p_200);
    ZT_CHECK(near(m.tcn_p_100, 0.1, 1e-15) && near(m.tcn_p_200, 0.05, 1e-15), "tcn p %.17g %.17g", m.tcn_p_100, m.tcn_p_200);
    /* relevant LAST instead: ranks 240..249. Precision at hit j is j/(240+j),
       increasing in j, so the envelope makes every hit 10/250 -> AP = 0.04
       (without the envelope it would be 0.02227). @200 sees no hit ->
       AP@200 = 0; ZSE P@K = 0; TCN P@K = 0 */
    for (g = 0; g < NG; g++) dist[g] = (float)g;
    ZT_REQUIRE(zs_eval_retrieval(dist, 1, NG, &ql, gl, &m) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(near(m.map_all, 0.04, 1e-15), "map_all %.17g", m.map_all);
    ZT_CHECK(m.map_200 == 0 && m.p_100 == 0 && m.tcn_p_200 == 0, "%g %g %g", m.map_200, m.p_100, m.tcn_p_200);
}

static void test_data_retrieval_errors(void) {
    float d[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    int32_t l[2] = {0, 1};
    zs_metrics m;
    ZT_CHECK(zs_eval_retrieval(d, 2, 2, l, l, NULL) == ZS_ERR_ARG, "NULL out");
    ZT_CHECK(zs_eval_retrieval(NULL, 2, 2, l, l, &m) == ZS_ERR_ARG, "NULL dist");
    ZT_CHECK(zs_eval_retrieval(d, 0, 2, l, l, &m) == ZS_ERR_ARG, "nq = 0");
    d[3] = NAN;
    ZT_CHECK(zs_eval_retrieval(d, 2, 2, l, l, &m) == ZS_ERR_ARG && strstr(zs_last_error(), "[1][1]"), "NaN: %s", zs_last_error());
    /* no query has a relevant item: NaN means, ZS_OK */
    d[3] = 0.f;
    {
        int32_t q2[2] = {7, 8};
        ZT_REQUIRE(zs_eval_retrieval(d, 2, 2, q2, l, &m) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(m.n_valid == 0 && zt_isnan(m.map_all) && zt_isnan(m.tcn_map) && m.tcn_p_100 == 0, "n_valid %d", m.n_valid);
    }
}

static void test_data_fine_grained(void) {
    /* 4 queries, 12 gallery items, dist[q][g] = g/10 (rank = g) except q1 */
    float d[4 * 12];
    int32_t pair[4] = {0, 9, 10, 11};
    double a1, a10;
    int q, g;
    for (q = 0; q < 4; q++)
        for (g = 0; g < 12; g++) d[q * 12 + g] = (float)g * 0.1f;
    /* q1: item 9 tied with items 0..11 all at 0.5 -> rank 9 (9 lower indices) */
    for (g = 0; g < 12; g++) d[12 + g] = 0.5f;
    /* ranks 0, 9, 10, 11 -> acc@1 = 1/4, acc@10 = 2/4 */
    ZT_REQUIRE(zs_eval_fine_grained(d, 4, 12, pair, &a1, &a10) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(a1 == 0.25 && a10 == 0.5, "acc %g %g", a1, a10);
    /* -1 = no pair: skipped. Ranks of q0, q1 only -> 1/2, 2/2 */
    pair[2] = pair[3] = -1;
    ZT_REQUIRE(zs_eval_fine_grained(d, 4, 12, pair, &a1, &a10) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(a1 == 0.5 && a10 == 1.0, "acc %g %g", a1, a10);
    pair[0] = 12;
    ZT_CHECK(zs_eval_fine_grained(d, 4, 12, pair, &a1, &a10) == ZS_ERR_ARG && strstr(zs_last_error(), "pair_index[0]"), "%s", zs_last_error());
    pair[0] = -2;
    ZT_CHECK(zs_eval_fine_grained(d, 4, 12, pair, &a1, &a10) == ZS_ERR_ARG, "-2 accepted");
}

/* ---- metrics: numpy golden case -------------------------------------------- */
static float *golden(const char *name, int want_ndim, int64_t *shape) {
    char path[256];
    int ndim;
    float *d = NULL;
    snprintf(path, sizeof path, "tests/golden/metrics_case_%s.npy", name);
    if (zs_npy_read(path, &ndim, shape, &d) != ZS_OK) return NULL;
    if (ndim != want_ndim) { zs_npy_free(d); return NULL; }
    return d;
}

static void test_data_metrics_golden(void) {
    /* regenerate: /usr/bin/python3 tools/metrics_ref.py tests/golden */
    int64_t sd[8], sq[8], sg[8], sp[8], se[8], sa[8];
    float *dist = golden("dist", 2, sd), *qf = golden("qlab", 1, sq), *gf = golden("glab", 1, sg);
    float *pf = golden("pair", 1, sp), *ef = golden("expected", 2, se), *af = golden("ap", 2, sa);
    int32_t *ql = NULL, *gl = NULL, *pr = NULL, *order = NULL;
    int8_t *rel = NULL;
    double want[10];
    zs_metrics m;
    double a1, a10;
    int nq, ng, i, q;
    if (!dist || !qf || !gf || !pf || !ef || !af) { ZT_CHECK(0, "golden files missing or malformed: %s", zs_last_error()); goto done; }
    nq = (int)sd[0]; ng = (int)sd[1];
    if (sq[0] != nq || sg[0] != ng || sp[0] != nq || se[0] != 2 || se[1] != 10 || sa[0] != 2 || sa[1] != nq) {
        ZT_CHECK(0, "golden shapes"); goto done;
    }
    ql = (int32_t *)malloc((size_t)nq * 4); gl = (int32_t *)malloc((size_t)ng * 4);
    pr = (int32_t *)malloc((size_t)nq * 4); order = (int32_t *)malloc((size_t)ng * 4);
    rel = (int8_t *)malloc((size_t)ng);
    if (!ql || !gl || !pr || !order || !rel) { ZT_CHECK(0, "malloc"); goto done; }
    for (q = 0; q < nq; q++) { ql[q] = (int32_t)qf[q]; pr[q] = (int32_t)pf[q]; }
    for (i = 0; i < ng; i++) gl[i] = (int32_t)gf[i];
    for (i = 0; i < 10; i++) want[i] = (double)ef[i] + (double)ef[10 + i];
    if (zs_eval_retrieval(dist, nq, ng, ql, gl, &m) != ZS_OK) { ZT_CHECK(0, "%s", zs_last_error()); goto done; }
    ZT_CHECK(near(m.map_all, want[0], 1e-9), "map_all %.15g want %.15g", m.map_all, want[0]);
    ZT_CHECK(near(m.map_200, want[1], 1e-9), "map_200 %.15g want %.15g", m.map_200, want[1]);
    ZT_CHECK(near(m.p_100, want[2], 1e-9), "p_100 %.15g want %.15g", m.p_100, want[2]);
    ZT_CHECK(near(m.p_200, want[3], 1e-9), "p_200 %.15g want %.15g", m.p_200, want[3]);
    ZT_CHECK(near(m.tcn_map, want[4], 1e-9), "tcn_map %.15g want %.15g", m.tcn_map, want[4]);
    ZT_CHECK(near(m.tcn_p_100, want[5], 1e-9), "tcn_p_100 %.15g want %.15g", m.tcn_p_100, want[5]);
    ZT_CHECK(near(m.tcn_p_200, want[6], 1e-9), "tcn_p_200 %.15g want %.15g", m.tcn_p_200, want[6]);
    ZT_CHECK(m.n_valid == (int)want[7], "n_valid %d want %g", m.n_valid, want[7]);
    /* the case is built so that every definition differs from its sibling */
    ZT_CHECK(m.map_all != m.map_200 && m.p_100 != m.tcn_p_100 && m.map_all != m.tcn_map, "degenerate golden case");
    if (zs_eval_fine_grained(dist, nq, ng, pr, &a1, &a10) != ZS_OK) { ZT_CHECK(0, "%s", zs_last_error()); goto done; }
    ZT_CHECK(near(a1, want[8], 1e-9) && near(a10, want[9], 1e-9), "acc %.15g %.15g want %.15g %.15g", a1, a10, want[8], want[9]);
    /* per-query AP through the public ranking + AP functions */
    for (q = 0; q < nq; q++) {
        int P = 0;
        double ap, w = (double)af[q] + (double)af[nq + q];
        if (zs_rank_gallery(dist + (size_t)q * ng, ng, order) != ZS_OK) { ZT_CHECK(0, "%s", zs_last_error()); break; }
        for (i = 0; i < ng; i++) { rel[i] = (int8_t)(gl[order[i]] == ql[q]); P += rel[i]; }
        ap = zs_average_precision(rel, ng, P);
        if (zt_isnan(af[q])) ZT_CHECK(zt_isnan(ap), "query %d: AP %g, want NaN", q, ap);
        else ZT_CHECK(near(ap, w, 1e-9), "query %d: AP %.15g want %.15g", q, ap, w);
    }
done:
    zs_npy_free(dist); zs_npy_free(qf); zs_npy_free(gf); zs_npy_free(pf); zs_npy_free(ef); zs_npy_free(af);
    free(ql); free(gl); free(pr); free(order); free(rel);
}

static void test_data_metrics_speed(void) {
    /* 200 queries x 10000 gallery, 100 classes: must stay well under a second */
    enum { NQ = 200, NG = 10000 };
    float *d = (float *)malloc((size_t)NQ * NG * sizeof(float));
    int32_t *ql = (int32_t *)malloc(NQ * sizeof(int32_t)), *gl = (int32_t *)malloc(NG * sizeof(int32_t));
    zs_metrics m;
    clock_t t0;
    double s;
    int i;
    if (!d || !ql || !gl) { free(d); free(ql); free(gl); ZT_SKIP("no memory"); }
    zt_fill(d, (long long)NQ * NG, 7, 1.0f);
    for (i = 0; i < NQ; i++) ql[i] = i % 100;
    for (i = 0; i < NG; i++) gl[i] = (i * 7) % 100;
    t0 = clock();
    ZT_CHECK(zs_eval_retrieval(d, NQ, NG, ql, gl, &m) == ZS_OK, "%s", zs_last_error());
    s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    /* random distances: AP ~ P/NG = 0.01 */
    ZT_CHECK(m.n_valid == NQ && m.map_all > 0.005 && m.map_all < 0.02, "map_all %g", m.map_all);
    printf("  zs_eval_retrieval %dx%d: %.3f s cpu\n", NQ, NG, s);
    free(d); free(ql); free(gl);
}

/* ---- list files (POSIX: temporary files under build/) ------------------------ */
#ifndef _WIN32
#include <unistd.h>

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    mkdir("build", 0755); /* normally there already */
    snprintf(b, 512, "build/test_data_%ld_%s", (long)getpid(), name);
    return b;
}

static int write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    size_t w;
    if (!f) return 0;
    w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n;
}
static int write_str(const char *path, const char *s) { return write_file(path, s, strlen(s)); }

static void test_data_filelist(void) {
    const char *p = tmp_path("list.txt");
    zs_filelist fl;
    /* path with spaces, CRLF, a blank line, no final newline */
    ZT_REQUIRE(write_str(p, "a b/c.jpg 3\r\n\nx.png   0"), "cannot write %s", p);
    ZT_REQUIRE(zs_filelist_read(p, &fl) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(fl.n == 2, "n %d", fl.n);
    if (fl.n == 2) {
        ZT_CHECK(!strcmp(fl.path[0], "a b/c.jpg") && fl.label[0] == 3, "[0] '%s' %d", fl.path[0], fl.label[0]);
        ZT_CHECK(!strcmp(fl.path[1], "x.png") && fl.label[1] == 0, "[1] '%s' %d", fl.path[1], fl.label[1]);
    }
    zs_filelist_free(&fl);
    zs_filelist_free(&fl); /* twice is fine */
    remove(p);
}

static void test_data_filelist_corrupt(void) {
    static const struct { const char *text; const char *want1, *want2; } bad[] = {
        {"x.png\n", ":1:", "missing label"},
        {"x.png 5\ny.png -1\n", ":2:", "bad label \"-1\""},
        {"x.png 5\n\ny.png 3a\n", ":3:", "bad label \"3a\""},
        {"x.png 99999999999\n", ":1:", "too large"},
        {"x.png 2147483648\n", ":1:", "too large"},
        {"   5\n", ":1:", "missing name"},
        {"x.png 1\nlabel_only_no_path\t\n", ":2:", "missing label"},
    };
    const char *p = tmp_path("bad.txt");
    zs_filelist fl;
    char *big;
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ZT_REQUIRE(write_str(p, bad[i].text), "cannot write %s", p);
        ZT_CHECK(zs_filelist_read(p, &fl) == ZS_ERR_FORMAT && strstr(zs_last_error(), bad[i].want1) &&
                 strstr(zs_last_error(), bad[i].want2) && strstr(zs_last_error(), p) && fl.n == 0 && !fl.path,
                 "case %d: '%s'", (int)i, zs_last_error());
    }
    /* 2147483647 is the largest label */
    ZT_REQUIRE(write_str(p, "x.png 2147483647\n"), "write");
    ZT_CHECK(zs_filelist_read(p, &fl) == ZS_OK && fl.n == 1 && fl.label[0] == 2147483647, "%s", zs_last_error());
    zs_filelist_free(&fl);
    /* overlong line (line 2) */
    big = (char *)malloc(6000);
    ZT_REQUIRE(big != NULL, "malloc");
    memcpy(big, "a.png 1\n", 8);
    memset(big + 8, 'x', 5000);
    memcpy(big + 5008, " 1\n", 3);
    ZT_REQUIRE(write_file(p, big, 5011), "write");
    ZT_CHECK(zs_filelist_read(p, &fl) == ZS_ERR_FORMAT && strstr(zs_last_error(), ":2:") && strstr(zs_last_error(), "longer"), "%s", zs_last_error());
    /* NUL byte */
    memcpy(big, "a.png 1\nb\0.png 2\n", 17);
    ZT_REQUIRE(write_file(p, big, 17), "write");
    ZT_CHECK(zs_filelist_read(p, &fl) == ZS_ERR_FORMAT && strstr(zs_last_error(), "NUL"), "%s", zs_last_error());
    free(big);
    remove(p);
    ZT_CHECK(zs_filelist_read(p, &fl) == ZS_ERR_IO && strstr(zs_last_error(), p), "missing file: %s", zs_last_error());
    ZT_CHECK(zs_filelist_read(NULL, &fl) == ZS_ERR_ARG && zs_filelist_read(p, NULL) == ZS_ERR_ARG, "NULL args");
}

static void test_data_filelist_released(void) {
    const char *p = "../shared/splits/TUBerlin/zeroshot/ImageResized_ready_filelist_zero.txt";
    zs_filelist fl;
    FILE *f = fopen(p, "rb");
    if (!f) ZT_SKIP("%s absent", p);
    fclose(f);
    ZT_REQUIRE(zs_filelist_read(p, &fl) == ZS_OK, "%s", zs_last_error());
    /* wc -l = 27989, newline-terminated; line 5734 has a space in the class */
    ZT_REQUIRE(fl.n == 27989, "n %d", fl.n);
    ZT_CHECK(!strcmp(fl.path[0], "ImageResized_ready/banana/n07753592_7382.JPEG") && fl.label[0] == 0,
             "first '%s' %d", fl.path[0], fl.label[0]);
    ZT_CHECK(!strcmp(fl.path[5733], "ImageResized_ready/bottle opener/n02877962_2244.JPEG") && fl.label[5733] == 6,
             "line 5734 '%s' %d", fl.path[5733], fl.label[5733]);
    ZT_CHECK(!strcmp(fl.path[fl.n - 1], "ImageResized_ready/horse/n02374451_2443.JPEG") && fl.label[fl.n - 1] == 29, "last");
    zs_filelist_free(&fl);
}

/* ---- datasets on a synthetic tree -------------------------------------------- */
static const char *const tree_dirs[] = {
    "", "/photo", "/sketch", "/photo/apple", "/photo/bear", "/photo/dog", "/photo/fish", "/photo/zebra",
    "/sketch/apple", "/sketch/bear", "/sketch/cat", "/sketch/fish", "/sketch/zebra", "/sketch/dog_not_a_dir_parent"};
static const char *const tree_files[] = {
    "/photo/readme.txt", "/photo/apple/b.jpg", "/photo/apple/a2.jpg", "/photo/apple/a1.jpg", "/photo/apple/.hidden",
    "/photo/bear/x.jpg", "/photo/dog/d.jpg", "/photo/fish/f.jpg", "/photo/zebra/z1.jpg",
    "/sketch/apple/c-1.png", "/sketch/apple/a1-2.png", "/sketch/apple/a2.png", "/sketch/apple/a1-1.png",
    "/sketch/apple/b-10.png", "/sketch/apple/b5.png", "/sketch/bear/x-3.png", "/sketch/cat/cat1-1.png", "/sketch/fish/f-1.png",
    "/sketch/zebra/z1-1.png"};
#define NDIRS ((int)(sizeof tree_dirs / sizeof tree_dirs[0]))
#define NFILES ((int)(sizeof tree_files / sizeof tree_files[0]))

static char tree_root[256];

static int make_tree(void) {
    char p[600];
    int i;
    mkdir("build", 0755);
    snprintf(tree_root, sizeof tree_root, "build/test_data_tree_%ld", (long)getpid());
    for (i = 0; i < NDIRS; i++) {
        snprintf(p, sizeof p, "%s%s", tree_root, tree_dirs[i]);
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return 0;
    }
    for (i = 0; i < NFILES; i++) {
        snprintf(p, sizeof p, "%s%s", tree_root, tree_files[i]);
        if (!write_str(p, "x")) return 0;
    }
    return 1;
}
static void remove_tree(void) {
    char p[600];
    int i;
    for (i = 0; i < NFILES; i++) { snprintf(p, sizeof p, "%s%s", tree_root, tree_files[i]); remove(p); }
    for (i = NDIRS - 1; i >= 0; i--) { snprintf(p, sizeof p, "%s%s", tree_root, tree_dirs[i]); rmdir(p); }
}

static void test_data_dataset_tree(void) {
    /* sorted classes: apple 0, bear 1, cat 2 (sketches only), dog 3 (photos
       only), dog_not_a_dir_parent 4 (empty sketch folder), fish 5, zebra 6 */
    static const char *const cls[] = {"apple", "bear", "cat", "dog", "dog_not_a_dir_parent", "fish", "zebra"};
    static const char *const photos[] = {"apple/a1.jpg", "apple/a2.jpg", "apple/b.jpg", "bear/x.jpg", "dog/d.jpg", "fish/f.jpg", "zebra/z1.jpg"};
    static const int32_t plab[] = {0, 0, 0, 1, 3, 5, 6};
    static const char *const sketches[] = {"apple/a1-1.png", "apple/a1-2.png", "apple/a2.png", "apple/b-10.png", "apple/b5.png", "apple/c-1.png",
                                           "bear/x-3.png", "cat/cat1-1.png", "fish/f-1.png", "zebra/z1-1.png"};
    static const int32_t slab[] = {0, 0, 0, 0, 0, 0, 1, 2, 5, 6};
    /* a1-k -> a1.jpg (0); a2.png and b5.png have no "-k" suffix (b5 must not
       pair with b.jpg); b-10 -> b.jpg (2); c-1 has no photo */
    static const int32_t pair[] = {0, 0, -1, 2, -1, -1, 3, -1, 5, 6};
    zs_dataset ds;
    char want[600];
    int i;
    if (!make_tree()) { remove_tree(); ZT_SKIP("cannot create %s", tree_root); }
    if (zs_dataset_open(&ds, tree_root, NULL) != ZS_OK) { ZT_CHECK(0, "%s", zs_last_error()); remove_tree(); return; }
    ZT_CHECK(ds.n_classes == 7 && ds.n_photos == 7 && ds.n_sketches == 10, "%d classes %d photos %d sketches", ds.n_classes, ds.n_photos, ds.n_sketches);
    if (ds.n_classes == 7 && ds.n_photos == 7 && ds.n_sketches == 10) {
        for (i = 0; i < 7; i++) ZT_CHECK(!strcmp(ds.class_name[i], cls[i]), "class %d '%s'", i, ds.class_name[i]);
        for (i = 0; i < 7; i++) {
            snprintf(want, sizeof want, "%s/photo/%s", tree_root, photos[i]);
            ZT_CHECK(!strcmp(ds.photo_path[i], want) && ds.photo_label[i] == plab[i], "photo %d '%s' %d", i, ds.photo_path[i], ds.photo_label[i]);
        }
        for (i = 0; i < 10; i++) {
            snprintf(want, sizeof want, "%s/sketch/%s", tree_root, sketches[i]);
            ZT_CHECK(!strcmp(ds.sketch_path[i], want) && ds.sketch_label[i] == slab[i], "sketch %d '%s' %d", i, ds.sketch_path[i], ds.sketch_label[i]);
            ZT_CHECK(ds.sketch_pair[i] == pair[i], "pair %d: %d want %d", i, ds.sketch_pair[i], pair[i]);
        }
        ZT_CHECK(ds.n_paired == 6, "n_paired %d", ds.n_paired);
        ZT_CHECK(ds.photo_start[2] == 4 && ds.photo_count[2] == 0 && ds.sketch_count[3] == 0 && ds.sketch_start[5] == 8 && ds.sketch_count[0] == 6, "ranges");
        ZT_CHECK(ds.n_seen == 7 && ds.n_unseen == 0, "all seen at open");
    }
    zs_dataset_free(&ds);
    zs_dataset_free(&ds);
    remove_tree();
}

static void test_data_dataset_class_list(void) {
    const char *cl = tmp_path("cname.txt");
    zs_dataset ds;
    static const struct { const char *text, *want; } bad[] = {
        {"zebra 0\nbear 2\n", "id 2 outside 0..1"},
        {"zebra 0\nbear 0\n", "id 0 given to both"},
        {"zebra 0\nzebra 1\n", "listed twice"},
        {"zebra 0\nunicorn 1\n", "\"unicorn\" has no folder"},
        {"zebra 0\nbear\n", ":2: missing label"},
        {"", "no classes"},
    };
    size_t i;
    if (!make_tree()) { remove_tree(); ZT_SKIP("cannot create %s", tree_root); }
    if (!write_str(cl, "zebra 0\nbear 1\napple 2\n")) { remove_tree(); ZT_SKIP("cannot write %s", cl); }
    if (zs_dataset_open(&ds, tree_root, cl) != ZS_OK) { ZT_CHECK(0, "%s", zs_last_error()); remove_tree(); remove(cl); return; }
    /* only the listed classes, in id order: zebra z1 (0), bear x (1), apple a1 a2 b (2..4) */
    ZT_CHECK(ds.n_classes == 3 && ds.n_photos == 5 && ds.n_sketches == 8, "%d %d %d", ds.n_classes, ds.n_photos, ds.n_sketches);
    if (ds.n_classes == 3 && ds.n_photos == 5 && ds.n_sketches == 8) {
        ZT_CHECK(!strcmp(ds.class_name[0], "zebra") && !strcmp(ds.class_name[2], "apple"), "names");
        ZT_CHECK(ds.photo_label[0] == 0 && ds.photo_label[1] == 1 && ds.photo_label[4] == 2, "photo labels");
        ZT_CHECK(strstr(ds.photo_path[2], "/photo/apple/a1.jpg") != NULL, "photo 2 %s", ds.photo_path[2]);
        /* sketches: zebra z1-1 (0), bear x-3 (1), apple a1-1 (2) ... */
        ZT_CHECK(ds.sketch_pair[0] == 0 && ds.sketch_pair[1] == 1 && ds.sketch_pair[2] == 2 && ds.sketch_pair[3] == 2, "pairs");
    }
    zs_dataset_free(&ds);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ZT_REQUIRE(write_str(cl, bad[i].text), "write");
        ZT_CHECK(zs_dataset_open(&ds, tree_root, cl) == ZS_ERR_FORMAT && strstr(zs_last_error(), bad[i].want) && ds.n_classes == 0 && !ds.class_name,
                 "case %d: %s", (int)i, zs_last_error());
    }
    ZT_CHECK(zs_dataset_open(&ds, "build/no_such_dataset_dir", NULL) == ZS_ERR_IO && strstr(zs_last_error(), "no_such_dataset_dir/photo"), "%s", zs_last_error());
    ZT_CHECK(zs_dataset_open(NULL, tree_root, NULL) == ZS_ERR_ARG, "NULL ds");
    remove(cl);
    remove_tree();
}

static void test_data_unseen_and_sampler(void) {
    const char *tl = tmp_path("test_class.txt");
    zs_dataset ds;
    uint64_t s1 = 42, s2 = 42, s3 = 43;
    int32_t a[4], b[4], count_c0[7] = {0}, differ = 0;
    int i;
    if (!make_tree()) { remove_tree(); ZT_SKIP("cannot create %s", tree_root); }
    if (zs_dataset_open(&ds, tree_root, NULL) != ZS_OK) { ZT_CHECK(0, "%s", zs_last_error()); remove_tree(); return; }
    /* unseen = bear, zebra (CRLF, trailing blank, blank line): seen apple cat dog
       dog_not_a_dir_parent fish -> eligible (photo and sketch) apple, fish only */
    ZT_REQUIRE(write_str(tl, "bear\r\nzebra \n\n"), "write");
    ZT_CHECK(zs_dataset_set_unseen(&ds, tl) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(ds.n_unseen == 2 && ds.unseen_class[0] == 1 && ds.unseen_class[1] == 6 && ds.n_seen == 5 && ds.seen_class[0] == 0 &&
             ds.unseen[1] && ds.unseen[6] && !ds.unseen[0], "split %d/%d", ds.n_seen, ds.n_unseen);
    ZT_CHECK(zs_sample_triplet(&ds, &s1, a) == ZS_ERR_STATE && strstr(zs_last_error(), "need 3"), "%s", zs_last_error());
    /* unknown / repeated names: error naming them, dataset unchanged */
    ZT_REQUIRE(write_str(tl, "zebra\nunicorn\n"), "write");
    ZT_CHECK(zs_dataset_set_unseen(&ds, tl) == ZS_ERR_FORMAT && strstr(zs_last_error(), ":2: unknown class \"unicorn\""), "%s", zs_last_error());
    ZT_REQUIRE(write_str(tl, "zebra\nzebra\n"), "write");
    ZT_CHECK(zs_dataset_set_unseen(&ds, tl) == ZS_ERR_FORMAT && strstr(zs_last_error(), ":2: class \"zebra\" listed twice"), "%s", zs_last_error());
    ZT_CHECK(ds.n_unseen == 2 && ds.unseen[1], "dataset changed by a failed call");
    /* unseen = zebra only: eligible seen classes apple (0), bear (1), fish (5) */
    ZT_REQUIRE(write_str(tl, "zebra"), "write");
    ZT_REQUIRE(zs_dataset_set_unseen(&ds, tl) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 3000; i++) {
        int32_t c0, c2;
        ZT_REQUIRE(zs_sample_triplet(&ds, &s1, a) == ZS_OK, "%s", zs_last_error());
        ZT_REQUIRE(zs_sample_triplet(&ds, &s2, b) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(!memcmp(a, b, sizeof a), "same seed, different sample at %d", i);
        ZT_REQUIRE(a[0] >= 0 && a[0] < ds.n_sketches && a[2] >= 0 && a[2] < ds.n_sketches &&
                   a[1] >= 0 && a[1] < ds.n_photos && a[3] >= 0 && a[3] < ds.n_photos, "index out of range");
        c0 = ds.sketch_label[a[0]];
        c2 = ds.photo_label[a[3]];
        ZT_CHECK(ds.photo_label[a[1]] == c0 && ds.sketch_label[a[2]] == c0, "p+/s- not of c0");
        ZT_CHECK(c2 != c0 && !ds.unseen[c0] && !ds.unseen[c2], "c0 %d c2 %d", c0, c2);
        ZT_CHECK(c0 == 0 || c0 == 1 || c0 == 5, "c0 %d not eligible", c0);
        /* apple has 6 sketches: s- differs from s+; bear and fish have 1 */
        ZT_CHECK(ds.sketch_count[c0] < 2 || a[0] != a[2], "s- == s+");
        count_c0[c0]++;
        ZT_REQUIRE(zs_sample_triplet(&ds, &s3, b) == ZS_OK, "%s", zs_last_error());
        differ += memcmp(a, b, sizeof a) != 0;
    }
    /* uniform over 3 classes: 1000 expected each */
    ZT_CHECK(count_c0[0] > 850 && count_c0[1] > 850 && count_c0[5] > 850, "c0 counts %d %d %d", count_c0[0], count_c0[1], count_c0[5]);
    ZT_CHECK(differ > 1500, "another seed gives the same samples (%d differ)", differ);
    zs_dataset_free(&ds);
    ZT_CHECK(zs_dataset_set_unseen(&ds, tl) == ZS_ERR_STATE, "set_unseen on a freed dataset");
    ZT_CHECK(zs_sample_triplet(&ds, &s1, a) == ZS_ERR_STATE, "sample on a freed dataset");
    remove(tl);
    remove_tree();
}
#endif

/* ---- the real Sketchy subset ------------------------------------------------- */
static void test_data_sketchy(void) {
    const char *root = "../shared/data/sketchy";
    zs_dataset ds;
    zs_filelist zero;
    uint64_t seed = 7;
    int32_t s[4];
    int i, per_class_ok = 1, pair_same_class = 1;
    FILE *f = fopen("../shared/data/sketchy/photo", "rb");
    if (!f) ZT_SKIP("%s absent", root);
    fclose(f);
#ifdef _WIN32
    ZT_CHECK(zs_dataset_open(&ds, root, NULL) == ZS_ERR_UNSUPPORTED, "windows");
    return;
#endif
    ZT_REQUIRE(zs_dataset_open(&ds, root, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(ds.n_classes == 125 && ds.n_photos == 3125 && ds.n_sketches == 3125, "%d %d %d", ds.n_classes, ds.n_photos, ds.n_sketches);
    for (i = 0; i < ds.n_classes; i++) per_class_ok &= ds.photo_count[i] == 25 && ds.sketch_count[i] == 25;
    ZT_CHECK(per_class_ok, "not 25/25 per class");
    ZT_CHECK(ds.n_paired == ds.n_sketches, "%d of %d sketches paired", ds.n_paired, ds.n_sketches);
    for (i = 0; i < ds.n_sketches; i++)
        if (ds.sketch_pair[i] < 0 || ds.photo_label[ds.sketch_pair[i]] != ds.sketch_label[i]) pair_same_class = 0;
    ZT_CHECK(pair_same_class, "pair in another class");
    ZT_CHECK(!strcmp(ds.class_name[0], "airplane"), "first class %s", ds.class_name[0]);
    if (zs_dataset_set_unseen(&ds, "../shared/splits/test_class_sketchy25.txt") != ZS_OK) { ZT_CHECK(0, "%s", zs_last_error()); zs_dataset_free(&ds); return; }
    ZT_CHECK(ds.n_seen == 100 && ds.n_unseen == 25, "%d/%d", ds.n_seen, ds.n_unseen);
    /* the unseen classes are exactly the released cname_cid_zero.txt */
    if (zs_filelist_read("../shared/splits/Sketchy/zeroshot1/cname_cid_zero.txt", &zero) == ZS_OK) {
        int all = zero.n == 25;
        for (i = 0; i < zero.n && all; i++) {
            int c, found = 0;
            for (c = 0; c < ds.n_classes; c++)
                if (!strcmp(ds.class_name[c], zero.path[i])) found = ds.unseen[c];
            all &= found;
        }
        ZT_CHECK(all, "unseen != cname_cid_zero.txt");
        zs_filelist_free(&zero);
    }
    for (i = 0; i < 1000; i++) {
        ZT_REQUIRE(zs_sample_triplet(&ds, &seed, s) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(!ds.unseen[ds.sketch_label[s[0]]] && !ds.unseen[ds.photo_label[s[3]]] && s[0] != s[2] &&
                 ds.sketch_label[s[2]] == ds.sketch_label[s[0]] && ds.photo_label[s[1]] == ds.sketch_label[s[0]] &&
                 ds.photo_label[s[3]] != ds.sketch_label[s[0]], "bad sample %d", i);
    }
    zs_dataset_free(&ds);
    /* ids from the released training list: 100 classes, pig = 0 */
    ZT_REQUIRE(zs_dataset_open(&ds, root, "../shared/splits/Sketchy/zeroshot1/cname_cid.txt") == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(ds.n_classes == 100 && ds.n_photos == 2500 && !strcmp(ds.class_name[0], "pig") && !strcmp(ds.class_name[1], "banana"), "%d", ds.n_classes);
    ZT_CHECK(zs_dataset_set_unseen(&ds, "../shared/splits/test_class_sketchy25.txt") == ZS_ERR_FORMAT &&
             strstr(zs_last_error(), ":1: unknown class \"cup\""), "%s", zs_last_error());
    zs_dataset_free(&ds);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_data_ap_hand);
    ZT_RUN(test_data_rank_ties);
    ZT_RUN(test_data_retrieval_hand);
    ZT_RUN(test_data_retrieval_fewer_than_k);
    ZT_RUN(test_data_retrieval_errors);
    ZT_RUN(test_data_fine_grained);
    ZT_RUN(test_data_metrics_golden);
    ZT_RUN(test_data_metrics_speed);
#ifndef _WIN32
    ZT_RUN(test_data_filelist);
    ZT_RUN(test_data_filelist_corrupt);
    ZT_RUN(test_data_filelist_released);
    ZT_RUN(test_data_dataset_tree);
    ZT_RUN(test_data_dataset_class_list);
    ZT_RUN(test_data_unseen_and_sampler);
#endif
    ZT_RUN(test_data_sketchy);
    return zt_finish();
}
