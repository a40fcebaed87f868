"""Icons and style sheets shipped with the application (read via importlib.resources)."""
