"""PACS for the app and the CLI (no Qt): the node list, echo, find, retrieve into the local cache, send.

    from surgtwin.services import pacs
    nodes = pacs.load_nodes()                                   # [PacsNode], from the user's config
    ms = pacs.echo(node)                                        # C-ECHO round trip
    rows = pacs.find(node, level="series", study_uid=uid)       # [dict] (rows.truncated: hit the limit)
    folders = pacs.retrieve(node, study_uid, method="move")     # one complete cached folder per series
    pacs.send(node, [folder_or_files])                          # {"sent": n, "failed": 0, "skipped": k}
    pacs.send_case_results(case, node)                          # SEG + RTSTRUCT + snapshots of a case

Files: the node list is JSON at ``nodes_path()`` (``$SURGTWIN_PACS_NODES``, else the user's config
folder), written atomically; the cache is at ``cache_root()`` (``$SURGTWIN_PACS_CACHE``, else the user's
cache folder), laid out as ``surgtwin.core.pacs.cache`` describes.

Retrieval is per series: a C-FIND at series level learns each series' instance count, a series
complete in the cache is not fetched again, the others are fetched one by one (C-GET, or C-MOVE to our
storage SCP on ``node.store_port``) into a pending folder that is kept only when complete and verified.

Sending results back: ``send_case_results`` sends the case's SEG, RTSTRUCT and snapshots (Secondary
Capture) that reference the original study, so they file with the patient's images. ``deidentify=True``
is refused unless the node is marked ``research``: de-identified objects reference a pseudonymous
patient and study, and in a clinical PACS they would appear as a new, fake patient; to a research node
the de-identified CT goes along (the de-identified results reference it).

Every long call takes ``progress`` and ``cancel`` like the other services; errors are SurgtwinErrors
naming the node, the operation, the reason and what to do. Patient values are never logged.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.pacs import cache as pacs_cache
from surgtwin.core.pacs import dimse, query
from surgtwin.core.pacs.node import PacsNode
from surgtwin.core.progress import check, report, scaled

NODES_FILE = "pacs_nodes.json"
NODES_VERSION = 1
#: the most series one retrieve will look up in a study
MAX_SERIES_PER_STUDY = 10000
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


class FindResults(list):
    """C-FIND answers (a list of dicts); ``truncated`` is True when the limit cut the list short."""

    truncated: bool = False


# -- configuration ------------------------------------------------------------------------------------
def _user_dir(env: str, xdg: str, fallback: str) -> Path:
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA" if env == "cache" else "APPDATA") or Path.home()) / "surgtwin"
    return Path(os.environ.get(xdg) or Path.home() / fallback) / "surgtwin"


def nodes_path() -> Path:
    """The node list's file: ``$SURGTWIN_PACS_NODES``, else ``<config dir>/surgtwin/pacs_nodes.json``."""
    env = os.environ.get("SURGTWIN_PACS_NODES")
    return Path(env) if env else _user_dir("config", "XDG_CONFIG_HOME", ".config") / NODES_FILE


def cache_root() -> Path:
    """The retrieve cache: ``$SURGTWIN_PACS_CACHE``, else ``<cache dir>/surgtwin/pacs``."""
    env = os.environ.get("SURGTWIN_PACS_CACHE")
    return Path(env) if env else _user_dir("cache", "XDG_CACHE_HOME", ".cache") / "pacs"


def load_nodes() -> list[PacsNode]:
    """The configured nodes (none when the file does not exist yet)."""
    path = nodes_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise SurgtwinError(f"the PACS node list cannot be read ({exc})", path=path,
                            hint="fix or delete the file and add the nodes again") from None
    rows = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise SurgtwinError("the PACS node list has no 'nodes' list", path=path, hint="fix or delete the file")
    try:
        return [PacsNode.from_dict(r) for r in rows]
    except SurgtwinError as exc:
        raise SurgtwinError(f"a PACS node in the list is invalid: {exc}", path=path, hint="fix or delete it") from None


def save_nodes(nodes) -> None:
    """Write the node list atomically (names must be unique)."""
    nodes = list(nodes)
    names = [n.name for n in nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SurgtwinError(f"PACS node names must be unique: {', '.join(dupes)} appear more than once")
    path = nodes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": NODES_VERSION, "nodes": [n.to_dict() for n in nodes]}, indent=1)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def node_named(name: str) -> PacsNode:
    """The configured node called ``name``, else ``name`` read as inline ``AE@host:port``."""
    for node in load_nodes():
        if node.name == name:
            return node
    return PacsNode.parse(name)


def series_cache() -> pacs_cache.SeriesCache:
    return pacs_cache.SeriesCache(cache_root())


def cached_series() -> list[dict]:
    """What the cache holds: one manifest dict per complete series (with its "folder")."""
    return series_cache().entries()


# -- operations ------------------------------------------------------------------------------------
def echo(node: PacsNode) -> float:
    """C-ECHO; the round trip in milliseconds."""
    return dimse.echo(node)


def find(node: PacsNode, *, level: str = "study", patient_id: str = "", patient_name: str = "",
         study_date: str = "", modality: str = "", study_uid: str = "", series_uid: str = "", limit: int = 500,
         cancel=None) -> FindResults:
    """C-FIND at ``level`` (patient, study, series); at most ``limit`` rows (see ``query.RESULT_KEYS``).
    ``series_uid`` (series level only) finds one series."""
    if not isinstance(limit, int) or limit < 1:
        raise SurgtwinError(f"limit {limit!r} must be a whole number of at least 1")
    model, identifier = query.build_identifier(level, patient_id=patient_id, patient_name=patient_name,
                                               study_date=study_date, modality=modality, study_uid=study_uid,
                                               series_uid=series_uid)
    check(cancel)
    answers, truncated = dimse.find(node, model, identifier, limit=limit, cancel=cancel)
    rows = FindResults(query.result_dict(level, ds) for ds in answers)
    rows.truncated = truncated
    return rows


def retrieve(node: PacsNode, study_uid: str, series_uid: str = "", *, method: str = "get", progress=None,
             cancel=None) -> list[Path]:
    """Fetch a study (all its series) or one series into the cache; one complete folder per series."""
    from pydicom.dataset import Dataset

    if method not in ("get", "move"):
        raise SurgtwinError(f"retrieve method {method!r} is not 'get' or 'move'")
    op = "C-GET" if method == "get" else "C-MOVE"
    study_uid = query.check_uid(study_uid, "study_uid")
    series_uid = query.check_uid(series_uid, "series_uid")
    if not study_uid:
        raise SurgtwinError("retrieve needs a study UID", hint="find it with a study-level find")
    report(progress, 0.0, "looking up the series")
    rows = [r for r in find(node, level="series", study_uid=study_uid, series_uid=series_uid,
                            limit=MAX_SERIES_PER_STUDY, cancel=cancel)
            if r["study_uid"] in ("", study_uid) and (not series_uid or r["series_uid"] == series_uid)]
    if not rows:
        what = f"series {series_uid} of study {study_uid}" if series_uid else f"study {study_uid}"
        raise dimse.fail(node, op, f"the node has no {what}", "check the UIDs with find")
    store = series_cache()
    folders: list[Path | None] = [store.lookup(study_uid, r["series_uid"]) for r in rows]
    todo = [k for k, f in enumerate(folders) if f is None]
    total = sum(rows[k]["n_instances"] or 1 for k in todo) or 1
    done = {"n": 0}
    for i, k in enumerate(todo):
        row = rows[k]
        check(cancel)
        pending = store.begin(study_uid, row["series_uid"], expected=row["n_instances"])
        try:
            text = f"series {i + 1}/{len(todo)}"

            def on_instance(text=text):
                done["n"] += 1
                report(progress, 0.02 + 0.93 * done["n"] / total, f"{text}: {done['n']} of {total} instances")

            inbox = pacs_cache.Inbox({row["series_uid"]: pending}, on_instance=on_instance)
            ident = Dataset()
            ident.QueryRetrieveLevel = "SERIES"
            ident.StudyInstanceUID = study_uid
            ident.SeriesInstanceUID = row["series_uid"]
            try:
                sub = dimse.retrieve(node, ident, method=method, on_store=inbox.handle, cancel=cancel)
            except SurgtwinError:
                if not pending.refused:
                    raise
                sub = None  # the node gave up because our side refused instances: say that instead
            problem = pending.verify(completed=sub and sub.completed, failed=sub and sub.failed,
                                     cancel_check=lambda: check(cancel))
            if problem:
                hint = (f"check the free space and permissions of the cache folder {store.root}" if pending.refused
                        else "try again; if it persists, the node holds an incomplete or damaged series")
                raise dimse.fail(node, op, f"series {row['series_uid']}: {problem}",
                                 f"nothing of it was kept in the cache; {hint}")
            folders[k] = pending.commit({"node": node.name, "method": method, "modality": row["modality"],
                                         "series_number": row["series_number"],
                                         "series_description": row["series_description"]})
        finally:
            pending.discard()  # a no-op once committed (the folder was renamed away)
    report(progress, 1.0, f"{len(rows)} series ready ({len(todo)} fetched)")
    return [f for f in folders if f is not None]


def _store_info(path: Path) -> tuple[str, str] | None:
    """(SOP class UID, transfer syntax UID) of a DICOM file, or None when it is not one."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        meta = pydicom.filereader.read_file_meta_info(path)
        return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
    except (InvalidDicomError, AttributeError, OSError, ValueError, KeyError):
        return None


def _collect(paths) -> tuple[list[tuple[Path, str, str]], list[tuple[Path, str]], int]:
    """(DICOM files with SOP class and transfer syntax, files given by name that are not DICOM, skipped)."""
    files, bad, skipped = [], [], 0
    for p in (Path(x) for x in paths):
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                info = _store_info(f)
                if info is None or info[0] == DICOMDIR_CLASS:
                    skipped += 1
                else:
                    files.append((f, *info))
        elif p.is_file():
            info = _store_info(p)
            if info is None:
                bad.append((p, "not a DICOM file"))
            elif info[0] != DICOMDIR_CLASS:
                files.append((p, *info))
            else:
                skipped += 1
        else:
            bad.append((p, "no such file or folder"))
    return files, bad, skipped


def send(node: PacsNode, paths, *, progress=None, cancel=None) -> dict:
    """C-STORE DICOM files and folders (searched recursively; non-DICOM files in folders are skipped).
    Returns {"sent", "failed", "skipped"}; any failure raises a SurgtwinError listing the files."""
    files, bad, skipped = _collect(paths)
    if bad:
        raise dimse.fail(node, "C-STORE", "nothing sent: " + _listing(bad), "pass DICOM files or folders")
    if not files:
        raise dimse.fail(node, "C-STORE", "no DICOM files to send", "pass DICOM files or folders holding them")
    check(cancel)
    t0 = time.monotonic()

    def step(n: int, path: Path) -> None:
        report(progress, n / len(files), f"sent {n} of {len(files)} files")

    sent, failed = dimse.store(node, files, progress=step, cancel=cancel)
    if failed:
        raise dimse.fail(node, "C-STORE", f"{len(failed)} of {len(files)} files were refused: " + _listing(failed),
                         f"{len(sent)} were stored; the node's log says why the others were refused")
    return {"sent": len(sent), "failed": 0, "skipped": skipped, "seconds": round(time.monotonic() - t0, 3)}


def _listing(items: list[tuple[Path, str]], most: int = 8) -> str:
    text = "; ".join(f"{p.name}: {why}" for p, why in items[:most])
    return text + (f"; and {len(items) - most} more" if len(items) > most else "")


def send_case_results(case, node: PacsNode, *, deidentify: bool = False, snapshots=None, progress=None,
                      cancel=None) -> dict:
    """Export the case's results (SEG, RTSTRUCT, snapshots; ``snapshots=[]`` for none) and C-STORE them
    to ``node``. ``deidentify`` only to a node marked ``research`` (see the module docstring); the
    de-identified CT is sent along then. Returns send's counts plus "study_uid" and "series_uids"."""
    import shutil

    from surgtwin.services.dicom_export import export_dicom

    if deidentify and not node.research:
        raise SurgtwinError(f"PACS {node.label}: will not send de-identified results to a clinical node",
                            hint="de-identified copies would appear there as a new, fake patient; send the "
                                 "results as they are, or mark the node as a research node (research: true)")
    tmp = Path(tempfile.mkdtemp(prefix="surgtwin-pacs-send-"))
    try:
        result = export_dicom(case, tmp / "export", deidentify=deidentify, snapshots=snapshots,
                              progress=scaled(progress, 0.0, 0.5), cancel=cancel)
        files = [p for kind in ("seg", "rtstruct", "sc", "ct") for p in result.files.get(kind, [])]
        counts = send(node, files, progress=scaled(progress, 0.5, 1.0), cancel=cancel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**counts, "study_uid": result.study_uid, "series_uids": dict(result.series_uids),
            "deidentified": result.deidentified, "warnings": list(result.warnings)}
