"""The verdict colours, one place for every view: text and numbers on the dark
background (History rows, shift counters), thumbnail frames, and the banner's
background / text pairs.

INVALID (a frame that carries no part: blank, overexposed, far too dark or
bright) is grey: no verdict on a part, neither a pass nor a defect, and never
the green of PASS. A lookup of any other, unknown verdict falls back to
:data:`UNKNOWN_TEXT` / :data:`UNKNOWN_FRAME` (:func:`verdict_text`, :func:`verdict_frame`).
"""

from __future__ import annotations

#: verdict -> colour of text and numbers on the dark background
VERDICT_TEXT = {"PASS": "#4caf50", "REVIEW": "#f0b400", "FAIL": "#ef5350", "INVALID": "#b0bac4"}
#: verdict -> frame of a thumbnail in the strip of the last parts
VERDICT_FRAME = {"PASS": "#2e9d4f", "REVIEW": "#e0a100", "FAIL": "#d32f2f", "INVALID": "#6b747d"}
#: banner state -> (background, text)
BANNER = {
    "PASS": ("#1b7f3b", "#ffffff"),
    "REVIEW": ("#e0a100", "#1a1a1a"),
    "FAIL": ("#c62828", "#ffffff"),
    "INVALID": ("#5a6169", "#ffffff"),
    "IDLE": ("#2b3238", "#c9d1d9"),
    "LOST": ("#8a4b00", "#ffffff"),
}
#: a verdict this palette does not know (an older or newer history row)
UNKNOWN_TEXT = "#c9d1d9"
UNKNOWN_FRAME = "#5c6670"
#: the camera warning bar in the Inspect view (frames in a row carry no part): (background, text)
CAMERA_WARNING = ("#b71c1c", "#ffffff")


def verdict_text(verdict: str) -> str:
    """The text colour of ``verdict`` (any string; never a KeyError)."""
    return VERDICT_TEXT.get(verdict, UNKNOWN_TEXT)


def verdict_frame(verdict: str) -> str:
    """The thumbnail frame colour of ``verdict`` (any string; never a KeyError)."""
    return VERDICT_FRAME.get(verdict, UNKNOWN_FRAME)
