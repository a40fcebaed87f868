"""The comparison report: every family's ROC and PR curves overlaid on one
figure each, the table and the recommendation, in one self-contained
``index.html`` (the evaluation report's style: inline CSS, PNG figures
linked relatively, no script). Written by
:func:`inspection_core.usecases.compare.write_comparison`."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from .figures import _figure, _save
from .html import _CSS

#: one colour per family, in the order run (the Compare page uses the same)
COLOURS = ("#1f5fa8", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def roc_overlay(comparison: Any, path: Path) -> Path:
    """Each family's ROC on the held-out images, its AUROC in the legend."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    for r, colour in zip(comparison.results, COLOURS):
        if r.image_auroc is not None:
            ax.plot(r.roc_fpr, r.roc_tpr, color=colour, lw=1.8, label=f"{r.family} (AUROC {r.image_auroc:.3f})")
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls=":")
    ax.set(xlabel="false-reject rate (FPR)", ylabel="defects caught (TPR)", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01),
           title="ROC on the held-out images")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_overlay(comparison: Any, path: Path) -> Path:
    """Each family's precision-recall curve on the held-out images, its AP in the legend."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    for r, colour in zip(comparison.results, COLOURS):
        if r.image_ap is not None:
            ax.plot(r.pr_recall, r.pr_precision, color=colour, lw=1.8, label=f"{r.family} (AP {r.image_ap:.3f})")
    ax.set(xlabel="recall (defects caught)", ylabel="precision", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01),
           title="Precision-recall on the held-out images")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def _table(comparison: Any) -> str:
    from ..comparison import COLUMNS, table_rows

    best = comparison.recommendation.family
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in COLUMNS)
    body = []
    for row in table_rows(comparison):
        style = " style='background:#eef7ee;font-weight:600'" if row["family"] == best else ""
        cells = "".join(f"<td{'' if k in ('family', 'trained_on') else ' class=n'}>{html.escape(row[k])}</td>"
                        for k, _ in COLUMNS)
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_comparison_report(folder: str | Path, comparison: Any) -> Path:
    """``roc.png``, ``pr.png`` and ``index.html`` in ``folder``; returns the HTML file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    roc_overlay(comparison, folder / "roc.png")
    pr_overlay(comparison, folder / "pr.png")
    ho = comparison.held_out
    rec = comparison.recommendation
    target = f"{comparison.escape_target:.0%}"
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machine = comparison.machine
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Detector comparison</title>",
        f"<style>{_CSS}</style></head><body><h1>Detector comparison</h1>",
        f"<p class=sub>generated {generated} · data {html.escape(comparison.data)} · "
        f"{ho['n_good']} good and {ho['n_defect']} defective held-out images ({html.escape(ho['description'])})</p>",
        "<h2>Recommendation</h2>",
        f"<p><b>{html.escape(rec.family or 'none')}</b>: {html.escape(rec.reason)}</p>",
        "<h2>Table</h2>",
        f"<p>False rejects and escapes at the threshold that lets at most {target} of the held-out defects "
        "through (chosen on the held-out scores, the same rule for every family); training: wall time including "
        f"loading the images; ms / image: median of one image at a time on this machine ({machine.get('cpus')} "
        f"CPUs, torch threads: {machine.get('torch_threads')}, device: {html.escape(str(machine.get('device')))}).</p>",
        _table(comparison),
        "<h2>Curves</h2>",
        "<div class=figs><figure><img src='roc.png' alt='ROC curves'><figcaption>ROC</figcaption></figure>"
        "<figure><img src='pr.png' alt='PR curves'><figcaption>Precision-recall</figcaption></figure></div>",
        "<h2>Bundles</h2><table>",
        *(f"<tr><th>{html.escape(r.family)}</th><td>{html.escape(r.bundle)}</td></tr>" for r in comparison.results),
        "</table></body></html>",
    ]
    return atomic_write_text(folder / "index.html", "\n".join(parts), fsync=False)


__all__ = ["COLOURS", "pr_overlay", "roc_overlay", "write_comparison_report"]
