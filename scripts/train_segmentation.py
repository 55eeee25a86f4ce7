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

from surgtwin.resources import bundled_model_dir  # noqa: E402

BUNDLE_NAME = "surgtwin_ct_multiorgan"
HU_WINDOW = (-1000.0, 1500.0)
VALUE_RANGE = (-1.0, 1.0)
NET = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "channels": [16, 32, 64, 128, 256],
       "strides": [2, 2, 2, 2], "num_res_units": 0, "norm": "instance"}
KINDS = ("abdomen-pelvis", "cardiac-cta", "head")
#: median HU drawn per patch: (native low, native high, enhanced low, enhanced high); real non-contrast CT
#: (TotalSegmentator's example: liver 46, spleen 35, kidneys 17) must be inside the native range
ORGAN_HU = {"liver": (40, 70, 80, 170), "spleen": (30, 55, 90, 200), "kidney_left": (12, 40, 120, 280),
            "kidney_right": (12, 40, 120, 280)}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(bundled_model_dir() / BUNDLE_NAME))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phantoms-per-kind", type=int, default=6)
    p.add_argument("--phantom-seed-base", type=int, default=1000, help="training phantoms use seeds base..base+n-1")
    p.add_argument("--val-phantom-seed", type=int, default=500, help="one validation phantom per kind")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--real-fraction", type=float, default=0.35, help="share of samples from real CT")
    p.add_argument("--synth-fraction", type=float, default=0.0,
                   help="share of patches whose CT is re-synthesised from the labels (SynthSeg-style: random "
                        "intensity per structure, bias field, blur, noise; seg_data.synth_ct); 0 = off")
    p.add_argument("--max-steps", type=int, default=0,
                   help="train exactly this many steps (deterministic); 0: wall-clock mode, see --max-minutes")
    p.add_argument("--max-minutes", type=float, default=40.0,
                   help="wall-clock mode: total budget; the cosine schedule follows elapsed time, so the run "
                        "stops on time even on a loaded machine (the step count is logged)")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda")
    p.add_argument("--workers", type=int, default=1, help="processes that generate the phantoms")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads on CPU (a step of 2 patches: 1.2 s with 2 threads, 2.0 s with 1 on an idle "
                        "2-core machine; 1 was faster while other jobs shared the cores)")
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


def gaussian_kernel(sigma: float):
    import torch

    r = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur3d(x, sigmas):
    """Separable Gaussian blur of a (1, 1, D, H, W) tensor; sigma per array axis in voxels (0 = none)."""
    import torch.nn.functional as F

    for axis, sig in enumerate(sigmas):
        if sig < 0.05:
            continue
        k = gaussian_kernel(float(sig)).to(x.device, x.dtype)
        r = (len(k) - 1) // 2
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(k)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r
        x = F.conv3d(F.pad(x, pad, mode="replicate"), k.view(shape))
    return x


class Sampler:
    """Random augmented training patches, made with torch on the training device (the GPU when there is one).

    Per patch: a volume (weighted), a centre (80 % inside a random structure), rotation up to 12 degrees,
    isotropic x anisotropic scale (0.85-1.2 x 0.95-1.05: spacing), trilinear HU / nearest labels; then
    contrast phase (native or enhanced levels of the blood pool, liver, spleen, kidneys: ORGAN_HU), HU
    scale/offset, thick-slice / soft-kernel blur, noise. All random numbers come from one NumPy generator and one torch generator,
    both seeded.
    """

    def __init__(self, samples, weights, patch, seed, device, blood_ch, organ_ch, synth_fraction=0.0):
        import torch

        self.synth_fraction = float(synth_fraction)
        self.samples = samples
        self.w = np.asarray(weights, float) / np.sum(weights)
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        self.dev = torch.device(device)
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(seed)
        self.blood = torch.tensor(blood_ch, device=self.dev)
        self.organs = list(organ_ch)
        # HU + 1024 so that zero padding outside the scan reads as air
        self.t_hu = [torch.from_numpy(s.hu + 1024.0).to(self.dev)[None, None] for s in samples]
        self.t_ch = [torch.from_numpy(s.ch.astype(np.float32)).to(self.dev)[None, None] for s in samples]
        self.shape = [np.asarray(s.hu.shape, float) for s in samples]
        self.where = []
        for s in samples:
            d = {}
            for c in np.unique(s.ch):
                if c == 0:
                    continue
                idx = np.argwhere(s.ch == c)
                if len(idx) > 3000:
                    idx = idx[self.rng.choice(len(idx), 3000, replace=False)]
                d[int(c)] = idx
            self.where.append(d)
        u = np.stack(np.meshgrid(*(np.arange(patch),) * 3, indexing="ij"), -1).reshape(-1, 3) - (patch - 1) / 2.0
        self.u = torch.from_numpy(u.astype(np.float32)).to(self.dev)

    def one(self):
        import torch
        import torch.nn.functional as F

        rng = self.rng
        i = int(rng.choice(len(self.samples), p=self.w))
        shape = self.shape[i]
        if rng.random() < 0.8 and self.where[i]:
            c = int(rng.choice(list(self.where[i])))
            pts = self.where[i][c]
            centre = pts[rng.integers(len(pts))] + rng.normal(0, 6, 3)
        else:
            centre = rng.uniform(0, shape - 1)
        r = rot_matrix(rng, 12.0)
        scale = rng.uniform(0.85, 1.2) * rng.uniform(0.95, 1.05, 3)
        a = r @ np.diag(scale)
        # sampling grid in grid_sample's normalised (x=W, y=H, z=D) order
        m = (a * (2.0 / np.maximum(shape - 1, 1))[:, None]).T  # row vector u @ m
        t = centre * (2.0 / np.maximum(shape - 1, 1)) - 1.0
        mt = torch.from_numpy(m.astype(np.float32)).to(self.dev)
        tt = torch.from_numpy(t.astype(np.float32)).to(self.dev)
        g = (self.u @ mt + tt).flip(-1).view(1, self.patch, self.patch, self.patch, 3)
        hu = F.grid_sample(self.t_hu[i], g, mode="bilinear", padding_mode="zeros", align_corners=True) - 1024.0
        ch = F.grid_sample(self.t_ch[i], g, mode="nearest", padding_mode="zeros", align_corners=True)
        # contrast phase: blood pool and enhancing organs moved to levels of a native (non-contrast) or an
        # enhanced scan; each structure keeps its own texture, only its median moves
        if rng.random() < 0.75:
            native = rng.random() < 0.4
            targets = [rng.uniform(*(lv[:2] if native else lv[2:])) for lv in ORGAN_HU.values()]
            blood_target = rng.uniform(30, 60) if native else rng.uniform(80, 500)
            mb = torch.isin(ch, self.blood)
            if bool(mb.any()):
                hu = torch.where(mb, hu + (blood_target - hu[mb].median()), hu)
            for c, target in zip(self.organs, targets, strict=True):
                m = ch == c
                if bool(m.any()):
                    hu = torch.where(m, hu + (target - hu[m].median()), hu)
        hu = hu * float(rng.uniform(0.92, 1.08)) + float(rng.uniform(-25, 25))
        # thick slices / soft kernels (the S axis is array axis 2 on the RAS model grid)
        if rng.random() < 0.3:
            hu = blur3d(hu, (rng.uniform(0, 0.7), rng.uniform(0, 0.7), rng.uniform(0.3, 1.5)))
        if rng.random() < 0.7:
            sd = float(rng.uniform(3, 35))
            hu = hu + sd * torch.randn(hu.shape, generator=self.gen, device=self.dev)
        if self.synth_fraction > 0 and rng.random() < self.synth_fraction:
            # SynthSeg-style: the CT of this patch re-synthesised from its labels (anatomy, not texture)
            hu = torch.from_numpy(seg_data.synth_ct(ch[0, 0].cpu().numpy().astype(np.uint8), rng)).to(self.dev)[None, None]
        return hu, ch.long()

    def batch(self, n):
        import torch

        xs, ys = zip(*(self.one() for _ in range(n)), strict=True)
        x = torch.cat(xs)
        a0, a1 = HU_WINDOW
        b0, b1 = VALUE_RANGE
        x = (x.clamp(a0, a1) - a0) * ((b1 - b0) / (a1 - a0)) + b0
        return x, torch.cat(ys)


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


def evaluate(net, samples, roi, names, device="cpu"):
    import torch
    from monai.inferers import sliding_window_inference

    from surgtwin.core.segmentation.inference import normalise

    res = {}
    net.eval()
    pad = float(normalise(np.array([-1024.0]), HU_WINDOW, VALUE_RANGE)[0])
    cuda = torch.device(device).type == "cuda"
    for s in samples:
        x = torch.from_numpy(normalise(s.hu, HU_WINDOW, VALUE_RANGE))[None, None].to(device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            y = sliding_window_inference(x, roi, 16 if cuda else 4, lambda t: net(t).float(), overlap=0.25,
                                         mode="gaussian", cval=pad)
        pred = y[0].float().argmax(0).cpu().numpy()
        truth = s.ch
        if s.extra.get("mask") is not None:
            m = s.extra["mask"]
            pred, truth = pred[m], truth[m]
        res[s.name] = {names[c]: round(d, 4) for c, d in dice_per_class(pred, truth, len(names)).items()}
    net.train()
    return res


def _phantom_job(job):
    kind, seed, spacing = job
    t0 = time.time()
    try:
        s = seg_data.phantom_sample(kind, seed, *spacing) if spacing else seg_data.phantom_sample(kind, seed)
    except Exception as exc:  # a kind the generator does not have
        return job, None, f"{type(exc).__name__}: {exc}", time.time() - t0
    return job, s, None, time.time() - t0


def make_phantoms(jobs, workers):
    """Phantom samples for (kind, seed, spacing) jobs, in this order; several processes when asked."""
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
            results = list(ex.map(_phantom_job, jobs))
    else:
        results = [_phantom_job(j) for j in jobs]
    out = []
    for (kind, seed, _sp), s, err, dt in results:
        if err:
            print(f"  phantom {kind} seed {seed}: skipped ({err})", flush=True)
            continue
        print(f"  {s.name}: {s.hu.shape} in {dt:.1f} s", flush=True)
        out.append(s)
    return out


def device_name(device) -> str:
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()})"


def main(argv=None):
    args = parse(argv)
    t_start = time.time()
    kinds = [k for k in args.kinds.split(",") if k]
    log = {"args": vars(args), "argv": sys.argv[1:] if argv is None else list(argv), "data": [], "validation": [],
           "curve": []}

    # data first (forked workers must not inherit an initialised CUDA context)
    print("preparing data", flush=True)
    real, holdout = seg_data.real_pack()
    jobs = [(k, args.phantom_seed_base + n, seg_data.phantom_spacing(args.phantom_seed_base + n))
            for k in kinds for n in range(args.phantoms_per_kind)]
    jobs += [(k, args.val_phantom_seed, None) for k in kinds]
    made = make_phantoms(jobs, args.workers)
    val_names = {f"phantom_{k}_seed{args.val_phantom_seed}" for k in kinds}
    phantoms = [s for s in made if s.name not in val_names]
    val = [s for s in made if s.name in val_names] + [holdout]
    samples, weights = [], []
    n_real = sum(s.ch.size for s in real)
    for s in real:
        samples.append(s)
        weights.append(args.real_fraction * s.ch.size / n_real if phantoms else 1.0)
        log["data"].append({"name": s.name, "source": s.source, "role": "train", "shape": list(s.hu.shape)})
    for s in phantoms:
        samples.append(s)
        weights.append((1.0 - args.real_fraction) / len(phantoms))
        log["data"].append({"name": s.name, "source": s.source, "role": "train", "shape": list(s.hu.shape)})
    for s in val:
        role = "validation (real hold-out)" if s is holdout else "validation"
        log["data"].append({"name": s.name, "source": s.source, "role": role, "shape": list(s.hu.shape)})

    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    from surgtwin.core.segmentation import classes as C

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = torch.device(device).type == "cuda"
    torch.manual_seed(args.seed)
    if not cuda:
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True
    names = list(C.CLASS_NAMES)
    n_classes = len(names)
    blood = [C.channel_of(n) for n in C.BLOOD]
    organs = [C.channel_of(n) for n in ORGAN_HU]
    sampler = Sampler(samples, weights, args.patch, args.seed, device, blood, organs, args.synth_fraction)
    net = UNet(**{k: v for k, v in NET.items() if k != "_target_"}, out_channels=n_classes).to(device)
    if args.init:
        net.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
        print(f"initialised from {args.init}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-5)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    roi = (args.patch,) * 3
    log["device"] = device_name(device)
    prep_s = time.time() - t_start
    print(f"data ready in {prep_s:.0f} s: {len(real)} real, {len(phantoms)} phantom training volumes, "
          f"{len(val)} validation; training on {log['device']}", flush=True)

    max_steps = args.max_steps
    timed = max_steps == 0  # wall-clock mode: the schedule follows elapsed time and the run stops on time
    step = 0
    t_train = time.time()
    train_budget = max(60.0, args.max_minutes * 60.0 - (t_train - t_start))
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
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = net(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        step += 1
        if step % args.log_every == 0:
            mean_loss = float(torch.stack(losses[-args.log_every:]).mean())
            log["curve"].append({"step": step, "loss": round(mean_loss, 4), "lr": lr,
                                 "elapsed_s": round(time.time() - t_start, 1)})
            print(f"step {step} ({progress:.0%}) loss {mean_loss:.4f} lr {lr:.2e} {time.time() - t_start:.0f} s",
                  flush=True)
            losses = losses[-args.log_every:]
        if step % args.val_every == 0:
            v = evaluate(net, val, roi, names, device)
            mean = {k: round(float(np.mean(list(d.values()))), 4) if d else None for k, d in v.items()}
            log["validation"].append({"step": step, "mean_dice": mean, "dice": v,
                                      "elapsed_s": round(time.time() - t_start, 1)})
            print(f"  validation @ {step}: {mean}", flush=True)
            write_bundle(args, net, names, log, final=False)
    v = evaluate(net, val, roi, names, device)
    log["validation"].append({"step": step, "mean_dice": {k: round(float(np.mean(list(d.values()))), 4) if d else None
                                                          for k, d in v.items()}, "dice": v,
                              "elapsed_s": round(time.time() - t_start, 1)})
    print(f"  final validation @ {step}: {log['validation'][-1]['mean_dice']}", flush=True)
    for name, d in v.items():
        print(f"    {name}: " + ", ".join(f"{k} {x:.3f}" for k, x in d.items()), flush=True)
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
    torch.save({k: v.detach().float().cpu().clone() for k, v in net.state_dict().items()}, tmp)
    tmp.replace(wpath)
    digest = hashlib.sha256(wpath.read_bytes()).hexdigest()
    n = len(names)
    netdef = dict(NET, out_channels=n)
    meta = {
        "name": BUNDLE_NAME,
        "version": "0.2.1",
        "changelog": {"0.2.1": "same weights as 0.2.0; boundaries at the source resolution also weigh each structure's HU histogram in the scan (hu_refine_weight 0.6); contrast-vessel walls placed by the scan's own lumen/surroundings HU, thin vessels followed up to 12 mm",
                      "0.2.0": "single-stage run from random weights, GPU-side augmentation, far more steps",
                      "0.1.0": "first model: phantoms + TotalSegmentator example CT, CPU-trained in three stages"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "optional_packages_version": {},
        "task": "Multi-structure segmentation of CT (abdomen, pelvis, thorax/heart, head) for surgical planning",
        "description": f"A 3D UNet (MONAI) trained on {log.get('device', 'CPU')} on synthetic surgtwin phantoms and one real "
                       "labelled CT; "
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
            "postprocess": {"single_component": list(C.SINGLE_COMPONENT), "fill_holes": list(C.FILL_HOLES),
                            "contrast_vessels": list(C.CONTRAST_VESSELS), "tubular": list(C.TUBULAR),
                            "hu_refine_weight": C.HU_REFINE_WEIGHT, "thin_vessels": list(C.THIN_VESSELS),
                            "thin_vessel_grow_mm": C.THIN_VESSEL_GROW_MM},
            "weights_sha256": digest,
            "training_steps": log.get("steps") or (log["curve"][-1]["step"] if log["curve"] else 0),
            "trained_on": log.get("device", ""),
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
    dev = log.get("device", "CPU")
    cmd = (f".venv/bin/python scripts/train_segmentation.py --seed {a['seed']} --max-steps {steps} "
           f"--phantoms-per-kind {a['phantoms_per_kind']} --patch {a['patch']} --batch {a['batch']} "
           f"--lr {a['lr']} --kinds {a['kinds']} --real-fraction {a['real_fraction']} --device {a['device']} "
           f"--threads {a['threads']} --workers {a['workers']} --stage {stage}"
           + (f" --init {a['init']}" if a.get("init") else ""))
    timed = a["max_steps"] == 0
    lines += ["Command as run: `" + " ".join(["scripts/train_segmentation.py", *log["argv"]]) + "`", "",
              ("This run's cosine schedule followed the wall clock (`--max-minutes`); the step-based rerun with "
               "the same step count: " if timed else "Step-based run; to rerun: ") + f"`{cmd}`. Seeded: same data, "
              "order and augmentation; bit-identical weights only on CPU with the same library versions "
              "(GPU kernels are not bitwise deterministic).", "",
              f"Machine: {dev}" + (f", {a['threads']} torch threads" if dev.startswith("CPU") else "") + ".", ""]
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
