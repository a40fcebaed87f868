"""Exported models: a bundle's whole scoring graph as ONNX or OpenVINO IR,
for the operator station that runs without PyTorch (:mod:`inspection_core.station`).

``inspector export --bundle B --format onnx|openvino --out DIR`` writes::

    DIR/manifest.json    the bundle's manifest, unchanged, and the export's record
    DIR/model.onnx       or DIR/model.xml + DIR/model.bin

- :mod:`.graphs`: each family's scoring graph as one traceable module:
  ``image`` float32 (N, C, S, S) in [-1, 1] (any N) in; ``score``,
  ``anomaly_map`` and, where the family has them, ``reconstruction`` and
  ``texture`` out. PatchCore's memory-bank search is inside the graph,
  batched (a matrix product per block of the bank, then the minimum).
- :mod:`.parity`: the check before anything is written: the images scored by
  the PyTorch reference (plain fp32) and by the exported graph in the
  station's runtime, each path with its own threshold by the bundle's rule,
  image AUROC within 0.005 and at most 0.5 % of verdicts different (the rule
  the fast scoring paths follow, :mod:`inspection_core.fidelity_rule`).
- :mod:`.writer`: tracing (TorchScript exporter, opset 17; the dynamo
  exporter, opset 18, for a graph the tracer cannot take), the OpenVINO
  conversion, the manifest and the atomic move into place.

Which images the check uses is the use case's choice
(:mod:`inspection_core.usecases.export`). The threshold written is the
bundle's (the PyTorch fp32 path's) moved by the difference between the two
paths' own thresholds on those images, so that a check on images other than
the calibration's does not change the operating point.
"""
