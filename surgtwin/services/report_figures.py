"""The plan report's pictures: what ``surgtwin.services.report`` shows of a case, rendered offscreen by
``surgtwin.render.snapshots`` (no Qt), and how they are grouped into the report's figures.

* ``report_figures(case, *, size=(900, 700), progress=None, cancel=None) -> [Picture]``: in order, the
  3D anatomy (anterior; skin, fat and muscle hidden; lighter display copies of the surfaces), a 3D
  view of each kind of plan (implants in their bone, the TAVR valve seen coplanar, the trajectories
  with the structures they are checked against), MPR slices through the plan's focus (``focus_point``)
  with label outlines and plan contours, the TAVR annulus plane and the plane along the root, each
  trajectory's plane along the path and across it at the target, the FE result (bone SED change) and
  the flow result (tubes coloured by mean pressure).
* ``figures_by_section(pictures) -> {section: [report_pages.Figure]}``: the pictures as figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.case import Case
from surgtwin.core.progress import check, report
from surgtwin.services import report_sections as sec
from surgtwin.services.report_pages import Figure

#: structures left out of 3D pictures (they hide everything) and only outlined on slices
ENVELOPE = {"skin", "fat", "subcutaneous_fat", "muscle", "skeletal_muscle", "body", "body_trunc", "body_extremities"}
#: window (width, level) HU per plan kind when the case has no saved window
WINDOWS = {"implants": (1800.0, 400.0), "tavr": (600.0, 150.0), "default": (400.0, 40.0)}
#: display triangle budget of the anatomy in 3D pictures (the case keeps full resolution)
TRIANGLES_3D = 400_000


# -- pictures -----------------------------------------------------------------------------------------
@dataclass
class Picture:
    section: str  # "overview", "mpr", "tavr", "trajectory:<id>", "fem:<id>", "flow:<tree>"
    title: str
    image: np.ndarray
    caption: str = ""


def focus_point(case: Case) -> tuple[np.ndarray, str]:
    """Where the MPR slices cross: the first trajectory's target, the annulus centre, the first
    implant's centre, or the labelled structures' centroid (the image centre without labels)."""
    traj = case.item("trajectories")
    if traj is not None and traj.value:
        t = traj.value[0]
        return np.asarray(t["target_lps"], float), f"the target of trajectory {t.get('id')} ({t.get('name')})"
    tavr = case.item("tavr")
    if tavr is not None and tavr.value:
        return np.asarray(tavr.value["measurement"]["centre_lps"], float), "the aortic annulus centre"
    imp = case.item("implants")
    if imp is not None and imp.value:
        from surgtwin.core.plan.pose import placements_from_json

        p = placements_from_json(imp.value)[0]
        return p.world_mesh().vertices.mean(axis=0), f"the centre of implant {p.id} ({p.name})"
    lab = case.labels
    if lab is not None:
        keep = [x.value for x in lab.labels if x.name.lower() not in ENVELOPE]
        idx = np.argwhere(np.isin(lab.array[::2, ::2, ::2], keep)) * 2
        if len(idx):
            return case.volume.index_to_world(idx.mean(axis=0)), "the centroid of the labelled structures"
    return case.volume.index_to_world((np.asarray(case.volume.shape) - 1) / 2.0), "the image centre"


def slice_window(case: Case) -> tuple[float, float]:
    """The case's saved window, else one suited to its plan (bone for implants, angio for TAVR);
    a non-CT image: its 1st-99th percentile."""
    w = case.view.get("window") if isinstance(case.view, dict) else None
    if w and len(w) == 2:
        return float(w[0]), float(w[1])
    if (case.volume.modality or "CT").upper() != "CT":
        lo, hi = np.percentile(case.volume.array[::2, ::4, ::4], [1, 99])
        return float(max(hi - lo, 1.0)), float((hi + lo) / 2)
    for kind in ("implants", "tavr"):
        if case.item(kind) is not None and case.item(kind).value:
            return WINDOWS[kind]
    return WINDOWS["default"]


def side_view(axis) -> tuple[np.ndarray, np.ndarray]:
    """(camera direction, up) looking at ``axis`` from the front: the anterior view turned so that
    the axis lies in the picture plane."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    d = np.array([0.0, -1.0, 0.0]) + a * a[1]  # anterior, less its part along the axis
    if np.linalg.norm(d) < 0.3:
        d = np.array([1.0, 0.0, 0.0]) - a * a[0]
    d /= np.linalg.norm(d)
    up = np.array([0.0, 0.0, 1.0]) - d * d[2]
    if np.linalg.norm(up) < 0.3:
        up = np.array([0.0, -1.0, 0.0]) - d * d[1]
    return d, up / np.linalg.norm(up)


def _anatomy(case: Case, progress=None, cancel=None) -> dict:
    from surgtwin.services.pipeline import display_meshes

    meshes = {n: m for n, m in case.meshes.items() if n.lower() not in ENVELOPE}
    return display_meshes(meshes, total_triangles=TRIANGLES_3D, progress=progress, cancel=cancel) if meshes else {}


def _plan_scene(objs: dict, keep: dict) -> list:
    """Plan objects plus the structures named in ``keep`` ({name: opacity})."""
    from dataclasses import replace

    out = [o for k, o in objs.items() if k[0] != "structure"]
    out += [replace(o, opacity=keep[k[1]]) for k, o in objs.items() if k[0] == "structure" and k[1] in keep]
    return out


def report_figures(case: Case, *, size=(900, 700), progress=None, cancel=None) -> list[Picture]:
    """Every picture of the report, in order, with the section it belongs to."""
    from surgtwin.render import snapshots as sn

    pics: list[Picture] = []
    report(progress, 0.0, "report: anatomy")
    anatomy = _anatomy(case, cancel=cancel)
    objs = sn.case_objects(case, meshes=anatomy)
    plan = {k: o for k, o in objs.items() if k[0] != "structure"}
    check(cancel)
    if anatomy:
        pics.append(Picture("overview", "3D anatomy (anterior)", sn.render_scene(
            [o for k, o in objs.items() if k[0] == "structure"], size=size, view="A", title="Anatomy, anterior"),
            "Structure surfaces in their label colours (skin, fat and muscle hidden); scale bar in mm."))
    report(progress, 0.25, "report: slices")
    point, why = focus_point(case)
    window = slice_window(case)
    lab = case.labels
    env = {x.value for x in lab.labels if x.name.lower() in ENVELOPE} if lab is not None else set()
    kw = dict(window=window, labels=lab, objects=list(plan.values()), outline_only=env, max_px=size[1])
    cross = [sn.Overlay((tuple(point),), sn.CROSS_COLOUR)]
    for plane in ("axial", "coronal", "sagittal"):
        check(cancel)
        pics.append(Picture("mpr", plane, sn.mpr_image(case.volume, plane, point, overlays=cross, **kw),
                            f"Slices through {why}, LPS {sec.lps(point)} mm (yellow cross): structure outlines and plan "
                            "contours; window W/L in HU; radiological orientation."))
    report(progress, 0.45, "report: plan pictures")
    pics += _implant_pictures(case, objs, size)
    check(cancel)
    pics += _tavr_pictures(case, objs, kw, size)
    check(cancel)
    pics += _trajectory_pictures(case, objs, kw, size)
    check(cancel)
    report(progress, 0.7, "report: simulation pictures")
    pics += _fem_pictures(case, size)
    pics += _flow_pictures(case, size)
    report(progress, 0.8, f"report: {len(pics)} pictures")
    return pics


def _implant_pictures(case, objs, size) -> list[Picture]:
    from surgtwin.core.plan.pose import placements_from_json
    from surgtwin.render import snapshots as sn

    imp = case.item("implants")
    if imp is None or not imp.value:
        return []
    placed = placements_from_json(imp.value)
    targets = {f"femur_{p.target['femur']}" for p in placed if "femur" in p.target}
    targets |= {"vertebrae" for p in placed if "vertebra" in p.target}
    near = {d["structure"] for r in imp.value for d in (r.get("checks") or {}).get("distances") or []}
    keep = {**{n: 0.25 for n in targets | {"pelvis"}}, **{n: 0.8 for n in near}}
    scene = _plan_scene(objs, keep)
    implants = [objs[("implant", p.id)] for p in placed]
    axis = np.linalg.svd(np.vstack([o.world_vertices() for o in implants]) -
                         np.vstack([o.world_vertices() for o in implants]).mean(axis=0), full_matrices=False)[2][0]
    b = sn.objects_bounds(implants, margin_mm=35)
    return [Picture("overview", "3D plan: implants", sn.render_scene(
        scene, size=size, view=side_view(axis), bounds=b, title="Implants (front)"),
        "Implants (blue) in their bone (transparent) with the structures their checks watch.")]


def _tavr_pictures(case, objs, kw, size) -> list[Picture]:
    from surgtwin.render import snapshots as sn

    it = case.item("tavr")
    if it is None or not it.value:
        return []
    m = it.value["measurement"]
    c, n, u, v = (np.asarray(m[k], float) for k in ("centre_lps", "normal_lps", "u_lps", "v_lps"))
    contour = np.asarray(m["contour_lps"], float)
    ring = [sn.Overlay(tuple(map(tuple, contour)), sn.ANNULUS_COLOUR, closed=True)]
    others = [o for o in kw["objects"] if o.key[0] != "tavr" or o.key[1] == "valve"]
    # the annulus plane is the root/ventricle label interface: label outlines there are noise
    k2 = {**kw, "objects": others, "max_px": size[1], "labels": None}
    plane = sn.oblique_image(case.volume, c, u, v, half_size_mm=25.0, overlays=ring, title="Annulus plane", **k2)
    d, up = side_view(n)
    side = sn.oblique_image(case.volume, c, np.cross(up, d), -up, half_size_mm=35.0,
                            title="Along the root (coplanar)", **{**kw, "max_px": size[1]})
    keep = {"aortic_root": 0.25, "ascending_aorta": 0.25, "left_ventricle": 0.2, "coronary_artery_left": 1.0,
            "coronary_artery_right": 1.0, "calcification": 1.0}
    tavr_objs = [o for k, o in objs.items() if k[0] == "tavr"]
    b = sn.objects_bounds(tavr_objs, margin_mm=30)
    three = sn.render_scene(_plan_scene(objs, keep), size=size, view=(d, up), bounds=b, title="Valve (coplanar view)")
    return [Picture("tavr", "TAVR: annulus plane", plane, ""), Picture("tavr", "TAVR: along the root", side, ""),
            Picture("tavr", "TAVR: 3D", three,
                    "Annulus (orange) and virtual valve frame (green): in the annulus plane, in the plane along the "
                    "root, and in 3D from the coplanar direction (annulus edge-on).")]


def _trajectory_pictures(case, objs, kw, size) -> list[Picture]:
    from surgtwin.render import snapshots as sn

    it = case.item("trajectories")
    if it is None or not it.value:
        return []
    pics = []
    keep = {"skull": 0.12}
    for t in it.value:
        keep.update({n: 0.7 for n in (t.get("margins_mm") or {})})
        if t.get("target_structure"):
            keep[t["target_structure"]] = 1.0
    traj_objs = [o for k, o in objs.items() if k[0] == "trajectory"]
    for t in it.value[:4]:
        e, g = np.asarray(t["entry_lps"], float), np.asarray(t["target_lps"], float)
        path = g - e
        length = float(np.linalg.norm(path))
        d, _ = side_view(path)
        marks = [sn.Overlay((tuple(e), tuple(g)), sn.INSTRUMENT_COLOUR, dashed=True),
                 sn.Overlay((tuple(e),), sn.ENTRY_COLOUR, "entry"), sn.Overlay((tuple(g),), sn.TARGET_COLOUR, "target")]
        a = path / max(length, 1e-9)
        along = sn.oblique_image(case.volume, (e + g) / 2, _perp(a, d), a,
                                 half_size_mm=length / 2 + 20.0, overlays=marks,
                                 title=f"Trajectory {t.get('id')}: along the path", **kw)
        fu, fv = _across(a)
        across = sn.oblique_image(case.volume, g, fu, fv, half_size_mm=25.0, overlays=marks[2:],
                                  title=f"Trajectory {t.get('id')}: across at the target", **kw)
        pics.append(Picture(f"trajectory:{t.get('id')}", "along", along, ""))
        pics.append(Picture(f"trajectory:{t.get('id')}", "across", across,
                            "Left: the plane containing the path (entry at the top); right: the plane across the path "
                            "at the target (looking down the instrument). Outlines: structures; cyan: instrument."))
    b = sn.objects_bounds(traj_objs, margin_mm=30)
    d, up = side_view(np.asarray(it.value[0]["target_lps"], float) - np.asarray(it.value[0]["entry_lps"], float))
    pics.insert(0, Picture("overview", "3D plan: trajectories", sn.render_scene(
        _plan_scene(objs, keep), size=size, view=(d, up), bounds=b, title="Trajectories"),
        "Planned paths (cyan: pass, red: fail), entry (light blue) and target (pink) with the target structure and "
        "the critical structures they are checked against; skull transparent."))
    return pics


def _perp(a, d):
    """Screen-right for a picture whose screen-down is the path ``a``, seen from the camera side ``d``."""
    u = np.cross(d, a)
    return u / max(np.linalg.norm(u), 1e-9)


def _across(a):
    ref = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([0.0, -1.0, 0.0])
    u = np.cross(ref, a)
    u /= np.linalg.norm(u)
    return u, np.cross(a, u)


def _fem_pictures(case, size) -> list[Picture]:
    from surgtwin.render import snapshots as sn
    from surgtwin.render.scene import SceneObject

    pics = []
    for key in sec.fem_keys(case):
        it = case.item(key)
        tet = case.item(it.provenance.parameters.get("tet_item", ""))
        if tet is None:
            continue
        a, mesh = it.value, tet.value
        bone = np.flatnonzero(np.asarray(a["implant_elements"]) == 0)
        faces, elements = mesh.boundary(bone)
        si, sa = np.asarray(a["sed_intact_mpa"], float), np.asarray(a["sed_implanted_mpa"], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.clip(np.where(si > 0, 100.0 * (sa - si) / np.maximum(si, 1e-30), 0.0), -100, 100)
        obj = SceneObject(("fem", key), np.asarray(mesh.nodes, float), faces, scalars=change[elements],
                          cmap="coolwarm", clim=(-100.0, 100.0), scalar_title="SED change %")
        axis = np.linalg.svd(mesh.nodes - mesh.nodes.mean(axis=0), full_matrices=False)[2][0]
        pics.append(Picture(key, key, sn.render_scene([obj], size=size, view=side_view(axis),
                                                      title=f"{key}: bone SED change, implanted vs intact"),
                            "Strain energy density change per element on the bone surface (blue: less load than "
                            "the intact bone, i.e. stress shielding; red: more)."))
    return pics


def _flow_pictures(case, size) -> list[Picture]:
    from surgtwin.render import snapshots as sn
    from surgtwin.render.scene import SceneObject
    from surgtwin.services.flow_view import flow_keys, flow_result

    pics = []
    for key in flow_keys(case):
        view = flow_result(case, key)
        if view is None:
            continue
        v, f, vals = view.tubes("pressure")
        obj = SceneObject(("flow", key), v, f, scalars=vals, cmap="jet", scalar_title="Mean pressure mmHg",
                          clim=(float(np.min(vals)), float(np.max(vals)) + 1e-6))
        pics.append(Picture(key, key, sn.render_scene([obj], size=size, view="A", title=f"{key}: mean pressure"),
                            "Vessel tree as tubes of the measured radius, coloured by the model's mean pressure."))
    return pics


def figures_by_section(pics: list[Picture]) -> dict:
    out: dict = {}
    groups: dict = {}
    for p in pics:
        groups.setdefault(p.section, []).append(p)
    for name, ps in groups.items():
        key = "tavr" if name == "tavr" else name
        if name == "tavr":
            out[key] = [Figure([(p.title, p.image) for p in ps[:2]], "", columns=2),
                        Figure([(ps[2].title, ps[2].image)], ps[2].caption, max_height_mm=105)]
        elif name.startswith("trajectory:"):
            out[key] = [Figure([(p.title, p.image) for p in ps], ps[-1].caption, columns=2)]
        else:
            out[key] = [Figure([(p.title, p.image)], p.caption, max_height_mm=100) for p in ps]
    return out
