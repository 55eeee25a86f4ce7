"""A "See-through anatomy" check box: every structure drawn nearly transparent in 3D while checked
(so a vessel tree or a valve frame inside the anatomy shows), their opacities restored when unchecked."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox

SEE_THROUGH_OPACITY = 0.12


class SeeThroughToggle(QCheckBox):
    def __init__(self, session, parent=None, *, focus=None, others: float = SEE_THROUGH_OPACITY) -> None:
        """``focus``: {structure name: opacity} for the structures being planned on; ``others``: the
        opacity of the rest (0 hides them in 3D; the MPR views keep them)."""
        super().__init__("See-through anatomy", parent)
        self.session, self.focus, self.others = session, dict(focus or {}), float(others)
        self.setToolTip("Draw the structures nearly transparent in 3D so what is inside them shows")
        self._saved: dict[int, float] = {}
        self.toggled.connect(self._apply)

    def _apply(self, on: bool) -> None:
        s = self.session
        if on:
            self._saved = {v: d.opacity_3d for v, d in s.display.items()}
            for v, op in self._saved.items():
                s.set_structure(v, opacity_3d=min(op, self.focus.get(s.display[v].name, self.others)))
        else:
            for v, op in self._saved.items():
                if v in s.display:
                    s.set_structure(v, opacity_3d=op)
            self._saved = {}
