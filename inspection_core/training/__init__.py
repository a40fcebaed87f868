"""Plain training loops that report progress and honour cancellation."""

from .loops import TrainingError
from .trainer import TrainResult, train

__all__ = ["TrainResult", "TrainingError", "train"]
