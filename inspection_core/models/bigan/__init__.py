"""BiGAN / ALI with a WGAN-GP joint critic (GANspection variant); see ``model.py``."""

from ..schema import Family
from .params import PRESETS, SCHEMA, check

FAMILY = Family("bigan", SCHEMA, PRESETS, "inspection_core.models.bigan.model:BiGAN", check=check,
                summary="BiGAN encoder and generator; the map compares x and G(E(x))")
