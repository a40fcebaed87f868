"""``inspector predict`` reads the next images on a thread of its own while it
scores the current ones: what a user sees must not change (verdicts in file
order, the scores of one image scored alone, an unreadable file reported at
its place, a reader that fails stops the run with its error) and the reader
must not read past the memory budget."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from test_cli import run


def _folder(demo_data: Path, tmp_path: Path, n: int) -> list[Path]:
    src = sorted((demo_data / "test").rglob("*.png"))[:n]
    folder = tmp_path / "imgs"
    folder.mkdir()
    files = []
    for i, f in enumerate(src):
        files.append(folder / f"{i:03d}.png")
        shutil.copy(f, files[-1])
    return files


def test_verdicts_in_file_order_with_the_scores_of_each_image_alone(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    files = _folder(demo_data, tmp_path, 11)
    (files[0].parent / "005b.png").write_bytes(b"not a png")  # between 005 and 006
    rc, out, err = run(capsys, "predict", "--bundle", str(tiny_bundle), str(files[0].parent), "--batch-size", "4",
                       "--device", "cpu")
    assert rc == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert [Path(line[0]).name for line in lines] == [f.name for f in files]
    assert "005b.png" in err and "11 scored" in err and "1 unreadable skipped" in err
    insp = Inspector(tiny_bundle, device="cpu")
    alone = [insp.predict(read_image(f)).score for f in files]
    assert [float(line[1]) for line in lines] == pytest.approx(alone, rel=1e-5)


def test_the_reader_waits_for_room_in_the_budget(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for two images, the reader never holds a third one before the
    caller lets one go, and every image comes through once, in order."""
    from inspection_core.cli import predict
    from inspection_core.data.images import ImageReadError, read_image

    files = _folder(demo_data, tmp_path, 9)
    size = read_image(files[0]).nbytes
    monkeypatch.setattr(predict, "MAX_BATCH_BYTES", 2 * size)
    most = [0]
    held = [0]
    lock = threading.Lock()

    def read(f: Path) -> np.ndarray:
        image = read_image(f)
        with lock:
            held[0] += 1
            most[0] = max(most[0], held[0])
        return image

    reader = predict._ReadAhead(files, 32, read, ImageReadError, lambda im: (im, ""))
    seen = []
    try:
        for batch in reader:
            for f, image, _ in batch:
                seen.append(f)
                with lock:
                    held[0] -= 1
                reader.release(image.nbytes)
    finally:
        reader.close()
    assert seen == files and most[0] <= 2


def test_an_error_of_the_reader_stops_the_run_at_its_place(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    from inspection_core.cli import predict
    from inspection_core.data.images import ImageReadError, read_image

    files = _folder(demo_data, tmp_path, 6)

    def read(f: Path) -> np.ndarray:
        if f == files[3]:
            raise MemoryError("cannot allocate the decoded image")
        return read_image(f)

    reader = predict._ReadAhead(files, 2, read, ImageReadError, lambda im: (im, ""))
    seen = []
    try:
        with pytest.raises(MemoryError, match="cannot allocate"):
            for batch in reader:
                seen.extend(f for f, _, _ in batch)
    finally:
        reader.close()
    assert seen == files[:2]  # the batch with the failing file never comes; nothing after it is read


def test_a_one_image_call_on_its_own_thread_count_scores_the_same(tiny_bundle: Path, demo_data: Path) -> None:
    """The live line's one image may run on one thread (chosen at load where a
    second one gains little): the same score and map, and the process's thread
    count is put back after the call."""
    import torch

    from inspection_core import acceleration
    from inspection_core.data.images import read_image
    from inspection_core.inference import Inspector

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        insp = Inspector(tiny_bundle, device="cpu")
        assert insp.path.single_threads in (None, 1)
        image = read_image(sorted((demo_data / "test").rglob("*.png"))[0])
        insp.path.single_threads = None
        shared = insp.predict(image)
        insp.path.single_threads = 1
        alone = insp.predict(image)
        assert torch.get_num_threads() == 2
        assert alone.score == pytest.approx(shared.score, rel=1e-5)
        assert np.allclose(alone.anomaly_map, shared.anomaly_map, rtol=1e-4, atol=1e-6)
        with acceleration.intra_op_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
