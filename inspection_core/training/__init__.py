"""Plain training loops that report progress and honour cancellation."""

from .trainer import TrainingError, TrainResult, train

__all__ = ["TrainResult", "TrainingError", "train"]
