#!/bin/sh
# Runs test programs and sums their results.
# usage: tests/run.sh LABEL:BINARY [LABEL:BINARY ...]
# Each program prints PASS/FAIL/SKIP lines and ends with
# "N passed, N failed[, N skipped]"; a program that crashes or prints no
# summary counts as one failure. The last line is the grand total.
passed=0; failed=0; skipped=0
for spec in "$@"; do
    label=${spec%%:*}; bin=${spec#*:}
    out=$(mktemp)
    "$bin" >"$out" 2>&1; rc=$?
    sed "s/^/[$label] /" "$out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "[$label] FAIL $bin exited with status $rc and no summary"
        failed=$((failed + 1))
    else
        p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
        s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
        passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            echo "[$label] FAIL $bin exited with status $rc"
            failed=$((failed + 1))
        fi
    fi
    rm -f "$out"
done
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
