"""The ``inspector`` command line."""
