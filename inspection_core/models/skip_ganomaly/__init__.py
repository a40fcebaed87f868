"""Skip-GANomaly (Akcay et al., IJCNN 2019): a U-Net generator trained
adversarially on good parts; see ``model.py``."""

from ..schema import Family
from .params import PRESETS, SCHEMA, check

FAMILY = Family("skip-ganomaly", SCHEMA, PRESETS, "inspection_core.models.skip_ganomaly.model:SkipGanomaly",
                check=check, summary="U-Net GAN; the map compares x and its reconstruction")
