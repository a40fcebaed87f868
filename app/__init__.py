"""Inspector's desktop application (PySide6). Start it with ``inspector-app``
or ``python -m app``; everything it computes comes from ``inspection_core``."""
