"""``inspector teach``: teach a bundle good parts it rejected (an adapter over
:mod:`inspection_core.usecases.teach`)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from .common import CliError, ProgressBar, printable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "teach",
        help="teach a bundle good parts it rejected (PatchCore: at once; other families: queued for training)",
        description="Teach a bundle images of good parts. PatchCore learns them at once: their patches join "
        "the memory bank, and the taught bundle, a new version with its parent's id and the images added, is "
        "re-checked on the calibration images (false-reject and escape rates before and after at the bundle's "
        "threshold) and refused when escapes rise by more than 1 in 100. The other families learn only by "
        "training: the images are queued in <bundle>.teach-queue/ beside the bundle for the next training.",
    )
    p.add_argument("--bundle", type=Path, required=True, help="the bundle to teach (.inspector file); it is not changed")
    p.add_argument("--good", type=Path, nargs="+", required=True, metavar="FILE", help="images of good parts to teach")
    p.add_argument("--out", type=Path, default=None,
                   help="the taught bundle (a new file; needed for PatchCore, unused where images are queued)")
    p.add_argument("--by", default=None, help="who teaches (recorded in the bundle; default: the login name)")
    p.add_argument("--data", type=Path, default=None,
                   help="labelled folder to re-check on (default: the bundle's calibration images, else its "
                        "training folder's)")
    p.add_argument("--force", action="store_true", help="save a taught bundle that failed its re-check (recorded as forced)")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def _who(by: str | None) -> str:
    if by is not None:
        return by.strip()
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a service account): leave it empty
        return ""


def run(args: argparse.Namespace) -> int:
    from ..bundle import existing_bundle, read_manifest

    read_manifest(args.bundle)  # before torch: a missing or damaged bundle is told at once
    for f in args.good:
        if not f.is_file():
            raise CliError(f"'{printable(f)}' " + ("is a folder: give image files" if f.is_dir() else "does not exist"))
    if args.out is not None and existing_bundle(args.out).exists():
        raise CliError(f"'{printable(args.out)}' exists: the taught bundle is a new version, choose another name")
    from ..usecases.teach import prepare_teach

    bar = ProgressBar("re-check", enabled=None)
    try:
        plan = prepare_teach(args.bundle, args.good, by=_who(args.by), data=args.data, device=args.device, progress=bar)
    finally:
        bar.close()
    for note in plan.skipped:
        print(f"note: {note}", file=sys.stderr)
    print(plan.summary())
    if plan.kind == "memory_bank" and args.out is None:
        raise CliError("give --out: the taught bundle is a new file beside its parent")
    if plan.kind == "queued" and args.out is not None:
        print(f"note: --out is not used: {plan.family} writes no new bundle until it is trained again", file=sys.stderr)
    where = plan.save(args.out, force=args.force)
    if plan.kind == "queued":
        print(f"queued: {printable(where)} (queue.json lists each image, its sha256 and who queued it)")
        return 0
    assert plan.check is not None
    forced = " (forced: it failed its re-check)" if not plan.check.passed else ""
    from ..bundle import load_manifest

    meta = load_manifest(where)
    print(f"saved {printable(where)}: bundle {meta.bundle_id}, parent {plan.detail['bundle_id']}{forced}")
    return 0
