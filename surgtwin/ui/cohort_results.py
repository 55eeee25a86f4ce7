"""The Cohort window's results: a sortable Qt model over the cohort's results ``DataFrame``
(``surgtwin.services.cohort_table.results_table``; any DataFrame with a ``case_id`` column works) and
the panel that shows it, with Open results… (an earlier run's folder, nothing run), Open case (in the
main window), Open report and Open folder.

A view only: the key columns come first (case, status, time, the TAVR sizing and gradient, structure
volumes, Dice), the rest after them in the table's own order; failed rows are tinted and carry their
error as a tooltip; headers are short two-line labels with the table's column name as tooltip.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
)

from surgtwin.core.errors import SurgtwinError
from surgtwin.ui.pacs_nodes import ERROR_STYLE

#: shown first, in this order, when present
KEY_COLUMNS = ("case_id", "status", "arm", "seconds", "tavr:valve_family", "tavr:valve_size",
               "tavr:mean_gradient_mmhg", "tavr:cardiac_output_l_min", "tavr:ppm", "tavr:bsa_m2", "tavr:perimeter_mm",
               "tavr:area_mm2", "tavr:eccentricity", "flow:min_pd_pp", "flow:max_stenosis_drop_mmhg",
               "fem:bone_sed_change_percent", "fem:proximal_sed_change_percent")
#: then these column groups (by prefix), then everything else
KEY_GROUPS = ("tavr:recommended:", "volume_ml:", "dice:")
#: pushed to the end (still there, for the curious)
LATE_COLUMNS = ("failed_step", "error", "source_kind", "source_path", "steps", "open_seconds", "peak_rss_mb")
LATE_GROUPS = ("seconds:", "status:", "confidence:", "truth:")

HEADERS = {"case_id": "Case", "status": "Status", "seconds": "Time\ns", "failed_step": "Failed\nstep",
           "error": "Error", "source_kind": "Source", "source_path": "Study", "phantom": "Phantom", "seed": "Seed",
           "pixel_mm": "Pixel\nmm", "slice_mm": "Slice\nmm", "steps": "Steps", "open_seconds": "Open\ns",
           "peak_rss_mb": "Peak mem.\nMB"}
GROUP_TITLES = {"tavr": "TAVR", "flow": "Flow", "fem": "FE", "implant": "Implant", "truth": "Truth",
                "seconds": "Time s", "status": "Status"}
UNITS = (("_mm2", " mm²"), ("_cm2_m2", " cm²/m²"), ("_cm2", " cm²"), ("_mmhg", " mmHg"), ("_ml_s", " ml/s"),
         ("_ml", " ml"), ("_mm", " mm"), ("_mpa", " MPa"), ("_percent", " %"), ("_kj_m3", " kJ/m³"),
         ("_mb", " MB"), ("_l_min", " l/min"), ("_bpm", " bpm"), ("_m2", " m²"))
#: abbreviations written in capitals in a header
ACRONYMS = {"ppm": "PPM", "bsa": "BSA", "pvl": "PVL", "eoa": "EOA"}
FAILED_BG = QColor("#4a2227")
FAILED_FG = QColor("#ff8a8a")
OK_FG = QColor("#7bd88f")
PENDING_FG = QColor("#8891a5")  # not run yet, running, or stopped part-way (a rerun resumes it)
MAX_TEXT = 80
MAX_COLUMN_PX = 190
TABLE_STYLE = ("QTableView { background: #1f242e; alternate-background-color: #242a35; gridline-color: #2c3240;"
               " border: 1px solid #2c3240; }")


def display_order(columns) -> list[str]:
    """The table's columns in display order: key columns, key groups, the rest, then the late ones."""
    cols = list(dict.fromkeys(str(c) for c in columns))
    first = [c for c in KEY_COLUMNS if c in cols]
    groups = [c for g in KEY_GROUPS for c in cols if c.startswith(g)]
    late = [c for c in LATE_COLUMNS if c in cols] + [c for g in LATE_GROUPS for c in cols if c.startswith(g)]
    taken = set(first) | set(groups) | set(late)
    return first + groups + [c for c in cols if c not in taken] + late


def _pretty(name: str) -> str:
    unit = ""
    for suffix, u in UNITS:
        if name.endswith(suffix):
            name, unit = name[: -len(suffix)], u
            break
    return " ".join(ACRONYMS.get(w, w) for w in name.replace("pd_pp", "Pd/Pp").split("_")) + unit


def header_text(column: str) -> str:
    """A short two-line header: ``volume_ml:left_ventricle`` -> "left ventricle\\nml"."""
    if column in HEADERS:
        return HEADERS[column]
    group, _, rest = column.partition(":")
    if not rest:
        return _pretty(column)
    if group == "volume_ml":
        return f"{rest.replace('_', ' ')}\nml"
    if group in ("dice", "confidence"):
        return f"{rest.replace('_', ' ')}\n{'Dice' if group == 'dice' else 'confidence'}"
    if group == "tavr" and rest.startswith("recommended:"):
        return f"TAVR size\n{rest.split(':', 1)[1]}"
    return f"{GROUP_TITLES.get(group, group)}\n{_pretty(rest.replace(':', ' '))}"


def is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def format_value(v) -> str:
    """A cell's text: numbers to a sensible precision, empty for missing."""
    if is_missing(v):
        return ""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if is_number(v):
        f = float(v)
        if math.isnan(f):
            return ""
        if f == int(f) and abs(f) < 1e9:
            return str(int(f))
        a = abs(f)
        return f"{f:.3f}" if a < 1 else f"{f:.2f}" if a < 100 else f"{f:.1f}" if a < 10_000 else f"{f:.0f}"
    text = str(v)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class ResultsModel(QAbstractTableModel):
    """One row per case of a results DataFrame; ``sort`` reorders the frame (missing values last)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.frame = None
        self.columns: list[str] = []
        self._pos: dict[str, int] = {}

    def set_frame(self, df) -> None:
        self.beginResetModel()
        if df is None:
            self.frame, self.columns = None, []
        else:
            self.columns = display_order(df.columns)
            self.frame = df[self.columns].reset_index(drop=True)
        self._pos = {c: i for i, c in enumerate(self.columns)}
        self.endResetModel()

    # -- rows --------------------------------------------------------------------------------------
    def value(self, row: int, column: str):
        if self.frame is None or column not in self._pos or not 0 <= row < len(self.frame):
            return None
        v = self.frame.iat[row, self._pos[column]]
        return None if is_missing(v) else v

    def case_id(self, row: int) -> str | None:
        v = self.value(row, "case_id")
        return None if v is None else str(v)

    def status(self, row: int) -> str:
        return str(self.value(row, "status") or "")

    def failed(self, row: int) -> bool:
        return self.status(row) == "failed"

    def counts(self) -> tuple[int, int]:
        """(cases, failed)."""
        n = self.rowCount()
        return n, sum(self.failed(r) for r in range(n))

    # -- the Qt model ------------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if self.frame is None or parent.isValid() else len(self.frame)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        col = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return header_text(col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return col
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            v = self.value(row, col)
            if col == "status" and self.failed(row) and self.value(row, "failed_step"):
                return f"{v} ({self.value(row, 'failed_step')})"
            return format_value(v)
        if role == Qt.ItemDataRole.ToolTipRole:
            if self.failed(row):
                return str(self.value(row, "error") or self.status(row))
            text = format_value(self.value(row, col))
            return text if len(text) > 12 else None
        if role == Qt.ItemDataRole.BackgroundRole and self.failed(row):
            return QBrush(FAILED_BG)
        if role == Qt.ItemDataRole.ForegroundRole and col == "status":
            status = self.status(row)
            return QBrush(FAILED_FG if status == "failed" else OK_FG if status == "ok" else PENDING_FG)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int((Qt.AlignmentFlag.AlignRight if is_number(self.value(row, col)) else Qt.AlignmentFlag.AlignLeft)
                       | Qt.AlignmentFlag.AlignVCenter)
        return None

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if self.frame is None or not 0 <= column < len(self.columns):
            return
        self.beginResetModel()  # the selection goes: the rows move
        col = self.columns[column]
        ascending = order == Qt.SortOrder.AscendingOrder
        try:
            self.frame = self.frame.sort_values(col, ascending=ascending, na_position="last", kind="stable")
        except TypeError:  # mixed text and numbers: sort as text
            self.frame = self.frame.sort_values(col, ascending=ascending, na_position="last", kind="stable",
                                                key=lambda s: s.map(lambda v: "" if is_missing(v) else str(v)))
        self.frame = self.frame.reset_index(drop=True)
        self.endResetModel()


def find_report(out_dir) -> Path | None:
    """The cohort report of an output folder, or None when it has none (yet)."""
    from surgtwin.services.cohort_report import REPORT_NAME

    path = Path(out_dir) / REPORT_NAME
    return path if path.is_file() else None


def open_url(path) -> bool:
    """Open a file or folder with the desktop's application for it."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def error_text(exc: SurgtwinError) -> str:
    text = exc.reason + (f"\nFile: {exc.path}" if exc.path else "")
    return text + (f"\nWhat to do: {exc.hint}" if exc.hint else "")


class ResultsPanel(QGroupBox):
    """The results table of one output folder and what to do with a row; ``window``: the main window
    (a case opens there). Messages for the user go out through ``message(text, style)``."""

    message = Signal(str, str)

    def __init__(self, window, parent=None) -> None:
        super().__init__("Results", parent)
        self.win = window
        self.out_dir: Path | None = None  # the folder whose results the table shows
        self.report_path: Path | None = None
        self.busy = False  # a run is writing into out_dir
        self._sort: tuple[str, Qt.SortOrder] | None = None  # (column, order) the user sorted by
        lay = QVBoxLayout(self)
        self.label = QLabel("No results yet: run the cohort, or open the results of an earlier run.", self)
        self.label.setObjectName("cohortResultsLabel")
        lay.addWidget(self.label)
        self.model = ResultsModel(self)
        self.table = QTableView(self)
        self.table.setObjectName("cohortTable")
        self.table.setStyleSheet(TABLE_STYLE)
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        hdr = self.table.horizontalHeader()
        hdr.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        hdr.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setSortingEnabled(True)
        hdr.sortIndicatorChanged.connect(self._sorted)
        self.table.doubleClicked.connect(lambda *_: self.open_case())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self.sync())
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.open_results_button = self._button("Open results…", self.open_results_dialog, row,
                                                "Show the results table of an earlier cohort run (runs nothing)")
        self.open_case_button = self._button("Open case", self.open_case, row,
                                             "Open the selected case in the main window (or double-click it)")
        self.open_report_button = self._button("Open report", self.open_report, row, "The cohort report (PDF)")
        self.open_folder_button = self._button("Open folder", self.open_folder, row,
                                               "The output folder: cases/, results/, the table (CSV, Parquet)")
        row.addStretch(1)
        lay.addLayout(row)
        self.sync()

    def _button(self, text: str, slot, row, tip: str) -> QPushButton:
        b = QPushButton(text, self)
        b.setAutoDefault(False)
        b.setObjectName("cohort" + "".join(w.capitalize() for w in text.rstrip("…").split()))
        b.setToolTip(tip)
        b.clicked.connect(lambda *_: slot())
        row.addWidget(b)
        return b

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.sync()

    def sync(self) -> None:
        self.open_results_button.setEnabled(not self.busy)
        self.open_case_button.setEnabled(self.selected_row() is not None)
        self.open_report_button.setEnabled(self.report_path is not None and not self.busy)
        self.open_folder_button.setEnabled(self.out_dir is not None)

    def load(self, out_dir, *, quiet: bool = False) -> bool:
        """Show the results table of ``out_dir``; ``quiet``: say nothing when it has none (yet)."""
        from surgtwin.services.cohort_table import results_table

        try:
            df = results_table(out_dir)
        except SurgtwinError as exc:
            if not quiet:
                self.message.emit(f"Open results: {error_text(exc)}", ERROR_STYLE)
            return False
        old = (list(self.model.columns), self.model.rowCount())
        self.model.set_frame(df)
        if self._sort is not None and self._sort[0] in self.model.columns:
            self.model.sort(self.model.columns.index(self._sort[0]), self._sort[1])
        if not quiet or (self.model.columns, self.model.rowCount()) != old:  # fit the widths to the cells
            self.table.resizeColumnsToContents()
            for c in range(self.model.columnCount()):
                self.table.setColumnWidth(c, min(self.table.columnWidth(c), MAX_COLUMN_PX))
        self.out_dir = Path(out_dir)
        self.report_path = find_report(self.out_dir)
        n, bad = self.model.counts()
        self.label.setText(f"{n} case(s), {bad} failed — {self.out_dir}")
        self.sync()
        return True

    def _sorted(self, section: int, order) -> None:
        cols = self.model.columns
        self._sort = (cols[section], order) if 0 <= section < len(cols) else None

    def open_results_dialog(self, start: str = "") -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open the results of a cohort run",
                                                  start or str(self.out_dir or ""))
        if folder and self.load(folder):
            self.message.emit(f"Results of {folder}" + ("" if self.report_path else
                                                         " (no report: run the cohort again to write one)"), "")

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return rows[0].row() if rows else None

    def open_case(self) -> bool:
        """Open the selected row's case (``cases/<id>.stwin``) in the main window."""
        from surgtwin.services import cohort

        row = self.selected_row()
        if row is None or self.out_dir is None:
            self.message.emit("Select a case in the table first", ERROR_STYLE)
            return False
        cid = self.model.case_id(row)
        path = cohort.case_path(self.out_dir, cid)
        if not path.exists():
            why = self.model.value(row, "error") or "it has not run yet"
            self.message.emit(f"{cid} has no saved case ({why})", ERROR_STYLE)
            return False
        if self.win.jobs.busy:
            self.message.emit("The main window is busy: wait for its job to finish (or cancel it), then open the "
                              "case again", ERROR_STYLE)
            return False
        self.win.open_path(path)
        self.win.raise_()
        self.win.activateWindow()
        self.message.emit(f"Opened {cid} in the main window", "")
        return True

    def open_report(self) -> bool:
        if self.report_path is None or not self.report_path.exists():
            self.message.emit("This cohort has no report yet: it is written when a run ends", ERROR_STYLE)
            return False
        return open_url(self.report_path)

    def open_folder(self) -> bool:
        return self.out_dir is not None and open_url(self.out_dir)
