"""Parameter and multiply-add counts of a network."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs"]

logger = logging.getLogger(__name__)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_macs(module: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Multiply-adds of one forward pass on a zero input.

    Counts convolutions and matrix products (``torch.utils.flop_counter``, which
    reports 2 FLOPs per multiply-add); normalisation, activations, pooling and
    interpolation are left out, as in the usual "MACs" tables.

    Args:
        module: the network; run in eval mode on the device of its parameters.
        input_size: input shape, default one 224×224 RGB image.

    Returns:
        Multiply-adds for the whole batch.
    """
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            module(torch.zeros(input_size, device=device))
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2
