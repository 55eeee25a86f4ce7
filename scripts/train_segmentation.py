#!/usr/bin/env python
"""Train surgtwin's CT multi-organ segmentation model and write it as a MONAI bundle.

Seeded and reproducible: with ``--max-steps N`` the run is deterministic on the same machine and
library versions (same data order, augmentation and schedule). ``--max-minutes`` (the default mode)
makes the learning-rate schedule follow the wall clock so that the run ends on time on a shared
machine; it is seeded too, but its step count and schedule depend on the machine's speed, so the
log records every step's learning rate and the step count.

Data: phantoms from ``surgtwin.core.phantom.generate_case`` (all kinds that exist) and the real
labelled CT of TotalSegmentator 2.18.0's sdist (slices 70-87 held out, see scripts/seg_data.py).
Augmentation: rotations, isotropic + anisotropic scaling (spacing), random crops centred on
structures, HU scale/offset, contrast level of the blood pool and organs, noise, thick-slice blur.

    .venv/bin/python scripts/train_segmentation.py --max-minutes 40
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import seg_data  # noqa: E402

BUNDLE_NAME = "surgtwin_ct_multiorgan"
HU_WINDOW = (-1000.0, 1500.0)
VALUE_RANGE = (-1.0, 1.0)
NET = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "channels": [16, 32, 64, 128, 256],
       "strides": [2, 2, 2, 2], "num_res_units": 0, "norm": "instance"}
KINDS = ("abdomen-pelvis", "cardiac-cta", "head")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "assets" / "models" / BUNDLE_NAME))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phantoms-per-kind", type=int, default=6)
    p.add_argument("--phantom-seed-base", type=int, default=1000, help="training phantoms use seeds base..base+n-1")
    p.add_argument("--val-phantom-seed", type=int, default=500, help="one validation phantom per kind")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--real-fraction", type=float, default=0.35, help="share of samples from real CT")
    p.add_argument("--max-steps", type=int, default=0,
                   help="train exactly this many steps (deterministic); 0: wall-clock mode, see --max-minutes")
    p.add_argument("--max-minutes", type=float, default=40.0,
                   help="wall-clock mode: total budget; the cosine schedule follows elapsed time, so the run "
                        "stops on time even on a loaded machine (the step count is logged)")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest on 2 shared cores: 1.6 s/step vs 4.6 s with 2)")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--init", help="start from these weights (a model.pt state dict) instead of random")
    p.add_argument("--stage", default="stage1", help="name of this run's log files in the bundle's docs/")
    return p.parse_args(argv)


# -- augmentation ------------------------------------------------------------------------------------
def rot_matrix(rng, max_deg):
    a = np.radians(rng.uniform(-max_deg, max_deg, 3))
    cx, sx, cy, sy, cz, sz = np.cos(a[0]), np.sin(a[0]), np.cos(a[1]), np.sin(a[1]), np.cos(a[2]), np.sin(a[2])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class Sampler:
    def __init__(self, samples, weights, patch, rng, blood_ch, organ_ch):
        import torch

        self.samples = samples
        self.w = np.asarray(weights, float) / np.sum(weights)
        self.patch = patch
        self.rng = rng
        self.blood = blood_ch
        self.organs = organ_ch
        self.t_hu = [torch.from_numpy(s.hu + 1024.0)[None, None] for s in samples]
        self.t_ch = [torch.from_numpy(s.ch.astype(np.float32))[None, None] for s in samples]
        self.where = []
        for s in samples:
            d = {}
            for c in np.unique(s.ch):
                if c == 0:
                    continue
                idx = np.argwhere(s.ch == c)
                if len(idx) > 3000:
                    idx = idx[rng.choice(len(idx), 3000, replace=False)]
                d[int(c)] = idx
            self.where.append(d)

    def one(self):
        import torch
        from scipy import ndimage

        rng = self.rng
        i = int(rng.choice(len(self.samples), p=self.w))
        s = self.samples[i]
        shape = np.asarray(s.hu.shape)
        if rng.random() < 0.8 and self.where[i]:
            c = int(rng.choice(list(self.where[i])))
            pts = self.where[i][c]
            centre = pts[rng.integers(len(pts))] + rng.normal(0, 6, 3)
        else:
            centre = rng.uniform(0, shape - 1)
        r = rot_matrix(rng, 12.0)
        scale = rng.uniform(0.85, 1.2) * rng.uniform(0.95, 1.05, 3)
        a = r @ np.diag(scale)
        p = self.patch
        u = (np.stack(np.meshgrid(*(np.arange(p),) * 3, indexing="ij"), -1).reshape(-1, 3) - (p - 1) / 2.0)
        q = u @ a.T + centre
        g = (q * (2.0 / np.maximum(shape - 1, 1)) - 1.0)[:, ::-1].astype(np.float32)
        gt = torch.from_numpy(np.ascontiguousarray(g)).view(1, p, p, p, 3)
        hu = torch.nn.functional.grid_sample(self.t_hu[i], gt, mode="bilinear", padding_mode="zeros",
                                             align_corners=True)[0, 0].numpy() - 1024.0
        ch = torch.nn.functional.grid_sample(self.t_ch[i], gt, mode="nearest", padding_mode="zeros",
                                             align_corners=True)[0, 0].numpy().astype(np.int64)
        # contrast level: blood pool to a random enhancement, organs shifted
        if rng.random() < 0.6:
            m = np.isin(ch, self.blood)
            if m.any():
                target = rng.uniform(25, 500)
                hu[m] += target - float(np.median(hu[m]))
        if rng.random() < 0.4:
            for c in self.organs:
                m = ch == c
                if m.any():
                    hu[m] += rng.uniform(-30, 60)
        # HU scale / offset
        hu = hu * rng.uniform(0.92, 1.08) + rng.uniform(-25, 25)
        # thick slices / soft kernels (along the S axis = array axis 2 in RAS)
        if rng.random() < 0.3:
            sig = (rng.uniform(0, 0.7), rng.uniform(0, 0.7), rng.uniform(0.3, 1.5))
            hu = ndimage.gaussian_filter(hu, sig)
        # noise
        if rng.random() < 0.7:
            hu = hu + rng.normal(0, rng.uniform(3, 35), hu.shape)
        return hu.astype(np.float32), ch

    def batch(self, n):
        import torch

        from surgtwin.core.segmentation.inference import normalise

        xs, ys = zip(*(self.one() for _ in range(n)), strict=True)
        x = normalise(np.stack(xs), HU_WINDOW, VALUE_RANGE)
        return torch.from_numpy(x[:, None]), torch.from_numpy(np.stack(ys)[:, None])


# -- evaluation -------------------------------------------------------------------------------------
def dice_per_class(pred, truth, n_classes):
    out = {}
    for c in range(1, n_classes):
        p, t = pred == c, truth == c
        st = int(t.sum())
        if st == 0:
            continue
        out[c] = float(2.0 * np.logical_and(p, t).sum() / (p.sum() + st))
    return out


def evaluate(net, samples, roi, names, region=None):
    import torch
    from monai.inferers import sliding_window_inference

    from surgtwin.core.segmentation.inference import normalise

    res = {}
    net.eval()
    pad = float(normalise(np.array([-1024.0]), HU_WINDOW, VALUE_RANGE)[0])
    for s in samples:
        x = torch.from_numpy(normalise(s.hu, HU_WINDOW, VALUE_RANGE))[None, None]
        with torch.inference_mode():
            y = sliding_window_inference(x, roi, 4, net, overlap=0.25, mode="gaussian", cval=pad)
        pred = y[0].argmax(0).numpy()
        truth = s.ch
        if s.extra.get("mask") is not None:
            m = s.extra["mask"]
            pred, truth = pred[m], truth[m]
        res[s.name] = {names[c]: round(d, 4) for c, d in dice_per_class(pred, truth, len(names)).items()}
    net.train()
    return res


def main(argv=None):
    args = parse(argv)
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    from surgtwin.core.segmentation import classes as C

    t_start = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    names = list(C.CLASS_NAMES)
    n_classes = len(names)
    data = seg_data.fetch_public_data()
    log = {"args": vars(args), "argv": sys.argv[1:], "data": [], "validation": [], "curve": []}

    print("preparing data", flush=True)
    real = seg_data.real_training_samples(data)
    samples, weights = [], []
    for s in real:
        samples.append(s)
        log["data"].append({"name": s.name, "source": s.source, "role": "train", "shape": list(s.hu.shape)})
    phantoms = []
    kinds = [k for k in args.kinds.split(",") if k]
    for kind in kinds:
        for n in range(args.phantoms_per_kind):
            seed = args.phantom_seed_base + n
            t0 = time.time()
            try:
                s = seg_data.phantom_sample(kind, seed, *seg_data.phantom_spacing(seed))
            except Exception as exc:  # a kind the generator does not have yet
                print(f"  phantom {kind} seed {seed}: skipped ({type(exc).__name__}: {exc})", flush=True)
                break
            phantoms.append(s)
            log["data"].append({"name": s.name, "source": s.source, "role": "train", "shape": list(s.hu.shape)})
            print(f"  {s.name}: {s.hu.shape} in {time.time() - t0:.1f} s", flush=True)
    n_real = sum(s.ch.size for s in real)
    for s in real:
        weights.append(args.real_fraction * s.ch.size / n_real if phantoms else 1.0)
    for s in phantoms:
        samples.append(s)
        weights.append((1.0 - args.real_fraction) / len(phantoms))

    # validation: one phantom per kind (seed never used for training or benchmark) + real hold-out
    val = []
    for kind in kinds:
        try:
            s = seg_data.phantom_sample(kind, args.val_phantom_seed)
        except Exception:
            continue
        val.append(s)
        log["data"].append({"name": s.name, "source": s.source, "role": "validation", "shape": list(s.hu.shape)})
    ct, ch = seg_data.totalseg_volumes(data)
    hu, c, grid = seg_data.to_model_grid(ct, ch)
    # hold-out voxels of the model grid: their source slice index k is within HOLDOUT_K
    kk = np.indices(hu.shape).reshape(3, -1).T
    k_src = (np.c_[kk, np.ones(len(kk))] @ (np.linalg.inv(ct.affine) @ grid.affine).T)[:, 0].reshape(hu.shape)
    mask = (k_src >= seg_data.HOLDOUT_K[0]) & (k_src <= seg_data.HOLDOUT_K[1] - 1)
    val.append(seg_data.Sample("totalseg_example_ct_holdout", f"example_ct.nii.gz slices {seg_data.HOLDOUT_K[0]}-"
                               f"{seg_data.HOLDOUT_K[1] - 1} (Dice on those voxels; whole scan as input)", hu, c,
                               grid, extra={"mask": mask}))
    log["data"].append({"name": val[-1].name, "source": val[-1].source, "role": "validation (real hold-out)"})

    blood = [C.channel_of(n) for n in C.BLOOD]
    organs = [C.channel_of(n) for n in ("liver", "spleen", "kidney_left", "kidney_right")]
    sampler = Sampler(samples, weights, args.patch, rng, blood, organs)
    net = UNet(**{k: v for k, v in NET.items() if k != "_target_"}, out_channels=n_classes)
    if args.init:
        net.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
        print(f"initialised from {args.init}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-5)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    roi = (args.patch,) * 3
    prep_s = time.time() - t_start
    print(f"data ready in {prep_s:.0f} s: {len(real)} real, {len(phantoms)} phantom training volumes, "
          f"{len(val)} validation", flush=True)

    max_steps = args.max_steps
    budget_s = args.max_minutes * 60.0
    timed = max_steps == 0  # wall-clock mode: the schedule follows elapsed time and the run stops on time
    step = 0
    t_train = time.time()
    train_budget = max(60.0, budget_s - (t_train - t_start))
    losses = []
    while True:
        elapsed = time.time() - t_train
        if timed:
            progress = elapsed / train_budget
            if progress >= 1.0:
                break
        else:
            if step >= max_steps:
                break
            progress = step / max_steps
        warm = 30 if not args.init else 10
        lr = args.lr * (step + 1) / warm if step < warm else \
            1e-5 + 0.5 * (args.lr - 1e-5) * (1 + math.cos(math.pi * min(1.0, progress)))
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        x, y = sampler.batch(args.batch)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 10 == 0:
            log["curve"].append({"step": step, "loss": round(float(np.mean(losses[-10:])), 4), "lr": lr,
                                 "elapsed_s": round(time.time() - t_start, 1)})
            print(f"step {step} ({progress:.0%}) loss {np.mean(losses[-10:]):.4f} lr {lr:.2e} "
                  f"{time.time() - t_start:.0f} s", flush=True)
        if step % args.val_every == 0:
            v = evaluate(net, val, roi, names)
            mean = {k: round(float(np.mean(list(d.values()))), 4) if d else None for k, d in v.items()}
            log["validation"].append({"step": step, "mean_dice": mean, "dice": v,
                                      "elapsed_s": round(time.time() - t_start, 1)})
            print(f"  validation @ {step}: {mean}", flush=True)
            write_bundle(args, net, names, log, final=False)
    v = evaluate(net, val, roi, names)
    log["validation"].append({"step": step, "mean_dice": {k: round(float(np.mean(list(d.values()))), 4) if d else None
                                                          for k, d in v.items()}, "dice": v,
                              "elapsed_s": round(time.time() - t_start, 1)})
    print(f"  final validation @ {step}: {log['validation'][-1]['mean_dice']}", flush=True)
    log["train_seconds"] = round(time.time() - t_train, 1)
    log["total_seconds"] = round(time.time() - t_start, 1)
    log["steps"] = step
    write_bundle(args, net, names, log, final=True)
    print(f"done: {step} steps in {log['total_seconds']:.0f} s -> {args.out}", flush=True)


def write_bundle(args, net, names, log, *, final):
    import hashlib

    import monai
    import torch

    from surgtwin.core.segmentation import classes as C

    out = Path(args.out)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "docs").mkdir(parents=True, exist_ok=True)
    wpath = out / "models" / "model.pt"
    tmp = wpath.with_suffix(".tmp")
    torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, tmp)
    tmp.replace(wpath)
    digest = hashlib.sha256(wpath.read_bytes()).hexdigest()
    n = len(names)
    netdef = dict(NET, out_channels=n)
    meta = {
        "name": BUNDLE_NAME,
        "version": "0.1.0",
        "changelog": {"0.1.0": "first model: phantoms + TotalSegmentator example CT, CPU-trained"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "optional_packages_version": {},
        "task": "Multi-structure segmentation of CT (abdomen, pelvis, thorax/heart, head) for surgical planning",
        "description": "A 3D UNet (MONAI) trained on CPU on synthetic surgtwin phantoms and one real labelled CT; "
                       "segments 30 structures at 3 mm. See docs/README.md.",
        "authors": "surgtwin developers",
        "copyright": "Copyright (c) surgtwin developers",
        "intended_use": "Research and education in surgical planning software. NOT FOR CLINICAL USE: not a "
                        "medical device, not validated on patients.",
        "data_source": "surgtwin phantom generator; TotalSegmentator 2.18.0 sdist example_ct (see docs/README.md)",
        "data_type": "nifti / dicom",
        "image_classes": "single channel CT in HU, clipped to [-1000, 1500] and scaled to [-1, 1]",
        "pred_classes": f"{n} channels, argmax gives the structure (channel_def)",
        "eval_metrics": {},
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1,
                                 "spatial_shape": ["16*n", "16*n", "16*n"], "dtype": "float32",
                                 "value_range": list(HU_WINDOW), "is_patch_data": True,
                                 "channel_def": {"0": "image"}}},
            "outputs": {"pred": {"type": "image", "format": "labels", "num_channels": n,
                                 "spatial_shape": ["16*n", "16*n", "16*n"], "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": True, "channel_def": {str(i): nm for i, nm in enumerate(names)}}},
        },
        "surgtwin": {
            "spacing_mm": list(seg_data.SPACING_MM),
            "axcodes": seg_data.AXCODES,
            "hu_window": list(HU_WINDOW),
            "value_range": list(VALUE_RANGE),
            "roi_size": [64, 64, 64],
            "labels": C.label_entries(),
            "postprocess": {"single_component": list(C.SINGLE_COMPONENT), "fill_holes": list(C.FILL_HOLES)},
            "weights_sha256": digest,
            "training_steps": len(log["curve"]) * 10,
        },
    }
    if log["validation"]:
        meta["eval_metrics"] = {"validation_mean_dice": log["validation"][-1]["mean_dice"]}
    inference = {
        "network_def": netdef,
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": seg_data.AXCODES},
            {"_target_": "Spacingd", "keys": "image", "pixdim": list(seg_data.SPACING_MM), "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": HU_WINDOW[0], "a_max": HU_WINDOW[1],
             "b_min": VALUE_RANGE[0], "b_max": VALUE_RANGE[1], "clip": True},
        ]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [64, 64, 64], "sw_batch_size": 4,
                    "overlap": 0.25, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}]},
        "note": "surgtwin reads network_def and the literal preprocessing values; it evaluates nothing.",
    }
    (out / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "configs" / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
    (out / "docs" / f"training_{args.stage}.json").write_text(json.dumps(log, indent=1) + "\n")
    write_training_md(out, log, final, args.stage)


def write_training_md(out, log, final, stage):
    lines = [f"# Training record: {stage}", "", f"Status: {'finished' if final else 'in progress'}.", ""]
    steps = log.get("steps") or (log["curve"][-1]["step"] if log["curve"] else 0)
    a = log["args"]
    cmd = (f".venv/bin/python scripts/train_segmentation.py --seed {a['seed']} --max-steps {steps} "
           f"--phantoms-per-kind {a['phantoms_per_kind']} --patch {a['patch']} --batch {a['batch']} "
           f"--lr {a['lr']} --kinds {a['kinds']} --threads {a['threads']} --real-fraction {a['real_fraction']} "
           f"--stage {stage}" + (f" --init {a['init']}" if a.get("init") else ""))
    lines += ["Command as run: `" + " ".join(["scripts/train_segmentation.py", *log["argv"]]) + "`", "",
              f"Rerun with the same step count, deterministic (step-based cosine schedule; this run's schedule "
              f"followed the wall clock{'' if a['max_steps'] == 0 else ' — no: this run was step-based, the rerun is exact'}): `{cmd}`", "",
              f"Machine: {platform.processor() or platform.machine()}, {a['threads']} torch threads, CPU only.", ""]
    if final:
        lines += [f"Steps: {log['steps']}; training {log['train_seconds']:.0f} s; total {log['total_seconds']:.0f} s.", ""]
    lines += ["## Data", "", "| name | role | source |", "|---|---|---|"]
    for d in log["data"]:
        lines.append(f"| {d['name']} | {d['role']} | {d['source']} |")
    lines += ["", "## Curve (mean of 10 steps)", "", "| step | loss | lr | elapsed s |", "|---|---|---|---|"]
    curve = log["curve"]
    stride = max(1, len(curve) // 40)
    for r in curve[::stride] + ([curve[-1]] if curve and curve[-1] not in curve[::stride] else []):
        lines.append(f"| {r['step']} | {r['loss']:.4f} | {r['lr']:.2e} | {r['elapsed_s']:.0f} |")
    lines += ["", "## Validation (mean Dice over the structures present)", "",
              "| step | " + " | ".join(log["validation"][0]["mean_dice"]) + " |" if log["validation"] else ""]
    if log["validation"]:
        lines.append("|---" * (1 + len(log["validation"][0]["mean_dice"])) + "|")
        for v in log["validation"]:
            lines.append(f"| {v['step']} | " + " | ".join(str(x) for x in v["mean_dice"].values()) + " |")
        lines += ["", "Last validation, per structure:", ""]
        for name, d in log["validation"][-1]["dice"].items():
            lines.append(f"- {name}: " + ", ".join(f"{k} {x:.3f}" for k, x in d.items()))
    (out / "docs" / f"training_{stage}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
