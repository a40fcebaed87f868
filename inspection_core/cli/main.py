"""``inspector``: train, evaluate, calibrate and run inspection models.

Only the sub-command being run builds its own parser (``train``'s lists the
model families, which imports torch): ``inspector --help`` and every other
sub-command start without it. The others appear in the listing by their
one-line summary (:data:`SUMMARIES`; a test checks it against each module).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from typing import Sequence

from .. import __version__
from .common import CliError, Parser, signals_as_interrupts

#: sub-command name -> (module, one-line summary shown by ``inspector --help``)
SUMMARIES = {
    "demo-data": ("demo", "generate the built-in synthetic data set (MVTec layout)"),
    "train": ("train", "train a detector on images of good parts and save a model bundle"),
    "evaluate": ("evaluate", "score a labelled data set and report metrics"),
    "calibrate": ("calibrate", "choose the decision threshold(s) on a labelled data set and store them in a bundle"),
    "predict": ("predict", "score image files or folders and print verdicts"),
    "teach": ("teach", "teach a bundle good parts it rejected (PatchCore: at once; other families: queued for training)"),
    "defect-types": ("defect_types", "teach a bundle to name the defect type of a FAIL from labelled defect folders"),
    "history": ("history", "set up a line's shared history on a PostgreSQL server (schema, logins, approved bundle)"),
    "export": ("export", "export a bundle's scoring graph to ONNX or OpenVINO for a station without PyTorch (parity checked)"),
    "compare": ("compare", "train several detector families on one folder and compare them on the same held-out images"),
}
SUBCOMMANDS = tuple(module for module, _summary in SUMMARIES.values())


def _chosen(argv: Sequence[str] | None) -> str | None:
    """The sub-command ``argv`` names (its first word that is not an option), if any."""
    for word in argv or ():
        if not word.startswith("-"):
            return word if word in SUMMARIES else None
    return None


def _needs_full_parser(args: argparse.Namespace) -> None:
    raise CliError("internal: this sub-command's parser was not built")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``inspector`` parser. With ``argv``, only the sub-command it names
    gets its full parser (the others are listed by summary); without, all do."""
    parser = Parser(
        prog="inspector",
        description="Visual inspection of manufactured parts: train detectors on images of good parts, "
        "calibrate the decision threshold, evaluate, and inspect images.",
    )
    parser.add_argument("--version", action="version", version=f"inspector {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = _chosen(argv) if argv is not None else None
    for name, (module, summary) in SUMMARIES.items():
        if argv is None or name == chosen:
            importlib.import_module(f"{__package__}.{module}").add_parser(sub)
        else:
            sub.add_parser(name, help=summary, add_help=False).set_defaults(func=_needs_full_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        with signals_as_interrupts():  # SIGTERM (a service stop, kill) ends a command as Ctrl-C does
            return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", signal.SIGINT))
        note = getattr(exc, "note", "")
        print(f"inspector: interrupted ({signal.Signals(signum).name}) during {args.command}"
              + (f"; {note}" if note else ""), file=sys.stderr)
        return 128 + signum  # the shell's status of a process the signal ended: 130, 143
    except (CliError, ValueError, OSError, RuntimeError, MemoryError) as exc:
        if args.verbose:
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, MemoryError):
            msg = f"not enough memory ({msg})"
        print(f"inspector {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
