"""A supervised transfer classifier (VGG16 by default) with class
activation maps; see ``model.py``."""

from ..schema import Family
from .params import PRESETS, SCHEMA, check

FAMILY = Family("vgg16", SCHEMA, PRESETS, "inspection_core.models.vgg16.model:VGG16Classifier", check=check,
                summary="supervised good/defective classifier; needs defective training images")
