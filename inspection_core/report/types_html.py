"""The report's defect-type section: each type's detection rate at the
threshold and, where the bundle names types, the classifier's confusion
matrix on the defects it was not trained on (ADR 0020)."""

from __future__ import annotations

import html
from typing import Any


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f} %"


def defect_type_section(metrics: dict[str, Any] | None) -> str:
    """HTML for ``metrics["per_type"]`` and ``metrics["defect_types"]`` ("" when neither is there)."""
    per_type = (metrics or {}).get("per_type") or {}
    types = (metrics or {}).get("defect_types")
    if not per_type and not types:
        return ""
    parts = ["<h2>Defect types</h2>"]
    if per_type:
        rows = "".join(f"<tr><td>{html.escape(t)}</td><td class=n>{r['n']}</td><td class=n>{r['fail']}</td>"
                       f"<td class=n>{r['review']}</td><td class=n>{_pct(r['detection_rate'])}</td></tr>"
                       for t, r in per_type.items())
        parts.append("<h3>Detection rate per type (FAIL at the threshold)</h3><table><tr><th>type</th><th>images</th>"
                     f"<th>FAIL</th><th>REVIEW</th><th>detection rate</th></tr>{rows}</table>")
    if types:
        cols = types["columns"]
        head = "<tr><th>true \\ named</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
        body = "".join("<tr><td>" + html.escape(r) + "</td>" + "".join(f"<td class=n>{counts[c]}</td>" for c in cols)
                       + "</tr>" for r, counts in types["matrix"].items())
        excluded = types.get("excluded_trained") or 0
        note = f" ({excluded} defects it was trained on left out)" if excluded else ""
        parts.append(f"<h3>Named types: confusion matrix on {types['n']} defects{note}</h3><table>{head}{body}</table>"
                     f"<p>accuracy {_pct(types.get('accuracy'))}, macro accuracy (mean over types) "
                     f"{_pct(types.get('macro_accuracy'))}, answered unknown {_pct(types.get('unknown_rate'))}</p>")
    return "".join(parts)


__all__ = ["defect_type_section"]
