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
