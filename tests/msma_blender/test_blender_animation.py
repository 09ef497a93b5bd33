"""Animation: Gaussian smoothing, one identity, keyframed expression keys and head pose."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")

from blender_fixtures import load_sphere_model_factory, make_face_result  # noqa: E402
from msma_blender import animation, face_builder  # noqa: E402


class TestGaussianSmooth:
    def test_constant_and_linear_preserved(self):
        t = np.arange(10, dtype=float)
        np.testing.assert_allclose(animation.gaussian_smooth(np.full((10, 2), 3.0), 1.5), 3.0)
        # Centred kernel: no lag on a ramp away from the ends.
        np.testing.assert_allclose(animation.gaussian_smooth(t, 1.0)[3:7], t[3:7], atol=1e-9)

    def test_reduces_noise(self):
        rng = np.random.default_rng(0)
        noisy = np.sin(np.linspace(0, 3, 40))[:, None] + rng.normal(scale=0.2, size=(40, 1))
        smooth = animation.gaussian_smooth(noisy, 2.0)
        assert np.abs(np.diff(smooth, 2, axis=0)).mean() < 0.3 * np.abs(np.diff(noisy, 2, axis=0)).mean()

    def test_sigma_zero_is_identity(self):
        x = np.random.default_rng(1).normal(size=(5, 3))
        np.testing.assert_array_equal(animation.gaussian_smooth(x, 0), x)


def _frames(model, n=4, jitter=0.3, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n):
        w = np.clip(0.5 + 0.05 * t + rng.normal(scale=jitter, size=model.layout.n_exp), -1, 2).astype(np.float32)
        ang = np.array([0.05 * t, 0.1 + rng.normal(scale=0.05), 0.0], np.float32)
        frames.append(make_face_result(model, seed=seed + t, image_path=f"/frames/frame{t + 1}.png",
                                       exp_weights=w, angles=ang))
    return frames



class TestAnimatedFace:
    @pytest.fixture
    def model(self):
        from msma_engine.face_model import FaceModel

        return FaceModel(load_sphere_model_factory()(n_exp=3))

    def _values(self, bpy, obj, frames):
        scene = bpy.context.scene
        vals, rots = [], []
        for f in frames:
            scene.frame_set(f)
            vals.append([k.value for k in obj.data.shape_keys.key_blocks[1:]])
            rots.append(tuple(obj.rotation_euler))
        return np.array(vals), np.array(rots)

    def test_keyframes_and_identity(self, bpy_empty, model):
        bpy = bpy_empty
        results = _frames(model)
        scene = bpy.context.scene
        obj = animation.build_animated_face(results, scene.collection,
                                            face_builder.BuildOptions(), scene=scene, frame_start=1, sigma=0.0)
        key_anim = obj.data.shape_keys.animation_data
        assert key_anim is not None and key_anim.action is not None
        assert obj.animation_data is not None and obj.animation_data.action is not None
        assert (scene.frame_start, scene.frame_end) == (1, 4)  # issue 14.17: was left at 1-250
        vals, _ = self._values(bpy, obj, range(1, 5))
        np.testing.assert_allclose(vals, np.stack([r.expression_weights for r in results]), atol=1e-5)
        basis = np.empty(len(obj.data.vertices) * 3, np.float32)
        obj.data.shape_keys.key_blocks[0].data.foreach_get("co", basis)
        from msma_blender import conversion

        np.testing.assert_allclose(basis.reshape(-1, 3), conversion.points_to_blender(results[0].vertices_neutral),
                                   atol=1e-6)
        assert list(obj["msma_frames"]) == [r.image_path for r in results]

    def test_mean_identity(self, bpy_empty, model):
        bpy = bpy_empty
        results = _frames(model)
        obj = animation.build_animated_face(results, bpy.context.scene.collection,
                                            sigma=0.0, identity="MEAN")
        basis = np.empty(len(obj.data.vertices) * 3, np.float32)
        obj.data.shape_keys.key_blocks[0].data.foreach_get("co", basis)
        from msma_blender import conversion

        mean = np.mean([r.vertices_neutral for r in results], axis=0)
        np.testing.assert_allclose(basis.reshape(-1, 3), conversion.points_to_blender(mean), atol=1e-6)

    def test_smoothing_reduces_jitter(self, bpy_empty, model):
        bpy = bpy_empty
        results = _frames(model, n=4, jitter=0.4, seed=3)
        coll = bpy.context.scene.collection
        raw = animation.build_animated_face(results, coll, sigma=0.0)
        smooth = animation.build_animated_face(results, coll, sigma=1.0)
        v_raw, r_raw = self._values(bpy, raw, range(1, 5))
        v_s, r_s = self._values(bpy, smooth, range(1, 5))
        assert np.abs(np.diff(v_s, axis=0)).sum() < 0.7 * np.abs(np.diff(v_raw, axis=0)).sum()
        assert np.abs(np.diff(r_s, axis=0)).sum() <= np.abs(np.diff(r_raw, axis=0)).sum() + 1e-9
        # Slider ranges cover every keyframed value (Blender would clamp otherwise).
        for k, key in enumerate(raw.data.shape_keys.key_blocks[1:]):
            assert key.slider_min <= v_raw[:, k].min() + 1e-6 and key.slider_max >= v_raw[:, k].max() - 1e-6
