"""The core stays a library: no Qt, ever."""

import subprocess
import sys


def test_core_imports_without_qt() -> None:
    code = (
        "import sys, inspection_core.cli.main, inspection_core.inference, inspection_core.training, "
        "inspection_core.evaluation, inspection_core.bundle, inspection_core.models as m; m.available_models();"
        "import importlib;"
        "[importlib.import_module('inspection_core.' + n) for n in ('calibration', 'history', 'sources', 'report', "
        "'selection', 'usecases.training', 'usecases.evaluate', 'usecases.calibrate', 'usecases.live', "
        "'usecases.fidelity')];"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('PySide6', 'pyqtgraph', 'app', 'shiboken6')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
#: the most lines a module outside the tests may have (a longer one has two jobs)
MAX_MODULE_LINES = 500


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles of a module graph (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_anywhere() -> None:
    """Imports inside functions count too (grimp reads every import statement)."""
    import grimp

    g = grimp.build_graph("inspection_core", "app", cache_dir=None)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself


def test_no_module_is_over_500_lines() -> None:
    long = {}
    for folder in ("inspection_core", "app", "benchmarks", "packaging"):
        for path in (ROOT / folder).rglob("*.py"):
            if "dist" in path.parts or "build" in path.parts:
                continue
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_MODULE_LINES:
                long[str(path.relative_to(ROOT))] = n
    assert long == {}
