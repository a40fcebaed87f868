"""Source kinds: what one kind of image source is, declared once, in a registry.

A :class:`SourceKind` says everything the rest of the program needs to know
about a kind: its name (the ``kind:`` prefix of a spec), its label and hint
(the Inspect view's picker, the File ▸ Open source menu), how a user picks
one (``browse``), how a live line runs it (``lossless``, ``pacing``,
``line_options``), how to recognise it in plain text (``guess``), how to
check a target (``check``) and how to build its :class:`ImageSource`
(``factory``). :func:`~inspection_core.sources.spec.parse_source`,
:func:`~inspection_core.usecases.live.line_source`, the Inspect view and the
main window's menu iterate :func:`source_kinds`, so a new kind (a GenICam
camera, a test pattern) is one module that calls :func:`register_source_kind`.
The built-in kinds are declared in :mod:`.builtin_kinds`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .base import ImageSource, SourceError

#: how a user picks a target: a file dialog (with ``browse_filter``), a folder dialog, or typed text
Browse = Literal["file", "folder", "none"]
#: how a live line paces a kind: at most the user's rate (and may loop), the source's own clock,
#: or as frames arrive (the line keeps the newest frame of a non-lossless kind)
Pacing = Literal["rate", "realtime", "arrival"]


@dataclass(frozen=True)
class SourceKind:
    """One kind of image source (see the module docstring)."""

    name: str                                   # the spec's prefix: "camera", "folder", ...
    label: str                                  # "Image folder": the picker and the menu
    hint: str                                   # placeholder text: what to type
    needs: str                                  # what an empty target lacks: "a folder"
    factory: Callable[..., ImageSource]         # factory(target, **options), not opened
    browse: Browse = "none"
    browse_filter: str = ""                     # the file dialog's filter when browse == "file"
    example: str = ""                           # the text a typed-target dialog starts with
    lossless: bool = False                      # every frame is a part (the line waits for scoring)
    pacing: Pacing = "arrival"
    line_options: Mapping[str, Any] = field(default_factory=dict)  # options a live line builds it with
    guess: Callable[[str], bool] | None = None  # True when plain text (no prefix) names this kind
    check: Callable[[str], None] | None = None  # raises SourceError for a target it cannot be
    order: int = 100                            # place in the picker and the menu (guessing follows registration)

    def build(self, target: str, **options: Any) -> ImageSource:
        """The ImageSource for ``target`` (not opened yet: use ``with``)."""
        return self.factory(target, **options)


_KINDS: dict[str, SourceKind] = {}


def register_source_kind(kind: SourceKind) -> SourceKind:
    """Add ``kind`` (or replace the one of that name); returns it."""
    if not kind.name.isidentifier() or kind.name != kind.name.lower():
        raise ValueError(f"a source kind's name is a lower-case identifier, got {kind.name!r}")
    _KINDS[kind.name] = kind
    return kind


def unregister_source_kind(name: str) -> None:
    """Remove a kind (a test's toy kind, a plug-in being unloaded)."""
    _KINDS.pop(name, None)


def source_kinds() -> tuple[SourceKind, ...]:
    """The registered kinds in the order the picker and the menu show them."""
    return tuple(sorted(_KINDS.values(), key=lambda k: k.order))


def kind_names() -> tuple[str, ...]:
    """The registered kinds' names in registration order (the order text is guessed in)."""
    return tuple(_KINDS)


def source_kind(name: str) -> SourceKind:
    """The kind called ``name``; ``SourceError`` naming the known ones otherwise."""
    try:
        return _KINDS[name]
    except KeyError:
        raise SourceError(f"unknown source kind {name!r}; expected one of {', '.join(_KINDS)}") from None


__all__ = ["Browse", "Pacing", "SourceKind", "kind_names", "register_source_kind", "source_kind", "source_kinds",
           "unregister_source_kind"]
