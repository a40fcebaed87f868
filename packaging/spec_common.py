"""What both PyInstaller specs share (``inspector.spec``: the full
application; ``station.spec``: the operator station without PyTorch).

Imported by the specs at build time only (``packaging/`` is on their path).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_version() -> str:
    """inspection_core.__version__, read without importing the package."""
    tree = ast.parse((ROOT / "inspection_core" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise SystemExit("inspection_core/__init__.py defines no __version__")


# (pyqtgraph imports QtOpenGL and QtOpenGLWidgets when it is imported: they stay.)
UNUSED_QT = [
    "Qt3DAnimation", "Qt3DCore", "Qt3DExtras", "Qt3DInput", "Qt3DLogic", "Qt3DRender",
    "QtAxContainer", "QtBluetooth", "QtCanvasPainter", "QtCharts", "QtConcurrent", "QtDataVisualization",
    "QtDBus", "QtDesigner", "QtGraphs", "QtGraphsWidgets", "QtHelp", "QtHttpServer", "QtLocation",
    "QtMultimedia", "QtMultimediaWidgets", "QtNetworkAuth", "QtNfc",
    "QtPdf", "QtPdfWidgets", "QtPositioning", "QtPrintSupport", "QtQml", "QtQuick", "QtQuick3D",
    "QtQuickControls2", "QtQuickTest", "QtQuickWidgets", "QtRemoteObjects", "QtScxml", "QtSensors",
    "QtSerialBus", "QtSerialPort", "QtSpatialAudio", "QtSql", "QtStateMachine", "QtTest",
    "QtTextToSpeech", "QtUiTools", "QtWebChannel", "QtWebEngineCore", "QtWebEngineQuick",
    "QtWebEngineWidgets", "QtWebSockets", "QtWebView", "QtXml",
]
EXCLUDES = [f"PySide6.{m}" for m in UNUSED_QT] + [
    # other GUI toolkits and frameworks that hooks or optional imports drag in
    "tkinter", "_tkinter", "PyQt5", "PyQt6", "PySide2", "IPython", "jupyter", "notebook", "ipykernel",
    # matplotlib: only inspection_core.report (the CLI's HTML report) uses it, the app never does
    "matplotlib",
    # torch.compile's GPU code generator (900 MB with its CUDA tools); eager torch never needs it
    "triton",
    # torch extras the application does not use
    "torch.utils.tensorboard", "tensorboard", "torch.utils.benchmark",
    "caffe2", "pyqtgraph.opengl", "pyqtgraph.examples", "pyqtgraph.jupyter",
    # test suites shipped inside packages
    "sklearn.tests", "scipy.tests", "numpy.tests", "pytest", "_pytest", "pytestqt",
]

# Qt plugins are chosen in packaging/hooks (hook-PySide6.QtGui.py,
# hook-PySide6.QtNetwork.py), before the binary dependency analysis, so the
# libraries the dropped plugins need stay out too. What still leaks in through
# links between Qt libraries is removed with keep() (with its top-level symlinks).
UNUSED_QT_LIBS = ("WebEngine", "Quick", "Qml", "3D", "Pdf", "Multimedia", "Designer", "VirtualKeyboard",
                  "Wayland", "Wl", "Charts", "DataVisualization", "Graphs")


def keep(entry: tuple) -> bool:
    """False for a collected file (or symlink to one) the lean application does not need."""
    dest, src, typecode = entry[0].replace("\\", "/"), str(entry[1]).replace("\\", "/"), entry[2]
    names = [dest.rsplit("/", 1)[-1]] + ([src.rsplit("/", 1)[-1]] if typecode == "SYMLINK" else [])
    for name in names:
        if name.startswith(tuple(f"{p}Qt6{m}" for p in ("lib", "") for m in UNUSED_QT_LIBS)):
            return False
    return "/translations/qtwebengine" not in dest and "/resources/qtwebengine" not in dest


def openvino_binaries() -> list[tuple[str, str]]:
    """OpenVINO's CPU plugin, its IR and ONNX readers and their threading
    libraries (no GPU/NPU plugin, no reader of other frameworks' models).
    OpenVINO loads them by name at run time, so PyInstaller sees none of
    them. Empty where OpenVINO is not installed."""
    try:
        import openvino
    except ImportError:
        return []
    libs = Path(openvino.__file__).parent / "libs"
    wanted = ("libopenvino.so", "libopenvino_intel_cpu_plugin", "libopenvino_ir_frontend", "libopenvino_onnx_frontend",
              "libtbb", "libhwloc", "openvino.dll", "openvino_intel_cpu_plugin", "openvino_ir_frontend",
              "openvino_onnx_frontend", "tbb")
    return [(str(p), "openvino/libs") for p in sorted(libs.iterdir()) if p.is_file() and p.name.startswith(wanted)]


#: what OpenVINO's Python package imports for other frameworks' models (or its telemetry): never needed here
OPENVINO_EXTRAS = ["openvino.frontend.pytorch", "openvino.frontend.tensorflow", "openvino.frontend.paddle",
                   "openvino.frontend.jax", "openvino.tools", "openvino_telemetry"]
