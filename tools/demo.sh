#!/bin/sh
# The end-to-end demo behind `make demo`: train, evaluate zero-shot, index,
# search and write a contact sheet, all through the zsesbir CLI.
#
#   make demo                      procedural data (no download), ~3 min on 2 cores
#   make demo DATA=<sketchy root>  the same on real data in the Sketchy layout
#                                  (<root>/photo/<class>/*.jpg, <root>/sketch/<class>/*.png),
#                                  held-out classes from TESTS (default: the
#                                  25-class zero-shot split in ../shared/splits)
# Knobs (environment): STEPS, BATCH, CONFIG, LR, THREADS, RERANK, OUT.
set -e
Z=./zsesbir
B=build
THREADS=${THREADS:-2}
RERANK=${RERANK:-20}
if [ -z "$DATA" ]; then
    echo "== generating procedural sketches and photos (24 classes, 6 held out)"
    $B/demo --out $B/demo_data --size 96 --photos 30 --sketches 30
    DATA=$B/demo_data
    TESTS=${TESTS:-$DATA/test_classes.txt}
    CONFIG=${CONFIG:-tiny}
    STEPS=${STEPS:-1000}
    BATCH=${BATCH:-8}
    LR=${LR:-5e-4}
else
    [ -d "$DATA/photo" ] && [ -d "$DATA/sketch" ] || { echo "DATA=$DATA: expected $DATA/photo/<class>/ and $DATA/sketch/<class>/"; exit 1; }
    TESTS=${TESTS:-../shared/splits/test_class_sketchy25.txt}
    CONFIG=${CONFIG:-small}
    STEPS=${STEPS:-300}
    BATCH=${BATCH:-8}
    LR=${LR:-3e-4}
fi
if $Z version | grep -q "stb_image: yes"; then EXT=png; else EXT=ppm; fi
OUT=${OUT:-demo_result.$EXT}
W=$B/demo_weights.safetensors
echo "== training ZSE-SBIR ($CONFIG config) on the seen classes of $DATA: $STEPS steps of batch $BATCH"
$Z train --data "$DATA" --test-classes "$TESTS" --config $CONFIG --steps $STEPS --batch $BATCH --lr $LR \
    --out $W --threads $THREADS --log-every $((STEPS / 5 > 0 ? STEPS / 5 : 1)) --save-every $STEPS
echo "== zero-shot evaluation on the held-out classes: ret-token ranking"
$Z eval --weights $W --data "$DATA" --test-classes "$TESTS" --mode ret --threads $THREADS
echo "== zero-shot evaluation: two-stage (ret, then RN rerank of the top $RERANK)"
$Z eval --weights $W --data "$DATA" --test-classes "$TESTS" --mode two-stage --rerank $RERANK --threads $THREADS
echo "== indexing every photo of $DATA"
$Z index --weights $W --photos "$DATA/photo" --out $B/demo.zsi --threads $THREADS
# a query: the first sketch of the first held-out class
CLS=$(grep -v '^[[:space:]]*$' "$TESTS" | head -n 1 | tr -d '\r')
Q=$(ls "$DATA/sketch/$CLS" | head -n 1)
echo "== searching the index for $DATA/sketch/$CLS/$Q (a class never seen in training)"
$Z search --weights $W --index $B/demo.zsi --sketch "$DATA/sketch/$CLS/$Q" --topk 10 --rerank $RERANK --png "$OUT" --threads $THREADS
echo "== done: contact sheet in $OUT"
