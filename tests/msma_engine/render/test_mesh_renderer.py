"""Tests of msma_engine.render.render_mesh on a cube with known depth, normals and silhouette."""

from __future__ import annotations

import math

import pytest
import torch

from msma_engine.camera import PerspectiveCamera
from msma_engine.errors import MSMAError, ShapeError
from msma_engine.render import RenderContext, interpolate, render_mesh

CTX = RenderContext("torch")


def cube(half: float):
    """A cube with 24 vertices (4 per face, so vertex normals equal face normals), CCW outward."""
    verts, tris = [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = torch.zeros(3, dtype=torch.float64)
            n[axis] = sign
            a = torch.zeros(3, dtype=torch.float64)
            a[(axis + 1) % 3] = 1.0
            b = torch.linalg.cross(n, a)
            base = len(verts)
            for s, t in [(-1, -1), (1, -1), (1, 1), (-1, 1)]:
                verts.append(half * (n + s * a + t * b))
            tris += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return torch.stack(verts)[None], torch.tensor(tris)


@pytest.fixture
def cube_render():
    half = 0.05
    verts, tris = cube(half)
    cam = PerspectiveCamera()
    colors = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64).expand(24, 3)
    out = render_mesh(CTX, verts, tris, (224, 224), project=cam.world_to_clip, colors=colors)
    return half, cam, out


def test_depth_normals_silhouette(cube_render):
    half, cam, out = cube_render
    assert out.image.shape == (1, 224, 224, 3) and out.mask.shape == (1, 224, 224, 1)
    assert out.depth.shape == (1, 224, 224, 1) and out.normals.shape == (1, 224, 224, 3)
    # The front face z = +half spans u ∈ cx ± f·half/(d − half); the sides are hidden.
    r = cam.focal * half / (cam.distance - half)
    c = (torch.arange(224, dtype=torch.float64) + 0.5 - 112.0).abs()
    inside = (c[:, None] < r - 1e-6) & (c[None, :] < r - 1e-6)
    outside = (c[:, None] > r + 1e-6) | (c[None, :] > r + 1e-6)
    m = out.mask[0, ..., 0].bool()
    assert m[inside].all() and not m[outside].any()
    depth = out.depth[0, ..., 0]
    torch.testing.assert_close(depth[m], torch.full_like(depth[m], cam.distance - half))
    assert (depth[~m] == 0).all() and (out.normals[0][~m] == 0).all() and (out.image[0][~m] == 0).all()
    n = out.normals[0][m]
    torch.testing.assert_close(n, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(n))
    colour = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    torch.testing.assert_close(out.image[0][m], colour.expand(int(m.sum()), 3))


def test_rotated_cube_shows_side_normals():
    verts, tris = cube(0.05)
    yaw = 0.4  # turn the cube about +y: its −x face turns towards the camera
    rot = torch.tensor([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]],
                       dtype=torch.float64)
    posed = verts @ rot.T
    out = render_mesh(CTX, posed, tris, (112, 112), project=PerspectiveCamera().scaled(0.5).world_to_clip,
                      colors=torch.ones(24, 3, dtype=torch.float64))
    n = out.normals[0][out.mask[0, ..., 0].bool()]
    side = rot @ torch.tensor([-1.0, 0, 0], dtype=torch.float64)
    front = rot @ torch.tensor([0, 0, 1.0], dtype=torch.float64)
    is_side = (n - side).norm(dim=-1) < 1e-9
    is_front = (n - front).norm(dim=-1) < 1e-9
    assert (is_side | is_front).all() and is_side.sum() > 50 and is_front.sum() > 2 * is_side.sum()


def test_albedo_sh_matches_local_formula(cube_render):
    half, cam, _ = cube_render
    verts, tris = cube(half)
    gamma = torch.zeros(1, 27, dtype=torch.float64)
    gamma[0, 2], gamma[0, 11], gamma[0, 20] = 0.3, 0.1, -0.2  # the z band of R, G, B
    albedo = torch.tensor([0.6, 0.5, 0.4], dtype=torch.float64).expand(24, 3)
    out = render_mesh(CTX, verts, tris, (224, 224), project=cam.world_to_clip, albedo=albedo, gamma=gamma)
    # Normal (0, 0, 1): irradiance = a0c0(0.8 + g0) + a1c1·g2 + a2c2/(2√3)·(3 − 1)·g6.
    a0c0 = math.pi / math.sqrt(4 * math.pi)
    a1c1 = 2 * math.pi / math.sqrt(3) * math.sqrt(3) / math.sqrt(4 * math.pi)
    expected = torch.tensor([0.6, 0.5, 0.4], dtype=torch.float64) * (
        a0c0 * 0.8 + a1c1 * torch.tensor([0.3, 0.1, -0.2], dtype=torch.float64))
    torch.testing.assert_close(out.image[0, 112, 112], expected)


def test_gradients_reach_vertices_and_colours(cube_render):
    half, cam, _ = cube_render
    verts, tris = cube(half)
    verts = verts.clone().requires_grad_(True)
    colors = torch.rand(24, 3, dtype=torch.float64, requires_grad=True)
    out = render_mesh(CTX, verts, tris, (64, 64), project=cam.scaled(64 / 224).world_to_clip, colors=colors)
    (out.image.square().sum() + out.depth.sum()).backward()
    assert verts.grad.abs().sum() > 0 and colors.grad[16:20].abs().sum() > 0
    assert (colors.grad[20:24] == 0).all()  # the hidden back face (−z) gets no gradient


def test_argument_errors():
    verts, tris = cube(0.05)
    with pytest.raises(ValueError, match="project"):
        render_mesh(CTX, verts, tris, (8, 8), colors=torch.ones(24, 3))
    with pytest.raises(ShapeError, match=r"\(1, 24, 3\)"):
        render_mesh(CTX, verts, tris, (8, 8), pos_clip=torch.ones(1, 24, 3), colors=torch.ones(24, 3))
    with pytest.raises(ShapeError, match="vertices"):
        render_mesh(CTX, verts[0], tris, (8, 8), pos_clip=torch.ones(1, 24, 4), colors=torch.ones(24, 3))


@pytest.fixture(scope="module")
def default_head():
    from msma_engine.face_model import load_face_model

    try:
        return load_face_model()
    except MSMAError as exc:
        pytest.skip(f"default head not loadable: {exc}")


@pytest.mark.parametrize("angles, first, last", [((0.0, 0.0, 0.0), 17, 35), ((0.1, 0.3, 0.05), 17, 30),
                                                  ((-0.1, -0.3, -0.05), 17, 30)])
def test_default_head_landmarks_land_on_the_rasterized_surface(default_head, angles, first, last):
    model = default_head
    coeffs = model.layout.zeros(1)
    coeffs[0, model.layout.slices()["angles"]] = torch.tensor(angles)
    out = model(coeffs)
    # 4x the crop resolution so one pixel's depth spread on steep surfaces stays below 1 mm.
    cam = model.camera.scaled(4)
    frags = render_mesh(CTX, out.vertices, model.triangles, cam.image_size, project=cam.world_to_clip,
                        colors=out.vertex_colors).fragments
    # Brows and nose bridge (17..30) are never self-occluded at these poses; the nostril row
    # (31..35, on the underside of the nose, where the detector puts it) only frontally, since
    # the nose tip hides it once the head turns. The surface seen at each projected landmark's
    # pixel must be the landmark's own neighbourhood (same depth ± 2 mm).
    lm3d = out.landmarks_3d[0, first:last + 1]
    lm2d = cam.project(lm3d)
    row, col = lm2d[:, 1].floor().long(), lm2d[:, 0].floor().long()
    assert frags.mask[0, row, col].all()
    surface = interpolate(out.vertices, frags, model.triangles)[0, row, col]
    assert (cam.depth(surface) - cam.depth(lm3d)).abs().max() < 2e-3
