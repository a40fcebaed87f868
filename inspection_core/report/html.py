"""The report's page: one self-contained ``index.html`` (inline CSS, no
script, figures linked relatively) built from what ``write_report`` computed."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..calibration import OperatingPoint
from ..manifest import Manifest, ThresholdRecord, TrainingSummary, section
from .types_html import defect_type_section

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:1.5em;margin-bottom:0}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.sub{color:#666;margin-top:4px}table{border-collapse:collapse;margin:8px 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}th{background:#f4f6f8}
td.n{text-align:right;font-variant-numeric:tabular-nums}.figs{display:flex;flex-wrap:wrap;gap:16px}
.figs figure{margin:0}figcaption{color:#666;font-size:.85em}img{max-width:100%;border:1px solid #eee}
.note{color:#8a5a00;background:#fff7e6;padding:6px 10px;border-radius:4px}
"""


#: metric keys in words (anything else: its key with spaces for underscores)
METRIC_NAMES = {
    "f1": "F1", "balanced_accuracy": "balanced accuracy", "n_skipped": "images skipped (unreadable)",
    "image_auroc": "image AUROC", "image_ap": "image AP", "pixel_auroc": "pixel AUROC", "pro": "PRO",
    "precision": "precision", "recall": "recall", "accuracy": "accuracy", "n_good": "good images",
    "n_defect": "defective images", "fpr": "false-reject rate", "fnr": "escape rate",
    "latency_ms": "latency (ms)", "threshold": "threshold", "threshold_low": "REVIEW threshold",
}
#: strategies in words
STRATEGY_NAMES = {"youden": "Youden's J", "f1": "best F1", "fpr": "false-reject target", "fnr": "escape target",
                  "quantile": "quantile of good scores", "manual": "set by hand"}
#: false passes and false rejects listed by name, at most
MISS_ROWS = 20


def metric_name(key: str) -> str:
    """A metric's key in words ("balanced_accuracy" -> "balanced accuracy"; "latency_ms.p50" -> "latency (ms) p50")."""
    if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)?", key):  # already words ("PRO (FPR ≤ 0.3)")
        return key
    head, _, tail = key.partition(".")
    name = METRIC_NAMES.get(head, head.replace("_", " "))
    return f"{name} {tail.replace('_', ' ')}" if tail else name


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return html.escape(str(v))


def _rate(v: float | None, ci: tuple[float, float] | None = None) -> str:
    if v is None:
        return "–"
    text = f"{v:.2%}"
    if ci is not None:
        text += f" [{ci[0]:.2%}, {ci[1]:.2%}]"
    return text


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(metric_name(k))}</th><td class=n>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _bundle_rows(manifest: Manifest | Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    """The bundle's table (a plain manifest dict may lack sections: a report of scores alone)."""
    if not manifest:
        return [("bundle", "not given")]
    if isinstance(manifest, Manifest):
        model: Mapping[str, Any] = manifest.model.to_dict()
        text = {k: getattr(manifest, k) for k in ("name", "created", "app_version")}
    else:
        model = manifest.get("model") or {}
        text = {k: manifest.get(k) for k in ("name", "created", "app_version")}
    tr = section(manifest, "training", TrainingSummary) or TrainingSummary()
    th = section(manifest, "threshold", ThresholdRecord)
    if tr.fit_mode == "one_pass":
        training = "one pass (fitted, no epochs)"
    else:
        epochs = tr.epochs_run if tr.epochs_run is not None else tr.extra.get("epochs")
        training = "–" if epochs is None else f"{epochs} epochs" + (
            "" if tr.best_epoch is None else f", best epoch {tr.best_epoch}")
    return [
        ("name", text["name"]), ("model", model.get("model")),
        ("image size", model.get("image_size")), ("channels", model.get("channels")),
        ("created", text["created"]), ("app version", text["app_version"]),
        ("training", training),
        ("training device", tr.device),
        ("bundle threshold", "–" if th is None else _threshold_text(th)),
    ]


def _threshold_text(th: ThresholdRecord) -> str:
    """"3.2483 (REVIEW above 2.9; Youden's J)", "0.51 (quantile of good scores, target 0.99, provisional)"."""
    text = _fmt(th.high)
    how = [STRATEGY_NAMES.get(str(th.strategy), str(th.strategy))] if th.strategy else []
    if th.target is not None:
        how.append(f"target {_fmt(th.target)}")
    if th.provisional:
        how.append("provisional")
    parts = [f"REVIEW above {_fmt(th.low)}"] if th.low is not None else []
    if how:
        parts.append(", ".join(how))
    return text + (f" ({'; '.join(parts)})" if parts else "")


def _points_table(points: dict[str, OperatingPoint | str], chosen: OperatingPoint) -> str:
    head = ("<tr><th>operating point</th><th>φ</th><th>FPR (false reject)</th><th>FNR (escape)</th>"
            "<th>precision</th><th>recall</th><th>F1</th><th>balanced acc.</th><th>TP/FP/TN/FN</th>"
            "<th>review</th></tr>")
    rows = []
    for key, op in [("chosen", chosen), *points.items()]:
        word, _, rest = key.partition(" ")
        name = STRATEGY_NAMES.get(word, word) + (f" {rest}" if rest else "")
        if isinstance(op, str):
            rows.append(f"<tr><td>{html.escape(name)}</td><td colspan=9>{html.escape(op)}</td></tr>")
            continue
        th = op.threshold
        phi = _fmt(th.high) if th.low is None else f"{_fmt(th.low)} – {_fmt(th.high)}"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td class=n>{phi}</td><td class=n>{_rate(op.fpr, op.fpr_ci)}</td>"
            f"<td class=n>{_rate(op.fnr, op.fnr_ci)}</td><td class=n>{_rate(op.precision)}</td>"
            f"<td class=n>{_rate(op.recall)}</td><td class=n>{_fmt(op.f1)}</td>"
            f"<td class=n>{_rate(op.balanced_accuracy)}</td>"
            f"<td class=n>{op.tp}/{op.fp}/{op.tn}/{op.fn}</td><td class=n>{op.n_review}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


# shown elsewhere in the report (summary rows, operating-point table)
_SHOWN = {"n_good", "n_defect", "image_auroc", "image_ap", "pixel_auroc", "pro", "confusion", "review", "bands",
          "threshold", "threshold_low", "fpr", "fnr", "per_type", "defect_types"}


def _flat_metrics(metrics: dict[str, Any] | None) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in (metrics or {}).items():
        if k in _SHOWN:
            continue
        if isinstance(v, dict):
            out += [(f"{k}.{k2}", v2) for k2, v2 in v.items() if not isinstance(v2, (dict, list))]
        elif not isinstance(v, list):
            out.append((k, v))
    return out


def _figures(items: list[tuple[str, str]]) -> str:
    return "<div class=figs>" + "".join(
        f'<figure><img src="{html.escape(f)}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>'
        for f, c in items) + "</div>"


def _miss_list(idx: list[int], names: list[str], s: np.ndarray, defect_types: Sequence[str] | None) -> str:
    """A table of misses, worst first as given (image, score, defect type), at most
    :data:`MISS_ROWS` rows and "and N more"."""
    if not idx:
        return "<p>none</p>"
    head = "<tr><th>image</th><th>score</th>" + ("<th>defect type</th>" if defect_types is not None else "") + "</tr>"
    rows = "".join(f"<tr><td>{html.escape(names[i])}</td><td class=n>{s[i]:.4g}</td>"
                   + (f"<td>{html.escape(str(defect_types[i]))}</td>" if defect_types is not None else "") + "</tr>"
                   for i in idx[:MISS_ROWS])
    more = f"<p>and {len(idx) - MISS_ROWS} more (all of them in scores.csv)</p>" if len(idx) > MISS_ROWS else ""
    return f"<table>{head}{rows}</table>{more}"


def _notes(point: OperatingPoint, roc_reason: str) -> list[str]:
    notes = [roc_reason] if roc_reason else []
    if point.fpr is not None and point.fp == 0 and point.n_good:
        notes.append(f"No false rejects observed on {point.n_good} good images; the bootstrap interval collapses "
                     f"to 0, but a rate up to about {min(1.0, 3 / point.n_good):.1%} is still plausible (rule of three).")
    if point.fnr is not None and point.fn == 0 and point.n_defect:
        notes.append(f"No escapes observed on {point.n_defect} defective images; a rate up to about "
                     f"{min(1.0, 3 / point.n_defect):.1%} is still plausible (rule of three).")
    return notes


def render_page(*, title: str, scores: np.ndarray, names: list[str],
                defect_types: Sequence[str] | None, manifest: Manifest | Mapping[str, Any] | None,
                metrics: dict[str, Any] | None, summary: list[tuple[str, Any]], point: OperatingPoint,
                points: dict[str, OperatingPoint | str], roc_reason: str, figures: list[tuple[str, str]],
                miss_figures: list[tuple[str, str]], false_pass: list[int], false_reject: list[int],
                images_given: bool) -> str:
    """The whole page as text. ``summary``: the headline metric rows
    (counts, AUROC, AP, pixel metrics); ``metrics`` adds the rest."""
    s = scores
    bands = point.to_dict()["bands"]
    band_rows = [("good: PASS / REVIEW / FAIL",
                  f"{bands['good']['pass']} / {bands['good']['review']} / {bands['good']['fail']}"),
                 ("defective: PASS / REVIEW / FAIL",
                  f"{bands['defect']['pass']} / {bands['defect']['review']} / {bands['defect']['fail']}"),
                 ("all: PASS / REVIEW / FAIL", f"{point.n_pass} / {point.n_review} / {point.n_fail}")]
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    no_images = "<p>No images given.</p>" if not images_given and (false_pass or false_reject) else ""
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class=sub>generated {generated} · {s.size} images</p>",
        "<h2>Model</h2>", _table(_bundle_rows(manifest)),
        "<h2>Metrics</h2>", _table(summary + _flat_metrics(metrics)),
        "<h2>Operating points</h2>",
        "<p>FAIL when score &gt; φ. FPR: good parts rejected; FNR: defects passed (escapes); "
        "95 % bootstrap intervals in brackets. In two-threshold mode REVIEW parts are neither escapes nor false rejects.</p>",
        _points_table(points, point), _table(band_rows),
        "".join(f"<p class=note>{html.escape(n)}</p>" for n in _notes(point, roc_reason)),
        defect_type_section(metrics),
        "<h2>Figures</h2>", _figures(figures),
        "<h2>Worst misses</h2>",
        f"<h3>False passes ({len(false_pass)})</h3>", _miss_list(false_pass, names, s, defect_types),
        f"<h3>False rejects ({len(false_reject)})</h3>", _miss_list(false_reject, names, s, defect_types),
        _figures(miss_figures) if miss_figures else no_images,
        "</body></html>",
    ]
    return "\n".join(parts)
