#!/usr/bin/env python3
"""Fixtures for the PyTorch checkpoint reader (dev/pth.h, dev/tests/test_pth.c).

Regenerate (from the repository root, Debian python3-torch 1.13 + numpy 1.24):
    /usr/bin/python3 tools/pth_ref.py tests/golden/pth

Good fixtures are written by torch.save itself; for each X.pth the expected
result is X.expect.safetensors, written here by hand (no safetensors package):
the tensors the reader must produce, in order, with their dtype (F64 becomes
F32, every other dtype is kept), shape and exact bytes, and the metadata
(scalars as Python's str/repr). The flattening rules are re-implemented here
independently of the C code (expect() below):
  - nested dicts/lists are joined with '.', a leading 'module.' is stripped
    from every dict key;
  - {'model' | 'state_dict': sd, ...} (ZSE-SBIR, SPEC 6): tensors of sd keep
    their own names; {'sketch_state_dict', 'image_state_dict', 'fc_state_dict'}
    (TCN): names prefixed 'sketch.', 'image.', 'fc.'; for both wrappers other
    top-level scalars become metadata and other containers are skipped
    (listed in metadata 'pth.skipped');
  - scalars (int, float, str, bool, None, numpy scalars) become metadata.

Bad fixtures are hand-made zips (zip_bytes) around hand-written pickle bytes;
dev/tests/test_pth.c holds the expected status and error text of each.
"""
import collections
import json
import os
import pickle
import struct
import sys
import zlib

import numpy as np
import torch

DT = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F32',
      torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8',
      torch.uint8: 'U8', torch.bool: 'BOOL'}


# ---- expected results ----------------------------------------------------
def raw(t):
    t = t.detach().contiguous()
    if t.dtype == torch.float64:
        t = t.float()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()   # little-endian host


def scalar_str(v):
    if v is None:
        return 'None'
    if isinstance(v, (bool, np.bool_)):
        return 'True' if v else 'False'
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return v
    return None


def expect(obj):
    """(tensors [(name, tensor)], metadata {key: str}) as the reader must produce."""
    tens, meta, skipped = [], {}, []

    def join(p, k):
        return p + '.' + k if p else k

    def walk(v, path):
        if isinstance(v, torch.Tensor):
            tens.append((path, v))
        elif isinstance(v, dict):
            for k, x in v.items():
                k = str(k)
                walk(x, join(path, k[7:] if k.startswith('module.') else k))
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, join(path, str(i)))
        elif scalar_str(v) is not None:
            meta[path] = scalar_str(v)
        else:
            skipped.append(path)

    tcn = {'sketch_state_dict': 'sketch', 'image_state_dict': 'image', 'fc_state_dict': 'fc'}
    is_tcn = any(isinstance(obj.get(k), dict) for k in tcn)
    sd_key = None if is_tcn else next((k for k in ('model', 'state_dict') if isinstance(obj.get(k), dict)), None)
    for k, v in obj.items():
        if is_tcn and k in tcn and isinstance(v, dict):
            walk(v, tcn[k])
        elif k == sd_key:
            walk(v, '')
        elif is_tcn or sd_key:
            if scalar_str(v) is not None:
                meta[k] = scalar_str(v)
            else:
                skipped.append(k)
        else:
            walk(v, k[7:] if k.startswith('module.') else k)
    if skipped:
        meta['pth.skipped'] = ','.join(skipped)
    return tens, meta


def st_bytes(tens, meta):
    """A safetensors file, by hand: u64 header length, JSON, data."""
    hdr, blobs, off = {}, [], 0
    if meta:
        hdr['__metadata__'] = meta
    for name, t in tens:
        b = raw(t)
        hdr[name] = {'dtype': DT[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(',', ':'), ensure_ascii=False).encode()
    h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + b''.join(blobs)


def good(out, name, obj, **kw):
    torch.save(obj, os.path.join(out, name + '.pth'), **kw)
    back = torch.load(os.path.join(out, name + '.pth'))   # sanity: torch reads it back
    assert type(back) is type(obj)
    tens, meta = expect(obj)
    with open(os.path.join(out, name + '.expect.safetensors'), 'wb') as f:
        f.write(st_bytes(tens, meta))


# ---- hand-made zips --------------------------------------------------------
def zip_bytes(entries, zip64=False, method=0, lname=None, crc_bad=False, size64=None):
    """Stored zip laid out like torch's writer (data 64-byte aligned by an 'FB'
    padding extra field). entries: [(name, bytes)]. zip64: sizes and offsets
    only in ZIP64 extra fields (0xFFFFFFFF in the classic fields), ZIP64 end
    records, saturated classic end record. method 8: the first entry deflated.
    lname: local header name of the first entry. crc_bad: wrong CRC for the
    first entry. size64: declared (ZIP64) size of the first entry."""
    out, cd = bytearray(), bytearray()
    for i, (name, data) in enumerate(entries):
        nb = name.encode()
        crc = zlib.crc32(data) ^ (1 if (crc_bad and i == 0) else 0)
        meth = method if i == 0 else 0
        body = data
        if meth == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = c.compress(data) + c.flush()
        usize = size64 if (size64 is not None and i == 0) else len(data)
        csize = usize if meth == 0 else len(body)
        lnb = (lname.encode() if (lname and i == 0) else nb)
        off = len(out)
        x64 = struct.pack('<HHQQ', 1, 16, usize, csize) if zip64 else b''
        base = len(out) + 30 + len(lnb) + len(x64) + 4
        pad = -base % 64
        extra = x64 + struct.pack('<HH', 0x4246, pad) + b'Z' * pad
        s32 = 0xFFFFFFFF if zip64 else None
        out += struct.pack('<IHHHHHIIIHH', 0x04034b50, 45 if zip64 else 20, 0x0800, meth, 0, 0x2100, crc,
                           s32 or csize, s32 or usize, len(lnb), len(extra)) + lnb + extra + body
        cx = struct.pack('<HHQQQ', 1, 24, usize, csize, off) if zip64 else b''
        cd += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 0x031e, 45 if zip64 else 20, 0x0800, meth, 0,
                          0x2100, crc, s32 or csize, s32 or usize, len(nb), len(cx), 0, 0, 0, 0,
                          s32 or off) + nb + cx
    cd_off, n = len(out), len(entries)
    out += cd
    if zip64:
        z64 = len(out)
        out += struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 0x031e, 45, 0, 0, n, n, len(cd), cd_off)
        out += struct.pack('<IIQI', 0x07064b50, 0, z64, 1)
        out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, len(cd), cd_off, 0)
    return bytes(out)


def U(s):   # BINUNICODE
    b = s.encode()
    return b'X' + struct.pack('<I', len(b)) + b


def storage_pid(key, cls='FloatStorage', numel=2, numel_op=None):
    n = numel_op if numel_op is not None else b'K' + bytes([numel])
    return b'(' + U('storage') + b'ctorch\n' + cls.encode() + b'\n' + U(key) + U('cpu') + n + b'tQ'


def tensor_pkl(pid, offset=b'K\x00', size=b'K\x02\x85', stride=b'K\x01\x85'):
    return (b'ctorch._utils\n_rebuild_tensor_v2\n(' + pid + offset + size + stride +
            b'\x89ccollections\nOrderedDict\n)RtR')


def bad(out, name, pkl, extra=(), **kw):
    entries = [('archive/data.pkl', pkl)] + list(extra) + [('archive/version', b'3\n')]
    with open(os.path.join(out, name + '.pth'), 'wb') as f:
        f.write(zip_bytes(entries, **kw))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'tests/golden/pth'
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    np.random.seed(1234)

    # small conv net: conv, BN (running stats + int64 num_batches_tracked), linear, layer norm
    net = torch.nn.Sequential(collections.OrderedDict([
        ('conv', torch.nn.Conv2d(3, 4, 3)), ('bn', torch.nn.BatchNorm2d(4)),
        ('fc', torch.nn.Linear(8, 3)), ('ln', torch.nn.LayerNorm(3))]))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p))
        net.bn.running_mean.copy_(torch.randn(4))
        net.bn.running_var.copy_(torch.rand(4) + 0.5)
        net.bn.num_batches_tracked.fill_(7)
    sd = net.state_dict()
    good(out, 'f32', sd)
    good(out, 'f16', {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()})
    torch.save(sd, os.path.join(out, 'p4.pth'), pickle_protocol=4)   # expected: f32.expect

    # ZSE-SBIR checkpoint (SPEC 6) of a tiny model zs_zse_load accepts: dim 4,
    # patch 16, image 32 (grid 2, 5 tokens, 1 anchor), depth 1, MLP 8, scale
    # channels 2/2/2, CA FFN 8, anchor channels 2; F16 weights
    D, M, F, A, S = 4, 8, 8, 2, (2, 2, 2)
    shapes = [('sa.model.embedding.weight', (D, 3, 16, 16)), ('sa.model.embedding.bias', (D,)),
              ('sa.model.scale.seq.0.weight', (S[0], 3, 7, 7)), ('sa.model.scale.seq.2.weight', (S[1], S[0], 3, 3)),
              ('sa.model.scale.seq.4.weight', (S[2], S[1], 3, 3)), ('sa.model.scale.seq.6.weight', (D, S[2], 3, 3)),
              ('sa.model.cls', (1, 1, D)), ('sa.model.pos_embedding', (1, 5, D))]
    L = 'sa.model.transformer.layers.0.0.'
    shapes += [(L + 'layer_norm_input.weight', (D,)), (L + 'layer_norm_input.bias', (D,)),
               (L + 'attention.to_qkv.weight', (3 * D, D)), (L + 'attention.to_qkv.bias', (3 * D,)),
               (L + 'attention.to_out.0.weight', (D, D)), (L + 'attention.to_out.0.bias', (D,)),
               (L + 'layer_norm_out.weight', (D,)), (L + 'layer_norm_out.bias', (D,)),
               (L + 'mlp.net.0.weight', (M, D)), (L + 'mlp.net.0.bias', (M,)),
               (L + 'mlp.net.3.weight', (D, M)), (L + 'mlp.net.3.bias', (D,)),
               ('sa.model.transformer.encoder_norm.weight', (D,)), ('sa.model.transformer.encoder_norm.bias', (D,))]
    for br in ('layer1', 'layer2', 'layers'):     # 'layers' is the unused copy (ignored by the loader)
        p = 'ca.encoder.%s.0.' % br
        for k in range(4):
            shapes += [(p + 'self_attn.linears.%d.weight' % k, (D, D)), (p + 'self_attn.linears.%d.bias' % k, (D,))]
        shapes += [(p + 'feed_forward.w_1.weight', (F, D)), (p + 'feed_forward.w_1.bias', (F,)),
                   (p + 'feed_forward.w_2.weight', (D, F)), (p + 'feed_forward.w_2.bias', (D,))]
        for k in range(2):
            shapes += [(p + 'sublayer.%d.norm.a' % k, (D,)), (p + 'sublayer.%d.norm.b' % k, (D,))]
    shapes += [('conv2d.weight', (A, D, 2, 2)), ('conv2d.bias', (A,))]
    shapes += [('rn.rn.%d.%s' % (i, w), (1, 1) if w == 'weight' else (1,)) for i in (0, 3, 6) for w in ('weight', 'bias')]
    zsd = collections.OrderedDict((k, torch.randn(s).half()) for k, s in shapes)
    good(out, 'zse', {'model': zsd, 'epoch': 3, 'map_all': 0.25})
    # the released script's metrics are numpy scalars; an optimizer is skipped
    good(out, 'zse_np', {'model': collections.OrderedDict([(k, zsd[k]) for k in ('sa.model.embedding.bias', 'sa.model.cls')]), 'epoch': np.int64(12),
                         'map_all': np.float64(0.5), 'precision_100': np.float32(0.1),
                         'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-5}]}})

    # TCN: three DataParallel state dicts (keys 'module.'-prefixed)
    def resnetish():
        m = torch.nn.Sequential(collections.OrderedDict([('conv1', torch.nn.Conv2d(3, 2, 1, bias=False)),
                                                         ('bn1', torch.nn.BatchNorm2d(2))]))
        with torch.no_grad():
            m.conv1.weight.normal_()
            m.bn1.running_mean.normal_()
            m.bn1.num_batches_tracked.fill_(3)
        return torch.nn.DataParallel(m).state_dict()
    fc = torch.nn.DataParallel(torch.nn.Sequential(collections.OrderedDict([
        ('fc_hash', torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))),
        ('fc_cls', torch.nn.Linear(3, 2))]))).state_dict()
    good(out, 'tcn', {'sketch_state_dict': resnetish(), 'image_state_dict': resnetish(),
                      'fc_state_dict': fc, 'epoch': 5})

    # views: a transpose, a permute, strided columns, and views with offsets
    # into ONE storage (a, b, col, base share it)
    base = torch.arange(24, dtype=torch.float32) * 0.5 - 3
    w = torch.randn(3, 5)
    good(out, 'views', collections.OrderedDict([
        ('wt', w.t()), ('a', base[2:5]), ('b', base[6:18].view(3, 4)), ('col', base.view(6, 4)[1:, 1]),
        ('perm', torch.randn(2, 3, 4).permute(2, 0, 1)), ('base', base), ('wt_again', w.t()[1:, ::2])]))

    # dtypes: bf16, f64 (-> F32), integers, bool, a 0-dim tensor, an empty tensor
    good(out, 'dtypes', collections.OrderedDict([
        ('bf16', torch.randn(2, 3).bfloat16()), ('f64', torch.randn(3, dtype=torch.float64)),
        ('i32', torch.tensor([1, -2, 2 ** 31 - 1], dtype=torch.int32)), ('i16', torch.tensor([-7, 300], dtype=torch.int16)),
        ('i8', torch.tensor([-128, 5], dtype=torch.int8)), ('u8', torch.tensor([255, 0], dtype=torch.uint8)),
        ('mask', torch.tensor([True, False, True])), ('scalar', torch.tensor(2.5)),
        ('empty', torch.zeros(0, 3)), ('i64', torch.tensor([-(2 ** 62), 5]))]))

    # generic nesting and scalar metadata (Python repr of floats)
    good(out, 'nested', {'enc': {'layers': [torch.ones(2), {'w': torch.full((1,), 3.0)}], 'module.x': torch.zeros(1)},
                         'opt': {0: {'lr': 0.1}}, 'name': 'zse ÿ', 'flag': True, 'none': None, 'big': 1e20,
                         'small': 1.5e-07, 'whole': 123.0, 'negz': -0.0, 'inf': float('inf'),
                         'i': -(2 ** 40), 'tup': (1, 2.5)})

    # the f32 archive re-packed with ZIP64 extra fields / end records only
    # (expected: f32.expect; truncations of f32.pth are made by the test)
    import zipfile
    with zipfile.ZipFile(os.path.join(out, 'f32.pth')) as z:
        ents = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with open(os.path.join(out, 'zip64.pth'), 'wb') as f:
        f.write(zip_bytes(ents, zip64=True))

    # ---- bad files ----
    torch.save({'w': torch.ones(2)}, os.path.join(out, 'legacy.pth'), _use_new_zipfile_serialization=False)
    st2 = ('archive/data/0', struct.pack('<2f', 1.0, 2.0))
    d = b'\x80\x02}q\x00' + U('x')
    bad(out, 'os_system', d + b'cos\nsystem\n' + U('echo pwned') + b'\x85Rs.')
    bad(out, 'eval', d + b'cbuiltins\neval\n' + U('1+1') + b'\x85Rs.')
    bad(out, 'posix', b'\x80\x04}\x94' + b'\x8c\x01x' + b'\x8c\x05posix\x8c\x06system\x93' + b'\x8c\x02id\x85Rs.')
    bad(out, 'class', d + b'ctorch.nn.modules.linear\nLinear\n)Rs.')
    bad(out, 'huge_storage', d + tensor_pkl(storage_pid('0', numel_op=b'\x8a\x06\x00\x00\x00\x00\x00\x01')) + b's.', [st2])
    bad(out, 'huge_shape', d + tensor_pkl(storage_pid('0'), size=b'J\x00\x00\x00\x40J\x00\x00\x00\x40\x86',
                                          stride=b'J\x00\x00\x00\x40K\x01\x86') + b's.', [st2])
    bad(out, 'oob_offset', d + tensor_pkl(storage_pid('0'), offset=b'K\x01') + b's.', [st2])
    bad(out, 'huge_string', b'\x80\x02}X\xf0\xff\xff\xffabc')
    bad(out, 'huge_zip64', d + tensor_pkl(storage_pid('0')) + b's.', [st2], zip64=True, size64=5 << 30)
    bad(out, 'deep', d + b']' * 2000 + b'a' * 1999 + b's.')
    bad(out, 'marks', b'\x80\x02' + b'(' * 2000)
    bad(out, 'cycle', d + b']q\x01h\x01as.')
    dag = b'\x80\x02}'                          # v = {} -> {'a': v, 'b': v} forty times
    for i in range(40):
        dag += b'q\x00}(' + U('a') + b'h\x00' + U('b') + b'h\x00u'
    bad(out, 'dag', dag + b'q\x00}' + U('x') + b'h\x00s.')
    bad(out, 'memo', d + b'K\x01r\xff\xff\xff\x7fs.')
    bad(out, 'deflate', d + b'K\x01s.', method=8)
    bad(out, 'badcrc', d + b'K\x01s.', crc_bad=True)
    bad(out, 'names', d + b'K\x01s.', lname='archive/data.pkX')
    bad(out, 'nostorage', d + tensor_pkl(storage_pid('9')) + b's.', [st2])
    bad(out, 'dtype_clash', d + tensor_pkl(storage_pid('0')) + b's' + U('y') +
        tensor_pkl(storage_pid('0', cls='IntStorage')) + b's.', [st2])
    bad(out, 'bigendian', d + b'K\x01s.', [('archive/byteorder', b'big')])
    bad(out, 'noreduce', d + b'\x85Rs.')
    bad(out, 'stop', d + b'K\x01s')                # no STOP
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    for f, s in sizes.items():
        print('%8d %s' % (s, f))
    print('%8d total' % sum(sizes.values()))


if __name__ == '__main__':
    main()
