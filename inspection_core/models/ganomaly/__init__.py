"""GANomaly (Akcay et al., ACCV 2018): an encoder-decoder-encoder trained
adversarially on good parts; see ``model.py``."""

from ..schema import Family
from .params import PRESETS, SCHEMA, check

FAMILY = Family("ganomaly", SCHEMA, PRESETS, "inspection_core.models.ganomaly.model:Ganomaly", check=check,
                summary="encoder-decoder-encoder GAN; the map compares x and its reconstruction")
