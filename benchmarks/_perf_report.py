"""The performance benchmark's report (benchmarks/perf.py): the machine line,
the rows as they are measured (printed as a table, kept for --json) and the
load average printed with every figure."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def machine_line() -> str:
    import torch

    from inspection_core.acceleration import cpu_bf16_is_fast, cpu_bf16_speedup, cpu_has_native_bf16

    info: dict[str, str] = {}  # the first CPU's fields
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or platform.machine()
    # bf16 matrix units (Sapphire Rapids and later): the same code is several times faster there,
    # so figures from machines with and without them are not comparable
    amx = f"  AMX {'yes' if 'amx_bf16' in info['flags'].split() else 'no'}" if "flags" in info else ""
    return (f"# perf  torch {torch.__version__}  {cpu}  {os.cpu_count()} cpus  threads {torch.get_num_threads()}{amx}  "
            f"native bf16 {'yes' if cpu_has_native_bf16() else 'no'}"
            + (f" (convolutions {cpu_bf16_speedup():.2f}x fp32: "
               f"{'the fast path' if cpu_bf16_is_fast() else 'not used by default'})"
               if cpu_has_native_bf16() else "") + f"  {load_text()}")


class Report:
    """Collects rows; prints each as it is measured."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.bundle = ""  # the bundle the next rows are measured on

    def add(self, section: str, name: str, value: float, unit: str, ref: float | None = None,
            higher_better: bool = False, target: str = "", **extra: Any) -> None:
        ratio = None
        if ref:
            ratio = value / ref if higher_better else ref / value
        row = {"bundle": self.bundle, "section": section, "name": name, "value": round(value, 3), "unit": unit,
               "x_vs_fp32": None if ratio is None else round(ratio, 2), "target": target, "load": load_text(), **extra}
        self.rows.append(row)
        r = f"{ratio:5.2f}x" if ratio is not None else "     "
        more = "  ".join(f"{k}={v}" for k, v in extra.items())
        print(f"{section:<9} {name:<44} {value:9.2f} {unit:<6} {r}  {target:<14} {more}", flush=True)

    def header(self) -> None:
        """The column names of the rows :meth:`add` prints."""
        print(f"{'section':<9} {'figure':<44} {'value':>9} {'unit':<6} {'ratio':>6}  {'target':<14} details")


def inspector_command() -> list[str]:
    """The ``inspector`` command of this environment, as a user runs it."""
    exe = Path(sys.executable).with_name("inspector")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "inspection_core.cli.main"]


def median_ms(fn: Callable[[], Any], n: int, warmup: int = 3) -> tuple[float, float, float]:
    """Median, 90th percentile and best of ``n`` timed calls, in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))], times[0]
