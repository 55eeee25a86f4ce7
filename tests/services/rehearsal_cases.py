"""A small synthetic case for the rehearsal tests: a body, a vessel beside the path, a tumour target."""

from __future__ import annotations

import numpy as np

from surgtwin.core.case import Case, Provenance
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

# array axes (k, j, i) with spacing (2, 1, 1) mm: LPS = (2k, j, i)
SHAPE = (30, 50, 60)
AFFINE = np.diag([2.0, 1.0, 1.0, 1.0])
TUMOUR_LPS = (30.0, 25.0, 15.0)
VESSEL_LPS = (30.0, 33.0, 30.0)  # 8 mm off the planned axis
ENTRY_LPS = (30.0, 25.0, 55.0)


def synthetic_case() -> Case:
    k, j, i = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    pts = np.stack([2.0 * k, j, i], axis=-1).astype(np.float64)
    lab = np.zeros(SHAPE, np.uint8)
    lab[2:28, 2:48, 2:56] = 1
    lab[np.linalg.norm(pts - VESSEL_LPS, axis=-1) <= 3.0] = 47
    lab[np.linalg.norm(pts - TUMOUR_LPS, axis=-1) <= 4.0] = 48
    vol = Volume(np.where(lab > 0, 40, -1000).astype(np.int16), AFFINE.copy(), "1.2.3", "CT")
    case = Case(vol, name="synthetic")
    table = LabelTable([Label(1, "skin"), Label(47, "vessels"), Label(48, "tumour")])
    case.set_labels(LabelMap(lab, AFFINE.copy(), "1.2.3", labels=table), Provenance("import"))
    add_trajectory(case, "T1", "to-tumour", ENTRY_LPS, TUMOUR_LPS, target_structure="tumour")
    return case


def add_trajectory(case: Case, tid: str, name: str, entry, target, *, instrument="biopsy-needle-14g",
                   target_structure=None) -> dict:
    """A trajectory record as the trajectory step stores it (the fields the rehearsal reads)."""
    it = case.item("trajectories")
    records = list(it.value) if it is not None else []
    rec = {"id": tid, "name": name, "entry_lps": [float(x) for x in entry], "target_lps": [float(x) for x in target],
           "instrument": instrument, "target_structure": target_structure}
    records.append(rec)
    case.set_item("trajectories", records, Provenance("trajectory", {}, {"labels": case.current_hash("labels")}))
    return rec


def crossing_script() -> list[dict]:
    """Inserted at the planned entry but aimed through the vessel, then pulled back and re-aimed."""
    e = np.array(ENTRY_LPS)
    d = (np.array(VESSEL_LPS) - e).tolist()
    steps = [{"t": 0, "cmd": "insert", "entry": list(ENTRY_LPS), "direction": d}]
    steps += [{"t": 1 + k, "cmd": "advance", "mm": 3} for k in range(10)]
    steps += [{"t": 11 + k, "cmd": "retract", "mm": 3} for k in range(10)]
    steps += [{"t": 22, "cmd": "insert", "entry": list(ENTRY_LPS)}]
    steps += [{"t": 23 + k, "cmd": "advance", "mm": 4} for k in range(10)]
    return steps
