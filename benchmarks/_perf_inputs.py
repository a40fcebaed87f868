"""The performance benchmark's inputs (benchmarks/perf.py): generated parts,
a folder of test images, a video of them and a quick bundle trained on them."""

from __future__ import annotations

import os
from pathlib import Path


def video_label(video: Path) -> str:
    """'30 fps 256x256 video': what a live or app figure was measured on."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return f"{cap.get(cv2.CAP_PROP_FPS):g} fps {w}x{h} video"
    finally:
        cap.release()


def make_inputs(work: Path, size: int, frame_size: tuple[int, int] = (256, 256), fps: float = 30.0) -> dict[str, Path]:
    """Generated parts (256 px frames, so preprocessing resizes), a folder of
    test images and a 30 fps video of them (its frames resized to ``frame_size``,
    e.g. 1600x1200 for a camera-sized stream; ``fps`` for a slower line)."""
    import cv2

    from inspection_core.data.demo import make_demo_dataset
    from inspection_core.data.images import list_images, read_image

    demo = work / "demo"
    if not demo.is_dir():
        make_demo_dataset(demo, seed=3, size=256, n_train=96, n_test_good=40, n_test_defect_per_type=6)
    frames = [read_image(p) for p in list_images(demo / "train" / "good")]
    tag = "" if (frame_size, fps) == ((256, 256), 30.0) else f"_{frame_size[0]}x{frame_size[1]}_{fps:g}fps"
    video = work / f"parts{tag}.avi"
    if not video.is_file():
        vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), fps, frame_size)
        for i in range(300):
            f = frames[i % len(frames)]
            vw.write(f if f.shape[1::-1] == frame_size else cv2.resize(f, frame_size, interpolation=cv2.INTER_LINEAR))
        vw.release()
    return {"demo": demo, "video": video, "frame": demo / "test" / "good" / sorted(os.listdir(demo / "test" / "good"))[0]}


def quick_bundle(work: Path, demo: Path, size: int) -> Path:
    """A 128 px GANomaly bundle trained for a few steps (speed only, not quality)."""
    out = work / f"ganomaly_{size}.inspector"
    if out.is_file():
        return out
    from inspection_core.bundle import save_bundle
    from inspection_core.config import ModelConfig, TrainConfig
    from inspection_core.training.trainer import train

    res = train(demo, ModelConfig("ganomaly", image_size=size),
                TrainConfig(epochs=1, max_steps_per_epoch=2, device="cpu", samples_per_epoch=0))
    return save_bundle(out, res.model, res.manifest)
