"""The synthetic generator: ground truth re-projects onto its own image; determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msma_engine.face_model import DEFAULT_MODEL_PATH, FaceModel, load_face_model
from training.config import SyntheticConfig
from training.data.synthetic import SyntheticFaces, sample_coefficients

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason=f"{DEFAULT_MODEL_PATH} not built")


@pytest.fixture(scope="module")
def head() -> FaceModel:
    return load_face_model()


def _near_mask(mask: torch.Tensor, points: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Whether each pixel point ``(N, 2)`` has a mask pixel within ``radius``."""
    m = torch.nn.functional.max_pool2d(mask[None, None].float(), 2 * radius + 1, 1, radius)[0, 0] > 0
    col = points[:, 0].floor().long().clamp(0, mask.shape[1] - 1)
    row = points[:, 1].floor().long().clamp(0, mask.shape[0] - 1)
    return m[row, col]


def test_ground_truth_reprojects(head):
    ds = SyntheticFaces(head, SyntheticConfig(max_yaw_deg=25, max_pitch_deg=10), seed=3, length=4, augment=False)
    for i in range(4):
        s = ds[i]
        out = head(s["coeffs"][None])
        assert torch.allclose(out.vertices[0], s["vertices"], atol=1e-6)
        assert torch.allclose(head.camera.project(s["vertices"][head.landmark_indices]), s["landmarks"], atol=1e-3)
        face = s["face_mask"][0]
        # Landmarks land on the rendered face (jaw points sit on the silhouette: 2 px slack).
        assert _near_mask(face, s["landmarks"]).all()
        # Every camera-facing vertex projects into the face mask, and the mask stays
        # inside the projected vertices' bounding box.
        facing = (out.normals[0] * (torch.tensor([0, 0, head.camera.distance]) - s["vertices"])).sum(-1) > 0.02
        pix = head.camera.project(s["vertices"][facing])
        assert _near_mask(face, pix).float().mean() > 0.99
        rows, cols = torch.nonzero(face, as_tuple=True)
        assert cols.min() >= pix[:, 0].min() - 3 and cols.max() <= pix[:, 0].max() + 3
        # The skin mask is a large part of the face mask.
        assert (s["mask"] <= s["face_mask"]).all() and s["mask"].sum() > 0.3 * face.sum()


def test_occluders_cut_the_skin_mask(head):
    clean = SyntheticFaces(head, SyntheticConfig(p_occluder=0.0), seed=5, length=3)
    occluded = SyntheticFaces(head, SyntheticConfig(p_occluder=1.0), seed=5, length=3)
    for i in range(3):
        a, b = clean[i], occluded[i]
        assert torch.equal(a["coeffs"], b["coeffs"]) and torch.equal(a["face_mask"], b["face_mask"])
        assert (b["mask"] <= a["mask"]).all() and b["mask"].sum() < a["mask"].sum()


def test_deterministic_per_seed_and_index(head):
    ds = SyntheticFaces(head, seed=11, length=5)
    a, b = ds[2], ds[2]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(ds[3]["image"], a["image"])
    other = SyntheticFaces(head, seed=12, length=5)[2]
    assert not torch.equal(other["coeffs"], a["coeffs"])
    assert a["image"].shape == (3, 224, 224) and a["image"].dtype == torch.float32
    assert 0.0 <= float(a["image"].min()) and float(a["image"].max()) <= 1.0


def test_pose_ranges(head):
    cfg = SyntheticConfig(max_yaw_deg=90, max_pitch_deg=30, max_roll_deg=20)
    sl = head.layout.slices()
    draws = torch.stack([sample_coefficients(head, cfg, np.random.default_rng([0, i])) for i in range(300)])
    ang = draws[:, sl["angles"]].abs().amax(0).rad2deg()
    assert ang[0] <= 30.001 and ang[1] <= 90.001 and ang[2] <= 20.001
    assert ang[1] > 70  # profiles are sampled
    exp = draws[:, sl["exp"]]
    lo, hi = head.expression_range[:, 0], head.expression_range[:, 1]
    assert ((exp >= lo - 1e-6) & (exp <= hi + 1e-6)).all()
    assert (exp != 0).float().sum(1).mean() < 0.2 * head.layout.n_exp  # sparse


def test_index_out_of_range(head):
    with pytest.raises(IndexError):
        SyntheticFaces(head, length=2)[2]


def test_plausible_expressions_never_pair_antagonists(head):
    """Default sampling: no exclusive pair both on, mouthClose only with a jaw at least as open;
    the old uniform sampling (``plausible_expressions=False``) does draw such pairs."""
    from msma_engine.expression_prior import REQUIRES, exclusive_pairs

    names = list(head.expression_names)
    pairs = np.array(exclusive_pairs(names))
    close, jaw = (names.index(n) for n in REQUIRES[0])

    def draws(plausible: bool) -> np.ndarray:
        cfg = SyntheticConfig(exp_active=6.0, plausible_expressions=plausible)
        lay = head.layout
        return np.stack([sample_coefficients(head, cfg, np.random.default_rng([7, i]))[lay.slices()["exp"]].numpy()
                         for i in range(300)])

    good, old = draws(True), draws(False)
    assert not np.any((good[:, pairs[:, 0]] > 0) & (good[:, pairs[:, 1]] > 0))
    assert np.all(good[:, jaw] >= good[:, close])
    assert (good > 0).sum(1).mean() > 4.5  # still about exp_active units on
    assert np.any((old[:, pairs[:, 0]] > 0) & (old[:, pairs[:, 1]] > 0))
