"""The PACS browser's results: studies as top-level rows, their series as children, and which of them
the local cache already holds (marked, and opened from there). A view only: the rows are the find
answers of ``surgtwin.services.pacs`` and the cache entries of ``pacs.cached_series()``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem

COLUMNS = ("Patient", "Patient ID", "Date", "Description", "Modality", "Series / images", "Accession", "Local copy")
DATA = Qt.ItemDataRole.UserRole  # column 0: the find answer (dict); column 1 of a study: its series are listed
LOCAL, ACCESSION, DESCRIPTION = 7, 6, 3


def _row(values, data: dict) -> QTreeWidgetItem:
    """A results row: its texts (with tooltips, for the columns too narrow for them) and the find answer."""
    texts = [str(v or "").strip() for v in values] + [""] * (len(COLUMNS) - len(values))
    item = QTreeWidgetItem(texts)
    for col, text in enumerate(texts):
        item.setToolTip(col, text)
    item.setData(0, DATA, dict(data))
    return item


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")


def _pretty_date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


class ResultsTree(QTreeWidget):
    """Studies and their series, single selection; ``cached`` maps a series UID to its cache entry."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("pacsResults")
        self.setHeaderLabels(COLUMNS)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformRowHeights(True)
        self.header().setSectionResizeMode(DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        self.cached: dict[str, dict] = {}

    @staticmethod
    def record(item) -> dict:
        """The find answer behind a row ({} for none)."""
        return (item.data(0, DATA) or {}) if item is not None else {}

    @staticmethod
    def is_series(item) -> bool:
        return item is not None and item.parent() is not None

    @staticmethod
    def listed(item) -> bool:
        """A study row whose series have been listed."""
        return bool(item.data(1, DATA))

    def show_studies(self, studies) -> None:
        self.clear()
        for s in studies:
            n_series, n_inst = s.get("n_series"), s.get("n_instances")
            counts = " · ".join(x for x in (f"{n_series} series" if n_series else "",
                                             f"{n_inst} images" if n_inst else "") if x)
            item = _row([s.get("patient_name"), s.get("patient_id"), _pretty_date(s.get("study_date") or ""),
                         s.get("study_description"), s.get("modalities") or s.get("modality"), counts,
                         s.get("accession")], s)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            self.addTopLevelItem(item)
        self.mark_all()
        self.setColumnHidden(ACCESSION, not any(s.get("accession") for s in studies))  # no room for an empty one
        for col in range(len(COLUMNS)):
            if col != DESCRIPTION:
                self.resizeColumnToContents(col)

    def show_series(self, study: QTreeWidgetItem, series) -> None:
        study.takeChildren()
        study_uid = self.record(study).get("study_uid")
        for s in sorted(series, key=lambda s: _number(s.get("series_number"))):
            number = str(s.get("series_number") or "")
            study.addChild(_row(["", "", "", f"{'#' + number if number else ''} {s.get('series_description') or ''}",
                                 s.get("modality"), f"{s.get('n_instances') or '?'} images"],
                                {**s, "study_uid": study_uid}))
        study.setData(1, DATA, True)
        if not series:
            study.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicator)
        self.mark_all()
        study.setExpanded(True)

    # -- the local cache -------------------------------------------------------------------------
    def remember_cache(self, entries) -> None:
        """What the local cache holds (``pacs.cached_series()``), to mark and open what is already there."""
        self.cached = {e["series_uid"]: e for e in entries or [] if e.get("series_uid") and e.get("folder")}
        self.mark_all()

    def cache_entries(self, item) -> list[dict]:
        """The cache entries of a series row, or of a study row's series (none: not retrieved)."""
        d = self.record(item)
        if not d:
            return []
        if self.is_series(item):
            entries = [self.cached[d["series_uid"]]] if d.get("series_uid") in self.cached else []
        else:
            entries = [e for e in self.cached.values() if e.get("study_uid") == d.get("study_uid")]
        return sorted((e for e in entries if Path(e["folder"]).is_dir()), key=lambda e: e["folder"])

    def local_folders(self, item) -> list[Path]:
        return [Path(e["folder"]) for e in self.cache_entries(item)]

    def mark_all(self) -> None:
        for i in range(self.topLevelItemCount()):
            study = self.topLevelItem(i)
            for item in (study, *(study.child(k) for k in range(study.childCount()))):
                n, total = len(self.local_folders(item)), self.record(item).get("n_series")
                partial = not self.is_series(item) and n and total and n < total
                item.setText(LOCAL, (f"✓ {n} of {total} series" if partial else "✓ retrieved") if n else "")
                item.setForeground(LOCAL, QColor("#ff9f43" if partial else "#7bd88f"))
