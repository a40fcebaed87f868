"""What the Train view says before and after a run, apart from its progress.

Before: how long the settings shown take on this machine, above Start
(:mod:`inspection_core.usecases.estimate`, measured in a child process set
up as the training's, :func:`app.views.train_process.estimate_in_process`;
a probe is made once per model, batch and device, and a changed budget is
arithmetic only), in words that stand out when the run is long, with the
default family's time beside it. After a failure: the message in full, in
the view's terms, in a banner across the top of the view; where pretrained
weights are missing, a button that sets a local weights file for the next
Start.

:class:`RunNotes` is a mixin of :class:`app.views.train.TrainView` (it uses
the view's ``ctx``, ``form``, ``index``, ``estimate_label``, ``split_note``,
``is_busy`` and ``_say``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from app.views.train_form import DEFAULT_FAMILY, family_name
from app.views.train_process import estimate_in_process
from app.widgets import theme
from app.widgets.wrap_label import WrapLabel
from inspection_core.config import ModelConfig, TrainConfig
from inspection_core.usecases.estimate import LONG_RUN_S, duration_text
from inspection_core.usecases.train_settings import TrainSettings

#: settings that stay unchanged this long are estimated (typing a number is not a run of probes)
ESTIMATE_DELAY_MS = 800
#: what the command line says, and what the Train view offers instead
_CLI_WEIGHTS = re.compile(r"pass it with --weights FILE")
#: exception class names a user need not read ("TrainingProcessError: WeightsUnavailableError: …")
_TYPE_PREFIX = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.]*(?:Error|Exception|Exit|Interrupt)):(?:\s+|$)")
_INNER_TYPE = re.compile(r"\b[A-Z][A-Za-z0-9_]*(?:Error|Exception): ")
_URL_ERROR = re.compile(r"<urlopen error (?:\[Errno -?\d+\] )?([^>]*)>")


def explain_failure(message: str) -> tuple[str, bool]:
    """A failed training's message in the Train view's terms: the Python
    exception names stripped, a command-line flag turned into the button
    that does the same; and whether pretrained weights are what is missing."""
    weights = "WeightsUnavailableError" in message
    text = message.strip()
    while _TYPE_PREFIX.match(text):
        text = _TYPE_PREFIX.sub("", text, count=1)
    if weights:
        text = _URL_ERROR.sub(lambda m: m.group(1).strip().lower() or "no connection", _INNER_TYPE.sub("", text))
        text = _CLI_WEIGHTS.sub("choose a local copy of the file with “Choose weights file…” and start again", text)
        text = "the pretrained weights are missing — " + text
    if not text:
        text = "the training process ended without saying why"
    return f"Training failed: {text}", weights


def _probe_key(mcfg: ModelConfig, tcfg: TrainConfig, n_train: int) -> str:
    """What a probe's costs depend on (not the budget or the learning rate)."""
    return json.dumps([mcfg.to_dict(), tcfg.batch_size, tcfg.cpu_bf16, tcfg.device, tcfg.amp, n_train],
                      sort_keys=True, default=str)


class RunNotes:
    """The estimate above Start and the failure banner (see the module docstring)."""

    estimate_label: WrapLabel
    split_note: WrapLabel

    def _init_notes(self) -> None:
        self._estimate_timer = QTimer(self, singleShot=True, interval=ESTIMATE_DELAY_MS,  # type: ignore[call-overload]
                                      timeout=self.estimate_in_background)
        self._estimate_job: Any = None
        self._estimate_seq = 0
        self._probe_cache: dict[str, Any] = {}
        self.estimate: Any = None  # the TrainingEstimate shown above Start

    def _build_alert(self) -> QWidget:
        """The banner across the top: a failure in full, and what to do about it."""
        self.alert = QFrame()
        self.alert.setObjectName("trainAlert")
        self.alert.setStyleSheet(f"QFrame#trainAlert {{ border: 1px solid {theme.TONES['error']}; border-radius: 4px; }}")
        lay = QHBoxLayout(self.alert)
        self.alert_label = WrapLabel("")
        self.alert_label.setTextFormat(Qt.TextFormat.PlainText)
        self.alert_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        theme.set_tone(self.alert_label, "error")
        lay.addWidget(self.alert_label, 1)
        col = QVBoxLayout()
        self.weights_button = QPushButton("Choose weights file…", clicked=lambda: self.choose_weights_file())
        self.weights_button.setToolTip("A local copy of the backbone's pretrained weights (.pth); the next Start uses it.")
        col.addWidget(self.weights_button)
        col.addWidget(QPushButton("Dismiss", clicked=self.hide_alert))
        col.addStretch(1)
        lay.addLayout(col)
        self.alert.setVisible(False)
        return self.alert

    def _show_split_plan(self) -> None:
        """For the classifier: how many labelled images it trains on and holds
        out (a warning when the held-out split is too small to trust)."""
        from inspection_core.usecases.supervised_plan import plan_supervised

        plan = None
        if self.index is not None and self.form.info.get("supervised"):
            plan = plan_supervised(self.index, seed=self.form.seed_spin.value())
        lines = plan.lines() if plan else []
        self.split_note.setText("\n".join(line[0].upper() + line[1:] for line in lines))
        theme.set_tone(self.split_note, "hint" if plan is None or plan.trusted else "warn")
        self.split_note.setVisible(bool(lines))

    def _schedule_estimate(self) -> None:
        self._estimate_seq += 1  # an estimate still running is for older settings now
        self._estimate_timer.start()

    def _cancel_estimate(self) -> None:
        self._estimate_timer.stop()
        self._estimate_seq += 1
        if self._estimate_job is not None and self._estimate_job.running:
            self._estimate_job.cancel()

    def estimate_in_background(self) -> None:
        """Estimate how long the settings shown take on this machine (and, for
        another family, how long the default one takes) and show it above Start."""
        self._estimate_timer.stop()
        if self.is_busy() or self.index is None or not self.form.models:
            return
        if self._estimate_job is not None and self._estimate_job.running:
            self._estimate_job.cancel()
        self._estimate_seq += 1
        seq = self._estimate_seq
        settings, channels = self.form.settings(), self.index.channels
        n_train, n_test = len(self.index.train), len(self.index.test)
        other = None
        if settings.model != DEFAULT_FAMILY and DEFAULT_FAMILY in self.form.models:
            other = TrainSettings(model=DEFAULT_FAMILY, device=settings.device, seed=settings.seed)
        cache = dict(self._probe_cache)
        self.estimate_label.setText("Estimating how long this training takes on this machine…")
        theme.set_tone(self.estimate_label, "hint")

        def job(_progress: Any, cancel: Any) -> list[tuple[ModelConfig, TrainConfig, Any]]:
            configs = [settings.configs(channels)] + ([other.configs(channels)] if other is not None else [])
            requests = [(m, t, n_train, n_test, cache.get(_probe_key(m, t, n_train))) for m, t in configs]
            if all(r[-1] is not None for r in requests):  # probed before: arithmetic only
                from inspection_core.usecases.estimate import estimate_training

                estimates = [estimate_training(m, t, a, b, costs=c) for m, t, a, b, c in requests]
            else:
                estimates = estimate_in_process(requests, cancel)
            return [(m, t, e) for (m, t), e in zip(configs, estimates)]

        def done(result: list[tuple[ModelConfig, TrainConfig, Any]]) -> None:
            for m, t, e in result:
                self._probe_cache[_probe_key(m, t, n_train)] = e.costs
            if seq == self._estimate_seq and shiboken6.isValid(self.estimate_label):  # the view may be gone
                self._show_estimate(result)

        def failed(message: str) -> None:
            if seq == self._estimate_seq and shiboken6.isValid(self.estimate_label):
                self.estimate = None
                self.estimate_label.setText("")  # a setting the run refuses is told at Start

        self._estimate_job = self.ctx.start_job(job, on_done=done, on_error=failed, name="training-estimate")

    def _show_estimate(self, result: list[tuple[ModelConfig, TrainConfig, Any]]) -> None:
        m, t, est = result[0]
        self.estimate = est
        took = duration_text(est.seconds)
        run = f"{family_name(m.model)}, {t.preset or 'standard'} preset: {est.what(m, t)}"
        if est.seconds > LONG_RUN_S:
            text = f"{took[:1].upper()}{took[1:]} on this machine: {run}."
            if len(result) > 1:
                dm, _dt, dest = result[1]
                text += f" {family_name(dm.model)} fits in {duration_text(dest.seconds)}."
            theme.set_tone(self.estimate_label, "warn")
        else:
            text = f"Takes {took} on this machine ({run})."
            theme.set_tone(self.estimate_label, "hint")
        self.estimate_label.setText(text)
        self.estimate_label.setToolTip("Measured now: one step of this model on this machine's CPU times the "
                                       "steps of the run, with the evaluation of the test images.")

    # ------------------------------------------------------------------ failures
    def show_alert(self, text: str, weights: bool = False) -> None:
        """The banner at the top of the view, with the weights button where weights are missing."""
        self.alert_label.setText(text)
        self.weights_button.setVisible(weights)
        self.alert.setVisible(True)

    def hide_alert(self) -> None:
        self.alert.setVisible(False)

    @property
    def alert_text(self) -> str:
        return self.alert_label.text() if self.alert.isVisibleTo(self) else ""

    def choose_weights_file(self, path: str | Path | None = None) -> bool:
        """Ask for a local weights file (or take ``path``) and make it the
        next Start's start weights; True when one was set."""
        if path is None:
            start = self.form.weights_edit.text() or str(Path.home())
            path, _ = QFileDialog.getOpenFileName(self, "Pretrained weights of the backbone", start,
                                                  "PyTorch weights (*.pth *.pt);;All files (*)")
            if not path:
                return False
        if not self.form.use_weights_file(path):
            self._say("This model has no pretrained part to load weights into.", error=True)
            return False
        self.show_alert(f"Weights file set: {path}. Press Start training to train with it.")
        theme.set_tone(self.alert_label, "ok")
        self._say(f"The next training starts from {Path(path).name}.")
        return True


__all__ = ["ESTIMATE_DELAY_MS", "RunNotes", "explain_failure"]
