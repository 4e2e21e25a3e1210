#!/bin/bash
# bench_train.sh - real-data training benchmark: the C trainer (zsesbir train) against
# the PyTorch reference (tools/train_ref.py) on the same initial weights, the same
# batches in the same order (zsesbir train --plan), the same hyper-parameters; both
# trained models evaluated by the SAME C metric code (zsesbir eval) on the held-out
# classes (ret-token mode, and two-stage with an RN rerank of the top RERANK).
#
#   tools/bench_train.sh                        # from /work/main (or anywhere)
#   STEPS=100 SEEDS="1" tools/bench_train.sh    # shorter
#   LONG_STEPS=1000 tools/bench_train.sh        # also continue the first seed's C run
#                                               # to 1000 steps (--resume) and evaluate it
# Settings (environment): DATA TESTS CONFIG BATCH STEPS SEEDS THREADS LR WD RERANK OUT ZS
#   ZS           the CLI (default ./zsesbir; point it at a copy to be safe from rebuilds)
#   TORCH_ENV    thread environment of the PyTorch run; default: torch's own ops on one
#                thread, OpenBLAS GEMMs on THREADS threads (the fastest PyTorch setting on
#                this 2-core machine; the OpenMP pool and OpenBLAS's pool otherwise spin
#                against each other) with TORCH_THREADS=1 for torch.set_num_threads
#   TORCH_ALT_STEPS  steps of an extra timing-only PyTorch run of the first seed with
#                torch.set_num_threads(THREADS), OMP/OpenBLAS THREADS threads and
#                OMP_WAIT_POLICY=PASSIVE (0: skip)
# Each C/PyTorch pair runs back to back; wall times come from /usr/bin/time (whole
# command) and from the programs' own timers (training loop only).
# Results: $OUT/results.txt (table) and $OUT/s<seed>/* (logs, weights, plans).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-../shared/data/sketchy}
TESTS=${TESTS:-../shared/splits/test_class_sketchy25.txt}
CONFIG=${CONFIG:-small}
BATCH=${BATCH:-8}
STEPS=${STEPS:-300}
SEEDS=${SEEDS:-"1 2 3"}
THREADS=${THREADS:-2}
LR=${LR:-3e-4}
WD=${WD:-1e-2}
RERANK=${RERANK:-100}
OUT=${OUT:-build/bench_train}
ZS=${ZS:-./zsesbir}
PY=/usr/bin/python3
TORCH_THREADS=${TORCH_THREADS:-1}
TORCH_ENV=${TORCH_ENV:-"OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=$THREADS"}
TORCH_ALT_STEPS=${TORCH_ALT_STEPS:-100}
LONG_STEPS=${LONG_STEPS:-0}
TIMEFMT="wall_s=%e user_s=%U sys_s=%S peak_rss_kb=%M"

[ -x "$ZS" ] || { echo "no $ZS (cd /work/main && make zsesbir)"; exit 1; }
# Debian's python3-torch runs its GEMMs through whatever libblas.so.3 points at: the
# reference BLAS makes PyTorch ~10x slower than its best setting. Refuse to compare then.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
    *openblas*|*blis*|*mkl*) ;;
    *) echo "libblas.so.3 is $blas (reference BLAS?): install libopenblas-dev (make bench does) so PyTorch runs at its best"; exit 1 ;;
esac
mkdir -p "$OUT"
common=(--data "$DATA" --test-classes "$TESTS" --batch "$BATCH" --lr "$LR" --wd "$WD" --threads "$THREADS")

evaluate() { # weights tag dir: ret and two-stage evaluations -> dir/eval_<tag>_{ret,2st}.txt
    "$ZS" eval --weights "$1" --data "$DATA" --test-classes "$TESTS" --mode ret --threads "$THREADS" > "$3/eval_$2_ret.txt"
    "$ZS" eval --weights "$1" --data "$DATA" --test-classes "$TESTS" --mode two-stage --rerank "$RERANK" \
        --threads "$THREADS" > "$3/eval_$2_2st.txt"
    echo "  eval $2: ret: $(tail -1 "$3/eval_$2_ret.txt")"
    echo "  eval $2: two-stage/$RERANK: $(tail -1 "$3/eval_$2_2st.txt")"
}

{
    echo "date: $(date -u +%FT%TZ)  host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "zsesbir: $("$ZS" version) ($ZS, $(sha1sum "$ZS" | cut -c1-12))"
    echo "torch: $($PY -c 'import torch; print(torch.__version__)'), env: $TORCH_ENV, torch.set_num_threads($TORCH_THREADS), BLAS: $blas"
    echo "data: $DATA  test classes: $TESTS  config: $CONFIG  batch: $BATCH  steps: $STEPS  seeds: $SEEDS"
    echo "lr: $LR  wd: $WD  threads: $THREADS  rerank: $RERANK"
} > "$OUT/setup.txt"
cat "$OUT/setup.txt"

first=""
for s in $SEEDS; do
    d="$OUT/s$s"
    mkdir -p "$d"
    first=${first:-$s}
    echo "== seed $s"
    "$ZS" init --config "$CONFIG" --seed "$s" --out "$d/init.safetensors" > /dev/null
    # C training, then the plan, then PyTorch training, back to back
    echo "  load before C: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$d/load.txt"
    /usr/bin/time -f "$TIMEFMT" -o "$d/c_time.txt" "$ZS" train "${common[@]}" --init "$d/init.safetensors" \
        --steps "$STEPS" --seed "$s" --log-every 1 --save-every 100000000 --out "$d/c.safetensors" > "$d/c_train.log"
    echo "  C: $(tail -1 "$d/c_train.log")"
    echo "  C: $(cat "$d/c_time.txt")"
    "$ZS" train "${common[@]}" --init "$d/init.safetensors" --steps "$STEPS" --seed "$s" --plan "$d/plan.txt" \
        --out "$d/plan.unused" > /dev/null
    echo "  load before torch: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$d/load.txt"
    env $TORCH_ENV /usr/bin/time -f "$TIMEFMT" -o "$d/torch_time.txt" $PY tools/train_ref.py --init "$d/init.safetensors" \
        --plan "$d/plan.txt" --lr "$LR" --wd "$WD" --seed "$s" --threads "$TORCH_THREADS" --log-every 50 \
        --out "$d/torch.safetensors" --losses "$d/torch_losses.tsv" > "$d/torch_train.log"
    echo "  torch: $(tail -2 "$d/torch_train.log" | head -1)"
    echo "  torch: $(cat "$d/torch_time.txt")"
    if [ "$s" = "$first" ] && [ "$TORCH_ALT_STEPS" -gt 0 ]; then
        n=$(( TORCH_ALT_STEPS < STEPS ? TORCH_ALT_STEPS : STEPS ))
        echo "  load before torch-alt: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$d/load.txt"
        env OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OMP_WAIT_POLICY=PASSIVE \
            /usr/bin/time -f "$TIMEFMT" -o "$d/torch_alt_time.txt" $PY tools/train_ref.py --init "$d/init.safetensors" \
            --plan "$d/plan.txt" --steps "$n" --lr "$LR" --wd "$WD" --seed "$s" --threads "$THREADS" --log-every 50 \
            --out "$d/torch_alt.safetensors" > "$d/torch_alt_train.log"
        echo "  torch-alt ($n steps, set_num_threads($THREADS), OMP passive): $(tail -1 "$d/torch_alt_train.log")"
    fi
    evaluate "$d/c.safetensors" c "$d"
    evaluate "$d/torch.safetensors" torch "$d"
done

if [ "$LONG_STEPS" -gt "$STEPS" ]; then
    d="$OUT/long"
    mkdir -p "$d"
    echo "== longer C run: seed $first continued from step $STEPS to $LONG_STEPS (--resume replays the same schedule)"
    echo "  load before C-long: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$d/load.txt"
    /usr/bin/time -f "$TIMEFMT" -o "$d/c_time.txt" "$ZS" train "${common[@]}" --resume "$OUT/s$first/c.safetensors" \
        --steps "$LONG_STEPS" --seed "$first" --log-every 1 --save-every 100000000 --out "$d/c.safetensors" > "$d/c_train.log"
    echo "  C: $(tail -1 "$d/c_train.log")"
    echo "  C: $(cat "$d/c_time.txt")"
    evaluate "$d/c.safetensors" c "$d"
fi

OUT="$OUT" SEEDS="$SEEDS" STEPS="$STEPS" LONG_STEPS="$LONG_STEPS" FIRST="$first" RERANK="$RERANK" \
TORCH_ALT_STEPS="$TORCH_ALT_STEPS" THREADS="$THREADS" $PY - <<'EOF' | tee "$OUT/results.txt"
import json, os, re
out, seeds = os.environ["OUT"], os.environ["SEEDS"].split()
steps, long_steps, first = int(os.environ["STEPS"]), int(os.environ["LONG_STEPS"]), os.environ["FIRST"]
rerank, threads = os.environ["RERANK"], os.environ["THREADS"]

def metrics(path):
    last = open(path).read().strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\S+)=([0-9.eE+-]+)", last)}

def timing(path):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", open(path).read())}

def c_log(path):
    txt = open(path).read()
    losses = [float(x) for x in re.findall(r"^step \d+/\d+  loss ([0-9.]+)", txt, re.M)]
    loop = float(re.search(r"after \d+ steps, ([0-9.]+) s", txt).group(1))
    return losses, loop

def t_log(path):
    return json.loads(open(path).read().strip().splitlines()[-1].split(" ", 1)[1])

def mean(xs):
    return sum(xs) / len(xs)

rows = []
for s in seeds:
    d = f"{out}/s{s}"
    r = {"seed": s}
    for w in ("c", "torch"):
        r[w + "_ret"] = metrics(f"{d}/eval_{w}_ret.txt")
        r[w + "_2st"] = metrics(f"{d}/eval_{w}_2st.txt")
        r[w + "_time"] = timing(f"{d}/{w}_time.txt")
    cl, r["c_loop"] = c_log(f"{d}/c_train.log")
    ts = t_log(f"{d}/torch_train.log")
    r["t_loop"], r["t_train"], r["t_pre"] = ts["loop_s"], ts["train_s"], ts["preprocess_s"]
    tl = [float(l.split("\t")[1]) for l in open(f"{d}/torch_losses.tsv").read().splitlines()[1:]]
    r["c_loss50"], r["t_loss50"] = mean(cl[-50:]), mean(tl[-50:])
    r["c_loss1"], r["t_loss1"] = cl[0], tl[0]
    r["load"] = open(f"{d}/load.txt").read().split("\n")[0].split(": ")[1]
    rows.append(r)

def line(cells, widths):
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))

print(f"ZSE-SBIR training benchmark: C (zsesbir train) vs PyTorch reference (tools/train_ref.py), {steps} steps; "
      f"eval on the held-out classes by `zsesbir eval` (ZSE-SBIR release metric definitions)")
print(open(f"{out}/setup.txt").read().rstrip())
print()
print("ret-token mode (mode ret); time = whole-command wall time (/usr/bin/time), ratio = torch / C")
W = [4, 10, 10, 8, 8, 8, 8, 6]
print(line(["seed", "C mAP@all", "T mAP@all", "C P@100", "T P@100", "C s", "T s", "ratio"], W))
for r in rows:
    print(line([r["seed"], f'{r["c_ret"]["mAP@all"]:.4f}', f'{r["torch_ret"]["mAP@all"]:.4f}',
                f'{r["c_ret"]["P@100"]:.4f}', f'{r["torch_ret"]["P@100"]:.4f}',
                f'{r["c_time"]["wall_s"]:.1f}', f'{r["torch_time"]["wall_s"]:.1f}',
                f'{r["torch_time"]["wall_s"] / r["c_time"]["wall_s"]:.2f}'], W))
m = lambda f: mean([f(r) for r in rows])
print(line(["mean", f'{m(lambda r: r["c_ret"]["mAP@all"]):.4f}', f'{m(lambda r: r["torch_ret"]["mAP@all"]):.4f}',
            f'{m(lambda r: r["c_ret"]["P@100"]):.4f}', f'{m(lambda r: r["torch_ret"]["P@100"]):.4f}',
            f'{m(lambda r: r["c_time"]["wall_s"]):.1f}', f'{m(lambda r: r["torch_time"]["wall_s"]):.1f}',
            f'{m(lambda r: r["torch_time"]["wall_s"]) / m(lambda r: r["c_time"]["wall_s"]):.2f}'], W))
dm = m(lambda r: r["c_ret"]["mAP@all"]) - m(lambda r: r["torch_ret"]["mAP@all"])
print(f"mean mAP@all difference C - torch: {dm:+.4f} (target |diff| <= 0.01: {'met' if abs(dm) <= 0.01 else 'NOT met'}); "
      f"per seed: " + ", ".join(f'{r["c_ret"]["mAP@all"] - r["torch_ret"]["mAP@all"]:+.4f}' for r in rows))
print()
print(f"two-stage mode (ret, then RN rerank of the top {rerank})")
W2 = [4, 10, 10, 8, 8, 10, 10]
print(line(["seed", "C mAP@all", "T mAP@all", "C P@100", "T P@100", "C mAP@200", "T mAP@200"], W2))
for r in rows:
    print(line([r["seed"], f'{r["c_2st"]["mAP@all"]:.4f}', f'{r["torch_2st"]["mAP@all"]:.4f}',
                f'{r["c_2st"]["P@100"]:.4f}', f'{r["torch_2st"]["P@100"]:.4f}',
                f'{r["c_2st"]["mAP@200"]:.4f}', f'{r["torch_2st"]["mAP@200"]:.4f}'], W2))
print(line(["mean"] + [f'{m(lambda r, w=w, k=k: r[w + "_2st"][k]):.4f}' for k in ("mAP@all", "P@100", "mAP@200")
                       for w in ("c", "torch")], W2))
print()
print("timings (s) and memory: C loop / torch loop = the programs' own timers over the training loop (incl. image")
print("loading + pre-processing); torch train = forward+backward+AdamW only; RSS = peak resident set (MB)")
W3 = [4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 16]
print(line(["seed", "C wall", "C loop", "C s/st", "T wall", "T loop", "T train", "T pre", "C RSS", "T RSS", "load(1,5,15m)"], W3))
for r in rows:
    print(line([r["seed"], f'{r["c_time"]["wall_s"]:.1f}', f'{r["c_loop"]:.1f}', f'{r["c_loop"] / steps:.3f}',
                f'{r["torch_time"]["wall_s"]:.1f}', f'{r["t_loop"]:.1f}', f'{r["t_train"]:.1f}', f'{r["t_pre"]:.1f}',
                f'{r["c_time"]["peak_rss_kb"] / 1024:.0f}', f'{r["torch_time"]["peak_rss_kb"] / 1024:.0f}',
                r["load"].replace(" ", ",")], W3))
print(f'mean ratios torch/C: wall {m(lambda r: r["torch_time"]["wall_s"]) / m(lambda r: r["c_time"]["wall_s"]):.2f}, '
      f'training loop {m(lambda r: r["t_loop"]) / m(lambda r: r["c_loop"]):.2f}, '
      f'torch fwd+bwd+step only vs C loop {m(lambda r: r["t_train"]) / m(lambda r: r["c_loop"]):.2f}; '
      f'CPU time (user+sys) C {m(lambda r: r["c_time"]["user_s"] + r["c_time"]["sys_s"]):.1f} s, '
      f'torch {m(lambda r: r["torch_time"]["user_s"] + r["torch_time"]["sys_s"]):.1f} s')
alt = f"{out}/s{first}/torch_alt_train.log"
if int(os.environ["TORCH_ALT_STEPS"]) > 0 and os.path.exists(alt):
    a = t_log(alt)
    r0 = rows[0]
    print(f"torch with set_num_threads({threads}) + OMP_WAIT_POLICY=PASSIVE (seed {first}, first {a['steps']} steps, "
          f"timing only): train {a['train_s'] / a['steps']:.3f} s/step, loop {a['loop_s'] / a['steps']:.3f} s/step "
          f"vs C {r0['c_loop'] / steps:.3f} s/step (ratio {a['loop_s'] / a['steps'] / (r0['c_loop'] / steps):.2f})")
print()
print("training loss (2 triplet + 4 RN): step 1 and mean of the last 50 steps")
for r in rows:
    print(f'  seed {r["seed"]}: step 1 C {r["c_loss1"]:.4f} torch {r["t_loss1"]:.4f}; last-50 mean C {r["c_loss50"]:.4f} '
          f'torch {r["t_loss50"]:.4f}')
if long_steps > steps and os.path.exists(f"{out}/long/eval_c_ret.txt"):
    d = f"{out}/long"
    cl, loop = c_log(f"{d}/c_train.log")
    t = timing(f"{d}/c_time.txt")
    e1, e2 = metrics(f"{d}/eval_c_ret.txt"), metrics(f"{d}/eval_c_2st.txt")
    r0 = rows[0]
    print()
    print(f"longer C run: seed {first}, {long_steps} steps (the {steps}-step run resumed for {long_steps - steps} more "
          f"steps; same schedule as an uninterrupted run)")
    print(f"  ret:       mAP@all={e1['mAP@all']:.4f} P@100={e1['P@100']:.4f} mAP@200={e1['mAP@200']:.4f} "
          f"(at {steps} steps: {r0['c_ret']['mAP@all']:.4f} / {r0['c_ret']['P@100']:.4f})")
    print(f"  two-stage: mAP@all={e2['mAP@all']:.4f} P@100={e2['P@100']:.4f} mAP@200={e2['mAP@200']:.4f} "
          f"(at {steps} steps: {r0['c_2st']['mAP@all']:.4f} / {r0['c_2st']['P@100']:.4f})")
    print(f"  time: {t['wall_s'] + r0['c_time']['wall_s']:.1f} s wall in total ({r0['c_time']['wall_s']:.1f} + "
          f"{t['wall_s']:.1f}), {loop / (long_steps - steps):.3f} s/step in the resumed part; peak RSS "
          f"{t['peak_rss_kb'] / 1024:.0f} MB; last-50 mean loss {mean(cl[-50:]):.4f}")
EOF
