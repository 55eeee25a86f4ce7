"""Helpers for the segmentation tests: a tiny bundle with random weights and synthetic CT volumes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from surgtwin.core.types import Volume


def make_tiny_bundle(root: Path, *, modality: str = "CT", in_channels: int = 1, names=("background", "a", "b"),
                     spacing=(4.0, 4.0, 4.0), roi=(32, 32, 32), seed: int = 0, write_hash: bool = True) -> Path:
    """A valid MONAI bundle folder with a small random UNet (for geometry / refusal tests)."""
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    netdef = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": len(names),
              "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}
    net = UNet(**{k: v for k, v in netdef.items() if k != "_target_"})
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "docs").mkdir()
    w = root / "models" / "model.pt"
    torch.save(net.state_dict(), w)
    meta = {
        "name": "tiny", "version": "0.0.1",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": modality,
                                 "num_channels": in_channels, "channel_def": {"0": "image"}}},
            "outputs": {"pred": {"type": "image", "format": "labels", "num_channels": len(names),
                                 "channel_def": {str(i): n for i, n in enumerate(names)}}},
        },
        "surgtwin": {"spacing_mm": list(spacing), "axcodes": "RAS", "hu_window": [-1000, 1000],
                     "value_range": [0, 1], "roi_size": list(roi),
                     "postprocess": {"single_component": ["a"], "fill_holes": ["a", "b"]}},
    }
    if write_hash:
        meta["surgtwin"]["weights_sha256"] = hashlib.sha256(w.read_bytes()).hexdigest()
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    (root / "configs" / "inference.json").write_text(json.dumps({"network_def": netdef}))
    (root / "docs" / "README.md").write_text("tiny test bundle\n")
    return root


def oblique_affine(spacing=(2.5, 0.8, 0.7), angles_deg=(20.0, -15.0, 10.0), origin=(-40.0, 30.0, 12.0)):
    a = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a[0]), -np.sin(a[0])], [0, np.sin(a[0]), np.cos(a[0])]])
    ry = np.array([[np.cos(a[1]), 0, np.sin(a[1])], [0, 1, 0], [-np.sin(a[1]), 0, np.cos(a[1])]])
    rz = np.array([[np.cos(a[2]), -np.sin(a[2]), 0], [np.sin(a[2]), np.cos(a[2]), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = (rz @ ry @ rx) @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def ball_ct(shape=(40, 64, 60), affine=None, radius_mm=25.0, centre_lps=None, hu_in=300, hu_out=-50) -> Volume:
    """A CT-like volume: a bright ball (contrast) in soft tissue, with an LPS centre."""
    aff = np.diag([2.0, 1.0, 1.0, 1.0]) if affine is None else affine
    vol = Volume(np.zeros(shape, np.int16), aff, modality="CT")
    idx = np.indices(shape).reshape(3, -1).T
    w = vol.index_to_world(idx)
    c = vol.index_to_world((np.asarray(shape) - 1) / 2.0) if centre_lps is None else np.asarray(centre_lps)
    inside = (np.linalg.norm(w - c, axis=1) <= radius_mm).reshape(shape)
    return vol.with_array(np.where(inside, hu_in, hu_out).astype(np.int16))
