"""The mouth interior stays behind the skin in the jaw and mouth poses (msma_engine/mouth_clearance.py).

The judge here is independent of the module's own criterion: an interior vertex *pokes
through* when a camera sees it (no head triangle between them) although it is not seen
through the mouth opening (its image lies outside the image of the inner-lip rim).
"""

import numpy as np
import pytest
import torch

from msma_engine.face_model import load_face_model
from msma_engine.mouth import mouth_interior_for
from msma_engine.mouth_clearance import cavity_triangles, fit_behind_skin, segment_crossings, skin_exits

from test_mouth import _first_hits

# Identity coefficients fitted to /work/shared/data/photos/obama_official_portrait.jpg
# (public domain; fit="default"): with them the lower teeth used to come out through the
# chin below the lip corners at jawOpen = 1.
OBAMA_ID = np.array([
    -1.6647, 0.4368, 0.8078, -1.3913, -0.2703, -0.8580, 0.1701, 0.9498, -0.9119, -0.1154, 0.9270, -0.0534,
    -0.4812, 0.5800, -0.6798, 0.1581, -0.5038, 0.2626, 0.4424, -0.9394, -0.4842, 1.9710, -1.4595, 0.2120,
    0.5190, -1.0202, 1.2621, 0.2211, 0.3648, 0.3261, 1.2102, -2.1246, -0.0250, -0.4684, -0.5819, 0.7263,
    0.4876, -1.0604, 0.5198, 0.3907, 0.1378, 0.3021, -1.0516, 0.3395, 0.2165, 0.2838, -0.4707, -0.9285,
    -1.4042, 0.3824, 0.5996, 1.0594, -0.1282, 0.5739, -0.2257, -0.3424, -0.0773, 0.1271, 0.0660, 0.5167,
    0.4485, -0.6099, -0.8658, -0.1096, 0.4573, -0.1755, -0.8293, -0.8228, -0.4552, 0.5134, 0.4875, -0.8452,
    0.8511, -0.2339, -0.8115, -0.0609, -1.3611, -0.3534, 0.4838, 0.1033])

# Cameras (metres, model frame): front, 20 degrees to each side and from below.
CAMERAS = [np.array([0.0, 0.0, 1.0]), np.array([np.sin(0.35), 0.0, np.cos(0.35)]),
           np.array([-np.sin(0.35), 0.0, np.cos(0.35)]), np.array([0.0, -np.sin(0.35), np.cos(0.35)])]
POSES = ({"jawOpen": 1.0}, {"jawOpen": 1.0, "mouthSmileLeft": 0.6, "mouthSmileRight": 0.6},
         {"jawForward": 1.0}, {"jawLeft": 1.0}, {"jawRight": 1.0}, {"mouthClose": 1.0}, {})


@pytest.fixture(scope="module")
def model():
    return load_face_model()


@pytest.fixture(scope="module")
def rim(model):
    """The inner-lip rim: the boundary loop of the mouth cavity's lining, in order."""
    lm = model.mean_shape.numpy()[model.landmark_indices.numpy()]
    lining = cavity_triangles(model, lm[60:68].mean(axis=0).astype(np.float64))
    tris = model.triangles.numpy()[lining]
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    edges, count = np.unique(edges, axis=0, return_counts=True)
    nbr = {}
    for a, b in edges[count == 1]:
        nbr.setdefault(a, []).append(b)
        nbr.setdefault(b, []).append(a)
    assert all(len(v) == 2 for v in nbr.values()), "the lining's border is not one loop"
    loop, prev = [int(edges[count == 1][0, 0])], None
    while True:
        nxt = next(x for x in nbr[loop[-1]] if x != prev)
        if nxt == loop[0]:
            break
        prev = loop[-1]
        loop.append(int(nxt))
    assert len(loop) == len(nbr)
    return np.array(loop)


def _inside_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(N,) bool: even-odd rule, 2D."""
    x, y = pts[:, :1], pts[:, 1:]
    x0, y0 = poly[None, :, 0], poly[None, :, 1]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    crosses = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-30, y1 - y0))
    return crosses.sum(axis=1) % 2 == 1


def _project(points: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Pinhole image coordinates of ``points`` for a camera at ``cam`` looking at the origin."""
    fwd = -cam / np.linalg.norm(cam)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    rel = points - cam
    depth = rel @ fwd
    return np.stack([rel @ right / depth, rel @ up / depth], axis=1)


def _poking(model, rim, mouth, id_coeffs, pose: dict) -> dict:
    """Per camera, the interior vertices seen from outside the mouth opening."""
    w = np.zeros(len(model.expression_names))
    for k, v in pose.items():
        w[model.expression_names.index(k)] = v
    with torch.no_grad():
        head = model.shape(torch.as_tensor(id_coeffs, dtype=torch.float32)[None],
                           torch.as_tensor(w, dtype=torch.float32)[None])[0].numpy().astype(np.float64)
    verts = mouth.posed(w).astype(np.float64)
    tris = head[model.triangles.numpy()]
    # Only the front of the face can hide the interior from these cameras.
    lo, hi = verts.min(axis=0) - 0.04, verts.max(axis=0) + 0.04
    near = (tris.max(axis=1) >= lo).all(axis=1) & (tris.min(axis=1) <= hi).all(axis=1)
    out = {}
    for cam in CAMERAS:
        seen = ~_first_hits(verts, np.broadcast_to(cam, verts.shape), tris[near])
        through_opening = _inside_polygon(_project(verts, cam), _project(head[rim], cam))
        bad = np.flatnonzero(seen & ~through_opening)
        if len(bad):
            out[tuple(np.round(cam, 2))] = bad
    return out


def test_segment_crossings_and_exits():
    # Two parallel squares (lining at z = 0.03, skin at z = 0.05) crossed by segments along +z.
    def square(z):
        c = np.array([[-1, -1, z], [1, -1, z], [1, 1, z], [-1, 1, z]], float)
        return [c[[0, 1, 2]], c[[0, 2, 3]]]
    tris = np.array(square(0.03) + square(0.05))
    lining = np.array([True, True, False, False])
    origins = np.zeros((3, 3))
    ends = np.array([[0.1, 0.2, 0.04], [0.1, 0.2, 0.08], [0.3, -0.2, 0.02]])
    seg, tri, t = segment_crossings(origins, ends, tris)
    assert seg.tolist() == [0, 1, 1] and tri[1] in (0, 1) and tri[2] in (2, 3)
    np.testing.assert_allclose(t, [0.03 / 0.04, 0.03 / 0.08, 0.05 / 0.08])
    # Into the flesh through the lining only: no exit; through both: out at z = 0.05.
    np.testing.assert_allclose(skin_exits(origins, ends, tris, lining), [np.inf, 0.05 / 0.08, np.inf])


def test_fit_shrinks_a_part_behind_a_skin_plane(caplog):
    # A part around the origin whose front vertex pokes 1 cm out of the skin at z = 0.05.
    part = np.array([[0.06, 0, 0], [0, 0.06, 0], [-0.06, 0, 0], [0, -0.06, 0], [0, 0, 0.06], [0, 0, -0.06]])
    skin = np.array([[-1, -1, 0.03], [1, -1, 0.03], [1, 1, 0.03], [-1, 1, 0.03],
                     [-1, -1, 0.05], [1, -1, 0.05], [1, 1, 0.05], [-1, 1, 0.05]], float)
    tris = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    lining = np.array([True, True, False, False])
    no_exp = np.zeros((1, 6, 3))

    def fit(skin_shift, keys):  # keys: indices of the (single) expression checked at weight 1
        skin_exp = np.zeros((1, 8, 3))
        skin_exp[0, :, 2] = skin_shift
        out, exp_out, scales = fit_behind_skin(part, no_exp, [np.arange(6)], skin, skin_exp, tris, lining,
                                               np.eye(1)[keys], margin=0.001)
        return out, scales

    fitted, scales = fit(0.0, [])
    assert 0.045 < fitted[:, 2].max() <= 0.049 + 1e-9, fitted[:, 2].max()
    assert scales[0] == pytest.approx(fitted[4, 2] / 0.06)
    np.testing.assert_allclose(fitted / scales[0], part)  # a uniform scale about the centroid
    # A key that moves the skin 5 mm back needs a further shrink; the rest pose alone does not.
    assert fit(-0.005, [])[0][:, 2].max() == pytest.approx(fitted[:, 2].max())
    assert 0.040 < fit(-0.005, [0])[0][:, 2].max() <= 0.044 + 1e-9
    # A key that moves the part itself: every pose stays a scaled copy about its own centroid.
    part_exp = np.zeros((1, 6, 3))
    part_exp[0, 4] = (0.0, 0.01, 0.006)  # the front vertex moves up and 6 mm out
    out, exp_out, (s,) = fit_behind_skin(part, part_exp, [np.arange(6)], skin, np.zeros((1, 8, 3)), tris, lining,
                                         np.eye(1), margin=0.001)
    posed, posed_fit = part + part_exp[0], out + exp_out[0]
    c = posed.mean(axis=0)
    np.testing.assert_allclose(posed_fit, c + s * (posed - c), atol=1e-12)
    assert posed_fit[4, 2] <= 0.049 + 1e-9 and posed_fit[4, 2] > 0.047, posed_fit[4]
    # Never below MIN_SCALE (logged).
    with caplog.at_level("WARNING"):
        assert fit(-0.02, [0])[1][0] == pytest.approx(0.7)
    assert "shrink" in caplog.text


def test_obama_lower_teeth_stay_inside_at_jaw_open(model, rim):
    mouth = mouth_interior_for(model, OBAMA_ID)
    assert mouth.scales.min() > 0.8, mouth.scales  # a slightly smaller arch, not a collapsed one
    for pose in POSES[:3] + POSES[-1:]:  # the jaw-open poses, jawForward and rest (all seven: slow test)
        assert _poking(model, rim, mouth, OBAMA_ID, pose) == {}, pose
    # The teeth are still seen through the open mouth.
    w = np.zeros(len(model.expression_names))
    w[model.expression_names.index("jawOpen")] = 1
    verts = mouth.posed(w)
    lower = mouth.part_vertices("lower_teeth")
    seen = ~_first_hits(verts[lower], np.broadcast_to(CAMERAS[0], verts[lower].shape),
                        model.shape(torch.as_tensor(OBAMA_ID, dtype=torch.float32)[None],
                                    torch.as_tensor(w, dtype=torch.float32)[None])[0].detach().numpy()
                        .astype(np.float64)[model.triangles.numpy()])
    assert seen.mean() > 0.04, seen.mean()


def test_judge_sees_the_unfitted_interior_poke(model, rim):
    """Without the fit (the regression alone) Obama's lower teeth come out through the chin."""
    fitted = mouth_interior_for(model, OBAMA_ID)
    raw = fitted.mean + np.einsum("k,kvc->vc", OBAMA_ID, fitted.id_basis)
    from dataclasses import replace

    unfitted = replace(fitted, vertices_neutral=raw.astype(np.float32), exp_basis=fitted.model_exp_basis)
    bad = _poking(model, rim, unfitted, OBAMA_ID, {"jawOpen": 1.0})
    lower = set(unfitted.part_vertices("lower_teeth").tolist())
    assert bad and all(set(v.tolist()) <= lower for v in bad.values()), bad


def _extreme_identities(n_id: int) -> list[np.ndarray]:
    """Each of the 10 largest identity components alone at +3σ and -3σ."""
    out = []
    for k in range(10):
        for sign in (3.0, -3.0):
            a = np.zeros(n_id)
            a[k] = sign
            out.append(a)
    return out


@pytest.mark.slow
def test_extreme_identities_stay_inside(model, rim):
    """Obama and identity components at ±3σ: the interior stays inside in every judged pose."""
    for id_coeffs in [OBAMA_ID] + _extreme_identities(model.layout.n_id):
        mouth = mouth_interior_for(model, id_coeffs)
        assert mouth.scales.min() > 0.8, mouth.scales
        for pose in POSES:
            assert _poking(model, rim, mouth, id_coeffs, pose) == {}, (np.flatnonzero(id_coeffs), pose, mouth.scales)
