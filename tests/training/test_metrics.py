"""Metrics on fabricated data with known answers (alignment, NME, PSNR/SSIM, NoW, MICC)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.geometry import euler_to_rotation
from training.metrics import (
    aligned_vertex_error_mm,
    icp_similarity,
    landmark_nme,
    masked_psnr,
    masked_ssim,
    micc_point_to_plane_rmse,
    now_scan_to_mesh,
    point_to_mesh_distance,
    similarity_transform,
)


def grid_plane(n: int = 21, half: float = 0.1, z=None):
    """A square grid mesh in the z = 0 plane (metres), CCW seen from +z."""
    xs = np.linspace(-half, half, n)
    xx, yy = np.meshgrid(xs, xs)
    zz = np.zeros_like(xx) if z is None else z(xx, yy)
    verts = np.stack([xx, yy, zz], -1).reshape(-1, 3)
    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            tris += [[a, b, d], [a, d, c]]
    return verts, np.asarray(tris)


def icosphere(subdiv: int = 3, radius: float = 0.1):
    t = (1 + 5 ** 0.5) / 2
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
         [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6],
         [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
         [8, 6, 7], [9, 8, 1]]
    verts = [np.asarray(p, float) / np.linalg.norm(p) for p in v]
    for _ in range(subdiv):
        cache, new_f = {}, []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new_f += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = new_f
    return np.asarray(verts) * radius, np.asarray(f)


def random_rotation(seed: int) -> np.ndarray:
    ang = torch.as_tensor(np.random.default_rng(seed).uniform(-0.5, 0.5, (1, 3)))
    return euler_to_rotation(ang)[0].numpy()


class TestAlignment:
    def test_similarity_recovers_transform(self):
        src = torch.randn(2, 30, 3, dtype=torch.float64)
        r = euler_to_rotation(torch.tensor([[0.3, -0.2, 0.1], [1.0, 0.5, -0.7]], dtype=torch.float64))
        dst = 1.7 * src @ r.transpose(1, 2) + torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
        s, rot, t = similarity_transform(src, dst, with_scale=True)
        assert torch.allclose(s, torch.full((2,), 1.7, dtype=torch.float64))
        assert torch.allclose(rot, r, atol=1e-10)

    def test_vertex_error_invariant_to_rigid_motion(self):
        gt = torch.randn(1, 50, 3) * 0.05
        r = euler_to_rotation(torch.tensor([[0.2, 0.4, -0.3]]))
        moved = gt @ r.transpose(1, 2) + 0.1
        assert aligned_vertex_error_mm(moved, gt).item() == pytest.approx(0.0, abs=1e-3)
        # A pure offset along one axis of a part survives: 1 mm on every vertex of the region.
        region = torch.zeros(50, dtype=torch.bool)
        region[:25] = True
        assert aligned_vertex_error_mm(moved, gt, region).item() == pytest.approx(0.0, abs=1e-3)

    def test_vertex_error_known_value(self):
        # A square scaled about its centre: after rigid alignment every corner is 1 mm off.
        gt = torch.tensor([[[1.0, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]]]) * 0.01
        pred = gt * (1 + 0.001 / (0.01 * math.sqrt(2)))
        assert aligned_vertex_error_mm(pred, gt).item() == pytest.approx(1.0, rel=1e-4)


class TestNME:
    def test_bbox_and_interocular(self):
        gt = torch.zeros(1, 68, 2)
        gt[0, :, 0] = torch.linspace(0, 100, 68)
        gt[0, :, 1] = torch.linspace(0, 25, 68)  # bbox 100 × 25 → sqrt = 50
        pred = gt + torch.tensor([3.0, 4.0])  # 5 px everywhere
        assert landmark_nme(pred, gt).item() == pytest.approx(0.1)
        io = (gt[0, 36] - gt[0, 45]).norm().item()
        assert landmark_nme(pred, gt, "interocular").item() == pytest.approx(5 / io)
        with pytest.raises(ValueError):
            landmark_nme(pred, gt, "nose")


class TestImageMetrics:
    def test_psnr_known_value(self):
        a = torch.zeros(1, 3, 4, 4)
        b = a.clone()
        b[..., :2, :] = 0.1  # masked half differs by 0.1 → MSE 0.01 → 20 dB
        mask = torch.zeros(1, 1, 4, 4)
        mask[..., :2, :] = 1
        assert masked_psnr(a, b, mask).item() == pytest.approx(20.0, rel=1e-5)
        b[..., 2:, :] = 0.9  # outside the mask: no effect
        assert masked_psnr(a, b, mask).item() == pytest.approx(20.0, rel=1e-5)

    def test_ssim(self):
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        mask = torch.ones(2, 1, 32, 32)
        assert torch.allclose(masked_ssim(x, x, mask), torch.ones(2), atol=1e-5)
        noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
        assert (masked_ssim(x, noisy, mask) < 0.9).all()

    def test_bad_mask(self):
        with pytest.raises(ShapeError):
            masked_psnr(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.ones(1, 3, 4, 4))


class TestPointToMesh:
    def test_matches_brute_force(self):
        verts, tris = icosphere(1, 1.0)
        pts = np.random.default_rng(0).normal(size=(200, 3)) * 1.5
        d, _ = point_to_mesh_distance(pts, verts, tris, candidates=len(tris))
        d_fast, _ = point_to_mesh_distance(pts, verts, tris, candidates=16)
        # Brute force against dense surface samples (upper bound, tight).
        rng = np.random.default_rng(1)
        bary = rng.dirichlet([1, 1, 1], size=(len(tris), 400))
        samples = np.einsum("fsk,fkc->fsc", bary, verts[tris]).reshape(-1, 3)
        d_ref = np.min(np.linalg.norm(pts[:, None] - samples[None], axis=-1), axis=1)
        assert np.all(d <= d_ref + 1e-9)
        assert np.allclose(d, d_ref, atol=0.02)
        assert np.allclose(d_fast, d, atol=1e-9)

    def test_plane_distance(self):
        verts, tris = grid_plane()
        pts = np.array([[0.013, -0.021, 0.004], [0.05, 0.05, -0.002], [0.2, 0.0, 0.0]])
        d, _ = point_to_mesh_distance(pts, verts, tris)
        assert np.allclose(d, [0.004, 0.002, 0.1])


class TestNoW:
    LM_IDX = [0, 20, 220, 440, 200, 240, 110]  # 7 grid vertices as "landmarks"

    def test_plane_vs_shifted_plane(self):
        verts, tris = grid_plane()
        scan = verts[::3] + [0, 0, 0.002]  # 2 mm above the predicted surface
        scan_lm = verts[self.LM_IDX]  # landmarks agree, so the alignment is the identity
        res = now_scan_to_mesh(verts, tris, verts[self.LM_IDX], scan, scan_lm, refine_iters=0)
        assert res.median == pytest.approx(2.0, abs=1e-6) and res.mean == pytest.approx(2.0, abs=1e-6)
        # The rigid refinement removes a pure offset.
        refined = now_scan_to_mesh(verts, tris, verts[self.LM_IDX], scan, scan_lm, refine_iters=10)
        assert refined.mean == pytest.approx(0.0, abs=1e-3)

    def test_similarity_moved_prediction_scores_zero(self):
        verts, tris = icosphere(3, 0.1)
        lm_idx = [0, 5, 17, 40, 80, 120, 200]
        r = random_rotation(3)
        pred = 0.8 * verts @ r.T + [0.3, -0.1, 0.2]  # prediction in another frame and scale
        res = now_scan_to_mesh(pred, tris, pred[lm_idx], verts, verts[lm_idx], refine_iters=2)
        assert res.mean < 1e-3

    def test_landmark_shape_checked(self):
        verts, tris = grid_plane()
        with pytest.raises(ShapeError, match="pred_landmarks7"):
            now_scan_to_mesh(verts, tris, verts[:5], verts, verts[:7])


class TestMICC:
    def test_sphere_vs_scaled_rotated_copy(self):
        verts, tris = icosphere(4, 0.08)
        tip = verts[np.argmax(verts[:, 2])]
        r = random_rotation(5)
        scan, _ = icosphere(3, 0.08)  # the scan samples the same sphere at other points
        gt = 1.25 * scan @ r.T + [0.01, 0.02, -0.03]
        gt_tip = 1.25 * tip @ r.T + [0.01, 0.02, -0.03]
        # A sphere cap leaves scale and depth nearly degenerate, so ICP needs many iterations.
        rmse = micc_point_to_plane_rmse(verts, tris, tip, gt, gt_tip, icp_iters=400)
        assert rmse < 0.2  # mm: what is left is the tessellation (vertex tangent planes)
        assert micc_point_to_plane_rmse(verts, tris, tip, gt, gt_tip, icp_iters=0) > 1.0

    def test_flat_prediction_vs_wavy_scan(self):
        # A flat prediction cannot follow a zero-mean wave: RMSE = RMS of the wave heights.
        amp = 0.002
        wave = lambda x, y: amp * np.sin(2 * np.pi * x / 0.05)  # noqa: E731
        pred, tris = grid_plane(41, 0.04)
        gt, _ = grid_plane(41, 0.04, z=wave)
        rmse = micc_point_to_plane_rmse(pred, tris, np.zeros(3), gt, np.zeros(3))
        expected = np.sqrt(np.mean((gt[:, 2] - gt[:, 2].mean()) ** 2)) * 1000
        assert rmse == pytest.approx(expected, rel=0.05)

    def test_crop_radius(self):
        verts, tris = grid_plane(41, 0.2)
        with pytest.raises(ShapeError, match="crop"):
            micc_point_to_plane_rmse(verts, tris, np.zeros(3), verts, np.array([1.0, 1, 1]))
        # Only the cropped part of the scan counts: a far-away bump outside 95 mm is ignored.
        bumpy, _ = grid_plane(41, 0.2, z=lambda x, y: np.where(np.hypot(x, y) > 0.15, 0.01, 0.0))
        assert micc_point_to_plane_rmse(verts, tris, np.zeros(3), bumpy, np.zeros(3)) < 1e-6

    def test_icp_recovers_scale(self):
        verts, _ = grid_plane(15, 0.05, z=lambda x, y: 5 * (x ** 2 + 0.5 * y ** 2))
        dst = 1.1 * verts + [0.001, 0.0, 0.0]
        s, r, t = icp_similarity(verts, dst)
        assert s == pytest.approx(1.1, rel=1e-3)
