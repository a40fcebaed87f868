"""``inspector predict``: verdicts for image files or folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..defect_types.classifier import describe_answer
from ..fileio import atomic_open, atomic_write_csv
from .common import (
    CliError,
    add_note,
    check_batch_size,
    check_float,
    printable,
    signals_deferred,
)

if TYPE_CHECKING:  # the image reader is imported once the arguments are checked
    from ..data.images import ImageReadError

#: decoded images held at once, at most (plus one): a 0.5 MB PNG can decode to
#: 432 MB, and a batch of 32 of them took 8 GB
MAX_BATCH_BYTES = 256 << 20
#: the verdicts, in the order the summary counts them
VERDICTS = ("PASS", "REVIEW", "FAIL", "INVALID")
#: the CSV's columns: ``reason`` says why a frame is INVALID (empty otherwise); ``defect_type`` a FAIL's
#: type and its probability ("scratch (0.82)") where the bundle names types (empty otherwise; last, so
#: that readers of the first four columns are unchanged)
CSV_HEADER = ["path", "score", "verdict", "reason", "defect_type"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="score image files or folders and print verdicts",
        description="Score images with a bundle: prints one line per image (path, score, verdict); optionally "
        "writes a CSV, heat-map overlays and history records.",
    )
    p.add_argument("paths", nargs="+", type=Path,
                   help="image files or folders (a folder's sub-folders too, unless --no-recursive)")
    p.add_argument("--bundle", type=Path, required=True,
                   help="model bundle (.inspector file) that scores the images, or an exported model's folder "
                        "('inspector export'; scored with ONNX Runtime or OpenVINO, no PyTorch needed)")
    p.add_argument("--csv", type=Path, default=None,
                   help="write path,score,verdict,reason,defect_type rows here (also when the run stops early: the verdicts "
                        "printed so far)")
    p.add_argument("--maps", type=Path, default=None,
                   help="folder for heat-map overlays (<name>_heat.png, at each image's own resolution; a folder's "
                        "sub-folders are mirrored; default: none)")
    p.add_argument("--record", default=None, metavar="DB",
                   help="append verdicts to this history database (default: none), or to a line's server "
                        "(postgresql://user@host/db or service=NAME; passwords in ~/.pgpass); a verdict is recorded "
                        "before it is printed (while "
                        "the database is locked or full, or the server cannot be reached, it goes to the spool and is "
                        "written in later)")
    p.add_argument("--record-wait", type=float, default=60.0, metavar="S",
                   help="at the end, wait up to S seconds for the history to take spooled verdicts")
    p.add_argument("--station", default="cli", help="station name for history records")
    p.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                   help="descend into a folder's sub-folders, as the app does (default: on; --no-recursive scores "
                        "only the images directly in each folder)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="images scored together (fewer when they are large: at most 256 MB of decoded images)")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Heat map (values in [0, 1], any size) blended over an image as read
    (gray, BGR or BGRA, 8 or 16 bit), BGR uint8 at the image's own resolution."""
    import cv2

    from ..data.preprocess import to_uint8

    img = to_uint8(np.asarray(image))
    if img.ndim == 3 and img.shape[2] == 4:
        base = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim == 3 and img.shape[2] == 3:
        base = img
    else:
        base = cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    colored = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    if colored.shape[:2] != base.shape[:2]:
        colored = cv2.resize(colored, base.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    # blended into the resized map: one full-size image less (432 MB at 12000 x 12000)
    return cv2.addWeighted(base, 1 - alpha, colored, alpha, 0, dst=colored)


def _out_of_memory(exc: BaseException) -> str | None:
    """What ran out, when ``exc`` is MemoryError or OpenCV's own ('Failed to
    allocate N bytes', 'Insufficient memory'); None for any other error."""
    import re

    if isinstance(exc, MemoryError):
        return str(exc).strip() or "MemoryError"
    text = str(exc)
    if type(exc).__module__.startswith("cv2") and ("Failed to allocate" in text or "Insufficient memory" in text):
        found = re.search(r"Failed to allocate \d+ bytes", text)
        return found.group(0) if found else "OpenCV: insufficient memory"
    return None


def _write_overlay(out: Path, images: list, i: int, heat: np.ndarray) -> None:
    """The overlay of ``images[i]`` as a PNG at ``out``; the image is let go as
    soon as it is drawn, so that at most the image and its overlay are held."""
    import cv2

    drawn = overlay(images[i], heat)
    images[i] = None
    ok, encoded = cv2.imencode(out.suffix or ".png", drawn)
    del drawn
    if not ok:
        raise ValueError(f"cannot encode the heat-map overlay '{out}'")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "wb") as fh:
        fh.write(encoded.data)  # no bytes copy of a file that can be as large as the image


class _ReadAhead:
    """The files decoded and preprocessed on a thread of their own, in
    batches of ``batch_size`` (fewer when the decoded images held at once,
    here and by the caller, reach ``MAX_BATCH_BYTES``), so that the next
    batch is read while the caller scores this one (OpenCV and numpy let go
    of the GIL while they decode and resize).

    Each batch is a list, in file order, of ``(file, image, checked)`` (the
    image as read and ``check_frame``'s model image and reason) and of
    ``(file, None, error)`` for a file that cannot be read. The caller
    releases each image it lets go (:meth:`release`); the reader decodes the
    next file only while the images held and one more like the last stay
    within the budget (or none is held: a larger image is read alone). Any other error
    of the reader is raised in the caller, at its place in the files."""

    _END = object()

    def __init__(self, files: list[Path], batch_size: int, read_image: Any, error: type[ImageReadError],
                 check: Any) -> None:
        import queue
        import threading

        self._files, self._batch_size = files, batch_size
        self._read, self._error, self._check = read_image, error, check
        self._held = 0  # bytes of the decoded images not released yet
        self._room = threading.Condition()
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=1)  # one batch ready while the caller scores another
        self._thread = threading.Thread(target=self._run, name="predict-reader", daemon=True)
        self._thread.start()

    def release(self, nbytes: int) -> None:
        """The caller let go of an image of ``nbytes`` bytes."""
        with self._room:
            self._held -= nbytes
            self._room.notify()

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        batch: list[tuple[Path, Any, Any]] = []
        images = 0
        last = 0  # the last image's size: the next one is taken to be alike

        def room() -> bool:
            return self._held == 0 or self._held + last <= MAX_BATCH_BYTES

        try:
            for f in self._files:
                with self._room:
                    full = not room()
                if full and images:  # no room for another image: hand over what is read, then wait
                    if not self._put(batch):
                        return
                    batch, images = [], 0
                with self._room:
                    self._room.wait_for(lambda: room() or self._stop.is_set())
                if self._stop.is_set():
                    return
                try:
                    image = self._read(f)
                except self._error as exc:
                    batch.append((f, None, exc))
                    continue
                last = image.nbytes
                with self._room:
                    self._held += last
                batch.append((f, image, self._check(image)))
                del image
                images += 1
                if images >= self._batch_size:
                    if not self._put(batch):
                        return
                    batch, images = [], 0
            if batch and not self._put(batch):
                return
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller, in its place
            self._put(exc)

    def __iter__(self) -> Any:
        import queue

        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the image reader stopped without a word") from None
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            held = [item]
            del item  # the caller's alone while it is scored: it lets each image go when done
            yield held.pop()

    def close(self) -> None:
        """Stop the reader (the run ends, or stops early) and let go of what it read ahead."""
        import queue

        self._stop.set()
        with self._room:
            self._room.notify_all()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5.0)


def _open_recorder(target: str) -> Any:
    """The history to record to; a file that can never take verdicts (another
    program's, damaged, newer, read-only) is refused before anything is scored,
    and so is a server that refuses this login; a server that cannot be reached
    is spooled for."""
    from ..history import HistoryError, Recorder, check_target, is_server_target, open_history

    try:
        check_target(target, "--record")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    path: Any = target if is_server_target(target) else Path(target)
    try:
        db = open_history(path)
    except HistoryError as exc:
        if exc.kind not in ("locked", "full") and not getattr(exc, "transient", False):
            raise CliError(str(exc)) from None
        print(f"warning: {exc}; verdicts go to the spool until it can be written", file=sys.stderr)
        return Recorder(path=path, open_error=exc)
    if (refused := getattr(db, "recording_refused", lambda: None)()) is not None:
        db.close()
        raise CliError(f"{db.path}: {refused}")
    return Recorder(db)


def _record(recorder: Any, args: argparse.Namespace, insp: Any, f: Path, pred: Any) -> None:
    from ..history import RecordError

    was = recorder.state
    try:
        recorder.record(score=pred.score, verdict=pred.verdict.value, threshold_high=pred.threshold.high,
                        threshold_low=pred.threshold.low, source="cli", image_ref=str(f), bundle=insp.name,
                        bundle_id=insp.bundle_id, station=args.station, latency_ms=pred.latency_ms,
                        **({"defect_type": pred.defect_type} if pred.defect_type else {}))
    except RecordError as exc:
        raise CliError(f"'{printable(f)}' scored {pred.verdict.value} but cannot be recorded ({exc}); stopped, every verdict "
                       "printed above is recorded") from None
    if recorder.state == "spooling" and was != "spooling":
        print(f"warning: {recorder.message}", file=sys.stderr)


def _close_recorder(recorder: Any, wait_s: float) -> None:
    db = recorder.db
    try:
        if recorder.pending and not recorder.flush_until(max(0.0, wait_s)):
            print(f"warning: {recorder.pending} verdict(s) are not in the history yet: they are kept in the spool "
                  f"'{recorder.spool.files[0]}' (or the data folder's spool/) and written by the next "
                  "'inspector predict --record' of this database or by the app", file=sys.stderr)
        elif recorder.written_from_spool:
            print(f"{recorder.written_from_spool} spooled verdict(s) written to the history", file=sys.stderr)
    finally:
        recorder.close()
        if db is not None:
            db.close()


def _line(f: Path, pred: Any) -> str:
    """The printed line: path, score and verdict (and an INVALID frame's reason,
    or a FAIL's defect type and its probability, "scratch (0.82)") separated by
    tabs; the path escaped so that no name can split or forge a line."""
    line = f"{printable(f)}\t{pred.score:.6g}\t{pred.verdict.value}"
    if pred.defect_type:
        return f"{line}\t{describe_answer(pred.defect_type, pred.defect_confidence)}"
    return f"{line}\t{pred.reason}" if pred.reason else line


def _csv_path(f: Path) -> str:
    """The path as the CSV holds it (quoted there, so a newline is kept); a
    byte that is not UTF-8 is written as its escape, as in the printed line."""
    return str(f).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def list_files(paths: list[Path], recursive: bool) -> tuple[list[Path], dict[Path, Path]]:
    """The image files ``paths`` name (a folder's sub-folders too when
    ``recursive``: the app's rule) and each one's overlay name, relative to
    --maps; CliError for a path that does not exist or when no image is found.
    No torch."""
    from ..data.images import list_images

    files: list[Path] = []
    map_names: dict[Path, Path] = {}  # each image's overlay, relative to --maps: one per image, never shared
    for p in paths:
        if p.is_dir():
            found = list_images(p, recursive=recursive)
            files.extend(found)
            for f in found:  # sub-folders of a folder mirrored (test/good/000.png and test/dent/000.png both kept)
                rel = f.relative_to(p)
                map_names.setdefault(f, rel.parent / f"{rel.stem}_heat.png")
        elif p.exists():
            files.append(p)
            map_names.setdefault(p, Path(f"{p.stem}_heat.png"))
        else:
            raise CliError(f"'{printable(p)}' does not exist")
    taken: set[Path] = set()
    for f, name in map_names.items():  # two files given by name with the same stem: number the later ones
        n, unique = 1, name
        while unique in taken:
            n += 1
            unique = name.with_name(f"{name.name[: -len('_heat.png')]}-{n}_heat.png")
        taken.add(unique)
        map_names[f] = unique
    if not files:
        deeper = not recursive and any(list_images(p, recursive=True) for p in paths if p.is_dir())
        hint = " (its sub-folders hold images: leave out --no-recursive)" if deeper else ""
        raise CliError("no images found in " + ", ".join(f"'{printable(p)}'" for p in paths) + hint)
    return files, map_names


def run(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)  # before torch is imported: a bad number is refused at once
    check_float(args.record_wait, "--record-wait", 0.0, 86400.0)
    from ..bundle import read_manifest
    from ..station import is_export_dir, open_inspector, read_export

    # before torch: a missing or damaged bundle (or exported model) is told at once,
    read_export(args.bundle) if is_export_dir(args.bundle) else read_manifest(args.bundle)
    files, map_names = list_files(args.paths, args.recursive)  # and so is a wrong path or a folder of no images
    from .. import thread_policy

    thread_policy.configure()  # before torch is imported: scoring threads that sleep when they wait
    from ..data.images import ImageReadError, read_image
    from ..drift import InputMonitor
    insp = open_inspector(args.bundle, device=args.device)  # an exported model's folder: scored without torch
    monitor = InputMonitor(insp.manifest)  # says once when the images are unlike the training data
    recorder = _open_recorder(args.record) if args.record else None
    rows: list[list[str]] = []  # exactly the verdicts printed: the CSV is written from it however the run ends
    skipped: list = []
    counts = dict.fromkeys(VERDICTS, 0)
    interrupted = False
    reader = _ReadAhead(files, args.batch_size, read_image, ImageReadError, insp.check_frame)
    try:
        try:
            for batch in reader:
                for f, _, problem in (item for item in batch if item[1] is None):  # in the order the files were read
                    skipped.append((f, problem.reason))
                    print(f"warning: skipped {printable(problem)}", file=sys.stderr)
                chunk = [item[0] for item in batch if item[1] is not None]
                images = [item[1] for item in batch if item[1] is not None]
                preds = insp.predict_checked([item[2] for item in batch if item[1] is not None])
                del batch
                for i, (f, pred) in enumerate(zip(chunk, preds)):
                    nbytes = images[i].nbytes
                    if (warning := monitor.observe(images[i], pred.score, pred.image)) is not None:
                        print(f"warning: {warning}", file=sys.stderr)
                    if recorder is not None:
                        _record(recorder, args, insp, f, pred)  # before it is printed: a printed verdict is recorded
                    with signals_deferred():  # printed and kept for the CSV together, or neither
                        print(_line(f, pred), flush=True)
                        rows.append([_csv_path(f), f"{pred.score:.8g}", pred.verdict.value, pred.reason,
                                     describe_answer(pred.defect_type, pred.defect_confidence)])
                        counts[pred.verdict.value] += 1
                    if args.maps:
                        try:
                            _write_overlay(args.maps / map_names[f], images, i, pred.heat)  # at the image's resolution
                        except Exception as exc:  # only running out of memory is skipped
                            if (what := _out_of_memory(exc)) is None:
                                raise
                            shape = np.shape(images[i])[:2] if images[i] is not None else ()
                            size = f" at {shape[1]} x {shape[0]} px" if shape else ""
                            print(f"warning: no heat-map overlay for '{printable(f)}': not enough memory to draw "
                                  f"it{size} ({what}); its verdict stands", file=sys.stderr)
                    images[i] = None  # let each image go once done: the reader decodes the next ones in its room
                    reader.release(nbytes)
                del images, preds
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            reader.close()
            if recorder is not None:  # interrupted: the spool keeps what is not written yet, no waiting
                _close_recorder(recorder, 0.0 if interrupted else args.record_wait)
    except KeyboardInterrupt as exc:
        kept = f"{len(rows)} verdict(s) printed" + (f" and written to '{printable(args.csv)}'" if args.csv else "")
        add_note(exc, kept)
        raise
    finally:
        if args.csv:
            with signals_deferred():  # a second signal does not cut the CSV short
                atomic_write_csv(args.csv, CSV_HEADER, rows)
    if (warning := monitor.finish()) is not None:
        print(f"warning: {warning}", file=sys.stderr)
    total = sum(counts.values())
    print(
        f"{total} scored: {counts['PASS']} PASS, {counts['REVIEW']} REVIEW, {counts['FAIL']} FAIL"
        + (f", {counts['INVALID']} INVALID (no part in the frame)" if counts["INVALID"] else "")
        + (f"; {len(skipped)} unreadable skipped" if skipped else ""),
        file=sys.stderr,
    )
    return 0 if total else 2
