/* Dense linear algebra and ITQ ([impl:linalg]): eigh / SVD against numpy
   goldens (tools/linalg_ref.py -> tests/golden/linalg), reconstruction and
   orthogonality, degenerate inputs, SPEC 2.1 head init, SPEC 2.3 ITQ codes
   identical to numpy from the same initial rotation, Hamming distances against
   a bit loop, save/load, bad arguments. Set ZS_LINALG_BIG=1 to also time eigh
   at n = 2048 (about 8-10 s). */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

#define GOLD "tests/golden/linalg/"
#define SQRT1_2 0.70710678118654752440

/* golden .npy as doubles; NULL (and ZT message) when missing */
static double *load(const char *name, int64_t *numel, int *ndim, int64_t shape[8]) {
    char path[256];
    float *f = NULL;
    int nd = 0, i;
    int64_t sh[8], n = 1;
    double *d;
    snprintf(path, sizeof path, GOLD "%s.npy", name);
    if (zs_npy_read(path, &nd, sh, &f) != ZS_OK) return NULL;
    for (i = 0; i < nd; i++) n *= sh[i];
    d = (double *)malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (i = 0; i < n; i++) d[i] = f[i];
    zs_npy_free(f);
    if (numel) *numel = n;
    if (ndim) *ndim = nd;
    if (shape) memcpy(shape, sh, sizeof sh);
    return d;
}

static double frob(const double *a, size_t n) {
    double s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += a[i] * a[i];
    return sqrt(s);
}

/* ||A - U diag(s) Vt|| / ||A||  (U [m,k], Vt [k,n]) */
static double recon_err(const double *a, const double *u, const double *s, const double *vt, int m, int n, int k) {
    double e = 0, an = frob(a, (size_t)m * n);
    int i, j, t;
    for (i = 0; i < m; i++)
        for (j = 0; j < n; j++) {
            double x = 0;
            for (t = 0; t < k; t++) x += u[(size_t)i * k + t] * s[t] * vt[(size_t)t * n + j];
            x -= a[(size_t)i * n + j];
            e += x * x;
        }
    return an > 0 ? sqrt(e) / an : sqrt(e);
}

/* max |Q^T Q - I| for the k columns of q [rows, k] (cols = 1) or the k rows of
   q [k, rows] (cols = 0) */
static double orth_err(const double *q, int rows, int k, int cols) {
    double worst = 0;
    int a, b, i;
    for (a = 0; a < k; a++)
        for (b = a; b < k; b++) {
            double s = 0;
            for (i = 0; i < rows; i++)
                s += cols ? q[(size_t)i * k + a] * q[(size_t)i * k + b] : q[(size_t)a * rows + i] * q[(size_t)b * rows + i];
            s -= a == b;
            if (fabs(s) > worst) worst = fabs(s);
        }
    return worst;
}

static double maxdiff(const double *a, const double *b, size_t n) {
    double m = 0;
    size_t i;
    for (i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > m) m = fabs(a[i] - b[i]);
    return m;
}

static void rand_sym(double *a, int n, unsigned long long seed) {
    int i, j;
    for (i = 0; i < n; i++)
        for (j = 0; j <= i; j++) a[(size_t)i * n + j] = a[(size_t)j * n + i] = zt_rand(seed, (unsigned long long)i * n + j);
}

/* eigen residual max |A v_j - w_j v_j| / max|w| and orthogonality */
static void check_eig(const double *a, const double *w, const double *v, int n, double tol, const char *what) {
    double res = 0, scale = 1e-300;
    int i, j, t;
    for (j = 0; j < n; j++) scale = fabs(w[j]) > scale ? fabs(w[j]) : scale;
    for (j = 0; j < n; j++) {
        for (i = 0; i < n; i++) {
            double s = 0;
            for (t = 0; t < n; t++) s += a[(size_t)i * n + t] * v[(size_t)t * n + j];
            s -= w[j] * v[(size_t)i * n + j];
            if (fabs(s) > res) res = fabs(s);
        }
        if (j) ZT_CHECK(w[j] <= w[j - 1], "%s: eigenvalues not descending at %d", what, j);
    }
    ZT_CHECK(res <= tol * scale, "%s: residual %.3g (scale %.3g)", what, res, scale);
    ZT_CHECK(orth_err(v, n, n, 1) <= tol, "%s: V^T V - I = %.3g", what, orth_err(v, n, n, 1));
}

/* ---- eigh ----------------------------------------------------------------- */
static void test_linalg_eigh_golden(void) {
    int64_t na, nw, nv;
    double *a = load("eig_a", &na, NULL, NULL), *gw = load("eig_w", &nw, NULL, NULL), *gv = load("eig_v", &nv, NULL, NULL);
    double w[40], w2[40], *v = (double *)malloc(sizeof(double) * 1600), signerr = 0;
    int i, j;
    ZT_REQUIRE(a && gw && gv && na == 1600 && nw == 40, "golden eig_* missing: run tools/linalg_ref.py");
    ZT_REQUIRE(zs_eigh(w, v, a, 40) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 40; i++)
        ZT_CHECK(fabs(w[i] - gw[i]) <= 1e-5 * fabs(gw[0]), "w[%d] = %.9g, numpy %.9g", i, w[i], gw[i]);
    /* up to sign, then with the documented sign convention */
    for (j = 0; j < 40; j++) {
        double dp = 0, dm = 0;
        for (i = 0; i < 40; i++) {
            dp = fmax(dp, fabs(v[i * 40 + j] - gv[i * 40 + j]));
            dm = fmax(dm, fabs(v[i * 40 + j] + gv[i * 40 + j]));
        }
        signerr = fmax(signerr, fmin(dp, dm));
        ZT_CHECK(dp <= 1e-5, "eigenvector %d differs from numpy's (sign convention): %.3g", j, dp);
    }
    ZT_CHECK(signerr <= 1e-5, "eigenvectors vs numpy up to sign: %.3g", signerr);
    check_eig(a, w, v, 40, 1e-13, "eig_a");
    ZT_CHECK(zs_eigh(w2, NULL, a, 40) == ZS_OK && maxdiff(w, w2, 40) <= 1e-13 * fabs(w[0]),
             "values-only path differs: %.3g", maxdiff(w, w2, 40));
    /* in place (v == a) */
    ZT_CHECK(zs_eigh(w2, a, a, 40) == ZS_OK && maxdiff(a, v, 1600) == 0, "in-place result differs");
    free(a); free(gw); free(gv); free(v);
}

static void test_linalg_eigh_degenerate(void) {
    double w[8], v[64], a[64], q[64], d[6] = {3, 3, 3, 1, 1, -2}, x[6], nx = 0;
    int i, j, t;
    /* 1x1 */
    a[0] = -2.5;
    ZT_REQUIRE(zs_eigh(w, v, a, 1) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(w[0] == -2.5 && v[0] == 1.0, "1x1: w %g v %g", w[0], v[0]);
    /* 2x2 [[2,1],[1,2]]: 3, 1; vectors (1,1)/sqrt2, (1,-1)/sqrt2 -> sign: first max positive */
    a[0] = 2; a[1] = 1; a[2] = 1; a[3] = 2;
    ZT_REQUIRE(zs_eigh(w, v, a, 2) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(fabs(w[0] - 3) < 1e-15 && fabs(w[1] - 1) < 1e-15, "2x2: %.17g %.17g", w[0], w[1]);
    ZT_CHECK(fabs(v[0] - SQRT1_2) < 1e-15 && fabs(v[2] - SQRT1_2) < 1e-15 && fabs(v[1] - SQRT1_2) < 1e-15 &&
             fabs(v[3] + SQRT1_2) < 1e-15, "2x2 vectors %g %g / %g %g", v[0], v[2], v[1], v[3]);
    /* zero matrix: all zero, V orthonormal (identity) */
    memset(a, 0, sizeof a);
    ZT_REQUIRE(zs_eigh(w, v, a, 5) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 5; i++) ZT_CHECK(w[i] == 0, "zero matrix w[%d] = %g", i, w[i]);
    ZT_CHECK(orth_err(v, 5, 5, 1) == 0, "zero matrix: V not orthonormal");
    /* repeated eigenvalues: A = Q diag(3,3,3,1,1,-2) Q^T, Q a Householder reflector */
    for (i = 0; i < 6; i++) { x[i] = i + 1.0; nx += x[i] * x[i]; }
    for (i = 0; i < 6; i++)
        for (j = 0; j < 6; j++) q[i * 6 + j] = (i == j) - 2 * x[i] * x[j] / nx;
    for (i = 0; i < 6; i++)
        for (j = 0; j < 6; j++) {
            double s = 0;
            for (t = 0; t < 6; t++) s += q[i * 6 + t] * d[t] * q[j * 6 + t];
            a[i * 6 + j] = s;
        }
    memcpy(q, a, sizeof(double) * 36);
    ZT_REQUIRE(zs_eigh(w, v, a, 6) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 6; i++) ZT_CHECK(fabs(w[i] - d[i]) < 1e-14, "repeated: w[%d] = %.17g want %g", i, w[i], d[i]);
    check_eig(q, w, v, 6, 1e-14, "repeated");
    /* diagonal input (Householder steps all skipped) */
    memset(a, 0, sizeof a);
    for (i = 0; i < 7; i++) a[i * 7 + i] = (i * 5) % 7 - 3.0;
    memcpy(q, a, sizeof(double) * 49);
    ZT_REQUIRE(zs_eigh(w, v, a, 7) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 7; i++) ZT_CHECK(w[i] == 3.0 - i, "diagonal: w[%d] = %g", i, w[i]);
    check_eig(q, w, v, 7, 0, "diagonal");
}

static void test_linalg_eigh_random(void) {
    int n = 300;
    double *a = (double *)malloc(sizeof(double) * n * n), *v = (double *)malloc(sizeof(double) * n * n), *w = (double *)malloc(sizeof(double) * n);
    double tr = 0, sw = 0;
    int i;
    rand_sym(a, n, 7);
    ZT_REQUIRE(zs_eigh(w, v, a, n) == ZS_OK, "%s", zs_last_error());
    check_eig(a, w, v, n, 1e-13, "random 300");
    for (i = 0; i < n; i++) { tr += a[i * n + i]; sw += w[i]; }
    ZT_CHECK(fabs(tr - sw) < 1e-11, "trace %.17g vs sum of eigenvalues %.17g", tr, sw);
    free(a); free(v); free(w);
}

static void test_linalg_eigh_2048(void) {
    int n = 2048;
    double *a, *v, *w, t0, worst = 0;
    int j, i, t;
    const char *big = getenv("ZS_LINALG_BIG");
    if (!big || !*big || *big == '0') ZT_SKIP("set ZS_LINALG_BIG=1 to time eigh at n = 2048");
    a = (double *)malloc(sizeof(double) * n * n);
    v = (double *)malloc(sizeof(double) * n * n);
    w = (double *)malloc(sizeof(double) * n);
    rand_sym(a, n, 11);
    t0 = (double)clock();
    ZT_REQUIRE(zs_eigh(w, v, a, n) == ZS_OK, "%s", zs_last_error());
    printf("  eigh n = 2048: %.2f s cpu\n", ((double)clock() - t0) / CLOCKS_PER_SEC);
    /* residual of 16 spread eigenpairs */
    for (j = 0; j < n; j += 131)
        for (i = 0; i < n; i++) {
            double s = 0;
            for (t = 0; t < n; t++) s += a[(size_t)i * n + t] * v[(size_t)t * n + j];
            worst = fmax(worst, fabs(s - w[j] * v[(size_t)i * n + j]));
        }
    ZT_CHECK(worst <= 1e-12 * fabs(w[0]), "n = 2048 residual %.3g", worst);
    free(a); free(v); free(w);
}

/* ---- SVD ------------------------------------------------------------------ */
static void svd_golden(const char *name, int m, int n) {
    char b[64];
    int k = m < n ? m : n, i;
    double *a, *gu, *gs, *gvt, *u, *s, *vt;
    snprintf(b, sizeof b, "%s_a", name); a = load(b, NULL, NULL, NULL);
    snprintf(b, sizeof b, "%s_u", name); gu = load(b, NULL, NULL, NULL);
    snprintf(b, sizeof b, "%s_s", name); gs = load(b, NULL, NULL, NULL);
    snprintf(b, sizeof b, "%s_vt", name); gvt = load(b, NULL, NULL, NULL);
    ZT_REQUIRE(a && gu && gs && gvt, "golden %s_* missing: run tools/linalg_ref.py", name);
    u = (double *)malloc(sizeof(double) * m * k);
    s = (double *)malloc(sizeof(double) * k);
    vt = (double *)malloc(sizeof(double) * k * n);
    ZT_REQUIRE(zs_svd(u, s, vt, a, m, n) == ZS_OK, "%s: %s", name, zs_last_error());
    for (i = 0; i < k; i++) ZT_CHECK(fabs(s[i] - gs[i]) <= 1e-5 * gs[i], "%s: s[%d] %.9g numpy %.9g", name, i, s[i], gs[i]);
    ZT_CHECK(maxdiff(u, gu, (size_t)m * k) <= 1e-5, "%s: U vs numpy %.3g", name, maxdiff(u, gu, (size_t)m * k));
    ZT_CHECK(maxdiff(vt, gvt, (size_t)k * n) <= 1e-5, "%s: Vt vs numpy %.3g", name, maxdiff(vt, gvt, (size_t)k * n));
    ZT_CHECK(recon_err(a, u, s, vt, m, n, k) <= 1e-14, "%s: reconstruction %.3g", name, recon_err(a, u, s, vt, m, n, k));
    ZT_CHECK(orth_err(u, m, k, 1) <= 1e-14, "%s: U^T U - I = %.3g", name, orth_err(u, m, k, 1));
    ZT_CHECK(orth_err(vt, n, k, 0) <= 1e-14, "%s: Vt Vt^T - I = %.3g", name, orth_err(vt, n, k, 0));
    /* optional outputs */
    ZT_CHECK(zs_svd(NULL, gs, NULL, a, m, n) == ZS_OK && maxdiff(s, gs, (size_t)k) == 0, "%s: s without U, Vt differs", name);
    free(a); free(gu); free(gs); free(gvt); free(u); free(s); free(vt);
}
static void test_linalg_svd_golden(void) {
    svd_golden("svd_tall", 30, 20);
    svd_golden("svd_wide", 20, 33);
}

static void test_linalg_svd_rank_deficient(void) {
    double *a = load("svd_rank_a", NULL, NULL, NULL), *gs = load("svd_rank_s", NULL, NULL, NULL);
    double u[25 * 18], s[18], vt[18 * 18], b[12 * 9];
    int i, j;
    ZT_REQUIRE(a && gs, "golden svd_rank_* missing");
    ZT_REQUIRE(zs_svd(u, s, vt, a, 25, 18) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 18; i++)
        ZT_CHECK(fabs(s[i] - gs[i]) <= 1e-5 * gs[i] + 1e-12 * gs[0], "rank 5: s[%d] %.9g numpy %.9g", i, s[i], gs[i]);
    ZT_CHECK(recon_err(a, u, s, vt, 25, 18, 18) <= 1e-14, "rank 5 reconstruction %.3g", recon_err(a, u, s, vt, 25, 18, 18));
    ZT_CHECK(orth_err(u, 25, 18, 1) <= 1e-12, "rank 5: U^T U - I = %.3g", orth_err(u, 25, 18, 1));
    ZT_CHECK(orth_err(vt, 18, 18, 0) <= 1e-13, "rank 5: V not orthogonal %.3g", orth_err(vt, 18, 18, 0));
    /* exactly rank 2 in floating point (integer entries, two independent
       columns repeated), wide orientation too */
    for (i = 0; i < 12; i++)
        for (j = 0; j < 9; j++) b[i * 9 + j] = (j % 3 == 0) ? i + 1.0 : (j % 3 == 1) ? (i % 4) - 1.5 : 2 * (i + 1.0);
    ZT_REQUIRE(zs_svd(u, s, vt, b, 12, 9) == ZS_OK, "%s", zs_last_error());
    for (i = 2; i < 9; i++) ZT_CHECK(s[i] <= 1e-14 * s[0], "rank 2: s[%d] = %.3g", i, s[i]);
    ZT_CHECK(recon_err(b, u, s, vt, 12, 9, 9) <= 1e-14, "rank 2 reconstruction");
    ZT_CHECK(orth_err(u, 12, 9, 1) <= 1e-12, "rank 2: U^T U - I = %.3g", orth_err(u, 12, 9, 1));
    ZT_REQUIRE(zs_svd(u, s, vt, b, 9, 12) == ZS_OK, "%s", zs_last_error()); /* same data read as 9 x 12 */
    ZT_CHECK(recon_err(b, u, s, vt, 9, 12, 9) <= 1e-14, "9x12 reconstruction");
    ZT_CHECK(orth_err(u, 9, 9, 1) <= 1e-12 && orth_err(vt, 12, 9, 0) <= 1e-12, "9x12 orthogonality");
    free(a); free(gs);
}

static void test_linalg_svd_degenerate(void) {
    double a[64], u[64], s[8], vt[64];
    int i;
    /* zero 4x3 */
    memset(a, 0, sizeof a);
    ZT_REQUIRE(zs_svd(u, s, vt, a, 4, 3) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(s[0] == 0 && s[1] == 0 && s[2] == 0, "zero: s %g %g %g", s[0], s[1], s[2]);
    ZT_CHECK(orth_err(u, 4, 3, 1) <= 1e-15 && orth_err(vt, 3, 3, 0) <= 1e-15, "zero: U or V not orthonormal");
    /* zero 3x20 (wide, k >= 8 path skipped since k = 3) and 10x9 (preconditioned path) */
    ZT_REQUIRE(zs_svd(u, s, vt, a, 8, 8) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(s[0] == 0 && orth_err(u, 8, 8, 1) <= 1e-15 && orth_err(vt, 8, 8, 0) <= 1e-15, "zero 8x8");
    /* 1x1: -3 = (-1) 3 (1) */
    a[0] = -3;
    ZT_REQUIRE(zs_svd(u, s, vt, a, 1, 1) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(s[0] == 3 && u[0] == -1 && vt[0] == 1, "1x1: u %g s %g vt %g", u[0], s[0], vt[0]);
    /* n x 1: column (3, -4, 0, 0, 12)/13 * 13 */
    a[0] = 3; a[1] = -4; a[2] = 0; a[3] = 0; a[4] = 12;
    ZT_REQUIRE(zs_svd(u, s, vt, a, 5, 1) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(fabs(s[0] - 13) < 1e-14 && vt[0] == 1, "5x1: s %.17g vt %g", s[0], vt[0]);
    for (i = 0; i < 5; i++) ZT_CHECK(fabs(u[i] - a[i] / 13) < 1e-15, "5x1: u[%d] = %g", i, u[i]);
    /* 1 x n: row (3, -4, 0, 0, -12): v's largest entry -12 is made positive, u = -1 */
    a[4] = -12;
    ZT_REQUIRE(zs_svd(u, s, vt, a, 1, 5) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(fabs(s[0] - 13) < 1e-14 && u[0] == -1, "1x5: s %.17g u %g", s[0], u[0]);
    for (i = 0; i < 5; i++) ZT_CHECK(fabs(vt[i] + a[i] / 13) < 1e-15, "1x5: vt[%d] = %g", i, vt[i]);
    /* repeated singular values: an orthogonal matrix (Householder) -> all 1 */
    for (i = 0; i < 36; i++) a[i] = (i / 6 == i % 6) - 2.0 * (i / 6 + 1) * (i % 6 + 1) / 91.0;
    ZT_REQUIRE(zs_svd(u, s, vt, a, 6, 6) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 6; i++) ZT_CHECK(fabs(s[i] - 1) < 1e-15, "orthogonal: s[%d] = %.17g", i, s[i]);
    ZT_CHECK(recon_err(a, u, s, vt, 6, 6, 6) <= 1e-15, "orthogonal reconstruction");
}

/* the teacher fc shape [1000, 2048] (a quarter of it per side under
   AddressSanitizer, where it would take ~20 s) */
static void test_linalg_svd_teacher(void) {
#if defined(__SANITIZE_ADDRESS__)
    int m = 250, n = 512, k = 250;
#else
    int m = 1000, n = 2048, k = 1000;
#endif
    double *a = (double *)malloc(sizeof(double) * m * n), *u = (double *)malloc(sizeof(double) * m * k);
    double *s = (double *)malloc(sizeof(double) * k), *vt = (double *)malloc(sizeof(double) * k * n), t0, e = 0, an = 0;
    int i, j, t;
    for (i = 0; i < m * n; i++) a[i] = 0.02 * zt_rand(5, (unsigned long long)i);
    t0 = (double)clock();
    ZT_REQUIRE(zs_svd(u, s, vt, a, m, n) == ZS_OK, "%s", zs_last_error());
    printf("  svd %d x %d: %.2f s cpu\n", m, n, ((double)clock() - t0) / CLOCKS_PER_SEC);
    /* reconstruction of 50 rows, orthogonality of 40 leading/trailing vectors */
    for (i = 0; i < m; i += m / 50)
        for (j = 0; j < n; j++) {
            double x = -a[(size_t)i * n + j];
            for (t = 0; t < k; t++) x += u[(size_t)i * k + t] * s[t] * vt[(size_t)t * n + j];
            e += x * x;
            an += a[(size_t)i * n + j] * a[(size_t)i * n + j];
        }
    ZT_CHECK(sqrt(e / an) <= 1e-13, "teacher reconstruction %.3g", sqrt(e / an));
    for (i = 0; i < k; i += k / 40)
        for (j = i; j < k; j += 37) {
            double du = 0, dv = 0;
            for (t = 0; t < m; t++) du += u[(size_t)t * k + i] * u[(size_t)t * k + j];
            for (t = 0; t < n; t++) dv += vt[(size_t)i * n + t] * vt[(size_t)j * n + t];
            ZT_CHECK(fabs(du - (i == j)) <= 1e-13 && fabs(dv - (i == j)) <= 1e-13, "teacher orthogonality (%d,%d): %.3g %.3g",
                     i, j, du, dv);
        }
    for (i = 1; i < k; i++) ZT_CHECK(s[i] <= s[i - 1], "teacher s not descending at %d", i);
    /* Marchenko-Pastur edges for iid entries of variance 0.02^2/3:
       sigma * (sqrt(n) +- sqrt(m)) */
    {
        double sg = 0.02 / sqrt(3.0), hi = sg * (sqrt((double)n) + sqrt((double)m)), lo = sg * (sqrt((double)n) - sqrt((double)m));
        ZT_CHECK(fabs(s[0] / hi - 1) < 0.05 && fabs(s[k - 1] / lo - 1) < 0.1, "teacher s range %.4g..%.4g vs MP %.4g..%.4g",
                 s[0], s[k - 1], hi, lo);
    }
    free(a); free(u); free(s); free(vt);
}

/* ---- SPEC 2.1 head init ----------------------------------------------------- */
static void test_linalg_tcn_heads(void) {
    double *fw = load("tcn_fc_w", NULL, NULL, NULL), *fb = load("tcn_fc_b", NULL, NULL, NULL);
    double *gh = load("tcn_h_w", NULL, NULL, NULL), *gk = load("tcn_kd_w", NULL, NULL, NULL);
    float w[240], b[12], h[12 * 20], kd[12 * 12], kb[12], x[20];
    double worst = 0;
    int i, j, t;
    ZT_REQUIRE(fw && fb && gh && gk, "golden tcn_* missing");
    for (i = 0; i < 240; i++) w[i] = (float)fw[i];
    for (i = 0; i < 12; i++) b[i] = (float)fb[i];
    ZT_REQUIRE(zs_tcn_init_heads(h, kd, kb, w, b, 12, 20, 5) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 100; i++) worst = fmax(worst, fabs(h[i] - gh[i]));
    ZT_CHECK(worst <= 1e-6, "h.weight vs numpy %.3g", worst);
    worst = 0;
    for (i = 0; i < 60; i++) worst = fmax(worst, fabs(kd[i] - gk[i]));
    ZT_CHECK(worst <= 1e-5, "kd.weight vs numpy %.3g", worst);
    for (i = 0; i < 12; i++) ZT_CHECK(kb[i] == b[i], "kd.bias[%d] is not the fc bias", i);
    /* D = min: kd(h(x)) == W x + b */
    ZT_REQUIRE(zs_tcn_init_heads(h, kd, kb, w, b, 12, 20, 12) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < 20; i++) x[i] = zt_rand(9, (unsigned long long)i);
    worst = 0;
    for (i = 0; i < 12; i++) {
        double y = kb[i], ref = b[i];
        for (j = 0; j < 12; j++) {
            double hj = 0;
            for (t = 0; t < 20; t++) hj += (double)h[j * 20 + t] * x[t];
            y += (double)kd[i * 12 + j] * hj;
        }
        for (t = 0; t < 20; t++) ref += (double)w[i * 20 + t] * x[t];
        worst = fmax(worst, fabs(y - ref));
    }
    ZT_CHECK(worst <= 1e-6, "full-rank heads do not reproduce the teacher fc: %.3g", worst);
    /* NULL bias -> zeros; bad D */
    ZT_CHECK(zs_tcn_init_heads(h, kd, kb, w, NULL, 12, 20, 3) == ZS_OK && kb[0] == 0 && kb[11] == 0, "NULL bias");
    ZT_CHECK(zs_tcn_init_heads(h, kd, kb, w, b, 12, 20, 13) == ZS_ERR_ARG, "D > min accepted");
    ZT_CHECK(zs_tcn_init_heads(h, kd, kb, w, b, 12, 20, 0) == ZS_ERR_ARG, "D = 0 accepted");
    ZT_CHECK(zs_tcn_init_heads(NULL, kd, kb, w, b, 12, 20, 3) == ZS_ERR_ARG, "NULL h accepted");
    free(fw); free(fb); free(gh); free(gk);
}

/* ---- ITQ -------------------------------------------------------------------- */
static int get_bit(const uint64_t *c, int j) { return (int)((c[j >> 6] >> (j & 63)) & 1); }

static void itq_golden(const char *name, int n, int dim, int bits) {
    char b[64];
    double *x, *r0, *gc;
    float *xf, *rf;
    uint64_t *codes, *enc;
    int words = ZS_ITQ_WORDS(bits), i, j, bad = 0, bad_enc = 0;
    zs_itq q;
    snprintf(b, sizeof b, "%s_x", name); x = load(b, NULL, NULL, NULL);
    snprintf(b, sizeof b, "%s_r0", name); r0 = load(b, NULL, NULL, NULL);
    snprintf(b, sizeof b, "%s_codes", name); gc = load(b, NULL, NULL, NULL);
    ZT_REQUIRE(x && r0 && gc, "golden %s_* missing", name);
    xf = (float *)malloc(sizeof(float) * n * dim);
    rf = (float *)malloc(sizeof(float) * bits * bits);
    codes = (uint64_t *)malloc(sizeof(uint64_t) * n * words);
    enc = (uint64_t *)malloc(sizeof(uint64_t) * n * words);
    for (i = 0; i < n * dim; i++) xf[i] = (float)x[i];
    for (i = 0; i < bits * bits; i++) rf[i] = (float)r0[i];
    ZT_REQUIRE(zs_itq_train(&q, codes, xf, n, dim, bits, 50, 0, rf) == ZS_OK, "%s: %s", name, zs_last_error());
    ZT_CHECK(q.dim == dim && q.bits == bits, "%s: dims %d %d", name, q.dim, q.bits);
    for (i = 0; i < n; i++)
        for (j = 0; j < bits; j++) bad += get_bit(codes + (size_t)i * words, j) != (gc[i * bits + j] != 0);
    ZT_CHECK(bad == 0, "%s: %d of %d code bits differ from numpy", name, bad, n * bits);
    for (i = 0; i < n; i++)
        if (bits & 63) ZT_CHECK((codes[(size_t)i * words + words - 1] >> (bits & 63)) == 0, "%s: padding bits set", name);
    ZT_REQUIRE(zs_itq_encode(&q, enc, xf, n) == ZS_OK, "%s", zs_last_error());
    for (i = 0; i < n * words; i++) bad_enc += enc[i] != codes[i];
    ZT_CHECK(bad_enc == 0, "%s: encode (float params) differs from the training codes in %d words", name, bad_enc);
    if (!strcmp(name, "itq1")) {
        double *gm = load("itq1_mean", NULL, NULL, NULL), *gp = load("itq1_proj", NULL, NULL, NULL),
               *gr = load("itq1_rot", NULL, NULL, NULL), wm = 0, wp = 0, wr = 0;
        ZT_REQUIRE(gm && gp && gr, "golden itq1 params missing");
        for (i = 0; i < dim; i++) wm = fmax(wm, fabs(q.mean[i] - gm[i]));
        for (i = 0; i < dim * bits; i++) wp = fmax(wp, fabs(q.proj[i] - gp[i]));
        for (i = 0; i < bits * bits; i++) wr = fmax(wr, fabs(q.rot[i] - gr[i]));
        ZT_CHECK(wm <= 1e-6 && wp <= 1e-5 && wr <= 1e-5, "itq1 params vs numpy: mean %.3g proj %.3g rot %.3g", wm, wp, wr);
        free(gm); free(gp); free(gr);
    }
    zs_itq_free(&q);
    free(x); free(r0); free(gc); free(xf); free(rf); free(codes); free(enc);
}
static void test_linalg_itq_golden(void) {
    itq_golden("itq1", 300, 24, 12);
    itq_golden("itq2", 150, 72, 66);
}

/* quantisation loss ||B - V R||^2 of the model on x */
static double itq_loss(const zs_itq *q, const float *x, int n) {
    double loss = 0;
    int i, j, b, c;
    for (i = 0; i < n; i++)
        for (c = 0; c < q->bits; c++) {
            double z = 0;
            for (b = 0; b < q->bits; b++) {
                double v = 0;
                for (j = 0; j < q->dim; j++) v += ((double)x[i * q->dim + j] - q->mean[j]) * q->proj[j * q->bits + b];
                z += v * q->rot[b * q->bits + c];
            }
            loss += (z >= 0 ? 1 - z : -1 - z) * (z >= 0 ? 1 - z : -1 - z);
        }
    return loss;
}

static void test_linalg_itq_seeded(void) {
    enum { N = 200, D = 16, B = 8 };
    float x[N * D];
    zs_itq q0, q1, q2;
    double l0, l1, worst = 0;
    int i, j, t;
    for (i = 0; i < N; i++)
        for (j = 0; j < D; j++) x[i * D + j] = zt_rand(3, (unsigned long long)(i % 5) * D + j) * 2 + 0.5f * zt_rand(4, (unsigned long long)i * D + j);
    ZT_REQUIRE(zs_itq_train(&q0, NULL, x, N, D, B, 0, 42, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(zs_itq_train(&q1, NULL, x, N, D, B, 50, 42, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(zs_itq_train(&q2, NULL, x, N, D, B, 50, 42, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(!memcmp(q1.rot, q2.rot, sizeof(float) * B * B), "same seed, different rotation");
    for (i = 0; i < B; i++)
        for (j = 0; j < B; j++) {
            double s0 = 0, s1 = 0;
            for (t = 0; t < B; t++) { s0 += (double)q0.rot[t * B + i] * q0.rot[t * B + j]; s1 += (double)q1.rot[t * B + i] * q1.rot[t * B + j]; }
            worst = fmax(worst, fmax(fabs(s0 - (i == j)), fabs(s1 - (i == j))));
        }
    ZT_CHECK(worst <= 1e-6, "rotation not orthogonal: %.3g", worst);
    l0 = itq_loss(&q0, x, N);
    l1 = itq_loss(&q1, x, N);
    ZT_CHECK(l1 < l0, "50 ITQ iterations did not lower the quantisation loss: %.6g -> %.6g", l0, l1);
    /* PCA directions orthonormal */
    worst = 0;
    for (i = 0; i < B; i++)
        for (j = 0; j < B; j++) {
            double s = 0;
            for (t = 0; t < D; t++) s += (double)q1.proj[t * B + i] * q1.proj[t * B + j];
            worst = fmax(worst, fabs(s - (i == j)));
        }
    ZT_CHECK(worst <= 1e-6, "projection not orthonormal: %.3g", worst);
    zs_itq_free(&q0); zs_itq_free(&q1); zs_itq_free(&q2);
    /* degenerate: rank-1 data, bits 3 -> two zero PCA columns, singular C
       every iteration (the rotation is then not unique, but must stay
       orthogonal and the call must succeed) */
    for (i = 0; i < 20; i++)
        for (j = 0; j < 4; j++) x[i * 4 + j] = (float)((i % 3) * (j + 1));
    ZT_REQUIRE(zs_itq_train(&q0, NULL, x, 20, 4, 3, 50, 9, NULL) == ZS_OK, "%s", zs_last_error());
    worst = 0;
    for (i = 0; i < 3; i++)
        for (j = 0; j < 3; j++) {
            double s0 = 0;
            for (t = 0; t < 3; t++) s0 += (double)q0.rot[t * 3 + i] * q0.rot[t * 3 + j];
            worst = fmax(worst, fabs(s0 - (i == j)));
        }
    ZT_CHECK(worst <= 1e-6, "degenerate ITQ: rotation not orthogonal %.3g", worst);
    zs_itq_free(&q0);
}

static void test_linalg_itq_save_load(void) {
    enum { N = 60, D = 10, B = 7 };
    const char *path = "build/test_linalg_itq.safetensors";
    float x[N * D], bad[64];
    uint64_t c1[N], c2[N];
    zs_itq q, r;
    int64_t sm[1] = {D}, sp[2] = {D, B}, sr[2] = {B, B + 1};
    zs_st_entry e[3];
    int i;
    zt_fill(x, N * D, 77, 1.0f);
    ZT_REQUIRE(zs_itq_train(&q, NULL, x, N, D, B, 10, 1, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(zs_itq_save(&q, path) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(zs_itq_load(&r, path) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(r.dim == D && r.bits == B && !memcmp(q.mean, r.mean, sizeof(float) * D) &&
             !memcmp(q.proj, r.proj, sizeof(float) * D * B) && !memcmp(q.rot, r.rot, sizeof(float) * B * B), "round trip differs");
    ZT_CHECK(zs_itq_encode(&q, c1, x, N) == ZS_OK && zs_itq_encode(&r, c2, x, N) == ZS_OK && !memcmp(c1, c2, sizeof c1),
             "codes differ after load");
    zs_itq_free(&r);
    /* corrupt files */
    e[0].name = "itq.mean"; e[0].type = ZS_F32; e[0].ndim = 1; e[0].shape = sm; e[0].data = q.mean;
    e[1].name = "itq.proj"; e[1].type = ZS_F32; e[1].ndim = 2; e[1].shape = sp; e[1].data = q.proj;
    e[2].name = "itq.rot"; e[2].type = ZS_F32; e[2].ndim = 2; e[2].shape = sr; e[2].data = bad;
    memset(bad, 0, sizeof bad);
    ZT_REQUIRE(zs_st_save(path, e, 3, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(zs_itq_load(&r, path) == ZS_ERR_FORMAT && strstr(zs_last_error(), "shape"), "rot [b, b+1] accepted: %s", zs_last_error());
    ZT_CHECK(r.mean == NULL && r.rot == NULL, "failed load left allocations");
    ZT_REQUIRE(zs_st_save(path, e, 2, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(zs_itq_load(&r, path) == ZS_ERR_FORMAT && strstr(zs_last_error(), "missing"), "missing rot accepted: %s", zs_last_error());
    sr[1] = B;
    for (i = 0; i < 64; i++) bad[i] = 0.f;
    bad[3] = NAN;
    ZT_REQUIRE(zs_st_save(path, e, 3, NULL) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(zs_itq_load(&r, path) == ZS_ERR_FORMAT && strstr(zs_last_error(), "non-finite"), "NaN accepted: %s", zs_last_error());
    ZT_CHECK(zs_itq_load(&r, "build/no_such_itq.safetensors") != ZS_OK && zs_last_error()[0], "missing file accepted");
    remove(path);
    zs_itq_free(&q);
}

/* ---- Hamming ------------------------------------------------------------------ */
static void test_linalg_hamming(void) {
    static const int bits_list[4] = {5, 64, 70, 130};
    int bi, i, j, t;
    for (bi = 0; bi < 4; bi++) {
        int bits = bits_list[bi], words = ZS_ITQ_WORDS(bits), na = 9, nb = 13;
        uint64_t a[9 * 3], b[13 * 3];
        float d[9 * 13];
        for (i = 0; i < na * words; i++) a[i] = zs__mix64(1000 + (uint64_t)i); /* garbage past `bits` too */
        for (i = 0; i < nb * words; i++) b[i] = zs__mix64(5000 + (uint64_t)i);
        ZT_REQUIRE(zs_hamming_matrix(d, a, na, b, nb, bits) == ZS_OK, "%s", zs_last_error());
        for (i = 0; i < na; i++)
            for (j = 0; j < nb; j++) {
                int ref = 0;
                for (t = 0; t < bits; t++) ref += get_bit(a + i * words, t) != get_bit(b + j * words, t);
                ZT_CHECK(d[i * nb + j] == (float)ref, "bits %d (%d,%d): %g want %d", bits, i, j, d[i * nb + j], ref);
            }
    }
    for (i = 0; i < 1000; i++) {
        uint64_t v = zs__mix64((uint64_t)i) >> (i % 64);
        int ref = 0;
        for (t = 0; t < 64; t++) ref += (int)((v >> t) & 1);
        ZT_CHECK(zs__popcount64_portable(v) == ref && (int)zs__popcount64(v) == ref, "popcount(%llx)", (unsigned long long)v);
    }
    ZT_CHECK(zs__popcount64_portable(~(uint64_t)0) == 64 && zs__popcount64_portable(0) == 0, "popcount edges");
    /* distances into the metrics: gallery item i has query i's code with i
       bits flipped, labels match pairwise -> each query's nearest is its own */
    {
        uint64_t qa[4], ga[4];
        float d[16];
        int32_t ql[4] = {0, 1, 2, 3}, gl[4] = {0, 1, 2, 3};
        zs_metrics mt;
        for (i = 0; i < 4; i++) { qa[i] = (uint64_t)0xF << (8 * i); ga[i] = qa[i] ^ (((uint64_t)1 << i) - 1); }
        ZT_REQUIRE(zs_hamming_matrix(d, qa, 4, ga, 4, 40) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(d[0] == 0 && d[5] == 1 && d[10] == 2 && d[15] == 3 && d[1] == 4 + 3, /* 0xF ^ (0xF00 ^ 1) */ "hamming %g %g %g %g %g", d[0], d[5], d[10], d[15], d[1]);
        ZT_REQUIRE(zs_eval_retrieval(d, 4, 4, ql, gl, &mt) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(mt.map_all == 1.0, "mAP from Hamming distances %g", mt.map_all);
    }
}

/* ---- private kernels ----------------------------------------------------------- */
static void test_linalg_dgemm(void) {
    /* edges in every direction: M % 4, N % 8, K > 128 (two k blocks), N > 256
       (two column blocks), padded leading dims, accumulate, with and without
       the caller's pack buffer */
    enum { M = 13, N = 270, K = 300, LDA = K + 3, LDB = N + 5, LDC = N + 1 };
    double *a = (double *)malloc(sizeof(double) * M * LDA), *b = (double *)malloc(sizeof(double) * K * LDB);
    double *c = (double *)malloc(sizeof(double) * M * LDC), *c2 = (double *)malloc(sizeof(double) * M * LDC);
    double *pk = (double *)malloc(sizeof(double) * ZS__DGEMM_PACK), worst = 0, worst2 = 0;
    int i, j, k;
    for (i = 0; i < M * LDA; i++) a[i] = zt_rand(21, (unsigned long long)i);
    for (i = 0; i < K * LDB; i++) b[i] = zt_rand(22, (unsigned long long)i);
    for (i = 0; i < M * LDC; i++) c[i] = c2[i] = zt_rand(23, (unsigned long long)i);
    zs__dgemm(c, LDC, a, LDA, b, LDB, M, N, K, 1, pk);
    zs__dgemm(c2, LDC, a, LDA, b, LDB, M, N, K, 0, NULL);
    for (i = 0; i < M; i++)
        for (j = 0; j < LDC; j++) {
            double ref = 0;
            if (j >= N) { /* padding untouched */
                ZT_CHECK(c[i * LDC + j] == zt_rand(23, (unsigned long long)(i * LDC + j)), "padding written at %d,%d", i, j);
                continue;
            }
            for (k = 0; k < K; k++) ref += a[i * LDA + k] * b[k * LDB + j];
            worst2 = fmax(worst2, fabs(c2[i * LDC + j] - ref));
            worst = fmax(worst, fabs(c[i * LDC + j] - ref - zt_rand(23, (unsigned long long)(i * LDC + j))));
        }
    ZT_CHECK(worst <= 1e-12 && worst2 <= 1e-12, "dgemm vs naive: accumulate %.3g, overwrite %.3g", worst, worst2);
    free(a); free(b); free(c); free(c2); free(pk);
}

/* ---- bad arguments ------------------------------------------------------------ */
static void test_linalg_bad_args(void) {
    double a[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, w[3], v[9], s[3];
    float x[40], r[4];
    uint64_t c[4];
    float dd[4];
    zs_itq q;
    ZT_CHECK(zs_eigh(NULL, v, a, 3) == ZS_ERR_ARG, "eigh NULL w");
    ZT_CHECK(zs_eigh(w, v, NULL, 3) == ZS_ERR_ARG, "eigh NULL a");
    ZT_CHECK(zs_eigh(w, v, a, 0) == ZS_ERR_ARG && strstr(zs_last_error(), "n = 0"), "eigh n = 0: %s", zs_last_error());
    ZT_CHECK(zs_eigh(w, v, a, -4) == ZS_ERR_ARG, "eigh n < 0");
    a[3] = NAN; /* lower triangle is read */
    ZT_CHECK(zs_eigh(w, v, a, 3) == ZS_ERR_ARG && strstr(zs_last_error(), "not finite"), "eigh NaN: %s", zs_last_error());
    a[3] = 0;
    a[1] = INFINITY; /* upper triangle is ignored */
    ZT_CHECK(zs_eigh(w, v, a, 3) == ZS_OK, "eigh read the upper triangle");
    ZT_CHECK(zs_svd(NULL, s, NULL, a, 3, 3) == ZS_ERR_ARG, "svd inf accepted");
    a[1] = 0;
    ZT_CHECK(zs_svd(NULL, NULL, NULL, a, 3, 3) == ZS_ERR_ARG, "svd NULL s");
    ZT_CHECK(zs_svd(NULL, s, NULL, a, 0, 3) == ZS_ERR_ARG && zs_svd(NULL, s, NULL, a, 3, -1) == ZS_ERR_ARG, "svd bad shape");
    zt_fill(x, 40, 5, 1.0f);
    ZT_CHECK(zs_itq_train(&q, NULL, x, 10, 4, 5, 50, 0, NULL) == ZS_ERR_ARG, "itq bits > dim");
    ZT_CHECK(zs_itq_train(&q, NULL, x, 1, 4, 2, 50, 0, NULL) == ZS_ERR_ARG, "itq n = 1");
    ZT_CHECK(zs_itq_train(&q, NULL, x, 10, 4, 0, 50, 0, NULL) == ZS_ERR_ARG, "itq bits 0");
    ZT_CHECK(zs_itq_train(&q, NULL, x, 10, 4, 2, -1, 0, NULL) == ZS_ERR_ARG, "itq iters < 0");
    ZT_CHECK(zs_itq_train(&q, NULL, NULL, 10, 4, 2, 5, 0, NULL) == ZS_ERR_ARG, "itq NULL x");
    r[0] = 1; r[1] = 0; r[2] = 0; r[3] = INFINITY;
    ZT_CHECK(zs_itq_train(&q, NULL, x, 10, 4, 2, 5, 0, r) == ZS_ERR_ARG, "itq inf init_rot");
    x[7] = NAN;
    ZT_CHECK(zs_itq_train(&q, NULL, x, 10, 4, 2, 5, 0, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "x[1][3]"),
             "itq NaN x: %s", zs_last_error());
    ZT_CHECK(q.mean == NULL, "failed train left allocations");
    memset(&q, 0, sizeof q);
    ZT_CHECK(zs_itq_encode(&q, c, x, 1) == ZS_ERR_ARG, "encode with an untrained itq");
    ZT_CHECK(zs_itq_save(&q, "build/x.safetensors") == ZS_ERR_ARG, "save untrained");
    ZT_CHECK(zs_hamming_matrix(dd, c, 2, c, 2, 0) == ZS_ERR_ARG, "hamming bits 0");
    ZT_CHECK(zs_hamming_matrix(NULL, c, 2, c, 2, 8) == ZS_ERR_ARG, "hamming NULL dist");
    ZT_CHECK(zs_hamming_matrix(dd, c, -1, c, 2, 8) == ZS_ERR_ARG, "hamming na < 0");
    ZT_CHECK(zs_hamming_matrix(dd, NULL, 0, c, 2, 8) == ZS_OK, "hamming empty query set");
    zs_itq_free(NULL);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_linalg_eigh_golden);
    ZT_RUN(test_linalg_eigh_degenerate);
    ZT_RUN(test_linalg_eigh_random);
    ZT_RUN(test_linalg_eigh_2048);
    ZT_RUN(test_linalg_svd_golden);
    ZT_RUN(test_linalg_svd_rank_deficient);
    ZT_RUN(test_linalg_svd_degenerate);
    ZT_RUN(test_linalg_svd_teacher);
    ZT_RUN(test_linalg_tcn_heads);
    ZT_RUN(test_linalg_itq_golden);
    ZT_RUN(test_linalg_itq_seeded);
    ZT_RUN(test_linalg_itq_save_load);
    ZT_RUN(test_linalg_hamming);
    ZT_RUN(test_linalg_dgemm);
    ZT_RUN(test_linalg_bad_args);
    return zt_finish();
}
