#!/usr/bin/python3
"""Reference rasteriser for Quick, Draw! drawings (dev/quickdraw.h), in numpy.

Independent of the C code: the ndjson is parsed with Python's json module and
every segment is rasterised over the whole canvas at once (the C code visits
only each capsule's bounding box). Same documented formula:
  s  = min(W - 2m, H - 2m) / box,  m = margin, or line_width/2 + 0.5 if margin < 0
  ox = (W - box*s)/2, oy = (H - box*s)/2
  u  = ox + (x + 0.5)*s, v = oy + (y + 0.5)*s          (x, y first rounded to float32,
                                                         as the C loader stores them)
  pixel (i, j) centre (i + 0.5, j + 0.5); d = distance to the segment (a point for
  a single-point stroke); cov = max over segments of clip(lw/2 + 0.5 - d, 0, 1)
  8-bit value = floor(paper + (ink - paper)*cov + 0.5)

Usage:
  /usr/bin/python3 tools/quickdraw_ref.py golden   # writes tests/golden/quickdraw_*
  /usr/bin/python3 tools/quickdraw_ref.py hand     # prints the hand-worked test values
Golden files: quickdraw_synth.ndjson (synthetic drawings, no real data) and
quickdraw_cov<k>.npy, float32 [H, W] coverage of case k of CASES.
"""
import json
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, 'tests', 'golden')


def spiral():
    xs, ys = [], []
    for t in range(40):
        r, a = 10 + 3.5 * t, 0.35 * t
        xs.append(round(128 + r * math.cos(a), 2))
        ys.append(round(128 + r * math.sin(a), 2))
    return xs, ys


def synth_lines():
    """The ndjson text, written by hand to exercise escapes, skipped members,
    raw-format timestamps and number forms."""
    sx, sy = spiral()
    num = lambda v: ('%.2f' % v).rstrip('0').rstrip('.')
    lines = [
        # 0: house; word with escapes; nested unknown members; a single-point stroke
        '{"word":"ho\\u00fcse \\"x\\"","countrycode":"ZZ","timestamp":"2017-03-10 22:17:57.57466 UTC",'
        '"recognized":true,"extra":{"a":[1,2.5e-3,{"b":null}],"s":"q\\"uo\\\\te\\u00e9\\ud83d\\ude00/\\/"},'
        '"key_id":"123","drawing":[[[40,40,216,216,40],[240,110,110,240,240]],[[30,128,226],[115,20,115]],'
        '[[110,110,146,146],[240,170,170,240]],[[180],[150]]]}',
        '',  # blank line: skipped
        # 1: spiral with decimals (+ raw-format t array), a stroke leaving the box, key_id a number
        ' { "drawing" : [ [ [' + ', '.join(num(v) for v in sx) + '], [' + ', '.join(num(v) for v in sy) +
        '], [' + ', '.join(str(17 * k) for k in range(40)) + '] ] , [[-20.5, 3.0025e2], [1E2, 60.0]] ] ,'
        ' "word" : "spiral", "key_id": 987654321 }\r',
        # 2: dots, a zero-length segment, negative zero; no word, no key_id
        '{"recognized":false,"drawing":[[[0],[0]],[[255],[255]],[[128],[64.5]],[[10],[250]],'
        '[[200,200],[30,30]],[[-0.0, 5e-1],[40,40]]]}',
        # 3: empty drawing
        '{"word":"empty","drawing":[]}',
    ]
    return '\n'.join(lines) + '\n'


# (drawing index, W, H, line_width, margin, box)
CASES = [
    (0, 96, 96, 3.0, -1.0, 256.0),
    (1, 80, 56, 5.5, 0.0, 256.0),
    (2, 48, 48, 1.0, 3.0, 256.0),
    (0, 64, 64, 0.6, 0.0, 128.0),
]


def coverage(drawing, W, H, lw, margin, box):
    r = 0.5 * lw
    m = r + 0.5 if margin < 0 else margin
    s = (min(W, H) - 2.0 * m) / box
    ox, oy = 0.5 * (W - box * s), 0.5 * (H - box * s)
    px = np.arange(W, dtype=np.float64)[None, :] + 0.5
    py = np.arange(H, dtype=np.float64)[:, None] + 0.5
    cov = np.zeros((H, W), dtype=np.float64)
    for stroke in drawing:
        x = np.asarray(stroke[0], dtype=np.float32).astype(np.float64)
        y = np.asarray(stroke[1], dtype=np.float32).astype(np.float64)
        u, v = ox + (x + 0.5) * s, oy + (y + 0.5) * s
        segs = [(0, 0)] if len(u) == 1 else [(k - 1, k) for k in range(1, len(u))]
        for a, b in segs:
            dx, dy = u[b] - u[a], v[b] - v[a]
            l2 = dx * dx + dy * dy
            t = np.zeros((H, W)) if l2 == 0 else np.clip(((px - u[a]) * dx + (py - v[a]) * dy) / l2, 0.0, 1.0)
            d = np.hypot(px - (u[a] + t * dx), py - (v[a] + t * dy))
            cov = np.maximum(cov, np.clip(r + 0.5 - d, 0.0, 1.0))
    return cov


def to_u8(cov, ink=0, paper=255):
    return np.floor(paper + (ink - paper) * cov.astype(np.float32).astype(np.float64) + 0.5).astype(np.uint8)


def golden():
    text = synth_lines()
    os.makedirs(GOLDEN, exist_ok=True)
    with open(os.path.join(GOLDEN, 'quickdraw_synth.ndjson'), 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    drawings = [json.loads(l) for l in text.split('\n') if l.strip()]
    print('drawings:', len(drawings), [d.get('word') for d in drawings], [d.get('key_id') for d in drawings])
    for k, (di, W, H, lw, margin, box) in enumerate(CASES):
        cov = coverage(drawings[di]['drawing'], W, H, lw, margin, box).astype(np.float32)
        path = os.path.join(GOLDEN, 'quickdraw_cov%d.npy' % k)
        np.save(path, cov)
        print('%s: %dx%d ink sum %.4f, pixels > 0: %d' % (os.path.basename(path), W, H, float(cov.sum()),
                                                          int((cov > 0).sum())))


def hand():
    # horizontal line (20,20)-(100,20), width 3, 128x128 canvas, margin 0: s = 0.5,
    # centre line v = 10.25, from u = 10.25 to 50.25
    cov = coverage([[[20, 100], [20, 20]]], 128, 128, 3.0, 0.0, 256.0)
    u8 = to_u8(cov)
    print('column 30, rows 6..13:', list(u8[6:14, 30]))
    print('row 10, cols 6..11:', list(u8[10, 6:12]), ' row 11, cols 6..11:', list(u8[11, 6:12]))
    print('row 10, cols 48..53:', list(u8[10, 48:54]))
    # single point (64, 64), width 4, 64x64 canvas, margin 0, box 128: s = 0.5 -> centre (32.25, 32.25)
    cov = coverage([[[64], [64]]], 64, 64, 4.0, 0.0, 128.0)
    print('dot rows 29..35, cols 29..35:')
    print(to_u8(cov)[29:36, 29:36])


if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in ('golden', 'hand'):
        print(__doc__)
        sys.exit(2)
    golden() if sys.argv[1] == 'golden' else hand()
