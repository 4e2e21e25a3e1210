#!/usr/bin/python3
"""tcn_train_ref.py - train TCN in the PyTorch reference on a `zsesbir train --model tcn --plan` schedule.

The counterpart of `zsesbir train --model tcn` for the real-data benchmark
(tools/bench_tcn_train.sh): the same initial weights (the W that `--plan` writes:
TCN checkpoint names, metadata "zsesbir.model" = "tcn" and "zsesbir.config"), the
same pairs in the same order with the same labels, word vectors and semantic-metric
weights a (the plan file), the same pre-processing, losses and optimiser:

  images   PIL Image.resize((S, S)) (bicubic), as the C trainer's zs_image_resize_bicubic_pil,
           for sketches and photos alike; /255, ImageNet mean/std (float32, as
           zs_image_normalize); pre-processed uint8 images are cached, as in C
  augment  none: only --no-aug plans are replayed (identity augmentation on every pair)
  model    tools/tcn_ref.py TCN (config from the weights' "zsesbir.config"), train mode;
           loss TCN.losses = CE(sketch) + CE(photo) + 1000 * share + semantic batch-hard
           (weights 1, 1000, 1), with a given per step from the plan; no teacher: the KD
           term is computed against zero teacher logits and weighted 0, so it adds
           nothing but gives fc_kd a zero gradient, as the C trainer's zeroed gradient
           (Adam's L2 weight decay then moves fc_kd in both)
  optim    torch.optim.Adam(lr, betas 0.9/0.999, eps 1e-8, weight_decay from the plan
           header, 5e-4) on every parameter; lr of each step from the plan (the C
           schedule lr0 * 0.001^(e / (2 epochs)))

Writes the trained weights with the same names and metadata (no num_batches_tracked),
so `zsesbir eval` evaluates them with the C code.

Known differences from the C run: photos are JPEGs decoded by Pillow's libjpeg instead
of stb_image (up to a few /255 per pixel); float summation orders differ (GEMM, conv,
batch-norm reductions), so the runs drift apart over the steps; MSSBN plans (dropout)
replay with torch's own dropout masks.

Usage:
  tcn_train_ref.py --init W0 --plan PLAN --out W [--threads 1] [--log-every 50]
                   [--steps N] [--losses FILE] [--seed 1]
The last line printed is a JSON summary (wall times, losses, peak RSS).
"""
import argparse
import json
import os
import resource
import struct
import sys
import time

T_START = time.perf_counter()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import tcn_ref as tr  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
COLUMNS = ["step", "lr", "label", "class", "alpha_sketch", "alpha_photo", "flip", "scale", "angle", "tx", "ty",
           "sketch", "photo"]


def read_safetensors(path):
    """-> ({name: float32 numpy array}, metadata); F32 only (what zs_tcn_save writes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for k, v in header.items():
        if v["dtype"] != "F32":
            raise SystemExit(f"{path}: {k} is {v['dtype']}, expected F32")
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype="<f4").reshape(v["shape"]).copy()
    return out, meta


def parse_config(text):
    """'tcn bottleneck=0 layers=2,2,2,2 stem=64 planes=... dim=64 classes=100 kd=1000 wv=300 mssbn=0 size=112'"""
    items = text.split()
    if not items or items[0] != "tcn":
        raise SystemExit(f"not a TCN config: {text!r}")
    kv = dict(item.split("=", 1) for item in items[1:])
    ints = lambda s: [int(x) for x in s.split(",")]
    need = ["bottleneck", "layers", "stem", "planes", "dim", "classes", "kd", "wv", "mssbn", "size"]
    missing = [k for k in need if k not in kv]
    if missing:
        raise SystemExit(f"zsesbir.config lacks {missing}")
    return dict(bb=dict(bottleneck=bool(int(kv["bottleneck"])), layers=ints(kv["layers"]), stem=int(kv["stem"]),
                        planes=ints(kv["planes"])),
                D=int(kv["dim"]), ncls=int(kv["classes"]), nkd=int(kv["kd"]), wv=int(kv["wv"]),
                mssbn=bool(int(kv["mssbn"])), size=int(kv["size"]))


def read_plan(path):
    """-> (header dict, word-vector path, list of steps: (step, lr, [pair dicts]))"""
    head, wvpath, rows = {}, None, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("# zsesbir train --model tcn plan:"):
                t = line.split(":", 1)[1].split()
                head = dict(zip(t[0::2], t[1::2]))
            elif line.startswith("# wordvec "):
                wvpath = line[len("# wordvec "):]
            elif line.startswith("#"):
                continue
            else:
                c = line.split("\t")
                if len(c) != len(COLUMNS):
                    raise SystemExit(f"{path}: plan lines have {len(COLUMNS)} tab-separated fields, got {len(c)}")
                rows.append(dict(zip(COLUMNS, c)))
    if not head or wvpath is None:
        raise SystemExit(f"{path}: not a `zsesbir train --model tcn --plan` file (header missing)")
    steps = []
    for r in rows:
        s = int(r["step"])
        if not steps or steps[-1][0] != s:
            steps.append((s, float(r["lr"]), []))
        steps[-1][2].append(r)
    B = int(head["batch"])
    if any(len(p) != B for _, _, p in steps):
        raise SystemExit(f"{path}: every step must hold {B} pairs")
    return head, wvpath, steps


def load_wordvec(path, names, dim):
    """name<TAB>v1 v2 ... lines -> {name: float32 [dim]} for the names asked (' ' == '_')"""
    want = {n.replace(" ", "_"): n for n in names}
    out = {}
    with open(path) as f:
        for line in f:
            if "\t" not in line:
                continue
            name, vals = line.rstrip("\n").split("\t", 1)
            key = name.replace(" ", "_")
            if key in want and want[key] not in out:
                v = np.array([float(x) for x in vals.split()], dtype=np.float64).astype(np.float32)
                if v.shape != (dim,):
                    raise SystemExit(f"{path}: {name} has {v.size} values, expected {dim}")
                out[want[key]] = v
    missing = [n for n in names if n not in out]
    if missing:
        raise SystemExit(f"{path}: no word vector for {missing[:5]}")
    return out


class ImageCache:
    """uint8 [S,S,3] resized images by path (the C trainer's cache)."""

    def __init__(self, size):
        self.size = size
        self.img = {}
        self.seconds = 0.0

    def get(self, path):
        u8 = self.img.get(path)
        if u8 is None:
            t0 = time.perf_counter()
            u8 = np.asarray(Image.open(path).convert("RGB").resize((self.size, self.size)))  # PIL default: bicubic
            self.img[path] = u8
            self.seconds += time.perf_counter() - t0
        return u8


def batch_tensor(cache, paths):
    u8 = np.stack([cache.get(p) for p in paths])                     # [B,S,S,3]
    x = (u8.astype(np.float32) / np.float32(255) - MEAN) / STD         # float32, op by op as C
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", required=True, help="initial weights (the --out of `zsesbir train --model tcn --plan`)")
    ap.add_argument("--plan", required=True, help="plan file of `zsesbir train --model tcn --plan`")
    ap.add_argument("--out", required=True, help="trained weights (safetensors, TCN layout)")
    ap.add_argument("--seed", type=int, default=1, help="torch seed (MSSBN dropout masks only)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--steps", type=int, help="train on the first N planned steps (default all)")
    ap.add_argument("--losses", help="write every step's loss terms here (TSV)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    head, wvpath, plan = read_plan(args.plan)
    if head.get("kd") != "off":
        raise SystemExit("the plan was made with --teacher (KD on): not supported by this reference")
    if args.steps is not None:
        if args.steps > len(plan):
            raise SystemExit(f"--steps {args.steps} but the plan has {len(plan)} steps")
        plan = plan[:args.steps]
    for _, _, pairs in plan:
        for r in pairs:
            if (int(r["flip"]), float(r["scale"]), float(r["angle"]), float(r["tx"]), float(r["ty"])) != (0, 1.0, 0.0, 0.0, 0.0):
                raise SystemExit("the plan has augmented pairs: make it with `zsesbir train --model tcn --no-aug --plan`")

    tensors, meta = read_safetensors(args.init)
    if meta.get("zsesbir.model") != "tcn" or "zsesbir.config" not in meta:
        raise SystemExit(f"{args.init}: not a zsesbir TCN checkpoint (metadata {meta})")
    cfg = parse_config(meta["zsesbir.config"])
    if str(cfg["size"]) != head.get("size"):
        raise SystemExit(f"plan size {head.get('size')} != weights size {cfg['size']}")
    D = cfg["D"]
    p_drop = 0.5 if np.log2(D) <= 6 else 0.7          # release rule (MSSBN only)
    model = tr.TCN(cfg["bb"], D, cfg["ncls"], cfg["nkd"], cfg["wv"], cfg["mssbn"], p_drop)
    sd = model.state_dict()
    floats = {k for k, v in sd.items() if v.is_floating_point()}
    if floats != set(tensors):
        raise SystemExit(f"weights do not match the model: missing {sorted(floats - set(tensors))[:5]}, "
                         f"unexpected {sorted(set(tensors) - floats)[:5]}")
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    del tensors
    model.train()
    wd = float(head.get("wd", 5e-4))
    opt = torch.optim.Adam(model.parameters(), lr=plan[0][1], betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    loss_w = dict(w_cls=1.0, w_kd=0.0, w_share=1000.0, w_sbh=1.0)
    nkd = cfg["nkd"]
    teacher = lambda im: torch.zeros(im.shape[0], nkd)  # noqa: E731  (KD off: weight 0)

    names = sorted({r["class"] for _, _, pairs in plan for r in pairs})
    wvs = load_wordvec(wvpath, names, cfg["wv"])
    B = int(head["batch"])
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters ({meta['zsesbir.config']})")
    print(f"plan: {len(plan)} steps of {B} pairs (seed {head.get('seed')}, steps {head.get('steps')}, epochs "
          f"{head.get('epochs')}); lr {plan[0][1]:.6g} -> {plan[-1][1]:.6g}, wd {wd}; threads {args.threads} "
          f"(torch {torch.__version__})")
    sys.stdout.flush()

    cache = ImageCache(cfg["size"])
    losses = []
    t_train = 0.0
    t_loop0 = time.perf_counter()
    for i, (step, lr, pairs) in enumerate(plan):
        sk = batch_tensor(cache, [r["sketch"] for r in pairs])
        im = batch_tensor(cache, [r["photo"] for r in pairs])
        y = torch.tensor([int(r["label"]) for r in pairs], dtype=torch.long)
        wv = torch.from_numpy(np.stack([wvs[r["class"]] for r in pairs]))
        alpha = torch.tensor([float(r["alpha_sketch"]) for r in pairs] + [float(r["alpha_photo"]) for r in pairs],
                             dtype=torch.float32).reshape(2 * B, 1)
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        out = model.losses(teacher, sk, im, y, wv, alpha, loss_w)
        out["total"].backward()
        for p in model.parameters():       # (none expected: every tensor is in the graph)
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        opt.step()
        t_train += time.perf_counter() - t0
        L = tuple(float(out[k]) for k in ("total", "cls_sketch", "cls_photo", "sbh", "share"))
        losses.append(L)
        if (i + 1) % args.log_every == 0 or i + 1 == len(plan) or i == 0:
            el = time.perf_counter() - t_loop0
            print(f"step {step}/{plan[-1][0]}  loss {L[0]:.6f} (cls {L[1]:.6f}/{L[2]:.6f} sbh {L[3]:.6f} share "
                  f"{L[4]:.6f})  {el / (i + 1):.2f} s/step", flush=True)
    t_loop = time.perf_counter() - t_loop0

    items = [(k, v.detach().numpy(), "F32") for k, v in model.state_dict().items() if v.is_floating_point()]
    tmp = args.out + ".tmp"
    tr.write_safetensors(tmp, items, {"format": "pt", "zsesbir.model": "tcn", "zsesbir.config": meta["zsesbir.config"]})
    os.replace(tmp, args.out)
    if args.losses:
        with open(args.losses, "w") as f:
            f.write("step\ttotal\tcls_sketch\tcls_photo\tsbh\tshare\n")
            for (step, _, _), L in zip(plan, losses):
                f.write(f"{step}\t" + "\t".join(f"{v:.9g}" for v in L) + "\n")
    tail = losses[-50:]
    summary = {
        "steps": len(plan), "batch": B, "images_preprocessed": len(cache.img),
        "wall_s": round(time.perf_counter() - T_START, 3),
        "loop_s": round(t_loop, 3), "train_s": round(t_train, 3), "preprocess_s": round(cache.seconds, 3),
        "loss1": losses[0][0], "mean_loss_last50": round(sum(L[0] for L in tail) / len(tail), 6),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    print(f"wrote {args.out} after {len(plan)} steps, {t_loop:.1f} s "
          f"(train {t_train:.1f} s, pre-processing {cache.seconds:.1f} s)")
    print("summary " + json.dumps(summary))


if __name__ == "__main__":
    main()
