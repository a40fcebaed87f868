"""The backbone names a family's parameters may choose, without torch
(``inspection_core.backbones.BACKBONES`` holds the networks; a test checks
that the two agree)."""

BACKBONE_NAMES = ("mobilenet_v2", "resnet18", "wide_resnet50_2", "vgg16")
