/* Quick, Draw! drawings ([impl:quickdraw]): hand-worked rasters (a width-3
   line and a dot whose pixel values are derived below), the blank-sketch
   path into zs_preprocess_sketch, the canvas mapping, the synthetic ndjson
   of tests/golden (escapes, skipped members, raw-format timestamps, number
   forms), a golden comparison against tools/quickdraw_ref.py (numpy;
   regenerate with `/usr/bin/python3 tools/quickdraw_ref.py golden`), a
   corpus of bad lines (each must fail naming its line), streamed file
   reading across buffer refills, and every drawing of the real files in
   ../shared/data/quickdraw (skipped when absent). Temporary files go to
   $TMPDIR (default /tmp). */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

/* ---- helpers ------------------------------------------------------------- */

static void tmp_path(char *buf, size_t cap, const char *tag) {
    static int anchor;
    static unsigned long counter;
    const char *d = getenv("TMPDIR");
    snprintf(buf, cap, "%s/zs_test_qd_%lx_%lx_%lu_%s", d && *d ? d : "/tmp", (unsigned long)time(NULL),
             (unsigned long)(size_t)&anchor, ++counter, tag);
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

static const unsigned char *px(const zs_image *im, int x, int y) {
    return im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
}

/* the pixel is gray v in all three channels */
static int gray_is(const zs_image *im, int x, int y, int v) {
    const unsigned char *p = px(im, x, y);
    return p[0] == v && p[1] == v && p[2] == v;
}

static int same_str(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return !strcmp(a, b);
}

/* Two loads hold the same drawings (bit-identical coordinates). */
static int same_file(const zs_qd_file *a, const zs_qd_file *b, char *why, size_t cap) {
    int i, s;
    if (a->n != b->n) return snprintf(why, cap, "%d vs %d drawings", a->n, b->n), 0;
    for (i = 0; i < a->n; i++) {
        const zs_qd_drawing *p = &a->drawings[i], *q = &b->drawings[i];
        if (p->n_strokes != q->n_strokes || p->line != q->line || !same_str(p->word, q->word) ||
            !same_str(p->key_id, q->key_id))
            return snprintf(why, cap, "drawing %d header differs", i), 0;
        for (s = 0; s < p->n_strokes; s++) {
            const zs_qd_stroke *u = &p->strokes[s], *v = &q->strokes[s];
            if (u->n != v->n || memcmp(u->x, v->x, (size_t)u->n * sizeof(float)) ||
                memcmp(u->y, v->y, (size_t)u->n * sizeof(float)))
                return snprintf(why, cap, "drawing %d stroke %d differs", i, s), 0;
        }
    }
    return 1;
}

/* ---- hand-worked rasters --------------------------------------------------- */

/* Line (20,20)-(100,20), width 3 (r = 1.5, full ink to d <= 1, none from
   d >= 2), 128 x 128 canvas, margin 0: s = 128/256 = 0.5, ox = oy = 0, so
   u = (x + 0.5)/2: the line runs at v = 10.25 from u = 10.25 to 50.25.
   Pixel centres are at k + 0.5. Value = floor(255 (1 - cov) + 0.5).
   Column 30 (inside the line), row k: d = |k + 0.5 - 10.25|
     row 7: d 2.75 -> 255     row 8: d 1.75 -> cov 0.25 -> 191.25 -> 191
     row 9: d 0.75 -> 0       row 10: d 0.25 -> 0
     row 11: d 1.25 -> cov 0.75 -> 63.75 -> 64      row 12: d 2.25 -> 255
   Left cap (centre (10.25, 10.25)):
     (8,10): d = sqrt(1.75^2 + 0.25^2) = 1.76777 -> cov 0.23223 -> 195.78 -> 196
     (9,10): d = sqrt(0.75^2 + 0.25^2) = 0.79057 -> 0
     (9,11): d = sqrt(0.75^2 + 1.25^2) = 1.45774 -> cov 0.54226 -> 116.72 -> 117
     (8,11): d = sqrt(1.75^2 + 1.25^2) = 2.15058 -> 255
   Right cap (centre (50.25, 10.25)):
     (51,10): d = sqrt(1.25^2 + 0.25^2) = 1.27475 -> cov 0.72525 -> 70.06 -> 70
     (52,10): d >= 2.25 -> 255;  (50,10): 0 */
static void test_qd_hand_line(void) {
    static const float x[] = {20, 100}, y[] = {20, 20};
    static const int col30[] = {255, 255, 191, 0, 0, 64, 255, 255}; /* rows 6..13 */
    zs_qd_stroke st;
    zs_qd_drawing d;
    zs_qd_raster_opts o = zs_qd_raster_default_opts();
    zs_image im;
    static float cov[128 * 128];
    int k, r, x_, y_, nonwhite = 0;
    st.n = 2, st.x = x, st.y = y;
    memset(&d, 0, sizeof d);
    d.n_strokes = 1, d.strokes = &st;
    o.width = o.height = 128, o.margin = 0.0f, o.line_width = 3.0f;
    ZT_REQUIRE((r = zs_qd_render(&im, &d, &o)) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(im.w == 128 && im.h == 128, "size %dx%d", im.w, im.h);
    for (k = 0; k < 8; k++)
        ZT_CHECK(gray_is(&im, 30, 6 + k, col30[k]), "column 30 row %d = %d, want %d", 6 + k, px(&im, 30, 6 + k)[0],
                 col30[k]);
    ZT_CHECK(gray_is(&im, 8, 10, 196), "(8,10) = %d, want 196", px(&im, 8, 10)[0]);
    ZT_CHECK(gray_is(&im, 9, 10, 0), "(9,10) = %d, want 0", px(&im, 9, 10)[0]);
    ZT_CHECK(gray_is(&im, 9, 11, 117), "(9,11) = %d, want 117", px(&im, 9, 11)[0]);
    ZT_CHECK(gray_is(&im, 8, 11, 255), "(8,11) = %d, want 255", px(&im, 8, 11)[0]);
    ZT_CHECK(gray_is(&im, 51, 10, 70), "(51,10) = %d, want 70", px(&im, 51, 10)[0]);
    ZT_CHECK(gray_is(&im, 52, 10, 255), "(52,10) = %d, want 255", px(&im, 52, 10)[0]);
    ZT_CHECK(gray_is(&im, 50, 10, 0), "(50,10) = %d, want 0", px(&im, 50, 10)[0]);
    /* all ink lies in columns 8..51, rows 8..11 */
    for (y_ = 0; y_ < 128; y_++)
        for (x_ = 0; x_ < 128; x_++)
            if (!gray_is(&im, x_, y_, 255)) {
                nonwhite++;
                ZT_CHECK(x_ >= 8 && x_ <= 51 && y_ >= 8 && y_ <= 11, "ink at (%d,%d)", x_, y_);
            }
    /* 40 columns (10..49) x 4 rows of line body + the cap pixels counted above */
    ZT_CHECK(nonwhite >= 160 && nonwhite <= 44 * 4, "%d ink pixels", nonwhite);
    zs_image_free(&im);
    /* coverage is exact on these binary fractions */
    ZT_REQUIRE(zs_qd_coverage(cov, &d, &o) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(cov[8 * 128 + 30] == 0.25f && cov[11 * 128 + 30] == 0.75f && cov[10 * 128 + 30] == 1.0f &&
                 cov[12 * 128 + 30] == 0.0f,
             "coverage %g %g %g %g", cov[8 * 128 + 30], cov[11 * 128 + 30], cov[10 * 128 + 30], cov[12 * 128 + 30]);
    /* ink and paper colours: value = paper + (ink - paper) cov, rounded */
    o.ink[0] = 200, o.ink[1] = 10, o.ink[2] = 0;
    o.paper[0] = 0, o.paper[1] = 100, o.paper[2] = 40;
    ZT_REQUIRE(zs_qd_render(&im, &d, &o) == ZS_OK, "%s", zs_last_error());
    /* (30,11) cov 0.75: 150, 32.5 -> 33, 10; (30,8) cov 0.25: 50, 77.5 -> 78, 30 */
    ZT_CHECK(px(&im, 30, 11)[0] == 150 && px(&im, 30, 11)[1] == 33 && px(&im, 30, 11)[2] == 10, "colour (30,11) %d %d %d",
             px(&im, 30, 11)[0], px(&im, 30, 11)[1], px(&im, 30, 11)[2]);
    ZT_CHECK(px(&im, 30, 8)[0] == 50 && px(&im, 30, 8)[1] == 78 && px(&im, 30, 8)[2] == 30, "colour (30,8) %d %d %d",
             px(&im, 30, 8)[0], px(&im, 30, 8)[1], px(&im, 30, 8)[2]);
    ZT_CHECK(px(&im, 0, 0)[0] == 0 && px(&im, 0, 0)[1] == 100 && px(&im, 0, 0)[2] == 40, "paper");
    zs_image_free(&im);
}

/* A single point (64, 64), width 4 (r = 2: full ink to d <= 1.5, none from
   2.5), 64 x 64 canvas, margin 0, box 128: s = 0.5, the dot is centred at
   (32.25, 32.25).
     (32,32): d 0.354 -> 0
     (30,31): d = sqrt(1.75^2 + 0.75^2) = 1.90394 -> cov 0.59606 -> 103.0 -> 103
     (30,30): d = 1.75 sqrt 2 = 2.47487 -> cov 0.02513 -> 248.59 -> 249
     (34,31): d = sqrt(2.25^2 + 0.75^2) = 2.37171 -> cov 0.12829 -> 222.29 -> 222
     (33,31): d = sqrt(1.25^2 + 0.75^2) = 1.45774 -> 0
     (34,34): d = 3.18 -> 255
   The disc is symmetric about (32.25, 32.25) only up to the pixel grid, but
   exactly symmetric under x <-> y. */
static void test_qd_hand_dot(void) {
    static const float x[] = {64}, y[] = {64};
    zs_qd_stroke st;
    zs_qd_drawing d;
    zs_qd_raster_opts o = zs_qd_raster_default_opts();
    zs_image im;
    int i, j, ink = 0;
    st.n = 1, st.x = x, st.y = y;
    memset(&d, 0, sizeof d);
    d.n_strokes = 1, d.strokes = &st;
    o.width = o.height = 64, o.margin = 0.0f, o.line_width = 4.0f, o.box = 128.0f;
    ZT_REQUIRE(zs_qd_render(&im, &d, &o) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(gray_is(&im, 32, 32, 0), "(32,32) = %d", px(&im, 32, 32)[0]);
    ZT_CHECK(gray_is(&im, 30, 31, 103), "(30,31) = %d, want 103", px(&im, 30, 31)[0]);
    ZT_CHECK(gray_is(&im, 30, 30, 249), "(30,30) = %d, want 249", px(&im, 30, 30)[0]);
    ZT_CHECK(gray_is(&im, 34, 31, 222), "(34,31) = %d, want 222", px(&im, 34, 31)[0]);
    ZT_CHECK(gray_is(&im, 33, 31, 0), "(33,31) = %d, want 0", px(&im, 33, 31)[0]);
    ZT_CHECK(gray_is(&im, 34, 34, 255), "(34,34) = %d, want 255", px(&im, 34, 34)[0]);
    for (j = 0; j < 64; j++)
        for (i = 0; i < 64; i++) {
            ZT_CHECK(px(&im, i, j)[0] == px(&im, j, i)[0], "not symmetric at (%d,%d)", i, j);
            if (px(&im, i, j)[0] != 255) ink++;
        }
    /* pixel centres within d < 2.5 of (32.25, 32.25): rows/cols 30..34 minus corners */
    ZT_CHECK(ink >= 16 && ink <= 21, "%d ink pixels", ink);
    zs_image_free(&im);
}

/* ---- blank canvas, mapping ------------------------------------------------- */

static void test_qd_empty(void) {
    static const char text[] = "{\"word\":\"empty\",\"drawing\":[]}\n";
    zs_qd_file f;
    zs_image im;
    size_t i, n;
    int r, white = 1;
    static float t[3 * 224 * 224];
    ZT_REQUIRE(zs_qd_load_memory(&f, text, sizeof text - 1, "empty", NULL) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(f.n == 1 && f.drawings[0].n_strokes == 0 && f.drawings[0].strokes == NULL, "n %d", f.n);
    ZT_REQUIRE(zs_qd_render(&im, &f.drawings[0], NULL) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(im.w == 256 && im.h == 256, "default canvas %dx%d", im.w, im.h);
    n = (size_t)im.w * (size_t)im.h * 3;
    for (i = 0; i < n; i++) white &= im.rgb[i] == 255;
    ZT_CHECK(white, "the canvas is not blank");
    r = zs_preprocess_sketch(&im, 224, t);
    ZT_CHECK(r == ZS_ERR_ARG && strstr(zs_last_error(), "no ink"), "preprocess: %d %s", r, zs_last_error());
    zs_image_free(&im);
    zs_qd_free(&f);
    ZT_CHECK(f.n == 0 && f.drawings == NULL, "zs_qd_free must zero the file");
    zs_qd_free(&f); /* twice is fine */
    zs_qd_free(NULL);
}

static void test_qd_mapping(void) {
    /* default 256 x 256 with margin 0: (x, y) lands on the centre of pixel (x, y) */
    static const float x[] = {0, 255, 37}, y[] = {0, 255, 201};
    static const float cx[] = {127.5f}, cy[] = {127.5f};
    zs_qd_stroke st[3];
    zs_qd_drawing d;
    zs_qd_raster_opts o = zs_qd_raster_default_opts();
    static float cov[256 * 256];
    int k, i, j;
    memset(&d, 0, sizeof d);
    for (k = 0; k < 3; k++) st[k].n = 1, st[k].x = x + k, st[k].y = y + k;
    d.n_strokes = 3, d.strokes = st;
    o.margin = 0.0f, o.line_width = 1.0f; /* r 0.5: cov = clamp(1 - d): 1 at the centre only */
    ZT_REQUIRE(zs_qd_coverage(cov, &d, &o) == ZS_OK, "%s", zs_last_error());
    for (k = 0; k < 3; k++) {
        int cx_ = (int)x[k], cy_ = (int)y[k];
        ZT_CHECK(cov[cy_ * 256 + cx_] == 1.0f, "point %d: cov %g at its pixel", k, cov[cy_ * 256 + cx_]);
        if (cx_ + 1 < 256) ZT_CHECK(cov[cy_ * 256 + cx_ + 1] == 0.0f, "point %d: neighbour inked", k);
    }
    /* default margin (line_width/2 + 0.5 = 2 at width 3): box corners keep all their ink */
    o = zs_qd_raster_default_opts();
    ZT_REQUIRE(zs_qd_coverage(cov, &d, &o) == ZS_OK, "%s", zs_last_error());
    {
        double sum = 0;
        for (i = 0; i < 256 * 256; i++) sum += cov[i];
        /* s = 252/256; each dot has the same area on the grid up to its sub-pixel
           position: compare the three dots' ink with one unclipped dot far inside */
        for (j = 0; j < 2; j++) {
            double part = 0;
            int y0 = j ? 248 : 0, x0 = j ? 248 : 0;
            for (i = 0; i < 8 * 8; i++) part += cov[(y0 + i / 8) * 256 + x0 + i % 8];
            ZT_CHECK(part > 6.0 && part < 8.0, "corner %d ink %g (a width-3 disc has area ~7.07)", j, part);
            ZT_CHECK(cov[(j ? 255 : 0) * 256 + (j ? 255 : 0)] == 0.0f, "corner %d: ink on the canvas edge", j);
        }
        ZT_CHECK(sum > 18.0 && sum < 24.0, "total ink %g", sum);
    }
    /* non-square canvas: the box is centred, aspect kept; a dot at the box
       centre (127.5, 127.5) is centred on the canvas, so the coverage is
       mirror-symmetric in both directions */
    st[0].x = cx, st[0].y = cy;
    d.n_strokes = 1;
    o.width = 200, o.height = 100, o.line_width = 7.0f;
    ZT_REQUIRE(zs_qd_coverage(cov, &d, &o) == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(cov[50 * 200 + 100] == 1.0f && cov[49 * 200 + 99] == 1.0f, "centre not inked");
    for (j = 0; j < 100; j++)
        for (i = 0; i < 200; i++) {
            float a = cov[j * 200 + i];
            ZT_CHECK(a == cov[j * 200 + 199 - i] && a == cov[(99 - j) * 200 + i], "asymmetric at (%d,%d)", i, j);
        }
}

static void test_qd_bad_args(void) {
    static const float x[] = {1, 2}, y[] = {1, 2};
    float nanv, bx[2] = {1, 2};
    zs_qd_stroke st;
    zs_qd_drawing d;
    zs_qd_raster_opts o = zs_qd_raster_default_opts();
    zs_qd_limits lim = zs_qd_default_limits();
    zs_qd_file f;
    zs_image im;
    static float cov[256 * 256];
    uint32_t u = 0x7fc00000u;
    memcpy(&nanv, &u, 4);
    st.n = 2, st.x = x, st.y = y;
    memset(&d, 0, sizeof d);
    d.n_strokes = 1, d.strokes = &st;
    ZT_CHECK(zs_qd_coverage(cov, &d, NULL) == ZS_OK, "defaults");
    ZT_CHECK(zs_qd_coverage(NULL, &d, NULL) == ZS_ERR_ARG, "NULL cov");
    ZT_CHECK(zs_qd_coverage(cov, NULL, NULL) == ZS_ERR_ARG, "NULL drawing");
    ZT_CHECK(zs_qd_render(NULL, &d, NULL) == ZS_ERR_ARG, "NULL image");
    o.line_width = 0.0f;
    ZT_CHECK(zs_qd_render(&im, &d, &o) == ZS_ERR_ARG && im.rgb == NULL, "width 0");
    o.line_width = nanv;
    ZT_CHECK(zs_qd_coverage(cov, &d, &o) == ZS_ERR_ARG, "width NaN");
    o = zs_qd_raster_default_opts(), o.margin = 128.0f;
    ZT_CHECK(zs_qd_coverage(cov, &d, &o) == ZS_ERR_ARG && strstr(zs_last_error(), "no room"), "margin: %s",
             zs_last_error());
    o = zs_qd_raster_default_opts(), o.box = 0.5f;
    ZT_CHECK(zs_qd_coverage(cov, &d, &o) == ZS_ERR_ARG, "box 0.5");
    o = zs_qd_raster_default_opts(), o.width = 0;
    ZT_CHECK(zs_qd_coverage(cov, &d, &o) == ZS_ERR_ARG, "width 0 px");
    o = zs_qd_raster_default_opts(), o.height = ZS_IMAGE_MAX_DIM + 1;
    ZT_CHECK(zs_qd_coverage(cov, &d, &o) == ZS_ERR_ARG, "height too large");
    bx[1] = nanv, st.x = bx;
    ZT_CHECK(zs_qd_coverage(cov, &d, NULL) == ZS_ERR_ARG && strstr(zs_last_error(), "stroke 0 point 1"), "NaN point: %s",
             zs_last_error());
    bx[1] = 2e6f;
    ZT_CHECK(zs_qd_coverage(cov, &d, NULL) == ZS_ERR_ARG, "huge point");
    st.x = NULL;
    ZT_CHECK(zs_qd_coverage(cov, &d, NULL) == ZS_ERR_ARG, "NULL x");
    st.x = x, st.n = -1;
    ZT_CHECK(zs_qd_coverage(cov, &d, NULL) == ZS_ERR_ARG, "n -1");
    st.n = 0; /* empty hand-built stroke: nothing drawn */
    ZT_CHECK(zs_qd_coverage(cov, &d, NULL) == ZS_OK && cov[0] == 0.0f, "n 0: %s", zs_last_error());
    /* loader arguments */
    ZT_CHECK(zs_qd_load(&f, NULL, NULL) == ZS_ERR_ARG && f.n == 0, "NULL path");
    ZT_CHECK(zs_qd_load(NULL, "x", NULL) == ZS_ERR_ARG, "NULL out");
    ZT_CHECK(zs_qd_load_memory(&f, NULL, 3, NULL, NULL) == ZS_ERR_ARG, "NULL buffer");
    ZT_CHECK(zs_qd_load_memory(&f, NULL, 0, NULL, NULL) == ZS_OK && f.n == 0, "empty buffer: %s", zs_last_error());
    zs_qd_free(&f);
    lim.max_points = 0;
    ZT_CHECK(zs_qd_load_memory(&f, "", 0, NULL, &lim) == ZS_ERR_ARG, "max_points 0");
    lim = zs_qd_default_limits(), lim.max_line = ((size_t)1 << 30) + 1;
    ZT_CHECK(zs_qd_load_memory(&f, "", 0, NULL, &lim) == ZS_ERR_ARG, "max_line too large");
    ZT_CHECK(zs_qd_load(&f, "build/no/such/file.ndjson", NULL) == ZS_ERR_IO &&
                 strstr(zs_last_error(), "no/such/file.ndjson"),
             "missing file: %s", zs_last_error());
}

/* ---- the synthetic file and the golden rasters ----------------------------- */

#define SYNTH "tests/golden/quickdraw_synth.ndjson"

static void test_qd_synth_parse(void) {
    zs_qd_file f, g;
    const zs_qd_drawing *d;
    char why[128], *buf;
    FILE *fp;
    long n;
    int r;
    if (!file_exists(SYNTH)) ZT_SKIP("%s missing (run tools/quickdraw_ref.py golden)", SYNTH);
    ZT_REQUIRE((r = zs_qd_load(&f, SYNTH, NULL)) == ZS_OK, "%s", zs_last_error());
    ZT_REQUIRE(f.n == 4, "%d drawings, want 4", f.n);
    d = &f.drawings[0];
    ZT_CHECK(d->line == 1 && d->n_strokes == 4, "d0 line %d strokes %d", d->line, d->n_strokes);
    ZT_CHECK(same_str(d->word, "ho\xc3\xbcse \"x\""), "d0 word [%s]", d->word ? d->word : "(null)");
    ZT_CHECK(same_str(d->key_id, "123"), "d0 key_id");
    ZT_CHECK(d->strokes[3].n == 1 && d->strokes[3].x[0] == 180.0f && d->strokes[3].y[0] == 150.0f, "d0 dot");
    ZT_CHECK(d->strokes[0].n == 5 && d->strokes[0].y[1] == 110.0f && d->strokes[2].x[3] == 146.0f, "d0 coords");
    d = &f.drawings[1];
    ZT_CHECK(d->line == 3 && d->n_strokes == 2, "d1 line %d strokes %d", d->line, d->n_strokes);
    ZT_CHECK(same_str(d->word, "spiral") && same_str(d->key_id, "987654321"), "d1 word/key");
    /* spiral point 0: 128 + 10 cos 0 = 138, 128 + 0 = 128; point 1: r 13.5, a 0.35:
       128 + 13.5 cos 0.35 = 140.68 (2 decimals), 128 + 13.5 sin 0.35 = 132.63 */
    ZT_CHECK(d->strokes[0].n == 40 && d->strokes[0].x[0] == 138.0f && d->strokes[0].x[1] == 140.68f &&
                 d->strokes[0].y[1] == 132.63f,
             "d1 spiral %g %g %g", d->strokes[0].x[0], d->strokes[0].x[1], d->strokes[0].y[1]);
    ZT_CHECK(d->strokes[1].n == 2 && d->strokes[1].x[0] == -20.5f && d->strokes[1].x[1] == 300.25f &&
                 d->strokes[1].y[0] == 100.0f && d->strokes[1].y[1] == 60.0f,
             "d1 number forms %g %g %g %g", d->strokes[1].x[0], d->strokes[1].x[1], d->strokes[1].y[0],
             d->strokes[1].y[1]);
    d = &f.drawings[2];
    ZT_CHECK(d->line == 4 && d->n_strokes == 6 && d->word == NULL && d->key_id == NULL, "d2");
    ZT_CHECK(d->strokes[2].y[0] == 64.5f && d->strokes[5].x[0] == 0.0f && d->strokes[5].x[1] == 0.5f, "d2 coords");
    d = &f.drawings[3];
    ZT_CHECK(d->line == 5 && d->n_strokes == 0 && same_str(d->word, "empty"), "d3");
    /* the memory reader gives the same drawings */
    fp = fopen(SYNTH, "rb");
    ZT_REQUIRE(fp && fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) > 0 && fseek(fp, 0, SEEK_SET) == 0, "read");
    buf = (char *)malloc((size_t)n);
    ZT_REQUIRE(buf && fread(buf, 1, (size_t)n, fp) == (size_t)n, "read");
    fclose(fp);
    r = zs_qd_load_memory(&g, buf, (size_t)n, SYNTH, NULL);
    ZT_CHECK(r == ZS_OK && same_file(&f, &g, why, sizeof why), "memory vs file: %s %s", why, zs_last_error());
    free(buf);
    zs_qd_free(&g);
    zs_qd_free(&f);
}

static void test_qd_golden(void) {
    /* (drawing, W, H, line_width, margin, box): CASES of tools/quickdraw_ref.py */
    static const struct { int d, w, h; float lw, margin, box; } cases[] = {
        {0, 96, 96, 3.0f, -1.0f, 256.0f},
        {1, 80, 56, 5.5f, 0.0f, 256.0f},
        {2, 48, 48, 1.0f, 3.0f, 256.0f},
        {0, 64, 64, 0.6f, 0.0f, 128.0f},
    };
    zs_qd_file f;
    int k;
    if (!file_exists(SYNTH)) ZT_SKIP("%s missing (run tools/quickdraw_ref.py golden)", SYNTH);
    ZT_REQUIRE(zs_qd_load(&f, SYNTH, NULL) == ZS_OK && f.n == 4, "%s", zs_last_error());
    for (k = 0; k < 4; k++) {
        char path[128];
        int ndim, r, i;
        int64_t shape[8];
        float *ref = NULL, *cov;
        zs_qd_raster_opts o = zs_qd_raster_default_opts();
        zs_image im;
        double maxd = 0, ink = 0;
        int maxp = 0;
        size_t n;
        snprintf(path, sizeof path, "tests/golden/quickdraw_cov%d.npy", k);
        r = zs_npy_read(path, &ndim, shape, &ref);
        ZT_REQUIRE(r == ZS_OK, "%s", zs_last_error());
        ZT_REQUIRE(ndim == 2 && shape[0] == cases[k].h && shape[1] == cases[k].w, "%s: shape", path);
        o.width = cases[k].w, o.height = cases[k].h, o.line_width = cases[k].lw;
        o.margin = cases[k].margin, o.box = cases[k].box;
        n = (size_t)o.width * (size_t)o.height;
        cov = (float *)malloc(n * sizeof *cov);
        ZT_REQUIRE(cov, "malloc");
        r = zs_qd_coverage(cov, &f.drawings[cases[k].d], &o);
        ZT_CHECK(r == ZS_OK, "%s", zs_last_error());
        r = r ? r : zs_qd_render(&im, &f.drawings[cases[k].d], &o);
        ZT_CHECK(r == ZS_OK, "%s", zs_last_error());
        if (r == ZS_OK) {
            for (i = 0; i < (int)n; i++) {
                double dd = fabs((double)cov[i] - (double)ref[i]);
                /* the reference's 8-bit value from its own coverage */
                int want = (int)floor(255.0 - 255.0 * (double)ref[i] + 0.5), got = im.rgb[(size_t)i * 3];
                if (dd > maxd) maxd = dd;
                if (abs(got - want) > maxp) maxp = abs(got - want);
                ink += ref[i];
            }
            printf("  golden case %d (%dx%d, width %g): max |cov - ref| %.3g, max |pixel - ref| %d, ink %.2f\n", k,
                   o.width, o.height, (double)o.line_width, maxd, maxp, ink);
            ZT_CHECK(ink > 5.0, "case %d: the reference is (nearly) blank", k);
            ZT_CHECK(maxd <= 1e-5, "case %d: coverage differs by %g", k, maxd);
            ZT_CHECK(maxp <= 1, "case %d: pixels differ by %d", k, maxp);
            zs_image_free(&im);
        }
        free(cov);
        zs_npy_free(ref);
    }
    zs_qd_free(&f);
}

/* ---- malformed input ------------------------------------------------------- */

typedef struct bad_case {
    const char *text;
    int line;         /* the line the message must name */
    const char *want; /* substring of the message */
} bad_case;

static const char *const GOOD = "{\"drawing\":[[[1,2],[3,4]]]}\n";

static void test_qd_bad_lines(void) {
    static const bad_case cases[] = {
        {"{\"drawing\":[[[1,2,3],[4,5]]]}", 2, "stroke 0: 3 x values but 2 y values"},
        {"{\"drawing\":[[[1,2],[3,4]],[[1,2],[4,5,6]]]}", 2, "stroke 1: 2 x values but 3 y values"},
        {"{\"drawing\":[[[1,\"a\"],[4,5]]]}", 2, "stroke 0: x[1] is not a number"},
        {"{\"drawing\":[[[1,2],[4,null]]]}", 2, "stroke 0: y[1] is not a number"},
        {"{\"drawing\":[[[1,2],[4,true]]]}", 2, "y[1] is not a number"},
        {"{\"drawing\":[[[NaN],[1]]]}", 2, "x[0] is not a number"},
        {"{\"drawing\":[[[1,2],[4,-Infinity]]]}", 2, "bad number"},
        {"{\"drawing\":[[[1e400],[1]]]}", 2, "x[0] = 1e400 is outside"},
        {"{\"drawing\":[[[1],[-1000001]]]}", 2, "y[0] = -1000001 is outside"},
        {"{\"drawing\":[[[1.],[1]]]}", 2, "digit expected after '.'"},
        {"{\"drawing\":[[[01],[1]]]}", 2, "expected ',' or ']'"},
        {"{\"drawing\":[[[1,2],[4,5]]", 2, "expected ',' or ']'"},
        {"{\"drawing\":[[[1,2],[4,5]]]", 2, "expected ',' or '}'"},
        {"{\"drawing\":[[[1,2],[4,", 2, "is not a number"},
        {"{\"word\":\"ca", 2, "unterminated string"},
        {"{\"drawing\":[[[1],[2]]],}", 2, "trailing comma"},
        {"{\"drawing\":[[[1],[2]]]} x", 2, "unexpected text after the object"},
        {"[1,2]", 2, "expected '{'"},
        {"{\"word\":\"cat\"}", 2, "no \"drawing\" member"},
        {"{}", 2, "no \"drawing\" member"},
        {"{\"drawing\":[],\"drawing\":[]}", 2, "\"drawing\" appears twice"},
        {"{\"drawing\":[],\"word\":\"a\",\"word\":\"b\"}", 2, "\"word\" appears twice"},
        {"{\"drawing\":{}}", 2, "must be an array of strokes"},
        {"{\"drawing\":[[[],[]]]}", 2, "stroke 0 has no points"},
        {"{\"drawing\":[[[1,2]]]}", 2, "expected ',' and the y array"},
        {"{\"drawing\":[[[1],[2],[3],[4]]]}", 2, "expected ']' after its arrays"},
        {"{\"drawing\":[[[1,2],[2,3],[7]]]}", 2, "2 points but 1 timestamps"},
        {"{\"drawing\":[5]}", 2, "stroke 0: expected '['"},
        {"{\"drawing\":[[5,[1]]]}", 2, "stroke 0: expected the x array"},
        {"{\"word\":5,\"drawing\":[]}", 2, "expected \"word\" (a string)"},
        {"{\"key_id\":[1],\"drawing\":[]}", 2, "\"key_id\" must be a string or a number"},
        {"{\"word\":\"a\\xb\",\"drawing\":[]}", 2, "bad escape"},
        {"{\"word\":\"\\ud800\",\"drawing\":[]}", 2, "lone high surrogate"},
        {"{\"word\":\"\\udc00x\",\"drawing\":[]}", 2, "lone low surrogate"},
        {"{\"word\":\"\\u12g4\",\"drawing\":[]}", 2, "bad hex digit"},
        {"{\"word\":\"\\u0000\",\"drawing\":[]}", 2, "\\u0000"},
        {"{\"word\":\"a\tb\",\"drawing\":[]}", 2, "control character 0x09"},
        {"{\"word\":\"\xff\",\"drawing\":[]}", 2, "invalid UTF-8 at byte 9"},
        {"{\"word\":\"\xc0\xaf\",\"drawing\":[]}", 2, "invalid UTF-8"},       /* overlong '/' */
        {"{\"word\":\"\xed\xa0\x80\",\"drawing\":[]}", 2, "invalid UTF-8"},   /* encoded surrogate */
        {"{\"x\":tru,\"drawing\":[]}", 2, "unexpected character 't'"},
        {"{\"x\":[1 2],\"drawing\":[]}", 2, "expected ',' or ']'"},
        {"{\"x\" 1,\"drawing\":[]}", 2, "expected ':'"},
        {"{drawing:[]}", 2, "expected a member name"},
        {"\"drawing\"", 2, "expected '{'"},
    };
    size_t k;
    for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char buf[512], tag[16];
        zs_qd_file f;
        int n, r;
        /* a good line first, then the bad one, then another good line */
        n = snprintf(buf, sizeof buf, "%s%s\n%s", GOOD, cases[k].text, GOOD);
        snprintf(tag, sizeof tag, "<memory>:%d", cases[k].line);
        r = zs_qd_load_memory(&f, buf, (size_t)n, NULL, NULL);
        ZT_CHECK(r == ZS_ERR_FORMAT, "case %zu (%s): status %d", k, cases[k].text, r);
        ZT_CHECK(strstr(zs_last_error(), tag) != NULL, "case %zu: message does not name line %d: %s", k, cases[k].line,
                 zs_last_error());
        ZT_CHECK(strstr(zs_last_error(), cases[k].want) != NULL, "case %zu: want \"%s\" in: %s", k, cases[k].want,
                 zs_last_error());
        ZT_CHECK(f.n == 0 && f.drawings == NULL && f.points_ == NULL, "case %zu: output not zeroed", k);
    }
}

static void test_qd_bad_special(void) {
    zs_qd_file f;
    zs_qd_limits lim = zs_qd_default_limits();
    char *buf;
    size_t n, k;
    int r;
    /* NUL byte inside a line (the memory reader takes explicit lengths) */
    {
        static const char t[] = "{\"drawing\":[]}\n{\"drawing\":[]\0}\n";
        r = zs_qd_load_memory(&f, t, sizeof t - 1, "nul", NULL);
        ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "nul:2:"), "NUL: %s", zs_last_error());
    }
    /* nesting: 128 levels of arrays in a skipped member pass, 200 fail */
    buf = (char *)malloc(4096);
    ZT_REQUIRE(buf, "malloc");
    for (k = 0; k < 2; k++) {
        size_t depth = k ? 200 : 127, i, p = 0;
        p += (size_t)sprintf(buf + p, "%s{\"x\":", GOOD);
        for (i = 0; i < depth; i++) buf[p++] = '[';
        for (i = 0; i < depth; i++) buf[p++] = ']';
        p += (size_t)sprintf(buf + p, ",\"drawing\":[]}\n");
        r = zs_qd_load_memory(&f, buf, p, NULL, NULL);
        if (k) ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "<memory>:2:") &&
                            strstr(zs_last_error(), "nested deeper than 128"),
                        "deep: %s", zs_last_error());
        else ZT_CHECK(r == ZS_OK && f.n == 2, "depth 127: %s", zs_last_error());
        zs_qd_free(&f);
    }
    free(buf);
    /* counts over the limits, each on line 2 */
    lim.max_points = 3;
    r = zs_qd_load_memory(&f, "\n{\"drawing\":[[[1,2,3,4],[1,2,3,4]]]}", 36, NULL, &lim);
    ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "<memory>:2: stroke 0: more than 3 x values"), "points: %s",
             zs_last_error());
    r = zs_qd_load_memory(&f, "\n{\"drawing\":[[[1,2,3],[1,2,3]]]}", 32, NULL, &lim);
    ZT_CHECK(r == ZS_OK && f.n == 1 && f.drawings[0].strokes[0].n == 3, "3 points: %s", zs_last_error());
    zs_qd_free(&f);
    lim = zs_qd_default_limits(), lim.max_strokes = 2;
    r = zs_qd_load_memory(&f, "\n{\"drawing\":[[[1],[1]],[[1],[1]],[[1],[1]]]}", 44, NULL, &lim);
    ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "<memory>:2: more than 2 strokes"), "strokes: %s",
             zs_last_error());
    lim = zs_qd_default_limits(), lim.max_drawings = 1;
    r = zs_qd_load_memory(&f, "{\"drawing\":[]}\n\n{\"drawing\":[]}\n", 32, NULL, &lim);
    ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "<memory>:3: more than 1 drawings"), "drawings: %s",
             zs_last_error());
    lim = zs_qd_default_limits(), lim.max_total_points = 4;
    r = zs_qd_load_memory(&f, "{\"drawing\":[[[1,2],[1,2]]]}\n{\"drawing\":[[[1,2,3],[1,2,3]]]}", 58, NULL, &lim);
    ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "<memory>:2: more than 4 points"), "total: %s",
             zs_last_error());
    lim = zs_qd_default_limits(), lim.max_line = 20;
    r = zs_qd_load_memory(&f, "{\"drawing\":[]}\r\n{\"drawing\":[[[1],[2]]]}\n", 40, NULL, &lim);
    ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "<memory>:2: line longer than 20 bytes"), "line: %s",
             zs_last_error());
    /* a huge count spelled out: 100,000 points in one stroke with the default
       limit 65,536 fails, naming the line */
    n = 0;
    buf = (char *)malloc(1000000);
    ZT_REQUIRE(buf, "malloc");
    n += (size_t)sprintf(buf + n, "%s%s{\"drawing\":[[[", GOOD, GOOD);
    for (k = 0; k < 100000; k++) n += (size_t)sprintf(buf + n, k ? ",%d" : "%d", (int)(k % 256));
    n += (size_t)sprintf(buf + n, "],[1]]]}\n");
    r = zs_qd_load_memory(&f, buf, n, "big", NULL);
    ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), "big:3: stroke 0: more than 65536 x values"), "big: %s",
             zs_last_error());
    free(buf);
}

/* Streaming: thousands of lines (CRLF, a BOM, blank lines, no final newline)
   cross the reader's 64 KiB buffer at arbitrary places; also a line longer
   than max_line in the middle of the file, and a bad line far down. */
static void test_qd_stream(void) {
    char path[256], why[128];
    char *buf;
    size_t n = 0, cap = 1 << 20;
    zs_qd_file f, g;
    zs_qd_limits lim = zs_qd_default_limits();
    int k, r;
    tmp_path(path, sizeof path, "stream.ndjson");
    buf = (char *)malloc(cap);
    ZT_REQUIRE(buf, "malloc");
    n += (size_t)sprintf(buf + n, "\xef\xbb\xbf");
    for (k = 0; k < 3000; k++) {
        int s, npts = 1 + k % 23, i;
        n += (size_t)sprintf(buf + n, "{\"key_id\":\"%d\",\"drawing\":[", k);
        for (s = 0; s < 1 + k % 3; s++) {
            n += (size_t)sprintf(buf + n, s ? ",[[" : "[[");
            for (i = 0; i < npts; i++) n += (size_t)sprintf(buf + n, i ? ",%d.%d" : "%d.%d", (k * 7 + i) % 256, i % 10);
            n += (size_t)sprintf(buf + n, "],[");
            for (i = 0; i < npts; i++) n += (size_t)sprintf(buf + n, i ? ",%d" : "%d", (k * 3 + i * 5) % 256);
            n += (size_t)sprintf(buf + n, "]]");
        }
        n += (size_t)sprintf(buf + n, "]}%s", k % 5 == 0 ? "\r\n\n" : k == 2999 ? "" : "\n");
    }
    ZT_REQUIRE(n < cap && write_bytes(path, buf, n), "write %s", path);
    r = zs_qd_load(&f, path, NULL);
    ZT_REQUIRE(r == ZS_OK, "%s", zs_last_error());
    ZT_CHECK(f.n == 3000, "%d drawings", f.n);
    ZT_CHECK(same_str(f.drawings[2999].key_id, "2999") && f.drawings[2999].n_strokes == 3 &&
                 f.drawings[2999].strokes[2].n == 1 + 2999 % 23,
             "last drawing");
    /* line numbers count the blank lines: drawing k sits on line k + 1 + ceil(k / 5) */
    ZT_CHECK(f.drawings[0].line == 1 && f.drawings[1].line == 3 && f.drawings[6].line == 9, "lines %d %d %d",
             f.drawings[0].line, f.drawings[1].line, f.drawings[6].line);
    ZT_CHECK(f.drawings[10].strokes[0].x[1] == 71.1f, "x %g", f.drawings[10].strokes[0].x[1]);
    r = zs_qd_load_memory(&g, buf, n, path, NULL);
    ZT_CHECK(r == ZS_OK && same_file(&f, &g, why, sizeof why), "memory vs file: %s %s", why, zs_last_error());
    zs_qd_free(&g);
    zs_qd_free(&f);
    /* max_line: a long line must fail in both readers with the same message */
    lim.max_line = 300;
    r = zs_qd_load(&f, path, &lim);
    {
        char m1[512];
        snprintf(m1, sizeof m1, "%s", zs_last_error());
        ZT_CHECK(r == ZS_ERR_FORMAT && strstr(m1, "line longer than 300 bytes"), "file: %s", m1);
        r = zs_qd_load_memory(&g, buf, n, path, &lim);
        ZT_CHECK(r == ZS_ERR_FORMAT && !strcmp(m1, zs_last_error()), "memory: %s vs %s", zs_last_error(), m1);
    }
    zs_qd_free(&f);
    /* a mismatched stroke on line 3500-ish: overwrite one y value's digit run */
    {
        char *p = strstr(buf, "{\"key_id\":\"2500\"");
        char *q = p ? strstr(p, "],[") : NULL;
        ZT_REQUIRE(q, "find drawing 2500");
        q[1] = ' ', q[2] = ' '; /* "],[" -> "]  " : x array followed by garbage */
        ZT_REQUIRE(write_bytes(path, buf, n), "rewrite");
        r = zs_qd_load(&f, path, NULL);
        /* drawing 2500 is on line 2500 + 1 + 500 = 3001 */
        ZT_CHECK(r == ZS_ERR_FORMAT && strstr(zs_last_error(), ":3001: JSON byte"), "bad line: %s", zs_last_error());
    }
    remove(path);
    free(buf);
}

/* ---- the real files -------------------------------------------------------- */

static void test_qd_real(void) {
    static const char *const classes[] = {"apple", "bicycle", "cat", "guitar", "pizza", "spider"};
    static float t[3 * 224 * 224];
    int c, i, total = 0, found = 0;
    long ink_min = -1;
    for (c = 0; c < 6; c++) {
        char path[256], why[128];
        zs_qd_file f, g;
        FILE *fp;
        char *buf;
        long n;
        snprintf(path, sizeof path, "../shared/data/quickdraw/%s.ndjson", classes[c]);
        if (!file_exists(path)) continue;
        found++;
        ZT_REQUIRE(zs_qd_load(&f, path, NULL) == ZS_OK, "%s", zs_last_error());
        ZT_CHECK(f.n == 25, "%s: %d drawings, want 25", path, f.n);
        fp = fopen(path, "rb");
        ZT_REQUIRE(fp && fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) > 0 && fseek(fp, 0, SEEK_SET) == 0, "read");
        buf = (char *)malloc((size_t)n);
        ZT_REQUIRE(buf && fread(buf, 1, (size_t)n, fp) == (size_t)n, "read");
        fclose(fp);
        ZT_CHECK(zs_qd_load_memory(&g, buf, (size_t)n, path, NULL) == ZS_OK && same_file(&f, &g, why, sizeof why),
                 "%s: memory vs file: %s", path, why);
        zs_qd_free(&g);
        free(buf);
        for (i = 0; i < f.n; i++) {
            const zs_qd_drawing *d = &f.drawings[i];
            zs_image im, prep;
            int s, k, r, box[4];
            long ink = 0;
            size_t p, np;
            ZT_CHECK(same_str(d->word, classes[c]), "%s:%d: word %s", path, d->line, d->word ? d->word : "(null)");
            ZT_CHECK(d->key_id && strlen(d->key_id) > 0, "%s:%d: no key_id", path, d->line);
            ZT_CHECK(d->n_strokes >= 1, "%s:%d: no strokes", path, d->line);
            for (s = 0; s < d->n_strokes; s++)
                for (k = 0; k < d->strokes[s].n; k++)
                    ZT_CHECK(d->strokes[s].x[k] >= 0 && d->strokes[s].x[k] <= 255 && d->strokes[s].y[k] >= 0 &&
                                 d->strokes[s].y[k] <= 255 && d->strokes[s].x[k] == floorf(d->strokes[s].x[k]),
                             "%s:%d: stroke %d point %d outside the 0..255 integer box", path, d->line, s, k);
            r = zs_qd_render(&im, d, NULL);
            ZT_REQUIRE(r == ZS_OK, "%s:%d: %s", path, d->line, zs_last_error());
            np = (size_t)im.w * (size_t)im.h;
            for (p = 0; p < np; p++)
                if (im.rgb[p * 3] + im.rgb[p * 3 + 1] + im.rgb[p * 3 + 2] <= 300) ink++;
            ZT_CHECK(ink > 0, "%s:%d: blank render", path, d->line);
            if (ink_min < 0 || ink < ink_min) ink_min = ink;
            r = zs_sketch_prepare(&im, 224, &prep, box);
            ZT_CHECK(r == ZS_OK && prep.w == 224 && prep.h == 224, "%s:%d: prepare %s", path, d->line, zs_last_error());
            zs_image_free(&prep);
            r = zs_preprocess_sketch(&im, 224, t);
            ZT_CHECK(r == ZS_OK, "%s:%d: preprocess %s", path, d->line, zs_last_error());
            /* normalised to [-1, 1] (+- rounding under -ffast-math) with ink (negative) present */
            {
                float lo = 1, hi = -1;
                for (p = 0; p < 3 * 224 * 224; p++) {
                    if (t[p] < lo) lo = t[p];
                    if (t[p] > hi) hi = t[p];
                }
                ZT_CHECK(lo < 0.0f && lo >= -1.00001f && hi <= 1.00001f, "%s:%d: range %.9g..%.9g", path, d->line, lo, hi);
            }
            zs_image_free(&im);
            total++;
        }
        zs_qd_free(&f);
    }
    if (!found) ZT_SKIP("../shared/data/quickdraw not present");
    printf("  real: %d drawings in %d files rendered and pre-processed; fewest ink pixels %ld\n", total, found, ink_min);
}

/* the example of the [api:quickdraw] comment, as written there */
static void test_qd_doc_example(void) {
    static float buf[3 * 224 * 224];
    zs_qd_file f;
    zs_image im;
    float *t = buf;
    int r1, r2;
    if (!file_exists("../shared/data/quickdraw/cat.ndjson")) ZT_SKIP("../shared/data/quickdraw not present");
    if (zs_qd_load(&f, "../shared/data/quickdraw/cat.ndjson", NULL)) printf("%s\n", zs_last_error());
    ZT_REQUIRE(f.n > 0, "%s", zs_last_error());
    r1 = zs_qd_render(&im, &f.drawings[0], NULL);
    r2 = zs_preprocess_sketch(&im, 224, t);
    ZT_CHECK(r1 == ZS_OK && r2 == ZS_OK && im.w == 256 && im.h == 256, "%s", zs_last_error());
    zs_image_free(&im);
    zs_qd_free(&f);
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_qd_hand_line);
    ZT_RUN(test_qd_hand_dot);
    ZT_RUN(test_qd_empty);
    ZT_RUN(test_qd_mapping);
    ZT_RUN(test_qd_bad_args);
    ZT_RUN(test_qd_synth_parse);
    ZT_RUN(test_qd_golden);
    ZT_RUN(test_qd_bad_lines);
    ZT_RUN(test_qd_bad_special);
    ZT_RUN(test_qd_stream);
    ZT_RUN(test_qd_real);
    ZT_RUN(test_qd_doc_example);
    return zt_finish();
}
