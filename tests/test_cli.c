/* The zsesbir command-line program end to end (examples/zsesbir.c, built as
   ./zsesbir by `make`): a small dataset is written as PPM files under build/,
   then train -> eval (ret, rn, two-stage, fine-grained) -> index -> search
   (with a contact sheet) run as child processes, and their exit codes and
   outputs are checked; then usage errors (exit 2) and bad files (exit 1 with a
   message, never a crash). Skipped when ./zsesbir has not been built. */
#define _POSIX_C_SOURCE 200809L
#define ZSESBIR_IMPLEMENTATION
#include "../zsesbir.h"
#include "zt.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROOT "build/cli_data"
static const char *cls[5] = {"box", "disc", "bar", "ring", "plus"};

/* runs a shell command, captures stdout+stderr into out, returns the exit code */
static int run(const char *cmd, char *out, size_t cap) {
    char full[4096];
    FILE *p;
    size_t n = 0;
    int st;
    const char *cli = getenv("ZSESBIR_CLI"); /* e.g. an ASan build of the CLI */
    if (cli && !strncmp(cmd, "./zsesbir", 9)) snprintf(full, sizeof full, "%s%s 2>&1", cli, cmd + 9);
    else snprintf(full, sizeof full, "%s 2>&1", cmd);
    p = popen(full, "r");
    if (!p) return -1;
    while (n + 1 < cap) {
        size_t r = fread(out + n, 1, cap - 1 - n, p);
        if (!r) break;
        n += r;
    }
    out[n] = 0;
    { char sink[256]; while (fread(sink, 1, sizeof sink, p)) {} }
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int have_cli(void) {
    struct stat st;
    const char *cli = getenv("ZSESBIR_CLI");
    return stat(cli ? cli : "./zsesbir", &st) == 0;
}

/* class c drawn as a dark shape (sketch) or a coloured one on grey (photo) */
static int write_item(const char *path, int c, int i, int sketch) {
    zs_image im;
    int x, y, r;
    if (zs_image_alloc(&im, 48, 48)) return -1;
    for (y = 0; y < 48; y++)
        for (x = 0; x < 48; x++) {
            int dx = x - 24 - (i % 3), dy = y - 24 + (i % 2), in;
            switch (c) {
            case 0: in = abs(dx) < 14 && abs(dy) < 14; break;
            case 1: in = dx * dx + dy * dy < 196; break;
            case 2: in = abs(dx) < 18 && abs(dy) < 5; break;
            case 3: in = dx * dx + dy * dy < 256 && dx * dx + dy * dy > 81; break;
            default: in = (abs(dx) < 4 && abs(dy) < 16) || (abs(dy) < 4 && abs(dx) < 16); break;
            }
            im.rgb[(y * 48 + x) * 3 + 0] = (unsigned char)(in ? (sketch ? 0 : 40 * c + 30) : (sketch ? 255 : 128 + 10 * i));
            im.rgb[(y * 48 + x) * 3 + 1] = (unsigned char)(in ? (sketch ? 0 : 200 - 30 * c) : (sketch ? 255 : 128));
            im.rgb[(y * 48 + x) * 3 + 2] = (unsigned char)(in ? (sketch ? 0 : 90) : (sketch ? 255 : 140));
        }
    r = zs_image_save_ppm(path, &im);
    zs_image_free(&im);
    return r;
}

static int make_data(void) {
    char p[512];
    int c, i;
    FILE *f;
    mkdir("build", 0755);
    mkdir(ROOT, 0755);
    mkdir(ROOT "/photo", 0755);
    mkdir(ROOT "/sketch", 0755);
    for (c = 0; c < 5; c++) {
        snprintf(p, sizeof p, ROOT "/photo/%s", cls[c]);
        mkdir(p, 0755);
        snprintf(p, sizeof p, ROOT "/sketch/%s", cls[c]);
        mkdir(p, 0755);
        for (i = 0; i < 4; i++) {
            snprintf(p, sizeof p, ROOT "/photo/%s/%s%d.ppm", cls[c], cls[c], i);
            if (write_item(p, c, i, 0)) return -1;
            snprintf(p, sizeof p, ROOT "/sketch/%s/%s%d-1.ppm", cls[c], cls[c], i);
            if (write_item(p, c, i + 1, 1)) return -1;
        }
    }
    f = fopen(ROOT "/test.txt", "w");
    if (!f) return -1;
    fprintf(f, "ring\nplus\n");
    return fclose(f);
}

static char out[1 << 16];

static const char *last_line(const char *s) {
    const char *e = s + strlen(s), *b;
    while (e > s && e[-1] == '\n') e--;
    for (b = e; b > s && b[-1] != '\n'; b--) {}
    return b;
}

static void test_cli_pipeline(void) {
    int rc;
    double map, p100, map200, p200, a1, a10;
    FILE *f;
    if (!have_cli()) ZT_SKIP("./zsesbir not built (run make)");
    ZT_REQUIRE(make_data() == 0, "cannot write the test data: %s", zs_last_error());
    rc = run("./zsesbir train --data " ROOT " --test-classes " ROOT "/test.txt --config tiny --steps 6 --batch 2 --save-every 4"
             " --log-every 3 --out " ROOT "/w.safetensors --seed 3", out, sizeof out);
    ZT_REQUIRE(rc == 0, "train exit %d:\n%.400s", rc, out);
    ZT_CHECK(strstr(out, "5 classes (3 seen for training, 2 held out)") && strstr(out, "step 6/6"), "train output:\n%.400s", out);
    /* resume continues from the saved step */
    rc = run("./zsesbir train --data " ROOT " --test-classes " ROOT "/test.txt --steps 8 --batch 2 --log-every 1 --resume " ROOT
             "/w.safetensors --out " ROOT "/w2.safetensors --seed 3", out, sizeof out);
    ZT_REQUIRE(rc == 0, "resume exit %d:\n%.400s", rc, out);
    ZT_CHECK(strstr(out, "at step 6") && strstr(out, "step 7/8") && !strstr(out, "step 6/8"), "resume output:\n%.400s", out);
    rc = run("./zsesbir eval --weights " ROOT "/w.safetensors --data " ROOT " --test-classes " ROOT "/test.txt --mode ret", out, sizeof out);
    ZT_REQUIRE(rc == 0, "eval exit %d:\n%.400s", rc, out);
    ZT_CHECK(strstr(out, "8 query sketches, 8 gallery photos") && strstr(out, "random ranking: mAP@all="), "eval output:\n%.400s", out);
    ZT_CHECK(sscanf(last_line(out), "mAP@all=%lf P@100=%lf mAP@200=%lf P@200=%lf", &map, &p100, &map200, &p200) == 4 && map > 0 && map <= 1,
             "last line: %.400s", last_line(out));
    rc = run("./zsesbir eval --weights " ROOT "/w.safetensors --data " ROOT " --test-classes " ROOT "/test.txt --mode rn", out, sizeof out);
    ZT_CHECK(rc == 0 && sscanf(last_line(out), "mAP@all=%lf", &map) == 1, "eval rn exit %d:\n%.400s", rc, out);
    rc = run("./zsesbir eval --weights " ROOT "/w.safetensors --data " ROOT " --test-classes " ROOT "/test.txt --mode two-stage --rerank 3",
             out, sizeof out);
    ZT_CHECK(rc == 0 && sscanf(last_line(out), "mAP@all=%lf", &map) == 1, "eval two-stage exit %d:\n%.400s", rc, out);
    rc = run("./zsesbir eval --weights " ROOT "/w.safetensors --data " ROOT " --test-classes " ROOT "/test.txt --fine-grained", out, sizeof out);
    ZT_CHECK(rc == 0 && sscanf(last_line(out), "acc@1=%lf acc@10=%lf", &a1, &a10) == 2 && a10 == 1.0,
             "fine-grained (8 photos: acc@10 must be 1) exit %d:\n%.400s", rc, out);
    rc = run("./zsesbir index --weights " ROOT "/w.safetensors --photos " ROOT "/photo --out " ROOT "/g.zsi", out, sizeof out);
    ZT_REQUIRE(rc == 0 && strstr(out, "indexed 20 photos (5 classes)"), "index exit %d:\n%.400s", rc, out);
    rc = run("./zsesbir search --weights " ROOT "/w.safetensors --index " ROOT "/g.zsi --sketch " ROOT "/sketch/ring/ring0-1.ppm"
             " --topk 5 --rerank 8 --png " ROOT "/sheet.ppm", out, sizeof out);
    ZT_REQUIRE(rc == 0, "search exit %d:\n%.400s", rc, out);
    ZT_CHECK(strstr(out, "rank") && strstr(out, "query class ring:") && strstr(out, "wrote " ROOT "/sheet.ppm"), "search output:\n%.400s", out);
    f = fopen(ROOT "/sheet.ppm", "rb");
    ZT_CHECK(f != NULL, "no contact sheet");
    if (f) {
        zs_image im;
        fclose(f);
        ZT_CHECK(zs_image_load(ROOT "/sheet.ppm", &im) == ZS_OK && im.w > im.h, "sheet unreadable: %s", zs_last_error());
        zs_image_free(&im);
    }
    /* the index refuses other weights */
    rc = run("./zsesbir search --weights " ROOT "/w2.safetensors --index " ROOT "/g.zsi --sketch " ROOT "/sketch/ring/ring0-1.ppm", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "other weights"), "stale index: exit %d:\n%.400s", rc, out);
    /* embed and score take image files */
    rc = run("./zsesbir score --weights " ROOT "/w.safetensors --sketch " ROOT "/sketch/box/box0-1.ppm --photo " ROOT "/photo/box/box0.ppm",
             out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "ret_distance ") && strstr(out, "rn_score "), "score exit %d:\n%.400s", rc, out);
    rc = run("./zsesbir embed --weights " ROOT "/w.safetensors --image " ROOT "/sketch/box/box0-1.ppm --as sketch", out, sizeof out);
    ZT_CHECK(rc == 0 && strlen(out) > 32 * 2, "embed exit %d:\n%.400s", rc, out);
}

static void test_cli_errors(void) {
    int rc;
    FILE *f;
    if (!have_cli()) ZT_SKIP("./zsesbir not built (run make)");
    rc = run("./zsesbir", out, sizeof out);
    ZT_CHECK(rc == 2, "no command: %d", rc);
    rc = run("./zsesbir frobnicate", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "unknown command"), "unknown command: %d %.400s", rc, out);
    rc = run("./zsesbir train --help", out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "usage: zsesbir train"), "help: %d %.400s", rc, out);
    rc = run("./zsesbir train --data x", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "missing --test-classes"), "missing option: %d %.400s", rc, out);
    rc = run("./zsesbir search --weights a --index b --sketch c --topk zero", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "--topk"), "bad number: %d %.400s", rc, out);
    rc = run("./zsesbir eval --weights a --data b --test-classes c --mode fast", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "--mode"), "bad mode: %d %.400s", rc, out);
    /* bad files: exit 1 with a message */
    f = fopen(ROOT "/junk.safetensors", "wb");
    ZT_REQUIRE(f, "write junk");
    fputs("this is not a weights file", f);
    fclose(f);
    rc = run("./zsesbir embed --weights " ROOT "/junk.safetensors --image x.png", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "error:"), "junk weights: %d %.400s", rc, out);
    rc = run("./zsesbir search --weights " ROOT "/w.safetensors --index " ROOT "/junk.safetensors --sketch x.png", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "zs_index_load"), "junk index: %d %.400s", rc, out);
    rc = run("./zsesbir score --weights " ROOT "/w.safetensors --sketch " ROOT "/junk.safetensors --photo " ROOT "/photo/box/box0.ppm", out,
             sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "error:"), "junk image: %d %.400s", rc, out);
    rc = run("./zsesbir eval --weights " ROOT "/w.safetensors --data build/no_such_dir --test-classes " ROOT "/test.txt", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "error:"), "missing data dir: %d %.400s", rc, out);
    rc = run("./zsesbir index --weights " ROOT "/w.safetensors --photos " ROOT "/sketch/box --out /nonexistent_dir/x.zsi", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "cannot create"), "unwritable index: %d %.400s", rc, out);
}

/* issue 6: a .pth checkpoint and its converted safetensors give identical results */
static void test_cli_pth(void) {
    static char a[1500];
    int rc;
    if (!have_cli()) ZT_SKIP("./zsesbir not built (run make)");
    ZT_REQUIRE(make_data() == 0, "test data");
    rc = run("./zsesbir convert tests/golden/pth/zse.pth " ROOT "/zse_conv.safetensors", out, sizeof out);
    ZT_REQUIRE(rc == 0, "convert exit %d: %.400s", rc, out);
    rc = run("./zsesbir inspect tests/golden/pth/zse.pth", out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "metadata epoch = 3") && strstr(out, "rn.rn.6.bias") && strstr(out, "78 tensors"), "inspect: %.400s", out);
    rc = run("./zsesbir score --weights tests/golden/pth/zse.pth --sketch " ROOT "/sketch/box/box0-1.ppm --photo " ROOT "/photo/disc/disc1.ppm", a,
             sizeof a);
    ZT_REQUIRE(rc == 0, "score .pth exit %d: %.400s", rc, a);
    rc = run("./zsesbir score --weights " ROOT "/zse_conv.safetensors --sketch " ROOT "/sketch/box/box0-1.ppm --photo " ROOT "/photo/disc/disc1.ppm",
             out, sizeof out);
    ZT_CHECK(rc == 0 && !strcmp(a, out), "converted weights score differently:\n%.200s\nvs\n%.200s", a, out);
    rc = run("./zsesbir inspect tests/golden/pth/legacy.pth", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "legacy torch.save format not supported"), "legacy: %d %.400s", rc, out);
    rc = run("./zsesbir score --weights tests/golden/pth/os_system.pth --sketch x --photo y", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "os"), "malicious pickle: %d %.400s", rc, out);
}

/* issue 5: --model tcn train -> index -> search -> eval (real-valued and
   --hash) on 5 real Sketchy classes (3 seen, 2 held out), tiny arch at 64 px */
#define TCN_ROOT "build/cli_tcn"
#define SKETCHY "../shared/data/sketchy"
static void test_cli_tcn(void) {
    static char out2[1 << 14];
    const char *qsk = SKETCHY "/sketch/pear/n07767847_10558-1.png";
    int rc, n = 0;
    double map, p100, map200, p200, last_d = -1, d;
    FILE *f;
    char *line;
    if (!have_cli()) ZT_SKIP("./zsesbir not built (run make)");
    if (!(f = fopen(qsk, "rb"))) ZT_SKIP("%s absent", qsk);
    fclose(f);
    mkdir("build", 0755);
    mkdir(TCN_ROOT, 0755);
    mkdir(TCN_ROOT "/photos", 0755);
    ZT_REQUIRE((f = fopen(TCN_ROOT "/classes.txt", "w")) != NULL, "write");
    fputs("airplane 0\ncat 1\npear 2\numbrella 3\nzebra 4\n", f);
    fclose(f);
    ZT_REQUIRE((f = fopen(TCN_ROOT "/test.txt", "w")) != NULL, "write");
    fputs("pear\nzebra\n", f);
    fclose(f);
    /* the gallery: three class folders of the shared data, linked (no copies) */
    remove(TCN_ROOT "/photos/pear"); remove(TCN_ROOT "/photos/zebra"); remove(TCN_ROOT "/photos/umbrella");
    ZT_REQUIRE(symlink("../../../" SKETCHY "/photo/pear", TCN_ROOT "/photos/pear") == 0 &&
                   symlink("../../../" SKETCHY "/photo/zebra", TCN_ROOT "/photos/zebra") == 0 &&
                   symlink("../../../" SKETCHY "/photo/umbrella", TCN_ROOT "/photos/umbrella") == 0, "symlinks");
#define TCN_DATA " --data " SKETCHY " --class-list " TCN_ROOT "/classes.txt --test-classes " TCN_ROOT "/test.txt"
    rc = run("./zsesbir train --model tcn --arch tiny --dim 16 --size 64" TCN_DATA " --steps 12 --batch 4 --log-every 6 --save-every 8"
             " --bits 8 --out " TCN_ROOT "/w.safetensors", out, sizeof out);
    ZT_REQUIRE(rc == 0, "train exit %d:\n%.600s", rc, out);
    ZT_CHECK(strstr(out, "5 classes (3 seen for training, 2 held out), 125 photos, 125 sketches") && strstr(out, "distillation term is off") &&
                 strstr(out, "dim=16 classes=3 kd=1000 wv=300 mssbn=0 size=64") && strstr(out, "step 12/12") &&
                 strstr(out, "ITQ, 8 bits, fitted on 75 training photos"),
             "train output:\n%.800s", out);
    rc = run("./zsesbir train --model tcn" TCN_DATA " --steps 14 --batch 4 --log-every 1 --resume " TCN_ROOT "/w.safetensors --out " TCN_ROOT
             "/w2.safetensors", out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "at step 12") && strstr(out, "step 13/14") && !strstr(out, "step 12/14"), "resume exit %d:\n%.600s", rc, out);
    rc = run("./zsesbir inspect " TCN_ROOT "/w.safetensors", out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "metadata zsesbir.model = tcn") && strstr(out, "fc.fc_hash.0.weight"), "inspect:\n%.300s", last_line(out));
    /* --plan: the start weights in --out, one line of 13 fields per pair (identity augmentation with --no-aug) */
    rc = run("./zsesbir train --model tcn --arch tiny --dim 16 --size 64" TCN_DATA " --steps 3 --batch 4 --no-aug --plan " TCN_ROOT
             "/plan.tsv --out " TCN_ROOT "/w0.safetensors", out, sizeof out);
    ZT_REQUIRE(rc == 0 && strstr(out, "wrote the plan of steps 1..3 to " TCN_ROOT "/plan.tsv"), "plan exit %d:\n%.600s", rc, out);
    {
        size_t len = 0;
        char *txt = (char *)zt_read_file(TCN_ROOT "/plan.tsv", &len), *s, *e;
        int pairs = 0, bad = 0;
        ZT_REQUIRE(txt != NULL, "no plan file");
        ZT_CHECK(strstr(txt, "# zsesbir train --model tcn plan: seed 1 batch 4 steps 1..3") && strstr(txt, "aug off kd off"), "plan header:\n%.300s", txt);
        for (s = txt; s < txt + len; s = e + 1) {
            int st, lab, tabs = 0;
            double lr, a0, a1;
            char *q;
            if (!(e = strchr(s, '\n'))) e = txt + len;
            if (*s == '#' || e == s) continue;
            for (q = s; q < e; q++) tabs += *q == '\t';
            if (tabs != 12 || sscanf(s, "%d\t%lf\t%d\t%*s\t%lf\t%lf", &st, &lr, &lab, &a0, &a1) != 5 || st != 1 + pairs / 4 || lab < 0 || lab > 2 ||
                !(a0 >= 0 && a0 < 1 && a1 >= 0 && a1 < 1) || !(lr > 0 && lr <= 1e-4) || !strstr(s, "\t0\t1\t0\t0\t0\t"))
                bad++;
            pairs++;
        }
        ZT_CHECK(pairs == 12 && !bad, "plan: %d pairs, %d bad lines:\n%.400s", pairs, bad, txt);
        free(txt);
    }
    rc = run("./zsesbir inspect " TCN_ROOT "/w0.safetensors", out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "metadata zsesbir.model = tcn") && strstr(out, "dim=16 classes=3"), "plan weights:\n%.300s", out);
    /* index with ITQ codes; the model comes from the weights (no --model) */
    rc = run("./zsesbir index --weights " TCN_ROOT "/w.safetensors --photos " TCN_ROOT "/photos --bits 8 --out " TCN_ROOT "/g.zsi", out, sizeof out);
    ZT_REQUIRE(rc == 0 && strstr(out, "indexed 75 photos (3 classes)") && strstr(out, "8 bits"), "index exit %d:\n%.400s", rc, out);
    rc = run("./zsesbir search --model tcn --weights " TCN_ROOT "/w.safetensors --index " TCN_ROOT "/g.zsi --sketch " SKETCHY
             "/sketch/pear/n07767847_10558-1.png --topk 10", out, sizeof out);
    ZT_REQUIRE(rc == 0 && strstr(out, "query class pear:"), "search exit %d:\n%.600s", rc, out);
    /* ranked: 10 result lines with non-decreasing distances */
    for (line = strstr(out, "\n1 "); line && n < 10; line = strchr(line + 1, '\n')) {
        int r;
        if (sscanf(line + 1, "%d %lf", &r, &d) != 2) break;
        ZT_CHECK(r == n + 1 && d >= last_d && d >= 0 && d <= 2, "rank %d distance %g after %g", r, d, last_d);
        last_d = d;
        n++;
    }
    ZT_CHECK(n == 10, "%d ranked lines:\n%.600s", n, out);
    rc = run("./zsesbir search --weights " TCN_ROOT "/w.safetensors --index " TCN_ROOT "/g.zsi --sketch " SKETCHY
             "/sketch/pear/n07767847_10558-1.png --topk 5 --hash --png " TCN_ROOT "/sheet.ppm", out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "hamming") && strstr(out, "wrote " TCN_ROOT "/sheet.ppm"), "search --hash exit %d:\n%.600s", rc, out);
    rc = run("./zsesbir search --weights " TCN_ROOT "/w2.safetensors --index " TCN_ROOT "/g.zsi --sketch " SKETCHY
             "/sketch/pear/n07767847_10558-1.png", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "other weights"), "stale index: exit %d:\n%.400s", rc, out);
    rc = run("./zsesbir index --weights " TCN_ROOT "/w.safetensors --photos " TCN_ROOT "/photos/pear --out " TCN_ROOT "/g0.zsi", out, sizeof out);
    ZT_REQUIRE(rc == 0 && strstr(out, "ITQ: none"), "index without ITQ: %d\n%.400s", rc, out);
    rc = run("./zsesbir search --weights " TCN_ROOT "/w.safetensors --index " TCN_ROOT "/g0.zsi --sketch " SKETCHY
             "/sketch/pear/n07767847_10558-1.png --hash", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "--hash needs an index built with --bits"), "hash without codes: %d\n%.400s", rc, out);
    /* eval: real-valued, hashed with ITQ fitted on the gallery, and with train's rotation */
    rc = run("./zsesbir eval --weights " TCN_ROOT "/w.safetensors" TCN_DATA, out, sizeof out);
    ZT_REQUIRE(rc == 0, "eval exit %d:\n%.600s", rc, out);
    ZT_CHECK(strstr(out, "2 unseen classes, 50 query sketches, 50 gallery photos, TCN real-valued") &&
                 sscanf(last_line(out), "mAP@all=%lf P@100=%lf mAP@200=%lf P@200=%lf", &map, &p100, &map200, &p200) == 4 && map > 0 &&
                 map <= 1 && map == map200 && p100 == p200,
             "eval (50 photos: mAP@200 = mAP@all, P@200 = P@100):\n%.600s", out);
    rc = run("./zsesbir eval --weights " TCN_ROOT "/w.safetensors" TCN_DATA " --hash --bits 8", out, sizeof out);
    ZT_CHECK(rc == 0 && strstr(out, "ITQ: 8 bits (fitted on the gallery") && sscanf(last_line(out), "mAP@all=%lf", &map) == 1 && map > 0 && map <= 1,
             "eval --hash exit %d:\n%.600s", rc, out);
    rc = run("./zsesbir eval --weights " TCN_ROOT "/w.safetensors" TCN_DATA " --hash --itq " TCN_ROOT "/w.safetensors.itq", out2, sizeof out2);
    ZT_CHECK(rc == 0 && strstr(out2, "ITQ: 8 bits (" TCN_ROOT "/w.safetensors.itq)"), "eval --itq exit %d:\n%.600s", rc, out2);
    rc = run("./zsesbir eval --weights " TCN_ROOT "/w.safetensors" TCN_DATA " --fine-grained", out, sizeof out);
    ZT_CHECK(rc == 0 && sscanf(last_line(out), "acc@1=%lf acc@10=%lf", &map, &p100) == 2, "fine-grained: %d\n%.400s", rc, out);
    /* usage errors */
    rc = run("./zsesbir train --model tfn --data x", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "--model: zse or tcn"), "bad model: %d %.300s", rc, out);
    rc = run("./zsesbir train --model tcn --arch resnet99" TCN_DATA " --steps 1 --batch 1 --out x", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "resnet99"), "bad arch: %d %.300s", rc, out);
    rc = run("./zsesbir eval --weights " TCN_ROOT "/w.safetensors" TCN_DATA " --bits 8", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "go with --hash"), "bits without hash: %d %.300s", rc, out);
}

/* issue 7: explain on a tiny random model: runs, is deterministic, every map and heat
   choice works, the blended synthesis differs, usage errors exit 2, bad files exit 1 */
static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *x = zt_read_file(a, &na), *y = zt_read_file(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void test_cli_explain(void) {
    static const char *heat[5] = {"ret", "rn", "attn", "cls", "match"}, *map[3] = {"centred", "cos", "attn"};
    char cmd[1024];
    int rc, i;
#define EX_ARGS " --weights " ROOT "/wx.safetensors --sketch " ROOT "/sketch/ring/ring0-1.ppm --photo " ROOT "/photo/ring/ring1.ppm --threads 1"
    if (!have_cli()) ZT_SKIP("./zsesbir not built (run make)");
    ZT_REQUIRE(make_data() == 0, "test data");
    rc = run("./zsesbir init --config tiny --seed 3 --out " ROOT "/wx.safetensors", out, sizeof out);
    ZT_REQUIRE(rc == 0, "init: %d %.300s", rc, out);
    rc = run("./zsesbir explain" EX_ARGS " --out " ROOT "/xa.ppm --synth " ROOT "/xsa.ppm", out, sizeof out);
    ZT_REQUIRE(rc == 0, "explain: %d %.400s", rc, out);
    rc = run("./zsesbir explain" EX_ARGS " --out " ROOT "/xb.ppm --synth " ROOT "/xsb.ppm", out, sizeof out);
    ZT_CHECK(rc == 0, "explain again: %d %.400s", rc, out);
    ZT_CHECK(same_file(ROOT "/xa.ppm", ROOT "/xb.ppm"), "picture not deterministic");
    ZT_CHECK(same_file(ROOT "/xsa.ppm", ROOT "/xsb.ppm"), "synthesis not deterministic");
    rc = run("./zsesbir explain" EX_ARGS " --out " ROOT "/xc.ppm --synth " ROOT "/xsc.ppm --blend 8 --heat rn --map attn", out, sizeof out);
    ZT_CHECK(rc == 0, "blend: %d %.400s", rc, out);
    ZT_CHECK(!same_file(ROOT "/xsa.ppm", ROOT "/xsc.ppm"), "--blend 8 did not change the synthesis");
    for (i = 0; i < 5; i++) {
        snprintf(cmd, sizeof cmd, "./zsesbir explain" EX_ARGS " --out " ROOT "/xh.ppm --heat %s", heat[i]);
        rc = run(cmd, out, sizeof out);
        ZT_CHECK(rc == 0, "--heat %s: %d %.300s", heat[i], rc, out);
    }
    for (i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "./zsesbir explain" EX_ARGS " --out " ROOT "/xm.ppm --all-patches --map %s", map[i]);
        rc = run(cmd, out, sizeof out);
        ZT_CHECK(rc == 0, "--map %s: %d %.300s", map[i], rc, out);
    }
    rc = run("./zsesbir explain" EX_ARGS " --out " ROOT "/x.ppm --top 0", out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "--top"), "--top 0: %d %.300s", rc, out);
    rc = run("./zsesbir explain" EX_ARGS " --out " ROOT "/x.ppm --map nope", out, sizeof out);
    ZT_CHECK(rc == 2, "--map nope: %d %.300s", rc, out);
    rc = run("./zsesbir explain" EX_ARGS " --out " ROOT "/x.ppm --heat nope", out, sizeof out);
    ZT_CHECK(rc == 2, "--heat nope: %d %.300s", rc, out);
    rc = run("./zsesbir explain" EX_ARGS, out, sizeof out);
    ZT_CHECK(rc == 2 && strstr(out, "--out"), "missing --out: %d %.300s", rc, out);
    rc = run("./zsesbir explain --weights " ROOT "/wx.safetensors --sketch " ROOT "/none.ppm --photo " ROOT "/photo/ring/ring1.ppm --out " ROOT
             "/x.ppm", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "error"), "missing sketch: %d %.300s", rc, out);
    rc = run("./zsesbir explain" EX_ARGS " --out /nonexistent_dir/x.ppm", out, sizeof out);
    ZT_CHECK(rc == 1 && strstr(out, "error"), "unwritable output: %d %.300s", rc, out);
#undef EX_ARGS
}

int main(int argc, char **argv) {
    zt_select(argc, argv);
    ZT_RUN(test_cli_tcn);
    ZT_RUN(test_cli_pipeline);
    ZT_RUN(test_cli_errors);
    ZT_RUN(test_cli_pth);
    ZT_RUN(test_cli_explain);
    return zt_finish();
}
