"""The station runtime (inspection_core/station): exported models without PyTorch.

Exports themselves (every family, parity) are tested in test_export.py; here:
what a station does with a folder it is given, and that it needs no torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inspection_core.station import ExportError, is_export_dir, open_inspector, read_export

ROOT = Path(__file__).resolve().parents[2]

#: a sys.meta_path finder that makes torch and torchvision unimportable, as on a station build
BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"No module named {name!r} (blocked: a station without PyTorch)")
    sys.meta_path.insert(0, _NoTorch())
""")


def _manifest(folder: Path, **export: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"format": "onnx", "file": "model.onnx", "outputs": ["score", "anomaly_map"], "threshold": {"high": 1.0}}
    rec.update(export)
    (folder / "manifest.json").write_text(json.dumps({"format": "inspector-export", "format_version": 1,
                                                      "bundle": {}, "export": rec}))
    return folder


@pytest.mark.parametrize("make, problem", [
    (lambda p: p, "not found"),
    (lambda p: (p.write_text("x"), p)[1], "is a file"),
    (lambda p: (p.mkdir(), p)[1], "has no manifest.json"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{not json"), p)[2], "unreadable"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text('{"format": "inspector-export", "format_version": 9, '
                                                              '"bundle": {}, "export": {}}'), p)[2],
     "newer than this station reads"),
    (lambda p: _manifest(p, format="tflite"), "unknown graph format 'tflite'"),
    (lambda p: _manifest(p), "graph file 'model.onnx' is missing"),
    (lambda p: (_manifest(p, chunk=0), (p / "model.onnx").write_bytes(b"x"), p)[2], "chunk 0: expected a positive"),
])
def test_a_folder_that_is_not_a_usable_export_is_refused_by_name(tmp_path: Path, make, problem: str) -> None:
    folder = make(tmp_path / "export")
    with pytest.raises(ExportError) as err:
        read_export(folder)
    assert str(folder) in str(err.value) and problem in str(err.value)


def test_a_folder_without_a_manifest_is_not_opened_as_a_bundle(tmp_path: Path) -> None:
    assert not is_export_dir(tmp_path)
    with pytest.raises(ExportError, match="without an exported model's manifest.json"):
        open_inspector(tmp_path)


def test_a_bundle_on_a_station_without_torch_says_to_export_it(tiny_bundle: Path) -> None:
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from inspection_core.station import open_inspector, torch_available
        assert not torch_available()
        try:
            open_inspector({str(tiny_bundle)!r})
        except ValueError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no PyTorch" in out.stdout and "inspector export --bundle" in out.stdout and tiny_bundle.name in out.stdout


@pytest.fixture(scope="module")
def exported(tiny_bundle: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspection_core.usecases.export import export

    out = tmp_path_factory.mktemp("station") / "tiny-onnx"
    export(tiny_bundle, "onnx", out, images=demo_data)
    return out


def _rows(csv_path: Path) -> dict[str, tuple[float, str]]:
    import csv

    with open(csv_path, newline="") as fh:
        return {r["path"]: (float(r["score"]), r["verdict"]) for r in csv.DictReader(fh)}


def test_inspector_predict_scores_an_exported_model_without_torch(exported: Path, tiny_bundle: Path,
                                                                  demo_data: Path, tmp_path: Path) -> None:
    """The station's path: `inspector predict --bundle EXPORT` in a process where torch cannot be
    imported gives the verdicts PyTorch gives on the bundle (each at its own threshold)."""
    test = demo_data / "test"
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from inspection_core.cli.main import main
        rc = main(["predict", "--bundle", {str(exported)!r}, {str(test)!r}, "--csv", {str(tmp_path / "station.csv")!r}])
        assert "torch" not in sys.modules
        raise SystemExit(rc)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    from inspection_core.cli.main import main

    assert main(["predict", "--bundle", str(tiny_bundle), str(test), "--csv", str(tmp_path / "torch.csv")]) == 0
    station, ref = _rows(tmp_path / "station.csv"), _rows(tmp_path / "torch.csv")
    assert station.keys() == ref.keys() and len(station) > 20
    differ = [p for p in ref if station[p][1] != ref[p][1]]
    assert len(differ) <= 0.005 * len(ref), differ
    for p, (score, _v) in ref.items():
        assert station[p][0] == pytest.approx(score, rel=1e-3, abs=1e-6)


def test_the_station_reads_the_exports_own_threshold_and_the_bundles_identity(exported: Path, tiny_bundle: Path) -> None:
    from inspection_core.bundle import load_manifest

    insp = open_inspector(exported)
    rec = json.loads((exported / "manifest.json").read_text())["export"]
    assert insp.threshold.high == pytest.approx(rec["threshold"]["high"])
    assert insp.bundle_id == load_manifest(tiny_bundle).bundle_id
    assert insp.engine.startswith("onnxruntime")
