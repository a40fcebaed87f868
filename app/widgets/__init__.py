"""Reusable widgets: image panes, the verdict banner (plots live in ``plots.py``)."""
