"""Convert MediaPipe's face ``.tflite`` models once into ``msma_engine/data/mediapipe_*.npz``.

Reads the Apache-2.0 models shipped inside the ``mediapipe`` 0.10.21 wheel and
writes, per model, one ``.npz`` that :class:`msma_engine.detect.tflite_graph.TFLiteGraph`
runs with PyTorch — no MediaPipe, TensorFlow or flatbuffers at run time:

- ``graph``: a JSON string with the operator list in execution order (type,
  input/output tensor ids, options with SAME padding already resolved to explicit
  pads), the tensor shapes (TFLite's NHWC), the graph inputs and outputs;
- ``c<id>``: each constant tensor. Weights MediaPipe stores as float16 behind a
  ``DEQUANTIZE`` op stay float16 (the run-time cast is exactly that op); sparse
  weights behind ``DENSIFY`` (the full-range detector) are densified here.

Build-time only: needs ``mediapipe==0.10.21`` (for the files) and the PyPI
``tflite`` flatbuffer schema package (``pip install --no-deps tflite``).

Usage:
    python -m tools.convert_mediapipe [--out msma_engine/data]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MODELS = {
    "face_detection/face_detection_short_range.tflite": "mediapipe_face_detection_short_range.npz",
    "face_detection/face_detection_full_range_sparse.tflite": "mediapipe_face_detection_full_range.npz",
    "face_landmark/face_landmark_with_attention.tflite": "mediapipe_face_landmark_with_attention.npz",
}
"""Source model (under ``mediapipe/modules/``) → converted file name."""

_ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_PADDING = {0: "same", 1: "valid"}


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_")}


def _tensor_dtype(tflite, type_code: int) -> np.dtype:
    names = _enum_names(tflite.TensorType)
    table = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT64": np.int64,
             "UINT8": np.uint8, "INT8": np.int8}
    return np.dtype(table[names[type_code]])


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one spatial axis."""
    eff = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _densify(tensor, values: np.ndarray) -> np.ndarray:
    """Dense array of a TFLite sparse constant (dense leading dims, CSR innermost; no blocks)."""
    sp = tensor.Sparsity()
    shape = tuple(int(s) for s in tensor.ShapeAsNumpy())
    order = list(sp.TraversalOrderAsNumpy())
    if order != list(range(len(shape))) or sp.BlockMapLength():
        raise NotImplementedError(f"sparse tensor {tensor.Name()!r}: traversal {order}, block map not supported")
    dims = [sp.DimMetadata(d) for d in range(sp.DimMetadataLength())]
    if any(d.Format() != 0 for d in dims[:-1]) or dims[-1].Format() != 1:
        raise NotImplementedError(f"sparse tensor {tensor.Name()!r}: only dense…dense,CSR is supported")
    import tflite

    last = dims[-1]

    def index_vector(kind, table):
        cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
        vec = cls()
        vec.Init(table.Bytes, table.Pos)
        return vec.ValuesAsNumpy().astype(np.int64)

    segments = index_vector(last.ArraySegmentsType(), last.ArraySegments())
    indices = index_vector(last.ArrayIndicesType(), last.ArrayIndices())
    rows = int(np.prod(shape[:-1]))
    dense = np.zeros((rows, shape[-1]), dtype=values.dtype)
    for r in range(rows):
        lo, hi = segments[r], segments[r + 1]
        dense[r, indices[lo:hi]] = values[lo:hi]
    return dense.reshape(shape)


def _builtin_options(tflite, op, cls):
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def convert(path: Path) -> dict[str, np.ndarray]:
    """Read one ``.tflite`` file and return the arrays of its ``.npz`` (see module doc)."""
    import tflite
    from flatbuffers import flexbuffers

    buf = path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"{path}: expected one subgraph, found {model.SubgraphsLength()}")
    g = model.Subgraphs(0)
    op_names = _enum_names(tflite.BuiltinOperator)

    shapes = {i: [int(s) for s in g.Tensors(i).ShapeAsNumpy()] for i in range(g.TensorsLength())}
    consts: dict[int, np.ndarray] = {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() < model.BuffersLength() else 0
        if isinstance(data, np.ndarray) and data.size:
            arr = np.frombuffer(data.tobytes(), dtype=_tensor_dtype(tflite, t.Type()))
            consts[i] = arr if t.Sparsity() is not None else arr.reshape(shapes[i])

    ops = []
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [int(i) for i in op.InputsAsNumpy()]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        if name in ("DEQUANTIZE", "DENSIFY") and ins[0] in consts:
            src = g.Tensors(ins[0])
            value = _densify(src, consts[ins[0]]) if name == "DENSIFY" else consts[ins[0]]
            consts[outs[0]] = value  # float16 kept; the loader's cast to float32 is the DEQUANTIZE
            continue
        opt: dict = {}
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            kind = tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions
            o = _builtin_options(tflite, op, kind)
            kh, kw = shapes[ins[1]][1:3]
            ih, iw = shapes[ins[0]][1:3]
            stride = (o.StrideH(), o.StrideW())
            dil = (o.DilationHFactor(), o.DilationWFactor())
            if _PADDING[o.Padding()] == "same":
                pads = [*_same_pads(ih, kh, stride[0], dil[0]), *_same_pads(iw, kw, stride[1], dil[1])]
            else:
                pads = [0, 0, 0, 0]
            opt = {"stride": stride, "dilation": dil, "pads": pads, "act": _ACTIVATIONS[o.FusedActivationFunction()]}
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            o = _builtin_options(tflite, op, tflite.Pool2DOptions)
            ih, iw = shapes[ins[0]][1:3]
            kernel, stride = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
            if _PADDING[o.Padding()] == "same":
                pads = [*_same_pads(ih, kernel[0], stride[0]), *_same_pads(iw, kernel[1], stride[1])]
            else:
                pads = [0, 0, 0, 0]
            opt = {"kernel": kernel, "stride": stride, "pads": pads, "act": _ACTIVATIONS[o.FusedActivationFunction()]}
        elif name in ("ADD", "MUL"):
            o = _builtin_options(tflite, op, tflite.AddOptions if name == "ADD" else tflite.MulOptions)
            opt = {"act": _ACTIVATIONS[o.FusedActivationFunction()]}
        elif name == "CONCATENATION":
            o = _builtin_options(tflite, op, tflite.ConcatenationOptions)
            opt = {"axis": o.Axis(), "act": _ACTIVATIONS[o.FusedActivationFunction()]}
        elif name == "STRIDED_SLICE":
            o = _builtin_options(tflite, op, tflite.StridedSliceOptions)
            if o.EllipsisMask() or o.NewAxisMask() or o.ShrinkAxisMask():
                raise NotImplementedError(f"{path.name} op {k}: STRIDED_SLICE masks beyond begin/end")
            opt = {"begin_mask": o.BeginMask(), "end_mask": o.EndMask()}
        elif name == "RESIZE_BILINEAR":
            o = _builtin_options(tflite, op, tflite.ResizeBilinearOptions)
            opt = {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
        elif name == "DEPTH_TO_SPACE":
            opt = {"block": _builtin_options(tflite, op, tflite.DepthToSpaceOptions).BlockSize()}
        elif name == "CUSTOM":
            name = "CUSTOM:" + code.CustomCode().decode()
            if op.CustomOptionsLength():
                opt = flexbuffers.Loads(bytes(op.CustomOptionsAsNumpy()))
        elif name not in ("RELU", "PRELU", "PAD", "RESHAPE"):
            raise NotImplementedError(f"{path.name} op {k}: {name} is not supported by the converter")
        ops.append({"op": name, "in": ins, "out": outs, "opt": opt})

    used = {i for op in ops for i in op["in"]}
    graph = {
        "source": f"mediapipe/modules/{path.parent.name}/{path.name}",
        "inputs": [int(i) for i in g.InputsAsNumpy()],
        "outputs": [int(i) for i in g.OutputsAsNumpy()],
        "output_names": [g.Tensors(int(i)).Name().decode() for i in g.OutputsAsNumpy()],
        "shapes": {str(i): s for i, s in shapes.items() if i in used or i in {o for op in ops for o in op["out"]}},
        "ops": ops,
    }
    arrays = {"graph": np.array(json.dumps(graph))}
    for i in sorted(used & consts.keys()):
        arrays[f"c{i}"] = consts[i]
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "msma_engine" / "data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import mediapipe

    if mediapipe.__version__ != "0.10.21":
        raise SystemExit("error: expected mediapipe 0.10.21 (the wheel the licence note names), "
                         f"found {mediapipe.__version__}")
    modules = Path(mediapipe.__file__).parent / "modules"
    for src, dst in MODELS.items():
        arrays = convert(modules / src)
        np.savez_compressed(args.out / dst, **arrays)
        n_ops = len(json.loads(str(arrays["graph"]))["ops"])
        size = (args.out / dst).stat().st_size
        print(f"{src} -> {args.out / dst}: {n_ops} ops, {len(arrays) - 1} constants, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
