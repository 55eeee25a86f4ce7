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
