"""The PACS node editor: add, edit and remove the remote DICOM nodes (name, AE title, host, port,
calling AE, C-MOVE port, timeout) the app talks to. The list is written with
``surgtwin.services.pacs.save_nodes`` (a JSON file in the user's config folder); each node is checked
by ``PacsNode`` itself, and its message is shown under the form.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.pacs.node import DEFAULT_STORE_PORT, PacsNode

ERROR_STYLE = "color: #ff6b6b;"
OK_STYLE = "color: #7bd88f;"
FIELDS = ("name", "ae_title", "host", "port", "calling_ae", "store_port", "timeout_s", "research")


class NodeEditor(QDialog):
    """Edits a copy of the node list; Save checks every node, writes them all and emits ``saved``."""

    #: the nodes were written (arg: the list of PacsNode)
    saved = Signal(list)

    def __init__(self, nodes, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("pacsNodeEditor")
        self.setWindowTitle("PACS nodes")
        self.rows = [{**{k: getattr(n, k) for k in FIELDS}, "base": n} for n in nodes]
        self._filling = False
        lay = QVBoxLayout(self)
        body = QHBoxLayout()
        left = QVBoxLayout()
        self.list = QListWidget(self)
        self.list.setObjectName("pacsNodeList")
        self.list.setMinimumWidth(170)
        self.list.currentRowChanged.connect(self._fill)
        left.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add", self)
        self.add_button.clicked.connect(self.add_node)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(self.remove_node)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        left.addLayout(buttons)
        body.addLayout(left)
        form = QFormLayout()
        self.edits = {k: QLineEdit(self) for k in ("name", "ae_title", "host", "calling_ae")}
        self.edits["ae_title"].setMaxLength(16)
        self.edits["calling_ae"].setMaxLength(16)
        self.edits["host"].setPlaceholderText("pacs.hospital.org or 10.0.0.5")
        self.port, self.store_port = QSpinBox(self), QSpinBox(self)
        for spin in (self.port, self.store_port):
            spin.setRange(1, 65535)
        self.store_port.setToolTip("C-MOVE only: the port where the PACS sends the images to this app "
                                   "(the PACS must know this app's calling AE at this machine and port)")
        self.timeout = QDoubleSpinBox(self)
        self.timeout.setRange(1.0, 600.0)
        self.timeout.setDecimals(0)
        self.timeout.setSuffix(" s")
        for text, w in (("Name:", self.edits["name"]), ("AE title:", self.edits["ae_title"]),
                        ("Host:", self.edits["host"]), ("Port:", self.port),
                        ("Calling AE (this app):", self.edits["calling_ae"]),
                        ("C-MOVE port (this app):", self.store_port), ("Timeout:", self.timeout)):
            form.addRow(text, w)
            w.setObjectName("pacsNode_" + text.split(" (")[0].rstrip(":").replace(" ", "").replace("-", ""))
        for key, edit in self.edits.items():
            edit.textEdited.connect(lambda text, k=key: self._set(k, text))
        self.port.valueChanged.connect(lambda v: self._set("port", int(v)))
        self.store_port.valueChanged.connect(lambda v: self._set("store_port", int(v)))
        self.timeout.valueChanged.connect(lambda v: self._set("timeout_s", float(v)))
        self.research = QCheckBox("Research archive (may receive de-identified results)", self)
        self.research.setObjectName("pacsNode_Research")
        self.research.setToolTip("Only a research or teaching archive may receive de-identified copies: in a "
                                 "clinical PACS they would be filed under a new, fake patient")
        self.research.toggled.connect(lambda on: self._set("research", bool(on)))
        form.addRow("", self.research)
        body.addLayout(form, 1)
        lay.addLayout(body)
        self.message = QLabel("", self)
        self.message.setObjectName("pacsNodeMessage")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        for r in self.rows:
            self.list.addItem(r["name"])
        if self.rows:
            self.list.setCurrentRow(0)
        self._sync()

    # -- editing ---------------------------------------------------------------------------------
    def add_node(self) -> None:
        n = len(self.rows) + 1
        self.rows.append({"name": f"PACS {n}", "ae_title": "", "host": "", "port": 104, "calling_ae": "SURGTWIN",
                          "store_port": DEFAULT_STORE_PORT, "timeout_s": 30.0, "research": False, "base": None})
        self.list.addItem(self.rows[-1]["name"])
        self.list.setCurrentRow(len(self.rows) - 1)
        self.edits["name"].setFocus()
        self.edits["name"].selectAll()

    def remove_node(self) -> None:
        i = self.list.currentRow()
        if 0 <= i < len(self.rows):
            del self.rows[i]
            self.list.takeItem(i)
        self._sync()

    def _fill(self, i: int) -> None:
        self._filling = True
        row = self.rows[i] if 0 <= i < len(self.rows) else None
        for key, edit in self.edits.items():
            edit.setText(str(row[key]) if row else "")
        self.port.setValue(int(row["port"]) if row else 104)
        self.store_port.setValue(int(row["store_port"]) if row else DEFAULT_STORE_PORT)
        self.timeout.setValue(float(row["timeout_s"]) if row else 30.0)
        self.research.setChecked(bool(row["research"]) if row else False)
        self._filling = False
        self._sync()

    def _set(self, key: str, value) -> None:
        i = self.list.currentRow()
        if self._filling or not 0 <= i < len(self.rows):
            return
        self.rows[i][key] = value
        if key == "name":
            self.list.item(i).setText(value)
        self.message.clear()

    def _sync(self) -> None:
        has = 0 <= self.list.currentRow() < len(self.rows)
        for w in (*self.edits.values(), self.port, self.store_port, self.timeout, self.research, self.remove_button):
            w.setEnabled(has)

    # -- saving ----------------------------------------------------------------------------------
    def nodes(self) -> list:
        """The edited nodes as ``PacsNode``s; raises SurgtwinError naming the first wrong field."""
        out, names = [], set()
        for i, row in enumerate(self.rows):
            fields = {k: (row[k].strip() if isinstance(row[k], str) else row[k]) for k in FIELDS}
            try:
                if fields["name"].lower() in names:
                    raise SurgtwinError(f"two nodes are called “{fields['name']}”", hint="give each node its own name")
                names.add(fields["name"].lower())
                out.append(dataclasses.replace(row["base"], **fields) if row["base"] is not None
                           else PacsNode(**fields))
            except SurgtwinError as exc:  # PacsNode's own checks name the field and what is allowed
                self.list.setCurrentRow(i)
                raise SurgtwinError(f"{fields['name'] or 'a node'}: {exc.reason}",
                                    hint=exc.hint or "correct the field, then Save") from exc
        return out

    def save(self) -> bool:
        from surgtwin.services import pacs

        try:
            nodes = self.nodes()
            pacs.save_nodes(nodes)
        except SurgtwinError as exc:
            self.message.setStyleSheet(ERROR_STYLE)
            self.message.setText(exc.reason + (f" — {exc.hint}" if exc.hint else ""))
            return False
        self.saved.emit(nodes)
        self.accept()
        return True
