"""One look for every plot and panel on the application's dark theme
(``resources/style.qss``): pyqtgraph's plots, the confusion matrix, and the
tones of text (hints, errors, success) that views used to colour for a light
background, where they came out dim or unreadable.

Views give a label a tone with :func:`set_tone`; the style sheet colours it
(``QLabel[tone="…"]``), so a tone reads the same in every view.
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

WINDOW = "#1e242b"        # the window background (style.qss)
PLOT_BACKGROUND = "#171c22"
TEXT = "#d5dce3"
TEXT_DIM = "#9aa6b2"      # axis numbers, captions, hints: readable, quieter than text
AXIS = "#5b6773"
LINE = "#e6ebf0"          # the FAIL threshold line, the ROC operating point
GRID_ALPHA = 0.12
LABEL_FILL = (23, 28, 34, 225)  # behind a line's label on a plot
#: text tones (style.qss: QLabel[tone="…"])
TONES = {"hint": TEXT_DIM, "error": "#ff7b72", "ok": "#56d364", "warn": "#e3b341"}
#: confusion-matrix cells: background, count colour
CELL_CORRECT = ("#1c3527", "#7ee2a0")
CELL_WRONG = ("#3d2022", "#ff8a80")
CELL_NEUTRAL = ("#2b3238", TEXT)


def set_tone(widget: QWidget, tone: str | None) -> None:
    """Give a label the tone ``tone`` (one of :data:`TONES`, "strong", "small" or None: plain text)."""
    widget.setProperty("tone", tone or "")
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


def configure_pyqtgraph() -> None:
    """pyqtgraph's defaults on this theme, for any plot made without :func:`app.widgets.plots.style_plot`."""
    import pyqtgraph as pg

    pg.setConfigOptions(background=PLOT_BACKGROUND, foreground=TEXT_DIM, antialias=True)
