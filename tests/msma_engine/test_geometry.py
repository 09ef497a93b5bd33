import math

import torch

from msma_engine.geometry import euler_to_rotation, rotation_to_euler, vertex_normals
from sphere_model import make_sphere_model


def test_rotation_is_orthonormal_and_inverts():
    angles = torch.tensor([[0.3, -0.7, 0.2], [0.0, 0.0, 0.0], [-1.0, 1.2, -2.5]], dtype=torch.float64)
    r = euler_to_rotation(angles)
    eye = torch.eye(3, dtype=torch.float64).expand(3, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(rotation_to_euler(r), angles)


def test_positive_yaw_turns_face_to_its_left():
    # The face looks +z; yaw +90 degrees about +y sends +z to +x (the subject's left).
    r = euler_to_rotation(torch.tensor([[0.0, math.pi / 2, 0.0]]))
    torch.testing.assert_close(r[0] @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_sphere_normals_point_outward():
    data = make_sphere_model()
    v = torch.as_tensor(data.mean_shape)[None].double()
    n = vertex_normals(v, torch.as_tensor(data.triangles).long())
    radial = v / v.norm(dim=-1, keepdim=True)
    assert (n * radial).sum(-1).min() > 0.95


def test_normals_gradcheck():
    data = make_sphere_model(n_lat=3, n_lon=4)
    v = torch.as_tensor(data.mean_shape)[None].double().requires_grad_(True)
    tris = torch.as_tensor(data.triangles).long()
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, tris), (v,))
