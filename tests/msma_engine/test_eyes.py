"""Eyeballs seated in the default head's eye sockets (msma_engine/eyes.py)."""

import numpy as np
import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.eyes import (DEFAULT_IRIS_COLOR, EYE_RADIUS, eye_texture, eyeballs_for, find_eye_sockets,
                         iris_color_from_photo, uv_sphere)
from msma_engine.face_model import load_face_model


@pytest.fixture(scope="module")
def model():
    return load_face_model()


def _identities(model):
    """The mean head and two random identities (unit-variance coefficients, fixed seed)."""
    g = torch.Generator().manual_seed(7)
    out = [model.mean_shape.numpy()]
    with torch.no_grad():
        for _ in range(2):
            idc = torch.randn(1, model.layout.n_id, generator=g)
            out.append(model.shape(idc, torch.zeros(1, model.layout.n_exp))[0].numpy())
    return out


def _skin_surface_z(verts, tris, skin, points):
    """Frontmost z of the skin triangles above/below each point along z (−inf where none)."""
    t = verts[tris[skin]]
    a, b, c = t[:, 0, :2], t[:, 1, :2], t[:, 2, :2]
    out = np.full(len(points), -np.inf)
    for i, p in enumerate(points):
        v0, v1, v2 = b - a, c - a, p[:2] - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        ok = np.abs(den) > 1e-14
        s = np.where(ok, (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / np.where(ok, den, 1), -1)
        r = np.where(ok, (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / np.where(ok, den, 1), -1)
        inside = ok & (s >= 0) & (r >= 0) & (s + r <= 1)
        if inside.any():
            z = (1 - s - r) * t[:, 0, 2] + s * t[:, 1, 2] + r * t[:, 2, 2]
            out[i] = z[inside].max()
    return out


def test_uv_sphere_is_closed_outward_and_front_at_uv_centre():
    verts, tris, uvs, uv_tris = uv_sphere(24, 16)
    assert verts.shape == (2 + 15 * 24, 3) and tris.shape == (2 * 24 * 15, 3)
    np.testing.assert_allclose(np.linalg.norm(verts, axis=1), 1.0, atol=1e-12)
    n = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    assert np.all(np.sum(n * verts[tris].mean(axis=1), axis=1) > 0)
    # Closed: every edge is used by exactly two triangles.
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    assert np.all(np.unique(edges, axis=0, return_counts=True)[1] == 2)
    assert uv_tris.shape == tris.shape and uvs.min() >= 0 and uvs.max() <= 1
    # UV distance from the centre grows with the angle from the front pole.
    rho = np.linalg.norm(uvs[uv_tris] - 0.5, axis=-1).reshape(-1)
    theta = np.arccos(np.clip(verts[tris].reshape(-1, 3)[:, 2], -1, 1))
    order = np.argsort(theta)
    assert np.all(np.diff(rho[order]) > -1e-12)
    np.testing.assert_allclose(uvs[uv_tris[np.nonzero(tris == 0)]], 0.5)


def test_sockets_found_per_side(model):
    s = find_eye_sockets(model)
    assert s is find_eye_sockets(model)  # cached per model
    v = model.mean_shape.numpy()
    assert v[s.rim["L"], 0].min() > 0 > v[s.rim["R"], 0].max()
    assert len(s.rim["L"]) == len(s.rim["R"]) >= 8


def test_eyeballs_sit_in_the_sockets(model):
    sockets = find_eye_sockets(model)
    lm = model.landmark_indices.numpy()
    tris = model.triangles.numpy()
    in_socket = np.zeros(model.n_vertices, bool)
    in_socket[np.concatenate([sockets.socket["L"], sockets.socket["R"]])] = True
    skin = ~in_socket[tris].all(axis=1)
    for verts in _identities(model):
        eyes = eyeballs_for(model, verts)
        assert [e.side for e in eyes] == ["L", "R"]
        assert eyes.left.centre[0] > 0 > eyes.right.centre[0]
        for eye, sl in ((eyes.left, slice(42, 48)), (eyes.right, slice(36, 42))):
            assert eye.vertices.shape == (362, 3)
            np.testing.assert_allclose(np.linalg.norm(eye.vertices - eye.centre, axis=1), eye.radius, rtol=1e-9)
            assert 0.75 * EYE_RADIUS <= eye.radius <= EYE_RADIUS
            # Centre under the eye landmarks (x/y within 2 mm).
            assert np.linalg.norm(eye.centre[:2] - verts[lm[sl], :2].mean(axis=0)) < 0.002
            # Cornea front behind the most forward point of the eyelid margin, by at most 3 mm.
            front = eye.vertices[:, 2].max()
            rim_front = verts[sockets.rim[eye.side], 2].max()
            assert rim_front - 0.003 < front < rim_front
            # Nowhere in front of the skin that covers it along +z (eyelids): the eye shows
            # only through the opening.
            near = skin & (verts[tris, 2].min(axis=1) > verts[sockets.socket[eye.side], 2].min())
            surf = _skin_surface_z(verts, tris, near, eye.vertices)
            covered = np.isfinite(surf)
            assert covered.sum() > 0.5 * len(surf)
            assert np.all(eye.vertices[covered, 2] <= surf[covered] + 0.001)


def test_eyeballs_reject_wrong_shape(model):
    with pytest.raises(ShapeError, match=rf"\({model.n_vertices}, 3\)"):
        eyeballs_for(model, np.zeros((10, 3)))


def test_texture_has_iris_pupil_and_sclera():
    tex = eye_texture((40, 90, 160), size=256)
    assert tex.shape == (256, 256, 3) and tex.dtype == np.uint8
    centre, iris, sclera = tex[128, 128], tex[128, 128 + 24], tex[128, 128 + 60]
    assert centre.max() < 20  # pupil
    assert iris[2] > iris[0]  # blue iris
    assert sclera.min() > 180  # white


def _eye_photo():
    """A grey photo with two almond eyes: white sclera, green iris (r = 9 px), black pupil."""
    img = np.full((100, 200, 3), 150, np.uint8)
    lm = np.zeros((68, 2))
    yy, xx = np.mgrid[:100, :200] + 0.5
    for start, cx in ((36, 60.0), (42, 140.0)):
        t = np.linspace(np.pi, -np.pi, 6, endpoint=False)
        lm[start:start + 6] = np.stack([cx + 22 * np.cos(t), 50 + 9 * np.sin(t)], 1)
        eye = ((xx - cx) / 22) ** 2 + ((yy - 50) / 10) ** 2 < 1
        img[eye] = (235, 235, 230)
        r = np.hypot(xx - cx, yy - 50)
        img[eye & (r < 9)] = (30, 120, 40)
        img[eye & (r < 3.5)] = (5, 5, 5)
    return img, lm


def test_iris_color_from_photo():
    img, lm = _eye_photo()
    assert np.abs(iris_color_from_photo(img, lm).astype(int) - (30, 120, 40)).max() <= 2
    # Dense points: eyelid contours and the iris centre + ring (468-472, 473-477).
    from msma_engine.photo_mask import _MP_EYES

    dense = np.zeros((478, 2))
    for k, (ids, cx) in enumerate(zip(_MP_EYES, (60.0, 140.0))):
        t = np.linspace(np.pi, -np.pi, len(ids), endpoint=False)
        dense[list(ids)] = np.stack([cx + 22 * np.cos(t), 50 + 9 * np.sin(t)], 1)
        dense[468 + 5 * k] = (cx, 50)
        dense[469 + 5 * k:473 + 5 * k] = [(cx + 9, 50), (cx, 41), (cx - 9, 50), (cx, 59)]
    assert np.abs(iris_color_from_photo(img, dense).astype(int) - (30, 120, 40)).max() <= 2
    with pytest.raises(ShapeError):
        iris_color_from_photo(img, np.zeros((5, 2)))


def test_default_iris_colour(model):
    assert tuple(eyeballs_for(model, model.mean_shape.numpy()).iris_color) == DEFAULT_IRIS_COLOR


def test_reseated_matches_a_fresh_seat(model):
    a, b = _identities(model)[1:]
    moved = eyeballs_for(model, a).reseated(b)
    fresh = eyeballs_for(model, b)
    for m, f in zip(moved, fresh):
        np.testing.assert_allclose(m.vertices, f.vertices, atol=1e-9)
    with pytest.raises(ShapeError):
        fresh.reseated(np.zeros((5, 3)))


def test_look_targets_turn_each_eyeball_its_way(model):
    from msma_engine.eyes import EYE_LOOK_DEGREES, eye_look_targets

    eyes = eyeballs_for(model, model.mean_shape.numpy())
    for eye, suffix, out_sign in ((eyes.left, "Left", 1.0), (eyes.right, "Right", -1.0)):
        names, offsets = eye_look_targets(eye, model.expression_names)
        assert sorted(names) == sorted(f"eyeLook{d}{suffix}" for d in ("In", "Out", "Up", "Down"))
        rest_fwd = eye.vertices[0] - eye.centre  # vertex 0 is the front pole (+z)
        for name, off in zip(names, offsets):
            turned = eye.vertices + off
            # Still the same sphere at weight 1 (a rotation about the centre).
            np.testing.assert_allclose(np.linalg.norm(turned - eye.centre, axis=1), eye.radius, rtol=1e-9)
            fwd = turned[0] - eye.centre
            angle = np.degrees(np.arccos(fwd @ rest_fwd / eye.radius ** 2))
            direction = name[len("eyeLook"):-len(suffix)]
            assert angle == pytest.approx(EYE_LOOK_DEGREES[direction], abs=1e-6) and angle >= 5
            sideways = {"Out": out_sign, "In": -out_sign}.get(direction, 0.0)
            upward = {"Up": 1.0, "Down": -1.0}.get(direction, 0.0)
            assert np.sign(np.round(fwd[0] / eye.radius, 6)) == sideways
            assert np.sign(np.round(fwd[1] / eye.radius, 6)) == upward


def test_blink_closes_the_lids_in_front_of_the_eyeballs(model):
    names = model.expression_names
    sockets = find_eye_sockets(model)
    tris = model.triangles.numpy()
    in_socket = np.zeros(model.n_vertices, bool)
    in_socket[np.concatenate([sockets.socket["L"], sockets.socket["R"]])] = True
    skin = ~in_socket[tris].all(axis=1)
    g = torch.Generator().manual_seed(5)
    for k in range(3):
        idc = torch.randn(1, model.layout.n_id, generator=g) * (k > 0)
        exp = torch.zeros(1, model.layout.n_exp)
        exp[0, names.index("eyeBlinkLeft")] = exp[0, names.index("eyeBlinkRight")] = 1.0
        with torch.no_grad():
            neutral = model.shape(idc, torch.zeros_like(exp))[0].numpy()
            closed = model.shape(idc, exp)[0].numpy()
        for eye in eyeballs_for(model, neutral):
            near = skin & (closed[tris, 2].min(axis=1) > neutral[sockets.socket[eye.side], 2].min())
            surf = _skin_surface_z(closed, tris, near, eye.vertices)
            covered = np.isfinite(surf)
            assert covered[0], "the closed lid covers the cornea"
            # The closed lid stays in front of the eyeball: no intersection.
            assert np.all(eye.vertices[covered, 2] <= surf[covered])
