"""The verdict colours, one place for every view: text and numbers on the dark
background (History rows, shift counters), thumbnail frames, and the banner's
background / text pairs."""

from __future__ import annotations

#: verdict -> colour of text and numbers on the dark background
VERDICT_TEXT = {"PASS": "#4caf50", "REVIEW": "#f0b400", "FAIL": "#ef5350"}
#: verdict -> frame of a thumbnail in the strip of the last parts
VERDICT_FRAME = {"PASS": "#2e9d4f", "REVIEW": "#e0a100", "FAIL": "#d32f2f"}
#: banner state -> (background, text)
BANNER = {
    "PASS": ("#1b7f3b", "#ffffff"),
    "REVIEW": ("#e0a100", "#1a1a1a"),
    "FAIL": ("#c62828", "#ffffff"),
    "IDLE": ("#2b3238", "#c9d1d9"),
    "LOST": ("#8a4b00", "#ffffff"),
}
