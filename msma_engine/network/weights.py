"""Saving and loading network weights, with checks that they fit the face model.

A weights file is a ``torch.save`` of a plain dict::

    {"arch": "msma", "sizes": {"id": 80, "exp": 64, "tex": 80},
     "state_dict": {...}, "meta": {...}}

``meta`` holds free-form, plain-Python information (training data, epoch, face
model name). Files are read with ``torch.load(weights_only=True)``: no pickled
code is executed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from msma_engine.errors import WeightsError
from msma_engine.face_model import CoeffLayout
from msma_engine.fileio import atomic_write
from msma_engine.network.baseline import BaselineNet
from msma_engine.network.factory import ARCHS, build_network
from msma_engine.network.regressor import CoefficientRegressor
from msma_engine.network.resnet import ResNet

__all__ = ["save_weights", "load_weights", "load_backbone_state_dict", "read_weights_file", "baseline_from_deep3d"]

logger = logging.getLogger(__name__)

_REQUIRED_KEYS = ("arch", "sizes", "state_dict")
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 32, 1024
"""Accepted ``meta["input_size"]`` (network input side, pixels)."""
_MAX_LISTED = 10


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED else "")


def save_weights(
    path: str | os.PathLike,
    model: CoefficientRegressor,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    half: bool = False,
) -> Path:
    """Write a network's weights with its architecture and coefficient sizes.

    Args:
        path: destination file (conventionally ``.pt``).
        model: a network from :func:`msma_engine.network.build_network`.
        meta: extra plain-Python information (str/int/float/bool/lists/dicts).
        overwrite: replace an existing file; without it an existing file raises.
        half: store floating-point tensors as float16, half the file size (shipped
            weights live in git); :func:`load_weights` casts them back to the network's
            float32.

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    payload = {
        "arch": model.arch,
        "sizes": {"id": model.layout.n_id, "exp": model.layout.n_exp, "tex": model.layout.n_tex},
        "state_dict": {k: v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu()
                       for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    atomic_write(path, lambda fh: torch.save(payload, fh))  # never a half-written weights file
    logger.info("saved %s weights (%s) to %s", model.arch, model.layout, path)
    return path


def read_weights_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate the container of a weights file (not the tensors' fit).

    Returns:
        The dict with ``arch`` (str), ``layout`` (:class:`~msma_engine.face_model.CoeffLayout`
        from the file's ``sizes``), ``state_dict`` and ``meta``.

    Raises:
        WeightsError: missing or unreadable file, not a weights file of this project, an entry
            of the state dict that is not a tensor or holds NaN/inf, or a ``meta["input_size"]``
            that is not an integer within 32-1024.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"network weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise WeightsError(f"cannot read network weights {path}: {exc}") from exc
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED_KEYS):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise WeightsError(
            f"{path} is not an MSMA weights file: expected a dict with keys {list(_REQUIRED_KEYS)}, found {found}"
        )
    if payload["arch"] not in ARCHS:
        raise WeightsError(
            f"{path} holds weights of unknown architecture {payload['arch']!r} (known: {', '.join(ARCHS)})"
        )
    sizes = payload["sizes"]
    try:
        layout = CoeffLayout(int(sizes["id"]), int(sizes["exp"]), int(sizes["tex"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path} has malformed coefficient sizes {payload['sizes']!r}") from exc
    if not isinstance(payload["state_dict"], Mapping):
        raise WeightsError(f"{path}: 'state_dict' is a {type(payload['state_dict']).__name__}, not a dict of tensors")
    not_tensors = [k for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(f"{path}: state_dict entries that are not tensors: {_listing(not_tensors)}")
    non_finite = [k for k, v in payload["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if non_finite:
        raise WeightsError(f"{path}: tensors with NaN or infinite values: {_listing(non_finite)}")
    meta = payload.get("meta", {})
    if not isinstance(meta, Mapping):
        raise WeightsError(f"{path}: 'meta' is a {type(meta).__name__}, not a dict")
    input_size = meta.get("input_size", 224)
    if isinstance(input_size, bool) or not isinstance(input_size, int) or not (
            MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE):
        raise WeightsError(f"{path}: meta input_size must be an integer within {MIN_INPUT_SIZE}-{MAX_INPUT_SIZE} "
                           f"(the side the network was trained at), got {input_size!r}")
    return {
        "arch": payload["arch"],
        "layout": layout,
        "state_dict": payload["state_dict"],
        "meta": dict(meta),
    }


def _load_checked(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with every missing/unexpected/mis-shaped key reported in one WeightsError."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(own[k].shape)})"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_listing(wrong)}")
    if problems:
        raise WeightsError(f"{source} does not fit the network: " + "; ".join(problems))
    # BatchNorm fills in a missing num_batches_tracked itself (old torchvision files lack it).
    module.load_state_dict(dict(state_dict), strict=False)


def load_weights(
    path: str | os.PathLike,
    arch: str | None = None,
    n_id: int | None = None,
    n_exp: int | None = None,
    n_tex: int | None = None,
    map_location: str | torch.device = "cpu",
) -> CoefficientRegressor:
    """Build the network stored in a weights file and load its weights.

    Args:
        path: file written by :func:`save_weights`.
        arch: required architecture; ``None`` accepts whatever the file holds.
        n_id, n_exp, n_tex: the face model's coefficient counts; when given, all three
            must match the file (the heads only fit the model they were trained for).
        map_location: device for the returned network.

    Returns:
        The network in eval mode; ``net.meta`` holds the file's ``meta`` dict and
        ``net.input_size`` its training input side (``meta["input_size"]``, default 224).

    Raises:
        WeightsError: unreadable file, wrong architecture, wrong coefficient sizes, or a
            state dict with missing / unexpected / mis-shaped entries (all listed).
    """
    payload = read_weights_file(path)
    if arch is not None and payload["arch"] != arch:
        raise WeightsError(f"{path} holds {payload['arch']!r} weights, but the {arch!r} network was requested")
    layout: CoeffLayout = payload["layout"]
    wanted = (n_id, n_exp, n_tex)
    if any(n is not None for n in wanted):
        if any(n is None for n in wanted):
            raise ValueError(f"give all of n_id, n_exp, n_tex or none, got {wanted}")
        current = CoeffLayout(*(int(n) for n in wanted))
        if current != layout:
            raise WeightsError(
                f"{path} was trained for a face model with id/exp/tex = "
                f"{layout.n_id}/{layout.n_exp}/{layout.n_tex} coefficients ({layout.total} in all), but the "
                f"current face model has {n_id}/{n_exp}/{n_tex} ({current.total}); "
                "use weights trained for this face model"
            )
    net = build_network(payload["arch"], layout.n_id, layout.n_exp, layout.n_tex)
    _load_checked(net, payload["state_dict"], str(path))
    net.meta = dict(payload["meta"])
    net.input_size = int(net.meta.get("input_size", 224))
    logger.info("loaded %s weights (%s) from %s", net.arch, layout, path)
    return net.to(map_location).eval()


def _backbone_of(model: nn.Module) -> ResNet:
    if isinstance(model, ResNet):
        return model
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, ResNet):
        raise TypeError(f"{type(model).__name__} has no ResNet backbone")
    return backbone


def load_backbone_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a torchvision-style ResNet state dict into a network's backbone.

    Accepts the keys of ``torchvision.models.resnet50().state_dict()`` (``conv1.weight``,
    ``layer1.0.downsample.0.weight``, ...), also under a common prefix such as
    ``module.`` (DataParallel) or ``backbone.`` (Deep3DFaceRecon's ``net_recon``). The
    classifier ``fc.*`` and keys outside the backbone (e.g. Deep3DFaceRecon's
    ``final_layers``) are ignored; every backbone key must be present with the right shape.

    Args:
        model: a network from :func:`build_network` or a bare :class:`ResNet`.
        state_dict: the tensors to load.

    Raises:
        WeightsError: no ``conv1.weight`` found under any prefix, or missing / mis-shaped
            backbone keys (listed), e.g. ResNet-18 weights for a ResNet-50 backbone.
    """
    backbone = _backbone_of(model)
    anchors = [k for k in state_dict if k.endswith("conv1.weight") and "layer" not in k]
    prefixes = sorted({k[: -len("conv1.weight")] for k in anchors}, key=len)
    if not prefixes:
        raise WeightsError("state dict has no ResNet stem ('conv1.weight' under any prefix); is it a ResNet?")
    prefix = prefixes[0]
    own = backbone.state_dict()
    picked = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix) and k[len(prefix):] in own}
    source = f"ResNet state dict (prefix {prefix!r})" if prefix else "ResNet state dict"
    _load_checked(backbone, picked, source)
    ignored = len(state_dict) - len(picked)
    logger.info("loaded %d backbone tensors (prefix %r); ignored %d others", len(picked), prefix, ignored)


def baseline_from_deep3d(state_dict: Mapping[str, torch.Tensor]) -> BaselineNet:
    """Build the baseline from a Deep3DFaceRecon R-Net state dict (``torch.load(ckpt)["net_recon"]``).

    Deep3DFaceRecon's R-Net is a ResNet-50 whose pooled features feed seven zero-initialised
    1×1 convolutions (``final_layers.0`` .. ``.6``: id, exp, tex, angles, gamma, trans xy,
    trans z) — the same rows as :class:`BaselineNet`'s linear layer, in the same order.
    It is fed raw [0, 1] RGB, so the input normalisation is set to mean 0 / std 1, and its
    decimetre translation becomes metres through the baseline's fixed output unit.

    Args:
        state_dict: keys ``backbone.*`` and ``final_layers.{0..6}.{weight,bias}``, optionally
            under a prefix such as ``net_recon.`` or ``module.``.

    Returns:
        A :class:`BaselineNet` in eval mode whose sizes are read from the final layers.

    Raises:
        WeightsError: final layers missing or of unexpected shapes, or backbone keys missing.
    """
    finals = {}
    for k, v in state_dict.items():
        _, sep, tail = k.partition("final_layers.")
        if sep:
            finals[tail] = v
    try:
        weights = [finals[f"{i}.weight"] for i in range(7)]
        biases = [finals[f"{i}.bias"] for i in range(7)]
    except KeyError as exc:
        raise WeightsError(f"not a Deep3DFaceRecon R-Net state dict: final layer {exc.args[0]!r} is missing") from exc
    rows = [w.shape[0] for w in weights]
    deep3d_rows = [CoeffLayout.n_angles, CoeffLayout.n_gamma, 2, 1]  # translation split as xy, z
    if rows[3:] != deep3d_rows or any(w.shape[1:] != (2048, 1, 1) for w in weights):
        raise WeightsError(
            "unexpected Deep3DFaceRecon final layers: rows "
            f"{rows} (expected id, exp, tex, 3, 27, 2, 1), weight shapes {[tuple(w.shape) for w in weights]}"
        )
    net = BaselineNet(rows[0], rows[1], rows[2])
    load_backbone_state_dict(net, state_dict)
    with torch.no_grad():
        net.fc.weight.copy_(torch.cat([w.flatten(1) for w in weights]))
        net.fc.bias.copy_(torch.cat(biases))
        net.input_mean.zero_()
        net.input_std.fill_(1.0)
    logger.info("built the baseline from a Deep3DFaceRecon R-Net (%s)", net.layout)
    return net.eval()
