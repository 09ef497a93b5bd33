import numpy as np
import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.errors import ShapeError
from msma_engine.face_model import CoeffLayout, FaceModel


@pytest.fixture(params=["vertex", "uv"])
def model(request):
    return FaceModel(make_sphere_model(albedo_space=request.param)).double()


def test_layout_of_bfm_sizes():
    layout = CoeffLayout(80, 64, 80)
    assert layout.total == 257
    s = layout.slices()
    assert (s["exp"].start, s["angles"].start, s["gamma"].start, s["trans"].start) == (80, 224, 227, 254)


def test_zero_coefficients_give_the_mean_face(model):
    out = model(model.layout.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(out.vertices, model.mean_shape.expand(2, -1, -1))
    torch.testing.assert_close(out.landmarks_3d, out.vertices[:, model.landmark_indices])
    assert out.vertex_colors.shape == (2, model.n_vertices, 3)
    torch.testing.assert_close(out.vertex_albedo, torch.full_like(out.vertex_albedo, 0.6))


def test_bases_are_applied_linearly(model):
    c = model.layout.zeros(1, dtype=torch.float64)
    s = model.layout.slices()
    c[0, s["id"].start + 1] = 2.0
    c[0, s["exp"].start] = -1.0
    out = model(c)
    expected = model.mean_shape + 2 * model.id_basis[1] - model.exp_basis[0]
    torch.testing.assert_close(out.vertices_model[0], expected)


def test_pose_rotates_then_translates(model):
    c = model.layout.zeros(1, dtype=torch.float64)
    s = model.layout.slices()
    c[0, s["angles"]] = torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)
    c[0, s["trans"]] = torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64)
    out = model(c)
    # Rigid: pairwise distances preserved; centroid moved by t (sphere centred at 0).
    torch.testing.assert_close(torch.cdist(out.vertices, out.vertices),
                               torch.cdist(model.mean_shape[None], model.mean_shape[None]))
    torch.testing.assert_close(out.vertices[0].mean(0), torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64),
                               atol=1e-9, rtol=0)


def test_wrong_coefficient_size_is_reported(model):
    with pytest.raises(ShapeError, match=r"\(B, %d\)" % model.layout.total):
        model(torch.zeros(1, 5, dtype=torch.float64))


def test_gradients_reach_every_coefficient(model):
    c = (torch.randn(1, model.layout.total, dtype=torch.float64) * 0.1).requires_grad_(True)
    out = model(c)
    (out.vertex_colors.sum() + out.landmarks_2d.sum()).backward()
    g = c.grad[0]
    for name, sl in model.layout.slices().items():
        assert g[sl].abs().sum() > 0, name


def test_uv_albedo_sampled_at_vertex_uvs():
    data = make_sphere_model(albedo_space="uv")
    data.albedo_mean[:8] = 0.1  # top half of the texture (v > 0.5) dark
    m = FaceModel(data)
    out = m(m.layout.zeros(1))
    top = torch.as_tensor(data.mean_shape[:, 1] > 0.05)
    bottom = torch.as_tensor(data.mean_shape[:, 1] < -0.05)
    assert out.vertex_albedo[0, top, 0].max() < 0.2 and out.vertex_albedo[0, bottom, 0].min() > 0.5
    assert np.isclose(float(out.albedo[0, 12, 5, 0]), 0.6)
