#!/usr/bin/python3
"""train_ref.py - train ZSE-SBIR in the PyTorch reference on a `zsesbir train --plan` schedule.

The counterpart of `zsesbir train` for the real-data benchmark (tools/bench_train.sh):
the same initial weights (a safetensors file with the released names and the
"zsesbir.config" metadata, e.g. from `zsesbir init`), the same batches in the same
order (the plan file: one line per step, 4B tab-separated image paths ordered
[s+ (B), s- (B), p+ (B), p- (B)]), the same pre-processing, loss and optimiser:

  photos   PIL Image.resize (bicubic) to the config's img_size          (SPEC 3)
  sketches the numpy re-implementation of the C pipeline (ink box, crop, OpenCV
           INTER_LINEAR, pad with the max) from tools/preprocess_ref.py   (SPEC 3)
  both     (v/255 - 0.5) / 0.5; pre-processed uint8 images are cached, as the C
           trainer caches them
  model    tools/zsesbir_ref.py (config from the weights' metadata), train mode
           (dropout p of the config), loss train_forward = 2 triplet + 4 RN MSE
  optim    torch.optim.AdamW(lr, betas 0.9/0.999, eps 1e-8, weight_decay) on every
           parameter

Writes the trained weights with the same names and the same "zsesbir.config"
metadata string, so `zsesbir eval` evaluates them with the C metric code.

Known differences from the C run: photos are decoded by Pillow's libjpeg instead of
stb_image (up to 3/255 per pixel, mean ~0.1/255); the dropout masks come from
torch's RNG (torch.manual_seed(--seed)), not the C library's counter-based stream.

Usage:
  train_ref.py --init W0 --plan PLAN --out W [--lr 3e-4] [--wd 1e-2] [--seed 1]
               [--threads 2] [--log-every 50] [--steps N] [--losses FILE]
  train_ref.py --set-dropout P --init W0 --out W   copy W0 with the config's dropout
                                                   set to P (for dropout-free checks)
The last line printed is a JSON summary (wall times, losses, peak RSS).
"""
import argparse
import json
import os
import resource
import sys
import time

T_START = time.perf_counter()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import preprocess_ref as pp  # noqa: E402
import zsesbir_ref as zr  # noqa: E402

# "zsesbir.config" keys (zs_zse_config_format) -> zsesbir_ref config keys
CFG_KEYS = {"img_size": "img", "patch": "patch", "dim": "d", "depth": "depth", "heads": "heads",
            "mlp_dim": "mlp", "ca_layers": "ca_layers", "ca_heads": "ca_heads", "ca_ffn": "ca_ffn",
            "anchor_ch": "anchor_ch", "dropout": "dropout"}


def parse_config(text):
    """'img_size=112 patch=16 ... dropout=0.1' -> zsesbir_ref config dict (derived)."""
    kv = dict(item.split("=", 1) for item in text.split())
    cfg = dict(zr.CONFIGS["tiny"])          # the fixed parts: eps, margin, loss weights
    for k, v in kv.items():
        if k in CFG_KEYS:
            cfg[CFG_KEYS[k]] = float(v) if k == "dropout" else int(v)
        elif k == "scale_ch":
            cfg["scale_ch"] = [int(x) for x in v.split(",")]
        elif k == "keep_rate":
            if any(float(x) != 1.0 for x in v.split(",")):
                raise SystemExit("EViT keep rates < 1 are not supported by the reference")
        else:
            raise SystemExit(f"unknown config key {k!r} in zsesbir.config")
    missing = [k for k in list(CFG_KEYS) + ["scale_ch"] if k not in kv]
    if missing:
        raise SystemExit(f"zsesbir.config lacks {missing}")
    return zr.derive(cfg)


def read_weights(path):
    tensors, meta = zr.read_safetensors(path)
    if "zsesbir.config" not in meta:
        raise SystemExit(f"{path}: no zsesbir.config metadata")
    return tensors, meta


class ImageCache:
    """uint8 [S,S,3] pre-processed images by path (the C trainer's imcache)."""

    def __init__(self, size):
        self.size = size
        self.img = {}
        self.seconds = 0.0       # time spent decoding + pre-processing

    def get(self, path, is_sketch):
        u8 = self.img.get(path)
        if u8 is None:
            t0 = time.perf_counter()
            im = Image.open(path).convert("RGB")
            if is_sketch:
                u8, _ = pp.sketch_prepare(np.asarray(im), self.size)
            else:
                u8 = np.asarray(im.resize((self.size, self.size)))   # PIL default: bicubic
            self.img[path] = u8
            self.seconds += time.perf_counter() - t0
        return u8


def batch_tensor(cache, paths, B):
    """4B paths [s+, s-, p+, p-] -> float32 [4B, 3, S, S] in [-1, 1]."""
    u8 = np.stack([cache.get(p, i < 2 * B) for i, p in enumerate(paths)])   # [4B, S, S, 3]
    x = u8.astype(np.float32) / np.float32(255)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return zr.torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def cmd_set_dropout(args):
    tensors, meta = read_weights(args.init)
    kv = [item.split("=", 1) for item in meta["zsesbir.config"].split()]
    meta = dict(meta)
    meta["zsesbir.config"] = " ".join(f"{k}={args.set_dropout if k == 'dropout' else v}" for k, v in kv)
    zr.write_safetensors(args.out, [(k, zr.torch.from_numpy(np.array(v))) for k, v in tensors.items()], meta)
    print(f"wrote {args.out}: {meta['zsesbir.config']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", required=True, help="initial weights (safetensors + zsesbir.config)")
    ap.add_argument("--plan", help="plan file of `zsesbir train --plan`")
    ap.add_argument("--out", required=True, help="trained weights (safetensors)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--wd", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=1, help="torch seed (dropout masks)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--steps", type=int, help="train on the first N plan lines (default all)")
    ap.add_argument("--losses", help="write every step's total, triplet, rn loss here (TSV)")
    ap.add_argument("--set-dropout", type=float, help="only rewrite --init's config dropout into --out")
    args = ap.parse_args()

    zr.import_torch()
    torch = zr.torch
    if args.set_dropout is not None:
        cmd_set_dropout(args)
        return
    if not args.plan:
        ap.error("--plan is required")
    torch.set_num_threads(args.threads)

    tensors, meta = read_weights(args.init)
    cfg = parse_config(meta["zsesbir.config"])
    cfg.update(lr=args.lr, weight_decay=args.wd, betas=[0.9, 0.999], adam_eps=1e-8)
    model = zr.make_model(cfg)
    sd = model.state_dict()
    if set(sd) != set(tensors):
        raise SystemExit(f"weights do not match the model: missing {sorted(set(sd) - set(tensors))[:5]}, "
                         f"unexpected {sorted(set(tensors) - set(sd))[:5]}")
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    del tensors
    torch.manual_seed(args.seed)
    model.train()
    opt = zr.make_optimizer(model)

    with open(args.plan) as f:
        plan = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if args.steps is not None:
        if args.steps > len(plan):
            raise SystemExit(f"--steps {args.steps} but the plan has {len(plan)} lines")
        plan = plan[:args.steps]
    n4 = len(plan[0])
    if n4 % 4 or any(len(p) != n4 for p in plan):
        raise SystemExit("plan lines must all hold 4B paths")
    B = n4 // 4
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters ({meta['zsesbir.config']})")
    print(f"plan: {len(plan)} steps, batch {B}; lr {args.lr} wd {args.wd} seed {args.seed} "
          f"threads {args.threads} (torch {torch.__version__})")
    sys.stdout.flush()

    cache = ImageCache(cfg["img"])
    losses = []
    t_train = 0.0                 # forward + backward + AdamW only
    t_loop0 = time.perf_counter()  # loop incl. image loading, like the C trainer's timer
    for step, paths in enumerate(plan):
        x = batch_tensor(cache, paths, B)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        r = zr.train_forward(model, x)
        r["total"].backward()
        opt.step()
        t_train += time.perf_counter() - t0
        L = (r["total"].item(), r["tri"].item(), r["rnl"].item())
        losses.append(L)
        if (step + 1) % args.log_every == 0 or step + 1 == len(plan):
            el = time.perf_counter() - t_loop0
            print(f"step {step + 1}/{len(plan)}  loss {L[0]:.6f} (triplet {L[1]:.6f}, rn {L[2]:.6f})  "
                  f"{el / (step + 1):.2f} s/step", flush=True)
    t_loop = time.perf_counter() - t_loop0

    items = [(k, v) for k, v in model.state_dict().items()]
    zr.write_safetensors(args.out, items, {"zsesbir.config": meta["zsesbir.config"], "format": "pt"})
    if args.losses:
        with open(args.losses, "w") as f:
            f.write("step\ttotal\ttriplet\trn\n")
            for i, L in enumerate(losses):
                f.write(f"{i + 1}\t{L[0]:.9g}\t{L[1]:.9g}\t{L[2]:.9g}\n")
    tail = losses[-50:]
    summary = {
        "steps": len(plan), "batch": B, "images_preprocessed": len(cache.img),
        "wall_s": round(time.perf_counter() - T_START, 3),   # process start (after interpreter) to here
        "loop_s": round(t_loop, 3), "train_s": round(t_train, 3),
        "preprocess_s": round(cache.seconds, 3),
        "mean_loss_last50": round(sum(L[0] for L in tail) / len(tail), 6),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    print(f"wrote {args.out} after {len(plan)} steps, {t_loop:.1f} s "
          f"(train {t_train:.1f} s, pre-processing {cache.seconds:.1f} s)")
    print("summary " + json.dumps(summary))


if __name__ == "__main__":
    main()
