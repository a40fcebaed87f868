"""Defect types: a small classifier that names the kind of defect of a FAIL
("FAIL: scratch (0.82)") from the features of its heat map's hottest region
(ADR 0020). ``classifier`` and ``metrics`` need numpy only; ``features`` and
``fit`` (torch, scikit-learn) are imported where they are used."""

from __future__ import annotations

from .classifier import DEFAULT_MIN_PROBABILITY, UNKNOWN, DefectTypesError, TypeAnswer, TypeClassifier, describe_answer
from .metrics import confusion, detection_by_type

__all__ = ["DEFAULT_MIN_PROBABILITY", "UNKNOWN", "DefectTypesError", "TypeAnswer", "TypeClassifier", "confusion",
           "describe_answer", "detection_by_type"]
