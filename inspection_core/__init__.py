"""Inspector's inspection core: data, models, training, calibration and inference.

This package never imports Qt; the desktop application in ``app`` builds on it.
"""

__version__ = "0.1.0"
