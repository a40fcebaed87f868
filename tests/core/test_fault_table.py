"""docs/faults.md is generated from the tests' fault markers and stays current."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_fault_table_is_current_and_covers_issue_13() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import fault_table

    rows = fault_table.collect()
    assert fault_table.main(["--check"]) == 0, "run: python tests/fault_table.py"
    assert len({r.test for r in rows}) == len(rows), "one marker per test"
    text = " ".join(f"{r.fault} {r.outcome}" for r in rows).lower()
    for what in ("3 gib", "negative camera", "decoded images held at once", "full disk", "kill -9", "mix gray and colour", "another program",
                 "batch-size", "latent size", "lock", "wal", "read-only", "multi-page tiff", "truncated avi",
                 "broken symbolic link", "stalls", "hypothesis", "pickle", "../", "newer", "nan", "ctrl-c",
                 "concurrent writers", "password", "2000 scorings", "1×1"):
        assert what in text, f"no test tries: {what}"
