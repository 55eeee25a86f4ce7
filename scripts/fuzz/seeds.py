"""The seed corpus: real inputs (with the fake identity of ``phi`` planted) that the mutators start from.

Built deterministically into a folder (``build_corpus``) and read back by every worker (``Corpus``):

* ``dicom/head_rle``: 6 consecutive slices of the head sample (RLE Lossless CT, as shipped);
* ``dicom/head_evr`` / ``dicom/head_ivr``: the same slices decompressed to explicit / implicit VR
  little endian (both of surgtwin's header readers: the lean scanner and pydicom);
* ``dicom/head_enh``: an Enhanced CT multi-frame object (4 frames, functional groups) from them;
* ``dicom/pd_*``: pydicom's own test files (big endian, implicit, JPEG/J2K/JPEG-LS/RLE, deflated,
  multi-frame RT dose, a SEG, files without meta or preamble);
* ``nifti/*``: a small phantom written with ``surgtwin.core.io.save_volume`` (int16 and float32),
  identity text planted in the header's descrip/aux_file; its label image with ``labels.json``;
* ``bundle/real``: the bundled model's configs with a tiny fake weights file whose sha256 is recorded
  (refused when the weights are read); ``bundle/tiny``: the same configs with a small UNet whose real
  weights load (the success path). Networks stay small so a check takes milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import phi

HEAD_SLICES = range(40, 46)  # IM0041..IM0046: mid-head, 6 slices
ENHANCED_FRAMES = 4
ENHANCED_UID = "2.25.31415926535897932384626433"
PYDICOM_FILES = (
    "CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm", "JPGExtended.dcm",
    "rtdose.dcm", "rtdose_rle.dcm", "ExplVR_BigEnd.dcm", "image_dfl.dcm", "SC_rgb_rle.dcm", "MR_small_padded.dcm",
    "liver_1frame.dcm", "no_meta.dcm", "ExplVR_BigEndNoMeta.dcm", "nested_priv_SQ.dcm",
)
NIFTI_SHAPE = (12, 40, 36)
TINY_UNET = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "channels": [4, 8], "strides": [2],
             "num_res_units": 0, "norm": "instance", "out_channels": 31}


@dataclass
class DicomSeed:
    name: str
    files: list[Path]

    @property
    def series(self) -> bool:
        return len(self.files) > 1


class Corpus:
    """A built corpus folder, read back (file bytes are cached per process)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        manifest = json.loads((self.root / "manifest.json").read_text())
        self.dicom = {k: DicomSeed(k, [self.root / p for p in v]) for k, v in manifest["dicom"].items()}
        self.nifti = {k: self.root / v for k, v in manifest["nifti"].items()}
        #: label-image seeds: their table (labels.json) beside them; read against this CT reference
        self.tables = {k: p.parent / "labels.json" for k, p in self.nifti.items() if (p.parent / "labels.json").is_file()}
        self.reference = self.nifti.get("phantom_i16")
        self.bundle = {k: self.root / v for k, v in manifest["bundle"].items()}
        self._bytes: dict[Path, bytes] = {}

    def read(self, path: Path) -> bytes:
        data = self._bytes.get(path)
        if data is None:
            data = self._bytes[path] = Path(path).read_bytes()
        return data


def _to_bytes(ds, **kw) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, **kw)
    return buf.getvalue()


def _head_datasets():
    import pydicom

    from surgtwin import resources

    folder = resources.sample_root() / "head" / "dicom"
    files = sorted(folder.glob("*.dcm"))
    out = []
    for k in HEAD_SLICES:
        ds = pydicom.dcmread(files[k])
        phi.plant(ds)
        out.append(ds)
    return out


def _enhanced(datasets) -> bytes:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    src = datasets[:ENHANCED_FRAMES]
    d0 = src[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ENHANCED_UID + ".2"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.SOPInstanceUID = ENHANCED_UID + ".2"
    for kw in ("StudyInstanceUID", "FrameOfReferenceUID", "Modality", "StudyDate"):
        if kw in d0:
            setattr(ds, kw, d0.data_element(kw).value)
    ds.SeriesInstanceUID = ENHANCED_UID + ".1"
    ds.SeriesNumber = 99
    ds.SeriesDescription = "fuzz enhanced"
    phi.plant(ds)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = len(src)
    ds.Rows, ds.Columns = d0.Rows, d0.Columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, d0.BitsStored, d0.HighBit
    ds.PixelRepresentation = d0.PixelRepresentation
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = list(d0.PixelSpacing)
    pm.SliceThickness = d0.get("SliceThickness", 1.0)
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = list(d0.ImageOrientationPatient)
    shared.PlaneOrientationSequence = Sequence([po])
    pvt = Dataset()
    pvt.RescaleIntercept = d0.get("RescaleIntercept", 0)
    pvt.RescaleSlope = d0.get("RescaleSlope", 1)
    pvt.RescaleType = "HU"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for i, s in enumerate(src):
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = list(s.ImagePositionPatient)
        item.PlanePositionSequence = Sequence([pp])
        fc = Dataset()
        fc.StackID = "1"
        fc.InStackPositionNumber = i + 1
        item.FrameContentSequence = Sequence([fc])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack([s.pixel_array for s in src]).astype(src[0].pixel_array.dtype).tobytes()
    return _to_bytes(ds, enforce_file_format=True)


def _write(root: Path, rel: str, data: bytes) -> str:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return rel


def _build_dicom(root: Path) -> dict:
    import os

    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    out: dict[str, list[str]] = {}
    head = _head_datasets()
    out["head_rle"] = [_write(root, f"dicom/head_rle/s{i:02d}.dcm", _to_bytes(ds)) for i, ds in enumerate(head)]
    evr, ivr = [], []
    for i, ds in enumerate(head):
        d = pydicom.dcmread(io.BytesIO(_to_bytes(ds)))
        d.decompress()
        d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        evr.append(_write(root, f"dicom/head_evr/s{i:02d}.dcm", _to_bytes(d, enforce_file_format=True)))
        d.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ivr.append(_write(root, f"dicom/head_ivr/s{i:02d}.dcm",
                          _to_bytes(d, enforce_file_format=True, implicit_vr=True, little_endian=True)))
    out["head_evr"], out["head_ivr"] = evr, ivr
    decoded = [pydicom.dcmread(root / p) for p in evr]
    out["head_enh"] = [_write(root, "dicom/head_enh/mf.dcm", _enhanced(decoded))]
    test_files = Path(os.path.dirname(pydicom.data.__file__)) / "test_files"
    for name in PYDICOM_FILES:
        src = test_files / name
        if not src.is_file():
            continue
        ds = pydicom.dcmread(src, force=True)
        phi.plant(ds)
        key = "pd_" + name.removesuffix(".dcm")
        out[key] = [_write(root, f"dicom/{key}/x.dcm", _to_bytes(ds, enforce_file_format=False))]
    return out


def _plant_nifti(data: bytes) -> bytes:
    b = bytearray(data)
    b[148:228] = phi.NIFTI_DESCRIP.encode().ljust(80, b"\x00")
    b[228:252] = phi.NIFTI_AUX.encode().ljust(24, b"\x00")
    return bytes(b)


def _build_nifti(root: Path) -> dict:
    import numpy as np

    from surgtwin.core.io import save_volume
    from surgtwin.core.types import Volume
    from surgtwin.services.demo import phantom

    vol, labels = phantom(shape=NIFTI_SHAPE, spacing_mm=(3.0, 2.5, 2.5), seed=0, noise_hu=5.0)
    out = {}
    tmp = root / "nifti" / "_tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    variants = {
        "phantom_i16": vol,
        "phantom_f32": Volume(vol.array.astype(np.float32) * 0.5 + 0.25, vol.affine, None, "CT", {}),
    }
    for name, v in variants.items():
        p = save_volume(v, tmp / f"{name}.nii")
        out[name] = _write(root, f"nifti/{name}.nii", _plant_nifti(p.read_bytes()))
    # a label image with its table (labels.json beside it), read with the CT phantom as reference
    p = save_volume(labels, tmp / "labels.nii")
    out["labels_u8"] = _write(root, "nifti/labels_u8/labels.nii", _plant_nifti(p.read_bytes()))
    labels.labels.save(root / "nifti" / "labels_u8" / "labels.json")
    shutil.rmtree(tmp)
    return out


def _build_bundle(root: Path) -> dict:
    import torch
    from monai.networks.nets import UNet

    from surgtwin import resources

    src = resources.bundled_model_dir() / "surgtwin_ct_multiorgan" / "configs"
    out = {}
    fake = b"surgtwin fuzz: not a real weights file\n"
    torch.manual_seed(0)
    net = UNet(**{k: v for k, v in TINY_UNET.items() if k != "_target_"})
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    for name, weights, netdef in (("real", fake, None), ("tiny", buf.getvalue(), TINY_UNET)):
        meta = json.loads((src / "metadata.json").read_text())
        inf = json.loads((src / "inference.json").read_text())
        meta.setdefault("surgtwin", {})["weights_sha256"] = hashlib.sha256(weights).hexdigest()
        if netdef is not None:
            inf["network_def"] = dict(netdef)
            meta["surgtwin"]["roi_size"] = [16, 16, 16]
        _write(root, f"bundle/{name}/configs/metadata.json", json.dumps(meta, indent=2).encode())
        _write(root, f"bundle/{name}/configs/inference.json", json.dumps(inf, indent=2).encode())
        _write(root, f"bundle/{name}/models/model.pt", weights)
        out[name] = f"bundle/{name}"
    return out


def build_corpus(root: Path, *, bundles: bool = True) -> Corpus:
    """Write the seed corpus into ``root`` (replacing what is there) and return it."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    manifest = {"dicom": _build_dicom(root), "nifti": _build_nifti(root),
                "bundle": _build_bundle(root) if bundles else {}}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return Corpus(root)
