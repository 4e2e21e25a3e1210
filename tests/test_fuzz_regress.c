/* Fuzzing regressions: every file in tests/fuzz/regress/<target>/ (inputs
   that crashed, leaked or hung a loader under libFuzzer, minimised, plus
   hand-made nasty ones) goes through the same harness as the fuzz target
   (tests/fuzz/fuzz_<target>.c, included below; `make fuzz` runs them under
   libFuzzer). Each input must be rejected with a message, or, when its
   name starts with "ok-", be accepted and read back completely; "okstb-"
   inputs (PNG/JPEG/BMP) are accepted with stb_image and refused without.
   The harness checks the API contract either way (zeroed outputs, data in
   bounds); the sanitizers of `make asan` check the memory accesses.
   ZF_VERBOSE=1 prints each input's verdict. */
#define _POSIX_C_SOURCE 200809L
#define ZSESBIR_IMPLEMENTATION
#include "zt_stb.h" /* before zsesbir.h */
#include "../zsesbir.h"
#include "zt.h"

#include <dirent.h>
#include <sys/stat.h>

#include "fuzz/zf.h"
#include "fuzz/fuzz_zip.c"
#include "fuzz/fuzz_pickle.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_npy.c"
#include "fuzz/fuzz_zsi.c"
#include "fuzz/fuzz_image.c"
#include "fuzz/fuzz_ndjson.c"

typedef int (*zf_fn)(const uint8_t *d, size_t n, char *why, size_t cap);

/* replays tests/fuzz/regress/<target>/; at least min_files inputs, of which at least min_ok expected valid */
static void replay(const char *target, zf_fn fn, int min_files, int min_ok) {
    char dir[256], path[768], why[512];
    DIR *dp;
    struct dirent *de;
    int files = 0, ok = 0;
    snprintf(dir, sizeof dir, "tests/fuzz/regress/%s", target);
    dp = opendir(dir);
    ZT_REQUIRE(dp != NULL, "cannot open %s (run the tests from the repository root)", dir);
    while ((de = readdir(dp)) != NULL) {
        struct stat sb;
        unsigned char *b;
        size_t n = 0;
        int r, want_ok;
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        b = zt_read_file(path, &n);
        ZT_CHECK(b != NULL, "cannot read %s", path);
        if (!b) continue;
        want_ok = !strncmp(de->d_name, "ok-", 3);
#ifdef ZSESBIR_STB_IMAGE
        want_ok |= !strncmp(de->d_name, "okstb-", 6);
#endif
        why[0] = 0;
        r = fn(b, n, why, sizeof why);
        free(b);
        files++;
        ok += r == ZS_OK;
        ZT_CHECK(r != ZF_BROKEN, "%s: broken contract: %s (last error: %s)", path, why, zs_last_error());
        if (r == ZF_BROKEN) continue;
        if (getenv("ZF_VERBOSE")) printf("  %s: %s\n", path, r == ZS_OK ? "accepted" : zs_last_error());
        if (want_ok) ZT_CHECK(r == ZS_OK, "%s: expected valid, refused: %s", path, zs_last_error());
        else ZT_CHECK(r != ZS_OK, "%s: expected to be refused, accepted", path);
    }
    closedir(dp);
    ZT_CHECK(files >= min_files, "%s: %d inputs, expected at least %d", dir, files, min_files);
    ZT_CHECK(ok >= min_ok, "%s: %d valid inputs, expected at least %d", dir, ok, min_ok);
}

static void test_regress_zip(void) { replay("zip", zf_zip, 5, 1); }
static void test_regress_pickle(void) { replay("pickle", zf_pickle, 5, 1); }
static void test_regress_safetensors(void) { replay("safetensors", zf_safetensors, 5, 1); }
static void test_regress_npy(void) { replay("npy", zf_npy, 5, 1); }
static void test_regress_zsi(void) { replay("zsi", zf_zsi, 4, 1); }
static void test_regress_image(void) { replay("image", zf_image, 5, 1); }
static void test_regress_ndjson(void) { replay("ndjson", zf_ndjson, 5, 1); }

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_regress_zip);
    ZT_RUN(test_regress_pickle);
    ZT_RUN(test_regress_safetensors);
    ZT_RUN(test_regress_npy);
    ZT_RUN(test_regress_zsi);
    ZT_RUN(test_regress_image);
    ZT_RUN(test_regress_ndjson);
    return zt_finish();
}
