"""A new source kind is one module: a toy "pattern:" generator registered here
is parsed, built by the live use case and inspected by a LiveLine, with no
other file knowing it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest

from inspection_core.sources import Frame, ImageSource, SourceKind, parse_source, register_source_kind, source_kinds
from inspection_core.sources import unregister_source_kind
from inspection_core.usecases.live import LiveLine, line_source
from inspection_core.usecases.live_events import Ended, LiveEvent, Ready, Result, SourceState, Stopped


class PatternSource(ImageSource):
    """``count`` generated stripes images."""

    def __init__(self, target: str, count: int = 5) -> None:
        super().__init__(f"pattern:{target}")
        self.count, self._i = count, 0

    def _open(self) -> None:
        self._i = 0

    def _close(self) -> None:
        pass

    def _poll(self, timeout: float) -> Frame | None:
        if self._i >= self.count:
            self.state = "ended"
            return None
        self._i += 1
        image = np.zeros((16, 16, 3), np.uint8)
        image[:, :: self._i + 1] = 255
        return Frame(image, self._next_index(), time.time(), f"pattern#{self._i}")

    @property
    def finished(self) -> bool:
        return self._i >= self.count


PATTERN = SourceKind(name="pattern", label="Test pattern", hint="stripes", needs="a pattern name",
                     factory=PatternSource, lossless=True, pacing="rate", line_options={"count": 4},
                     guess=lambda text: text == "stripes")


@pytest.fixture
def pattern_kind() -> Iterator[SourceKind]:
    register_source_kind(PATTERN)
    yield PATTERN
    unregister_source_kind("pattern")


class _Inspector:
    manifest = None

    def predict(self, image: np.ndarray) -> SimpleNamespace:
        return SimpleNamespace(reason="", score=float(image.mean()), image=image, verdict=SimpleNamespace(value="PASS"))


def test_a_registered_kind_is_parsed_built_and_run_by_a_live_line(pattern_kind: SourceKind) -> None:
    assert pattern_kind in source_kinds()
    assert parse_source("pattern:stripes").kind == "pattern"
    assert parse_source("stripes").kind == "pattern"  # its own guess
    source, settings = line_source("pattern:stripes", rate=50, loop=False)
    assert isinstance(source, PatternSource) and source.count == 4
    assert settings.lossless and settings.pace_fps == 50
    events: list[LiveEvent] = []
    line = LiveLine("pattern:stripes", _Inspector(), on_event=events.append)
    assert line.lossless and line.run(timeout_s=20)
    results = [e.result for e in events if isinstance(e, Result)]
    assert [r.frame_ref for r in results] == [f"pattern#{i}" for i in range(1, 5)]
    assert isinstance(events[0], (Ready, SourceState)) and isinstance(events[-1], Stopped)
    assert any(isinstance(e, Ended) for e in events)


def test_an_unregistered_kind_is_unknown_again(pattern_kind: SourceKind) -> None:
    unregister_source_kind("pattern")
    from inspection_core.sources import SourceError

    with pytest.raises(SourceError, match="unknown source kind 'pattern'"):
        parse_source("x", kind="pattern")


def test_the_plain_listener_gets_kind_and_payload(pattern_kind: SourceKind) -> None:
    seen: list[tuple[str, object]] = []
    assert LiveLine("pattern:stripes", _Inspector(), listener=lambda k, p: seen.append((k, p))).run(timeout_s=20)
    assert [k for k, _ in seen if k == "result"] == ["result"] * 4
    assert seen[-1] == ("stopped", None)
