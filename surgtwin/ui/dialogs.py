"""Error and About dialogs. A user's error is shown as a message that says what to do, never a traceback."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from surgtwin.core.errors import SurgtwinError

NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE"


def error_box(parent: QWidget | None, title: str, exc: BaseException, details: str = "") -> QMessageBox:
    """A (non-blocking, already shown) message box for ``exc``."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(f"surgtwin — {title}")
    if isinstance(exc, SurgtwinError):
        box.setText(f"<b>{title} failed.</b>")
        text = exc.reason
        if exc.path:
            text += f"\n\nFile: {exc.path}"
        if exc.hint:
            text += f"\n\nWhat to do: {exc.hint}"
        box.setInformativeText(text)
    else:
        box.setText(f"<b>{title} failed with an unexpected error.</b>")
        box.setInformativeText(f"{type(exc).__name__}: {exc}\n\nPlease report this with the details below.")
        if details:
            box.setDetailedText(details)
    box.setObjectName("errorBox")
    box.setModal(True)
    box.show()
    return box


def about_text() -> str:
    from surgtwin import __version__

    try:
        from surgtwin.core.segmentation import model_card

        model = str(model_card())[:600]
    except Exception as exc:  # noqa: BLE001 - the About box must always open
        model = f"model card unavailable ({exc})"
    return (f"<h2>surgtwin {__version__}</h2>"
            "<p>Surgical planning with 3D patient-specific anatomical digital twins.</p>"
            f"<p style='color:#ff9f43'><b>{NOT_FOR_CLINICAL_USE}.</b> Research and education only; not a "
            "medical device. Do not use for diagnosis or treatment decisions.</p>"
            f"<p><b>Segmentation model:</b> {model}</p>"
            "<p>Licence: Apache-2.0</p>")


def about_box(parent: QWidget | None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("About surgtwin")
    box.setText(about_text())
    box.setObjectName("aboutBox")
    box.show()
    return box
