"""End-to-end tests of msma_engine.reconstruct on real photos with the shipped default head."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from msma_engine.errors import FaceTooSmallError, ImageError, NoFaceError, WeightsError
from msma_engine.face_model import DEFAULT_MODEL_PATH
from msma_engine.result import FaceResult
from shared_data import PHOTOS

# Fitted landmark error, fraction of the inter-ocular distance, versus the detector. With the
# dense Face Mesh points (issue 17) the bound is on the points the fit uses; the 68 iBUG
# points of the model (a separate vertex table, calibrated to the 68-point mapping) are
# checked more loosely. Measured with fit="fast": dense 0.013-0.018, 68 points 0.029-0.031.
NME_BOUND = 0.032
NME68_BOUND = 0.045

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="msma_engine/data/default_head.npz not built")


@pytest.fixture(scope="module")
def rec():
    from msma_engine.pipeline import Reconstructor

    return Reconstructor()


@pytest.fixture(scope="module")
def astronaut_image() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut(rec, astronaut_image) -> FaceResult:
    return rec.reconstruct(astronaut_image, fit="fast", texture_size=512)


def _cheek_colour(rec, res: FaceResult) -> np.ndarray:
    """Mean texture colour around the UVs of the two cheek points (between eye, jaw and mouth)."""
    m = rec.model
    lm3d = m.mean_shape[m.landmark_indices].numpy()
    colours = []
    for a, b, c in ((2, 41, 48), (14, 46, 54)):
        p = (lm3d[a] + lm3d[b] + lm3d[c]) / 3.0
        vid = int(np.argmin(((m.mean_shape.numpy() - p) ** 2).sum(1)))
        u, v = m.vertex_uv[vid].numpy()
        size = res.albedo_texture.shape[0]
        row, col = int((1 - v) * size), int(u * size)
        colours.append(res.albedo_texture[row - 4: row + 5, col - 4: col + 5].reshape(-1, 3).mean(0))
    return np.asarray(colours)


def _check_result(rec, res: FaceResult, image_hw: tuple[int, int]) -> None:
    assert isinstance(res, FaceResult)
    v = rec.model.n_vertices
    assert res.vertices_world.shape == res.vertices_model.shape == res.vertices_neutral.shape == (v, 3)
    assert res.coeffs.shape == (rec.model.layout.total,)
    assert res.albedo_texture.dtype == np.uint8 and res.albedo_texture.ndim == 3
    assert res.camera.image_size == image_hw
    # Fitted and detected landmarks lie in the (slightly grown) detector box.
    x0, y0, x1, y1 = res.face_box
    pad = 0.15 * (x1 - x0)
    for pts in (res.detected_landmarks, res.landmarks_2d):
        inside = (pts[:, 0] > x0 - pad) & (pts[:, 0] < x1 + pad) & (pts[:, 1] > y0 - pad) & (pts[:, 1] < y1 + pad)
        assert inside.mean() > 0.95
    m = res.metrics
    assert (m.dense_nme_fit if m.dense_nme_fit is not None else m.landmark_nme_fit) < NME_BOUND, m
    assert m.landmark_nme_fit < min(NME68_BOUND, 0.75 * m.landmark_nme_start), m
    assert m.photometric_fit < m.photometric_start
    assert 0.0 <= m.texture_seam < 40.0  # 8-bit colour step where the photo meets the fill
    # The photo camera sees the world vertices where the fitted landmarks are.
    cam = res.camera
    lm3d = res.vertices_world[rec.model.landmark_indices.numpy()].astype(np.float64)
    z = cam.distance - lm3d[:, 2]
    proj = np.stack([cam.center[0] + cam.focal * lm3d[:, 0] / z, cam.center[1] - cam.focal * lm3d[:, 1] / z], 1)
    assert np.abs(proj - res.landmarks_2d).max() < 0.05
    # Skin-coloured cheeks: R > G > B, and not grey.
    cheeks = _cheek_colour(rec, res)
    for r, g, b in cheeks:
        assert r > g > b and r - b > 15, cheeks
    t = res.timings
    assert min(t.detect, t.landmarks, t.fit, t.bake) > 0
    assert t.total >= t.load + t.detect + t.landmarks + t.align + t.regress + t.fit + t.bake
    assert {"fit_rigid", "bake_uv"} <= set(t.stages) and set(t.as_dict()) >= {"detect", "total", "fit_rigid"}


def test_astronaut(rec, astronaut, astronaut_image):
    _check_result(rec, astronaut, astronaut_image.shape[:2])
    assert astronaut.image_path is None and astronaut.face_index == 0
    assert astronaut.albedo_texture.shape == (512, 512, 3)
    topo = astronaut.topology
    assert len(topo.expression_names) == astronaut.expression_weights.shape[0] == rec.model.layout.n_exp


def test_result_is_frozen_and_shares_the_model_topology(rec, astronaut):
    """One read-only topology per model; the result's arrays are read-only and the named
    coefficient parts are views of ``coeffs`` at the layout's slices."""
    import dataclasses

    topo = astronaut.topology
    assert topo is rec.model.topology
    np.testing.assert_array_equal(topo.expression_basis, rec.model.exp_basis.numpy())
    np.testing.assert_array_equal(topo.triangles, rec.model.triangles.numpy())
    assert astronaut.eyes is not None and astronaut.mouth is not None
    for arr in (topo.triangles, topo.expression_basis, astronaut.coeffs, astronaut.vertices_world,
                astronaut.albedo_texture, astronaut.angles, astronaut.eyes.left.vertices,
                astronaut.eyes.texture, astronaut.mouth.vertices_neutral, astronaut.mouth.exp_basis):
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
    for obj, name in ((astronaut, "coeffs"), (astronaut.eyes, "left"), (astronaut.eyes.left, "centre"),
                      (astronaut.mouth, "vertices_neutral")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, getattr(obj, name))
    # A pickled result (scripts/check_real_blender.sh hands one to Blender) comes back equal and frozen.
    import pickle

    back = pickle.loads(pickle.dumps(astronaut))
    np.testing.assert_array_equal(back.vertices_world, astronaut.vertices_world)
    np.testing.assert_array_equal(back.topology.expression_basis, topo.expression_basis)
    assert back.timings == astronaut.timings and back.metrics == astronaut.metrics
    assert not back.coeffs.flags.writeable and not back.topology.triangles.flags.writeable
    assert not back.mouth.exp_basis.flags.writeable and not back.eyes.right.vertices.flags.writeable
    np.testing.assert_array_equal(back.mouth.vertices_neutral, astronaut.mouth.vertices_neutral)
    s = rec.model.layout.slices()
    np.testing.assert_array_equal(astronaut.angles, astronaut.coeffs[s["angles"]])
    np.testing.assert_array_equal(astronaut.expression_weights, astronaut.coeffs[s["exp"]])
    np.testing.assert_array_equal(astronaut.sh_coeffs, astronaut.coeffs[s["gamma"]])
    np.testing.assert_array_equal(astronaut.translation, astronaut.coeffs[s["trans"]])
    # The rotation field agrees with the angles property (R = Rz(roll) Ry(yaw) Rx(pitch)).
    from msma_engine.geometry import euler_to_rotation

    r = euler_to_rotation(torch.tensor(astronaut.angles, dtype=torch.float64)[None])[0].numpy()
    np.testing.assert_allclose(astronaut.rotation, r, atol=1e-6)


def test_portrait(rec):
    path = PHOTOS / "obama_official_portrait.jpg"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from msma_engine.image_io import load_image

    img = load_image(path)
    res = rec.reconstruct(img, fit="fast", texture_size=256)
    _check_result(rec, res, img.pixels.shape[:2])
    assert res.image_path == str(path)


def test_no_fit_and_all_faces(rec, astronaut_image):
    res = rec.reconstruct_all(astronaut_image, fit=None, texture_size=128)
    assert isinstance(res, list) and len(res) == 1 and isinstance(res[0], FaceResult)
    assert res[0].metrics.landmark_nme_fit == res[0].metrics.landmark_nme_start
    with pytest.raises(ValueError, match="reconstruct_all"):
        rec.reconstruct(astronaut_image, fit=None, face="all")


def test_module_function_caches():
    from msma_engine.pipeline import cached_reconstructor, clear_cache

    a = cached_reconstructor(None, None, "cpu")
    assert cached_reconstructor(device="cpu") is a
    clear_cache()
    assert cached_reconstructor() is not a


def test_bad_inputs(rec, tmp_path, astronaut_image):
    from msma_engine.pipeline import Reconstructor

    blank = np.full((200, 300, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match="no face"):
        rec.reconstruct(blank, fit=None)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"definitely not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        rec.reconstruct(broken)
    with pytest.raises(ImageError, match="not found"):
        rec.reconstruct(tmp_path / "missing.png")
    with pytest.raises(NoFaceError, match="face number 3"):
        rec.reconstruct(astronaut_image, face=3, fit=None)
    with pytest.raises(ValueError, match="fit"):
        rec.reconstruct(astronaut_image, fit="ultra")
    strict = Reconstructor(rec.model, min_face_size=2000)
    with pytest.raises(FaceTooSmallError, match="too small"):
        strict.reconstruct(astronaut_image, fit=None)
    bad_weights = tmp_path / "w.pt"
    bad_weights.write_bytes(b"junk")
    with pytest.raises(WeightsError):
        Reconstructor(rec.model, bad_weights)


def test_with_network_weights(rec, tmp_path, astronaut_image):
    """The regression path: an (untrained) network's output is the fit's starting point."""
    from msma_engine.network import build_network, save_weights
    from msma_engine.pipeline import Reconstructor

    lay = rec.model.layout
    torch.manual_seed(0)
    net = build_network("msma_light", lay.n_id, lay.n_exp, lay.n_tex)
    path = save_weights(tmp_path / "net.pt", net)
    res = Reconstructor(rec.model, path).reconstruct(astronaut_image, fit="fast", texture_size=128)
    assert res.timings.regress > 0
    assert res.metrics.landmark_nme_fit < NME_BOUND


def test_package_exports_the_function():
    import inspect

    import msma_engine
    from msma_engine import reconstruct

    assert inspect.isfunction(reconstruct) and reconstruct.__module__ == "msma_engine.pipeline"
    assert inspect.isfunction(msma_engine.reconstruct_all) and msma_engine.FaceTopology.__name__ == "FaceTopology"
    assert msma_engine.Reconstructor.__name__ == "Reconstructor"
