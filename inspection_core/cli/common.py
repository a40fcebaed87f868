"""Helpers shared by the sub-commands: the one-line error, checks of numeric
options, signals handled like Ctrl-C, printable paths and the progress bar."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import re
import signal
import sys
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any, NoReturn

from ..progress import ProgressEvent

#: the largest --batch-size of any command: far above any useful batch, below
#: the sizes that overflow or ask for terabytes
MAX_BATCH_SIZE = 65536


class CliError(Exception):
    """An error reported as one line, with exit status 2."""


def _shown(value: float) -> str:
    """A number as typed, a whole number too long to read shortened (its digits counted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        digits = len(text.lstrip("-"))
        return f"{text[:8]}…{text[-4:]} ({digits} digits)" if digits > 20 else text
    return repr(value) if isinstance(value, float) and math.isfinite(value) else str(value)


def check_int(value: int | None, flag: str, lo: int, hi: int) -> int | None:
    """An integer option as given (None: not given), or CliError naming the
    option: one line, exit 2, before anything runs on the value (a seed of 23
    digits said 'Overflow when unpacking long long' after the data was read)."""
    if value is None:
        return None
    if value < lo:
        raise CliError(f"{flag} must be at least {lo}, got {_shown(value)}")
    if value > hi:
        raise CliError(f"{flag} must be at most {hi}, got {_shown(value)}")
    return value


def check_float(value: float | None, flag: str, lo: float | None = None, hi: float | None = None,
                above: bool = False) -> float | None:
    """A decimal option as given (None: not given), or CliError naming the
    option: finite (argparse reads '1e400' as inf and 'nan' as nan), at least
    ``lo`` (above it with ``above``) and at most ``hi``."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise CliError(f"{flag} must be a finite number, got {_shown(value)}")
    if lo is not None and (value <= lo if above else value < lo):
        raise CliError(f"{flag} must be {'above' if above else 'at least'} {lo:g}, got {_shown(value)}")
    if hi is not None and value > hi:
        raise CliError(f"{flag} must be at most {hi:g}, got {_shown(value)}")
    return value


def check_batch_size(value: int) -> int:
    """``--batch-size`` as given, or CliError: one line, exit 2, as every command's errors."""
    check_int(value, "--batch-size", 1, MAX_BATCH_SIZE)
    return value


# --------------------------------------------------------------------------- the parser


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the choice closest to a mistyped ``word``, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, where it has one that says
    something ("default: 32"); an option without a value to show (a switch
    that is off, a setting that comes from elsewhere) says so in its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if (d is None or d is False or d == [] or d == argparse.SUPPRESS or "%(default)" in text
                or "default" in text or not action.option_strings):
            return text
        shown = "on" if d is True else "%(default)s"
        return f"{text} (default: {shown})"


_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<word>[^']*)' \(choose from (?P<choices>.*)\)")


class Parser(argparse.ArgumentParser):
    """argparse with suggestions: a mistyped option ("--modle: unknown option
    (did you mean --model?)") or sub-command or choice names the closest
    known one. Options are checked before the required ones, so a typo is
    what the user is told about, not the option it left out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def _option_names(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings]

    def _check_options(self, args: list[str]) -> None:
        known = self._option_names()
        for word in args:
            if word == "--":
                return
            if not word.startswith("-") or word == "-" or self._negative_number_matcher.match(word):
                continue
            name = word.split("=", 1)[0]
            if name in known or (name.startswith("--") and any(k.startswith(name) for k in known)):
                continue
            if not name.startswith("--") and len(name) > 2 and name[:2] in known:  # -vx, -n5: argparse's own
                continue
            self.error(f"unknown option {name}{suggest(name, known)}")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if self._subparsers is None:  # a sub-command's parser: its words are its own
            self._check_options(argv)
        else:  # the top level: only the options before the sub-command
            head = []
            for word in argv:
                if not word.startswith("-"):
                    break
                head.append(word)
            self._check_options(head)
        return super().parse_known_args(argv, namespace)

    def error(self, message: str) -> NoReturn:
        found = _INVALID_CHOICE.search(message)
        if found:
            choices = [c.strip().strip("'") for c in found.group("choices").split(",")]
            message = message + suggest(found.group("word"), choices)
        super().error(message)


# --------------------------------------------------------------------------- data sets

LABELLED_LAYOUTS = "good/ and defect/ folders, or the MVTec layout (train/good, test/good, test/<type>)"


def open_labelled_data(bundle: Any, data: Any, command: str) -> tuple[dict[str, Any], Any]:
    """(manifest, data set index) for ``evaluate`` and ``calibrate``, read
    before torch is imported: a missing or damaged bundle, a wrong folder or
    a folder of loose images is told at once, in the words of the command (a
    folder of loose images said "no training images")."""
    from ..bundle import read_manifest
    from ..data.images import list_images
    from ..data.samples import DatasetLayoutError
    from ..selection import open_data

    manifest = read_manifest(bundle)
    try:
        index = open_data(data, manifest)
    except DatasetLayoutError as exc:
        if not str(exc).startswith("no training images in"):
            raise
        loose = list_images(data)
        found = (f"; it holds {len(loose)} loose images with no labels (to score them: inspector predict "
                 f"--bundle {printable(bundle)} {printable(data)})") if loose else ""
        raise CliError(f"'{printable(data)}' is not a labelled data set: {command} needs good and defective "
                       f"images in {LABELLED_LAYOUTS}{found}") from None
    return manifest, index


def no_defects_warning(index: Any, what: str) -> str | None:
    """A warning when ``index``'s test images hold no defective image (None otherwise)."""
    if any(s.label == 1 for s in index.test):
        return None
    return (f"warning: '{printable(index.root)}' has no defective images to test on: {what}; give a folder with "
            f"{LABELLED_LAYOUTS}")


# --------------------------------------------------------------------------- signals


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread like Ctrl-C's
    KeyboardInterrupt (every ``finally`` and ``except KeyboardInterrupt``
    runs); ``signum`` says which. A command may set ``note`` (what was kept)
    for the one-line notice."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def add_note(exc: BaseException, text: str) -> None:
    """What a command kept when it was interrupted (the verdicts written, the
    bundle not written): main() adds it to its one-line notice."""
    exc.note = text  # type: ignore[attr-defined]


_deferring = 0  # depth of signals_deferred() blocks
_pending: int | None = None  # a signal that arrived inside one


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    global _pending
    if _deferring:
        _pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A block that a signal does not cut in two (a verdict printed and kept for
    the CSV, the CSV written, a lock taken): a signal that arrives inside it is
    raised when it ends."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread while
    the block runs (a service manager's stop, a ``kill`` and Ctrl-C all end a
    command the same way: its ``finally`` blocks run). A signal that was
    ignored when the program started (a background job's SIGINT) stays
    ignored; the previous handlers come back at the end."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN:
            previous[sig] = old
            signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        _pending = None


# --------------------------------------------------------------------------- printing file names

#: characters written as their usual escape
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(path: object) -> str:
    """A file name safe to print as one field of one line: a tab, a newline
    or any other control character (an escape sequence of the terminal, a
    Unicode line separator) cannot split or forge the line. Each is written
    as its escape (``\\t``, ``\\n``, ``\\x1b``, ``\\u2028``) and a byte that
    is not UTF-8 as ``\\xff``; so that an escape is never ambiguous a
    backslash is doubled, except on Windows, where it separates folders and
    no name holds a control character."""
    text = str(path)
    windows = sys.platform.startswith("win")
    out = []
    for ch in text:
        if ch == "\\" and windows:
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


class ProgressBar:
    """A tqdm bar driven by ProgressEvents (quiet when stderr is no terminal
    unless forced)."""

    def __init__(self, desc: str, enabled: bool | None = None, one_pass: bool = False) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.desc = desc
        #: a one-pass family's fit (PatchCore): its one "epoch" is the fit's validation
        self.one_pass = one_pass
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = None  # a tqdm bar once the first step arrives

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.kind == "step":
            total = max(1, ev.epochs * ev.steps) if ev.epochs else ev.steps
            done = (ev.epoch - 1) * ev.steps + ev.step if ev.epochs else ev.step
            if self.bar is None:
                self.bar = self._tqdm(total=total, desc=self.desc, disable=not self.enabled, file=sys.stderr, leave=False)
            self.bar.total = total
            self.bar.n = done
            if ev.losses:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in list(ev.losses.items())[:4]}, refresh=False)
            self.bar.refresh()
        elif ev.kind == "epoch":
            one_pass = self.one_pass
            parts = ["validation of the fitted model:" if one_pass else f"epoch {ev.epoch}/{ev.epochs}"]
            parts += [f"{k}={v:.4g}" for k, v in ev.losses.items() if k.endswith("loss")]
            parts += [f"{k}={v:.4f}" for k, v in ev.metrics.items()]
            if ev.eta_s is not None and not one_pass:
                parts.append(f"eta {ev.eta_s:.0f}s")
            self._write("  ".join(parts))
        elif ev.kind == "message" and ev.message:
            self._write(ev.message)

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
