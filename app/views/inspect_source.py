"""The Inspect view's source picker and the dialogs that choose a source.

Both iterate the core's source-kind registry (:mod:`inspection_core.sources.kinds`):
a registered kind shows up in the picker (its label and hint), in File ▸ Open
source, and is browsed as it declares ("file" with its filter, "folder", or a
typed target). The app adds one entry of its own, the demo's test parts.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QFileDialog, QInputDialog, QLineEdit, QPushButton, QWidget

from inspection_core.sources import SourceKind, source_kind, source_kinds

DEMO, DEMO_LABEL, DEMO_HINT = "demo", "Demo parts", "the demo's test parts"


def pick_target(parent: QWidget, kind: SourceKind, typed: bool = False) -> str:
    """Ask for a target of ``kind`` as it declares (a file, a folder; or typed text
    when it has no dialog or ``typed``); "" when cancelled. Remembers the folder."""
    qs = QSettings()
    start = str(qs.value("recent/source_dir", str(Path.home())))
    if kind.browse == "file":
        path, _ = QFileDialog.getOpenFileName(parent, f"Open {kind.label.lower()}", start, kind.browse_filter)
    elif kind.browse == "folder":
        path = QFileDialog.getExistingDirectory(parent, "Choose folder", start)
    elif typed:
        text, ok = QInputDialog.getText(parent, kind.label, f"{kind.hint[:1].upper()}{kind.hint[1:]}:", text=kind.example)
        return text.strip() if ok else ""
    else:
        return ""
    if path:
        qs.setValue("recent/source_dir", str(Path(path).parent if kind.browse == "file" else path))
    return path


class SourcePicker:
    """The source bar's kind combo, target field and Browse button (the view lays them out)."""

    def __init__(self, parent: QWidget) -> None:
        self.parent = parent
        self.kind_combo = QComboBox()
        self.kind_combo.addItem(DEMO_LABEL, DEMO)
        for kind in source_kinds():
            self.kind_combo.addItem(kind.label, kind.name)
        self.spec_edit = QLineEdit()
        self.spec_edit.setMinimumWidth(220)
        self.browse_btn = QPushButton("Browse…")
        self.browse_btn.clicked.connect(self.browse)
        self.kind_combo.currentIndexChanged.connect(self.kind_changed)

    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    def select(self, kind: str) -> None:
        i = self.kind_combo.findData(kind)
        if i >= 0 and self.kind_combo.currentIndex() != i:
            self.kind_combo.setCurrentIndex(i)

    def kind_changed(self, *_: object) -> None:
        name = self.kind()
        kind = None if name == DEMO else source_kind(name)
        self.spec_edit.setEnabled(kind is not None)
        self.browse_btn.setEnabled(kind is not None and kind.browse != "none")
        self.spec_edit.setPlaceholderText(DEMO_HINT if kind is None else kind.hint)

    def browse(self) -> None:
        if self.kind() == DEMO:
            return
        path = pick_target(self.parent, source_kind(self.kind()))
        if path:
            self.spec_edit.setText(path)


__all__ = ["DEMO", "SourcePicker", "pick_target"]
