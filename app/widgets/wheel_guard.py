"""The mouse wheel scrolls the panel, not the value under the pointer.

Scrolling a long form (the Train view's settings) used to change every spin
box and combo box the pointer crossed: Batch size went from 16 to 1 without
a click. One application-wide event filter fixes it for every view: spin
boxes and combo boxes take focus by click or Tab only (``Qt.StrongFocus``),
and a wheel event reaches one only while it has focus; otherwise the event
goes on to the parent, so the scroll area under it scrolls.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QWidget

_GUARDED = (QAbstractSpinBox, QComboBox)
_GUARD: WheelGuard | None = None


class WheelGuard(QObject):
    """Event filter: see the module docstring."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind == QEvent.Type.Polish and isinstance(obj, _GUARDED):
            if obj.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                obj.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif kind == QEvent.Type.Wheel and isinstance(obj, QWidget):
            box = _guarded_owner(obj)
            if box is not None and not box.hasFocus():
                event.ignore()  # not handled here: Qt offers it to the parents (the scroll area)
                return True
        return False


def _guarded_owner(widget: QWidget) -> QWidget | None:
    """The spin box or combo box ``widget`` is, or is part of (a spin box's line edit)."""
    w: QWidget | None = widget
    for _ in range(2):
        if w is None:
            return None
        if isinstance(w, _GUARDED):
            return w
        w = w.parentWidget()
    return None


def install_wheel_guard(app: QApplication | None = None) -> WheelGuard:
    """Install the guard on the application once (later calls return it);
    spin and combo boxes that exist already get the strong focus policy now."""
    global _GUARD
    app = app or QApplication.instance()
    if _GUARD is not None and _GUARD.parent() is app:
        return _GUARD
    guard = _GUARD = WheelGuard(app)
    app.installEventFilter(guard)
    for w in app.allWidgets():
        if isinstance(w, _GUARDED) and w.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return guard


__all__ = ["WheelGuard", "install_wheel_guard"]
