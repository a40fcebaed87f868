"""Plots for the engineer views: score histogram with draggable threshold
line(s), ROC curve with the operating point, live loss curves, and a grid of
small images (sample reconstructions, generated samples).

Everything here draws numbers it is given; no metric is computed here (the
calibration view asks ``inspection_core.calibration`` for those). Every plot
has the application's dark look (:mod:`app.widgets.theme`), and a plot with
nothing to show says what will appear there instead of drawing empty axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.widgets import theme
from app.widgets.image_grid import ImageGrid, to_pixmap, to_qimage  # noqa: F401 - part of this module's API

theme.configure_pyqtgraph()

GOOD_COLOR = QColor(76, 175, 80)  # green, bright enough on the dark background
DEFECT_COLOR = QColor(239, 83, 80)  # red
HIGH_LINE_COLOR = QColor(theme.LINE)
LOW_LINE_COLOR = QColor(240, 180, 0)  # amber: the REVIEW band
SERIES_COLORS = (
    QColor(88, 166, 255),
    QColor(255, 123, 114),
    QColor(86, 211, 100),
    QColor(188, 140, 255),
    QColor(255, 166, 87),
    QColor(57, 208, 216),
    QColor(227, 179, 65),
    QColor(170, 180, 190),
)


def style_plot(plot: pg.PlotWidget, title: str = "", x_label: str = "", y_label: str = "") -> None:
    """The quiet dark look shared by all plots of the app (:mod:`app.widgets.theme`)."""
    plot.setBackground(theme.PLOT_BACKGROUND)
    item = plot.getPlotItem()
    if title:
        item.setTitle(title, color=theme.TEXT, size="10pt")
    for name, label in (("bottom", x_label), ("left", y_label)):
        axis = item.getAxis(name)
        axis.enableAutoSIPrefix(False)  # "(x0.001)" next to a score unit confuses more than it helps
        axis.setPen(pg.mkPen(theme.AXIS))
        axis.setTextPen(pg.mkPen(theme.TEXT_DIM))
        if label:
            axis.setLabel(label, color=theme.TEXT_DIM)
    item.showGrid(x=True, y=True, alpha=theme.GRID_ALPHA)
    plot.setMinimumHeight(160)


class EmptyNote:
    """What a plot with no data says in its middle (its axes hidden until there is data)."""

    def __init__(self, plot: pg.PlotWidget, text: str) -> None:
        self._plot = plot
        self._label = QLabel(text, plot)
        self._label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._label.setWordWrap(True)
        self._label.setStyleSheet(f"color: {theme.TEXT_DIM}; background: transparent; font-size: 11pt;")
        self._label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        plot.installEventFilter(_Resizer(self._fit, plot))
        self.text = text
        self.show(True)

    def _fit(self) -> None:
        r = self._plot.rect()
        self._label.setGeometry(r.adjusted(24, 24, -24, -24))

    def show(self, empty: bool, text: str | None = None) -> None:
        """``empty``: hide the axes and say ``text`` (else the note's own); not empty: the axes, no note."""
        if text is not None:
            self.text = text
        self._label.setText(self.text)
        self._label.setVisible(empty)
        item = self._plot.getPlotItem()
        for name in ("bottom", "left"):
            item.showAxis(name, not empty)
        item.showGrid(x=not empty, y=not empty, alpha=theme.GRID_ALPHA)
        self._fit()

    @property
    def shown(self) -> bool:
        return not self._label.isHidden()


class _Resizer(QObject):
    """An event filter that calls ``fn`` when the watched widget is resized or shown."""

    def __init__(self, fn, parent: QWidget) -> None:  # noqa: ANN001
        super().__init__(parent)
        self._fn = fn

    def eventFilter(self, obj, event) -> bool:  # noqa: N802, ANN001 - Qt override
        from PySide6.QtCore import QEvent

        if event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._fn()
        return False


def with_alpha(color: QColor, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


# ----------------------------------------------------------------- histogram


class ScoreHistogram(pg.PlotWidget):
    """Overlapping score histograms of good and defective images with a
    draggable FAIL threshold line and, in two-threshold mode, a second line for
    the lower end of the REVIEW band.

    ``thresholdsChanged(high, low)`` is emitted whenever a line moves, by drag
    or by :meth:`set_thresholds`; ``low`` is None in single-threshold mode.
    """

    thresholdsChanged = Signal(float, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style_plot(self, "", "anomaly score A(x)", "images")
        self.getPlotItem().setTitle(
            f"Scores of the calibration images: <span style='color:{GOOD_COLOR.name()}'>■ good</span>"
            f" &nbsp; <span style='color:{DEFECT_COLOR.name()}'>■ defective</span>", color=theme.TEXT, size="10pt")
        self._good = pg.PlotDataItem(
            stepMode="center", fillLevel=0, pen=pg.mkPen(GOOD_COLOR, width=1.5),
            brush=pg.mkBrush(with_alpha(GOOD_COLOR, 90)),
        )
        self._defect = pg.PlotDataItem(
            stepMode="center", fillLevel=0, pen=pg.mkPen(DEFECT_COLOR, width=1.5),
            brush=pg.mkBrush(with_alpha(DEFECT_COLOR, 90)),
        )
        self.addItem(self._good)
        self.addItem(self._defect)
        label_opts = {"position": 0.95, "color": theme.TEXT, "fill": theme.LABEL_FILL, "movable": True}
        self.high_line = pg.InfiniteLine(
            angle=90, movable=True, pen=pg.mkPen(HIGH_LINE_COLOR, width=2),
            hoverPen=pg.mkPen(HIGH_LINE_COLOR, width=4), label="FAIL > {value:.4g}", labelOpts=label_opts,
        )
        self.low_line = pg.InfiniteLine(
            angle=90, movable=True, pen=pg.mkPen(LOW_LINE_COLOR, width=2, style=Qt.PenStyle.DashLine),
            hoverPen=pg.mkPen(LOW_LINE_COLOR, width=4),
            label="PASS ≤ {value:.4g}", labelOpts={**label_opts, "position": 0.86},
        )
        self.high_line.setZValue(20)
        self.low_line.setZValue(19)
        self.addItem(self.high_line)
        self.addItem(self.low_line)
        self.low_line.setVisible(False)
        self._silent = False
        self.high_line.sigPositionChanged.connect(self._on_line_moved)
        self.low_line.sigPositionChanged.connect(self._on_line_moved)
        self.empty = EmptyNote(self, "The good and defective scores appear here: score a calibration folder, "
                                     "or use the scores stored in the bundle.")

    # data
    def set_data(self, scores: np.ndarray, labels: np.ndarray, bins: int | None = None) -> None:
        """Draw the two histograms on shared bin edges."""
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels).astype(int)
        finite = np.isfinite(scores)
        scores, labels = scores[finite], labels[finite]
        self.empty.show(scores.size == 0)
        for line in (self.high_line, self.low_line):
            line.setOpacity(0.0 if scores.size == 0 else 1.0)
        if scores.size == 0:
            self._good.setData([], [])
            self._defect.setData([], [])
            return
        if bins is None:
            bins = int(np.clip(np.sqrt(scores.size) * 1.5, 10, 60))
        lo, hi = float(scores.min()), float(scores.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        for item, label in ((self._good, 0), (self._defect, 1)):
            counts, _ = np.histogram(scores[labels == label], bins=edges)
            item.setData(edges, counts.astype(float))
            item.setVisible(bool((labels == label).any()))
        pad = 0.05 * (hi - lo)
        self.setXRange(lo - pad, hi + pad, padding=0)
        self.enableAutoRange(axis="y")

    # thresholds
    def two_threshold(self) -> bool:
        return self.low_line.isVisible()

    def set_thresholds(self, high: float, low: float | None = None) -> None:
        """Move the line(s) as a drag would, emitting one ``thresholdsChanged``."""
        self._silent = True
        try:
            self.high_line.setBounds((None, None))
            self.low_line.setBounds((None, None))
            self.high_line.setValue(float(high))
            if self.two_threshold():
                self.low_line.setValue(min(float(high), float(high if low is None else low)))
            self._update_bounds()
        finally:
            self._silent = False
        self._emit()

    def thresholds(self) -> tuple[float, float | None]:
        high = float(self.high_line.value())
        return high, (float(self.low_line.value()) if self.two_threshold() else None)

    def _update_bounds(self) -> None:
        # the lower line can never pass the upper one, whichever is dragged
        if self.two_threshold():
            self.high_line.setBounds((self.low_line.value(), None))
            self.low_line.setBounds((None, self.high_line.value()))
        else:
            self.high_line.setBounds((None, None))

    def _on_line_moved(self, _line: pg.InfiniteLine) -> None:
        if self._silent:
            return
        self._silent = True
        try:
            self._update_bounds()
        finally:
            self._silent = False
        self._emit()

    def _emit(self) -> None:
        high, low = self.thresholds()
        self.thresholdsChanged.emit(high, low)


# ----------------------------------------------------------------------- ROC


class RocPlot(pg.PlotWidget):
    """ROC curve (false-reject rate vs detection rate) with the current
    operating point(s) marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style_plot(self, "ROC", "false-reject rate (FPR)", "detection rate (TPR)")
        item = self.getPlotItem()
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.vb.disableAutoRange()
        item.vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.04)
        self._chance = pg.PlotDataItem([0, 1], [0, 1], pen=pg.mkPen(theme.AXIS, style=Qt.PenStyle.DashLine))
        self.addItem(self._chance)
        self._curve = pg.PlotDataItem(pen=pg.mkPen(SERIES_COLORS[0], width=2))
        self.addItem(self._curve)
        self._marker = pg.ScatterPlotItem(
            size=13, pen=pg.mkPen(HIGH_LINE_COLOR, width=2), brush=pg.mkBrush(theme.PLOT_BACKGROUND), symbol="o"
        )
        self._low_marker = pg.ScatterPlotItem(
            size=11, pen=pg.mkPen(LOW_LINE_COLOR, width=2), brush=pg.mkBrush(theme.PLOT_BACKGROUND), symbol="d"
        )
        self.addItem(self._marker)
        self.addItem(self._low_marker)
        self._text = pg.TextItem(color=theme.TEXT, anchor=(1, 1), fill=theme.LABEL_FILL)
        self._text.setPos(0.98, 0.02)
        self.addItem(self._text)
        self._point: tuple[float, float] | None = None
        self.empty = EmptyNote(self, "The ROC curve appears here once good and defective images are scored.")
        self._chance.setVisible(False)

    def set_curve(self, fpr: Sequence[float], tpr: Sequence[float], auroc: float | None) -> None:
        self.empty.show(False)
        self._chance.setVisible(True)
        self._curve.setData(np.asarray(fpr, float), np.asarray(tpr, float))
        self._text.setText("" if auroc is None or not np.isfinite(auroc) else f"AUROC {auroc:.3f}")

    def clear_curve(self, message: str = "") -> None:
        """No curve: the plot says why (``message``, e.g. "only good images") instead of showing empty axes."""
        self._curve.setData([], [])
        self._marker.setData([], [])
        self._low_marker.setData([], [])
        self._text.setText("")
        self._chance.setVisible(False)
        self.empty.show(True, f"No ROC curve: {message}." if message and not message.startswith("score") else
                        "The ROC curve appears here once good and defective images are scored.")

    def set_point(self, fpr: float, tpr: float, low: tuple[float, float] | None = None) -> None:
        """Mark the FAIL threshold's operating point, and the PASS threshold's when given."""
        self._point = (float(fpr), float(tpr))
        self._marker.setData([fpr], [tpr])
        if low is None:
            self._low_marker.setData([], [])
        else:
            self._low_marker.setData([low[0]], [low[1]])

    def point(self) -> tuple[float, float] | None:
        return self._point


# -------------------------------------------------------------- loss curves


class SeriesPlot(QWidget):
    """Live curves, one per key (losses per step, a validation metric per
    epoch), with a row of check boxes to show or hide each curve.

    Points are buffered and drawn at most ``redraw_ms`` apart, so a fast
    stream of events costs one repaint per interval, not one per point."""

    def __init__(self, title: str, x_label: str, y_label: str = "", parent: QWidget | None = None,
                 symbols: bool = False, log_y: bool = False, redraw_ms: int = 250,
                 empty_text: str = "Curves appear here once training starts.") -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.plot_widget = pg.PlotWidget()
        style_plot(self.plot_widget, title, x_label, y_label)
        lay.addWidget(self.plot_widget, 1)
        self._toggles = QHBoxLayout()
        self._toggles.setContentsMargins(8, 0, 8, 2)
        self._toggles.addStretch(1)
        lay.addLayout(self._toggles)
        self._symbols = symbols
        self._log_y = log_y
        if log_y:  # losses of one model differ by orders of magnitude
            self.plot_widget.setLogMode(y=True)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._boxes: dict[str, QCheckBox] = {}
        self._data: dict[str, tuple[list[float], list[float]]] = {}
        self._dirty: set[str] = set()
        self._timer = QTimer(self, singleShot=True, interval=redraw_ms, timeout=self.redraw)
        self.empty = EmptyNote(self.plot_widget, empty_text)

    def add_points(self, x: float, values: dict[str, float]) -> None:
        """Append one point to each named series (new names get a new curve)."""
        for key, y in values.items():
            if y is None or not np.isfinite(y):
                continue
            if key not in self._curves:
                self._new_curve(key)
            xs, ys = self._data[key]
            xs.append(float(x))
            ys.append(float(y))
            self._dirty.add(key)
        if self._dirty and not self._timer.isActive():
            self._timer.start()

    def _new_curve(self, key: str) -> None:
        color = SERIES_COLORS[len(self._curves) % len(SERIES_COLORS)]
        kw = {"symbol": "o", "symbolSize": 6, "symbolBrush": color, "symbolPen": None} if self._symbols else {}
        self._curves[key] = self.plot_widget.plot([], [], pen=pg.mkPen(color, width=1.6), skipFiniteCheck=True, **kw)
        self._data[key] = ([], [])
        box = QCheckBox(key)
        box.setChecked(True)
        box.setStyleSheet(f"QCheckBox {{ color: {color.name()}; font-weight: 600; }}")
        box.toggled.connect(self._curves[key].setVisible)
        self._boxes[key] = box
        self._toggles.insertWidget(self._toggles.count() - 1, box)

    def redraw(self) -> None:
        """Draw the buffered points now."""
        self._timer.stop()
        if self._dirty and self.empty.shown:
            self.empty.show(False)
        for key in self._dirty:
            xs, ys = self._data[key]
            if self._log_y:  # a log axis cannot show zero or negative values
                keep = [(a, b) for a, b in zip(xs, ys) if b > 0]
                self._curves[key].setData([a for a, _ in keep], [b for _, b in keep])
            else:
                self._curves[key].setData(xs, ys)
        self._dirty.clear()

    def set_title(self, title: str) -> None:
        self.plot_widget.getPlotItem().setTitle(title, color=theme.TEXT, size="10pt")

    def set_empty_text(self, text: str) -> None:
        """What the plot says while it has no curve."""
        self.empty.show(self.empty.shown, text)

    def clear_series(self) -> None:
        self._timer.stop()
        for curve in self._curves.values():
            self.plot_widget.removeItem(curve)
        for box in self._boxes.values():
            box.deleteLater()
        self._curves.clear()
        self._boxes.clear()
        self._data.clear()
        self._dirty.clear()
        self.empty.show(True)

    def keys(self) -> list[str]:
        return list(self._curves)

    def series(self, key: str) -> tuple[list[float], list[float]]:
        xs, ys = self._data.get(key, ([], []))
        return list(xs), list(ys)

    def drawn_points(self, key: str) -> int:
        """How many points of ``key`` the plot shows now."""
        curve = self._curves.get(key)
        return 0 if curve is None or curve.xData is None else len(curve.xData)
