#!/bin/sh
# ZSE-SBIR: zsesbir vs PyTorch on this machine, in one run (make bench-zse).
# Each C part runs in its own process (peak RSS per part). PyTorch runs
# tools/zsesbir_ref.py --bench, which measures two thread settings; the
# faster one for each part is the reference.
set -e
B=${B:-build}
T=${THREADS:-2}
out=$(mktemp)
for p in sa1 sa8 pair pair-nocache train train-ckpt; do
    "$B/bench_zse" --part "$p" --threads "$T" | tee -a "$out"
done
# PyTorch in the same session; REUSE_TORCH=1 reuses build/bench_torch.json
tj="$B/bench_torch.json"
if [ "${REUSE_TORCH:-0}" = 1 ] && [ -s "$tj" ]; then
    echo "reusing $tj"
elif /usr/bin/python3 -c "import torch" 2>/dev/null; then
    /usr/bin/python3 tools/zsesbir_ref.py --bench > "$tj"
else
    echo "python3-torch missing: PyTorch column skipped"; echo '{}' > "$tj"
fi
/usr/bin/python3 - "$out" "$tj" <<'PY'
import json, sys
c = {}
for line in open(sys.argv[1]):
    kv = dict(x.split("=", 1) for x in line.split())
    c[kv["part"]] = (float(kv["median"]), kv["unit"], float(kv["peak_rss_mb"]))
try:
    tj = json.loads(open(sys.argv[2]).read())
except Exception:
    tj = {}
def best(part):
    vals = [(v[part]["median"], v[part].get("peak_rss_mb", 0), k) for k, v in tj.items()
            if isinstance(v, dict) and part in v]
    return min(vals) if vals else None
rows = [("SA forward, batch 1", "sa1", "sa_b1"), ("SA forward, batch 8", "sa8", "sa_b8"),
        ("CA+conv+RN per pair, cached projections", "pair", "ca_pair_b1"),
        ("CA+conv+RN per pair, no cache", "pair-nocache", "ca_pair_b1"),
        ("training step B=2 (8 images)", "train", "train_b2"),
        ("training step B=2, checkpointed SA", "train-ckpt", "train_b2")]
print("| measurement | zsesbir | PyTorch 1.13 | speed-up | zsesbir peak RSS | PyTorch peak RSS |")
print("|---|---|---|---|---|---|")
for name, cp, tp in rows:
    if cp not in c: continue
    ct, unit, crss = c[cp]
    b = best(tp)
    if b:
        print(f"| {name} | {ct:.4g} {unit} | {b[0]:.4g} ({b[2]}) | {b[0]/ct:.2f}x | {crss:.0f} MB | {b[1]:.0f} MB |")
    else:
        print(f"| {name} | {ct:.4g} {unit} | - | - | {crss:.0f} MB | - |")
PY
rm -f "$out"

# Optional: TRAIN_ROUNDS=N alternates the training step N times (C checkpointed, C plain,
# PyTorch in the issue's setting) so that slow drifts of this shared VM hit both sides
# alike; prints every round and the medians' ratios.
R=${TRAIN_ROUNDS:-0}
if [ "$R" -gt 0 ] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
    rr=$(mktemp)
    i=1
    while [ "$i" -le "$R" ]; do
        for p in train-ckpt train; do "$B/bench_zse" --part "$p" --threads "$T" | sed "s/^/round=$i /" | tee -a "$rr"; done
        OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE \
            /usr/bin/python3 tools/zsesbir_ref.py --bench-part train_b2 --reps 3 --threads 2 |
            /usr/bin/python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print('round=$i part=torch median=%.4f peak_rss_mb=%.0f' % (d['median'], d['peak_rss_mb']))" |
            tee -a "$rr"
        i=$((i + 1))
    done
    /usr/bin/python3 - "$rr" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    kv = dict(x.split("=", 1) for x in line.split())
    v.setdefault(kv["part"], []).append((float(kv["median"]), float(kv["peak_rss_mb"])))
t = statistics.median(x[0] for x in v["torch"])
tr = max(x[1] for x in v["torch"])
for p in ("train-ckpt", "train"):
    c = statistics.median(x[0] for x in v[p])
    cr = max(x[1] for x in v[p])
    print(f"{p}: median {c:.3f} s vs PyTorch {t:.3f} s = {t / c:.2f}x faster; peak RSS {cr:.0f} vs {tr:.0f} MB = {cr / tr:.2f}x")
PY
    rm -f "$rr"
fi
