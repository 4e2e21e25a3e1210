#!/usr/bin/env python3
"""tcn_ref.py - PyTorch reference of TCN (shared/SPEC.md section 2) for zsesbir.h [impl:tcn].

Self-contained (torch, torchvision, numpy). The model code mirrors the released TCN
code (haowang1992/TCN: model/baseline_resnet.py, model/bn.py, experiment/
train_baseline_resnet.py, util/tool.py) with reduced widths; module and parameter
names are torchvision's and the release's, so state-dict keys match the C store.

  --golden DIR   tiny config: weights (F16-exact values, stored F16) and one golden
                 file of inputs, forward outputs, every loss term, every gradient of
                 one training step, and the batch-norm running statistics after two
                 Adam steps, for both heads (BatchNorm1d and MSSBN); plus a BasicBlock
                 ResNet forward/backward case. Written to DIR (tests/golden).
  --full DIR     ResNet-50 parity at 224x224 on one image (torchvision.models.resnet50,
                 random init, BN statistics calibrated on a batch): weights, input and
                 outputs to DIR (large, not committed); tools/tcn_bench.c compares.
  --bench        ResNet-50 forward timings with torch.set_num_threads(2) (batch 1, 8).
  --selftest     state-dict keys of the reference ResNet = torchvision's (18/34/50).
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ------------------------------------------------------------------------------------
# ResNet with torchvision's layout and names, configurable widths

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        idt = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            idt = self.downsample(x)
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            idt = self.downsample(x)
        return self.relu(out + idt)


class ResNet(nn.Module):
    def __init__(self, bottleneck, layers, stem, planes, num_classes):
        super().__init__()
        block = Bottleneck if bottleneck else BasicBlock
        self.inplanes = stem
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, planes[0], layers[0], 1)
        self.layer2 = self._make_layer(block, planes[1], layers[1], 2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], 2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes * block.expansion))
        mods = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            mods.append(block(self.inplanes, planes))
        return nn.Sequential(*mods)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        f = self.features(x)
        return self.fc(f) if self.fc is not None else f


# tiny test backbone: Bottleneck, stem 8, planes 4,4,8,8, layers 1,2,1,1 -> F = 32
TINY = dict(bottleneck=True, layers=[1, 2, 1, 1], stem=8, planes=[4, 4, 8, 8])
# BasicBlock case: stem 4, planes 4,4,8,8, layers 2,1,1,1, fc 6
BASIC = dict(bottleneck=False, layers=[2, 1, 1, 1], stem=4, planes=[4, 4, 8, 8])
MSSBN_ENC_GRADS = ("sketch.conv1.weight", "sketch.bn1.weight", "image.layer4.0.conv3.weight", "image.layer4.0.downsample.1.bias")
TCN_TINY = dict(D=16, ncls=5, nkd=10, wv=12, B=4, img=64, labels=[0, 1, 0, 3],
                lr=1e-3, wd=5e-4, w_cls=1.0, w_kd=1.0, w_share=1000.0, w_sbh=1.0)


# ------------------------------------------------------------------------------------
# TCN heads and losses, as released

class MSSBN1d(nn.Module):
    """model/bn.py: shared affine, separate running statistics per modality."""

    def __init__(self, n, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean_sketch", torch.zeros(n))
        self.register_buffer("running_var_sketch", torch.ones(n))
        self.register_buffer("num_batches_tracked_sketch", torch.tensor(0, dtype=torch.long))
        self.register_buffer("running_mean_image", torch.zeros(n))
        self.register_buffer("running_var_image", torch.ones(n))
        self.register_buffer("num_batches_tracked_image", torch.tensor(0, dtype=torch.long))
        self.sketch_flag = True

    def forward(self, x):
        m = "sketch" if self.sketch_flag else "image"
        return F.batch_norm(x, getattr(self, "running_mean_" + m), getattr(self, "running_var_" + m),
                            self.weight, self.bias, self.training, self.momentum, self.eps)


class BaselineFC(nn.Module):
    def __init__(self, Fdim, D, ncls, nkd, mssbn, p):
        super().__init__()
        self.mssbn = mssbn
        if mssbn:
            self.fc_hash = nn.Sequential(nn.Linear(Fdim, D))
            self.bn = MSSBN1d(D)
            self.drop = nn.Dropout(p)
        else:
            self.fc_hash = nn.Sequential(nn.Linear(Fdim, D), nn.BatchNorm1d(D))
        self.fc_cls = nn.Linear(D, ncls)
        self.fc_kd = nn.Linear(D, nkd)

    def forward(self, sf, imf):
        sh, ih = self.fc_hash(sf), self.fc_hash(imf)
        if self.mssbn:
            self.bn.sketch_flag = True
            sh = self.drop(self.bn(sh))
            self.bn.sketch_flag = False
            ih = self.drop(self.bn(ih))
        return sh, ih, self.fc_cls(sh), self.fc_cls(ih), self.fc_kd(ih)


class SemanticBatchHard(nn.Module):
    def __init__(self, wv, D):
        super().__init__()
        self.fc = nn.Linear(wv, D)

    def forward(self, x, wv, label, alpha):
        sem = alpha * self.fc(wv) + (1.0 - alpha) * x
        diffs = sem.unsqueeze(1) - x.unsqueeze(0)
        dists = torch.sqrt(((diffs ** 2) + 1e-16).sum(dim=-1))  # (release: eps per element)
        same = torch.eq(label.unsqueeze(1), label.unsqueeze(0))
        pmask = torch.logical_xor(same, torch.eye(label.size(0), dtype=torch.bool))
        fpos, _ = torch.max(dists * pmask.float(), dim=1)
        cneg, _ = torch.min(dists + 1e8 * same.float(), dim=1)
        return F.softplus(fpos - cneg), sem


def soft_ce(inp, tgt_logits):
    return torch.sum(-F.log_softmax(inp, dim=1) * F.softmax(tgt_logits, dim=1)) / tgt_logits.shape[0]


class TCN(nn.Module):
    def __init__(self, bb, D, ncls, nkd, wv, mssbn, p):
        super().__init__()
        self.sketch = ResNet(num_classes=0, **bb)
        self.image = ResNet(num_classes=0, **bb)
        self.fc = BaselineFC(self.sketch.inplanes, D, ncls, nkd, mssbn, p)
        self.sbh = SemanticBatchHard(wv, D)

    def losses(self, teacher, sk, im, y, wv, alpha, cfg):
        out = {}
        sf, imf = self.sketch.features(sk), self.image.features(im)
        sh, ih, sc, ic, ikd = self.fc(sf, imf)
        out.update(feat_sketch=sf, feat_photo=imf, hash_sketch=sh, hash_photo=ih)
        ce_s, ce_p = F.cross_entropy(sc, y), F.cross_entropy(ic, y)
        with torch.no_grad():
            t = teacher(im)
        out["teacher_logits"] = t
        kd = soft_ce(ikd, t)
        share = torch.zeros(1)
        for (n1, p1), (n2, p2) in zip(self.sketch.named_parameters(), self.image.named_parameters()):
            assert n1 == n2
            if "bn" not in n1 and "downsample.1" not in n1:  # conv weights only (release)
                share = share + torch.norm(p1 - p2, p="fro")
        l, xsem = self.sbh(torch.cat([sh, ih]), torch.cat([wv, wv]), torch.cat([y, y]), alpha)
        s = self.fc.fc_cls(xsem)
        ent = torch.sum(-F.softmax(s, dim=1) * F.log_softmax(s, dim=1), dim=1)
        sbh = (l * (1 + torch.exp(-ent))).mean()
        total = cfg["w_cls"] * (ce_s + ce_p) + cfg["w_share"] * share + cfg["w_kd"] * kd
        total = total + cfg["w_sbh"] * sbh
        out.update(cls_sketch=ce_s, cls_photo=ce_p, kd=kd, share=share.reshape(()), sbh=sbh, total=total.reshape(()))
        return out

    def embed(self, x, is_sketch):
        """released test path: fc_model(feature, feature)[0] (sketch statistics in MSSBN)"""
        f = (self.sketch if is_sketch else self.image).features(x)
        return F.normalize(self.fc(f, f)[0])


# ------------------------------------------------------------------------------------
# files

def hash_images(seed, shape):
    """x_i = v / 2^23 - 1, v = top 24 bits of a splitmix64-style hash of (i, seed):
    exact in float32, reproduced bit for bit by the C test (hash_images there).
    64x64 images: at 24x24 the last stages see 1-4 values per BN channel and
    float32 gradients themselves drift ~3e-4 from float64."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed) * np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(31)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(29)
    v = (z >> np.uint64(40)).astype(np.float64)
    return torch.from_numpy((v / 8388608.0 - 1.0).astype(np.float32).reshape(shape))


def write_safetensors(path, items, meta=None):
    """items: list of (name, np array, 'F32'|'F16')"""
    header, blobs, off = {}, [], 0
    for name, arr, dt in items:
        a = np.ascontiguousarray(arr, dtype=np.float16 if dt == "F16" else np.float32)
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def f16_exact(model, gen, rand_stats=True):
    """round every float tensor to F16 values; random running statistics"""
    with torch.no_grad():
        for name, b in model.named_buffers():
            if not b.is_floating_point():
                continue
            if rand_stats and "running_mean" in name:
                b.copy_(0.2 * torch.randn(b.shape, generator=gen))
            elif rand_stats and "running_var" in name:
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
            b.copy_(b.half().float())
        for p in model.parameters():
            if p.dim() == 1:  # BN affine and biases away from 1/0
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            p.copy_(p.half().float())


def float_state(model, prefix="", rename=None):
    out = []
    for k, v in model.state_dict().items():
        if not v.is_floating_point():
            continue  # num_batches_tracked
        out.append((prefix + (rename(k) if rename else k), v.detach().numpy().copy()))
    return out


def tcn_file_name(k, module_infix):
    """TCN layout name; module_infix=True writes the DataParallel form sketch.module.x"""
    part, rest = k.split(".", 1)
    if module_infix and part != "sbh":
        return part + ".module." + rest
    return k


# ------------------------------------------------------------------------------------
# golden

def golden(outdir):
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    c = TCN_TINY
    B, img = c["B"], c["img"]
    items_w = {}
    G = []  # golden items (name, array)

    # images are generated, not stored (tests/golden stays small): hash_images()
    sk = hash_images(1, (B, 3, img, img))
    im = hash_images(2, (B, 3, img, img))
    y = torch.tensor(c["labels"], dtype=torch.long)
    wv = torch.randn(B, c["wv"], generator=gen).half().float()
    alpha = torch.rand(2 * B, 1, generator=gen).half().float()
    inputs = [("input.labels", y.float().numpy(), "F32"), ("input.wordvec", wv.numpy(), "F16"),
              ("input.alpha", alpha.reshape(-1).numpy(), "F16")]

    # teacher: tiny Bottleneck with fc over nkd classes, eval mode
    teacher = ResNet(num_classes=c["nkd"], **TINY)
    f16_exact(teacher, gen)
    teacher.eval()
    write_safetensors(os.path.join(outdir, "tcn_tiny_teacher.safetensors"),
                      [(k, v, "F16") for k, v in float_state(teacher)])

    encoders = None
    for mode in ("bn", "mssbn"):
        torch.manual_seed(7 if mode == "bn" else 8)
        model = TCN(TINY, c["D"], c["ncls"], c["nkd"], c["wv"], mode == "mssbn", 0.0)  # dropout off
        # the two encoders differ (else the share loss and its gradient are 0)
        f16_exact(model, gen)
        if encoders is None:
            encoders = tuple({k: v.clone() for k, v in e.state_dict().items()} for e in (model.sketch, model.image))
            keep = lambda k: True
        else:  # MSSBN file: heads only (DataParallel names); encoders = the BN model's
            model.sketch.load_state_dict(encoders[0])
            model.image.load_state_dict(encoders[1])
            keep = lambda k: k.startswith("fc.") or k.startswith("sbh.")
        fname = os.path.join(outdir, "tcn_tiny_%s.safetensors" % mode)
        write_safetensors(fname, [(tcn_file_name(k, mode == "mssbn"), v, "F16") for k, v in float_state(model) if keep(k)])

        # eval embeddings with the initial weights
        model.eval()
        with torch.no_grad():
            G.append((mode + ".eval.sketch", model.embed(sk, True).numpy()))
            G.append((mode + ".eval.photo", model.embed(im, False).numpy()))

        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=c["lr"], weight_decay=c["wd"])
        opt.zero_grad()
        out = model.losses(teacher, sk, im, y, wv, alpha, c)
        out["total"].backward()
        for k in ("feat_sketch", "feat_photo", "hash_sketch", "hash_photo", "teacher_logits"):
            G.append((mode + "." + k, out[k].detach().numpy()))
        for k in ("cls_sketch", "cls_photo", "kd", "share", "sbh", "total"):
            G.append((mode + ".loss." + k, out[k].detach().reshape(1).numpy()))
        for n, p in model.named_parameters():
            # MSSBN: the heads and a few encoder tensors (the encoder code is shared)
            if mode == "bn" or not n.startswith(("sketch.", "image.")) or n in MSSBN_ENC_GRADS:
                G.append((mode + ".grad." + n, p.grad.numpy().copy()))
        opt.step()
        opt.zero_grad()
        out2 = model.losses(teacher, sk, im, y, wv, alpha, c)
        out2["total"].backward()
        opt.step()
        G.append((mode + ".step2.total", out2["total"].detach().reshape(1).numpy()))
        for n, b in model.named_buffers():
            if b.is_floating_point():
                G.append((mode + ".stats2." + n, b.numpy().copy()))
        print("%s: losses %s" % (mode, {k: float(out[k]) for k in ("cls_sketch", "cls_photo", "kd", "share", "sbh", "total")}))
        print("%s: step 2 total %.6f" % (mode, float(out2["total"])))

    # BasicBlock net: train-mode and eval-mode logits, gradients of sum(logits * R)
    torch.manual_seed(5)
    net = ResNet(num_classes=6, **BASIC)
    f16_exact(net, gen)
    write_safetensors(os.path.join(outdir, "tcn_tiny_basic.safetensors"), [(k, v, "F16") for k, v in float_state(net)])
    R = torch.randn(B, 6, generator=gen).half().float()
    inputs.append(("basic.R", R.numpy(), "F16"))
    net.eval()
    with torch.no_grad():
        G.append(("basic.eval", net(sk).numpy()))
    net.train()
    xin = sk.clone().requires_grad_(True)
    lo = net(xin)
    (lo * R).sum().backward()
    G.append(("basic.train", lo.detach().numpy()))
    for n, p in net.named_parameters():
        G.append(("basic.grad." + n, p.grad.numpy().copy()))
    for n, b in net.named_buffers():
        if b.is_floating_point():
            G.append(("basic.stats1." + n, b.numpy().copy()))

    meta = {"config": json.dumps(dict(tiny=TINY, basic=BASIC, tcn=TCN_TINY)),
            "torch": torch.__version__}
    path = os.path.join(outdir, "tcn_tiny_golden.safetensors")
    write_safetensors(path, inputs + [(k, v, "F32") for k, v in G], meta)
    total = 0
    for f in ("tcn_tiny_golden", "tcn_tiny_bn", "tcn_tiny_mssbn", "tcn_tiny_teacher", "tcn_tiny_basic"):
        s = os.path.getsize(os.path.join(outdir, f + ".safetensors"))
        total += s
        print("%s.safetensors: %d bytes" % (f, s))
    print("total %d bytes" % total)


# ------------------------------------------------------------------------------------
# full ResNet-50

def imagenet_input(path):
    from PIL import Image
    im = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = np.asarray(im, dtype=np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0)


def full(outdir):
    import glob
    import torchvision
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(2020)
    net = torchvision.models.resnet50()
    photos = sorted(glob.glob("/work/shared/data/sketchy/photo/*/*.jpg"))
    if photos:
        xs = [imagenet_input(p) for p in photos[::len(photos) // 8][:8]]
        x0 = xs[0]
        calib = torch.cat(xs)
    else:
        calib = torch.randn(8, 3, 224, 224)
        x0 = calib[:1]
    # calibrate BN statistics on a batch (random init + running stats 0/1 would
    # let activations explode through 16 residual blocks)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(calib)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    net.eval()
    with torch.no_grad():
        feats = torch.flatten(net.avgpool(net.layer4(net.layer3(net.layer2(net.layer1(
            net.maxpool(net.relu(net.bn1(net.conv1(x0))))))))), 1)
        logits = net(x0)
    write_safetensors(os.path.join(outdir, "resnet50.safetensors"),
                      [(k, v.numpy(), "F32") for k, v in net.state_dict().items() if v.is_floating_point()])
    write_safetensors(os.path.join(outdir, "resnet50_io.safetensors"),
                      [("input", x0.numpy(), "F32"), ("features", feats.numpy(), "F32"), ("logits", logits.numpy(), "F32")])
    print("wrote %s (logits max |.| %.4g, features max %.4g)" % (outdir, float(logits.abs().max()), float(feats.abs().max())))


def bench(reps, pairs=0, train_reps=3):
    import torchvision
    torch.set_num_threads(2)
    net = torchvision.models.resnet50().eval()
    res = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for B in (1, 8, 32):
        x = torch.randn(B, 3, 224, 224)
        with torch.no_grad():
            net(x)
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                net(x)
                ts.append(time.perf_counter() - t0)
        res["batch%d_ms" % B] = 1000 * statistics.median(ts)
        res["batch%d_ms_per_image" % B] = 1000 * statistics.median(ts) / B
    if pairs > 0:
        res.update(train_bench(train_reps, pairs))
    import resource
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(res))


def train_bench(reps, pairs):
    """one TCN training step as tools/tcn_bench.c --train: ResNet-50 encoders, D 64,
    100 classes, frozen torchvision ResNet-50 teacher, all SPEC 2.2 terms, Adam"""
    import torchvision
    torch.manual_seed(0)
    bb = dict(bottleneck=True, layers=[3, 4, 6, 3], stem=64, planes=[64, 128, 256, 512])
    model = TCN(bb, 64, 100, 1000, 300, False, 0.0).train()
    teacher = torchvision.models.resnet50().eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    cfg = dict(w_cls=1.0, w_kd=1.0, w_share=1000.0, w_sbh=1.0)
    y = torch.arange(pairs) % 4
    wv = torch.rand(pairs, 300) - 0.5
    ts = []
    for k in range(reps + 1):  # one warm-up
        sk = torch.rand(pairs, 3, 224, 224) * 4 - 2
        im = torch.rand(pairs, 3, 224, 224) * 4 - 2
        alpha = torch.rand(2 * pairs, 1)
        t0 = time.perf_counter()
        opt.zero_grad()
        out = model.losses(teacher, sk, im, y, wv, alpha, cfg)
        out["total"].backward()
        opt.step()
        if k > 0:
            ts.append(time.perf_counter() - t0)
    return {"train_pairs": pairs, "train_median_s": statistics.median(ts), "train_reps": reps}


def selftest():
    import torchvision
    cfgs = {"resnet18": (False, [2, 2, 2, 2]), "resnet34": (False, [3, 4, 6, 3]), "resnet50": (True, [3, 4, 6, 3])}
    for name, (bt, layers) in cfgs.items():
        ref = getattr(torchvision.models, name)()
        mine = ResNet(bt, layers, 64, [64, 128, 256, 512], 1000)
        a = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
        b = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
        assert list(a) == list(b) and a == b, name
        mine.load_state_dict(ref.state_dict())
        x = torch.randn(2, 3, 64, 64)
        ref.eval(); mine.eval()
        with torch.no_grad():
            d = float((ref(x) - mine(x)).abs().max())
        print("%s: %d tensors, keys and shapes equal torchvision's, max |diff| %.3g" % (name, len(a), d))
        assert d == 0.0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", metavar="DIR")
    ap.add_argument("--full", metavar="DIR")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=0, help="--bench: also time a training step of this many pairs")
    ap.add_argument("--train-reps", type=int, default=3)
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1 if not a.bench else 2)
    if a.selftest:
        selftest()
    if a.golden:
        golden(a.golden)
    if a.full:
        full(a.full)
    if a.bench:
        bench(a.reps, a.pairs, a.train_reps)
    if not (a.selftest or a.golden or a.full or a.bench):
        ap.print_help()
        sys.exit(2)
