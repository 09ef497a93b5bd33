"""Parameter and multiply-add counts of a network."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs", "macs_by_child"]

logger = logging.getLogger(__name__)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def _flop_counts(module: nn.Module, input_size: tuple[int, ...]) -> dict[str, int]:
    """FLOPs per module path (``"Root"``, ``"Root.child"``, ...) of one eval-mode forward on zeros."""
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(input_size, device=device))
    finally:
        module.train(was_training)
    return {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}


def count_macs(module: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Multiply-adds of one forward pass on a zero input.

    Counts convolutions and matrix products (``torch.utils.flop_counter``, which
    reports 2 FLOPs per multiply-add); normalisation, activations, pooling and
    interpolation are left out, as in the usual "MACs" tables.

    Args:
        module: the network; run in eval mode on the device of its parameters
            (its training flag is restored afterwards).
        input_size: input shape, default one 224×224 RGB image.

    Returns:
        Multiply-adds for the whole batch.
    """
    return _flop_counts(module, input_size)["Global"] // 2


def macs_by_child(module: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> dict[str, int]:
    """Multiply-adds per direct child module (e.g. ``backbone``, ``msf``, ``attention``, ``heads``).

    Args:
        module: the network, as for :func:`count_macs`.
        input_size: input shape.

    Returns:
        ``{child name: MACs}`` for the children that do any counted work.
    """
    counts = _flop_counts(module, input_size)
    root = type(module).__name__
    out = {}
    for child, _ in module.named_children():
        path = f"{root}.{child}"
        if path in counts:
            flops = counts[path]
        else:  # containers that are never called themselves (ModuleList): sum their called items
            depth = path.count(".") + 1
            flops = sum(v for k, v in counts.items() if k.startswith(path + ".") and k.count(".") == depth)
        if flops:
            out[child] = flops // 2
    return out
