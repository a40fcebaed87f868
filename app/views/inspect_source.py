"""The Inspect view's source picker and the dialogs that choose a source.

Both iterate the core's source-kind registry (:mod:`inspection_core.sources.kinds`):
a registered kind shows up in the picker (its label and hint), in File ▸ Open
source, and is browsed as it declares ("file" with its filter, "folder", or a
typed target). The app adds one entry of its own, the demo's test parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget,
)  # fmt: skip

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


def build_source_bar(view: Any) -> QHBoxLayout:
    """The Inspect view's source bar: the registry's kinds (:class:`SourcePicker`),
    mode, rate and the start/pause/stop/trigger buttons, set on ``view`` as
    ``picker``, ``kind_combo``, ``spec_edit``, ``browse_btn``, ``mode_combo``,
    ``rate_spin``, ``start_btn``, ``pause_btn``, ``stop_btn``, ``trigger_btn``
    and connected to its handlers."""
    bar = QHBoxLayout()
    bar.setSpacing(8)
    view.picker = SourcePicker(view)  # the registry's kinds, their hints and how each is browsed
    view.kind_combo, view.spec_edit = view.picker.kind_combo, view.picker.spec_edit
    view.browse_btn = view.picker.browse_btn
    view.kind_combo.currentIndexChanged.connect(view._on_kind_changed)
    view.spec_edit.textChanged.connect(lambda _t: view._update_buttons())  # another source: Start switches
    view.mode_combo = QComboBox()
    view.mode_combo.addItem("Continuous", "continuous")
    view.mode_combo.addItem(f"Triggered ({view.ctx.settings.trigger_key or 'Space'})", "triggered")
    view.mode_combo.currentIndexChanged.connect(view._on_mode_changed)
    view.rate_spin = QSpinBox()
    view.rate_spin.setRange(0, 120)
    view.rate_spin.setValue(4)
    view.rate_spin.setPrefix("≤ ")
    view.rate_spin.setSuffix(" parts/s")
    view.rate_spin.setSpecialValueText("max rate")
    view.rate_spin.setToolTip("Highest rate for folders (0 = as fast as scoring allows)")
    view.start_btn = QPushButton("▶  Start")
    view.start_btn.setObjectName("primaryButton")
    view.start_btn.clicked.connect(view._start_clicked)
    view.pause_btn = QPushButton("❚❚  Pause")
    view.pause_btn.clicked.connect(view._pause_clicked)
    view.stop_btn = QPushButton("■  Stop")
    view.stop_btn.clicked.connect(view.stop)
    view.trigger_btn = QPushButton("Trigger")
    view.trigger_btn.clicked.connect(view.trigger)
    for b in (view.start_btn, view.pause_btn, view.stop_btn, view.trigger_btn):
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    bar.addWidget(QLabel("Source"))
    bar.addWidget(view.kind_combo)
    bar.addWidget(view.spec_edit, 1)
    bar.addWidget(view.browse_btn)
    bar.addSpacing(12)
    bar.addWidget(QLabel("Mode"))
    bar.addWidget(view.mode_combo)
    bar.addWidget(view.rate_spin)
    bar.addSpacing(12)
    for b in (view.start_btn, view.pause_btn, view.stop_btn, view.trigger_btn):
        bar.addWidget(b)
    return bar


def folder_without_parts(source: Any, desc: tuple[str, str] | None, seen: int) -> str:
    """What to say when a folder run inspected nothing because the folder
    (its sub-folders included) holds no image, or none that can be read; "" otherwise."""
    if desc is None or desc[0] != "folder" or seen:
        return ""
    skipped = len(getattr(source, "skipped", ()) or ())
    if skipped:
        return (f"No readable images in {desc[1]}: {skipped} image file{'s' if skipped != 1 else ''} "
                "could not be read; nothing was inspected.")
    from inspection_core.data.images import list_images

    try:  # the source has closed (and forgotten its list): an empty folder lists fast
        found = bool(list_images(Path(desc[1]), recursive=True))
    except OSError:
        found = False
    if found:
        return ""  # images there, none scored: the reason was shown as it happened
    return f"No images found in {desc[1]} (its sub-folders included): nothing was inspected."
