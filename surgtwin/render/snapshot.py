"""Offscreen pictures of structure meshes (no Qt, no display: VTK falls back to EGL/OSMesa)."""

from __future__ import annotations

from pathlib import Path


def snapshot_meshes(meshes: dict, out_png, *, view: str = "A", size=(1024, 768), display=None) -> Path:
    """Render ``meshes`` (name -> mesh with vertices/faces/value/colour) to a PNG."""
    import pyvista as pv

    from surgtwin.render.scene import ScenePainter, add_orientation_marker, structure_objects

    pl = pv.Plotter(off_screen=True, window_size=list(size))
    try:
        pl.set_background("#1d2330", top="#3a4356")
        painter = ScenePainter(pl)
        painter.sync(structure_objects(meshes, display or {}))
        add_orientation_marker(pl)
        painter.standard_view(view)
        pl.screenshot(str(out_png))
    finally:
        pl.close()
    return Path(out_png)
