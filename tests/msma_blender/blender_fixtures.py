"""Build :class:`msma_engine.result.FaceResult` objects from a face model without the pipeline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from msma_engine.eyes import eyeballs_for
from msma_engine.mouth import mouth_interior_for
from msma_engine.result import FaceResult, PhotoCamera


def make_face_result(model, seed: int = 0, image_path: str | None = "/photos/face.jpg",
                     exp_weights: np.ndarray | None = None, angles: np.ndarray | None = None,
                     texture_size: int = 32) -> FaceResult:
    """A plausible FaceResult: random identity/expression/texture/light, a small pose; the
    model's polygons, eyeballs and mouth interior when it has them."""
    rng = np.random.default_rng(seed)
    lay = model.layout
    coeffs = np.zeros(lay.total, np.float32)
    s = lay.slices()
    coeffs[s["id"]] = rng.normal(size=lay.n_id)
    rng_exp = model.expression_range.numpy()
    coeffs[s["exp"]] = (exp_weights if exp_weights is not None
                        else rng.uniform(rng_exp[:, 0], rng_exp[:, 1]))
    coeffs[s["tex"]] = rng.normal(size=lay.n_tex)
    coeffs[s["angles"]] = angles if angles is not None else [0.1, -0.2, 0.05]
    coeffs[s["gamma"]] = rng.normal(size=27) * 0.1
    coeffs[s["trans"]] = [0.01, -0.02, 0.03]
    with torch.no_grad():
        c = torch.as_tensor(coeffs)[None]
        out = model(c)
        parts = lay.split(c)
        neutral = model.shape(parts.id, torch.zeros_like(parts.exp))[0].numpy()
    texture = rng.integers(0, 256, size=(texture_size, texture_size, 3), dtype=np.uint8)
    return FaceResult(
        topology=model.topology, image_path=image_path, face_index=0, coeffs=coeffs,
        vertices_neutral=neutral, vertices_model=out.vertices_model[0].numpy(),
        vertices_world=out.vertices[0].numpy(), albedo_texture=texture, rotation=out.rotation[0].numpy(),
        landmarks_2d=out.landmarks_2d[0].numpy(), detected_landmarks=out.landmarks_2d[0].numpy(),
        face_box=np.array([0, 0, 224, 224], np.float32), crop_matrix=np.array([[1, 0, 0], [0, 1, 0]], np.float32),
        camera=PhotoCamera(focal=2030.0, center=(230.0, 220.0), image_size=(448, 460), distance=1.0),
        eyes=eyeballs_for(model, neutral), mouth=mouth_interior_for(model, coeffs[s["id"]]),
    )


def load_sphere_model_factory():
    """``make_sphere_model`` from tests/conftest.py (loaded by path: tests/ must not shadow msma_engine/)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("msma_tests_root_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_sphere_model
