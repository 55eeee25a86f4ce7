"""The 3D scene: paints scene objects (structure meshes now; implants, trajectories later) onto any
pyvista plotter (a Qt ``QtInteractor`` or an offscreen ``pv.Plotter``). No Qt here.

Scene objects are keyed, so a later issue adds e.g. ``("implant", "screw-1")`` objects without
touching the painter. All coordinates are LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: camera direction (from focal point to camera, LPS) and view-up per standard view
STANDARD_VIEWS = {
    "A": ((0, -1, 0), (0, 0, 1)),
    "P": ((0, 1, 0), (0, 0, 1)),
    "L": ((1, 0, 0), (0, 0, 1)),
    "R": ((-1, 0, 0), (0, 0, 1)),
    "S": ((0, 0, 1), (0, -1, 0)),
    "I": ((0, 0, -1), (0, -1, 0)),
}


@dataclass
class SceneObject:
    """A mesh in the scene. ``vertices`` are LPS mm, or in a local frame placed by ``matrix`` (4x4
    local -> LPS; an implant being moved only changes its matrix). ``scalars`` (one per face) colour
    it through ``cmap`` over ``clim`` with a scalar bar titled ``scalar_title`` (FE results);
    ``contour`` draws its outline in the MPR views."""

    key: tuple[str, str]  # (kind, name), e.g. ("structure", "liver"), ("implant", "1")
    vertices: np.ndarray  # (N, 3)
    faces: np.ndarray  # (M, 3) triangles
    color: tuple[int, int, int] = (200, 200, 200)
    opacity: float = 1.0
    visible: bool = True
    value: int | None = None  # label value for structures
    matrix: np.ndarray | None = None
    scalars: np.ndarray | None = None
    cmap: str = "coolwarm"
    clim: tuple[float, float] | None = None
    scalar_title: str = ""
    contour: bool = False

    def world_vertices(self) -> np.ndarray:
        if self.matrix is None:
            return np.asarray(self.vertices, float)
        m = np.asarray(self.matrix, float)
        return np.asarray(self.vertices, float) @ m[:3, :3].T + m[:3, 3]


def polydata(vertices: np.ndarray, faces: np.ndarray):
    import pyvista as pv

    f = np.asarray(faces, dtype=np.int64)
    cells = np.hstack([np.full((len(f), 1), 3, dtype=np.int64), f]).ravel()
    return pv.PolyData(np.asarray(vertices, dtype=np.float64), cells)


def structure_objects(meshes: dict, display: dict) -> dict:
    """Scene objects for ``StructureMesh``es with their display settings (by label value)."""
    out = {}
    for name, m in meshes.items():
        d = display.get(int(m.label))
        out[("structure", name)] = SceneObject(
            ("structure", name), m.vertices, m.faces,
            color=d.color if d else tuple(int(c) for c in m.color[:3]), opacity=d.opacity_3d if d else 1.0,
            visible=d.visible if d else True, value=int(m.label))
    return out


def image_data(volume, *, max_dim: int = 160):
    """The volume as a pyvista ImageData in LPS (subsampled to at most ``max_dim`` per axis)."""
    import pyvista as pv

    step = [max(1, int(np.ceil(n / max_dim))) for n in volume.shape]
    arr = volume.array[:: step[0], :: step[1], :: step[2]]
    aff = volume.affine[:3, :3] * np.asarray(step, float)  # columns (k, j, i)
    cols_ijk = aff[:, ::-1]
    spacing = np.linalg.norm(cols_ijk, axis=0)
    img = pv.ImageData(dimensions=arr.shape[::-1], spacing=spacing, origin=volume.affine[:3, 3],
                       direction_matrix=cols_ijk / spacing)
    img.point_data["HU"] = np.ascontiguousarray(arr).ravel(order="C").astype(np.float32)
    return img


class ScenePainter:
    """Keeps a plotter's actors in step with a dict of ``SceneObject``s."""

    def __init__(self, plotter) -> None:
        self.plotter = plotter
        self.actors: dict = {}
        self._objects: dict = {}
        self._cross_actor = None
        self._cross_size = None
        self._volume_actor = None

    def sync(self, objects: dict, *, kind: str | None = None) -> None:
        """Make the scene show exactly ``objects`` (of ``kind`` only, when given)."""
        for key in [k for k in self.actors if (kind is None or k[0] == kind) and k not in objects]:
            self.remove(key)
        for obj in objects.values():
            self.put(obj)

    def put(self, obj: SceneObject) -> None:
        """Show ``obj`` (replacing the object with its key); a new pose or colour of the same mesh
        only updates the actor."""
        key = obj.key
        old = self._objects.get(key)
        same_mesh = old is not None and old.vertices is obj.vertices and old.faces is obj.faces
        if same_mesh and key in self.actors and old.scalars is obj.scalars:
            self.update(key, color=obj.color, opacity=obj.opacity, visible=obj.visible)
            self.set_matrix(key, obj.matrix)
            self._objects[key] = obj
            return
        self.remove(key)
        mesh = polydata(obj.vertices, obj.faces)
        style = dict(opacity=obj.opacity, smooth_shading=obj.scalars is None, name="/".join(key), specular=0.3,
                     specular_power=20, render=False, reset_camera=False)
        if obj.scalars is not None:
            mesh.cell_data[obj.scalar_title or "value"] = np.asarray(obj.scalars, float)
            actor = self.plotter.add_mesh(mesh, scalars=obj.scalar_title or "value", cmap=obj.cmap, clim=obj.clim,
                                          show_scalar_bar=True, scalar_bar_args={
                                              "title": obj.scalar_title, "vertical": True, "position_x": 0.8,
                                              "position_y": 0.1, "height": 0.7, "width": 0.08, "n_labels": 5,
                                              "fmt": "%.3g", "color": "white"}, **style)
        else:
            actor = self.plotter.add_mesh(mesh, color=np.asarray(obj.color) / 255.0, **style)
        actor.SetVisibility(obj.visible)
        self.actors[key] = actor
        self._objects[key] = obj
        self.set_matrix(key, obj.matrix)

    def remove(self, key) -> None:
        obj = self._objects.pop(key, None)
        actor = self.actors.pop(key, None)
        if actor is not None:
            self.plotter.remove_actor(actor, render=False)
        if obj is not None and obj.scalars is not None and obj.scalar_title in getattr(self.plotter, "scalar_bars", {}):
            self.plotter.remove_scalar_bar(obj.scalar_title, render=False)

    def set_matrix(self, key, matrix) -> None:
        actor = self.actors.get(key)
        if actor is not None:
            actor.user_matrix = np.eye(4) if matrix is None else np.asarray(matrix, float)

    def object(self, key) -> SceneObject | None:
        return self._objects.get(key)

    def update(self, key, *, color=None, opacity=None, visible=None) -> None:
        actor = self.actors.get(key)
        if actor is None:
            return
        prop = actor.GetProperty()
        if color is not None:
            prop.SetColor(*(np.asarray(color, float) / 255.0))
        if opacity is not None:
            prop.SetOpacity(float(opacity))
        if visible is not None:
            actor.SetVisibility(bool(visible))

    def pick_key(self, actor):
        for key, a in self.actors.items():
            if a is actor:
                return key
        return None

    def set_crosshair(self, lps, size_mm: float = 6.0) -> None:
        """A small sphere at the MPR crosshair; made once, then only moved (cheap on every slice step)."""
        import pyvista as pv

        if self._cross_actor is None or self._cross_size != size_mm:
            if self._cross_actor is not None:
                self.plotter.remove_actor(self._cross_actor, render=False)
            sphere = pv.Sphere(radius=size_mm / 2, center=(0, 0, 0), theta_resolution=16, phi_resolution=16)
            self._cross_actor = self.plotter.add_mesh(sphere, color=(1.0, 0.85, 0.1), name="crosshair",
                                                      pickable=False, render=False, reset_camera=False)
            self._cross_size = size_mm
        self._cross_actor.SetPosition(*np.asarray(lps, float))

    def set_volume(self, volume, preset: str | None) -> None:
        """Volume rendering of ``volume`` with a CT preset; ``preset=None`` removes it."""
        from surgtwin.render.presets import VOLUME_PRESETS

        if self._volume_actor is not None:
            self.plotter.remove_actor(self._volume_actor, render=False)
            self._volume_actor = None
        if volume is None or preset is None:
            return
        import vtk

        hu, alpha, rgb = VOLUME_PRESETS[preset]
        img = image_data(volume)
        otf = vtk.vtkPiecewiseFunction()
        ctf = vtk.vtkColorTransferFunction()
        for h, a, c in zip(hu, alpha, rgb, strict=True):
            otf.AddPoint(h, a)
            ctf.AddRGBPoint(h, *c)
        mapper = vtk.vtkSmartVolumeMapper()
        mapper.SetInputData(img)
        mapper.SetBlendModeToComposite()
        prop = vtk.vtkVolumeProperty()
        prop.SetScalarOpacity(otf)
        prop.SetColor(ctf)
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOn()
        prop.SetScalarOpacityUnitDistance(float(np.mean(img.spacing)) * 1.5)
        vol = vtk.vtkVolume()
        vol.SetMapper(mapper)
        vol.SetProperty(prop)
        vol.SetPickable(False)
        self.plotter.renderer.AddVolume(vol)
        self._volume_actor = vol

    def standard_view(self, name: str, *, bounds=None) -> None:
        direction, up = STANDARD_VIEWS[name]
        cam = self.plotter.camera
        b = bounds if bounds is not None else self.plotter.bounds
        centre = np.array([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2])
        dist = max(1.0, float(np.linalg.norm([b[1] - b[0], b[3] - b[2], b[5] - b[4]]))) * 1.6
        cam.focal_point = centre
        cam.position = centre + np.asarray(direction, float) * dist
        cam.up = up
        self.plotter.reset_camera(render=False)
        self.plotter.reset_camera_clipping_range()


def add_orientation_marker(plotter) -> None:
    """LPS axes marker (x = L, y = P, z = S) in the corner."""
    plotter.add_axes(xlabel="L", ylabel="P", zlabel="S", line_width=3, color="white", viewport=(0, 0, 0.22, 0.22))
