"""Teach…: an engineer picks parts (an operator's overrides first, highlighted)
and teaches them to the bundle in use (ADR 0020).

The teach runs on a worker (:func:`inspection_core.usecases.teach.prepare_teach`:
PatchCore learns the parts into its memory bank and the result is re-checked
on the bundle's calibration images); the dialog shows the false-reject and
escape rates before and after and lets the engineer save the new version, or
says why it is refused (escapes rise by more than 1 in 100). A family that
learns only by training queues the images for its next training, and the
dialog says so. Opened from the History view (its selected rows) and the
Inspect view (the bundle's recent FAIL and REVIEW parts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QMessageBox,
    QPushButton, QVBoxLayout, QWidget,
)  # fmt: skip

from app.context import AppContext
from inspection_core.bundle import bundle_path, load_manifest

if TYPE_CHECKING:  # the use case (torch) is imported when a teach starts, on the worker's behalf
    from inspection_core.usecases.teach import TeachPlan

#: the highlight of a part an operator overrode
OVERRIDDEN_BG = "#2e4a2e"


def record_image(ctx: AppContext, record: Any) -> Path | None:
    """The image a history record can be taught from: its source file when it
    is still there (full quality), else the image the station kept; None when neither."""
    ref = getattr(record, "image_ref", "") or ""
    if ref and "#" not in ref and Path(ref).is_file():
        return Path(ref)
    try:
        kept = ctx.history.image_path(record)
    except Exception:  # noqa: BLE001 - a history that cannot say: no image
        return None
    return kept if kept is not None and Path(kept).is_file() else None


def default_out(bundle: Path) -> Path:
    """A free name beside the bundle for the taught version: NAME-taught, NAME-taught-2, …"""
    n, out = 1, bundle_path(bundle.with_name(f"{bundle.stem}-taught"))
    while out.exists():
        n += 1
        out = bundle_path(bundle.with_name(f"{bundle.stem}-taught-{n}"))
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


class TeachDialog(QDialog):
    """Pick parts, check the taught bundle, save it (or queue the parts)."""

    saved = Signal(object)  # the Path written (a bundle, or the queue folder)

    def __init__(self, ctx: AppContext, bundle: Path, records: list[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.bundle = Path(bundle)
        self.plan: "TeachPlan | None" = None
        self.setWindowTitle(f"Teach {self.bundle.stem}")
        self.resize(560, 520)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Teach good parts to <b>{self.bundle.stem}</b>. Parts an operator overrode are "
                             "highlighted and ticked; tick the parts that are good."))
        self.overridden_only = QCheckBox("Only parts an operator overrode")
        lay.addWidget(self.overridden_only)
        self.parts = QListWidget()
        lay.addWidget(self.parts, 1)
        form = QFormLayout()
        self.by_edit = QLineEdit(str(QSettings().value("recent/operator", "")))
        self.out_edit = QLineEdit(str(default_out(self.bundle)))
        form.addRow("Taught by", self.by_edit)
        form.addRow("Save as", self.out_edit)
        lay.addLayout(form)
        self.figures = QLabel("")
        self.figures.setTextFormat(Qt.TextFormat.RichText)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.figures)
        lay.addWidget(self.status)
        buttons = QHBoxLayout()
        self.check_btn = QPushButton("Check")
        self.save_btn = QPushButton("Save new version")
        self.save_btn.setEnabled(False)
        self.close_btn = QPushButton("Close")
        buttons.addStretch(1)
        for b in (self.check_btn, self.save_btn, self.close_btn):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.check_btn.clicked.connect(self.start_check)
        self.save_btn.clicked.connect(self.save)
        self.close_btn.clicked.connect(self.reject)
        self.overridden_only.toggled.connect(self._filter)
        self._fill(records)

    # ------------------------------------------------------------------ parts
    def _fill(self, records: list[Any]) -> None:
        for rec in records:
            path = record_image(self.ctx, rec)
            over = getattr(rec, "override_verdict", None)
            text = f"#{rec.id}  {rec.verdict}"
            if getattr(rec, "defect_type", None):
                text += f" ({rec.defect_type})"
            if over:
                text += f"  → overridden to {over} by {rec.override_operator or '?'}"
            text += f"  ·  {path.name if path else 'no image kept'}"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, str(path) if path else None)
            item.setData(Qt.ItemDataRole.UserRole + 1, bool(over))
            if path is None:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            else:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if over == "PASS" or len(records) == 1 or not any(
                    getattr(r, "override_verdict", None) for r in records) else Qt.CheckState.Unchecked)
            if over:
                item.setBackground(QBrush(QColor(OVERRIDDEN_BG)))
            self.parts.addItem(item)

    def _filter(self, only: bool) -> None:
        for i in range(self.parts.count()):
            item = self.parts.item(i)
            item.setHidden(only and not item.data(Qt.ItemDataRole.UserRole + 1))

    def chosen_paths(self) -> list[Path]:
        """The ticked, shown parts' image files."""
        out = []
        for i in range(self.parts.count()):
            item = self.parts.item(i)
            if not item.isHidden() and item.checkState() == Qt.CheckState.Checked and item.data(Qt.ItemDataRole.UserRole):
                out.append(Path(item.data(Qt.ItemDataRole.UserRole)))
        return out

    # ------------------------------------------------------------------ work
    def start_check(self) -> None:
        """Teach the ticked parts in memory and re-check, on a worker."""
        paths = self.chosen_paths()
        if not paths:
            self.status.setText("Tick at least one part with an image.")
            return
        by = self.by_edit.text().strip()
        if by:
            QSettings().setValue("recent/operator", by)
        self.plan = None
        self.save_btn.setEnabled(False)
        self.check_btn.setEnabled(False)
        self.figures.setText("")
        self.status.setText(f"Teaching {len(paths)} part(s) and re-checking on the calibration images…")
        from inspection_core.usecases.teach import prepare_teach

        bundle = self.bundle
        self.job = self.ctx.start_job(lambda progress, cancel: prepare_teach(bundle, paths, by=by, progress=progress,
                                                                             cancel=cancel),
                                      on_done=self._checked, on_error=self._failed, name="teach")

    def _checked(self, plan: "TeachPlan") -> None:
        self.plan = plan
        self.check_btn.setEnabled(True)
        if plan.kind == "queued":
            self.save_btn.setText("Queue for training")
            self.save_btn.setEnabled(True)
            self.status.setText(plan.summary())
            return
        check = plan.check
        assert check is not None
        b, a = check.before, check.after
        self.figures.setText(
            f"<table cellpadding=4><tr><th></th><th>before</th><th>after</th></tr>"
            f"<tr><td>false rejects ({b.n_good} good)</td><td>{_pct(b.false_reject_rate)}</td>"
            f"<td>{_pct(a.false_reject_rate)}</td></tr>"
            f"<tr><td>escapes ({b.n_defect} defective)</td><td>{_pct(b.escape_rate)}</td>"
            f"<td>{_pct(a.escape_rate)}</td></tr></table>")
        d = plan.detail
        head = f"{len(plan.images)} part(s) taught: {d.get('added', 0)} patches added to the memory bank. "
        if check.passed:
            self.save_btn.setText("Save new version")
            self.save_btn.setEnabled(True)
            self.status.setText(head + f"Passes the re-check on {check.description}.")
        else:
            self.status.setText(head + f"Refused: {check.why_refused()}. The bundle is not changed.")

    def _failed(self, message: str) -> None:
        self.check_btn.setEnabled(True)
        self.status.setText(f"Cannot teach: {message}")

    def save(self) -> None:
        """Write the taught bundle (or queue the parts), on a worker."""
        plan = self.plan
        if plan is None or not plan.passed:
            return
        out = Path(self.out_edit.text().strip()) if plan.kind == "memory_bank" else None
        self.save_btn.setEnabled(False)
        self.job = self.ctx.start_job(lambda progress, cancel: plan.save(out), on_done=self._saved,
                                      on_error=self._failed, name="teach-save")

    def _saved(self, path: Path) -> None:
        assert self.plan is not None
        if self.plan.kind == "queued":
            self.status.setText(f"Queued in {path} for the next training of {self.bundle.stem} "
                                "(add them to its training images).")
        else:
            self.status.setText(f"Saved {path}: a new version of {self.bundle.stem} (use it from the bundle list).")
        self.saved.emit(Path(path))


def open_teach(ctx: AppContext, records: list[Any], parent: QWidget) -> TeachDialog | None:
    """The Teach dialog for ``records`` and the bundle in use (a message when there is none)."""
    if ctx.bundle_path is None or not Path(ctx.bundle_path).is_file():
        QMessageBox.information(parent, "Teach", "Choose the bundle to teach first (Inspect ▸ Model bundle).")
        return None
    if not records:
        QMessageBox.information(parent, "Teach", "Select the parts to teach first.")
        return None
    dlg = TeachDialog(ctx, Path(ctx.bundle_path), records, parent)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()
    return dlg


def recent_parts(ctx: AppContext, limit: int = 50) -> list[Any]:
    """The bundle in use's recent FAIL and REVIEW parts, overridden ones first (the Inspect view's Teach…)."""
    if ctx.bundle_path is None:
        return []
    name = load_manifest(ctx.bundle_path).name or Path(ctx.bundle_path).stem  # as the live line records it
    recs = ctx.history.query(verdict=["FAIL", "REVIEW"], bundle=name, limit=limit)
    return sorted(recs, key=lambda r: not r.override_verdict)


__all__ = ["TeachDialog", "default_out", "open_teach", "recent_parts", "record_image"]
