"""Inspect: live scoring of a camera, video file, folder or watched folder.

The view owns one ``ScoringWorker`` (the Qt relay of the core's live line:
capture and scoring threads, history recording) and only displays what it
emits: the newest result is painted at most every 30 ms, so a fast source
never makes the GUI thread fall behind.

A frame that carries no part (INVALID: blank, overexposed, far too dark or
bright) is shown as such (grey banner with its reason, its own counter, never
a PASS); when several come in a row the line's camera warning stands in red
above the banner until a part is seen again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QVBoxLayout,
    QWidget,
)  # fmt: skip

from app.context import AppContext
from app.manifest import read_manifest_light
from app.views.inspect_source import DEMO, build_source_bar, folder_without_parts
from app.views.inspect_panels import BusyPanel, build_side_column, typed
from app.views.shift import ShiftCounters, bundle_summary  # noqa: F401 - part of this view's API
from app.widgets.image_pane import (
    HEAT_LEGEND, HEAT_LEGEND_TIP, NO_RECONSTRUCTION, ImagePane, fit_for_display, heat_overlay,
)
from app.widgets.recent_strip import RecentStrip
from app.workers import LiveResult, ScoringWorker
from inspection_core.usecases.live import line_source


class InspectView(QWidget):
    """Source picker, three image panes, verdict banner, shift counters, bundle panel."""

    resultShown = Signal(object)       # LiveResult, after it was counted
    rendered = Signal(object)          # LiveResult, once its images and verdict are drawn
    runningChanged = Signal(bool)

    RENDER_INTERVAL_MS = 30            # at most ~33 renders a second; never a wait when parts come slower

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.worker: ScoringWorker | None = None
        self.counters = ShiftCounters()
        self.results_received = 0
        self._latest: LiveResult | None = None
        self._pending_thumbs: list[LiveResult] = []
        self._dirty = False
        self._source_desc: tuple[str, str] | None = None
        self._source: Any = None  # the running ImageSource (a folder's says how many images it found)
        self._state = "idle"
        self._end_note = ""
        self._build()
        # Rendering follows the results: a part is drawn as soon as it arrives,
        # at most once per RENDER_INTERVAL_MS (a faster source shows its newest part).
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self._render_latest)
        self._last_render = 0.0
        self._last_status = 0.0
        self._shortcut = QShortcut(QKeySequence(ctx.settings.trigger_key or "Space"), self)
        self._shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self._shortcut.activated.connect(self._on_trigger_key)
        ctx.bundleChanged.connect(self._on_bundle_changed)
        ctx.recordingChanged.connect(self._on_recording)
        ctx.bundleUpdated.connect(self._on_bundle_updated)
        self.refresh_bundles()
        self._update_buttons()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 10, 12, 10)
        root.setSpacing(10)

        root.addLayout(build_source_bar(self))  # source, mode, rate, start/pause/stop/trigger

        # State strip (camera lost, source ended, errors)
        self.state_strip = QLabel("")
        self.state_strip.setObjectName("stateStrip")
        self.state_strip.setWordWrap(True)
        self.state_strip.hide()
        root.addWidget(self.state_strip)

        # Busy panel (first start: the demo model is trained)
        self.busy_panel = BusyPanel()
        root.addWidget(self.busy_panel)

        body = QHBoxLayout()
        body.setSpacing(12)
        panes = QHBoxLayout()
        panes.setSpacing(8)
        self.image_pane = ImagePane("Image")
        self.recon_pane = ImagePane("Reconstruction")
        self.heat_pane = ImagePane("Heat map", legend=HEAT_LEGEND)
        self.heat_pane.setToolTip(HEAT_LEGEND_TIP)
        for p in (self.image_pane, self.recon_pane, self.heat_pane):
            panes.addWidget(p, 1)
        left = QVBoxLayout()
        left.addLayout(panes)  # as tall as the images (heightForWidth): no empty band above and below them
        self.recent = RecentStrip()
        left.addWidget(self.recent)
        self.ref_label = QLabel("")
        self.ref_label.setObjectName("refLabel")
        self.ref_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        left.addWidget(self.ref_label)
        left.addStretch(1)
        body.addLayout(left, 3)

        body.addWidget(build_side_column(self), 1)  # camera warning, verdict, shift, performance, bundle
        root.addLayout(body, 1)
        self._on_kind_changed()

    # ------------------------------------------------------------------ bundles
    def refresh_bundles(self) -> None:
        """Fill the bundle switcher from the model folders and show the current bundle."""
        self.bundle_panel.set_bundles(self.ctx.list_bundles(), self.ctx.bundle_path)
        self._show_bundle_info()

    def _show_bundle_info(self) -> None:
        path = self.ctx.bundle_path
        if path is None:
            self.bundle_panel.show_info(None)
            return
        try:
            info = bundle_summary(read_manifest_light(path))
        except Exception as exc:  # noqa: BLE001 - shown, not fatal
            self.bundle_panel.show_error(f"unreadable: {exc}")
            return
        self.bundle_panel.show_info(info)

    def _bundle_chosen(self, index: int) -> None:
        path = self.bundle_panel.bundle_combo.itemData(index)
        if path:
            try:
                self.ctx.set_bundle(Path(path))
            except (FileNotFoundError, ValueError) as exc:
                self._show_state("error", str(exc))

    def _on_bundle_changed(self, _path: object) -> None:
        self.refresh_bundles()
        if self.worker is not None and self._source_desc is not None:
            kind, spec = self._source_desc
            self.start_source(kind, spec)  # restart with the new model

    def _on_bundle_updated(self, _path: object) -> None:
        self._show_bundle_info()
        if self.worker is None or self.ctx.bundle_path is None:
            return
        from inspection_core.frame_check import limits_of
        from inspection_core.types import Threshold

        try:
            manifest = read_manifest_light(self.ctx.bundle_path)
            self.worker.set_threshold(Threshold.from_dict(manifest["threshold"]))
            self.worker.set_frame_limits(limits_of(manifest))  # the frame check turned on or off in Calibrate
        except Exception as exc:  # noqa: BLE001
            self._show_state("error", f"new threshold not applied: {exc}")

    # ------------------------------------------------------------------ sources
    def _on_kind_changed(self, *_: object) -> None:
        self.picker.kind_changed()
        self._update_buttons()

    def _choice_differs(self) -> bool:
        """Whether the source picked in the bar is not the one running (Start then switches to it)."""
        if self.worker is None or self._source_desc is None:
            return False
        kind, spec = self._source_desc
        chosen = self.kind_combo.currentData()
        return chosen != kind or (chosen != "demo" and self.spec_edit.text().strip() != spec)

    def _start_clicked(self) -> None:
        if self.worker is not None and self.worker.paused and not self._choice_differs():
            self.resume()
            return
        kind = self.kind_combo.currentData()
        spec = self.spec_edit.text().strip()
        if kind == "demo":
            self.start_demo()
        elif not spec:
            self._show_state("error", "Enter a source first (a folder, a video file or a camera).")
        else:
            self.start_source(kind, spec)

    def start_demo(self) -> bool:
        """Run the demo's test parts (looping) with the demo bundle (a station: its
        exported demo model), if it exists."""
        from app.demo import demo_bundle_path, demo_line_path
        from app.station import demo_export_path

        s = self.ctx.settings
        bundle, line = demo_export_path(s) if self.ctx.station else demo_bundle_path(s), demo_line_path(s)
        if bundle is None or not bundle.exists() or not line.is_dir():
            self._show_state("error", "The demo model is not ready yet.")
            return False
        if self.ctx.bundle_path is None:
            self.ctx.set_bundle(bundle)
        self._select_kind("demo")
        return self.start_source("demo", str(line))

    def _select_kind(self, kind: str) -> None:
        self.picker.select(kind)

    def _make_source(self, kind: str, spec: str) -> tuple[Any, dict[str, Any]]:
        """The ImageSource (not opened: the capture thread opens it) and the line's
        settings for it, as the core's live use case decides them for the kind."""
        rate = float(self.rate_spin.value()) or None
        demo = kind == DEMO
        source, settings = line_source(spec, kind="folder" if demo else kind, rate=rate, loop=demo)
        return source, {"lossless": settings.lossless, "pace_fps": settings.pace_fps, "loop": settings.loop}

    def start_source(self, kind: str, spec: str, mode: str | None = None, **options: Any) -> bool:
        """Start inspecting ``spec`` (a path, camera index or URL) as source ``kind``.

        ``options`` override the pipeline's (``lossless``, ``pace_fps``, ``loop``).
        Returns False (with the reason shown) when no bundle is chosen.
        """
        self.stop()
        if self.ctx.bundle_path is None:
            self._show_state("error", "No model chosen: open an exported model (File ▸ Open exported model)."
                             if self.ctx.station else "No model bundle chosen: open one (File ▸ Open bundle) or train one.")
            return False
        self._select_kind(kind)
        if kind != "demo":
            self.spec_edit.setText(spec)
        if mode is not None:
            self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(mode)))
        try:
            source, opts = self._make_source(kind, spec)
        except Exception as exc:  # noqa: BLE001
            self._show_state("error", str(exc))
            return False
        opts.update(options)
        self.worker = ScoringWorker(
            source, str(self.ctx.bundle_path), self.ctx.recorder, mode=self.mode_combo.currentData(),
            station=self.ctx.settings.station, source_label=f"{kind}:{spec}",
            on_unrecorded=self.ctx.settings.on_history_failure, **opts,
        )  # fmt: skip
        self.worker.result.connect(self._on_result)
        self.worker.stateChanged.connect(self._on_source_state)
        self.worker.failed.connect(self._on_failed)
        self.worker.frameError.connect(lambda msg: self._show_state("warning", msg))
        self.worker.ended.connect(self._on_ended)
        self.worker.ready.connect(self._on_ready)
        self.worker.inputWarning.connect(self._on_input_warning)
        self.worker.cameraWarning.connect(self._on_camera_warning)
        self._source_desc = (kind, spec)
        self._source = source
        self._on_camera_warning("")  # a new run: the last one's warning no longer holds
        self._end_note = ""
        self._hide_state()
        if self.ctx.recorder.state != "ok":  # said before the first part
            self._on_recording(self.ctx.recorder.state, self.ctx.recorder.message, self.ctx.recorder.pending)
        self.banner.set_idle("LOADING", "loading the model…")
        self.worker.start()
        self._update_buttons()
        self.runningChanged.emit(True)
        return True

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Stop the running source and scoring (waits for both threads)."""
        w, self.worker = self.worker, None
        if w is None:
            return
        for sig in (w.result, w.stateChanged, w.failed, w.ended, w.frameError, w.ready, w.inputWarning,
                    w.cameraWarning):
            try:
                sig.disconnect()
            except (RuntimeError, TypeError):
                pass
        w.stop(5000)
        if self._dirty:
            self._render_latest()  # the last part and the final counts, not one render interval late
        if self.banner.verdict in ("IDLE", "LOST"):
            self.banner.set_idle("STOPPED", "press Start to inspect")
        self._update_buttons()
        self.runningChanged.emit(False)

    def pause(self) -> None:
        if self.worker is not None:
            self.worker.pause()
            self._update_buttons()

    def resume(self) -> None:
        if self.worker is not None:
            self.worker.resume()
            self._update_buttons()

    def _pause_clicked(self) -> None:
        if self.worker is not None and self.worker.paused:
            self.resume()
        else:
            self.pause()

    def trigger(self) -> None:
        if self.worker is not None:
            self.worker.trigger()

    def _on_trigger_key(self) -> None:
        if self.isVisible() and self.worker is not None and self.mode_combo.currentData() == "triggered":
            self.trigger()

    def _on_mode_changed(self, *_: object) -> None:
        if self.worker is not None:
            self.worker.set_mode(self.mode_combo.currentData())
        self._update_buttons()

    def reset_counters(self) -> None:
        self.counters = ShiftCounters()
        self.recent.clear()
        self._update_counters()

    def _update_buttons(self) -> None:
        running = self.worker is not None
        paused = running and self.worker.paused  # type: ignore[union-attr]
        switch = self._choice_differs()  # another source picked while one runs: Start switches to it
        self.start_btn.setText("▶  Resume" if paused and not switch else "▶  Start")
        self.start_btn.setEnabled(not running or paused or switch)
        self.start_btn.setToolTip("Stop the running source and start the one chosen here" if switch else "")
        self.pause_btn.setEnabled(running and not paused)
        self.stop_btn.setEnabled(running)
        self.trigger_btn.setEnabled(running and self.mode_combo.currentData() == "triggered")
        if paused:
            self.banner.set_idle("PAUSED", "press Resume to go on")

    # ------------------------------------------------------------------ results
    def _on_result(self, r: LiveResult) -> None:
        self.results_received += 1
        self.counters.add(str(getattr(r.prediction.verdict, "value", r.prediction.verdict)))
        self._latest = r
        self._dirty = True
        self._pending_thumbs.append(r)
        if self._state in ("reconnecting", "warning"):
            self._hide_state()
        self._schedule_render()
        self.resultShown.emit(r)

    def _schedule_render(self) -> None:
        if self._render_timer.isActive():
            return  # the newest result is drawn when it fires
        since_ms = (time.monotonic() - self._last_render) * 1000.0
        self._render_timer.start(int(max(0.0, self.RENDER_INTERVAL_MS - since_ms)))

    def _render_latest(self) -> None:
        self._last_render = time.monotonic()
        for t in self._pending_thumbs[-self.recent._items.maxlen:]:
            im = t.image if t.image is not None else t.prediction.image
            self.recent.add(im, str(getattr(t.prediction.verdict, "value", t.prediction.verdict)), t.prediction.score,
                            t.prediction.threshold.high, getattr(t.prediction, "reason", ""))
        self._pending_thumbs.clear()
        if not self._dirty or self._latest is None:
            return
        self._dirty = False
        r = self._latest
        p = r.prediction
        self._update_counters()
        now = time.monotonic()
        if now - self._last_status >= 0.5:  # rates, not per part: a label change re-lays-out the window
            self._last_status = now
            self.perf_panel.show_rates(r.fps, r.score_ms, r.frames_dropped)
        shown = r.image if r.image is not None else p.image
        dpr = self.devicePixelRatioF()
        shown = fit_for_display(np.asarray(shown), int(self.image_pane.width() * dpr), int(self.image_pane.height() * dpr))
        self.image_pane.set_image(shown)
        reason = getattr(p, "reason", "")
        if reason:  # no part in the frame: what the model made of it means nothing
            self.recon_pane.clear(f"no part in the frame ({reason})")
            self.heat_pane.clear(f"no part in the frame ({reason})")
        else:
            if p.reconstruction is not None:
                self.recon_pane.set_image(p.reconstruction)
            else:
                self.recon_pane.clear(NO_RECONSTRUCTION)
            self.heat_pane.set_image(heat_overlay(shown, p.heat))
        self.banner.set_verdict(p.verdict, p.score, p.threshold.high, p.threshold.low, p.texture_part, reason, typed(p))
        when = time.strftime("%H:%M:%S", time.localtime(r.frame_timestamp))
        self.ref_label.setText(f"{when}   {r.frame_ref}")
        self.rendered.emit(r)

    def _update_counters(self) -> None:
        self.shift_panel.show_counts(self.counters)

    # ------------------------------------------------------------------ states
    def _on_source_state(self, state: str, message: str) -> None:
        if state == "reconnecting":
            self._show_state("reconnecting", f"Camera lost — reconnecting…  {message}".strip())
            self.banner.set_idle("NO SIGNAL", "camera lost — reconnecting", lost=True)
        elif state == "running" and self._state == "reconnecting":
            self._hide_state()
            self.banner.set_idle("READY", "camera back — waiting for the next part")
        elif state == "error":
            self._show_state("error", f"Source error: {message}")
        elif state == "ended" and message:
            self._end_note = message  # e.g. a truncated video: shown with the end of the run

    def _on_recording(self, state: str, message: str, pending: int) -> None:
        """The history could not be written (verdicts wait in the spool), or caught up again."""
        if state == "spooling":
            self._show_state("error", f"History not writable — {pending} verdict(s) kept in the spool, written "
                                      f"when it can be: {message}")
        elif self._state == "error" and self.state_text.startswith("History not writable"):
            self._show_state("info", f"History writable again — {message}" if message else "History writable again.")

    def _on_input_warning(self, message: str) -> None:
        """Once per run: the parts look unlike the bundle's training data (it stays up; inspection goes on)."""
        self._show_state("input", message[:1].upper() + message[1:])

    def _on_camera_warning(self, message: str) -> None:
        """The line's camera warning (frames in a row carried no part); "" clears it (a part was seen again)."""
        if message:
            self.camera_warning.setText(f"⚠  {message[:1].upper()}{message[1:]}")
            self.camera_warning.show()
        else:
            self.camera_warning.clear()
            self.camera_warning.hide()

    @property
    def camera_warning_text(self) -> str:
        """The camera warning as shown ("" when none stands)."""
        return "" if self.camera_warning.isHidden() else self.camera_warning.text()

    def _on_ready(self, _inspector: object) -> None:
        from app import gc_guard

        gc_guard.settle()  # the model is loaded: full collections during the run scan only what the run creates
        if self._state != "reconnecting" and self.banner.verdict in ("IDLE", "LOST"):
            self.banner.set_idle("READY", "waiting for the first part")

    def _folder_without_parts(self) -> str:
        """What to say when a folder run inspected nothing (see :func:`folder_without_parts`)."""
        return folder_without_parts(self._source, self._source_desc, self.counters.inspected or self.counters.invalid)

    def _on_ended(self) -> None:
        empty = self._folder_without_parts()
        if empty:
            self._show_state("warning", empty)
            self.stop()
            self.banner.set_idle("NO IMAGES", "nothing to inspect in that folder")
            return
        n, invalid = self.counters.inspected, self.counters.invalid
        done = f"Source finished — {n} part{'s' if n != 1 else ''} inspected this shift."
        if invalid:
            done += f" {invalid} frame{'s' if invalid != 1 else ''} carried no part (INVALID)."
        note = self._end_note
        rec = self.ctx.recorder
        if rec.state == "spooling":
            self._show_state("error", f"{done}  History not writable — {rec.pending} verdict(s) kept in the spool, "
                                      f"written when it can be: {rec.message}")
        else:
            self._show_state("warning" if note else "info", f"{done}  {note}" if note else done)
        self.stop()

    def _on_failed(self, message: str) -> None:
        self._show_state("error", message)
        self.stop()
        self.banner.set_idle("STOPPED", "see the message above")

    @property
    def state_text(self) -> str:
        return self.state_strip.text() if self.state_strip.isVisible() or not self.state_strip.isHidden() else ""

    @property
    def state_kind(self) -> str:
        return self._state

    def _show_state(self, kind: str, text: str) -> None:
        self._state = kind
        self.state_strip.setProperty("kind", kind)
        self.state_strip.setText(text)
        self.state_strip.style().unpolish(self.state_strip)
        self.state_strip.style().polish(self.state_strip)
        self.state_strip.show()

    def _hide_state(self) -> None:
        self._state = "idle"
        self.state_strip.hide()

    # ------------------------------------------------------------------ busy panel (demo preparation)
    def show_busy(self, text: str, fraction: float | None = None, on_cancel: Any = None) -> None:
        self.busy_panel.show_progress(text, fraction, on_cancel)

    def hide_busy(self) -> None:
        self.busy_panel.hide()

    def shutdown(self) -> None:
        """Stop everything (window closing)."""
        self._render_timer.stop()
        self.stop()
