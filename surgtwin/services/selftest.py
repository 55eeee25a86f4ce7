"""The installation self-test (``surgtwin selftest``; a frozen build: ``surgtwin --selftest``).

Headless, on the smallest bundled sample case, it runs what a hospital installation needs to work:

1. ``environment``: the versions in use, and whether this is a frozen (installer) build;
2. ``codecs``: the DICOM pixel decoders (JPEG, JPEG-LS, JPEG 2000, RLE) hospital archives use load;
3. ``model``: the bundled segmentation model is present and its weights match the recorded sha256;
4. ``open``: the sample's DICOM series opens as a case;
5. ``segment``: the pipeline's segment step with the bundled model (MONAI + torch);
6. ``mesh``: the mesh step (surfaces of every structure the quality gate lets through);
7. ``render``: one offscreen VTK frame of the meshes, checked not to be blank (saved as ``frame.png``);
8. ``report``: the case report (``surgtwin.services.report.write_report``).

Each stage is timed and reported through ``progress`` (one line per stage). The first failing stage
stops the test; ``SelftestResult.failure`` is one line naming the stage and the reason. No network
and nothing outside ``out_dir`` is written.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from surgtwin.core.errors import SurgtwinError

#: the stages, in order
STAGES = ("environment", "codecs", "model", "open", "segment", "mesh", "render", "report")
#: the offscreen frame's size in pixels (width, height)
FRAME_SIZE = (640, 480)
#: a frame is "not blank" when at least this fraction of its pixels differs from the background
MIN_DRAWN_FRACTION = 0.01


@dataclass
class Stage:
    name: str
    status: str  # "ok" | "failed"
    seconds: float
    detail: str


@dataclass
class SelftestResult:
    out_dir: Path
    stages: list[Stage] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.stages) and len(self.stages) == len(STAGES)

    @property
    def failure(self) -> str | None:
        """One line: the failed stage and why (None when the test passed)."""
        for s in self.stages:
            if s.status == "failed":
                return f"{s.name}: {s.detail}"
        return None if self.ok else "incomplete"


def one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def is_frozen() -> bool:
    """True inside a PyInstaller build."""
    return bool(getattr(sys, "frozen", False))


def smallest_sample():
    """The bundled sample case with the fewest DICOM bytes."""
    from surgtwin.services.pipeline import sample_cases, sample_root

    cases = sample_cases()
    if not cases:
        raise SurgtwinError("no sample cases found", path=sample_root(),
                            hint="the installation is incomplete: reinstall surgtwin")

    def size(case) -> int:
        return sum(p.stat().st_size for p in case.dicom.rglob("*") if p.is_file())

    return min(cases, key=size)


def bundled_bundle_dir() -> Path:
    """The model bundle shipped inside surgtwin (not ``SURGTWIN_MODEL_DIR``: the test is of the install)."""
    from surgtwin import resources
    from surgtwin.core.segmentation.bundle import DEFAULT_BUNDLE_NAME

    return resources.bundled_model_dir() / DEFAULT_BUNDLE_NAME


def drawn_fraction(image, background) -> float:
    """Fraction of an (H, W, 3|4) frame's pixels that differ from ``background`` (RGB 0..255)."""
    import numpy as np

    rgb = np.asarray(image)[..., :3].astype(np.int16)
    bg = np.asarray(background, dtype=np.int16).reshape(1, 1, 3)
    return float(np.mean(np.any(np.abs(rgb - bg) > 8, axis=-1)))


def render_frame(meshes: dict, png_path: Path) -> str:
    """Render ``meshes`` into one offscreen frame, save it, and refuse a blank one. Returns a summary."""
    import numpy as np
    import pyvista as pv
    import vtk

    from surgtwin.render.scene import ScenePainter, add_orientation_marker, structure_objects

    background = (0, 0, 0)
    warnings_were_on = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()  # "bad X server connection" while VTK falls back to EGL
    plotter = pv.Plotter(off_screen=True, window_size=list(FRAME_SIZE))
    try:
        plotter.set_background(np.asarray(background) / 255.0)
        painter = ScenePainter(plotter)
        painter.sync(structure_objects(meshes, {}))
        add_orientation_marker(plotter)
        painter.standard_view("A")
        image = plotter.screenshot(return_img=True)
        window = plotter.render_window.GetClassName()
        renderer = ""
        caps = plotter.render_window.ReportCapabilities() or ""
        for line in caps.splitlines():
            if line.lower().startswith("opengl renderer string"):
                renderer = line.split(":", 1)[-1].strip()
    finally:
        plotter.close()
        vtk.vtkObject.SetGlobalWarningDisplay(warnings_were_on)
    fraction = drawn_fraction(image, background)
    if fraction < MIN_DRAWN_FRACTION:
        raise RuntimeError(f"the offscreen frame is blank ({fraction:.2%} of pixels drawn; {window}"
                           f"{', ' + renderer if renderer else ''})")
    _save_png(image, png_path)
    return (f"{image.shape[1]}x{image.shape[0]} frame, {fraction:.0%} drawn, {window}"
            f"{' (' + renderer + ')' if renderer else ''}")


def _save_png(image, path: Path) -> None:
    import numpy as np
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    arr = np.ascontiguousarray(np.asarray(image)[::-1, :, :3], dtype=np.uint8)  # VTK's rows go bottom-up
    img = vtk.vtkImageData()
    img.SetDimensions(arr.shape[1], arr.shape[0], 1)
    img.GetPointData().SetScalars(numpy_to_vtk(arr.reshape(-1, 3), deep=True))
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(img)
    writer.Write()


def run_selftest(out_dir=None, *, progress=print) -> SelftestResult:
    """Run every stage in ``STAGES`` (see the module doc), writing into ``out_dir`` (default: a new
    temporary folder, kept so its frame and report can be looked at). ``progress(line)`` gets one
    line per stage. Never raises for a failing stage: the result says which stage failed and why."""
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="surgtwin-selftest-"))
    out.mkdir(parents=True, exist_ok=True)
    result = SelftestResult(out)
    state: dict = {}
    t_all = time.perf_counter()
    runners = {"environment": _environment, "codecs": _codecs, "model": _model, "open": _open, "segment": _segment,
               "mesh": _mesh, "render": _render, "report": _report}
    for i, name in enumerate(STAGES, 1):
        t0 = time.perf_counter()
        try:
            status, detail = "ok", runners[name](state, out)
        except SurgtwinError as exc:
            status, detail = "failed", one_line(exc)
        except Exception as exc:  # noqa: BLE001 - the test reports any failure as one line
            status, detail = "failed", one_line(f"{type(exc).__name__}: {exc}")
        stage = Stage(name, status, time.perf_counter() - t0, detail)
        result.stages.append(stage)
        progress(f"[{i}/{len(STAGES)}] {name:<11} {status:<7} {stage.seconds:6.1f} s  {detail}")
        if status == "failed":
            break
    result.seconds = time.perf_counter() - t_all
    return result


# -- the stages: each takes the shared state and the output folder, returns its one-line detail ---------
def _environment(state: dict, out: Path) -> str:
    import platform

    import monai
    import torch
    import vtk

    from surgtwin import __version__

    if is_frozen():
        build = f"frozen build in {Path(sys.executable).resolve().parent}"
    else:
        build = f"from source in {Path(__file__).resolve().parents[1]}"
    cuda = "CUDA available" if torch.cuda.is_available() else "CPU only"
    return (f"surgtwin {__version__} ({build}), Python {platform.python_version()}, torch {torch.__version__} "
            f"({cuda}), monai {monai.__version__}, vtk {vtk.vtkVersion.GetVTKVersion()}")


#: transfer syntaxes (pydicom decoder names) whose decoder must load: compressed CT archives use them
REQUIRED_DECODERS = {"JPEG lossless": "JPEGLosslessSV1Decoder", "JPEG baseline": "JPEGBaseline8BitDecoder",
                     "JPEG-LS": "JPEGLSLosslessDecoder", "JPEG 2000": "JPEG2000LosslessDecoder",
                     "RLE": "RLELosslessDecoder"}


def _codecs(state: dict, out: Path) -> str:
    from pydicom.pixels import decoders

    missing, plugins = [], set()
    for label, name in REQUIRED_DECODERS.items():
        dec = getattr(decoders, name)
        if not dec.is_available:
            missing.append(label)
        plugins.update(dec.available_plugins)
    if missing:
        raise SurgtwinError(f"no pixel-data decoder for {', '.join(missing)}",
                            hint="the installation lacks the pylibjpeg plugins: reinstall surgtwin")
    return f"{', '.join(REQUIRED_DECODERS)} decoders ({', '.join(sorted(plugins))})"


def _model(state: dict, out: Path) -> str:
    from surgtwin.core.segmentation import load_bundle
    from surgtwin.core.segmentation.bundle import sha256_file

    folder = bundled_bundle_dir()
    bundle = load_bundle(folder)
    digest = sha256_file(bundle.weights_path)
    if digest.lower() != bundle.weights_sha256.lower():
        raise SurgtwinError(f"weights sha256 {digest[:16]}… differs from the recorded {bundle.weights_sha256[:16]}…",
                            path=bundle.weights_path, hint="the installation is damaged: reinstall surgtwin")
    state["bundle"] = folder
    state["sha256"] = digest
    return f"{bundle.name} {bundle.version}, {bundle.weights_path.name} sha256 {digest[:16]}… verified"


def _open(state: dict, out: Path) -> str:
    from surgtwin.services.pipeline import new_case

    sample = smallest_sample()
    case = new_case(sample.folder)
    state["case"] = case
    shape = "x".join(str(n) for n in case.volume.shape)
    return f"sample '{sample.name}' ({shape} voxels, {case.volume.modality or '?'})"


def _segment(state: dict, out: Path) -> str:
    from surgtwin.services.pipeline import run_steps

    case = state["case"]
    (step,) = run_steps(case, ["segment"], options={"segment": {"method": "model", "bundle": str(state["bundle"])}})
    prov = case.item("labels").provenance
    used = (prov.model or {}).get("sha256") or ""
    if prov.method != "segment:model" or used.lower() != state["sha256"].lower():
        raise RuntimeError(f"the segmentation did not use the bundled model (method {prov.method}, "
                           f"weights sha256 {used[:16] or 'none'})")
    found = [n for n, s in step.summary["structures"].items() if s["volume_ml"] > 0]
    if not found:
        raise RuntimeError("the bundled model found no structure in the sample case")
    return f"{len(found)} structures ({', '.join(found[:6])}{', …' if len(found) > 6 else ''})"


def _mesh(state: dict, out: Path) -> str:
    from surgtwin.services import quality
    from surgtwin.services.pipeline import run_steps

    case = state["case"]
    (step,) = run_steps(case, ["mesh"], options={"mesh": quality.usable_structures(case)})
    meshes = case.meshes
    if not meshes:
        raise RuntimeError("no surface was built")
    triangles = sum(int(len(m.faces)) for m in meshes.values())
    return f"{len(meshes)} surfaces, {triangles:,} triangles"


def _render(state: dict, out: Path) -> str:
    return render_frame(state["case"].meshes, out / "frame.png")


def _report(state: dict, out: Path) -> str:
    from surgtwin.services.report import write_report

    path = Path(write_report(state["case"], out / "report.pdf"))
    if not path.is_file() or path.stat().st_size == 0 or not path.read_bytes()[:5] == b"%PDF-":
        raise RuntimeError(f"the report was not written as a PDF ({path})")
    return f"{path.name} ({path.stat().st_size / 1024:.0f} kB)"
