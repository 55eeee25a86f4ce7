"""Small widgets the planning panels share."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QLabel, QScrollArea


def scrolling_label(parent, name: str, *, max_height: int) -> tuple[QLabel, QScrollArea]:
    """A word-wrapped rich-text label in a frameless scroll area at most ``max_height`` pixels tall
    (a panel's results text, which must not squeeze its tables)."""
    label = QLabel("", parent)
    label.setObjectName(name)
    label.setWordWrap(True)
    scroll = QScrollArea(parent)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(label)
    scroll.setMaximumHeight(max_height)
    return label, scroll


def note_label(parent, text: str) -> QLabel:
    """The grey planning-aid note at a panel's foot."""
    note = QLabel(text, parent)
    note.setStyleSheet("color: #8891a5;")
    note.setWordWrap(True)
    return note


def tab_page(tabs, title: str):
    """A new page of ``tabs`` titled ``title``: (the page, its vertical layout)."""
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    page = QWidget()
    lay = QVBoxLayout(page)
    lay.setContentsMargins(0, 2, 0, 0)
    tabs.addTab(page, title)
    return page, lay


def readonly_table(parent, name: str, headers=None, *, columns: int | None = None):
    """A read-only table without row numbers or selection (a panel's figures)."""
    from PySide6.QtWidgets import QAbstractItemView, QTableWidget

    t = QTableWidget(0, len(headers) if headers else int(columns or 1), parent)
    t.setObjectName(name)
    if headers:
        t.setHorizontalHeaderLabels(list(headers))
    t.verticalHeader().hide()
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    return t


def labelled_combo(parent, text: str, name: str, items, on_change):
    """A row "text [combo]" (e.g. the field a result is coloured by): (the row's layout, the combo);
    ``on_change()`` runs when the choice changes."""
    from PySide6.QtWidgets import QComboBox, QHBoxLayout

    row = QHBoxLayout()
    row.addWidget(QLabel(text, parent))
    combo = QComboBox(parent)
    combo.setObjectName(name)
    combo.addItems(list(items))
    combo.currentTextChanged.connect(lambda *_: on_change())
    row.addWidget(combo, 1)
    return row, combo
