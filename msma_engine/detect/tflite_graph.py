"""A converted TFLite graph run with PyTorch: MediaPipe's face models without MediaPipe.

``tools/convert_mediapipe.py`` turns each ``.tflite`` file into an ``.npz``
holding the operator list (JSON) and the constant tensors. :class:`TFLiteGraph`
executes that list operator by operator with ``torch.nn.functional``; it
supports exactly the operators the three MediaPipe face models use: the builtin
ones (2-D convolutions, depthwise convolutions, PReLU/ReLU, add, multiply, max
pooling, pad, reshape, concatenation, strided slice, bilinear resize,
depth-to-space) and MediaPipe's three custom operators of the attention mesh
model (``Landmarks2TransformMatrix``, ``TransformTensorBilinear``,
``TransformLandmarks``, version 2, ported from
``mediapipe/util/tflite/operations``).

Layout: TFLite tensors are NHWC; here every 4-D activation is kept NCHW (what
``torch`` convolves fastest) and converted only where an operator's meaning
depends on the layout (reshape, slicing, concatenation axis, custom operators).
Tensors of other ranks are kept as TFLite shapes them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from msma_engine.errors import ModelFileError

__all__ = ["TFLiteGraph", "load_graph"]

logger = logging.getLogger(__name__)

_ACT: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {
    None: lambda x: x,
    "relu": F.relu,
    "relu6": lambda x: x.clamp(0.0, 6.0),
    "relu_n1_to_1": lambda x: x.clamp(-1.0, 1.0),
    "tanh": torch.tanh,
}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def _from_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


class TFLiteGraph(torch.nn.Module):
    """One converted TFLite model.

    Args:
        graph: The converter's graph description (``json.loads`` of the ``graph`` entry).
        constants: Tensor id → constant array (float16 weights are cast to float32 here).

    Call it with the model's input as an NHWC float32 tensor, ``(1, H, W, 3)``;
    it returns the outputs, in the model's order, each shaped as in TFLite (NHWC).
    """

    def __init__(self, graph: dict, constants: dict[int, np.ndarray]) -> None:
        super().__init__()
        self.source = graph["source"]
        self.inputs = list(graph["inputs"])
        self.outputs = list(graph["outputs"])
        self.output_names = list(graph["output_names"])
        self.shapes = {int(k): list(v) for k, v in graph["shapes"].items()}
        self._consts: dict[int, torch.Tensor] = {}
        self._steps: list[tuple[Callable, list[int], list[int]]] = []
        for op in graph["ops"]:
            for i in op["in"]:
                if i in constants and i not in self._consts:
                    self._consts[i] = self._prepare_const(op, i, constants[i])
            self._steps.append((self._build(op), op["in"], op["out"]))

    # -- constants ---------------------------------------------------------------------------
    def _prepare_const(self, op: dict, tensor: int, value: np.ndarray) -> torch.Tensor:
        arr = np.asarray(value)
        t = torch.from_numpy(arr.astype(np.float32) if arr.dtype == np.float16 else arr.copy())
        kind = op["op"]
        if kind == "CONV_2D" and tensor == op["in"][1]:
            return t.permute(0, 3, 1, 2).contiguous()  # OHWI -> OIHW
        if kind == "DEPTHWISE_CONV_2D" and tensor == op["in"][1]:
            return t.permute(3, 0, 1, 2).contiguous()  # 1HW(C*M) -> (C*M)1HW
        if kind == "PRELU" and tensor == op["in"][1]:
            channels = self.shapes[op["in"][0]][-1]
            if t.numel() != channels:
                raise ModelFileError(
                    f"{self.source}: PReLU slopes {list(t.shape)} are not one per channel ({channels})")
            return t.reshape(channels)
        if t.dim() == 4 and t.is_floating_point():
            return _from_nhwc(t).contiguous()
        return t

    # -- operators ---------------------------------------------------------------------------
    def _build(self, op: dict) -> Callable:
        kind, opt = op["op"], op["opt"]
        out_shape = self.shapes[op["out"][0]]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            act = _ACT[opt["act"]]
            t, b, l, r = opt["pads"]
            stride, dil = tuple(opt["stride"]), tuple(opt["dilation"])
            groups = self.shapes[op["in"][0]][3] if kind == "DEPTHWISE_CONV_2D" else 1
            symmetric = t == b and l == r

            def conv(x, w, bias=None):
                if symmetric:
                    return act(F.conv2d(x, w, bias, stride, (t, l), dil, groups))
                return act(F.conv2d(F.pad(x, (l, r, t, b)), w, bias, stride, 0, dil, groups))

            return conv
        if kind == "MAX_POOL_2D":
            act = _ACT[opt["act"]]
            t, b, l, r = opt["pads"]
            kernel, stride = tuple(opt["kernel"]), tuple(opt["stride"])
            if (t, b, l, r) == (0, 0, 0, 0):
                return lambda x: act(F.max_pool2d(x, kernel, stride))
            return lambda x: act(F.max_pool2d(F.pad(x, (l, r, t, b), value=-math.inf), kernel, stride))
        if kind == "PRELU":
            return F.prelu
        if kind == "RELU":
            return F.relu
        if kind == "ADD":
            act = _ACT[opt["act"]]
            return lambda a, b: act(a + b)
        if kind == "MUL":
            act = _ACT[opt["act"]]
            return lambda a, b: act(a * b)
        if kind == "PAD":
            def pad(x, paddings):
                p = paddings.tolist()
                if len(p) == 4:
                    if p[0] != [0, 0]:
                        raise ModelFileError(f"{self.source}: padding the batch axis ({p[0]}) is not supported")
                    return F.pad(x, (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1]))
                return F.pad(x, tuple(v for pair in reversed(p) for v in pair))

            return pad
        if kind == "RESHAPE":
            return lambda x, *_: _from_nhwc(_to_nhwc(x).reshape(out_shape))
        if kind == "CONCATENATION":
            act = _ACT[opt["act"]]
            rank = len(out_shape)
            axis = opt["axis"] % rank
            axis = _NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis
            return lambda *xs: act(torch.cat(xs, dim=axis))
        if kind == "STRIDED_SLICE":
            bmask, emask = opt["begin_mask"], opt["end_mask"]

            def strided_slice(x, begin, end, strides):
                index = tuple(
                    slice(None if bmask >> d & 1 else int(begin[d]),
                          None if emask >> d & 1 else int(end[d]), int(strides[d]))
                    for d in range(len(begin))
                )
                return _from_nhwc(_to_nhwc(x)[index])

            return strided_slice
        if kind == "RESIZE_BILINEAR":
            size = tuple(out_shape[1:3])
            if opt["align_corners"]:
                return lambda x, _: F.interpolate(x, size=size, mode="bilinear", align_corners=True)
            if opt["half_pixel_centers"]:
                return lambda x, _: F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            return lambda x, _: _resize_bilinear_legacy(x, size)
        if kind == "DEPTH_TO_SPACE":
            bs = int(opt["block"])

            def depth_to_space(x):
                n, c, h, w = x.shape
                # TF order: output channel varies fastest within each (i, j) block position.
                y = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
                return y.reshape(n, c // (bs * bs), h * bs, w * bs)

            return depth_to_space
        if kind == "CUSTOM:Landmarks2TransformMatrix":
            return lambda lm: landmarks_to_transform_matrix(lm, opt)
        if kind == "CUSTOM:TransformTensorBilinear":
            size = tuple(out_shape[1:3])
            return lambda x, m: transform_tensor_bilinear(x, m, size)
        if kind == "CUSTOM:TransformLandmarks":
            return transform_landmarks
        raise ModelFileError(f"{self.source}: operator {kind} is not supported")

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the graph on ``(1, H, W, C)`` NHWC float32 input; returns the outputs (NHWC)."""
        expected = self.shapes[self.inputs[0]]
        if list(x.shape) != expected:
            raise ModelFileError(f"{self.source}: input must be {expected}, got {list(x.shape)}")
        values: dict[int, torch.Tensor] = dict(self._consts)
        values[self.inputs[0]] = _from_nhwc(x.float())
        for fn, ins, outs in self._steps:
            values[outs[0]] = fn(*(values[i] for i in ins if i >= 0))
        return [_to_nhwc(values[i]).contiguous() for i in self.outputs]


def _resize_bilinear_legacy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF's bilinear resize without half-pixel centres: source = destination × (in / out)."""
    n, c, h, w = x.shape
    ys = torch.arange(size[0], dtype=x.dtype) * (h / size[0])
    xs = torch.arange(size[1], dtype=x.dtype) * (w / size[1])
    y0, x0 = ys.floor().long(), xs.floor().long()
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    fy, fx = (ys - y0).view(1, 1, -1, 1), (xs - x0).view(1, 1, 1, -1)
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def landmarks_to_transform_matrix(landmarks: torch.Tensor, opt: dict) -> torch.Tensor:
    """MediaPipe's ``Landmarks2TransformMatrix`` v2: a crop around a landmark subset.

    Args:
        landmarks: ``(1, N, 3)`` landmarks in the feature map's pixel units.
        opt: The operator's options: ``left_rotation_idx``, ``right_rotation_idx``,
            ``target_rotation_radians``, ``subset_idxs``, ``scale_x``, ``scale_y``,
            ``output_width``, ``output_height``.

    Returns:
        ``(1, 4, 4)`` row-major matrix taking output-crop pixel ``(x, y, 0, 1)`` to
        feature-map pixels: rotated so the left→right landmark line is horizontal,
        centred on the subset's rotated bounding box, scaled to ``scale ×`` its size.
    """
    pts = landmarks[0, :, :2].detach().cpu().double().numpy()  # ~150 scalar steps: numpy, not torch
    left, right = pts[opt["left_rotation_idx"]], pts[opt["right_rotation_idx"]]
    rot = opt["target_rotation_radians"] - math.atan2(right[1] - left[1], right[0] - left[0])
    c, s = math.cos(rot), math.sin(rot)
    subset = pts[np.asarray(opt["subset_idxs"], dtype=np.int64)]
    rx = c * subset[:, 0] - s * subset[:, 1]
    ry = s * subset[:, 0] + c * subset[:, 1]
    w, h = rx.max() - rx.min(), ry.max() - ry.min()
    mx, my = 0.5 * (rx.max() + rx.min()), 0.5 * (ry.max() + ry.min())
    cx, cy = c * mx + s * my, -s * mx + c * my  # rotate the box centre back
    sx = opt["scale_x"] * w / opt["output_width"]
    sy = opt["scale_y"] * h / opt["output_height"]
    ox, oy = -0.5 * opt["output_width"], -0.5 * opt["output_height"]
    # shift(c) · rotate(-rot) · scale(sx, sy) · shift(-out/2), applied to column vectors.
    m = np.eye(4)
    m[0, 0], m[0, 1] = c * sx, s * sy
    m[1, 0], m[1, 1] = -s * sx, c * sy
    m[0, 3] = c * sx * ox + s * sy * oy + cx
    m[1, 3] = -s * sx * ox + c * sy * oy + cy
    return torch.from_numpy(m).float()[None]


def transform_tensor_bilinear(x: torch.Tensor, matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """MediaPipe's ``TransformTensorBilinear`` v2: sample ``x`` on a transformed grid.

    Args:
        x: ``(1, C, H, W)`` feature map (NCHW).
        matrix: ``(1, 4, 4)`` from :func:`landmarks_to_transform_matrix`; output pixel
            ``(u, v)`` samples ``x`` at ``M · (u + ½, v + ½, 0, 1) − ½`` (pixel centres).
        size: ``(out_h, out_w)``.

    Returns:
        ``(1, C, out_h, out_w)``; samples outside ``[0, W-1] × [0, H-1]`` are 0.
    """
    _, _, h, w = x.shape
    m = matrix[0].double()
    v, u = torch.meshgrid(torch.arange(size[0], dtype=torch.float64), torch.arange(size[1], dtype=torch.float64),
                          indexing="ij")
    tx = m[0, 0] * (u + 0.5) + m[0, 1] * (v + 0.5) + m[0, 3] - 0.5
    ty = m[1, 0] * (u + 0.5) + m[1, 1] * (v + 0.5) + m[1, 3] - 0.5
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    grid = torch.stack([tx / (w - 1) * 2 - 1, ty / (h - 1) * 2 - 1], dim=-1)[None].to(x.dtype)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    # Channels-last like the rest of the graph (its input is a permuted NHWC tensor).
    return (out * inside.to(x.dtype)).contiguous(memory_format=torch.channels_last)


def transform_landmarks(landmarks: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """MediaPipe's ``TransformLandmarks`` v2: ``(1, N, D)`` points' x, y through ``(1, 4, 4)``; z kept."""
    m = matrix[0]
    xy = landmarks[0, :, :2] @ m[:2, :2].T + m[:2, 3]
    return torch.cat([xy, landmarks[0, :, 2:]], dim=1)[None]


def load_graph(path: str | Path) -> TFLiteGraph:
    """Load a converted model file written by ``tools/convert_mediapipe.py``.

    Raises:
        ModelFileError: the file is missing or not a converted graph.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"converted MediaPipe model not found: {path} (run python -m tools.convert_mediapipe)")
    with np.load(path, allow_pickle=False) as data:
        if "graph" not in data.files:
            raise ModelFileError(f"{path} is not a converted TFLite graph (no 'graph' entry; has {data.files[:5]})")
        graph = json.loads(str(data["graph"]))
        constants = {int(k[1:]): data[k] for k in data.files if k.startswith("c")}
    return TFLiteGraph(graph, constants)
