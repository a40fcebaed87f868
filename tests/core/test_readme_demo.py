"""README's five command-line steps give the figures README's table gives for
this machine's CPU class.

The demo recipe trains in fp32 on one thread with a fixed seed, yet its
figures depend on the CPU class: oneDNN and ATen pick other kernels on AVX2
than on AVX512, which sum in another order, and 210 GAN updates carry the
last-bit differences into other weights (measured: docs/results-demo.md). So
README gives one row per CPU class, and this test runs the five steps as
README writes them (its bash block: the same commands, environment prefixes
included, in a temporary folder) and compares what they wrote (the bundle's
manifest, the evaluation report, predict's CSV; never the printed wording)
with the row of this machine's class. A class without a row is skipped,
saying which class it is.

Another CPU class can be tried on this machine where the CPU has it, e.g. AVX2
on an AVX512 machine::

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m pytest -m slow tests/core/test_readme_demo.py
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
STEPS_HEADING = "### The command line in five steps"
TABLE_HEADER = "| CPU class |"
CLI = "import sys; from inspection_core.cli.main import main; sys.exit(main())"


# ----------------------------------------------------------------- README
def readme_steps(text: str) -> list[tuple[dict[str, str], list[str]]]:
    """The five steps of README's bash block: (environment prefix, arguments after ``inspector``)."""
    rest = text[text.index(STEPS_HEADING):]
    block = re.search(r"```bash\n(.*?)```", rest, re.S).group(1).replace("\\\n", " ")
    steps = []
    for command in block.split("&&"):
        words = shlex.split(command)
        env = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        assert words and words[0].endswith("inspector"), command
        steps.append((env, words[1:]))
    return steps


def readme_rows(text: str) -> dict[str, dict[str, str]]:
    """README's table of the demo's figures, by CPU class (its first column's
    first word: ``AVX512-BF16``, ``AVX2``)."""
    lines = text[text.index(TABLE_HEADER):].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        row = dict(zip(header, cells))
        rows[row["CPU class"].split()[0]] = row
    return rows


def _figure(row: dict[str, str], column_start: str) -> str:
    cells = [v for k, v in row.items() if k.startswith(column_start)]
    assert len(cells) == 1, f"README's table has no single column starting '{column_start}': {list(row)}"
    return cells[0]


def _count_of(cell: str) -> tuple[int, int]:
    m = re.search(r"(\d+) of (\d+)", cell)
    assert m, f"'{cell}' is not 'N of M'"
    return int(m.group(1)), int(m.group(2))


# ----------------------------------------------------------------- CPU class
def cpu_class() -> tuple[str | None, str]:
    """This process's CPU class as README's table names it, or None, with a description.

    AVX512-BF16: ATen's AVX512 kernels, oneDNN with native bf16, no AMX (AMX
    changes oneDNN's kernels again). AVX2: ATen's AVX2 kernels on a CPU
    without AVX512, or on an AVX512 CPU whose oneDNN is held to AVX2 too
    (``ONEDNN_MAX_CPU_ISA=AVX2``: the emulation README's AVX2 row was measured with).
    """
    import torch

    from inspection_core.acceleration import cpu_has_native_bf16

    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, "no /proc/cpuinfo to read the CPU's flags from"
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    capability = torch.backends.cpu.get_cpu_capability()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    described = (f"ATen {capability}, oneDNN limit {onednn or 'none'}, native bf16 {cpu_has_native_bf16()}, "
                 f"AVX512 {'avx512f' in flags}, AVX512-BF16 {'avx512_bf16' in flags}, AMX {'amx_tile' in flags}")
    if capability == "AVX2" and ("avx512f" not in flags or onednn == "AVX2"):
        return "AVX2", described
    if (capability == "AVX512" and not onednn and "avx512_bf16" in flags and "amx_tile" not in flags
            and cpu_has_native_bf16()):
        return "AVX512-BF16", described
    return None, described


# ----------------------------------------------------------------- the test
def test_readme_parses_into_five_steps_and_a_row_per_class() -> None:
    text = README.read_text(encoding="utf-8")
    steps = readme_steps(text)
    assert [args[0] for _, args in steps] == ["demo-data", "train", "calibrate", "evaluate", "predict"]
    assert steps[1][0].get("OMP_NUM_THREADS") == "1", "the figures hold for one training thread"
    rows = readme_rows(text)
    assert {"AVX512-BF16", "AVX2"} <= set(rows), list(rows)
    for row in rows.values():
        assert re.fullmatch(r"0\.\d{3}", _figure(row, "train")), row
        assert _count_of(_figure(row, "calibrate: good"))[1] == 30
        assert _count_of(_figure(row, "calibrate: defects"))[1] == 40


@pytest.mark.slow
def test_the_five_steps_give_readmes_figures_for_this_cpu_class(tmp_path: Path) -> None:
    import torch

    from inspection_core.bundle import read_manifest

    text = README.read_text(encoding="utf-8")
    cls, described = cpu_class()
    rows = readme_rows(text)
    if cls is None or cls not in rows:
        pytest.skip(f"README has no row for this CPU ({described}); its rows: {', '.join(rows)}")
    row = rows[cls]
    if torch.__version__.split("+")[0] != row["torch"]:
        pytest.skip(f"README's {cls} row was measured with torch {row['torch']}, this is {torch.__version__}")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    seen: dict[str, object] = {}
    for step_env, args in readme_steps(text):
        if args[0] == "predict":
            args = [*args, "--csv", "runs/predict.csv"]  # the verdicts as data, whatever the printed wording
        res = subprocess.run([sys.executable, "-c", CLI, *args], cwd=tmp_path, env={**env, **step_env},
                             capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, f"inspector {args[0]} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        bundle = tmp_path / "runs" / "demo.inspector"
        if args[0] == "train":
            seen["train"] = read_manifest(bundle)["metrics"]["image_auroc"]
        elif args[0] == "calibrate":
            op = read_manifest(bundle)["calibration"]["operating_point"]
            seen["good rejected"] = (op["fp"], op["n_good"])
            seen["defects passed"] = (op["fn"], op["n_defect"])
        elif args[0] == "evaluate":
            metrics = json.loads((tmp_path / "runs" / "demo-report" / "metrics.json").read_text(encoding="utf-8"))
            seen["evaluate"] = metrics["image_auroc"]
            seen["evaluate counts"] = ((metrics["confusion"]["fp"], metrics["n_good"]),
                                       (metrics["confusion"]["fn"], metrics["n_defect"]))
        elif args[0] == "predict":
            with open(tmp_path / "runs" / "predict.csv", newline="", encoding="utf-8") as f:
                verdicts = [r["verdict"] for r in csv.DictReader(f)]
            seen["predict"] = (verdicts.count("FAIL"), len(verdicts))

    want = {
        "train": _figure(row, "train"),
        "good rejected": _count_of(_figure(row, "calibrate: good")),
        "defects passed": _count_of(_figure(row, "calibrate: defects")),
        "evaluate": _figure(row, "evaluate"),
        "predict": _count_of(_figure(row, "predict")),
    }
    got = {
        "train": f"{seen['train']:.3f}",
        "good rejected": seen["good rejected"],
        "defects passed": seen["defects passed"],
        "evaluate": f"{seen['evaluate']:.3f}",
        "predict": seen["predict"],
    }
    assert got == want, f"README's {cls} row ({described}) against what the five steps wrote"
    # evaluate scores at the threshold calibrate chose, on the same images: the same counts
    assert seen["evaluate counts"] == (seen["good rejected"], seen["defects passed"])
