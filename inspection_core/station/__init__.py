"""The operator station's runtime: scores exported models without PyTorch.

An exported model (``inspector export``, :mod:`inspection_core.export`) is a
folder holding the scoring graph (ONNX, or OpenVINO IR) and ``manifest.json``:
the bundle's manifest and the export's record (format, its own threshold, the
parity figures). This package runs it with ONNX Runtime or OpenVINO, numpy and
OpenCV only; nothing here imports torch, so a station build can leave PyTorch
out (``packaging/station.spec``).

- :class:`ExportedModel`: the graph in a session; float32 (N, C, S, S) in
  [-1, 1] in, scores and anomaly maps out.
- :class:`StationInspector`: what the CLI's ``predict``, the live line and the
  Inspect view use, with the same surface as :class:`inspection_core.inference.Inspector`
  for scoring (``predict``, ``predict_batch``, ``check_frame``, ``threshold``…).
- :func:`open_inspector`: an exported folder gives a :class:`StationInspector`; a
  ``.inspector`` bundle gives the PyTorch Inspector where torch is installed,
  and a clear message where it is not.
"""

from .export_format import EXPORT_FORMAT, ExportError, ExportRecord, is_export_dir, read_export
from .model import RUNTIMES, ExportedModel, available_runtimes
from .inspector import StationInspector, open_inspector, torch_available

__all__ = [
    "EXPORT_FORMAT", "ExportError", "ExportRecord", "is_export_dir", "read_export", "RUNTIMES", "ExportedModel",
    "available_runtimes", "StationInspector", "open_inspector", "torch_available",
]
