"""``inspector train``: train a detector and save a model bundle (an adapter
over :func:`inspection_core.usecases.training.train_and_save`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import (
    CliError,
    ProgressBar,
    add_note,
    check_batch_size,
    check_float,
    check_int,
    printable,
    signals_deferred,
)

#: flags that set a family parameter: flag dest -> param name
_PARAM_FLAGS = {"latent": "latent_dim", "width": "base_width", "backbone": "backbone"}


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows a flag's default only where it has one (the preset gives the rest)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        d = action.default
        if d is None or d is False or d == [] or d == argparse.SUPPRESS or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def _presets_epilog() -> str:
    from ..recipes import RECIPES

    lines = ["standard preset of each model (what a flag left out means; see docs/quality.md):"]
    for model, presets in sorted(RECIPES.items()):
        r = presets["standard"]
        t = r.train
        budget = f"{t['updates']} updates" if t.get("updates") else f"{t.get('epochs', 1)} epochs" if "epochs" in t else "one pass"
        lr = f", lr {t['lr']:g}" if "lr" in t else ""
        extra = ", ".join(f"{k}={v}" for k, v in r.params.items())
        lines.append(f"  {model:<14} {r.image_size} px, {budget}, batch {t.get('batch_size', 32)}{lr}"
                     + (f"; {extra}" if extra else "") + (f"; normalize {r.normalize}" if r.normalize != "none" else ""))
    lines.append("pretrained weights (the backbone of PatchCore and of the classifier, the GAN families' perceptual backbone) come from torch's "
                 "cache, downloaded on first use; offline, pass the file with --weights FILE. The quick preset of "
                 "the GAN families needs none.")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..recipes import DEFAULT_PRESET, PRESETS, RECIPES

    p = sub.add_parser(
        "train",
        help="train a detector on images of good parts and save a model bundle",
        description="Train a detector and save a model bundle (.inspector) with a provisional threshold "
        "(a high quantile of held-out good scores); when the data has a labelled test split, "
        "the bundle's metrics are computed on it. Every setting not given comes from the model's "
        f"preset (--preset, default {DEFAULT_PRESET}; see docs/quality.md for what each preset is).",
        formatter_class=_Help,
        epilog=_presets_epilog(),
    )
    p.add_argument("--data", type=Path, required=True, help="data folder (MVTec layout or good/ + defect/)")
    p.add_argument("--model", choices=sorted(RECIPES), default="ganomaly", help="detector family")
    p.add_argument("--out", type=Path, required=True, help="bundle file to write (.inspector is appended if missing)")
    p.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET, help="recipe the other settings default to")
    p.add_argument("--image-size", type=int, default=None, help="square model input in pixels (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None, help="passes over the data (default: the preset's)")
    p.add_argument("--updates", type=int, default=None, help="optimiser updates instead of epochs (GAN families)")
    p.add_argument("--batch-size", type=int, default=None, help="images per update (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None, help="learning-rate schedule")
    p.add_argument("--normalize", choices=("none", "mean_std"), default=None,
                   help="illumination normalisation of every image, recorded in the bundle (default: the preset's)")
    p.add_argument("--augment", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation, e.g. hflip=true rotate=10 (repeatable; see docs/quality.md)")
    p.add_argument("--latent", type=int, default=None, help="GAN latent size (param latent_dim)")
    p.add_argument("--width", type=int, default=None, help="GAN/VGG channel width (param base_width)")
    p.add_argument("--backbone", default=None, help="pretrained backbone (patchcore, vgg16 classifier)")
    p.add_argument("--weights", type=Path, default=None, help="local pretrained weights file (offline stations)")
    p.add_argument("--from-scratch", action="store_true", help="vgg16: start from random weights (explicitly)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="model parameter, e.g. lam=1 (repeatable)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out share of good training images")
    p.add_argument("--val-data", type=Path, default=None, help="labelled folder for validation AUROC")
    p.add_argument("--early-stopping", type=int, default=None, metavar="EPOCHS", help="patience in epochs")
    p.add_argument("--cpu-bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast and channels-last when training on the CPU (about 2x faster per epoch on CPUs "
                        "whose bf16 is fast, slower on the others). Default: on for the GAN families where this "
                        "CPU's bf16 convolutions measure faster than fp32, off otherwise; --no-cpu-bf16 trains in fp32")
    p.add_argument("--no-evaluate", action="store_true", help="skip evaluation on the test split")
    p.add_argument("--progress", action="store_true", help="force the progress bar (default: only on a terminal)")
    p.set_defaults(func=run)


def parse_pairs(items: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` items; values are JSON where they parse (numbers, true/false), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise CliError(f"{flag} expects KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def configs_from_args(args: argparse.Namespace, channels: int) -> tuple[Any, Any]:
    """(ModelConfig, TrainConfig): the preset with the given flags laid over it
    (the same rules as the Train view: :class:`TrainSettings`)."""
    from ..models.registry import model_class
    from ..usecases.train_settings import TrainSettings

    defaults = model_class(args.model).default_params()
    params = parse_pairs(args.param, "--param")
    for dest, name in _PARAM_FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            if name not in defaults:
                raise CliError(f"--{dest} does not apply to model '{args.model}'")
            params[name] = value
    settings = TrainSettings(
        model=args.model, preset=args.preset, image_size=args.image_size, epochs=args.epochs, updates=args.updates,
        batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
        augment=parse_pairs(args.augment, "--augment") if args.augment else None, params=params,
        weights=str(args.weights) if args.weights else None, from_scratch=args.from_scratch, device=args.device,
        seed=args.seed, val_fraction=args.val_fraction, early_stopping_patience=args.early_stopping,
        cpu_bf16=args.cpu_bf16, normalize=args.normalize)
    try:
        return settings.configs(channels)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _without_check_result(bar: ProgressBar) -> Any:
    """The progress callback minus the fast path's check result, which the
    summary below prints (it appeared twice before)."""
    def forward(ev: Any) -> None:
        if ev.kind == "message" and isinstance(ev.payload, dict) and "fidelity" in ev.payload:
            return
        bar(ev)
    return forward


def check_numbers(args: argparse.Namespace) -> None:
    """Each numeric option in its range, or one line naming it (exit 2) before
    any work: a 23-digit seed said 'Overflow when unpacking long long' after the
    data was read; a huge --epochs or an infinite --lr trained."""
    check_int(args.seed, "--seed", 0, 2**32 - 1)
    check_int(args.epochs, "--epochs", 1, 100_000)
    check_int(args.updates, "--updates", 1, 100_000_000)
    if args.batch_size is not None:
        check_batch_size(args.batch_size)
    check_int(args.early_stopping, "--early-stopping", 0, 100_000)
    check_float(args.lr, "--lr", 0.0, 10.0, above=True)
    check_float(args.val_fraction, "--val-fraction", 0.0, 0.9)


def _holder(fd: int) -> str:
    """The pid a lock file names (for the message)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def training_lock(bundle: Path) -> Iterator[None]:
    """Hold ``<bundle>.lock`` for a whole training, so that two trainings never
    write one bundle (each said "saved", the later one's bundle silently won).
    The lock is the operating system's (flock; released when the process ends
    however it ends), so a lock file left by a process that died, whatever pid
    it names, is simply taken over; the file holds the pid for the message."""
    from ..fileio import describe_os_error

    lock = bundle.with_name(bundle.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        with signals_deferred():  # taken whole or not at all
            fd = _take_lock(lock, bundle)
    except OSError as exc:  # before hours of training, not at the save
        raise CliError(f"cannot write '{printable(lock)}' beside --out '{printable(bundle)}': "
                       f"{describe_os_error(exc)}") from None
    try:
        yield
    finally:
        with signals_deferred():
            if sys.platform == "win32":  # pragma: no cover - an open file cannot be removed there
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)  # before the lock is let go: nobody can take a lock on a file on its way out
            if sys.platform != "win32":
                os.close(fd)


def _take_lock(lock: Path, bundle: Path) -> int:
    if sys.platform == "win32":  # pragma: no cover - a byte range of the file, also released when the process ends
        return _take_lock_windows(lock, bundle)
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a running training
            holder = _holder(fd)
            os.close(fd)
            raise CliError(f"another training is writing '{printable(bundle)}' (pid {holder}); wait for it to "
                           "end or choose another --out") from None
        try:  # the holder may have ended and removed the file while we opened it: lock the current one
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            return fd
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - Windows only
    def _take_lock_windows(lock: Path, bundle: Path) -> int:
        import msvcrt

        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.lseek(fd, 1024, os.SEEK_SET)  # the lock is a byte past the pid, so the pid can be read
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise CliError(f"another training is writing '{printable(bundle)}' (pid {holder}); wait for it to "
                           "end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        return fd


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def run(args: argparse.Namespace) -> int:
    from ..bundle import bundle_path, describe, read_manifest
    from ..data.dataset import scan_dataset
    from ..models.registry import check_model_config, model_class
    from ..usecases.training import train_and_save

    check_numbers(args)
    mcfg, tcfg = configs_from_args(args, channels=3)
    check_model_config(mcfg)  # a bad size or parameter fails before the data is read
    tcfg.validate()
    index = scan_dataset(args.data, seed=args.seed)
    mcfg.channels = index.channels
    bar = ProgressBar(f"train {args.model}", enabled=True if args.progress else None,
                      one_pass=model_class(args.model).fit_mode == "one_pass")
    target = bundle_path(args.out)
    try:
        with training_lock(target):
            before = _stamp(target)
            try:
                outcome = train_and_save(index, mcfg, tcfg, args.out, progress=_without_check_result(bar),
                                         evaluate_test=not args.no_evaluate,
                                         val_data=args.val_data)
            except KeyboardInterrupt as exc:
                name = printable(target)
                if _stamp(target) not in (before, None):  # it came after the bundle was saved whole
                    note = f"'{name}' was saved before it stopped"
                else:
                    note = f"no bundle written ('{name}' {'unchanged' if before else 'not created'})"
                add_note(exc, note)
                raise
    finally:
        bar.close()
    manifest, path = outcome.manifest, outcome.path
    tr = manifest["training"]
    print(f"saved {path}")
    print(describe(read_manifest(path)))
    if tr["fit_mode"] == "one_pass":
        from ..usecases.training import describe_fit

        print(f"fitted in {tr['duration_s']:.1f} s on {tr['device']} ({tr['precision']}){describe_fit(tr.get('fit'))}")
    else:
        print(f"trained {tr['updates']} updates ({tr['epochs_run']} rounds) in {tr['duration_s']:.1f} s on "
              f"{tr['device']} ({tr['precision']}), best round {tr['best_epoch']}")
    if tr["data"]["n_skipped"]:
        print(f"skipped {tr['data']['n_skipped']} unreadable image(s): see warnings above")
    if outcome.stopped_reason:
        print(f"note: {outcome.stopped_reason}")
    m = manifest.get("metrics") or {}
    if m.get("image_auroc") is not None:
        extra = f", pixel AUROC {m['pixel_auroc']:.3f}" if m.get("pixel_auroc") is not None else ""
        print(f"test split: image AUROC {m['image_auroc']:.3f}, AP {m['image_ap']:.3f}{extra}")
    from ..usecases.fidelity import describe_fidelity

    for line in describe_fidelity(manifest):
        print(line)
    return 0
