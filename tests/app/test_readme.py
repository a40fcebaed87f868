"""The README's first hour holds: its first command installs what the app
names when a library is missing, CI runs its test command and its
fresh-machine step, and its command-line recipe leaves the checkout clean.
It speaks to users: no development history, and every file it names exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str) -> str:
    """The first ```bash block after ``heading``."""
    rest = README[README.index(heading):]
    return re.search(r"```bash\n(.*?)```", rest, re.S).group(1)


def test_the_first_command_installs_what_the_app_names() -> None:
    """The apt-get line installs the package the start-up check names for each library a stock
    Debian/Ubuntu system lacks, and the Python venv module; .ci/fresh-debian runs exactly this line."""
    pytest.importorskip("PySide6")
    from app.syscheck import PACKAGES

    first = _block_after("## Fresh machine").strip().splitlines()
    assert len(first) == 1 and first[0].startswith("sudo apt-get install -y ")
    assert [line for line in README.splitlines() if line.startswith("sudo apt-get install")] == first  # what CI greps
    packages = set(first[0].split()[4:])
    assert "python3-venv" in packages
    for soname in ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-image.so.0",
                   "libxcb-render-util.so.0", "libxkbcommon-x11.so.0"):
        assert PACKAGES[soname][0] in packages, soname
    fedora = re.search(r"Fedora: `sudo dnf install ([^`]+)`", README).group(1).split()
    for soname in ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"):
        assert PACKAGES[soname][1] in fedora, soname


def test_ci_runs_the_readme_test_command_and_the_fresh_machine_step() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = _block_after("Set up and run the tests").strip().split("&& ")[-1]
    env, _, command = test_command.partition(" .venv/")
    assert f"export {env}" in ci and f".venv/{command}" in ci
    assert ".ci/fresh-debian" in ci and (ROOT / ".ci" / "fresh-debian").is_file()
    step = (ROOT / ".ci" / "fresh-debian").read_text(encoding="utf-8")
    for package in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"):
        assert package in step


def test_the_command_line_recipe_leaves_the_checkout_clean() -> None:
    """Everything the five steps write is under runs/, which git ignores; the bundle is named without its suffix."""
    recipe = _block_after("### The command line in five steps")
    written = set(re.findall(r"(?:--out|--report|--maps|demo-data)\s+(\S+)", recipe))
    assert written and all(w.startswith("runs/") for w in written), written
    assert "--bundle runs/demo " in recipe and ".inspector" not in recipe
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for w in (*written, "runs/demo.inspector"):
        res = subprocess.run(["git", "check-ignore", "-q", w], cwd=ROOT)
        assert res.returncode == 0, f"{w} would be left untracked in the checkout"


def test_the_readme_tells_no_development_history() -> None:
    """Measurement history belongs in docs/ (dated results); the README says what is true now."""
    for pattern in (r"\bstop \d+", r"\bissue \d+", r"\bthe issue\b", r"\bstop-\d+"):
        found = re.findall(rf".{{0,40}}{pattern}.{{0,40}}", README, re.I)
        assert not found, found


def test_every_script_and_document_it_names_exists_and_every_benchmark_is_named() -> None:
    layout = README[README.index("## Project layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    bench = re.search(r"benchmarks/\s+(.*?)\ndocs/", layout, re.S).group(1)
    named = set(re.findall(r"(\w+\.py)", bench))
    shipped = {p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert named == shipped, f"README's layout names {sorted(named)}, benchmarks/ holds {sorted(shipped)}"
    for path in set(re.findall(r"\]\(((?:docs|models)/[^)#]+)\)", README)) | set(
            re.findall(r"`((?:docs|benchmarks|models|packaging|tests)/[\w./-]+\.(?:md|py|png))`", README)):
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"
