"""Shift counters and the bundle summary shown in the Inspect view (plain Python, tested alone)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.widgets.verdict_banner import format_threshold


@dataclass
class ShiftCounters:
    """Verdict counts since the shift started.

    ``inspected`` counts parts (PASS, REVIEW, FAIL); a frame that carried no
    part (INVALID: blank, overexposed, far too dark or bright) is counted in
    ``invalid`` only: it is no part, so it neither passes nor lowers the yield.
    Any other verdict counts as a FAIL (never as a PASS)."""

    inspected: int = 0
    passed: int = 0
    review: int = 0
    failed: int = 0
    invalid: int = 0

    def add(self, verdict: str) -> None:
        verdict = str(getattr(verdict, "value", verdict))
        if verdict == "INVALID":
            self.invalid += 1
            return
        self.inspected += 1
        if verdict == "PASS":
            self.passed += 1
        elif verdict == "REVIEW":
            self.review += 1
        else:
            self.failed += 1

    @property
    def frames(self) -> int:
        """Every frame judged: the parts and the INVALID frames."""
        return self.inspected + self.invalid

    @property
    def yield_pct(self) -> float | None:
        return None if self.inspected == 0 else 100.0 * self.passed / self.inspected


def bundle_summary(manifest: dict[str, Any]) -> dict[str, str]:
    """Model, trained when, on what, threshold: short texts for the bundle panel."""
    model = manifest.get("model", {})
    thr = manifest.get("threshold", {})
    data = (manifest.get("training") or {}).get("data") or {}
    created = str(manifest.get("created", ""))
    try:
        created = _dt.datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        pass
    root = str(data.get("root", "") or "")
    on = Path(root).name if root else "?"
    if data.get("n_train") is not None:
        on += f" ({data['n_train']} good images)"
    high, low = thr.get("high"), thr.get("low")
    threshold = "?" if high is None else format_threshold(float(high), None if low is None else float(low))
    strategy = thr.get("strategy")
    if strategy:
        threshold += f" · {strategy}"
    if thr.get("provisional"):
        threshold += " (provisional)"
    return {
        "name": str(manifest.get("name", "?")),
        "model": f"{model.get('model', '?')} · {model.get('image_size', '?')} px",
        "trained": created or "?",
        "data": on,
        "threshold": threshold,
    }
