"""``inspector train``: train a detector and save a model bundle (an adapter
over :func:`inspection_core.usecases.training.train_and_save`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from .common import (
    CliError,
    HelpFormatter,
    ProgressBar,
    add_note,
    check_batch_size,
    check_float,
    check_int,
    printable,
    suggest,
)

#: the family ``inspector train`` trains when --model is not given
DEFAULT_MODEL = "patchcore"

#: flags that set a family parameter: flag dest -> param name
_PARAM_FLAGS = {"latent": "latent_dim", "width": "base_width", "backbone": "backbone"}


def _presets_epilog() -> str:
    from ..recipes import RECIPES

    lines = ["standard preset of each model (what a flag left out means; see docs/quality.md):"]
    for model, presets in sorted(RECIPES.items()):
        r = presets["standard"]
        t = r.train
        budget = (f"{t['updates']} updates" if t.get("updates")
                  else f"{t.get('epochs', 1)} epochs" if "epochs" in t else "one pass")
        lr = f", lr {t['lr']:g}" if "lr" in t else ""
        extra = ", ".join(f"{k}={_value_text(v)}" for k, v in r.params.items())
        lines.append(f"  {model:<14} {r.image_size} px, {budget}, batch {t.get('batch_size', 32)}{lr}"
                     + (f"; {extra}" if extra else "") + (f"; normalize {r.normalize}" if r.normalize != "none" else ""))
    lines.append("pretrained weights (the backbone of PatchCore and of the classifier, the GAN families' perceptual "
                 "backbone) come from torch's "
                 "cache, downloaded on first use; offline, pass the file with --weights FILE. The quick preset of "
                 "the GAN families needs none.")
    lines.append("")
    lines.append("parameters of each model (--param NAME=VALUE; a list as a,b,c; true or false for a switch):")
    lines.extend(_params_epilog())
    return "\n".join(lines)


def _value_text(v: Any) -> str:
    """A parameter's value as a user types it: true/false, a,b,c, "" for nothing."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(_value_text(x) for x in v) if v else '""'
    if v is None or v == "":
        return '""'
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _params_epilog() -> list[str]:
    from ..models.registry import families

    lines = []
    for name, fam in sorted(families().items()):
        if not fam.presets:
            continue
        lines.append(f"  {name}" + (f": {fam.summary}" if fam.summary else ""))
        for prm in fam.schema.params:
            lines.append(f"    {prm.name} = {_value_text(prm.default)}  ({_KINDS.get(prm.kind, prm.kind)})")
            lines.append(f"        {prm.help_line()}")
    return lines


#: a parameter's kind in words
_KINDS = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a text", "list": "a list"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..recipes import DEFAULT_PRESET, PRESETS, RECIPES

    p = sub.add_parser(
        "train",
        help="train a detector on images of good parts and save a model bundle",
        description="Train a detector and save a model bundle (.inspector) with a provisional threshold "
        "(a high quantile of held-out good scores); when the data has a labelled test split, "
        "the bundle's metrics are computed on it. The vgg16 classifier is supervised: it needs labelled "
        "defective images (test/<type>/ or defect/ folders), trains on some of them and is tested on the rest; "
        "how many of each it uses is printed before it starts. Every setting not given comes from the model's "
        f"preset (--preset, default {DEFAULT_PRESET}; see docs/quality.md for what each preset is).",
        formatter_class=HelpFormatter,
        epilog=_presets_epilog(),
    )
    p.add_argument("--data", type=Path, required=True,
                   help="data folder (MVTec layout: train/good and test/<type>; or good/ and defect/ folders)")
    p.add_argument("--model", choices=sorted(RECIPES), default=DEFAULT_MODEL,
                   help="detector family (its parameters are listed below)")
    p.add_argument("--out", type=Path, required=True, help="bundle file to write (.inspector is appended if missing)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the bundle --out names if it exists (its calibration history is lost); "
                        "default: refuse")
    p.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET, help="recipe the other settings default to")
    p.add_argument("--image-size", type=int, default=None, help="square model input in pixels (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None, help="passes over the data (default: the preset's)")
    p.add_argument("--updates", type=int, default=None, help="optimiser updates instead of epochs (GAN families)")
    p.add_argument("--batch-size", type=int, default=None, help="images per update (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                   help="learning-rate schedule (default: the preset's)")
    p.add_argument("--normalize", choices=("none", "mean_std"), default=None,
                   help="illumination normalisation of every image, recorded in the bundle (default: the preset's)")
    p.add_argument("--augment", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation, e.g. hflip=true rotate=10 (repeatable; see docs/quality.md; default: the preset's)")
    p.add_argument("--latent", type=int, default=None, help="GAN latent size (param latent_dim; default: the preset's)")
    p.add_argument("--width", type=int, default=None, help="GAN/VGG channel width (param base_width; default: the preset's)")
    p.add_argument("--backbone", default=None,
                   help="pretrained backbone (param backbone of patchcore and vgg16; default: the preset's)")
    p.add_argument("--weights", type=Path, default=None,
                   help="local pretrained weights file (offline stations; default: torch's cache, downloaded on first use)")
    p.add_argument("--from-scratch", action="store_true",
                   help="vgg16: start from random weights (explicitly; default: pretrained)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter, e.g. lam=1 (repeatable; each model's are listed below; default: the preset's)")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out share of good training images")
    p.add_argument("--val-data", type=Path, default=None, help="labelled folder for validation AUROC (default: none)")
    p.add_argument("--early-stopping", type=int, default=None, metavar="EPOCHS",
                   help="stop when validation has not improved for EPOCHS epochs (default: the preset's, or never)")
    p.add_argument("--cpu-bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast and channels-last when training on the CPU (about 2x faster per epoch on CPUs "
                        "whose bf16 is fast, slower on the others). Default: on for the GAN families where this "
                        "CPU's bf16 convolutions measure faster than fp32, off otherwise; --no-cpu-bf16 trains in fp32")
    p.add_argument("--no-evaluate", action="store_true", help="skip evaluation on the test split (default: evaluate)")
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


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _item(text: str) -> Any:
    """One item of a list value: a number where it reads as one, else the text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else text


def parse_value(model: str, prm: Any, text: str) -> Any:
    """``--param NAME=TEXT`` read as the parameter's kind, or CliError naming
    the parameter, its kind and (for a text) its choices."""
    kind = prm.kind
    word = text.strip()
    accepted = prm.describe()

    def bad(want: str, hint: str = "") -> CliError:
        return CliError(f"--param {prm.name} must be {want}, got '{text}'{hint} (model {model})")

    if kind == "bool":
        if word.lower() in _TRUE:
            return True
        if word.lower() in _FALSE:
            return False
        raise bad("true or false")
    if kind == "int":
        try:
            return int(word)
        except ValueError:
            raise bad(accepted or "a whole number") from None
    if kind == "float":
        try:
            value = float(word)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise bad("a finite number" + (f" {accepted}" if accepted else ""))
        return value
    if kind == "list":
        if word.startswith("["):
            try:
                value = json.loads(word)
            except json.JSONDecodeError:
                raise bad("a list (a,b,c)") from None
            if isinstance(value, list):
                return value
        return [_item(w.strip()) for w in word.split(",") if w.strip()]
    if kind == "str":
        if prm.choices and text not in prm.choices:
            raise bad(accepted, suggest(text, [str(c) for c in prm.choices]))
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(model: str, items: list[str]) -> dict[str, Any]:
    """``--param KEY=VALUE`` items read by the family's schema: each value as
    its parameter's kind; an unknown name is an error that suggests the
    closest one. No torch."""
    from ..models.registry import family

    try:
        schema = family(model).schema
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise CliError(f"--param expects NAME=VALUE, got '{item}'")
        key, text = (part for part in item.split("=", 1))
        key = key.strip()
        if key not in schema:
            names = schema.names()
            raise CliError(f"--param {key}: model {model} has no such parameter{suggest(key, names)}; its "
                           f"parameters: {', '.join(names)} (see inspector train --help)")
        out[key] = parse_value(model, schema[key], text)
    return out


def check_params(args: argparse.Namespace) -> dict[str, Any]:
    """The family parameters the flags give (``--param`` and the named flags),
    each checked by the family's schema with the input size (the preset's
    where not given): CliError naming the parameter before any image is read."""
    from ..models.registry import family, validate_params
    from ..recipes import recipe

    params = parse_params(args.model, args.param)
    schema = family(args.model).schema
    for dest, name in _PARAM_FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            if name not in schema:
                raise CliError(f"--{dest} does not apply to model '{args.model}'")
            params[name] = value
    try:
        size = args.image_size or recipe(args.model, args.preset).image_size
        checked = {**recipe(args.model, args.preset).params, **params}
        wp = schema.weights_param  # what TrainSettings lays over the parameters, checked with them
        if wp is not None and (args.weights or (args.from_scratch and wp.scratch is not None)):
            checked[wp.name] = str(args.weights) if args.weights else wp.scratch
        for prm in schema.params:
            if prm.train_setting and getattr(args, prm.train_setting, None) is not None:
                checked[prm.name] = getattr(args, prm.train_setting)
        validate_params(args.model, checked, image_size=size)
    except ValueError as exc:
        raise CliError(_param_message(str(exc), schema.names())) from None
    return params


def _param_message(text: str, names: list[str]) -> str:
    """A schema's message with the option that set the value: "--param score
    must be one of ... (patchcore)"; any other message as it is."""
    family_name, sep, rest = text.partition(": ")
    rest = rest.removeprefix("parameter ")
    if not sep or rest.split(" ", 1)[0] not in names:
        return text
    return f"--param {rest} (model {family_name})"


def configs_from_args(args: argparse.Namespace, channels: int,
                      params: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(ModelConfig, TrainConfig): the preset with the given flags laid over it
    (the same rules as the Train view: :class:`TrainSettings`); ``params``:
    what :func:`check_params` returned, if it ran."""
    from ..usecases.train_settings import TrainSettings

    params = check_params(args) if params is None else params
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


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def check_out(args: argparse.Namespace) -> Path:
    """The bundle file --out names; CliError when it exists and --overwrite
    was not given (a trained bundle holds its calibration history)."""
    from ..bundle import bundle_path

    target = bundle_path(args.out)
    if target.is_dir():
        raise CliError(f"--out '{printable(target)}' is a folder; give a file name")
    if target.exists() and not args.overwrite:
        raise CliError(f"'{printable(target)}' already exists (with its threshold and calibration history); "
                       "add --overwrite to replace it, or choose another --out")
    return target


def data_warnings(index: Any) -> list[str]:
    """What a user should know about the data before training: no defective
    images to test on (a folder of good images alone: a share of them is set
    aside as a test split of good images only)."""
    if any(s.label == 1 for s in index.test):
        return []
    where = printable(index.root)
    if index.test:
        return [f"warning: '{where}' has no defective images to test on: {len(index.test)} of its "
                f"{len(index.train) + len(index.test)} good images are set aside as a test split of good images "
                "only (AUROC cannot be measured); give the folder that also holds the defective images "
                "(test/<type>/ or defect/) to test and calibrate on them"]
    return [f"warning: '{where}' has no test images (no defective images to test on): the bundle's metrics stay "
            "empty; calibrate it on a folder with defective images"]


def _estimate_line(mcfg: Any, tcfg: Any, index: Any, evaluate_test: bool) -> str | None:
    """One line with the estimated duration when it is long on this machine, else None."""
    try:
        from ..usecases.estimate import duration_text, estimate_training

        est = estimate_training(mcfg, tcfg, len(index.train), len(index.test), evaluate_test=evaluate_test)
    except Exception:  # noqa: BLE001 - an estimate never stops a training
        import logging

        logging.getLogger(__name__).debug("no estimate", exc_info=True)
        return None
    if not est.long:
        return None
    hint = "" if mcfg.model == DEFAULT_MODEL else f"; --model {DEFAULT_MODEL} fits in minutes"
    return (f"note: this training will take {duration_text(est.seconds)} on this machine "
            f"({est.what(mcfg, tcfg)}){hint}; Ctrl-C stops it")


def run(args: argparse.Namespace) -> int:
    # every check that needs no torch first: a bad option, parameter or path is told at once
    check_numbers(args)
    params = check_params(args)  # the family's schema: a bad value fails before any image is read
    target = check_out(args)
    from ..data.dataset import scan_dataset

    index = scan_dataset(args.data, seed=args.seed)
    mcfg, tcfg = configs_from_args(args, channels=index.channels, params=params)
    from ..models.registry import check_model_config

    try:
        check_model_config(mcfg)
        tcfg.validate()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    for warning in data_warnings(index):
        print(warning, file=sys.stderr)
    from ..models.registry import model_class

    if model_class(args.model).supervised:
        from ..usecases.supervised_plan import plan_supervised

        plan = plan_supervised(index, seed=tcfg.seed, hold_out_train_good=tcfg.holdout_train_good)
        for line in plan.lines() if plan else ():
            print(line, file=sys.stderr)
    if (estimate := _estimate_line(mcfg, tcfg, index, not args.no_evaluate)) is not None:
        print(estimate, file=sys.stderr, flush=True)
    from ..bundle import describe, read_manifest
    from ..usecases.training import TrainingLockedError, train_and_save

    bar = ProgressBar(f"train {args.model}", enabled=True if args.progress else None,
                      one_pass=model_class(args.model).fit_mode == "one_pass")
    try:
        before = _stamp(target)
        try:
            outcome = train_and_save(index, mcfg, tcfg, args.out, progress=_without_check_result(bar),
                                     evaluate_test=not args.no_evaluate,
                                     val_data=args.val_data)
        except TrainingLockedError as exc:
            raise CliError(f"another training is writing '{printable(target)}' (pid {exc.pid}); wait for it to "
                           "end or choose another --out") from None
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

        print(f"fitted in {_seconds(tr['duration_s'])} on {tr['device']} ({tr['precision']})"
              f"{describe_fit(tr.get('fit'))}")
    else:
        epochs = tr["epochs_run"]
        print(f"trained {epochs} epoch{'s' if epochs != 1 else ''} ({tr['updates']} updates) in {_seconds(tr['duration_s'])} on "
              f"{tr['device']} ({tr['precision']}), best epoch {tr['best_epoch']}")
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


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s:.0f} s ({s / 60:.1f} min)"
