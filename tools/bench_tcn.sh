#!/bin/sh
# TCN: zsesbir vs PyTorch on this machine, back to back in one run (make bench-tcn).
# ResNet-50 forward (eval, 224x224) at batch 1, 8 and 32, and one TCN training step
# (ResNet-50 sketch + photo encoders, frozen ResNet-50 teacher, every SPEC 2.2
# loss term, Adam) of PAIRS sketch/photo pairs; 2 threads on both sides
# (torch.set_num_threads(2)); medians of REPS / TRAIN_REPS runs after a warm-up.
# Ratio = PyTorch time / zsesbir time (> 1: zsesbir faster).
set -e
B=${B:-build}
REPS=${REPS:-5}
PAIRS=${PAIRS:-4}
TRAIN_REPS=${TRAIN_REPS:-3}
c=$(mktemp)
t=$(mktemp)
"$B/tcn_bench" --bench "$REPS" | tee "$c"
"$B/tcn_bench" --train "$TRAIN_REPS" "$PAIRS" | tee -a "$c"
if /usr/bin/python3 -c "import torch, torchvision" 2>/dev/null; then
    /usr/bin/python3 tools/tcn_ref.py --bench --reps "$REPS" --pairs "$PAIRS" --train-reps "$TRAIN_REPS" | tee "$t"
else
    echo "python3-torch / python3-torchvision missing: PyTorch column skipped"
    echo '{}' > "$t"
fi
/usr/bin/python3 - "$c" "$t" <<'PY'
import json, sys
c = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        c["b%d" % d["batch"]] = d["ms_per_image"]
    elif line.startswith("part=train"):
        kv = dict(x.split("=", 1) for x in line.split())
        c["train"] = float(kv["median_s"])
        c["pairs"] = kv["pairs"]
try:
    t = json.loads(open(sys.argv[2]).read() or "{}")
except ValueError:
    t = {}
rows = [("ResNet-50 forward, batch 1 (ms/image)", "b1", "batch1_ms_per_image"),
        ("ResNet-50 forward, batch 8 (ms/image)", "b8", "batch8_ms_per_image"),
        ("ResNet-50 forward, batch 32 (ms/image)", "b32", "batch32_ms_per_image"),
        ("TCN training step, %s pairs (s/step)" % c.get("pairs", "?"), "train", "train_median_s")]
print("| measurement | zsesbir | PyTorch %s | ratio (PyTorch / zsesbir) |" % t.get("torch", ""))
print("|---|---|---|---|")
for name, ck, tk in rows:
    if ck not in c:
        continue
    if tk in t:
        print("| %s | %.4g | %.4g | %.2fx |" % (name, c[ck], t[tk], t[tk] / c[ck]))
    else:
        print("| %s | %.4g | - | - |" % (name, c[ck]))
PY
rm -f "$c" "$t"
