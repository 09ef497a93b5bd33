"""Mouth interior (teeth, tongue) of the default head (msma_engine/mouth.py), checked by ray casting."""

import numpy as np
import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.face_model import FaceModel, load_face_model
from msma_engine.mouth import mouth_interior_for
from sphere_model import make_sphere_model

CAMERA = np.array([0.0, 0.0, 1.0])  # the engine's default camera, metres, model frame


@pytest.fixture(scope="module")
def model():
    return load_face_model()


def _first_hits(origins: np.ndarray, targets: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(R,) bool: the segment origin -> target crosses any of the (F, 3, 3) triangles (Moller-Trumbore)."""
    out = np.zeros(len(origins), bool)
    e1, e2 = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    for i, (o, t) in enumerate(zip(origins, targets)):
        d = t - o
        p = np.cross(d, e2)
        det = np.einsum("fc,fc->f", e1, p)
        ok = np.abs(det) > 1e-18
        inv = 1.0 / np.where(ok, det, 1.0)
        s = o - tris[:, 0]
        u = np.einsum("fc,fc->f", s, p) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        tt = np.einsum("fc,fc->f", q, e2) * inv
        out[i] = np.any(ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (tt > 1e-6) & (tt < 1))
    return out


def _identities(model, n=3):
    g = torch.Generator().manual_seed(11)
    return [np.zeros(model.layout.n_id, np.float32)] + [
        torch.randn(model.layout.n_id, generator=g).numpy() for _ in range(n - 1)]


def _visible_fraction(model, id_coeffs, weights):
    """Per part, the fraction of interior vertices the camera sees (no head triangle in between)."""
    with torch.no_grad():
        head = model.shape(torch.as_tensor(id_coeffs)[None], torch.as_tensor(weights, dtype=torch.float32)[None])[0]
    head = head.numpy().astype(np.float64)
    mouth = mouth_interior_for(model, id_coeffs)
    verts = mouth.posed(weights)
    tris = head[model.triangles.numpy()]
    out = {}
    for part in mouth.part_names:
        pv = verts[mouth.part_vertices(part)]
        out[part] = 1.0 - _first_hits(pv, np.broadcast_to(CAMERA, pv.shape), tris).mean()
    return out, mouth, head


def test_parts_and_identity(model):
    a, b = _identities(model, 2)
    ma, mb = mouth_interior_for(model, a), mouth_interior_for(model, b)
    assert ma.part_names == ["upper_teeth", "lower_teeth", "tongue"]
    assert ma.vertices_neutral.shape == (len(ma.mean), 3) and len(ma.polygons) == len(ma.part)
    # The teeth follow the identity (MakeHuman fits its helpers to every modifier).
    assert np.abs(mb.vertices_neutral - ma.vertices_neutral).max() > 5e-4
    # Behind the lips, in the middle of the face.
    lm = model.mean_shape.numpy()[model.landmark_indices.numpy()]
    assert ma.vertices_neutral[:, 2].max() < lm[60:68, 2].max()
    assert abs(ma.vertices_neutral[:, 0].mean()) < 2e-3


def test_jaw_keys_move_lower_teeth_and_tongue_only(model):
    mouth = mouth_interior_for(model, _identities(model, 1)[0])
    names = mouth.expression_names
    upper, lower, tongue = (mouth.part_vertices(p) for p in mouth.part_names)
    for key in ("jawOpen", "jawLeft", "jawRight", "jawForward"):
        d = np.linalg.norm(mouth.exp_basis[names.index(key)], axis=1)
        assert d[upper].max() < 1e-6 and d[lower].max() > 2e-3 and d[tongue].max() > 2e-3, key
    w = np.zeros(len(names))
    w[names.index("jawOpen")] = 1
    assert mouth.posed(w)[lower, 1].mean() < mouth.vertices_neutral[lower, 1].mean() - 0.01  # drops > 1 cm
    assert {names[k] for k in mouth.moving_keys()} >= {"jawOpen", "jawLeft", "jawRight", "jawForward", "tongueOut"}
    assert "mouthSmileLeft" not in {names[k] for k in mouth.moving_keys()}


@pytest.mark.parametrize("which", [0, 1, 2])
def test_hidden_at_rest_visible_with_jaw_open(model, which):
    id_coeffs = _identities(model)[which]
    names = model.expression_names
    rest, mouth, head = _visible_fraction(model, id_coeffs, np.zeros(len(names)))
    # At rest the lips are parted by about a millimetre: a few vertices show through the gap,
    # none in front of the lips.
    assert all(f <= 0.05 for f in rest.values()), rest
    lm = head[model.landmark_indices.numpy()]
    assert mouth.vertices_neutral[:, 2].max() < lm[48:68, 2].max()
    w = np.zeros(len(names))
    w[names.index("jawOpen")] = 1
    opened, _, _ = _visible_fraction(model, id_coeffs, w)
    assert opened["tongue"] > 0.3 and opened["lower_teeth"] > 0.04, opened


def test_reseated_recovers_the_identity(model):
    a, b = _identities(model, 3)[1:]
    with torch.no_grad():
        head_b = model.shape(torch.as_tensor(b)[None], torch.zeros(1, model.layout.n_exp))[0].numpy()
    moved = mouth_interior_for(model, a).reseated(head_b)
    np.testing.assert_allclose(moved.vertices_neutral, mouth_interior_for(model, b).vertices_neutral, atol=2e-5)
    with pytest.raises(ShapeError):
        moved.reseated(np.zeros((5, 3)))
    with pytest.raises(ShapeError):
        moved.posed(np.zeros(3))


def test_no_interior_without_the_arrays():
    sphere = FaceModel(make_sphere_model())
    assert sphere.interior is None
    assert mouth_interior_for(sphere, np.zeros(sphere.layout.n_id)) is None
