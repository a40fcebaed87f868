"""Build the frozen Inspector application and its archive: ``python packaging/build.py``.

One command for every platform:

1. renders ``resources/icon.svg`` to a PNG and an ICO (with PySide6);
2. runs PyInstaller on ``packaging/inspector.spec`` -> ``packaging/dist/inspector-app/``;
3. packs it: ``inspector-VERSION-linux-x86_64.tar.gz`` on Linux; on Windows a
   zip, and the Inno Setup installer when ``iscc`` is found;
4. writes ``packaging/dist/build-info.json`` (version, sizes, seconds).

``--target station`` builds the operator station without PyTorch instead
(``packaging/station.spec`` -> ``packaging/dist/inspector-station/``,
``inspector-station-VERSION-…`` archives, ``build-info-station.json``): first
it exports ``models/demo.inspector`` to ONNX with this machine's torch
(``inspector export``, parity checked) and ships that folder as the station's
demo model; ``--demo-export DIR`` ships an export made before instead, and
``--openvino`` adds OpenVINO.

Options: ``--no-archive`` (CI runs only the self-test), ``--full`` (no
exclusions: to measure what the lean build saves), ``--keep-work`` (keep
PyInstaller's intermediate folder). The version comes from
``inspection_core.__version__`` only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from spec_common import read_version  # packaging/spec_common.py, shared with the specs (no torch at build start)

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "inspector.spec"
APP_NAME = "inspector-app"
#: each target: its spec, its folder in dist/, its archive's stem, its build-info file
TARGETS = {
    "app": {"spec": PACKAGING / "inspector.spec", "name": "inspector-app", "stem": "inspector",
            "info": "build-info.json"},
    "station": {"spec": PACKAGING / "station.spec", "name": "inspector-station", "stem": "inspector-station",
                "info": "build-info-station.json"},
}
#: the exported demo model's folder name (app.station.DEMO_EXPORT_NAME)
DEMO_EXPORT_NAME = "demo-onnx"
DESKTOP_ENTRY = """[Desktop Entry]
Type=Application
Name=Inspector
Comment=Visual quality inspection of manufactured parts
Exec={exe}
Icon={icon}
Terminal=false
Categories=Graphics;Science;Engineering;
"""


def platform_tag() -> str:
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform.rstrip("0123456789"))
    machine = platform.machine().lower().replace("amd64", "x86_64")
    return f"{system}-{machine}"


def render_icons(out_dir: Path) -> tuple[Path, Path]:
    """resources/icon.svg -> icon.png (256 px) and icon.ico (16-256 px)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    svg = ROOT / "resources" / "icon.svg"
    if not svg.is_file():
        raise SystemExit(f"icon {svg} is missing")
    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - Qt needs an application to paint
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"icon {svg} is not a valid SVG file")
    out_dir.mkdir(parents=True, exist_ok=True)
    img = QImage(256, 256, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    painter = QPainter(img)
    renderer.render(painter)
    painter.end()
    png, ico = out_dir / "icon.png", out_dir / "icon.ico"
    if not img.save(str(png)):
        raise SystemExit(f"cannot write {png}")
    try:  # Pillow (a torchvision dependency) writes a multi-size .ico
        from PIL import Image

        Image.open(png).save(ico, sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    except ImportError:
        img.save(str(ico))
    return png, ico


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def make_demo_export(out_root: Path, prebuilt: Path | None) -> Path:
    """The station's demo model: ``models/demo.inspector`` exported to ONNX
    with this machine's torch (``inspector export``, which checks verdict
    parity on the demo's calibration images and writes nothing when it
    fails), or ``prebuilt`` (an export folder made before) copied. Returns
    ``out_root`` holding ``demo-onnx/`` (replaced only once the new one is made)."""
    stage = out_root.with_name(out_root.name + ".new")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    target = stage / DEMO_EXPORT_NAME
    if prebuilt is not None:
        if not (prebuilt / "manifest.json").is_file():
            raise SystemExit(f"--demo-export {prebuilt}: not an exported model's folder (no manifest.json)")
        shutil.copytree(prebuilt, target)
        print(f"demo model: {prebuilt} (made before)", flush=True)
    else:
        from app.demo import make_calibration_data  # the demo's own calibration set (seed 1), generated again

        images = stage.with_name("demo-calibration")
        shutil.rmtree(images, ignore_errors=True)
        make_calibration_data(images)  # parity is checked on it
        bundle = ROOT / "models" / "demo.inspector"
        cmd = [sys.executable, "-m", "inspection_core.cli.main", "export", "--bundle", str(bundle), "--format", "onnx",
               "--out", str(target), "--images", str(images)]
        print("+", " ".join(cmd), flush=True)
        result = subprocess.run(cmd, cwd=ROOT)
        shutil.rmtree(images, ignore_errors=True)
        if result.returncode != 0 or not (target / "manifest.json").is_file():
            raise SystemExit(f"exporting the demo model failed (exit code {result.returncode}); see its output above")
    shutil.rmtree(out_root, ignore_errors=True)
    os.replace(stage, out_root)
    return out_root


def run_pyinstaller(dist: Path, work: Path, icon: Path, lean: bool, spec: Path = SPEC,
                    extra_env: dict[str, str] | None = None) -> None:
    env = dict(os.environ, INSPECTOR_ICON=str(icon), INSPECTOR_LEAN="1" if lean else "0", **(extra_env or {}))
    cmd = [sys.executable, "-m", "PyInstaller", str(spec), "--noconfirm",
           "--distpath", str(dist), "--workpath", str(work), "--log-level", "WARN"]
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"PyInstaller failed (exit code {result.returncode}); see its output above")


def add_linux_extras(app_dir: Path, png: Path) -> None:
    """Icon and a .desktop file (paths relative to where the archive is unpacked: fix with install.sh)."""
    name = app_dir.name
    shutil.copyfile(png, app_dir / "inspector.png")
    entry = DESKTOP_ENTRY.format(exe=f"/opt/{name}/{name}", icon=f"/opt/{name}/inspector.png")
    if name != APP_NAME:
        entry = entry.replace("Name=Inspector\n", "Name=Inspector Station\n")
    (app_dir / "inspector.desktop").write_text(entry, encoding="utf-8")


def make_tar_gz(app_dir: Path, target: Path) -> Path:
    tmp = target.with_name(target.name + ".part")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        tar.add(app_dir, arcname=app_dir.name)
    os.replace(tmp, target)
    return target


def make_zip(app_dir: Path, target: Path) -> Path:
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for p in sorted(app_dir.rglob("*")):
            if p.is_file():
                zf.write(p, Path(app_dir.name) / p.relative_to(app_dir))
    os.replace(tmp, target)
    return target


def find_iscc() -> str | None:
    for cand in (os.environ.get("ISCC"), shutil.which("iscc"), shutil.which("ISCC"),
                 r"C:\Program Files (x86)\Inno Setup 6\ISCC.exe", r"C:\Program Files\Inno Setup 6\ISCC.exe"):
        if cand and Path(cand).is_file():
            return cand
    return None


def make_installer(app_dir: Path, out_dir: Path, version: str, icon: Path) -> Path | None:
    iscc = find_iscc()
    if iscc is None:
        print("Inno Setup (iscc) not found: installer skipped; the zip is complete", flush=True)
        return None
    script = PACKAGING / "windows" / "inspector.iss"
    cmd = [iscc, f"/DAppVersion={version}", f"/DSourceDir={app_dir}", f"/DOutputDir={out_dir}",
           f"/DIconFile={icon}", str(script)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return out_dir / f"inspector-{version}-setup.exe"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--no-archive", action="store_true", help="build the folder only (no .tar.gz / zip / installer)")
    p.add_argument("--full", action="store_true", help="no exclusions (to measure what the lean build saves)")
    p.add_argument("--keep-work", action="store_true", help="keep PyInstaller's intermediate folder")
    p.add_argument("--dist", type=Path, default=PACKAGING / "dist", help="output folder (default packaging/dist)")
    p.add_argument("--target", choices=sorted(TARGETS), default="app",
                   help="app: the full application (default); station: the operator station without PyTorch")
    p.add_argument("--demo-export", type=Path, metavar="DIR",
                   help="station: ship this exported demo model (a folder made by 'inspector export') instead of "
                        "exporting models/demo.inspector now")
    p.add_argument("--openvino", action="store_true", help="station: ship OpenVINO too (scores OpenVINO IR exports)")
    args = p.parse_args(argv)
    target = TARGETS[args.target]
    station = args.target == "station"
    if not station and (args.demo_export or args.openvino):
        p.error("--demo-export and --openvino apply to --target station")
    if station and args.full:
        p.error("--full applies to the app target (the station is always lean)")

    version = read_version()
    dist: Path = args.dist.resolve()
    work = PACKAGING / "build" / ("pyinstaller-station" if station else "pyinstaller")
    t0 = time.monotonic()
    png, ico = render_icons(PACKAGING / "build")
    extra_env: dict[str, str] = {}
    if station:
        models = make_demo_export(PACKAGING / "build" / "station-models", args.demo_export)
        extra_env = {"INSPECTOR_STATION_MODELS": str(models), "INSPECTOR_STATION_OPENVINO": "1" if args.openvino else "0"}
    run_pyinstaller(dist, work, ico if sys.platform.startswith("win") else png, lean=not args.full,
                    spec=target["spec"], extra_env=extra_env)
    build_s = time.monotonic() - t0
    app_dir = dist / target["name"]
    if sys.platform.startswith("linux"):
        add_linux_extras(app_dir, png)
    unpacked = folder_size(app_dir)
    info: dict[str, object] = {
        "target": args.target, "version": version, "platform": platform_tag(), "lean": not args.full,
        "app_dir": str(app_dir), "build_s": round(build_s, 1), "unpacked_bytes": unpacked,
    }
    if station:
        info["openvino"] = bool(args.openvino)
    print(f"built {app_dir} in {build_s:.0f} s: {unpacked / 1e6:.0f} MB unpacked", flush=True)

    if not args.no_archive:
        t1 = time.monotonic()
        stem = f"{target['stem']}-{version}-{platform_tag()}"
        if sys.platform.startswith("win"):
            archive = make_zip(app_dir, dist / f"{stem}.zip")
            installer = None if station else make_installer(app_dir, dist, version, ico)
            info["installer"] = str(installer) if installer else None
        else:
            archive = make_tar_gz(app_dir, dist / f"{stem}.tar.gz")
        info.update(archive=str(archive), archive_bytes=archive.stat().st_size,
                    archive_s=round(time.monotonic() - t1, 1))
        print(f"archive {archive}: {archive.stat().st_size / 1e6:.0f} MB in {info['archive_s']} s", flush=True)

    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    (dist / target["info"]).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
