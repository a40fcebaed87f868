"""How a live line runs a kind of source: what :func:`line_source` builds
from a spec, as each :class:`~inspection_core.sources.SourceKind` declares."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..sources import ImageSource, SourceSpec, parse_source, source_kind


@dataclass(frozen=True)
class LineSettings:
    """How a line runs a kind of source."""

    lossless: bool
    pace_fps: float | None = None
    loop: bool = False


def line_source(spec: int | str | os.PathLike[str] | SourceSpec, *, kind: str | None = None,
                rate: float | None = None, loop: bool = False) -> tuple[ImageSource, LineSettings]:
    """The source a spec names (not opened: the capture thread opens it) and
    how a line runs it: a folder is read recursively, lossless, at most
    ``rate`` parts a second, looping when ``loop``; a watched folder lossless;
    a video at its own speed and a camera keep the newest frame: each as its
    :class:`~inspection_core.sources.SourceKind` declares (``line_options``,
    ``lossless``, ``pacing``: only a "rate" kind takes ``rate`` and ``loop``)."""
    s = parse_source(spec, kind)
    k = source_kind(s.kind)
    paced = k.pacing == "rate"
    return k.build(s.target, **k.line_options), LineSettings(k.lossless, (rate or None) if paced else None,
                                                             loop and paced)


__all__ = ["LineSettings", "line_source"]
