"""Dark clinical-workstation look: Fusion style, a dark palette and a small stylesheet."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#4da3ff"
WARNING = "#ff9f43"
PLANE_COLORS = {"axial": "#e05555", "coronal": "#55c26b", "sagittal": "#e0c040"}

STYLESHEET = f"""
QMainWindow, QDialog {{ background: #1b1f27; }}
QDockWidget {{ color: #d8dee9; font-weight: bold; }}
QDockWidget::title {{ background: #232834; padding: 6px; }}
QToolBar {{ background: #232834; border: none; spacing: 4px; padding: 3px; }}
QToolButton {{ color: #d8dee9; padding: 4px 8px; border-radius: 4px; }}
QToolButton:hover {{ background: #2f3646; }}
QToolButton:checked {{ background: #2c4a6e; }}
QStatusBar {{ background: #232834; color: #c8d0dc; }}
QLabel#notClinical {{ color: {WARNING}; font-weight: bold; padding: 0 8px; }}
QTableWidget, QListWidget, QTreeWidget {{ background: #1f242e; alternate-background-color: #242a35;
    gridline-color: #2c3240; border: 1px solid #2c3240; }}
QHeaderView::section {{ background: #2a303c; color: #c8d0dc; padding: 4px; border: none; }}
QPushButton {{ background: #2f3646; color: #e5e9f0; border: 1px solid #3b4252; border-radius: 4px;
    padding: 5px 10px; }}
QPushButton:hover {{ background: #3a4358; }}
QPushButton:disabled {{ color: #6b7385; }}
QProgressBar {{ border: 1px solid #3b4252; border-radius: 3px; text-align: center; color: #e5e9f0;
    background: #1b1f27; min-width: 160px; max-height: 16px; }}
QProgressBar::chunk {{ background: {ACCENT}; }}
QGroupBox {{ color: #c8d0dc; border: 1px solid #2c3240; border-radius: 4px; margin-top: 10px; padding-top: 6px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    base, text = QColor("#1f242e"), QColor("#e5e9f0")
    pal.setColor(QPalette.ColorRole.Window, QColor("#1b1f27"))
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, base)
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#242a35"))
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor("#2a303c"))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.Highlight, QColor("#2c5d91"))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#2a303c"))
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b7385"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6b7385"))
    app.setPalette(pal)
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)
