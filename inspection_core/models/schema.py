"""A family's parameters written once: name, default, description, range or
choices (ADR 0016).

The Train view's editors and tooltips, ``inspector train --param`` and its
``--help``, ``Detector.default_params`` / ``param_help`` and the check that
runs before any image is read all read a family's :class:`Schema`. No torch:
a command line refuses a bad value in milliseconds.

A :class:`Family` is what the registry knows of a family without building
it: its schema, its presets, where its ``Detector`` class lives, and what
only it knows (how to summarise its fit record, which parameter names start
weights).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from ..config import ModelConfig

#: the preset names every family offers (``recipes.PRESETS``)
PRESETS = ("quick", "standard", "thorough")


@dataclass(frozen=True)
class Recipe:
    """One preset: input size, family parameters over the schema's defaults,
    training settings (``TrainConfig`` fields) and the illumination
    normalisation of the preprocessing ("none" or "mean_std")."""

    image_size: int
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    normalize: str = "none"


def _number(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Param:
    """One family parameter. The kind (true/false, whole number, decimal
    number, text, list) is the default's. ``low``/``high``: the range
    (``low_open``/``high_open``: the bound itself is excluded); ``choices``:
    the values a text may take, or the items a list may hold.

    ``weights``: the parameter names start weights ("imagenet", a local
    file, or ``scratch``, the value that means random weights, where the
    family allows that); ``needs``: it only has an effect when that other
    parameter is set; ``train_setting``: the ``TrainConfig`` field whose value,
    when the user gives it, this family reads from this parameter instead."""

    name: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    weights: bool = False
    scratch: str | None = None
    needs: str = ""
    train_setting: str = ""

    @property
    def kind(self) -> str:
        d = self.default
        if isinstance(d, bool):
            return "bool"
        if isinstance(d, int):
            return "int"
        if isinstance(d, float):
            return "float"
        if isinstance(d, str):
            return "str"
        if isinstance(d, (list, tuple)):
            return "list"
        return "any"

    def describe(self) -> str:
        """The accepted values in words: "one of pixel, ssim", "in (0, 1]",
        "a whole number from 1 to 8192" ("" when anything of its kind goes)."""
        if self.choices:
            items = ", ".join(str(c) if c != "" else '"" (none)' for c in self.choices)
            return f"a list of {items}" if self.kind == "list" else f"one of {items}"
        lo, hi = self.low, self.high
        if self.kind == "int":
            if lo is not None and hi is not None:
                return f"a whole number from {_number(lo)} to {_number(hi)}"
            if lo is not None:
                return f"a whole number >= {_number(lo)}"
            return ""
        if lo is not None and hi is not None:
            return f"in {'(' if self.low_open else '['}{_number(lo)}, {_number(hi)}{')' if self.high_open else ']'}"
        if lo is not None:
            return f"{'>' if self.low_open else '>='} {_number(lo)}"
        return ""

    def check(self, family: str, value: Any) -> None:
        """Raise ValueError naming the family, the parameter and what it
        accepts, when ``value`` is not one of its values."""
        kind = self.kind
        if kind == "bool":
            ok, want = isinstance(value, bool), "true or false"
        elif kind == "int":
            ok, want = isinstance(value, int) and not isinstance(value, bool), "a whole number"
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
            want = "a finite number"
        elif kind == "str":
            ok, want = isinstance(value, str), "a text"
        elif kind == "list":
            ok, want = isinstance(value, (list, tuple)), "a list"
        else:
            return
        if not ok:
            raise ValueError(f"{family}: parameter {self.name} must be {want}, got {value!r}")
        if self.choices:
            items = value if kind == "list" else [value]
            if any(v not in self.choices for v in items):
                raise ValueError(f"{family}: {self.name} must be {self.describe()}, got {value!r}")
            return
        if kind in ("int", "float"):
            v = float(value)
            below = self.low is not None and (v <= self.low if self.low_open else v < self.low)
            above = self.high is not None and (v >= self.high if self.high_open else v > self.high)
            if below or above:
                raise ValueError(f"{family}: {self.name} must be {self.describe()}, got {value!r}")

    def help_line(self) -> str:
        """Its description with the accepted values, for tooltips and ``--help``."""
        accepted = self.describe()
        return self.help + (f" ({accepted})" if accepted and accepted not in self.help else "")


@dataclass(frozen=True)
class Schema:
    """A family's parameters in their order (see :class:`Param`)."""

    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(names) != len(set(names)):
            raise ValueError(f"a parameter is declared twice: {sorted(n for n in names if names.count(n) > 1)}")

    def __add__(self, other: Schema) -> Schema:
        return Schema(self.params + other.params)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, Any]:
        """Every parameter's default (fresh copies: a caller may change them)."""
        return {p.name: copy.deepcopy(list(p.default) if isinstance(p.default, tuple) else p.default)
                for p in self.params}

    def help(self) -> dict[str, str]:
        """One line per parameter: the description and what it accepts."""
        return {p.name: p.help_line() for p in self.params}

    @property
    def weights_param(self) -> Param | None:
        """The parameter that names start weights, if the family has one."""
        return next((p for p in self.params if p.weights), None)

    def resolve(self, family: str, given: Mapping[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """``given`` over the defaults, every value checked: an unknown name,
        a value of another kind or out of range is a ValueError naming it.
        ``drop``: names to ignore when the family does not have them (keys
        that old bundles carried)."""
        merged = self.defaults()
        values = {k: v for k, v in given.items() if not (k in drop and k not in merged)}
        unknown = set(values) - set(merged)
        if unknown:
            raise ValueError(f"{family}: unknown parameter(s) {sorted(unknown)}; known: {sorted(merged)}")
        for k, v in values.items():
            self[k].check(family, v)
        merged.update(values)
        return merged


def _no_check(cfg: ModelConfig) -> None:
    """A family without constraints across its parameters."""


def _no_summary(fit: Mapping[str, Any]) -> str:
    return ""


@dataclass(frozen=True)
class Family:
    """What the registry knows of a family before building it.

    ``detector``: its ``Detector`` subclass, or where it lives as
    ``"package.module:Class"`` (imported only when a model is built, so that
    listing and checking need no torch). ``check``: the constraints across
    parameters and the input size (``cfg.params`` already resolved), torch-free.
    ``describe_fit``: a one-pass fit record -> ", memory bank of 8468 patches"."""

    name: str
    schema: Schema
    presets: Mapping[str, Recipe]
    detector: str | type
    check: Callable[[ModelConfig], None] = _no_check
    describe_fit: Callable[[Mapping[str, Any]], str] = _no_summary
    summary: str = ""

    def resolve_params(self, cfg: ModelConfig) -> dict[str, Any]:
        """``cfg.params`` over the schema's defaults, every value checked."""
        from ..config import LEGACY_MODEL_KEYS

        cfg.validate()
        legacy = tuple(k for k in getattr(cfg, "_legacy", ()) if k in LEGACY_MODEL_KEYS)
        return self.schema.resolve(self.name, cfg.params, drop=legacy)

    def validate(self, cfg: ModelConfig) -> None:
        """Raise ValueError when ``cfg`` is not a model of this family (any
        parameter's kind, range or choices, or their combination with the
        input size). Builds nothing, imports no torch."""
        c = copy.deepcopy(cfg)
        c.params = self.resolve_params(c)
        self.check(c)


__all__ = ["PRESETS", "Family", "Param", "Recipe", "Schema"]
