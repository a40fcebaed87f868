"""Reading image files into numpy arrays the way OpenCV lays them out.

Images in memory are uint8 or uint16 arrays: (H, W) gray, (H, W, 3) BGR or
(H, W, 4) BGRA. Files are read with ``np.fromfile`` + ``cv2.imdecode`` rather
than ``cv2.imread`` so that paths with non-ASCII characters work on Windows too.

What the header declares is checked before decoding (:mod:`.image_header`): a
file larger than ``MAX_IMAGE_PIXELS`` (a 0.5 MB PNG can declare 12000 × 12000)
or with several full-resolution pages or frames (a multi-page TIFF, an
animated GIF, WebP or PNG, of which OpenCV would return the first without a
word) is refused with the reason, like any file that cannot be decoded. A
JPEG's EXIF orientation is applied (the image as its user sees it); other
files are read as stored (16 bit and alpha kept).

The decoding libraries print on their own (``libpng warning: iCCP: known
incorrect sRGB profile``, ``Corrupt JPEG data: ...``, OpenCV's codec log
lines); the user should see only the reader's one message naming the file.
A PNG's metadata chunks, which libpng warns about, are left out before
decoding, a damaged or cut PNG is refused before libpng sees it
(:func:`.image_header.structural_problem`), and whatever is still printed
while a file decodes is kept off the terminal (:class:`_DecoderOutputFilter`);
everything else written to stderr meanwhile passes through.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_write_bytes
from .image_header import png_ancillary_chunks, probe, structural_problem

#: file names listed as images: the formats every OpenCV build that Inspector
#: supports decodes (GIF: OpenCV 4.11 and later; an older one refuses a GIF by name)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif",
     ".pgm", ".ppm", ".pbm", ".pnm"}
)

_FORMAT_NAMES = {"gif": "GIF", "webp": "WebP", "png": "PNG (APNG)", "tiff": "TIFF"}


#: the largest image read (268 megapixels: 1.5 GiB as 16-bit BGR); a camera image is far smaller
MAX_IMAGE_PIXELS = 1 << 28


class ImageReadError(ValueError):
    """An image file could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image '{self.path}': {reason}")


def _to_supported_dtype(img: np.ndarray) -> np.ndarray:
    """Bring an exotic decoded dtype (float, int8, int32, ...) into uint8/uint16."""
    if img.dtype in (np.uint8, np.uint16):
        return img
    if img.dtype == np.int8:
        return (img.astype(np.int16) + 128).astype(np.uint8)
    if img.dtype == np.int16:
        return (img.astype(np.int32) + 32768).astype(np.uint16)
    if np.issubdtype(img.dtype, np.floating):
        data = np.nan_to_num(img.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(data.min()), float(data.max())
        if lo >= 0.0 and hi <= 1.0:
            # Conventional [0, 1] float image (e.g. 32-bit TIFF from a camera SDK).
            scaled = data
        elif hi > lo:
            scaled = (data - lo) / (hi - lo)
        else:
            scaled = np.zeros_like(data)
        return np.round(scaled * 65535.0).astype(np.uint16)
    # Wider integer types: stretch the actual value range into 16 bit.
    data = img.astype(np.float64)
    lo, hi = float(data.min()), float(data.max())
    if lo >= 0 and hi <= 65535:
        return data.astype(np.uint16)
    scaled = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    return np.round(scaled * 65535.0).astype(np.uint16)


# ------------------------------------------------------------ decoder output


#: where a line the decoding libraries print on their own begins: libpng, libjpeg's warnings, OpenCV's codec log
_DECODER_NOISE = re.compile(
    r"libpng (?:warning|error): "
    r"|Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Inconsistent progression sequence"
    r"|Warning: unknown JFIF revision|Unknown Adobe color transform|Application transferred too many scanlines"
    r"|\[ ?(?:VERBOSE|DEBUG|INFO|WARN|ERROR|FATAL)[^\]\n]*\] global (?:grfmt_\w+|loadsave|bitstrm|exif)\.cpp"
)
#: libpng writes its message and its newline apart: another line may start in between
_LIBPNG = re.compile(r"libpng (?:warning|error): ")
#: how a line that may still turn out to be a decoder's begins (held until its newline)
_NOISE_STARTS = ("libpng ", "Corrupt JPEG data", "Premature end of JPEG file", "Invalid SOS parameters",
                 "Inconsistent progression sequence", "Warning: unknown JFIF revision",
                 "Unknown Adobe color transform", "Application transferred too many scanlines", "[",
                 "\x00\x00inspector-decode-mark")
_MARK = re.compile(rb"\x00\x00inspector-decode-mark ([SE])(\d+)\n?")
_SYNC_TIMEOUT_S = 2.0


class _Window:
    """One decode's share of the capture; ``token`` 0: nothing captured.
    ``lines``: the decoder lines of a failed exclusive decode."""

    __slots__ = ("token", "exclusive", "failed", "lines")

    def __init__(self, token: int, exclusive: bool) -> None:
        self.token, self.exclusive, self.failed = token, exclusive, False
        self.lines: list[str] = []


class _DecoderOutputFilter:
    """Keeps what the decoding libraries print off stderr while images decode.

    libpng and libjpeg write their warnings straight to the C stderr (file
    descriptor 2), beside the reader's own message. While at least one decode
    runs (threads decode at once: the window opens with the first and closes
    with the last; decodes are never serialised), fd 2 is the write end of a
    pipe that a reader thread drains line by line into the real stderr, less
    the decoder lines (:data:`_DECODER_NOISE`). What other threads, or a child
    process started meanwhile (it inherits fd 2), write passes through as it
    comes; nothing waits for a decode and nothing is dropped, except a line
    another thread writes in the microseconds between libpng's message and
    its newline (two writes), which is taken for part of the message.

    ``exclusive=True`` waits until a decode can run alone (new decodes wait
    meanwhile), for a failed decode's second try: marks written into the pipe
    around it tell the reader which lines are its, and the decode gets them
    back (``libpng error: IDAT: invalid block type`` says why a file was
    refused). Other decodes write no marks: the reader is not woken for them.

    POSIX only (on Windows the libraries' output is left as it is); nothing is
    done when fd 2 is closed or the pipe cannot be made. A child made by
    ``fork`` starts with stderr as it was. One thing cannot be helped: a crash
    inside a decoder (a fault handler's trace written to fd 2) dies with the
    pipe.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def _reset(self) -> None:
        self._gate = threading.Condition(threading.Lock())
        self._users = 0
        self._entries = 0  # decodes begun
        self._exclusive = False
        self._exclusive_waiting = 0
        self._unusable = os.name != "posix"
        self._pipe: tuple[int, int] | None = None
        # the reader thread's side, under _acks
        self._acks = threading.Condition(threading.Lock())
        self._out: int | None = None  # the real stderr (a duplicate), where lines go on
        self._marks = 0
        self._acked = 0
        self._window_noise: list[str] = []
        self._noise_at: dict[int, list[str]] = {}
        self._blanks = 0
        self._after_noise = False

    @contextmanager
    def window(self, exclusive: bool = False) -> Iterator[_Window]:
        """Around one ``imdecode``; set ``failed`` on the window when it gave
        nothing, to get the library's lines back."""
        win = self._enter(exclusive)
        try:
            yield win
        finally:
            if win.token:
                self._leave(win)

    # ---------------------------------------------------------- decoding side

    def _enter(self, exclusive: bool) -> _Window:
        if self._unusable:
            return _Window(0, exclusive)
        with self._gate:
            if exclusive:
                self._exclusive_waiting += 1
                while self._users or self._exclusive:
                    self._gate.wait()
                self._exclusive_waiting -= 1
            else:
                while self._exclusive or self._exclusive_waiting:
                    self._gate.wait()
            if self._users == 0 and not self._open(exclusive):
                self._gate.notify_all()
                return _Window(0, exclusive)
            self._exclusive = exclusive
            self._users += 1
            self._entries += 1
            return _Window(self._entries, exclusive)

    def _open(self, exclusive: bool) -> bool:
        """Point fd 2 at the pipe (the gate is held, no decode runs)."""
        if self._pipe is None and not self._start():
            return False
        assert self._pipe is not None
        _flush_stderr()
        try:
            out = os.dup(2)  # stderr as it is now (it may have been moved since the last window)
        except OSError:  # no stderr at all (a windowed app): nothing to keep clean
            return False
        with self._acks:
            old, self._out = self._out, out
        if old is not None:
            os.close(old)
        try:
            if exclusive:  # its lines start here (a mark wakes the reader: only for the rare second try)
                _write_all(self._pipe[1], b"\x00\x00inspector-decode-mark S0\n", raising=True)
            os.dup2(self._pipe[1], 2)
        except OSError:
            return False
        return True

    def _start(self) -> bool:
        try:
            r, w = os.pipe()
        except OSError:
            self._unusable = True
            return False
        self._pipe = (r, w)
        threading.Thread(target=self._read_loop, args=(r,), name="inspector-decoder-output", daemon=True).start()
        import atexit

        atexit.register(self._at_exit)
        return True

    def _leave(self, win: _Window) -> None:
        with self._gate:
            self._users -= 1
            last = self._users == 0
            if win.exclusive and win.failed:
                win.lines = self._sync()
            if last:
                _flush_stderr()
                self._restore()
            if win.exclusive:
                self._exclusive = False
            self._gate.notify_all()

    def _sync(self) -> list[str]:
        """Wait until the reader has passed everything written so far; the
        decoder lines of the current window."""
        assert self._pipe is not None
        with self._acks:
            self._marks += 1
            n = self._marks
        try:
            _write_all(self._pipe[1], b"\x00\x00inspector-decode-mark E%d\n" % n, raising=True)
        except OSError:
            return []
        with self._acks:
            self._acks.wait_for(lambda: self._acked >= n, timeout=_SYNC_TIMEOUT_S)
            return self._noise_at.pop(n, [])

    def _restore(self) -> None:
        with self._acks:
            out = self._out
        if out is not None:
            try:
                os.dup2(out, 2)
            except OSError:  # pragma: no cover - it was stderr a moment ago
                pass

    def _at_exit(self) -> None:
        """At interpreter exit: what is still in the pipe goes out."""
        if self._pipe is not None and self._gate.acquire(timeout=_SYNC_TIMEOUT_S):
            try:
                self._restore()
                self._sync()
            finally:
                self._gate.release()

    def _after_fork_in_child(self) -> None:
        if self._pipe is not None and self._users:
            self._restore()  # the window was open in the parent: stderr as it was
        for fd in (*(self._pipe or ()), *([self._out] if self._out is not None else [])):
            try:
                os.close(fd)
            except OSError:
                pass
        self._reset()

    # ---------------------------------------------------------- reader thread

    def _read_loop(self, r: int) -> None:
        pending = b""
        passing = False  # the current line is not a decoder's: it goes on as it comes
        while True:
            try:
                data = os.read(r, 65536)
            except OSError:
                return
            if not data:
                return
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            out: list[bytes] = []
            for line in lines:
                self._take(line, out, passing)
                passing = False
            if pending:  # a partial line (a prompt, a progress display) goes on now unless it may be a decoder's
                cut = pending.find(b"\x00\x00")
                head = pending if cut < 0 else pending[:cut]
                text = head.decode("utf-8", "replace")
                if head and (passing or not any(text.startswith(p) or p.startswith(text) for p in _NOISE_STARTS)):
                    out.append(head)
                    pending, passing = pending[len(head):], True
            self._emit(out)

    def _take(self, line: bytes, out: list[bytes], passing: bool) -> None:
        mark = _MARK.search(line + b"\n")  # a mark ends with a newline: the last thing on its line
        if mark is not None:
            line = line[:mark.start()]
        if passing:
            out.append(line + b"\n")
        elif line or mark is None:
            self._filter(line, line.decode("utf-8", "replace").rstrip("\r"), out)
        if mark is None:
            return
        self._emit(out)  # what came before the mark is out before the decoder is told
        out.clear()
        with self._acks:
            if mark.group(1) == b"S":
                self._window_noise = []
            else:
                n = int(mark.group(2))
                self._noise_at[n] = list(self._window_noise)
                self._acked = max(self._acked, n)
                self._acks.notify_all()

    def _filter(self, line: bytes, text: str, out: list[bytes]) -> None:
        if not text.strip() and (self._after_noise or self._blanks):
            # the newline libpng writes after its message, the empty line OpenCV ends its log with
            self._blanks = max(0, self._blanks - 1)
            return
        starts = [m.start() for m in _LIBPNG.finditer(text, 1)]
        if _DECODER_NOISE.match(text):
            starts.insert(0, 0)
        self._after_noise = bool(starts)
        if not starts:
            out.append(line + b"\n")
            return
        if starts[0] > 0:  # someone's text, then libpng's: the first's newline comes later
            out.append(text[:starts[0]].encode("utf-8", "replace") + b"\n")
            self._blanks += 1
        noise = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]
        self._blanks += len(starts) - 1  # decoder lines run together: their newlines follow on their own
        with self._acks:
            self._window_noise.extend(noise)

    def _emit(self, out: list[bytes]) -> None:
        if not out:
            return
        with self._acks:
            if self._out is not None:
                _write_all(self._out, b"".join(out))


def _flush_stderr() -> None:
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _write_all(fd: int, data: bytes, raising: bool = False) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        if raising:
            raise
        # else the real stderr is gone (a closed pipe): nothing to show it on


_decoder_output = _DecoderOutputFilter()

#: a 1 × 1 white GIF
_TINY_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
             b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


@lru_cache(maxsize=1)
def _opencv_reads_gif() -> bool:
    """Whether this OpenCV decodes GIF (4.11 and later do)."""
    try:
        return cv2.imdecode(np.frombuffer(_TINY_GIF, dtype=np.uint8), cv2.IMREAD_UNCHANGED) is not None
    except cv2.error:
        return False


# ------------------------------------------------------------ decoding


def _imdecode(name: str | os.PathLike[str], data: np.ndarray, flags: int) -> tuple[np.ndarray | None, str | None]:
    """``cv2.imdecode`` with the libraries' own lines kept off stderr; for a
    file that is not decoded, what the library said about it, in the reader's
    words (a failed decode is tried once more alone, so that what was said is
    known to be about this file: rare, and quick as a damaged file fails fast)."""
    for exclusive in (False, True):
        with _decoder_output.window(exclusive) as win:
            try:
                img = cv2.imdecode(data, flags)
            except cv2.error as exc:  # pragma: no cover - depends on the OpenCV build
                raise ImageReadError(name, f"not a decodable image ({str(exc).strip()})") from exc
            win.failed = img is None
        if img is not None or not win.token:
            return img, None
        if exclusive:
            for line in win.lines:  # not quoted whole: the line would be taken for a decoder's own
                if line.startswith("libpng error: "):
                    return None, f"damaged PNG: {line[len('libpng error: '):].strip()}"
                if line.startswith("Corrupt JPEG data: "):
                    return None, f"damaged JPEG: {line[len('Corrupt JPEG data: '):].strip()}"
            return None, None
    return None, None  # pragma: no cover - the loop returns


def _without_ancillary_chunks(data: np.ndarray) -> np.ndarray:
    """A PNG's bytes less the chunks that do not change its pixels (ICC
    profile, text, EXIF, physical size, ...): libpng warns about many of them
    (``iCCP: known incorrect sRGB profile``, a text chunk's checksum) and
    OpenCV reads them for nothing. Critical chunks and ``tRNS``
    (transparency) are kept. Other data is returned as it is."""
    spans = png_ancillary_chunks(data)
    if not spans:
        return data
    pieces, at = [], 0
    for a, b in spans:
        pieces.append(data[at:a])
        at = b
    pieces.append(data[at:])
    return np.concatenate(pieces)


def decode_image(buffer: bytes | np.ndarray, name: str | os.PathLike[str] = "<memory>") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...); ``name`` is used in errors."""
    data = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, (bytes, bytearray)) else buffer
    if data.size == 0:
        raise ImageReadError(name, "empty file")
    problem = structural_problem(data)
    if problem is not None:
        raise ImageReadError(name, problem)
    header = probe(data)
    if header is not None:
        if header.pixels > MAX_IMAGE_PIXELS:
            raise ImageReadError(name, f"declares {header.width} × {header.height} pixels "
                                       f"({header.pixels / 1e6:.0f} megapixels), more than the "
                                       f"{MAX_IMAGE_PIXELS / 1e6:.0f} Inspector reads")
        if header.pages > 1:
            raise ImageReadError(name, f"multi-page {header.format.upper()} ({header.pages} pages): Inspector scores "
                                       "one image per file; save each page as its own file")
        if header.frames > 1:
            kind = _FORMAT_NAMES.get(header.format, header.format.upper())
            raise ImageReadError(name, f"animated {kind} ({header.frames} frames): Inspector scores one image "
                                       "per file; save the frame to inspect as its own file")
    flags = cv2.IMREAD_UNCHANGED  # 16 bit and alpha kept; EXIF orientation ignored
    if header is not None and header.format == "jpeg" and header.orientation != 1:
        # A JPEG is 8-bit without alpha: reading it as gray or colour loses
        # nothing, and OpenCV then turns it as its EXIF orientation says.
        flags = cv2.IMREAD_GRAYSCALE if header.channels == 1 else cv2.IMREAD_COLOR
    img, said = _imdecode(name, _without_ancillary_chunks(data), flags)
    if img is None:
        if said is not None:
            raise ImageReadError(name, said)
        if header is not None and header.format == "gif" and not _opencv_reads_gif():
            raise ImageReadError(name, f"a GIF this OpenCV ({cv2.__version__}) does not decode (OpenCV 4.11 and "
                                       "later read GIF); save it as PNG")
        raise ImageReadError(name, "not a decodable image or unsupported format")
    if img.size == 0 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageReadError(name, "zero-size image")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:
        # Gray + alpha: keep the gray plane.
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ImageReadError(name, f"unsupported image shape {img.shape}")
    return np.ascontiguousarray(_to_supported_dtype(img))


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8/uint16 (H, W), (H, W, 3) BGR or (H, W, 4) BGRA.

    Raises ``ImageReadError`` naming the file when it is missing, empty,
    not an image, or has zero size.
    """
    p = Path(path)
    if not p.is_file():
        if p.is_symlink() and not p.exists():
            raise ImageReadError(p, f"broken symbolic link (its target '{os.readlink(p)}' does not exist)")
        raise ImageReadError(p, "file not found" if not p.exists() else "not a file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(p, f"cannot open file ({exc.strerror or exc})") from exc
    return decode_image(data, p)


def write_image(path: str | os.PathLike[str], img: np.ndarray, *, fsync: bool = True) -> None:
    """Write an image atomically (:mod:`inspection_core.fileio`); the extension
    picks the format. ``fsync=False`` only for output that can be regenerated
    (the generated demo data set).

    Works with non-ASCII paths (``cv2.imencode`` + a plain file write).
    """
    p = Path(path)
    ext = p.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise ValueError(f"cannot encode image for '{p}' as {ext}")
    atomic_write_bytes(p, buf.tobytes(), fsync=fsync)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a visible file whose extension is a known image extension."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (sorted by path), by extension; hidden files are skipped.

    A broken symbolic link with an image name is listed too, so that the
    reader skips it with its reason and it is counted, never silently dropped.
    A missing folder gives an empty list (callers decide whether that is an error).
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    it = root.rglob("*") if recursive else root.iterdir()
    out = [
        p
        for p in it
        if is_image_file(p)
        and (p.is_file() or (p.is_symlink() and not p.exists()))
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(out)
