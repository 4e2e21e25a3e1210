/* libFuzzer target: Quick, Draw! .ndjson from memory ([impl:quickdraw]
   zs_qd_load_memory), then the rasteriser on every drawing it accepts
   (adapted from dev/old/fuzz_quickdraw.c).

   Rejected: ZS_ERR_FORMAT with a message naming the input and a line
   ("fuzz:N:") and the output zeroed. Accepted: strokes of >= 1 points
   within +-ZS_QD_MAX_COORD, increasing line numbers, and every drawing
   renders; each coverage value lies in [0, 1] and matches the 8-bit image.
   The first input byte picks the canvas and line width (small canvases keep
   each run cheap); the limits are lowered so they are reached too. */
#include "zf.h"

static int zf_ndjson(const uint8_t *d, size_t n, char *why, size_t cap) {
    float cov[40 * 40];
    zs_qd_limits lim = zs_qd_default_limits();
    zs_qd_raster_opts o = zs_qd_raster_default_opts();
    zs_qd_file f;
    unsigned sel = n ? d[0] : 0;
    int r, i, s, k, prev_line = 0;
    lim.max_drawings = 64;
    lim.max_strokes = 256;
    lim.max_points = 4096;
    lim.max_total_points = 1 << 14;
    lim.max_line = 1 << 14;
    o.width = 8 + (int)(sel % 33);           /* 8..40 */
    o.height = 8 + (int)((sel / 33) % 33);   /* 8..15 for sel < 256 */
    o.line_width = 0.25f + (float)(sel % 7); /* 0.25..6.25 */
    o.margin = (sel & 16) ? -1.0f : 0.0f;
    o.box = (sel & 32) ? 256.0f : 64.0f;
    zf_clear_error();
    r = zs_qd_load_memory(&f, d, n, "fuzz", &lim);
    if (r != ZS_OK) {
        ZF_CHECK(r == ZS_ERR_FORMAT, "status %d is not ZS_ERR_FORMAT", r);
        ZF_CHECK(!strncmp(zs_last_error(), "fuzz:", 5) && zs_last_error()[5] >= '1' && zs_last_error()[5] <= '9',
                 "message does not name a line");
        ZF_CHECK(f.n == 0 && !f.drawings && !f.strokes_ && !f.points_ && !f.text_, "output not zeroed");
        return r;
    }
    for (i = 0; i < f.n; i++) {
        const zs_qd_drawing *dr = &f.drawings[i];
        zs_image im;
        size_t p, np = (size_t)o.width * (size_t)o.height;
        ZF_CHECK(dr->line > prev_line && dr->n_strokes >= 0 && dr->n_strokes <= lim.max_strokes, "drawing %d header", i);
        prev_line = dr->line;
        if (dr->word) ZF_CHECK(strlen(dr->word) < n, "word length");
        if (dr->key_id) ZF_CHECK(strlen(dr->key_id) < n, "key_id length");
        for (s = 0; s < dr->n_strokes; s++) {
            ZF_CHECK(dr->strokes[s].n >= 1 && dr->strokes[s].n <= lim.max_points, "stroke size %d", dr->strokes[s].n);
            for (k = 0; k < dr->strokes[s].n; k++)
                ZF_CHECK(fabsf(dr->strokes[s].x[k]) <= 1e6f && fabsf(dr->strokes[s].y[k]) <= 1e6f, "coordinate range");
        }
        r = zs_qd_coverage(cov, dr, &o);
        ZF_CHECK(r == ZS_OK, "coverage: %s", zs_last_error());
        r = zs_qd_render(&im, dr, &o);
        ZF_CHECK(r == ZS_OK && im.w == o.width && im.h == o.height, "render: %s", zs_last_error());
        for (p = 0; p < np; p++) {
            ZF_CHECK(cov[p] >= 0.0f && cov[p] <= 1.0f, "coverage %g outside [0, 1]", (double)cov[p]);
            ZF_CHECK(im.rgb[p * 3] == (unsigned char)(int)floor(255.0 - 255.0 * (double)cov[p] + 0.5), "pixel value");
        }
        zs_image_free(&im);
    }
    zs_qd_free(&f);
    return ZS_OK;
}
ZF_TARGET(zf_ndjson)
