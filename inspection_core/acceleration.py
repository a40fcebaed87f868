"""Fast scoring paths for a loaded detector, chosen once at bundle load.

Why: batch-1 eager PyTorch on the CPU spends most of its time re-laying-out
convolution weights on every call and running BatchNorm and activations as
separate passes. The CPU fast path removes that work without a compiler:

* ``"fp32"`` on the CPU: a copy of the model whose ``Conv -> BatchNorm ->
  activation`` runs are folded into one oneDNN convolution with weights
  prepacked once (``torch.ops.mkldnn._convolution_pointwise``, the kernel
  torch.compile's freezing pass emits), channels-last activations. Same
  arithmetic as eager fp32 up to rounding (~1e-6 relative), so a threshold
  calibrated with the plain path holds unchanged. The rewrite is
  :mod:`inspection_core.packed_conv`'s.
* ``"bf16"``: the same graph with bf16 weights and activations (fp32
  accumulation inside oneDNN), except the submodules a family keeps in fp32
  (``Detector.fp32_on_fast_path``: PatchCore's backbone, the GAN families'
  perceptual backbone); maps, smoothing and scores are reduced in fp32.
  It is a bundle's default only where that bundle's own fidelity check held
  (:mod:`inspection_core.usecases.fidelity`: run when it is trained and when
  it is calibrated; each path at its own threshold, image AUROC within 0.005
  and at most 0.5 % of the verdicts different) and only where the CPU runs
  bf16 natively and it is faster there: a CPU whose bf16 convolutions
  measure slower than fp32 (:func:`cpu_bf16_is_fast`) times both paths of
  the bundle at load (:func:`faster_path`). A station that scores such a
  bundle with fp32 uses the fp32 threshold stored with the check
  (:func:`threshold_for`).
* ``"eager"``: the plain fp32 model, the reference the others are checked
  against (also the fallback when packing is impossible).
* CUDA: channels-last, cuDNN autotuning and autocast (bf16 where the GPU
  supports it, else fp16) for ``"bf16"``/``"fp16"``, with the same
  submodules kept in fp32 as on the CPU (:func:`keep_fp32_under_autocast`);
  plain fp32 otherwise.

torch.compile is deliberately not used: it needs a C++ compiler at run time
(absent from the frozen app and most stations) and, measured on the 2-core
development machine, was no faster than the prepacked graph while costing
45 s of compilation. There is no on-disk cache: packing takes well under a
second at load, so nothing can go stale.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .manifest import InferenceRecord, Manifest, section
from .packed_conv import PackedConv as PackedConv  # re-exported: callers import it from here
from .packed_conv import pack_model as pack_model

log = logging.getLogger(__name__)

#: the numeric precisions a scoring path can run in (recorded in bundles)
PRECISIONS = ("fp32", "bf16", "fp16")
#: what ``Inspector(precision=...)`` / ``$INSPECTOR_PRECISION`` accept
REQUESTS = ("auto", "eager") + PRECISIONS
#: model families whose bf16 path is the default whatever a bundle's own
#: check says: none. Whether bf16 keeps what an operator sees depends on the
#: bundle (its data, its threshold), so each bundle is checked on its own
#: images when it is trained and calibrated (docs/performance.md).
BF16_VERIFIED: frozenset[str] = frozenset()
#: environment override for stations (e.g. ``INSPECTOR_PRECISION=eager``)
ENV_VAR = "INSPECTOR_PRECISION"


# --------------------------------------------------------------------------- hardware
def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively (AVX512-BF16 / AMX);
    emulated bf16 is slower than fp32, so it is never chosen there."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


#: bf16 is a CPU's fast path where its convolutions run at least this much faster than fp32
BF16_MIN_SPEEDUP = 1.25


def best_seconds(fns: list[Any], rounds: int = 3, calls: int = 5, warmup: int = 0, warm_s: float = 0.01) -> list[float]:
    """The best time of each of ``fns``: ``warmup`` untimed calls each (the
    first calls choose and prepare the kernels), then ``rounds`` rounds that
    take them in turn, each round running each one for ``warm_s`` seconds
    before timing ``calls`` calls. Interleaving keeps one slow moment of a
    shared machine from landing on one of them only, and the time-based
    warm-up lets bf16 matrix units (AMX), which wake up slowly after idling,
    reach speed before they are timed."""
    import time

    for fn in fns:
        for _ in range(warmup):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < warm_s:
                fn()
            for _ in range(calls):
                t = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - t)
    return best


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """How much faster a bf16 convolution runs than the same one in fp32 on
    this CPU (channels-last, the best of 3 interleaved rounds of each,
    about 0.15 s in all; measured once per process). Native bf16 is not
    always fast: on some CPUs with AVX512-BF16 and no AMX bf16 convolutions
    run slower than fp32 (docs/performance.md). Each path is warmed up for
    10 ms before it is timed, and the two are timed in turn: matrix units
    (AMX) wake up slowly and a shared machine's speed changes by 2x within
    seconds, so a measure that timed one path after the other could flip
    the defaults from one process to the next."""
    from torch.nn import functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 64, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
    xb, wb = x.bfloat16(), w.bfloat16()
    try:
        with torch.inference_mode(), torch.autocast("cpu", enabled=False):
            fp32, bf16 = best_seconds([lambda: F.conv2d(x, w, padding=1), lambda: F.conv2d(xb, wb, padding=1)])
    except RuntimeError:  # pragma: no cover - a build whose bf16 convolutions fail
        return 0.0
    return fp32 / max(bf16, 1e-9)


def cpu_bf16_is_fast() -> bool:
    """True where this CPU's bf16 convolutions run at least
    :data:`BF16_MIN_SPEEDUP` times faster than fp32 (:func:`cpu_bf16_speedup`).
    Elsewhere the GAN families do not train in bf16 by default, and a bundle
    whose default is bf16 is scored with bf16 only where its own bf16 path
    measures faster at load (:func:`faster_path`: PatchCore's bf16 path gains
    from its shorter candidate search, not from bf16 arithmetic)."""
    if not cpu_has_native_bf16():
        return False
    speedup = cpu_bf16_speedup()
    if speedup < BF16_MIN_SPEEDUP:
        log.info("this CPU runs bf16 natively but its bf16 convolutions are not faster than fp32 (%.2fx)", speedup)
        return False
    return True


def default_cpu_bf16(model: str) -> bool:
    """bf16 autocast when training ``model`` on this machine's CPU, unless the
    user says otherwise: where bf16 is this CPU's fast path
    (:func:`cpu_bf16_is_fast`; elsewhere it is no faster, or slower, than
    fp32) and the family declares ``bf16_training``. It applies to CPU
    training only; a GPU run uses its own mixed precision."""
    from .models.registry import model_class

    return bool(model_class(model).bf16_training) and cpu_bf16_is_fast()


def cpu_can_pack() -> bool:
    """oneDNN prepacked convolutions are available in this torch build."""
    return bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def bundle_allows_bf16(manifest: Manifest | Mapping[str, Any] | None) -> bool:
    """Whether a bundle's own record makes bf16 the default: its threshold was
    calibrated with bf16, or a fidelity check on its data passed (see
    :mod:`inspection_core.usecases.fidelity`)."""
    inf = section(manifest, "inference", InferenceRecord)
    if inf is None:
        return False
    check = inf.check("bf16")
    return inf.precision == "bf16" or bool(check and check.ok)


def fast_precision(device: torch.device | str) -> str | None:
    """The fast path worth checking on this machine: "bf16" on a CPU that
    runs it natively (and can pack the graph) or on a CUDA GPU (autocast; fp16
    where the GPU has no bf16), else None (fp32 is then the only path)."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16() and cpu_can_pack():
        return "bf16"
    return None


def threshold_for(manifest: Manifest | Mapping[str, Any] | None, precision: str) -> dict[str, Any] | None:
    """The threshold a station scoring with ``precision`` uses when the bundle
    was calibrated on another path: the fp32 path's own threshold stored with
    the fidelity check (a station without native bf16 scores with fp32), else
    None (the bundle's threshold applies)."""
    inf = section(manifest, "inference", InferenceRecord)
    if inf is None or precision != "fp32" or inf.calibrated_on == "fp32":
        return None
    check = inf.check(inf.calibrated_on)
    th = check.threshold_fp32 if check else None
    return dict(th) if isinstance(th, Mapping) and "high" in th else None


def requested_precision(requested: str | None) -> str:
    """What was asked for: ``requested``, else ``$INSPECTOR_PRECISION``, else
    ``"auto"`` (lower case, not yet checked)."""
    return (requested or os.environ.get(ENV_VAR) or "auto").strip().lower()


def choose_precision(requested: str | None, family: str, device: torch.device,
                     manifest: Manifest | Mapping[str, Any] | None = None) -> str:
    """The path to run: ``requested`` (argument, else ``$INSPECTOR_PRECISION``,
    else ``"auto"``) resolved for this model family, bundle and device.
    ``"auto"`` is bf16 only where fidelity was shown (the family is in
    :data:`BF16_VERIFIED` or the bundle's record allows it) and the hardware
    runs bf16 natively (where its bf16 is not fast, :func:`faster_path` then
    decides at load); otherwise the fp32 fast path."""
    req = requested_precision(requested)
    if req not in REQUESTS:
        raise ValueError(f"unknown precision '{req}': expected one of {', '.join(REQUESTS)}")
    bf16_ok = family in BF16_VERIFIED or bundle_allows_bf16(manifest)
    if device.type == "cuda":
        if req == "auto":
            req = "bf16" if bf16_ok else "fp32"
        if req == "bf16" and not torch.cuda.is_bf16_supported():
            log.info("this GPU has no bf16: using fp16 autocast")
            return "fp16"
        return req
    if device.type != "cpu":  # MPS and others: the plain model
        return "eager" if req == "auto" else req
    if req == "auto":
        if bf16_ok and cpu_has_native_bf16() and cpu_can_pack():
            return "bf16"
        return "fp32" if cpu_can_pack() else "eager"
    if req == "fp16":
        raise ValueError("precision 'fp16' is only available on a CUDA GPU (use bf16 or fp32 on the CPU)")
    if req in ("fp32", "bf16") and not cpu_can_pack():
        log.warning("this torch build has no oneDNN: using the plain fp32 path")
        return "eager"
    return req


# --------------------------------------------------------------------------- scoring paths
@dataclass
class ScoringPath:
    """How an Inspector runs its model. ``engine`` describes it for logs and
    the benchmark; ``precision`` is what a bundle records."""

    module: nn.Module
    device: torch.device
    precision: str             # "fp32", "bf16" or "fp16"
    engine: str                # e.g. "cpu-onednn-packed-bf16"
    autocast: torch.dtype | None = None
    channels_last: bool = False
    #: images per forward; a larger batch is scored in chunks (None: whole)
    chunk: int | None = None
    #: intra-op threads for a one-image call (None: the process's; :func:`one_image_threads`)
    single_threads: int | None = None

    def __call__(self, x: torch.Tensor) -> Any:
        if x.shape[0] == 1 and self.single_threads is not None:
            with intra_op_threads(self.single_threads):
                return self._forward(x)
        if self.chunk is not None and x.shape[0] > self.chunk:
            parts = [self._forward(x[i : i + self.chunk]) for i in range(0, x.shape[0], self.chunk)]
            return _concat_outputs(parts)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> Any:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast is None:
            return self.module(x)
        with torch.autocast(device_type=self.device.type, dtype=self.autocast):
            return self.module(x)


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` within the block (the process's
    setting is put back after it)."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: a one-image call is split over the process's threads only where that scores it at least this much
#: faster than one thread
SPLIT_MIN_GAIN = 1.25
#: a one-image forward at least this long (s) is split without timing one thread: its large operations
#: divide well (PatchCore's neighbour search: 1.45x on 2 threads), and timing it would slow the load
SPLIT_WITHOUT_TIMING_S = 0.02


def one_image_threads(path: ScoringPath, example: torch.Tensor) -> int | None:
    """1 where scoring one image (``example``) on one thread is not
    :data:`SPLIT_MIN_GAIN` times slower than on all the process's threads,
    else None (all). A small model's operations on one image are too short to
    share: every one of them waits for the slowest thread, so the second
    thread gains little on a quiet machine (GANomaly at 128 px, 2 cores:
    5.5 ms on two spinning threads, 7.8 ms on two that sleep when they wait,
    about 7 ms on one) and, where another program takes a core, one thread
    keeps its own (benchmarks/predict_speed.py). CPU only; timed at load."""
    import time

    n = torch.get_num_threads()
    if n <= 1 or path.device.type != "cpu" or example.shape[0] != 1:
        return None
    with torch.inference_mode():
        t = time.perf_counter()
        path._forward(example)
        if time.perf_counter() - t >= SPLIT_WITHOUT_TIMING_S:
            return None

        def on(k: int) -> Any:
            def run() -> None:
                with intra_op_threads(k):
                    path._forward(example)
            return run

        t_all, t_one = best_seconds([on(n), on(1)], rounds=3, calls=3, warmup=1, warm_s=0.0)
    log.info("one image: %.2f ms on %d threads, %.2f ms on one", t_all * 1e3, n, t_one * 1e3)
    return 1 if t_one < SPLIT_MIN_GAIN * t_all else None


def _concat_outputs(parts: list[Any]) -> Any:
    """One output of the chunks' outputs (tensors joined on the batch axis)."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    fields = {f: [getattr(p, f) for p in parts] for f in first.__dataclass_fields__}
    return type(first)(**{f: None if v[0] is None else torch.cat(v) for f, v in fields.items()})


def cpu_chunk(model: nn.Module, image_size: int) -> int | None:
    """Images per forward on a CPU path (``Detector.cpu_chunk_pixels``)."""
    pixels = getattr(model, "cpu_chunk_pixels", None)
    return None if pixels is None else max(1, int(pixels) // max(1, image_size * image_size))


def keep_fp32_under_autocast(model: nn.Module, names: tuple[str, ...] | list[str]) -> int:
    """Make the submodules named in ``names`` (``Detector.fp32_on_fast_path``)
    run in fp32 inside an autocast region, as the packed CPU graph keeps them:
    the module and each of its children (a family may call a child, such as
    a perceptual backbone, from a method other than ``forward``) get their
    floating inputs cast to fp32 and autocast off within them. The CUDA path
    needs it: the bundle's fidelity check was measured with those parts in
    fp32. Forwards are wrapped on the instances, so the state dict is
    unchanged; idempotent. Returns the modules wrapped."""
    done = 0
    for name in names:
        top = model.get_submodule(name)
        for sub in (top, *top.children()):
            if getattr(sub, "_inspector_fp32", False):
                continue
            inner = sub.forward

            def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                cast = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
                device_type = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
                with torch.autocast(device_type, enabled=False):
                    return _inner(*cast, **kwargs)

            sub.forward = forward
            setattr(sub, "_inspector_fp32", True)  # a marker, not a submodule or a buffer
            done += 1
    return done


def eager_path(model: nn.Module, device: torch.device) -> ScoringPath:
    """The plain fp32 model: the reference every fast path is checked against."""
    return ScoringPath(model.eval(), device, "fp32", f"{device.type}-eager-fp32")


def build_path(model: nn.Module, device: torch.device, precision: str, image_size: int, channels: int) -> ScoringPath:
    """The scoring path for ``precision`` (from :func:`choose_precision`).
    Falls back to the plain model, with a warning, when packing fails."""
    model = model.eval()
    if precision == "eager":
        return eager_path(model, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if dtype is not None:  # what the bundle's check kept in fp32 stays fp32 here too
            keep_fp32_under_autocast(model, tuple(getattr(model, "fp32_on_fast_path", ())))
        return ScoringPath(model, device, precision, f"cuda-{'amp-' + precision if dtype else 'fp32'}", dtype, True)
    if device.type != "cpu":
        return eager_path(model, device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    example = torch.zeros(1, channels, image_size, image_size)
    try:
        keep = tuple(getattr(model, "fp32_on_fast_path", ())) if dtype != torch.float32 else ()
        packed, n = pack_model(model, example, dtype, keep)
    except Exception as exc:  # noqa: BLE001 - an unusual layer must never stop inspection
        log.warning("cannot pack the model for oneDNN (%s): using the plain fp32 path", exc)
        return eager_path(model, device)
    if n == 0:
        return eager_path(model, device)
    # leftover ops (Linear, norms, pooling) follow the packed graph's dtype
    autocast = torch.bfloat16 if dtype == torch.bfloat16 else None
    return ScoringPath(packed, device, precision, f"cpu-onednn-packed-{precision}", autocast, True,
                       cpu_chunk(model, image_size))


#: on a CPU whose bf16 is not fast, the bf16 path is kept unless fp32 is at least this much faster
#: (a clear margin: paths closer than that cost little either way, and the choice should not
#: follow the timing noise of one load)
FP32_MIN_GAIN = 1.15


def paths_seconds(paths: list[ScoringPath], example: torch.Tensor) -> list[float]:
    """The best time of each of ``paths`` on ``example``: one warm-up call
    each, then 3 rounds that take them in turn, 2 calls each (the same 12
    calls as timing them one after the other, but a slow moment of a shared
    machine lands on both)."""
    with torch.inference_mode():
        return best_seconds([lambda p=path: p(example) for path in paths], rounds=3, calls=2, warmup=1, warm_s=0.0)


def faster_path(bf16: ScoringPath, fp32: ScoringPath, example: torch.Tensor) -> tuple[ScoringPath, float, float]:
    """The bf16 path unless the fp32 one scores ``example`` at least
    :data:`FP32_MIN_GAIN` times faster (both timed here, at load), with both
    times in seconds. For a CPU whose bf16 convolutions are not fast, where
    either path can win depending on the model (docs/performance.md)."""
    t_bf16, t_fp32 = paths_seconds([bf16, fp32], example)
    return (fp32 if t_bf16 >= FP32_MIN_GAIN * t_fp32 else bf16), t_bf16, t_fp32


def check_path(path: ScoringPath, reference: nn.Module, example: torch.Tensor, rtol: float) -> float:
    """Largest relative score difference of ``path`` vs. ``reference`` on
    ``example``; raises ValueError above ``rtol`` (a broken fast path must
    be caught at load, not on the line)."""
    with torch.inference_mode():
        got = path(example).scores.float().cpu()
        ref = reference(example.to(next(reference.parameters()).device)).scores.float().cpu()
    rel = float(((got - ref).abs() / ref.abs().clamp_min(1e-12)).max())
    if not rel <= rtol:
        raise ValueError(f"fast path {path.engine} differs from fp32 by {rel:.2%} on the self-check (limit {rtol:.2%})")
    return rel
