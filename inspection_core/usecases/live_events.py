"""What a live line tells its listener: one small frozen dataclass per event.

A listener given as ``on_event`` receives the event itself (match on its
class); one given as ``listener`` receives ``(event.kind, event.payload)``,
the plain form a script that only counts or prints needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..types import Prediction


@dataclass
class LiveResult:
    """One scored frame, as a view or a station receives it."""

    prediction: Prediction
    frame_index: int
    frame_ref: str
    frame_timestamp: float
    record_id: int | None            # row in the history database (None: not recorded)
    score_ms: float                  # model time for this frame
    record_ms: float                 # time to commit the history row
    age_ms: float                    # acquisition -> result ready
    fps: float                       # scored frames per second (recent window)
    frames_read: int
    frames_scored: int
    frames_dropped: int              # stale frames replaced before they were scored
    image: Any = None                # the frame as captured (for the full-size pane)
    spooled: bool = False            # recorded in the history's spool (the database will get it when it can)


@dataclass(frozen=True)
class Ready:
    """The Inspector is loaded (on the scoring thread)."""

    kind: ClassVar[str] = "ready"
    inspector: Any

    @property
    def payload(self) -> Any:
        return self.inspector


@dataclass(frozen=True)
class Result:
    """A frame was scored and its verdict committed or spooled."""

    kind: ClassVar[str] = "result"
    result: LiveResult

    @property
    def payload(self) -> LiveResult:
        return self.result


@dataclass(frozen=True)
class SourceState:
    """The source's state changed ("running", "reconnecting", "ended", "error") with its last error."""

    kind: ClassVar[str] = "state"
    state: str
    message: str = ""

    @property
    def payload(self) -> tuple[str, str]:
        return self.state, self.message


@dataclass(frozen=True)
class Recording:
    """The history's state: "ok", or "spooling" while ``pending`` verdicts wait in the spool."""

    kind: ClassVar[str] = "recording"
    state: str
    message: str
    pending: int

    @property
    def payload(self) -> tuple[str, str, int]:
        return self.state, self.message, self.pending


@dataclass(frozen=True)
class _Message:
    message: str

    @property
    def payload(self) -> str:
        return self.message


@dataclass(frozen=True)
class FrameError(_Message):
    """One frame was not scored, or its image not kept; the line goes on."""

    kind: ClassVar[str] = "frame_error"


@dataclass(frozen=True)
class Failed(_Message):
    """The line cannot run, or a verdict could not be recorded: the line stops."""

    kind: ClassVar[str] = "failed"


@dataclass(frozen=True)
class InputWarning(_Message):
    """At most once per run: the frames look unlike the bundle's training data (:mod:`inspection_core.drift`)."""

    kind: ClassVar[str] = "input_warning"


@dataclass(frozen=True)
class CameraWarning(_Message):
    """Frames in a row carried no part (camera covered?); ``""`` when a part is seen again."""

    kind: ClassVar[str] = "camera_warning"


@dataclass(frozen=True)
class Ended:
    """The source finished and every frame was handled."""

    kind: ClassVar[str] = "ended"

    @property
    def payload(self) -> None:
        return None


@dataclass(frozen=True)
class Stopped:
    """Both threads ended; always the last event."""

    kind: ClassVar[str] = "stopped"

    @property
    def payload(self) -> None:
        return None


LiveEvent = Ready | Result | SourceState | Recording | FrameError | Failed | InputWarning | CameraWarning | Ended | Stopped

__all__ = ["CameraWarning", "Ended", "Failed", "FrameError", "InputWarning", "LiveEvent", "LiveResult", "Ready",
           "Recording", "Result", "SourceState", "Stopped"]
