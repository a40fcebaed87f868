"""Imports the built-in model families so that they register themselves."""

from . import bigan, ganomaly, patchcore, skip_ganomaly, vgg16  # noqa: F401
