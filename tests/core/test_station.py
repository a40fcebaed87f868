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
