"""Packed convolutions: the CPU fast path's graph rewrite (see
:mod:`inspection_core.acceleration`, which chooses and builds the paths).

A copy of the model whose ``Conv -> BatchNorm -> activation`` runs are folded
into one oneDNN convolution with weights prepacked once
(``torch.ops.mkldnn._convolution_pointwise``, the kernel torch.compile's
freezing pass emits), channels-last activations; in fp32 or bf16.
"""

from __future__ import annotations

import copy
from typing import Any, TypeGuard

import torch
from torch import nn

_ACTIVATIONS: dict[type, str] = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
                                 nn.ReLU6: "hardtanh", nn.Hardtanh: "hardtanh"}


def _fold_batchnorm(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias with an eval-mode BatchNorm folded in (fp32)."""
    w = conv.weight.detach().float()
    out_ch = w.shape[1] * conv.groups if isinstance(conv, nn.ConvTranspose2d) else w.shape[0]
    b = torch.zeros(out_ch) if conv.bias is None else conv.bias.detach().float()
    if bn is not None:
        assert bn.running_mean is not None and bn.running_var is not None  # _foldable: it tracks them
        scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
        shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
        w = w * scale.view(shape)
        b = (b - bn.running_mean.float()) * scale + bn.bias.detach().float()
    return w.contiguous(), b.contiguous()


def _packable(conv: nn.Module | None) -> TypeGuard[nn.Conv2d | nn.ConvTranspose2d]:
    return (
        isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.weight.device.type == "cpu"
    )


def _foldable(bn: nn.Module | None) -> TypeGuard[nn.BatchNorm2d]:
    return isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats and bn.running_mean is not None and bn.affine


class PackedConv(nn.Module):
    """One oneDNN convolution (or transposed convolution) with BatchNorm folded
    in, the activation fused and the weight prepacked for ``input_size``.
    Inference only: it holds no parameters and no state dict."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d | None, act: nn.Module | None,
                 input_size: list[int], dtype: torch.dtype) -> None:
        super().__init__()
        w, b = _fold_batchnorm(conv, bn)
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), int(conv.groups)
        self.output_padding = list(conv.output_padding) if self.transposed else []
        self.attr, self.scalars = "none", []
        if act is not None:
            self.attr = _ACTIVATIONS[type(act)]
            if isinstance(act, nn.LeakyReLU):
                self.scalars = [float(act.negative_slope)]
            elif isinstance(act, nn.Hardtanh):  # ReLU6 is Hardtanh(0, 6)
                self.scalars = [float(act.min_val), float(act.max_val)]
        self.dtype = dtype
        w = w.to(dtype)
        mk = torch.ops.mkldnn
        with torch.no_grad():
            if self.transposed:
                self.weight = mk._reorder_convolution_transpose_weight(
                    w, self.padding, self.output_padding, self.stride, self.dilation, self.groups, input_size)
            else:
                self.weight = mk._reorder_convolution_weight(w, self.padding, self.stride, self.dilation, self.groups, input_size)
        self.bias = b.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        mk = torch.ops.mkldnn
        if self.transposed:
            return mk._convolution_transpose_pointwise(
                x, self.weight, self.bias, self.padding, self.output_padding, self.stride, self.dilation,
                self.groups, self.attr, self.scalars, "")
        return mk._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, self.attr, self.scalars, "")

    def extra_repr(self) -> str:
        kind = "transposed " if self.transposed else ""
        return f"{kind}stride={self.stride}, act={self.attr}, dtype={self.dtype}"


def _record_input_sizes(model: nn.Module, example: torch.Tensor) -> dict[int, list[int]]:
    """Input shape of every convolution the forward pass actually runs."""
    sizes: dict[int, list[int]] = {}

    def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:  # must return None: a value would replace the input
        sizes.setdefault(id(mod), list(args[0].shape))

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return sizes


def pack_model(model: nn.Module, example: torch.Tensor, dtype: torch.dtype = torch.float32,
               keep_fp32: tuple[str, ...] = ()) -> tuple[nn.Module, int]:
    """A packed inference copy of ``model`` (eval mode, CPU) and the number of
    convolutions packed. ``Conv [-> BatchNorm2d] [-> activation]`` runs inside
    ``nn.Sequential`` containers are fused (the folded modules become
    ``nn.Identity`` so indices stay valid); other convolutions are packed on
    their own. Convolutions the forward pass never runs (a GAN's
    discriminator when it does not score) stay as they are. Convolutions
    inside the submodules named in ``keep_fp32`` are packed in fp32."""
    src = copy.deepcopy(model).eval()
    sizes = _record_input_sizes(src, example)
    count = 0
    fp32_ids = {id(m) for name in keep_fp32 for m in src.get_submodule(name).modules()}

    def pack(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d | None, act: nn.Module | None) -> PackedConv:
        nonlocal count
        count += 1
        return PackedConv(conv, bn, act, sizes[id(conv)], torch.float32 if id(conv) in fp32_ids else dtype)

    for parent in list(src.modules()):
        names = list(parent._modules)
        if isinstance(parent, nn.Sequential):
            i = 0
            while i < len(names):
                conv = parent._modules[names[i]]
                if not (_packable(conv) and id(conv) in sizes):
                    i += 1
                    continue
                j = i + 1
                bn: nn.BatchNorm2d | None = None
                act: nn.Module | None = None
                after = parent._modules[names[j]] if j < len(names) else None
                if _foldable(after):
                    bn = after
                    j += 1
                if j < len(names) and type(parent._modules[names[j]]) in _ACTIVATIONS:
                    act = parent._modules[names[j]]
                    j += 1
                parent._modules[names[i]] = pack(conv, bn, act)
                for k in range(i + 1, j):
                    parent._modules[names[k]] = nn.Identity()
                i = j
        else:
            for name in names:
                child = parent._modules[name]
                if child is not None and _packable(child) and id(child) in sizes:
                    parent._modules[name] = pack(child, None, None)
    return src, count
