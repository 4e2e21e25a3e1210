#!/usr/bin/env python3
"""Independent numpy reference for the retrieval metrics of SPEC.md section 4
(zs_eval_retrieval / zs_eval_fine_grained in dev/data.h) and generator of the
golden case tests/golden/metrics_case_*.npy read by tests/test_data.c.

Regenerate (from the repo root):
    /usr/bin/python3 tools/metrics_ref.py tests/golden

Files (all '<f4' because zs_npy_read reads float32 only; integers are exact):
  metrics_case_dist.npy      [40, 300] distances, quantised to 1/8 so there are
                             many ties (ranking: stable sort, ties by gallery index)
  metrics_case_qlab.npy      [40] query labels (class 7 has no gallery item -> NaN AP)
  metrics_case_glab.npy      [300] gallery labels; class 0 has 205 items (> 200),
                             classes 1..6 fewer than 100 (the two P@K definitions differ)
  metrics_case_pair.npy      [40] paired gallery index per query, -1 = none
  metrics_case_expected.npy  [2, 10] double values split as hi = f32(x), lo = f32(x - hi)
                             (x = hi + lo to ~1e-14): map_all, map_200, p_100, p_200,
                             tcn_map, tcn_p_100, tcn_p_200, n_valid, acc1, acc10
  metrics_case_ap.npy        [2, 40] per-query AP (all results) hi/lo, NaN when P = 0
"""
import os
import sys
import numpy as np


def voc_ap(rel, P):
    """VOC all-point AP, written the classic way (mrec/mpre envelopes)."""
    if P <= 0:
        return float('nan')
    rel = np.asarray(rel, dtype=np.float64)
    tp = np.cumsum(rel)
    fp = np.cumsum(1.0 - rel)
    rec = tp / float(P)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def metrics(dist, qlab, glab, pair):
    nq, ng = dist.shape
    order = np.argsort(dist, axis=1, kind='stable')   # ties -> lower gallery index first
    rel_all = (glab[order] == qlab[:, None]).astype(np.int64)
    aps, aps200, p100, p200, t100, t200 = [], [], [], [], [], []
    for q in range(nq):
        rel = rel_all[q]
        P = int(rel.sum())
        aps.append(voc_ap(rel, P))
        aps200.append(voc_ap(rel[:200], min(200, P)))
        for K, lst in ((100, p100), (200, p200)):
            k = min(K, P)
            lst.append(float(np.mean(rel[:k])) if k > 0 else float('nan'))
        t100.append(rel[:100].sum() / min(100, ng))
        t200.append(rel[:200].sum() / min(200, ng))
    aps = np.array(aps)
    # TCN mAP: per class first (valid queries), then over classes
    per_class = []
    for c in np.unique(qlab):
        a = aps[qlab == c]
        a = a[~np.isnan(a)]
        if a.size:
            per_class.append(a.mean())
    # fine-grained: position of the paired item in the stable ranking
    hits1 = hits10 = n = 0
    for q in range(nq):
        if pair[q] < 0:
            continue
        r = int(np.where(order[q] == pair[q])[0][0])
        n += 1
        hits1 += r < 1
        hits10 += r < 10
    vals = [np.nanmean(aps), np.nanmean(aps200), np.nanmean(p100), np.nanmean(p200),
            np.mean(per_class), np.mean(t100), np.mean(t200), float(np.sum(~np.isnan(aps))),
            hits1 / n, hits10 / n]
    return np.array(vals, dtype=np.float64), aps


def hilo(x):
    x = np.asarray(x, dtype=np.float64)
    hi = x.astype(np.float32)
    lo = np.where(np.isnan(x), 0.0, x - hi.astype(np.float64)).astype(np.float32)
    return np.stack([hi, lo])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'tests/golden'
    rng = np.random.default_rng(20261122)
    nq, ng = 40, 300
    glab = np.concatenate([np.zeros(205, np.int64), rng.integers(1, 7, ng - 205)])
    rng.shuffle(glab)
    qlab = rng.integers(0, 7, nq)
    qlab[[3, 17]] = 7                       # no relevant gallery item
    # distances: closer for the same class, quantised -> many exact ties
    d = rng.random((nq, ng)) * 2.0 + (glab[None, :] != qlab[:, None]) * 0.6
    d = np.round(d * 8.0) / 8.0
    d[5, :] = 1.0                           # a query where everything ties
    pair = np.full(nq, -1, np.int64)
    for q in range(nq):
        if q % 4 != 1:                      # some queries without a pair
            pair[q] = rng.integers(0, ng)
            d[q, pair[q]] = max(0.0, d[q, pair[q]] - rng.integers(0, 3) * 0.75)
    d = d.astype(np.float32)
    vals, aps = metrics(d.astype(np.float64), qlab, glab, pair)
    f = lambda n: os.path.join(out, 'metrics_case_' + n + '.npy')
    np.save(f('dist'), d)
    np.save(f('qlab'), qlab.astype('<f4'))
    np.save(f('glab'), glab.astype('<f4'))
    np.save(f('pair'), pair.astype('<f4'))
    np.save(f('expected'), hilo(vals))
    np.save(f('ap'), np.where(np.isnan(aps), np.float32(np.nan), hilo(aps)).astype('<f4'))
    names = 'map_all map_200 p_100 p_200 tcn_map tcn_p_100 tcn_p_200 n_valid acc1 acc10'.split()
    for n, v in zip(names, vals):
        print('%-10s %.15g' % (n, v))


if __name__ == '__main__':
    main()
