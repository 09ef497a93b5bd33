"""Dense landmarks, the ARKit expression prior and the Levenberg-Marquardt solver (issue 17).

Known answers: analytic Jacobians against autodiff, a bounded L1 problem with a closed-form
solution, the default head fitted to its own projected dense points, and the container's
optional keys.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from msma_engine.dense_landmarks import EYE_CORNERS, IRIS_LEFT, IRIS_RIGHT, N_DENSE
from msma_engine.errors import ModelFileError
from msma_engine.expression_prior import ExpressionPrior, eye_look_from_iris
from msma_engine.face_model import DEFAULT_MODEL_PATH, load_face_model
from msma_engine.fitting import FaceFitter, FitConfig, FitTarget, LandmarkRows, landmark_residuals, levenberg_marquardt
from msma_engine.model_file import load_face_model_data, save_face_model_data

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="default head not built")


@pytest.fixture(scope="module")
def model():
    return load_face_model()


def _coeffs(model, smile: float = 0.6, jaw: float = 0.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = model.layout.zeros(1)
    s, names = model.layout.slices(), model.expression_names
    c[0, s["id"]] = torch.randn(model.layout.n_id, generator=g)
    exp = torch.zeros(model.layout.n_exp)
    exp[names.index("mouthSmileLeft")] = exp[names.index("mouthSmileRight")] = smile
    exp[names.index("jawOpen")] = jaw
    c[0, s["exp"]] = exp
    c[0, s["angles"]] = torch.tensor([0.08, -0.25, 0.03])
    c[0, s["trans"]] = torch.tensor([0.004, -0.01, 0.02])
    return c


def _numeric_jacobian(f, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central differences (float64); torch.func would cost seconds of first-call set-up here."""
    cols = []
    for i in range(len(x)):
        e = torch.zeros_like(x)
        e[i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return torch.stack(cols, 1)


def test_model_has_a_dense_table_on_the_face(model):
    """The calibrated surface points lie on the face: inside the face region, eyes between brows and mouth."""
    assert model.dense_landmark_vertices.shape == (N_DENSE, 3)
    w = model.dense_landmark_weights
    assert torch.allclose(w.sum(1), torch.ones(N_DENSE), atol=1e-5) and (w >= 0).all()
    pts = LandmarkRows.of_surface(model, model.dense_landmark_vertices, w).mean
    # Mesh points: on the face region (iris points sit on the socket behind the eyelids).
    on_face = model.face_region[model.dense_landmark_vertices[:468]].any(1)
    assert on_face.float().mean() > 0.97
    # Anatomy: subject's right eye corner 33 at -x, left 263 at +x; nose tip 1 in front; chin 152 lowest.
    assert pts[33, 0] < -0.02 and pts[263, 0] > 0.02
    assert pts[1, 2] > pts[[33, 263], 2].max() + 0.01
    assert pts[152, 1] < pts[:468, 1].min() + 0.005


def test_landmark_jacobian_matches_finite_differences(model):
    """On the 68 landmark rows (same code path as the dense rows), with the jaw as an 'outline'."""
    rows = LandmarkRows.of_vertices(model, model.landmark_indices).to(torch.float64)
    c = model.layout.split(_coeffs(model).double())
    p = {k: getattr(c, k) for k in ("id", "exp", "angles", "trans")}
    target = torch.rand(68, 2, dtype=torch.float64) * 224
    scale = torch.rand(68, dtype=torch.float64)
    oval = torch.arange(17)
    normals = torch.nn.functional.normalize(torch.randn(17, 2, dtype=torch.float64), dim=-1)
    keys = ("id", "exp", "angles", "trans")
    r, jac = landmark_residuals(rows, model.camera, p, target, scale, oval, normals, keys)
    assert r.shape == (2 * (68 - 17) + 17,)
    sizes = [p[k].shape[1] for k in keys]

    def f(x):
        return landmark_residuals(rows, model.camera, dict(zip(keys, (v[None] for v in torch.split(x, sizes)))),
                                  target, scale, oval, normals)[0]

    num = _numeric_jacobian(f, torch.cat([p[k][0] for k in keys]))
    assert torch.allclose(jac, num, atol=1e-5 * num.abs().max())


def test_prior_jacobian_and_terms(model):
    prior = ExpressionPrior.for_model(model)
    assert prior.arkit and len(prior.pairs) > 10 and len(prior.sym) > 10
    exp = torch.rand(model.layout.n_exp, dtype=torch.float64)
    _, jac = prior.residuals_and_jacobian(exp, 2.0)
    assert torch.allclose(jac, _numeric_jacobian(lambda e: prior.residuals(e, 2.0), exp), atol=1e-6)
    # tongueOut does not move this mesh: pinned to 0. Antagonists are reported.
    t = model.expression_names.index("tongueOut")
    assert prior.lower[t] == prior.upper[t] == 0
    e = np.zeros(model.layout.n_exp)
    e[[model.expression_names.index("jawLeft"), model.expression_names.index("jawRight")]] = 0.5
    assert prior.violations(e) == [("jawLeft", "jawRight")]
    # A PCA-like basis gets the Gaussian prior only.
    assert not ExpressionPrior.gaussian_only(model).arkit


def test_levenberg_marquardt_bounded_l1_known_answer():
    """min Σ (x − a)² + λ Σ x, x ≥ 0 has the solution max(a − λ/2, 0) (a soft threshold)."""
    a = torch.tensor([1.0, 0.3, -0.5, 0.05], dtype=torch.float64)
    lam = torch.full((4,), 0.2, dtype=torch.float64)
    x = levenberg_marquardt(lambda v: (v - a, torch.eye(4, dtype=torch.float64)), torch.full((4,), 0.5,
                            dtype=torch.float64), 20, lower=torch.zeros(4, dtype=torch.float64), linear=lam)
    assert torch.allclose(x, torch.clamp(a - 0.1, min=0.0), atol=1e-9)


def test_eye_look_from_iris():
    pts = np.zeros((N_DENSE, 2))
    for side, iris, x in (("R", IRIS_RIGHT, 80.0), ("L", IRIS_LEFT, 140.0)):
        outer, inner = EYE_CORNERS[side]
        sign = -1 if side == "R" else 1  # the subject's right eye is on the image's left
        pts[outer], pts[inner] = (x + sign * 15, 100), (x - sign * 15, 100)
        pts[list(iris)] = (x, 100)
    centred = eye_look_from_iris(pts)
    assert len(centred) == 8 and max(centred.values()) == 0.0
    pts[list(IRIS_RIGHT)] = (80 - 7.5, 100)  # right iris halfway to its outer corner: looking out, fully
    pts[list(IRIS_LEFT)] = (140 - 7.5, 100)  # left iris towards the nose: looking in
    w = eye_look_from_iris(pts)
    assert w["eyeLookOutRight"] == pytest.approx(1.0) and w["eyeLookInRight"] == 0.0
    assert w["eyeLookInLeft"] == pytest.approx(1.0) and w["eyeLookOutLeft"] == 0.0
    assert w["eyeLookUpRight"] == w["eyeLookDownRight"] == 0.0


def test_dense_fit_recovers_a_smile_from_the_models_own_points(model):
    """Fitted to its own projected dense points, the head comes back smiling, on the right pose, without a pout.

    The debiasing refit recovers the true 0.6 smile (0.57); without it the sparsity
    prior shrinks it to about 0.4 (checked below, so the refit is seen to matter).
    """
    truth = _coeffs(model)
    fitter = FaceFitter(model, FitConfig(light_rounds=0, photo_steps=0))
    with torch.no_grad():
        dense = fitter.dense_points(truth)
        lm = model(truth).landmarks_2d
    target = FitTarget(image=torch.zeros(1, 3, 224, 224), landmarks=lm, valid=torch.ones(1, 1, 224, 224), dense=dense)
    out = fitter.fit(target)
    c, t = model.layout.split(out.coeffs), model.layout.split(truth)
    w = dict(zip(model.expression_names, c.exp[0].tolist()))
    assert abs(w["mouthSmileLeft"] - 0.6) < 0.08 and abs(w["mouthSmileRight"] - 0.6) < 0.08, w
    assert abs(w["jawOpen"] - 0.3) < 0.05, w
    assert out.scores.prior_strength < 0.5  # exact points: the priors were relaxed
    # ... and more so once the noise is measured again on the relaxed fit (a fixed point).
    once = FaceFitter(model, FitConfig(light_rounds=0, photo_steps=0, noise_rounds=1)).fit(target)
    assert out.scores.prior_strength < once.scores.prior_strength < 0.5
    lasso = FaceFitter(model, FitConfig(light_rounds=0, photo_steps=0, debias_iters=0)).fit(target)
    assert lasso.scores.prior_strength == 1.0
    assert max(model.layout.split(lasso.coeffs).exp[0, model.expression_names.index(k)]
               for k in ("mouthSmileLeft", "mouthSmileRight")) < 0.45
    assert max(w["mouthFunnel"], w["mouthPucker"], w["mouthRollUpper"], w["mouthRollLower"]) < 0.1, w
    assert not fitter.prior.violations(c.exp[0].numpy())
    assert torch.allclose(c.angles, t.angles, atol=0.03)
    assert out.scores.dense_nme_fit < 0.01
    # Held-out points: fitting on half of them predicts the other half.
    mask = torch.zeros(N_DENSE, dtype=torch.bool)
    mask[::2] = True
    held = fitter.fit(replace(target, dense_mask=mask)).coeffs
    err = (fitter.dense_points(held) - dense)[0, 1::2].norm(dim=-1).mean() / (lm[0, 45] - lm[0, 36]).norm()
    assert err < 0.015


def test_noisy_points_keep_the_full_prior(model):
    """Detector-like noise (σ = 0.02 IOD per point) leaves the priors at full strength."""
    truth = _coeffs(model)
    fitter = FaceFitter(model, FitConfig(light_rounds=0, photo_steps=0))
    with torch.no_grad():
        dense = fitter.dense_points(truth)
        lm = model(truth).landmarks_2d
    iod = float((lm[0, 45] - lm[0, 36]).norm())
    noise = torch.randn(dense.shape, generator=torch.Generator().manual_seed(0)) * 0.02 * iod / 2 ** 0.5
    out = fitter.fit(FitTarget(image=torch.zeros(1, 3, 224, 224), landmarks=lm, valid=torch.ones(1, 1, 224, 224),
                               dense=dense + noise))
    assert out.scores.prior_strength == 1.0


def test_relaxed_prior_keeps_the_support_and_drops_the_l1(model):
    prior = ExpressionPrior.for_model(model)
    names = model.expression_names
    idx = names.index
    support = torch.zeros(len(names), dtype=torch.bool)
    support[[idx("mouthSmileLeft"), idx("mouthSmileRight"), idx("jawLeft"), idx("browDownLeft")]] = True
    pinned = prior.pinned({"eyeLookUpLeft": 0.4})
    relaxed = pinned.relaxed(support)
    assert relaxed.linear(1.0) == 0.0 and prior.linear(1.0) > 0
    assert pinned.relaxed(support, keep=0.5).linear(1.0) == pytest.approx(0.5 * prior.linear(1.0))
    off = ~support
    off[idx("eyeLookUpLeft")] = False
    assert torch.all(relaxed.upper[off] == 0) and torch.all(relaxed.lower[off] == 0)
    assert relaxed.upper[idx("mouthSmileLeft")] == prior.upper[idx("mouthSmileLeft")]
    assert relaxed.lower[idx("eyeLookUpLeft")] == relaxed.upper[idx("eyeLookUpLeft")] == 0.4
    assert len(relaxed.pairs) == len(prior.pairs)
    # Left/right coupling: kept inside the support, dropped (keep = 0) where the partner is pinned
    # to 0 — else it would pull a one-sided browDownLeft down.
    exp = torch.zeros(len(names), dtype=torch.float64)
    exp[idx("browDownLeft")], exp[idx("mouthSmileLeft")] = 0.5, 0.5
    r_full, r_relaxed = prior.residuals(exp, 1.0), relaxed.residuals(exp, 1.0)
    sym_rows = slice(len(names) + len(prior.pairs), len(names) + len(prior.pairs) + len(prior.sym))
    pairs = {tuple(p): k for k, p in enumerate(prior.sym.tolist())}
    brow = pairs[(idx("browDownLeft"), idx("browDownRight"))]
    smile = pairs[(idx("mouthSmileLeft"), idx("mouthSmileRight"))]
    assert r_full[sym_rows][brow] > 0 and r_relaxed[sym_rows][brow] == 0
    assert r_relaxed[sym_rows][smile] == r_full[sym_rows][smile] > 0
    rand = torch.rand(len(names), dtype=torch.float64, generator=torch.Generator().manual_seed(1))  # no ties
    _, jac = relaxed.residuals_and_jacobian(rand, 2.0)
    assert torch.allclose(jac, _numeric_jacobian(lambda e: relaxed.residuals(e, 2.0), rand), atol=1e-6)


def test_68_point_fallback_without_dense_points(model):
    truth = _coeffs(model, smile=0.0, jaw=0.0)
    with torch.no_grad():
        lm = model(truth).landmarks_2d
    out = FaceFitter(model, FitConfig(light_rounds=0, photo_steps=0)).fit(
        FitTarget(image=torch.zeros(1, 3, 224, 224), landmarks=lm, valid=torch.ones(1, 1, 224, 224)))
    assert out.scores.dense_nme_fit is None and out.scores.landmark_nme_fit < 0.02


def test_container_optional_dense_keys(tmp_path):
    data = load_face_model_data(DEFAULT_MODEL_PATH)
    path = save_face_model_data(data, tmp_path / "m.npz", compress=False)
    again = load_face_model_data(path)
    assert np.array_equal(again.dense_landmark_vertices, data.dense_landmark_vertices)
    bare = replace(data, dense_landmark_vertices=None, dense_landmark_weights=None)
    saved = save_face_model_data(bare, tmp_path / "b.npz", compress=False)
    assert load_face_model_data(saved).dense_landmark_vertices is None
    bad = replace(data, dense_landmark_weights=data.dense_landmark_weights * 2)
    with pytest.raises(ModelFileError, match="sum to 1"):
        bad.validate()
    with pytest.raises(ModelFileError, match="together"):
        replace(data, dense_landmark_weights=None).validate()
