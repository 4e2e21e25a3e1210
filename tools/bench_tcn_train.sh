#!/bin/bash
# bench_tcn_train.sh - real-data TCN training benchmark: the C trainer (zsesbir train
# --model tcn) against the PyTorch reference (tools/tcn_train_ref.py, the model and
# losses of tools/tcn_ref.py) from the same initial weights, on the same pairs in the
# same order with the same semantic-metric weights a (zsesbir train --model tcn --plan,
# which also writes the initial weights), the same hyper-parameters (Adam, weight decay
# 5e-4, the lr schedule of SPEC 2.2, loss weights 1/1000/1; no teacher, so no KD term);
# no augmentation (--no-aug: the reference replays identity-augmented plans only). Both
# trained models are evaluated by the SAME C code (zsesbir eval) on the held-out classes:
# real-valued (Euclidean) and hashed (ITQ with BITS bits fitted on the gallery
# embeddings of each model, Hamming).
#
#   tools/bench_tcn_train.sh                         # from /work/main (or anywhere)
#   STEPS=20 SEEDS="1" tools/bench_tcn_train.sh      # a smoke run
#   PIN="taskset -c 1" THREADS=1 tools/bench_tcn_train.sh   # every command on core 1
# Settings (environment): DATA TESTS ARCH DIM SIZE BATCH STEPS SEEDS THREADS LR BITS OUT ZS PIN
#   ZS           the CLI (default ./zsesbir; point it at a copy to be safe from rebuilds)
#   PIN          command prefix of every heavy command (e.g. "taskset -c 1"; default none)
#   TORCH_ENV    thread environment of the PyTorch run (default: OMP_NUM_THREADS=1,
#                OPENBLAS_NUM_THREADS=THREADS), TORCH_THREADS for torch.set_num_threads (1)
# Each C/PyTorch pair runs back to back; wall times come from /usr/bin/time (whole
# command) and from the programs' own timers (training loop only).
# Results: $OUT/results.txt (table) and $OUT/s<seed>/* (logs, weights, plans).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-../shared/data/sketchy}
TESTS=${TESTS:-../shared/splits/test_class_sketchy25.txt}
ARCH=${ARCH:-resnet18}
DIM=${DIM:-64}
SIZE=${SIZE:-112}
BATCH=${BATCH:-16}
STEPS=${STEPS:-300}
SEEDS=${SEEDS:-"1 2"}
THREADS=${THREADS:-2}
LR=${LR:-1e-4}
BITS=${BITS:-64}
OUT=${OUT:-build/bench_tcn_train}
ZS=${ZS:-./zsesbir}
PIN=${PIN:-}
PY=/usr/bin/python3
TORCH_THREADS=${TORCH_THREADS:-1}
TORCH_ENV=${TORCH_ENV:-"OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=$THREADS"}
TIMEFMT="wall_s=%e user_s=%U sys_s=%S peak_rss_kb=%M"

[ -x "$ZS" ] || { echo "no $ZS (cd /work/main && make zsesbir)"; exit 1; }
$PY -c "import torch, numpy, PIL" 2>/dev/null || { echo "needs PyTorch, numpy and PIL for /usr/bin/python3"; exit 1; }
# Debian's python3-torch runs its GEMMs through whatever libblas.so.3 points at: the
# reference BLAS makes PyTorch ~10x slower than its best setting. Refuse to compare then.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
    *openblas*|*blis*|*mkl*) ;;
    *) echo "libblas.so.3 is $blas (reference BLAS?): install libopenblas-dev (make openblas) so PyTorch runs at its best"; exit 1 ;;
esac
mkdir -p "$OUT"
common=(--model tcn --data "$DATA" --test-classes "$TESTS" --arch "$ARCH" --dim "$DIM" --size "$SIZE" --batch "$BATCH"
        --steps "$STEPS" --lr "$LR" --no-aug --threads "$THREADS")

evaluate() { # weights tag dir: real-valued and hashed evaluations -> dir/eval_<tag>_{real,hash}.txt
    $PIN "$ZS" eval --weights "$1" --data "$DATA" --test-classes "$TESTS" --threads "$THREADS" > "$3/eval_$2_real.txt"
    $PIN "$ZS" eval --weights "$1" --data "$DATA" --test-classes "$TESTS" --hash --bits "$BITS" --threads "$THREADS" \
        > "$3/eval_$2_hash.txt"
    echo "  eval $2: real: $(tail -1 "$3/eval_$2_real.txt")"
    echo "  eval $2: hash/$BITS: $(tail -1 "$3/eval_$2_hash.txt")"
}

{
    echo "date: $(date -u +%FT%TZ)  host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "zsesbir: $("$ZS" version) ($ZS, $(sha1sum "$ZS" | cut -c1-12))"
    echo "torch: $($PY -c 'import torch; print(torch.__version__)'), env: $TORCH_ENV, torch.set_num_threads($TORCH_THREADS), BLAS: $blas"
    echo "data: $DATA  test classes: $TESTS  arch: $ARCH  dim: $DIM  size: $SIZE  batch: $BATCH  steps: $STEPS  seeds: $SEEDS"
    echo "lr: $LR (Adam, wd 5e-4, SPEC 2.2 schedule)  no augmentation, no KD  threads: $THREADS  ITQ bits: $BITS  pin: ${PIN:-none}"
} > "$OUT/setup.txt"
cat "$OUT/setup.txt"

for s in $SEEDS; do
    d="$OUT/s$s"
    mkdir -p "$d"
    echo "== seed $s"
    # the plan and the initial weights, then C training, then PyTorch training, back to back
    $PIN "$ZS" train "${common[@]}" --seed "$s" --plan "$d/plan.tsv" --out "$d/init.safetensors" > "$d/plan.log"
    echo "  load before C: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$d/load.txt"
    /usr/bin/time -f "$TIMEFMT" -o "$d/c_time.txt" $PIN "$ZS" train "${common[@]}" --seed "$s" --log-every 1 \
        --save-every 100000000 --out "$d/c.safetensors" > "$d/c_train.log"
    echo "  C: $(tail -1 "$d/c_train.log")"
    echo "  C: $(cat "$d/c_time.txt")"
    echo "  load before torch: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$d/load.txt"
    env $TORCH_ENV /usr/bin/time -f "$TIMEFMT" -o "$d/torch_time.txt" $PIN $PY tools/tcn_train_ref.py \
        --init "$d/init.safetensors" --plan "$d/plan.tsv" --seed "$s" --threads "$TORCH_THREADS" --log-every 50 \
        --out "$d/torch.safetensors" --losses "$d/torch_losses.tsv" > "$d/torch_train.log"
    echo "  torch: $(tail -2 "$d/torch_train.log" | head -1)"
    echo "  torch: $(cat "$d/torch_time.txt")"
    evaluate "$d/init.safetensors" init "$d"
    evaluate "$d/c.safetensors" c "$d"
    evaluate "$d/torch.safetensors" torch "$d"
done

OUT="$OUT" SEEDS="$SEEDS" STEPS="$STEPS" BITS="$BITS" $PY - <<'EOF' | tee "$OUT/results.txt"
import json, os, re
out, seeds = os.environ["OUT"], os.environ["SEEDS"].split()
steps, bits = int(os.environ["STEPS"]), os.environ["BITS"]

def metrics(path):
    lines = open(path).read().strip().splitlines()
    m = {k: float(v) for k, v in re.findall(r"(\S+)=([0-9.eE+-]+)", lines[-1])}
    rnd = [l for l in lines if l.startswith("random ranking:")]
    m["rand"] = {k: float(v) for k, v in re.findall(r"(\S+)=([0-9.eE+-]+)", rnd[0])} if rnd else {}
    tcn = [l for l in lines if "TCN definitions" in l]
    if tcn:
        t = re.search(r"mAP per class=([0-9.]+) P@100=([0-9.]+)", tcn[-1])
        m["tcn_map"], m["tcn_p100"] = float(t.group(1)), float(t.group(2))
    return m

def timing(path):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", open(path).read())}

C_STEP = re.compile(r"^step (\d+)/\d+  loss ([0-9.]+) \(cls ([0-9.]+)/([0-9.]+) kd [0-9.]+ sbh ([0-9.]+) share ([0-9.]+)", re.M)

def c_log(path):
    txt = open(path).read()
    losses = [tuple(float(x) for x in m.groups()[1:]) for m in C_STEP.finditer(txt)]
    loop = float(re.search(r"after \d+ steps, ([0-9.]+) s", txt).group(1))
    return losses, loop

def t_losses(path):
    return [tuple(float(x) for x in l.split("\t")[1:]) for l in open(path).read().splitlines()[1:]]

def t_log(path):
    return json.loads(open(path).read().strip().splitlines()[-1].split(" ", 1)[1])

def mean(xs):
    return sum(xs) / len(xs)

rows = []
for s in seeds:
    d = f"{out}/s{s}"
    r = {"seed": s}
    for w in ("init", "c", "torch"):
        r[w + "_real"] = metrics(f"{d}/eval_{w}_real.txt")
        r[w + "_hash"] = metrics(f"{d}/eval_{w}_hash.txt")
    for w in ("c", "torch"):
        r[w + "_time"] = timing(f"{d}/{w}_time.txt")
    r["cl"], r["c_loop"] = c_log(f"{d}/c_train.log")
    r["tl"] = t_losses(f"{d}/torch_losses.tsv")
    ts = t_log(f"{d}/torch_train.log")
    r["t_loop"], r["t_train"], r["t_pre"] = ts["loop_s"], ts["train_s"], ts["preprocess_s"]
    r["load"] = open(f"{d}/load.txt").read().split("\n")[0].split(": ")[1]
    rows.append(r)

def line(cells, widths):
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))

m = lambda f: mean([f(r) for r in rows])
print(f"TCN training benchmark: C (zsesbir train --model tcn) vs PyTorch reference (tools/tcn_train_ref.py), "
      f"{steps} steps, same init, same pairs and a; eval on the held-out classes by `zsesbir eval` "
      f"(mAP@all, P@100: ZSE-SBIR release definitions; TCN release definitions in the last columns)")
print(open(f"{out}/setup.txt").read().rstrip())
for kind, title in (("real", "real-valued (L2-normalised embeddings, Euclidean)"),
                    ("hash", f"hashed ({bits}-bit ITQ fitted on each model's gallery embeddings, Hamming)")):
    print()
    print(title)
    W = [4, 10, 10, 8, 8, 9, 9, 9, 9]
    print(line(["seed", "C mAP@all", "T mAP@all", "C P@100", "T P@100", "d mAP", "d P@100", "C mAP/c", "T mAP/c"], W))
    for r in rows:
        c, t = r["c_" + kind], r["torch_" + kind]
        print(line([r["seed"], f'{c["mAP@all"]:.4f}', f'{t["mAP@all"]:.4f}', f'{c["P@100"]:.4f}', f'{t["P@100"]:.4f}',
                    f'{c["mAP@all"] - t["mAP@all"]:+.4f}', f'{c["P@100"] - t["P@100"]:+.4f}',
                    f'{c.get("tcn_map", float("nan")):.4f}', f'{t.get("tcn_map", float("nan")):.4f}'], W))
    g = lambda w, k: m(lambda r: r[w + "_" + kind][k])
    print(line(["mean", f'{g("c", "mAP@all"):.4f}', f'{g("torch", "mAP@all"):.4f}', f'{g("c", "P@100"):.4f}',
                f'{g("torch", "P@100"):.4f}', f'{g("c", "mAP@all") - g("torch", "mAP@all"):+.4f}',
                f'{g("c", "P@100") - g("torch", "P@100"):+.4f}', f'{g("c", "tcn_map"):.4f}', f'{g("torch", "tcn_map"):.4f}'], W))
    dm, dp = g("c", "mAP@all") - g("torch", "mAP@all"), g("c", "P@100") - g("torch", "P@100")
    ok = abs(dm) <= 0.01 and abs(dp) <= 0.01
    print(f"mean difference C - torch: mAP@all {dm:+.4f}, P@100 {dp:+.4f} (target |diff| <= 0.01: {'met' if ok else 'NOT met'})")
    print(f"untrained (the initial weights): mAP@all {g('init', 'mAP@all'):.4f} P@100 {g('init', 'P@100'):.4f}; "
          f"random ranking: mAP@all {m(lambda r: r['c_' + kind]['rand']['mAP@all']):.4f} "
          f"P@100 {m(lambda r: r['c_' + kind]['rand']['P@100']):.4f}")
print()
print("timings (s) and memory: wall = whole command (/usr/bin/time); CPU = its user + sys time (the fairer measure when")
print("other jobs share the cores); C loop / T loop = the programs' own (wall) timers over the training loop (incl. image")
print("loading + pre-processing); T train = forward+backward+Adam only; RSS = peak resident set (MB)")
W3 = [4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 16]
cpu = lambda t: t["user_s"] + t["sys_s"]
print(line(["seed", "C wall", "C CPU", "C loop", "C s/st", "T wall", "T CPU", "T loop", "T train", "C RSS", "T RSS",
            "load(1,5,15m)"], W3))
for r in rows:
    print(line([r["seed"], f'{r["c_time"]["wall_s"]:.1f}', f'{cpu(r["c_time"]):.1f}', f'{r["c_loop"]:.1f}',
                f'{r["c_loop"] / steps:.3f}', f'{r["torch_time"]["wall_s"]:.1f}', f'{cpu(r["torch_time"]):.1f}',
                f'{r["t_loop"]:.1f}', f'{r["t_train"]:.1f}', f'{r["c_time"]["peak_rss_kb"] / 1024:.0f}',
                f'{r["torch_time"]["peak_rss_kb"] / 1024:.0f}', r["load"].replace(" ", ",")], W3))
print(f'mean ratios torch/C: wall {m(lambda r: r["torch_time"]["wall_s"]) / m(lambda r: r["c_time"]["wall_s"]):.2f}, '
      f'CPU time {m(lambda r: cpu(r["torch_time"])) / m(lambda r: cpu(r["c_time"])):.2f}, '
      f'training loop {m(lambda r: r["t_loop"]) / m(lambda r: r["c_loop"]):.2f}')
print()
print("training loss: step 1 (same weights, same inputs up to JPEG decoding: stb_image vs libjpeg) and the mean of the last 50 steps")
print("  terms: total = cls_sketch + cls_photo + sbh + 1000 share")
for r in rows:
    c1, t1 = r["cl"][0], r["tl"][0]
    print(f'  seed {r["seed"]}: step 1 total C {c1[0]:.6f} torch {t1[0]:.6f} (diff {c1[0] - t1[0]:+.2e}; cls_sketch '
          f'{c1[1] - t1[1]:+.1e}, cls_photo {c1[2] - t1[2]:+.1e}, sbh {c1[3] - t1[3]:+.1e}); last-50 mean C '
          f'{mean([x[0] for x in r["cl"][-50:]]):.4f} torch {mean([x[0] for x in r["tl"][-50:]]):.4f}; '
          f'cls+sbh only C {mean([x[1] + x[2] + x[3] for x in r["cl"][-50:]]):.4f} '
          f'torch {mean([x[1] + x[2] + x[3] for x in r["tl"][-50:]]):.4f}')
EOF
