#!/bin/sh
# libFuzzer on every file loader (`make fuzz`): builds tests/fuzz/fuzz_<target>.c
# with clang -fsanitize=fuzzer,address,undefined, builds seed corpora from
# real files under build/fuzz/corpus/<target>/ (never committed), runs each
# target for FUZZ_SECONDS (default 60) and prints executions, time, corpus
# size and crashes per target. Exits non-zero when any target crashed
# (the input is kept as build/fuzz/crash/<target>-*: minimise it with
# `build/fuzz/bin/fuzz_<target> -minimize_crash=1 -runs=10000 FILE`, fix the
# loader and add it to tests/fuzz/regress/<target>/ for `make test`).
#
#   FUZZ_SECONDS=300 FUZZ_TARGETS="zip pickle" sh tools/fuzz.sh
set -u
cd "$(dirname "$0")/.." || exit 1

SECONDS_PER=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"zip pickle safetensors npy zsi image ndjson"}
CLANG=${CLANG:-clang}
CC=${CC:-cc}
DATA=${DATA:-../shared/data}
B=build/fuzz

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "make fuzz needs clang with libFuzzer: apt-get install clang" >&2
    exit 1
fi
mkdir -p $B/bin $B/crash || exit 1

# -- build -------------------------------------------------------------------
FFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fsanitize-ignorelist=tests/fuzz/ubsan.ignore -fno-omit-frame-pointer -Wall -Wextra"
for t in $TARGETS; do
    if [ ! -f tests/fuzz/fuzz_$t.c ]; then echo "no target '$t' (tests/fuzz/fuzz_$t.c)" >&2; exit 1; fi
    echo "building fuzz_$t"
    $CLANG $FFLAGS -DZF_LIBFUZZER -I. tests/fuzz/fuzz_$t.c -o $B/bin/fuzz_$t -lm -lpthread || exit 1
done
$CC -std=c99 -O1 -I. tools/fuzz_seeds.c -o $B/bin/fuzz_seeds -lm -lpthread || exit 1

# -- seed corpora (the fuzzers add to them; rebuilding only refreshes seeds) ---
seed() { mkdir -p $B/corpus/$1; }
small() { # copies files of at most $2 bytes into corpus $1
    dst=$1; max=$2; shift 2
    for f in "$@"; do
        [ -f "$f" ] && [ "$(wc -c <"$f")" -le "$max" ] && cp "$f" "$B/corpus/$dst/$(echo "$f" | tr / _)"
    done
    return 0
}
for t in $TARGETS; do
    seed $t
    case $t in
    zip) small zip 65536 tests/golden/pth/*.pth ;;
    pickle) $B/bin/fuzz_seeds pickle $B/corpus/pickle tests/golden/pth/*.pth >/dev/null ;;
    safetensors)
        small safetensors 65536 tests/golden/*.safetensors tests/golden/pth/*.safetensors
        $B/bin/fuzz_seeds safetensors $B/corpus/safetensors tests/golden/zsesbir_tiny.safetensors >/dev/null ;;
    npy) small npy 16384 tests/golden/*.npy tests/golden/*/*.npy ;;
    zsi) $B/bin/fuzz_seeds zsi $B/corpus/zsi ;;
    image)
        imgs=""
        for c in airplane cat guitar; do
            for f in $(ls $DATA/sketchy/sketch/$c/*.png 2>/dev/null | head -n 1) $(ls $DATA/sketchy/photo/$c/*.jpg 2>/dev/null | head -n 1); do
                imgs="$imgs $f"
            done
        done
        if [ -n "$imgs" ]; then
            small image 65536 $imgs
            $B/bin/fuzz_seeds image $B/corpus/image $imgs >/dev/null
        else
            echo "  ($DATA/sketchy missing: the image seed is one tiny PPM)"
        fi
        printf 'P6\n2 2\n255\n\0\0\0\377\377\377\0\0\0\377\377\377' >$B/corpus/image/tiny.ppm ;;
    ndjson)
        for f in $DATA/quickdraw/*.ndjson tests/golden/quickdraw_synth.ndjson; do
            [ -f "$f" ] || continue
            n=$(basename "$f" .ndjson)
            head -n 2 "$f" >$B/corpus/ndjson/$n.2
            sed -n 5p "$f" >$B/corpus/ndjson/$n.5
        done ;;
    esac
done

# -- run -----------------------------------------------------------------------
maxlen() {
    case $1 in zip|image|safetensors) echo 65536 ;; pickle) echo 16384 ;; *) echo 16384 ;; esac
}
dict() {
    case $1 in pickle) echo tests/fuzz/pickle.dict ;; zip) echo tests/fuzz/zip.dict ;; image) echo tests/fuzz/image.dict ;;
    zsi) echo tests/fuzz/zsi.dict ;; *) echo tests/fuzz/json.dict ;; esac
}
crashed=""
summary=$B/summary.$$.txt # per run: several runs may share build/fuzz
printf '%-12s %12s %8s %10s %8s  %s\n' target executions seconds exec/s corpus result >$summary
for t in $TARGETS; do
    log=$B/$t.log
    echo "fuzzing $t for ${SECONDS_PER}s (log: $log)"
    t0=$(date +%s)
    TMPDIR=${TMPDIR:-/tmp} $B/bin/fuzz_$t -max_total_time=$SECONDS_PER -max_len=$(maxlen $t) -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -dict=$(dict $t) -print_final_stats=1 \
        -artifact_prefix=$B/crash/$t- $B/corpus/$t $( [ -d tests/fuzz/regress/$t ] && echo tests/fuzz/regress/$t) >$log 2>&1
    rc=$?
    t1=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' $log | tail -n 1)
    execs=${execs:-?}
    secs=$((t1 - t0))
    rate=$( [ "$execs" != "?" ] && [ $secs -gt 0 ] && echo $((execs / secs)) || echo "?")
    files=$(ls $B/corpus/$t | wc -l)
    if [ $rc -eq 0 ]; then res=ok
    else
        res="CRASH (exit $rc): $(grep -m1 -E 'ERROR:|runtime error|broken contract|out-of-memory|timeout' $log | cut -c1-120)"
        crashed="$crashed $t"
    fi
    printf '%-12s %12s %8s %10s %8s  %s\n' $t "$execs" $secs "$rate" $files "$res" >>$summary
done
echo
cat $summary && mv $summary $B/summary.txt
if [ -n "$crashed" ]; then
    echo "crashes in:$crashed (inputs in $B/crash/, logs in $B/<target>.log)"
    exit 1
fi
