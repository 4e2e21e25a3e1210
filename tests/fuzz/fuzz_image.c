/* libFuzzer target: images from memory ([impl:image] zs_image_load_memory):
   binary PPM/PGM always, PNG/JPEG/BMP through stb_image when the build has
   it (our wrapper: magic dispatch, the ZS_IMAGE_MAX_DIM limit before and
   after decoding, the copy out of stb's buffer). Accepted: size within
   1..ZS_IMAGE_MAX_DIM, every pixel touched, and small images go through
   the SPEC 3 sketch crop (its ink box depends on the pixel values).
   Rejected: *out zeroed. */
#include "zf.h"

static int zf_image(const uint8_t *d, size_t n, char *why, size_t cap) {
    zs_image im, sk;
    int r, box[4];
    im.w = im.h = 7;
    im.rgb = (unsigned char *)&im; /* must be reset */
    zf_clear_error();
    r = zs_image_load_memory(d, n, &im);
    if (r != ZS_OK) {
        ZF_REJECTED(r, "image");
        ZF_CHECK(im.w == 0 && im.h == 0 && im.rgb == NULL, "rejected but *out not zeroed");
        return r;
    }
    ZF_CHECK(im.rgb && im.w >= 1 && im.h >= 1 && im.w <= ZS_IMAGE_MAX_DIM && im.h <= ZS_IMAGE_MAX_DIM,
             "accepted %dx%d", im.w, im.h);
    zf_touch(im.rgb, (size_t)im.w * (size_t)im.h * 3);
    if ((size_t)im.w * (size_t)im.h <= 4096) {
        /* may refuse (no ink, a 1-pixel-thin crop) but only with a message */
        zf_clear_error();
        r = zs_sketch_prepare(&im, 16, &sk, box);
        if (r != ZS_OK) {
            ZF_CHECK(zs_last_error()[0] && !sk.rgb && !sk.w, "sketch_prepare failed (%d) without a message or zeroed output", r);
        } else {
            ZF_CHECK(box[0] >= 0 && box[1] >= 0 && box[0] < box[2] && box[1] < box[3] && box[2] <= im.w && box[3] <= im.h,
                     "crop box {%d,%d,%d,%d} of a %dx%d image", box[0], box[1], box[2], box[3], im.w, im.h);
            ZF_CHECK(sk.w == 16 && sk.h == 16, "sketch is %dx%d", sk.w, sk.h);
            zf_touch(sk.rgb, 16 * 16 * 3);
            zs_image_free(&sk);
        }
    }
    zs_image_free(&im);
    ZF_CHECK(im.rgb == NULL && im.w == 0, "zs_image_free did not zero");
    return ZS_OK;
}
ZF_TARGET(zf_image)
