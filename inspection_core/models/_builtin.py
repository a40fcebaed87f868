"""Imports the built-in model families so that they register themselves."""

import importlib

for _mod in ("ganomaly", "skip_ganomaly", "bigan", "vgg16"):
    try:
        importlib.import_module(f"{__package__}.{_mod}")
    except ModuleNotFoundError as exc:  # a family not written yet
        if exc.name != f"{__package__}.{_mod}":
            raise
