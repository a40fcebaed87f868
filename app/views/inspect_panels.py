"""The Inspect view's side panels: the shift counters, the live rates and the
model bundle in use. Each shows what it is given; the view owns the data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton,
    QScrollArea, QVBoxLayout, QWidget,
)  # fmt: skip

from app.views.shift import ShiftCounters
from app.widgets.palette import CAMERA_WARNING, VERDICT_TEXT
from app.widgets.stat_tile import StatTile
from app.widgets.verdict_banner import VerdictBanner


def short_data_text(text: str, name_chars: int = 28) -> str:
    """'<data set> (<n> good images)' with a long data-set name cut at a word
    boundary (never mid-word), so the side panel keeps its height (the full
    text is the label's tooltip)."""
    name, sep, count = text.rpartition(" (")
    if not sep or not count.endswith("good images)"):
        name, sep, count = text, "", ""
    if len(name) > name_chars:
        cut = name[: name_chars - 1]
        if " " in cut.strip() and not name[name_chars - 1].isspace():
            cut = cut[: cut.rstrip().rfind(" ")]
        name = cut.rstrip(" ,;:([-") + "…"
    return f"{name}{sep}{count}"


class ShiftPanel(QGroupBox):
    """Inspected / yield / pass / fail / review / invalid tiles and the "New shift" button."""

    newShiftRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Shift", parent)
        grid = QGridLayout(self)
        grid.setSpacing(6)
        self.tile_inspected = StatTile("Inspected")
        self.tile_pass = StatTile("Pass", VERDICT_TEXT["PASS"])
        self.tile_review = StatTile("Review", VERDICT_TEXT["REVIEW"])
        self.tile_fail = StatTile("Fail", VERDICT_TEXT["FAIL"])
        self.tile_invalid = StatTile("Invalid", VERDICT_TEXT["INVALID"])
        self.tile_invalid.setToolTip("Frames that carried no part (blank, overexposed, far too dark or bright): "
                                     "not inspected, not in the yield")
        self.tile_yield = StatTile("Yield")
        self.tile_yield.set("—")
        grid.addWidget(self.tile_inspected, 0, 0)
        grid.addWidget(self.tile_yield, 0, 1)
        grid.addWidget(self.tile_pass, 1, 0)
        grid.addWidget(self.tile_fail, 1, 1)
        grid.addWidget(self.tile_review, 2, 0)
        grid.addWidget(self.tile_invalid, 2, 1)
        self.reset_btn = QPushButton("New shift")
        self.reset_btn.setToolTip("Reset the shift counters (the history keeps every record)")
        self.reset_btn.clicked.connect(self.newShiftRequested)
        grid.addWidget(self.reset_btn, 3, 0, 1, 2)

    def show_counts(self, c: ShiftCounters) -> None:
        self.tile_inspected.set(str(c.inspected))
        self.tile_pass.set(str(c.passed))
        self.tile_review.set(str(c.review))
        self.tile_fail.set(str(c.failed))
        self.tile_invalid.set(str(c.invalid))
        y = c.yield_pct
        self.tile_yield.set("—" if y is None else f"{y:.1f} %")


class PerformancePanel(QGroupBox):
    """Scored frames per second, the model's latency and the stale frames dropped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Performance", parent)
        form = QFormLayout(self)
        self.fps_label = QLabel("—")
        self.latency_label = QLabel("—")
        self.dropped_label = QLabel("0")
        form.addRow("Frames per second", self.fps_label)
        form.addRow("Scoring latency", self.latency_label)
        form.addRow("Stale frames dropped", self.dropped_label)

    def show_rates(self, fps: float, score_ms: float, dropped: int) -> None:
        self.fps_label.setText(f"{fps:.1f}")
        self.latency_label.setText(f"{score_ms:.0f} ms")
        self.dropped_label.setText(f"{dropped}")


class BundlePanel(QGroupBox):
    """The bundle switcher and what the chosen bundle is (model, training, data, threshold)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model bundle", parent)
        form = QFormLayout(self)
        self.bundle_combo = QComboBox()
        self.bundle_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.bundle_combo.setMinimumContentsLength(14)
        self.model_label = QLabel("—")
        self.trained_label = QLabel("—")
        self.data_label = QLabel("—")
        self.threshold_label = QLabel("—")
        for lab in self._labels():
            lab.setWordWrap(True)
        form.addRow("Bundle", self.bundle_combo)
        form.addRow("Model", self.model_label)
        form.addRow("Trained", self.trained_label)
        form.addRow("On", self.data_label)
        form.addRow("Threshold", self.threshold_label)

    def _labels(self) -> tuple[QLabel, ...]:
        return self.model_label, self.trained_label, self.data_label, self.threshold_label

    def set_bundles(self, bundles: list[Any], current: Any) -> None:
        """Fill the switcher (``bundles``: paths) and select ``current`` (a path or None)."""
        combo = self.bundle_combo
        combo.blockSignals(True)
        combo.clear()
        for p in bundles:
            combo.addItem(p.stem, str(p))
            combo.setItemData(combo.count() - 1, str(p), Qt.ItemDataRole.ToolTipRole)
        if current is not None:
            i = combo.findData(str(current))
            if i < 0:
                combo.addItem(current.stem, str(current))
                i = combo.count() - 1
            combo.setCurrentIndex(i)
        combo.blockSignals(False)

    def show_info(self, info: dict[str, str] | None) -> None:
        """``bundle_summary`` of the bundle in use; None: no bundle."""
        if info is None:
            for lab in self._labels():
                lab.setText("—")
            return
        self.model_label.setText(info["model"])
        self.trained_label.setText(info["trained"])
        self.data_label.setText(short_data_text(info["data"]))
        self.data_label.setToolTip(info["data"])
        self.threshold_label.setText(info["threshold"])

    def show_error(self, message: str) -> None:
        self.model_label.setText(message)


class BusyPanel(QFrame):
    """A message with a progress bar and an optional Cancel (first start: the demo is prepared)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("busyPanel")
        lay = QHBoxLayout(self)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(True)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(lambda: self._on_cancel and self._on_cancel())
        self._on_cancel: Callable[[], Any] | None = None
        lay.addWidget(self.label, 2)
        lay.addWidget(self.bar, 3)
        lay.addWidget(self.cancel_btn)
        self.hide()

    def show_progress(self, text: str, fraction: float | None = None, on_cancel: Callable[[], Any] | None = None) -> None:
        """Show ``text``; ``fraction`` in [0, 1] (None: busy without a known end); Cancel calls ``on_cancel``."""
        self.label.setText(text)
        if fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(fraction * 1000))
        self._on_cancel = on_cancel
        self.cancel_btn.setVisible(on_cancel is not None)
        self.show()


def typed(prediction: Any) -> str:
    """A FAIL's defect type with its probability ("scratch (0.82)"), "" when none was named."""
    from inspection_core.defect_types.classifier import describe_answer

    return describe_answer(getattr(prediction, "defect_type", None), getattr(prediction, "defect_confidence", None))


def teach_recent(view: Any) -> None:
    """Teach…: the Teach dialog over the bundle in use's recent FAIL and REVIEW parts."""
    from app.views.teach_dialog import open_teach, recent_parts

    try:
        records = recent_parts(view.ctx)
    except Exception as exc:  # noqa: BLE001 - an unusable history is said, not a crash
        QMessageBox.warning(view, "Teach", f"The history cannot be read: {exc}")
        return
    view._teach_dialog = open_teach(view.ctx, records, view)


def build_side_column(view: Any) -> QScrollArea:
    """The Inspect view's right column, set on ``view``: ``camera_warning`` (frames in a
    row with no part), ``banner``, ``shift_panel``, ``perf_panel``, ``bundle_panel``;
    a short screen (1366 x 768) scrolls it instead of cutting it."""
    side = QVBoxLayout()
    side.setSpacing(10)
    # Where the operator looks: frames in a row with no part (camera covered or disconnected, light off).
    view.camera_warning = QLabel("")
    view.camera_warning.setObjectName("cameraWarning")
    view.camera_warning.setWordWrap(True)
    bg, fg = CAMERA_WARNING
    view.camera_warning.setStyleSheet(f"QLabel#cameraWarning {{ background: {bg}; color: {fg}; border-radius: 6px;"
                                      " padding: 10px 12px; font-size: 12pt; font-weight: 700; }")
    view.camera_warning.hide()
    side.addWidget(view.camera_warning)
    view.banner = VerdictBanner()
    side.addWidget(view.banner)

    view.shift_panel = ShiftPanel()
    view.shift_panel.newShiftRequested.connect(view.reset_counters)
    view.perf_panel = PerformancePanel()
    view.bundle_panel = BundlePanel()
    view.bundle_panel.bundle_combo.activated.connect(view._bundle_chosen)
    view.teach_btn = QPushButton("Teach…")  # the bundle's recent FAIL/REVIEW parts, overrides first
    view.teach_btn.setToolTip("Teach the bundle good parts it rejected (parts an operator overrode come first)")
    view.teach_btn.clicked.connect(lambda: teach_recent(view))
    view.teach_btn.setEnabled(view.ctx.is_engineer)  # an engineer's task, as in History
    view.ctx.roleChanged.connect(lambda role: view.teach_btn.setEnabled(role == "engineer"))
    view.bundle_panel.layout().addRow("", view.teach_btn)
    if view.ctx.station:  # teaching retrains: a station has no PyTorch
        view.teach_btn.hide()
    for panel in (view.shift_panel, view.perf_panel, view.bundle_panel):
        side.addWidget(panel)
    side.addStretch(1)
    side_w = QWidget()
    side_w.setLayout(side)
    side_scroll = QScrollArea()  # a short screen (1366 x 768) scrolls the side panels instead of cutting them
    side_scroll.setWidget(side_w)
    side_scroll.setWidgetResizable(True)
    side_scroll.setFrameShape(QFrame.Shape.NoFrame)
    side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    side_scroll.setMinimumWidth(300)
    side_scroll.setMaximumWidth(380)
    return side_scroll
