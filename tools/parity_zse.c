/* parity_zse - full-size ZSE-SBIR parity against the PyTorch reference.

     /usr/bin/python3 tools/zsesbir_ref.py --parity build/parity_full.safetensors
     ./build/parity_zse build/parity_full.safetensors [tolerance]

   (make parity does both.) Compares SA output, CA outputs, anchors, cosine
   map, RN scores, ret distance, losses, every parameter gradient of a B=1
   training step and the loss over 3 AdamW steps, at the released default
   config (parameters after the steps are reported, see zse_parity.h). */
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "../tests/zse_parity.h"

int main(int argc, char **argv) {
    zs_safetensors *st;
    const zs_st_info *t;
    double worst = 0, tol = argc > 2 ? atof(argv[2]) : 1e-4;
    int B, ok;
    if (argc < 2) { fprintf(stderr, "usage: %s parity.safetensors [tolerance]\n", argv[0]); return 2; }
    st = zs_st_open(argv[1]);
    if (!st) { fprintf(stderr, "error: %s\n", zs_last_error()); return 1; }
    t = zs_st_find(st, "input.images");
    if (!t || t->ndim != 4 || t->shape[0] % 4) { fprintf(stderr, "error: %s has no input.images [4B,3,H,W]\n", argv[1]); return 1; }
    B = (int)(t->shape[0] / 4);
    zs_st_close(st);
    ok = zse_parity_run(argv[1], zs_zse_config_default(), B, 2, tol, &worst, 0);
    printf("parity %s: worst scale-relative error %.3g (tolerance %.0e)\n", ok ? "PASSED" : "FAILED", worst, tol);
    return ok ? 0 : 1;
}
