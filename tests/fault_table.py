"""Generate ``docs/faults.md``: every bad input and fault the tests try, with its outcome.

The table comes from the tests themselves: each test that tries a fault
carries ``@pytest.mark.fault(area, fault, outcome)`` (registered in
``pyproject.toml``). This script reads those markers from the test files
(without importing them) and writes the table; ``test_fault_table.py`` fails
when the file is out of date.

    python tests/fault_table.py            # write docs/faults.md
    python tests/fault_table.py --check    # exit 1 when docs/faults.md is out of date
    python tests/fault_table.py --run      # also run the marked tests (slow ones too) and append the results
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "faults.md"
AREAS = ("images", "data set", "bundle", "files", "report", "history", "live line", "sources", "inference",
         "training", "cli", "app")
RESULTS_HEADING = "## Last full run"

HEADER = """# Bad inputs and faults, and what happens

Every row is a test that tries the fault and checks the outcome; the table is
generated from the tests' `@pytest.mark.fault(area, fault, outcome)` markers
(`python tests/fault_table.py`; `tests/core/test_fault_table.py` fails when it
is out of date). Rows marked *slow* run with `pytest -m slow`, the others in
the default run (CI). `python tests/fault_table.py --run` runs every row and
appends the results below the table.

A station runs unattended: the rule behind every row is that a bad input or a
fault ends in one clear message that names the file or the source, and that
nothing is lost (a verdict shown is a verdict recorded, a file is written
whole or not at all, a file never runs code).
"""


@dataclass(frozen=True)
class Row:
    area: str
    fault: str
    outcome: str
    test: str  # path::name
    slow: bool


def _literal(node: ast.expr) -> str:
    value = ast.literal_eval(node)
    if not isinstance(value, str):
        raise ValueError("fault marker arguments must be string literals")
    return value


def _is_mark(dec: ast.expr, name: str) -> ast.Call | None:
    call = dec if isinstance(dec, ast.Call) else None
    target = call.func if call is not None else dec
    if isinstance(target, ast.Attribute) and target.attr == name and isinstance(target.value, ast.Attribute) \
            and target.value.attr == "mark":
        return call if call is not None else ast.Call(func=target, args=[], keywords=[])
    return None


def _module_slow(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            if any(_is_mark(v, "slow") for v in values):
                return True
    return False


def collect(root: Path = ROOT) -> list[Row]:
    """Every marked test, in area order, then file and line order."""
    rows: list[tuple[int, str, int, Row]] = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module_slow = _module_slow(tree)
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            slow = module_slow or any(_is_mark(d, "slow") for d in node.decorator_list)
            for dec in node.decorator_list:
                call = _is_mark(dec, "fault")
                if call is None:
                    continue
                area, fault, outcome = (_literal(a) for a in call.args)
                if area not in AREAS:
                    raise ValueError(f"{rel}::{node.name}: unknown area {area!r}; use one of {', '.join(AREAS)}")
                row = Row(area, fault, outcome, f"{rel}::{node.name}", slow)
                rows.append((AREAS.index(area), rel, node.lineno, row))
    return [r for *_k, r in sorted(rows, key=lambda t: t[:3])]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row]) -> str:
    out = [HEADER, f"{len(rows)} faults, in {len({r.area for r in rows})} areas.\n"]
    for area in AREAS:
        mine = [r for r in rows if r.area == area]
        if not mine:
            continue
        out.append(f"\n## {area}\n\n| bad input or fault | what happens | test |\n|---|---|---|")
        for r in mine:
            test = f"`{r.test}`" + (" *slow*" if r.slow else "")
            out.append(f"| {_cell(r.fault)} | {_cell(r.outcome)} | {test} |")
    return "\n".join(out) + "\n"


def table_part(text: str) -> str:
    return text.split(f"\n{RESULTS_HEADING}", 1)[0]


def run_tests(rows: list[Row]) -> str:
    """Run every marked test (slow ones too); a results section in Markdown."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "fault", "-p", "no:cacheprovider", f"--junitxml={xml}",
               *sorted({r.test.split("::")[0] for r in rows})]
        subprocess.run(cmd, cwd=ROOT)
        outcome: dict[str, str] = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = case.get("name", "").split("[")[0]
            path = case.get("classname", "").replace(".", "/") + ".py"
            key = f"{path}::{name}"
            status = ("failed" if case.find("failure") is not None or case.find("error") is not None
                      else "skipped: " + (case.find("skipped").get("message", "") if case.find("skipped") is not None
                                          else "") if case.find("skipped") is not None else "passed")
            if outcome.get(key, "passed") == "passed":
                outcome[key] = status
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "?"
    counts = {s: sum(1 for r in rows if outcome.get(r.test, "not run").startswith(s))
              for s in ("passed", "failed", "skipped", "not run")}
    lines = [f"\n{RESULTS_HEADING}\n", f"{_dt.date.today().isoformat()}, commit {commit}: "
             + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".\n"]
    odd = [r for r in rows if outcome.get(r.test, "not run") != "passed"]
    if odd:
        lines.append("| test | result |\n|---|---|")
        lines += [f"| `{r.test}` | {_cell(outcome.get(r.test, 'not run'))} |" for r in odd]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when docs/faults.md is out of date")
    p.add_argument("--run", action="store_true", help="run the marked tests and append the results")
    args = p.parse_args(argv)
    rows = collect()
    text = render(rows)
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if table_part(current) != table_part(text):
            print(f"{DOC.relative_to(ROOT)} is out of date: run python tests/fault_table.py", file=sys.stderr)
            return 1
        return 0
    if args.run:
        text += run_tests(rows)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}: {len(rows)} faults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
