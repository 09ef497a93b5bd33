import torch

from msma_engine.camera import PerspectiveCamera


def test_origin_projects_to_principal_point():
    cam = PerspectiveCamera()
    torch.testing.assert_close(cam.project(torch.zeros(1, 3)), torch.tensor([[112.0, 112.0]]))


def test_up_is_image_top_and_left_is_image_right():
    cam = PerspectiveCamera()
    px = cam.project(torch.tensor([[0.0, 0.05, 0.0], [0.05, 0.0, 0.0]]))
    assert px[0, 1] < 112 and px[1, 0] > 112
    # f * x / Z with Z = 1 m
    torch.testing.assert_close(px[1, 0], torch.tensor(112 + 1015 * 0.05))


def test_clip_matches_pixels_and_unproject_inverts():
    cam = PerspectiveCamera()
    pts = torch.randn(10, 3) * 0.05
    clip = cam.world_to_clip(pts)
    ndc = clip[:, :2] / clip[:, 3:]
    px = cam.project(pts)
    torch.testing.assert_close(ndc[:, 0], px[:, 0] / 112 - 1)
    torch.testing.assert_close(ndc[:, 1], 1 - px[:, 1] / 112)
    zn = clip[:, 2] / clip[:, 3]
    assert ((zn > -1) & (zn < 1)).all()
    torch.testing.assert_close(cam.unproject(px, cam.depth(pts)), pts, atol=1e-6, rtol=1e-5)


def test_scaled_camera_keeps_the_view():
    cam, big = PerspectiveCamera(), PerspectiveCamera().scaled(4)
    pts = torch.randn(5, 3) * 0.05
    torch.testing.assert_close(big.project(pts), cam.project(pts) * 4)
