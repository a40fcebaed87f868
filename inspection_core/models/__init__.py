"""Detector networks, one file per family, and their registry."""

from .base import Detector, ScoreOutput
from .registry import available_models, build_model, check_model_config, model_class, register

__all__ = ["Detector", "ScoreOutput", "available_models", "build_model", "check_model_config", "model_class", "register"]
