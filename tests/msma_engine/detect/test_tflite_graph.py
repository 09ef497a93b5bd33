"""Tests for the TFLite graph runner's operators, checked against direct definitions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from msma_engine.detect import tflite_graph as tg
from msma_engine.errors import ModelFileError


def _options(**kw):
    base = {"target_rotation_radians": 0.0, "scale_x": 1.0, "scale_y": 1.0, "output_width": 8, "output_height": 8}
    return {**base, **kw}


class TestLandmarksToTransformMatrix:
    def test_rotated_square_maps_output_corners_to_its_corners(self):
        # A square of side 10 centred at (20, 30), turned by 30°: left/right points 0 and 1 on one side.
        angle = math.radians(30)
        c, s = math.cos(angle), math.sin(angle)
        local = np.array([[-5, -5], [5, -5], [5, 5], [-5, 5]], float)
        pts = local @ np.array([[c, s], [-s, c]]) + [20, 30]
        lm = torch.tensor(np.c_[pts, np.zeros(4)], dtype=torch.float32)[None]
        m = tg.landmarks_to_transform_matrix(lm, _options(left_rotation_idx=0, right_rotation_idx=1,
                                                          subset_idxs=[0, 1, 2, 3])).double()[0]
        # Output pixel (u, v) of an 8×8 crop, scale 1: corners (0, 0) and (8, 8) land on the square's corners.
        for (u, v), want in (((0, 0), pts[0]), ((8, 0), pts[1]), ((8, 8), pts[2]), ((0, 8), pts[3])):
            got = (m @ torch.tensor([u, v, 0.0, 1.0], dtype=torch.float64))[:2].numpy()
            np.testing.assert_allclose(got, want, atol=1e-4)

    def test_scale_grows_the_crop_about_its_centre(self):
        pts = np.array([[0, 0], [10, 0], [10, 4], [0, 4]], float)
        lm = torch.tensor(np.c_[pts, np.zeros(4)], dtype=torch.float32)[None]
        m = tg.landmarks_to_transform_matrix(lm, _options(left_rotation_idx=0, right_rotation_idx=1, subset_idxs=[0, 2],
                                                          scale_x=2.0, scale_y=1.5))[0].double()
        corner = (m @ torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64))[:2].numpy()
        np.testing.assert_allclose(corner, [5 - 10, 2 - 3], atol=1e-5)


class TestTransformTensorBilinear:
    def test_identity_matrix_reproduces_the_input(self):
        x = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
        out = tg.transform_tensor_bilinear(x, torch.eye(4)[None], (5, 6))
        torch.testing.assert_close(out, x)

    def test_half_pixel_shift_averages_neighbours_and_zeroes_outside(self):
        x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
        m = torch.eye(4)
        m[0, 3] = 0.5
        out = tg.transform_tensor_bilinear(x, m[None], (4, 4))[0, 0]
        torch.testing.assert_close(out[:, :3], 0.5 * (x[0, 0, :, :3] + x[0, 0, :, 1:]))
        assert torch.all(out[:, 3] == 0), "samples right of the last column are outside and must be 0"


def test_transform_landmarks_moves_xy_keeps_z():
    m = torch.eye(4)
    m[0, 1], m[0, 3], m[1, 3] = 1.0, 2.0, -1.0
    pts = torch.tensor([[[1.0, 2.0, 7.0], [0.0, 0.0, -3.0]]])
    out = tg.transform_landmarks(pts, m[None])
    torch.testing.assert_close(out, torch.tensor([[[5.0, 1.0, 7.0], [2.0, -1.0, -3.0]]]))


def _tiny_graph(op: dict, shapes: dict, consts: dict | None = None) -> tg.TFLiteGraph:
    graph = {"source": "test", "inputs": [0], "outputs": [op["out"][0]], "output_names": ["y"],
             "shapes": {str(k): v for k, v in shapes.items()}, "ops": [op]}
    return tg.TFLiteGraph(json.loads(json.dumps(graph)), consts or {})


def test_depth_to_space_follows_tensorflow_order():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(1, 2, 3, 8)  # NHWC, block 2 -> 2 channels
    g = _tiny_graph({"op": "DEPTH_TO_SPACE", "in": [0], "out": [1], "opt": {"block": 2}},
                    {0: [1, 2, 3, 8], 1: [1, 4, 6, 2]})
    (y,) = g(x)
    xn = x.numpy()
    for h in range(4):
        for w in range(6):
            i, j = h % 2, w % 2
            c = (i * 2 + j) * 2
            np.testing.assert_array_equal(y[0, h, w].numpy(), xn[0, h // 2, w // 2, c:c + 2])


def test_same_padding_convolution_matches_a_manual_sum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 5, 2)).astype(np.float32)
    w = rng.normal(size=(3, 2, 2, 2)).astype(np.float32)  # OHWI, 2×2 kernel, stride 2 -> pads (0, 1)
    g = _tiny_graph({"op": "CONV_2D", "in": [0, 1, -1], "out": [2],
                     "opt": {"stride": [2, 2], "dilation": [1, 1], "pads": [0, 1, 0, 1], "act": None}},
                    {0: [1, 5, 5, 2], 1: [3, 2, 2, 2], 2: [1, 3, 3, 3]}, {1: w})
    (y,) = g(torch.from_numpy(x))
    xp = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    want = np.array([[[np.sum(xp[0, 2 * r:2 * r + 2, 2 * c:2 * c + 2, :] * w[o]) for o in range(3)]
                      for c in range(3)] for r in range(3)])[None]
    np.testing.assert_allclose(y.numpy(), want, atol=1e-5)


def test_wrong_input_shape_and_missing_file_raise(tmp_path):
    g = _tiny_graph({"op": "RELU", "in": [0], "out": [1], "opt": {}}, {0: [1, 2, 2, 1], 1: [1, 2, 2, 1]})
    with pytest.raises(ModelFileError, match=r"input must be \[1, 2, 2, 1\], got \[1, 3, 3, 1\]"):
        g(torch.zeros(1, 3, 3, 1))
    with pytest.raises(ModelFileError, match="not found"):
        tg.load_graph(tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ModelFileError, match="not a converted TFLite graph"):
        tg.load_graph(tmp_path / "other.npz")
