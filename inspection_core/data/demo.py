"""A synthetic data set of machined washers, so the app can be tried without data.

Every part is a metallic ring with a hole on a darker textured background,
lit by a soft gradient, with fine concentric machining marks, and small
part-to-part variation (position jitter of a few pixels, rotation of the
texture, brightness, sensor noise). Defective parts carry one of four defects,
each drawn on the part with a hard edge so that the ground-truth mask is
exactly the set of pixels the defect changed:

* ``scratch``: a thin bright or dark curved line across the ring,
* ``dent``: a dark elliptical blotch with a bright rim,
* ``stain``: a translucent discoloured (rust or oil) blob,
* ``missing``: a notch bitten out of the outer edge, showing the background.

Output is deterministic: the same seed gives byte-identical PNG files
(numpy ``Generator(PCG64(seed))``, nothing time-based) on one kind of CPU.
Across kinds a pixel may differ by one: numpy's float32 ``arctan2`` rounds
differently with AVX512 than with AVX2 (at seed 0, size 128, one value of one
training image; docs/results-demo.md). Computing it in float64 would remove
that, but would change the images, and with them the shipped demo model's
recorded figures.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_write_text
from .images import write_image

DEFECT_TYPES: tuple[str, ...] = ("scratch", "dent", "stain", "missing")
_README_MARKER = "Inspector synthetic demo data set"

# Colour tints in BGR order.
_STEEL = np.array([0.97, 1.0, 1.03], dtype=np.float32)
_BENCH = np.array([1.10, 1.0, 0.90], dtype=np.float32)
_STAIN_COLOURS = (
    np.array([25.0, 55.0, 125.0], dtype=np.float32),  # rust
    np.array([75.0, 50.0, 30.0], dtype=np.float32),  # dark oil
)
_LIGHT_DIR = np.float32(-2.3)  # light from the upper left (radians, image axes)


@dataclass(frozen=True)
class PartParams:
    """One washer's pose and look (everything that varies between good parts)."""

    cx: float
    cy: float
    r_out: float
    r_in: float
    rotation: float
    brightness: float
    bg_brightness: float
    noise_seed: int


class _Grid:
    """Pixel coordinate grids for one image size (reused across parts)."""

    def __init__(self, size: int) -> None:
        self.size = size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.xx, self.yy = xx, yy
        s = np.float32(size)
        # A soft linear light gradient from the upper left.
        self.gradient = ((s - xx) + (s - yy)) / (2 * s) - 0.5


def _random_part(rng: np.random.Generator, size: int) -> PartParams:
    k = size / 128.0
    return PartParams(
        cx=size / 2 + rng.uniform(-3.0, 3.0) * k,
        cy=size / 2 + rng.uniform(-3.0, 3.0) * k,
        r_out=size * 0.36 * rng.uniform(0.985, 1.015),
        r_in=size * 0.16 * rng.uniform(0.985, 1.015),
        rotation=float(rng.uniform(0.0, 2 * np.pi)),
        brightness=float(rng.uniform(0.9, 1.1)),
        bg_brightness=float(rng.uniform(0.85, 1.15)),
        noise_seed=int(rng.integers(0, 2**63 - 1)),
    )


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1] (a small random grid, upsampled)."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * np.float32(0.6)


@dataclass
class _Clean:
    img: np.ndarray  # float32 BGR (S, S, 3), defect-free, before sensor noise
    cov: np.ndarray  # ring coverage in [0, 1] (anti-aliased edges)
    bench: np.ndarray  # float32 BGR background (with the part's shadow) everywhere
    rng: np.random.Generator  # the part's noise stream, at the same state with or without a defect


def _render_clean(p: PartParams, g: _Grid) -> _Clean:
    """A defect-free part, before sensor noise."""
    rng = np.random.Generator(np.random.PCG64(p.noise_seed))
    s = g.size
    f = np.float32
    dx, dy = g.xx - f(p.cx), g.yy - f(p.cy)
    r = np.sqrt(dx * dx + dy * dy)
    th = np.arctan2(dy, dx)

    # Background: dark bench with blotches and fine grain, darkened by the part's shadow.
    bg = f(58.0 * p.bg_brightness) + 9.0 * _smooth_noise(rng, s, 6) + 3.0 * _smooth_noise(rng, s, max(8, s // 4))
    bg = bg + 3.0 * rng.standard_normal((s, s)).astype(f) + 30.0 * g.gradient
    off = f(2.5 * s / 128.0)
    sdx, sdy = dx - off, dy - off
    rs = np.sqrt(sdx * sdx + sdy * sdy)
    soft = f(max(1.5, 3.0 * s / 128.0))
    shadow = np.clip((f(p.r_out) + 1 - rs) / soft + 0.5, 0, 1) * np.clip((rs - f(p.r_in) + 1) / soft + 0.5, 0, 1)

    # Ring: rounded radial profile, lighting, bevels and concentric machining marks.
    width = f(p.r_out - p.r_in)
    u = np.clip((r - f(p.r_in)) / width, 0, 1)
    ring = f(150.0 * p.brightness) * (1 - 0.18 * (2 * u - 1) ** 2)
    ring = ring + 45.0 * g.gradient + 18.0 * np.cos(th - _LIGHT_DIR)
    period = f(max(1.6, s / 55.0))
    ring = ring + 7.0 * np.sin(2 * np.pi * r / period + 1.7 * np.sin(th - f(p.rotation)))
    ring = ring + 6.0 * np.cos(2 * (th - f(p.rotation))) * u  # slight anisotropic sheen that turns with the part
    bevel = f(max(1.2, 2.2 * s / 128.0))
    ring = ring - 45.0 * np.clip(1 - (f(p.r_out) - r) / bevel, 0, 1)
    ring = ring + 40.0 * np.clip(1 - (r - f(p.r_in)) / bevel, 0, 1) * np.cos(th - _LIGHT_DIR + np.pi)
    cov = np.clip(f(p.r_out) - r + 0.5, 0, 1) * np.clip(r - f(p.r_in) + 0.5, 0, 1)

    bench = (bg * (1 - 0.45 * shadow))[:, :, None] * _BENCH
    img = bench * (1 - cov)[:, :, None] + (ring * cov)[:, :, None] * _STEEL
    # Where a notch removes metal, the bench is only lightly shadowed.
    open_bench = (bg * (1 - 0.15 * shadow))[:, :, None] * _BENCH
    return _Clean(img.astype(f), cov, open_bench.astype(f), rng)


def _point_on_ring(rng: np.random.Generator, p: PartParams, margin: float) -> tuple[float, float, float]:
    """A random point on the ring at least ``margin`` px inside its edges: (x, y, angle)."""
    rad = rng.uniform(p.r_in + margin, max(p.r_in + margin + 1e-3, p.r_out - margin))
    ang = rng.uniform(0.0, 2 * np.pi)
    return p.cx + rad * np.cos(ang), p.cy + rad * np.sin(ang), ang


def _apply_defect(kind: str, c: _Clean, p: PartParams, g: _Grid, rng: np.random.Generator) -> np.ndarray:
    """Draw one defect into ``c.img`` (in place) and return its mask (bool, changed pixels)."""
    img, cov = c.img, c.cov
    s = g.size
    f = np.float32
    on_part = cov >= 0.5
    if kind == "scratch":
        x0, y0, ang = _point_on_ring(rng, p, 0.35 * (p.r_out - p.r_in))
        direction = ang + np.pi / 2 + rng.uniform(-0.6, 0.6)  # roughly tangential
        length = rng.uniform(0.38, 0.5) * s
        bend = rng.uniform(-0.06, 0.06) * s
        t = np.linspace(-0.5, 0.5, 12)
        px = x0 + t * length * np.cos(direction) - bend * np.sin(np.pi * (t + 0.5)) * np.sin(direction)
        py = y0 + t * length * np.sin(direction) + bend * np.sin(np.pi * (t + 0.5)) * np.cos(direction)
        line = np.zeros((s, s), np.uint8)
        pts = np.round(np.stack([px, py], axis=1) * 16).astype(np.int32)
        thickness = max(1, int(round(s / 64.0)) + int(rng.integers(0, 2)))
        cv2.polylines(line, [pts], False, 1, thickness=thickness, lineType=cv2.LINE_8, shift=4)
        mask = (line > 0) & on_part
        value = f(rng.uniform(225, 250)) if rng.random() < 0.6 else f(rng.uniform(35, 60))
        img[mask] = value * _STEEL
        return mask
    if kind == "dent":
        x0, y0, _ = _point_on_ring(rng, p, 0.5 * (p.r_out - p.r_in))
        a = rng.uniform(0.055, 0.075) * s
        b = a * rng.uniform(0.55, 0.8)
        phi = rng.uniform(0.0, np.pi)
        dx, dy = g.xx - f(x0), g.yy - f(y0)
        u = (dx * f(np.cos(phi)) + dy * f(np.sin(phi))) / f(a)
        v = (-dx * f(np.sin(phi)) + dy * f(np.cos(phi))) / f(b)
        e = u * u + v * v
        rim_w = 1.0 + max(1.0, 2.0 * s / 128.0) / min(a, b)
        core = (e <= 1.0) & on_part
        rim = (e > 1.0) & (e <= rim_w * rim_w) & on_part
        depth = (0.35 + 0.25 * np.sqrt(np.clip(e, 0, 1)))[:, :, None]  # darkest in the middle
        img[core] = (img * depth)[core]
        # The rim catches the light on the side facing it and is shaded on the other.
        facing = np.cos(np.arctan2(g.yy - f(y0), g.xx - f(x0)) - _LIGHT_DIR)
        lift = np.where(facing > -0.2, 60.0 + 40.0 * facing, -45.0).astype(f)[:, :, None]
        img[rim] = np.clip(img + lift, 0.0, 255.0)[rim]
        return core | rim
    if kind == "stain":
        x0, y0, _ = _point_on_ring(rng, p, 0.4 * (p.r_out - p.r_in))
        field = np.zeros((s, s), np.float32)
        for _ in range(int(rng.integers(3, 6))):
            sx, sy = x0 + rng.normal(0, 0.035 * s), y0 + rng.normal(0, 0.035 * s)
            sigma = f(rng.uniform(0.035, 0.055) * s)
            field += np.exp(-((g.xx - f(sx)) ** 2 + (g.yy - f(sy)) ** 2) / (2 * sigma * sigma))
        mask = (field > 0.5) & on_part
        alpha = np.clip(0.6 + 0.25 * (field - 0.5), 0.6, 0.8)[:, :, None]
        colour = _STAIN_COLOURS[int(rng.integers(0, len(_STAIN_COLOURS)))]
        stained = img * (1 - alpha) + colour * alpha
        img[mask] = stained[mask]
        return mask
    if kind == "missing":
        ang = rng.uniform(0.0, 2 * np.pi)
        rn = rng.uniform(0.10, 0.13) * s
        depth = rng.uniform(0.0, 0.2) * rn
        nx, ny = p.cx + (p.r_out + depth) * np.cos(ang), p.cy + (p.r_out + depth) * np.sin(ang)
        notch = (g.xx - f(nx)) ** 2 + (g.yy - f(ny)) ** 2 <= f(rn * rn)
        mask = notch & (cov > 0)
        img[mask] = c.bench[mask]  # the bench shows through the notch
        return mask
    raise ValueError(f"unknown defect type {kind!r}; known: {', '.join(DEFECT_TYPES)}")


def render_part(
    p: PartParams,
    size: int,
    channels: int = 3,
    defect: str | None = None,
    defect_seed: int = 0,
    grid: _Grid | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one part as uint8 (S, S, 3) BGR or (S, S) gray, plus its bool defect mask.

    The same ``p`` with and without ``defect`` gives images that differ only
    inside the mask (the sensor noise is the same), which tests rely on.
    """
    g = grid if grid is not None and grid.size == size else _Grid(size)
    c = _render_clean(p, g)
    img, rng = c.img, c.rng
    mask = np.zeros((size, size), bool)
    if defect is not None:
        mask = _apply_defect(defect, c, p, g, np.random.Generator(np.random.PCG64(defect_seed)))
    if channels == 1:
        img = img @ np.array([0.114, 0.587, 0.299], dtype=np.float32)
        img = img + 2.5 * rng.standard_normal(img.shape).astype(np.float32)
    else:
        img = img + 2.5 * rng.standard_normal(img.shape).astype(np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), mask


def _prepare_out(out: Path) -> None:
    """Create ``out``; clear an earlier demo set there; refuse to mix with other files."""
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"cannot write the demo data set to '{out}': it is a file")
        readme = out / "README.txt"
        if readme.is_file() and _README_MARKER in readme.read_text(encoding="utf-8", errors="replace"):
            for sub in ("train", "test", "ground_truth"):
                shutil.rmtree(out / sub, ignore_errors=True)
        elif any(out.iterdir()):
            raise FileExistsError(
                f"cannot write the demo data set to '{out}': the folder is not empty (choose an empty or new folder)"
            )
    out.mkdir(parents=True, exist_ok=True)


def make_demo_dataset(
    out: str | os.PathLike[str],
    seed: int = 0,
    size: int = 128,
    n_train: int = 120,
    n_test_good: int = 30,
    n_test_defect_per_type: int = 10,
    channels: int = 3,
) -> Path:
    """Write a synthetic MVTec-layout washer data set to ``out`` and return its path.

    ``train/good``, ``test/good``, ``test/<type>`` and
    ``ground_truth/<type>/<name>_mask.png`` (binary 0/255) for the types in
    ``DEFECT_TYPES``; PNG files named 000.png, 001.png, ...
    """
    if not 16 <= size <= 4096:
        raise ValueError(f"demo image size must be between 16 and 4096 px, got {size}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if min(n_train, n_test_good, n_test_defect_per_type) < 0 or n_train < 1:
        raise ValueError("image counts must be non-negative, with at least one training image")
    out = Path(out)
    _prepare_out(out)
    rng = np.random.Generator(np.random.PCG64(seed))
    g = _Grid(size)

    def write_good(folder: Path, n: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, _ = _render(rng, g, channels, None)
            write_image(folder / f"{i:03d}.png", img, fsync=False)

    write_good(out / "train" / "good", n_train)
    write_good(out / "test" / "good", n_test_good)
    for kind in DEFECT_TYPES:
        img_dir, gt_dir = out / "test" / kind, out / "ground_truth" / kind
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        for i in range(n_test_defect_per_type):
            img, mask = _render(rng, g, channels, kind)
            write_image(img_dir / f"{i:03d}.png", img, fsync=False)
            write_image(gt_dir / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255, fsync=False)
    _write_readme(out, seed, size, channels, n_train, n_test_good, n_test_defect_per_type)
    return out


def _render(rng: np.random.Generator, g: _Grid, channels: int, defect: str | None) -> tuple[np.ndarray, np.ndarray]:
    p = _random_part(rng, g.size)
    defect_seed = int(rng.integers(0, 2**63 - 1)) if defect else 0
    return render_part(p, g.size, channels, defect, defect_seed, grid=g)


def _write_readme(out: Path, seed: int, size: int, channels: int, n_train: int, n_good: int, n_def: int) -> None:
    text = f"""{_README_MARKER}

Synthetic "machined washers": a metallic ring with a hole on a darker textured
bench, lit from the upper left, with concentric machining marks and small
part-to-part variation (position, texture rotation, brightness, sensor noise).

Generated by inspection_core.data.demo.make_demo_dataset(seed={seed}, size={size},
channels={channels}); the same arguments give byte-identical files.

Layout (MVTec AD):
  train/good/NNN.png                    {n_train} defect-free parts
  test/good/NNN.png                     {n_good} defect-free parts
  test/<type>/NNN.png                   {n_def} parts per defect type
  ground_truth/<type>/NNN_mask.png      binary masks (255 = pixels the defect changed)

Defect types:
  scratch  thin bright or dark curved line across the ring
  dent     dark elliptical blotch with a bright rim
  stain    translucent rust or oil blob
  missing  notch bitten out of the ring's outer edge
"""
    atomic_write_text(out / "README.txt", text, fsync=False)
