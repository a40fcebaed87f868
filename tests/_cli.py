"""The command line run in-process, as tests call it (a plain module, imported by name)."""

from __future__ import annotations

import pytest


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``inspector ARGS`` in this process: (exit status, stdout, stderr)."""
    from inspection_core.cli.main import main

    try:
        rc = main(list(args))
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err
