"""Vessel centerlines and reduced-order blood flow over a case: the "centerline" and "flow" steps (issue 14).

Step ``centerline`` (input: labels). Options: ``structures`` (label names or values making up the
vessel tree; default: those of ``DEFAULT_TREE`` the labels have — aorta, iliac and renal arteries
— leaving out, with a warning, any that does not touch the aorta's piece; a binary mask: its one
label), ``tree`` (the item
key's name, ``centerlines:<tree>``; default ``"aorta"``; not ``name``, which ``prepare_step`` takes), ``components`` (``"error"``: a mask in several pieces is refused with
their sizes; ``"largest"``: keep the largest), ``root_lps`` (a point near the inlet), ``step_mm``
(1), ``min_stenosis_percent`` (25). It stores:

* ``centerlines:<tree>``: the arrays of ``CenterlineGraph.to_arrays()``
  (:mod:`surgtwin.core.vessels.graph`): ``points_lps`` (P, 3), ``radius_mm``, ``radius_inscribed_mm``,
  ``arclength_mm``, ``valid`` (P,), ``branch_offsets`` (B + 1,), ``branch_parent``, ``branch_nodes``
  (B, 2), ``branch_label``, ``branch_length_mm``, ``branch_mean_radius_mm``, ``branch_min_radius_mm``
  (B,), ``node_lps`` (K, 3), ``node_degree`` (K,), ``root_node`` (), ``stenosis_branch``,
  ``stenosis_point``, ``stenosis_lps`` (S, 3), ``stenosis_arclength_mm``, ``stenosis_min_diameter_mm``,
  ``stenosis_reference_diameter_mm``, ``stenosis_diameter_percent``, ``stenosis_area_percent``,
  ``stenosis_length_mm`` (S,). Provenance parameters: ``structures``, ``label_values``,
  ``branch_names`` (B strings, e.g. ``"aorta"``, ``"iliac_artery_left-2"``), ``warnings`` and the options.

Step ``flow`` (input: labels; it reuses a current ``centerlines:<tree>`` item, else extracts one
and stores it too). Options: the centerline step's, ``inflow_ml_s`` (default
``surgtwin.core.vessels.network.default_inflow_ml_s``: 30 ml/s + 9 per renal artery in the tree),
``pulsatile`` (False: steady), ``cycles`` (10), ``steps_per_cycle`` (500), ``stent``
({segment name ``"b3"``/``"b3.1"`` or stenosis id ``"s0"``: diameter_mm}) and the outlet model's
``mean_pressure_mmhg``, ``total_resistance_mmhg_s_ml``, ``total_compliance_ml_mmhg``. It stores
``flow:<tree>`` and, with ``stent``, ``flow:<tree>:stent`` (the same arrays for the stented tree), each:

* per segment (N; names in provenance ``segment_names``): ``segment_branch``, ``segment_stenosis``
  (index into the centerline stenoses, -1 none), ``segment_parent`` (-1 root) int32,
  ``segment_range`` (N, 2) int32 (point range within the branch), ``segment_length_mm``,
  ``segment_radius_mm`` (model radius), ``segment_min_radius_mm``; ``mean_flow_ml_s``,
  ``min_flow_ml_s``, ``max_flow_ml_s``, ``mean_pressure_mmhg`` (N, 2: proximal, distal end),
  ``min_pressure_mmhg``, ``max_pressure_mmhg``, ``pressure_drop_mmhg``, ``pressure_ratio``
  (distal/proximal mean);
* per centerline stenosis (S): ``stenosis_segment`` int32, ``stenosis_pressure_ratio``,
  ``stenosis_pressure_drop_mmhg`` (NaN for a stented one that no longer narrows);
* outlets (O): ``outlet_segments`` int32, ``outlet_fraction``, ``outlet_rp_mmhg_s_ml``,
  ``outlet_c_ml_mmhg``, ``outlet_rd_mmhg_s_ml``; scalars ``inflow_ml_s``, ``pulsatile`` (0/1);
* pulsatile only, over the last cycle (T): ``time_s``, ``inlet_pressure_mmhg``, ``inlet_flow_ml_s``
  (T,), ``outlet_pressure_mmhg``, ``outlet_flow_ml_s`` (T, O);
* ``flow:<tree>:stent`` also ``stent_segments`` int32 and ``stent_diameter_mm``.

The step's summary (``StepOutput.summary``) holds ``key``, ``rows`` (one dict per segment: the
CLI's table), ``stenoses``, ``text`` (the table as text) and, with a stent, ``stent`` (the
before/after rows and ``text``, side by side).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from surgtwin.core.case import Case, Provenance
from surgtwin.core.case.model import item_content_hash
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import report, scaled
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step

DEFAULT_NAME = "aorta"
#: the structures of an abdominal arterial tree, by the names the bundled model and phantoms use
DEFAULT_TREE = ("aorta", "iliac_artery_left", "iliac_artery_right", "renal_artery_left", "renal_artery_right")
_CL_OPTIONS = ("components", "root_lps", "step_mm", "min_stenosis_percent")


# -- which voxels make up the tree ----------------------------------------------------------------
def _resolve(labels, structures) -> list[tuple[str, int]]:
    """[(name, value)] for structure names or label values; refuses unknown ones."""
    table = labels.labels
    out = []
    for s in structures:
        token = str(s).strip()
        if token.isdigit():
            value = int(token)
            lab = next((x for x in table if x.value == value), None)
            if lab is None and not np.any(labels.array == value):
                raise SurgtwinError(f"the label map has no label value {value}")
            out.append((lab.name if lab is not None else f"label_{value}", value))
            continue
        try:
            out.append((token, table.by_name(token).value))
        except (KeyError, SurgtwinError):
            raise SurgtwinError(f"the label map has no structure {token!r}",
                                hint="known: " + ", ".join(table.names())) from None
    if not out:
        raise SurgtwinError("no vessel structures given")
    return out


def tree_structures(labels, structures=None) -> tuple[list[tuple[str, int]], list[str]]:
    """The structures making up the vessel tree and warnings (see the module docstring)."""
    from scipy import ndimage

    if structures:
        return _resolve(labels, structures), []
    names = set(labels.labels.names())
    present = [int(v) for v in np.unique(labels.array) if v > 0]
    if "aorta" not in names and len(present) == 1:  # a binary vessel mask
        return _resolve(labels, [present[0]]), []
    chosen = [(n, labels.labels.by_name(n).value) for n in DEFAULT_TREE if n in names]
    chosen = [(n, v) for n, v in chosen if np.any(labels.array == v)]
    if not chosen or chosen[0][0] != "aorta":
        raise SurgtwinError("the label map has no aorta to build a vessel tree from",
                            hint="give the structures, e.g. --structures aorta,iliac_artery_left or label values")
    vals = [v for _, v in chosen]
    lab, _ = ndimage.label(np.isin(labels.array, vals), structure=np.ones((3, 3, 3), bool))
    aorta_pieces = np.unique(lab[labels.array == chosen[0][1]])
    aorta_piece = aorta_pieces[aorta_pieces > 0]
    main = int(np.bincount(lab[labels.array == chosen[0][1]]).argmax()) if aorta_piece.size else 0
    keep, warnings = [], []
    for n, v in chosen:
        if n == "aorta" or np.any(lab[labels.array == v] == main):
            keep.append((n, v))
        else:
            warnings.append(f"{n} does not touch the aorta in the label map: left out of the tree")
    return keep, warnings


def _branch_names(graph, value_names: dict) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for b in graph.branches:
        base = value_names.get(b.label, f"label_{b.label}" if b.label else "vessel")
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def compute_centerlines(labels, opts: dict, *, progress=None, cancel=None):
    """(graph, provenance parameters) for the tree of ``opts["structures"]`` (default tree)."""
    from surgtwin.core.vessels import extract_centerlines

    chosen, warnings = tree_structures(labels, opts.get("structures"))
    values = [v for _, v in chosen]
    mask = np.isin(labels.array, values)
    kw = {k: opts[k] for k in _CL_OPTIONS if opts.get(k) is not None}
    graph = extract_centerlines(mask, labels.affine, labels=labels.array, progress=progress, cancel=cancel, **kw)
    names = _branch_names(graph, {v: n for n, v in chosen})
    params = {"structures": [n for n, _ in chosen], "label_values": values, "branch_names": names,
              "warnings": warnings + list(graph.warnings), "method": "skeleton+distance map, cross-section radius",
              **{k: (list(v) if isinstance(v, (tuple, np.ndarray)) else v) for k, v in kw.items()}}
    return graph, params


def _centerline(labels, hashes, opts, *, progress=None, cancel=None) -> StepOutput:
    graph, params = compute_centerlines(labels, opts, progress=progress, cancel=cancel)
    key = f"centerlines:{opts.get('tree') or DEFAULT_NAME}"
    prov = Provenance("centerline:skeleton", params, {"labels": hashes["labels"]})
    summary = {"key": key, "branches": _branch_rows(graph, params["branch_names"]),
               "stenoses": [dict(s.as_dict(), id=f"s{k}") for k, s in enumerate(graph.stenoses)],
               "warnings": params["warnings"]}
    return StepOutput("centerline", items={key: (graph.to_arrays(), prov)}, summary=summary, result=graph)


def _branch_rows(graph, names) -> list[dict]:
    rows = graph.table()
    for r in rows:
        r["name"] = names[r["branch"]]
    return rows


def _prepare_centerline(case: Case, **options) -> StepJob:
    lab = case.labels
    return StepJob("centerline", _centerline, (replace(lab, array=lab.array.copy()),
                                               {"labels": case.current_hash("labels")}, dict(options)))


register_step(Step("centerline", "vessel centerlines with radius (aorta + iliac/renal arteries by default), "
                   "branches, stenoses", ("labels",), _prepare_centerline))


# -- flow -------------------------------------------------------------------------------------------
def _stent_targets(vn, graph, stent: dict) -> dict[str, float]:
    """{segment name: diameter} from {"b3" | "b3.1" | "s0" | 0: diameter}."""
    names = [s.name for s in vn.network.segments]
    out = {}
    for k, d in (stent or {}).items():
        key = str(k).strip()
        try:
            dia = float(d)
        except (TypeError, ValueError):
            raise SurgtwinError(f"stent diameter for {key!r} must be a number of mm, got {d!r}") from None
        if not (math.isfinite(dia) and dia > 0):
            raise SurgtwinError(f"stent diameter for {key!r} must be > 0 mm, got {d!r}")
        if key in names:
            seg = key
        elif key.lstrip("sS").isdigit():
            k_st = int(key.lstrip("sS"))
            if not 0 <= k_st < len(graph.stenoses):
                raise SurgtwinError(f"no stenosis {key!r}", hint=f"stenoses: s0..s{len(graph.stenoses) - 1}"
                                    if graph.stenoses else "no stenosis was found")
            seg = vn.segment_for_stenosis(k_st)
        else:
            raise SurgtwinError(f"no segment or stenosis {key!r} to stent",
                                hint="segments: " + ", ".join(names) + "; stenoses: s0, s1, ...")
        out[seg] = dia
    return out


def _solve(net, opts, inflow, *, progress=None, cancel=None):
    from surgtwin.core.sim.flow import solve_pulsatile, solve_steady
    from surgtwin.core.vessels import inflow_waveform

    if opts.get("pulsatile"):
        return solve_pulsatile(net, inflow_waveform(inflow), cycles=int(opts.get("cycles") or 10),
                               steps_per_cycle=int(opts.get("steps_per_cycle") or 500), progress=progress,
                               cancel=cancel)
    return solve_steady(net, inflow)


def flow_arrays(vn, graph, res, *, pulsatile: bool, steps_per_cycle: int) -> dict:
    """The ``flow:<tree>`` item's arrays (see the module docstring)."""
    net = vn.network
    segs = net.segments
    n = len(segs)
    index = {s.name: i for i, s in enumerate(segs)}
    last = slice(-steps_per_cycle - 1, -1) if pulsatile else slice(None)
    p = res.pressure_mmhg[last]
    q = res.flow_ml_s[last]
    mp = res.mean_pressure_mmhg
    out = {
        "segment_branch": np.array(vn.segment_branch, np.int32),
        "segment_stenosis": np.array(vn.segment_stenosis, np.int32),
        "segment_parent": np.array([-1 if s.parent is None else index[s.parent] for s in segs], np.int32),
        "segment_range": np.array(vn.segment_range, np.int32).reshape(n, 2),
        "segment_length_mm": np.array([s.length_mm for s in segs]),
        "segment_radius_mm": np.array([s.radius_mm for s in segs]),
        "segment_min_radius_mm": np.array([min(min(s.radius_profile_mm or (s.radius_mm,)),
                                               s.stenosis.throat_radius_mm if s.stenosis else math.inf)
                                           for s in segs]),
        "mean_flow_ml_s": np.asarray(res.mean_flow_ml_s, float),
        "min_flow_ml_s": q.min(axis=0), "max_flow_ml_s": q.max(axis=0),
        "mean_pressure_mmhg": np.asarray(mp, float),
        "min_pressure_mmhg": p.min(axis=(0, 2)), "max_pressure_mmhg": p.max(axis=(0, 2)),
        "pressure_drop_mmhg": mp[:, 0] - mp[:, 1],
        "pressure_ratio": mp[:, 1] / np.where(mp[:, 0] != 0, mp[:, 0], np.nan),
    }
    st_seg = np.full(len(graph.stenoses), -1, np.int32)
    for i, k in enumerate(vn.segment_stenosis):
        if k >= 0:
            st_seg[k] = i
    ratio = np.full(len(graph.stenoses), np.nan)
    drop = np.full(len(graph.stenoses), np.nan)
    for k, i in enumerate(st_seg):
        if i >= 0 and segs[i].stenosis is not None:
            ratio[k] = res.stenosis_pressure_ratio.get(segs[i].name, np.nan)
            drop[k] = out["pressure_drop_mmhg"][i]
    out.update(stenosis_segment=st_seg, stenosis_pressure_ratio=ratio, stenosis_pressure_drop_mmhg=drop)
    outs = list(net.outlets)
    oi = np.array([index[o] for o in outs], np.int32)
    out.update(outlet_segments=oi, outlet_fraction=np.array([vn.outlet_fraction[o] for o in outs]),
               outlet_rp_mmhg_s_ml=np.array([net.outlets[o].rp_mmhg_s_ml for o in outs]),
               outlet_c_ml_mmhg=np.array([net.outlets[o].c_ml_mmhg for o in outs]),
               outlet_rd_mmhg_s_ml=np.array([net.outlets[o].rd_mmhg_s_ml for o in outs]),
               inflow_ml_s=np.array(float(vn.parameters["inflow_ml_s"])), pulsatile=np.array(int(pulsatile)))
    if pulsatile:
        t = res.time_s[last]
        out.update(time_s=t - t[0], inlet_pressure_mmhg=p[:, 0, 0], inlet_flow_ml_s=q[:, 0],
                   outlet_pressure_mmhg=p[:, oi, 1], outlet_flow_ml_s=q[:, oi])
    return out


def flow_rows(vn, graph, arrays, branch_names) -> list[dict]:
    """One row per segment: the CLI's table (and the app's)."""
    rows = []
    for i, s in enumerate(vn.network.segments):
        b = graph.branches[vn.segment_branch[i]]
        k = vn.segment_stenosis[i]
        i0, i1 = vn.segment_range[i]
        r = b.radius_mm[i0:i1 + 1]
        rows.append({
            "segment": s.name, "vessel": branch_names[b.index], "parent": s.parent,
            "length_mm": round(s.length_mm, 1), "mean_radius_mm": round(float(np.mean(r)), 2),
            "min_radius_mm": round(float(np.min(r)), 2),
            "stenosis": f"s{k}" if k >= 0 else None,
            "stenosis_percent": round(graph.stenoses[k].diameter_percent, 1) if k >= 0 else None,
            "mean_flow_ml_s": round(float(arrays["mean_flow_ml_s"][i]), 2),
            "pressure_drop_mmhg": round(float(arrays["pressure_drop_mmhg"][i]), 3),
            "pressure_ratio": round(float(arrays["pressure_ratio"][i]), 4),
        })
    return rows


def table_text(rows) -> str:
    head = (f"{'segment':<8} {'vessel':<22} {'length mm':>9} {'mean r mm':>9} {'min r mm':>8} {'stenosis':>12} "
            f"{'flow ml/s':>9} {'dP mmHg':>8} {'Pd/Pp':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        st = f"{r['stenosis']} {r['stenosis_percent']:.1f}%" if r["stenosis"] else "-"
        lines.append(f"{r['segment']:<8} {r['vessel'][:22]:<22} {r['length_mm']:>9.1f} {r['mean_radius_mm']:>9.2f} "
                     f"{r['min_radius_mm']:>8.2f} {st:>12} {r['mean_flow_ml_s']:>9.2f} "
                     f"{r['pressure_drop_mmhg']:>8.2f} {r['pressure_ratio']:>7.3f}")
    return "\n".join(lines)


def stent_text(before, after, targets) -> str:
    head = f"{'segment':<8} {'vessel':<22} {'dP before':>9} {'dP after':>9} {'Pd/Pp before':>12} {'Pd/Pp after':>11}"
    lines = [head, "-" * len(head)]
    for a, b in zip(before, after, strict=True):
        mark = f"  <- stent {targets[a['segment']]:g} mm" if a["segment"] in targets else ""
        lines.append(f"{a['segment']:<8} {a['vessel'][:22]:<22} {a['pressure_drop_mmhg']:>9.2f} "
                     f"{b['pressure_drop_mmhg']:>9.2f} {a['pressure_ratio']:>12.3f} {b['pressure_ratio']:>11.3f}{mark}")
    return "\n".join(lines)


def _flow(labels, hashes, cl_item, opts, *, progress=None, cancel=None) -> StepOutput:
    from surgtwin.core.sim.flow import virtual_stent
    from surgtwin.core.vessels import CenterlineGraph, default_inflow_ml_s, network_from_centerlines

    name = opts.get("tree") or DEFAULT_NAME
    cl_key = f"centerlines:{name}"
    items = {}
    if cl_item is not None:
        arrays, cl_prov = cl_item
        graph = CenterlineGraph.from_arrays(arrays)
        cl_params = cl_prov.parameters
    else:
        graph, cl_params = compute_centerlines(labels, opts, progress=scaled(progress, 0.0, 0.6), cancel=cancel)
        arrays = graph.to_arrays()
        items[cl_key] = (arrays, Provenance("centerline:skeleton", cl_params, {"labels": hashes["labels"]}))
    names = list(cl_params.get("branch_names") or [f"b{b.index}" for b in graph.branches])
    renals = sum(1 for s in cl_params.get("structures", []) if s.startswith("renal_artery"))
    inflow = float(opts["inflow_ml_s"]) if opts.get("inflow_ml_s") is not None else default_inflow_ml_s(renals)
    net_kw = {k: float(opts[k]) for k in ("mean_pressure_mmhg", "total_resistance_mmhg_s_ml",
                                          "total_compliance_ml_mmhg") if opts.get(k) is not None}
    vn = network_from_centerlines(graph, inflow_ml_s=inflow, **net_kw)
    pulsatile = bool(opts.get("pulsatile"))
    spc = int(opts.get("steps_per_cycle") or 500)
    targets = _stent_targets(vn, graph, opts.get("stent") or {})
    report(progress, 0.6, "flow: solving")
    res = _solve(vn.network, opts, inflow, progress=scaled(progress, 0.6, 0.8 if targets else 1.0), cancel=cancel)
    arr = flow_arrays(vn, graph, res, pulsatile=pulsatile, steps_per_cycle=spc)
    rows = flow_rows(vn, graph, arr, names)
    seg_names = [s.name for s in vn.network.segments]
    params = {"inflow_ml_s": inflow, "pulsatile": pulsatile, "network": vn.parameters, "segment_names": seg_names,
              "segment_vessels": [r["vessel"] for r in rows], "centerlines_item": cl_key,
              "inflow_default": opts.get("inflow_ml_s") is None,
              "outlet_names": list(vn.network.outlets)}
    if pulsatile:
        params.update(cycles=int(opts.get("cycles") or 10), steps_per_cycle=spc)
    inputs = {"labels": hashes["labels"], cl_key: item_content_hash("arrays", arrays)}
    key = f"flow:{name}"
    items[key] = (arr, Provenance("flow:0d", params, dict(inputs)))
    summary = {"key": key, "rows": rows, "text": table_text(rows), "inflow_ml_s": inflow, "pulsatile": pulsatile,
               "stenoses": [dict(s.as_dict(), id=f"s{k}", segment=seg_names[arr["stenosis_segment"][k]]
                                 if arr["stenosis_segment"][k] >= 0 else None,
                                 pressure_ratio=_num(arr["stenosis_pressure_ratio"][k]),
                                 pressure_drop_mmhg=_num(arr["stenosis_pressure_drop_mmhg"][k]))
                            for k, s in enumerate(graph.stenoses)],
               "outlets": {o: round(float(f), 4) for o, f in vn.outlet_fraction.items()},
               "warnings": list(cl_params.get("warnings") or [])}
    if pulsatile:
        summary["inlet_pressure_mmhg"] = {"max": round(float(arr["inlet_pressure_mmhg"].max()), 1),
                                          "min": round(float(arr["inlet_pressure_mmhg"].min()), 1),
                                          "mean": round(float(arr["mean_pressure_mmhg"][0, 0]), 1)}
    if targets:
        net_b = vn.network
        for seg, dia in targets.items():
            net_b = virtual_stent(net_b, seg, dia)
        vn_b = replace(vn, network=net_b)
        res_b = _solve(net_b, opts, inflow, progress=scaled(progress, 0.8, 1.0), cancel=cancel)
        arr_b = flow_arrays(vn_b, graph, res_b, pulsatile=pulsatile, steps_per_cycle=spc)
        arr_b["stent_segments"] = np.array([seg_names.index(s) for s in targets], np.int32)
        arr_b["stent_diameter_mm"] = np.array(list(targets.values()), float)
        rows_b = flow_rows(vn_b, graph, arr_b, names)
        items[f"{key}:stent"] = (arr_b, Provenance("flow:0d", {**params, "stent": targets}, dict(inputs)))
        summary["stent"] = {"key": f"{key}:stent", "segments": targets, "rows": rows_b,
                            "text": stent_text(rows, rows_b, targets)}
    report(progress, 1.0, f"flow: {key} done")
    return StepOutput("flow", items=items, summary=summary, result=res)


def _num(v) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def _prepare_flow(case: Case, **options) -> StepJob:
    lab = case.labels
    name = options.get("tree") or DEFAULT_NAME
    cl = case.item(f"centerlines:{name}")
    cl_item = None
    if cl is not None and not case.is_stale(f"centerlines:{name}"):
        want = options.get("structures")
        same = not want or [str(s) for s in want] in (cl.provenance.parameters.get("structures"),
                                                      [str(v) for v in cl.provenance.parameters.get("label_values", [])])
        same = same and all(options.get(k) is None or cl.provenance.parameters.get(k) == options.get(k)
                            for k in _CL_OPTIONS if k != "root_lps")
        if same and options.get("root_lps") is None:
            cl_item = ({k: np.asarray(v).copy() for k, v in cl.value.items()}, cl.provenance)
    return StepJob("flow", _flow, (replace(lab, array=lab.array.copy()), {"labels": case.current_hash("labels")},
                                   cl_item, dict(options)))


register_step(Step("flow", "reduced-order (0D) blood flow on the vessel centerlines: pressure and flow per "
                   "segment, pressure ratio across stenoses, virtual stent", ("labels",), _prepare_flow))
