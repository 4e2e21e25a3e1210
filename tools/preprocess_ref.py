#!/usr/bin/python3
"""Reference pre-processing (SPEC section 3) in numpy + PIL, for dev/image.h.

Photo / TCN: PIL Image.resize((S, S)) with Pillow's default filter for RGB
images (BICUBIC since Pillow 7; Pillow 9.4 here).
Sketch: ink box (R+G+B <= 300), crop with a 10 px margin (end exclusive),
OpenCV INTER_LINEAR resize re-implemented in numpy (cv2 is not installed):
half-pixel centres, clamped borders, 11-bit fixed-point weights rounded with
cvRound (half to even), the horizontal pass in int32, the vertical pass as
OpenCV's 128-bit SIMD kernel VResizeLinearVec_32s8u
    ((((S0 >> 4) * b0) >> 16) + (((S1 >> 4) * b1) >> 16) + 2) >> 2
for the first floor(n/8)*8 elements of each row (n = 3*width) and the scalar
FixedPtCast (S0*b0 + S1*b1 + 2^21) >> 22 for the rest. (OpenCV turns an exact
2x shrink into INTER_AREA, (a+b+c+d+2) >> 2, which these formulas reproduce
exactly for 8-bit data, so there is no special case.) Then pad
with the resized image's maximum value, (S - short)//2 on the first side.

Usage:
  /usr/bin/python3 tools/preprocess_ref.py golden    # writes tests/golden/preprocess_*.npy
  /usr/bin/python3 tools/preprocess_ref.py fixtures  # prints the C arrays of tests/test_image.c
Golden files are uint8 .npy ('|u1', [S, S, 3], before normalisation): photo<i> and
sketch<i> at S = 224, pilsketch<i> (sketch PNG through PIL bicubic) at S = 112.
"""
import os
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, '..', 'shared', 'data', 'sketchy')
GOLDEN = os.path.join(ROOT, 'tests', 'golden')
S = 224

PHOTOS = ['airplane/n02691156_10151.jpg', 'bicycle/n02834778_10158.jpg', 'zebra/n02391049_10132.jpg']
SKETCHES = ['airplane/n02691156_10151-3.png', 'bicycle/n02834778_10158-1.png', 'giraffe/n02439033_10130-1.png']


def pil_resize(a, w, h):
    """uint8 [H,W,3] -> uint8 [h,w,3] via PIL's default resize (BICUBIC)."""
    return np.asarray(Image.fromarray(a, 'RGB').resize((w, h)))


def cv_axis(in_size, out_size, clamp):
    scale = 1.0 / (out_size / in_size)
    f = ((np.arange(out_size) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:
        m = s < 0
        f[m], s[m] = 0, 0
        m = s >= in_size - 1
        f[m], s[m] = 0, in_size - 1
    a0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)
    a1 = np.rint(f * np.float32(2048)).astype(np.int64)
    return s, a0, a1


def cv_resize_linear(a, w, h):
    """cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR) for uint8 [H,W,3]."""
    H, W, _ = a.shape
    if (w, h) == (W, H):
        return a.copy()
    xs, xa0, xa1 = cv_axis(W, w, True)
    ys, ya0, ya1 = cv_axis(H, h, False)
    b = a.astype(np.int64)
    x1 = np.minimum(xs + 1, W - 1)
    hr = b[:, xs, :] * xa0[None, :, None] + b[:, x1, :] * xa1[None, :, None]   # [H, w, 3]
    hr = hr.reshape(H, w * 3)
    n = w * 3
    vec = (n // 8) * 8
    out = np.empty((h, n), np.int64)
    for y in range(h):
        s0 = min(max(ys[y], 0), H - 1)
        s1 = min(max(ys[y] + 1, 0), H - 1)
        r0, r1, b0, b1 = hr[s0], hr[s1], ya0[y], ya1[y]
        v = ((((r0 >> 4) * b0) >> 16) + (((r1 >> 4) * b1) >> 16) + 2) >> 2
        sc = (r0 * b0 + r1 * b1 + (1 << 21)) >> 22
        v[vec:] = sc[vec:]
        out[y] = v
    return np.clip(out, 0, 255).astype(np.uint8).reshape(h, w, 3)


def sketch_prepare(a, size=S):
    """SPEC 3 sketch pipeline up to the uint8 [size,size,3] padded image."""
    h, w, _ = a.shape
    ink = a.astype(np.int64).sum(axis=2) <= 300
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        raise ValueError('no ink')
    ymin, ymax, xmin, xmax = ys.min(), ys.max(), xs.min(), xs.max()
    c = a[max(0, ymin - 10):min(h, ymax + 10), max(0, xmin - 10):min(w, xmax + 10)]
    ch, cw = c.shape[:2]
    if ch > cw:
        nh, nw = size, int(size * cw / ch)
    elif cw > ch:
        nw, nh = size, int(size * ch / cw)
    else:
        nw = nh = size
    r = cv_resize_linear(c, nw, nh)
    mx = r.max()
    out = np.full((size, size, 3), mx, np.uint8)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    out[oy:oy + nh, ox:ox + nw] = r
    return out, (max(0, xmin - 10), max(0, ymin - 10), min(w, xmax + 10), min(h, ymax + 10))


def normalize(u8, mean, std):
    x = u8.astype(np.float32) / np.float32(255)
    return ((x - np.array(mean, np.float32)) / np.array(std, np.float32)).transpose(2, 0, 1)


def preprocess_photo(path, size=S):
    im = Image.open(path).convert('RGB').resize((size, size))
    return normalize(np.asarray(im), [0.5] * 3, [0.5] * 3)


def preprocess_tcn(path, size=S):
    im = Image.open(path).convert('RGB').resize((size, size))
    return normalize(np.asarray(im), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def preprocess_sketch(path, size=S):
    u8, _ = sketch_prepare(np.asarray(Image.open(path).convert('RGB')), size)
    return normalize(u8, [0.5] * 3, [0.5] * 3)


def synth(w, h):
    """Deterministic test image, same formula as zt_synth in tests/test_image.c."""
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing='ij')
    return ((x * x * 7 + y * 13 + c * 101 + x * y * 29) % 256).astype(np.uint8)


def golden():
    os.makedirs(GOLDEN, exist_ok=True)
    for i, p in enumerate(PHOTOS):
        a = np.asarray(Image.open(os.path.join(DATA, 'photo', p)).convert('RGB'))
        np.save(os.path.join(GOLDEN, 'preprocess_photo%d.npy' % i), pil_resize(a, S, S))
    for i, p in enumerate(SKETCHES):
        a = np.asarray(Image.open(os.path.join(DATA, 'sketch', p)).convert('RGB'))
        u8, box = sketch_prepare(a)
        print(p, 'crop', box, 'crop size', box[2] - box[0], 'x', box[3] - box[1])
        np.save(os.path.join(GOLDEN, 'preprocess_sketch%d.npy' % i), u8)
        # the same PNG through the PIL bicubic path at 112 (lossless source, so the C
        # resize can be compared bit-exactly; 256 -> 112 exercises a wide antialias support)
        np.save(os.path.join(GOLDEN, 'preprocess_pilsketch%d.npy' % i), pil_resize(a, 112, 112))


FIXTURES = [  # (kind, in_w, in_h, out_w, out_h)
    ('pil', 7, 5, 3, 4), ('pil', 7, 5, 13, 11), ('pil', 20, 3, 6, 3), ('pil', 5, 20, 5, 7),
    ('pil', 9, 9, 2, 1), ('pil', 3, 2, 1, 1), ('pil', 1, 1, 4, 3),
    ('cv', 7, 5, 3, 4), ('cv', 7, 5, 13, 11), ('cv', 20, 3, 6, 3), ('cv', 5, 20, 5, 7),
    ('cv', 8, 6, 4, 3), ('cv', 3, 2, 1, 1), ('cv', 1, 1, 4, 3), ('cv', 11, 4, 17, 9),
]


def fixtures():
    print('/* generated by: /usr/bin/python3 tools/preprocess_ref.py fixtures */')
    rows = []
    for i, (kind, iw, ih, ow, oh) in enumerate(FIXTURES):
        a = synth(iw, ih)
        r = pil_resize(a, ow, oh) if kind == 'pil' else cv_resize_linear(a, ow, oh)
        vals = ','.join(str(int(v)) for v in r.reshape(-1))
        print('static const unsigned char zt_rs_want%d[] = {%s};' % (i, vals))
        rows.append('    {%d, %d, %d, %d, %d, zt_rs_want%d},' % (kind == 'cv', iw, ih, ow, oh, i))
    print('static const struct zt_rs_case { int cv, iw, ih, ow, oh; const unsigned char *want; } zt_rs_cases[] = {')
    print('\n'.join(rows))
    print('};')


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else ''
    if cmd == 'golden':
        golden()
    elif cmd == 'fixtures':
        fixtures()
    else:
        print(__doc__)
        sys.exit(2)
