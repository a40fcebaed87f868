"""Use case: evaluate a bundle on a labelled folder, optionally writing a report.

The images are the ones :mod:`inspection_core.selection` allows (the test
split; a classifier's held-out split); the numbers come from
:func:`inspection_core.evaluation.evaluate`. A report folder holds
``metrics.json``, ``scores.csv`` (one row per image), the figures and
``index.html``; the folder is written as a whole (a new report replaces an
old one in one step, and never a folder that holds other files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ..data.dataset import DatasetIndex
from ..evaluation import ScoredSet, evaluate
from ..fileio import atomic_folder, atomic_write_csv, atomic_write_json
from ..inference import Inspector
from ..progress import CancelToken, ProgressCallback
from ..selection import evaluation_samples, open_data


@dataclass
class EvaluationOutcome:
    """Metrics, the scored images, what was chosen and where the report went."""

    metrics: dict[str, Any]
    scored: ScoredSet
    inspector: Inspector
    description: str
    report: Path | None = None


def as_inspector(bundle: Inspector | Bundle | str | os.PathLike[str], device: str = "auto") -> Inspector:
    """An Inspector for a bundle given as an Inspector, a loaded Bundle or a path."""
    return bundle if isinstance(bundle, Inspector) else Inspector(bundle, device=device)


#: what a report folder holds; an existing folder with anything else is not replaced
REPORT_SUFFIXES = frozenset({".html", ".json", ".csv", ".png"})


def is_report_folder(folder: Path) -> bool:
    """Whether ``folder`` is empty or holds only what a report writes (so a new report may replace it)."""
    entries = list(folder.iterdir())
    return all(e.is_file() and e.suffix.lower() in REPORT_SUFFIXES for e in entries)


def write_report_folder(out: str | os.PathLike[str], metrics: dict[str, Any], scored: ScoredSet,
                        inspector: Inspector) -> Path:
    """``metrics.json``, ``scores.csv``, figures and ``index.html`` in ``out``,
    written as a whole (:func:`inspection_core.fileio.atomic_folder`): a full
    disk or a crash leaves the previous report whole, never a mix of two runs;
    returns the HTML file."""
    from ..report import write_report

    target = Path(out)
    with atomic_folder(target, may_replace=is_report_folder) as folder:
        atomic_write_json(folder / "metrics.json", metrics)
        verdicts = inspector.threshold.verdicts(scored.scores)
        atomic_write_csv(folder / "scores.csv", ["path", "label", "defect_type", "score", "verdict"],
                         ([str(s.path), int(s.label), s.defect_type, f"{sc:.8g}", v.value]
                          for s, sc, v in zip(scored.samples, scored.scores, verdicts)))
        html = write_report(folder, scored=scored, inspector=inspector, metrics=metrics)
    return target / html.name


def evaluate_bundle(bundle: Inspector | Bundle | str | os.PathLike[str],
                    data: DatasetIndex | str | os.PathLike[str], *, report_dir: str | os.PathLike[str] | None = None,
                    batch_size: int = 32, device: str = "auto", progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> EvaluationOutcome:
    """Score ``data``'s evaluation images with ``bundle`` and compute its metrics
    at the bundle's threshold; with ``report_dir``, write the report there."""
    inspector = as_inspector(bundle, device)
    index = open_data(data, inspector.meta)
    description = evaluation_samples(inspector.meta, index).description
    metrics, scored = evaluate(inspector, index, batch_size, progress=progress, cancel=cancel,
                               keep=report_dir is not None)
    report = write_report_folder(report_dir, metrics, scored, inspector) if report_dir is not None else None
    return EvaluationOutcome(metrics, scored, inspector, description, report)


__all__ = ["EvaluationOutcome", "as_inspector", "evaluate_bundle", "is_report_folder", "write_report_folder"]
