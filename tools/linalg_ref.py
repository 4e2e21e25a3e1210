#!/usr/bin/python3
"""numpy reference for dev/linalg.h (zs_eigh, zs_svd, zs_tcn_init_heads, ITQ) and
generator of the goldens tests/golden/linalg/*.npy read by dev/tests/test_linalg.c.

Regenerate (from the repo root; numpy 1.24.2 of Debian's python3-numpy):
    /usr/bin/python3 tools/linalg_ref.py tests/golden/linalg

Every file is '<f4' C-order (zs_npy_read reads float32 only). Inputs are made
float32 first; every decomposition is then computed in float64 from those exact
float32 values and rounded to float32 when written (so goldens carry ~6e-8
relative rounding; the C tests use 1e-5 tolerances).

Sign conventions (the same as the C code, so vectors compare directly):
  eigh: eigenvalues descending; each eigenvector (column) has its first
        largest-|.| component positive.
  svd:  s descending; each right singular vector (row of vt) has its first
        largest-|.| component positive, the matching column of u flipped alike.

Files
  eig_a [40,40] symmetric, eig_w [40], eig_v [40,40] (column j = eigenvector j)
  svd_tall_a [30,20] -> svd_tall_u [30,20], svd_tall_s [20], svd_tall_vt [20,20]
  svd_wide_a [20,33] -> svd_wide_u [20,20], svd_wide_s [20], svd_wide_vt [20,33]
  svd_rank_a [25,18] of rank 5 -> svd_rank_s [18] (13 values ~1e-7 after f32 rounding)
  tcn_fc_w [12,20], tcn_fc_b [12] -> tcn_h_w [5,20] = diag(S[:5]) Vt[:5],
                                      tcn_kd_w [12,5] = U[:, :5]
  itq1_x [300,24], itq1_r0 [12,12] -> 50 iterations -> itq1_codes [300,12] (0/1),
        itq1_mean [24], itq1_proj [24,12], itq1_rot [12,12]
  itq2_x [150,72], itq2_r0 [66,66] -> itq2_codes [150,66] (two uint64 words)
  itq*_x are clustered (a Gaussian mixture, like class embeddings). The script
  asserts that min |V R| over all iterations is > 1e-6 (no sign can flip between
  float64 implementations) and that C = B^T V is never near-singular: when a
  bit is constant over the training set (B's column all +1), C has a zero row
  (V is centred), the Procrustes rotation is not unique, and two correct
  implementations may legitimately diverge from there on.
"""
import os
import sys

import numpy as np


def sign_fix_rows(r, p=None):
    """r [k, n]: flip rows so the first largest-|.| entry is positive; p [k, m] alike."""
    r = r.copy()
    p = None if p is None else p.copy()
    for j in range(r.shape[0]):
        im = int(np.argmax(np.abs(r[j])))
        if r[j, im] < 0:
            r[j] = -r[j]
            if p is not None:
                p[j] = -p[j]
    return r, p


def eigh_ref(a):
    w, v = np.linalg.eigh(a.astype(np.float64))
    idx = np.argsort(-w, kind='stable')
    w, v = w[idx], v[:, idx]
    vt, _ = sign_fix_rows(v.T)
    return w, vt.T


def svd_ref(a):
    u, s, vt = np.linalg.svd(a.astype(np.float64), full_matrices=False)
    vt, ut = sign_fix_rows(vt, u.T)
    return ut.T, s, vt


def itq_ref(x, bits, r0, iters=50):
    X = x.astype(np.float64)
    mean = X.mean(axis=0)
    Xc = X - mean
    w, p = eigh_ref(Xc.T @ Xc)
    P = p[:, :bits]
    V = Xc @ P
    R = r0.astype(np.float64)
    zmin = np.inf
    cmin = np.inf
    for _ in range(iters):
        Z = V @ R
        zmin = min(zmin, float(np.abs(Z).min()))
        B = np.where(Z >= 0, 1.0, -1.0)   # released MATLAB: UX(Z >= 0) = 1
        C = B.T @ V
        UB, S, UAt = np.linalg.svd(C)
        cmin = min(cmin, S[-1] / S[0])
        R = UAt.T @ UB.T                  # orthogonal Procrustes
    Z = V @ R
    zmin = min(zmin, float(np.abs(Z).min()))
    codes = (Z > 0).astype(np.float32)
    return mean, P, R, codes, zmin, cmin


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def clustered(rng, n, d, k):
    centres = rng.standard_normal((k, d)) * 2.0
    lab = rng.integers(0, k, n)
    return f32(centres[lab] + rng.standard_normal((n, d)) * 0.7)


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    files = {}

    a = rng.standard_normal((40, 40))
    a = f32((a + a.T) / 2)
    w, v = eigh_ref(a)
    print('eig: min gap %.3g' % np.min(-np.diff(w)))
    files.update(eig_a=a, eig_w=w, eig_v=v)

    for name, shape in (('svd_tall', (30, 20)), ('svd_wide', (20, 33))):
        a = f32(rng.standard_normal(shape))
        u, s, vt = svd_ref(a)
        print('%s: s %.4g .. %.4g, min gap %.3g' % (name, s[0], s[-1], np.min(-np.diff(s))))
        files.update({name + '_a': a, name + '_u': u, name + '_s': s, name + '_vt': vt})

    a = f32(rng.standard_normal((25, 5)) @ rng.standard_normal((5, 18)))
    _, s, _ = svd_ref(a)
    print('svd_rank: s', np.array2string(s, precision=3))
    files.update(svd_rank_a=a, svd_rank_s=s)

    fw = f32(rng.standard_normal((12, 20)) * 0.1)
    fb = f32(rng.standard_normal(12))
    u, s, vt = svd_ref(fw)
    files.update(tcn_fc_w=fw, tcn_fc_b=fb, tcn_h_w=s[:5, None] * vt[:5], tcn_kd_w=u[:, :5])

    for name, n, d, bits, k in (('itq1', 300, 24, 12, 40), ('itq2', 150, 72, 66, 60)):
        x = clustered(rng, n, d, k)
        r0 = f32(np.linalg.qr(rng.standard_normal((bits, bits)))[0])
        mean, P, R, codes, zmin, cmin = itq_ref(x, bits, r0)
        print('%s: min |VR| over the iterations %.3g, min s_min/s_max of C %.3g, ones %.3f'
              % (name, zmin, cmin, codes.mean()))
        assert zmin > 1e-6, 'choose another seed: a sign could flip'
        assert cmin > 1e-6, 'C = B^T V (nearly) singular: R is not unique'
        files.update({name + '_x': x, name + '_r0': r0, name + '_codes': codes})
        if name == 'itq1':
            files.update(itq1_mean=mean, itq1_proj=P, itq1_rot=R)

    total = 0
    for k, arr in sorted(files.items()):
        p = os.path.join(out, k + '.npy')
        np.save(p, f32(arr))
        total += os.path.getsize(p)
    print('wrote %d files, %d bytes, to %s' % (len(files), total, out))


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'tests/golden/linalg')
