"""``inspector-app --self-test``: prove that this installation works, end to end.

Made for the frozen program (PyInstaller), where a missing native library, Qt
plugin or data file only shows when the code that needs it runs. It runs the
real application code, offscreen, and checks what a user would notice:

1. resources: the icon renders, the style sheet is there;
2. the main window opens, and every view builds (Calibrate and Train pull in
   scikit-learn and pyqtgraph);
3. a ``spawn`` child process starts and runs core code (the Train view trains
   in one; a frozen program needs ``multiprocessing.freeze_support()``);
4. the demo bundle is found (shipped in ``models/``, or cached in the user's
   model folder), or built there the way the first start builds it (demo
   images, a short training), on a worker job like the window does;
5. the demo parts are scored through the Inspect view (its ``ScoringWorker``:
   capture thread, scoring thread, history recording) into a temporary history
   database, and every part must come back with a finite score and a committed
   row. How many defects were flagged is reported, not judged: that measures
   the demo model, not the installation;
6. with ``INSPECTOR_SELFTEST_SERVER`` set (a line's history server, a
   station's login), the same verdicts are recorded there and read back.

On an operator station (:mod:`app.station`: no torch, or ``--station``) the
window must have no Calibrate or Train view (its Line view is built instead),
the demo model is the exported one shipped with the station (it never
trains), and after the parts are scored through the Inspect view the demo
test split is scored with it once more and its verdicts checked against the
figures its bundle recorded at training (:func:`app.station.check_demo_verdicts`);
torch must not have been imported.

It prints progress on stderr and one summary line on stdout, and returns 0
only if every check passed. The user's settings, QSettings and history are
never written: they live in a temporary folder for the run. The demo cache
(data and bundle) is the user's own, so a station's first self-test also
prepares its first start.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

DEFAULT_TIMEOUT_S = 900.0  # without a shipped demo bundle the first run trains one: minutes on 2 cores


class SelfTestFailure(RuntimeError):
    """One check failed; the message says which and why."""


def _log(message: str) -> None:
    print(f"self-test: {message}", file=sys.stderr, flush=True)


def _spawn_probe(queue: Any) -> None:
    """Runs in a ``spawn`` child: import core code and report back."""
    try:
        from inspection_core import __version__
        from inspection_core.progress import CancelToken

        CancelToken()
        queue.put(("ok", __version__, bool(getattr(sys, "frozen", False))))
    except BaseException as exc:  # report every failure to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}", False))


def check_spawn(timeout_s: float = 120.0) -> str:
    """Start a ``spawn`` child process that imports the core; its answer, or raise."""
    import multiprocessing as mp
    import queue as _queue

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_spawn_probe, args=(q,), name="inspector-selftest-probe", daemon=True)
    proc.start()
    try:
        kind, detail, frozen = q.get(timeout=timeout_s)
    except _queue.Empty:
        raise SelfTestFailure(f"spawn child gave no answer in {timeout_s:.0f} s (exit code {proc.exitcode})") from None
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
    if kind != "ok":
        raise SelfTestFailure(f"spawn child failed: {detail}")
    return f"child ran core {detail}{' (frozen)' if frozen else ''}"


class _Waiter:
    """Runs the Qt event loop until a condition holds, with an overall deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def until(self, cond: Callable[[], bool], what: str) -> None:
        from PySide6.QtCore import QEventLoop
        from PySide6.QtWidgets import QApplication

        while not cond():
            if time.monotonic() > self.deadline:
                raise SelfTestFailure(f"timed out while {what}")
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)


def _isolated_settings(tmp: Path) -> Any:
    """The user's station settings with history, kept images, QSettings and the
    settings file itself moved to ``tmp`` (models and demo data stay the user's)."""
    from PySide6.QtCore import QCoreApplication, QSettings

    from app.settings import StationSettings

    user = StationSettings.load()  # raises ValueError naming a broken settings file
    s = dataclasses.replace(
        user,
        data_dir=str(user.data_path()),
        models_dir=str(user.models_path()),
        history_path=str(tmp / "history.sqlite3"),
        image_dir=str(tmp / "images"),
        keep_images=True,
        default_bundle="",
        default_source="",
        start_role="engineer",
        pin_hash="",
        pin_salt="",
    )
    s._path = tmp / "settings.json"  # type: ignore[attr-defined] - never the user's file
    QCoreApplication.setOrganizationName("Inspector")
    QCoreApplication.setApplicationName("Inspector-selftest")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "qsettings"))
    return s


def _check_resources() -> str:
    from app.startup import load_style
    from app.main_window import app_icon

    icon = app_icon()
    if icon.isNull() or icon.pixmap(64, 64).isNull():
        raise SelfTestFailure("resources: icon.svg not found or not renderable (SVG icon engine plugin missing?)")
    if not load_style().strip():
        raise SelfTestFailure("resources: style.qss not found")
    return "icon and style ok"


def _build_window(settings: Any, waiter: _Waiter, station: bool) -> Any:
    from PySide6.QtWidgets import QLabel

    from app.context import AppContext
    from app.main_window import MainWindow

    ctx = AppContext(settings, role="engineer", station=station)
    ctx.demo_history = Path(settings.history_path).parent / "demo" / "history.sqlite3"  # the demo's, in the temporary folder
    win = MainWindow(ctx)
    win.show()
    waiter.until(win.isVisible, "showing the main window")
    if station and {"Calibrate", "Train"} & set(win.visible_tab_titles()):
        raise SelfTestFailure(f"views: a station shows {win.visible_tab_titles()} (no Calibrate or Train expected)")
    for title in ("Line",) if station else ("Calibrate", "Train"):
        view = win.engineer_view(title)
        if type(view).__name__ == "_Placeholder":  # the view's constructor raised; its label says why
            texts = [lab.text().replace("\n", " ") for lab in view.findChildren(QLabel)]
            raise SelfTestFailure(f"views: {' '.join(texts) or title + ' view failed to build'}")
    return win


def _demo_bundle(win: Any, waiter: _Waiter) -> tuple[Path, str]:
    """The demo bundle, built on a worker job (as the window does) when it is not cached."""
    from app.demo import _bundle_ok, demo_bundle_path, ensure_demo_bundle, shipped_demo_bundle, shipped_models_dirs
    from app.station import demo_export_path, ensure_station_demo

    s = win.ctx.settings
    if win.ctx.station:
        found = demo_export_path(s)
        how = "missing" if found is None else "shipped export" if found.parent in shipped_models_dirs() else "export"
    else:
        how = "shipped" if shipped_demo_bundle() else "cached" if _bundle_ok(demo_bundle_path(s)) else "built"
    if how == "built":
        _log(f"no shipped or cached demo bundle: building it in {demo_bundle_path(s).parent} (first start)")
    state: dict[str, Any] = {}

    def progress(e: Any) -> None:
        if e.kind == "epoch":
            _log(f"demo training epoch {e.epoch}/{e.epochs}")
        elif e.kind in ("message", "done") and e.message:
            _log(e.message)

    prepare = ensure_station_demo if win.ctx.station else ensure_demo_bundle
    win.ctx.start_job(
        lambda p, c: prepare(p, c, settings=s), on_progress=progress,
        on_done=lambda r: state.update(path=Path(r)), on_error=lambda m: state.update(error=m),
        on_cancelled=lambda: state.update(error="cancelled"), name="selftest-demo",
    )  # fmt: skip
    waiter.until(lambda: bool(state), "preparing the demo bundle")
    if "error" in state:
        raise SelfTestFailure(f"demo bundle: {state['error']}")
    return state["path"], how


def _score_demo(win: Any, waiter: _Waiter, engine: list[str]) -> list[Any]:
    """Score every demo part through the Inspect view; the LiveResults in
    order (``engine`` gets what scored them)."""
    from app.demo import demo_line_path

    iv = win.inspect_view
    line = demo_line_path(win.ctx.settings)
    results: list[Any] = []
    iv.resultShown.connect(results.append)
    if not iv.start_source("demo", str(line), loop=False, pace_fps=None):
        raise SelfTestFailure(f"inspect: could not start: {iv.state_text}")
    if iv.worker is not None:  # its Ready event is queued: seen once the loop below runs
        iv.worker.ready.connect(lambda insp: engine.append(str(getattr(insp, "engine", "") or "")))
    waiter.until(lambda: iv.worker is None, "scoring the demo parts")
    if iv.state_kind in ("error", "warning"):
        raise SelfTestFailure(f"inspect: {iv.state_text}")
    waiter.until(lambda: iv.image_pane.has_image, "painting the result")  # the 25 Hz render timer
    return results


def _verify(results: list[Any], ctx: Any, line: Path) -> dict[str, Any]:
    """Check every part came back scored and recorded; the figures for the summary."""
    from inspection_core.data.images import list_images
    from inspection_core.history import HistoryDB

    expected = len(list_images(line))
    if expected == 0:
        raise SelfTestFailure(f"demo: no images in {line}")
    if len(results) != expected:
        raise SelfTestFailure(f"inspect: {len(results)} of {expected} demo parts scored")
    missing = [r.frame_ref for r in results if r.record_id is None]
    if missing:
        raise SelfTestFailure(f"history: {len(missing)} parts not recorded (first: {missing[0]})")
    scores = [float(r.prediction.score) for r in results]
    if not all(math.isfinite(x) for x in scores):
        raise SelfTestFailure("inspect: a score is not a finite number")
    history = ctx.history_db_path()  # the demo's own history: the demo bundle's verdicts are recorded there
    with HistoryDB(history) as db:  # a second connection: the rows are committed
        rows = db.count()
        by_verdict = db.counts_by_verdict()
        stored = [r for r in db.query(limit=expected + 10) if r.stored_image]
    if rows != expected:
        raise SelfTestFailure(f"history: {rows} rows in {history}, expected {expected}")
    for rec in stored:
        if ctx.history.image_path(rec) is None:
            raise SelfTestFailure(f"history: kept image {rec.stored_image} is missing")
    defect = [x for r, x in zip(results, scores) if not Path(r.frame_ref).stem.endswith("_good")]
    good = [x for r, x in zip(results, scores) if Path(r.frame_ref).stem.endswith("_good")]
    verdicts = [str(getattr(r.prediction.verdict, "value", r.prediction.verdict)) for r in results]
    return {
        "n": expected, "rows": rows, "by_verdict": by_verdict, "kept_images": len(stored),
        "defects_flagged": sum(1 for r, v in zip(results, verdicts)
                               if not Path(r.frame_ref).stem.endswith("_good") and v != "PASS"),
        "n_defect": len(defect), "n_good": len(good),
        "good_passed": sum(1 for r, v in zip(results, verdicts) if Path(r.frame_ref).stem.endswith("_good") and v == "PASS"),
        "latency_ms": sorted(r.score_ms for r in results)[len(results) // 2],
    }


def record_to_server(results: list[Any], server: str, timeout_s: float = 60.0) -> str:
    """Record the scored parts' verdicts to a line's history server (a
    station's login; ``INSPECTOR_SELFTEST_SERVER``) through the Recorder, as
    the live line does, and read them back: proves the PostgreSQL client
    shipped. The rows stay (note "self-test"); one summary phrase is returned."""
    from inspection_core.history import Recorder, check_target, display_target, open_history
    from inspection_core.history.targets import new_uid

    try:
        check_target(server, "INSPECTOR_SELFTEST_SERVER")
    except ValueError as exc:
        raise SelfTestFailure(f"server: {exc}") from None
    tag = f"selftest-{new_uid()[:12]}"
    t0 = time.monotonic()
    try:
        with open_history(server) as db:
            refused = getattr(db, "recording_refused", lambda: None)()
    except Exception as exc:  # noqa: BLE001 - any failure to open it is a failed check, in one line
        raise SelfTestFailure(f"server: {exc}") from None
    if refused:
        raise SelfTestFailure(f"server {display_target(server)}: {refused}")
    rec = Recorder(path=server, retry_s=0.5)
    try:
        for r in results:
            p = r.prediction
            rec.record(score=float(p.score), verdict=str(getattr(p.verdict, "value", p.verdict)),
                       threshold_high=p.threshold.high, threshold_low=p.threshold.low, source=tag,
                       image_ref=f"{tag}/{Path(r.frame_ref).name}", station="self-test", note="self-test")
        if not rec.flush_until(timeout_s):
            raise SelfTestFailure(f"server: {rec.pending} verdicts still wait in the spool: {rec.message}")
    finally:
        rec.close()
    with open_history(server) as db:
        found = db.count(source_contains=tag)
    if found != len(results):
        raise SelfTestFailure(f"server: {found} of {len(results)} verdicts read back from {display_target(server)}")
    return f"recorded {found} to {display_target(server)} in {time.monotonic() - t0:.1f} s"


def _check_station(win: Any) -> str:
    """A station's verdicts on the demo test split against its bundle's recorded
    figures (:func:`app.station.check_demo_verdicts`), and no torch imported."""
    from app.demo import demo_data_path
    from app.station import check_demo_verdicts

    if win.ctx.bundle_path is None:
        raise SelfTestFailure("station: no exported demo model in use")
    v = check_demo_verdicts(win.ctx.bundle_path, demo_data_path(win.ctx.settings))
    if v["problems"]:
        raise SelfTestFailure(f"station verdicts on the demo test split: {'; '.join(v['problems'])}")
    if "torch" in sys.modules:
        raise SelfTestFailure("station: torch was imported on the Inspect path")
    return (f"demo test split on the station: good passed {v['good_passed']}/{v['n_good']}, defects failed "
            f"{v['defect_failed']}/{v['n_defect']}, image AUROC {v['auroc']:.4f} (as recorded at training)")


def run_self_test(timeout_s: float | None = None, station: bool | None = None) -> int:
    """Run every check; print one summary line; 0 only if all passed. ``station``:
    check the operator station (None: a station where torch is not installed)."""
    t0 = time.monotonic()
    timeout_s = float(os.environ.get("INSPECTOR_SELFTEST_TIMEOUT", timeout_s or DEFAULT_TIMEOUT_S))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["INSPECTOR_NO_CONFIRM"] = "1"
    from PySide6.QtWidgets import QApplication

    from inspection_core import __version__

    from app.station import station_mode

    station = station_mode(bool(station))
    frozen = ("frozen" if getattr(sys, "frozen", False) else "source") + (" station" if station else "")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app import gc_guard

    gc_guard.install(app)
    waiter = _Waiter(t0 + timeout_s)
    parts: list[str] = []
    win = None
    failure = ""
    with tempfile.TemporaryDirectory(prefix="inspector-selftest-") as tmp:
        try:
            step = "settings"
            settings = _isolated_settings(Path(tmp))
            step = "resources"
            _check_resources()
            step = "window"
            win = _build_window(settings, waiter, station)
            parts.append(f"window {time.monotonic() - t0:.1f} s")
            _log(f"main window and all views built ({app.platformName()})")
            step = "spawn"
            _log(check_spawn())
            step = "demo bundle"
            t1 = time.monotonic()
            bundle, how = _demo_bundle(win, waiter)
            win.ctx.set_bundle(bundle)
            parts.append(f"demo bundle {how} {time.monotonic() - t1:.1f} s")
            _log(f"demo bundle {bundle} ({how})")
            step = "scoring"
            t2 = time.monotonic()
            engine: list[str] = []
            results = _score_demo(win, waiter, engine)
            from app.demo import demo_line_path

            v = _verify(results, win.ctx, demo_line_path(settings))
            bv = v["by_verdict"]
            parts.append(
                f"scored {v['n']} parts in {time.monotonic() - t2:.1f} s (median {v['latency_ms']:.0f} ms)"
                f", recorded {v['rows']} (PASS {bv.get('PASS', 0)}, REVIEW {bv.get('REVIEW', 0)}, "
                f"FAIL {bv.get('FAIL', 0)}, INVALID {bv.get('INVALID', 0)})"
                f", defects flagged {v['defects_flagged']}/{v['n_defect']}, good passed {v['good_passed']}/{v['n_good']}"
                + (f" with {engine[0]}" if engine and engine[0] else "")
            )  # fmt: skip
            if station:
                step = "station"
                parts.append(_check_station(win))
                _log(parts[-1])
            if server := os.environ.get("INSPECTOR_SELFTEST_SERVER", "").strip():
                step = "server"
                parts.append(record_to_server(results, server))
                _log(parts[-1])
        except SelfTestFailure as exc:
            failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - any error is a failed self-test, reported in one line
            import traceback

            traceback.print_exc()
            failure = f"{step}: {type(exc).__name__}: {exc}"
        finally:
            if win is not None:
                win.close()
                app.processEvents()
                win.ctx.shutdown(10000)
    total = time.monotonic() - t0
    head = f"Inspector {__version__} ({frozen}, {app.platformName()})"
    if failure:
        print(f"self-test FAILED: {head}: {failure}", flush=True)
        return 1
    print(f"self-test OK: {head}: " + "; ".join(parts) + f"; total {total:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_self_test())
