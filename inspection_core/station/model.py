"""An exported scoring graph in an ONNX Runtime or OpenVINO session (no torch).

Threads: a station PC runs other software beside the inspection. Spinning
worker threads (ONNX Runtime's default, OpenMP's) collapse when another
process takes a core, so the sessions here are made with spinning off and
at most one thread per core (``INSPECTOR_THREADS`` overrides the count).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from .export_format import ExportError, ExportRecord, read_export

#: the runtimes a station can score with, in the order "auto" tries them per format
RUNTIMES = ("onnxruntime", "openvino")


def available_runtimes() -> tuple[str, ...]:
    """The runtimes installed here."""
    return tuple(r for r in RUNTIMES if importlib.util.find_spec(r) is not None)


def default_threads() -> int:
    """``INSPECTOR_THREADS`` when set, else the CPUs this process may use."""
    env = os.environ.get("INSPECTOR_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def to_input(batch: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S, C) -> float32 (N, C, S, S) in [-1, 1], as the training's ``to_tensor``."""
    arr = np.asarray(batch)
    if arr.ndim != 4 or arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 batch (N, S, S, C), got {arr.dtype} {arr.shape}")
    x = arr.transpose(0, 3, 1, 2).astype(np.float32, order="C")  # one copy, already in the graph's layout
    x /= np.float32(127.5)
    x -= np.float32(1.0)
    return x


def to_image(x: np.ndarray) -> np.ndarray:
    """float (N, C, S, S) in [-1, 1] -> uint8 (N, S, S, C), clamped and rounded."""
    y = np.clip(np.rint((np.asarray(x, dtype=np.float32) + 1.0) * 127.5), 0.0, 255.0).astype(np.uint8)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1))


class ExportedModel:
    """One exported graph, ready to score. ``runtime``: "auto" (ONNX Runtime
    for an ONNX graph, OpenVINO for an IR; ONNX graphs fall back to OpenVINO
    where ONNX Runtime is missing), "onnxruntime" or "openvino"."""

    def __init__(self, export: ExportRecord | str | os.PathLike[str], runtime: str = "auto",
                 threads: int | None = None) -> None:
        self.record = export if isinstance(export, ExportRecord) else read_export(export)
        self.threads = threads or default_threads()
        self.runtime = self._choose(runtime)
        self.outputs = self.record.outputs
        self._run = self._onnxruntime() if self.runtime == "onnxruntime" else self._openvino()

    @property
    def engine(self) -> str:
        """What scores, e.g. "onnxruntime-cpu-fp32"."""
        return f"{self.runtime}-cpu-{self.record.precision}"

    def _choose(self, runtime: str) -> str:
        have = available_runtimes()
        fmt = self.record.format
        if runtime not in ("auto", *RUNTIMES):
            raise ValueError(f"unknown runtime {runtime!r} (known: auto, {', '.join(RUNTIMES)})")
        if runtime == "auto":
            wanted = ("openvino",) if fmt == "openvino" else ("onnxruntime", "openvino")
            for r in wanted:
                if r in have:
                    return r
            raise ExportError(self.record.path, f"its {fmt} graph needs {' or '.join(wanted)}, and neither is installed "
                                                f"on this station (pip install {wanted[0]})")
        if runtime not in have:
            raise ExportError(self.record.path, f"the runtime {runtime} is not installed on this station (pip install {runtime})")
        if runtime == "onnxruntime" and fmt != "onnx":
            raise ExportError(self.record.path, f"ONNX Runtime cannot run a {fmt} graph: export with --format onnx, "
                                                "or score with openvino")
        return runtime

    def _onnxruntime(self) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(self.record.graph), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own classes for a damaged file
            raise ExportError(self.record.path, f"ONNX Runtime cannot load '{self.record.graph.name}' "
                                                f"({str(exc).strip().splitlines()[0][:200]})") from None
        names = [o.name for o in sess.get_outputs()]
        missing = [o for o in self.outputs if o not in names]
        if missing:
            raise ExportError(self.record.path, f"its graph lacks the output(s) {missing}")
        input_name = sess.get_inputs()[0].name

        def run(x: np.ndarray) -> list[np.ndarray]:
            return list(sess.run(list(self.outputs), {input_name: x}))

        return run

    def _openvino(self) -> Any:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        try:
            compiled = core.compile_model(str(self.record.graph), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with long text
            raise ExportError(self.record.path, f"OpenVINO cannot load '{self.record.graph.name}' "
                                                f"({str(exc).strip().splitlines()[0][:200]})") from None
        ports = {}
        for port in compiled.outputs:
            for name in port.get_names():
                ports[name] = port
        missing = [o for o in self.outputs if o not in ports]
        if missing:
            raise ExportError(self.record.path, f"its graph lacks the output(s) {missing}")
        request = compiled.create_infer_request()

        def run(x: np.ndarray) -> list[np.ndarray]:
            result = request.infer({0: x})
            return [np.array(result[ports[o]]) for o in self.outputs]

        return run

    def score(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for float32 (N, C, S, S) in [-1, 1], by name: ``score`` (N,)
        float64, ``anomaly_map`` (N, S, S) float32, and ``reconstruction``
        (N, C, S, S) / ``texture`` (N,) where the graph has them. The graph is
        called on the export's ``chunk`` of images at a time where it has one
        (``export.graphs.graph_chunk``: PatchCore's bank search runs faster
        one image at a time than in large batches)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = self.record.chunk or len(x) or 1
        if len(x) <= step:
            out = dict(zip(self.outputs, self._run(x)))
        else:
            parts = [self._run(x[i : i + step]) for i in range(0, len(x), step)]
            out = {name: np.concatenate([np.asarray(p[j]) for p in parts]) for j, name in enumerate(self.outputs)}
        out["score"] = np.asarray(out["score"], dtype=np.float64).reshape(-1)
        out["anomaly_map"] = np.asarray(out["anomaly_map"], dtype=np.float32).reshape(x.shape[0], *x.shape[-2:])
        return out


def graph_path(path: str | os.PathLike[str]) -> Path:
    """The graph file of the export in folder ``path``."""
    return read_export(path).graph
