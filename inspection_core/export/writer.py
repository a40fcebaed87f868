"""Write a bundle's scoring graph as an exported-model folder, checked.

:func:`export_bundle` traces the family's whole scoring graph
(:func:`.graphs.scoring_graph`) with PyTorch's TorchScript ONNX exporter
(``torch.onnx.export(..., dynamo=False)``, opset :data:`OPSET`; input
``image`` float32 (N, C, S, S) in [-1, 1] with a dynamic N; outputs
``score``, ``anomaly_map`` and, where the family produces them,
``reconstruction`` and ``texture``). For OpenVINO the ONNX graph is converted
(``openvino.convert_model``, saved with ``compress_to_fp16=False``) so that
the names stay. The folder's ``manifest.json`` is the contract with the
station (:mod:`inspection_core.station.export_format`): the bundle's manifest
unchanged, and the export's record with the graph's own threshold.

Everything is built in a temporary folder beside the destination; the
exported graph is scored there by the station's runtime and compared with
the PyTorch reference (:mod:`.parity`). Only an export that holds the rule is
moved into place (a rename; an earlier export in that folder is replaced as
a whole); one that does not raises :class:`ExportFailure` with its figures
and leaves nothing behind.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_folder, file_sha256
from ..fidelity_rule import MAX_AUROC_DELTA, MAX_VERDICT_CHANGES, Fidelity
from ..station.export_format import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, GRAPH_FILES, MANIFEST_FILE
from .parity import check_parity, exported_scores, reference_scores, threshold_rule, transferred_threshold

log = logging.getLogger(__name__)

#: the formats ``inspector export`` writes
FORMATS = tuple(GRAPH_FILES)
#: the ONNX opset the graphs are written in
OPSET = 17
#: the opset of the dynamo exporter (used where the TorchScript exporter cannot trace)
DYNAMO_OPSET = 18
#: the package each format's parity check (and station) runs it with
RUNTIME_PACKAGE = {"onnx": "onnxruntime", "openvino": "openvino"}


class ExportFailure(ValueError):
    """An export that could not be made or did not hold its parity check
    (``fidelity``: the check's figures, when it ran)."""

    def __init__(self, message: str, fidelity: Fidelity | None = None) -> None:
        super().__init__(message)
        self.fidelity = fidelity


@dataclass
class ExportResult:
    """A written export: its folder, manifest and parity figures."""

    folder: Path
    manifest: dict[str, Any]
    fidelity: Fidelity


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportFailure(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def runtime_versions(fmt: str) -> dict[str, str]:
    """The versions of what writes and runs ``fmt``; :class:`ExportFailure`,
    one line, when a package is not installed here."""
    check_format(fmt)
    needed = ["torch", "onnx", RUNTIME_PACKAGE[fmt]]
    versions = {}
    for name in needed:
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            raise ExportFailure(f"--format {fmt} needs the Python package '{name}', which cannot be imported here "
                                f"({exc}); install it (pip install {name}) or choose the other format") from None
        versions[name] = str(getattr(mod, "__version__", "?"))
    return versions


def _trace_onnx(graph: Any, example: Any, path: Path) -> str:
    """``graph`` written to ``path`` as ONNX; returns the exporter used.

    The TorchScript exporter (``dynamo=False``, opset :data:`OPSET`) first:
    it traces in seconds. Where it cannot (a traced shape reaching a Python
    number, as the reconstructing families' SSIM map and top-k map score
    do), the dynamo exporter (``torch.export``, opset :data:`DYNAMO_OPSET`),
    where only the batch is symbolic."""
    import torch

    names = list(graph.output_names)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it keeps as constants
        try:
            torch.onnx.export(graph, (example,), str(path), input_names=["image"], output_names=names,
                              dynamic_axes={"image": {0: "n"}, **{name: {0: "n"} for name in names}},
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
            return f"torch.onnx TorchScript exporter, opset {OPSET}"
        except (TypeError, RuntimeError, ValueError) as exc:  # SymbolicValueError is a RuntimeError
            log.info("the TorchScript exporter cannot trace this graph (%s); using the dynamo exporter",
                     (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200])
        path.unlink(missing_ok=True)
        batch = torch.export.Dim("n", min=1, max=4096)
        torch.onnx.export(graph, (example,), str(path), input_names=["image"], output_names=names,
                          dynamic_shapes={"image": {0: batch}}, opset_version=DYNAMO_OPSET, dynamo=True,
                          external_data=False, verbose=False)
        return f"torch.onnx dynamo exporter, opset {DYNAMO_OPSET}"


def write_graph(model: Any, channels: int, size: int, fmt: str, folder: Path) -> tuple[str, tuple[str, ...], str]:
    """The model's scoring graph written into ``folder`` in ``fmt``; returns
    the graph's file name, its outputs and the exporter used."""
    import torch

    from .graphs import scoring_graph

    graph = scoring_graph(model, channels, size)
    names = tuple(graph.output_names)
    onnx_path = folder / GRAPH_FILES["onnx"]
    example = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2.0 - 1.0
    exporter = _trace_onnx(graph, example, onnx_path)
    if fmt == "onnx":
        return onnx_path.name, names, exporter
    import openvino as ov

    ir = folder / GRAPH_FILES["openvino"]
    ov.save_model(ov.convert_model(str(onnx_path)), str(ir), compress_to_fp16=False)
    onnx_path.unlink()
    return ir.name, names, exporter + ", converted by openvino.convert_model"


def export_manifest(bundle: Any, fmt: str, file: str, outputs: tuple[str, ...], threshold: dict[str, Any],
                    parity: dict[str, Any], versions: dict[str, str], chunk: int | None = None) -> dict[str, Any]:
    """The folder's ``manifest.json`` (the contract with the station).
    ``chunk``: images per call of the graph (the family's CPU chunk; None: a whole batch)."""
    path = Path(bundle.path) if bundle.path is not None else None
    source = {"bundle_id": bundle.bundle_id, "file": path.name if path else None,
              "sha256": file_sha256(path) if path and path.is_file() else None}
    return {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "bundle": bundle.manifest,
            "export": {"format": fmt, "file": file, "precision": "fp32", "input": "image", "outputs": list(outputs),
                       "chunk": chunk, "threshold": threshold, "parity": parity, "source": source,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions}}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)),
                    encoding="utf-8")


def check_destination(out: Path) -> None:
    """Refuse a destination that holds something other than an earlier export."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportFailure(f"'{out}' is a file; give a folder for the export (--out DIR)")
    if any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise ExportFailure(f"'{out}' is a folder with other files in it (no exported model's {MANIFEST_FILE}); "
                            "give a new or empty folder")
    if (out / MANIFEST_FILE).is_file():
        try:
            fmt = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if fmt != EXPORT_FORMAT:
            raise ExportFailure(f"'{out}' holds a {MANIFEST_FILE} that is not an exported model's; "
                                "give a new or empty folder")


def export_bundle(bundle: Any, fmt: str, out: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray,
                  source: str, *, batch_size: int = 16) -> ExportResult:
    """Export ``bundle`` (a loaded :class:`~inspection_core.bundle.Bundle`) to
    folder ``out`` in ``fmt``, checked on ``images`` (prepared uint8
    (N, S, S, C)) with ``labels`` (0 good, 1 defective); ``source`` says
    where the images came from (recorded). See the module docstring."""
    versions = runtime_versions(fmt)
    out = Path(out)
    check_destination(out)
    if len(images) == 0:
        raise ExportFailure("no images to check the export on")
    labels = np.asarray(labels, int)
    pp = bundle.preprocessing
    from .graphs import graph_chunk

    model = bundle.build_model("cpu")
    chunk = graph_chunk(model, int(pp.image_size))
    with atomic_folder(out, may_replace=lambda _p: True) as tmp:  # check_destination has judged `out`
        try:
            file, outputs, exporter = write_graph(model, int(pp.channels), int(pp.image_size), fmt, tmp)
        except ExportFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - the exporter's and converter's own errors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportFailure(f"the {bundle.model_config.model} scoring graph could not be written as {fmt} "
                                f"({type(exc).__name__}: {first})") from exc
        # the station reads the folder; the bundle's threshold stands in until the check gives this graph's own
        _write_json(tmp / MANIFEST_FILE, export_manifest(bundle, fmt, file, outputs, bundle.threshold.to_dict(), {},
                                                         {**versions, "exporter": exporter}, chunk))
        exp, engine = exported_scores(tmp, images, batch_size)
        ref, base = reference_scores(bundle, images, batch_size)
        rule, rule_text = threshold_rule(bundle.meta, labels)
        n_good, n_defect = int((labels == 0).sum()), int((labels == 1).sum())
        fid = check_parity(ref, exp, labels, rule, precision="fp32", engine=engine,
                           checked_on=f"{len(labels)} images ({n_good} good, {n_defect} defective; {source}); "
                                      f"threshold: {rule_text}")
        fid.extra["images"] = {"n": len(labels), "good": n_good, "defective": n_defect, "source": source}
        if not fid.ok:
            raise ExportFailure(f"the {fmt} export does not hold its parity check, nothing was written: "
                                f"{describe(fid)}", fid)
        threshold = transferred_threshold(base, fid)
        fid.extra["threshold_basis"] = {
            "bundle_fp32": base.to_dict(), "written": threshold.to_dict(),
            "how": "the bundle's threshold (PyTorch fp32 path) moved by this graph's own threshold minus PyTorch's, "
                   "each chosen by the rule on the check's images"}
        manifest = export_manifest(bundle, fmt, file, outputs, threshold.to_dict(), fid.to_dict(),
                                   {**versions, "exporter": exporter}, chunk)
        _write_json(tmp / MANIFEST_FILE, manifest)
    return ExportResult(out, manifest, fid)


def describe(fid: Fidelity) -> str:
    """The check's figures in one line."""
    auc = ("" if fid.auroc is None or fid.auroc_fp32 is None
           else f"image AUROC {fid.auroc_fp32:.4f} (PyTorch) vs {fid.auroc:.4f} (export), ")
    return (f"{auc}{fid.changed} of {fid.n} verdicts differ ({fid.changed_rate:.1%}); worst score difference "
            f"{fid.max_rel:.2e} relative (median {fid.median_rel:.1e}); limits: AUROC within {MAX_AUROC_DELTA:g}, "
            f"at most {MAX_VERDICT_CHANGES:.1%} of verdicts; checked on {fid.checked_on}")


__all__ = ["FORMATS", "OPSET", "ExportFailure", "ExportResult", "check_destination", "check_format", "describe",
           "export_bundle", "export_manifest", "runtime_versions", "write_graph"]
